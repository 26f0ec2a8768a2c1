"""The Job controller (batch/v1 Job) and the TTL-after-finished controller beside it.

Run by the controller manager (``JobController(client, factory).run()``); tests await
``sync(key)`` directly. As in Kubernetes 1.32 (pkg/controller/job), a Job's pods are
tracked with the ``batch.kubernetes.io/job-tracking`` finalizer: every pod is created
with it, and a pod that finished is first recorded in
``status.uncountedTerminatedPods`` (written), then loses the finalizer, then moves into
``status.succeeded`` / ``status.failed`` (written). A crash between the steps neither
loses nor double-counts a pod.

One sync, in order::

    claim pods (refmanager.py): adopt orphans the selector matches (adding the tracking
        finalizer), release owned pods it no longer matches (removing it)
    count finished pods (uncounted -> finalizer off -> counted)
    suspend / resume            (Suspended condition; delete active pods)
    failure?  pod failure policy FailJob, failed > backoffLimit, activeDeadlineSeconds
        -> FailureTarget, delete active pods (counted failed), then Failed once none left
    success?  succeeded >= completions (Indexed: every index), or, without completions,
              a success and nothing active
        -> SuccessCriteriaMet, delete the rest, then Complete + completionTime
    otherwise keep min(parallelism, completions - succeeded) pods active; a replacement
    for failed pods waits out the pod-failure back-off (10 s doubling, 10 min cap)
    write status when it changed

Creations and deletions are remembered (``Expectations``) until the pod cache shows
them, so a slow watch never makes the controller create twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from corral.api.errors import StatusError
from corral.api.selectors import LabelSelector, SelectorError, try_selector_from_object
from corral.client.informer import Informer
from corral.client.rest import JOBS, PODS, Client
from corral.controllers.base import (
    ORPHAN_NAMESPACE_INDEX,
    Controller,
    InformerFactory,
    clone,
    controller_ref,
    orphan_namespace_index,
    owner_key,
)
from corral.controllers.refmanager import RefManager, orphan_handler
from corral.util.clock import Clock, parse_rfc3339, rfc3339

log = logging.getLogger("corral.controllers.job")

Obj = dict[str, Any]


TRACKING_FINALIZER = "batch.kubernetes.io/job-tracking"
COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"  # annotation and label
COMPLETION_INDEX_ENV = "JOB_COMPLETION_INDEX"

#: pod-failure back-off: 10 s doubling per failure, capped (job_controller.go)
POD_FAILURE_BACKOFF = 10.0
MAX_POD_FAILURE_BACKOFF = 600.0
#: expectations older than this are given up on (client-go's ExpectationsTimeout)
EXPECTATIONS_TIMEOUT = 300.0
MAX_PODS_PER_SYNC = 500

# condition types and reasons (k8s.io/api/batch/v1)
COMPLETE = "Complete"
FAILED = "Failed"
SUSPENDED = "Suspended"
FAILURE_TARGET = "FailureTarget"
SUCCESS_CRITERIA_MET = "SuccessCriteriaMet"
REASON_COMPLETIONS_REACHED = "CompletionsReached"
REASON_BACKOFF_LIMIT = "BackoffLimitExceeded"
REASON_DEADLINE = "DeadlineExceeded"
REASON_POD_FAILURE_POLICY = "PodFailurePolicy"
MSG_COMPLETIONS_REACHED = "Reached expected number of succeeded pods"
MSG_BACKOFF_LIMIT = "Job has reached the specified backoff limit"
MSG_DEADLINE = "Job was active longer than specified deadline"


# --- pure helpers ----------------------------------------------------------------------------


def backoff_delay(failures: int) -> float:
    """How long a replacement waits after ``failures`` failures since the last success."""
    if failures <= 0:
        return 0.0
    return min(POD_FAILURE_BACKOFF * 2.0 ** (failures - 1), MAX_POD_FAILURE_BACKOFF)


def format_indexes(indexes: Iterable[int]) -> str:
    """``status.completedIndexes``: sorted ranges, ``"0-2,4"``."""
    out: list[str] = []
    run: list[int] = []
    for i in sorted(set(indexes)):
        if run and i == run[-1] + 1:
            run.append(i)
            continue
        if run:
            out.append(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}")
        run = [i]
    if run:
        out.append(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}")
    return ",".join(out)


def parse_indexes(text: str, limit: int | None = None) -> set[int]:
    """The inverse of ``format_indexes``; indexes at or past ``limit`` are dropped."""
    out: set[int] = set()
    for part in (text or "").split(","):
        part = part.strip()
        if not part:
            continue
        lo, _, hi = part.partition("-")
        try:
            first, last = int(lo), int(hi or lo)
        except ValueError:
            continue
        out.update(i for i in range(first, last + 1) if limit is None or i < limit)
    return out


def pod_index(pod: Obj) -> int | None:
    """The completion index of an Indexed Job's pod (annotation, else label)."""
    meta = pod.get("metadata") or {}
    raw = (meta.get("annotations") or {}).get(COMPLETION_INDEX)
    if raw is None:
        raw = (meta.get("labels") or {}).get(COMPLETION_INDEX)
    try:
        return int(raw) if raw is not None and str(raw).isdigit() else None
    except ValueError:
        return None


