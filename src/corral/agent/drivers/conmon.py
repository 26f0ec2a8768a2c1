"""Launching a runc container under **conmon**, the monitor CRI-O and Podman use.

``OciDriver`` calls ``launch_conmon`` for a pod's pause container and for each app
container it does not hand to the Python shim (``shim.py``; see ``oci.py`` for which).
conmon (Debian's ``conmon`` 2.1.6, C, ~0.35 MB PSS) runs ``runc create``, holds the
container's stdio, writes the log in the CRI format (its ``k8s-file`` driver), reaps the
container as a child subreaper, and on the exit writes the exit code to
``STATE_DIR/conmon/exit`` (and ``STATE_DIR/conmon/oom`` after an OOM kill, from the memory
cgroup's eventfd); with ``stdin`` it keeps a pipe to the container's stdin open (closed when the first
attach client goes for ``stdinOnce``); with ``terminal`` (a ``tty: true`` container) it
passes runc ``--console-socket`` and holds the pty's master from the start (the log is
then the pty's output). Every container's attach socket (``STATE_DIR/bundle/attach``,
linked from ``STATE_DIR/conmon/<id>``) and ``ctl`` FIFO serve ``attach.py``.

The start protocol (what Podman's ``libpod/oci_conmon_linux.go`` does): conmon gets the
write end of a pipe as ``_OCI_SYNCPIPE``; its first process forks and exits (the monitor
is nobody's child; ``-P`` names its pid), the monitor runs ``runc create`` and writes
``{"data": PID}`` (or ``{"data": -1, "message": ...}``, or nothing, on failure) into the
pipe; then the caller runs ``runc start``. conmon never runs ``runc delete``: the
container stays ``stopped`` in runc (its cgroup, with the OOM counter, too) until the
driver removes it.

The state directory then looks as the shim's does (``state.json`` with the monitor as
``shim_pid``), so ``shimctl`` waits, recovers and stops conmon containers and shim
containers alike; ``shimctl.read_exit`` turns conmon's exit file into ``exit.json``
(``exit_record`` here). Nothing here is async but the launch.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import time
from pathlib import Path
from typing import Any

from corral.agent.drivers.base import CREATE_CONTAINER_ERROR, RUN_CONTAINER_ERROR, StartError
from corral.agent.drivers.shim import read_oom_kills

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CONMON_DIR = "conmon"  # conmon's persist dir (exit, oom) and attach-socket link dir
START_TIMEOUT = 30.0


def conmon_binary() -> str | None:
    """The conmon on this host (``conmon`` on PATH, else Debian's path), or None."""
    found = shutil.which("conmon")
    if found is None and os.access("/usr/bin/conmon", os.X_OK):
        found = "/usr/bin/conmon"
    return found


def _proc_start_ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat", "rb") as f:
        data = f.read()
    return int(data[data.rindex(b")") + 2 :].split()[19])


def _json_atomic(path: Path, obj: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj))
    tmp.rename(path)


def runc_error(state_dir: Path, fallback: str) -> str:
    """The last error runc logged (``STATE_DIR/runc.log``, JSON lines), else ``fallback``."""
    msg = fallback
    with contextlib.suppress(OSError), open(state_dir / "runc.log") as f:
        for line in f:
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict) and entry.get("level") in ("error", "fatal"):
                msg = str(entry.get("msg", msg))
    return msg


def _start_error(message: str) -> StartError:
    reason = RUN_CONTAINER_ERROR if "exec" in message.lower() else CREATE_CONTAINER_ERROR
    return StartError(reason, message or "conmon failed to create the container")


