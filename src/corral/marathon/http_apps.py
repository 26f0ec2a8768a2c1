"""``/v2/apps``: Marathon's ``AppsResource`` and ``AppVersionsResource`` over the service.

Registered by ``http.make_app``. App ids hold slashes, so one route per method takes
the whole tail (``/v2/apps/{tail}``) and the sub-resources are told apart by their
suffix, as Jersey's ``{id:.+}/tasks`` routes do (``http_tasks`` serves ``.../tasks``):

====== ============================ =======================================================
POST   /v2/apps                     create: 201, ``Location``, the app with counts of 0 and
                                    its deployment; 409 when the id is taken
GET    /v2/apps                     ``cmd``/``id`` (case-insensitive substrings), ``label``
                                    (a label selector), ``embed``; counts and deployments
                                    always
PUT    /v2/apps                     many apps in one deployment (``partialUpdate``, default
                                    true); PATCH: the same, no creation
GET    /v2/apps/{id}                ``{"app"}`` with tasks, counts, deployments and
                                    lastTaskFailure always; ``{id}/*``: ``{"*": [apps]}``
PUT    /v2/apps/{id}                update (``partialUpdate``, default true), or create (201)
                                    or roll back (``{"version": V}``); PATCH: partial, 404
                                    for an unknown app
DELETE /v2/apps/{id}                ``force`` defaults to **true** here, as in Marathon
POST   /v2/apps/{id}/restart        a restart deployment
GET    /v2/apps/{id}/versions[/{v}] ``{"versions": [...]}`` / the app at that version
====== ============================ =======================================================

Every change answers ``{"deploymentId", "version"}`` with ``Marathon-Deployment-Id`` and
publishes an ``api_post_event`` for each app it creates or updates. Bodies are read by
``apps.normalize`` (its ``AppError`` is the 422), so nothing invalid reaches the service.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from corral.marathon import apps
from corral.marathon.apps import AppError
from corral.marathon.http_common import (
    DEPLOYMENT_HEADER,
    Obj,
    absolute,
    api_post_event,
    deployment_response,
    flag,
    json_response,
    location,
    read_json,
    render_app,
    service,
    split_suffix,
    stored_or,
    tail,
    under,
    unknown_app,
    unknown_group,
    values,
)
from corral.marathon.http_tasks import app_tasks, kill_app_task, kill_app_tasks
from corral.marathon.service_api import Invalid, Service

__all__ = ["LabelSelector", "parse_label_selector", "routes"]

#: what ``GET /v2/apps`` embeds whatever is asked (``AppsResource.index``)
LIST_EMBEDS = frozenset({"counts", "deployments"})
#: what ``GET /v2/apps/{id}`` embeds whatever is asked (``AppsResource.show``)
SHOW_EMBEDS = frozenset({"counts", "tasks", "lastTaskFailure", "deployments"})


# --- label selectors -------------------------------------------------------------------


@dataclass(frozen=True)
class LabelSelector:
    """Marathon's ``LabelSelectors``: every ``(key, op, values)`` must hold; ``op`` is
    ``exists``, ``==``, ``!=``, ``in`` or ``notin``."""

    terms: tuple[tuple[str, str, frozenset[str]], ...]

    def __call__(self, labels: Mapping[str, str]) -> bool:
        return all(_holds(labels, *term) for term in self.terms)


def _holds(labels: Mapping[str, str], key: str, op: str, wanted: frozenset[str]) -> bool:
    if key not in labels:
        return False
    if op == "exists":
        return True
    if op in ("==", "in"):
        return labels[key] in wanted
    return labels[key] not in wanted


_TERM = r"(?:\\.|[-A-Za-z0-9_.])+"
_SET_RE = re.compile(rf"\s*({_TERM})\s+(in|notin)\s*\(\s*((?:{_TERM}\s*(?:,\s*{_TERM}\s*)*)?)\)\s*")
_EQ_RE = re.compile(rf"\s*({_TERM})\s*(==|!=)\s*({_TERM})\s*")
_EXISTS_RE = re.compile(rf"\s*({_TERM})\s*")


def _unescape(term: str) -> str:
    return re.sub(r"\\(.)", r"\1", term)


def _split_selectors(text: str) -> list[str]:
    """Split on the commas outside ``( )`` and not escaped."""
    parts, depth, start, i = [], 0, 0, 0
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
        i += 1
    parts.append(text[start:])
    return parts


def parse_label_selector(text: str) -> LabelSelector:
    """Marathon's ``LabelSelectorParsers``: ``key``, ``key==v``, ``key!=v``, ``key in
    (a,b)``, ``key notin (a,b)``, joined by commas (all must hold); ``\\`` escapes any
    other character. A ``ValueError`` with Marathon's message when it does not parse."""
    terms: list[tuple[str, str, frozenset[str]]] = []
    for part in _split_selectors(text):
        if m := _SET_RE.fullmatch(part):
            members = frozenset(_unescape(t.strip()) for t in m[3].split(",") if t.strip())
            terms.append((_unescape(m[1]), m[2], members))
        elif m := _EQ_RE.fullmatch(part):
            terms.append((_unescape(m[1]), m[2], frozenset([_unescape(m[3])])))
        elif m := _EXISTS_RE.fullmatch(part):
            terms.append((_unescape(m[1]), "exists", frozenset()))
        else:
            raise ValueError(
                f"Can not parse label selector {text}. Reason: '{part.strip()}' is not a selector"
            )
    return LabelSelector(tuple(terms))


