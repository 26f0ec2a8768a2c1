"""The agent's service-account tokens: TokenRequests for pods' projected volumes, cached.

The kubelet's ``pkg/kubelet/token`` manager in Python. ``volumes.py`` asks
:meth:`TokenManager.pod_token` for each ``serviceAccountToken`` source of a projected
volume, at setup and on every refresh (every ten seconds); the manager answers from its
cache and only posts a new TokenRequest
(``POST /api/v1/namespaces/NS/serviceaccounts/SA/token``, bound to the pod by name and
uid, the source's audience and ``expirationSeconds``) when there is none or the cached
one needs a refresh (:func:`requires_refresh`: 80% of its lifetime passed, older than
24 h, or issued in the future, each less a random jitter of up to 10 s). A failed
refresh keeps serving the old token while it is still valid, as the kubelet does; once
it has expired the error surfaces (``FailedMount`` at setup; logged on refresh).

The pod lifecycle calls :meth:`TokenManager.forget_pod` when the pod is gone, and
expired entries are dropped on the way (``cleanup``). The agent's identity
(``system:node:N``) may only request tokens for the service accounts of pods bound to
its node: the API server's Node authorizer and NodeRestriction decide that. Tokens are
never logged; cache keys (which hold no token) may be.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from corral.client.rest import Client, Resource
from corral.util.clock import Clock, parse_rfc3339

log = logging.getLogger("corral.agent.sa_token")

Obj = dict[str, Any]

SERVICE_ACCOUNTS = Resource("", "v1", "serviceaccounts")
#: the kubelet's ``maxTTL``: a token older than this is refreshed whatever its lifetime
MAX_TTL = 24 * 3600.0
#: the kubelet's ``maxJitter``
MAX_JITTER = 10.0
#: what ``expirationSeconds`` defaults to when a source names none (the API's default)
DEFAULT_EXPIRATION = 3600

#: (service account, namespace, audiences, expirationSeconds, bound pod name, pod uid)
Key = tuple[str, str, tuple[str, ...], int, str, str]
#: posts a TokenRequest body for (namespace, service account); returns the answer
Fetch = Callable[[str, str, Obj], Awaitable[Obj]]


class TokenError(Exception):
    """No token could be had; the message is the kubelet's."""


@dataclass(frozen=True)
class Cached:
    token: str
    #: ``status.expirationTimestamp`` (seconds since the epoch)
    expires: float
    #: ``spec.expirationSeconds`` of the request
    seconds: int
    pod_uid: str


def requires_refresh(t: Cached, now: float, jitter: float) -> bool:
    """The kubelet's ``requiresRefresh``: older than 24 h, within 20% of its lifetime
    of the expiry, or issued after ``now`` (the clock went back); ``jitter`` seconds
    earlier in the first two cases. Pure."""
    iat = t.expires - t.seconds
    if now > iat + MAX_TTL - jitter:
        return True
    if now > t.expires - (t.seconds * 20) // 100 - jitter:
        return True
    return now < iat


def token_request(pod: Obj, audiences: Sequence[str], expiration: int) -> Obj:
    """The TokenRequest the kubelet posts for a projected source of ``pod``."""
    meta = pod.get("metadata") or {}
    spec: Obj = {
        "expirationSeconds": expiration,
        "boundObjectRef": {
            "apiVersion": "v1",
            "kind": "Pod",
            "name": meta.get("name", ""),
            "uid": meta.get("uid", ""),
        },
    }
    if audiences:
        spec["audiences"] = list(audiences)
    return {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec}


def client_fetch(client: Client) -> Fetch:
    """A :data:`Fetch` over the REST client."""

    async def fetch(namespace: str, name: str, body: Obj) -> Obj:
        return await client.post_sub(SERVICE_ACCOUNTS, name, "token", body, namespace)

    return fetch


class TokenManager:
    """Service-account tokens of this node's pods, requested once and kept fresh."""

    def __init__(
        self,
        fetch: Fetch,
        clock: Clock,
        *,
        jitter: Callable[[], float] = lambda: random.random() * MAX_JITTER,
    ) -> None:
        self._fetch = fetch
        self.clock = clock
        self._jitter = jitter
        self._cache: dict[Key, Cached] = {}

    async def pod_token(self, pod: Obj, source: Obj) -> str:
        """The token for one ``serviceAccountToken`` projected ``source`` of ``pod``
        (``audience``, ``expirationSeconds``); raises :class:`TokenError`."""
        meta = pod.get("metadata") or {}
        ns = str(meta.get("namespace") or "default")
        sa = str((pod.get("spec") or {}).get("serviceAccountName") or "default")
        audiences = (str(source["audience"]),) if source.get("audience") else ()
        seconds = int(source.get("expirationSeconds") or DEFAULT_EXPIRATION)
        key: Key = (sa, ns, audiences, seconds, str(meta.get("name", "")), str(meta.get("uid", "")))
        now = self.clock.now()
        self.cleanup(now)
        cached = self._cache.get(key)
        if cached is not None and not requires_refresh(cached, now, self._jitter()):
            return cached.token
        try:
            answer = await self._fetch(ns, sa, token_request(pod, audiences, seconds))
            status = answer.get("status") or {}
            fresh = Cached(
                str(status["token"]),
                parse_rfc3339(str(status["expirationTimestamp"])),
                int((answer.get("spec") or {}).get("expirationSeconds") or seconds),
                key[5],
            )
        except Exception as e:  # the API's refusal, or no API: the kubelet's messages
            if cached is None:
                raise TokenError(f"failed to fetch token: {e}") from None
            if now > cached.expires:
                raise TokenError(f"token {_show(key)} expired and refresh failed: {e}") from None
            log.error("couldn't update token %s: %s", _show(key), e)
            return cached.token
        self._cache[key] = fresh
        return fresh.token

    def forget_pod(self, uid: str) -> None:
        """Drop every token bound to pod ``uid`` (the kubelet's
        ``DeleteServiceAccountToken``)."""
        for key in [k for k, t in self._cache.items() if t.pod_uid == uid]:
            del self._cache[key]

    def cleanup(self, now: float | None = None) -> None:
        """Drop expired tokens."""
        t = self.clock.now() if now is None else now
        for key in [k for k, c in self._cache.items() if t > c.expires]:
            del self._cache[key]

    def __len__(self) -> int:
        return len(self._cache)


def _show(key: Key) -> str:
    sa, ns, auds, secs, pod, uid = key
    return f'"{sa}"/"{ns}"/{list(auds)}/{secs}/Pod {pod} {uid}'


__all__ = [
    "DEFAULT_EXPIRATION",
    "MAX_JITTER",
    "MAX_TTL",
    "SERVICE_ACCOUNTS",
    "Cached",
    "Fetch",
    "TokenError",
    "TokenManager",
    "client_fetch",
    "requires_refresh",
    "token_request",
]
