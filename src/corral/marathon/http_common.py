"""What every Marathon REST handler shares: the app keys (service, event bus), answers
with Marathon's bodies, query flags, request bodies, ids from paths, and the error
middleware that turns the service's typed errors into Marathon's answers.

Called by ``http.py`` (which builds the app) and the ``http_*`` route modules. Shaped
after Marathon 1.10's ``RestResource`` and ``MarathonExceptionMapper``:

=============================== ===========================================================
``NotFound``                    404 ``{"message": ...}``
``Conflict``                    409 ``{"message": ...}``
``Locked``                      409 ``plan.locked_body`` (``message`` and ``deployments``)
``Invalid``, ``AppError``       422 ``{"message", "details": [{"path", "errors"}]}`` (or
                                just ``{"message"}``: an ``IllegalArgumentException``)
``BadRequest``                  400 ``{"message": ...}``
malformed JSON                  400 ``{"message": "Invalid JSON", "details": "<parser>"}``
no body                         400 ``{"message": "Please specify data in JSON format"}``
an unknown path                 404 ``{"message": "URI not found"}`` (Marathon answers 500)
any other HTTP error            its status, ``{"message": <reason phrase>}``
a crash                         500 ``{"message": ...}``
=============================== ===========================================================

Every answer carries a ``Content-Type`` (an empty 202/204 too). Booleans in the query
are Jersey's ``Boolean.valueOf``: ``true`` in any case is true, anything else false
(the client sends ``force=False``). Paths may hold ``//`` (the client formats
``/v2/apps/{id}`` with ids that start with ``/``): ids are read from the path's tail
and canonicalised (``apps.canonical_id``), which collapses them.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Collection
from http import HTTPStatus
from typing import Any

import orjson
from aiohttp import web

from corral.marathon import apps
from corral.marathon.apps import AppError
from corral.marathon.events import EventBus
from corral.marathon.plan import locked_body
from corral.marathon.service_api import (
    Conflict,
    Deployment,
    Invalid,
    Locked,
    NotFound,
    Service,
)

log = logging.getLogger("corral.marathon.http")

Obj = dict[str, Any]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

SERVICE_KEY = web.AppKey("marathon_service", Service)
EVENTS_KEY = web.AppKey("marathon_events", EventBus)

DEPLOYMENT_HEADER = "Marathon-Deployment-Id"
JSON = "application/json"


class BadRequest(Exception):
    """A request this layer refuses: 400 ``{"message": message}`` (plus ``details``)."""

    def __init__(self, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def body(self) -> Obj:
        out: Obj = {"message": self.message}
        if self.details is not None:
            out["details"] = self.details
        return out


# --- answers ---------------------------------------------------------------------------


def json_response(
    obj: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(body=orjson.dumps(obj), status=status, content_type=JSON, headers=headers)


def empty(status: int) -> web.Response:
    """An answer with no body (202, 204), still with a Content-Type."""
    return web.Response(status=status, content_type=JSON)


def message(status: int, text: str) -> web.Response:
    return json_response({"message": text}, status)


def deployment_response(
    deployment: Deployment, status: int = 200, location: str | None = None
) -> web.Response:
    """``RestResource.deploymentResult``: ``{"deploymentId", "version"}`` and the
    ``Marathon-Deployment-Id`` header (``Location`` too when something was created)."""
    headers = {DEPLOYMENT_HEADER: deployment.id}
    if location is not None:
        headers["Location"] = location
    return json_response(deployment.body(), status, headers)


def location(request: web.Request, path: str) -> str:
    """An absolute URL on this server for ``path``."""
    return str(request.url.with_path(path).with_query(None))


# --- requests --------------------------------------------------------------------------


def service(request: web.Request) -> Service:
    return request.app[SERVICE_KEY]


def events(request: web.Request) -> EventBus:
    return request.app[EVENTS_KEY]


def flag(request: web.Request, key: str, default: bool = False) -> bool:
    """A boolean query parameter as Jersey reads it (``Boolean.valueOf``)."""
    raw = request.query.get(key)
    if raw is None:
        return default
    return raw.strip().lower() == "true"


def values(request: web.Request, *keys: str) -> list[str]:
    """Every value of the repeated parameters ``keys`` (``embed=a&embed=b``)."""
    out: list[str] = []
    for key in keys:
        out += request.query.getall(key, [])
    return out


def no_scale_and_wipe(request: web.Request) -> tuple[bool, bool, bool]:
    """``(scale, wipe, force)`` of a kill; both scale and wipe is a 400, as Marathon."""
    scale, wipe, force = flag(request, "scale"), flag(request, "wipe"), flag(request, "force")
    if scale and wipe:
        raise BadRequest("You cannot use scale and wipe at the same time.")
    return scale, wipe, force


async def read_json(request: web.Request) -> Any:
    """The request body as JSON; Marathon's 400 answers for no body or bad JSON."""
    raw = await request.read()
    if not raw.strip():
        raise BadRequest(
            "Please specify data in JSON format",
            "No content to map due to end-of-input",
        )
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise BadRequest("Invalid JSON", str(e)) from None


