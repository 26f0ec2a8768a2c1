"""The scheduling queue: order, back-off, parking and moves, on a fake clock."""

from __future__ import annotations

from typing import Any

import pytest

from corral.scheduler.queue import ACTIVE, BACKOFF, IN_FLIGHT, UNSCHEDULABLE, SchedulingQueue


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def now(self) -> float:
        return self.t

    def monotonic(self) -> float:
        return self.t


def pod(name: str, **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "ns"}, "spec": dict(spec)}


def drain(q: SchedulingQueue) -> list[str]:
    out = []
    while (p := q.pop()) is not None:
        out.append(p.key)
    return out


@pytest.mark.parametrize(
    ("adds", "order"),
    [
        ([("a", 0), ("b", 0), ("c", 0)], ["a", "b", "c"]),
        ([("a", 0), ("b", 10), ("c", 5)], ["b", "c", "a"]),
        ([("a", 5), ("b", 10), ("c", 5), ("d", -1)], ["b", "a", "c", "d"]),
        ([("a", 0), ("a", 0), ("b", 0)], ["a", "b"]),
    ],
    ids=["fifo", "priority", "priority-then-age", "dedup"],
)
def test_pop_order(adds: list[tuple[str, int]], order: list[str]) -> None:
    clock = Clock()
    q = SchedulingQueue(clock)
    for key, prio in adds:
        q.add(key, pod(key), prio)
        clock.t += 1
    assert drain(q) == order


def test_priority_update_reorders_active() -> None:
    q = SchedulingQueue(Clock())
    q.add("a", pod("a"), 0)
    q.add("b", pod("b"), 0)
    q.add("b", pod("b"), 100)
    assert drain(q) == ["b", "a"]


@pytest.mark.parametrize(
    ("attempts", "wait"),
    [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (5, 10.0), (9, 10.0)],
    ids=["1st", "2nd", "3rd", "4th", "capped", "still-capped"],
)
def test_backoff_doubles_to_ten_seconds(attempts: int, wait: float) -> None:
    clock = Clock()
    q = SchedulingQueue(clock)
    q.add("a", pod("a"))
    for _ in range(attempts):
        clock.t += 100
        p = q.pop()
        assert p is not None and p.key == "a"
        q.backoff("a")
    assert q.where("a") == BACKOFF
    clock.t += wait - 0.01
    assert q.pop() is None
    assert q.next_due() == pytest.approx(clock.t + 0.01)
    clock.t += 0.01
    assert q.pop() is not None


def test_unschedulable_waits_for_an_event() -> None:
    clock = Clock()
    q = SchedulingQueue(clock)
    q.add("a", pod("a"))
    assert q.pop() is not None
    q.unschedulable("a")
    assert q.where("a") == UNSCHEDULABLE
    clock.t += 60
    assert q.pop() is None
    q.move_all()  # its 1 s back-off is long over
    assert q.where("a") == ACTIVE
    assert q.pop() is not None


def test_move_matching_retries_only_the_pods_it_names() -> None:
    """A claim or volume event retries only parked pods with claims (move_matching)."""
    clock = Clock()
    q = SchedulingQueue(clock)
    q.add("a", pod("a", volumes=[{"name": "d", "persistentVolumeClaim": {"claimName": "c"}}]))
    q.add("b", pod("b"))
    assert q.pop() is not None and q.pop() is not None
    q.unschedulable("a")
    q.unschedulable("b")
    clock.t += 60
    q.move_matching(lambda p: bool(p["spec"].get("volumes")))
    assert (q.where("a"), q.where("b")) == (ACTIVE, UNSCHEDULABLE)


def test_move_respects_backoff() -> None:
    clock = Clock()
    q = SchedulingQueue(clock)
    q.add("a", pod("a"))
    q.pop()
    q.unschedulable("a")
    q.move_all()  # right away: still within the first 1 s back-off
    assert q.where("a") == BACKOFF
    assert q.pop() is None
    clock.t += 1
    assert q.pop() is not None


def test_unschedulable_comes_back_after_five_minutes() -> None:
    clock = Clock()
    q = SchedulingQueue(clock)
    q.add("a", pod("a"))
    q.pop()
    q.unschedulable("a")
    clock.t += 299
    assert q.pop() is None
    assert q.next_due() == pytest.approx(clock.t + 1)
    clock.t += 1
    assert q.pop() is not None


