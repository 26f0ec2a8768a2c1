"""The agent's service-account token manager (the kubelet's refresh rule, its cache, the
TokenRequest it posts) and the projected volume that holds the token."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from corral.agent.objects import VolumeError
from corral.agent.sa_token import Cached, TokenError, TokenManager, requires_refresh
from corral.agent.volumes import PROJECTED, VolumeManager
from corral.testing.clock import FakeClock
from corral.util.clock import rfc3339

Obj = dict[str, Any]
NOW = 1_700_000_000.0


class TokenAPI:
    """Answers TokenRequests as the API server does (a new token each time), or fails."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.requests: list[tuple[str, str, Obj]] = []
        self.fail: Exception | None = None

    async def __call__(self, namespace: str, name: str, body: Obj) -> Obj:
        if self.fail is not None:
            raise self.fail
        self.requests.append((namespace, name, body))
        secs = body["spec"]["expirationSeconds"]
        return {
            "spec": {**body["spec"], "audiences": body["spec"].get("audiences") or ["api"]},
            "status": {
                "token": f"token-{len(self.requests)}",
                "expirationTimestamp": rfc3339(self.clock.now() + secs),
            },
        }


class Lookup:
    async def configmap(self, namespace: str, name: str) -> Obj | None:
        return {"data": {"ca.crt": "CA"}} if name == "kube-root-ca.crt" else None

    async def secret(self, namespace: str, name: str) -> Obj | None:
        return None


def pod(uid: str = "u1", sa: str = "robot") -> Obj:
    return {
        "metadata": {"name": "p", "namespace": "team", "uid": uid},
        "spec": {"serviceAccountName": sa, "containers": [{"name": "c"}]},
    }


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


@pytest.fixture
def api(clock: FakeClock) -> TokenAPI:
    return TokenAPI(clock)


@pytest.fixture
def manager(api: TokenAPI, clock: FakeClock) -> TokenManager:
    return TokenManager(api, clock, jitter=lambda: 0.0)


@pytest.mark.parametrize(
    ("age", "seconds", "want"),
    [
        (0, 3600, False),
        (2879, 3600, False),
        (2881, 3600, True),  # past 80% of an hour
        (86399, 10 * 86400, False),
        (86401, 10 * 86400, True),  # older than 24 h
        (-5, 3600, True),  # issued in the future: the clock went back
    ],
    ids=["fresh", "before-80", "after-80", "before-24h", "after-24h", "future"],
)
def test_requires_refresh(age: float, seconds: int, want: bool) -> None:
    t = Cached("t", NOW + seconds, seconds, "u")
    assert requires_refresh(t, NOW + age, 0.0) is want


def test_jitter_refreshes_earlier() -> None:
    t = Cached("t", NOW + 3600, 3600, "u")
    assert not requires_refresh(t, NOW + 2875, 0.0)
    assert requires_refresh(t, NOW + 2875, 10.0)


async def test_the_request_is_bound_to_the_pod(manager: TokenManager, api: TokenAPI) -> None:
    token = await manager.pod_token(pod(), {"audience": "vault", "expirationSeconds": 7200})
    assert token == "token-1"
    ns, name, body = api.requests[0]
    assert (ns, name) == ("team", "robot")
    assert body["kind"] == "TokenRequest"
    assert body["spec"] == {
        "audiences": ["vault"],
        "expirationSeconds": 7200,
        "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": "p", "uid": "u1"},
    }
    await manager.pod_token(pod(), {"expirationSeconds": 3607})
    assert "audiences" not in api.requests[1][2]["spec"]  # the API server's default


async def test_cached_then_refreshed_at_80_percent(
    manager: TokenManager, api: TokenAPI, clock: FakeClock
) -> None:
    src = {"expirationSeconds": 3600}
    assert await manager.pod_token(pod(), src) == "token-1"
    clock.advance(2800)
    assert await manager.pod_token(pod(), src) == "token-1"
    assert len(api.requests) == 1
    clock.advance(100)
    assert await manager.pod_token(pod(), src) == "token-2"


async def test_a_failed_refresh_keeps_a_valid_token_then_fails(
    manager: TokenManager, api: TokenAPI, clock: FakeClock
) -> None:
    src = {"expirationSeconds": 3600}
    await manager.pod_token(pod(), src)
    api.fail = RuntimeError("connection refused")
    clock.advance(3000)
    assert await manager.pod_token(pod(), src) == "token-1"
    clock.advance(700)
    with pytest.raises(TokenError):  # expired: upstream's "expired and refresh failed"
        await manager.pod_token(pod(), src)


async def test_first_fetch_failure_is_the_kubelets_message(
    manager: TokenManager, api: TokenAPI
) -> None:
    api.fail = RuntimeError('serviceaccounts "robot" not found')
    with pytest.raises(TokenError, match=r'^failed to fetch token: serviceaccounts "robot"'):
        await manager.pod_token(pod(), {})


async def test_forgotten_with_the_pod(manager: TokenManager, api: TokenAPI) -> None:
    await manager.pod_token(pod("u1"), {})
    await manager.pod_token(pod("u2"), {})
    assert len(manager) == 2
    manager.forget_pod("u1")
    assert len(manager) == 1
    await manager.pod_token(pod("u1"), {})
    assert len(api.requests) == 3


def _projected_pod() -> Obj:
    p = pod()
    p["spec"]["volumes"] = [
        {
            "name": "kube-api-access-x",
            "projected": {
                "defaultMode": 0o644,
                "sources": [
                    {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                    {
                        "configMap": {
                            "name": "kube-root-ca.crt",
                            "items": [{"key": "ca.crt", "path": "ca.crt"}],
                        }
                    },
                ],
            },
        }
    ]
    return p


async def test_projected_volume_holds_the_token_and_is_refreshed(
    tmp_path: Path, manager: TokenManager, api: TokenAPI, clock: FakeClock
) -> None:
    vols = VolumeManager(tmp_path, Lookup(), False, tokens=manager)
    p = _projected_pod()
    paths = await vols.setup(p)
    target = paths["kube-api-access-x"]
    assert target == vols.volume_dir(PROJECTED, "kube-api-access-x")
    assert (target / "token").read_text() == "token-1"
    assert (target / "ca.crt").read_text() == "CA"
    assert (target / "token").stat().st_mode & 0o777 == 0o644
    assert not await vols.refresh(p)  # cached: nothing rewritten
    clock.advance(3000)
    assert await vols.refresh(p)  # past 80% of 3607 s: a new token, written atomically
    assert (target / "token").read_text() == "token-2"
    assert (target / "..data").is_symlink()


async def test_projected_token_failure_is_a_failed_mount(
    tmp_path: Path, manager: TokenManager, api: TokenAPI
) -> None:
    api.fail = RuntimeError("forbidden")
    vols = VolumeManager(tmp_path, Lookup(), False, tokens=manager)
    with pytest.raises(VolumeError) as e:
        await vols.setup(_projected_pod())
    assert e.value.event_message == (
        'MountVolume.SetUp failed for volume "kube-api-access-x" : failed to fetch token: forbidden'
    )
