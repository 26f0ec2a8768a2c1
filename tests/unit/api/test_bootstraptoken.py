"""Bootstrap token format, Secrets, authentication decisions and detached JWS."""

from __future__ import annotations

import base64
import datetime as dt

import pytest

from corral.api import bootstraptoken as bt

NOW = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
TOKEN = "abcdef.0123456789abcdef"


def _secret(**changes: object) -> dict[str, object]:
    s = bt.token_secret(TOKEN, ttl=dt.timedelta(hours=1), now=NOW)
    data = bt.secret_data(s)
    for k, v in changes.items():
        key = k.replace("_", "-")
        if v is None:
            data.pop(key, None)
        else:
            data[key] = str(v)
    s["data"] = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
    return s


@pytest.mark.parametrize(
    ("token", "ok"),
    [(TOKEN, True), ("abcdef.0123456789ABCDEF", False), ("abcde.0123456789abcdef", False),
     ("abcdef0123456789abcdef", False), ("", False)],
    ids=["valid", "upper", "short-id", "no-dot", "empty"],
)  # fmt: skip
def test_parse_token(token: str, ok: bool) -> None:
    assert (bt.parse_token(token) is not None) is ok


def test_generated_tokens_parse() -> None:
    assert bt.parse_token(bt.generate_token()) is not None


def test_secret_shape() -> None:
    s = bt.token_secret(TOKEN, ttl=dt.timedelta(hours=24), now=NOW, description="d")
    assert s["metadata"] == {"name": "bootstrap-token-abcdef", "namespace": "kube-system"}
    assert s["type"] == "bootstrap.kubernetes.io/token"
    data = bt.secret_data(s)
    assert data["token-id"] == "abcdef" and data["token-secret"] == "0123456789abcdef"
    assert data["expiration"] == "2025-01-02T00:00:00Z"
    assert data["usage-bootstrap-authentication"] == data["usage-bootstrap-signing"] == "true"
    assert data["auth-extra-groups"] == bt.DEFAULT_EXTRA_GROUP


def test_bad_group_refused() -> None:
    with pytest.raises(ValueError, match="not a valid bootstrap group"):
        bt.token_secret(TOKEN, ttl=None, now=NOW, groups=["system:masters"])


@pytest.mark.parametrize(
    ("changes", "token", "when", "user"),
    [
        ({}, TOKEN, NOW, ("system:bootstrap:abcdef", ["system:bootstrappers", bt.DEFAULT_EXTRA_GROUP])),
        ({}, "abcdef.0123456789abcdee", NOW, None),
        ({}, TOKEN, NOW + dt.timedelta(hours=2), None),
        ({"expiration": None}, TOKEN, NOW + dt.timedelta(days=999), ("system:bootstrap:abcdef", ["system:bootstrappers", bt.DEFAULT_EXTRA_GROUP])),
        ({"expiration": "garbage"}, TOKEN, NOW, None),
        ({"expiration": "2030-01-01T00:00:00"}, TOKEN, NOW, None),
        ({"usage_bootstrap_authentication": None}, TOKEN, NOW, None),
        ({"token_id": "zzzzzz"}, TOKEN, NOW, None),
        ({"auth_extra_groups": "system:masters"}, TOKEN, NOW, None),
    ],
    ids=["valid", "wrong-secret", "expired", "no-expiry", "bad-expiry", "naive-expiry", "no-auth-usage", "id-mismatch", "bad-group"],
)  # fmt: skip
def test_authenticated_user(
    changes: dict[str, object], token: str, when: dt.datetime, user: object
) -> None:
    found = bt.authenticated_user(_secret(**changes), token, when)
    assert (None if found is None else (found[0], found[1])) == user


def test_wrong_type_and_deleting_refused() -> None:
    s = _secret()
    s["type"] = "Opaque"
    assert bt.authenticated_user(s, TOKEN, NOW) is None
    s = _secret()
    s["metadata"]["deletionTimestamp"] = "2025-01-01T00:00:00Z"  # type: ignore[index]
    assert bt.authenticated_user(s, TOKEN, NOW) is None


def test_jws_round_trip_and_tamper() -> None:
    jws = bt.sign_detached("hello", "abcdef", "0123456789abcdef")
    _header, payload, _sig = jws.split(".")
    assert payload == ""
    assert bt.verify_detached("hello", jws, "abcdef", "0123456789abcdef")
    assert not bt.verify_detached("hello!", jws, "abcdef", "0123456789abcdef")
    assert not bt.verify_detached("hello", jws, "abcdef", "0123456789abcdee")
    assert not bt.verify_detached("hello", jws, "zzzzzz", "0123456789abcdef")  # kid differs
    assert not bt.verify_detached("hello", "x.y.z", "abcdef", "0123456789abcdef")


def test_jws_matches_rfc7515_hs256() -> None:
    # HS256 over BASE64URL(header) "." BASE64URL(payload), key = the token secret
    import hashlib
    import hmac

    jws = bt.sign_detached("content", "abcdef", "0123456789abcdef")
    header = jws.split(".")[0]
    payload = base64.urlsafe_b64encode(b"content").rstrip(b"=").decode()
    mac = hmac.new(b"0123456789abcdef", f"{header}.{payload}".encode(), hashlib.sha256).digest()
    assert jws.split(".")[2] == base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def test_signing_tokens() -> None:
    expired = bt.token_secret(
        "zzzzzz.0123456789abcdef", ttl=dt.timedelta(seconds=1), now=NOW - dt.timedelta(hours=1)
    )
    auth_only = bt.token_secret(
        "yyyyyy.0123456789abcdef", ttl=None, now=NOW, usages=("authentication",)
    )
    assert bt.signing_tokens([_secret(), expired, auth_only], NOW) == {"abcdef": "0123456789abcdef"}