def _selected(request: web.Request, app: Obj, label: LabelSelector | None) -> bool:
    cmd, app_id = request.query.get("cmd"), request.query.get("id")
    if cmd is not None and (app.get("cmd") is None or cmd.lower() not in app["cmd"].lower()):
        return False
    if app_id is not None and app_id.lower() not in app["id"].lower():
        return False
    return label is None or label(app.get("labels") or {})


# --- reads -----------------------------------------------------------------------------


def _embeds(request: web.Request, always: frozenset[str]) -> set[str]:
    return apps.resolve_embed(values(request, "embed")) | always


async def list_apps(request: web.Request) -> web.Response:
    svc = service(request)
    label_text = request.query.get("label")
    try:
        label = parse_label_selector(label_text) if label_text is not None else None
    except ValueError as e:
        raise Invalid({"message": str(e)}) from None  # IllegalArgumentException: 422
    embed = _embeds(request, LIST_EMBEDS)
    shown = [render_app(svc, a, embed) for a in svc.apps() if _selected(request, a, label)]
    return json_response({"apps": shown})


def _show(request: web.Request, path: str) -> web.Response:
    svc = service(request)
    embed = _embeds(request, SHOW_EMBEDS)
    if path == "*" or path.endswith("/*"):
        group_id = absolute(path[:-1])
        if group_id not in svc.group_ids():
            raise unknown_group(group_id)
        shown = [render_app(svc, a, embed) for a in svc.apps() if under(a["id"], group_id)]
        return json_response({"*": shown})
    app_id = absolute(path)
    app = svc.app(app_id)
    if app is None:
        raise unknown_app(app_id)
    return json_response({"app": render_app(svc, app, embed)})


def _versions(svc: Service, path: str) -> web.Response:
    app_id = absolute(path)
    versions = svc.app_versions(app_id)
    if versions is None:
        raise unknown_app(app_id)
    return json_response({"versions": versions})


def _version(svc: Service, path: str) -> web.Response:
    app_path, version = path.rsplit("/", 1) if "/" in path else ("", path)
    app_path, _ = split_suffix(app_path, "versions")
    app_id = absolute(app_path)
    app = svc.app_version(app_id, version)
    if app is None:
        raise unknown_app(app_id, version)
    return json_response(apps.to_client(app))


async def get_app_path(request: web.Request) -> web.StreamResponse:
    """GET ``/v2/apps/{tail}``: the app, its tasks, versions or a version."""
    path = tail(request)
    if not path:
        return await list_apps(request)
    app_path, suffix = split_suffix(path, "tasks", "versions")
    if suffix == "tasks":
        return app_tasks(request, app_path)
    if suffix == "versions":
        return _versions(service(request), app_path)
    head, _, _ = path.rpartition("/")
    if head == "versions" or head.endswith("/versions"):
        return _version(service(request), path)
    return _show(request, path)


# --- changes ---------------------------------------------------------------------------


def _definition(app: Mapping[str, Any]) -> Obj:
    """A stored app as a definition to deploy again (the service stamps the version)."""
    return {k: v for k, v in app.items() if k not in ("version", "versionInfo")}


async def create_app(request: web.Request) -> web.Response:
    svc = service(request)
    app = apps.normalize(await read_json(request))
    deployment = await svc.deploy({app["id"]: app}, force=flag(request, "force"), create_only=True)
    stored = stored_or(svc, app)
    api_post_event(request, stored)
    body = apps.to_client(
        stored,
        counts={"staged": 0, "running": 0, "healthy": 0, "unhealthy": 0},
        deployments=[deployment.id],
        embed={"counts", "deployments"},
    )
    headers = {
        DEPLOYMENT_HEADER: deployment.id,
        "Location": location(request, f"/v2/apps{app['id']}"),
    }
    return json_response(body, 201, headers)


def _updated(svc: Service, app_id: str, body: Any, *, partial: bool, create: bool) -> Obj:
    """``AppHelpers.updateOrCreate`` for one app: its new definition."""
    existing = svc.app(app_id)
    version = apps.rollback_version(body)
    if version is not None:
        if existing is None:
            raise unknown_app(app_id)
        old = svc.app_version(app_id, version)
        if old is None:
            raise unknown_app(app_id)
        return _definition(old)
    if existing is None:
        if not create:
            raise unknown_app(app_id)
        return apps.normalize(body, app_id=app_id)
    if partial:
        return apps.normalize(body, app_id=app_id, partial=True, base=existing)
    return apps.normalize(body, app_id=app_id, base=existing)


