"""Strategies for batch/v1 Jobs and CronJobs, and the cron schedule check they share.

A Job's selector is generated at create time (unless ``manualSelector: true``) from the
``batch.kubernetes.io/controller-uid`` label, which is also stamped, with the job-name and
legacy labels, onto the pod template; the generic layer has already set ``metadata.uid``
by then. Jobs default to the legacy ``Orphan`` propagation when a DELETE names none.

Schedules are parsed by ``croniter``; the field-count and descriptor errors keep
Kubernetes' wording (``expected exactly 5 fields, found 1: [x]``).

Called by the generic store through the registry table (``table.py``).
"""

from __future__ import annotations

import re
import zoneinfo
from typing import Any, ClassVar

import orjson

from corral.api.errors import FieldError, invalid, not_supported, required
from corral.api.validation import (
    IMMUTABLE_ERROR,
    go_label_selector,
    go_string_map,
    label_selector_matches,
    validate_enum,
    validate_label_selector,
    validate_nonnegative,
)
from corral.apiserver.registry.apps import WorkloadStrategy
from corral.apiserver.registry.podspec import (
    default_pod_template,
    template_labels,
    validate_pod_template,
)

Obj = dict[str, Any]

CONTROLLER_UID = "batch.kubernetes.io/controller-uid"
JOB_NAME = "batch.kubernetes.io/job-name"
LEGACY_CONTROLLER_UID = "controller-uid"
LEGACY_JOB_NAME = "job-name"
MAX_INT32 = 2**31 - 1

# --- cron schedules ----------------------------------------------------------------------

