"""Authentication: who a request comes from, as upstream's authenticator chain decides.

``APIApp.authenticate`` asks ``Authenticator.authenticate(request)`` once per request,
before impersonation and authorization. The chain, in upstream's order:

1. a client certificate: the server's TLS context requests one (``CERT_OPTIONAL``) and
   OpenSSL verifies it against the cluster CA during the handshake (a certificate that
   does not verify fails the handshake); the subject's CN is the user, each O a group;
2. a bearer token (``Authorization: Bearer T``, the scheme case-insensitive): the admin
   token and the static token file (``--token-auth-file``, upstream's CSV
   ``token,user,uid,"group1,group2"``), then every registered ``token_authenticators``
   function (ServiceAccount JWTs, bootstrap tokens) in order;
3. nothing recognised: ``system:anonymous`` in ``system:unauthenticated``; a bearer token
   nobody accepts is 401 instead (a bad credential is never anonymous).

Every authenticated user also gets ``system:authenticated`` (upstream's group adder).

Audiences, as upstream: a request is authenticated for the API server's audiences
(``API_AUDIENCES``); a TokenReview for its ``spec.audiences`` (or those). While a token
authenticator runs, ``requested_audiences()`` says which; an audience-aware one (the
ServiceAccount JWTs) checks the token's ``aud`` against them and reports the ones it
accepted with ``accept_audiences``. One that never calls it is audience-agnostic: it
counts only when the requested audiences include the API server's (upstream's
``WrapAudienceAgnosticToken``). A function may raise ``InvalidToken`` to say why it
refused a token it recognised: the message is a TokenReview's ``status.error``.

The admin token costs one SHA-256 and one dict lookup; results of the registered token
authenticators are cached for ``CACHE_TTL`` seconds, as upstream's token cache.
"""

from __future__ import annotations

import contextvars
import csv
import hashlib
import io
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from corral.api import errors
from corral.apiserver.identity import (
    ADMIN,
    ANONYMOUS_USER,
    AUTHENTICATED,
    UNAUTHENTICATED,
    UserInfo,
)
from corral.util.bearer import bearer_token, peer_subject

log = logging.getLogger("corral.apiserver.authn")

Obj = dict[str, Any]

#: a token authenticator: the user behind a bearer token, or None (not its kind of token,
#: or refused); may raise ``InvalidToken``
TokenAuthenticator = Callable[[str], UserInfo | None]

#: the API server's own audiences (upstream's ``--api-audiences``, defaulting to the
#: ServiceAccount issuer)
API_AUDIENCES: tuple[str, ...] = ("https://kubernetes.default.svc.cluster.local",)
CACHE_TTL = 10.0
CACHE_MAX = 4096
#: client-certificate subjects whose user is remembered before the memo starts over
SUBJECTS_MAX = 4096
INVALID_BEARER_TOKEN = "invalid bearer token"

_requested: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar(
    "requested_audiences", default=API_AUDIENCES
)
_accepted: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar(
    "accepted_audiences", default=None
)


class InvalidToken(Exception):
    """Raised by a token authenticator for a token of its kind that it refuses (expired,
    bad signature, bound object gone): the message is shown in a TokenReview."""


class TokenFileError(ValueError):
    """A ``--token-auth-file`` that cannot be read (message as upstream's)."""


def requested_audiences() -> tuple[str, ...]:
    """The audiences the token being authenticated must be meant for (for use inside a
    token authenticator)."""
    return _requested.get()


def accept_audiences(audiences: Iterable[str]) -> None:
    """An audience-aware token authenticator's report of the requested audiences the
    token is meant for (call it before returning the user)."""
    _accepted.set(list(audiences))


def with_authenticated(user: UserInfo) -> UserInfo:
    """``user`` with ``system:authenticated`` added, unless it already has it or
    ``system:unauthenticated`` (upstream's ``AuthenticatedGroupAdder``)."""
    if AUTHENTICATED in user.groups or UNAUTHENTICATED in user.groups:
        return user
    return UserInfo(user.username, (*user.groups, AUTHENTICATED), user.uid, user.extra)


