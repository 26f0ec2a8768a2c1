"""scheduler: deployments carried out step by step against offers and status updates,
no event loop (events in, instructions out)."""

from __future__ import annotations

import itertools
from typing import Any

import orjson
import pytest

from corral.marathon import apps
from corral.marathon import plan as plans
from corral.marathon.deployments import Run
from corral.marathon.instances import Instance
from corral.marathon.scheduler import Publish, Scheduler
from corral.mesos.framework_calls import Decline, Kill, Launch, Revive

Obj = dict[str, Any]
T0 = 1_800_000_000.0
VERSIONS = (f"2027-01-15T08:00:{s:02d}.000Z" for s in itertools.count())


def _app(instances: int = 3, **kw: Any) -> Obj:
    body = {"id": "/web", "cmd": "sleep 3600", "cpus": 0.1, "mem": 16, "instances": instances}
    return apps.normalize({**body, **kw})


class Harness:
    """A scheduler, a clock, and the instructions it answered."""

    def __init__(self) -> None:
        ids = itertools.count()
        self.s = Scheduler(new_id=lambda: f"t{next(ids)}")
        self.now = T0
        self.out: list[Any] = []
        self.offer_ids = itertools.count()

    def deploy(self, changes: dict[str, Obj | None], *, restart: bool = False) -> str:
        version = next(VERSIONS)
        current = self.s.apps
        target = dict(current)
        for app_id, new in changes.items():
            if new is None:
                target.pop(app_id)
            else:
                target[app_id] = apps.with_version(
                    current.get(app_id), new, now=version, restart=restart
                )
        did = f"d-{version}"
        p = plans.plan(current, target, deployment_id=did, version=version)
        self.out += self.s.start(Run(p, dict(current), target), self.now)
        return did

    def make_offer(self, host: str = "node-1", cpus: float = 1.0, pods: int | None = None) -> Obj:
        oid = f"o{next(self.offer_ids)}"
        offer: Obj = {
            "id": {"value": oid},
            "agent_id": {"value": f"agent-{host}"},
            "hostname": host,
            "resources": [
                {"name": "cpus", "type": "SCALAR", "scalar": {"value": cpus}},
                {"name": "mem", "type": "SCALAR", "scalar": {"value": 1024}},
                {
                    "name": "ports",
                    "type": "RANGES",
                    "ranges": {"range": [{"begin": 31000, "end": 31100}]},
                },
            ],
        }
        if pods is not None:
            offer["resources"].append(
                {"name": "pods", "type": "SCALAR", "scalar": {"value": float(pods)}}
            )
        return offer

    def offer(self, host: str = "node-1", cpus: float = 1.0, pods: int | None = None) -> list[Obj]:
        """One offer; answers the tasks launched into it."""
        out = self.s.offers([self.make_offer(host, cpus, pods)], self.now)
        self.out += out
        return [t for ins in out if isinstance(ins, Launch) for t in ins.tasks]

    def status(self, tid: str, state: str, **kw: Any) -> list[Any]:
        self.now += 1
        out = self.s.update({"task_id": {"value": tid}, "state": state, **kw}, self.now)
        self.out += out
        return out

    def run_all(self) -> None:
        for inst in list(self.s.instances.values()):
            if inst.state != "TASK_RUNNING":
                self.status(inst.task_id, "TASK_RUNNING")

    def kills(self) -> list[str]:
        return [i.task_id for i in self.out if isinstance(i, Kill)]

    def events(self, kind: str) -> list[Obj]:
        return [
            i.event for i in self.out if isinstance(i, Publish) and i.event["eventType"] == kind
        ]

    def finish_kills(self) -> None:
        for tid in self.kills():
            if tid in self.s.instances:
                self.status(tid, "TASK_KILLED")


