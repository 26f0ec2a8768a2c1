"""Who may call Marathon's REST API, and what: HTTP basic authentication against
Corral's identities (``client.basic_auth``: the user name and one of its tokens, as
marathon-python's ``username``/``password``; or a bearer token) and RBAC decisions on
Marathon's operations (``corral marathon --[no-]authenticate-http``, on by default).

Marathon's auth plugins authorize ``CreateRunSpec``, ``ViewRunSpec``, ``UpdateGroup``...
on a path id; Corral asks SubjectAccessReviews in group ``marathon.corral.dev``
(cluster-scoped), with the id without its leading slash as the resource name:

=========================================== ======= ============= =======================
request                                     verb    resource      name
=========================================== ======= ============= =======================
``GET /v2/apps``                            list    apps
``GET /v2/apps/ID[/tasks|/versions...]``    get     apps          ID
``POST /v2/apps``                           create  apps          the body's ``id``
``PUT|PATCH /v2/apps[/ID]``                 update  apps          ID (bulk: none)
``POST /v2/apps/ID/restart``,               update  apps          ID
``DELETE /v2/apps/ID/tasks[/T]``,
``DELETE /v2/queue/ID/delay``
``DELETE /v2/apps/ID``                      delete  apps          ID
``GET /v2/tasks``                           list    tasks
``POST /v2/tasks/delete``                   delete  tasks
``GET|POST|PUT|DELETE /v2/groups[/ID]``     get, create, update, delete  groups   ID
``GET /v2/deployments``, ``/v2/queue``      list    deployments, queue
``DELETE /v2/deployments/D``                delete  deployments   D
``GET /v2/info``, ``/v2/leader``,           get     info, leader, metrics
``/metrics``
``GET /v2/events``                          watch   events
=========================================== ======= ============= =======================

``/ping`` stays open (load balancers probe it). Refusals have the bodies of Marathon's
RAML: 401 ``{"message": "Invalid username or password."}`` (with a Basic challenge)
and 403 ``{"message": "Not Authorized to perform this action!"}``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from aiohttp import web

from corral.client import basic_auth
from corral.client.basic_auth import Access
from corral.client.reviews import Reviewer

GROUP = "marathon.corral.dev"
REALM = "Marathon"
INVALID_CREDENTIALS = "Invalid username or password."
NOT_AUTHORIZED = "Not Authorized to perform this action!"
#: the last segments of app routes that are not part of the app id
_APP_SUFFIXES = ("tasks", "restart", "versions")
_VERBS = {"GET": "get", "POST": "create", "PUT": "update", "PATCH": "update", "DELETE": "delete"}


def _a(verb: str, resource: str, name: str = "") -> Access:
    return Access(verb, resource, GROUP, name)


def _app_id(rest: list[str]) -> tuple[str, str]:
    """(app id, route suffix) of the segments after ``/v2/apps``."""
    for i, seg in enumerate(rest):
        if i > 0 and seg in _APP_SUFFIXES:
            return "/".join(rest[:i]), seg
    return "/".join(rest), ""


def _apps(method: str, rest: list[str], body_id: str) -> list[Access]:
    if not rest:
        if method == "GET":
            return [_a("list", "apps")]
        if method == "POST":
            return [_a("create", "apps", body_id)]
        return [_a("update", "apps")]
    app_id, suffix = _app_id(rest)
    if method == "GET":
        return [_a("get", "apps", app_id)]
    if method == "DELETE" and not suffix:
        return [_a("delete", "apps", app_id)]
    return [_a("update", "apps", app_id)]


def accesses(method: str, path: str, body_id: str = "") -> list[Access] | None:
    """What ``method path`` needs (module docstring); None: open. An unknown route needs
    only an authenticated user (it is a 404 anyway)."""
    parts = [p for p in path.split("/") if p]
    method = method.upper()
    if method == "HEAD":
        method = "GET"
    if parts == ["ping"]:
        return None
    if parts == ["metrics"]:
        return [_a("get", "metrics")]
    if parts[:2] == ["corral", "why"]:
        return [_a("get", "apps", "/".join(parts[2:]))]
    if len(parts) < 2 or parts[0] != "v2":
        return []
    kind, rest = parts[1], parts[2:]
    if kind == "apps":
        return _apps(method, rest, body_id)
    if kind == "tasks":
        return [_a("list", "tasks")] if method == "GET" else [_a("delete", "tasks")]
    if kind == "groups":
        if rest and rest[-1] != "versions" and "versions" in rest[:-1]:
            rest = rest[: rest.index("versions")]  # /v2/groups/ID/versions/V
        elif rest and rest[-1] == "versions":
            rest = rest[:-1]
        name = "/".join(rest) or (body_id if method == "POST" else "")
        return [_a(_VERBS.get(method, "get"), "groups", name)]
    if kind == "deployments":
        if method == "GET":
            return [_a("list", "deployments")]
        return [_a("delete", "deployments", "/".join(rest))]
    if kind == "queue":
        if method == "GET":
            return [_a("list", "queue")]
        return [_a("update", "apps", "/".join(rest[:-1] if rest[-1:] == ["delay"] else rest))]
    if kind in ("info", "leader"):
        return [_a("get" if method == "GET" else "delete", kind)]
    if kind == "events":
        return [_a("watch", "events")]
    return []


def _body_id(raw: bytes) -> str:
    try:
        body: Any = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        return ""
    found = body.get("id") if isinstance(body, dict) else None
    return found.strip("/") if isinstance(found, str) else ""


async def _decide(request: web.Request) -> Sequence[Access] | None:
    body_id = ""
    if request.method == "POST" and request.path.rstrip("/") in ("/v2/apps", "/v2/groups"):
        body_id = _body_id(await request.read())  # cached: the handler reads it again
    return accesses(request.method, request.path, body_id)


def _unauthorized() -> web.Response:
    resp = web.json_response({"message": INVALID_CREDENTIALS}, status=401)
    resp.headers["WWW-Authenticate"] = f'Basic realm="{REALM}"'
    return resp


def _forbidden(_: Access) -> web.Response:
    return web.json_response({"message": NOT_AUTHORIZED}, status=403)


def middleware(reviewer: Reviewer) -> Any:
    """The aiohttp middleware that authenticates and authorizes every request."""
    return basic_auth.middleware(reviewer, _decide, _unauthorized, _forbidden)
