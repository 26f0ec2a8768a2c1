"""Who may call the Mesos master, and what: HTTP basic authentication against Corral's
identities and RBAC decisions mapped onto Mesos' operations.

Mesos authenticates three realms, each behind its own flag (``--authenticate_http_*``);
Corral's master has the same three (``corral scheduler --[no-]authenticate-http-*``, on
by default):

================================ ========================= ==============================
realm (``WWW-Authenticate``)     flag                      paths
================================ ========================= ==============================
``mesos-master-scheduler``       ``frameworks``            ``/api/v1/scheduler``
``mesos-master-readwrite``       ``readwrite``             ``/api/v1``, ``/api/v1/operator``
``mesos-master-readonly``        ``readonly``              ``/state``, ``/state-summary``,
                                                           ``/metrics/snapshot``, ``/corral/*``
================================ ========================= ==============================

``/version``, ``/health`` and ``/redirect`` stay open, as in Mesos. The credentials are
``client.basic_auth``'s (principal = a Corral user, secret = that user's token); a
request without valid ones is Mesos' ``401 Unauthorized.`` with the realm's challenge.

Authorization replaces Mesos' local ACLs with SubjectAccessReviews in group
``mesos.corral.dev`` (cluster-scoped):

- SUBSCRIBE: ``create frameworks`` and, for each role of the FrameworkInfo, ``use
  roles/<role>`` (Mesos' ``register_frameworks`` ACL). Refused: an ERROR event "Not
  authorized to register framework ... with roles { ... }" on the stream, as Mesos. The
  FrameworkInfo's principal must be the authenticated one (else 400, Mesos' words) and
  is set to it when absent; a framework's principal never changes ("Changing
  framework's principal is not allowed."), except that one registered without a
  principal (authentication off) adopts the first it subscribes with;
- every other scheduler call: only the framework's own principal (Mesos' 400);
- operator calls: ``OPERATOR_ACCESS`` (``update weights/<role>``, ``update
  quotas/<role>``, ``get state``...); refused: ``403 Forbidden.``;
- read-only endpoints: ``READONLY_ACCESS`` (``get state``, ``get metrics``).

Called by ``http.py`` (its middleware and the two API handlers).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from corral.client.basic_auth import Access, authenticate, authorize_all
from corral.client.reviews import ReviewedUser, Reviewer

Obj = dict[str, Any]

GROUP = "mesos.corral.dev"
FRAMEWORKS_REALM = "mesos-master-scheduler"
READWRITE_REALM = "mesos-master-readwrite"
READONLY_REALM = "mesos-master-readonly"
#: where the middleware keeps the authenticated user (absent: authentication is off)
USER_KEY = "mesos_user"

PRINCIPAL_CHANGED = "Changing framework's principal is not allowed."


def _a(verb: str, resource: str, name: str = "") -> Access:
    return Access(verb, resource, GROUP, name)


#: path -> its realm (``None``: open)
REALMS: dict[str, str] = {
    "/api/v1/scheduler": FRAMEWORKS_REALM,
    "/api/v1": READWRITE_REALM,
    "/api/v1/operator": READWRITE_REALM,
    "/metrics/snapshot": READONLY_REALM,
}
#: read-only path -> what it needs
READONLY_ACCESS: dict[str, Access] = {"/metrics/snapshot": _a("get", "metrics")}
for _prefix in ("", "/master"):
    for _path in ("/state", "/state.json", "/state-summary"):
        REALMS[_prefix + _path] = READONLY_REALM
        READONLY_ACCESS[_prefix + _path] = _a("get", "state")

#: operator call -> (verb, resource); None: any authenticated user. Calls naming roles
#: (``ROLE_CALLS``) are checked per role, with the role as the resource name.
OPERATOR_ACCESS: dict[str, tuple[str, str] | None] = {
    "GET_HEALTH": None,
    "GET_VERSION": None,
    "GET_STATE": ("get", "state"),
    "GET_MASTER": ("get", "state"),
    "SUBSCRIBE": ("watch", "state"),
    "GET_FLAGS": ("get", "flags"),
    "GET_METRICS": ("get", "metrics"),
    "GET_AGENTS": ("list", "agents"),
    "GET_FRAMEWORKS": ("list", "frameworks"),
    "GET_TASKS": ("list", "tasks"),
    "GET_EXECUTORS": ("list", "tasks"),
    "GET_ROLES": ("list", "roles"),
    "GET_WEIGHTS": ("get", "weights"),
    "GET_QUOTA": ("get", "quotas"),
    "UPDATE_WEIGHTS": ("update", "weights"),
    "SET_QUOTA": ("update", "quotas"),
    "UPDATE_QUOTA": ("update", "quotas"),
    "REMOVE_QUOTA": ("update", "quotas"),
}


def _roles_of_operator_call(kind: str, body: Any) -> list[str]:
    """The roles an UPDATE_WEIGHTS or quota call names (best effort: a malformed call
    names none, needs the right on every role, and is refused as malformed later)."""
    if not isinstance(body, dict):
        return []
    items: Any
    if kind == "UPDATE_WEIGHTS":
        items = body.get("weight_infos")
    elif kind == "UPDATE_QUOTA":
        items = body.get("quota_configs")
    elif kind == "SET_QUOTA":
        items = [body.get("quota_request")]
    elif kind == "REMOVE_QUOTA":
        return [body["role"]] if isinstance(body.get("role"), str) else []
    else:
        return []
    if not isinstance(items, list):
        return []
    return [i["role"] for i in items if isinstance(i, dict) and isinstance(i.get("role"), str)]


def operator_accesses(call: Obj) -> list[Access]:
    """What an operator call needs (``OPERATOR_ACCESS``); an unknown call type needs
    ``create operations/<type>`` (fail closed: it is refused as unsupported anyway)."""
    kind = str(call.get("type"))
    if kind not in OPERATOR_ACCESS:
        return [_a("create", "operations", kind.lower())]
    need = OPERATOR_ACCESS[kind]
    if need is None:
        return []
    verb, resource = need
    roles = _roles_of_operator_call(kind, call.get(kind.lower()))
    if verb == "update" and roles:
        return [_a(verb, resource, r) for r in dict.fromkeys(roles)]
    return [_a(verb, resource)]


def framework_roles(info: Obj) -> list[str]:
    """A FrameworkInfo's roles (``roles``, else the deprecated ``role``, else ``*``)."""
    roles = info.get("roles")
    if isinstance(roles, list) and roles:
        return [str(r) for r in roles]
    return [str(info.get("role") or "*")]


