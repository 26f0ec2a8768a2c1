"""Job controller: pure helpers by table, and ``sync`` against a fake client and clock.

``FakeClient`` keeps objects in memory and feeds every write straight into the
informers it was given (an instant watch); ``FakeClock`` is advanced by hand. Both are
also used by test_cronjob.py.
"""

from __future__ import annotations

import copy
import itertools
from typing import Any, cast

import pytest

from corral.api.errors import StatusError, already_exists, not_found
from corral.api.patch import strategic_merge_patch
from corral.api.schema import for_kind
from corral.client.informer import Informer
from corral.client.rest import PODS, Client, Resource
from corral.controllers.base import InformerFactory
from corral.controllers.job import (
    JOBS,
    TRACKING_FINALIZER,
    JobController,
    TTLAfterFinishedController,
    backoff_delay,
    format_indexes,
    match_pod_failure_policy,
    parse_indexes,
    pod_from_template,
)
from corral.util.clock import rfc3339

Obj = dict[str, Any]
T0 = 1_700_000_000.0


class FakeClock:
    def __init__(self, t: float = T0) -> None:
        self.t = t

    def now(self) -> float:
        return self.t

    def monotonic(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


def _merge(into: Obj, patch: Obj) -> None:
    for k, v in patch.items():
        if v is None:
            into.pop(k, None)
        elif isinstance(v, dict) and isinstance(into.get(k), dict):
            _merge(into[k], v)
        else:
            into[k] = v


_KINDS = {
    "pods": ("", "v1", "Pod"),
    "controllerrevisions": ("apps", "v1", "ControllerRevision"),
    "jobs": ("batch", "v1", "Job"),
    "daemonsets": ("apps", "v1", "DaemonSet"),
    "statefulsets": ("apps", "v1", "StatefulSet"),
}


class FakeClient:
    """In-memory API: writes land in the store and in the attached informers at once."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.objects: dict[tuple[str, str, str], Obj] = {}
        self.informers: dict[str, Informer] = {}
        self.actions: list[tuple[str, str, str]] = []
        self.events: list[tuple[str, str]] = []
        self._event_by_name: dict[str, tuple[str, str]] = {}
        self._seq = itertools.count(1)

    def attach(self, factory: InformerFactory, *resources: Resource) -> None:
        for r in resources:
            self.informers[r.plural] = factory.informer(r)

    def _show(self, plural: str, type_: str, obj: Obj) -> None:
        inf = self.informers.get(plural)
        if inf is not None:
            inf.apply(type_, obj)

    def seed(self, res: Resource, obj: Obj) -> Obj:
        meta = obj.setdefault("metadata", {})
        meta.setdefault("uid", f"uid-{next(self._seq)}")
        meta.setdefault("creationTimestamp", rfc3339(self.clock.now()))
        meta["resourceVersion"] = str(next(self._seq))
        self.objects[(res.plural, meta.get("namespace", ""), meta["name"])] = obj
        self._show(res.plural, "ADDED", obj)
        return obj

    async def get(self, res: Resource, name: str, namespace: str | None = None) -> Obj:
        obj = self.objects.get((res.plural, namespace or "", name))
        if obj is None:
            raise not_found(res.plural, res.group, name)
        return obj

    async def create(self, res: Resource, obj: Obj, namespace: str | None = None) -> Obj:
        meta = obj.setdefault("metadata", {})
        if res.plural == "events":
            name = f"ev{next(self._seq)}"
            self._event_by_name[name] = (obj["reason"], obj["message"])
            self.events.append((obj["reason"], obj["message"]))
            return {"metadata": {"name": name}}
        if not meta.get("name"):
            meta["name"] = f"{meta['generateName']}{next(self._seq):05d}"
        meta["namespace"] = namespace or ""
        if (res.plural, meta["namespace"], meta["name"]) in self.objects:
            raise already_exists(res.plural, res.group, meta["name"])
        self.actions.append(("create", res.plural, meta["name"]))
        return self.seed(res, obj)

    async def update(
        self, res: Resource, obj: Obj, namespace: str | None = None, sub: str = ""
    ) -> Obj:
        key = (res.plural, namespace or "", obj["metadata"]["name"])
        old = self.objects.get(key)
        if old is None:
            raise not_found(res.plural, res.group, obj["metadata"]["name"])
        if old["metadata"]["resourceVersion"] != obj["metadata"].get("resourceVersion"):
            raise StatusError(409, "Conflict", "the object has been modified")
        new = dict(old) if sub else obj
        if sub == "status":
            new["status"] = obj.get("status")
        new["metadata"] = {**new["metadata"], "resourceVersion": str(next(self._seq))}
        self.objects[key] = new
        self.actions.append(("update" + (f"/{sub}" if sub else ""), res.plural, key[2]))
        self._show(res.plural, "MODIFIED", new)
        return new

    async def patch(
        self, res: Resource, name: str, patch: Any, namespace: str | None = None, **kw: Any
    ) -> Obj:
        if res.plural == "events":  # a repeated event: the recorder bumps its count
            self.events.append(self._event_by_name[name])
            return {}
        key = (res.plural, namespace or "", name)
        old = self.objects.get(key)
        if old is None:
            raise not_found(res.plural, res.group, name)

        if kw.get("patch_type") == "application/strategic-merge-patch+json":
            # as the API server: the patch's metadata.uid must be the object's (uid is
            # immutable: 422), lists merge by their schema's strategy
            want_uid = (patch.get("metadata") or {}).get("uid")
            if want_uid is not None and want_uid != old["metadata"].get("uid"):
                raise StatusError(422, "Invalid", "metadata.uid: field is immutable")
            new = strategic_merge_patch(old, patch, for_kind(*_KINDS[res.plural]))
        else:
            new = copy.deepcopy(old)
            _merge(new, patch)
        new["metadata"]["resourceVersion"] = str(next(self._seq))
        self.actions.append(("patch", res.plural, name))
        meta = new["metadata"]
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            del self.objects[key]
            self._show(res.plural, "DELETED", new)
        else:
            self.objects[key] = new
            self._show(res.plural, "MODIFIED", new)
        return new

    async def delete(
        self, res: Resource, name: str, namespace: str | None = None, **kw: Any
    ) -> Obj:
        key = (res.plural, namespace or "", name)
        old = self.objects.get(key)
        if old is None:
            raise not_found(res.plural, res.group, name)
        self.actions.append(("delete", res.plural, name))
        if old["metadata"].get("finalizers"):
            new = {**old, "metadata": {**old["metadata"]}}
            new["metadata"]["deletionTimestamp"] = rfc3339(self.clock.now())
            self.objects[key] = new
            self._show(res.plural, "MODIFIED", new)
            return new
        del self.objects[key]
        self._show(res.plural, "DELETED", old)
        return old

    def of(self, plural: str, ns: str = "ns") -> list[Obj]:
        return [o for (p, n, _), o in sorted(self.objects.items()) if p == plural and n == ns]


# --- pure helpers -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("indexes", "text"),
    [([], ""), ([0], "0"), ([0, 1, 2, 4], "0-2,4"), ([5, 3, 1], "1,3,5"), ([7, 8, 2, 9], "2,7-9")],
    ids=["empty", "one", "range-and-single", "unsorted-singles", "single-then-range"],
)
def test_completed_indexes_format_round_trip(indexes: list[int], text: str) -> None:
    assert format_indexes(indexes) == text
    assert parse_indexes(text) == set(indexes)


def test_parse_indexes_drops_past_completions() -> None:
    assert parse_indexes("0-3,9", limit=3) == {0, 1, 2}


@pytest.mark.parametrize(
    ("failures", "delay"),
    [(0, 0), (1, 10), (2, 20), (3, 40), (6, 320), (7, 600), (30, 600)],
    ids=["none", "first", "second", "third", "sixth", "capped", "far-past-cap"],
)
def test_pod_failure_backoff(failures: int, delay: float) -> None:
    assert backoff_delay(failures) == delay


def _failed_pod(code: int, conditions: list[Obj] | None = None) -> Obj:
    return {
        "metadata": {"name": "p", "namespace": "ns"},
        "status": {
            "phase": "Failed",
            "conditions": conditions or [],
            "containerStatuses": [
                {"name": "main", "state": {"terminated": {"exitCode": code}}},
            ],
        },
    }


POLICY = {
    "rules": [
        {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
        {"action": "FailJob", "onExitCodes": {"operator": "In", "values": [42]}},
        {"action": "Count", "onExitCodes": {"operator": "NotIn", "values": [42]}},
    ]
}


@pytest.mark.parametrize(
    ("pod", "expected"),
    [
        (_failed_pod(1), (None, True, "Count")),
        (
            _failed_pod(42),
            (
                "Container main for pod ns/p failed with exit code 42 matching FailJob rule "
                "at index 1",
                True,
                "FailJob",
            ),
        ),
        (
            _failed_pod(1, [{"type": "DisruptionTarget", "status": "True"}]),
            (None, False, "Ignore"),
        ),
    ],
    ids=["count", "fail-job", "ignore-disruption"],
)
def test_pod_failure_policy(pod: Obj, expected: tuple[str | None, bool, str | None]) -> None:
    assert match_pod_failure_policy(POLICY, pod) == expected
    assert match_pod_failure_policy(None, pod) == (None, True, None)


def _job(name: str = "pi", **spec: Any) -> Obj:
    labels = {"batch.kubernetes.io/controller-uid": "u1", "batch.kubernetes.io/job-name": name}
    base: Obj = {
        "parallelism": 1,
        "completions": 1,
        "backoffLimit": 6,
        "completionMode": "NonIndexed",
        "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "u1"}},
        "template": {
            "metadata": {"labels": labels},
            "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]},
        },
    }
    base.update(spec)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": "ns", "uid": "u1"},
        "spec": base,
    }


def test_pod_from_template_indexed() -> None:
    pod = pod_from_template(_job(completionMode="Indexed", completions=3), 2)
    meta = pod["metadata"]
    assert meta["generateName"] == "pi-2-"
    assert meta["annotations"]["batch.kubernetes.io/job-completion-index"] == "2"
    assert meta["labels"]["batch.kubernetes.io/job-name"] == "pi"
    assert meta["finalizers"] == [TRACKING_FINALIZER]
    assert meta["ownerReferences"][0]["kind"] == "Job"
    assert meta["ownerReferences"][0]["controller"] is True
    assert pod["spec"]["hostname"] == "pi-2"
    env = pod["spec"]["containers"][0]["env"]
    assert env[-1]["name"] == "JOB_COMPLETION_INDEX"
    assert "job-completion-index" in env[-1]["valueFrom"]["fieldRef"]["fieldPath"]
    plain = pod_from_template(_job(), None)
    assert plain["metadata"]["generateName"] == "pi-"
    assert "hostname" not in plain["spec"]


# --- sync ------------------------------------------------------------------------------------


class Harness:
    def __init__(self) -> None:
        self.clock = FakeClock()
        self.client = FakeClient(self.clock)
        factory = InformerFactory(cast(Client, self.client))
        self.ctrl = JobController(cast(Client, self.client), factory, clock=self.clock)
        self.ttl = TTLAfterFinishedController(cast(Client, self.client), factory, clock=self.clock)
        self.client.attach(factory, JOBS, PODS)

    def add(self, job: Obj) -> None:
        self.client.seed(JOBS, job)

    async def sync(self, times: int = 1) -> Obj:
        for _ in range(times):
            await self.ctrl.sync("ns/pi")
        return self.job()

    def job(self) -> Obj:
        return self.client.objects[("jobs", "ns", "pi")]

    def pods(self) -> list[Obj]:
        return self.client.of("pods")

    def active(self) -> list[Obj]:
        return [
            p
            for p in self.pods()
            if not p["metadata"].get("deletionTimestamp")
            and (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
        ]

    async def finish(self, pod: Obj, phase: str, code: int = 0) -> None:
        cs = {"name": "c", "state": {"terminated": {"exitCode": code,
              "finishedAt": rfc3339(self.clock.now())}}}  # fmt: skip
        await self.client.patch(
            PODS,
            pod["metadata"]["name"],
            {"status": {"phase": phase, "containerStatuses": [cs]}},
            "ns",
        )

    def reasons(self) -> list[str]:
        return [r for r, _ in self.client.events]


def conds(job: Obj) -> dict[str, Obj]:
    return {c["type"]: c for c in job["status"].get("conditions") or []}


async def test_nonindexed_job_runs_to_completion() -> None:
    h = Harness()
    h.add(_job(parallelism=2, completions=3))
    job = await h.sync()
    assert len(h.active()) == 2
    assert job["status"]["active"] == 2 and job["status"]["startTime"] == rfc3339(T0)
    assert all(TRACKING_FINALIZER in p["metadata"]["finalizers"] for p in h.pods())
    assert h.reasons().count("SuccessfulCreate") == 2
    # two finish: the third pod is created, the finished ones lose the finalizer
    for p in h.active():
        await h.finish(p, "Succeeded")
    job = await h.sync()
    assert job["status"]["succeeded"] == 2 and job["status"]["active"] == 1
    assert job["status"]["uncountedTerminatedPods"] == {}
    done = [p for p in h.pods() if p.get("status", {}).get("phase") == "Succeeded"]
    assert len(done) == 2 and not any(p["metadata"].get("finalizers") for p in done)
    await h.finish(h.active()[0], "Succeeded")
    h.clock.advance(5)
    job = await h.sync()
    c = conds(job)
    assert c["SuccessCriteriaMet"]["reason"] == "CompletionsReached"
    assert c["Complete"]["status"] == "True"
    assert c["Complete"]["message"] == "Reached expected number of succeeded pods"
    assert job["status"]["succeeded"] == 3 and "active" not in job["status"]
    assert job["status"]["completionTime"] == rfc3339(T0 + 5)
    assert "Completed" in h.reasons()
    creates = [a for a in h.client.actions if a[:2] == ("create", "pods")]
    assert len(creates) == 3
    await h.sync()  # finished: nothing more happens
    assert len([a for a in h.client.actions if a[:2] == ("create", "pods")]) == 3


async def test_no_double_create_while_cache_lags() -> None:
    h = Harness()
    h.add(_job(parallelism=3, completions=3))
    h.client.informers.pop("pods")  # the watch stalls: created pods are not seen
    await h.sync(3)
    assert len([a for a in h.client.actions if a[:2] == ("create", "pods")]) == 3


async def test_failed_pods_back_off_then_backoff_limit() -> None:
    h = Harness()
    h.add(_job(backoffLimit=1))
    await h.sync()
    await h.finish(h.active()[0], "Failed", 1)
    job = await h.sync()
    assert job["status"]["failed"] == 1
    assert h.active() == []  # the replacement waits out 10 s
    h.clock.advance(9)
    await h.sync()
    assert h.active() == []
    h.clock.advance(1)
    await h.sync()
    assert len(h.active()) == 1
    await h.finish(h.active()[0], "Failed", 1)
    job = await h.sync()
    c = conds(job)
    assert c["FailureTarget"]["reason"] == "BackoffLimitExceeded"
    assert c["Failed"]["message"] == "Job has reached the specified backoff limit"
    assert job["status"]["failed"] == 2
    assert "BackoffLimitExceeded" in h.reasons()


async def test_active_deadline_terminates_active_pods() -> None:
    h = Harness()
    h.add(_job(parallelism=2, completions=4, activeDeadlineSeconds=30))
    await h.sync()
    assert len(h.active()) == 2
    h.clock.advance(30)
    job = await h.sync()
    assert h.pods() == []  # finalizers removed, then deleted
    c = conds(job)
    assert c["Failed"]["reason"] == "DeadlineExceeded"
    assert c["Failed"]["message"] == "Job was active longer than specified deadline"
    assert job["status"]["failed"] == 2
    assert h.reasons().count("SuccessfulDelete") == 2 and "DeadlineExceeded" in h.reasons()


async def test_pod_failure_policy_fail_job_and_ignore() -> None:
    h = Harness()
    h.add(_job(podFailurePolicy=POLICY, parallelism=2, completions=2))
    await h.sync()
    a, b = h.active()
    await h.client.patch(
        PODS, a["metadata"]["name"],
        {"status": {"phase": "Failed",
                    "conditions": [{"type": "DisruptionTarget", "status": "True"}]}},
        "ns",
    )  # fmt: skip
    job = await h.sync()
    assert "failed" not in job["status"]  # ignored, and replaced at once
    assert len(h.active()) == 2
    await h.finish(b, "Failed", 42)
    job = await h.sync()
    c = conds(job)
    assert c["Failed"]["reason"] == "PodFailurePolicy"
    assert "failed with exit code 42 matching FailJob rule at index 1" in c["Failed"]["message"]


async def test_indexed_job() -> None:
    h = Harness()
    h.add(_job(completionMode="Indexed", completions=5, parallelism=3))
    await h.sync()
    names = sorted(p["metadata"]["generateName"] for p in h.active())
    assert names == ["pi-0-", "pi-1-", "pi-2-"]
    by_index = {p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"]: p
                for p in h.active()}  # fmt: skip
    await h.finish(by_index["0"], "Succeeded")
    await h.finish(by_index["2"], "Succeeded")
    job = await h.sync()
    assert job["status"]["completedIndexes"] == "0,2"
    assert job["status"]["succeeded"] == 2
    idx = sorted(p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"]
                 for p in h.active())  # fmt: skip
    assert idx == ["1", "3", "4"]
    for p in h.active():
        await h.finish(p, "Succeeded")
    job = await h.sync()
    assert job["status"]["completedIndexes"] == "0-4"
    assert conds(job)["Complete"]["status"] == "True"


@pytest.mark.parametrize(
    ("policy", "replaced_while_terminating"),
    [("Failed", False), ("TerminatingOrFailed", True)],
    ids=["failed-waits-for-terminal", "terminating-or-failed-replaces-at-once"],
)
async def test_pod_replacement_policy(policy: str, replaced_while_terminating: bool) -> None:
    """A pod deleted on an unreachable node stays terminating (nothing confirms it):
    with ``Failed`` its index is not started again until the pod is Failed."""
    h = Harness()
    h.add(_job(completionMode="Indexed", completions=2, parallelism=2,
               podReplacementPolicy=policy))  # fmt: skip
    await h.sync(2)  # the second sync sees its creations
    lost = next(p for p in h.active() if p["metadata"]["generateName"] == "pi-1-")
    await h.client.delete(PODS, lost["metadata"]["name"], "ns")  # finalizer: terminating
    job = await h.sync()
    assert ("failed" in job["status"]) == replaced_while_terminating
    h.clock.advance(10)  # past the pod-failure back-off of a counted failure
    job = await h.sync()
    ones = [p for p in h.active() if p["metadata"]["generateName"] == "pi-1-"]
    assert len(ones) == int(replaced_while_terminating)
    if not replaced_while_terminating:
        assert job["status"]["terminating"] == 1
        await h.finish(h.client.objects[("pods", "ns", lost["metadata"]["name"])], "Failed", 137)
        job = await h.sync()
        assert job["status"]["failed"] == 1
        h.clock.advance(10)  # the pod-failure back-off
        await h.sync()
        ones = [p for p in h.active() if p["metadata"]["generateName"] == "pi-1-"]
        assert len(ones) == 1


async def test_pod_failure_policy_always_waits_for_terminal_pods() -> None:
    """Upstream's onlyReplaceFailedPods: a Job with a podFailurePolicy replaces a pod only
    once it is Failed, even when podReplacementPolicy says TerminatingOrFailed (which the
    API rejects upstream, beside a podFailurePolicy)."""
    h = Harness()
    rules = [{"action": "FailJob", "onExitCodes": {"operator": "In", "values": [42]}}]
    h.add(_job(completionMode="Indexed", completions=2, parallelism=2,
               podReplacementPolicy="TerminatingOrFailed",
               podFailurePolicy={"rules": rules}))  # fmt: skip
    await h.sync(2)
    lost = next(p for p in h.active() if p["metadata"]["generateName"] == "pi-1-")
    await h.client.delete(PODS, lost["metadata"]["name"], "ns")  # finalizer: terminating
    job = await h.sync()
    h.clock.advance(10)
    job = await h.sync()
    assert "failed" not in job["status"], job["status"]
    assert [p for p in h.active() if p["metadata"]["generateName"] == "pi-1-"] == []
    assert job["status"]["terminating"] == 1


async def test_suspend_and_resume() -> None:
    h = Harness()
    h.add(_job(parallelism=2, completions=2, suspend=True))
    job = await h.sync()
    assert h.pods() == [] and "startTime" not in job["status"]
    assert conds(job)["Suspended"]["reason"] == "JobSuspended"
    job["spec"]["suspend"] = False
    await h.client.update(JOBS, job, "ns")
    h.clock.advance(7)
    job = await h.sync()
    assert len(h.active()) == 2
    assert conds(job)["Suspended"]["status"] == "False"
    assert conds(job)["Suspended"]["reason"] == "JobResumed"
    assert job["status"]["startTime"] == rfc3339(T0 + 7)
    job["spec"]["suspend"] = True
    await h.client.update(JOBS, job, "ns")
    job = await h.sync()
    assert h.active() == [] and conds(job)["Suspended"]["status"] == "True"
    assert h.reasons().count("Suspended") == 2 and "Resumed" in h.reasons()


async def test_gone_job_releases_its_pods() -> None:
    h = Harness()
    h.add(_job(parallelism=2, completions=2))
    await h.sync()
    for p in h.pods():  # the garbage collector deletes them: our finalizer holds them
        await h.client.delete(PODS, p["metadata"]["name"], "ns")
    await h.client.delete(JOBS, "pi", "ns")
    assert len(h.pods()) == 2
    await h.ctrl.sync("ns/pi")
    assert h.pods() == []


async def test_ttl_after_finished() -> None:
    h = Harness()
    h.add(_job(ttlSecondsAfterFinished=60))
    await h.sync()
    await h.finish(h.active()[0], "Succeeded")
    await h.sync()
    await h.ttl.sync("ns/pi")
    assert ("jobs", "ns", "pi") in h.client.objects
    h.clock.advance(60)
    await h.ttl.sync("ns/pi")
    assert ("jobs", "ns", "pi") not in h.client.objects


async def test_missing_object_is_not_an_error() -> None:
    h = Harness()
    await h.ctrl.sync("ns/nothing")
    await h.ttl.sync("ns/nothing")
    with pytest.raises(StatusError):
        await h.client.get(JOBS, "nothing", "ns")


# --- adoption and release (getPodsForJob) ----------------------------------------------------


def _bare_pod(name: str, labels: dict[str, str], phase: str = "Running") -> Obj:
    return {
        "metadata": {"name": name, "namespace": "ns", "labels": labels},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
        "status": {"phase": phase},
    }


JOB_LABELS = {"batch.kubernetes.io/controller-uid": "u1"}


async def test_job_adopts_a_matching_orphan_with_the_tracking_finalizer() -> None:
    h = Harness()
    h.client.seed(PODS, _bare_pod("orphan", JOB_LABELS))
    h.client.seed(PODS, _bare_pod("other", {"app": "x"}))
    h.add(_job())
    job = await h.sync()
    pod = h.client.objects[("pods", "ns", "orphan")]
    refs = pod["metadata"]["ownerReferences"]
    assert refs == [
        {"apiVersion": "batch/v1", "kind": "Job", "name": "pi", "uid": "u1",
         "controller": True, "blockOwnerDeletion": True}
    ]  # fmt: skip
    assert TRACKING_FINALIZER in pod["metadata"]["finalizers"]
    # the adopted pod is the one active pod: nothing created, the other pod untouched
    assert job["status"]["active"] == 1
    assert ("create", "pods", "orphan") not in h.client.actions
    assert not [a for a in h.client.actions if a[:2] == ("create", "pods")]
    assert not h.client.objects[("pods", "ns", "other")]["metadata"].get("ownerReferences")
    # it finishes: counted as the Job's success
    await h.finish(pod, "Succeeded")
    job = await h.sync()
    assert job["status"]["succeeded"] == 1 and conds(job)["Complete"]["status"] == "True"


async def test_job_releases_a_pod_that_stopped_matching_and_replaces_it() -> None:
    h = Harness()
    h.add(_job())
    await h.sync()
    (mine,) = h.pods()
    name = mine["metadata"]["name"]
    await h.client.patch(
        PODS, name, {"metadata": {"labels": {"batch.kubernetes.io/controller-uid": "zzz"}}}, "ns"
    )
    job = await h.sync()
    released = h.client.objects[("pods", "ns", name)]
    assert not released["metadata"].get("ownerReferences")
    assert TRACKING_FINALIZER not in (released["metadata"].get("finalizers") or [])
    assert job["status"]["active"] == 1 and len(h.pods()) == 2  # a replacement


@pytest.mark.parametrize(
    ("deleting", "orphan_deleting"),
    [(True, False), (False, True)],
    ids=["job-being-deleted", "orphan-being-deleted"],
)
async def test_job_does_not_adopt(deleting: bool, orphan_deleting: bool) -> None:
    h = Harness()
    pod = _bare_pod("orphan", JOB_LABELS)
    if orphan_deleting:
        pod["metadata"]["deletionTimestamp"] = rfc3339(h.clock.now())
        pod["metadata"]["finalizers"] = ["hold"]
    h.client.seed(PODS, pod)
    job = _job()
    if deleting:
        job["metadata"]["deletionTimestamp"] = rfc3339(h.clock.now())
    h.add(job)
    await h.sync()
    assert not h.client.objects[("pods", "ns", "orphan")]["metadata"].get("ownerReferences")
