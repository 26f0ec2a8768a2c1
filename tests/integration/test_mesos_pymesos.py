"""pymesos (unmodified, from PyPI) against Corral's Mesos master: command tasks on a
real agent, offers on hollow nodes, kills, reconciliation, teardown and failover."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
from mesoskit import Framework, Recorder, command_task, mesos_cluster, pymesos, scalar, wait

from corral.testing.faults.failover import FrameworkProcess

# pymesos 0.3.15 drops sockets without closing them (its call connection after errors,
# its stream connection on failover): their ResourceWarning is not ours to fail on
pytestmark = [
    pytest.mark.timeout(180),
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
]


def test_command_tasks_run_and_finish_on_a_real_agent(tmp_path: Path) -> None:
    launched: list[str] = []

    def on_offers(driver: Any, offers: list[Any]) -> None:
        for offer in offers:
            if launched or scalar(offer.resources, "cpus") < 0.1:
                driver.declineOffer(offer.id, {"refuse_seconds": 5})
                continue
            task = command_task(offer, "hello", "echo hello from $MESOS_TASK_ID; sleep 1")
            launched.append("hello")
            driver.launchTasks(offer.id, [task], {"refuse_seconds": 5})

    with mesos_cluster(tmp_path, runtimes=("process",)) as c:
        fw = Framework.start(c.master, "smoke", on_offers)
        try:
            wait(lambda: "TASK_FINISHED" in fw.recorder.states("hello"), "TASK_FINISHED", 60)
            states = fw.recorder.states("hello")
            assert "TASK_RUNNING" in states
            assert states.index("TASK_RUNNING") < states.index("TASK_FINISHED")
            update = next(u for u in fw.recorder.updates if u["state"] == "TASK_FINISHED")
            assert update["agent_id"]["value"] == c.agents[0].name
            pods = c.task_pods()
            assert len(pods) == 1
            assert pods[0]["spec"]["nodeName"] == c.agents[0].name
            assert pods[0]["status"]["phase"] == "Succeeded"
            state = c.get("/state")
            assert state["frameworks"][0]["name"] == "smoke"
        finally:
            fw.stop()


def one_task_per_offer(
    prefix: str, cpus: float, mem: float, go: threading.Event | None = None
) -> tuple[list[str], Any]:
    """An offer policy: launch one task of <cpus, mem> when it fits, decline the rest with
    a zero filter (as the DRF paper's frameworks do); nothing before ``go`` is set."""
    launched: list[str] = []

    def on_offers(driver: Any, offers: list[Any]) -> None:
        for offer in offers:
            fits = scalar(offer.resources, "cpus") >= cpus and scalar(offer.resources, "mem") >= mem
            if not fits or (go is not None and not go.is_set()):
                driver.declineOffer(offer.id, {"refuse_seconds": 0})
                continue
            name = f"{prefix}-{len(launched)}"
            launched.append(name)
            driver.launchTasks(
                offer.id,
                [command_task(offer, name, "sleep 3600", cpus, mem)],
                {"refuse_seconds": 0},
            )

    return launched, on_offers


def test_weights_1_and_2_converge_to_a_1_to_2_dominant_share_split(tmp_path: Path) -> None:
    with mesos_cluster(tmp_path, hollow=4) as c:  # 4 x (4 cpus, 32 GiB)
        wait(lambda: len(c.get("/state")["slaves"]) == 4, "4 hollow agents")
        c.operator(
            {
                "type": "UPDATE_WEIGHTS",
                "update_weights": {"weight_infos": [{"role": "b", "weight": 2.0}]},
            }
        )
        weights = c.operator({"type": "GET_WEIGHTS"})["get_weights"]["weight_infos"]
        assert {"role": "b", "weight": 2.0} in weights
        go = threading.Event()  # both frameworks subscribed: DRF starts from zero shares
        _, a_policy = one_task_per_offer("a", 0.5, 256, go)
        _, b_policy = one_task_per_offer("b", 0.5, 256, go)
        fa = Framework.start(
            c.master, "fw-a", a_policy, roles=["a"], capabilities=[{"type": "MULTI_ROLE"}]
        )
        fb = Framework.start(
            c.master, "fw-b", b_policy, roles=["b"], capabilities=[{"type": "MULTI_ROLE"}]
        )
        try:
            go.set()

            def running(f: Framework) -> int:
                with f.recorder.lock:
                    return len(
                        {
                            u["task_id"]["value"]
                            for u in f.recorder.updates
                            if u["state"] == "TASK_RUNNING"
                        }
                    )

            # 16 cpus hold 32 tasks of 0.5 cpu: wait for the pool to fill
            wait(lambda: running(fa) + running(fb) >= 32, "32 running tasks", 90)
            ratio = running(fb) / running(fa)
            assert 1.6 <= ratio <= 2.5, (running(fa), running(fb))
            bad = [
                u
                for f in (fa, fb)
                for u in f.recorder.updates
                if u["state"] not in ("TASK_STARTING", "TASK_RUNNING")
            ]
            assert not bad, [
                (u["task_id"]["value"], u["state"], u.get("reason"), u.get("message")) for u in bad
            ]
            roles = {r["name"]: r for r in c.operator({"type": "GET_ROLES"})["get_roles"]["roles"]}
            assert roles["b"]["weight"] == 2.0
        finally:
            fa.stop()
            fb.stop()


def test_a_zero_filter_decliner_starves_no_one(tmp_path: Path) -> None:
    seen_first: dict[str, float] = {}

    def decline_all(driver: Any, offers: list[Any]) -> None:
        for offer in offers:
            driver.declineOffer(offer.id, {"refuse_seconds": 0})

    with mesos_cluster(tmp_path, hollow=1) as c:
        wait(lambda: len(c.get("/state")["slaves"]) == 1, "the hollow agent")
        greedy = Framework.start(c.master, "decliner", decline_all)
        try:
            wait(lambda: len(greedy.recorder.offers) >= 3, "the decliner is offered again")
            import time as _time

            t0 = _time.monotonic()

            def record(driver: Any, offers: list[Any]) -> None:
                seen_first.setdefault("at", _time.monotonic())
                for offer in offers:
                    driver.declineOffer(offer.id, {"refuse_seconds": 60})

            other = Framework.start(c.master, "patient", record)
            try:
                wait(lambda: "at" in seen_first, "an offer for the second framework", 10)
                # registration included; the bound is 2 s of waiting for an offer
                assert seen_first["at"] - t0 < 4.0
            finally:
                other.stop()
        finally:
            greedy.stop()


def launch_n(
    prefix: str, n: int, cpus: float = 0.1, mem: float = 32, cmd: str = "sleep 3600"
) -> tuple[list[str], Any]:
    """An offer policy: launch ``n`` tasks in all, one per offer, and decline the rest."""
    launched: list[str] = []
    lock = threading.Lock()

    def on_offers(driver: Any, offers: list[Any]) -> None:
        for offer in offers:
            with lock:
                want = len(launched) < n and scalar(offer.resources, "cpus") >= cpus
                if want:
                    name = f"{prefix}-{len(launched)}"
                    launched.append(name)
            if not want:
                driver.declineOffer(offer.id, {"refuse_seconds": 1})
                continue
            driver.launchTasks(
                offer.id, [command_task(offer, name, cmd, cpus, mem)], {"refuse_seconds": 0}
            )

    return launched, on_offers


def test_failover_keeps_tasks_reconcile_and_teardown(tmp_path: Path) -> None:
    with mesos_cluster(tmp_path, hollow=1) as c:
        wait(lambda: len(c.get("/state")["slaves"]) == 1, "the hollow agent")
        tasks, policy = launch_n("fo", 2)
        fw = Framework.start(c.master, "failover", policy, failover_timeout=60)
        fid = fw.recorder.framework_id
        wait(
            lambda: all("TASK_RUNNING" in fw.recorder.states(t) for t in tasks) and len(tasks) == 2,
            "2 running",
        )
        fw.stop(failover=True)  # disconnect without TEARDOWN: the tasks stay
        wait(lambda: not c.get("/state")["frameworks"][0]["connected"], "disconnected")
        assert len(c.task_pods()) == 2
        wait(
            lambda: (
                c.kube(f"/apis/mesos.corral.dev/v1/frameworks/{fid}")["status"]["connected"]
                is False
            ),
            "the Framework object says disconnected",
        )
        # the same framework id fails over to a new driver: tasks are still there
        back = Framework.start(c.master, "failover", None, failover_timeout=60, id={"value": fid})
        try:
            assert back.recorder.framework_id == fid
            back.driver.reconcileTasks([])
            wait(
                lambda: (
                    sorted(
                        u["task_id"]["value"]
                        for u in back.recorder.updates
                        if u.get("reason") == "REASON_RECONCILIATION"
                    )
                    == sorted(tasks)
                ),
                "implicit reconciliation",
            )
            assert {u["state"] for u in back.recorder.updates} == {"TASK_RUNNING"}
            back.driver.reconcileTasks([{"task_id": {"value": "no-such-task"}}])
            wait(lambda: "TASK_LOST" in back.recorder.states("no-such-task"), "unknown task LOST")
            back.driver.killTask({"value": tasks[0]})
            wait(lambda: "TASK_KILLED" in back.recorder.states(tasks[0]), "TASK_KILLED")
        finally:
            back.stop()  # TEARDOWN: every task killed, the framework removed
        wait(lambda: not c.task_pods(), "task pods gone after TEARDOWN")
        state = c.get("/state")
        assert not state["frameworks"]
        assert [f["id"] for f in state["completed_frameworks"]] == [fid]


def test_failover_timeout_removes_the_framework_and_its_tasks(tmp_path: Path) -> None:
    with mesos_cluster(tmp_path, hollow=1) as c:
        wait(lambda: len(c.get("/state")["slaves"]) == 1, "the hollow agent")
        tasks, policy = launch_n("gone", 1)
        fw = Framework.start(c.master, "short-lived", policy, failover_timeout=2)
        wait(lambda: tasks and "TASK_RUNNING" in fw.recorder.states(tasks[0]), "running")
        fw.stop(failover=True)
        wait(lambda: not c.get("/state")["frameworks"], "removed after its failover timeout", 20)
        wait(lambda: not c.task_pods(), "its tasks killed")
        # it may not come back with that id
        again = Recorder()
        driver = pymesos.MesosSchedulerDriver(
            again,
            {"user": "root", "name": "short-lived", "id": {"value": fw.recorder.framework_id}},
            c.master,
            use_addict=True,
        )
        driver.start()
        try:
            wait(lambda: again.errors, "an ERROR event")
            assert "removed" in again.errors[0]
        finally:
            driver.stop()


@pytest.mark.slow  # ~10-20 s: `make test-slow` (the suite keeps under 15 min)
def test_a_master_restart_keeps_frameworks_and_tasks(tmp_path: Path) -> None:
    with mesos_cluster(tmp_path, hollow=1) as c:
        wait(lambda: len(c.get("/state")["slaves"]) == 1, "the hollow agent")
        tasks, policy = launch_n("r", 2)
        fw = Framework.start(c.master, "survivor", policy, failover_timeout=120)
        try:
            wait(
                lambda: (
                    len(tasks) == 2 and all("TASK_RUNNING" in fw.recorder.states(t) for t in tasks)
                ),
                "2 running",
            )
            c.restart_server()
            wait(lambda: fw.recorder.registrations >= 2, "re-registered after the restart", 60)
            state = c.get("/state")
            assert [f["id"] for f in state["frameworks"]] == [fw.recorder.framework_id]
            assert state["frameworks"][0]["connected"]
            assert sorted(t["id"] for t in state["frameworks"][0]["tasks"]) == sorted(tasks)
            before = len(fw.recorder.updates)
            fw.driver.reconcileTasks([])
            wait(lambda: len(fw.recorder.updates) >= before + 2, "reconciliation after the restart")
            assert {u["state"] for u in fw.recorder.updates[before:]} == {"TASK_RUNNING"}
            assert len(c.task_pods()) == 2
        finally:
            fw.stop()
        wait(lambda: not c.task_pods(), "task pods gone after TEARDOWN")


def _call(
    c: Any, body: Any, stream_id: str | None = None, raw: bytes | None = None
) -> tuple[int, str]:
    import urllib.error
    import urllib.request

    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if stream_id is not None:
        headers["Mesos-Stream-Id"] = stream_id
    data = raw if raw is not None else json.dumps(body).encode()
    req = urllib.request.Request(f"http://{c.master}/api/v1/scheduler", data=data, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_bad_calls_get_mesos_errors_and_leak_nothing(tmp_path: Path) -> None:
    held: list[Any] = []

    def hold(driver: Any, offers: list[Any]) -> None:
        held.extend(offers)

    with mesos_cluster(tmp_path, hollow=1) as c:
        wait(lambda: len(c.get("/state")["slaves"]) == 1, "the hollow agent")
        assert _call(c, None, raw=b"{not json")[0] == 400
        assert _call(c, {"no": "type"})[0] == 400
        code, text = _call(c, {"type": "SUBSCRIBE", "subscribe": {"framework_info": {"name": "x"}}})
        assert code == 400 and "user" in text
        fw = Framework.start(c.master, "bad-input", hold)
        try:
            fid = fw.recorder.framework_id
            code, text = _call(
                c, {"type": "REVIVE", "framework_id": {"value": fid}}, "wrong-stream"
            )
            assert code == 403 and "stream" in text.lower()
            code, _ = _call(c, {"type": "REVIVE", "framework_id": {"value": fid}})
            assert code == 403
            wait(lambda: held, "an offer")
            offer = held[0]
            total_cpus = scalar(offer.resources, "cpus")
            # over-committing the offer: TASK_ERROR, and the offer's resources come back
            big = command_task(offer, "too-big", "sleep 1", cpus=total_cpus + 1, mem=32)
            fw.driver.launchTasks(offer.id, [big], {"refuse_seconds": 0})
            wait(lambda: fw.recorder.states("too-big"), "an update for the over-committing task")
            update = next(u for u in fw.recorder.updates if u["task_id"]["value"] == "too-big")
            assert update["state"] == "TASK_ERROR"
            assert update["reason"] == "REASON_TASK_INVALID"
            # the same offer again: it was used, so TASK_DROPPED with REASON_INVALID_OFFERS
            fw.driver.launchTasks(offer.id, [command_task(offer, "reused", "sleep 1")], {})
            wait(lambda: fw.recorder.states("reused"), "an update for the reused offer")
            update = next(u for u in fw.recorder.updates if u["task_id"]["value"] == "reused")
            assert (update["state"], update["reason"]) == ("TASK_DROPPED", "REASON_INVALID_OFFERS")
            # an unknown offer id
            fw.driver.launchTasks(
                {"value": "no-such-offer"}, [command_task(offer, "ghost", "sleep 1")], {}
            )
            wait(
                lambda: fw.recorder.states("ghost") == ["TASK_DROPPED"],
                "TASK_DROPPED for an unknown offer",
            )
            # nothing leaked: the agent's whole cpus are offered again and no pod exists
            wait(
                lambda: any(scalar(o.resources, "cpus") == total_cpus for o in held[1:]),
                "the whole agent offered again",
                20,
            )
            assert not c.task_pods()
        finally:
            fw.stop()


def _pods(value: float) -> dict[str, Any]:
    return {"name": "pods", "type": "SCALAR", "scalar": {"value": value}}


def test_offers_carry_free_pod_slots_and_tasks_may_request_pods(tmp_path: Path) -> None:
    """The custom scalar ``pods``: an agent's pods limit, an offer's free slots (one
    fewer per task launched), a task's request up to the offer's (or none)."""
    held: list[Any] = []

    def hold(driver: Any, offers: list[Any]) -> None:
        held.extend(offers)

    with mesos_cluster(tmp_path, hollow=1) as c:
        wait(lambda: len(c.get("/state")["slaves"]) == 1, "the hollow agent")
        assert c.get("/state")["slaves"][0]["resources"]["pods"] == 110.0
        [agent] = c.operator({"type": "GET_AGENTS"})["get_agents"]["agents"]
        assert scalar(agent["total_resources"], "pods") == 110
        fw = Framework.start(c.master, "pods", hold)
        try:
            wait(lambda: held, "an offer")
            offer = held[0]
            assert scalar(offer.resources, "pods") == 110
            with_pods = command_task(offer, "with-pods", "sleep 3600")
            with_pods["resources"].append(_pods(1))
            plain = command_task(offer, "plain", "sleep 3600")
            greedy = command_task(offer, "greedy", "sleep 3600")
            greedy["resources"].append(_pods(111))
            fw.driver.launchTasks(offer.id, [with_pods, plain, greedy], {"refuse_seconds": 0})
            for name in ("with-pods", "plain"):
                wait(lambda n=name: "TASK_RUNNING" in fw.recorder.states(n), f"{name} running")
            wait(lambda: fw.recorder.states("greedy"), "an update for the greedy task")
            update = next(u for u in fw.recorder.updates if u["task_id"]["value"] == "greedy")
            assert update["state"] == "TASK_ERROR"
            assert "pods:111 required" in update["message"], update["message"]
            # the node's next offer advertises the slots left
            wait(
                lambda: any(scalar(o.resources, "pods") == 108 for o in held[1:]),
                "an offer of 108 pods",
                20,
            )
            state = c.get("/state")
            assert state["slaves"][0]["used_resources"]["pods"] == 2.0
            tasks = {t["id"]: t for t in state["frameworks"][0]["tasks"]}
            assert tasks["with-pods"]["resources"]["pods"] == 1.0
            assert "pods" not in tasks["plain"]["resources"]
            got = c.operator({"type": "GET_TASKS"})["get_tasks"]["tasks"]
            v1 = {t["task_id"]["value"]: t for t in got}
            assert scalar(v1["with-pods"]["resources"], "pods") == 1
            assert scalar(v1["plain"]["resources"], "pods") == 0
            assert len(c.task_pods()) == 2
        finally:
            fw.stop()


def test_kubernetes_pods_and_a_framework_share_nodes_without_overcommit(tmp_path: Path) -> None:
    held: list[Any] = []
    lock = threading.Lock()

    def hoard(driver: Any, offers: list[Any]) -> None:  # never answers: holds every offer
        with lock:
            held.extend(offers)

    with mesos_cluster(tmp_path, hollow=2) as c:  # 2 x 4 cpus
        wait(lambda: len(c.get("/state")["slaves"]) == 2, "2 hollow agents")
        fw = Framework.start(c.master, "hoarder", hoard)
        try:
            wait(lambda: len({o.agent_id.value for o in held}) == 2, "offers on both agents")
            # 6 pods of 1 cpu fit only into the offered resources: offers are rescinded
            deployment = {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "web", "namespace": "default"},
                "spec": {
                    "replicas": 6,
                    "selector": {"matchLabels": {"app": "web"}},
                    "template": {
                        "metadata": {"labels": {"app": "web"}},
                        "spec": {
                            "containers": [
                                {
                                    "name": "c",
                                    "image": "busybox",
                                    "resources": {"requests": {"cpu": "1", "memory": "64Mi"}},
                                }
                            ]
                        },
                    },
                },
            }
            c.kube_post("/apis/apps/v1/namespaces/default/deployments", deployment)

            def bound() -> int:
                pods = c.kube("/api/v1/namespaces/default/pods?labelSelector=app%3Dweb")["items"]
                return sum(1 for p in pods if p["spec"].get("nodeName"))

            wait(lambda: bound() == 6, "6 Kubernetes pods placed", 60)
            assert fw.recorder.rescinded, "offers were rescinded for the pending pods"
            # the framework now launches into what is left; nothing is over-committed
            with lock:
                held.clear()
            fw.driver.reviveOffers()
            wait(lambda: held, "offers of what is left")
            with lock:
                offers = list(held)
            for o in offers:
                cpus = scalar(o.resources, "cpus")
                if cpus >= 1:
                    fw.driver.launchTasks(
                        o.id,
                        [
                            command_task(
                                o, f"fill-{o.agent_id.value}", "sleep 600", cpus=cpus, mem=64
                            )
                        ],
                        {},
                    )
            wait(
                lambda: (
                    sum(
                        "TASK_RUNNING" in fw.recorder.states(f"fill-{o.agent_id.value}")
                        for o in offers
                        if scalar(o.resources, "cpus") >= 1
                    )
                    >= 1
                ),
                "fill tasks running",
                30,
            )
            nodes = {n["metadata"]["name"]: n for n in c.kube("/api/v1/nodes")["items"]}
            used: dict[str, float] = {}
            for p in c.kube("/api/v1/pods")["items"]:
                node = p["spec"].get("nodeName")
                if not node or p["status"].get("phase") in ("Succeeded", "Failed"):
                    continue
                for ctr in p["spec"]["containers"]:
                    req = (ctr.get("resources") or {}).get("requests") or {}
                    cpu = str(req.get("cpu", "0"))
                    used[node] = used.get(node, 0.0) + (
                        float(cpu[:-1]) / 1000 if cpu.endswith("m") else float(cpu)
                    )
            for name, cpus in used.items():
                assert cpus <= float(nodes[name]["status"]["allocatable"]["cpu"]) + 1e-9, (
                    name,
                    cpus,
                )
        finally:
            fw.stop()


def _mark_node_unknown(c: Any, node: str) -> None:
    """What the node lifecycle controller writes when a node's lease runs out."""
    cond = {
        "type": "Ready",
        "status": "Unknown",
        "reason": "NodeStatusUnknown",
        "message": "Kubelet stopped posting node status.",
        "lastHeartbeatTime": "2026-01-01T00:00:00Z",
        "lastTransitionTime": "2026-01-01T00:00:00Z",
    }
    c.kube_post(
        f"/api/v1/nodes/{node}/status",
        {"status": {"conditions": [cond]}},
        method="PATCH",
        content_type="application/strategic-merge-patch+json",
    )


@pytest.mark.parametrize("partition_aware", [True, False], ids=["partition-aware", "classic"])
def test_a_lost_agent_gives_unreachable_or_lost(tmp_path: Path, partition_aware: bool) -> None:
    with mesos_cluster(tmp_path, runtimes=("process",)) as c:
        agent = c.agents[0]
        tasks, policy = launch_n("p", 1, cmd="sleep 600")
        caps = [{"type": "PARTITION_AWARE"}] if partition_aware else []
        fw = Framework.start(c.master, "partitioned", policy, capabilities=caps)
        try:
            wait(lambda: tasks and "TASK_RUNNING" in fw.recorder.states(tasks[0]), "running", 60)
            agent.stop()  # its pods keep running, as under a kubelet restart
            _mark_node_unknown(c, agent.name)
            want = "TASK_UNREACHABLE" if partition_aware else "TASK_LOST"
            wait(lambda: want in fw.recorder.states(tasks[0]), want, 30)
            update = next(u for u in fw.recorder.updates if u["state"] == want)
            assert update["source"] == "SOURCE_MASTER"
            agent.launch()
            if partition_aware:
                # the agent is back and the task kept running: TASK_RUNNING again
                wait(
                    lambda: fw.recorder.states(tasks[0])[-1] == "TASK_RUNNING",
                    "TASK_RUNNING after the agent came back",
                    30,
                )
            else:
                # Mesos kills a non-partition-aware framework's lost task when its
                # agent comes back: the pod goes
                wait(lambda: not c.task_pods(), "the lost task's pod removed", 60)
        finally:
            fw.stop()


def test_the_fault_kits_framework_replaces_a_task_lost_before_it_ran(tmp_path: Path) -> None:
    """The fault scenarios' framework (``corral.testing.faults.failover_framework``)
    replaces a task that ended before it ran, as Marathon replaces a lost instance.
    ``test_fault_ha`` failed in CI with its two tasks TASK_LOST and never replaced: the
    Mesos master lost its leadership between the ACCEPT and the pods' binding, and the
    new master ended the created, never bound pods (a launch that never reached its agent
    is lost on a Mesos master failover too); the framework had launched once, then
    declined every offer. Here a task ends TASK_LOST before it runs (launched onto a node
    whose agent is stopped, then the node NotReady); once the agent is back, a task of a
    new id runs in its place."""
    with mesos_cluster(tmp_path, runtimes=("process",)) as c:
        agent = c.agents[0]
        agent.stop()  # its node stays Ready (and offered) until marked otherwise
        fw = FrameworkProcess.start(c.master, tmp_path / "fw.jsonl", "r", tasks=1, timeout=60)
        try:
            wait(lambda: any(p["spec"].get("nodeName") for p in c.task_pods()), "bound", 60)
            _mark_node_unknown(c, agent.name)
            wait(lambda: fw.states().get("r-0") == "TASK_LOST", "r-0 TASK_LOST", 30)
            assert not fw.running(1)
            agent.launch()
            wait(lambda: fw.running(1), "a task RUNNING in r-0's place", 60)
            assert fw.states() == {"r-0": "TASK_LOST", "r-1": "TASK_RUNNING"}
            r0 = [
                u["state"] for r in fw.records() if (u := r.get("update")) and u["task_id"] == "r-0"
            ]
            assert "TASK_RUNNING" not in r0
        finally:
            fw.kill()


def test_launch_group_tasks_live_and_die_together(tmp_path: Path) -> None:
    sent: list[str] = []

    def on_offers(driver: Any, offers: list[Any]) -> None:
        for offer in offers:
            if sent:
                driver.declineOffer(offer.id, {"refuse_seconds": 5})
                continue
            sent.append(offer.id.value)
            tasks = [
                command_task(offer, "group-long", "sleep 600"),
                command_task(offer, "group-fails", "sleep 1; exit 2"),
            ]
            executor = {
                "executor_id": {"value": "group-executor"},
                "type": "DEFAULT",
                "resources": [
                    {"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}},
                    {"name": "mem", "type": "SCALAR", "scalar": {"value": 32}},
                ],
            }
            driver.acceptOffers(
                [offer.id],
                [
                    {
                        "type": "LAUNCH_GROUP",
                        "launch_group": {"executor": executor, "task_group": {"tasks": tasks}},
                    }
                ],
                {"refuse_seconds": 5},
            )

    with mesos_cluster(tmp_path, runtimes=("process",)) as c:
        fw = Framework.start(c.master, "grouped", on_offers)
        try:
            wait(lambda: "TASK_RUNNING" in fw.recorder.states("group-long"), "group running", 60)
            wait(lambda: "TASK_FAILED" in fw.recorder.states("group-fails"), "one fails", 60)
            # Mesos' default executor kills the rest of the group
            wait(lambda: "TASK_KILLED" in fw.recorder.states("group-long"), "the rest killed", 60)
            pods = c.task_pods()
            assert {p["spec"]["nodeName"] for p in pods} == {c.agents[0].name}
        finally:
            fw.stop()


@pytest.mark.parametrize(
    "retry",
    [
        # Mesos' 10 s: ~10-20 s, `make test-slow` (the suite keeps under 15 min)
        pytest.param(10.0, marks=pytest.mark.slow, id="10s"),
        pytest.param(1.0, id="1s"),  # --status-update-retry 1: the suite's short form
    ],
)
def test_unacknowledged_updates_are_resent_until_acknowledged(tmp_path: Path, retry: float) -> None:
    extra = [] if retry == 10.0 else ["--status-update-retry", str(retry)]
    with mesos_cluster(tmp_path, hollow=1, extra=extra) as c:
        wait(lambda: len(c.get("/state")["slaves"]) == 1, "the hollow agent")
        tasks, policy = launch_n("ack", 1)
        fw = Framework.start(c.master, "slow-acker", policy, implicit_acknowledgements=False)
        try:
            wait(lambda: tasks and "TASK_RUNNING" in fw.recorder.states(tasks[0]), "running")
            first = next(u for u in fw.recorder.updates if u["state"] == "TASK_RUNNING")
            # not acknowledged: the same update (same uuid) comes again after `retry` s
            resent = lambda: fw.recorder.states(tasks[0]).count("TASK_RUNNING") >= 2  # noqa: E731
            wait(resent, "a resend", 20.0 if retry == 10.0 else 8.0)  # (8 < Mesos' 10 s)
            again = [u for u in fw.recorder.updates if u["state"] == "TASK_RUNNING"][1]
            assert again["uuid"] == first["uuid"]
            fw.driver.acknowledgeStatusUpdate(again)
            wait(
                lambda: (
                    c.task_pods()[0]["metadata"]["annotations"].get("mesos.corral.dev/acked-state")
                    == "TASK_RUNNING"
                ),
                "the acknowledgement recorded on the pod",
            )
        finally:
            fw.stop()


def test_malformed_calls_are_400_and_take_nothing(tmp_path: Path) -> None:
    held: list[Any] = []
    with mesos_cluster(tmp_path, hollow=1) as c:
        fw = Framework.start(c.master, "malformed", lambda d, offers: held.extend(offers))
        try:
            wait(lambda: held, "an offer")
            fid, sid = fw.recorder.framework_id, fw.driver.stream_id
            oid = {"value": held[0].id.value}
            bad_bodies = [
                {"type": "ACCEPT", "accept": [1]},
                {"type": "ACCEPT", "accept": {"offer_ids": [oid], "operations": [1]}},
                {
                    "type": "ACCEPT",
                    "accept": {
                        "offer_ids": [oid],
                        "operations": [{"type": "LAUNCH", "launch": [1]}],
                    },
                },
                {"type": "DECLINE", "decline": "x"},
                {"type": "RECONCILE", "reconcile": {"tasks": {"a": 1}}},
                {"type": "KILL", "kill": {"task_id": 5}},
            ]
            for body in bad_bodies:
                code, _ = _call(c, {**body, "framework_id": {"value": fid}}, sid)
                assert code == 400, body
            # the offer was not used up: it can still be launched into
            tasks = [command_task(held[0], "after-bad", "sleep 1")]
            fw.driver.launchTasks(held[0].id, tasks, {})
            wait(lambda: "TASK_RUNNING" in fw.recorder.states("after-bad"), "launched")
            assert (
                _call(
                    c,
                    None,
                    raw=b'{"type":"SUBSCRIBE","subscribe":{"framework_info":'
                    b'{"user":"u","name":"n","capabilities":"PARTITION_AWARE"}}}',
                )[0]
                == 400
            )
            assert c.get("/state")["frameworks"]
        finally:
            fw.stop()


def test_a_task_id_can_be_used_again_once_it_ended(tmp_path: Path) -> None:
    runs: list[str] = []

    def on_offers(driver: Any, offers: list[Any]) -> None:
        for offer in offers:
            if len(runs) >= 2 or (
                runs and "TASK_FINISHED" not in fw_ref[0].recorder.states("again")
            ):
                driver.declineOffer(offer.id, {"refuse_seconds": 0.5})
                continue
            runs.append(offer.id.value)
            driver.launchTasks(offer.id, [command_task(offer, "again", "true")], {})

    fw_ref: list[Framework] = []
    with mesos_cluster(tmp_path, runtimes=("process",)) as c:
        fw = Framework.start(c.master, "reuser", on_offers)
        fw_ref.append(fw)
        try:
            wait(lambda: fw.recorder.states("again").count("TASK_FINISHED") >= 2, "two runs", 60)
            assert "TASK_ERROR" not in fw.recorder.states("again")
            state = c.get("/state")["frameworks"][0]
            assert [t["id"] for t in state["completed_tasks"]] == ["again", "again"]
        finally:
            fw.stop()


def test_a_resubscription_rescinds_the_old_streams_offers(tmp_path: Path) -> None:
    held: list[Any] = []
    with mesos_cluster(tmp_path, hollow=1) as c:
        first = Framework.start(c.master, "twice", lambda d, o: held.extend(o), failover_timeout=60)
        try:
            wait(lambda: held, "an offer to the first instance")
            fid = first.recorder.framework_id
            second = Framework.start(
                c.master, "twice", None, failover_timeout=60, id={"value": fid}
            )
            try:
                # the old instance's offer is gone (rescinded and offered anew)
                wait(
                    lambda: all(
                        o["id"] != held[0].id.value
                        for o in c.get("/state")["frameworks"][0]["offers"]
                    ),
                    "the old offer rescinded",
                )
            finally:
                second.stop()
        finally:
            first.stop(failover=True)
