"""Test kit: a highly available cluster on one machine, for the HA fault scenario and
benchmark (``testing/faults/ha.py``, ``bench/ha.py``) and the tests.

``HACluster(work, servers=3, etcd_members=3)`` starts an etcd cluster of real members
(``corral.util.etcd_process.EtcdCluster``) and ``servers`` real ``corral server``
processes on it, every port a free loopback one: server 0 first (it makes the cluster's
PKI and stores it in the datastore), then the others with ``--join`` (the same CA, keys
and admin token), each with its scheduler, Mesos master and controller manager, elected
through Leases with short timers (``lease``). ``kill(i)`` SIGKILLs a server and every process
under it at once (a machine crash: its loops get no chance to release their Leases), ``restart(i)`` starts it again on
its data dir and ports, as its supervisor would. ``leader(lease)`` names the server whose
loops hold a Lease (the Mesos master's advertised port, or the server whose process tree
holds the Lease's identity), ``kubeconfig`` is the admin's with every server URL (the
``corral.dev/servers`` cluster extension), so the ``Client`` fails over between them.

Hollow nodes run as one separate ``corral agent --runtime hollow --count N`` process given
every server URL, so a server's death does not take them along.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

from corral.client.rest import servers_extension
from corral.testing.process import ServerProcess, free_ports
from corral.util.etcd_process import EtcdCluster

Obj = dict[str, Any]

#: the Leases of the elected loops (coordination.k8s.io/v1, namespace kube-system)
SCHEDULER_LEASE = "kube-scheduler"
CONTROLLER_MANAGER_LEASE = "kube-controller-manager"
LIFECYCLE_LEASE = "corral-apiserver-lifecycle"
ADVERTISE = "corral.dev/advertise-"
#: the kubeconfig cluster extension that lists every server (``KubeConfig.servers``)
SERVERS_EXTENSION = "corral.dev/servers"
#: the Mesos master's HTTP authentication off: pymesos frameworks subscribe as they are
OPEN = [
    "--no-authenticate-http-frameworks",
    "--no-authenticate-http-readwrite",
    "--no-authenticate-http-readonly",
]


@cache
def server_flags() -> frozenset[str]:
    """The flags ``corral server`` takes (its ``--help``), so the kit uses what exists."""
    out = subprocess.run(
        [sys.executable, "-m", "corral", "server", "--help"],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    return frozenset(w.strip("[],") for w in out.stdout.split() if w.startswith(("--", "[--")))


@dataclass
class HAServer:
    """One ``corral server`` of the cluster: its ports and data dir stay across restarts."""

    index: int
    data_dir: Path
    port: int
    mesos_port: int
    argv: list[str]
    proc: ServerProcess | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def master(self) -> str:
        return f"127.0.0.1:{self.mesos_port}"

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.alive and self.proc is not None else None

    def start(self, timeout: float = 90.0) -> None:
        self.proc = ServerProcess.start(
            self.data_dir, self.port, self.argv, log_level="INFO", timeout=timeout
        )
        self.starts += 1

    def kill(self) -> None:
        """SIGKILL the server and every process under it at once, as a machine crash
        would (its loops must not get the chance to release their Leases)."""
        if self.proc is None:
            return
        pids = [self.proc.pid, *descendants(self.proc.pid)]
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.proc.kill()

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()


def descendants(pid: int) -> list[int]:
    """Every process under ``pid`` (from /proc), children first."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            parents.setdefault(ppid, []).append(int(entry.name))
    out: list[int] = []
    todo = list(parents.get(pid, []))
    while todo:
        child = todo.pop()
        out.append(child)
        todo.extend(parents.get(child, []))
    return out


