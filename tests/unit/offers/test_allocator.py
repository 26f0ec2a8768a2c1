"""The offer allocator: events in, instructions out, over a real NodeTable and a fake clock."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

import numpy as np
import pytest

from corral.api import mesos
from corral.offers.allocator import (
    Allocator,
    AllocatorConfig,
    Instruction,
    InvalidOffers,
    Offer,
    RescindOffer,
    SendOffers,
)
from corral.offers.resources import MB, UNLIMITED, to_vector
from corral.scheduler.snapshot import NodeTable, pod_info
from corral.testing.clock import FakeClock

Gi = 1024**3
Mi = 1024**2


# -- helpers -------------------------------------------------------------------------------


def node(
    name: str,
    cpu: str = "4",
    memory: str = "8Gi",
    disk: str = "0",
    labels: dict[str, str] | None = None,
    unschedulable: bool = False,
    taints: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {"unschedulable": unschedulable, "taints": taints or []},
        "status": {
            "allocatable": {"cpu": cpu, "memory": memory, "ephemeral-storage": disk, "pods": "110"}
        },
    }


def pod(
    name: str,
    cpu_m: int,
    mem: int,
    namespace: str = "default",
    labels: dict[str, str] | None = None,
    host_ports: Iterable[int] = (),
) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": "c",
        "resources": {"requests": {"cpu": f"{cpu_m}m", "memory": str(mem)}},
    }
    if host_ports:
        container["ports"] = [{"containerPort": p, "hostPort": p} for p in host_ports]
    return {
        "metadata": {"name": name, "namespace": namespace, "labels": labels or {}},
        "spec": {"containers": [container]},
    }


def task(name: str, fid: str, role: str, cpu_m: int, mem: int, **kw: Any) -> dict[str, Any]:
    labels = {mesos.FRAMEWORK_ID: mesos.label_safe(fid), mesos.ROLE: mesos.label_safe(role)}
    return pod(name, cpu_m, mem, namespace=mesos.NAMESPACE, labels=labels, **kw)


def place(table: NodeTable, p: dict[str, Any], node_name: str) -> str:
    info = pod_info(p)
    table.add_pod(info, node_name)
    return info.key


def setup(
    *nodes: dict[str, Any],
    frameworks: dict[str, list[str]] | None = None,
    **config: Any,
) -> tuple[Allocator, NodeTable, FakeClock]:
    table = NodeTable()
    for n in nodes:
        table.upsert_node(n)
    clock = FakeClock()
    alloc = Allocator(table, clock, AllocatorConfig(**config))
    for fid, roles in (frameworks or {}).items():
        alloc.add_framework(fid, roles)
    return alloc, table, clock


def sent(instrs: list[Instruction]) -> dict[str, list[Offer]]:
    out: dict[str, list[Offer]] = {}
    for i in instrs:
        if isinstance(i, SendOffers):
            out.setdefault(i.framework_id, []).extend(i.offers)
    return out


def rescinded(instrs: list[Instruction]) -> set[tuple[str, str]]:
    return {(i.framework_id, i.offer_id) for i in instrs if isinstance(i, RescindOffer)}


def free(table: NodeTable) -> np.ndarray:
    return table.allocatable - table.requested


def snapshot(alloc: Allocator, table: NodeTable) -> tuple[Any, ...]:
    return (
        sorted(o.id for o in alloc.outstanding()),
        table.requested.copy().tolist(),
        {
            r: (v["offered"].tolist(), v["allocated"].tolist())
            for r, v in alloc.role_report().items()
        },
    )


# -- offers and the table -------------------------------------------------------------------


def test_offer_is_the_whole_agent_held_in_the_table() -> None:
    alloc, table, _ = setup(
        node("a1", cpu="4", memory="8Gi", disk="10Gi", labels={"rack": "r1"}),
        frameworks={"F": ["web"]},
    )
    place(table, pod("k8s", 1000, 1 * Gi), "a1")
    out = alloc.allocate()
    [offer] = sent(out)["F"]
    assert offer.agent == "a1"
    assert offer.role == "web"
    assert offer.id == "O1"
    assert offer.resources.tolist() == [3000, 7 * Gi, 10 * Gi, 0]
    assert offer.ports == ((31000, 32000),)
    assert offer.attributes == ({"name": "rack", "type": "TEXT", "text": {"value": "r1"}},)
    # held in the table: the Kubernetes side sees nothing free, pods count unchanged
    assert free(table)[0].tolist() == [0, 0, 0, 109]
    [hold] = [p for p in table.pods_on(0) if p.key == "offer/O1"]
    assert hold.priority == 2**31 - 1  # never a preemption victim
    assert alloc.offer("O1") == offer
    assert alloc.outstanding("F") == [offer]
    assert alloc.allocate() == []  # nothing left to offer


def test_one_offer_per_agent_and_ids_count_up() -> None:
    alloc, _, _ = setup(node("a1"), node("a2"), node("a3"), frameworks={"F": ["r"]}, id_prefix="X-")
    offers = sent(alloc.allocate())["F"]
    assert sorted(o.agent for o in offers) == ["a1", "a2", "a3"]
    assert sorted(o.id for o in offers) == ["X-1", "X-2", "X-3"]


@pytest.mark.parametrize(
    ("cpu", "memory", "offered"),
    [
        ("5m", "16Mi", False),
        ("10m", "0", True),
        ("0", "32Mi", True),
        ("9m", "31Mi", False),
    ],
    ids=["below-both", "cpus-only", "mem-only", "just-below"],
)
def test_min_allocatable_is_cpus_or_mem(cpu: str, memory: str, offered: bool) -> None:
    alloc, _, _ = setup(node("a1", cpu=cpu, memory=memory), frameworks={"F": ["r"]})
    assert bool(sent(alloc.allocate())) is offered


@pytest.mark.parametrize(
    "bad",
    [
        {"unschedulable": True},
        {"taints": [{"key": "k", "value": "v", "effect": "NoSchedule"}]},
        {"taints": [{"key": "k", "value": "v", "effect": "NoExecute"}]},
    ],
    ids=["cordoned", "no-schedule", "no-execute"],
)
def test_non_agents_get_no_offers_and_lose_theirs(bad: dict[str, Any]) -> None:
    alloc, table, _ = setup(node("a1"), node("a2"), frameworks={"F": ["r"]})
    first = sent(alloc.allocate())["F"]
    assert len(first) == 2
    table.upsert_node(node("a1", **bad))
    out = alloc.allocate()
    gone = [o.id for o in first if o.agent == "a1"]
    assert rescinded(out) == {("F", gone[0])}
    assert [o.agent for o in alloc.outstanding()] == ["a2"]
    assert free(table)[table.row("a1")][:3].tolist() == [4000, 8 * Gi, 0]
    alloc.revive("F")
    assert sent(alloc.allocate()) == {}


def test_prefer_no_schedule_is_still_an_agent() -> None:
    alloc, _, _ = setup(
        node("a1", taints=[{"key": "k", "value": "v", "effect": "PreferNoSchedule"}]),
        frameworks={"F": ["r"]},
    )
    assert len(sent(alloc.allocate())["F"]) == 1


def test_node_removed_or_shrunk_rescinds_its_offers() -> None:
    alloc, table, _ = setup(node("a1"), node("a2"), frameworks={"F": ["r"]})
    offers = {o.agent: o.id for o in sent(alloc.allocate())["F"]}
    table.remove_node("a1")
    table.upsert_node(node("a2", cpu="2"))  # over-committed by its own offer now
    out = alloc.allocate()
    assert ("F", offers["a1"]) in rescinded(out)
    assert ("F", offers["a2"]) in rescinded(out)
    new = sent(out)["F"]  # a2 is offered again, at its new size
    assert [(o.agent, int(o.resources[0])) for o in new] == [("a2", 2000)]
    assert (free(table) >= 0).all()


def test_table_never_over_committed() -> None:
    alloc, table, _ = setup(
        *[node(f"a{i}", cpu=str(i + 1), memory=f"{i + 1}Gi") for i in range(6)],
        frameworks={"F": ["r"], "G": ["s"]},
    )
    for i in range(6):
        place(table, pod(f"p{i}", 500 * i, i * Gi // 2), f"a{i}")
    before = free(table)[:, :3].sum(0)
    alloc.allocate()
    assert (free(table) >= 0).all()
    assert (free(table)[:, :3] == 0).all()  # every agent offered whole...
    offered = sum(o.resources for o in alloc.outstanding())
    assert offered[:3].tolist() == before.tolist()  # ...and no more than was free


# -- DRF -----------------------------------------------------------------------------------


def run_frameworks(
    alloc: Allocator,
    table: NodeTable,
    demand: dict[str, np.ndarray],
    cycles: int = 50,
) -> Counter[str]:
    """Each framework takes every offer, launches one task if it fits, refuses the rest
    with refuse_seconds 0; until nobody launches for a few cycles."""
    launched: Counter[str] = Counter()
    idle = 0
    for _ in range(cycles):
        progress = False
        for fid, offers in sent(alloc.allocate()).items():
            for offer in offers:
                alloc.take(fid, [offer.id])
                need = demand[fid]
                rest = offer.resources
                if (need[:3] <= offer.resources[:3]).all():
                    n = launched[fid]
                    place(
                        table,
                        task(f"{fid}-{n}", fid, offer.role, int(need[0]), int(need[1])),
                        offer.agent,
                    )
                    launched[fid] += 1
                    rest = offer.resources - need
                    progress = True
                alloc.refuse(fid, offer.agent, offer.role, rest, offer.ports, 0)
        idle = 0 if progress else idle + 1
        if idle >= 4:
            break
    return launched


def test_drf_paper_example() -> None:
    """Ghodsi et al. 2011, §4: 9 CPUs, 18 GB; A wants <1 CPU, 4 GB>, B <3 CPUs, 1 GB>."""
    alloc, table, _ = setup(
        node("agent", cpu="9", memory="18Gi"), frameworks={"A": ["a"], "B": ["b"]}
    )
    launched = run_frameworks(
        alloc, table, {"A": to_vector(1, 4 * 1024), "B": to_vector(3, 1 * 1024)}
    )
    assert launched == {"A": 3, "B": 2}
    report = alloc.role_report()
    assert report["a"]["dominant_share"] == pytest.approx(12 / 18)
    assert report["b"]["dominant_share"] == pytest.approx(6 / 9)


def test_weights_split_dominant_shares() -> None:
    """Weights 1:2 over many one-task agents, arriving in batches: shares end 1:2."""
    alloc, table, _ = setup(frameworks={"A": ["light"], "B": ["heavy"]})
    alloc.set_weight("heavy", 2)
    assert alloc.weights() == {"heavy": 2.0}
    demand = {"A": to_vector(1, 1024), "B": to_vector(1, 1024)}
    for batch in range(3):
        for i in range(30):
            table.upsert_node(node(f"n{batch}-{i}", cpu="1", memory="1Gi"))
        run_frameworks(alloc, table, demand, cycles=3)
        report = alloc.role_report()
        light, heavy = report["light"], report["heavy"]
        assert heavy["dominant_share"] == pytest.approx(2 * light["dominant_share"], abs=1 / 90)
        assert heavy["weighted_share"] == pytest.approx(light["weighted_share"], abs=1 / 90)
    assert report["light"]["allocated"].tolist()[0] == 30_000
    assert report["heavy"]["allocated"].tolist()[0] == 60_000


def test_frameworks_within_a_role_share_by_drf() -> None:
    alloc, table, _ = setup(
        *[node(f"n{i}", cpu="1", memory="1Gi") for i in range(10)],
        frameworks={"A": ["r"], "B": ["r"]},
    )
    place(table, task("big", "A", "r", 1000, Gi), "n0")
    launched = run_frameworks(alloc, table, {"A": to_vector(1, 1024), "B": to_vector(1, 1024)})
    # A starts with 1 of 10: B catches up first and then they alternate
    assert launched == {"A": 4, "B": 5}


def test_kubernetes_usage_counts_in_its_role_and_orders_others() -> None:
    alloc, table, _ = setup(
        node("n1", cpu="4", memory="4Gi"),
        node("n2", cpu="4", memory="4Gi"),
        frameworks={"F": ["r"]},
        namespace_roles={"batch": "analytics"},
    )
    place(table, pod("web", 2000, Gi), "n1")
    place(table, pod("job", 1000, 0, namespace="batch"), "n2")
    place(table, task("t1", "F", "r", 500, 0), "n2")
    report = alloc.role_report()
    assert report["kubernetes"]["allocated"].tolist() == [2000, Gi, 0, 0]
    assert report["analytics"]["allocated"].tolist() == [1000, 0, 0, 0]
    assert report["r"]["allocated"].tolist() == [500, 0, 0, 0]
    assert report["kubernetes"]["dominant_share"] == pytest.approx(2000 / 8000)
    assert report["r"]["frameworks"] == ["F"]
    fw = alloc.framework_report("F")
    assert fw["allocated"].tolist() == [500, 0, 0, 0]
    # the kubernetes role is never offered, even to a framework that names it
    alloc.add_framework("K", ["kubernetes"])
    offers = sent(alloc.allocate())
    assert set(offers) == {"F"}
    assert any("belongs to Kubernetes" in r for r in alloc.why("K"))


def test_role_label_may_be_the_role_or_its_label_safe_form() -> None:
    alloc, table, _ = setup(node("n1"), frameworks={"F": ["*", "web"]})
    place(table, task("a", "F", "*", 100, 0), "n1")  # label_safe("*") is a hash
    p = task("b", "F", "web", 200, 0)
    p["metadata"]["labels"][mesos.ROLE] = "web"
    place(table, p, "n1")
    p = task("c", "F", "*", 300, 0)
    del p["metadata"]["labels"][mesos.ROLE]  # no role label: "*"
    place(table, p, "n1")
    report = alloc.role_report()
    assert report["*"]["allocated"][0] == 400
    assert report["web"]["allocated"][0] == 200
    table.remove_pod(f"{mesos.NAMESPACE}/a")
    assert alloc.role_report()["*"]["allocated"][0] == 300


# -- quota ---------------------------------------------------------------------------------


def cpus(n: float) -> np.ndarray:
    return to_vector(n, 0, 0)


def test_quota_guarantee_is_served_first() -> None:
    """'zeta' sorts last and already uses more, but is below its guarantee of 6 cpus."""
    alloc, table, _ = setup(
        *[node(f"n{i}", cpu="1", memory="1Gi") for i in range(10)],
        node("busy", cpu="2", memory="1Gi"),
        frameworks={"A": ["alpha"], "Z": ["zeta"]},
    )
    place(table, task("z0", "Z", "zeta", 2000, 0), "busy")
    alloc.set_quota("zeta", cpus(6), None)
    offers = sent(alloc.allocate())
    assert sum(int(o.resources[0]) for o in offers["Z"]) == 4000  # 2 used + 4 offered
    assert sum(int(o.resources[0]) for o in offers["A"]) == 6000


def test_quota_limit_is_never_exceeded() -> None:
    alloc, table, _ = setup(
        *[node(f"n{i}", cpu="1", memory="1Gi") for i in range(10)],
        frameworks={"Z": ["zeta"]},
    )
    limit = np.array([3000, UNLIMITED, UNLIMITED, 0], dtype=np.int64)
    alloc.set_quota("zeta", None, limit)
    launched = run_frameworks(alloc, table, {"Z": to_vector(1, 512)})
    assert launched == {"Z": 3}
    assert alloc.role_report()["zeta"]["allocated"][0] == 3000
    assert alloc.outstanding() == []
    assert any("quota limit for cpus" in r for r in alloc.why("Z"))


def test_quota_limit_cuts_an_offer() -> None:
    alloc, _, _ = setup(node("n1", cpu="4", memory="4Gi"), frameworks={"Z": ["zeta"], "A": ["a"]})
    alloc.set_quota("zeta", cpus(1), np.array([1500, 2 * Gi, UNLIMITED], dtype=np.int64))
    offers = sent(alloc.allocate())
    [z] = offers["Z"]
    # the guarantee's worth of cpus; mem (not guaranteed) comes along, up to the limit
    assert z.resources.tolist() == [1000, 2 * Gi, 0, 0]
    [a] = offers["A"]
    assert a.resources.tolist() == [3000, 2 * Gi, 0, 0]


def test_quota_headroom_is_kept_for_a_role_without_frameworks() -> None:
    alloc, _, _ = setup(
        *[node(f"n{i}", cpu="1", memory="1Gi") for i in range(10)],
        frameworks={"A": ["alpha"]},
    )
    alloc.set_quota("reserved", cpus(4), None)
    offers = sent(alloc.allocate())["A"]
    assert sum(int(o.resources[0]) for o in offers) == 6000
    assert any("unmet quota guarantees of reserved" in r for r in alloc.why("A"))


@pytest.mark.parametrize(
    ("guarantee", "limit", "message"),
    [
        (cpus(2), cpus(1), "limit must be >= guarantee"),
        (np.array([-1, 0, 0]), None, "finite and >= 0"),
        (np.array([1, 2]), None, "3 or 4 columns"),
    ],
    ids=["limit-below-guarantee", "negative", "shape"],
)
def test_set_quota_rejects(guarantee: Any, limit: Any, message: str) -> None:
    alloc, _, _ = setup()
    with pytest.raises(ValueError, match=message):
        alloc.set_quota("r", guarantee, limit)


def test_set_quota_none_clears_and_weights_validate() -> None:
    alloc, _, _ = setup()
    alloc.set_quota("r", cpus(1), cpus(2))
    assert alloc.quotas()["r"][0] is not None
    alloc.set_quota("r", None, None)
    assert alloc.quotas() == {}
    for bad in (0, -1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="positive number"):
            alloc.set_weight("r", bad)


# -- decline, filters, suppress, revive -----------------------------------------------------


def test_decline_filters_for_refuse_seconds_default_five() -> None:
    alloc, _, clock = setup(node("n1"), frameworks={"F": ["r"]})
    [o] = sent(alloc.allocate())["F"]
    alloc.decline("F", [o.id], None)
    assert alloc.outstanding() == []
    assert alloc.next_wakeup() == pytest.approx(clock.monotonic() + 5)
    clock.advance(4.9)
    assert sent(alloc.allocate()) == {}
    assert alloc.framework_report("F")["filters"] == 1
    clock.advance(0.1)
    assert len(sent(alloc.allocate())["F"]) == 1


@pytest.mark.parametrize(
    ("refuse", "quiet"),
    [(10.0, 10.0), (-1.0, 5.0), (1e12, 31536000.0)],
    ids=["explicit", "negative-means-default", "capped"],
)
def test_refuse_seconds_rules(refuse: float, quiet: float) -> None:
    alloc, _, clock = setup(node("n1"), frameworks={"F": ["r"]})
    [o] = sent(alloc.allocate())["F"]
    alloc.decline("F", [o.id], refuse)
    assert alloc.next_wakeup() == pytest.approx(clock.monotonic() + quiet)
    clock.advance(quiet - 0.5)
    assert sent(alloc.allocate()) == {}
    clock.advance(0.5)
    assert "F" in sent(alloc.allocate())


def test_filter_covers_subsets_only() -> None:
    """An agent that frees more than was refused is offered again at once."""
    alloc, table, _ = setup(node("n1"), frameworks={"F": ["r"]})
    key = place(table, pod("k8s", 1000, Gi), "n1")
    [o] = sent(alloc.allocate())["F"]
    alloc.decline("F", [o.id], 60)
    assert sent(alloc.allocate()) == {}
    place(table, pod("k8s2", 500, 0), "n1")  # less free: still filtered
    assert sent(alloc.allocate()) == {}
    table.remove_pod("default/k8s2")
    table.remove_pod(key)  # more free than refused: offered again
    [again] = sent(alloc.allocate())["F"]
    assert again.resources[0] == 4000


def test_decline_ignores_unknown_and_foreign_ids() -> None:
    alloc, _, _ = setup(node("n1"), node("n2"), frameworks={"F": ["r"], "G": ["s"]})
    offers = sent(alloc.allocate())
    g = offers["G"][0]
    alloc.decline("F", ["nope", g.id], 5)
    assert alloc.offer(g.id) == g


def test_refuse_zero_still_skips_the_next_cycle() -> None:
    alloc, _, _ = setup(node("n1"), frameworks={"F": ["r"]})
    [o] = sent(alloc.allocate())["F"]
    alloc.decline("F", [o.id], 0)
    assert sent(alloc.allocate()) == {}  # the very next cycle: filtered
    assert "F" in sent(alloc.allocate())  # and then offered again


def test_suppress_keeps_offers_and_revive_clears_filters() -> None:
    alloc, _, _ = setup(node("n1"), node("n2"), frameworks={"F": ["r", "s"]})
    offers = sent(alloc.allocate())["F"]
    assert alloc.suppress("F") == []
    assert alloc.outstanding("F") == offers  # Mesos does not rescind on SUPPRESS
    alloc.decline("F", [o.id for o in offers], 3600)
    assert alloc.allocate() == []
    report = alloc.framework_report("F")
    assert report["suppressed_roles"] == ["r", "s"]
    assert report["pending_demand"] is False
    alloc.revive("F", ["s"])
    assert alloc.framework_report("F")["suppressed_roles"] == ["r"]
    new = sent(alloc.allocate())["F"]
    assert sorted(o.role for o in new) == ["s", "s"]


def test_filters_are_per_role_and_revive_clears_only_the_named_roles() -> None:
    alloc, _, clock = setup(node("n1"), frameworks={"F": ["r", "s"]})
    [o] = sent(alloc.allocate())["F"]
    assert o.role == "r"
    alloc.decline("F", [o.id], 3600)
    [o2] = sent(alloc.allocate())["F"]  # r is filtered on n1, s is not
    assert o2.role == "s"
    alloc.decline("F", [o2.id], 3600)
    assert sent(alloc.allocate()) == {}
    assert alloc.next_wakeup() == pytest.approx(clock.monotonic() + 3600)
    alloc.revive("F", ["s"])
    [o3] = sent(alloc.allocate())["F"]
    assert o3.role == "s"
    alloc.revive("F")
    assert alloc.next_wakeup() is None  # the cleared filters' expiries are skipped


def test_agents_filtered_for_everyone_come_back_when_anything_lifts_a_filter() -> None:
    alloc, table, clock = setup(node("n1"), node("n2"), frameworks={"F": ["r"]})
    for _ in range(2):
        for o in sent(alloc.allocate()).get("F", []):
            alloc.decline("F", [o.id], 60)
    assert alloc.allocate() == []
    assert alloc.allocate() == []  # remembered as blocked: still nothing
    alloc.add_framework("G", ["s"])  # a newcomer is not filtered
    g = sent(alloc.allocate())["G"]
    alloc.decline("G", [o.id for o in g], 60)
    assert alloc.allocate() == []
    alloc.revive("F")
    assert len(sent(alloc.allocate())["F"]) == 2
    for o in alloc.outstanding("F"):
        alloc.decline("F", [o.id], 30)
    assert alloc.allocate() == []
    place(table, pod("p", 100, 0), "n1")  # less free than refused: still filtered
    assert alloc.allocate() == []
    clock.advance(30)  # F's filters expire (G's have 30 s left)
    assert {o.agent for o in sent(alloc.allocate())["F"]} == {"n1", "n2"}


@pytest.mark.parametrize(
    ("launch", "next_cycle"),
    [(True, {"F"}), (False, {"G"})],
    ids=["rest-of-an-offer-launched-on", "accept-that-launched-nothing"],
)
def test_zero_refusal_skips_a_cycle_only_when_everything_was_refused(
    launch: bool, next_cycle: set[str]
) -> None:
    """DRF decides who gets the unused rest; a whole refusal passes the agent on."""
    alloc, table, _ = setup(node("n1"), frameworks={"F": ["a"], "G": ["b"]})
    place(table, task("g0", "G", "b", 2000, 0), "n1")  # G is behind F in DRF order
    [o] = sent(alloc.allocate())["F"]
    alloc.take("F", [o.id])
    rest = o.resources
    if launch:
        place(table, task("f0", "F", "a", 100, 0), "n1")
        rest = o.resources - to_vector(0.1, 0)
    alloc.refuse("F", "n1", "a", rest, o.ports, 0)
    assert set(sent(alloc.allocate())) == next_cycle


# -- accept (take) --------------------------------------------------------------------------


def test_take_then_launch_and_refuse_the_rest() -> None:
    alloc, table, _ = setup(node("n1", cpu="4", memory="4Gi"), frameworks={"F": ["r"]})
    [o] = sent(alloc.allocate())["F"]
    [taken] = alloc.take("F", [o.id])
    assert taken == o
    assert alloc.outstanding() == []
    assert free(table)[0][:3].tolist() == [4000, 4 * Gi, 0]  # hold lifted
    place(table, task("t", "F", "r", 1000, Gi, host_ports=[31000]), "n1")
    alloc.refuse("F", "n1", "r", o.resources - to_vector(1, 1024), [(31001, 32000)], 5)
    assert sent(alloc.allocate()) == {}
    assert alloc.framework_report("F")["allocated"].tolist() == [1000, Gi, 0, 0]


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("unknown", "Offer nope is no longer valid"),
        ("other-framework", "belongs to another framework"),
        ("used-twice", "is no longer valid"),
        ("duplicate", "appears more than once"),
        ("rescinded", "is no longer valid"),
        ("two-agents", r"offers span agents n1 and n\d"),
        ("empty", "no offers given"),
    ],
    ids=[
        "unknown",
        "other-framework",
        "used-twice",
        "duplicate",
        "rescinded",
        "two-agents",
        "empty",
    ],
)
def test_take_errors_change_nothing(case: str, message: str) -> None:
    alloc, table, _ = setup(node("n1"), node("n2"), node("n3"), frameworks={"F": ["r"], "G": ["s"]})
    offers = sent(alloc.allocate())
    f = sorted(offers["F"], key=lambda o: o.agent)
    g = offers["G"][0]
    ids: list[str] = {
        "unknown": [f[0].id, "nope"],
        "other-framework": [g.id],
        "used-twice": [f[0].id],
        "duplicate": [f[0].id, f[0].id],
        "rescinded": [f[0].id],
        "two-agents": [f[0].id, f[1].id],
        "empty": [],
    }[case]
    if case == "used-twice":
        alloc.take("F", ids)
    if case == "rescinded":
        alloc.reclaim(lambda: f[0].agent)
    before = snapshot(alloc, table)
    with pytest.raises(InvalidOffers, match=message):
        alloc.take("F", ids)
    assert snapshot(alloc, table) == before


# -- rescinds: timeout, deactivate, remove, update ------------------------------------------


def test_offer_timeout_rescinds_and_frees() -> None:
    alloc, table, clock = setup(node("n1"), node("n2"), frameworks={"F": ["r"]}, offer_timeout=30)
    first = sent(alloc.allocate())["F"]
    assert alloc.next_wakeup() == pytest.approx(clock.monotonic() + 30)
    clock.advance(29)
    assert alloc.allocate() == []
    clock.advance(1)
    out = alloc.allocate()
    assert rescinded(out) == {("F", o.id) for o in first}
    again = sent(out)["F"]  # freed, and offered anew in the same cycle
    assert {o.agent for o in again} == {"n1", "n2"}
    assert {o.id for o in again}.isdisjoint(o.id for o in first)
    assert (free(table) >= 0).all()


def test_deactivate_rescinds_frees_and_stops_offers() -> None:
    alloc, table, _ = setup(node("n1"), frameworks={"F": ["r"]})
    [o] = sent(alloc.allocate())["F"]
    assert alloc.deactivate_framework("F") == [RescindOffer("F", o.id)]
    assert free(table)[0][0] == 4000
    assert alloc.allocate() == []
    assert alloc.framework_report("F")["active"] is False
    assert any("inactive" in r for r in alloc.why("F"))
    alloc.activate_framework("F")
    assert len(sent(alloc.allocate())["F"]) == 1


def test_remove_framework_rescinds_and_frees() -> None:
    alloc, table, _ = setup(node("n1"), node("n2"), frameworks={"F": ["r"], "G": ["r"]})
    offers = sent(alloc.allocate())
    out = alloc.remove_framework("F")
    assert rescinded(out) == {("F", o.id) for o in offers["F"]}
    assert not alloc.has_framework("F")
    assert alloc.remove_framework("F") == []
    assert alloc.outstanding("F") == []
    assert {o.agent for o in sent(alloc.allocate())["G"]} == {o.agent for o in offers["F"]}
    assert (free(table) >= 0).all()


def test_update_framework_rescinds_offers_of_dropped_roles() -> None:
    alloc, _, _ = setup(node("n1"), frameworks={"F": ["r"]})
    [o] = sent(alloc.allocate())["F"]
    assert alloc.update_framework("F", ["s"]) == [RescindOffer("F", o.id)]
    [o2] = sent(alloc.allocate())["F"]
    assert o2.role == "s"
    with pytest.raises(ValueError, match="not roles of F"):
        alloc.update_framework("F", ["s"], suppressed_roles=["x"])


@pytest.mark.parametrize(
    ("roles", "suppressed", "message"),
    [
        (["r"], ["x"], "not roles of"),
        ([""], [], "invalid role name"),
        ("r", [], "not a string"),
    ],
    ids=["suppressed-not-a-role", "empty-name", "string-not-list"],
)
def test_add_framework_validates(roles: Any, suppressed: list[str], message: str) -> None:
    alloc, _, _ = setup()
    with pytest.raises(ValueError, match=message):
        alloc.add_framework("F", roles, suppressed)


def test_add_framework_twice_and_default_role() -> None:
    alloc, _, _ = setup(node("n1"))
    alloc.add_framework("F", [])
    with pytest.raises(ValueError, match="already added"):
        alloc.add_framework("F", ["r"])
    [o] = sent(alloc.allocate())["F"]
    assert o.role == "*"


# -- Kubernetes pods and offers: reclaim ----------------------------------------------------


def fits_anywhere(table: NodeTable, need: np.ndarray) -> str | None:
    """A stand-in for the scheduler's decision: the first node with room."""
    for r in range(len(table)):
        if (table.allocatable[r] - table.requested[r] >= need).all():
            return table.names[r]
    return None


