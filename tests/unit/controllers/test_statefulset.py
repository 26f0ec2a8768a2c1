"""The StatefulSet controller's pure parts: ordinals, slots, the step plan, status, pods."""

from __future__ import annotations

from typing import Any

import pytest

from corral.controllers.statefulset import (
    POD_INDEX_LABEL,
    POD_NAME_LABEL,
    REVISION_LABEL,
    Action,
    Create,
    Delete,
    compute_status,
    new_pod,
    parse_ordinal,
    plan,
    revision_data,
    slot_revision,
    split_pods,
    template_of,
)

Obj = dict[str, Any]


def pod(n: int, state: str = "ready", rev: str = "new", name: str = "web") -> Obj:
    """``state``: ready, pending (not ready), failed, terminating."""
    status: Obj = {"phase": "Running" if state in ("ready", "terminating") else "Pending"}
    if state == "failed":
        status["phase"] = "Failed"
    if state in ("ready", "terminating"):
        status["conditions"] = [{"type": "Ready", "status": "True"}]
    meta: Obj = {"name": f"{name}-{n}", "uid": f"u{n}", "labels": {REVISION_LABEL: rev}}
    if state == "terminating":
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"metadata": meta, "status": status}


@pytest.mark.parametrize(
    ("pod_name", "want"),
    [
        ("web-0", 0),
        ("web-12", 12),
        ("web-01", None),
        ("web-", None),
        ("web-x", None),
        ("webx-1", None),
        ("web-web-1", None),
    ],
    ids=["zero", "two-digits", "leading-zero", "empty", "letters", "other-set", "nested"],
)
def test_parse_ordinal(pod_name: str, want: int | None) -> None:
    assert parse_ordinal("web", pod_name) == want


def test_split_pods_slots_and_condemned_descending() -> None:
    pods = [pod(3), pod(0), pod(5), pod(1), {"metadata": {"name": "other"}}]
    slots, condemned = split_pods("web", pods, 0, 3)
    assert [s["metadata"]["name"] if s else None for s in slots] == ["web-0", "web-1", None]
    assert [p["metadata"]["name"] for p in condemned] == ["web-5", "web-3"]
    slots, condemned = split_pods("web", pods, 1, 3)  # spec.ordinals.start = 1
    assert [s["metadata"]["name"] if s else None for s in slots] == ["web-1", None, "web-3"]
    assert [p["metadata"]["name"] for p in condemned] == ["web-5", "web-0"]


def d(n: int) -> Delete:
    return Delete(f"web-{n}", f"u{n}")


CASES: list[tuple[str, list[Obj], int, bool, bool, int, list[Action]]] = [
    # id, pods, replicas, ordered, rolling, partition, expected actions
    ("ordered-create-first", [], 3, True, True, 0, [Create(0)]),
    ("ordered-create-next", [pod(0)], 3, True, True, 0, [Create(1)]),
    ("ordered-wait-not-ready", [pod(0, "pending")], 3, True, True, 0, []),
    ("ordered-wait-terminating", [pod(0, "terminating")], 3, True, True, 0, []),
    ("parallel-create-all", [], 3, False, True, 0, [Create(0), Create(1), Create(2)]),
    ("parallel-ignores-unready", [pod(0, "pending")], 2, False, True, 0, [Create(1)]),
    ("failed-deleted", [pod(0, "failed"), pod(1)], 2, True, True, 0, [d(0)]),
    ("scale-down-highest-first", [pod(0), pod(1), pod(2)], 1, True, True, 0, [d(2)]),
    ("scale-down-wait-terminating", [pod(0), pod(1), pod(2, "terminating")], 1, True, True, 0, []),
    (
        "scale-down-unhealthy-highest-goes",
        [pod(0), pod(1), pod(2, "pending")],
        1,
        True,
        True,
        0,
        [d(2)],
    ),
    (
        "scale-down-highest-even-if-lower-unhealthy",
        [pod(0), pod(1, "pending"), pod(2)],
        1,
        True,
        True,
        0,
        [d(2)],
    ),
    ("parallel-scale-down-all", [pod(0), pod(1), pod(2)], 0, False, True, 0, [d(2), d(1), d(0)]),
    ("update-highest-first", [pod(0, rev="old"), pod(1, rev="old")], 2, True, True, 0, [d(1)]),
    (
        "update-next-lower",
        [pod(0, rev="old"), pod(1), pod(2)],
        3,
        True,
        True,
        0,
        [d(0)],
    ),
    (
        "update-waits-unready-updated",
        [pod(0, rev="old"), pod(1, "pending")],
        2,
        False,
        True,
        0,
        [],
    ),
    ("partition-stops", [pod(0, rev="old"), pod(1, rev="old"), pod(2)], 3, True, True, 2, []),
    (
        "partition-updates-above",
        [pod(0, rev="old"), pod(1, rev="old"), pod(2, rev="old")],
        3,
        True,
        True,
        2,
        [d(2)],
    ),
    ("on-delete-never-updates", [pod(0, rev="old"), pod(1, rev="old")], 2, True, False, 0, []),
]


