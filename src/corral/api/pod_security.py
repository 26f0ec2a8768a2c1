"""Pod Security Standards: levels, versions, namespace labels and the evaluator, pure.

What upstream's ``k8s.io/pod-security-admission/api`` and ``policy/registry.go`` do, so
that ``apiserver/pod_security_admission.py`` (the admission plugin) and its tests share
one model:

- a level is ``privileged``, ``baseline`` or ``restricted``; a version ``latest`` or
  ``v1.N``; ``LevelVersion`` prints as ``restricted:latest``;
- a namespace's ``Policy`` (enforce, audit, warn) comes from its
  ``pod-security.kubernetes.io/<mode>[-version]`` labels over the configured defaults
  (``policy_to_evaluate``): a bad enforce level counts as restricted, a bad audit or
  warn level as privileged, a bad version as latest, each with a field error worded as
  upstream's; an explicit enforce level stricter than warn also sets warn;
- ``Evaluator`` runs the checks of ``pod_security_checks.CHECKS`` for a level and
  version. Corral implements policy version v1.32 (its API version): ``latest`` and
  every version from v1.32 on evaluate v1.32's checks, older versions their own (as an
  upstream 1.32 API server does). Checks run in upstream's order (baseline ids sorted,
  then restricted ids sorted), so the joined messages match word for word.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from corral.api import errors
from corral.api.pod_security_checks import BASELINE, CHECKS, RESTRICTED, Check, CheckFn

Obj = dict[str, Any]

PRIVILEGED = "privileged"
LEVELS = (PRIVILEGED, BASELINE, RESTRICTED)
LATEST = "latest"
#: the policy version Corral implements (its Kubernetes API version's minor)
POLICY_MINOR = 32

PREFIX = "pod-security.kubernetes.io/"
ENFORCE_LABEL = PREFIX + "enforce"
ENFORCE_VERSION_LABEL = PREFIX + "enforce-version"
AUDIT_LABEL = PREFIX + "audit"
AUDIT_VERSION_LABEL = PREFIX + "audit-version"
WARN_LABEL = PREFIX + "warn"
WARN_VERSION_LABEL = PREFIX + "warn-version"

_VERSION = re.compile(r"^v1\.([0-9]|[1-9][0-9]*)$")
_LEVEL_ERROR = "must be one of " + ", ".join(LEVELS)
_VERSION_ERROR = 'must be "latest" or "v1.x"'


class LevelVersion(NamedTuple):
    level: str
    version: str  # "latest" or "v1.N", canonical (the label grammar has no leading zeros)

    def __str__(self) -> str:
        return f"{self.level}:{self.version}"

    def equivalent(self, other: LevelVersion) -> bool:
        return (self.level == PRIVILEGED and other.level == PRIVILEGED) or self == other


class Policy(NamedTuple):
    enforce: LevelVersion
    audit: LevelVersion
    warn: LevelVersion

    def fully_privileged(self) -> bool:
        return all(lv.level == PRIVILEGED for lv in self)

    def equivalent(self, other: Policy) -> bool:
        return all(a.equivalent(b) for a, b in zip(self, other, strict=True))


PRIVILEGED_LATEST = LevelVersion(PRIVILEGED, LATEST)
DEFAULT_POLICY = Policy(PRIVILEGED_LATEST, PRIVILEGED_LATEST, PRIVILEGED_LATEST)


def parse_level(value: str) -> tuple[str, str | None]:
    """The level, or restricted and the error text (upstream's ``ParseLevel``)."""
    return (value, None) if value in LEVELS else (RESTRICTED, _LEVEL_ERROR)


def parse_version(value: str) -> tuple[str, str | None]:
    """The version, or latest and the error text (upstream's ``ParseVersion``)."""
    if value == LATEST or _VERSION.match(value):
        return value, None
    return LATEST, _VERSION_ERROR


def compare_levels(a: str, b: str) -> int:
    """-1, 0 or 1 as ``a`` is less strict than, as strict as, stricter than ``b``."""
    ia = LEVELS.index(a) if a in LEVELS else -1
    ib = LEVELS.index(b) if b in LEVELS else -1
    return (ia > ib) - (ia < ib)


def _label_error(label: str, value: str, detail: str) -> errors.FieldError:
    return errors.invalid(f"metadata.labels[{label}]", value, detail)


def policy_to_evaluate(
    labels: dict[str, str] | None, defaults: Policy = DEFAULT_POLICY
) -> tuple[Policy, list[errors.FieldError]]:
    """The namespace's policy from its labels over ``defaults``, and the label errors
    (a usable policy is returned even with errors)."""
    if not labels:
        return defaults, []
    errs: list[errors.FieldError] = []
    modes: dict[str, list[str]] = {
        "enforce": list(defaults.enforce),
        "audit": list(defaults.audit),
        "warn": list(defaults.warn),
    }
    for mode in ("enforce", "audit", "warn"):
        level_label, version_label = PREFIX + mode, PREFIX + mode + "-version"
        if level_label in labels:
            value = labels[level_label]
            level, err = parse_level(value)
            if err:
                errs.append(_label_error(level_label, value, err))
                if mode != "enforce":
                    level = PRIVILEGED  # fail open for audit and warn
            modes[mode][0] = level
        if version_label in labels:
            value = labels[version_label]
            version, err = parse_version(value)
            if err:
                errs.append(_label_error(version_label, value, err))
            modes[mode][1] = version
    has_enforce = ENFORCE_LABEL in labels and labels[ENFORCE_LABEL] in LEVELS
    if (
        WARN_LABEL not in labels
        and has_enforce
        and compare_levels(modes["enforce"][0], modes["warn"][0]) > 0
    ):
        modes["warn"][0] = modes["enforce"][0]
        if WARN_VERSION_LABEL not in labels:
            modes["warn"][1] = modes["enforce"][1]
    policy = Policy(*[LevelVersion(*modes[m]) for m in ("enforce", "audit", "warn")])
    return policy, errs


# --- evaluation ------------------------------------------------------------------------
@dataclass
class Result:
    """The aggregate of the failed checks (upstream's ``AggregateCheckResult``)."""

    reasons: list[str] = field(default_factory=list)
    details: list[str] = field(default_factory=list)

    @property
    def allowed(self) -> bool:
        return not self.reasons

    def forbidden_reason(self) -> str:
        """``host namespaces, privileged``: reasons only (the namespace-wide warnings)."""
        return ", ".join(self.reasons)

    def forbidden_detail(self) -> str:
        """``host namespaces (hostNetwork=true), privileged (container "c" must ...)``."""
        return ", ".join(
            f"{r} ({d})" if d else r for r, d in zip(self.reasons, self.details, strict=True)
        )


def _minor(version: str) -> int:
    return POLICY_MINOR if version == LATEST else min(int(version[3:]), POLICY_MINOR)


class Evaluator:
    """The checks per (level, version), built once from ``checks``."""

    def __init__(self, checks: tuple[Check, ...] = CHECKS, max_minor: int = POLICY_MINOR) -> None:
        self.max_minor = max_minor
        order = sorted(c.id for c in checks if c.level == BASELINE) + sorted(
            c.id for c in checks if c.level == RESTRICTED
        )
        by_id = {c.id: c for c in checks}
        self._checks: dict[tuple[str, int], list[CheckFn]] = {}
        for minor in range(max_minor + 1):
            active = {}  # id -> the version in force at v1.minor
            for c in checks:
                applicable = [v for v in c.versions if v.minimum <= minor]
                if applicable:
                    active[c.id] = applicable[-1]
            overridden = {o for v in active.values() for o in v.overrides}
            self._checks[(BASELINE, minor)] = [
                active[i].fn for i in order if i in active and by_id[i].level == BASELINE
            ]
            self._checks[(RESTRICTED, minor)] = [
                active[i].fn for i in order if i in active and i not in overridden
            ]

    def evaluate(self, lv: LevelVersion, meta: Obj, spec: Obj) -> Result:
        """Run the checks of ``lv`` over a pod's (or template's) metadata and spec."""
        result = Result()
        if lv.level == PRIVILEGED:
            return result
        minor = min(_minor(lv.version), self.max_minor)
        for fn in self._checks.get((lv.level, minor), ()):
            v = fn(meta, spec)
            if v is not None:
                result.reasons.append(v.reason or "unknown forbidden reason")
                result.details.append(v.detail)
        return result