def test_reclaim_rescinds_only_the_chosen_nodes_offers() -> None:
    alloc, table, _ = setup(
        node("n1", cpu="2", memory="2Gi"),
        node("n2", cpu="4", memory="4Gi"),
        frameworks={"F": ["r"], "G": ["s"]},
    )
    offers = {o.agent: o for fo in sent(alloc.allocate()).values() for o in fo}
    need = np.array([3000, Gi, 0, 1])
    assert fits_anywhere(table, need) is None  # fits only into offered resources
    seen: list[np.ndarray] = []

    def decide() -> str | None:
        seen.append(free(table).copy())
        return fits_anywhere(table, need)

    node_name, out = alloc.reclaim(decide)
    assert node_name == "n2"
    assert out == [RescindOffer(offers["n2"].framework_id, offers["n2"].id)]
    assert seen[0][table.row("n2")][0] == 4000  # decide saw the holds lifted
    assert alloc.outstanding() == [offers["n1"]]  # n1's hold is back
    assert free(table)[table.row("n1")][0] == 0
    place(table, pod("big", 3000, Gi), "n2")  # the scheduler places it at once
    assert (free(table) >= 0).all()


def test_reclaim_with_no_node_changes_nothing() -> None:
    alloc, table, _ = setup(node("n1"), frameworks={"F": ["r"]})
    alloc.allocate()
    before = snapshot(alloc, table)
    assert alloc.reclaim(lambda: None) == (None, [])
    assert snapshot(alloc, table) == before


