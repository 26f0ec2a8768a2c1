"""Marathon groups: a tree of apps (and groups) with ``dependencies``, read and validated
as ``POST``/``PUT /v2/groups`` bodies, flattened to the apps the rest of Corral keeps, and
the order in which a deployment touches them.

Pure. ``http.py`` calls ``group_action`` then ``normalize_group`` on a group body (an
``AppError`` is the 422 answer, nothing is stored), ``flatten`` to get the apps to store,
``tree`` and ``to_client`` to answer ``GET /v2/groups``; ``plan.py`` calls
``start_order``/``stop_order``.

The rules are Marathon 1.10's (``GroupsResource``, ``GroupNormalization``,
``raml/GroupConversion``, ``state/Group.validNestedGroupUpdateWithBase``,
``state/RootGroup``):

- a group's ``id`` is relative to the URL's group (``POST /v2/groups/{id}``), a nested
  group's and an app's to the group they are in, and must name a direct child of it
  (``Identifier is not child of '/product'``); ``..`` and ``.`` are resolved, ``//``
  collapsed;
- an app's ``dependencies`` are relative to its group, a group's to the group itself
  (``["../database"]`` on ``/product/service`` is ``/product/database``);
- ``enforceRole`` only on a top-level group, where it makes the group's name the apps'
  default and only role;
- ``scaleBy`` and ``version`` must come alone (``not allowed in conjunction with other
  properties.``): they are not structural updates (``group_action``, ``scale_by``);
- a dependency on an app id means that app, on a group id every app under it; a group's
  dependency (on a group) is every one of its apps depending on every app of that
  group (``RootGroup.applicationDependencies``); a cycle is ``Dependency graph has cyclic
  dependencies.``;
- apps start in layers of the longest dependency chain below them (``DeploymentPlan.
  runSpecsGroupedByLongestPath``): apps with no dependencies first, each layer in
  parallel; they stop in the reverse order (as Marathon's ``deployments.md`` says; its
  code stops all removed apps in one step).

Errors inside a group carry the group's path: ``/apps(0)/cpus``, ``/groups(1)/apps(0)/id``
(Marathon reports an app's own rule violations at the app's own paths).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from corral.marathon import apps as apps_
from corral.marathon.apps import (
    E_ARR,
    E_BOOL,
    E_MIN,
    E_MISSING,
    E_NUM,
    E_OBJ,
    E_PATTERN,
    E_STR,
    INVALID_JSON,
    AppError,
    canonical_id,
    parent_id,
)

__all__ = [
    "CYCLE_MESSAGE",
    "dependency_edges",
    "flatten",
    "group_action",
    "group_dependencies",
    "normalize_group",
    "scale_by",
    "start_order",
    "stop_order",
    "to_client",
    "tree",
]

Obj = dict[str, Any]

CYCLE_MESSAGE = "Dependency graph has cyclic dependencies."
ALONE_MESSAGE = "not allowed in conjunction with other properties."
SAME_ID_MESSAGE = "Groups and Applications may not have the same identifier."


def _child_message(parent: str) -> str:
    return f"Identifier is not child of '{parent}'"


def group_action(body: Any) -> tuple[str, Any] | None:
    """``("scaleBy", factor)`` or ``("version", v)`` for a body that scales or rolls back
    a group, None for a structural update; an ``AppError`` when either comes with any
    other field (``theOnlyDefinedOptionIn``) or is not a number / string."""
    if not isinstance(body, dict):
        return None
    given = [k for k, v in body.items() if v is not None and k in _GROUP_KEYS]
    for key in ("scaleBy", "version"):
        if body.get(key) is None:
            continue
        if len(given) > 1:
            raise AppError.at(f"/{key}", ALONE_MESSAGE)
        value = body[key]
        if key == "version" and not isinstance(value, str):
            raise AppError.at("/version", E_STR, message=INVALID_JSON)
        if key == "scaleBy":
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise AppError.at("/scaleBy", E_NUM, message=INVALID_JSON)
            if not math.isfinite(value) or value < 0:
                raise AppError.at("/scaleBy", E_MIN, message=INVALID_JSON)
            value = float(value)
        return key, value
    return None


_GROUP_KEYS = ("id", "apps", "groups", "dependencies", "scaleBy", "version", "enforceRole")


def normalize_group(
    body: Any,
    *,
    group_id: str = "/",
    existing: Mapping[str, Mapping[str, Any]] | None = None,
    enforce_role: bool | None = None,
) -> Obj:
    """Validate a group body posted at ``group_id`` and return it as ``{"id", "apps":
    [canonical apps], "groups": [...], "dependencies": [absolute ids], "enforceRole"}``;
    raise ``AppError`` otherwise. ``existing`` (stored apps by id) lets an app keep its
    current role; ``enforce_role`` is the top-level group's stored ``enforceRole`` when
    the body is for a group below it."""
    if group_action(body) is not None:
        raise ValueError("a scaleBy/version body: call group_action() instead")
    return _group(body, "", canonical_id(group_id), existing or {}, enforce_role)


def _group(
    body: Any,
    prefix: str,
    base: str,
    existing: Mapping[str, Mapping[str, Any]],
    enforce_role: bool | None,
) -> Obj:
    if not isinstance(body, dict):
        raise AppError.at(prefix or "/", E_OBJ, message=INVALID_JSON)
    gid = _read_id(body, prefix, base)
    top_level = gid != "/" and parent_id(gid) == "/"
    json_errors: list[Obj] = []  # the reader's: reported alone, as Marathon does
    errors: list[Obj] = []
    flag = body.get("enforceRole")
    if flag is not None and not isinstance(flag, bool):
        json_errors.append({"path": f"{prefix}/enforceRole", "errors": [E_BOOL]})
    elif flag and not top_level:
        message = f"enforceRole can only be set for top-level groups, and {gid} is not top-level"
        errors.append({"path": f"{prefix}/enforceRole", "errors": [message]})
    for key in ("scaleBy", "version"):
        if body.get(key) is not None:
            errors.append({"path": f"{prefix}/{key}", "errors": [ALONE_MESSAGE]})
    enforce = bool(flag) if top_level else bool(enforce_role)

    def collect(err: AppError) -> None:
        (json_errors if err.message == INVALID_JSON else errors).extend(err.details)

    apps: dict[str, Obj] = {}
    for i, raw in enumerate(_array(body, "apps", prefix)):
        where = f"{prefix}/apps({i})"
        try:
            app = apps_.normalize(
                raw, parent=gid, base=existing.get(_peek_id(raw, gid)), enforce_role=enforce
            )
        except AppError as err:
            collect(err.prefixed(where))
            continue
        if parent_id(app["id"]) != gid:
            errors.append({"path": f"{where}/id", "errors": [_child_message(gid)]})
        apps.pop(app["id"], None)
        apps[app["id"]] = app
    groups: dict[str, Obj] = {}
    for j, raw in enumerate(_array(body, "groups", prefix)):
        where = f"{prefix}/groups({j})"
        if isinstance(raw, dict) and raw.get("id") is None:
            json_errors.append({"path": f"{where}/id", "errors": [E_MISSING]})
            continue
        try:
            child = _group(raw, where, gid, existing, enforce)
        except AppError as err:
            collect(err)
            continue
        if parent_id(child["id"]) != gid:
            errors.append({"path": f"{where}/id", "errors": [_child_message(gid)]})
        groups.pop(child["id"], None)
        groups[child["id"]] = child
    dependencies: list[str] = []
    for k, dep in enumerate(_array(body, "dependencies", prefix)):
        where = f"{prefix}/dependencies({k})"
        if not isinstance(dep, str) or not dep or not apps_.path_id_ok(dep):
            code = E_STR if not isinstance(dep, str) else E_PATTERN
            json_errors.append({"path": where, "errors": [code]})
            continue
        resolved = canonical_id(dep, gid)
        messages = apps_.path_errors(resolved)
        if messages:
            errors.append({"path": where, "errors": messages})
        if resolved not in dependencies:
            dependencies.append(resolved)
    if set(apps) & set(groups):
        errors.append({"path": prefix or "/", "errors": [SAME_ID_MESSAGE]})
    if json_errors:
        raise AppError(_merge(json_errors), INVALID_JSON)
    if errors:
        raise AppError(_merge(errors))
    out: Obj = {
        "id": gid,
        "apps": list(apps.values()),
        "groups": list(groups.values()),
        "dependencies": dependencies,
    }
    if top_level:
        out["enforceRole"] = enforce
    return out


def _read_id(body: Obj, prefix: str, base: str) -> str:
    raw = body.get("id")
    if raw is None:
        return base
    if not isinstance(raw, str):
        raise AppError.at(f"{prefix}/id", E_STR, message=INVALID_JSON)
    if not raw or not apps_.path_id_ok(raw):
        raise AppError.at(f"{prefix}/id", E_PATTERN, message=INVALID_JSON)
    gid = canonical_id(raw, base)
    messages = apps_.path_errors(gid)
    if messages:
        raise AppError.at(f"{prefix}/id", *messages)
    return gid


def _peek_id(raw: Any, gid: str) -> str:
    if isinstance(raw, dict) and isinstance(raw.get("id"), str):
        return canonical_id(raw["id"], gid)
    return ""


def _array(body: Obj, key: str, prefix: str) -> list[Any]:
    value = body.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise AppError.at(f"{prefix}/{key}", E_ARR, message=INVALID_JSON)
    return value


def _merge(details: Iterable[Obj]) -> list[Obj]:
    by_path: dict[str, list[str]] = {}
    for d in details:
        errors = by_path.setdefault(d["path"], [])
        errors.extend(x for x in d["errors"] if x not in errors)
    return [{"path": p, "errors": e} for p, e in by_path.items()]


def flatten(group: Mapping[str, Any]) -> dict[str, Obj]:
    """Every app in the tree, by id."""
    out: dict[str, Obj] = {a["id"]: dict(a) for a in group.get("apps", [])}
    for child in group.get("groups", []):
        out.update(flatten(child))
    return out


def group_dependencies(group: Mapping[str, Any]) -> dict[str, list[str]]:
    """Each group's own ``dependencies``, by group id (the groups that have some)."""
    out: dict[str, list[str]] = {}
    if group.get("dependencies"):
        out[group["id"]] = list(group["dependencies"])
    for child in group.get("groups", []):
        out.update(group_dependencies(child))
    return out