def condition(obj: Obj, type_: str) -> Obj | None:
    for c in (obj.get("status") or {}).get("conditions") or ():
        if c.get("type") == type_:
            return dict(c)
    return None


def finished_condition(job: Obj) -> Obj | None:
    """The Complete or Failed condition that is True, if the Job is finished."""
    for c in (job.get("status") or {}).get("conditions") or ():
        if c.get("type") in (COMPLETE, FAILED) and c.get("status") == "True":
            return dict(c)
    return None


def finish_time(job: Obj) -> float | None:
    """When the Job finished: completionTime, else its terminal condition's transition."""
    st = job.get("status") or {}
    if st.get("completionTime"):
        return parse_rfc3339(st["completionTime"])
    c = finished_condition(job)
    if c and c.get("lastTransitionTime"):
        return parse_rfc3339(c["lastTransitionTime"])
    return None


def _phase(pod: Obj) -> str:
    return str((pod.get("status") or {}).get("phase") or "")


def is_terminal(pod: Obj) -> bool:
    return _phase(pod) in ("Succeeded", "Failed")


def is_deleting(pod: Obj) -> bool:
    return bool((pod.get("metadata") or {}).get("deletionTimestamp"))


def only_replace_failed(job: Obj) -> bool:
    """``podReplacementPolicy: Failed`` (the only one allowed with a podFailurePolicy): a
    pod that is terminating (deletionTimestamp, not yet Succeeded/Failed) is neither
    counted failed nor replaced until it reaches the Failed phase, so an index or a pod
    slot never runs twice, e.g. while its node is unreachable (upstream's
    onlyReplaceFailedPods: any Job with a podFailurePolicy, whatever the field says)."""
    spec = job.get("spec") or {}
    return spec.get("podFailurePolicy") is not None or spec.get("podReplacementPolicy") == "Failed"


def is_ready(pod: Obj) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (pod.get("status") or {}).get("conditions") or ()
    )


def has_finalizer(pod: Obj) -> bool:
    return TRACKING_FINALIZER in ((pod.get("metadata") or {}).get("finalizers") or ())


def pod_finish_time(pod: Obj, default: float) -> float:
    """When a pod finished: its containers' latest finishedAt, else deletion, else default."""
    latest: float | None = None
    st = pod.get("status") or {}
    for cs in (st.get("containerStatuses") or []) + (st.get("initContainerStatuses") or []):
        done = ((cs.get("state") or {}).get("terminated") or {}).get("finishedAt")
        if done:
            t = parse_rfc3339(done)
            latest = t if latest is None else max(latest, t)
    if latest is not None:
        return latest
    deleted = (pod.get("metadata") or {}).get("deletionTimestamp")
    return parse_rfc3339(deleted) if deleted else default