def test_reclaim_restores_holds_when_decide_raises() -> None:
    alloc, table, _ = setup(node("n1"), node("n2"), frameworks={"F": ["r"]})
    alloc.allocate()
    before = snapshot(alloc, table)

    def boom() -> str | None:
        raise RuntimeError("scheduler bug")

    with pytest.raises(RuntimeError, match="scheduler bug"):
        alloc.reclaim(boom)
    assert snapshot(alloc, table) == before


def test_reclaim_without_offers_does_not_call_decide() -> None:
    alloc, _, _ = setup(node("n1"))

    def decide() -> str | None:
        raise AssertionError("not called")

    assert alloc.reclaim(decide) == (None, [])


# -- starvation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("decliners", "within"),
    [(1, 2.0), (3, 4.0)],
    ids=["one-decliner", "three-decliners-round-robin"],
)
def test_no_starvation_beside_zero_filter_decliners(decliners: int, within: float) -> None:
    """Decliners (refuse_seconds 0) sort ahead of B by DRF; B still gets the agent."""
    names = [f"A{i}" for i in range(decliners)]
    alloc, table, clock = setup(
        node("n1"),
        node("busy", cpu="4", memory="8Gi"),
        frameworks={**{n: ["r"] for n in names}, "B": ["r"]},
    )
    place(table, task("b0", "B", "r", 4000, 8 * Gi), "busy")  # B's share is high
    start = clock.monotonic()
    got_at = None
    for _ in range(10):
        offers = sent(alloc.allocate())
        if "B" in offers:
            got_at = clock.monotonic() - start
            break
        for fid, fo in offers.items():
            alloc.decline(fid, [o.id for o in fo], 0)
        clock.advance(1.0)
    assert got_at is not None and got_at <= within


