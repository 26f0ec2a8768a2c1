"""5,000 nodes, 1,000 random pods: every decision respects allocatable."""

from __future__ import annotations

import random

import numpy as np

from corral.scheduler.decide import decide
from corral.scheduler.framework import Profile
from corral.scheduler.snapshot import Cursor, NodeTable, pod_info


def test_thousand_random_pods_never_overcommit() -> None:
    rng = random.Random(42)
    t = NodeTable()
    for i in range(5000):
        t.upsert_node(
            {
                "metadata": {
                    "name": f"n{i}",
                    "labels": {"zone": f"z{i % 5}", "kubernetes.io/hostname": f"n{i}"},
                },
                "spec": {"taints": [{"key": "gpu", "effect": "NoSchedule"}] if i % 50 == 0 else []},
                "status": {
                    "allocatable": {
                        "cpu": rng.choice(["1", "2", "4"]),
                        "memory": "4Gi",
                        "pods": "8",
                    }
                },
            }
        )
    cursor = Cursor(rng=random.Random(7))
    placed = failed = 0
    for i in range(1000):
        spec: dict[str, object] = {
            "containers": [
                {
                    "name": "c",
                    "resources": {
                        "requests": {
                            "cpu": f"{rng.choice([100, 500, 1000, 3000])}m",
                            "memory": f"{rng.choice([64, 512, 2048])}Mi",
                        }
                    },
                }
            ]
        }
        if i % 10 == 0:
            spec["nodeSelector"] = {"zone": f"z{rng.randrange(5)}"}
        pod = pod_info({"metadata": {"name": f"p{i}", "namespace": "ns"}, "spec": spec})
        d = decide(pod, t, Profile(), cursor=cursor)
        if d.node is None:
            failed += 1
            continue
        t.add_pod(pod, d.node)
        placed += 1
        row = t.row(d.node)
        assert row is not None and (t.requested[row] <= t.allocatable[row]).all()
    assert placed > 900
    assert (t.requested <= t.allocatable).all()
    assert int(t.requested[:, 3].sum()) == placed
    assert np.all(t.requested[::50, 3] == 0)  # the tainted nodes stayed empty
