"""The agent's Mesos executor API (corral.agent.mesos_executor): which pods run custom
executors, their environment, the calls (SUBSCRIBE, UPDATE, MESSAGE, HEARTBEAT) and their
errors, the events on the stream (SUBSCRIBED, LAUNCH, ACKNOWLEDGED, MESSAGE, KILL,
SHUTDOWN), against a fake API client, fake listeners and recording streams: no server,
no sleeps. The last tests drive the real ``AgentServer`` routes over HTTP on 127.0.0.1."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable
from typing import Any

import aiohttp
import orjson
import pytest

from corral.agent.mesos_executor import (
    TASK_GROUP,
    Answer,
    MesosExecutors,
    executor_env,
    format_duration,
    is_custom_executor_pod,
    loopback_address,
)
from corral.agent.server import AgentServer
from corral.api import mesos
from corral.api.errors import StatusError
from corral.util.eventstream import EventStream
from corral.util.recordio import Decoder

Obj = dict[str, Any]

FID, EID, NODE = "fw-1", "exec-1", "node-a"
JSON = "application/json"


class Recorded(EventStream):
    """An EventStream that also keeps what was put on it."""

    def __init__(self, heartbeat: float = 15.0) -> None:
        super().__init__(heartbeat)
        self.events: list[Obj] = []

    def send(self, event: Obj) -> None:
        if not self.closed:
            self.events.append(event)
        super().send(event)

    def close(self, last: Obj | None = None) -> None:
        if not self.closed and last is not None:
            self.events.append(last)
        super().close(last)

    def types(self) -> list[str]:
        return [e["type"] for e in self.events]


class FakeApi:
    def __init__(self) -> None:
        self.patches: list[tuple[str, str | None, Obj]] = []
        self.created: list[tuple[str, str | None, Obj]] = []
        self.frameworks: dict[str, Obj] = {}
        self.fail: StatusError | None = None

    async def get(self, res: Any, name: str, namespace: str | None = None) -> Obj:
        if res.plural == "frameworks" and name in self.frameworks:
            return self.frameworks[name]
        raise StatusError(404, "NotFound", f"{res.plural} {name!r} not found")

    async def create(self, res: Any, obj: Obj, namespace: str | None = None) -> Obj:
        if self.fail is not None:
            raise self.fail
        self.created.append((res.plural, namespace, obj))
        return obj

    async def patch(self, res: Any, name: str, patch: Any, namespace: str | None = None) -> Obj:
        if self.fail is not None:
            raise self.fail
        self.patches.append((name, namespace, patch))
        return {}


class FakeListeners:
    port = 5051

    def __init__(self, ok: bool = True) -> None:
        self.ok = ok
        self.hosts: list[str] = []

    async def listen(self, host: str) -> bool:
        if self.ok:
            self.hosts.append(host)
        return self.ok

    async def unlisten(self, host: str) -> None:
        self.hosts.remove(host)


def task_info(task_id: str = "t1", **executor: Any) -> Obj:
    info = {
        "executor_id": {"value": EID},
        "command": {"value": "python3 executor.py"},
        "shutdown_grace_period": {"nanoseconds": 2_000_000_000},
        **executor,
    }
    return {
        "name": "task",
        "task_id": {"value": task_id},
        "agent_id": {"value": NODE},
        "data": "aGVsbG8=",
        "executor": info,
    }


def executor_pod(
    uid: str = "u-1", task_id: str = "t1", status: Obj | None = None, extra: Obj | None = None
) -> Obj:
    annotations = {
        mesos.TASK_ID: task_id,
        mesos.TASK_INFO: json.dumps(task_info(task_id)),
        mesos.EXECUTOR_ID: EID,
        mesos.HOST_COMMAND: "true",
        **(extra or {}),
    }
    if status is not None:
        annotations[mesos.EXECUTOR_STATUS] = json.dumps(status)
    return {
        "metadata": {
            "name": f"pod-{uid}",
            "namespace": "mesos",
            "uid": uid,
            "labels": {mesos.FRAMEWORK_ID: FID},
            "annotations": annotations,
        },
        "spec": {"hostNetwork": True, "containers": [{"name": "task"}]},
    }


def body(kind: str, **fields: Any) -> bytes:
    call = {"type": kind, "framework_id": {"value": FID}, "executor_id": {"value": EID}}
    call.update(fields)
    return orjson.dumps(call)


def new_uuid() -> str:
    return base64.b64encode(uuid.uuid4().bytes).decode()


def update(state: str, task_id: str = "t1", uid: str | None = None, **status: Any) -> bytes:
    st = {
        "task_id": {"value": task_id},
        "state": state,
        "source": "SOURCE_EXECUTOR",
        "uuid": uid or new_uuid(),
        "timestamp": 1700000000,
        **status,
    }
    return body("UPDATE", update={"status": st})


SUBSCRIBE = body("SUBSCRIBE", subscribe={"unacknowledged_tasks": [], "unacknowledged_updates": []})


class Node:
    """One registry with fakes around it."""

    def __init__(self, listeners: FakeListeners | None = None) -> None:
        self.api = FakeApi()
        self.listeners = listeners or FakeListeners()
        self.reg = MesosExecutors(self.api, NODE, "127.0.0.1", self.listeners, new_stream=Recorded)
        self.local: str | None = None

    async def attach(self, pod: Obj | None = None, ip: str = "127.0.0.1", host: bool = True) -> Any:
        ex = await self.reg.attach(pod or executor_pod(), ip, host)
        assert ex is not None
        self.local = ex.local_ip  # calls come in on the last one's address unless told
        return ex

    async def call(self, data: bytes, ctype: str | None = JSON, **kw: Any) -> Answer | Recorded:
        kw.setdefault("local", self.local)
        out = await self.reg.call(data, ctype, **kw)
        assert isinstance(out, Answer | Recorded)
        return out

    async def subscribe(self, data: bytes = SUBSCRIBE, **kw: Any) -> Recorded:
        stream = await self.call(data, **kw)
        assert isinstance(stream, Recorded), stream
        return stream


# --- which pods, what environment ------------------------------------------------------------


@pytest.mark.parametrize(
    ("executor", "expected"),
    [
        ({"executor_id": {"value": "e"}, "command": {"value": "x"}}, True),
        ({"executor_id": {"value": "e"}, "type": "CUSTOM", "command": {"value": "x"}}, True),
        ({"executor_id": {"value": "e"}, "type": "DEFAULT"}, False),
        ({"executor_id": {"value": "e"}}, False),
        (None, True),
    ],
    ids=["command-untyped", "custom", "default", "untyped-no-command", "by-hand"],
)
def test_custom_executor_pods(executor: Obj | None, expected: bool) -> None:
    info: Obj = {"task_id": {"value": "t"}}
    if executor is not None:
        info["executor"] = executor
    annotations = {mesos.TASK_ID: "t", mesos.TASK_INFO: json.dumps(info), mesos.EXECUTOR_ID: "e"}
    assert is_custom_executor_pod({"metadata": {"annotations": annotations}}) is expected
    del annotations[mesos.EXECUTOR_ID]
    assert not is_custom_executor_pod({"metadata": {"annotations": annotations}})


def test_durations_as_stout_prints_them() -> None:
    assert [format_duration(n) for n in (5_000_000_000, 2_500_000_000, 200_000_000)] == [
        "5secs",
        "2.5secs",
        "200ms",
    ]


async def test_host_network_executors_get_loopback_endpoints_of_their_own() -> None:
    node = Node()
    a = await node.attach(executor_pod("u-1"))
    b = await node.attach(executor_pod("u-2", task_id="t2"))
    assert a.endpoint == f"{loopback_address('u-1')}:5051" != b.endpoint
    assert node.listeners.hosts == [a.local_ip, b.local_ip]
    assert a.local_ip.startswith("127.") and not a.local_ip.startswith("127.0.")
    assert await node.attach(executor_pod("u-1")) is a  # idempotent
    await node.reg.detach("u-1")
    assert node.listeners.hosts == [b.local_ip]


async def test_without_a_loopback_listener_the_node_address_is_the_endpoint() -> None:
    node = Node(FakeListeners(ok=False))
    ex = await node.attach()
    assert (ex.endpoint, ex.local_ip) == ("127.0.0.1:5051", None)


async def test_a_pod_network_executor_dials_the_host_address_facing_it() -> None:
    node = Node()
    ex = await node.attach(executor_pod(), ip="127.0.0.1", host=False)  # (loopback faces itself)
    assert (ex.endpoint, ex.pod_ip, ex.listening) == ("127.0.0.1:5051", "127.0.0.1", "127.0.0.1")


async def test_executor_env() -> None:
    node = Node()
    ex = await node.attach()
    env = {"MESOS_CHECKPOINT": "0", "MESOS_EXECUTOR_ID": "spoofed", "KEEP": "1"}
    executor_env(ex, NODE, env, own=["MESOS_CHECKPOINT", "MESOS_EXECUTOR_ID"])
    assert env == {
        "MESOS_AGENT_ENDPOINT": ex.endpoint,
        "MESOS_FRAMEWORK_ID": FID,
        "MESOS_EXECUTOR_ID": EID,
        "MESOS_SLAVE_ID": NODE,
        "MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD": "2secs",
        "KEEP": "1",
    }
    env = {"MESOS_CHECKPOINT": "1", "MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD": "9secs"}
    executor_env(ex, NODE, env, own=list(env))
    assert env["MESOS_CHECKPOINT"] == "1" and env["MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD"] == "9secs"


# --- malformed calls and unknown executors ---------------------------------------------------

BAD: list[tuple[str, bytes, str | None, int, str]] = [
    ("no-content-type", SUBSCRIBE, None, 400, "Expecting 'Content-Type' to be present"),
    ("protobuf", SUBSCRIBE, "application/x-protobuf", 415, "application/json"),
    ("not-json", b"{", JSON, 400, "Failed to parse body into JSON"),
    ("not-object", b"[]", JSON, 400, "not a JSON object"),
    ("no-type", orjson.dumps({"executor_id": {"value": EID}}), JSON, 400, "'type'"),
    ("bad-type", body("LAUNCH"), JSON, 400, "unknown type"),
    ("no-executor-id", orjson.dumps({"type": "SUBSCRIBE"}), JSON, 400, "'executor_id'"),
    (
        "no-framework-id",
        orjson.dumps({"type": "SUBSCRIBE", "executor_id": {"value": EID}}),
        JSON,
        400,
        "'framework_id'",
    ),
    ("no-subscribe", body("SUBSCRIBE"), JSON, 400, "Expecting 'subscribe' to be present"),
    ("no-update", body("UPDATE"), JSON, 400, "Expecting 'update' to be present"),
    ("no-uuid", update("TASK_RUNNING", uid=None, uuid=None), JSON, 400, "uuid"),
    ("short-uuid", update("TASK_RUNNING", uid="AAAA"), JSON, 400, "Not a valid UUID"),
    ("not-base64", update("TASK_RUNNING", uid="!!"), JSON, 400, "not base64"),
    ("bad-state", update("RUNNING"), JSON, 400, "TaskStatus needs task_id and state"),
    ("staging", update("TASK_STAGING"), JSON, 400, "Received TASK_STAGING"),
    ("source", update("TASK_RUNNING", source="SOURCE_AGENT"), JSON, 400, "invalid source"),
    (
        "executor-mismatch",
        update("TASK_RUNNING", executor_id={"value": "other"}),
        JSON,
        400,
        "does not match ExecutorID in TaskStatus: other",
    ),
    ("no-data", body("MESSAGE", message={}), JSON, 400, "message.data"),
]


@pytest.mark.parametrize(("name", "data", "ctype", "code", "text"), BAD, ids=[b[0] for b in BAD])
async def test_malformed_calls_are_refused(
    name: str, data: bytes, ctype: str | None, code: int, text: str
) -> None:
    node = Node()
    await node.attach()
    await node.subscribe()
    if name == "no-uuid":
        call = orjson.loads(data)
        del call["update"]["status"]["uuid"]
        data = orjson.dumps(call)
    answer = await node.call(data, ctype)
    assert isinstance(answer, Answer) and answer.status == code and text in answer.text, answer
    assert not node.api.patches and not node.api.created


async def test_unknown_frameworks_and_executors_as_mesos_answers_them() -> None:
    node = Node()
    assert await node.call(SUBSCRIBE) == Answer(400, "Framework cannot be found")
    await node.attach()
    other = orjson.loads(SUBSCRIBE)
    other["executor_id"] = {"value": "nope"}
    assert await node.call(orjson.dumps(other)) == Answer(400, "Executor cannot be found")
    assert await node.call(update("TASK_RUNNING")) == Answer(403, "Executor is not subscribed")
    assert await node.call(body("MESSAGE", message={"data": "aGk="})) == Answer(
        403, "Executor is not subscribed"
    )
    assert await node.call(body("HEARTBEAT")) == Answer(202)
    answer = await node.call(SUBSCRIBE, accept="application/x-protobuf")
    assert isinstance(answer, Answer) and answer.status == 406


# --- subscribe and launch --------------------------------------------------------------------


async def test_subscribe_sends_subscribed_then_the_task() -> None:
    node = Node()
    node.api.frameworks[FID] = {"spec": {"frameworkInfo": {"user": "alice", "name": "fw"}}}
    ex = await node.attach()
    stream = await node.subscribe()
    assert stream.types() == ["SUBSCRIBED", "LAUNCH"]
    sub = stream.events[0]["subscribed"]
    assert sub["executor_info"]["executor_id"] == {"value": EID}  # (pymesos asserts these)
    assert sub["framework_info"] == {"user": "alice", "name": "fw", "id": {"value": FID}}
    assert sub["agent_info"] == {"id": {"value": NODE}, "hostname": NODE, "port": 5051}
    assert sub["container_id"] == {"value": "u-1"}
    assert stream.events[1]["launch"]["task"] == task_info()
    assert ex.launched == {"t1"}


async def test_a_task_is_not_sent_twice_to_an_executor_that_has_it() -> None:
    node = Node()
    await node.attach()
    first = await node.subscribe()
    # the stream broke; the executor still holds its task (pymesos lists it)
    held = body(
        "SUBSCRIBE", subscribe={"unacknowledged_tasks": [task_info()], "unacknowledged_updates": []}
    )
    second = await node.subscribe(held)
    assert first.closed and second.types() == ["SUBSCRIBED"]
    # once it reported on the task, it had it even if it does not list it
    assert await node.call(update("TASK_RUNNING")) == Answer(202)
    third = await node.subscribe()
    assert second.closed and third.types() == ["SUBSCRIBED"]


async def test_a_task_the_executor_never_got_is_sent_again() -> None:
    node = Node()
    await node.attach()
    await node.subscribe()
    again = await node.subscribe()
    assert again.types() == ["SUBSCRIBED", "LAUNCH"]


async def test_after_an_agent_restart_the_recorded_status_tells_the_task_was_delivered() -> None:
    node = Node()
    await node.attach(executor_pod(status={"state": "TASK_RUNNING", "task_id": {"value": "t1"}}))
    assert (await node.subscribe()).types() == ["SUBSCRIBED"]


async def test_a_task_group_pod_gets_launch_group() -> None:
    node = Node()
    await node.attach(executor_pod(extra={TASK_GROUP: "true"}))
    stream = await node.subscribe()
    assert stream.types() == ["SUBSCRIBED", "LAUNCH_GROUP"]
    assert stream.events[1]["launch_group"] == {"task_group": {"tasks": [task_info()]}}


async def test_unacknowledged_updates_are_recorded_on_subscribe() -> None:
    node = Node()
    await node.attach()
    status = orjson.loads(update("TASK_RUNNING"))["update"]
    sub = {"unacknowledged_tasks": [task_info()], "unacknowledged_updates": [status]}
    stream = await node.subscribe(body("SUBSCRIBE", subscribe=sub))
    assert stream.types() == ["SUBSCRIBED", "ACKNOWLEDGED"]
    assert len(node.api.patches) == 1


# --- update, message --------------------------------------------------------------------------


async def test_update_is_recorded_on_the_pod_then_acknowledged() -> None:
    node = Node()
    await node.attach()
    stream = await node.subscribe()
    uid = new_uuid()
    extra: Obj = {"message": "up", "data": "ZA==", "healthy": True, "container_status": {"x": 1}}
    assert await node.call(update("TASK_RUNNING", uid=uid, **extra)) == Answer(202)
    [(name, ns, patch)] = node.api.patches
    assert (name, ns) == ("pod-u-1", "mesos")
    recorded = json.loads(patch["metadata"]["annotations"][mesos.EXECUTOR_STATUS])
    assert recorded == {
        "state": "TASK_RUNNING",
        "message": "up",
        "data": "ZA==",
        "healthy": True,
        "uuid": uid,
        "timestamp": 1700000000,
        "task_id": {"value": "t1"},
        "source": "SOURCE_EXECUTOR",
        "agent_id": {"value": NODE},
        "executor_id": {"value": EID},
    }
    assert stream.events[-1] == {
        "type": "ACKNOWLEDGED",
        "acknowledged": {"task_id": {"value": "t1"}, "uuid": uid},
    }
    # the same update again: acknowledged, not recorded twice
    assert await node.call(update("TASK_RUNNING", uid=uid)) == Answer(202)
    assert len(node.api.patches) == 1 and stream.types()[-2:] == ["ACKNOWLEDGED"] * 2


async def test_nothing_is_recorded_after_a_terminal_update() -> None:
    node = Node()
    await node.attach()
    stream = await node.subscribe()
    await node.call(update("TASK_FINISHED"))
    assert await node.call(update("TASK_RUNNING")) == Answer(202)
    assert len(node.api.patches) == 1 and stream.types()[-2:] == ["ACKNOWLEDGED"] * 2


async def test_an_update_that_cannot_be_recorded_is_not_acknowledged() -> None:
    node = Node()
    await node.attach()
    stream = await node.subscribe()
    node.api.fail = StatusError(500, "InternalError", "etcd down")
    answer = await node.call(update("TASK_RUNNING"))
    assert isinstance(answer, Answer) and answer.status == 503 and "etcd down" in answer.text
    assert "ACKNOWLEDGED" not in stream.types()
    node.api.fail = StatusError(404, "NotFound", "gone")  # the pod is gone: nothing to keep
    assert await node.call(update("TASK_RUNNING")) == Answer(202)


async def test_an_update_for_another_task_is_acknowledged_and_dropped() -> None:
    node = Node()
    await node.attach()
    stream = await node.subscribe()
    assert await node.call(update("TASK_RUNNING", task_id="t9")) == Answer(202)
    assert not node.api.patches and stream.types()[-1] == "ACKNOWLEDGED"


async def test_message_becomes_an_event_on_the_pod() -> None:
    node = Node()
    await node.attach()
    await node.subscribe()
    assert await node.call(body("MESSAGE", message={"data": "cG9uZw=="})) == Answer(202)
    [(plural, ns, ev)] = node.api.created
    assert (plural, ns) == ("events", "mesos")
    assert ev["metadata"]["namespace"] == "mesos" and ev["metadata"]["name"].startswith("pod-u-1.")
    assert ev["involvedObject"] == {
        "apiVersion": "v1",
        "kind": "Pod",
        "name": "pod-u-1",
        "namespace": "mesos",
        "uid": "u-1",
    }
    assert (ev["reason"], ev["type"], ev["message"]) == ("ExecutorMessage", "Normal", "cG9uZw==")
    assert ev["source"]["component"] == ev["reportingComponent"] == "corral-agent"
    assert ev["reportingInstance"] == NODE


async def test_framework_messages_reach_subscribed_executors_only() -> None:
    node = Node()
    await node.attach()
    assert node.reg.deliver(FID, EID, "aGk=") == 0
    stream = await node.subscribe()
    assert node.reg.deliver(FID, EID, "aGk=") == 1
    assert stream.events[-1] == {"type": "MESSAGE", "message": {"data": "aGk="}}
    assert node.reg.deliver(FID, "other", "aGk=") == 0


# --- two pods, one executor id ------------------------------------------------------------------


async def test_calls_go_to_the_pod_whose_endpoint_was_dialled() -> None:
    node = Node()
    a = await node.attach(executor_pod("u-1", task_id="t1"))
    b = await node.attach(executor_pod("u-2", task_id="t2"))
    # through the node's own address: neither (nor anyone else on the network) is heard
    assert await node.call(SUBSCRIBE, local="127.0.0.1") == Answer(400, "Executor cannot be found")
    sa = await node.subscribe(local=a.local_ip)
    sb = await node.subscribe(local=b.local_ip)
    assert sa.events[1]["launch"]["task"]["task_id"] == {"value": "t1"}
    assert sb.events[1]["launch"]["task"]["task_id"] == {"value": "t2"}
    assert await node.call(update("TASK_RUNNING", task_id="t2"), local=b.local_ip) == Answer(202)
    assert node.api.patches[0][0] == "pod-u-2" and sb.types()[-1] == "ACKNOWLEDGED"
    assert node.reg.deliver(FID, EID, "aGk=") == 2


async def test_a_pod_network_executor_is_known_by_its_pod_ip() -> None:
    node = Node()
    await node.attach(executor_pod("u-1", task_id="t1"), ip="127.0.0.1", host=False)
    await node.attach(executor_pod("u-2", task_id="t2"))
    stream = await node.subscribe(peer="127.0.0.1", local="127.0.0.1")
    assert stream.events[1]["launch"]["task"]["task_id"] == {"value": "t1"}
    wrong = await node.call(SUBSCRIBE, peer="10.1.2.3", local="127.0.0.1")
    assert wrong == Answer(400, "Executor cannot be found")


async def test_an_executor_without_an_address_of_its_own_is_taken_at_its_word() -> None:
    node = Node(FakeListeners(ok=False))
    await node.attach()
    assert (await node.subscribe(local="10.0.0.1")).types() == ["SUBSCRIBED", "LAUNCH"]


# --- kill, shutdown, exit ---------------------------------------------------------------------------


def exits(result: bool, calls: list[float]) -> Callable[[float], Any]:
    async def exited(timeout: float) -> bool:
        calls.append(timeout)
        return result

    return exited


async def test_deletion_kills_the_task_and_waits_for_the_executor() -> None:
    node = Node()
    await node.attach()
    stream = await node.subscribe()
    waited: list[float] = []
    assert await node.reg.terminate("u-1", 5.0, exits(True, waited)) == 0.0
    assert stream.events[-1] == {"type": "KILL", "kill": {"task_id": {"value": "t1"}}}
    assert waited == [5.0] and not stream.closed  # the stream stays open until SHUTDOWN
    # an executor that subscribes now is told to shut down
    late = await node.subscribe()
    assert late.types() == ["SHUTDOWN"] and late.closed


async def test_an_executor_that_does_not_exit_after_kill_gets_shutdown() -> None:
    node = Node()
    await node.attach()
    stream = await node.subscribe()
    waited: list[float] = []
    assert await node.reg.terminate("u-1", 3.0, exits(False, waited)) == 0.0
    # (SHUTDOWN waits for the executor's shutdown grace period, 2 s)
    assert stream.types()[-2:] == ["KILL", "SHUTDOWN"] and waited == [3.0, 2.0]


async def test_a_finished_task_is_not_killed_its_executor_is_shut_down() -> None:
    node = Node()
    await node.attach()
    stream = await node.subscribe()
    await node.call(update("TASK_FINISHED"))
    waited: list[float] = []
    await node.reg.terminate("u-1", 3.0, exits(True, waited))
    assert stream.types()[-1] == "SHUTDOWN" and "KILL" not in stream.types()


async def test_an_executor_that_never_subscribed_is_stopped_as_any_container() -> None:
    node = Node()
    await node.attach()
    waited: list[float] = []
    assert await node.reg.terminate("u-1", 3.0, exits(True, waited)) == 3.0
    assert waited == []
    assert await node.reg.terminate("nope", 3.0, exits(True, waited)) == 3.0


async def test_the_stream_ends_when_the_executor_exits() -> None:
    node = Node()
    await node.attach()
    stream = await node.subscribe()
    node.reg.exited("u-1")
    assert stream.closed
    assert (await node.subscribe()).types() == ["SHUTDOWN"]
    node.reg.started("u-1")  # restarted: it may subscribe again
    assert (await node.subscribe()).types() == ["SUBSCRIBED", "LAUNCH"]
    await node.reg.detach("u-1")
    assert await node.call(SUBSCRIBE) == Answer(400, "Framework cannot be found")


# --- over HTTP, through the agent's server ---------------------------------------------------------


class NoContainers:
    def log_files(self, namespace: str, pod: str, container: str) -> None:
        return None

    def is_running(self, namespace: str, pod: str, container: str) -> bool:
        return False

    def exec_target(self, namespace: str, pod: str, container: str) -> None:
        return None


async def test_the_agent_server_serves_the_executor_api() -> None:
    server = AgentServer(NoContainers(), "secret", "127.0.0.1", 0)
    api = FakeApi()
    server.executors = MesosExecutors(api, NODE, "127.0.0.1", server)
    await server.start()
    try:
        ex = await server.executors.attach(executor_pod(), "127.0.0.1", True)
        assert ex is not None and ex.local_ip is not None
        base = f"http://{ex.endpoint}"
        headers = {"Content-Type": JSON, "Accept": JSON}
        async with aiohttp.ClientSession() as http:
            # the executor-only listener serves no logs or exec
            async with http.get(f"{base}/healthz") as r:
                assert r.status == 404
            async with http.post(f"{base}/api/v1/executor", data=SUBSCRIBE, headers=headers) as r:
                assert r.status == 200 and r.headers["Transfer-Encoding"] == "chunked"
                assert r.headers["Mesos-Stream-Id"]
                decoder, events = Decoder(), list[Obj]()
                while len(events) < 2:
                    events += [orjson.loads(x) for x in decoder.feed(await r.content.readany())]
                assert [e["type"] for e in events] == ["SUBSCRIBED", "LAUNCH"]
                async with http.post(
                    f"{base}/api/v1/executor", data=update("TASK_RUNNING"), headers=headers
                ) as u:
                    assert u.status == 202
                events += [orjson.loads(x) for x in decoder.feed(await r.content.readany())]
                assert events[-1]["type"] == "ACKNOWLEDGED"
                main = f"http://127.0.0.1:{server.port}/mesos/executor-message"
                message = {"framework_id": FID, "executor_id": EID, "data": "aGk="}
                async with http.post(main, json=message) as m:
                    assert m.status == 401  # the master's call needs the token
                auth = {"Authorization": "Bearer secret"}
                async with http.post(main, json=message, headers=auth) as m:
                    assert m.status == 202
                events += [orjson.loads(x) for x in decoder.feed(await r.content.readany())]
                assert events[-1] == {"type": "MESSAGE", "message": {"data": "aGk="}}
                async with http.post(main, json={**message, "executor_id": "x"}, headers=auth) as m:
                    assert m.status == 404
                async with http.post(main, data=b"{", headers=auth) as m:
                    assert m.status == 400
                server.executors.exited(ex.uid)  # the stream ends, and nothing follows it
                rest = await r.content.read()
                assert decoder.feed(rest) == [] and r.content.at_eof()
            async with http.post(f"{base}/api/v1/executor", data=b"{", headers=headers) as r:
                assert r.status == 400 and "Failed to parse body into JSON" in await r.text()
        await server.executors.detach(ex.uid)
        with pytest.raises(aiohttp.ClientConnectionError):
            async with aiohttp.ClientSession() as http, http.post(base + "/api/v1/executor"):
                pass
    finally:
        await server.stop()
