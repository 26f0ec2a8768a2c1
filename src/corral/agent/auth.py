"""Who may call the agent's API, decided as the kubelet decides it (``--authentication-
token-webhook``, ``--client-ca-file``, ``--authorization-mode=Webhook``).

``AgentAuth`` is the agent server's check of one request (``agent/server.py`` calls it
from its middleware before any handler runs):

1. **Authentication.** A client certificate verified by the TLS handshake against the
   client CA (the cluster CA) names the user (CN) and groups (each O, plus
   ``system:authenticated``), as upstream's x509 authenticator; otherwise a bearer token
   is sent to the API server as a TokenReview (``client/reviews.py``, cached). Anything
   else, or a token nobody vouches for, is 401 ``Unauthorized`` (anonymous access is
   off, as ``--anonymous-auth=false``).
2. **Authorization.** ``request_attributes`` maps the request to what the kubelet asks
   a SubjectAccessReview about: resource ``nodes``, name = this node, subresource by
   path (``/stats`` -> ``stats``, ``/metrics`` -> ``metrics``, ``/logs`` -> ``log``,
   ``/checkpoint`` -> ``checkpoint``, anything else, ``/containerLogs``, ``/exec``,
   ``/attach``, ``/portForward``, ``/run``, ``/pods`` included, -> ``proxy``) and verb
   by method (GET ``get``, POST ``create``, PUT ``update``, PATCH ``patch``, DELETE
   ``delete``). One difference, on purpose: the streaming paths (``/exec``,
   ``/attach``, ``/portForward``, ``/run``) ask for ``create`` even when they arrive as
   a WebSocket GET, as the API server asks ``create`` on ``pods/exec`` for a WebSocket
   upgrade, so a read-only ``nodes/proxy`` grant cannot run commands. One addition:
   the Mesos executor's ``/mesos/executor-message`` (Corral's own path, where the Mesos
   master relays framework messages) asks for subresource ``mesos``, a Corral-specific
   ``nodes/mesos``, so the master's grant (``corral:mesos-master``) is not the
   ``create nodes/proxy`` that runs commands in any pod. A refusal is 403 with the
   kubelet's text ``Forbidden (user=U, verb=V, resource=nodes, subresource(s)=[S])``.

``ServingTLS`` is the agent's serving certificate (``--tls-cert-file``,
``--tls-private-key-file``), reloaded into the same ``SSLContext`` when its files
change, so a renewed certificate is served without a restart.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from corral.client.reviews import Reviewer
from corral.util.bearer import bearer_token, peer_subject

log = logging.getLogger("corral.agent.auth")

AUTHENTICATED = "system:authenticated"
#: how often the serving certificate's files are looked at (renewal is days ahead)
RELOAD_INTERVAL = 10.0

_VERBS = {"GET": "get", "HEAD": "get", "POST": "create", "PUT": "update", "PATCH": "patch",
          "DELETE": "delete"}  # fmt: skip
# (kubelet path prefix, subresource), in the kubelet's order
_SUBRESOURCES = (("/stats", "stats"), ("/metrics", "metrics"), ("/logs", "log"),
                 ("/checkpoint", "checkpoint"),
                 # Corral's: the Mesos master's framework messages (not the kubelet's)
                 ("/mesos", "mesos"))  # fmt: skip
#: paths that run something in a container: ``create`` whatever the method
STREAMING = ("/exec", "/attach", "/portForward", "/run")


def is_subpath(path: str, prefix: str) -> bool:
    """The kubelet's ``isSubpath``: ``path`` is ``prefix`` or below it."""
    prefix = prefix.rstrip("/")
    return path == prefix or (path.startswith(prefix) and path[len(prefix)] == "/")


def request_attributes(method: str, path: str) -> tuple[str, str]:
    """(verb, subresource) of resource ``nodes`` a request to ``path`` needs."""
    verb = _VERBS.get(method.upper(), "")
    if any(is_subpath(path, p) for p in STREAMING):
        return "create", "proxy"
    for prefix, sub in _SUBRESOURCES:
        if is_subpath(path, prefix):
            return verb, sub
    return verb, "proxy"


