"""Who may call metrics-server, decided as upstream's delegated authentication and
authorization decide it (``k8s.io/apiserver``'s ``DelegatingAuthenticationOptions`` and
``DelegatingAuthorizationOptions``).

``MetricsAuth.check`` runs in the server's middleware (``metrics/server.py``) before any
handler; ``/healthz``, ``/livez`` and ``/readyz`` are public (``--authorization-always-
allow-paths``).

1. **Authentication**, first that answers:

   - *request header* (the aggregator): a client certificate that the TLS handshake
     verified and that the **front-proxy CA** issued, with a CN among the allowed names
     (``front-proxy-client``), names the caller in ``X-Remote-User``/``X-Remote-Group``/
     ``X-Remote-Extra-*`` (``api/requestheader.py``); those headers from anyone else are
     ignored;
   - *x509*: a client certificate the **cluster CA** issued: CN the user, each O a group;
   - *token*: ``Authorization: Bearer`` sent to the API server as a TokenReview
     (``client/reviews.py``, cached).

   Which CA issued a verified certificate is told by its issuer name (both CAs are the
   server's only trust anchors, so a verified chain's issuer is one of them). Where the
   CAs and names come from: ``kube-system/extension-apiserver-authentication``
   (``load_config``), unless ``--requestheader-client-ca-file`` / ``--client-ca-file``
   name files. Nothing else is 401 ``Unauthorized`` (``--anonymous-auth`` is off).
2. **Authorization**: ``system:masters`` is always allowed (upstream's default
   ``AlwaysAllowGroups``); otherwise a SubjectAccessReview (cached) about the request's
   attributes (``request_attributes``: ``get``/``list`` of ``nodes`` or ``pods`` in
   ``metrics.k8s.io`` with the namespace and name of the path; ``get`` of the path for
   discovery). A refusal is
   upstream's 403 (``pods.metrics.k8s.io is forbidden: User "U" cannot list resource
   "pods" in API group "metrics.k8s.io" in the namespace "NS"``).
"""

from __future__ import annotations

import json
import logging
import ssl
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from corral.api import errors
from corral.api.requestheader import (
    CONFIGMAP_NAME,
    CONFIGMAP_NAMESPACE,
    RequestHeaderConfig,
)
from corral.client.rest import CONFIGMAPS, Client
from corral.client.reviews import Reviewer
from corral.util.bearer import bearer_token, peer_subject

log = logging.getLogger("corral.metrics.auth")

AUTHENTICATED = "system:authenticated"
MASTERS = "system:masters"
GROUP = "metrics.k8s.io"
PREFIX = "/apis/metrics.k8s.io/v1beta1/"

Name = tuple[tuple[tuple[str, str], ...], ...]