def test_event_during_attempt_sends_to_backoff_not_parking() -> None:
    clock = Clock()
    q = SchedulingQueue(clock)
    q.add("a", pod("a"))
    assert q.pop() is not None
    assert q.where("a") == IN_FLIGHT
    q.move_all()  # a node was added while "a" was being decided
    q.unschedulable("a")
    assert q.where("a") == BACKOFF


@pytest.mark.parametrize(
    ("new", "where"),
    [
        (pod("a", nodeSelector={"x": "y"}), ACTIVE),
        (pod("a"), UNSCHEDULABLE),
    ],
    ids=["spec-changed-retries", "same-spec-stays"],
)
def test_update_of_parked_pod(new: dict[str, Any], where: str) -> None:
    clock = Clock()
    q = SchedulingQueue(clock)
    q.add("a", pod("a"))
    q.pop()
    q.unschedulable("a")
    clock.t += 5
    q.update("a", new)
    assert q.where("a") == where


@pytest.mark.parametrize("state", ["active", "backoff", "unschedulable", "in-flight"])
def test_delete_anywhere(state: str) -> None:
    clock = Clock()
    q = SchedulingQueue(clock)
    q.add("a", pod("a"))
    if state != "active":
        q.pop()
    if state == "backoff":
        q.backoff("a")
    elif state == "unschedulable":
        q.unschedulable("a")
    q.delete("a")
    assert "a" not in q and len(q) == 0
    clock.t += 1000
    q.move_all()
    assert q.pop() is None


def test_update_in_flight_keeps_latest_object() -> None:
    q = SchedulingQueue(Clock())
    q.add("a", pod("a"))
    p = q.pop()
    assert p is not None
    q.update("a", pod("a", nodeName=""))
    assert q.where("a") == IN_FLIGHT and p.pod["spec"] == {"nodeName": ""}
    q.done("a")
    assert "a" not in q


def test_counts_and_has_active() -> None:
    clock = Clock()
    q = SchedulingQueue(clock)
    for k in "abc":
        q.add(k, pod(k))
    q.pop()
    q.unschedulable("a")
    q.pop()
    q.backoff("b")
    assert q.counts() == {ACTIVE: 1, BACKOFF: 1, UNSCHEDULABLE: 1, IN_FLIGHT: 0}
    assert q.has_active()
    q.pop()
    assert not q.has_active()


def test_nominated_pods_hold_their_room_against_lower_priority() -> None:
    """A pod a preemption nominated to a node keeps that room from lower-priority pods
    (Kubernetes' filters count nominated pods of priority >= the incoming one)."""
    from corral.client.rest import Client, KubeConfig
    from corral.scheduler.decide import decide
    from corral.scheduler.scheduler import Scheduler
    from corral.scheduler.snapshot import pod_info

    def pod(name: str, cpu: str, priority: int, nominated: str = "") -> dict:
        p = {
            "metadata": {"name": name, "namespace": "d", "uid": name},
            "spec": {
                "priority": priority,
                "containers": [{"name": "c", "resources": {"requests": {"cpu": cpu}}}],
            },
            "status": {},
        }
        if nominated:
            p["status"]["nominatedNodeName"] = nominated
        return p

    s = Scheduler(Client(KubeConfig("http://127.0.0.1:1", "", None)))
    s.table.upsert_node(
        {
            "metadata": {"name": "n1"},
            "status": {"allocatable": {"cpu": "1", "memory": "1Gi", "pods": "10"}},
        }
    )
    s._on_pod("ADDED", pod("vip", "1", 1000, nominated="n1"), None)
    low = pod_info(pod("low", "500m", 10))
    held = s._hold_nominated(low)
    assert decide(low, s.table, s.profile).node is None  # the room is the vip's
    for k in held:
        s.table.remove_pod(k)
    assert decide(low, s.table, s.profile).node == "n1"  # without the hold it would fit
    high = pod_info(pod("other", "500m", 5000))
    assert s._hold_nominated(high) == []  # a higher-priority pod is not held back