@dataclass
class HACluster:
    """``servers`` API servers on an etcd of ``etcd_members`` members (module docstring).

    ``lease``: (lease duration, renew deadline, retry period) of every elected loop;
    ``mesos``: each server serves the Mesos master API (elected with the scheduler);
    ``extra``: more ``corral server`` flags for every server."""

    work: Path
    servers: int = 3
    etcd_members: int = 3
    lease: tuple[float, float, float] = (2.0, 1.5, 0.3)
    mesos: bool = True
    #: hollow nodes started (``launch_hollow``) as soon as server 0 serves
    hollow_nodes: int = 0
    extra: list[str] = field(default_factory=list)
    etcd: EtcdCluster | None = None
    members: list[HAServer] = field(default_factory=list)
    hollow: subprocess.Popen[bytes] | None = None
    _ctx: ssl.SSLContext | None = None
    _ports: list[int] = field(default_factory=list)

    # --- life cycle --------------------------------------------------------------------
    def start(self) -> None:
        self.work.mkdir(parents=True, exist_ok=True)
        try:
            self.etcd = EtcdCluster(self.work / "etcd", self.etcd_members)
            self.etcd.start()
            ports = free_ports(2 * self.servers)
            self._ports = ports[::2]
            for i in range(self.servers):
                data = self.work / ("server" if i == 0 else f"servers/{i}")
                port, mesos = ports[2 * i], ports[2 * i + 1]
                self.members.append(HAServer(i, data, port, mesos, self._argv(i, mesos)))
            self.members[0].start()
            self._write_kubeconfig()
            if self.hollow_nodes:  # while the others join: it fails over to them later
                self.launch_hollow(self.hollow_nodes)
            for srv in self.members[1:]:
                self._prepare_join(srv)
            with ThreadPoolExecutor(max(1, self.servers - 1)) as pool:  # joiners at once
                for started in [pool.submit(srv.start) for srv in self.members[1:]]:
                    started.result()
        except BaseException:
            self.stop()
            raise

    def _argv(self, i: int, mesos_port: int) -> list[str]:
        flags = server_flags()
        assert self.etcd is not None
        argv = ["--datastore", self.etcd.url, "--no-metrics-server", *self.extra]
        argv += ["--mesos-port", str(mesos_port), *OPEN] if self.mesos else ["--mesos-port", "0"]
        if "--leader-elect-lease-duration" in flags:
            lease, renew, retry = self.lease
            argv += ["--leader-elect", "--leader-elect-lease-duration", str(lease),
                     "--leader-elect-renew-deadline", str(renew),
                     "--leader-elect-retry-period", str(retry)]  # fmt: skip
        if "--peer-urls" in flags:  # every server: the kubeconfigs it issues name them all
            argv += ["--peer-urls", ",".join(f"https://127.0.0.1:{p}" for p in self._ports)]
        if i and "--join" in flags:
            argv += ["--join", "--token-file", str(self.work / "server" / "cluster-token")]
        return argv

    def _prepare_join(self, srv: HAServer) -> None:
        """Without ``--join`` (not there yet): server 0's PKI copied into the data dir."""
        if "--join" in server_flags():
            return
        srv.data_dir.mkdir(parents=True, exist_ok=True)
        src, dst = self.members[0].data_dir / "pki", srv.data_dir / "pki"
        if not dst.exists():
            shutil.copytree(src, dst)

    def _write_kubeconfig(self) -> None:
        """The admin kubeconfig of server 0 with every server URL (cluster extension)."""
        cfg = yaml.safe_load(self.members[0].data_dir.joinpath("kubeconfig").read_text())
        for entry in cfg.get("clusters") or []:
            cluster = entry["cluster"]
            cluster["server"] = self.members[0].url
            exts = [
                e for e in cluster.get("extensions") or [] if e.get("name") != SERVERS_EXTENSION
            ]
            cluster["extensions"] = [*exts, *servers_extension(self.urls)]
        self.kubeconfig.write_text(yaml.safe_dump(cfg, sort_keys=False))
        self.kubeconfig.chmod(0o600)

    def stop(self) -> None:
        """Stop everything this cluster started (hollow nodes, servers, etcd members)."""
        if self.hollow is not None and self.hollow.poll() is None:
            self.hollow.terminate()
            try:
                self.hollow.wait(15)
            except subprocess.TimeoutExpired:
                self.hollow.kill()
                self.hollow.wait()
        with ThreadPoolExecutor(max(1, len(self.members))) as pool:  # all at once
            for stopped in [pool.submit(srv.stop) for srv in self.members]:
                with contextlib.suppress(Exception):
                    stopped.result()
        if self.etcd is not None:
            self.etcd.stop()

    def __enter__(self) -> HACluster:
        self.start()
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def kill(self, i: int) -> float:
        """SIGKILL server ``i`` (its loops die with it); the monotonic time of the kill."""
        self.members[i].kill()
        return time.monotonic()

    def restart(self, i: int) -> None:
        """Start server ``i`` again on its data dir and ports (as its supervisor would)."""
        self.members[i].start()

    # --- access ---------------------------------------------------------------------------
    @property
    def urls(self) -> list[str]:
        return [s.url for s in self.members]

    @property
    def masters(self) -> str:
        """Every Mesos master, ``host:port,host:port``."""
        return ",".join(s.master for s in self.members)

    @property
    def kubeconfig(self) -> Path:
        return self.work / "admin.kubeconfig"

    @property
    def token(self) -> str:
        return (self.members[0].data_dir / "pki" / "admin.token").read_text().strip()

    @property
    def ca_file(self) -> Path:
        return self.members[0].data_dir / "pki" / "ca.crt"

    def ssl_context(self) -> ssl.SSLContext:
        if self._ctx is None:
            self._ctx = ssl.create_default_context(cafile=str(self.ca_file))
        return self._ctx

    def live(self) -> list[HAServer]:
        return [s for s in self.members if s.alive]

    def request(
        self, method: str, path: str, body: Obj | None = None, *, server: int | None = None,
        timeout: float = 10.0,
    ) -> tuple[int, Any]:  # fmt: skip
        """``(status, decoded body)`` from server ``server``, or the first live one that
        answers (a GET answered 429 or 5xx, say by a server whose etcd member is away,
        is asked of the next, as a client with several servers does); OSError when none
        does."""
        order = [self.members[server]] if server is not None else self.live()
        last: OSError = OSError("no live server")
        answer: tuple[int, Any] | None = None
        for srv in order:
            req = urllib.request.Request(
                f"{srv.url}{path}",
                data=json.dumps(body).encode() if body is not None else None,
                method=method,
                headers={
                    "Authorization": f"Bearer {self.token}",
                    "Content-Type": "application/json",
                },
            )
            try:
                with urllib.request.urlopen(req, context=self.ssl_context(), timeout=timeout) as r:
                    return r.status, json.loads(r.read() or b"null")
            except urllib.error.HTTPError as e:
                raw = e.read()
                answer = e.code, json.loads(raw) if raw.startswith(b"{") else raw
                if method != "GET" or not (e.code == 429 or e.code >= 500):
                    return answer
            except OSError as e:
                last = e
        if answer is not None:
            return answer
        raise last

    def get(self, path: str, *, server: int | None = None) -> Any:
        status, obj = self.request("GET", path, server=server)
        if status != 200:
            raise OSError(f"GET {path}: {status} {obj}")
        return obj

    # --- leases ---------------------------------------------------------------------------
    def get_lease(self, name: str) -> Obj | None:
        """The Lease ``kube-system/name`` (None when there is none or no server answers)."""
        try:
            status, obj = self.request(
                "GET", f"/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/{name}"
            )
        except OSError:
            return None
        return obj if status == 200 else None

    def holder(self, name: str) -> tuple[str, int]:
        """``(holderIdentity, leaseTransitions)`` of a Lease ("" when none holds it)."""
        spec = (self.get_lease(name) or {}).get("spec") or {}
        return str(spec.get("holderIdentity") or ""), int(spec.get("leaseTransitions") or 0)

    def leader(self, name: str = SCHEDULER_LEASE) -> int | None:
        """The index of the server whose loop holds ``name``: by the Mesos port it
        advertises, else by the holder's identity seen in a server's log."""
        lease = self.get_lease(name)
        if lease is None:
            return None
        notes = lease["metadata"].get("annotations") or {}
        mesos = notes.get(f"{ADVERTISE}mesos", "")
        for srv in self.members:
            if mesos and mesos.rsplit(":", 1)[-1] == str(srv.mesos_port):
                return srv.index
        who = str((lease.get("spec") or {}).get("holderIdentity") or "")
        for srv in self.members:
            log = srv.proc.log if srv.proc is not None else None
            if who and log is not None and log.exists() and who in log.read_text(errors="replace"):
                return srv.index
        return None

    # --- hollow nodes ---------------------------------------------------------------------
    def start_hollow(self, count: int, name: str = "hollow", timeout: float = 60.0) -> None:
        """``corral agent --runtime hollow --count N --server URL,URL,...``: Ready nodes
        ``name-0`` .. ``name-{count-1}`` once it returns."""
        if self.hollow is None:
            self.launch_hollow(count, name)
        self.wait_hollow(count, name, timeout)

    def launch_hollow(self, count: int, name: str = "hollow") -> None:
        """Start the hollow nodes' agent (``wait_hollow``: until they are Ready)."""
        data = self.work / "hollow"
        data.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, "-m", "corral", "agent", "--kubeconfig", str(self.kubeconfig),
                "--name", name, "--runtime", "hollow", "--count", str(count),
                "--data-dir", str(data)]  # fmt: skip
        argv += ["--server", ",".join(self.urls)]  # fails over between them
        with open(self.work / "hollow.log", "ab") as log:
            self.hollow = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)

    def wait_hollow(self, count: int, name: str = "hollow", timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.ready_nodes(name)) < count:
            if self.hollow is None or self.hollow.poll() is not None or time.monotonic() > deadline:
                tail = (self.work / "hollow.log").read_text(errors="replace")[-3000:]
                raise RuntimeError(f"hollow nodes not Ready: {tail}")
            time.sleep(0.1)

    def task_pods(self) -> list[Obj]:
        """The Mesos tasks' pods (namespace ``mesos``)."""
        items: list[Obj] = self.get("/api/v1/namespaces/mesos/pods")["items"]
        return items

    def master_state(self) -> Obj:
        """``/state`` of the leading Mesos master."""
        i = self.leader(SCHEDULER_LEASE)
        if i is None:
            raise OSError("no Mesos master leads")
        with urllib.request.urlopen(f"http://{self.members[i].master}/state", timeout=10) as r:
            state: Obj = json.loads(r.read())
            return state

    def ready_nodes(self, prefix: str = "") -> list[str]:
        try:
            nodes = self.get("/api/v1/nodes")["items"]
        except OSError:
            return []
        return [
            n["metadata"]["name"] for n in nodes
            if n["metadata"]["name"].startswith(prefix)
            and any(c["type"] == "Ready" and c["status"] == "True"
                    for c in (n.get("status") or {}).get("conditions") or [])
        ]  # fmt: skip