# --- the static token file --------------------------------------------------------------


def parse_token_file(text: str, path: str) -> dict[str, UserInfo]:
    """Upstream's ``tokenfile.NewCSV``: records ``token,user,uid[,"g1,g2"]``; fewer than
    three columns is an error, an empty token is skipped, a later duplicate wins."""
    tokens: dict[str, UserInfo] = {}
    number = 0
    for record in csv.reader(io.StringIO(text)):
        if not record:
            continue  # Go's csv reader skips empty lines
        if len(record) < 3:
            raise TokenFileError(
                f"token file '{path}' must have at least 3 columns (token, user name, "
                f"user uid), found {len(record)}"
            )
        number += 1
        if record[0] == "":
            log.warning("empty token has been found in token file '%s', record number '%d'",
                        path, number)  # fmt: skip
            continue
        if record[0] in tokens:
            log.warning("duplicate token has been found in token file '%s', record number '%d'",
                        path, number)  # fmt: skip
        groups = tuple(record[3].split(",")) if len(record) >= 4 else ()
        tokens[record[0]] = UserInfo(record[1], groups, record[2])
    return tokens


def load_token_file(path: Path) -> dict[str, UserInfo]:
    """``parse_token_file`` of ``path``; ``TokenFileError`` when unreadable."""
    try:
        text = path.read_text()
    except OSError as e:
        raise TokenFileError(f"open {path}: {e.strerror or e}") from None
    except UnicodeDecodeError as e:
        raise TokenFileError(f"token file '{path}': {e}") from None
    return parse_token_file(text, str(path))


# --- client certificates ----------------------------------------------------------------


def user_from_peercert(peercert: Obj | None) -> UserInfo | None:
    """The user of a verified peer certificate (``util.bearer.peer_subject``); None
    without a CN."""
    cn, orgs = peer_subject(peercert)
    if not cn:
        return None
    return with_authenticated(UserInfo(cn, tuple(orgs)))