def tail(request: web.Request) -> str:
    """The path after the route's prefix (``{tail}``), ``//`` collapsed, no slash at
    either end."""
    return "/".join(p for p in request.match_info.get("tail", "").split("/") if p)


def absolute(path_id: str) -> str:
    """A path id from a URL as Marathon's ``toAbsolutePath`` reads it."""
    return apps.canonical_id("/" + path_id.strip("/"))


def split_suffix(path: str, *suffixes: str) -> tuple[str, str | None]:
    """``("a/b", "tasks")`` for ``a/b/tasks`` when ``tasks`` is one of ``suffixes`` (the
    sub-resource wins over an app that would have that name, as in Jersey's routing)."""
    for suffix in suffixes:
        if path == suffix:
            return "", suffix
        if path.endswith("/" + suffix):
            return path[: -len(suffix) - 1], suffix
    return path, None


def under(item_id: str, group_id: str) -> bool:
    """``item_id`` is ``group_id`` or below it."""
    return group_id == "/" or item_id == group_id or item_id.startswith(group_id + "/")


def api_post_event(request: web.Request, app: Obj) -> None:
    """Marathon's ``api_post_event`` for an app a request created or changed."""
    events(request).publish(
        {
            "eventType": "api_post_event",
            "clientIp": request.remote or "",
            "uri": request.path,
            "appDefinition": apps.to_client(app),
        }
    )


def stored_or(svc: Service, app: Obj) -> Obj:
    """The app as the service stored it (with its version), else ``app``."""
    return svc.app(app["id"]) or app


def render_app(svc: Service, app: Obj, embed: Collection[str] = frozenset()) -> Obj:
    """``apps.to_client`` with what ``embed`` (``apps.EMBEDS`` names) asks the service
    for; nothing is asked that is not shown."""
    app_id = app["id"]
    return apps.to_client(
        app,
        tasks=svc.tasks(app_id) if "tasks" in embed else None,
        counts=svc.counts(app_id) if "counts" in embed else None,
        deployments=svc.app_deployments(app_id) if "deployments" in embed else None,
        last_failure=svc.last_task_failure(app_id) if "lastTaskFailure" in embed else None,
        task_stats=svc.task_stats(app_id) if "taskStats" in embed else None,
        readiness=svc.readiness(app_id) if "readiness" in embed else None,
        embed=embed,
    )


def unknown_app(app_id: str, version: str | None = None) -> NotFound:
    """``RestResource.unknownApp``."""
    suffix = f" in version {version}" if version is not None else ""
    return NotFound(f"App '{app_id}' does not exist{suffix}")


def unknown_group(group_id: str, version: str | None = None) -> NotFound:
    """``RestResource.unknownGroup``."""
    suffix = f" in version {version}" if version is not None else ""
    return NotFound(f"Group '{group_id}' does not exist{suffix}")


# --- errors ----------------------------------------------------------------------------


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return str(status)


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure as Marathon's JSON body with its status (module docstring)."""
    try:
        return await handler(request)
    except NotFound as e:
        return message(404, e.message)
    except Conflict as e:
        return message(409, e.message)
    except Locked as e:
        return json_response(locked_body(e.deployment_ids), 409)
    except Invalid as e:
        return json_response(e.body, 422)
    except AppError as e:
        return json_response(e.body(), 422)
    except BadRequest as e:
        return json_response(e.body(), 400)
    except web.HTTPException as e:
        if e.status < 400:
            raise
        text = "URI not found" if e.status == 404 else _reason(e.status)
        resp = message(e.status, text)
        if "Allow" in e.headers:
            resp.headers["Allow"] = e.headers["Allow"]
        return resp
    except Exception as e:
        log.exception("%s %s failed", request.method, request.path)
        return message(500, f"{type(e).__name__}: {e}")
