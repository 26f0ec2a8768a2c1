"""Scenario ``disk`` (issue 16, item 6), short form: a full tmpfs under a real server
(507, reads work, no corruption, recovery when space returns), corrupt databases found
at start with one line, and ``corral backup`` / ``corral restore`` as the way back.
The long form runs from ``make faults`` (``bench/faults.py``)."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from corral.testing.faults import disk


def test_disk_full_corruption_backup_restore(tmp_path: Path) -> None:
    figures = disk.run(tmp_path, long=False)
    violations = figures["violations"]
    assert isinstance(violations, list)
    assert violations == [], "\n".join(map(str, violations))
    assert figures["writes_500"] == 0, f"writes answered 500 on a full disk: {figures}"
    assert figures["disk_full_status"] == 507, f"a full disk answered: {figures}"
    assert figures["corrupt_after_full"] == 0, f"the store was damaged by a full disk: {figures}"
    assert figures["acknowledged_writes_lost"] == 0, f"acknowledged writes lost: {figures}"
    assert figures["recovered_after_space"] is True, f"writes did not come back: {figures}"
    assert figures["corruption_detected"] is True, f"a corrupt store was not found: {figures}"
    assert figures["backup_objects_lost"] == 0, f"the restore lost backed-up objects: {figures}"


def test_restore_refuses_a_bad_backup_and_leaves_the_store(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    db = data / "state.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE current (key TEXT PRIMARY KEY)")
    conn.commit()
    conn.close()
    before = db.read_bytes()
    bad = tmp_path / "bad.db"
    bad.write_bytes(os.urandom(8192))
    rc, _, err = disk.finish(disk.corral("restore", "--data-dir", str(data), str(bad)))
    assert rc != 0 and str(bad) in err and "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1, err
    assert db.read_bytes() == before, "a refused restore touched the store"
    assert not list(data.glob("state.db.corrupt-*"))
