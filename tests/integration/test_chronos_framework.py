"""``corral.mesos.framework_client.SchedulerClient`` (the asyncio Mesos v1 scheduler client of
the in-tree frameworks) against Corral's real Mesos master: offers, launches on a real
agent with acknowledgements, declines with filters, suppress and revive, kills,
reconciliation, executor messages, failover to a new client, a master restart, teardown.
Two small fake masters stand in where the real one cannot be made to misbehave (a 503
and a 307 before the real master; a stream that goes silent)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from mesoskit import MesosCluster, command_task, mesos_cluster, scalar

from corral.mesos.framework_client import (
    CallFailed,
    CallRefused,
    FrameworkError,
    FrameworkRemoved,
    SchedulerCallError,
    SchedulerClient,
)
from corral.testing.process import free_port
from corral.util.recordio import encode

pytestmark = pytest.mark.timeout(180)

Obj = dict[str, Any]
ACKED = "mesos.corral.dev/acked-state"


class Events:
    """Records what ``on_event`` gets; ``on_offers`` (async) decides about offers."""

    def __init__(self, on_offers: Callable[[list[Obj]], Awaitable[None]] | None = None) -> None:
        self.events: list[Obj] = []
        self.on_offers = on_offers

    async def __call__(self, event: Obj) -> None:
        self.events.append(event)
        if event["type"] == "OFFERS" and self.on_offers is not None:
            await self.on_offers(event["offers"]["offers"])

    def of(self, kind: str) -> list[Obj]:
        return [e for e in self.events if e["type"] == kind]

    def offers(self) -> list[Obj]:
        return [o for e in self.of("OFFERS") for o in e["offers"]["offers"]]

    def updates(self, task_id: str | None = None) -> list[Obj]:
        out = [e["update"]["status"] for e in self.of("UPDATE")]
        return [s for s in out if task_id is None or s.get("task_id", {}).get("value") == task_id]

    def states(self, task_id: str) -> list[str]:
        return [s["state"] for s in self.updates(task_id)]


async def until(pred: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    """Poll ``pred`` (cheap, in-loop) until truthy, within ``timeout`` seconds."""
    try:
        async with asyncio.timeout(timeout):
            while not (got := pred()):
                await asyncio.sleep(0.05)
            return got
    except TimeoutError:
        raise AssertionError(f"timed out after {timeout}s waiting for {what}") from None


async def until_sync(pred: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    """``until`` for a blocking ``pred`` (HTTP to the cluster), run off the loop."""
    try:
        async with asyncio.timeout(timeout):
            while not (got := await asyncio.to_thread(pred)):
                await asyncio.sleep(0.1)
            return got
    except TimeoutError:
        raise AssertionError(f"timed out after {timeout}s waiting for {what}") from None


@contextlib.asynccontextmanager
async def running(
    client: SchedulerClient, subscribe: bool = True
) -> AsyncIterator[asyncio.Task[None]]:
    """``client.run()`` as a task for the block; closed (without TEARDOWN) after it."""
    task = asyncio.create_task(client.run(), name="test-scheduler-client")
    try:
        if subscribe:
            async with asyncio.timeout(30):
                await client.connected.wait()
        yield task
    finally:
        await client.close()
        async with asyncio.timeout(10):
            with contextlib.suppress(Exception):
                await task


def info(name: str, **extra: Any) -> Obj:
    return {"user": "root", "name": name, **extra}


async def cluster_get(c: MesosCluster, path: str) -> Any:
    return await asyncio.to_thread(c.get, path)


async def hollow_agents(c: MesosCluster, n: int) -> None:
    await until_sync(lambda: len(c.get("/state")["slaves"]) == n, f"{n} hollow agents")


def launcher(
    client: Callable[[], SchedulerClient], names: list[str], cmd: str = "sleep 600"
) -> Callable[[list[Obj]], Awaitable[None]]:
    """An offer policy: launch the tasks ``names`` one per offer, decline the rest. A
    call the master refuses (its stream is being replaced) is left: a framework's
    ``on_event`` must not let it end ``run``."""
    todo = list(names)

    async def on_offers(offers: list[Obj]) -> None:
        for offer in offers:
            with contextlib.suppress(SchedulerCallError):
                if todo and scalar(offer["resources"], "cpus") >= 0.1:
                    task = command_task(offer, todo[0], cmd)
                    await client().launch(offer["id"]["value"], [task], refuse_seconds=0)
                    todo.pop(0)
                else:
                    await client().decline([offer["id"]["value"]], refuse_seconds=1)

    return on_offers


# --- a real agent -------------------------------------------------------------------------------
async def test_a_command_task_runs_finishes_and_is_acknowledged(tmp_path: Path) -> None:
    holder: list[SchedulerClient] = []
    events = Events(launcher(lambda: holder[0], ["hello"], "echo hello; sleep 1"))
    # the master resends an unacknowledged update after 3 s (Mesos: 10 s) so that the
    # check that nothing is resent below waits 4.5 s, not 11
    retry = ["--status-update-retry", "3"]
    with mesos_cluster(tmp_path, runtimes=("process",), extra=retry) as c:
        client = SchedulerClient(
            c.master, info("chronos-smoke"), on_event=events, implicit_acks=True
        )
        holder.append(client)
        async with running(client):
            assert events.events[0]["type"] == "SUBSCRIBED"
            fid = client.framework_id
            assert fid and events.events[0]["subscribed"]["framework_id"]["value"] == fid
            assert client.stream_id
            await until(lambda: "TASK_FINISHED" in events.states("hello"), "TASK_FINISHED", 60)
            states = events.states("hello")
            assert states.index("TASK_RUNNING") < states.index("TASK_FINISHED")
            finished = events.updates("hello")[-1]
            assert finished["agent_id"]["value"] == c.agents[0].name
            assert finished["uuid"]
            # acknowledged by the client itself: the master records it on the pod
            pods = await until_sync(
                lambda: [p for p in c.task_pods() if p["metadata"]["annotations"].get(ACKED)],
                "the acknowledgement recorded on the pod",
            )
            assert pods[0]["metadata"]["annotations"][ACKED] == "TASK_FINISHED"
            assert pods[0]["status"]["phase"] == "Succeeded"
            state = await cluster_get(c, "/state")
            assert [f["id"] for f in state["frameworks"]] == [fid]
            # and nothing is resent: no second TASK_FINISHED after the 3 s resend time
            await asyncio.sleep(4.5)
            assert events.states("hello").count("TASK_FINISHED") == 1


ECHO_EXECUTOR = """
from pymesos import Executor, MesosExecutorDriver, decode_data, encode_data

