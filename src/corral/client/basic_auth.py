"""HTTP basic authentication against Corral's identities, for the Mesos, Marathon and
Chronos faces (``mesos/auth.py``, ``marathon/auth.py``, ``chronos/auth.py``).

Those three speak protocols whose clients send ``Authorization: Basic`` (pymesos'
``principal``/``secret``, marathon-python's ``username``/``password``, chronos-python's
httplib2 credentials). Here the principal is a Corral user name and the secret a bearer
token of that user (a ``--token-auth-file`` token, a ServiceAccount token from
``kubectl create token``, a bootstrap token...): a request is authenticated when the API
server's TokenReview accepts the token (``reviews.Reviewer``, cached) AND names exactly
that user. A bearer token alone (``Authorization: Bearer T``, or Marathon's DC/OS form
``Authorization: token=T``) is accepted too, for tools that hold a kubeconfig token.

One deliberate difference from Mesos' basic authenticator: Kubernetes user names carry
colons (``system:serviceaccount:ns:name``, ``corral:marathon``), so the decoded
``principal:secret`` is split at its LAST colon (Mesos refuses any second colon); a
secret therefore cannot contain one (none of Corral's token kinds does).

What a request may do is a SubjectAccessReview of an ``Access`` (verb, API group,
resource, name): each face maps its operations onto Corral-specific groups
(``mesos.corral.dev``, ``marathon.corral.dev``, ``chronos.corral.dev``; the tables are
in docs/architecture.md, "Frameworks' HTTP authentication").
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from corral.client.reviews import ReviewedUser, Reviewer

#: where ``middleware`` keeps the authenticated user of a request
USER_KEY = "corral_user"


@dataclass(frozen=True)
class Credentials:
    """What an ``Authorization`` header carries: a principal ("" for a bare bearer
    token) and its secret (the token)."""

    principal: str
    secret: str


@dataclass(frozen=True)
class Access:
    """One SubjectAccessReview's resource attributes (cluster-scoped unless
    ``namespace``)."""

    verb: str
    resource: str
    group: str
    name: str = ""
    namespace: str = ""
    subresource: str = ""


def parse_authorization(header: str) -> Credentials | None:
    """The credentials of an ``Authorization`` header value, or None when it carries
    none that this module reads (absent, another scheme, bad base64, no colon, an empty
    principal or secret). Schemes are case-insensitive (RFC 7235)."""
    scheme, _, rest = header.strip().partition(" ")
    rest = rest.strip()
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(rest, validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            return None
        principal, sep, secret = decoded.rpartition(":")
        if not sep or not principal or not secret:
            return None
        return Credentials(principal, secret)
    if scheme.lower() == "bearer" and rest and " " not in rest:
        return Credentials("", rest)
    if scheme.lower().startswith("token=") and not rest:  # Marathon's "token=T" (DC/OS)
        token = scheme[len("token=") :]
        return Credentials("", token) if token else None
    return None


def basic_header(principal: str, secret: str) -> str:
    """The ``Authorization`` value a client sends for ``principal``/``secret`` (a
    principal may hold colons, see the module docstring)."""
    raw = f"{principal}:{secret}".encode()
    return "Basic " + base64.b64encode(raw).decode("ascii")


async def authenticate(reviewer: Reviewer, header: str | None) -> ReviewedUser | None:
    """The user an ``Authorization`` header proves, or None (no credentials, a token the
    API server does not accept, or a principal that is not the token's user)."""
    creds = parse_authorization(header or "")
    if creds is None:
        return None
    user = await reviewer.authenticate(creds.secret)
    if user is None or not user.username:
        return None
    if creds.principal and creds.principal != user.username:
        return None
    return user


async def authorize(reviewer: Reviewer, user: ReviewedUser, access: Access) -> tuple[bool, str]:
    """(allowed, reason) of ``user`` doing ``access`` (SubjectAccessReview, cached)."""
    return await reviewer.authorize(
        user.username,
        user.groups,
        verb=access.verb,
        resource=access.resource,
        group=access.group,
        name=access.name,
        namespace=access.namespace,
        subresource=access.subresource,
        uid=user.uid,
        extra=user.extra,
    )


async def authorize_all(
    reviewer: Reviewer, user: ReviewedUser, accesses: Sequence[Access]
) -> Access | None:
    """The first of ``accesses`` that ``user`` may not do, or None when all are allowed."""
    for access in accesses:
        allowed, _ = await authorize(reviewer, user, access)
        if not allowed:
            return access
    return None


def read_secret_file(path: str) -> str:
    """A ``--mesos_authentication_secret_file``: the secret is the file's content with
    surrounding whitespace removed (Mesos strips a trailing newline too)."""
    with open(path, encoding="utf-8") as f:
        secret = f.read().strip()
    if not secret:
        raise ValueError(f"secret file {path} is empty")
    return secret


#: what a request needs: its accesses, or None for an open endpoint (``/ping``)
Decide = Callable[[web.Request], Awaitable[Sequence[Access] | None]]


def middleware(
    reviewer: Reviewer,
    decide: Decide,
    unauthorized: Callable[[], web.StreamResponse],
    forbidden: Callable[[Access], web.StreamResponse],
) -> Any:
    """An aiohttp middleware: ``decide`` what the request needs; unless open,
    authenticate it (``unauthorized()`` when that fails) and authorize each access
    (``forbidden(access)`` for the first refused); the user is ``request[USER_KEY]``."""

    @web.middleware
    async def check(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        accesses = await decide(request)
        if accesses is None:
            return await handler(request)
        user = await authenticate(reviewer, request.headers.get("Authorization"))
        if user is None:
            return unauthorized()
        request[USER_KEY] = user
        refused = await authorize_all(reviewer, user, accesses)
        if refused is not None:
            return forbidden(refused)
        return await handler(request)

    return check
