"""Test kit: a real ``corral up`` process, ``corral down``, and what a cluster left on the host.

``UpProcess(data_dir, port)`` runs ``python -m corral up`` (the Mesos, Chronos and
Marathon ports off unless ``extra`` turns them on, so several can run beside other
tests), ``start`` returns once it printed "Corral is up", ``signal`` stops it as Ctrl-C
(SIGINT) or a kill would, and ``down`` runs ``corral down``. ``leftovers`` looks at the
host on its own (``ip``, ``iptables-save``, ``/proc``, ``/sys/fs/cgroup``; not through
``corral.cli.down``, whose work it checks) for anything of one data dir: processes,
network namespaces and mounts of its pods, bridges its agents marked, cgroups of its
pods, KUBE-* chains while no live proxy of another cluster claims them, and the
portmap plugin's chains of its pods (and its shared ones, once no hostPort is left).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from corral.testing.wait import eventually


@dataclass
class UpProcess:
    data_dir: Path
    port: int
    agents: int = 1
    extra: list[str] = field(default_factory=list)
    proc: subprocess.Popen[str] | None = None

    @property
    def out_path(self) -> Path:
        return self.data_dir.parent / f"{self.data_dir.name}.out"

    @property
    def kubeconfig(self) -> Path:
        return self.data_dir / "kubeconfig"

    def argv(self) -> list[str]:
        return [
            sys.executable, "-m", "corral", "up", "--data-dir", str(self.data_dir),
            "--port", str(self.port), "--agents", str(self.agents),
            "--mesos-port", "0", "--chronos-port", "0", "--marathon-port", "0",
            "--log-level", "WARNING", *self.extra,
        ]  # fmt: skip

    def launch(self) -> None:
        """Start ``corral up`` without waiting."""
        self.out_path.parent.mkdir(parents=True, exist_ok=True)
        out = open(self.out_path, "w")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen(self.argv(), stdout=out, stderr=subprocess.STDOUT, text=True)
        out.close()

    def start(self, timeout: float = 90.0, busy_timeout: float = 300.0) -> str:
        """Start it and return its output once it says "Corral is up" and every node is
        Ready; fail with the output when it exits or takes longer. While another cluster
        on this host (another test run's) makes it refuse to start, retry for up to
        ``busy_timeout`` seconds."""
        deadline = time.monotonic() + busy_timeout
        while True:
            self.launch()
            assert self.proc is not None
            rc = self.proc.wait() if self._refused_at_once() else None
            if rc is None:
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"the host stayed busy:\n{self.output()}")
            time.sleep(2.0)

        def up() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"corral up exited ({self.proc.returncode}):\n{self.output()}")
            return "Corral is up" in self.output()

        eventually(up, timeout=timeout, interval=0.1)
        if "not Ready" in self.output():
            raise AssertionError(f"a node did not come up:\n{self.output()}")
        return self.output()

    def _refused_at_once(self, wait: float = 60.0) -> bool:
        """``corral up`` exited saying another cluster holds the host (it checks before
        it starts anything)."""
        assert self.proc is not None
        deadline = time.monotonic() + wait
        while self.proc.poll() is None and time.monotonic() < deadline:
            if "API server on" in self.output():
                return False
            time.sleep(0.05)
        return self.proc.poll() is not None and "corral up: not starting" in self.output()

    def output(self) -> str:
        try:
            return self.out_path.read_text()
        except OSError:
            return ""

    def signal(self, sig: int = signal.SIGINT, timeout: float = 60.0) -> int:
        """Send ``sig`` and wait for the exit (SIGINT: Ctrl-C, the pods keep running)."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        rc = self.proc.wait(timeout)
        eventually(lambda: not cluster_processes(self.data_dir, shims=False), timeout=30)
        return rc

    def down(self, *extra: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "corral", "down", "--data-dir", str(self.data_dir)]
        res = subprocess.run([*argv, *extra], capture_output=True, text=True, timeout=timeout)
        if self.proc is not None:
            self.proc.wait(30)
        return res


def cluster_processes(data_dir: Path, *, shims: bool = True) -> list[str]:
    """Command lines of the processes that name ``data_dir`` or a path in it (without
    the containers' monitors, shims or conmon, unless ``shims``)."""
    root = str(data_dir.absolute()).rstrip("/")
    found = []
    for name in filter(str.isdigit, os.listdir("/proc")):
        if int(name) == os.getpid():
            continue
        try:
            argv = Path(f"/proc/{name}/cmdline").read_bytes().decode(errors="replace").split("\0")
            state = Path(f"/proc/{name}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        monitor = any(Path(a).name in ("shim.py", "conmon") for a in argv[:4])
        if state == "Z" or (not shims and monitor):
            continue
        if any(a == root or a.startswith(root + "/") for a in argv):
            found.append(" ".join(argv).strip())
    return found


def _pod_uids(data_dir: Path) -> set[str]:
    return {p.name for p in data_dir.glob("agents/*/pods/*")} | {
        p.stem for p in data_dir.glob("agents/*/oci/sandboxes/*.json")
    }


def marked_bridges(data_dir: Path) -> list[str]:
    """Bridges whose alias (``corral pid=.. dir=..``) names an agent of ``data_dir``."""
    root = str(data_dir.absolute()).rstrip("/") + "/"
    found = []
    for d in Path("/sys/class/net").iterdir():
        try:
            alias = (d / "ifalias").read_text().strip()
        except OSError:
            continue
        if (d / "bridge").is_dir() and f" dir={root}" in alias:
            found.append(d.name)
    return sorted(found)


def _foreign_proxy_alive(data_dir: Path) -> bool:
    """A live Service proxy of another data dir claims this host's KUBE-* chains."""
    root = str(data_dir.absolute()).rstrip("/") + "/"
    for rec in Path("/run/corral").glob("iptables-*.json"):
        try:
            d = json.loads(rec.read_text())
        except (OSError, ValueError):
            continue
        if not str(d.get("owner", "")).startswith(root) and Path(f"/proc/{d.get('pid')}").exists():
            return True
    return False


def leftovers(data_dir: Path, bridges: tuple[str, ...] = ()) -> dict[str, list[str]]:
    """What of the cluster in ``data_dir`` is still on this host, by kind (empty lists:
    nothing). ``bridges``: names it used, checked even if their mark is gone."""
    uids = _pod_uids(data_dir)
    ns_names = {"corral-" + u.replace("-", "")[:16] for u in uids}
    have_ns = set(os.listdir("/run/netns")) if Path("/run/netns").is_dir() else set()
    root = str(data_dir.absolute()).rstrip("/") + "/"
    with open("/proc/self/mountinfo") as f:
        mounts = [line.split()[4] for line in f if line.split()[4].startswith(root)]
    links = set(os.listdir("/sys/class/net"))
    cgroups = sorted(
        str(h / "corral" / u)
        for h in Path("/sys/fs/cgroup").iterdir()
        for u in uids
        if (h / "corral" / u).is_dir()
    )
    save = subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
    chains: list[str] = []
    if not _foreign_proxy_alive(data_dir):
        chains = [line for line in save.splitlines() if line.startswith(":KUBE-")]
    # hostPorts: the portmap plugin's rules name the pod (its CNI container id, the uid)
    chains += [
        line for line in save.splitlines() if "CNI-" in line and any(u in line for u in uids)
    ]
    if ":CNI-DN-" not in save and "-A CNI-HOSTPORT-DNAT" not in save:
        chains += [line for line in save.splitlines() if line.startswith(":CNI-HOSTPORT-")]
    return {
        "processes": cluster_processes(data_dir),
        "network namespaces": sorted(have_ns & ns_names),
        "mounts": mounts,
        "bridges": sorted(set(marked_bridges(data_dir)) | (links & set(bridges))),
        "cgroups": cgroups,
        "iptables chains": chains,
    }


def wait_clean(data_dir: Path, bridges: tuple[str, ...] = (), timeout: float = 10.0) -> None:
    """Fail with the leftovers unless nothing of ``data_dir`` is left within ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        left = {k: v for k, v in leftovers(data_dir, bridges).items() if v}
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert not left, f"left on the host by {data_dir}: {json.dumps(left, indent=1)}"
