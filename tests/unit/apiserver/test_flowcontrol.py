"""API Priority and Fairness: the classifier over the default FlowSchemas, seat sizing,
shuffle sharding and the fair queues, driven directly (no server, no sleeps)."""

from __future__ import annotations

import pytest

from corral.apiserver.flowcontrol import (
    FlowControl,
    LevelQueues,
    classify,
    deal_hand,
    flow_hash,
    is_long_running,
    level_seats,
    work_width,
)
from corral.apiserver.flowschemas import PRIORITY_LEVELS, PriorityLevel
from corral.apiserver.identity import UserInfo
from corral.apiserver.request_info import resolve

AUTH = "system:authenticated"
ADMIN = UserInfo("admin", ("system:masters", AUTH))
NODE = UserInfo("system:node:n1", ("system:nodes", AUTH))
KCM = UserInfo("system:kube-controller-manager", (AUTH,))
SCHED = UserInfo("system:kube-scheduler", (AUTH,))
SA_KS = UserInfo("system:serviceaccount:kube-system:foo", ("system:serviceaccounts", AUTH))
SA = UserInfo("system:serviceaccount:team:bot", ("system:serviceaccounts", AUTH))
ALICE = UserInfo("alice", (AUTH,))
ANON = UserInfo("system:anonymous", ("system:unauthenticated",))

LEASE = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n1"
SYS_LEASE = "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/kube-scheduler"