def _exit_code_matches(code: int, req: Obj) -> bool:
    values = req.get("values") or []
    if req.get("operator") == "In":
        return code in values
    if req.get("operator") == "NotIn":
        return code not in values
    return False


def match_pod_failure_policy(policy: Obj | None, pod: Obj) -> tuple[str | None, bool, str | None]:
    """Match a failed pod against ``spec.podFailurePolicy``.

    Returns (job failure message if a FailJob rule matched, whether the failure counts
    towards backoffLimit, the matched action or None)."""
    if not policy:
        return None, True, None
    st = pod.get("status") or {}
    meta = pod.get("metadata") or {}
    for index, rule in enumerate(policy.get("rules") or ()):
        action = rule.get("action")
        exit_req = rule.get("onExitCodes")
        if exit_req is not None:
            hit: tuple[str, int] | None = None
            for cs in (st.get("containerStatuses") or []) + (st.get("initContainerStatuses") or []):
                term = (cs.get("state") or {}).get("terminated")
                if not term:
                    continue
                want = exit_req.get("containerName")
                code = int(term.get("exitCode") or 0)
                named = want is None or want == cs.get("name")
                if named and code != 0 and _exit_code_matches(code, exit_req):
                    hit = (str(cs.get("name")), code)
                    break
            if hit is None:
                continue
            if action == "FailJob":
                msg = (
                    f"Container {hit[0]} for pod {meta.get('namespace')}/{meta.get('name')} "
                    f"failed with exit code {hit[1]} matching FailJob rule at index {index}"
                )
                return msg, True, action
            return None, action != "Ignore", action
        patterns = rule.get("onPodConditions")
        if patterns is not None:
            matched = next(
                (
                    c
                    for c in st.get("conditions") or ()
                    for p in patterns
                    if c.get("type") == p.get("type")
                    and c.get("status") == (p.get("status") or "True")
                ),
                None,
            )
            if matched is None:
                continue
            if action == "FailJob":
                msg = (
                    f"Pod {meta.get('namespace')}/{meta.get('name')} has condition "
                    f"{matched.get('type')} matching FailJob rule at index {index}"
                )
                return msg, True, action
            return None, action != "Ignore", action
    return None, True, None