def subscribe_accesses(info: Obj) -> list[Access]:
    """What registering a framework with ``info`` needs."""
    return [_a("create", "frameworks")] + [
        _a("use", "roles", r) for r in dict.fromkeys(framework_roles(info))
    ]


def not_authorized_to_register(info: Obj) -> str:
    """Mesos' refusal (``ActionObject`` printed: the id, then stout's set of roles)."""
    fid = (info.get("id") or {}).get("value", "") if isinstance(info.get("id"), dict) else ""
    roles = ", ".join(sorted(set(framework_roles(info))))
    return f"Not authorized to register framework {fid} with roles {{ {roles} }}"


def principal_mismatch(principal: str, declared: str) -> str:
    """Mesos' words when a call's principal is not the framework's."""
    return (
        f"Authenticated principal '{principal}' does not match principal '{declared}' "
        "set in `FrameworkInfo`"
    )


def unauthorized(realm: str) -> web.Response:
    """libprocess' ``Unauthorized``: 401, the realm's Basic challenge."""
    return web.Response(
        text="401 Unauthorized.",
        status=401,
        content_type="text/plain",
        headers={"WWW-Authenticate": f'Basic realm="{realm}"'},
    )


def forbidden() -> web.Response:
    """libprocess' ``Forbidden``."""
    return web.Response(text="403 Forbidden.", status=403, content_type="text/plain")


@dataclass
class MasterAuth:
    """The master's authentication settings (one flag per realm) and its reviewer."""

    reviewer: Reviewer
    frameworks: bool = True
    readwrite: bool = True
    readonly: bool = True

    def enabled(self, realm: str) -> bool:
        return {
            FRAMEWORKS_REALM: self.frameworks,
            READWRITE_REALM: self.readwrite,
            READONLY_REALM: self.readonly,
        }.get(realm, False)

    async def denied(self, user: ReviewedUser, accesses: list[Access]) -> bool:
        return await authorize_all(self.reviewer, user, accesses) is not None

    def subscribe_check(self, user: ReviewedUser) -> Callable[[Obj], Any]:
        """The master's ``authorize`` hook for one SUBSCRIBE by ``user``: the refusal
        message, or None."""

        async def check(info: Obj) -> str | None:
            if await self.denied(user, subscribe_accesses(info)):
                return not_authorized_to_register(info)
            return None

        return check


def realm_of(path: str) -> str | None:
    """The realm ``path`` belongs to; None for the open endpoints."""
    if path in REALMS:
        return REALMS[path]
    if path.startswith("/corral/"):
        return READONLY_REALM
    return None


def readonly_access(path: str) -> Access | None:
    if path.startswith("/corral/"):
        return _a("get", "state")
    return READONLY_ACCESS.get(path)


AUTH_KEY = web.AppKey("mesos_auth", MasterAuth)


@web.middleware
async def middleware(
    request: web.Request, handler: Callable[[web.Request], Any]
) -> web.StreamResponse:
    """Authenticate the request in its realm (``request[USER_KEY]``); authorize the
    read-only endpoints here, the API calls in their handlers."""
    auth = request.app.get(AUTH_KEY)
    realm = realm_of(request.path)
    if auth is None or realm is None or not auth.enabled(realm):
        return await handler(request)  # type: ignore[no-any-return]
    user = await authenticate(auth.reviewer, request.headers.get("Authorization"))
    if user is None:
        return unauthorized(realm)
    request[USER_KEY] = user
    access = readonly_access(request.path) if realm == READONLY_REALM else None
    if access is not None and await auth.denied(user, [access]):
        return forbidden()
    return await handler(request)  # type: ignore[no-any-return]