def _under(app_id: str, group_id: str) -> bool:
    return group_id == "/" or app_id.startswith(group_id + "/")


def dependency_edges(
    apps: Mapping[str, Mapping[str, Any]], group_deps: Mapping[str, Iterable[str]] | None = None
) -> dict[str, set[str]]:
    """``RootGroup.applicationDependencies``: each app id to the ids of the apps it
    depends on (an app's dependency on a group: every app under it; a group's dependency
    on a group: each of its apps on every app of the other). Ids that name nothing are
    ignored, as Marathon does."""
    edges: dict[str, set[str]] = {app_id: set() for app_id in apps}
    for app_id, app in apps.items():
        for dep in app.get("dependencies") or []:
            if dep in apps:
                edges[app_id].add(dep)
            else:
                edges[app_id].update(a for a in apps if _under(a, dep))
    for group_id, deps in (group_deps or {}).items():
        members = [a for a in apps if _under(a, group_id)]
        for dep in deps:
            targets = [a for a in apps if _under(a, dep)]
            for member in members:
                edges[member].update(targets)
    return edges


def _depths(edges: Mapping[str, set[str]]) -> dict[str, int]:
    """The number of apps on the longest dependency chain from each app (itself
    included); ``AppError`` on a cycle."""
    depth: dict[str, int] = {}
    state: dict[str, int] = {}  # 1 visiting, 2 done
    for start in sorted(edges):
        if start in depth:
            continue
        stack: list[tuple[str, list[str]]] = [(start, sorted(edges[start]))]
        state[start] = 1
        while stack:
            node, todo = stack[-1]
            if todo:
                nxt = todo.pop()
                if state.get(nxt) == 1:
                    raise AppError.at("/", CYCLE_MESSAGE)
                if state.get(nxt) != 2:
                    state[nxt] = 1
                    stack.append((nxt, sorted(edges.get(nxt, ()))))
                continue
            depth[node] = 1 + max((depth[d] for d in edges[node]), default=0)
            state[node] = 2
            stack.pop()
    return depth