def test_create_runs_the_instances_then_the_deployment_succeeds() -> None:
    h = Harness()
    did = h.deploy({"/web": _app(3)})
    assert [r.step for r in h.s.runs.values()] == [2]  # StartApplication is done at once
    assert any(isinstance(i, Revive) for i in h.out) or not h.s.suppressed
    assert len(h.offer(cpus=0.25)) == 2  # resources for two
    assert len(h.offer()) == 1
    assert h.s.wanted("/web") == 0 and did in h.s.runs
    h.run_all()
    assert did not in h.s.runs
    assert [e["id"] for e in h.events("deployment_success")] == [did]
    assert len(h.events("deployment_step_success")) == 2
    assert len(h.events("status_update_event")) == 3
    assert h.offer() == []
    assert any(isinstance(i, Decline) for i in h.out)


def test_scale_down_kills_youngest_and_scale_up_launches() -> None:
    h = Harness()
    h.deploy({"/web": _app(3)})
    h.offer()
    h.run_all()
    youngest = max(h.s.instances.values(), key=lambda i: i.staged_at).task_id
    h.now += 10
    did = h.deploy({"/web": _app(2)})
    assert h.kills() == [youngest] and did in h.s.runs
    h.finish_kills()
    assert did not in h.s.runs
    h.deploy({"/web": _app(4)})
    assert h.s.wanted("/web") == 2
    assert len(h.offer()) == 2


def test_a_failed_instance_is_replaced_after_the_backoff() -> None:
    h = Harness()
    h.deploy({"/web": _app(2, backoffSeconds=5)})
    tasks = h.offer()
    h.run_all()
    h.status(tasks[0]["task_id"]["value"], "TASK_FAILED", message="boom")
    assert h.s.wanted("/web") == 1
    assert h.s.failures["/web"]["message"] == "boom"
    assert h.offer() == []  # delayed
    queue = h.s.queue(h.now)
    assert queue[0]["count"] == 1 and queue[0]["delay"]["overdue"] is False
    h.now += 6
    assert len(h.offer()) == 1


def test_reset_delay_and_lost_agent_replacement() -> None:
    h = Harness()
    h.deploy({"/web": _app(1, backoffSeconds=300)})
    first = h.offer()[0]["task_id"]["value"]
    h.status(first, "TASK_FAILED")
    assert h.offer() == []
    h.s.reset_delay("/web")
    second = h.offer()[0]["task_id"]["value"]
    h.status(second, "TASK_RUNNING")
    h.status(second, "TASK_GONE")  # the agent is gone: no back-off
    assert len(h.offer(host="node-2")) == 1


def _tiny(app_id: str, instances: int, **kw: Any) -> Obj:
    return _app(instances, id=app_id, cpus=0.01, mem=1, portDefinitions=[], **kw)


def test_an_offer_takes_at_most_its_pods_across_apps() -> None:
    """A 4-cpu offer could hold 400 instances of 0.01 cpu; its node has 3 pod slots."""
    h = Harness()
    h.deploy({"/a": _tiny("/a", 2), "/b": _tiny("/b", 2)})
    launched = h.offer(cpus=4, pods=3)
    assert len(launched) == 3
    assert h.s.wanted("/a") + h.s.wanted("/b") == 1
    assert len(h.offer(host="node-2", cpus=4, pods=110)) == 1


def test_offers_of_one_agent_in_a_batch_share_its_pods() -> None:
    h = Harness()
    h.deploy({"/a": _tiny("/a", 10)})
    both = [h.make_offer(cpus=4, pods=4), h.make_offer(cpus=4, pods=4)]
    out = h.s.offers(both, h.now)
    launches = [i for i in out if isinstance(i, Launch)]
    assert [len(i.tasks) for i in launches] == [4]
    assert [i.offer_ids for i in out if isinstance(i, Decline)] == [(both[1]["id"]["value"],)]
    assert h.s.wanted("/a") == 6


