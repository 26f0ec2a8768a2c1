"""Who may call Chronos' REST API, and what: HTTP basic authentication against Corral's
identities (``client.basic_auth``: the user name and one of its tokens, as
chronos-python's ``username``/``password``; or a bearer token) and RBAC decisions on
jobs (``corral chronos --[no-]authenticate-http``, on by default).

Chronos 2.x had one ``--http_credentials`` pair and no authorization; Corral asks
SubjectAccessReviews in group ``chronos.corral.dev`` (cluster-scoped), resource
``jobs``, the job name as the resource name:

=============================================== ======== ==========================
request (under ``/v1/scheduler`` or ``/scheduler``) verb  name
=============================================== ======== ==========================
``GET jobs``, ``jobs/search``, ``jobs/summary``, list
``stats/*``, ``graph/*``
``GET job/N``, ``job/stat/N``, ``/corral/why/N``  get      N
``POST|PUT iso8601``, ``dependency``             create   the body's ``name``
                                                 (update when the job exists)
``PUT job/N`` (run), ``job/success/N``,          update   N
``DELETE task/kill/N``
``DELETE job/N``                                 delete   N
``GET leader``, ``/metrics``                     get      (resource ``leader``,
                                                          ``metrics``)
=============================================== ======== ==========================

``/ping`` stays open. Refusals are Chronos' JSON error bodies (``{"message",
"status"}``): 401 "Invalid username or password." with a Basic challenge (httplib2,
which chronos-python uses, sends credentials only after one) and 403.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import orjson
from aiohttp import web

from corral.chronos.http import PREFIXES, SERVICE_KEY
from corral.client import basic_auth
from corral.client.basic_auth import Access
from corral.client.reviews import Reviewer

GROUP = "chronos.corral.dev"
REALM = "Chronos"
INVALID_CREDENTIALS = "Invalid username or password."


def _a(verb: str, resource: str = "jobs", name: str = "") -> Access:
    return Access(verb, resource, GROUP, name)


def accesses(
    method: str, path: str, body_name: str = "", exists: Callable[[str], bool] = lambda _: False
) -> list[Access] | None:
    """What ``method path`` needs (module docstring); None: open. An unknown route needs
    only an authenticated user (it is a 404 anyway)."""
    method = "GET" if method.upper() == "HEAD" else method.upper()
    if path in ("/ping", "/ping/"):
        return None
    if path == "/metrics":
        return [_a("get", "metrics")]
    if path == "/leader":
        return [_a("get", "leader")]
    if path.startswith("/corral/why/"):
        return [_a("get", name=path[len("/corral/why/") :])]
    prefix = next((p for p in PREFIXES if path.startswith(p + "/")), None)
    if prefix is None:
        return []
    rest = path[len(prefix) + 1 :]
    if rest in ("iso8601", "dependency"):
        return [_a("update" if body_name and exists(body_name) else "create", name=body_name)]
    if rest == "leader":
        return [_a("get", "leader")]
    if rest.startswith(("jobs", "stats/", "graph/")):
        return [_a("list")]
    for route, verbs in (
        ("job/stat/", {"GET": "get"}),
        ("job/success/", {"PUT": "update"}),
        ("task/kill/", {"DELETE": "update"}),
        ("job/", {"GET": "get", "PUT": "update", "DELETE": "delete"}),
    ):
        if rest.startswith(route):
            return [_a(verbs.get(method, "get"), name=rest[len(route) :])]
    return []


def _body_name(raw: bytes) -> str:
    try:
        body: Any = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        return ""
    found = body.get("name") if isinstance(body, dict) else None
    return found if isinstance(found, str) else ""


async def _decide(request: web.Request) -> Sequence[Access] | None:
    body_name = ""
    if request.method in ("POST", "PUT") and request.path.endswith(("/iso8601", "/dependency")):
        body_name = _body_name(await request.read())  # cached: the handler reads it again
    service = request.app[SERVICE_KEY]
    return accesses(request.method, request.path, body_name, lambda n: service.job(n) is not None)


def _unauthorized() -> web.Response:
    resp = web.json_response({"message": INVALID_CREDENTIALS, "status": "Unauthorized"}, status=401)
    resp.headers["WWW-Authenticate"] = f'Basic realm="{REALM}"'
    return resp


def _forbidden(access: Access) -> web.Response:
    what = f"{access.resource} '{access.name}'" if access.name else access.resource
    message = f"Not authorized to {access.verb} {what}"
    return web.json_response({"message": message, "status": "Forbidden"}, status=403)


def middleware(reviewer: Reviewer) -> Any:
    """The aiohttp middleware that authenticates and authorizes every request."""
    return basic_auth.middleware(reviewer, _decide, _unauthorized, _forbidden)
