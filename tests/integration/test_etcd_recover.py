"""Quorum loss and ``corral etcd recover`` / ``corral etcd add`` on a real three-member etcd.

The layout ``corral up --servers 3`` leaves (``DATA/etcd/cluster.json``, members m0..m2):
two members are SIGKILLed, the survivor has no leader (``corral etcd status`` fails);
``corral etcd recover`` makes it a one-member cluster that takes writes again with the
data it had; ``corral etcd add`` brings the two lost members back as new members.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from corral.cli.etcd import member_pids, read_layout, stop_pids, write_layout
from corral.cli.main import main
from corral.storage.etcd import EtcdStorage
from corral.util.etcd_process import EtcdCluster

KEY = "/registry/core/configmaps/default/"


def corral(*args: str | Path) -> tuple[int, str]:
    """``corral ARGS``: ``status`` in this process (it only reads), the others as the
    real command, whose etcd members outlive it."""
    if args[1] != "status":
        cmd = [sys.executable, "-m", "corral", *map(str, args)]
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        return run.returncode, run.stdout + run.stderr
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        code = main([str(a) for a in args])
    return code, out.getvalue()


async def _write_and_read(endpoints: list[str], name: str) -> list[str]:
    store = EtcdStorage(endpoints, retry_for=5.0)
    await store.start()
    try:
        await store.create(KEY + name, {"metadata": {"name": name, "namespace": "default"}})
        kvs, _ = await store.list(KEY)
        return sorted(kv.key.rsplit("/", 1)[1] for kv in kvs)
    finally:
        await store.close()


@contextlib.contextmanager
def recovered(tmp_path: Path) -> Iterator[Path]:
    """Three members, two SIGKILLed, ``corral etcd recover``: writes work again on the
    survivor, which kept its data. Yields the data dir; stops every member after."""
    data = tmp_path / "data"
    base = data / "etcd"
    cluster = EtcdCluster(base, 3)
    try:
        cluster.start()
        write_layout(base, cluster.host,
                     [(m.name, m.client_port, m.peer_port) for m in cluster.members])  # fmt: skip
        assert asyncio.run(_write_and_read(cluster.endpoints, "before")) == ["before"]
        cluster.kill(1)
        cluster.kill(2)
        code, out = corral("etcd", "status", "--data-dir", data)
        assert code == 1 and "0/3 healthy" in out, out  # no leader: nobody is healthy

        code, out = corral("etcd", "recover", "--data-dir", data)
        assert code == 0, out
        _, members = read_layout(base)
        assert [m["name"] for m in members] == ["m0"]
        endpoints = [f"{cluster.host}:{m['client_port']}" for m in members]
        assert asyncio.run(_write_and_read(endpoints, "after")) == ["after", "before"]
        yield data
    finally:
        cluster.stop()
        stop_pids(list(member_pids(base).values()))


def test_quorum_loss_then_recover_restores_writes(tmp_path: Path) -> None:
    with recovered(tmp_path):
        pass


@pytest.mark.slow  # etcd takes one member change per 5 s (its HealthInterval)
def test_recover_then_add_back_the_lost_members(tmp_path: Path) -> None:
    with recovered(tmp_path) as data:
        code, out = corral("etcd", "recover", "--data-dir", data)  # again: forgets no one
        assert code == 0 and "m1, m2 dropped" in out, out
        code, out = corral("etcd", "add", "--data-dir", data)
        assert code == 0, out
        code, out = corral("etcd", "status", "--data-dir", data)
        assert code == 0 and "3/3 healthy" in out, out