async def _update_app(request: web.Request, path: str, *, patch: bool) -> web.Response:
    svc = service(request)
    app_id = absolute(path)
    body = await read_json(request)
    partial = True if patch else flag(request, "partialUpdate", True)
    existed = svc.app(app_id) is not None
    app = _updated(svc, app_id, body, partial=partial, create=not patch)
    deployment = await svc.deploy({app_id: app}, force=flag(request, "force"))
    api_post_event(request, stored_or(svc, app))
    if existed:
        return deployment_response(deployment)
    return deployment_response(deployment, 201, location(request, f"/v2/apps{app_id}"))


async def _update_apps(request: web.Request, *, patch: bool) -> web.Response:
    """``PUT``/``PATCH /v2/apps``: a list of apps in one deployment."""
    svc = service(request)
    body = await read_json(request)
    if not isinstance(body, list):
        raise AppError.at("/", apps.E_ARR, message=apps.INVALID_JSON)
    partial = True if patch else flag(request, "partialUpdate", True)
    changes: dict[str, Obj] = {}
    for i, item in enumerate(body):
        raw_id = item.get("id") if isinstance(item, dict) else None
        if partial and (not isinstance(raw_id, str) or not raw_id):
            raise Invalid({"message": "requirement failed: App Update must have app id set"})
        try:
            if not isinstance(raw_id, str) or not raw_id:
                apps.normalize(item)  # the full reader's 422 for the missing id
                raise AppError.at("/id", apps.E_MISSING, message=apps.INVALID_JSON)
            app = _updated(svc, apps.canonical_id(raw_id), item, partial=partial, create=not patch)
        except AppError as e:
            raise e.prefixed(f"({i})") from None
        changes[app["id"]] = app
    deployment = await svc.deploy(changes, force=flag(request, "force"))
    for app in changes.values():
        api_post_event(request, stored_or(svc, app))
    return deployment_response(deployment)


async def put_apps(request: web.Request) -> web.Response:
    return await _update_apps(request, patch=False)


async def patch_apps(request: web.Request) -> web.Response:
    return await _update_apps(request, patch=True)


async def put_app_path(request: web.Request) -> web.Response:
    path = tail(request)
    if not path:
        return await put_apps(request)
    return await _update_app(request, path, patch=False)


async def patch_app_path(request: web.Request) -> web.Response:
    path = tail(request)
    if not path:
        return await patch_apps(request)
    return await _update_app(request, path, patch=True)


async def delete_app_path(request: web.Request) -> web.Response:
    """DELETE ``/v2/apps/{id}``, ``{id}/tasks`` or ``{id}/tasks/{taskId}``."""
    path = tail(request)
    app_path, suffix = split_suffix(path, "tasks")
    if suffix == "tasks":
        return await kill_app_tasks(request, app_path)
    head, _, task_id = path.rpartition("/")
    if head == "tasks" or head.endswith("/tasks"):
        return await kill_app_task(request, split_suffix(head, "tasks")[0], task_id)
    svc = service(request)
    app_id = absolute(path)
    if svc.app(app_id) is None:
        raise unknown_app(app_id)
    deployment = await svc.deploy({app_id: None}, force=flag(request, "force", True))
    return deployment_response(deployment)


async def post_app_path(request: web.Request) -> web.Response:
    """POST ``/v2/apps/{id}/restart`` (and ``POST /v2/apps/`` with a trailing slash)."""
    path = tail(request)
    if not path:
        return await create_app(request)
    app_path, suffix = split_suffix(path, "restart")
    if suffix != "restart":
        raise web.HTTPMethodNotAllowed("POST", ["GET", "PUT", "PATCH", "DELETE"])
    svc = service(request)
    app_id = absolute(app_path)
    if svc.app(app_id) is None:
        raise unknown_app(app_id)
    return deployment_response(await svc.restart(app_id, force=flag(request, "force")))


def routes(router: web.UrlDispatcher) -> None:
    router.add_get("/v2/apps", list_apps)
    router.add_post("/v2/apps", create_app)
    router.add_put("/v2/apps", put_apps)
    router.add_patch("/v2/apps", patch_apps)
    router.add_get("/v2/apps/{tail:.*}", get_app_path)
    router.add_put("/v2/apps/{tail:.*}", put_app_path)
    router.add_patch("/v2/apps/{tail:.*}", patch_app_path)
    router.add_delete("/v2/apps/{tail:.*}", delete_app_path)
    router.add_post("/v2/apps/{tail:.*}", post_app_path)
