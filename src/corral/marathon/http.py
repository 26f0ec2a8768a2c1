"""Marathon's v2 REST API as an aiohttp app over a ``service_api.Service``.

``make_app(service, events)`` is what ``corral marathon`` and ``corral up`` serve (port
8080 by default). It answers what the ``marathon`` 0.13.0 Python client, Marathon's UI
and scripts call, with Marathon 1.10's paths, codes and bodies (mesosphere/marathon
``api/v2/*Resource.scala``, ``MarathonExceptionMapper``, the RAML in
``docs/docs/rest-api``); the wire notes are ``shared/reference/mesos-marathon-chronos-
wire.md`` section 4. The routes live in one module each:

- ``http_apps``: ``/v2/apps`` and ``/v2/apps/{id}`` (+ ``restart``, ``versions``);
- ``http_tasks``: ``/v2/apps/{id}/tasks``, ``/v2/tasks``, ``POST /v2/tasks/delete``;
- ``http_groups``: ``/v2/groups``;
- this module: ``/v2/queue`` (and ``DELETE /v2/queue/{id}/delay``: 204),
  ``/v2/deployments`` (``DELETE``: 200 and a rollback deployment, or 202 and no body
  with ``force``), ``/v2/info``, ``/ping``, ``/metrics`` and ``/v2/events``
  (``events.stream``);
- ``standby``: ``/v2/leader`` (``GET``; ``DELETE`` abdicates) and what a standby does
  with every other request when several instances run (passes it on to the leader);
- ``http_common``: error bodies, flags, ids, rendering apps.

The handlers only translate (parse, call the service, render); the state and every
change belong to the service, which raises ``service_api``'s typed errors. The one
exception is ``api_post_event``, which Marathon's REST layer publishes, so this one does.

Everything the service returns is filtered down to the keys the client's models take
(its constructors refuse unknown keys): apps by ``apps.to_client``, tasks by
``apps.task_to_client``, deployments, queue items and ``/v2/info`` here.

``/ping`` follows ``SystemResource.ping``: ``"pong"`` as JSON when the client accepts
``application/json`` and not text (as the ``marathon`` client does), else ``pong`` as
text/plain.

Where this differs from Marathon, on purpose: ``Location`` is the created resource's
absolute URL (``http://host/v2/apps/web``; Jersey resolves Marathon's relative ``/web``
against the server root); an unknown path is 404 (Marathon's exception mapper makes it
a 500); ``/v2/events`` without ``Accept: text/event-stream`` is 406 (Jetty: 405);
group versions come from the apps' versions (``http_groups``); ``PUT
/v2/groups/{id}/versions/{v}`` rolls back, as the client's ``rollback_group`` expects.
Not served: ``/v2/eventSubscriptions`` (HTTP callbacks, removed in Marathon 1.x), ``/v2/pods``,
``text/plain`` task lists and ``dryRun`` group updates.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from corral.client.reviews import Reviewer
from corral.marathon import apps, auth, http_apps, http_groups, http_tasks, standby
from corral.marathon import events as events_
from corral.marathon.events import EventBus
from corral.marathon.http_common import (
    EVENTS_KEY,
    SERVICE_KEY,
    Obj,
    absolute,
    deployment_response,
    empty,
    errors,
    flag,
    json_response,
    service,
    tail,
    values,
)
from corral.marathon.service_api import Deployment, Service

__all__ = ["make_app"]

_DEPLOYMENT_KEYS = (
    "id",
    "version",
    "affectedApps",
    "affectedPods",
    "steps",
    "currentActions",
    "currentStep",
    "totalSteps",
)
_ACTION_KEYS = ("action", "app", "apps", "type", "readinessCheckResults", "pod")
_QUEUE_KEYS = ("count", "delay", "since", "processedOffersSummary", "overdue")
_INFO_KEYS = (
    "name",
    "version",
    "buildref",
    "elected",
    "leader",
    "frameworkId",
    "http_config",
    "marathon_config",
    "zookeeper_config",
    "event_subscriber",
)
_HTTP_CONFIG_KEYS = ("http_port", "https_port", "assets_path")
_ZK_CONFIG_KEYS = (
    "zk",
    "zk_timeout",
    "zk_session_timeout",
    "zk_max_versions",
    "zk_compression",
    "zk_compression_threshold",
    "zk_max_node_size",
    "zk_connection_timeout",
    "zk_hosts",
    "zk_path",
    "zk_state",
    "zk_future_timeout",
)
#: ``MarathonConfig.__init__`` in the client's ``models/info.py``
_MARATHON_CONFIG_KEYS = (
    "checkpoint",
    "executor",
    "failover_timeout",
    "framework_name",
    "ha",
    "hostname",
    "leader_proxy_connection_timeout_ms",
    "leader_proxy_read_timeout_ms",
    "local_port_min",
    "local_port_max",
    "maintenance_mode",
    "master",
    "mesos_leader_ui_url",
    "mesos_role",
    "mesos_user",
    "new_group_enforce_role",
    "webui_url",
    "reconciliation_initial_delay",
    "reconciliation_interval",
    "task_launch_timeout",
    "marathon_store_timeout",
    "task_reservation_timeout",
    "features",
    "access_control_allow_origin",
    "decline_offer_duration",
    "default_network_name",
    "env_vars_prefix",
    "launch_token",
    "launch_token_refresh_interval",
    "max_instances_per_offer",
    "mesos_bridge_name",
    "mesos_heartbeat_failure_threshold",
    "mesos_heartbeat_interval",
    "min_revive_offers_interval",
    "offer_matching_timeout",
    "on_elected_prepare_timeout",
    "revive_offers_for_new_apps",
    "revive_offers_repetitions",
    "scale_apps_initial_delay",
    "scale_apps_interval",
    "store_cache",
    "task_launch_confirm_timeout",
    "task_lost_expunge_initial_delay",
    "task_lost_expunge_interval",
)


def _pick(obj: Mapping[str, Any], keys: tuple[str, ...]) -> Obj:
    return {k: obj[k] for k in keys if k in obj}


# --- deployments -----------------------------------------------------------------------


def _deployment_to_client(d: Mapping[str, Any]) -> Obj:
    out = _pick(d, _DEPLOYMENT_KEYS)
    out["steps"] = [
        {"actions": [_pick(a, _ACTION_KEYS) for a in step.get("actions", [])]}
        for step in out.get("steps", [])
    ]
    out["currentActions"] = [_pick(a, _ACTION_KEYS) for a in out.get("currentActions", [])]
    return out


async def list_deployments(request: web.Request) -> web.Response:
    return json_response([_deployment_to_client(d) for d in service(request).deployments()])


async def cancel_deployment(request: web.Request) -> web.Response:
    """DELETE ``/v2/deployments/{id}``: a rollback deployment, or 202 with ``force``."""
    result = await service(request).cancel_deployment(
        request.match_info["id"], force=flag(request, "force")
    )
    if isinstance(result, Deployment):
        return deployment_response(result)
    return empty(202)


# --- queue -----------------------------------------------------------------------------


def _queue_item(item: Mapping[str, Any], embed_offers: bool) -> Obj:
    out = _pick(item, _QUEUE_KEYS)
    if isinstance(item.get("app"), Mapping):
        out["app"] = apps.to_client(item["app"])
    if isinstance(out.get("delay"), Mapping):
        out["delay"] = _pick(out["delay"], ("timeLeftSeconds", "overdue"))
    if embed_offers and "lastUnusedOffers" in item:
        out["lastUnusedOffers"] = item["lastUnusedOffers"]
    return out


async def list_queue(request: web.Request) -> web.Response:
    embed_offers = "lastUnusedOffers" in values(request, "embed")
    items = [_queue_item(i, embed_offers) for i in service(request).queue()]
    return json_response({"queue": items})


async def reset_delay(request: web.Request) -> web.Response:
    """DELETE ``/v2/queue/{id}/delay``: 204; the service's 404 when not queued."""
    path = tail(request)
    if not (path == "delay" or path.endswith("/delay")):
        raise web.HTTPNotFound()
    await service(request).reset_delay(absolute(path[: -len("delay")]))
    return empty(204)


