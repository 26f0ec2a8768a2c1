"""The ``Scheduled`` Event's shape (kube-scheduler's) and the bounded buffer in front of
its writer: adding never waits, and past the bound the oldest events are dropped."""

from __future__ import annotations

from corral.client.rest import Client, KubeConfig
from corral.scheduler.events import ScheduledEvents, micro_time, scheduled_event
from corral.testing.clock import FakeClock

POD = {"metadata": {"name": "web-1", "namespace": "prod", "uid": "u1", "resourceVersion": "7"}}


def test_event_is_what_kube_scheduler_writes() -> None:
    ns, ev = scheduled_event(POD, "n1", "default-scheduler", "default-scheduler-h", 1700000000.25)
    assert ns == "prod"
    assert ev == {
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": {"name": f"web-1.{int(1700000000.25 * 1e9):x}", "namespace": "prod"},
        "eventTime": "2023-11-14T22:13:20.250000Z",
        "reportingController": "default-scheduler",
        "reportingInstance": "default-scheduler-h",
        "action": "Binding",
        "reason": "Scheduled",
        "regarding": {"apiVersion": "v1", "kind": "Pod", "namespace": "prod", "name": "web-1",
                      "uid": "u1", "resourceVersion": "7"},
        "note": "Successfully assigned prod/web-1 to n1",
        "type": "Normal",
    }  # fmt: skip
    assert micro_time(0.000001) == "1970-01-01T00:00:00.000001Z"


def test_buffer_is_bounded_and_drops_the_oldest() -> None:
    client = Client(KubeConfig("https://127.0.0.1:1", "", None))  # never contacted here
    events = ScheduledEvents(client, "s", "s-h", FakeClock(), max_pending=3)
    for i in range(5):
        events.add({"metadata": {"name": f"p{i}", "namespace": "d"}}, "n")
    assert events.dropped == 2
    assert [ev["regarding"]["name"] for _, ev in events._pending] == ["p2", "p3", "p4"]


def test_one_write_at_a_time_while_bindings_are_in_flight() -> None:
    client = Client(KubeConfig("https://127.0.0.1:1", "", None))
    binding = [True]
    events = ScheduledEvents(client, "s", "s-h", FakeClock(), busy=lambda: binding[0])
    assert events.limit() == 1
    binding[0] = False
    assert events.limit() == 4
