"""The Deployment controller's pure rollout arithmetic (controllers/deployment_util.py).

Tables of Deployments and ReplicaSets in, decisions out: fence posts, the template hash,
which ReplicaSet is new, how far the new one grows and the old ones shrink, proportional
scaling, history clean-up, revisions and the status conditions.
"""

from __future__ import annotations

from typing import Any

import pytest

from corral.controllers import deployment_util as du
from corral.util.clock import parse_rfc3339

Obj = dict[str, Any]


def dep(
    replicas: int = 10,
    surge: int | str | None = 3,
    unavailable: int | str | None = 2,
    recreate: bool = False,
    **spec: Any,
) -> Obj:
    strategy: Obj = (
        {"type": "Recreate"}
        if recreate
        else {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable},
        }
    )
    return {
        "metadata": {"name": "web", "namespace": "ns", "uid": "d1", "generation": 1},
        "spec": {
            "replicas": replicas,
            "strategy": strategy,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": "web:v1"}]},
            },
            **spec,
        },
    }


def rs(
    name: str,
    replicas: int,
    available: int | None = None,
    created: str = "2026-01-01T00:00:00Z",
    rev: int | None = None,
    max_replicas: int | None = None,
    desired: int | None = None,
    actual: int | None = None,
) -> Obj:
    ann = {}
    if rev is not None:
        ann[du.REVISION] = str(rev)
    if max_replicas is not None:
        ann[du.MAX_REPLICAS] = str(max_replicas)
    if desired is not None:
        ann[du.DESIRED_REPLICAS] = str(desired)
    avail = replicas if available is None else available
    return {
        "metadata": {
            "name": name,
            "uid": name,
            "creationTimestamp": created,
            "annotations": ann,
            "generation": 1,
        },
        "spec": {"replicas": replicas},
        "status": {
            "replicas": replicas if actual is None else actual,
            "readyReplicas": avail,
            "availableReplicas": avail,
            "observedGeneration": 1,
        },
    }


# --- fence posts -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("surge", "unavailable", "desired", "want"),
    [
        ("25%", "25%", 10, (3, 2)),
        ("25%", "25%", 4, (1, 1)),
        ("25%", "25%", 1, (1, 0)),
        ("50%", "50%", 3, (2, 1)),
        (2, 1, 10, (2, 1)),
        (0, "10%", 5, (0, 1)),
        (None, None, 5, (0, 1)),
        ("0%", 3, 10, (0, 3)),
        ("100%", "100%", 7, (7, 7)),
        ("1", "2", 7, (1, 2)),
    ],
    ids=[
        "default-25pct-of-10",
        "25pct-of-4",
        "25pct-of-1-surge-up-unavail-down",
        "50pct-of-3",
        "ints",
        "both-round-to-zero-gives-unavail-1",
        "unset",
        "zero-percent-surge",
        "100pct",
        "int-strings",
    ],
)
def test_resolve_fenceposts(
    surge: int | str | None, unavailable: int | str | None, desired: int, want: tuple[int, int]
) -> None:
    assert du.resolve_fenceposts(surge, unavailable, desired) == want


@pytest.mark.parametrize(
    ("d", "surge", "unavailable"),
    [
        (dep(10, "25%", "25%"), 3, 2),
        (dep(0, "25%", "25%"), 0, 0),
        (dep(3, 1, 5), 1, 3),
        (dep(10, recreate=True), 0, 0),
    ],
    ids=["rolling", "zero-replicas", "unavailable-capped-at-replicas", "recreate"],
)
def test_max_surge_and_unavailable(d: Obj, surge: int, unavailable: int) -> None:
    assert (du.max_surge(d), du.max_unavailable(d)) == (surge, unavailable)


# --- hash and the new ReplicaSet ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("data", "want"),
    [(b"", 0x811C9DC5), (b"a", 0xE40C292C), (b"foobar", 0xBF9CF968)],
    ids=["empty", "a", "foobar"],
)
def test_fnv32a_vectors(data: bytes, want: int) -> None:
    assert du.fnv32a(data) == want


