"""``corral backup`` / ``corral restore`` on a real store file (no server): the files
they write hold every object of the cluster, Secrets included, so only their owner may
read them (etcd writes its snapshots 0600), whatever the umask."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from corral.cli.backup import run
from corral.cli.main import build_parser
from corral.storage.sqlite import SQLiteStorage


async def _store(data: Path) -> None:
    s = SQLiteStorage(data / "state.db")
    await s.start()
    try:
        await s.create("/registry/secrets/default/s", {"metadata": {"name": "s"}})
    finally:
        await s.close()


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


async def test_backup_and_restore_write_owner_only_files(tmp_path: Path) -> None:
    data, out = tmp_path / "data", tmp_path / "backups" / "b.db"
    out.parent.mkdir()
    await _store(data)
    old = os.umask(0o022)
    try:
        args = build_parser().parse_args(["backup", "--data-dir", str(data), str(out)])
        assert run(args) == 0
        assert _mode(out) == 0o600, f"backup written {oct(_mode(out))}"
        args = build_parser().parse_args(["restore", "--data-dir", str(data), str(out)])
        assert run(args) == 0
        db = data / "state.db"
        assert _mode(db) == 0o600, f"restored store written {oct(_mode(db))}"
    finally:
        os.umask(old)


async def test_a_failed_restore_leaves_the_store_in_place(tmp_path: Path) -> None:
    """The copy of the backup fails (here: its temporary path is taken; on a full disk,
    the write): the store stays where it was, not moved aside with nothing in its place
    (a server started then would begin an empty cluster at revision 1)."""
    data, out = tmp_path / "data", tmp_path / "b.db"
    await _store(data)
    assert run(build_parser().parse_args(["backup", "--data-dir", str(data), str(out)])) == 0
    (data / f".state.db.restore-{os.getpid()}").mkdir()  # the copy cannot be made
    args = build_parser().parse_args(["restore", "--data-dir", str(data), str(out)])
    with pytest.raises(OSError):
        run(args)
    assert (data / "state.db").is_file(), sorted(p.name for p in data.iterdir())
