"""``corral up --servers N --datastore etcd``: a highly available cluster on one machine.

``main`` (cli/main.py) asks ``local_cluster`` for a ``LocalHA`` when ``corral up`` is given
``--servers N`` (N > 1) or ``--datastore etcd``. It then:

1. starts an etcd cluster of N members (``util/etcd_process.EtcdCluster``, Debian's
   ``etcd-server``) under ``DATA/etcd/`` on client/peer ports 2379/2380, 2381/2382, ...
   (``--etcd-port P``: P, P+1, P+2, ...; 0: free ports), before server 0 starts;
2. runs server 0 in the ``corral up`` process as today (data dir ``DATA``, ports
   ``--port``, ``--mesos-port``, ``--marathon-port``, ``--chronos-port``); its first start
   makes the cluster's bootstrap data (``apiserver/bootstrap_data``: the shared CA and
   keys, sealed with ``DATA/cluster-token``);
3. starts servers 1..N-1 at the same time as ``corral server --token-file
   DATA/cluster-token`` children (the token is made first, so whichever server creates
   the bootstrap data, the others adopt it), data dirs ``DATA/servers/<i>``, each port +i (``--port 0``: free ports), their
   loops in-process (elected: one leader per loop across the servers), their logs in
   ``DATA/servers/<i>/server.log``; the agents and hollow nodes run under server 0 only,
   and every server names all of them to its clients (``--peer-urls``, the kubeconfigs'
   ``corral.dev/servers`` extension: ``client/rest.py``).

Stopping ``corral up`` (SIGTERM, ``corral down``) stops servers N-1..1, server 0, then
etcd; ``corral down`` also stops any of them a killed ``corral up`` left (they name
``DATA`` on their command lines). ``add_join_flags`` adds ``--join``, ``--token`` and
``--token-file`` to ``corral server``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from corral.util.ports import free_ports

if TYPE_CHECKING:
    from corral.apiserver.server import Server
    from corral.util.etcd_process import EtcdCluster

#: ``corral up --datastore etcd``: a local etcd cluster (rather than a URL)
LOCAL_ETCD = "etcd"
ETCD_PORT = 2379
SERVER_START_TIMEOUT = 60.0


def add_join_flags(p: argparse.ArgumentParser, *, server: bool) -> None:
    """``--join``, ``--token``, ``--token-file`` (``corral server``); ``--servers`` and
    ``--etcd-port`` (``corral up``)."""
    if not server:
        p.add_argument(
            "--servers",
            type=int,
            default=1,
            metavar="N",
            help="run N API servers on one etcd cluster of N members (with --datastore etcd)",
        )
        p.add_argument(
            "--etcd-port",
            type=int,
            default=ETCD_PORT,
            metavar="PORT",
            help=f"--datastore etcd: member i's client port is PORT+2i, its peer port "
            f"PORT+2i+1 (default {ETCD_PORT}; 0: free ports)",
        )
        return
    p.add_argument(
        "--join",
        action="store_true",
        help="join the cluster whose bootstrap data (CA, keys) is in the etcd datastore; "
        "never make a new one",
    )
    p.add_argument(
        "--token",
        default="",
        help="the cluster token that opens the bootstrap data (default: DATA_DIR/cluster-token; "
        "the first server makes one there)",
    )
    p.add_argument(
        "--token-file", type=Path, default=None, metavar="FILE", help="read --token from FILE"
    )
    p.add_argument(
        "--peer-urls",
        type=lambda v: [u.strip() for u in v.split(",") if u.strip()],
        default=[],
        metavar="URL,URL",
        help="every API server of the cluster (this one too): the kubeconfigs it writes "
        "name them all, so clients fail over between them",
    )


def local_cluster(args: argparse.Namespace) -> LocalHA | None:
    """The HA pieces of ``corral up`` (module docstring), or None for a plain one. Points
    ``args.datastore`` at the local etcd cluster. ``ValueError`` for bad flags."""
    servers = int(getattr(args, "servers", 1))
    if servers < 1:
        raise ValueError("--servers must be at least 1")
    if servers == 1 and args.datastore != LOCAL_ETCD:
        return None
    if args.datastore not in (None, LOCAL_ETCD):
        raise ValueError("--servers N starts its own etcd: give --datastore etcd (or nothing)")
    return LocalHA(args, servers)


class LocalHA:
    """The etcd cluster and servers 1..N-1 of ``corral up --servers N``."""

    def __init__(self, args: argparse.Namespace, servers: int) -> None:
        from corral.cli.etcd import LAYOUT, cluster_from_layout, read_layout, write_layout
        from corral.util.etcd_process import EtcdCluster

        self.data_dir: Path = args.data_dir
        self.servers = servers
        self.bind: str = args.bind
        host = "127.0.0.1" if self.bind in ("0.0.0.0", "", "::") else self.bind
        self.host = host
        base_dir = self.data_dir / "etcd"
        if (base_dir / LAYOUT).exists():  # the members of the last run (after a recovery too)
            etcd_host, members = read_layout(base_dir)
            self.etcd: EtcdCluster = cluster_from_layout(base_dir, etcd_host, members)
        else:
            base = int(args.etcd_port)
            ports = [(base + 2 * i, base + 2 * i + 1) for i in range(servers)] if base else None
            self.etcd = EtcdCluster(base_dir, servers, ports=ports)
            write_layout(base_dir, self.etcd.host,
                         [(m.name, m.client_port, m.peer_port) for m in self.etcd.members])  # fmt: skip
        args.datastore = self.etcd.url

        def port(value: int, i: int) -> int:
            return 0 if value == 0 else value + i

        # --port 0: free ports picked now, so every server's URL is known up front
        etcd_ports = {p for m in self.etcd.members for p in (m.client_port, m.peer_port)}
        api = free_ports(servers, host, avoid=etcd_ports) if args.port == 0 else None
        if api is not None:
            args.port = api[0]
        self.ports = [
            {
                "api": api[i] if api is not None else args.port + i,
                "mesos": port(args.mesos_port, i),
                "marathon": port(args.marathon_port, i),
                "chronos": port(args.chronos_port, i),
            }
            for i in range(servers)
        ]
        self.urls = [f"https://{host}:{p['api']}" for p in self.ports]
        self.log_level: str = args.log_level
        self.history: int = args.history
        self.procs: list[subprocess.Popen[bytes]] = []

    def server_dir(self, i: int) -> Path:
        return self.data_dir if i == 0 else self.data_dir / "servers" / str(i)

    def server_argv(self, i: int) -> list[str]:
        """``corral server`` arguments of server ``i`` (>= 1)."""
        p = self.ports[i]
        return [
            sys.executable, "-m", "corral", "server",
            "--data-dir", str(self.server_dir(i)),
            "--datastore", self.etcd.url,
            "--token-file", str(self.data_dir / "cluster-token"),
            "--bind", self.bind, "--port", str(p["api"]),
            "--mesos-port", str(p["mesos"]),
            "--marathon-port", str(p["marathon"]),
            "--chronos-port", str(p["chronos"]),
            "--loops", "in-process", "--no-metrics-server",
            "--history", str(self.history),
            "--log-level", self.log_level,
            "--peer-urls", ",".join(self.urls),
        ]  # fmt: skip

    async def start(self, server: Server) -> None:
        """The cluster token, etcd, then servers 1..N-1 (children) and server 0 (here) at
        once: all hold the token, so whichever creates the bootstrap data first, the
        others adopt it (``bootstrap_data.exchange``). Everything started is stopped
        again if server 0 fails to start."""
        from corral.apiserver import bootstrap_data

        if not bootstrap_data.resolve_token(self.data_dir, "", None):
            token = bootstrap_data.new_token()
            bootstrap_data.save_token(self.data_dir, token)
            where = self.data_dir / bootstrap_data.TOKEN_FILE
            print(f"  cluster token in {where} (servers on other machines join with "
                  "--token-file of a copy of it)", flush=True)  # fmt: skip
        print(
            f"  etcd: {len(self.etcd.endpoints)} member(s) on {', '.join(self.etcd.endpoints)} "
            f"(data {self.etcd.base_dir})",
            flush=True,
        )
        await asyncio.to_thread(self.etcd.start)
        try:
            for i in range(1, self.servers):
                d = self.server_dir(i)
                d.mkdir(parents=True, exist_ok=True)
                with open(d / "server.log", "ab") as log:
                    self.procs.append(
                        subprocess.Popen(
                            self.server_argv(i),
                            stdin=subprocess.DEVNULL,
                            stdout=log,
                            stderr=subprocess.STDOUT,
                        )
                    )
            await server.start()
        except BaseException:
            await self.stop(server)
            raise

    async def start_servers(self, t0: float) -> None:
        """Print servers 1..N-1 as each answers ``/readyz``."""
        ctx = ssl.create_default_context(cafile=str(self.data_dir / "pki" / "ca.crt"))
        for i, proc in enumerate(self.procs, start=1):
            ok = await asyncio.to_thread(self._wait_ready, i, proc, ctx)
            took = time.monotonic() - t0
            if ok:
                print(f"  API server {i} on {self.urls[i]} ({took:.1f} s)", flush=True)
            else:
                log = self.server_dir(i) / "server.log"
                print(f"  API server {i} not answering on {self.urls[i]}; see {log}", flush=True)

    def _wait_ready(self, i: int, proc: subprocess.Popen[bytes], ctx: ssl.SSLContext) -> bool:
        import urllib.error
        import urllib.request

        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while time.monotonic() < deadline and proc.poll() is None:
            url = f"{self.urls[i]}/readyz"
            with (
                contextlib.suppress(OSError, urllib.error.URLError),
                urllib.request.urlopen(url, context=ctx, timeout=2) as r,
            ):
                if r.status == 200:
                    return True
            time.sleep(0.1)
        return False

    async def stop(self, server: Server) -> None:
        """Servers N-1..1 (SIGTERM, then SIGKILL after 15 s), server 0, then etcd."""
        for proc in self.procs:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        for proc in reversed(self.procs):
            try:
                await asyncio.to_thread(proc.wait, 15.0)
            except subprocess.TimeoutExpired:
                proc.kill()
                await asyncio.to_thread(proc.wait)
        try:
            await server.stop()
        finally:
            await asyncio.to_thread(self.stop_etcd)

    def stop_etcd(self) -> None:
        """Every member of ``DATA/etcd``: ours, and any ``corral etcd recover``/``add``
        started while we ran."""
        from corral.cli.etcd import member_pids, stop_pids

        self.etcd.stop()
        stop_pids(list(member_pids(self.etcd.base_dir).values()))