def start_order(
    apps: Mapping[str, Mapping[str, Any]],
    *,
    only: Iterable[str] | None = None,
    group_deps: Mapping[str, Iterable[str]] | None = None,
) -> list[list[str]]:
    """Layers of app ids, dependencies first: each layer holds the apps whose longest
    dependency chain has the same length (an app with none: the first layer), sorted.
    The chains run through all of ``apps``; ``only`` keeps just those ids in the layers.
    An ``AppError`` (``Dependency graph has cyclic dependencies.``) on a cycle."""
    depth = _depths(dependency_edges(apps, group_deps))
    keep = set(apps) if only is None else set(only) & set(apps)
    layers: dict[int, list[str]] = {}
    for app_id in sorted(keep):
        layers.setdefault(depth[app_id], []).append(app_id)
    return [layers[d] for d in sorted(layers)]


def stop_order(
    apps: Mapping[str, Mapping[str, Any]],
    *,
    only: Iterable[str] | None = None,
    group_deps: Mapping[str, Iterable[str]] | None = None,
) -> list[list[str]]:
    """``start_order`` reversed: the apps that depend on others stop first."""
    return start_order(apps, only=only, group_deps=group_deps)[::-1]


def scale_by(apps: Mapping[str, Mapping[str, Any]], group_id: str, factor: float) -> dict[str, Obj]:
    """The apps under ``group_id`` with ``instances`` multiplied by ``factor`` and rounded
    up (``GroupApiService``: ``(instances * scaleBy).ceil``); the others unchanged."""
    gid = canonical_id(group_id)
    return {
        app_id: dict(app, instances=math.ceil(app["instances"] * factor))
        if _under(app_id, gid)
        else dict(app)
        for app_id, app in apps.items()
    }


