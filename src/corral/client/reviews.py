"""Asking the API server who a caller is and what it may do: TokenReview and
SubjectAccessReview from a component that serves its own HTTP endpoints.

The agent's server (like the kubelet's ``--authentication-token-webhook`` and
``--authorization-mode=Webhook``), metrics-server (like upstream's delegated
authentication and authorization of extension API servers) and the Mesos, Marathon and
Chronos faces do not hold the cluster's credentials or RBAC objects: they forward a
bearer token to ``authentication.k8s.io/v1`` TokenReview and a request's attributes to
``authorization.k8s.io/v1`` SubjectAccessReview, over their ordinary ``Client``.

``Reviewer`` caches both answers for ``ttl`` seconds (upstream's webhooks cache too:
2 minutes for tokens, 5 minutes for allowed decisions; ours is shorter so a revoked
binding takes effect quickly), shares one in-flight call between concurrent askers of
the same question, and never caches a failed call: an unreachable API server gives a
``None`` user (the caller answers 401) or a refusal carrying the error (403), as
upstream's webhooks fail closed. Tokens are kept in the cache only as SHA-256 digests.

This module may not import ``corral.apiserver`` (layers), so the user it returns is its
own ``ReviewedUser``, shaped as ``apiserver.identity.UserInfo``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Coroutine, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, Required, TypedDict, TypeVar, Unpack

log = logging.getLogger(__name__)

TOKEN_REVIEWS = "/apis/authentication.k8s.io/v1/tokenreviews"
SUBJECT_ACCESS_REVIEWS = "/apis/authorization.k8s.io/v1/subjectaccessreviews"

#: how many answers each cache keeps at most (oldest dropped first)
MAX_ENTRIES = 4096

T = TypeVar("T")


class RestClient(Protocol):
    """What ``Reviewer`` needs of ``corral.client.rest.Client``."""

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        timeout: float = 30,
    ) -> Any: ...


@dataclass(frozen=True)
class ReviewedUser:
    """The user a TokenReview vouched for (``status.user``)."""

    username: str
    groups: tuple[str, ...] = ()
    uid: str = ""
    extra: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def from_json(cls, user: Mapping[str, Any]) -> ReviewedUser:
        extra = user.get("extra") or {}
        return cls(
            str(user.get("username") or ""),
            tuple(user.get("groups") or ()),
            str(user.get("uid") or ""),
            {str(k): tuple(v or ()) for k, v in extra.items()},
        )


class _TTLCache:
    """Answers by key for ``ttl`` seconds of ``clock``; at most ``MAX_ENTRIES`` kept."""

    def __init__(self, ttl: float, clock: Callable[[], float]) -> None:
        self.ttl = ttl
        self.clock = clock
        self._entries: OrderedDict[Hashable, tuple[float, Any]] = OrderedDict()
        self._inflight: dict[Hashable, asyncio.Future[Any]] = {}

    def get(self, key: Hashable) -> tuple[bool, Any]:
        hit = self._entries.get(key)
        if hit is None:
            return False, None
        expires, value = hit
        if self.clock() >= expires:
            del self._entries[key]
            return False, None
        return True, value

    def put(self, key: Hashable, value: Any) -> None:
        if self.ttl <= 0:
            return
        self._entries[key] = (self.clock() + self.ttl, value)
        self._entries.move_to_end(key)
        while len(self._entries) > MAX_ENTRIES:
            self._entries.popitem(last=False)

    async def through(
        self, key: Hashable, ask: Callable[[], Coroutine[Any, Any, tuple[T, bool]]]
    ) -> T:
        """The cached answer for ``key``, or ``ask()``'s; ``ask`` returns (answer,
        cacheable). Concurrent callers share one ``ask`` task, which a caller's
        cancellation does not cancel (it ends by the client's own timeout)."""
        found, value = self.get(key)
        if found:
            return value  # type: ignore[no-any-return]
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.ensure_future(ask())
            self._inflight[key] = task
            task.add_done_callback(lambda t: self._settle(key, t))
        answer, _ = await asyncio.shield(task)
        return answer  # type: ignore[no-any-return]

    def _settle(self, key: Hashable, task: asyncio.Future[Any]) -> None:
        self._inflight.pop(key, None)
        if task.cancelled() or task.exception() is not None:
            return
        answer, cacheable = task.result()
        if cacheable:
            self.put(key, answer)

    def clear(self) -> None:
        self._entries.clear()


class AccessAttributes(TypedDict, total=False):
    """What a SubjectAccessReview asks besides the user and groups: resource attributes
    when ``resource`` is given, else non-resource attributes for ``path``; ``uid`` and
    ``extra`` complete the user."""

    verb: Required[str]
    resource: str
    group: str
    subresource: str
    name: str
    namespace: str
    path: str
    uid: str
    extra: Mapping[str, Sequence[str]] | None


def sar_body(user: str, groups: Sequence[str], **attrs: Unpack[AccessAttributes]) -> dict[str, Any]:
    """The SubjectAccessReview asking whether ``user`` may do what ``attrs`` describe."""
    spec: dict[str, Any] = {"user": user, "groups": list(groups)}
    if uid := attrs.get("uid"):
        spec["uid"] = uid
    if extra := attrs.get("extra"):
        spec["extra"] = {k: list(v) for k, v in extra.items()}
    verb = attrs["verb"]
    if resource := attrs.get("resource"):
        ra = {
            "namespace": attrs.get("namespace"),
            "verb": verb,
            "group": attrs.get("group"),
            "resource": resource,
            "subresource": attrs.get("subresource"),
            "name": attrs.get("name"),
        }
        spec["resourceAttributes"] = {k: v for k, v in ra.items() if v}
    else:
        spec["nonResourceAttributes"] = {"path": attrs.get("path", ""), "verb": verb}
    return {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": spec}


class Reviewer:
    """TokenReview and SubjectAccessReview through one client, cached for ``ttl``
    seconds (0: no cache). Safe to share by every task of a process."""

    def __init__(
        self,
        client: RestClient,
        ttl: float = 10.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        timeout: float = 10.0,
    ) -> None:
        self.client = client
        self.timeout = timeout
        self._tokens = _TTLCache(ttl, clock)
        self._decisions = _TTLCache(ttl, clock)

    async def authenticate(self, token: str, audiences: Sequence[str] = ()) -> ReviewedUser | None:
        """The user ``token`` belongs to, or None when the API server does not
        authenticate it (or cannot be asked: not cached, logged)."""
        if not token:
            return None
        # surrogateescape: a header's undecodable bytes arrive as lone surrogates
        digest = hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()
        key = (digest, tuple(audiences))

        async def ask() -> tuple[ReviewedUser | None, bool]:
            spec: dict[str, Any] = {"token": token}
            if audiences:
                spec["audiences"] = list(audiences)
            body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": spec}
            try:
                out = await self.client.request(
                    "POST", TOKEN_REVIEWS, body=body, timeout=self.timeout
                )
            except Exception as e:
                log.warning("TokenReview failed: %s", e)
                return None, False
            status = (out or {}).get("status") or {}
            if not status.get("authenticated"):
                return None, True
            return ReviewedUser.from_json(status.get("user") or {}), True

        return await self._tokens.through(key, ask)

    async def authorize(
        self, user: str, groups: Sequence[str], **attrs: Unpack[AccessAttributes]
    ) -> tuple[bool, str]:
        """(allowed, reason) of a SubjectAccessReview for the request ``attrs`` describe
        (``sar_body``); a failed call is (False, the error), not cached."""
        body = sar_body(user, groups, **attrs)
        key = json.dumps(body["spec"], sort_keys=True)  # the question, whatever its spelling

        async def ask() -> tuple[tuple[bool, str], bool]:
            try:
                out = await self.client.request(
                    "POST", SUBJECT_ACCESS_REVIEWS, body=body, timeout=self.timeout
                )
            except Exception as e:
                log.warning("SubjectAccessReview failed: %s", e)
                return (False, f"authorization failed: {e}"), False
            status = (out or {}).get("status") or {}
            reason = str(status.get("reason") or status.get("evaluationError") or "")
            return (bool(status.get("allowed")), reason), True

        return await self._decisions.through(key, ask)

    def forget(self) -> None:
        """Drop every cached answer (e.g. after the credentials changed)."""
        self._tokens.clear()
        self._decisions.clear()
