"""``/v2/groups``: Marathon's ``GroupsResource`` and ``GroupApiService`` over the service.

Registered by ``http.make_app``. Group ids hold slashes: one route per method takes the
tail and the suffixes are parsed as Marathon's regexes do (``{id}/apps``,
``{id}/versions``, ``{id}/versions/{v}``):

====== ============================== =====================================================
GET    /v2/groups[/{id}]              the group; ``embed``: ``group.groups``,
                                      ``group.apps``, ``group.pods``, ``group.apps.<app
                                      embed>``; none given means the first three
GET    /v2/groups/{id}/apps           the apps below it (a bare list)
GET    /v2/groups/{id}/versions[/{v}] its versions (a bare list) / the group then
POST   /v2/groups[/{id}]              create (the body's ``id`` is relative to the URL's):
                                      201, ``Location``; 409 when it exists
PUT    /v2/groups[/{id}]              update or create; ``{"scaleBy": f}`` multiplies the
                                      instances below it (rounded up); ``{"version": v}``
                                      rolls it back (``PUT /v2/groups/{id}/versions/{v}``
                                      too, the ``marathon`` client's ``rollback_group``)
DELETE /v2/groups[/{id}]              remove it with everything below (root: everything)
====== ============================== =====================================================

An update follows ``GroupConversion``: a group's ``apps`` given replace its apps (the
ones left out are removed), ``groups`` given replace its child groups (each updated the
same way), ``dependencies`` given replace its dependencies; what is not given stays.

Versions: the service keeps each app's versions, not the root group's history as
Marathon does. A group's ``version`` is the newest version of an app below it, its
versions are those of the apps below it, and the group "at version V" is every app
below it at its newest version not after V. A rollback takes each app below the group
to that version (an app that did not exist then is removed); apps deleted since V do
not come back (their versions are gone, as in Marathon after an app's deletion).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from aiohttp import web

from corral.marathon import apps, groups
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
    unknown_group,
    values,
)
from corral.marathon.service_api import Conflict, Invalid, Service

__all__ = ["routes"]

GROUP_EMBEDS = frozenset({"group.groups", "group.apps", "group.pods"})
#: ``GroupApiService``: a rollback to a version the group never had (422)
NOT_AVAILABLE = "Group {id} not available in version {version}"


def _definition(app: Mapping[str, Any]) -> Obj:
    return {k: v for k, v in app.items() if k not in ("version", "versionInfo")}


def _apps_by_id(svc: Service) -> dict[str, Obj]:
    return {a["id"]: a for a in svc.apps()}


def _exists(svc: Service, group_id: str) -> bool:
    return group_id == "/" or group_id in svc.group_ids()


# --- reads -----------------------------------------------------------------------------


def _embeds(request: web.Request) -> tuple[set[str], set[str]]:
    """``InfoEmbedResolver.resolveAppGroup``: (app embeds, group embeds)."""
    given = values(request, "embed")
    embeds = set(given) if given else set(GROUP_EMBEDS)
    app_embed = apps.resolve_embed(e for e in embeds if e.startswith("group.apps."))
    return app_embed, embeds & GROUP_EMBEDS


def _version_under(app_list: Iterable[Mapping[str, Any]]) -> str | None:
    versions = [str(a["version"]) for a in app_list if a.get("version")]
    return max(versions) if versions else None


def _render_group(
    svc: Service,
    group_id: str,
    flat: Mapping[str, Obj],
    app_embed: set[str],
    group_embed: set[str],
) -> Obj:
    """The group as ``GroupInfo`` shows it, with only keys ``MarathonGroup`` takes."""
    deps = svc.group_dependencies()
    records: dict[str, Obj] = {
        g: {"dependencies": deps.get(g, [])} for g in svc.group_ids() if under(g, group_id)
    }
    node = groups.tree(flat, group_id=group_id, groups=records)

    def render(n: Obj) -> Obj:
        out: Obj = {"id": n["id"], "dependencies": list(n.get("dependencies") or [])}
        version = _version_under(a for a in flat.values() if under(a["id"], n["id"]))
        if version is not None:
            out["version"] = version
        if "group.apps" in group_embed:
            out["apps"] = [render_app(svc, a, app_embed) for a in n["apps"]]
        if "group.groups" in group_embed:
            out["groups"] = [render(g) for g in n["groups"]]
        if "group.pods" in group_embed:
            out["pods"] = []
        return out

    return render(node)


def _versions(svc: Service, group_id: str) -> list[str]:
    """Every version of an app below the group, newest first."""
    seen: set[str] = set()
    for app_id in _apps_by_id(svc):
        if under(app_id, group_id):
            seen.update(svc.app_versions(app_id) or [])
    return sorted(seen, reverse=True)


def _apps_at(svc: Service, group_id: str, version: str) -> dict[str, Obj]:
    """The apps below the group at their newest version not after ``version``."""
    out: dict[str, Obj] = {}
    for app_id in _apps_by_id(svc):
        if not under(app_id, group_id):
            continue
        older = [v for v in svc.app_versions(app_id) or [] if v <= version]
        if older:
            app = svc.app_version(app_id, max(older))
            if app is not None:
                out[app_id] = app
    return out


def _canonical_version(raw: str) -> str:
    try:
        return apps.timestamp(raw)
    except (TypeError, ValueError, OverflowError):
        return raw


async def get_group(request: web.Request) -> web.Response:
    svc = service(request)
    path = tail(request)
    app_embed, group_embed = _embeds(request)
    head, _, last = path.rpartition("/")
    if path == "apps" or path.endswith("/apps"):
        group_id = absolute(split_suffix(path, "apps")[0])
        shown = [render_app(svc, a, app_embed) for a in svc.apps() if under(a["id"], group_id)]
        return json_response(shown)
    group_path, suffix = split_suffix(path, "versions")
    if suffix == "versions":
        group_id = absolute(group_path)
        if not _exists(svc, group_id):
            raise unknown_group(group_id)
        return json_response(_versions(svc, group_id))
    if head == "versions" or head.endswith("/versions"):
        group_id = absolute(split_suffix(head, "versions")[0])
        version = _canonical_version(last)
        if not _exists(svc, group_id) or version not in _versions(svc, group_id):
            raise unknown_group(group_id, last)
        flat = _apps_at(svc, group_id, version)
        return json_response(_render_group(svc, group_id, flat, app_embed, group_embed))
    group_id = absolute(path)
    if not _exists(svc, group_id):
        raise unknown_group(group_id)
    flat = {a["id"]: a for a in svc.apps() if under(a["id"], group_id)}
    return json_response(_render_group(svc, group_id, flat, app_embed, group_embed))


# --- changes ---------------------------------------------------------------------------


class _Change:
    """The apps and groups one request changes, gathered for ``Service.deploy``."""

    def __init__(self, svc: Service) -> None:
        self.apps = _apps_by_id(svc)
        self.group_ids = set(svc.group_ids()) | {"/"}
        self.deps = svc.group_dependencies()
        self.app_changes: dict[str, Obj | None] = {}
        self.group_changes: dict[str, Obj | None] = {}

    def put(self, app: Obj) -> None:
        """Change ``app`` unless it is stored as it is (an unchanged app is no change, so
        no lock either)."""
        stored = self.apps.get(app["id"])
        if stored is None or _definition(stored) != app:
            self.app_changes[app["id"]] = app

    def remove_tree(self, group_id: str) -> None:
        for app_id in self.apps:
            if under(app_id, group_id):
                self.app_changes[app_id] = None
        for gid in self.group_ids:
            if gid != "/" and under(gid, group_id):
                self.group_changes[gid] = None

    def ensure_parents(self, group_id: str) -> None:
        parent = apps.parent_id(group_id)
        while parent != "/" and parent not in self.group_ids:
            self.group_changes.setdefault(parent, {"dependencies": []})
            parent = apps.parent_id(parent)

    def update(self, norm: Obj, raw: Any) -> None:
        """``GroupConversion``: ``norm`` (``groups.normalize_group``) over the stored
        group; ``raw`` (the body) says which of apps, groups, dependencies were given."""
        raw = raw if isinstance(raw, dict) else {}
        gid = norm["id"]
        if gid != "/":
            given = raw.get("dependencies") is not None
            deps = norm["dependencies"] if given else self.deps.get(gid, [])
            self.group_changes[gid] = {"dependencies": list(deps)}
        if raw.get("apps") is not None:
            kept = {a["id"] for a in norm["apps"]}
            for app_id in self.apps:
                if apps.parent_id(app_id) == gid and app_id not in kept:
                    self.app_changes[app_id] = None
            for app in norm["apps"]:
                self.put(app)
        if raw.get("groups") is not None:
            raw_children = {
                apps.canonical_id(r["id"], gid): r
                for r in raw["groups"]
                if isinstance(r, dict) and isinstance(r.get("id"), str)
            }
            kept = {g["id"] for g in norm["groups"]}
            for child in self.group_ids:
                if child != gid and apps.parent_id(child) == gid and child not in kept:
                    self.remove_tree(child)
            for child_norm in norm["groups"]:
                self.update(child_norm, raw_children.get(child_norm["id"]))

    async def deploy(self, request: web.Request) -> Any:
        svc = service(request)
        deployment = await svc.deploy(
            self.app_changes, force=flag(request, "force"), groups=self.group_changes
        )
        for app in self.app_changes.values():
            if app is not None:
                api_post_event(request, stored_or(svc, app))
        return deployment


def _scale(change: _Change, group_id: str, factor: float) -> None:
    below = {i: a for i, a in change.apps.items() if under(i, group_id)}
    for app in groups.scale_by(below, group_id, factor).values():
        change.put(_definition(app))


def _rollback(svc: Service, change: _Change, group_id: str, raw_version: str) -> None:
    version = _canonical_version(raw_version)
    if version not in _versions(svc, group_id):
        # GroupApiService's IllegalArgumentException: 422 with just the message
        raise Invalid({"message": NOT_AVAILABLE.format(id=group_id, version=raw_version)})
    then = _apps_at(svc, group_id, version)
    for app_id in change.apps:
        if under(app_id, group_id):
            old = then.get(app_id)
            if old is None:
                change.app_changes[app_id] = None
            else:
                change.put(_definition(old))


async def _action(request: web.Request, group_id: str, action: tuple[str, Any]) -> web.Response:
    svc = service(request)
    if not _exists(svc, group_id):
        raise unknown_group(group_id)
    change = _Change(svc)
    key, value = action
    if key == "scaleBy":
        _scale(change, group_id, float(value))
    else:
        _rollback(svc, change, group_id, str(value))
    return deployment_response(await change.deploy(request))


async def create_group(request: web.Request) -> web.Response:
    """POST ``/v2/groups[/{id}]``."""
    svc = service(request)
    base = absolute(tail(request))
    body = await read_json(request)
    action = groups.group_action(body)
    if action is not None:
        return await _action(request, base, action)
    change = _Change(svc)
    norm = groups.normalize_group(body, group_id=base, existing=change.apps)
    gid = norm["id"]
    if gid in change.group_ids:
        raise Conflict(f"Group {gid} is already created. Use PUT to change this group.")
    if gid in change.apps:
        raise Conflict(f"An app with the path {gid} already exists.")
    change.ensure_parents(gid)
    change.update(norm, body)
    deployment = await change.deploy(request)
    headers = {DEPLOYMENT_HEADER: deployment.id, "Location": location(request, f"/v2/groups{gid}")}
    return json_response(deployment.body(), 201, headers)


async def update_group(request: web.Request) -> web.Response:
    """PUT ``/v2/groups[/{id}]`` (and ``/v2/groups/{id}/versions/{v}``: a rollback)."""
    svc = service(request)
    path = tail(request)
    head, _, last = path.rpartition("/")
    if head == "versions" or head.endswith("/versions"):
        group_id = absolute(split_suffix(head, "versions")[0])
        return await _action(request, group_id, ("version", last))
    base = absolute(path)
    body = await read_json(request)
    action = groups.group_action(body)
    if action is not None:
        return await _action(request, base, action)
    change = _Change(svc)
    norm = groups.normalize_group(body, group_id=base, existing=change.apps)
    if norm["id"] in change.apps:
        raise Conflict(f"An app with the path {norm['id']} already exists.")
    change.ensure_parents(norm["id"])
    change.update(norm, body)
    return deployment_response(await change.deploy(request))


async def delete_group(request: web.Request) -> web.Response:
    """DELETE ``/v2/groups[/{id}]``."""
    svc = service(request)
    group_id = absolute(tail(request))
    if not _exists(svc, group_id):
        raise unknown_group(group_id)
    change = _Change(svc)
    change.remove_tree(group_id)
    return deployment_response(await change.deploy(request))


def routes(router: web.UrlDispatcher) -> None:
    for path in ("/v2/groups", "/v2/groups/{tail:.*}"):
        router.add_get(path, get_group)
        router.add_post(path, create_group)
        router.add_put(path, update_group)
        router.add_delete(path, delete_group)
