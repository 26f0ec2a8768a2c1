"""The review client: TokenReview/SubjectAccessReview bodies, answers, the TTL cache,
shared in-flight calls and failing closed."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from corral.client.reviews import (
    SUBJECT_ACCESS_REVIEWS,
    TOKEN_REVIEWS,
    ReviewedUser,
    Reviewer,
    sar_body,
)


class ReviewAPI:
    """Answers the two review POSTs as the API server would, counting the calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.tokens = {"good": {"username": "alice", "uid": "u1", "groups": ["g1"]}}
        self.allowed = {("alice", "get", "nodes", "proxy")}
        self.fail = False
        self.gate: asyncio.Event | None = None

    async def request(self, method: str, path: str, *, body: Any = None, **_: Any) -> Any:
        self.calls.append((path, body))
        if self.gate is not None:
            await self.gate.wait()
        if self.fail:
            raise ConnectionError("connection refused")
        spec = body["spec"]
        if path == TOKEN_REVIEWS:
            user = self.tokens.get(spec["token"])
            return {"status": {"authenticated": True, "user": user} if user else {}}
        assert path == SUBJECT_ACCESS_REVIEWS
        ra = spec.get("resourceAttributes") or {}
        key = (spec["user"], ra.get("verb"), ra.get("resource"), ra.get("subresource"))
        return {"status": {"allowed": True} if key in self.allowed else {"allowed": False}}


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_authenticate_returns_the_reviewed_user_and_caches() -> None:
    api, clock = ReviewAPI(), Clock()
    r = Reviewer(api, ttl=10, clock=clock)
    user = await r.authenticate("good")
    assert user == ReviewedUser("alice", ("g1",), "u1", {})
    assert await r.authenticate("bad") is None
    assert await r.authenticate("good") == user and await r.authenticate("bad") is None
    assert len(api.calls) == 2  # both answers cached, the refusal too
    clock.now = 10
    await r.authenticate("good")
    assert len(api.calls) == 3  # expired


async def test_token_review_body_and_audiences() -> None:
    api = ReviewAPI()
    await Reviewer(api).authenticate("good", audiences=["https://kubernetes.default.svc"])
    path, body = api.calls[0]
    assert path == "/apis/authentication.k8s.io/v1/tokenreviews"
    assert body == {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenReview",
        "spec": {"token": "good", "audiences": ["https://kubernetes.default.svc"]},
    }


async def test_authorize_allows_refuses_and_caches_per_attributes() -> None:
    api = ReviewAPI()
    r = Reviewer(api)
    allowed = await r.authorize(
        "alice", ["g1"], verb="get", resource="nodes", subresource="proxy", name="n1"
    )
    assert allowed == (True, "")
    assert (await r.authorize("alice", ["g1"], verb="create", resource="nodes"))[0] is False
    await r.authorize("alice", ["g1"], verb="get", resource="nodes", subresource="proxy", name="n1")
    assert len(api.calls) == 2


async def test_failures_fail_closed_and_are_not_cached() -> None:
    api = ReviewAPI()
    api.fail = True
    r = Reviewer(api)
    assert await r.authenticate("good") is None
    allowed, reason = await r.authorize("alice", [], verb="get", resource="nodes")
    assert not allowed and "connection refused" in reason
    api.fail = False
    assert await r.authenticate("good") is not None
    assert len(api.calls) == 3


async def test_concurrent_askers_share_one_call() -> None:
    api = ReviewAPI()
    api.gate = asyncio.Event()
    r = Reviewer(api)
    tasks = [asyncio.create_task(r.authenticate("good")) for _ in range(5)]
    await asyncio.sleep(0)
    api.gate.set()
    users = await asyncio.gather(*tasks)
    assert {u.username for u in users if u} == {"alice"} and len(api.calls) == 1


async def test_ttl_zero_never_caches() -> None:
    api = ReviewAPI()
    r = Reviewer(api, ttl=0)
    await r.authenticate("good")
    await r.authenticate("good")
    assert len(api.calls) == 2


@pytest.mark.parametrize(
    ("kw", "want"),
    [
        (
            {"verb": "get", "resource": "nodes", "subresource": "log", "name": "n1"},
            {"resourceAttributes": {"verb": "get", "resource": "nodes", "subresource": "log",
                                    "name": "n1"}},
        ),
        (
            {"verb": "get", "path": "/healthz"},
            {"nonResourceAttributes": {"path": "/healthz", "verb": "get"}},
        ),
    ],
    ids=["resource", "non-resource"],
)  # fmt: skip
def test_sar_body(kw: dict[str, Any], want: dict[str, Any]) -> None:
    body = sar_body("bob", ["system:authenticated"], **kw)
    assert body["kind"] == "SubjectAccessReview"
    assert body["spec"] == {"user": "bob", "groups": ["system:authenticated"], **want}