# --- the rest --------------------------------------------------------------------------


async def info(request: web.Request) -> web.Response:
    raw = service(request).info()
    out = _pick(raw, _INFO_KEYS)
    out["http_config"] = _pick(raw.get("http_config") or {}, _HTTP_CONFIG_KEYS)
    out["zookeeper_config"] = _pick(raw.get("zookeeper_config") or {}, _ZK_CONFIG_KEYS)
    out["marathon_config"] = _pick(raw.get("marathon_config") or {}, _MARATHON_CONFIG_KEYS)
    if isinstance(raw.get("event_subscriber"), Mapping):
        out["event_subscriber"] = _pick(raw["event_subscriber"], ("type", "http_endpoints"))
    return json_response(out)


def _accepts(request: web.Request) -> list[str]:
    return [
        media.split(";")[0].strip().lower()
        for value in request.headers.getall("Accept", [])
        for media in value.split(",")
    ]


async def ping(request: web.Request) -> web.Response:
    accepted = _accepts(request)
    textual = any(m.startswith("text/") or m == "*/*" for m in accepted)
    if not textual and ("application/json" in accepted or "application/*" in accepted):
        return web.Response(text='"pong"', content_type="application/json")
    return web.Response(text="pong", content_type="text/plain")


async def metrics(request: web.Request) -> web.Response:
    return json_response(service(request).metrics())


async def event_stream(request: web.Request) -> web.StreamResponse:
    return await events_.stream(request, request.app[EVENTS_KEY])


async def _close_streams(app: web.Application) -> None:
    app[EVENTS_KEY].close_all()


def make_app(
    service: Service, events: EventBus, reviewer: Reviewer | None = None
) -> web.Application:
    """The Marathon REST API over ``service``, streaming ``events`` at ``/v2/events``;
    with a ``reviewer``, every request authenticated and authorized (``auth.py``)."""
    middlewares = [errors, standby.middleware]
    if reviewer is not None:
        middlewares.append(auth.middleware(reviewer))
    app = web.Application(middlewares=middlewares)
    app[SERVICE_KEY] = service
    standby.install(app)
    app[EVENTS_KEY] = events
    app.on_shutdown.append(_close_streams)
    r = app.router
    http_apps.routes(r)
    http_tasks.routes(r)
    http_groups.routes(r)
    r.add_get("/v2/deployments", list_deployments)
    r.add_delete("/v2/deployments/{id}", cancel_deployment)
    r.add_get("/v2/queue", list_queue)
    r.add_delete("/v2/queue/{tail:.+}", reset_delay)
    r.add_get("/v2/info", info)
    r.add_get("/ping", ping)
    r.add_get("/metrics", metrics)
    r.add_get("/v2/events", event_stream)
    return app
