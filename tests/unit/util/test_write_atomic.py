"""``util.pki.write_atomic``: the one atomic file writer (PKI files, the service-account
signing key, the encryption configuration): replace, exclusive (the first file wins),
modes, and no temporary file left behind."""

from __future__ import annotations

from pathlib import Path

from corral.util.pki import write_atomic


def test_replace_sets_mode_and_leaves_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "f"
    write_atomic(path, b"one", 0o600)
    write_atomic(path, b"two", 0o644, sync_dir=True)
    assert path.read_bytes() == b"two"
    assert path.stat().st_mode & 0o777 == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["f"]


def test_exclusive_keeps_the_first_file(tmp_path: Path) -> None:
    path = tmp_path / "key"
    write_atomic(path, b"first", 0o600, exclusive=True)
    write_atomic(path, b"second", 0o600, exclusive=True)
    assert path.read_bytes() == b"first"
    assert path.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["key"]
