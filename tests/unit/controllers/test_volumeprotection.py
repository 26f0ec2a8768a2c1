"""The protection controllers (controllers/volumeprotection.py): which pods hold a claim."""

from __future__ import annotations

from typing import Any

import pytest

from corral.controllers.volumeprotection import uses_claim

Obj = dict[str, Any]


SHUT_DOWN = {"deletionTimestamp": "2026-01-01T00:00:00Z", "deletionGracePeriodSeconds": 0}
CLAIM_C = [{"name": "d", "persistentVolumeClaim": {"claimName": "c"}}]

# (pod's node, extra metadata, volumes) -> does the pod hold claim "c"
USES_CASES: list[tuple[str, str, Obj, list[Obj], bool]] = [
    ("scheduled", "n", {}, CLAIM_C, True),
    ("unscheduled", "", {}, CLAIM_C, False),
    ("other-claim", "n", {}, [{"name": "d", "persistentVolumeClaim": {"claimName": "x"}}], False),
    # no generic ephemeral volumes here: the API server has no ephemeral controller
    ("ephemeral-not-a-claim", "n", {}, [{"name": "c", "ephemeral": {}}], False),
    ("claim-shut-down", "n", SHUT_DOWN, CLAIM_C, True),
]


@pytest.mark.parametrize(
    ("node", "meta", "volumes", "want"),
    [c[1:] for c in USES_CASES],
    ids=[c[0] for c in USES_CASES],
)
def test_uses_claim(node: str, meta: Obj, volumes: list[Obj], want: bool) -> None:
    pod = {
        "metadata": {"name": "pod", **meta},
        "spec": {"nodeName": node, "volumes": volumes},
        "status": {"phase": "Running"},
    }
    assert uses_claim(pod, "c") is want
