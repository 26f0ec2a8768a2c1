"""``corral.api.conditions.set_condition``: one condition per type, the transition time
kept unless the status changes."""

from __future__ import annotations

from typing import Any

import pytest

from corral.api.conditions import find_condition, set_condition

T0, T1 = "2026-01-01T00:00:00Z", "2026-01-01T00:01:00Z"
READY = {"type": "Ready", "status": "True", "reason": "Up", "message": "up"}


@pytest.mark.parametrize(
    ("before", "cond", "changed", "after"),
    [
        ({}, READY, True, {**READY, "lastTransitionTime": T1}),
        (
            {**READY, "lastTransitionTime": T0},
            READY,
            False,
            {**READY, "lastTransitionTime": T0},
        ),
        (
            {**READY, "lastTransitionTime": T0},
            {**READY, "message": "still up"},
            True,
            {**READY, "message": "still up", "lastTransitionTime": T0},
        ),
        (
            {**READY, "lastTransitionTime": T0},
            {**READY, "status": "False"},
            True,
            {**READY, "status": "False", "lastTransitionTime": T1},
        ),
    ],
    ids=["new", "same", "same-status", "flipped"],
)
def test_set_condition(
    before: dict[str, Any], cond: dict[str, Any], changed: bool, after: dict[str, Any]
) -> None:
    obj: dict[str, Any] = {"status": {"conditions": [before] if before else []}}
    assert set_condition(obj, cond, T1) is changed
    assert find_condition(obj, "Ready") == after
    assert len(obj["status"]["conditions"]) == 1
