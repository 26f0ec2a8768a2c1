"""Service-account tokens: claims, signing and the authenticator's checks (time,
audience, bound objects), and the TokenRequest answers, over a real registry."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from corral.api import errors
from corral.apiserver.authn import InvalidToken
from corral.apiserver.identity import UserInfo
from corral.apiserver.sa_tokens import (
    ISSUER,
    KEY_FILE,
    ServiceAccountTokens,
    _unverified_claims,
    claims,
)
from corral.apiserver.store import DeleteOptions, Registry, WriteOptions
from corral.apiserver.token_request import TokenRequests
from corral.testing.clock import FakeClock

Obj = dict[str, Any]
BOB = UserInfo("bob", ("system:authenticated",))


@pytest.fixture
def registry_clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def registry(registry: Registry) -> Registry:
    sa = registry.by_gvr[("", "v1", "serviceaccounts")]
    await registry.create(sa, "default", {"metadata": {"name": "robot"}}, WriteOptions())
    return registry


def _clock(reg: Registry) -> FakeClock:
    assert isinstance(reg.clock, FakeClock)
    return reg.clock


def _obj(reg: Registry, plural: str, name: str, ns: str = "default") -> Obj:
    return reg.get(reg.by_gvr[("", "v1", plural)], ns, name).obj()


async def _pod(reg: Registry, name: str = "p", sa: str = "robot") -> Obj:
    """A pod bound to node n1 (so that its deletion is graceful)."""
    pods = reg.by_gvr[("", "v1", "pods")]
    containers = [{"name": "c", "image": "busybox"}]
    pod = {
        "metadata": {"name": name},
        "spec": {"serviceAccountName": sa, "nodeName": "n1", "containers": containers},
    }
    res = await reg.create(pods, "default", pod, WriteOptions())
    return res.obj


def test_claims_as_upstream() -> None:
    sa = {"metadata": {"name": "robot", "namespace": "ns", "uid": "u-sa"}}
    pod = {"metadata": {"name": "p", "uid": "u-pod"}}
    node = {"metadata": {"name": "n1", "uid": "u-node"}}
    c = claims(sa, now=1000, expiration=3600, audiences=["a"], pod=pod, node=node, jti="j")
    assert c == {
        "aud": ["a"],
        "exp": 4600,
        "iat": 1000,
        "iss": ISSUER,
        "kubernetes.io": {
            "namespace": "ns",
            "serviceaccount": {"name": "robot", "uid": "u-sa"},
            "pod": {"name": "p", "uid": "u-pod"},
            "node": {"name": "n1", "uid": "u-node"},
        },
        "jti": "j",
        "nbf": 1000,
        "sub": "system:serviceaccount:ns:robot",
    }
    extended = claims(sa, now=1000, expiration=10, audiences=[], pod=pod, warn_after=3607)
    assert extended["kubernetes.io"]["warnafter"] == 4607
    with pytest.raises(ValueError, match="only be bound to one object type"):
        claims(sa, now=0, expiration=1, audiences=[], pod=pod, secret=pod)


async def test_token_authenticates_as_its_service_account(
    registry: Registry, tmp_path: Path
) -> None:
    tokens = ServiceAccountTokens(registry, tmp_path / "pki", registry.clock)
    sa = _obj(registry, "serviceaccounts", "robot")
    pod = await _pod(registry)
    issued = tokens.issue(sa, 3600, [ISSUER], pod=pod, node={"metadata": {"name": "n1"}})
    assert (tmp_path / "pki" / KEY_FILE).stat().st_mode & 0o777 == 0o600
    found = tokens.check(issued.token)
    assert found is not None
    user, auds = found
    jti = _unverified_claims(issued.token)["jti"]  # type: ignore[index]
    assert user == UserInfo(
        "system:serviceaccount:default:robot",
        ("system:serviceaccounts", "system:serviceaccounts:default", "system:authenticated"),
        sa["metadata"]["uid"],
        {
            "authentication.kubernetes.io/pod-name": ["p"],
            "authentication.kubernetes.io/pod-uid": [pod["metadata"]["uid"]],
            "authentication.kubernetes.io/credential-id": [f"JTI={jti}"],
            "authentication.kubernetes.io/node-name": ["n1"],
        },
    )
    assert auds == [ISSUER]
    # a second issuer over the same data dir uses the same key
    again = ServiceAccountTokens(registry, tmp_path / "pki", registry.clock)
    assert again.check(issued.token) is not None


async def test_time_audience_signature_and_issuer(registry: Registry, tmp_path: Path) -> None:
    clock = _clock(registry)
    tokens = ServiceAccountTokens(registry, tmp_path / "pki", clock)
    sa = _obj(registry, "serviceaccounts", "robot")
    issued = tokens.issue(sa, 600, ["api", ISSUER])
    assert tokens.check(issued.token, ["api"]) is not None
    with pytest.raises(InvalidToken, match=r'token audiences \["api" "https://kubernetes'):
        tokens.check(issued.token, ["other"])
    clock.advance(600 + 60)  # the leeway
    assert tokens.check(issued.token) is not None
    clock.advance(1)
    with pytest.raises(InvalidToken, match="service account token has expired"):
        tokens.check(issued.token)
    future = tokens.issue(sa, 600, [ISSUER], now=int(clock.now()) + 120)
    with pytest.raises(InvalidToken, match="not valid yet"):
        tokens.check(future.token)
    # another key (another data dir) signed it: ours by issuer, but refused
    other = ServiceAccountTokens(registry, tmp_path / "other", clock)
    forged = other.issue(sa, 600, [ISSUER])
    with pytest.raises(InvalidToken, match="invalid signature"):
        tokens.check(forged.token)
    foreign = ServiceAccountTokens(registry, tmp_path / "pki", clock, issuer="https://elsewhere")
    assert tokens.check(foreign.issue(sa, 600, ["x"]).token) is None
    assert tokens.check("not-a-jwt") is None


async def test_bound_objects_must_still_exist(registry: Registry, tmp_path: Path) -> None:
    clock = _clock(registry)
    tokens = ServiceAccountTokens(registry, tmp_path / "pki", clock)
    sa_info = registry.by_gvr[("", "v1", "serviceaccounts")]
    pods = registry.by_gvr[("", "v1", "pods")]
    sa = _obj(registry, "serviceaccounts", "robot")
    pod = await _pod(registry)
    issued = tokens.issue(sa, 3600, [ISSUER], pod=pod)
    # graceful deletion: valid until the deletion time plus the leeway has passed
    await registry.delete(pods, "default", "p", DeleteOptions(grace_period=30))
    assert tokens.check(issued.token) is not None
    clock.advance(30 + 61)
    with pytest.raises(InvalidToken, match="pod default/p has been deleted"):
        tokens.check(issued.token)
    await registry.delete(pods, "default", "p", DeleteOptions(grace_period=0))
    with pytest.raises(InvalidToken, match='pods "p" not found'):
        tokens.check(issued.token)
    pod2 = await _pod(registry)  # same name, new uid
    with pytest.raises(InvalidToken, match=r"pod UID .* does not match service account pod ref"):
        tokens.check(issued.token)
    plain = tokens.issue(sa, 3600, [ISSUER], pod=pod2)
    await registry.delete(sa_info, "default", "robot", DeleteOptions())
    await registry.create(sa_info, "default", {"metadata": {"name": "robot"}}, WriteOptions())
    with pytest.raises(InvalidToken, match=r"service account UID \(.*\) does not match claim"):
        tokens.check(plain.token)


async def test_token_request_answers(registry: Registry, tmp_path: Path) -> None:
    tokens = ServiceAccountTokens(registry, tmp_path / "pki", registry.clock, max_expiration=0)
    tr = TokenRequests(registry, tokens)
    info = registry.by_gvr[("", "v1", "serviceaccounts")]
    opts = WriteOptions(user=BOB)
    now = int(registry.clock.now())

    out, warnings = tr.answer(info, "default", "robot", {"spec": {}}, opts)
    assert out["spec"] == {"expirationSeconds": 3600, "audiences": [ISSUER]}
    assert out["metadata"]["name"] == "robot" and not warnings
    c = _unverified_claims(out["status"]["token"])
    assert c is not None and c["exp"] == now + 3600

    def refused(body: Obj, name: str = "robot") -> errors.StatusError:
        with pytest.raises(errors.StatusError) as e:
            tr.answer(info, "default", name, body, opts)
        return e.value

    e = refused({"spec": {"expirationSeconds": 0}})
    assert e.code == 422 and e.message == (
        'TokenRequest.authentication.k8s.io "" is invalid: spec.expirationSeconds: '
        "Invalid value: 0: may not specify a duration less than 10 minutes"
    )
    e = refused({"spec": {"expirationSeconds": (1 << 32) + 1}})
    assert "may not specify a duration larger than 2^32 seconds" in e.message
    e = refused({"metadata": {"name": "default"}, "spec": {}})
    assert e.message == (
        'TokenRequest.authentication.k8s.io "robot" is invalid: metadata.name: '
        'Invalid value: "default": must match the service account name if specified'
    )
    assert refused({"spec": {}}, "ghost").message == 'serviceaccounts "ghost" not found'
    e = refused({"spec": {"boundObjectRef": {"kind": "Deployment", "apiVersion": "apps/v1"}}})
    assert e.code == 400
    assert e.message == "cannot bind token to object of type apps/v1, Kind=Deployment"
    ref = {"kind": "Pod", "apiVersion": "v1", "name": "p"}
    assert refused({"spec": {"boundObjectRef": ref}}).message == 'pods "p" not found'
    pod = await _pod(registry, sa="other")
    e = refused({"spec": {"boundObjectRef": ref}})
    assert e.message == (
        'cannot bind token for serviceaccount "robot" to pod running with different '
        "serviceaccount name."
    )
    pods = registry.by_gvr[("", "v1", "pods")]
    await registry.delete(pods, "default", "p", DeleteOptions(grace_period=0))
    pod = await _pod(registry)
    e = refused({"spec": {"boundObjectRef": {**ref, "uid": "nope"}}})
    assert e.code == 409 and e.message == (
        'Operation cannot be fulfilled on Pod "p": the UID in the bound object reference '
        "(nope) does not match the UID in record. The object might have been deleted and "
        "then recreated"
    )
    # the admission volume's 3607 s token lives a year, and warns after 3607 s
    body = {
        "spec": {
            "expirationSeconds": 3607,
            "boundObjectRef": {**ref, "uid": pod["metadata"]["uid"]},
        }
    }
    out, _ = tr.answer(info, "default", "robot", body, opts)
    c = _unverified_claims(out["status"]["token"])
    assert c is not None
    assert c["exp"] == now + 365 * 24 * 3600
    assert c["kubernetes.io"]["warnafter"] == now + 3607
    assert c["kubernetes.io"]["pod"]["uid"] == pod["metadata"]["uid"]
    # a server maximum shortens the request with a warning
    tokens.max_expiration = 1200
    out, warnings = tr.answer(info, "default", "robot", {"spec": {"expirationSeconds": 7200}}, opts)
    assert warnings == ["requested expiration of 7200 seconds shortened to 1200 seconds"]
    assert out["spec"]["expirationSeconds"] == 1200