def test_a_task_refused_at_the_pods_limit_is_queued_again_without_backoff() -> None:
    """The master's TASK_ERROR for a node at its pods limit means no room, not a
    failure: no ``lastTaskFailure``, no back-off, the next offer launches it."""
    from corral.marathon.instances import POD_LIMIT_REACHED
    from corral.mesos.calls import POD_LIMIT_REACHED as MASTER_MESSAGE

    assert POD_LIMIT_REACHED in MASTER_MESSAGE
    h = Harness()
    h.deploy({"/web": _app(2, backoffSeconds=300)})
    first, second = (t["task_id"]["value"] for t in h.offer())
    message = MASTER_MESSAGE.format(agent="agent-node-1")
    h.status(second, "TASK_ERROR", reason="REASON_TASK_INVALID", message=message)
    assert second not in h.s.instances
    assert h.s.wanted("/web") == 1
    assert h.s.delayed("/web", h.now) == 0
    assert "/web" not in h.s.failures
    assert [t["task_id"]["value"] for t in h.offer(host="node-2")] != []
    # any other TASK_ERROR is the task's failure: back-off
    h.status(first, "TASK_ERROR", reason="REASON_TASK_INVALID", message="Task uses no resources")
    assert h.s.delayed("/web", h.now) > 0
    assert h.s.failures["/web"]["message"] == "Task uses no resources"
    assert h.offer(host="node-3") == []


def test_an_unanswered_kill_is_sent_again() -> None:
    from corral.marathon.scheduler import KILL_RETRY_SECONDS

    h = Harness()
    h.deploy({"/web": _app(1)})
    [tid] = [t["task_id"]["value"] for t in h.offer()]
    h.run_all()
    h.deploy({"/web": None})
    assert h.kills() == [tid]
    h.out += h.s.tick(h.now)  # stamps the kill
    h.now += KILL_RETRY_SECONDS - 1
    h.out += h.s.tick(h.now)
    assert h.kills() == [tid]
    h.now += 1
    h.out += h.s.tick(h.now)
    assert h.kills() == [tid, tid]
    h.status(tid, "TASK_KILLED")
    h.now += 2 * KILL_RETRY_SECONDS
    h.out += h.s.tick(h.now)
    assert h.kills() == [tid, tid]


def test_unplaceable_app_stays_queued_with_the_reasons() -> None:
    h = Harness()
    h.deploy({"/web": _app(2, constraints=[["hostname", "LIKE", "gpu-.*"]])})
    assert h.offer() == [] and h.offer(host="node-2") == []
    [item] = h.s.queue(h.now)
    summary = item["processedOffersSummary"]
    assert summary["processedOffersCount"] == 2 and summary["unusedOffersCount"] == 2
    declined = {r["reason"]: r["declined"] for r in summary["rejectSummaryLastOffers"]}
    assert declined["UnfulfilledConstraint"] == 2
    assert any("UnfulfilledConstraint" in line for line in h.s.why("/web", h.now))


