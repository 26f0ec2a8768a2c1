"""Strategies for the replicated workloads: apps/v1 and core/v1 ReplicationController.

Deployment, ReplicaSet, DaemonSet, StatefulSet, ControllerRevision, and the legacy
ReplicationController (core group, but the same shape of rules, so it lives here). Each
workload defaults its pod template like a Pod (``podspec``), requires a selector that
matches the template labels, requires ``restartPolicy: Always`` in the template and keeps
its selector immutable, with the messages of ``pkg/apis/apps/validation``.

Called by the generic store through the registry table (``table.py``); ``batch.py``
reuses ``WorkloadStrategy`` and ``validate_selector_matches``.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any, ClassVar

from corral.api.errors import FieldError, forbidden, invalid, not_supported, required
from corral.api.validation import (
    IMMUTABLE_ERROR,
    go_intstr,
    go_label_selector,
    go_string_map,
    is_valid_percent,
    label_selector_is_empty,
    label_selector_matches,
    validate_enum,
    validate_label_selector,
    validate_labels,
    validate_nonnegative,
)
from corral.apiserver.registry.base import Obj, Strategy
from corral.apiserver.registry.podspec import (
    default_pod_template,
    template_labels,
    validate_pod_template,
)

SELECTOR_MISMATCH = "`selector` does not match template `labels`"
STS_UPDATE_FORBIDDEN = (
    "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', "
    "'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"
)
STS_MUTABLE = (
    "replicas",
    "ordinals",
    "template",
    "updateStrategy",
    "persistentVolumeClaimRetentionPolicy",
    "minReadySeconds",
)


class WorkloadStrategy(Strategy):
    """A kind with spec + status whose fresh status is ``{}`` (as Go serialises it)."""

    has_status = True

    def default_status(self, obj: Obj) -> None:
        obj["status"] = {}


def _spec(obj: Obj) -> Obj:
    spec = obj.get("spec")
    return spec if isinstance(spec, dict) else {}


def validate_selector_matches(spec: Obj, path: str, kind_word: str) -> list[FieldError]:
    """Selector required, non-empty, valid, and matching ``template.metadata.labels``."""
    sel = spec.get("selector")
    errs: list[FieldError] = []
    if sel is None:
        return [required(f"{path}.selector")]
    errs.extend(validate_label_selector(sel, f"{path}.selector"))
    if label_selector_is_empty(sel):
        errs.append(
            invalid(
                f"{path}.selector",
                go_label_selector(sel),
                f"empty selector is invalid for {kind_word}",
            )
        )
        return errs
    labels = template_labels(spec.get("template"))
    if not errs and not label_selector_matches(sel, labels):
        errs.append(
            invalid(f"{path}.template.metadata.labels", go_string_map(labels), SELECTOR_MISMATCH)
        )
    return errs


def validate_always_template(
    spec: Obj, path: str, deadline_msg: str | None, extra_volumes: Iterable[str] = ()
) -> list[FieldError]:
    """The pod template, which must restart Always and (for most kinds) have no deadline;
    mounts may name ``extra_volumes`` too (a StatefulSet's claim templates)."""
    template = spec.get("template")
    if not isinstance(template, dict):
        return [required(f"{path}.template")]
    errs = validate_pod_template(template, f"{path}.template", extra_volumes)
    tspec = template.get("spec") or {}
    restart = tspec.get("restartPolicy")
    if restart and restart != "Always":
        errs.append(not_supported(f"{path}.template.spec.restartPolicy", restart, ["Always"]))
    if deadline_msg and tspec.get("activeDeadlineSeconds") is not None:
        errs.append(forbidden(f"{path}.template.spec.activeDeadlineSeconds", deadline_msg))
    return errs


def _int_or_percent(value: Any, path: str, max_100: bool) -> list[FieldError]:
    if isinstance(value, str):
        errs = [invalid(path, value, m) for m in is_valid_percent(value)]
        if not errs and max_100 and int(value[:-1]) > 100:
            errs.append(invalid(path, value, "must not be greater than 100%"))
        return errs
    return validate_nonnegative(value, path)


def _is_zero(value: Any) -> bool:
    if isinstance(value, str):
        return value.rstrip("%") in ("0", "")
    return not value


def validate_max_unavailable_surge(ru: Obj, path: str) -> list[FieldError]:
    errs = _int_or_percent(ru.get("maxUnavailable"), f"{path}.maxUnavailable", True)
    errs += _int_or_percent(ru.get("maxSurge"), f"{path}.maxSurge", False)
    if not errs and _is_zero(ru.get("maxUnavailable")) and _is_zero(ru.get("maxSurge")):
        errs.append(
            invalid(
                f"{path}.maxUnavailable",
                go_intstr(ru.get("maxUnavailable")),
                "may not be 0 when `maxSurge` is 0",
            )
        )
    return errs


def _selector_immutable(new: Obj, old: Obj) -> list[FieldError]:
    sel = _spec(new).get("selector")
    if sel != _spec(old).get("selector"):
        return [invalid("spec.selector", go_label_selector(sel), IMMUTABLE_ERROR)]
    return []


# --- Deployment ------------------------------------------------------------------------


class DeploymentStrategy(WorkloadStrategy):
    def default(self, obj: Obj) -> None:
        spec = obj.setdefault("spec", {})
        spec.setdefault("replicas", 1)
        strategy = spec.setdefault("strategy", {})
        strategy.setdefault("type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            ru = strategy.setdefault("rollingUpdate", {})
            ru.setdefault("maxUnavailable", "25%")
            ru.setdefault("maxSurge", "25%")
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("progressDeadlineSeconds", 600)
        default_pod_template(spec.setdefault("template", {}))

    def validate(self, obj: Obj) -> list[FieldError]:
        spec = _spec(obj)
        errs = validate_nonnegative(spec.get("replicas"), "spec.replicas")
        errs += validate_selector_matches(spec, "spec", "deployment")
        errs += validate_always_template(
            spec, "spec", "activeDeadlineSeconds in ReplicaSet is not Supported"
        )
        strategy = spec.get("strategy") or {}
        stype = strategy.get("type")
        errs += validate_enum(stype, "spec.strategy.type", ["Recreate", "RollingUpdate"])
        if stype == "Recreate" and strategy.get("rollingUpdate") is not None:
            errs.append(
                forbidden(
                    "spec.strategy.rollingUpdate",
                    "may not be specified when strategy `type` is 'Recreate'",
                )
            )
        elif stype == "RollingUpdate":
            errs += validate_max_unavailable_surge(
                strategy.get("rollingUpdate") or {}, "spec.strategy.rollingUpdate"
            )
        min_ready = spec.get("minReadySeconds") or 0
        errs += validate_nonnegative(min_ready, "spec.minReadySeconds")
        errs += validate_nonnegative(spec.get("revisionHistoryLimit"), "spec.revisionHistoryLimit")
        pds = spec.get("progressDeadlineSeconds")
        if isinstance(pds, int):
            if pds <= 0:
                errs.append(invalid("spec.progressDeadlineSeconds", pds, "must be greater than 0"))
            elif pds <= min_ready:
                errs.append(
                    invalid(
                        "spec.progressDeadlineSeconds", pds, "must be greater than minReadySeconds"
                    )
                )
        return errs

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return self.validate(new) + _selector_immutable(new, old)


# --- ReplicaSet ------------------------------------------------------------------------


class ReplicaSetStrategy(WorkloadStrategy):
    field_selectors: ClassVar[dict[str, Any]] = {
        "status.replicas": lambda o: str((o.get("status") or {}).get("replicas") or 0)
    }

    def default(self, obj: Obj) -> None:
        spec = obj.setdefault("spec", {})
        spec.setdefault("replicas", 1)
        default_pod_template(spec.setdefault("template", {}))

    def validate(self, obj: Obj) -> list[FieldError]:
        spec = _spec(obj)
        errs = validate_nonnegative(spec.get("replicas"), "spec.replicas")
        errs += validate_nonnegative(spec.get("minReadySeconds"), "spec.minReadySeconds")
        errs += validate_selector_matches(spec, "spec", "deployment")
        errs += validate_always_template(
            spec, "spec", "activeDeadlineSeconds in ReplicaSet is not Supported"
        )
        return errs

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return self.validate(new) + _selector_immutable(new, old)


# --- DaemonSet -------------------------------------------------------------------------


class DaemonSetStrategy(WorkloadStrategy):
    def default(self, obj: Obj) -> None:
        spec = obj.setdefault("spec", {})
        strategy = spec.setdefault("updateStrategy", {})
        strategy.setdefault("type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            ru = strategy.setdefault("rollingUpdate", {})
            ru.setdefault("maxUnavailable", 1)
            ru.setdefault("maxSurge", 0)
        spec.setdefault("revisionHistoryLimit", 10)
        default_pod_template(spec.setdefault("template", {}))

    def validate(self, obj: Obj) -> list[FieldError]:
        spec = _spec(obj)
        errs = validate_selector_matches(spec, "spec", "daemonset")
        errs += validate_always_template(spec, "spec", None)
        ads = ((spec.get("template") or {}).get("spec") or {}).get("activeDeadlineSeconds")
        if ads is not None:
            errs.append(
                invalid(
                    "spec.template.spec.activeDeadlineSeconds",
                    ads,
                    "activeDeadlineSeconds must be nil for daemons",
                )
            )
        errs += validate_nonnegative(spec.get("minReadySeconds"), "spec.minReadySeconds")
        errs += validate_nonnegative(spec.get("revisionHistoryLimit"), "spec.revisionHistoryLimit")
        strategy = spec.get("updateStrategy") or {}
        stype = strategy.get("type")
        errs += validate_enum(stype, "spec.updateStrategy.type", ["OnDelete", "RollingUpdate"])
        if stype == "RollingUpdate":
            errs += validate_max_unavailable_surge(
                strategy.get("rollingUpdate") or {}, "spec.updateStrategy.rollingUpdate"
            )
        return errs

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return self.validate(new) + _selector_immutable(new, old)


# --- StatefulSet -----------------------------------------------------------------------


class StatefulSetStrategy(WorkloadStrategy):
    def default(self, obj: Obj) -> None:
        spec = obj.setdefault("spec", {})
        spec.setdefault("podManagementPolicy", "OrderedReady")
        strategy = spec.setdefault("updateStrategy", {})
        strategy.setdefault("type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            strategy.setdefault("rollingUpdate", {}).setdefault("partition", 0)
        spec.setdefault("replicas", 1)
        spec.setdefault("revisionHistoryLimit", 10)
        policy = spec.setdefault("persistentVolumeClaimRetentionPolicy", {})
        policy.setdefault("whenDeleted", "Retain")
        policy.setdefault("whenScaled", "Retain")
        default_pod_template(spec.setdefault("template", {}))
        for claim in spec.get("volumeClaimTemplates") or ():
            if isinstance(claim, dict):  # as the v1 conversion and SetDefaults_PVC leave them
                claim.setdefault("apiVersion", "v1")
                claim.setdefault("kind", "PersistentVolumeClaim")
                claim_spec = claim.setdefault("spec", {})
                if isinstance(claim_spec, dict):
                    claim_spec.setdefault("volumeMode", "Filesystem")
                status = claim.setdefault("status", {})
                if isinstance(status, dict):
                    status.setdefault("phase", "Pending")

    def validate(self, obj: Obj) -> list[FieldError]:
        spec = _spec(obj)
        errs = validate_enum(
            spec.get("podManagementPolicy"),
            "spec.podManagementPolicy",
            ["OrderedReady", "Parallel"],
        )
        strategy = spec.get("updateStrategy") or {}
        errs += validate_enum(
            strategy.get("type"), "spec.updateStrategy.type", ["OnDelete", "RollingUpdate"]
        )
        partition = (strategy.get("rollingUpdate") or {}).get("partition")
        errs += validate_nonnegative(partition, "spec.updateStrategy.rollingUpdate.partition")
        errs += validate_nonnegative(spec.get("replicas"), "spec.replicas")
        errs += validate_nonnegative(spec.get("minReadySeconds"), "spec.minReadySeconds")
        errs += validate_nonnegative(spec.get("revisionHistoryLimit"), "spec.revisionHistoryLimit")
        errs += validate_selector_matches(spec, "spec", "statefulset")
        # upstream leaves the pod spec unchecked because its volumes lack the claim
        # templates; here they count as volumes, so a mount of a template resolves
        claims = [
            str((t.get("metadata") or {}).get("name") or "")
            for t in spec.get("volumeClaimTemplates") or ()
            if isinstance(t, dict)
        ]
        errs += validate_always_template(
            spec, "spec", "activeDeadlineSeconds in StatefulSet is not Supported", claims
        )
        return errs

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        errs = self.validate(new)
        new_rest = {k: v for k, v in _spec(new).items() if k not in STS_MUTABLE}
        old = copy.deepcopy(old)  # stored before its claim templates were defaulted
        self.default(old)
        old_rest = {k: v for k, v in _spec(old).items() if k not in STS_MUTABLE}
        if new_rest != old_rest:
            errs.append(forbidden("spec", STS_UPDATE_FORBIDDEN))
        return errs


# --- ControllerRevision ----------------------------------------------------------------


class ControllerRevisionStrategy(Strategy):
    spec_fields = ()

    def validate(self, obj: Obj) -> list[FieldError]:
        errs = validate_nonnegative(obj.get("revision"), "revision")
        if obj.get("data") is None:
            errs.append(required("data", "data is mandatory"))
        return errs

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        errs = self.validate(new)
        if new.get("data") != old.get("data"):
            errs.append(invalid("data", new.get("data"), IMMUTABLE_ERROR))
        return errs


# --- ReplicationController (core/v1) ---------------------------------------------------


class ReplicationControllerStrategy(WorkloadStrategy):
    default_gc_policy = "Orphan"
    field_selectors: ClassVar[dict[str, Any]] = {
        "status.replicas": lambda o: str((o.get("status") or {}).get("replicas") or 0)
    }

    def default(self, obj: Obj) -> None:
        spec = obj.setdefault("spec", {})
        labels = template_labels(spec.get("template"))
        if labels:
            if not spec.get("selector"):
                spec["selector"] = dict(labels)
            meta = obj.setdefault("metadata", {})
            if not meta.get("labels"):
                meta["labels"] = dict(labels)
        spec.setdefault("replicas", 1)
        if spec.get("template") is not None:
            default_pod_template(spec["template"])

    def validate(self, obj: Obj) -> list[FieldError]:
        spec = _spec(obj)
        sel = spec.get("selector") or {}
        errs: list[FieldError] = []
        if not sel:
            errs.append(required("spec.selector"))
        errs += validate_labels(sel, "spec.selector")
        errs += validate_nonnegative(spec.get("replicas"), "spec.replicas")
        errs += validate_nonnegative(spec.get("minReadySeconds"), "spec.minReadySeconds")
        template = spec.get("template")
        if not isinstance(template, dict):
            errs.append(required("spec.template"))
            return errs
        labels = template_labels(template)
        if sel and any(labels.get(k) != v for k, v in sel.items()):
            errs.append(
                invalid(
                    "spec.template.metadata.labels",
                    go_string_map(labels),
                    "selector does not match template labels",
                )
            )
        errs += validate_always_template(
            spec, "spec", "activeDeadlineSeconds in ReplicationController is not Supported"
        )
        return errs
