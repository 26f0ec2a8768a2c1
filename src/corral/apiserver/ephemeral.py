"""``pods/ephemeralcontainers``: the only way to add containers to a running Pod.

``ResourceHandler.subresource`` calls ``ephemeral_containers`` for ``GET``, ``PUT`` and
``PATCH .../pods/P/ephemeralcontainers`` (what ``kubectl debug`` sends: a strategic
merge patch adding one entry to ``spec.ephemeralContainers``). As upstream's
``EphemeralContainersREST`` and ``podEphemeralContainersStrategy``:

- the subresource reads and returns the whole Pod;
- a write takes *only* ``spec.ephemeralContainers`` from the body (PUT) or from the
  patched Pod (PATCH); everything else of the stored Pod stays as it is
  (``dropNonEphemeralContainerUpdates``), so the write goes through the store's
  transform path (``store.TRANSFORM_VALIDATED``), defaulted and validated here;
- validation (``ValidatePodEphemeralContainersUpdate``): existing ephemeral containers
  may be neither removed nor changed; a new one passes the checks of a Pod's containers
  (``podspec``: DNS-label name, image, pull policy, env names, mounts of the Pod's
  volumes), has a name unique among all the Pod's containers (new entries included), and
  none of ``ports``, ``resources``, probes, ``lifecycle``, ``resizePolicy``,
  ``restartPolicy``, a mount's ``subPath`` or ``subPathExpr`` (Forbidden: ``cannot be
  set for an Ephemeral Container``); ``targetContainerName`` must name one of
  ``spec.containers`` or ``spec.initContainers``.

The pure part (``default_ephemeral``, ``validate_ephemeral_update``) is unit-tested
without a server; the node agent starts what is added (``agent/ephemeral.py``).
"""

from __future__ import annotations

import copy
from typing import Any

import orjson
from aiohttp import web

from corral.api import errors
from corral.api.errors import FieldError
from corral.apiserver.registry.base import ResourceInfo
from corral.apiserver.registry.podspec import _validate_container, default_container
from corral.apiserver.store import (
    JSON_PATCH,
    MERGE_PATCH,
    STRATEGIC_PATCH,
    Registry,
    WriteOptions,
    apply_patch,
)

Obj = dict[str, Any]

SUBRESOURCE = "ephemeralcontainers"
PATCH_TYPES = (JSON_PATCH, MERGE_PATCH, STRATEGIC_PATCH)
#: container fields an ephemeral container may not set (upstream's list, in its order)
FORBIDDEN_FIELDS = (
    "lifecycle",
    "livenessProbe",
    "ports",
    "readinessProbe",
    "resources",
    "resizePolicy",
    "startupProbe",
    "restartPolicy",
)
CANNOT_BE_SET = "cannot be set for an Ephemeral Container"


# --- pure -------------------------------------------------------------------------------------
def default_ephemeral(spec: Obj) -> None:
    """The container defaults (pull policy, termination message) on each entry."""
    for c in spec.get("ephemeralContainers") or []:
        if isinstance(c, dict):
            default_container(c)


def _names(spec: Obj, key: str) -> list[str]:
    return [str(c.get("name")) for c in spec.get(key) or [] if isinstance(c, dict)]