@pytest.mark.parametrize(
    ("instances", "min_health", "max_over"),
    [(4, 1.0, 1.0), (4, 0.5, 0.0), (3, 0.0, 0.0), (5, 0.6, 0.2)],
    ids=["side-by-side", "half", "all-at-once", "partial"],
)
def test_restart_rolls_within_capacity(instances: int, min_health: float, max_over: float) -> None:
    h = Harness()
    strategy = {"minimumHealthCapacity": min_health, "maximumOverCapacity": max_over}
    app = _app(instances, upgradeStrategy=strategy)
    h.deploy({"/web": app})
    h.offer(cpus=10)
    h.run_all()
    old = set(h.s.instances)
    did = h.deploy({"/web": h.s.apps["/web"]}, restart=True)
    min_healthy = -(-instances * min_health // 1)
    max_capacity = int(instances * (1 + max_over))
    for _ in range(50):
        if did not in h.s.runs:
            break
        h.offer(cpus=10)
        live = [i for i in h.s.instances.values() if not i.terminal]
        assert len(live) <= max(max_capacity, min_healthy + 1)
        running = [i for i in live if i.state == "TASK_RUNNING" and not i.killing]
        assert len(running) >= min(min_healthy, instances)
        h.run_all()
        h.finish_kills()
    assert did not in h.s.runs
    assert not old & set(h.s.instances)
    assert len(h.s.instances) == instances


def test_delete_stops_every_instance_and_unknown_tasks_are_killed() -> None:
    h = Harness()
    h.deploy({"/web": _app(2)})
    h.offer()
    h.run_all()
    did = h.deploy({"/web": None})
    assert len(h.kills()) == 2 and did in h.s.runs
    h.finish_kills()
    assert did not in h.s.runs and not h.s.instances
    out = h.status("stray.1", "TASK_RUNNING")
    assert [i.task_id for i in out if isinstance(i, Kill)] == ["stray.1"]


def test_force_cancel_publishes_failure_and_keeps_instances() -> None:
    h = Harness()
    did = h.deploy({"/web": _app(2)})
    h.offer()
    out = h.s.cancel(did, h.now)
    assert next(i.event["eventType"] for i in out if isinstance(i, Publish)) == "deployment_failed"
    assert did not in h.s.runs and len(h.s.instances) == 2
    assert h.s.locking(["/web"]) == []


def test_unreachable_instances_are_replaced() -> None:
    h = Harness()
    h.deploy({"/web": _app(1, unreachableStrategy={"inactiveAfterSeconds": 0})})
    tid = h.offer()[0]["task_id"]["value"]
    h.status(tid, "TASK_RUNNING")
    h.status(tid, "TASK_UNREACHABLE")
    assert h.s.wanted("/web") == 1
    assert len(h.offer(host="node-2")) == 1


def test_health_events_and_counts() -> None:
    h = Harness()
    hc = [{"protocol": "COMMAND", "command": {"value": "true"}}]
    did = h.deploy({"/web": _app(1, healthChecks=hc)})
    tid = h.offer()[0]["task_id"]["value"]
    h.status(tid, "TASK_RUNNING")
    assert did in h.s.runs  # running, not yet healthy
    h.status(tid, "TASK_RUNNING", healthy=True)
    assert did not in h.s.runs
    [event] = h.events("health_status_changed_event")
    assert event["alive"] is True and event["appId"] == "/web"


def test_readiness_holds_the_deployment_until_a_probe_passes() -> None:
    h = Harness()
    app = _app(
        1,
        portDefinitions=[{"port": 0, "name": "http"}],
        readinessChecks=[
            {"portName": "http", "path": "/ready", "intervalSeconds": 5, "timeoutSeconds": 2}
        ],
    )
    did = h.deploy({"/web": app})
    tid = h.offer()[0]["task_id"]["value"]
    assert h.s.readiness_due(h.now) == []  # not running yet
    h.status(
        tid,
        "TASK_RUNNING",
        container_status={"network_infos": [{"ip_addresses": [{"ip_address": "10.0.0.7"}]}]},
    )
    [(probed, check, url)] = h.s.readiness_due(h.now)
    assert probed == tid and url == "http://10.0.0.7:31000/ready" and check["portName"] == "http"
    assert h.s.readiness_due(h.now + 1) == []  # the interval
    h.out += h.s.readiness(tid, False, {"status": 503}, h.now)
    assert did in h.s.runs
    assert [r["ready"] for r in h.s.readiness_results("/web")] == [False]
    assert len(h.s.readiness_due(h.now + 5)) == 1
    h.out += h.s.readiness(tid, True, {"status": 200}, h.now + 5)
    assert did not in h.s.runs


def test_an_instance_killed_for_its_health_is_replaced() -> None:
    h = Harness()
    hc = [{"protocol": "TCP", "portIndex": 0}]
    h.deploy({"/web": _app(1, healthChecks=hc)})
    tid = h.offer()[0]["task_id"]["value"]
    h.status(tid, "TASK_RUNNING", healthy=True)
    h.status(tid, "TASK_RUNNING", healthy=False)
    h.status(tid, "TASK_FAILED", message="liveness probe failed")
    [event] = h.events("unhealthy_instance_kill_event")
    assert event["taskId"] == tid
    assert h.s.wanted("/web") == 1


def _adopted(h: Harness) -> list[Instance]:
    """The instances a restarted service finds: its pods, not being deleted."""
    return [
        Instance(
            task_id=i.task_id,
            app_id=i.app_id,
            version=i.version,
            config_version=i.config_version,
            agent_id=i.agent_id,
            host=i.host,
            ports=list(i.ports),
            state="TASK_RUNNING",
            staged_at=i.staged_at,
        )
        for i in h.s.instances.values()
        if not i.terminal and not i.killing
    ]


def test_a_restored_restart_carries_on_from_its_step() -> None:
    h = Harness()
    strategy = {"minimumHealthCapacity": 0.5, "maximumOverCapacity": 0.0}
    h.deploy({"/web": _app(4, upgradeStrategy=strategy)})
    h.offer(cpus=10)
    h.run_all()
    old = set(h.s.instances)
    did = h.deploy({"/web": h.s.apps["/web"]}, restart=True)
    h.finish_kills()
    h.offer(cpus=10)
    h.run_all()
    run = h.s.runs[did]
    assert run.step == 1 and old & set(h.s.instances) and set(h.s.instances) - old
    stored = Run.from_stored(orjson.loads(orjson.dumps(run.to_stored())))

    # a new scheduler: the stored apps, the running pods, the stored deployment
    r = Harness()
    fresh = itertools.count()
    r.s.new_id = lambda: f"r{next(fresh)}"
    r.now = h.now
    r.s.load(h.s.apps)
    for inst in _adopted(h):
        r.s.adopt(inst)
    r.out += r.s.restore(stored, r.now)
    assert r.s.locking(["/web"]) == [did]
    assert r.events("deployment_info")[0]["plan"]["id"] == did
    for _ in range(50):
        if did not in r.s.runs:
            break
        r.offer(cpus=10)
        running = [i for i in r.s.instances.values() if i.state == "TASK_RUNNING"]
        assert len([i for i in running if not i.killing]) >= 2  # ceil(4 * 0.5)
        r.run_all()
        r.finish_kills()
    assert [e["id"] for e in r.events("deployment_success")] == [did]
    assert not old & set(r.s.instances) and len(r.s.instances) == 4
    config = r.s.apps["/web"]["versionInfo"]["lastConfigChangeAt"]
    assert {i.config_version for i in r.s.instances.values()} == {config}


def test_a_restored_deployment_waits_for_its_start_step_and_readiness() -> None:
    h = Harness()
    checks = [{"portName": "http", "path": "/ready", "intervalSeconds": 5, "timeoutSeconds": 2}]
    web = _app(1, portDefinitions=[{"port": 0, "name": "http"}], readinessChecks=checks)
    did = h.deploy({"/web": web, "/db": _app(1, id="/db")})
    stored = Run.from_stored(h.s.runs[did].to_stored())
    stored.step = 0  # stored before its first step began
    r = Harness()
    r.s.load(h.s.apps)
    r.s.targets.clear()
    r.out += r.s.restore(stored, r.now)
    assert r.s.runs[did].step >= 1 and set(r.s.targets) <= {"/web", "/db"}
    r.offer(cpus=10)
    r.run_all()
    assert did in r.s.runs  # /web is not ready until its readiness check passes
    [(tid, _, _)] = r.s.readiness_due(r.now)
    r.out += r.s.readiness(tid, True, None, r.now)
    assert [e["id"] for e in r.events("deployment_success")] == [did]