@pytest.mark.parametrize(
    ("pods", "replicas", "ordered", "rolling", "partition", "want"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_plan(
    pods: list[Obj],
    replicas: int,
    ordered: bool,
    rolling: bool,
    partition: int,
    want: list[Action],
) -> None:
    slots, condemned = split_pods("web", pods, 0, replicas)
    got = plan(
        slots,
        condemned,
        ordered=ordered,
        rolling=rolling,
        partition=partition,
        update_revision="new",
    )
    assert got == want


@pytest.mark.parametrize(
    ("index", "rolling", "partition", "want"),
    [
        (0, True, 2, "current"),
        (2, True, 2, "update"),
        (0, True, 0, "update"),
        (0, False, 2, "update"),
    ],
    ids=["below-partition", "at-partition", "no-partition", "on-delete"],
)
def test_slot_revision(index: int, rolling: bool, partition: int, want: str) -> None:
    assert slot_revision(index, rolling, partition) == want


def sts(strategy: str = "RollingUpdate") -> Obj:
    return {
        "metadata": {"name": "web", "uid": "s1", "generation": 3},
        "spec": {
            "replicas": 3,
            "serviceName": "svc",
            "updateStrategy": {"type": strategy},
            "template": {
                "metadata": {"labels": {"app": "web"}, "annotations": {"a": "b"}},
                "spec": {"containers": [{"name": "c", "image": "i"}]},
            },
            "volumeClaimTemplates": [{"metadata": {"name": "data"}}],
        },
    }


@pytest.mark.parametrize(
    ("strategy", "pods", "want"),
    [
        (
            "RollingUpdate",
            [pod(0, rev="old"), pod(1), pod(2, "pending")],
            {"replicas": 3, "readyReplicas": 2, "currentReplicas": 1, "updatedReplicas": 2},
        ),
        (
            "RollingUpdate",
            [pod(0), pod(1), pod(2)],
            {"currentReplicas": 3, "updatedReplicas": 3, "currentRevision": "new"},
        ),
        (
            "OnDelete",
            [pod(0), pod(1), pod(2)],
            {"currentReplicas": 0, "updatedReplicas": 3, "currentRevision": "old"},
        ),
        (
            "RollingUpdate",
            [pod(0), pod(1, "terminating")],
            {"replicas": 2, "updatedReplicas": 1, "currentRevision": "old"},
        ),
    ],
    ids=["mid-rollout", "complete-rolls-current", "on-delete-keeps-current", "terminating"],
)
def test_compute_status(strategy: str, pods: list[Obj], want: Obj) -> None:
    st = compute_status(sts(strategy), pods, "old", "new", 0.0)
    assert st["observedGeneration"] == 3 and st["updateRevision"] == "new"
    assert {k: st[k] for k in want} == want


def test_new_pod_identity_and_revision_round_trip() -> None:
    s = sts()
    template = template_of({"data": revision_data(s)})
    assert template == s["spec"]["template"]
    p = new_pod(s, 2, template, "web-abc")
    labels = p["metadata"]["labels"]
    assert labels == {
        "app": "web",
        REVISION_LABEL: "web-abc",
        POD_NAME_LABEL: "web-2",
        POD_INDEX_LABEL: "2",
    }
    assert p["metadata"]["name"] == "web-2" and p["metadata"]["annotations"] == {"a": "b"}
    assert (p["spec"]["hostname"], p["spec"]["subdomain"]) == ("web-2", "svc")
    assert p["spec"]["volumes"] == [{"name": "data", "emptyDir": {}}]
    assert p["metadata"]["ownerReferences"][0]["uid"] == "s1"