CASES = [
    ("admin", ADMIN, "GET", "/api/v1/pods", "exempt", "exempt", ""),
    ("probe", ANON, "GET", "/healthz", "probes", "exempt", ""),
    ("node-lease", NODE, "PUT", LEASE, "system-node-high", "node-high", "system:node:n1"),
    ("node-status", NODE, "PATCH", "/api/v1/nodes/n1/status", "system-node-high", "node-high",
     "system:node:n1"),
    ("node-pods", NODE, "GET", "/api/v1/pods", "system-nodes", "system", "system:node:n1"),
    ("sched-lease", SCHED, "PUT", SYS_LEASE, "system-leader-election", "leader-election",
     "system:kube-scheduler"),
    ("kcm-lease", KCM, "GET", SYS_LEASE, "system-leader-election", "leader-election",
     "system:kube-controller-manager"),
    ("kcm-endpoints", KCM, "PUT", "/api/v1/namespaces/a/endpoints/x", "endpoint-controller",
     "workload-high", "system:kube-controller-manager"),
    ("kcm-pods", KCM, "POST", "/api/v1/namespaces/a/pods", "kube-controller-manager",
     "workload-high", "a"),
    ("sched-binding", SCHED, "POST", "/api/v1/namespaces/b/pods/p/binding", "kube-scheduler",
     "workload-high", "b"),
    ("ks-sa-cm", SA_KS, "PUT", "/api/v1/namespaces/x/configmaps/c", "workload-leader-election",
     "leader-election", SA_KS.username),
    ("ks-sa", SA_KS, "GET", "/api/v1/namespaces/x/pods", "kube-system-service-accounts",
     "workload-high", "x"),
    ("sa", SA, "GET", "/api/v1/namespaces/team/pods", "service-accounts", "workload-low",
     SA.username),
    ("user-list-all", ALICE, "GET", "/api/v1/pods", "global-default", "global-default", "alice"),
    ("anon-version", ANON, "GET", "/version", "global-default", "global-default",
     "system:anonymous"),
    ("no-groups", UserInfo("x"), "GET", "/api/v1/pods", "catch-all", "catch-all", "x"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("user", "method", "path", "schema", "level", "flow"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_classify(
    user: UserInfo, method: str, path: str, schema: str, level: str, flow: str
) -> None:
    fs, distinguisher = classify(user, resolve(method, path, {}))
    assert (fs.name, fs.level, distinguisher) == (schema, level, flow)


@pytest.mark.parametrize(
    ("method", "path", "query", "long"),
    [
        ("GET", "/api/v1/pods", {"watch": "true"}, True),
        ("GET", "/api/v1/namespaces/a/pods/p/log", {}, True),
        ("POST", "/api/v1/namespaces/a/pods/p/exec", {}, True),
        ("GET", "/api/v1/namespaces/a/pods/p/portforward", {}, True),
        ("GET", "/api/v1/pods", {}, False),
        ("PUT", LEASE, {}, False),
    ],
    ids=["watch", "logs", "exec", "port-forward", "list", "update"],
)
def test_long_running(method: str, path: str, query: dict[str, str], long: bool) -> None:
    assert is_long_running(resolve(method, path, query)) is long


def test_seats_share_the_total_as_upstream() -> None:
    seats = level_seats(600, PRIORITY_LEVELS)  # upstream's 400 + 200
    assert seats == {
        "system": 74, "node-high": 98, "leader-election": 25, "workload-high": 98,
        "workload-low": 245, "global-default": 49, "catch-all": 13,
    }  # fmt: skip
    assert min(level_seats(2, PRIORITY_LEVELS).values()) == 1


def test_hand_is_distinct_and_stable() -> None:
    h = flow_hash("global-default", "alice")
    hand = deal_hand(h, 128, 6)
    assert len(set(hand)) == 6 and all(0 <= i < 128 for i in hand)
    assert deal_hand(h, 128, 6) == hand
    assert deal_hand(flow_hash("global-default", "bob"), 128, 6) != hand


LEVEL = PriorityLevel("test", 1, queues=8, hand_size=2, queue_length_limit=3)


def test_seat_then_queue_then_reject() -> None:
    lq = LevelQueues(LEVEL, seats=1)
    first = lq.arrive(1)
    assert first is not None and first.dispatched
    waiting = [lq.arrive(1) for _ in range(6)]  # hand of 2 queues x 3
    assert all(t is not None and not t.dispatched for t in waiting)
    assert lq.arrive(1) is None  # both queues of the hand full
    started = lq.finish(first)
    assert len(started) == 1 and started[0] in waiting and started[0].dispatched
    assert lq.executing == 1 and lq.waiting == 5


def test_cancel_withdraws_a_waiting_ticket() -> None:
    lq = LevelQueues(LEVEL, seats=1)
    running = lq.arrive(1)
    t = lq.arrive(1)
    assert running is not None and t is not None
    assert lq.cancel(t) == [] and lq.waiting == 0
    assert lq.finish(running) == [] and lq.executing == 0


def test_fair_between_a_flood_and_a_trickle() -> None:
    """A flow with 20 queued requests and one with 2: the light flow's requests are
    served within the first few seats that free, not after the flood."""
    lq = LevelQueues(PriorityLevel("t", 1, 64, 6, 50), seats=1)
    heavy, light = flow_hash("fs", "heavy"), flow_hash("fs", "light")
    running = lq.arrive(heavy)
    assert running is not None
    flood = [lq.arrive(heavy) for _ in range(20)]
    trickle = [lq.arrive(light) for _ in range(2)]
    order = []
    current = running
    for _ in range(22):
        (current,) = lq.finish(current)
        order.append(current)
    positions = sorted(order.index(t) for t in trickle)
    assert positions[-1] < 8, positions
    assert all(t is not None and t.dispatched for t in flood)


def test_reject_level_has_no_queue() -> None:
    lq = LevelQueues(PriorityLevel("catch-all", 5), seats=1)
    assert lq.arrive(1) is not None
    assert lq.arrive(2) is None


@pytest.mark.parametrize(
    ("method", "path", "query", "objects", "width"),
    [
        ("GET", "/api/v1/pods", {"limit": "500"}, 300, 3),  # scans all 300, as upstream
        ("GET", "/api/v1/pods", {}, 100, 1),
        ("GET", "/api/v1/pods", {}, 101, 2),
        ("GET", "/api/v1/pods", {}, 50_000, 10),  # maximumSeats
        ("GET", "/api/v1/pods", {}, 0, 1),
        ("GET", "/api/v1/pods", {"fieldSelector": "metadata.name=p"}, 5000, 1),  # one name
        ("GET", "/api/v1/namespaces/a/pods/p", {}, 5000, 1),  # get
        ("GET", "/api/v1/pods", {"watch": "true"}, 5000, 1),
        ("POST", "/api/v1/namespaces/a/pods", {}, 5000, 1),
    ],
)
def test_list_width_by_objects_scanned(
    method: str, path: str, query: dict[str, str], objects: int, width: int
) -> None:
    assert work_width(resolve(method, path, query), objects) == width


def test_a_wide_list_waits_for_its_seats_and_nobody_overtakes_it() -> None:
    lq = LevelQueues(PriorityLevel("t", 1, 1, 1, 10), seats=4)
    narrow = lq.arrive(1)
    wide = lq.arrive(1, width=4)
    behind = lq.arrive(1)
    assert narrow is not None and narrow.dispatched and lq.executing == 1
    assert wide is not None and behind is not None
    assert not wide.dispatched and not behind.dispatched  # 3 seats free: not enough
    assert lq.finish(narrow) == [wide] and lq.executing == 4
    assert lq.finish(wide) == [behind] and lq.executing == 1
    assert lq.finish(behind) == [] and lq.executing == 0
    # wider than the level: capped at all its seats
    t = lq.arrive(1, width=99)
    assert t is not None and t.dispatched and t.width == 4


def test_cancelling_a_wide_ticket_lets_the_narrow_ones_behind_it_in() -> None:
    lq = LevelQueues(PriorityLevel("t", 1, 1, 1, 10), seats=2)
    running = lq.arrive(1)
    wide = lq.arrive(1, width=2)
    narrow = lq.arrive(1)
    assert running is not None and wide is not None and narrow is not None
    assert lq.cancel(wide) == [narrow] and lq.executing == 2


def test_classification_is_remembered_and_masters_are_exempt() -> None:
    fc = FlowControl()
    info = resolve("GET", "/api/v1/pods", {})
    fs, level_uid, hashed = fc.classified(ALICE, info)
    assert (fs.name, hashed) == ("global-default", flow_hash("global-default", "alice"))
    assert level_uid == next(pl.uid for pl in PRIORITY_LEVELS if pl.name == "global-default")
    assert fc.classified(ALICE, info) == (fs, level_uid, hashed)
    assert fc.classified(NODE, resolve("PUT", LEASE, {}))[0].name == "system-node-high"
    assert fc.exempt.name == "exempt" and classify(ADMIN, info)[0] is fc.exempt