def test_compute_hash_shape_stability_and_collisions() -> None:
    t = dep()["spec"]["template"]
    h = du.compute_hash(t, None)
    assert h == du.compute_hash(du._deep(t), None)
    assert set(h) <= set("bcdfghjklmnpqrstvwxz2456789") and 6 <= len(h) <= 10
    assert du.compute_hash(t, 1) != h != du.compute_hash(t, 0)
    t2 = {**t, "metadata": {"labels": {"app": "web"}, "annotations": {"restartedAt": "now"}}}
    assert du.compute_hash(t2, None) != h
    # semantically equal templates (empty maps, nulls) hash the same
    t3 = {**t, "metadata": {"labels": {"app": "web"}, "annotations": {}, "creationTimestamp": None}}
    assert du.compute_hash(t3, None) == h


@pytest.mark.parametrize(
    ("a", "b", "equal"),
    [
        ({"metadata": {"labels": {"app": "x"}}}, {"metadata": {"labels": {"app": "x"}}}, True),
        (
            {"metadata": {"labels": {"app": "x", du.HASH_LABEL: "abc"}}},
            {"metadata": {"labels": {"app": "x"}}},
            True,
        ),
        (
            {"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [{"image": "a"}]}},
            {"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [{"image": "b"}]}},
            False,
        ),
        (
            {"metadata": {"labels": {"app": "x"}, "annotations": {}}},
            {"metadata": {"labels": {"app": "x"}, "creationTimestamp": None}},
            True,
        ),
    ],
    ids=["same", "hash-label-ignored", "image-differs", "empty-and-null-ignored"],
)
def test_equal_ignore_hash(a: Obj, b: Obj, equal: bool) -> None:
    assert du.equal_ignore_hash(a, b) is equal


def test_new_rs_object_and_find_new_rs() -> None:
    d = dep()
    new = du.new_rs_object(d, "abc12", {"uid": "d1", "controller": True})
    assert new["metadata"]["name"] == "web-abc12"
    assert new["spec"]["selector"]["matchLabels"] == {"app": "web", du.HASH_LABEL: "abc12"}
    assert new["spec"]["template"]["metadata"]["labels"][du.HASH_LABEL] == "abc12"
    assert d["spec"]["template"]["metadata"]["labels"] == {"app": "web"}  # not mutated
    later = {**new, "metadata": {**new["metadata"], "creationTimestamp": "2026-02-01T00:00:00Z"}}
    earlier = {**new, "metadata": {**new["metadata"], "name": "web-old"}}
    earlier["metadata"]["creationTimestamp"] = "2026-01-01T00:00:00Z"
    other = rs("web-other", 1)
    other["spec"]["template"] = {"metadata": {"labels": {"app": "web"}}, "spec": {}}
    found = du.find_new_rs(d, [later, other, earlier])
    assert found is not None and found["metadata"]["name"] == "web-old"


# --- scaling decisions ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("d", "rss", "new", "want"),
    [
        (dep(10), [rs("old", 10)], rs("new", 0), 3),
        (dep(10), [rs("old", 10)], rs("new", 3), 3),
        (dep(10), [rs("old", 8)], rs("new", 3), 5),
        (dep(10), [rs("old", 0)], rs("new", 9), 10),
        (dep(10), [], rs("new", 12), 10),
        (dep(10, recreate=True), [rs("old", 0)], rs("new", 0), 10),
        (dep(4, "25%", "25%"), [rs("old", 4)], rs("new", 0), 1),
        (dep(10, 0, 2), [rs("old", 10)], rs("new", 0), 0),
    ],
    ids=[
        "surge-from-zero",
        "at-surge-cap",
        "room-after-old-shrank",
        "capped-at-replicas",
        "new-above-replicas-shrinks",
        "recreate-all-at-once",
        "percent-surge",
        "no-surge-no-growth",
    ],
)
def test_new_rs_target(d: Obj, rss: list[Obj], new: Obj, want: int) -> None:
    assert du.new_rs_target(d, [*rss, new], new) == want


@pytest.mark.parametrize(
    ("d", "old", "new", "want"),
    [
        (dep(10), [rs("old", 10)], rs("new", 3, 0), [("old", 8)]),
        (dep(10), [rs("old", 10, 6)], rs("new", 3, 3), [("old", 5)]),
        (dep(10), [rs("old", 8)], rs("new", 5, 0), []),
        (
            dep(10),
            [rs("old2", 5, created="2026-01-02T00:00:00Z"), rs("old1", 3)],
            rs("new", 5),
            [("old1", 0), ("old2", 3)],
        ),
        (dep(10, 0, 1), [rs("old", 10)], rs("new", 0), [("old", 9)]),
        (dep(10), [rs("old", 4, 6)], rs("new", 10, 6), [("old", 2)]),
        (dep(10), [rs("old", 0)], rs("new", 10), []),
    ],
    ids=[
        "within-max-unavailable",
        "unhealthy-first-then-available",
        "new-unavailable-blocks",
        "oldest-first",
        "no-surge-make-room",
        "stale-status-more-available-than-spec",
        "nothing-old",
    ],
)
def test_old_rs_scale_down(d: Obj, old: list[Obj], new: Obj, want: list[tuple[str, int]]) -> None:
    assert du.old_rs_scale_down(d, du.active(old), new) == want


@pytest.mark.parametrize(
    ("d", "new", "old", "want"),
    [
        (dep(10), rs("new", 4, max_replicas=8), [], [("new", 10, "up")]),
        (dep(5), rs("new", 0), [rs("old", 0)], [("new", 5, "up")]),
        (dep(5), None, [rs("old", 3)], [("old", 5, "up")]),
        (
            dep(10),
            rs("new", 4, created="2026-01-02T00:00:00Z", max_replicas=8),
            [rs("old", 4, max_replicas=8)],
            [("new", 7, "up"), ("old", 6, "up")],
        ),
        (
            dep(5),
            rs("new", 7, created="2026-01-02T00:00:00Z", max_replicas=13),
            [rs("old", 6, max_replicas=13)],
            [("new", 4, "down"), ("old", 4, "down")],
        ),
        (
            dep(0),
            rs("new", 7, created="2026-01-02T00:00:00Z", max_replicas=13),
            [rs("old", 6, max_replicas=13)],
            [("new", 0, "down"), ("old", 0, "down")],
        ),
        (
            dep(3),
            rs("new", 3, desired=3),
            [rs("old", 2)],
            [("old", 0, "down")],
        ),
        (dep(10, recreate=True), rs("new", 2), [rs("old", 2)], []),
    ],
    ids=[
        "single-active-takes-replicas",
        "none-active-newest-takes-it",
        "no-new-rs-old-takes-it",
        "proportional-up-5-to-10",
        "proportional-down-10-to-5",
        "to-zero",
        "saturated-new-zeroes-old",
        "recreate-no-proportions",
    ],
)
def test_proportional_scale(
    d: Obj, new: Obj | None, old: list[Obj], want: list[tuple[str, int, str]]
) -> None:
    assert du.proportional_scale(d, new, old) == want


@pytest.mark.parametrize(
    ("limit", "old", "want"),
    [
        (1, [rs("a", 0, rev=1), rs("b", 0, rev=2), rs("c", 0, rev=3)], ["a", "b"]),
        (0, [rs("b", 0, rev=5), rs("a", 0, rev=4)], ["a", "b"]),
        (1, [rs("a", 1, rev=1), rs("b", 0, rev=2), rs("c", 0, rev=3)], ["b"]),
        (1, [rs("a", 0, rev=1, actual=1), rs("b", 0, rev=2)], []),
        (5, [rs("a", 0, rev=1)], []),
        (None, [rs("a", 0, rev=1)], []),
    ],
    ids=[
        "lowest-revisions-first",
        "limit-zero",
        "skip-with-replicas",
        "skip-with-pods-left",
        "under-limit",
        "no-limit",
    ],
)
def test_rs_to_clean_up(limit: int | None, old: list[Obj], want: list[str]) -> None:
    d = dep()
    d["spec"]["revisionHistoryLimit"] = limit
    assert du.rs_to_clean_up(d, old) == want


# --- revisions and annotations ---------------------------------------------------------------------
def test_new_rs_annotations_fresh_and_rollback() -> None:
    d = dep(10, "25%", "25%")
    d["metadata"]["annotations"] = {
        "kubernetes.io/change-cause": "to v2",
        du.LAST_APPLIED: "{}",
        du.REVISION: "7",
    }
    fresh: Obj = {"metadata": {}}
    assert du.set_new_rs_annotations(d, fresh, 3, exists=False)
    assert fresh["metadata"]["annotations"] == {
        "kubernetes.io/change-cause": "to v2",
        du.REVISION: "3",
        du.DESIRED_REPLICAS: "10",
        du.MAX_REPLICAS: "13",
    }
    undone = rs("old", 0, rev=1)
    assert du.set_new_rs_annotations(d, undone, 3, exists=True)
    ann = undone["metadata"]["annotations"]
    assert ann[du.REVISION] == "3" and ann[du.REVISION_HISTORY] == "1"
    assert du.set_new_rs_annotations(d, undone, 5, exists=True)
    assert ann[du.REVISION] == "5" and ann[du.REVISION_HISTORY] == "1,3"
    assert not du.set_new_rs_annotations(d, undone, 4, exists=True)  # never lowered
    assert du.max_revision([rs("a", 0, rev=2), rs("b", 0), undone]) == 5


# --- status ---------------------------------------------------------------------------------------
NOW = "2026-01-01T00:10:00Z"


def test_calculate_status_counts_and_available() -> None:
    d = dep(10)
    new, old = rs("new", 3, 1), rs("old", 8, 6)
    st = du.calculate_status([old, new], new, d, NOW)
    assert {k: v for k, v in st.items() if k != "conditions"} == {
        "observedGeneration": 1,
        "replicas": 11,
        "updatedReplicas": 3,
        "readyReplicas": 7,
        "availableReplicas": 7,
        "unavailableReplicas": 4,
    }
    (c,) = st["conditions"]
    assert (c["type"], c["status"], c["reason"], c["message"]) == (
        "Available",
        "False",
        "MinimumReplicasUnavailable",
        "Deployment does not have minimum availability.",
    )
    st = du.calculate_status([rs("new", 10)], rs("new", 10), d, NOW)
    assert "unavailableReplicas" not in st
    assert st["conditions"][0]["reason"] == "MinimumReplicasAvailable"


def _progress(reason: str, updated: str = "2026-01-01T00:00:00Z", status: str = "True") -> Obj:
    return {
        "type": "Progressing",
        "status": status,
        "reason": reason,
        "message": "m",
        "lastUpdateTime": updated,
        "lastTransitionTime": updated,
    }


@pytest.mark.parametrize(
    ("old_status", "rss", "now", "reason", "message"),
    [
        (
            {
                "replicas": 3,
                "updatedReplicas": 0,
                "conditions": [_progress("NewReplicaSetCreated")],
            },
            [rs("new", 3), rs("old", 0, actual=0)],
            "2026-01-01T00:01:00Z",
            "NewReplicaSetAvailable",
            'ReplicaSet "new" has successfully progressed.',
        ),
        (
            {
                "replicas": 4,
                "updatedReplicas": 1,
                "conditions": [_progress("NewReplicaSetCreated")],
            },
            [rs("new", 2, 0), rs("old", 2)],
            "2026-01-01T00:01:00Z",
            "ReplicaSetUpdated",
            'ReplicaSet "new" is progressing.',
        ),
        (
            {
                "replicas": 4,
                "updatedReplicas": 1,
                "availableReplicas": 3,
                "readyReplicas": 3,
                "conditions": [_progress("ReplicaSetUpdated")],
            },
            [rs("new", 1, 0), rs("old", 3)],
            "2026-01-01T00:20:00Z",
            "ProgressDeadlineExceeded",
            'ReplicaSet "new" has timed out progressing.',
        ),
        (
            {
                "replicas": 4,
                "updatedReplicas": 1,
                "availableReplicas": 3,
                "readyReplicas": 3,
                "conditions": [_progress("ReplicaSetUpdated")],
            },
            [rs("new", 1, 0), rs("old", 3)],
            "2026-01-01T00:05:00Z",
            "ReplicaSetUpdated",
            "m",
        ),
    ],
    ids=["complete", "progressing", "deadline-exceeded", "no-progress-within-deadline"],
)
def test_rollout_status_progressing(
    old_status: Obj, rss: list[Obj], now: str, reason: str, message: str
) -> None:
    d = dep(3 if reason == "NewReplicaSetAvailable" else 4, 1, 1, progressDeadlineSeconds=600)
    d["status"] = old_status
    t = parse_rfc3339(now)
    st = du.rollout_status(rss, rss[0], d, t, now, parse_rfc3339)
    c = du.get_condition(st, "Progressing")
    assert c is not None and (c["reason"], c["message"]) == (reason, message)
    if reason == "ReplicaSetUpdated" and message != "m":
        # progress refreshes lastUpdateTime but keeps lastTransitionTime of a True condition
        assert c["lastUpdateTime"] == now
        assert c["lastTransitionTime"] == "2026-01-01T00:00:00Z"


def test_deadline_left_and_timed_out() -> None:
    d = dep(4, progressDeadlineSeconds=60)
    st = {"conditions": [_progress("ReplicaSetUpdated")]}
    t0 = parse_rfc3339("2026-01-01T00:00:00Z")
    assert du.deadline_left(d, st, t0 + 10, parse_rfc3339) == 50
    assert not du.deployment_timed_out(d, st, t0 + 10, parse_rfc3339)
    assert du.deployment_timed_out(d, st, t0 + 61, parse_rfc3339)
    done = {"conditions": [_progress("NewReplicaSetAvailable")]}
    assert du.deadline_left(d, done, t0 + 999, parse_rfc3339) is None
    d["spec"]["progressDeadlineSeconds"] = du.MAX_INT32
    assert du.deadline_left(d, st, t0 + 999, parse_rfc3339) is None


def test_set_condition_keeps_transition_time_and_order() -> None:
    st: Obj = {}
    du.set_condition(st, du.new_condition("Available", "True", "A", "a", "t1"))
    du.set_condition(st, du.new_condition("Progressing", "True", "P", "p", "t1"))
    du.set_condition(st, du.new_condition("Available", "True", "A", "changed", "t2"))
    assert st["conditions"][0]["message"] == "a"  # same status and reason: unchanged
    du.set_condition(st, du.new_condition("Progressing", "True", "Q", "q", "t3"))
    prog = st["conditions"][-1]
    assert (prog["reason"], prog["lastUpdateTime"], prog["lastTransitionTime"]) == ("Q", "t3", "t1")
    du.set_condition(st, du.new_condition("Progressing", "False", "X", "x", "t4"))
    assert st["conditions"][-1]["lastTransitionTime"] == "t4"


def test_replica_failure_is_copied() -> None:
    d = dep(1, 1, 0)
    new = rs("new", 1, 0)
    new["status"]["conditions"] = [
        {
            "type": "ReplicaFailure",
            "status": "True",
            "reason": "FailedCreate",
            "message": "quota",
            "lastTransitionTime": NOW,
        }
    ]
    st = du.rollout_status([new], new, d, parse_rfc3339(NOW), NOW, parse_rfc3339)
    c = du.get_condition(st, "ReplicaFailure")
    assert c is not None and (c["reason"], c["message"]) == ("FailedCreate", "quota")
