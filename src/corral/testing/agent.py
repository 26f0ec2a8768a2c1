"""Test kit: a real ``corral agent`` subprocess (process or oci runtime) for e2e tests.

``AgentProcess.start`` runs ``python -m corral agent ...`` against a server's kubeconfig
and returns once its Node is Ready; ``stop`` (SIGTERM: the agent leaves its pods
running, as a kubelet does), ``kill`` (SIGKILL) and ``restart`` let tests check that
pods survive the agent. Output goes to ``DATA_DIR/agent.log`` for failure messages.
An agent refused because another cluster on this host holds its bridge or the iptables
chains (another test run's, on a shared machine) is started again for a while.
``prefix`` (e.g. ``nsenter --net=/run/netns/NS``) runs the agent and its ``--reset``
under another command, and ``host`` is where its logs/exec port answers (a test host's
node IP: ``corral.testing.hosts``).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from corral.api.conditions import condition_true
from corral.testing.process import free_port

#: what an agent says when it refuses to start because another cluster holds the host
BUSY = ("belongs to the running agent of", "running pod(s) of", "KUBE-* chains")


def _node_ready(server: str, token: str, ctx: ssl.SSLContext | bool, name: str) -> bool:
    req = urllib.request.Request(
        f"{server}/api/v1/nodes/{name}", headers={"Authorization": f"Bearer {token}"}
    )
    try:
        context = ctx if isinstance(ctx, ssl.SSLContext) else None
        with urllib.request.urlopen(req, context=context, timeout=5) as r:
            node = json.loads(r.read())
    except OSError:
        return False
    return condition_true(node, "Ready")


@dataclass
class AgentProcess:
    kubeconfig: Path
    name: str
    runtime: str
    data_dir: Path
    port: int
    extra: list[str] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None
    prefix: list[str] = field(default_factory=list)
    host: str = "127.0.0.1"

    @classmethod
    def start(
        cls,
        kubeconfig: Path,
        name: str,
        runtime: str,
        data_dir: Path,
        *,
        extra: list[str] | None = None,
        timeout: float = 30.0,
    ) -> AgentProcess:
        agent = cls(kubeconfig, name, runtime, data_dir, free_port(), list(extra or []))
        agent.launch(timeout)
        return agent

    @property
    def log_path(self) -> Path:
        return self.data_dir / "agent.log"

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def launch(self, timeout: float = 30.0, busy_timeout: float = 90.0) -> None:
        """Start the agent and wait until its Node is Ready. While it refuses to start
        because another cluster on this host (another test run's) holds its bridge or
        the iptables chains, try again for up to ``busy_timeout`` seconds."""
        deadline = time.monotonic() + busy_timeout
        while True:
            try:
                return self._launch(timeout)
            except RuntimeError as e:
                if not any(w in str(e) for w in BUSY) or time.monotonic() > deadline:
                    raise
            time.sleep(2.0)

    def _launch(self, timeout: float) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        argv = [
            *self.prefix, sys.executable, "-m", "corral", "agent",
            "--kubeconfig", str(self.kubeconfig),
            "--name", self.name,
            "--runtime", self.runtime,
            "--data-dir", str(self.data_dir),
            "--port", str(self.port),
            *self.extra,
        ]  # fmt: skip
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop()  # an agent that never became Ready is not left running
            raise

    def _wait_ready(self, timeout: float) -> None:
        from corral.client.rest import KubeConfig

        cfg = KubeConfig.load(self.kubeconfig)
        ctx = cfg.ssl_context()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"agent exited ({self.proc.returncode}):\n{self.log_tail()}")
            if self._serving() and _node_ready(cfg.server, cfg.token, ctx, self.name):
                return
            time.sleep(0.05)
        raise RuntimeError(f"agent {self.name} not Ready after {timeout}s:\n{self.log_tail()}")

    def _serving(self) -> bool:
        """The agent's own server answers (any status): this process is up. An agent
        with ``--tls-cert-file`` answers HTTPS (its certificate is not the point here)."""
        ctx = None
        if "--tls-cert-file" in self.extra:
            ctx = ssl.create_default_context()
            ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        url = f"{'https' if ctx else 'http'}://{self.host}:{self.port}/healthz"
        try:
            with urllib.request.urlopen(url, timeout=2, context=ctx):
                return True
        except urllib.error.HTTPError:
            return True
        except OSError:
            return False

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def reset(self) -> None:
        """Stop and remove every container and sandbox left in the data dir
        (``corral agent --reset``): what a test's teardown does after ``stop``."""
        argv = [*self.prefix, sys.executable, "-m", "corral", "agent", "--reset"]
        argv += ["--runtime", self.runtime]
        argv += ["--data-dir", str(self.data_dir), "--name", self.name]
        subprocess.run(argv, check=True, capture_output=True, timeout=120)

    def restart(self, timeout: float = 30.0) -> None:
        self.stop()
        self.launch(timeout)


def _conmons_under(d: str) -> list[str]:
    """The pids of the conmon processes that supervise containers kept under ``d``."""
    out = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv[0].endswith(b"conmon") and any(a.startswith(d.encode() + b"/") for a in argv):
            out.append(proc.name)
    return out


def simulate_reboot(data_dir: Path) -> None:
    """What a host reboot does to a cluster kept in ``data_dir``, and to nothing else on
    this machine: every process of it killed (shims and conmons, containers, agents), its overlay
    mounts and pod network namespaces gone. The data directory itself stays."""
    d = str(data_dir)
    ps = subprocess.run(["pgrep", "-f", f"shim.py {d}"], capture_output=True, text=True)
    for shim in [*ps.stdout.split(), *_conmons_under(d)]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(shim), signal.SIGKILL)
    for root in data_dir.rglob("runc"):
        if not root.is_dir():
            continue
        ids = subprocess.run(
            ["runc", "--root", str(root), "list", "-q"], capture_output=True, text=True
        )
        for cid in ids.stdout.split():
            subprocess.run(["runc", "--root", str(root), "kill", cid, "KILL"], capture_output=True)
        time.sleep(0.2)
        for cid in ids.stdout.split():
            subprocess.run(["runc", "--root", str(root), "delete", "-f", cid], capture_output=True)
    for state in data_dir.rglob("state.json"):  # process-runtime containers: their pids
        try:
            pid = int(json.loads(state.read_text()).get("pid", 0))
        except (OSError, ValueError):
            continue
        if pid > 1:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    with open("/proc/self/mountinfo") as f:
        mounts = [line.split()[4] for line in f]
    for target in reversed(mounts):
        if target.startswith(d + "/"):
            subprocess.run(["umount", "-l", target], capture_output=True)
    for pods in data_dir.glob("agents/*/pods"):
        for uid in (p.name for p in pods.iterdir()):
            ns = "corral-" + uid.replace("-", "")[:16]
            subprocess.run(["ip", "netns", "delete", ns], capture_output=True)