@dataclass(frozen=True)
class Caller:
    username: str
    groups: tuple[str, ...] = ()
    uid: str = ""
    extra: Mapping[str, Sequence[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class MetricsAttributes:
    """What a SubjectAccessReview asks about one request (``resource`` empty: a
    non-resource request for ``path``)."""

    verb: str
    path: str
    group: str = ""
    resource: str = ""
    name: str = ""
    namespace: str = ""


def ca_subjects(pem: str) -> set[Name]:
    """The subject names of the certificates in ``pem`` (ssl's decoded form)."""
    if not pem.strip():
        return set()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cadata=pem)
    return {_name(c.get("subject")) for c in ctx.get_ca_certs()}


def _name(raw: Any) -> Name:
    return tuple(tuple((str(k), str(v)) for k, v in rdn) for rdn in raw or ())


def request_attributes(method: str, path: str, query: Mapping[str, str]) -> MetricsAttributes:
    """The attributes of a metrics request, as upstream's ``RequestInfoFactory`` reads
    ``/apis/GROUP/VERSION/[namespaces/NS/]RESOURCE[/NAME]`` (anything shorter, or outside
    ``/apis``, is a non-resource request for its path)."""
    verb = method.lower()
    parts = [p for p in path.split("/") if p]
    if len(parts) < 4 or parts[0] != "apis":
        return MetricsAttributes("get" if verb == "head" else verb, path)
    group, rest = parts[1], parts[3:]
    namespace = ""
    if rest[0] == "namespaces" and len(rest) > 1:
        namespace = rest[1]
        if len(rest) > 2:
            rest = rest[2:]
    resource, name = rest[0], (rest[1] if len(rest) > 1 else "")
    if verb in ("get", "head"):
        watch = query.get("watch") in ("1", "true", "True")
        verb = "watch" if watch else ("get" if name else "list")
    return MetricsAttributes(verb, path, group, resource, name=name, namespace=namespace)


def forbidden(user: str, attrs: MetricsAttributes, reason: str = "") -> errors.StatusError:
    """Upstream's ``responsewriters.Forbidden`` for a delegated refusal (the
    authorizer's reason after ``: `` when there is one)."""
    q = json.dumps
    suffix = f": {reason}" if reason else ""
    if not attrs.resource:
        msg = f"User {q(user)} cannot {attrs.verb} path {q(attrs.path)}{suffix}"
        return errors.forbidden_error(f"forbidden: {msg}")
    where = f"in the namespace {q(attrs.namespace)}" if attrs.namespace else "at the cluster scope"
    msg = (
        f"User {q(user)} cannot {attrs.verb} resource {q(attrs.resource)} "
        f"in API group {q(attrs.group)} {where}{suffix}"
    )
    qualified = f"{attrs.resource}.{attrs.group}" if attrs.group else attrs.resource
    head = f"{qualified} {q(attrs.name)}" if attrs.name else qualified
    details = {"name": attrs.name, "group": attrs.group, "kind": attrs.resource}
    details = {k: v for k, v in details.items() if v}  # omitempty, as StatusDetails
    return errors.StatusError(403, errors.FORBIDDEN, f"{head} is forbidden: {msg}", details)


class MetricsAuth:
    """Authenticates and authorises metrics-server's callers."""

    def __init__(self, reviewer: Reviewer, config: RequestHeaderConfig | None = None) -> None:
        self.reviewer = reviewer
        self.config = config or RequestHeaderConfig()
        self.front_proxy_issuers = ca_subjects(self.config.client_ca)
        self.client_issuers = ca_subjects(self.config.user_client_ca)

    def trust_anchors(self) -> str:
        """The PEM of every CA a client certificate may chain to (the serving context's)."""
        return "\n".join(p for p in (self.config.client_ca, self.config.user_client_ca) if p)

    async def authenticate(
        self,
        peercert: Mapping[str, Any] | None,
        headers: Iterable[tuple[str, str]],
        authorization: str,
    ) -> Caller | None:
        """The caller, or None (401)."""
        if peercert:
            issuer = _name(peercert.get("issuer"))
            cn, orgs = peer_subject(peercert)
            allowed = self.config.allowed_names
            if issuer in self.front_proxy_issuers and (not allowed or cn in allowed):
                found = self.config.user_from_headers(headers)
                if found is not None:
                    user, groups, extra = found
                    return Caller(user, tuple(groups), "", extra)
            if issuer in self.client_issuers and cn:
                return Caller(cn, (*orgs, AUTHENTICATED))
        token = bearer_token(authorization)
        if not token:
            return None
        reviewed = await self.reviewer.authenticate(token)
        if reviewed is None or not reviewed.username:
            return None
        return Caller(reviewed.username, reviewed.groups, reviewed.uid, dict(reviewed.extra))

    async def authorize(self, caller: Caller, attrs: MetricsAttributes) -> None:
        """Raise the 403 unless ``caller`` may do ``attrs``."""
        if MASTERS in caller.groups:
            return
        allowed, reason = await self.reviewer.authorize(
            caller.username,
            caller.groups,
            verb=attrs.verb,
            resource=attrs.resource,
            group=attrs.group,
            name=attrs.name,
            namespace=attrs.namespace,
            path="" if attrs.resource else attrs.path,
            uid=caller.uid,
            extra=caller.extra,
        )
        if not allowed:
            raise forbidden(caller.username, attrs, reason)

    async def check(
        self,
        method: str,
        path: str,
        query: Mapping[str, str],
        authorization: str,
        *,
        peercert: Mapping[str, Any] | None = None,
        headers: Iterable[tuple[str, str]] = (),
    ) -> Caller:
        """Authenticate and authorise one request: the caller, or raise 401/403."""
        caller = await self.authenticate(peercert, headers, authorization)
        if caller is None:
            raise errors.unauthorized()
        await self.authorize(caller, request_attributes(method, path, query))
        return caller


async def load_config(
    client: Client, requestheader_ca_file: str = "", client_ca_file: str = ""
) -> RequestHeaderConfig:
    """The front-proxy trust from ``kube-system/extension-apiserver-authentication``
    (upstream's lookup), files given on the command line taking precedence; without the
    ConfigMap (not readable: logged with upstream's hint) only tokens authenticate."""
    data: dict[str, str] = {}
    try:
        cm = await client.get(CONFIGMAPS, CONFIGMAP_NAME, CONFIGMAP_NAMESPACE)
        data = dict(cm.get("data") or {})
    except errors.StatusError as e:
        log.warning(
            "Unable to get configmap/%s in %s. Usually fixed by 'kubectl create rolebinding "
            "-n %s ROLEBINDING_NAME --role=extension-apiserver-authentication-reader "
            "--serviceaccount=YOUR_NS:YOUR_SA': %s",
            CONFIGMAP_NAME,
            CONFIGMAP_NAMESPACE,
            CONFIGMAP_NAMESPACE,
            e.message,
        )
    if requestheader_ca_file:
        with open(requestheader_ca_file, encoding="utf-8") as f:
            data["requestheader-client-ca-file"] = f.read()
    if client_ca_file:
        with open(client_ca_file, encoding="utf-8") as f:
            data["client-ca-file"] = f.read()
    return RequestHeaderConfig.from_configmap(data)
