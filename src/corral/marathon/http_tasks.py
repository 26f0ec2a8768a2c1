"""Tasks: Marathon's ``AppTasksResource`` (``/v2/apps/{id}/tasks``) and
``TasksResource`` (``/v2/tasks``) over the service.

``http_apps`` dispatches an app path ending in ``/tasks`` (or ``/tasks/{taskId}``) here;
``routes`` registers ``/v2/tasks``:

====== ================================== =================================================
GET    /v2/apps/{id}/tasks                ``{"tasks"}``; ``{group}/*/tasks``: a group's
DELETE /v2/apps/{id}/tasks                ``host`` (substring, ``*`` all), ``scale``,
                                          ``wipe``, ``force``: ``{"tasks": [killed]}``, or
                                          a deployment with ``scale``
DELETE /v2/apps/{id}/tasks/{taskId}       ``{"task": killed}``, or a deployment; 404
                                          ``Task 'x' does not exist``
GET    /v2/tasks                          ``status`` (``running``, ``staging``; repeatable,
                                          ``status[]`` too; unknown values are ignored)
POST   /v2/tasks/delete                   ``{"ids": [...]}`` with ``scale``/``wipe``/
                                          ``force``: 200 ``{"tasks"}`` or a deployment
====== ================================== =================================================

``scale`` with ``wipe`` is a 400, as in Marathon. Tasks are shown through
``apps.task_to_client`` (only keys the ``marathon`` client's ``MarathonTask`` takes).
Where this differs: ``POST /v2/tasks/delete?scale=true`` naming no known task is the
service's 404 (Marathon starts an empty deployment); without ``scale`` it is 200
``{"tasks": []}`` as in Marathon.
"""

from __future__ import annotations

from aiohttp import web

from corral.marathon import apps
from corral.marathon.apps import AppError
from corral.marathon.http_common import (
    Obj,
    absolute,
    deployment_response,
    json_response,
    no_scale_and_wipe,
    read_json,
    service,
    under,
    unknown_app,
    unknown_group,
    values,
)
from corral.marathon.service_api import Deployment, NotFound, Service

__all__ = ["app_tasks", "kill_app_task", "kill_app_tasks", "routes"]

#: ``TasksResource.toTaskState``: the ``status`` values and the states they keep
STATUS_STATES = {"running": "TASK_RUNNING", "staging": "TASK_STAGING"}


def _tasks_body(tasks: list[Obj]) -> web.Response:
    return json_response({"tasks": [apps.task_to_client(t) for t in tasks]})


def _app_tasks(svc: Service, app_path: str) -> list[Obj]:
    """The tasks of an app (404 if unknown), or of every app in ``group/*``."""
    if app_path == "*" or app_path.endswith("/*"):
        group_id = absolute(app_path[:-1])
        if group_id not in svc.group_ids():
            raise unknown_group(group_id)
        return [t for t in svc.tasks() if under(str(t.get("appId", "")), group_id)]
    app_id = absolute(app_path)
    if svc.app(app_id) is None:
        raise unknown_app(app_id)
    return svc.tasks(app_id)


def app_tasks(request: web.Request, app_path: str) -> web.Response:
    """GET ``/v2/apps/{id}/tasks``."""
    return _tasks_body(_app_tasks(service(request), app_path))


async def _kill(
    svc: Service, app_id: str, task_ids: list[str], *, scale: bool, wipe: bool, force: bool
) -> Deployment | list[Obj]:
    if not task_ids:
        if not scale:
            return []
        # nothing to kill: Marathon still answers a (no-op) deployment for the app
        app = svc.app(app_id) or {}
        same = {k: v for k, v in app.items() if k not in ("version", "versionInfo")}
        return await svc.deploy({app_id: same}, force=force)
    return await svc.kill_tasks(task_ids, scale=scale, wipe=wipe, force=force)


async def kill_app_tasks(request: web.Request, app_path: str) -> web.Response:
    """DELETE ``/v2/apps/{id}/tasks?host=&scale=&wipe=&force=``."""
    scale, wipe, force = no_scale_and_wipe(request)
    svc = service(request)
    app_id = absolute(app_path)
    if svc.app(app_id) is None:
        raise unknown_app(app_id)
    host = request.query.get("host")
    tasks = [
        t
        for t in svc.tasks(app_id)
        if host is None or host == "*" or host in str(t.get("host", ""))
    ]
    result = await _kill(svc, app_id, [t["id"] for t in tasks], scale=scale, wipe=wipe, force=force)
    if isinstance(result, Deployment):
        return deployment_response(result)
    return _tasks_body(result)


async def kill_app_task(request: web.Request, app_path: str, task_id: str) -> web.Response:
    """DELETE ``/v2/apps/{id}/tasks/{taskId}?scale=&wipe=&force=``."""
    scale, wipe, force = no_scale_and_wipe(request)
    svc = service(request)
    app_id = absolute(app_path)
    if svc.app(app_id) is None:
        raise unknown_app(app_id)
    if not any(t.get("id") == task_id for t in svc.tasks(app_id)):
        raise NotFound(f"Task '{task_id}' does not exist")
    result = await svc.kill_tasks([task_id], scale=scale, wipe=wipe, force=force)
    if isinstance(result, Deployment):
        return deployment_response(result)
    if not result:
        raise NotFound(f"Task '{task_id}' does not exist")
    return json_response({"task": apps.task_to_client(result[0])})


async def list_tasks(request: web.Request) -> web.Response:
    """GET ``/v2/tasks?status=running``."""
    wanted = {
        STATUS_STATES[s.lower()]
        for s in values(request, "status", "status[]")
        if s.lower() in STATUS_STATES
    }
    tasks = service(request).tasks()
    return _tasks_body([t for t in tasks if not wanted or t.get("state") in wanted])


async def delete_tasks(request: web.Request) -> web.Response:
    """POST ``/v2/tasks/delete?scale=&wipe=&force=`` with ``{"ids": [...]}``."""
    scale, wipe, force = no_scale_and_wipe(request)
    body = await read_json(request)
    ids = body.get("ids") if isinstance(body, dict) else None
    if not isinstance(body, dict) or ids is None:
        raise AppError.at("/ids", apps.E_MISSING, message=apps.INVALID_JSON)
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise AppError.at("/ids", apps.E_ARR, message=apps.INVALID_JSON)
    svc = service(request)
    known = {t["id"] for t in svc.tasks()}
    if not scale and not known & set(ids):
        return _tasks_body([])
    result = await svc.kill_tasks(list(dict.fromkeys(ids)), scale=scale, wipe=wipe, force=force)
    if isinstance(result, Deployment):
        return deployment_response(result)
    return _tasks_body(result)


def routes(router: web.UrlDispatcher) -> None:
    router.add_get("/v2/tasks", list_tasks)
    router.add_post("/v2/tasks/delete", delete_tasks)
