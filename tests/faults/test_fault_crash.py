"""Crash consistency, short form (issue 16, Deliver 1): ``corral server`` SIGKILLed twice
and ``corral up`` once under writes from six clients, with two watchers resuming across
the kills (``corral.testing.faults.crash``; the long form runs from ``make faults``).

It covers ``tests/integration/test_api_edges.py::test_kill_9_loses_no_acknowledged_write``
(acknowledged creates survive a SIGKILL) and goes further: updates, deletes, checksums,
resourceVersions and watch resumption.
"""

from __future__ import annotations

from pathlib import Path

from corral.testing.faults import crash


def test_sigkill_under_writes_loses_nothing_and_watches_resume(tmp_path: Path) -> None:
    res = crash.run(tmp_path, long=False)
    broken = "\n".join(map(str, res["violations"]))  # type: ignore[call-overload]
    figures = {k: res[k] for k in crash.MUST_BE_ZERO}
    assert res["violations"] == [], f"seed {res['seed']}, {figures}:\n{broken}"
    assert all(v == 0 for v in figures.values()), figures
    assert res["kills"] == 3, res
    # the load really ran across the kills, and the watchers really resumed
    assert res["operations"] >= 400, res  # type: ignore[operator]
    assert res["watch_streams"] >= 2 * 5, res  # type: ignore[operator]
