"""A ``corral server`` run as a subprocess, for the test suite and the benchmarks.

``ServerProcess.start`` runs ``python -m corral server`` on a data directory and a free
port, waits until it accepts connections and has written its kubeconfig, and reads the
admin token it wrote. ``stop`` terminates (then kills) it; ``kill`` is SIGKILL, for crash
tests. Callers hold it in ``try/finally`` so no server outlives them.
"""

from __future__ import annotations

import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Self

from corral.util.ports import free_port, free_ports

__all__ = ["ServerProcess", "free_port", "free_ports"]


@dataclass
class ServerProcess:
    """One running server: its process, data directory, port, log and admin token."""

    proc: subprocess.Popen[bytes]
    data_dir: Path
    port: int
    log: Path
    argv: list[str]
    token: str = ""

    @classmethod
    def start(
        cls,
        data_dir: Path,
        port: int | None = None,
        extra: list[str] | None = None,
        log_level: str = "WARNING",
        timeout: float = 60.0,
        env: Mapping[str, str] | None = None,
    ) -> Self:
        """``env``: the server's environment (default: this process's)."""
        port = port or free_port()
        data_dir.mkdir(parents=True, exist_ok=True)
        log = data_dir.parent / f"{data_dir.name}-server-{port}.log"
        argv = [
            sys.executable, "-m", "corral", "server", "--data-dir", str(data_dir),
            "--port", str(port), "--log-level", log_level, *(extra or []),
        ]  # fmt: skip
        with open(log, "ab") as out:
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
        srv = cls(proc, data_dir, port, log, argv)
        try:
            srv._wait_ready(timeout)
        except BaseException:
            srv.stop()
            raise
        srv.token = (data_dir / "pki" / "admin.token").read_text().strip()
        return srv

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    if self.kubeconfig.exists():
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"server did not start: {self.log.read_text()}")

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def kubeconfig(self) -> Path:
        return self.data_dir / "kubeconfig"

    @property
    def ca_file(self) -> Path:
        return self.data_dir / "pki" / "ca.crt"

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def kill(self) -> None:
        """SIGKILL: the crash a test wants to survive."""
        self.proc.kill()
        self.proc.wait()