def tree(
    apps: Mapping[str, Mapping[str, Any]],
    *,
    group_id: str = "/",
    groups: Mapping[str, Mapping[str, Any]] | None = None,
) -> Obj:
    """The group ``group_id`` built from flat apps: ``{"id", "apps", "groups",
    "dependencies"}`` (plus ``version``/``enforceRole`` from ``groups``, the stored group
    records by id, which also hold groups with no apps). Apps and groups sorted by id."""
    gid = canonical_id(group_id)
    records = groups or {}
    ids = {gid}
    for member in [*(parent_id(a) for a in apps), *records]:
        while member != gid and _under(member, gid) and member not in ids:
            ids.add(member)
            member = parent_id(member)

    def build(node: str) -> Obj:
        record = records.get(node, {})
        out: Obj = {
            "id": node,
            "apps": [
                dict(apps[a]) for a in sorted(apps) if parent_id(a) == node and _under(a, gid)
            ],
            "groups": [build(g) for g in sorted(ids) if g != node and parent_id(g) == node],
            "dependencies": list(record.get("dependencies") or []),
        }
        for key in ("version", "enforceRole"):
            if record.get(key) is not None:
                out[key] = record[key]
        return out

    return build(gid)


def to_client(
    group: Mapping[str, Any], *, render_app: Callable[[Mapping[str, Any]], Obj] | None = None
) -> Obj:
    """The group with only the keys ``MarathonGroup`` takes (``id, apps, groups, pods,
    dependencies, version``: no ``enforceRole``, which 0.13.0 refuses); its apps through
    ``render_app`` (default ``apps.to_client`` with no embeds)."""
    render = render_app or (lambda app: apps_.to_client(app))
    out: Obj = {
        "id": group["id"],
        "apps": [render(a) for a in group.get("apps", [])],
        "groups": [to_client(g, render_app=render_app) for g in group.get("groups", [])],
        "pods": [],
        "dependencies": list(group.get("dependencies") or []),
    }
    if group.get("version") is not None:
        out["version"] = group["version"]
    return out