async def run_command(*argv: str) -> tuple[int, str]:
    """Run ``argv`` to its end: (exit code, stdout and stderr); killed if cancelled."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out, _ = await proc.communicate()
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        raise
    return proc.returncode or 0, out.decode(errors="replace")


def _kill_started(proc: asyncio.subprocess.Process, pidfile: Path) -> None:
    """Kill a conmon whose start was abandoned, and the monitor it forked, if any (the
    caller's cleanup then deletes the created container with ``runc delete --force``)."""
    with contextlib.suppress(ProcessLookupError):
        proc.kill()
    with contextlib.suppress(OSError, ValueError):
        os.kill(int(pidfile.read_text().strip()), signal.SIGKILL)


async def launch_conmon(
    state_dir: Path,
    *,
    conmon: str,
    runc: str,
    runc_root: Path,
    cid: str,
    bundle: Path,
    log_path: Path,
    stdin: bool = False,
    stdin_once: bool = False,
    terminal: bool = False,
    oom_control: str | None = None,
) -> dict[str, Any]:
    """Create and start container ``cid`` from ``bundle`` under a new conmon; return the
    ``state.json`` written to ``state_dir`` once the container's process runs. Raises
    ``StartError`` (runc's words) when it could not; the caller cleans up."""
    cdir = state_dir / CONMON_DIR
    cdir.mkdir(parents=True, exist_ok=True)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    runc_cmd = [runc, "--root", str(runc_root), "--log", str(state_dir / "runc.log")]
    argv = [
        conmon,
        "--api-version=1",
        f"--cid={cid}",
        f"--cuuid={cid}",
        f"--name={cid}",
        f"--runtime={runc}",
        *(f"--runtime-arg={a}" for a in [*runc_cmd[1:], "--log-format", "json"]),
        # (paths as arguments of their own: ``corral down`` finds a data dir's monitors so)
        *("--bundle", str(bundle)),
        *("--container-pidfile", str(state_dir / "container.pid")),
        *("--conmon-pidfile", str(cdir / "conmon.pid")),
        f"--log-path=k8s-file:{log_path}",
        *("--persist-dir", str(cdir)),
        *("--socket-dir-path", str(cdir)),
        "--no-sync-log",
        # stdin: a pipe (or the pty) that conmon holds for attach clients; ``stdinOnce``:
        # closed when the first attach client goes (conmon's default), else kept open
        *(["--stdin"] if stdin else []),
        *(["--leave-stdin-open"] if stdin and not stdin_once else []),
        # a tty: conmon gives runc a console socket and keeps the pty's master
        *(["--terminal"] if terminal else []),
    ]
    spec = {"supervisor": "conmon", "argv": argv, "oom_control": oom_control, "runc": runc_cmd}
    _json_atomic(state_dir / "spec.json", spec)
    sync_r, sync_w = os.pipe2(os.O_CLOEXEC)
    try:
        with open(state_dir / "conmon.log", "ab") as errors:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=errors,
                stderr=errors,
                env={"PATH": os.environ.get("PATH", DEFAULT_PATH), "_OCI_SYNCPIPE": str(sync_w)},
                pass_fds=(sync_w,),
                cwd=str(state_dir),
                start_new_session=True,
            )
        os.close(sync_w)
        sync_w = -1
        try:
            async with asyncio.timeout(START_TIMEOUT):
                await proc.wait()  # the first process exits once the monitor is forked
                report = await _read_line(sync_r)
        except BaseException as e:  # timed out or cancelled: no monitor outlives the start
            _kill_started(proc, cdir / "conmon.pid")
            if isinstance(e, TimeoutError):
                raise StartError(RUN_CONTAINER_ERROR, "timed out creating the container") from None
            raise
    finally:
        os.close(sync_r)
        if sync_w >= 0:
            os.close(sync_w)
    pid, message = _parse_sync(report)
    if pid <= 0:
        fallback = message or (state_dir / "conmon.log").read_text(errors="replace")[-2000:]
        raise _start_error(runc_error(state_dir, fallback.strip()))
    # both live now: conmon waits for the created container, which waits for ``start``
    monitor = int((cdir / "conmon.pid").read_text().strip())
    try:
        ticks, monitor_ticks = _proc_start_ticks(pid), _proc_start_ticks(monitor)
    except (OSError, ValueError, IndexError):
        ticks = monitor_ticks = 0
    started_at = time.time()  # (before: the process may be gone when ``start`` returns)
    rc, out = await run_command(*runc_cmd, "--log-format", "json", "start", cid)
    if rc != 0:
        await run_command(*runc_cmd, "delete", "--force", cid)
        raise _start_error(runc_error(state_dir, out.strip() or "runc start failed"))
    state = {
        "pid": pid,
        "started_at": started_at,
        "start_ticks": ticks,
        "shim_pid": monitor,
        "shim_start_ticks": monitor_ticks,
        "supervisor": "conmon",
    }
    _json_atomic(state_dir / "state.json", state)
    return state


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


async def _read_line(fd: int) -> bytes:
    """conmon's first sync-pipe message (it keeps the pipe open while it runs), or what
    came before EOF (it exited: creating failed)."""
    os.set_blocking(fd, False)
    loop = asyncio.get_running_loop()
    out = b""
    while b"\n" not in out:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            ready: asyncio.Future[None] = loop.create_future()
            loop.add_reader(fd, _resolve, ready)
            try:
                await ready
            finally:
                loop.remove_reader(fd)
            continue
        if not chunk:
            break
        out += chunk
    return out


def _parse_sync(report: bytes) -> tuple[int, str]:
    """conmon's sync-pipe messages (one JSON object a line): (pid or -1, message)."""
    pid, message = -1, ""
    for line in report.splitlines():
        try:
            msg = json.loads(line)
        except ValueError:
            continue
        if isinstance(msg, dict) and isinstance(msg.get("data"), int):
            pid = msg["data"]
            message = str(msg.get("message") or message)
            if pid > 0:
                break
    return pid, message


def exit_record(state_dir: Path) -> dict[str, Any] | None:
    """conmon's record of a container's exit, in ``exit.json``'s shape, or None while
    there is none. conmon writes only the code (``128 + N`` for a signal N, as a shell
    does, so such a code is reported as signal N); OOM is its ``oom`` file or a nonzero
    ``oom_kill`` counter in the cgroup (which runc keeps until the container is deleted:
    on cgroup v1 conmon may see the exit before the OOM event)."""
    cdir = state_dir / CONMON_DIR
    try:
        text = (cdir / "exit").read_text().strip()
        finished_at = (cdir / "exit").stat().st_mtime
    except OSError:
        return None
    try:
        code = int(text)
    except ValueError:
        code = -1
    if code < 0:  # conmon could not tell (it timed out, or lost the container)
        return None
    spec: dict[str, Any] = {}
    with contextlib.suppress(OSError, ValueError):
        spec = json.loads((state_dir / "spec.json").read_text())
    with contextlib.suppress(OSError, ValueError):  # (mtimes lag the clock by a tick)
        state = json.loads((state_dir / "state.json").read_text())
        finished_at = max(finished_at, float(state["started_at"]))
    oom = (cdir / "oom").exists() or read_oom_kills(spec.get("oom_control")) > 0
    sig = code - 128 if 128 < code <= 128 + 64 else None
    return {"exit_code": code, "signal": sig, "finished_at": finished_at, "oom_killed": oom}
