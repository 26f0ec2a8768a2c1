"""``corral up --servers 3 --datastore etcd`` and ``corral down``; ``corral server --join``.

The real command on free ports: a three-member etcd and three API servers come up;
kubectl works through each server's own kubeconfig (one CA, one admin token: the shared
bootstrap data), and what is written through one is read through the others; the admin
kubeconfig names all three servers; a server joining with a wrong token fails at once
with one line; ``corral down`` leaves no etcd and no server process behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import Kubectl
from corral.cli.down import processes
from corral.cli.etcd import member_pids, read_layout

pytestmark = pytest.mark.kubectl


def _wait_up(proc: subprocess.Popen[str], log: Path, timeout: float = 90.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log.read_text()
        if "Corral is up" in text:
            return text
        if proc.poll() is not None:
            raise AssertionError(f"corral up exited {proc.returncode}:\n{text}")
        time.sleep(0.1)
    raise AssertionError(f"corral up not up after {timeout:.0f} s:\n{log.read_text()}")


def test_up_three_servers_join_and_down(tmp_path: Path) -> None:
    data = tmp_path / "data"
    log = tmp_path / "up.log"
    argv = [
        sys.executable, "-m", "corral", "up", "--servers", "3", "--datastore", "etcd",
        "--data-dir", str(data), "--agents", "0", "--port", "0", "--etcd-port", "0",
        "--mesos-port", "0", "--marathon-port", "0", "--chronos-port", "0",
        "--no-metrics-server", "--no-scheduler", "--no-controllers", "--log-level", "WARNING",
    ]  # fmt: skip
    with open(log, "w") as out:
        up = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, text=True)
    try:
        text = _wait_up(up, log)
        assert text.count("API server") == 3, text
        host, members = read_layout(data / "etcd")
        assert len(members) == 3 and len(member_pids(data / "etcd")) == 3
        token = data / "cluster-token"
        assert token.stat().st_mode & 0o777 == 0o600
        configs = [data / "kubeconfig", *(data / "servers" / str(i) / "kubeconfig" for i in (1, 2))]
        ctls = [Kubectl(k, tmp_path / f"cache{i}") for i, k in enumerate(configs)]
        ctls[1]("create", "configmap", "via-one", "--from-literal=a=b")
        for ctl in ctls:  # every server: same CA and token, the same objects
            assert ctl("get", "configmap", "via-one", "-o", "name").stdout.strip() == (
                "configmap/via-one"
            )
        cfg = yaml.safe_load(configs[0].read_text())
        cluster = cfg["clusters"][0]["cluster"]
        servers = [u for e in cluster.get("extensions", []) for u in e["extension"]["servers"]]
        assert len(set(servers)) == 3, cluster  # the admin kubeconfig names all three

        # a server with a wrong token: one line, at once
        etcd_url = "etcd://" + ",".join(f"{host}:{m['client_port']}" for m in members)
        bad = subprocess.run(
            [sys.executable, "-m", "corral", "server", "--data-dir", str(tmp_path / "bad"),
             "--datastore", etcd_url, "--join", "--token", "not-the-token", "--port", "0"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert bad.returncode == 1
        assert bad.stderr.strip().splitlines() == [
            "corral server: the cluster token does not open the bootstrap data in the "
            "datastore (wrong --token or --token-file?)"
        ], bad.stderr
        assert not (tmp_path / "bad" / "pki" / "ca.key").exists()

        down = subprocess.run(
            [sys.executable, "-m", "corral", "down", "--data-dir", str(data)],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert down.returncode == 0, down.stdout + down.stderr
        assert up.wait(30) == 0
        assert processes(data) == {} and member_pids(data / "etcd") == {}
    finally:
        if up.poll() is None:
            up.send_signal(signal.SIGTERM)
            try:
                up.wait(30)
            except subprocess.TimeoutExpired:
                up.kill()
        for pid in [*processes(data), *member_pids(data / "etcd").values()]:
            os.kill(pid, signal.SIGKILL)