def test_pure_drf_without_starvation_bound_starves_behind_decliners() -> None:
    """The contrast: with the bound off, two decliners keep B out."""
    alloc, table, clock = setup(
        node("n1"),
        node("busy", cpu="4", memory="8Gi"),
        frameworks={"A0": ["r"], "A1": ["r"], "B": ["r"]},
        starvation_bound=None,
    )
    place(table, task("b0", "B", "r", 4000, 8 * Gi), "busy")
    for _ in range(6):
        offers = sent(alloc.allocate())
        assert "B" not in offers
        for fid, fo in offers.items():
            alloc.decline(fid, [o.id for o in fo], 0)
        clock.advance(1.0)


# -- ports ----------------------------------------------------------------------------------


def test_ports_exclude_host_ports_and_offered_ports() -> None:
    alloc, table, _ = setup(
        node("n1", cpu="4", memory="4Gi"),
        frameworks={"Z": ["zeta"], "A": ["a"]},
        port_range=(31000, 31010),
    )
    place(table, pod("web", 100, 0, host_ports=[31000, 31005]), "n1")
    place(table, pod("other", 100, 0, host_ports=[8080]), "n1")
    alloc.set_quota("zeta", cpus(1), cpus(1))
    offers = sent(alloc.allocate())
    [z] = offers["Z"]
    assert z.ports == ((31001, 31004), (31006, 31010))
    [a] = offers["A"]  # the rest of n1 goes to A, without the ports Z holds
    assert a.ports == ()
    alloc.decline("Z", [z.id], 60)
    alloc.decline("A", [a.id], 60)
    table.remove_pod("default/web")  # frees 100m and the host ports 31000, 31005
    out = sent(alloc.allocate())
    # both refused less than is free now; Z's guarantee comes first and takes the ports
    assert out["Z"][0].ports == ((31000, 31010),)
    assert out["A"][0].ports == ()


