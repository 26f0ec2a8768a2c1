"""``corral server`` keeps its children running (a child that dies is started again) and
stops them all at once on SIGTERM (``apiserver/children.py``)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from corral.testing.process import ServerProcess
from corral.testing.wait import eventually


def children_of(pid: int) -> dict[int, str]:
    """The direct children of ``pid``: their command lines by pid."""
    out: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == pid:
                out[int(entry.name)] = (
                    (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                )
        except (OSError, ValueError, IndexError):
            continue
    return out


def test_a_dead_child_is_started_again_and_sigterm_stops_all(tmp_path: Path) -> None:
    srv = ServerProcess.start(tmp_path / "server", extra=["--hollow-nodes", "1"])
    try:

        def agent() -> int | None:
            found = [p for p, cmd in children_of(srv.pid).items() if " agent " in cmd]
            return found[0] if found else None

        eventually(lambda: agent() is not None, 60)
        first = agent()
        assert first is not None
        os.kill(first, signal.SIGKILL)
        eventually(lambda: agent() not in (None, first), 60)  # a new agent process
        assert "starting it again" in srv.log.read_text()
        kids = set(children_of(srv.pid))
        assert kids
        srv.proc.send_signal(signal.SIGTERM)
        t0 = time.monotonic()
        code = srv.proc.wait(30)
        print(f"corral server exited {code} in {time.monotonic() - t0:.2f} s after SIGTERM")
        assert code == 0
        eventually(lambda: not any(Path(f"/proc/{p}").exists() for p in kids), 30)
    finally:
        srv.stop()