class Echo(Executor):
    def launchTask(self, driver, task):
        driver.sendStatusUpdate({"task_id": task["task_id"], "state": "TASK_RUNNING"})

    def frameworkMessage(self, driver, message):
        driver.sendFrameworkMessage(encode_data(b"pong:" + decode_data(message)))

    def killTask(self, driver, task_id):
        driver.sendStatusUpdate({"task_id": task_id, "state": "TASK_KILLED"})
        driver.stop()

MesosExecutorDriver(Echo(), use_addict=True).run()
"""


async def test_messages_reach_an_executor_and_come_back(tmp_path: Path) -> None:
    script = tmp_path / "echo_executor.py"
    script.write_text(ECHO_EXECUTOR)
    holder: list[SchedulerClient] = []
    agents: list[str] = []

    async def on_offers(offers: list[Obj]) -> None:
        for offer in offers:
            if agents:
                await holder[0].decline([offer["id"]["value"]], refuse_seconds=5)
                continue
            agents.append(offer["agent_id"]["value"])
            task = command_task(offer, "echo-1", "unused")
            del task["command"]
            task["executor"] = {
                "executor_id": {"value": "echo-executor"},
                "command": {"value": f"{sys.executable} {script}"},
                "resources": task["resources"],
            }
            await holder[0].launch(offer["id"]["value"], [task])

    events = Events(on_offers)
    with mesos_cluster(tmp_path, runtimes=("process",)) as c:
        client = SchedulerClient(c.master, info("echo"), on_event=events, implicit_acks=True)
        holder.append(client)
        async with running(client):
            await until(lambda: "TASK_RUNNING" in events.states("echo-1"), "TASK_RUNNING", 60)
            await client.message(agents[0], "echo-executor", b"ping")
            msg = await until(lambda: events.of("MESSAGE"), "a message back")
            body = msg[0]["message"]
            assert base64.b64decode(body["data"]) == b"pong:ping"
            assert body["executor_id"]["value"] == "echo-executor"
            assert body["agent_id"]["value"] == agents[0]
            await client.kill("echo-1", agents[0])
            await until(lambda: "TASK_KILLED" in events.states("echo-1"), "TASK_KILLED", 60)
            await client.teardown()


@pytest.mark.slow  # ~10-20 s: `make test-slow` (the suite keeps under 15 min)
# --- hollow agents ------------------------------------------------------------------------------
async def test_decline_filters_then_suppress_and_revive(tmp_path: Path) -> None:
    holder: list[SchedulerClient] = []
    seen: list[float] = []
    refuse = [3.0]

    async def on_offers(offers: list[Obj]) -> None:
        seen.extend(time.monotonic() for _ in offers)
        await holder[0].decline([o["id"]["value"] for o in offers], refuse_seconds=refuse[0])

    events = Events(on_offers)
    with mesos_cluster(tmp_path, hollow=1) as c:
        await hollow_agents(c, 1)
        client = SchedulerClient(c.master, info("decliner"), on_event=events)
        holder.append(client)
        async with running(client):
            await until(lambda: len(seen) >= 2, "an offer again after the 3 s filter", 20)
            assert seen[1] - seen[0] >= 2.5, seen
            # suppressed: no offers, although the filter runs out
            await client.suppress()
            refuse[0] = 0.0
            n = len(seen)
            await asyncio.sleep(5)
            assert len(seen) <= n + 1, "offered while suppressed"
            n = len(seen)
            await client.revive()
            await until(lambda: len(seen) > n, "offers again after REVIVE", 10)


@pytest.mark.slow  # ~10-20 s: `make test-slow` (the suite keeps under 15 min)
async def test_kill_reconcile_and_explicit_acknowledgements(tmp_path: Path) -> None:
    holder: list[SchedulerClient] = []
    policy = launcher(lambda: holder[0], ["t-0", "t-1"])
    refused: list[SchedulerCallError] = []

    async def on_event(event: Obj) -> None:
        await events_(event)
        if event["type"] == "UPDATE":  # acknowledged from inside on_event
            try:
                await holder[0].acknowledge(event["update"]["status"])
            except SchedulerCallError as e:  # not on this stream: it comes again
                refused.append(e)

    events_ = Events(policy)
    with mesos_cluster(tmp_path, hollow=1) as c:
        await hollow_agents(c, 1)
        client = SchedulerClient(c.master, info("killer", failover_timeout=30), on_event=on_event)
        holder.append(client)
        async with running(client):
            await until(
                lambda: all("TASK_RUNNING" in events_.states(t) for t in ("t-0", "t-1")),
                "t-0 and t-1 running",
            )
            await until_sync(
                lambda: (
                    sorted(p["metadata"]["annotations"].get(ACKED, "") for p in c.task_pods())
                    == ["TASK_RUNNING", "TASK_RUNNING"]
                ),
                "both acknowledged",
            )
            # explicit reconciliation: a known task and an unknown one
            agent = events_.updates("t-0")[-1]["agent_id"]["value"]
            await client.reconcile([("t-0", agent), ("nope", None)])
            await until(lambda: "TASK_LOST" in events_.states("nope"), "the unknown task LOST")
            recon = [
                s for s in events_.updates("t-0") if s.get("reason") == "REASON_RECONCILIATION"
            ]
            assert [s["state"] for s in recon] == ["TASK_RUNNING"]
            assert "uuid" not in recon[0]  # nothing to acknowledge (acknowledge skips it)
            # implicit: every task the master knows
            before = len(events_.updates())
            await client.reconcile()
            await until(lambda: len(events_.updates()) >= before + 2, "implicit reconciliation")
            implicit = events_.updates()[before:]
            assert sorted(s["task_id"]["value"] for s in implicit) == ["t-0", "t-1"]
            assert {s["state"] for s in implicit} == {"TASK_RUNNING"}
            await client.kill("t-1")
            await until(lambda: "TASK_KILLED" in events_.states("t-1"), "TASK_KILLED")
            await until_sync(lambda: len(c.task_pods()) == 1, "the killed task's pod gone")
            # a stream the master no longer knows (403 to a call): the client
            # re-subscribes by itself and sends the call again on the new stream
            client.stream_id = "not-a-stream-the-master-knows"
            before = len(events_.updates("t-0"))
            await client.reconcile([("t-0", None)])
            assert client.subscriptions == 2 and client.stream_id != "not-a-stream-the-master-knows"
            await until(lambda: len(events_.updates("t-0")) > before, "the call answered")
            # a refused call says why
            with pytest.raises(CallRefused) as bad:
                await client._call("NO_SUCH_CALL", None)
            assert bad.value.status == 400 and "NO_SUCH_CALL" in bad.value.message


async def test_failover_to_a_new_client_then_teardown(tmp_path: Path) -> None:
    holder: list[SchedulerClient] = []
    first = Events(launcher(lambda: holder[0], ["keep-0", "keep-1"]))
    with mesos_cluster(tmp_path, hollow=1) as c:
        await hollow_agents(c, 1)
        fw_info = info("failover", failover_timeout=60)
        a = SchedulerClient(c.master, fw_info, on_event=first, implicit_acks=True)
        holder.append(a)
        async with running(a) as run_a:
            await until(
                lambda: all("TASK_RUNNING" in first.states(t) for t in ("keep-0", "keep-1")),
                "keep-0 and keep-1 running",
            )
        # closed without TEARDOWN: run returned, the framework and its tasks stay
        assert run_a.done() and run_a.exception() is None
        fid = a.framework_id
        assert fid
        await until_sync(lambda: not c.get("/state")["frameworks"][0]["connected"], "disconnected")
        assert len(await asyncio.to_thread(c.task_pods)) == 2

        second = Events()
        b = SchedulerClient(
            c.master, fw_info, on_event=second, framework_id=fid, implicit_acks=True
        )
        async with running(b) as run_b:
            assert b.framework_id == fid
            assert second.events[0]["subscribed"]["framework_id"]["value"] == fid
            await b.reconcile()
            await until(
                lambda: (
                    sorted(s["task_id"]["value"] for s in second.updates()) == ["keep-0", "keep-1"]
                ),
                "implicit reconciliation of the old client's tasks",
            )
            assert {s["state"] for s in second.updates()} == {"TASK_RUNNING"}
            state = await cluster_get(c, "/state")
            assert state["frameworks"][0]["connected"]

            # a third scheduler with the same id takes over: b is told and stops
            third = Events()
            c3 = SchedulerClient(c.master, fw_info, on_event=third, framework_id=fid)
            async with running(c3) as run_c3:
                with pytest.raises(FrameworkError) as err:
                    async with asyncio.timeout(10):
                        await run_b
                assert not isinstance(err.value, FrameworkRemoved)
                assert "failed over" in second.of("ERROR")[0]["error"]["message"]
                assert not b.connected.is_set()
                # TEARDOWN: every task killed, the framework removed, run returns
                await c3.teardown()
                async with asyncio.timeout(10):
                    await run_c3
        await until_sync(lambda: not c.task_pods(), "task pods gone after TEARDOWN")
        state = await cluster_get(c, "/state")
        assert not state["frameworks"]
        assert [f["id"] for f in state["completed_frameworks"]] == [fid]

        # that id cannot come back: ERROR delivered, then FrameworkRemoved
        gone = Events()
        d = SchedulerClient(c.master, fw_info, on_event=gone, framework_id=fid)
        with pytest.raises(FrameworkRemoved):
            async with asyncio.timeout(20):
                await d.run()
        assert gone.of("ERROR")[0]["error"]["message"] == "Framework has been removed"
        await d.close()


async def restarted(c: MesosCluster, client: SchedulerClient, events: Events) -> int:
    """Restart the server under a subscribed ``client`` whose task ``survivor`` runs;
    meanwhile, once the client saw the stream go, send an explicit reconciliation (it
    waits for the new stream). Returns the index of the first event after the restart."""
    await until(lambda: "TASK_RUNNING" in events.states("survivor"), "running")
    mark = len(events.events)

    async def reconcile_when_disconnected() -> int:
        await until(lambda: not client.connected.is_set(), "the stream lost", 60)
        await client.reconcile([("survivor", None)])
        return client.subscriptions

    async with asyncio.TaskGroup() as tg:
        pending = tg.create_task(reconcile_when_disconnected())
        tg.create_task(asyncio.to_thread(c.restart_server))
    assert pending.result() == 2  # sent on the new stream, not lost
    return mark


def reconciled(events: Events, since: int) -> list[Obj]:
    return [
        e["update"]["status"]
        for e in events.events[since:]
        if e["type"] == "UPDATE" and e["update"]["status"].get("reason") == "REASON_RECONCILIATION"
    ]


async def test_a_master_restart_is_survived_without_help(tmp_path: Path) -> None:
    holder: list[SchedulerClient] = []
    events = Events(launcher(lambda: holder[0], ["survivor"]))
    with mesos_cluster(tmp_path, hollow=1) as c:
        await hollow_agents(c, 1)
        client = SchedulerClient(
            c.master, info("restart", failover_timeout=120), on_event=events, implicit_acks=True
        )
        holder.append(client)
        async with running(client):
            fid = client.framework_id
            mark = await restarted(c, client, events)
            assert client.connected.is_set() and client.framework_id == fid
            assert [e["type"] for e in events.events].count("SUBSCRIBED") == 2
            got = await until(lambda: reconciled(events, mark), "the reconciliation answered")
            assert got[0]["state"] == "TASK_RUNNING"
            assert got[0].get("task_id") == {"value": "survivor"}, got[0]
            assert got[0].get("agent_id"), got[0]
            # offers keep coming on the new stream
            n = len(events.of("OFFERS"))
            await until(lambda: len(events.of("OFFERS")) > n, "more offers after the restart")
            state = await cluster_get(c, "/state")
            assert [f["id"] for f in state["frameworks"]] == [fid]
            assert state["frameworks"][0]["connected"]


# the same restart as the test above, which checks these words of the answer too (~6 s):
# `make test-slow`
@pytest.mark.slow
async def test_reconciliation_after_a_master_restart_names_the_task(tmp_path: Path) -> None:
    holder: list[SchedulerClient] = []
    events = Events(launcher(lambda: holder[0], ["survivor"]))
    with mesos_cluster(tmp_path, hollow=1) as c:
        await hollow_agents(c, 1)
        client = SchedulerClient(
            c.master, info("restart", failover_timeout=120), on_event=events, implicit_acks=True
        )
        holder.append(client)
        async with running(client):
            mark = await restarted(c, client, events)
            got = await until(lambda: reconciled(events, mark), "the reconciliation answered")
            assert got[0].get("task_id") == {"value": "survivor"}, got[0]
            assert got[0].get("agent_id"), got[0]


# --- fake masters for what the real one never does ----------------------------------------------
async def _serve(app: web.Application, port: int) -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


async def test_a_503_is_retried_and_a_307_switches_master(tmp_path: Path) -> None:
    with mesos_cluster(tmp_path, hollow=1) as c:
        answers: list[int] = []

        async def not_the_leader(request: web.Request) -> web.Response:
            if not answers:
                answers.append(503)
                return web.Response(status=503, text="no leader yet")
            answers.append(307)
            return web.Response(status=307, headers={"Location": f"//{c.master}/api/v1/scheduler"})

        app = web.Application()
        app.router.add_post("/api/v1/scheduler", not_the_leader)
        port = free_port()
        runner = await _serve(app, port)
        try:
            events = Events()
            client = SchedulerClient(f"127.0.0.1:{port}", info("redirected"), on_event=events)
            async with running(client):
                assert answers == [503, 307]
                assert client.master == f"http://{c.master}"
                await client.revive()  # calls go to the new master
                await until(lambda: events.of("OFFERS"), "offers from the real master")
        finally:
            await runner.cleanup()


async def test_a_silent_stream_is_lost_after_two_heartbeats(tmp_path: Path) -> None:
    """A master that says heartbeats come every 0.3 s and then sends nothing: after
    0.6 s of silence the client re-subscribes, with the framework id."""
    subscribes: list[Obj] = []

    async def silent_master(request: web.Request) -> web.StreamResponse:
        call = orjson.loads(await request.read())
        subscribes.append(call)
        resp = web.StreamResponse(headers={"Mesos-Stream-Id": f"s{len(subscribes)}"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        subscribed = {
            "type": "SUBSCRIBED",
            "subscribed": {"framework_id": {"value": "F-1"}, "heartbeat_interval_seconds": 0.3},
        }
        await resp.write(encode(orjson.dumps(subscribed)))
        await asyncio.sleep(3600)
        return resp

    app = web.Application()
    app.router.add_post("/api/v1/scheduler", silent_master)
    port = free_port()
    runner = await _serve(app, port)
    try:
        events = Events()
        client = SchedulerClient(f"127.0.0.1:{port}", info("quiet"), on_event=events)
        async with running(client):
            await until(lambda: len(subscribes) >= 2, "a re-subscription", 10)
            assert "framework_id" not in subscribes[0]
            assert subscribes[1]["framework_id"] == {"value": "F-1"}
            assert subscribes[1]["subscribe"]["framework_info"]["id"] == {"value": "F-1"}
    finally:
        await runner.cleanup()


async def test_close_ends_run_while_no_master_answers_and_fails_waiting_calls() -> None:
    port = free_port()  # nothing listens: connect errors, backoff
    events = Events()
    client = SchedulerClient(f"127.0.0.1:{port}", info("alone"), on_event=events)
    run = asyncio.create_task(client.run())
    call = asyncio.create_task(client.revive())  # waits for a subscription
    await asyncio.sleep(1.5)
    assert not run.done() and not call.done() and not client.connected.is_set()
    async with asyncio.timeout(2):
        await client.close()
        await run  # returns: closed, not an error
        with pytest.raises(CallFailed, match="closed"):
            await call
    assert not events.events