def forbidden_message(user: str, verb: str, subresources: Sequence[str]) -> str:
    """The kubelet's 403 text."""
    return (
        f"Forbidden (user={user}, verb={verb}, resource=nodes, "
        f"subresource(s)=[{' '.join(subresources)}])"
    )


@dataclass(frozen=True)
class Caller:
    """An authenticated caller of the agent's API."""

    username: str
    groups: tuple[str, ...] = ()
    uid: str = ""
    extra: Mapping[str, Sequence[str]] | None = None


def caller_from_peercert(peercert: Mapping[str, Any] | None) -> Caller | None:
    """The user of a verified client certificate (``SSLObject.getpeercert()``): CN the
    name, each O a group, plus ``system:authenticated``; None without one or a CN."""
    cn, groups = peer_subject(peercert)
    if not cn:
        return None
    return Caller(cn, (*groups, AUTHENTICATED))


class AgentAuth:
    """Authenticates and authorises requests to node ``node_name``'s API."""

    def __init__(self, node_name: str, reviewer: Reviewer) -> None:
        self.node_name = node_name
        self.reviewer = reviewer

    async def authenticate(
        self, peercert: Mapping[str, Any] | None, authorization: str
    ) -> Caller | None:
        """The caller, or None (the server answers 401)."""
        caller = caller_from_peercert(peercert)
        if caller is not None:
            return caller
        token = bearer_token(authorization)
        if not token:
            return None
        user = await self.reviewer.authenticate(token)
        if user is None or not user.username:
            return None
        return Caller(user.username, user.groups, user.uid, dict(user.extra))

    async def authorize(self, caller: Caller, method: str, path: str) -> str | None:
        """None when ``caller`` may make the request, else the 403 message."""
        verb, sub = request_attributes(method, path)
        allowed, _ = await self.reviewer.authorize(
            caller.username,
            caller.groups,
            verb=verb,
            resource="nodes",
            subresource=sub,
            name=self.node_name,
            uid=caller.uid,
            extra=caller.extra,
        )
        return None if allowed else forbidden_message(caller.username, verb, [sub])


class ServingTLS:
    """The agent's TLS server context: its certificate, and the client CA it verifies
    client certificates against (optional: a request may use a token instead)."""

    def __init__(self, cert_file: Path, key_file: Path, client_ca: bytes | None) -> None:
        self.cert_file = cert_file
        self.key_file = key_file
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        if client_ca:
            self.context.load_verify_locations(cadata=client_ca.decode())
            self.context.verify_mode = ssl.CERT_OPTIONAL
        self._stamp = self._files_stamp()
        self.context.load_cert_chain(cert_file, key_file)

    def _files_stamp(self) -> tuple[float, float, int, int]:
        c, k = self.cert_file.stat(), self.key_file.stat()
        return (c.st_mtime, k.st_mtime, c.st_size, k.st_size)

    def reload_if_changed(self) -> bool:
        """Load the pair again if its files changed (True when it did); a pair that
        cannot be loaded (mid-write) is kept for the next look."""
        try:
            stamp = self._files_stamp()
            if stamp == self._stamp:
                return False
            self.context.load_cert_chain(self.cert_file, self.key_file)
        except (OSError, ssl.SSLError) as e:
            log.warning("serving certificate %s not reloaded: %s", self.cert_file, e)
            return False
        self._stamp = stamp
        log.info("serving certificate %s reloaded", self.cert_file)
        return True

    async def watch(self, interval: float = RELOAD_INTERVAL) -> None:
        """Reload on change, every ``interval`` seconds, until cancelled (on the event
        loop: the context is not changed under a handshake in progress)."""
        while True:
            await asyncio.sleep(interval)
            self.reload_if_changed()