def test_ports_of_outstanding_offers_are_not_offered_again() -> None:
    alloc, table, _ = setup(node("n1"), frameworks={"F": ["r"]}, port_range=(31000, 31010))
    key = place(table, pod("web", 1000, Gi, host_ports=[31003]), "n1")
    [first] = sent(alloc.allocate())["F"]
    assert first.ports == ((31000, 31002), (31004, 31010))
    table.remove_pod(key)  # 1 cpu, 1 GiB and port 31003 come free beside the offer
    [second] = sent(alloc.allocate())["F"]
    assert second.agent == "n1"
    assert second.resources.tolist() == [1000, Gi, 0, 0]
    assert second.ports == ((31003, 31003),)


# -- introspection --------------------------------------------------------------------------


def test_why_explains() -> None:
    alloc, table, _ = setup(node("n1", cpu="1", memory="1Gi"), frameworks={"A": ["a"], "B": ["b"]})
    assert alloc.why("nope") == ["unknown framework nope"]
    [o] = sent(alloc.allocate())["A"]
    why_b = alloc.why("B")
    assert any("no agent has free resources" in r and "n1" in r for r in why_b), why_b
    assert any("outstanding offer" in r for r in alloc.why("A"))
    alloc.decline("A", [o.id], 10)
    assert any("filtered on 1 agent(s)" in r for r in alloc.why("A"))
    assert any("filter it out" in r for r in alloc.why("A"))
    alloc.suppress("B")
    assert any("suppressed roles: b" in r for r in alloc.why("B"))
    alloc.revive("B")
    assert any("nothing blocks it" in r for r in alloc.why("B")), alloc.why("B")
    table.upsert_node(node("n2", cpu="1", memory="1Gi"))  # A is first in line for n2
    assert any("behind A in DRF order" in r for r in alloc.why("B")), alloc.why("B")
    alloc.deactivate_framework("A")
    assert any("nothing blocks it" in r for r in alloc.why("B"))
    table.upsert_node(node("n1", cpu="1", memory="1Gi", unschedulable=True))
    table.upsert_node(node("n2", cpu="1", memory="1Gi", unschedulable=True))
    assert any("there are no agents" in r for r in alloc.why("B"))