def validate_ephemeral_update(new: Obj, old: Obj) -> list[FieldError]:
    """Field errors of a change of ``spec.ephemeralContainers`` from ``old`` to ``new``."""
    path = "spec.ephemeralContainers"
    new_spec, old_spec = new.get("spec") or {}, old.get("spec") or {}
    new_ecs = new_spec.get("ephemeralContainers") or []
    if not isinstance(new_ecs, list) or not all(isinstance(c, dict) for c in new_ecs):
        return [errors.invalid(path, None, "must be a list of ephemeral containers")]
    errs: list[FieldError] = []
    by_name = {str(c.get("name")): c for c in new_ecs}
    old_names = set()
    for o in old_spec.get("ephemeralContainers") or []:
        name = str(o.get("name"))
        old_names.add(name)
        now = by_name.get(name)
        if now is None:
            errs.append(
                errors.forbidden(
                    path, f'existing ephemeral containers "{name}" may not be removed\n'
                )
            )
        elif now != o:
            errs.append(
                errors.forbidden(
                    f"{path}[{name}]",
                    f'existing ephemeral containers "{name}" may not be changed\n',
                )
            )
    regular = _names(new_spec, "containers") + _names(new_spec, "initContainers")
    volumes = {str(v.get("name")) for v in new_spec.get("volumes") or [] if isinstance(v, dict)}
    seen = set(regular)
    unmatched_old = set(old_names)  # each existing entry excuses one new entry, not two
    for i, c in enumerate(new_ecs):
        p = f"{path}[{i}]"
        name = c.get("name")
        if name in unmatched_old:
            unmatched_old.discard(str(name))
            seen.add(str(name))
            continue
        # the per-container checks of a Pod's containers (name, image, pull policy, env,
        # mounts of existing volumes), on the entry as it is stored (defaulted)
        checked = copy.deepcopy(c)
        default_container(checked)
        checked.setdefault("imagePullPolicy", "Always")  # upstream's default for no image
        errs.extend(_validate_container(checked, p, volumes))
        if isinstance(name, str) and name:
            if name in seen:
                errs.append(errors.duplicate(f"{p}.name", name))
            seen.add(name)
        for key in FORBIDDEN_FIELDS:
            if c.get(key):
                errs.append(errors.forbidden(f"{p}.{key}", CANNOT_BE_SET))
        for j, m in enumerate(c.get("volumeMounts") or []):
            for key in ("subPath", "subPathExpr"):
                if isinstance(m, dict) and m.get(key):
                    errs.append(errors.forbidden(f"{p}.volumeMounts[{j}].{key}", CANNOT_BE_SET))
        target = c.get("targetContainerName")
        if target and target not in regular:
            errs.append(FieldError("FieldValueNotFound", f"{p}.targetContainerName", target))
    return errs


def with_ephemeral(cur: Obj, source: Obj) -> Obj:
    """``cur`` with ``source``'s ``spec.ephemeralContainers`` (defaulted), nothing else."""
    out = copy.deepcopy(cur)
    spec = out.setdefault("spec", {})
    ecs = ((source.get("spec") or {}) if isinstance(source.get("spec"), dict) else {}).get(
        "ephemeralContainers"
    )
    if ecs:
        spec["ephemeralContainers"] = copy.deepcopy(ecs)
        default_ephemeral(spec)
    else:
        spec.pop("ephemeralContainers", None)
    return out


# --- the subresource ----------------------------------------------------------------------
async def ephemeral_containers(
    registry: Registry,
    request: web.Request,
    info: ResourceInfo,
    ns: str,
    name: str,
    body: Any,
    opts: WriteOptions,
) -> tuple[int, bytes]:
    """Serve one request: (HTTP code, the Pod's JSON). ``body`` is the decoded request
    body for PUT and PATCH (None for GET)."""
    method = request.method
    if method == "GET":
        return 200, registry.raw(info, registry.get(info, ns, name))
    if method not in ("PUT", "PATCH"):
        raise errors.method_not_allowed()
    if not isinstance(body, (dict, list)):
        raise errors.bad_request("the body of the request must be a Pod or a patch of one")
    precondition: str | None = None
    ct = ""
    if method == "PUT":
        assert isinstance(body, dict)
        registry.check_type(info, body)
        meta = body.get("metadata") or {}
        if meta.get("name") and meta["name"] != name:
            raise errors.bad_request(
                f"the name of the object ({meta['name']}) does not match the name on the URL ({name})"
            )
        precondition = meta.get("resourceVersion") or None
    else:
        ct = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if ct not in PATCH_TYPES:
            raise errors.unsupported_media_type(ct)

    def transform(cur: Obj) -> Obj:
        source = body if method == "PUT" else apply_patch(ct, cur, body, registry.schema(info))
        assert isinstance(source, dict)
        new = with_ephemeral(cur, source)
        errs = validate_ephemeral_update(new, cur)
        if errs:
            raise errors.invalid_object("Pod", "", name, errs)
        return new

    res = await registry._guaranteed_update(
        info, ns, name, transform, opts, SUBRESOURCE, precondition
    )
    return 200, res.raw or orjson.dumps(res.obj)
