"""Backup and restore in the ``ha`` scenario (``ha.py``): ``corral backup`` of the live
cluster's etcd, ``corral restore`` into a fresh data dir (SQLite, as on a new host), a
``corral server`` started on it, and the load's objects compared with what the cluster
held: the same names with the same payloads (ConfigMaps, and Secrets decrypted with the
keys the restore unpacked).

``backup`` runs while the cluster is up; ``RestoreCheck`` does the rest in a thread so
that it overlaps the cluster's shutdown.
"""

from __future__ import annotations

import json
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

from corral.testing.faults.crash_load import KINDS, NS, PREFIX, Endpoint, payload_of
from corral.testing.ha import HACluster
from corral.testing.process import ServerProcess

State = dict[tuple[str, str], str]


def objects(ep: Endpoint, limit: float = 30.0) -> State:
    """The load's objects as one server lists them: (resource, name) -> payload. A list
    is asked again (for up to ``limit`` s) while it gets no answer or a 429/5xx: a server
    just started, or one whose cluster is busy, may be slow to answer once."""
    out: State = {}
    for r in KINDS:
        deadline = time.monotonic() + limit
        while True:
            ans = ep.once("GET", f"/api/v1/namespaces/{NS}/{r}")
            retry = ans is None or ans[0] == 429 or ans[0] >= 500
            if not retry or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        if ans is None or ans[0] != 200:
            raise RuntimeError(f"list {r}: {ans}")
        for obj in json.loads(ans[1])["items"]:
            name = obj["metadata"]["name"]
            if name.startswith(PREFIX):
                out[(r, name)] = payload_of(r, obj)[0]
    return out


def backup(cluster: HACluster, out: Path) -> str:
    """``corral backup`` of the cluster's etcd through server 0's data dir; its output."""
    assert cluster.etcd is not None
    argv = [sys.executable, "-m", "corral", "backup", "--data-dir", str(cluster.members[0].data_dir),
            "--datastore", cluster.etcd.url, str(out)]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode:
        raise RuntimeError(f"corral backup: {done.stdout}{done.stderr}")
    return done.stdout


class RestoreCheck(threading.Thread):
    """Restore ``file`` into ``fresh`` and compare its objects with ``want``."""

    def __init__(self, file: Path, fresh: Path, token_file: Path, want: State) -> None:
        super().__init__(name="restore-check", daemon=True)
        self.file, self.fresh, self.token_file, self.want = file, fresh, token_file, want
        self.mismatches = -1
        self.objects = 0
        self.error = ""

    def run(self) -> None:
        try:
            self.check()
        except Exception as e:  # reported by the scenario
            self.error = repr(e)

    def check(self) -> None:
        argv = [sys.executable, "-m", "corral", "restore", "--data-dir", str(self.fresh),
                "--token-file", str(self.token_file), str(self.file)]  # fmt: skip
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
        if done.returncode:
            raise RuntimeError(f"corral restore: {done.stdout}{done.stderr}")
        srv = ServerProcess.start(
            self.fresh,
            extra=[
                "--no-scheduler",
                "--no-controllers",
                "--no-metrics-server",
                "--mesos-port",
                "0",
            ],
        )
        try:
            ep = Endpoint(srv.port, srv.token, ssl.create_default_context(cafile=str(srv.ca_file)))
            got = objects(ep)
        finally:
            srv.stop()
        self.objects = len(got)
        keys = set(got) | set(self.want)
        self.mismatches = sum(1 for k in keys if got.get(k) != self.want.get(k))
