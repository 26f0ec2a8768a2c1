"""Job and CronJob controllers against a real server, mirroring the conformance cases.

The server runs with ``--no-scheduler``; the controllers run in-process as asyncio tasks
with Corral's REST client. Nothing runs pods here: a test "finishes" a pod by patching
``pods/status`` (phase and containerStatuses), as a node agent would. The CronJob
controller reads a fake clock the test advances, so no test waits for a minute.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from conftest import RunningServer, start_server
from corral.api.errors import StatusError
from corral.client.rest import EVENTS, NAMESPACES, PODS, Client
from corral.controllers.base import Controller, InformerFactory
from corral.controllers.cronjob import CRONJOBS, CronJobController
from corral.controllers.job import JOBS, TRACKING_FINALIZER, JobController
from corral.testing.wait import until
from corral.util.clock import rfc3339

Obj = dict[str, Any]


class FakeClock:
    def __init__(self) -> None:
        self.t = time.time()

    def now(self) -> float:
        return self.t

    def monotonic(self) -> float:
        return self.t


@pytest.fixture(scope="module")
def jobs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    srv = start_server(tmp_path_factory.mktemp("jobs") / "data", extra=["--no-scheduler"])
    yield srv
    srv.stop()


@pytest.fixture
async def env(jobs_server: RunningServer) -> AsyncIterator[tuple[Client, str]]:
    client = Client.from_kubeconfig(jobs_server.kubeconfig)
    ns = "j-" + uuid.uuid4().hex[:8]
    await client.create(NAMESPACES, {"metadata": {"name": ns}})
    try:
        yield client, ns
    finally:
        try:
            await client.delete(NAMESPACES, ns)
        except StatusError:
            pass
        await client.close()


@asynccontextmanager
async def running(*controllers: Controller) -> AsyncIterator[None]:
    tasks = [asyncio.create_task(c.run()) for c in controllers]
    try:
        async with asyncio.timeout(30):
            for c in controllers:
                await c.factory.wait_for_sync()
        yield
    finally:
        for t in tasks:
            t.cancel()
        for t in tasks:
            try:
                await t
            except asyncio.CancelledError:
                pass
        for c in controllers:
            c.queue.close()
            await c.factory.stop()


def job_body(name: str, **spec: Any) -> Obj:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "c", "image": "busybox", "command": ["true"]}],
                }
            },
            **spec,
        },
    }


async def job_pods(client: Client, ns: str, name: str) -> list[Obj]:
    pods = await client.list(PODS, ns, label_selector=f"batch.kubernetes.io/job-name={name}")
    items: list[Obj] = pods["items"]
    return items


def live(pods: list[Obj]) -> list[Obj]:
    return [
        p
        for p in pods
        if not p["metadata"].get("deletionTimestamp")
        and p.get("status", {}).get("phase") not in ("Succeeded", "Failed")
    ]


async def finish(client: Client, ns: str, pod: Obj, phase: str, code: int = 0) -> None:
    now = rfc3339(time.time())
    term = {"exitCode": code, "reason": "Completed" if code == 0 else "Error",
            "startedAt": now, "finishedAt": now}  # fmt: skip
    status = {
        "phase": phase,
        "containerStatuses": [
            {"name": "c", "image": "busybox", "imageID": "", "ready": False,
             "restartCount": 0, "state": {"terminated": term}},
        ],
    }  # fmt: skip
    await client.patch(PODS, pod["metadata"]["name"], {"status": status}, ns, sub="status")


def cond(obj: Obj, type_: str) -> Obj:
    for c in (obj.get("status") or {}).get("conditions") or ():
        if c.get("type") == type_:
            return dict(c)
    return {}


async def test_job_should_manage_the_lifecycle_of_a_job(env: tuple[Client, str]) -> None:
    client, ns = env
    ctrl = JobController(client, InformerFactory(client))
    async with running(ctrl):
        made = await client.create(JOBS, job_body("e2e", parallelism=2, completions=2,
                                                  suspend=True), ns)  # fmt: skip
        uid = made["metadata"]["uid"]

        async def suspended() -> bool:
            j = await client.get(JOBS, "e2e", ns)
            return cond(j, "Suspended").get("status") == "True"

        await until(suspended)
        assert await job_pods(client, ns, "e2e") == []
        # patch and update, as the conformance test does
        patched = await client.patch(JOBS, "e2e", {"metadata": {"labels": {"e2e": "patched"}}}, ns)
        assert patched["metadata"]["labels"]["e2e"] == "patched"
        listed = await client.list(JOBS, ns, label_selector="e2e=patched")
        assert [j["metadata"]["name"] for j in listed["items"]] == ["e2e"]
        # resume: two pods from the template
        await client.patch(JOBS, "e2e", {"spec": {"suspend": False}}, ns)

        async def two_active() -> bool:
            return len(live(await job_pods(client, ns, "e2e"))) == 2

        await until(two_active)
        pods = live(await job_pods(client, ns, "e2e"))
        for p in pods:
            meta = p["metadata"]
            assert meta["name"].startswith("e2e-")
            assert meta["labels"]["batch.kubernetes.io/controller-uid"] == uid
            assert TRACKING_FINALIZER in meta["finalizers"]
            assert meta["ownerReferences"][0]["uid"] == uid
            assert meta["ownerReferences"][0]["controller"] is True

        async def active_two() -> bool:
            j = await client.get(JOBS, "e2e", ns)
            return j["status"].get("active") == 2 and bool(j["status"].get("startTime"))

        await until(active_two)
        for p in pods:
            await finish(client, ns, p, "Succeeded")

        async def complete() -> bool:
            j = await client.get(JOBS, "e2e", ns)
            return cond(j, "Complete").get("status") == "True"

        await until(complete)
        job = await client.get(JOBS, "e2e", ns)
        assert job["status"]["succeeded"] == 2
        assert job["status"]["completionTime"]
        assert cond(job, "SuccessCriteriaMet")["reason"] == "CompletionsReached"
        assert cond(job, "Complete")["reason"] == "CompletionsReached"
        assert job["status"].get("uncountedTerminatedPods") == {}

        async def released() -> bool:
            return not any(
                p["metadata"].get("finalizers") for p in await job_pods(client, ns, "e2e")
            )

        await until(released)
        # the status subresource reads back the same
        st = await client.request("GET", JOBS.path(ns, "e2e", "status"))
        assert st["status"]["succeeded"] == 2


async def test_job_events(env: tuple[Client, str]) -> None:
    client, ns = env
    ctrl = JobController(client, InformerFactory(client))
    async with running(ctrl):
        await client.create(JOBS, job_body("ev"), ns)

        async def one_pod() -> bool:
            return len(live(await job_pods(client, ns, "ev"))) == 1

        await until(one_pod)
        await finish(client, ns, live(await job_pods(client, ns, "ev"))[0], "Succeeded")

        async def recorded() -> bool:
            events = (await client.list(EVENTS, ns))["items"]
            reasons = {e["reason"] for e in events if e["involvedObject"]["name"] == "ev"}
            return {"SuccessfulCreate", "Completed"} <= reasons

        await until(recorded, timeout=5)


async def test_job_backoff_limit_fails_the_job(env: tuple[Client, str]) -> None:
    client, ns = env
    ctrl = JobController(client, InformerFactory(client))
    async with running(ctrl):
        await client.create(JOBS, job_body("fails", backoffLimit=0), ns)

        async def one_pod() -> bool:
            return len(live(await job_pods(client, ns, "fails"))) == 1

        await until(one_pod)
        await finish(client, ns, live(await job_pods(client, ns, "fails"))[0], "Failed", 3)

        async def failed() -> bool:
            j = await client.get(JOBS, "fails", ns)
            return cond(j, "Failed").get("status") == "True"

        await until(failed)
        job = await client.get(JOBS, "fails", ns)
        assert cond(job, "Failed")["reason"] == "BackoffLimitExceeded"
        assert cond(job, "FailureTarget")["reason"] == "BackoffLimitExceeded"
        assert job["status"]["failed"] == 1


async def test_job_should_delete_a_job(env: tuple[Client, str]) -> None:
    client, ns = env
    ctrl = JobController(client, InformerFactory(client))
    async with running(ctrl):
        await client.create(JOBS, job_body("doomed", parallelism=2, completions=4), ns)

        async def two_active() -> bool:
            return len(live(await job_pods(client, ns, "doomed"))) == 2

        await until(two_active)
        await client.delete(JOBS, "doomed", ns, propagation="Background")

        async def gone() -> bool:
            try:
                await client.get(JOBS, "doomed", ns)
                return False
            except StatusError as e:
                assert e.code == 404
            return await job_pods(client, ns, "doomed") == []

        await until(gone)


def cronjob_body(name: str, schedule: str = "*/1 * * * *", **spec: Any) -> Obj:
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": name},
        "spec": {
            "schedule": schedule,
            "jobTemplate": {
                "spec": {
                    "template": {
                        "spec": {
                            "restartPolicy": "OnFailure",
                            "containers": [{"name": "c", "image": "busybox",
                                            "command": ["sleep", "1000"]}],
                        }
                    }
                }
            },
            **spec,
        },
    }  # fmt: skip


async def test_cronjob_should_schedule_multiple_jobs_concurrently(
    env: tuple[Client, str],
) -> None:
    client, ns = env
    clock = FakeClock()
    factory = InformerFactory(client)
    cron = CronJobController(client, factory, clock=clock)
    jobs = JobController(client, factory)
    async with running(cron, jobs):
        await client.create(CRONJOBS, cronjob_body("concurrent", concurrencyPolicy="Allow"), ns)

        async def active(n: int) -> bool:
            cj = await client.get(CRONJOBS, "concurrent", ns)
            return len((cj.get("status") or {}).get("active") or []) >= n

        for n in (1, 2):
            clock.t += 60  # a scheduled minute passes, in no time
            cron.resync()
            await until(lambda n=n: active(n))  # type: ignore[misc]
        cj = await client.get(CRONJOBS, "concurrent", ns)
        owned = [
            j
            for j in (await client.list(JOBS, ns))["items"]
            if j["metadata"]["ownerReferences"][0]["uid"] == cj["metadata"]["uid"]
        ]
        assert len(owned) == 2
        assert {r["name"] for r in cj["status"]["active"]} == {j["metadata"]["name"] for j in owned}
        assert cj["status"]["lastScheduleTime"]
        for j in owned:
            assert "batch.kubernetes.io/cronjob-scheduled-timestamp" in j["metadata"]["annotations"]

        async def pods_running() -> bool:  # and the Job controller started their pods
            pods = (await client.list(PODS, ns))["items"]
            return len(live(pods)) == 2

        await until(pods_running)


async def test_cronjob_should_support_cronjob_api_operations(env: tuple[Client, str]) -> None:
    client, ns = env
    made = await client.create(CRONJOBS, cronjob_body("api", "@hourly"), ns)
    assert made["spec"]["concurrencyPolicy"] == "Allow"
    assert made["spec"]["successfulJobsHistoryLimit"] == 3
    assert made["spec"]["failedJobsHistoryLimit"] == 1
    got = await client.get(CRONJOBS, "api", ns)
    assert got["metadata"]["uid"] == made["metadata"]["uid"]
    patched = await client.patch(CRONJOBS, "api", {"metadata": {"annotations": {"p": "y"}}}, ns)
    assert patched["metadata"]["annotations"]["p"] == "y"
    patched["spec"]["schedule"] = "*/5 * * * *"
    updated = await client.update(CRONJOBS, patched, ns)
    assert updated["spec"]["schedule"] == "*/5 * * * *"
    now = rfc3339(time.time())
    st = await client.patch(CRONJOBS, "api", {"status": {"lastScheduleTime": now}}, ns,
                            sub="status")  # fmt: skip
    assert st["status"]["lastScheduleTime"] == now
    with pytest.raises(StatusError) as e:
        await client.create(CRONJOBS, cronjob_body("bad", "every minute"), ns)
    assert e.value.code == 422
    listed = await client.list(CRONJOBS, ns)
    assert [c["metadata"]["name"] for c in listed["items"]] == ["api"]
    await client.request("DELETE", CRONJOBS.path(ns))

    async def empty() -> bool:
        return not (await client.list(CRONJOBS, ns))["items"]

    await until(empty)
