"""``client/basic_auth.py`` and the three faces' access tables (``mesos/auth.py``,
``marathon/auth.py``, ``chronos/auth.py``): pure functions, and the authentication
against a fake review client that answers as the API server would."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import pytest

from corral.chronos import auth as chronos_auth
from corral.client.basic_auth import (
    Access,
    Credentials,
    authenticate,
    basic_header,
    parse_authorization,
)
from corral.client.reviews import Reviewer
from corral.marathon import auth as marathon_auth
from corral.mesos import auth as mesos_auth


def _basic(raw: str) -> str:
    return "Basic " + base64.b64encode(raw.encode()).decode()


@pytest.mark.parametrize(
    ("header", "want"),
    [
        (_basic("alice:t0k"), Credentials("alice", "t0k")),
        (_basic("corral:marathon:t0k"), Credentials("corral:marathon", "t0k")),
        ("basic " + base64.b64encode(b"a:b").decode(), Credentials("a", "b")),
        ("Bearer abc.def", Credentials("", "abc.def")),
        ("token=abc", Credentials("", "abc")),
        (_basic("nocolon"), None),
        (_basic(":secret"), None),
        (_basic("user:"), None),
        ("Basic !!!notbase64", None),
        ("Digest x", None),
        ("", None),
    ],
    ids=["plain", "colon-in-user", "scheme-case", "bearer", "marathon-token", "no-colon",
         "no-user", "no-secret", "bad-base64", "other-scheme", "empty"],
)  # fmt: skip
def test_parse_authorization(header: str, want: Credentials | None) -> None:
    assert parse_authorization(header) == want


def test_basic_header_round_trips_a_principal_with_colons() -> None:
    assert parse_authorization(basic_header("system:serviceaccount:ns:sa", "jwt.a.b")) == (
        Credentials("system:serviceaccount:ns:sa", "jwt.a.b")
    )


class FakeAPI:
    """Answers TokenReviews for two tokens, as the API server would."""

    def __init__(self) -> None:
        self.reviews = 0

    async def request(self, method: str, path: str, **kw: Any) -> Any:
        self.reviews += 1
        token = kw["body"]["spec"]["token"]
        users = {"good": "alice", "other": "bob"}
        if token not in users:
            return {"status": {"authenticated": False}}
        return {"status": {"authenticated": True, "user": {"username": users[token]}}}


@pytest.mark.parametrize(
    ("header", "user"),
    [
        (basic_header("alice", "good"), "alice"),
        (basic_header("alice", "other"), None),  # bob's token, claimed by alice
        (basic_header("alice", "wrong"), None),
        ("Bearer good", "alice"),
        (None, None),
    ],
    ids=["match", "someone-elses-token", "bad-token", "bearer", "none"],
)
def test_authenticate_needs_the_token_of_the_principal(
    header: str | None, user: str | None
) -> None:
    async def go() -> str | None:
        got = await authenticate(Reviewer(FakeAPI()), header)
        return got.username if got else None

    assert asyncio.run(go()) == user


M = mesos_auth.GROUP


@pytest.mark.parametrize(
    ("call", "want"),
    [
        ({"type": "GET_HEALTH"}, []),
        ({"type": "GET_STATE"}, [Access("get", "state", M)]),
        ({"type": "GET_FRAMEWORKS"}, [Access("list", "frameworks", M)]),
        ({"type": "SUBSCRIBE"}, [Access("watch", "state", M)]),
        (
            {"type": "UPDATE_WEIGHTS", "update_weights": {"weight_infos": [
                {"role": "dev", "weight": 2}, {"role": "ops", "weight": 1}]}},
            [Access("update", "weights", M, "dev"), Access("update", "weights", M, "ops")],
        ),
        ({"type": "REMOVE_QUOTA", "remove_quota": {"role": "dev"}},
         [Access("update", "quotas", M, "dev")]),
        ({"type": "SET_QUOTA", "set_quota": {}}, [Access("update", "quotas", M)]),
        ({"type": "MARK_AGENT_GONE"}, [Access("create", "operations", M, "mark_agent_gone")]),
    ],
    ids=["health", "state", "frameworks", "subscribe", "weights", "remove-quota",
         "malformed-quota", "unknown"],
)  # fmt: skip
def test_mesos_operator_accesses(call: dict[str, Any], want: list[Access]) -> None:
    assert mesos_auth.operator_accesses(call) == want


def test_mesos_subscribe_needs_each_role_and_names_them_as_mesos() -> None:
    info = {"name": "x", "roles": ["prod", "dev"], "id": {"value": "F1"}}
    assert mesos_auth.subscribe_accesses(info) == [
        Access("create", "frameworks", M),
        Access("use", "roles", M, "prod"),
        Access("use", "roles", M, "dev"),
    ]
    assert mesos_auth.subscribe_accesses({"name": "x"})[1:] == [Access("use", "roles", M, "*")]
    assert mesos_auth.not_authorized_to_register(info) == (
        "Not authorized to register framework F1 with roles { dev, prod }"
    )


@pytest.mark.parametrize(
    ("path", "realm"),
    [
        ("/api/v1/scheduler", mesos_auth.FRAMEWORKS_REALM),
        ("/api/v1", mesos_auth.READWRITE_REALM),
        ("/master/state", mesos_auth.READONLY_REALM),
        ("/corral/top", mesos_auth.READONLY_REALM),
        ("/version", None),
        ("/health", None),
        ("/redirect", None),
    ],
)
def test_mesos_realms(path: str, realm: str | None) -> None:
    assert mesos_auth.realm_of(path) == realm


MA = marathon_auth.GROUP


@pytest.mark.parametrize(
    ("method", "path", "body_id", "want"),
    [
        ("GET", "/ping", "", None),
        ("GET", "/v2/apps", "", [Access("list", "apps", MA)]),
        ("POST", "/v2/apps", "web", [Access("create", "apps", MA, "web")]),
        ("GET", "/v2/apps//prod/web", "", [Access("get", "apps", MA, "prod/web")]),
        ("GET", "/v2/apps/web/versions/2020", "", [Access("get", "apps", MA, "web")]),
        ("PUT", "/v2/apps/web", "", [Access("update", "apps", MA, "web")]),
        ("POST", "/v2/apps/web/restart", "", [Access("update", "apps", MA, "web")]),
        ("DELETE", "/v2/apps/web/tasks/t1", "", [Access("update", "apps", MA, "web")]),
        ("DELETE", "/v2/apps/web", "", [Access("delete", "apps", MA, "web")]),
        ("PUT", "/v2/apps", "", [Access("update", "apps", MA)]),
        ("GET", "/v2/tasks", "", [Access("list", "tasks", MA)]),
        ("POST", "/v2/tasks/delete", "", [Access("delete", "tasks", MA)]),
        ("POST", "/v2/groups", "prod", [Access("create", "groups", MA, "prod")]),
        ("PUT", "/v2/groups/prod/versions/v1", "", [Access("update", "groups", MA, "prod")]),
        ("DELETE", "/v2/deployments/d1", "", [Access("delete", "deployments", MA, "d1")]),
        ("DELETE", "/v2/queue/web/delay", "", [Access("update", "apps", MA, "web")]),
        ("GET", "/v2/info", "", [Access("get", "info", MA)]),
        ("GET", "/v2/events", "", [Access("watch", "events", MA)]),
        ("GET", "/corral/why/prod/web", "", [Access("get", "apps", MA, "prod/web")]),
        ("GET", "/nowhere", "", []),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_marathon_accesses(method: str, path: str, body_id: str, want: Any) -> None:
    assert marathon_auth.accesses(method, path, body_id) == want


C = chronos_auth.GROUP


@pytest.mark.parametrize(
    ("method", "path", "want"),
    [
        ("GET", "/ping", None),
        ("GET", "/v1/scheduler/jobs", [Access("list", "jobs", C)]),
        ("GET", "/scheduler/jobs/search", [Access("list", "jobs", C)]),
        ("POST", "/v1/scheduler/iso8601", [Access("create", "jobs", C, "new")]),
        ("PUT", "/scheduler/dependency", [Access("create", "jobs", C, "new")]),
        ("GET", "/v1/scheduler/job/a", [Access("get", "jobs", C, "a")]),
        ("GET", "/v1/scheduler/job/stat/a", [Access("get", "jobs", C, "a")]),
        ("PUT", "/v1/scheduler/job/a", [Access("update", "jobs", C, "a")]),
        ("PUT", "/v1/scheduler/job/success/a", [Access("update", "jobs", C, "a")]),
        ("DELETE", "/v1/scheduler/task/kill/a", [Access("update", "jobs", C, "a")]),
        ("DELETE", "/v1/scheduler/job/a", [Access("delete", "jobs", C, "a")]),
        ("GET", "/v1/scheduler/graph/csv", [Access("list", "jobs", C)]),
        ("GET", "/metrics", [Access("get", "metrics", C)]),
        ("GET", "/corral/why/a", [Access("get", "jobs", C, "a")]),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_chronos_accesses(method: str, path: str, want: Any) -> None:
    assert chronos_auth.accesses(method, path, "new") == want


def test_chronos_upsert_of_an_existing_job_is_an_update() -> None:
    got = chronos_auth.accesses("POST", "/v1/scheduler/iso8601", "a", lambda n: n == "a")
    assert got == [Access("update", "jobs", C, "a")]