def pod_from_template(job: Obj, index: int | None = None) -> Obj:
    """The pod a Job creates: its template, generateName ``<job>-`` (Indexed:
    ``<job>-<index>-``), the controller reference and the tracking finalizer; Indexed
    pods also get the completion index (annotation, label, env, hostname)."""
    meta = job["metadata"]
    name = meta["name"]
    template = clone((job.get("spec") or {}).get("template") or {})
    tmeta = template.get("metadata") or {}
    labels = dict(tmeta.get("labels") or {})
    annotations = dict(tmeta.get("annotations") or {})
    spec = template.get("spec") or {}
    gen = f"{name}-"
    if index is not None:
        gen = f"{name}-{index}-"
        annotations[COMPLETION_INDEX] = str(index)
        labels[COMPLETION_INDEX] = str(index)
        if not spec.get("hostname"):
            spec["hostname"] = f"{name}-{index}"
        env_var = {
            "name": COMPLETION_INDEX_ENV,
            "valueFrom": {
                "fieldRef": {
                    "apiVersion": "v1",
                    "fieldPath": f"metadata.annotations['{COMPLETION_INDEX}']",
                }
            },
        }
        for kind in ("initContainers", "containers"):
            for c in spec.get(kind) or ():
                env = [e for e in c.get("env") or () if e.get("name") != COMPLETION_INDEX_ENV]
                c["env"] = [*env, env_var]
    pod_meta: Obj = {
        "generateName": gen,
        "namespace": meta.get("namespace"),
        "labels": labels,
        "ownerReferences": [controller_ref(job, "batch/v1", "Job")],
        "finalizers": [TRACKING_FINALIZER],
    }
    if annotations:
        pod_meta["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "Pod", "metadata": pod_meta, "spec": spec}


def _set_condition(status: Obj, type_: str, st: str, reason: str, message: str, now: str) -> bool:
    """Set a condition; True when it changed (transition time moves only on a flip)."""
    conds: list[Obj] = status.setdefault("conditions", [])
    for c in conds:
        if c.get("type") == type_:
            if c.get("status") == st and c.get("reason") == reason:
                return False
            flipped = c.get("status") != st
            c.update(status=st, reason=reason, message=message, lastProbeTime=now)
            if flipped:
                c["lastTransitionTime"] = now
            return True
    conds.append(
        {
            "type": type_,
            "status": st,
            "lastProbeTime": now,
            "lastTransitionTime": now,
            "reason": reason,
            "message": message,
        }
    )
    return True


# --- expectations ----------------------------------------------------------------------------


@dataclass
class _Pending:
    creates: set[str] = field(default_factory=set)
    deletes: set[str] = field(default_factory=set)
    since: float = 0.0


class Expectations:
    """Pod names a controller created or deleted and has not yet seen in its cache."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._pending: dict[str, _Pending] = {}

    def expect(self, key: str, creates: Iterable[str] = (), deletes: Iterable[str] = ()) -> None:
        p = self._pending.setdefault(key, _Pending(since=self.clock.monotonic()))
        p.creates.update(creates)
        p.deletes.update(deletes)
        p.since = self.clock.monotonic()

    def satisfied(self, key: str, pods: Informer, namespace: str) -> bool:
        p = self._pending.get(key)
        if p is None:
            return True
        p.creates = {n for n in p.creates if pods.get(f"{namespace}/{n}") is None}
        p.deletes = {
            n
            for n in p.deletes
            if (o := pods.get(f"{namespace}/{n}")) is not None and not is_deleting(o)
        }
        if (p.creates or p.deletes) and self.clock.monotonic() - p.since < EXPECTATIONS_TIMEOUT:
            return False
        self._pending.pop(key, None)
        return True

    def forget(self, key: str) -> None:
        self._pending.pop(key, None)


# --- the controller --------------------------------------------------------------------------


@dataclass
class _Backoff:
    failures: int = 0  # since the last success
    last_failure: float = 0.0


class JobController(Controller):
    """Runs a Job's pods to completion (see the module docstring)."""

    name: ClassVar[str] = "job"
    POD_INDEX: ClassVar[str] = "job-owner"
    ORPHAN_INDEX: ClassVar[str] = ORPHAN_NAMESPACE_INDEX  # shared (base.py)
    NS_INDEX: ClassVar[str] = "job/namespace"

    def __init__(
        self,
        client: Client,
        factory: InformerFactory,
        *,
        workers: int = 4,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(client, factory, workers=workers, clock=clock)
        self.jobs = factory.informer(JOBS)
        self.pods = factory.informer(PODS)
        self.pods.add_index(self.POD_INDEX, _job_owner_index)
        self.pods.add_index(self.ORPHAN_INDEX, orphan_namespace_index)
        self.jobs.add_index(self.NS_INDEX, lambda o: [str(_meta(o).get("namespace") or "")])
        self.jobs.add_handler(lambda _t, obj, _old: self.enqueue(obj))
        self.pods.add_handler(self.enqueue_owner("Job"))
        self.pods.add_handler(
            orphan_handler(
                lambda ns: self.jobs.by_index(self.NS_INDEX, ns), _selector, self.enqueue
            )
        )
        self.expectations = Expectations(self.clock)
        self._backoff: dict[str, _Backoff] = {}

    # --- writes -----------------------------------------------------------------------------
    async def _drop_finalizer(self, pod: Obj) -> None:
        meta = pod["metadata"]
        rest = [f for f in meta.get("finalizers") or () if f != TRACKING_FINALIZER]
        try:
            await self.client.patch(
                PODS, meta["name"], {"metadata": {"finalizers": rest or None}}, meta["namespace"]
            )
        except StatusError as e:
            if e.code != 404:
                raise

    async def _release(self, pods: Iterable[Obj]) -> None:
        """Remove our finalizer from pods that still hold it."""
        await asyncio.gather(*(self._drop_finalizer(p) for p in pods if has_finalizer(p)))

    async def _delete_pods(self, job: Obj, key: str, pods: list[Obj]) -> int:
        """Delete pods (finalizer off first); returns how many went."""
        ns = job["metadata"]["namespace"]

        async def one(pod: Obj) -> str | None:
            name = pod["metadata"]["name"]
            try:
                if has_finalizer(pod):
                    await self._drop_finalizer(pod)
                await self.client.delete(PODS, name, ns)
            except StatusError as e:
                if e.code != 404:
                    await self.recorder.event(job, "Warning", "FailedDelete", e.message)
                    raise
                return None
            await self.recorder.event(job, "Normal", "SuccessfulDelete", f"Deleted pod: {name}")
            return str(name)

        names = [n for n in await asyncio.gather(*(one(p) for p in pods)) if n]
        self.expectations.expect(key, deletes=names)
        return len(names)

    async def _create_pods(self, job: Obj, key: str, indexes: list[int | None]) -> None:
        """Create pods (one per entry; an entry is the completion index or None)."""
        ns = job["metadata"]["namespace"]

        async def one(index: int | None) -> str:
            try:
                made = await self.client.create(PODS, pod_from_template(job, index), ns)
            except StatusError as e:
                await self.recorder.event(job, "Warning", "FailedCreate", f"Error creating: {e}")
                raise
            name = str(made["metadata"]["name"])
            await self.recorder.event(job, "Normal", "SuccessfulCreate", f"Created pod: {name}")
            return name

        results = await asyncio.gather(*(one(i) for i in indexes), return_exceptions=True)
        names = [r for r in results if isinstance(r, str)]
        self.expectations.expect(key, creates=names)
        for r in results:
            if isinstance(r, BaseException):
                raise r

    # --- sync ---------------------------------------------------------------------------------
    async def sync(self, key: str) -> None:
        job = self.jobs.get(key)
        owned = self.pods.by_index(self.POD_INDEX, key)
        if job is None:
            await self._release(owned)  # the Job is gone: let its pods go too
            self.expectations.forget(key)
            self._backoff.pop(key, None)
            return
        uid = job["metadata"].get("uid")
        mine = [p for p in owned if _owner_uid(p) == uid]
        await self._release(p for p in owned if _owner_uid(p) != uid)
        if job["metadata"].get("deletionTimestamp"):
            await self._release(mine)
            return
        st = job.get("status") or {}
        uncounted = st.get("uncountedTerminatedPods") or {}
        if finished_condition(job) and not (uncounted.get("succeeded") or uncounted.get("failed")):
            await self._release(mine)
            return
        sel = _selector(job)
        if sel is not None and not sel.empty:
            # adopt matching orphans (adding the tracking finalizer), release owned pods
            # the selector no longer matches (removing it), as getPodsForJob
            refs = RefManager(
                self.client, JOBS, job, "batch/v1", "Job", finalizers=[TRACKING_FINALIZER]
            )
            ns = str(job["metadata"].get("namespace") or "")
            mine = await refs.claim(
                PODS,
                mine + self.pods.by_index(self.ORPHAN_INDEX, ns),
                lambda p: sel.matches(_meta(p).get("labels") or {}),
            )
        await self._sync_job(key, job, mine)

    async def _sync_job(self, key: str, job: Obj, pods: list[Obj]) -> None:
        spec = job.get("spec") or {}
        ns = job["metadata"]["namespace"]
        now = self.clock.now()
        stamp = rfc3339(now)
        status = clone(job.get("status") or {})
        indexed = spec.get("completionMode") == "Indexed"
        completions: int | None = spec.get("completions")
        parallelism = _int(spec.get("parallelism"), 1)
        backoff_limit = _int(spec.get("backoffLimit"), 6)
        bo = self._backoff.setdefault(key, _Backoff())
        wait_terminal = only_replace_failed(job)

        # 1. account for finished pods -----------------------------------------------------
        unc = status.get("uncountedTerminatedPods") or {}
        unc_s: list[str] = list(unc.get("succeeded") or [])
        unc_f: list[str] = list(unc.get("failed") or [])
        by_uid = {p["metadata"].get("uid"): p for p in pods}
        fail_message: str | None = None
        release: list[Obj] = []
        new_failures: list[Obj] = []
        for p in pods:
            puid = p["metadata"].get("uid")
            if not has_finalizer(p) or puid in unc_s or puid in unc_f:
                if has_finalizer(p):
                    release.append(p)
                continue
            if _phase(p) == "Succeeded":
                unc_s.append(puid)
                release.append(p)
            elif _phase(p) == "Failed" or (is_deleting(p) and not wait_terminal):
                msg, counts, _action = match_pod_failure_policy(spec.get("podFailurePolicy"), p)
                release.append(p)
                if not counts:
                    continue  # Ignore: not counted, replaced
                fail_message = fail_message or msg
                unc_f.append(puid)
                new_failures.append(p)
        if release:
            if len(unc_s) + len(unc_f) > len(unc.get("succeeded") or []) + len(
                unc.get("failed") or []
            ):
                status["uncountedTerminatedPods"] = {
                    k: v for k, v in (("succeeded", unc_s), ("failed", unc_f)) if v
                }
                job = await self._write_status(job, status)
            await self._release(release)
        if unc_s or unc_f:
            if indexed:
                done = parse_indexes(status.get("completedIndexes") or "", completions)
                for u in unc_s:
                    i = pod_index(by_uid.get(u) or {})
                    if i is not None and (completions is None or i < completions):
                        done.add(i)
                status["completedIndexes"] = format_indexes(done)
                status["succeeded"] = len(done)
            else:
                status["succeeded"] = int(status.get("succeeded") or 0) + len(unc_s)
            status["failed"] = int(status.get("failed") or 0) + len(unc_f)
        status["uncountedTerminatedPods"] = {}
        if new_failures:
            bo.failures += len(new_failures)
            bo.last_failure = max(pod_finish_time(p, now) for p in new_failures)
        elif unc_s:
            bo.failures = 0
        succeeded = int(status.get("succeeded") or 0)
        failed = int(status.get("failed") or 0)

        counted = set(unc_s) | set(unc_f)
        active = [
            p
            for p in pods
            if not is_terminal(p) and not is_deleting(p) and p["metadata"].get("uid") not in counted
        ]
        terminating = [p for p in pods if is_deleting(p) and not is_terminal(p)]

        # 2. suspend / resume --------------------------------------------------------------------
        suspended = bool(spec.get("suspend"))
        cond_suspended = condition({"status": status}, SUSPENDED)
        if suspended:
            if _set_condition(status, SUSPENDED, "True", "JobSuspended", "Job suspended", stamp):
                await self.recorder.event(job, "Normal", "Suspended", "Job suspended")
            if active:
                await self._delete_pods(job, key, active)
                active = []
        else:
            if cond_suspended and cond_suspended.get("status") == "True":
                _set_condition(status, SUSPENDED, "False", "JobResumed", "Job resumed", stamp)
                await self.recorder.event(job, "Normal", "Resumed", "Job resumed")
                status["startTime"] = stamp
            status.setdefault("startTime", stamp)

        created = 0
        # 3. failure and success -------------------------------------------------------------------
        failure: tuple[str, str] | None = None
        target = condition({"status": status}, FAILURE_TARGET)
        if target and target.get("status") == "True":
            failure = (str(target.get("reason")), str(target.get("message")))
        elif fail_message:
            failure = (REASON_POD_FAILURE_POLICY, fail_message)
        elif failed > backoff_limit:
            failure = (REASON_BACKOFF_LIMIT, MSG_BACKOFF_LIMIT)
        elif not suspended and spec.get("activeDeadlineSeconds") is not None:
            deadline = parse_rfc3339(status["startTime"]) + int(spec["activeDeadlineSeconds"])
            if now >= deadline:
                failure = (REASON_DEADLINE, MSG_DEADLINE)
            else:
                self.queue.add_after(key, deadline - now)
        if indexed and completions is not None:
            done_all = len(parse_indexes(status.get("completedIndexes") or "", completions))
            complete = done_all >= completions
        elif completions is not None:
            complete = succeeded >= completions
        else:
            complete = succeeded > 0 and not active
        if failure is not None:
            reason, message = failure
            _set_condition(status, FAILURE_TARGET, "True", reason, message, stamp)
            if active:
                status["failed"] = failed + await self._delete_pods(job, key, active)
                active = []
            if not terminating and not condition({"status": status}, FAILED):
                _set_condition(status, FAILED, "True", reason, message, stamp)
                await self.recorder.event(job, "Warning", reason, message)
        elif complete:
            _set_condition(
                status,
                SUCCESS_CRITERIA_MET,
                "True",
                REASON_COMPLETIONS_REACHED,
                MSG_COMPLETIONS_REACHED,
                stamp,
            )
            if active:
                await self._delete_pods(job, key, active)
                active = []
            if not terminating and not condition({"status": status}, COMPLETE):
                reached = (REASON_COMPLETIONS_REACHED, MSG_COMPLETIONS_REACHED)
                _set_condition(status, COMPLETE, "True", *reached, stamp)
                status["completionTime"] = stamp
                await self.recorder.event(job, "Normal", "Completed", "Job completed")
        elif not suspended and self.expectations.satisfied(key, self.pods, ns):
            held = terminating if wait_terminal else []
            active, created = await self._manage(
                key, job, status, active, succeeded, parallelism, bo, now, held
            )

        # 4. status -----------------------------------------------------------------------------------
        for k, v in (("active", len(active) + created), ("succeeded", succeeded)):
            if v:
                status[k] = v
            else:
                status.pop(k, None)
        if not status.get("failed"):
            status.pop("failed", None)
        if not status.get("completedIndexes"):
            status.pop("completedIndexes", None)
        status["ready"] = sum(1 for p in active if is_ready(p))
        status["terminating"] = len(terminating)
        if status != (job.get("status") or {}):
            await self._write_status(job, status)

    async def _manage(
        self,
        key: str,
        job: Obj,
        status: Obj,
        active: list[Obj],
        succeeded: int,
        parallelism: int,
        bo: _Backoff,
        now: float,
        held: list[Obj] | None = None,
    ) -> tuple[list[Obj], int]:
        """Create or delete pods towards the wanted number active; returns the pods still
        active and how many were created. ``held``: terminating pods that still take their
        slot (and index) until they are terminal (``podReplacementPolicy: Failed``)."""
        held = held or []
        spec = job.get("spec") or {}
        completions: int | None = spec.get("completions")
        remove: list[Obj] = []
        create: list[int | None] = []
        if spec.get("completionMode") == "Indexed" and completions is not None:
            done = parse_indexes(status.get("completedIndexes") or "", completions)
            seen: set[int] = {i for p in held if (i := pod_index(p)) is not None}
            keep: list[Obj] = []
            for p in sorted(active, key=lambda p: (not is_ready(p), _created(p))):
                i = pod_index(p)
                if i is None or i >= completions or i in seen or i in done:
                    remove.append(p)
                else:
                    seen.add(i)
                    keep.append(p)
            room = max(0, parallelism - len(keep) - len(held))
            missing = [i for i in range(completions) if i not in done and i not in seen]
            create = list(missing[:room])
            if len(keep) > parallelism:
                remove += _least_valuable(keep)[: len(keep) - parallelism]
        else:
            if completions is None:
                want = len(active) if succeeded > 0 else parallelism
            else:
                want = max(0, min(parallelism, completions - succeeded))
            if len(active) > want:
                remove = _least_valuable(active)[: len(active) - want]
            else:
                create = [None] * max(0, want - len(active) - len(held))
        if remove:
            await self._delete_pods(job, key, remove)
            gone = {id(p) for p in remove}
            active = [p for p in active if id(p) not in gone]
        if create:
            wait = bo.last_failure + backoff_delay(bo.failures) - now if bo.failures else 0.0
            if wait > 0:
                self.queue.add_after(key, wait)
            else:
                await self._create_pods(job, key, create[:MAX_PODS_PER_SYNC])
                return active, len(create[:MAX_PODS_PER_SYNC])
        return active, 0

    async def _write_status(self, job: Obj, status: Obj) -> Obj:
        body = clone(job)
        body["status"] = status
        out: Obj = await self.client.update(JOBS, body, job["metadata"]["namespace"], sub="status")
        return out


def _meta(obj: Obj) -> Obj:
    m: Obj = obj.get("metadata") or {}
    return m


def _selector(job: Obj) -> LabelSelector | None:
    try:
        return try_selector_from_object((job.get("spec") or {}).get("selector"))
    except SelectorError:
        return None


def _int(value: Any, default: int) -> int:
    return int(value) if value is not None else default


def _owner_uid(pod: Obj) -> str | None:
    for ref in (pod.get("metadata") or {}).get("ownerReferences") or ():
        if ref.get("controller") and ref.get("kind") == "Job":
            return str(ref.get("uid"))
    return None


def _job_owner_index(pod: Obj) -> list[str]:
    k = owner_key(pod, "Job")
    return [k] if k else []


def _created(pod: Obj) -> str:
    return str((pod.get("metadata") or {}).get("creationTimestamp") or "")


def _least_valuable(pods: list[Obj]) -> list[Obj]:
    """Deletion order: unscheduled, then pending, then not ready, then newest."""
    return sorted(
        pods,
        key=lambda p: (
            bool((p.get("spec") or {}).get("nodeName")),
            _phase(p) == "Running",
            is_ready(p),
            _invert(_created(p)),
        ),
    )


def _invert(s: str) -> tuple[int, ...]:
    return tuple(-ord(c) for c in s)


# --- TTL after finished ------------------------------------------------------------------------


class TTLAfterFinishedController(Controller):
    """Deletes finished Jobs ``ttlSecondsAfterFinished`` after they finished (Background
    propagation, so their pods go too). Reads the injected clock; requeues itself for the
    expiry instead of polling."""

    name: ClassVar[str] = "ttl-after-finished"

    def __init__(
        self,
        client: Client,
        factory: InformerFactory,
        *,
        workers: int = 2,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(client, factory, workers=workers, clock=clock)
        self.jobs = factory.informer(JOBS)
        self.jobs.add_handler(lambda _t, obj, _old: self._maybe(obj))

    def _maybe(self, job: Obj) -> None:
        if (job.get("spec") or {}).get("ttlSecondsAfterFinished") is not None:
            self.enqueue(job)

    @staticmethod
    def expires_at(job: Obj) -> float | None:
        ttl = (job.get("spec") or {}).get("ttlSecondsAfterFinished")
        done = finish_time(job)
        if ttl is None or done is None or job["metadata"].get("deletionTimestamp"):
            return None
        return done + int(ttl)

    async def sync(self, key: str) -> None:
        job = self.jobs.get(key)
        if job is None or self.expires_at(job) is None:
            return
        ns, name = job["metadata"]["namespace"], job["metadata"]["name"]
        now = self.clock.now()
        expiry = self.expires_at(job)
        assert expiry is not None
        if now < expiry:
            self.queue.add_after(key, expiry - now)
            return
        try:  # the cache may be stale: decide on the live object
            fresh = await self.client.get(JOBS, name, ns)
            expiry = self.expires_at(fresh)
            if expiry is None or self.clock.now() < expiry:
                if expiry is not None:
                    self.queue.add_after(key, expiry - self.clock.now())
                return
            await self.client.delete(JOBS, name, ns, propagation="Background")
        except StatusError as e:
            if e.code != 404:
                raise


__all__ = [
    "JOBS",
    "JobController",
    "TTLAfterFinishedController",
    "backoff_delay",
    "finished_condition",
    "format_indexes",
    "match_pod_failure_policy",
    "parse_indexes",
    "pod_from_template",
]
