"""The PodSecurity admission plugin: Pod Security Standards per namespace.

What upstream's ``pod-security-admission/admission`` does, over ``api/pod_security.py``
(levels, labels, checks). ``server.py`` registers the three entry points in
``registry.admission`` (``admission_chain.py``):

- ``admit_pod`` on ``("", "pods")``: CREATE and UPDATE (not the ``exec``, ``attach``,
  ``binding``, ``eviction``, ``log``, ``portforward``, ``proxy``, ``status``
  subresources; an update only when it changes a container image or the containers,
  upstream's ``isSignificantPodUpdate``). The namespace's enforce level refuses with
  403 ``pods "p" is forbidden: violates PodSecurity "restricted:latest": ...``; audit
  violations are logged (Corral has no audit log: the ``corral.apiserver.audit`` logger
  at INFO); warn violations become ``Warning: would violate PodSecurity ...`` headers
  (``warning.py``), skipped when the request is refused anyway.
- ``admit_workload`` on the pod-template kinds (podtemplates, replicationcontrollers,
  replicasets, deployments, statefulsets, daemonsets, jobs, cronjobs): audit and warn
  only, never refused (the pods they make are checked when created).
- ``admit_namespace`` on ``("", "namespaces")``: invalid label values are refused (422,
  upstream's field errors) on create, and on update unless the same errors were already
  there; a stricter enforce level warns, per distinct violation, about the existing pods
  it would refuse (``mypod (and 2 other pods): privileged``), checking at most 3000 pods
  for at most a second, one pod per controller first.

Exemptions (``Config``: usernames, namespaces, runtimeClassNames; none by default, and
no namespace, kube-system included, is special unless listed, as upstream) skip the
evaluation. The API server's own writes (``req.user`` None) are let through.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from corral.api import errors
from corral.api.pod_security import (
    DEFAULT_POLICY,
    PRIVILEGED,
    Evaluator,
    LevelVersion,
    Policy,
    compare_levels,
    policy_to_evaluate,
)
from corral.apiserver import warning
from corral.apiserver.admission_chain import CREATE, UPDATE, AdmissionRequest
from corral.storage.cache import ResourceCache

Obj = dict[str, Any]

audit_log = logging.getLogger("corral.apiserver.audit")

IGNORED_POD_SUBRESOURCES = frozenset(
    {"exec", "attach", "binding", "eviction", "log", "portforward", "proxy", "status"}
)
#: (group, plural) of the kinds that embed a pod template (upstream's defaultPodSpecResources)
WORKLOADS = (
    ("", "podtemplates"),
    ("", "replicationcontrollers"),
    ("apps", "replicasets"),
    ("apps", "deployments"),
    ("apps", "statefulsets"),
    ("apps", "daemonsets"),
    ("batch", "jobs"),
    ("batch", "cronjobs"),
)
MAX_PODS_TO_CHECK = 3000
POD_CHECK_SECONDS = 1.0


@dataclass
class Config:
    """Upstream's PodSecurityConfiguration: the defaults for unlabelled modes and the
    exemptions."""

    defaults: Policy = DEFAULT_POLICY
    usernames: frozenset[str] = field(default_factory=frozenset)
    namespaces: frozenset[str] = field(default_factory=frozenset)
    runtime_classes: frozenset[str] = field(default_factory=frozenset)


def _d(v: Any) -> Obj:
    return v if isinstance(v, dict) else {}


def pod_template(plural: str, obj: Obj) -> Obj | None:
    """The embedded pod template (metadata and spec) of a workload object, or None."""
    if plural == "podtemplates":
        t = obj.get("template")
    elif plural == "cronjobs":
        t = _d(_d(_d(obj.get("spec")).get("jobTemplate")).get("spec")).get("template")
    else:
        t = _d(obj.get("spec")).get("template")
    return t if isinstance(t, dict) else None


def significant_pod_update(new: Obj, old: Obj) -> bool:
    """Whether a pod update may change what the policy sees: containers added or
    removed, an image changed, an ephemeral container added or changed."""
    ns, os_ = _d(new.get("spec")), _d(old.get("spec"))
    for f in ("containers", "initContainers"):
        a, b = ns.get(f) or [], os_.get(f) or []
        if len(a) != len(b):
            return True
        if any(_d(x).get("image") != _d(y).get("image") for x, y in zip(a, b, strict=True)):
            return True
    old_eph = {_d(c).get("name"): _d(c) for c in os_.get("ephemeralContainers") or []}
    for c in ns.get("ephemeralContainers") or []:
        before = old_eph.get(_d(c).get("name"))
        if before is None or before.get("image") != _d(c).get("image"):
            return True
    return False


class PodSecurityAdmission:
    """The plugin; reads namespaces and pods from the watch caches."""

    def __init__(
        self,
        namespaces: ResourceCache,
        pods: ResourceCache,
        config: Config | None = None,
        evaluator: Evaluator | None = None,
    ) -> None:
        self.namespaces = namespaces
        self.pods = pods
        self.config = config or Config()
        self.evaluator = evaluator or Evaluator()

    # --- pods and workloads ------------------------------------------------------------
    def admit_pod(self, req: AdmissionRequest) -> None:
        if req.subresource in IGNORED_POD_SUBRESOURCES:
            return
        if (
            req.operation == UPDATE
            and req.obj is not None
            and req.old is not None
            and not significant_pod_update(req.obj, req.old)
        ):
            return
        self._evaluate_request(req, req.obj, enforce=True)

    def admit_workload(self, req: AdmissionRequest) -> None:
        if req.subresource or req.obj is None:
            return
        template = pod_template(req.info.plural, req.obj)
        if template is None:
            return  # a controller without a pod template: nothing to check
        self._evaluate_request(req, template, enforce=False)

    def _evaluate_request(self, req: AdmissionRequest, pod: Obj | None, enforce: bool) -> None:
        if req.operation not in (CREATE, UPDATE) or req.user is None or pod is None:
            return
        if req.namespace in self.config.namespaces:
            return
        if req.user.username in self.config.usernames:
            return
        labels = self._namespace_labels(req.namespace)
        if labels is None:
            if enforce:
                raise errors.internal(f'failed to lookup namespace "{req.namespace}"')
            return
        policy, errs = policy_to_evaluate(labels, self.config.defaults)
        if not errs:
            if enforce and policy.fully_privileged():
                return
            if not enforce and policy.audit.level == policy.warn.level == PRIVILEGED:
                return
        meta, spec = _d(pod.get("metadata")), _d(pod.get("spec"))
        runtime_class = spec.get("runtimeClassName")
        if runtime_class and runtime_class in self.config.runtime_classes:
            return
        results = {}
        if enforce:
            result = results[policy.enforce] = self.evaluator.evaluate(policy.enforce, meta, spec)
            if not result.allowed:
                name = req.name or _d(req.obj).get("metadata", {}).get("name", "")
                raise errors.forbidden_error(
                    f'{req.info.plural} "{name}" is forbidden: violates PodSecurity '
                    f'"{policy.enforce}": {result.forbidden_detail()}',
                    req.info.plural,
                    req.info.group,
                    name,
                )
        for mode, lv in (("audit", policy.audit), ("warn", policy.warn)):
            if lv not in results:
                results[lv] = self.evaluator.evaluate(lv, meta, spec)
            result = results[lv]
            if result.allowed:
                continue
            text = f'would violate PodSecurity "{lv}": {result.forbidden_detail()}'
            if mode == "warn":
                warning.add(text)
            else:
                audit_log.info(
                    "%s %s %s/%s by %s: %s",
                    req.operation,
                    req.info.plural,
                    req.namespace,
                    req.name,
                    req.user.username,
                    text,
                )

    def _namespace_labels(self, namespace: str) -> dict[str, str] | None:
        entry = self.namespaces.entries.get(self.namespaces.prefix + namespace)
        return None if entry is None else dict(entry.labels)

    # --- namespaces ----------------------------------------------------------------------
    def admit_namespace(self, req: AdmissionRequest) -> None:
        if req.subresource or req.obj is None or req.user is None:
            return
        meta = _d(req.obj.get("metadata"))
        name = str(meta.get("name") or req.name)
        new_policy, new_errs = policy_to_evaluate(_d(meta.get("labels")), self.config.defaults)
        exempt = name in self.config.namespaces
        if req.operation == CREATE:
            if new_errs:
                raise errors.invalid_object("Namespace", "", name, new_errs)
            if exempt:
                self._exempt_warning(name, new_policy, _d(meta.get("labels")))
            return
        if req.operation != UPDATE or req.old is None:
            return
        old_labels = _d(_d(req.old.get("metadata")).get("labels"))
        old_policy, old_errs = policy_to_evaluate(old_labels, self.config.defaults)
        if new_errs and (not old_errs or new_errs != old_errs):
            raise errors.invalid_object("Namespace", "", name, new_errs)
        new, old = new_policy.enforce, old_policy.enforce
        if new == old or new.level == PRIVILEGED:
            return
        if new.version == old.version and compare_levels(new.level, old.level) < 1:
            return
        if exempt:
            self._exempt_warning(name, new_policy, _d(meta.get("labels")))
            return
        for text in self.evaluate_pods_in_namespace(name, new):
            warning.add(text)

    def _exempt_warning(self, name: str, policy: Policy, labels: Obj) -> None:
        if policy.fully_privileged() or policy.equivalent(self.config.defaults):
            return
        parts = []
        for mode, lv in zip(("enforce", "audit", "warn"), policy, strict=True):
            prefix = "pod-security.kubernetes.io/" + mode
            if lv.level != PRIVILEGED and (prefix in labels or prefix + "-version" in labels):
                parts.append(f"{mode}={lv}")
        warning.add(
            f'namespace "{name}" is exempt from Pod Security, and the policy '
            f"({', '.join(parts)}) will be ignored"
        )

    def evaluate_pods_in_namespace(self, namespace: str, enforce: LevelVersion) -> list[str]:
        """The warnings for the existing pods the new enforce level would refuse."""
        deadline = time.monotonic() + POD_CHECK_SECONDS
        pods = self._prioritized(
            [e.obj() for e in self.pods.by_namespace.get(namespace, {}).values()]
        )
        total = len(pods)
        pods = pods[:MAX_PODS_TO_CHECK]
        checked = len(pods)
        counts: dict[str, tuple[str, int]] = {}  # reason -> (first pod name, count)
        for i, pod in enumerate(pods):
            meta, spec = _d(pod.get("metadata")), _d(pod.get("spec"))
            result = self.evaluator.evaluate(enforce, meta, spec)
            if not result.allowed:
                reason = result.forbidden_reason()
                pod_name = str(meta.get("name", ""))
                first, n = counts.get(reason, (pod_name, 0))
                counts[reason] = (min(first, pod_name), n + 1)
            if time.monotonic() > deadline:
                checked = i + 1
                break
        out = []
        if checked < total:
            out.append(
                "new PodSecurity enforce level only checked against the first "
                f"{checked} of {total} existing pods"
            )
        if counts:
            out.append(
                f'existing pods in namespace "{namespace}" violate the new PodSecurity '
                f'enforce level "{enforce}"'
            )
        decorated = []
        for reason, (first, n) in counts.items():
            if n == 1:
                decorated.append(f"{first}: {reason}")
            elif n == 2:
                decorated.append(f"{first} (and 1 other pod): {reason}")
            else:
                decorated.append(f"{first} (and {n - 1} other pods): {reason}")
        return out + sorted(decorated)

    def _prioritized(self, pods: list[Obj]) -> list[Obj]:
        """Pods of exempt runtime classes dropped; one pod per controller first."""
        first: list[Obj] = []
        rest: list[Obj] = []
        seen: set[str] = set()
        for pod in sorted(pods, key=lambda p: str(_d(p.get("metadata")).get("name", ""))):
            if _d(pod.get("spec")).get("runtimeClassName") in self.config.runtime_classes:
                continue
            refs = _d(pod.get("metadata")).get("ownerReferences") or []
            controller = next(
                (_d(r).get("uid") for r in refs if _d(r).get("controller") is True), None
            )
            if controller is None:
                first.append(pod)
            elif controller in seen:
                rest.append(pod)
            else:
                seen.add(controller)
                first.append(pod)
        return first + rest