_DESCRIPTORS = {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}
_DURATION = re.compile(r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$")
_TZ_PART = re.compile(r"^[A-Za-z\.\-_0-9+]{1,14}$")


def cron_schedule_error(schedule: str) -> str | None:
    """Why ``schedule`` is not a valid cron schedule, or None. Parsing is croniter's; the
    field-count and descriptor messages are worded as Kubernetes (robfig/cron) words them."""
    spec = schedule.strip()
    if not spec:
        return "empty spec string"
    if spec.startswith(("TZ=", "CRON_TZ=")):
        tz, _, spec = spec.partition(" ")
        name = tz.split("=", 1)[1]
        try:
            zoneinfo.ZoneInfo(name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            return f"provided bad location {name}: unknown time zone {name}"
        spec = spec.strip()
    if spec.startswith("@"):
        if spec in _DESCRIPTORS:
            return None
        if spec.startswith("@every "):
            dur = spec[len("@every ") :]
            return (
                None
                if _DURATION.match(dur)
                else f'failed to parse duration {spec}: time: invalid duration "{dur}"'
            )
        return f"unrecognized descriptor: {spec}"
    fields = spec.split()
    if len(fields) != 5:
        return f"expected exactly 5 fields, found {len(fields)}: [{' '.join(fields)}]"
    from croniter import croniter  # type: ignore[import-untyped]  # ~10 ms: on first use

    try:
        croniter(spec.replace("?", "*"))
    except (ValueError, KeyError) as exc:  # croniter's errors derive from ValueError
        return str(exc) or f"invalid schedule: {spec}"
    return None


def validate_schedule(schedule: Any, time_zone: Any, path: str) -> list[FieldError]:
    if not schedule:
        return [required(path)]
    errs: list[FieldError] = []
    msg = cron_schedule_error(str(schedule))
    if msg:
        errs.append(invalid(path, schedule, msg))
    if "TZ" in str(schedule):
        errs.append(
            invalid(
                path, schedule, "cannot use TZ or CRON_TZ in schedule, use timeZone field instead"
            )
        )
    return errs


def validate_time_zone(tz: Any, path: str) -> list[FieldError]:
    if tz is None:
        return []
    if tz == "":
        return [invalid(path, tz, "timeZone must be nil or non-empty string")]
    for part in str(tz).split("/"):
        if part in (".", "..") or part.startswith("-") or not _TZ_PART.match(part):
            return [invalid(path, tz, f"unknown time zone {tz}")]
    if str(tz).lower() == "local":
        return [
            invalid(
                path,
                tz,
                "timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones",
            )
        ]
    try:
        zoneinfo.ZoneInfo(str(tz))
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return [invalid(path, tz, f"unknown time zone {tz}")]
    return []


# --- Job -------------------------------------------------------------------------------


def _job_template_restart(spec: Obj, path: str) -> list[FieldError]:
    restart = ((spec.get("template") or {}).get("spec") or {}).get("restartPolicy")
    p = f"{path}.template.spec.restartPolicy"
    if restart in ("Always", "", None):
        return [required(p, 'valid values: "OnFailure", "Never"')]
    if restart not in ("OnFailure", "Never"):
        return [not_supported(p, restart, ["OnFailure", "Never"])]
    if spec.get("podFailurePolicy") is not None and restart != "Never":
        return [invalid(p, restart, 'only "Never" is supported when podFailurePolicy is specified')]
    return []


def validate_job_spec(spec: Obj, path: str) -> list[FieldError]:
    """``validateJobSpec``: counts, completion mode, template (restart OnFailure/Never)."""
    errs: list[FieldError] = []
    for key in ("parallelism", "completions", "activeDeadlineSeconds", "backoffLimit",
                "ttlSecondsAfterFinished", "backoffLimitPerIndex", "maxFailedIndexes"):  # fmt: skip
        errs += validate_nonnegative(spec.get(key), f"{path}.{key}")
    mode = spec.get("completionMode")
    if mode is not None:
        errs += validate_enum(mode, f"{path}.completionMode", ["NonIndexed", "Indexed"])
    if mode == "Indexed" and spec.get("completions") is None:
        errs.append(required(f"{path}.completions", "when completion mode is Indexed"))
    policy = spec.get("podReplacementPolicy")
    if policy is not None:  # with a podFailurePolicy only Failed (validateJobSpec)
        allowed = ["Failed"]
        if spec.get("podFailurePolicy") is None:
            allowed = ["Failed", "TerminatingOrFailed"]
        errs += validate_enum(policy, f"{path}.podReplacementPolicy", allowed)
    template = spec.get("template")
    if not isinstance(template, dict):
        errs.append(required(f"{path}.template"))
        return errs
    errs += validate_pod_template(template, f"{path}.template")
    errs += _job_template_restart(spec, path)
    return errs


def _copy_template_labels(obj: Obj) -> None:
    labels = template_labels((obj.get("spec") or {}).get("template"))
    meta = obj.setdefault("metadata", {})
    if labels and not meta.get("labels"):
        meta["labels"] = dict(labels)


class JobStrategy(WorkloadStrategy):
    default_gc_policy = "Orphan"
    field_selectors: ClassVar[dict[str, Any]] = {
        # the selector is named "successful" but reads ``status.succeeded``
        "status.successful": lambda o: str((o.get("status") or {}).get("succeeded") or 0)
    }

    def default(self, obj: Obj) -> None:
        spec = obj.setdefault("spec", {})
        if spec.get("completions") is None and spec.get("parallelism") is None:
            spec["completions"] = 1
            spec["parallelism"] = 1
        spec.setdefault("parallelism", 1)
        spec.setdefault(
            "backoffLimit", MAX_INT32 if spec.get("backoffLimitPerIndex") is not None else 6
        )
        spec.setdefault("completionMode", "NonIndexed")
        spec.setdefault("suspend", False)
        spec.setdefault(
            "podReplacementPolicy",
            "Failed" if spec.get("podFailurePolicy") is not None else "TerminatingOrFailed",
        )
        default_pod_template(spec.setdefault("template", {}))
        _copy_template_labels(obj)

    def prepare_for_create(self, obj: Obj) -> None:
        """Generate the selector and template labels from the uid (unless manualSelector)."""
        super().prepare_for_create(obj)
        spec = obj.setdefault("spec", {})
        if spec.get("manualSelector") is True:
            return
        spec["manualSelector"] = False
        meta = obj.get("metadata") or {}
        uid, name = meta.get("uid") or "", meta.get("name") or ""
        template = spec.setdefault("template", {})
        tmeta = template.setdefault("metadata", {})
        labels = tmeta.get("labels")
        if not isinstance(labels, dict):
            labels = tmeta["labels"] = {}
        labels.update(
            {CONTROLLER_UID: uid, JOB_NAME: name, LEGACY_CONTROLLER_UID: uid, LEGACY_JOB_NAME: name}
        )
        spec["selector"] = {"matchLabels": {CONTROLLER_UID: uid}}
        _copy_template_labels(obj)

    def validate(self, obj: Obj) -> list[FieldError]:
        spec = obj.get("spec") or {}
        errs = validate_job_spec(spec, "spec")
        sel = spec.get("selector")
        if sel is None:
            errs.append(required("spec.selector"))
        else:
            sel_errs = validate_label_selector(sel, "spec.selector")
            errs += sel_errs
            labels = template_labels(spec.get("template"))
            if not sel_errs and not label_selector_matches(sel, labels):
                errs.append(
                    invalid(
                        "spec.template.metadata.labels",
                        go_string_map(labels),
                        "`selector` does not match template `labels`",
                    )
                )
        return errs

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        errs = self.validate(new)
        ns, os_ = new.get("spec") or {}, old.get("spec") or {}
        if ns.get("selector") != os_.get("selector"):
            errs.append(
                invalid("spec.selector", go_label_selector(ns.get("selector")), IMMUTABLE_ERROR)
            )
        for key in ("completionMode", "podFailurePolicy", "backoffLimitPerIndex"):
            if ns.get(key) != os_.get(key):
                errs.append(invalid(f"spec.{key}", ns.get(key), IMMUTABLE_ERROR))
        if (
            ns.get("completions") != os_.get("completions")
            and ns.get("completionMode") != "Indexed"
        ):
            errs.append(invalid("spec.completions", ns.get("completions"), IMMUTABLE_ERROR))
        if ns.get("template") != os_.get("template") and not (
            os_.get("suspend") is True and not (old.get("status") or {}).get("startTime")
        ):
            errs.append(
                invalid(
                    "spec.template", orjson.Fragment("core.PodTemplateSpec{...}"), IMMUTABLE_ERROR
                )
            )
        return errs


# --- CronJob ---------------------------------------------------------------------------


class CronJobStrategy(WorkloadStrategy):
    def default(self, obj: Obj) -> None:
        spec = obj.setdefault("spec", {})
        spec.setdefault("concurrencyPolicy", "Allow")
        spec.setdefault("suspend", False)
        spec.setdefault("successfulJobsHistoryLimit", 3)
        spec.setdefault("failedJobsHistoryLimit", 1)
        job_spec = spec.setdefault("jobTemplate", {}).setdefault("spec", {})
        if isinstance(job_spec, dict):
            default_pod_template(job_spec.setdefault("template", {}))

    def validate(self, obj: Obj) -> list[FieldError]:
        spec = obj.get("spec") or {}
        errs: list[FieldError] = []
        name = (obj.get("metadata") or {}).get("name") or ""
        if len(name) > 52:
            errs.append(invalid("metadata.name", name, "must be no more than 52 characters"))
        errs += validate_schedule(spec.get("schedule"), spec.get("timeZone"), "spec.schedule")
        errs += validate_time_zone(spec.get("timeZone"), "spec.timeZone")
        errs += validate_enum(
            spec.get("concurrencyPolicy"), "spec.concurrencyPolicy", ["Allow", "Forbid", "Replace"]
        )
        for key in (
            "startingDeadlineSeconds",
            "successfulJobsHistoryLimit",
            "failedJobsHistoryLimit",
        ):
            errs += validate_nonnegative(spec.get(key), f"spec.{key}")
        job_template = spec.get("jobTemplate") or {}
        job_spec = job_template.get("spec")
        if not isinstance(job_spec, dict):
            return [*errs, required("spec.jobTemplate.spec")]
        errs += validate_job_spec(job_spec, "spec.jobTemplate.spec")
        if job_spec.get("selector") is not None:
            errs.append(
                invalid(
                    "spec.jobTemplate.spec.selector",
                    go_label_selector(job_spec["selector"]),
                    "`selector` will be auto-generated",
                )
            )
        if job_spec.get("manualSelector") is True:
            errs.append(
                not_supported("spec.jobTemplate.spec.manualSelector", True, ["nil", "false"])
            )
        return errs
