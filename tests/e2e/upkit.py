"""``corral up`` as a child process, for the e2e tests that need a whole local cluster
(``test_up.py``, ``test_dashboard.py``). Imported by name (``from upkit import Up``), as
``e2ekit`` is: a conftest.py here would shadow ``tests/conftest.py``.

``Up.start`` runs ``corral up`` on the given API port (``extra``: more of its flags, such
as the faces' ports), its output in ``up.out`` beside the data directory, and returns that
output once it says "Corral is up". ``kill`` is a host crash (SIGKILL: the children see
their stdin close and exit too). ``stop`` is the teardown every test needs, whatever
happened: Ctrl-C, then ``corral agent --reset`` of each agent, so no mounts, network
namespaces or rules are left behind.

``corral up`` admits one cluster per host (its agents' ports, bridges, rules): when
another holds this host the first start skips the test with ``corral up``'s words; a later
start (after ``kill``) that is refused fails it, since the cluster in the way is this one's.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest
import yaml

from corral.testing.wait import eventually

#: how long ``corral up`` may take to say it is up (a wait, not a measure)
START_TIMEOUT = 90.0


class Up:
    """One ``corral up`` cluster in ``data`` (module docstring)."""

    def __init__(self, data: Path, port: int, extra: Sequence[str] = ()) -> None:
        self.data, self.port, self.extra = data, port, list(extra)
        self.proc: subprocess.Popen[str] | None = None
        self.started = False

    @property
    def out(self) -> Path:
        return self.data.parent / "up.out"

    @property
    def kubeconfig(self) -> Path:
        return self.data / "kubeconfig"

    @property
    def token(self) -> str:
        """The bearer token of the kubeconfig ``corral up`` wrote."""
        cfg = yaml.safe_load(self.kubeconfig.read_text())
        return str(cfg["users"][0]["user"]["token"])

    @property
    def ui(self) -> str:
        return f"https://127.0.0.1:{self.port}/ui/"

    def start(self) -> str:
        runtime = "oci" if shutil.which("runc") else "process"
        argv = [sys.executable, "-m", "corral", "up", "--data-dir", str(self.data)]
        argv += ["--port", str(self.port), *self.extra]
        argv += ["--runtime", runtime, "--log-level", "WARNING"]
        out = open(self.out, "w")  # noqa: SIM115 - handed to the child
        self.proc = proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, text=True)
        out.close()
        eventually(
            lambda: "Corral is up" in self.output() or proc.poll() is not None, START_TIMEOUT
        )
        if proc.poll() is not None and not self.started and "not starting" in self.output():
            pytest.skip(f"another cluster holds this host: {self.output().strip()}")
        assert proc.poll() is None, self.output()
        self.started = True
        return self.output()

    def output(self) -> str:
        try:
            return self.out.read_text()
        except OSError:
            return ""

    def kill(self) -> None:
        """SIGKILL: the children see their stdin close and exit too."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()
        eventually(lambda: not children_of(self.data), timeout=30)

    def stop(self) -> None:
        """Ctrl-C (when still running), then reset every agent of the cluster."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            self.proc.wait(30)
        for agent_dir in (self.data / "agents").glob("*"):
            subprocess.run(
                [sys.executable, "-m", "corral", "agent", "--reset", "--data-dir", str(agent_dir),
                 "--runtime", "oci" if (agent_dir / "oci").exists() else "process"],
                capture_output=True, timeout=120,
            )  # fmt: skip


def children_of(data: Path) -> list[str]:
    """The pids of the processes ``corral up`` in ``data`` started (they name its kubeconfig)."""
    res = subprocess.run(
        ["pgrep", "-f", f"kubeconfig {data}/kubeconfig"], capture_output=True, text=True
    )
    return res.stdout.split()
