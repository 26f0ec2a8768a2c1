"""The authenticator chain (``apiserver/authn.py``): token file, x509 subjects, bearer
parsing, audiences, TokenReview answers."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from corral.api import errors
from corral.apiserver import authn
from corral.apiserver.authn import Authenticator, InvalidToken, TokenFileError
from corral.apiserver.identity import ADMIN, UserInfo
from corral.util.bearer import bearer_token

AUTH = "system:authenticated"


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("t1,alice,1\n", {"t1": UserInfo("alice", (), "1")}),
        ('t2,bob,2,"dev,ops"\n', {"t2": UserInfo("bob", ("dev", "ops"), "2")}),
        ("t3,carol,3,admins,extra\n", {"t3": UserInfo("carol", ("admins",), "3")}),
        ("\nt1,a,1\n\n", {"t1": UserInfo("a", (), "1")}),
        (",nobody,0\nt1,a,1\n", {"t1": UserInfo("a", (), "1")}),
        ("t1,first,1\nt1,second,2\n", {"t1": UserInfo("second", (), "2")}),
        ("t1,a,1,\n", {"t1": UserInfo("a", ("",), "1")}),
    ],
    ids=["three-columns", "quoted-groups", "extra-columns", "blank-lines", "empty-token",
         "duplicate-later-wins", "empty-groups-as-go"],
)  # fmt: skip
def test_token_file_parses_as_upstream(text: str, want: dict[str, UserInfo]) -> None:
    assert authn.parse_token_file(text, "f.csv") == want


def test_token_file_with_two_columns_is_refused_with_upstreams_message() -> None:
    with pytest.raises(TokenFileError) as e:
        authn.parse_token_file("t1,alice\n", "/etc/tokens.csv")
    assert str(e.value) == (
        "token file '/etc/tokens.csv' must have at least 3 columns (token, user name, "
        "user uid), found 2"
    )


def test_token_file_duplicates_are_warned(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, "corral.apiserver.authn"):
        authn.parse_token_file("t,a,1\nt,b,2\n", "f")
    assert "duplicate token has been found in token file 'f', record number '2'" in caplog.text
    assert "t,a" not in caplog.text  # tokens are never logged


def _peer(*rdns: tuple[str, str]) -> dict[str, Any]:
    return {"subject": tuple((rdn,) for rdn in rdns)}


@pytest.mark.parametrize(
    ("peer", "want"),
    [
        (_peer(("commonName", "system:node:n1"), ("organizationName", "system:nodes")),
         UserInfo("system:node:n1", ("system:nodes", AUTH))),
        (_peer(("organizationName", "a"), ("organizationName", "b"), ("commonName", "jane")),
         UserInfo("jane", ("a", "b", AUTH))),
        (_peer(("commonName", "first"), ("commonName", "last")), UserInfo("last", (AUTH,))),
        (_peer(("countryName", "DE"), ("commonName", "x")), UserInfo("x", (AUTH,))),
        (_peer(("organizationName", "only-o")), None),
        ({}, None),
        (None, None),
    ],
    ids=["node", "groups-in-order", "last-cn-as-go", "other-attributes", "no-cn", "unverified",
         "no-certificate"],
)  # fmt: skip
def test_user_from_peer_certificate(peer: dict[str, Any] | None, want: UserInfo | None) -> None:
    assert authn.user_from_peercert(peer) == want


@pytest.mark.parametrize(
    ("header", "token"),
    [("Bearer abc", "abc"), ("bearer abc", "abc"), ("BEARER abc def", "abc"),
     ("Bearer  abc", ""), ("Basic dXNlcjpw", ""), ("Bearer", ""), ("abc", "")],
    ids=["plain", "lower-scheme", "third-part-ignored", "extra-space", "basic", "no-token",
         "no-scheme"],
)  # fmt: skip
def test_bearer_token_parsing(header: str, token: str) -> None:
    assert bearer_token(header) == token


def test_static_tokens_and_authenticated_group() -> None:
    chain = Authenticator({"admintok"}, {"t1": UserInfo("alice", ("dev",), "1")})
    assert chain.authenticate_token("admintok").user == ADMIN
    alice = chain.authenticate_token("t1")
    assert alice.user == UserInfo("alice", ("dev", AUTH), "1")
    assert alice.audiences == list(authn.API_AUDIENCES)
    # an audience the API server is not: a static token is audience-agnostic, refused
    assert chain.authenticate_token("t1", ["vault"]).user is None


def test_unknown_token_is_invalid_bearer_token() -> None:
    res = Authenticator({"admintok"}).authenticate_token("nope")
    assert (res.user, res.error) == (None, "invalid bearer token")


def test_token_authenticators_in_order_with_audiences_and_errors() -> None:
    seen: list[tuple[str, ...]] = []

    def aware(token: str) -> UserInfo | None:
        seen.append(authn.requested_audiences())
        if token == "jwt":
            authn.accept_audiences([a for a in authn.requested_audiences() if a == "vault"])
            return UserInfo("system:serviceaccount:ns:sa", ("system:serviceaccounts",))
        if token == "expired":
            raise InvalidToken("Token has expired.")
        return None

    def agnostic(token: str) -> UserInfo | None:
        if token == "expired":
            raise InvalidToken("token lookup failed")
        return UserInfo("system:bootstrap:abcdef", ()) if token == "boot" else None

    chain = Authenticator()
    chain.token_authenticators += [aware, agnostic]
    got = chain.authenticate_token("jwt", ["vault", "other"])
    assert got.user is not None and got.user.username == "system:serviceaccount:ns:sa"
    assert got.user.groups == ("system:serviceaccounts", AUTH)
    assert got.audiences == ["vault"]
    assert seen == [("vault", "other")]
    boot = chain.authenticate_token("boot")
    assert boot.user is not None and boot.audiences == list(authn.API_AUDIENCES)
    assert chain.authenticate_token("boot", ["vault"]).user is None  # agnostic: not for vault
    assert chain.authenticate_token("expired").error == (
        "[Token has expired., token lookup failed]"
    )


def test_successes_are_cached_for_a_while() -> None:
    now = [0.0]
    calls: list[str] = []

    def fn(token: str) -> UserInfo | None:
        calls.append(token)
        return UserInfo("u")

    chain = Authenticator(clock=lambda: now[0])
    chain.token_authenticators.append(fn)
    chain.authenticate_token("t")
    chain.authenticate_token("t")
    assert calls == ["t"]
    now[0] = authn.CACHE_TTL + 1
    chain.authenticate_token("t")
    assert calls == ["t", "t"]


def test_token_review_answers() -> None:
    chain = Authenticator({"admintok"}, {"t1": UserInfo("alice", ("dev",), "1")})
    ok = authn.token_review({"spec": {"token": "t1"}}, chain)
    assert ok["status"] == {
        "authenticated": True,
        "user": {"username": "alice", "uid": "1", "groups": ["dev", AUTH]},
        "audiences": list(authn.API_AUDIENCES),
    }
    assert ok["spec"] == {"token": "t1"}
    assert ok["metadata"] == {"creationTimestamp": None}
    bad = authn.token_review({"spec": {"token": "x"}}, chain)
    assert bad["status"] == {"user": {}, "error": "invalid bearer token"}
    with pytest.raises(errors.StatusError) as e:
        authn.token_review({"spec": {}}, chain)
    assert (e.value.code, e.value.message) == (
        400,
        "token is required for TokenReview in authentication",
    )


class _Tls:
    """A transport as aiohttp hands it over TLS: the peer certificate's dict, cached per
    connection by the event loop."""

    def __init__(self, peercert: dict[str, Any] | None) -> None:
        self.peercert = peercert

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.peercert if name == "peercert" else default

    def is_closing(self) -> bool:
        return False


def test_certificate_users_follow_each_requests_subject() -> None:
    from aiohttp.test_utils import make_mocked_request

    a = Authenticator(["admin-token"])

    def who(peer: dict[str, Any] | None, headers: dict[str, str] | None = None) -> UserInfo:
        req = make_mocked_request("GET", "/api/v1/pods", headers=headers, transport=_Tls(peer))
        return a.authenticate(req)

    sched = _peer(("commonName", "system:kube-scheduler"))
    node = _peer(("organizationName", "system:nodes"), ("commonName", "system:node:n1"))
    no_cn = _peer(("organizationName", "system:nodes"))
    for _ in range(2):  # the second round answers from what the first remembered
        assert who(sched) == UserInfo("system:kube-scheduler", (AUTH,))
        assert who(node) == UserInfo("system:node:n1", ("system:nodes", AUTH))
        assert who(no_cn) == authn.ANONYMOUS_USER
        assert who(no_cn, {"Authorization": "Bearer admin-token"}) == ADMIN
        assert who(None, {"Authorization": "Bearer admin-token"}) == ADMIN
        assert who({}) == authn.ANONYMOUS_USER
    with pytest.raises(errors.StatusError) as e:
        who(no_cn, {"Authorization": "Bearer wrong"})
    assert e.value.code == 401
