"""``corral migrate`` between etcd and SQLite, ``corral backup``/``restore`` on etcd.

One real ``corral server`` on a real etcd (A) makes the cluster (bootstrap data, an
encrypted Secret, a ConfigMap); while it runs, a backup is taken online and a migrate is
refused; then etcd A -> SQLite -> a fresh etcd B -> SQLite must print one checksum
throughout, and the backup restored into a fresh data dir on a fresh etcd C serves the
same objects (the Secret decrypts with the keys unpacked from the backup's bootstrap
data into that data dir).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import itertools
import re
import stat
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import Kubectl, start_server
from corral.apiserver.encryption import EncryptionTransformer
from corral.apiserver.encryption_config import read
from corral.cli.main import main
from corral.storage.etcd import EtcdStorage
from corral.util.etcd_process import EtcdCluster

pytestmark = pytest.mark.kubectl


@pytest.fixture(scope="module")
def etcds(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[EtcdCluster]]:
    """Three one-member etcd clusters (A: the cluster's, B and C: fresh targets)."""
    clusters = [EtcdCluster(tmp_path_factory.mktemp(f"etcd{n}")) for n in "abc"]
    try:
        threads = [threading.Thread(target=c.start) for c in clusters]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert all(c.running(0) for c in clusters)
        yield clusters
    finally:
        for c in clusters:
            c.stop()


def corral(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """``corral ARGS`` run in this process (the command's own ``main``: its exit status,
    stdout and stderr), which spares a Python start per command."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in args])
    return subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())


def read_secret(etcd: EtcdCluster, data_dir: Path, key: str) -> dict[str, Any]:
    """A Secret as a server on ``data_dir`` reads it: through the store, decrypted with
    the data dir's encryption configuration."""

    async def get() -> dict[str, Any]:
        store = EtcdStorage(etcd.endpoints)
        store.transformer = EncryptionTransformer(read(data_dir / "pki" / "encryption.yaml")[0])
        await store.start()
        try:
            kv = await store.get(key)
            assert kv is not None
            return kv.obj
        finally:
            await store.close()

    return asyncio.run(get())


def sums(out: str) -> list[str]:
    return re.findall(r"sha256 ([0-9a-f]{64})", out)


def test_migrate_round_trip_and_backup_restore_on_etcd(
    etcds: list[EtcdCluster], tmp_path: Path
) -> None:
    a, b, c = etcds
    data = tmp_path / "data"
    srv = start_server(data, extra=["--datastore", a.url, "--no-scheduler"])
    backup = tmp_path / "cluster.backup"
    try:
        kubectl = Kubectl(srv.kubeconfig, tmp_path / "cache")
        kubectl("create", "secret", "generic", "s1", "--from-literal=pw=hunter2")
        kubectl("create", "configmap", "c1", "--from-literal=a=b")
        # online backup: the server keeps running
        out = corral("backup", "--datastore", a.url, "--data-dir", data, backup)
        assert out.returncode == 0, out.stderr
        assert len(set(sums(out.stdout))) == 1, out.stdout  # source == backup
        backup_sum = set(sums(out.stdout))
        assert stat.S_IMODE(backup.stat().st_mode) == 0o600
        # a served source is refused
        busy = corral("migrate", "--from", a.url, "--to", f"sqlite://{tmp_path}/x.db",
                      "--data-dir", data)  # fmt: skip
        assert busy.returncode == 1 and "running" in busy.stderr, busy.stderr
        assert len(busy.stderr.strip().splitlines()) == 1
    finally:
        srv.stop()
    # etcd A -> SQLite -> etcd B -> SQLite: one checksum everywhere
    hops = [a.url, f"sqlite://{tmp_path}/one.db", b.url, f"sqlite://{tmp_path}/two.db"]
    seen: set[str] = set()
    for src, dst in itertools.pairwise(hops):
        out = corral("migrate", "--from", src, "--to", dst, "--data-dir", data)
        assert out.returncode == 0, out.stdout + out.stderr
        assert "checksums match" in out.stdout and "bootstrap data" in out.stdout, out.stdout
        seen |= set(sums(out.stdout))
    assert len(seen) == 1, seen
    # a non-empty target is refused without --force
    again = corral("migrate", "--from", hops[1], "--to", b.url, "--data-dir", data)
    assert again.returncode == 1 and "--force" in again.stderr, again.stderr

    # restore into a fresh data dir and a fresh etcd C: same objects, a server serves them
    fresh = tmp_path / "fresh"
    out = corral("restore", "--datastore", c.url, "--data-dir", fresh,
                 "--token-file", data / "cluster-token", backup)  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    assert set(sums(out.stdout)) == backup_sum, out.stdout  # the backup's objects
    assert (fresh / "pki" / "ca.key").read_bytes() == (data / "pki" / "ca.key").read_bytes()
    secret = read_secret(c, fresh, "/registry/core/secrets/default/s1")
    assert secret["data"]["pw"] == "aHVudGVyMg=="  # hunter2: decrypted with the unpacked keys