def test_framework_report_fields() -> None:
    alloc, _, clock = setup(node("n1"), frameworks={"F": ["r"]})
    assert alloc.framework_report("F")["last_offered"] is None
    alloc.allocate()
    rep = alloc.framework_report("F")
    assert rep["offered"].tolist() == [4000, 8 * Gi, 0, 0]
    assert rep["dominant_share"] == pytest.approx(1.0)
    assert rep["last_offered"] == clock.monotonic()
    assert rep["pending_demand"] is True
    assert rep["outstanding_offers"] == 1
    assert rep["roles"] == ["r"]
    with pytest.raises(KeyError):
        alloc.framework_report("nope")
    assert alloc.total().tolist() == [4000, 8 * Gi, 0, 110]
    assert alloc.role_report()["r"]["offered"].tolist() == [4000, 8 * Gi, 0, 0]


def test_next_wakeup_none_when_idle() -> None:
    alloc, _, _ = setup(node("n1"), frameworks={"F": ["r"]})
    assert alloc.next_wakeup() is None
    alloc.allocate()
    assert alloc.next_wakeup() is None  # no offer timeout, no filters


def test_mem_units_are_bytes() -> None:
    assert to_vector(0, 1)[1] == MB == Mi


def test_a_node_at_its_pods_limit_is_not_offered() -> None:
    full = node("full")
    full["status"]["allocatable"]["pods"] = "2"
    alloc, table, _ = setup(full, node("roomy"), frameworks={"f": ["*"]})
    place(table, pod("a", 100, 2**20), "full")
    place(table, pod("b", 100, 2**20), "full")
    offers = sent(alloc.allocate())["f"]
    assert [o.agent for o in offers] == ["roomy"]  # 2 of 2 pods: cpu is free, yet no room


def test_an_offer_carries_the_free_pod_slots_of_its_node() -> None:
    """``Offer.pods``: the node's free pod slots at offer time, advertised, not held."""
    small = node("small")
    small["status"]["allocatable"]["pods"] = "5"
    unlimited = node("unlimited")
    unlimited["status"]["allocatable"]["pods"] = "0"  # no pods limit: no pods resource
    alloc, table, _ = setup(small, unlimited, node("big"), frameworks={"f": ["*"]})
    place(table, pod("a", 100, 2**20), "small")
    place(table, pod("b", 100, 2**20), "small")
    before = table.requested.copy()
    offers = {o.agent: o for o in sent(alloc.allocate())["f"]}
    assert {a: o.pods for a, o in offers.items()} == {"small": 3, "unlimited": None, "big": 110}
    # the holds take cpu, memory and disk, no pod slot
    assert (table.requested[:, 3] == before[:, 3]).all()
    assert all(int(o.resources[3]) == 0 for o in offers.values())
