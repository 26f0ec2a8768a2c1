"""Start, stop and recover a local etcd cluster of real ``etcd`` processes.

Used by the tests (the storage conformance suite, the HA scenarios), by ``corral up
--servers N --datastore etcd`` and by the benchmarks. Each member runs ``etcd`` (Debian's
``etcd-server``, or ``$CORRAL_ETCD``) as a child process with its data under
``base_dir/<name>`` and its log in ``base_dir/<name>.log``; members listen on free
loopback ports unless ``ports`` names them. The API is synchronous (subprocess and
urllib): callers that run an event loop call it from a thread or before the loop starts.

``tls=True`` serves clients over TLS with client certificates (``--client-cert-auth``):
a CA and the pairs are made under ``base_dir/pki`` (``util/etcd_pki.py``); ``client_tls``
names the files a client passes (``--datastore-cafile/certfile/keyfile``). Peers talk
plain HTTP on loopback.

``stop()`` ends the processes and keeps the data, so ``start()`` again brings the same
cluster back. ``recover(i)`` is etcd's disaster recovery: member ``i`` restarted alone
with ``--force-new-cluster`` on its own data, a one-member cluster that accepts writes
again after quorum was lost.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO

from corral.util.etcd_pki import EtcdPki, ensure_etcd_pki
from corral.util.ports import free_ports

#: how long ``start``/``restart``/``recover`` wait for a member to say it is healthy
START_TIMEOUT = 60.0


class EtcdError(RuntimeError):
    """A member did not start or did not become healthy; the message names its log."""


def etcd_binary() -> str:
    """The ``etcd`` executable: ``$CORRAL_ETCD``, else ``etcd`` on PATH, else
    ``/usr/bin/etcd``."""
    env = os.environ.get("CORRAL_ETCD")
    if env:
        return env
    found = shutil.which("etcd") or "/usr/bin/etcd"
    if not os.access(found, os.X_OK):
        raise EtcdError(
            "etcd is not installed: install Debian's etcd-server (apt-get install "
            "etcd-server) or name its executable in $CORRAL_ETCD"
        )
    return found


@dataclass
class _Member:
    name: str
    client_port: int
    peer_port: int
    proc: subprocess.Popen[bytes] | None = None
    log: IO[bytes] | None = field(default=None, repr=False)


class EtcdCluster:
    """A local etcd cluster of ``members`` processes (see the module docstring)."""

    def __init__(
        self,
        base_dir: Path,
        members: int = 1,
        *,
        host: str = "127.0.0.1",
        ports: list[tuple[int, int]] | None = None,
        extra_args: list[str] | None = None,
        token: str = "corral-etcd",
        tls: bool = False,
    ) -> None:
        if members < 1:
            raise ValueError("an etcd cluster needs at least one member")
        if ports is not None and len(ports) != members:
            raise ValueError(f"{members} members need {members} (client, peer) port pairs")
        self.base_dir = Path(base_dir)
        self.host = host
        self.token = token
        self.extra_args = list(extra_args or [])
        if ports is None:  # all picked at once: no two members may share a port
            picked = free_ports(2 * members, host)
            ports = list(zip(picked[::2], picked[1::2], strict=True))
        self.members = [_Member(f"m{i}", c, p) for i, (c, p) in enumerate(ports)]
        #: members dropped by ``recover`` (no longer in the cluster; never started again)
        self.removed: set[int] = set()
        self.tls = tls
        self._pki: EtcdPki | None = None

    # --- addresses ---------------------------------------------------------------------
    @property
    def endpoints(self) -> list[str]:
        """``host:client_port`` of every member, in member order (without members
        dropped by ``recover``)."""
        return [
            f"{self.host}:{m.client_port}"
            for i, m in enumerate(self.members)
            if i not in self.removed
        ]

    @property
    def url(self) -> str:
        """The datastore URL of ``corral server --datastore``: ``etcd://h:p,h:p``."""
        return "etcd://" + ",".join(self.endpoints)

    def client_url(self, i: int) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{self.host}:{self.members[i].client_port}"

    @property
    def pki(self) -> EtcdPki:
        """The certificates of a TLS cluster (made on first use under ``base_dir/pki``)."""
        if not self.tls:
            raise EtcdError("this etcd cluster serves plain HTTP (EtcdCluster(tls=True))")
        if self._pki is None:
            self._pki = ensure_etcd_pki(self.base_dir / "pki", [self.host])
        return self._pki

    @property
    def client_tls(self) -> tuple[Path, Path, Path] | None:
        """(cafile, certfile, keyfile) a client of a TLS cluster uses; None: plain HTTP."""
        if not self.tls:
            return None
        return self.pki.ca, self.pki.client_cert, self.pki.client_key

    def datastore_args(self) -> list[str]:
        """``corral server``'s flags for this cluster: ``--datastore URL`` and, with TLS,
        ``--datastore-cafile/--datastore-certfile/--datastore-keyfile``."""
        args = ["--datastore", self.url]
        files = self.client_tls
        if files is not None:
            ca, cert, key = files
            args += ["--datastore-cafile", str(ca), "--datastore-certfile", str(cert)]
            args += ["--datastore-keyfile", str(key)]
        return args

    def _peer_url(self, m: _Member) -> str:
        return f"http://{self.host}:{m.peer_port}"

    def data_dir(self, i: int) -> Path:
        return self.base_dir / self.members[i].name

    def log_path(self, i: int) -> Path:
        return self.base_dir / f"{self.members[i].name}.log"

    def pid(self, i: int) -> int | None:
        proc = self.members[i].proc
        return proc.pid if proc is not None and proc.poll() is None else None

    def running(self, i: int) -> bool:
        return self.pid(i) is not None

    # --- lifecycle ---------------------------------------------------------------------
    def start(self, timeout: float = START_TIMEOUT) -> None:
        """Start every member that is not running and wait until each is healthy."""
        self.base_dir.mkdir(parents=True, exist_ok=True)
        started = [
            i for i in range(len(self.members)) if i not in self.removed and not self.running(i)
        ]
        try:
            for i in started:
                self._spawn(i)
            for i in started:
                self._wait_healthy(i, timeout)
        except BaseException:
            for i in started:
                self._terminate(i, signal.SIGKILL)
            raise

    def _args(self, i: int, *, force_new: bool = False) -> list[str]:
        m = self.members[i]
        cluster = ",".join(
            f"{o.name}={self._peer_url(o)}"
            for j, o in enumerate(self.members)
            if j not in self.removed
        )
        args = [
            etcd_binary(),
            "--name",
            m.name,
            "--data-dir",
            str(self.data_dir(i)),
            "--listen-client-urls",
            self.client_url(i),
            "--advertise-client-urls",
            self.client_url(i),
            "--listen-peer-urls",
            self._peer_url(m),
            "--initial-advertise-peer-urls",
            self._peer_url(m),
            "--initial-cluster",
            f"{m.name}={self._peer_url(m)}" if force_new else cluster,
            "--initial-cluster-state",
            "new",
            "--initial-cluster-token",
            self.token,
            "--logger",
            "zap",
            "--log-outputs",
            "stderr",
        ]
        if force_new:
            args.append("--force-new-cluster")
        if self.tls:
            pki = self.pki
            args += ["--cert-file", str(pki.server_cert), "--key-file", str(pki.server_key)]
            args += ["--trusted-ca-file", str(pki.ca), "--client-cert-auth"]
        return args + self.extra_args

    def _spawn(self, i: int, *, force_new: bool = False) -> None:
        m = self.members[i]
        self.data_dir(i).parent.mkdir(parents=True, exist_ok=True)
        if m.log is not None:
            m.log.close()
        m.log = open(self.log_path(i), "ab")  # noqa: SIM115 - kept open while it runs
        env = dict(os.environ)
        env.pop("ETCDCTL_API", None)
        for k in [k for k in env if k.startswith("ETCD_")]:  # flags only, no surprises
            del env[k]
        m.proc = subprocess.Popen(
            self._args(i, force_new=force_new),
            stdin=subprocess.DEVNULL,
            stdout=m.log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )

    def _ssl(self) -> ssl.SSLContext | None:
        if not self.tls:
            return None
        ctx = ssl.create_default_context(cafile=str(self.pki.ca))
        ctx.load_cert_chain(self.pki.client_cert, self.pki.client_key)
        return ctx

    def _health(self, i: int) -> bool:
        url = self.client_url(i) + "/health"
        try:
            with urllib.request.urlopen(url, timeout=2, context=self._ssl()) as r:
                body = json.loads(r.read())
        except (OSError, ValueError, urllib.error.URLError):
            return False
        return str(body.get("health")) == "true"

    def _wait_healthy(self, i: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        m = self.members[i]
        while True:
            if m.proc is None or m.proc.poll() is not None:
                code = None if m.proc is None else m.proc.returncode
                raise EtcdError(
                    f"etcd member {m.name} exited ({code}) while starting: see {self.log_path(i)}"
                )
            if self._health(i):
                return
            if time.monotonic() > deadline:
                raise EtcdError(
                    f"etcd member {m.name} not healthy after {timeout:.0f} s: "
                    f"see {self.log_path(i)}"
                )
            time.sleep(0.05)

    def wait_healthy(self, i: int, timeout: float = START_TIMEOUT) -> None:
        """Wait until member ``i`` answers ``/health`` with true (it sees a leader)."""
        self._wait_healthy(i, timeout)

    def _terminate(self, i: int, sig: int, timeout: float = 10.0) -> None:
        m = self.members[i]
        proc = m.proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(sig)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        m.proc = None
        if m.log is not None:
            m.log.close()
            m.log = None

    def kill(self, i: int) -> None:
        """SIGKILL member ``i`` (a crash: no clean shutdown)."""
        self._terminate(i, signal.SIGKILL)

    def stop_member(self, i: int) -> None:
        """Stop member ``i`` cleanly (SIGTERM); its data stays."""
        self._terminate(i, signal.SIGTERM)

    def restart(self, i: int, timeout: float = START_TIMEOUT) -> None:
        """Start member ``i`` again on its data (stopping it first if it runs) and wait
        until it is healthy (which needs a quorum of the cluster running)."""
        self._terminate(i, signal.SIGTERM)
        self._spawn(i)
        self._wait_healthy(i, timeout)

    def recover(self, i: int, timeout: float = START_TIMEOUT) -> None:
        """Quorum loss: restart member ``i`` alone with ``--force-new-cluster`` on its
        own data; it becomes a one-member cluster that accepts writes. The other
        members are stopped (their data would rejoin an old cluster) and marked
        ``removed``, so ``endpoints`` names member ``i`` only; indexes do not change."""
        for j in range(len(self.members)):
            self._terminate(j, signal.SIGKILL if j != i else signal.SIGTERM)
        self._spawn(i, force_new=True)
        self._wait_healthy(i, timeout)
        self.removed = {j for j in range(len(self.members)) if j != i}

    def stop(self) -> None:
        """Stop every member (SIGTERM, then SIGKILL after 10 s); data stays."""
        for i in range(len(self.members)):
            self._terminate(i, signal.SIGTERM)

    def __enter__(self) -> EtcdCluster:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