def _key(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


@dataclass
class TokenResult:
    """The answer for one token: the user (None: not authenticated), the audiences it
    was accepted for, and why it was refused."""

    user: UserInfo | None
    audiences: list[str] = field(default_factory=list)
    error: str = ""


class Authenticator:
    """The authenticator chain of one API server (module docstring)."""

    def __init__(
        self,
        admin_tokens: Iterable[str] = (),
        token_file: dict[str, UserInfo] | None = None,
        *,
        api_audiences: Sequence[str] = API_AUDIENCES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api_audiences = tuple(api_audiences)
        #: static tokens by their SHA-256 (a lookup leaks nothing about the token)
        self._static: dict[bytes, UserInfo] = {}
        for token, user in (token_file or {}).items():
            self._static[_key(token)] = with_authenticated(user)
        for token in admin_tokens:
            self._static[_key(token)] = ADMIN
        #: ServiceAccount JWTs, bootstrap tokens: tried in order after the static ones
        self.token_authenticators: list[TokenAuthenticator] = []
        self._clock = clock
        self._cache: dict[tuple[bytes, tuple[str, ...]], tuple[float, TokenResult]] = {}
        #: a verified certificate's ``subject`` (as ``getpeercert`` gives it, a tuple of
        #: RDNs) -> its user: the user depends on the subject alone, and the components
        #: send every request with one of a few certificates
        self._subjects: dict[object, UserInfo | None] = {}

    def _cert_user(self, peercert: Obj | None) -> UserInfo | None:
        """``user_from_peercert``, remembered by subject."""
        if not peercert:
            return None
        subject = peercert.get("subject")
        try:
            return self._subjects[subject]
        except KeyError:
            pass
        except TypeError:  # not hashable: not getpeercert's shape, never remembered
            return user_from_peercert(peercert)
        user = user_from_peercert(peercert)
        if len(self._subjects) >= SUBJECTS_MAX:
            self._subjects.clear()
        self._subjects[subject] = user
        return user

    def authenticate(self, request: web.Request) -> UserInfo:
        """Who sent ``request`` (before impersonation); 401 for a bearer token nobody
        accepts."""
        transport = request.transport
        if transport is not None:
            user = self._cert_user(transport.get_extra_info("peercert"))
            if user is not None:
                return user
        auth = request.headers.get("Authorization")
        if not auth:
            return ANONYMOUS_USER
        token = bearer_token(auth)
        if not token:
            return ANONYMOUS_USER
        static = self._static.get(_key(token))
        if static is not None:
            return static
        result = self.authenticate_token(token)
        if result.user is None:
            raise errors.unauthorized()
        return result.user

    def authenticate_token(self, token: str, audiences: Sequence[str] = ()) -> TokenResult:
        """The chain's answer for a bearer token meant for ``audiences`` (default: the API
        server's), as a TokenReview gives it."""
        requested = tuple(audiences) or self.api_audiences
        implicit = [a for a in self.api_audiences if a in requested]
        key = _key(token)
        static = self._static.get(key)
        if static is not None:
            return TokenResult(static, implicit) if implicit else TokenResult(None)
        now = self._clock()
        hit = self._cache.get((key, requested))
        if hit is not None and hit[0] > now:
            return hit[1]
        result = self._run_token_authenticators(token, requested, implicit)
        if result.user is not None:
            if len(self._cache) >= CACHE_MAX:
                self._cache = {k: v for k, v in self._cache.items() if v[0] > now}
                if len(self._cache) >= CACHE_MAX:
                    self._cache.clear()
            self._cache[(key, requested)] = (now + CACHE_TTL, result)
        return result

    def _run_token_authenticators(
        self, token: str, requested: tuple[str, ...], implicit: list[str]
    ) -> TokenResult:
        errs: list[str] = []
        for fn in self.token_authenticators:
            req_token = _requested.set(requested)
            acc_token = _accepted.set(None)
            try:
                user = fn(token)
                accepted = _accepted.get()
            except InvalidToken as e:
                errs.append(str(e))
                user, accepted = None, None  # the next authenticator (below)
            finally:
                _accepted.reset(acc_token)
                _requested.reset(req_token)
            if user is None:
                continue
            if accepted is None:  # audience-agnostic: only for the API server's audiences
                if not implicit:
                    continue
                accepted = implicit
            return TokenResult(with_authenticated(user), accepted)
        if not errs:
            return TokenResult(None, error=INVALID_BEARER_TOKEN)
        return TokenResult(None, error=errs[0] if len(errs) == 1 else f"[{', '.join(errs)}]")


# --- TokenReview ----------------------------------------------------------------------------


def token_review(body: Obj, authenticator: Authenticator | None) -> Obj:
    """The answer to a TokenReview ``body`` (decoded typed), as upstream's tokenreview
    REST storage: 400 without ``spec.token``; the spec echoed; ``status.authenticated``,
    ``user``, ``audiences`` and ``error`` as upstream's (empty fields omitted)."""
    spec = body.get("spec") if isinstance(body.get("spec"), dict) else {}
    assert isinstance(spec, dict)
    token = spec.get("token") or ""
    if not token:
        raise errors.bad_request("token is required for TokenReview in authentication")
    status: Obj = {"user": {}}
    if authenticator is not None:
        result = authenticator.authenticate_token(token, tuple(spec.get("audiences") or ()))
        if result.user is not None:
            status = {"authenticated": True, "user": result.user.to_json()}
            if result.audiences:
                status["audiences"] = result.audiences
        elif result.error:
            status["error"] = result.error
    meta = dict(body.get("metadata") or {})
    meta.setdefault("creationTimestamp", None)
    return {
        "kind": "TokenReview",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": meta,
        "spec": spec,
        "status": status,
    }
