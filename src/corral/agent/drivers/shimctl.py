"""The driver side of the shim protocol, shared by ``ProcessDriver`` and ``OciDriver``.

A container's state directory (``DATA/containers/<id>/``) holds what the shim reads
(``spec.json``) and writes (``state.json``, ``exit.json``, see ``shim.py``) plus the
driver's ``handle.json``. A container under conmon (``conmon.py``) has the same files,
its monitor standing in for the shim (``shim_pid``), and conmon's own exit record, which
``read_exit`` reads as well. This module launches shims, waits for their exits without
polling (a pidfd on the shim, which works although the shim is not the agent's child),
tells a live pid from a reused one (``/proc/PID/stat`` start ticks), reads a state
directory back into a ``ContainerHandle``/``ExitInfo`` for ``recover``, and implements
``ExecSession`` over pipes or a pty. It also holds the steps both drivers take alike
around a shim (``record_handle`` after a start, ``stop_with_grace``, ``pod_containers``,
``recover_containers``), each driver passing in what only it knows (how to signal).
Nothing here knows about runc or cgroups.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import json
import os
import secrets
import struct
import sys
import termios
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from corral.agent.drivers.base import (
    CREATE_CONTAINER_ERROR,
    RUN_CONTAINER_ERROR,
    ContainerHandle,
    ContainerSpec,
    ExitInfo,
    Recovered,
    StartError,
)
from corral.agent.drivers.conmon import exit_record as conmon_exit_record

SHIM_PATH = Path(__file__).with_name("shim.py")
START_TIMEOUT = 30.0
LOST_EXIT_CODE = 255  # Kubernetes shows this when the runtime cannot tell how it ended


def new_container_id() -> str:
    return secrets.token_hex(32)


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        with open(path) as f:
            obj = json.load(f)
    except (OSError, ValueError):
        return None
    return obj if isinstance(obj, dict) else None


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


def write_json_atomic(path: Path, obj: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj))
    tmp.rename(path)


def start_ticks(pid: int) -> int | None:
    """The start time of ``pid`` in clock ticks since boot, or None if it does not exist."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
        return int(data[data.rindex(b")") + 2 :].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def alive(pid: int, ticks: int | None) -> bool:
    """Whether ``pid`` still is the process that started at ``ticks`` (zombies are dead)."""
    if pid <= 0:
        return False
    now = start_ticks(pid)
    if now is None or (ticks and now != ticks):
        return False
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
        return data[data.rindex(b")") + 2 : data.rindex(b")") + 3] not in (b"Z", b"X")
    except OSError:
        return False


async def launch_shim(state_dir: Path, spec: dict[str, Any]) -> dict[str, Any]:
    """Write ``spec.json``, start the shim, and return its ``state.json`` once the container
    runs. Raises ``StartError`` (the shim's message) when it could not be started."""
    write_json_atomic(state_dir / "spec.json", spec)
    with open(state_dir / "shim.log", "ab") as shim_log:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-I",
            "-S",
            str(SHIM_PATH),
            str(state_dir),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=shim_log,
            start_new_session=True,
        )
    assert proc.stdout is not None
    try:
        async with asyncio.timeout(START_TIMEOUT):
            report = (await proc.stdout.read()).decode(errors="replace").strip()
            await proc.wait()
    except TimeoutError:
        raise StartError(RUN_CONTAINER_ERROR, "timed out starting the container") from None
    if not report.startswith("ok "):
        message = report.removeprefix("error ").strip()
        if not message:
            message = (state_dir / "shim.log").read_text(errors="replace")[-2000:].strip()
        reason = RUN_CONTAINER_ERROR if "exec" in message.lower() else CREATE_CONTAINER_ERROR
        raise StartError(reason, message or "the container shim failed")
    state = read_json(state_dir / "state.json")
    if state is None:
        raise StartError(RUN_CONTAINER_ERROR, "the container shim wrote no state")
    return state


def read_exit(state_dir: Path, started_at: float) -> ExitInfo | None:
    """The container's recorded exit: the shim's ``exit.json``, or conmon's record, which
    is turned into ``exit.json`` the first time it is read (so it stays as it was read)."""
    d = read_json(state_dir / "exit.json")
    if d is None and (d := conmon_exit_record(state_dir)) is not None:
        with contextlib.suppress(OSError):
            write_json_atomic(state_dir / "exit.json", d)
    if d is None:
        return None
    return ExitInfo(
        exit_code=int(d["exit_code"]),
        started_at=started_at,
        finished_at=float(d["finished_at"]),
        oom_killed=bool(d.get("oom_killed")),
        signal=d.get("signal"),
    )


def lost_exit(handle: ContainerHandle) -> ExitInfo:
    return ExitInfo(
        exit_code=LOST_EXIT_CODE,
        started_at=handle.started_at,
        finished_at=os.path.getmtime(handle.state_dir),
        message="the container's monitor ended without recording its exit",
    )


def running(handle: ContainerHandle) -> bool:
    """Whether the container (or its shim, which is about to record its exit) lives."""
    state = read_json(Path(handle.state_dir) / "state.json") or {}
    return alive(int(state.get("shim_pid", 0)), state.get("shim_start_ticks")) or alive(
        handle.pid, state.get("start_ticks")
    )


async def wait_pid(pid: int, ticks: int | None) -> None:
    """Return when ``pid`` (started at ``ticks``) has exited; uses a pidfd, no polling."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        if not alive(pid, ticks):
            return
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        loop.add_reader(fd, _resolve, done)
        try:
            await done
        finally:
            loop.remove_reader(fd)
    finally:
        os.close(fd)


async def wait_exit(handle: ContainerHandle) -> ExitInfo:
    """The container's exit, once its shim has recorded it (at once if it already has)."""
    state_dir = Path(handle.state_dir)
    while True:
        info = read_exit(state_dir, handle.started_at)
        if info is not None:
            return info
        state = read_json(state_dir / "state.json") or {}
        shim_pid, shim_ticks = int(state.get("shim_pid", 0)), state.get("shim_start_ticks")
        if alive(shim_pid, shim_ticks):
            await wait_pid(shim_pid, shim_ticks)
        elif alive(handle.pid, state.get("start_ticks")):
            await wait_pid(handle.pid, state.get("start_ticks"))
        else:
            return read_exit(state_dir, handle.started_at) or lost_exit(handle)


def load_handles(containers_dir: Path) -> tuple[list[ContainerHandle], list[Path]]:
    """Handles of every container on disk, and state directories without one (debris of a
    start the agent did not finish)."""
    handles: list[ContainerHandle] = []
    debris: list[Path] = []
    if not containers_dir.is_dir():
        return handles, debris
    for d in sorted(containers_dir.iterdir()):
        h = read_json(d / "handle.json")
        if h is None:
            debris.append(d)
        else:
            handles.append(ContainerHandle.from_json(h))
    return handles, debris


def pod_containers(containers_dir: Path, pod_uid: str) -> list[ContainerHandle]:
    """The handles on disk of pod ``pod_uid``'s containers."""
    handles, _ = load_handles(containers_dir)
    return [h for h in handles if h.pod_uid == pod_uid]


# -- the container steps both drivers share -------------------------------------------------------


def record_handle(
    state_dir: Path, cid: str, spec: ContainerSpec, state: dict[str, Any], data: dict[str, Any]
) -> ContainerHandle:
    """The handle of container ``cid`` that ``launch_shim`` started (``state``: its
    ``state.json``), written to ``handle.json``: from then on the container is the
    driver's to ``recover``. ``data``: the driver's own serialisable part."""
    handle = ContainerHandle(
        id=cid,
        pod_uid=spec.pod_uid,
        name=spec.name,
        attempt=spec.attempt,
        pid=int(state["pid"]),
        started_at=float(state["started_at"]),
        state_dir=str(state_dir),
        data=data,
    )
    write_json_atomic(state_dir / "handle.json", handle.to_json())
    return handle


async def stop_with_grace(
    handle: ContainerHandle,
    grace: float,
    terminate: Callable[[], Awaitable[object]],
    kill: Callable[[], Awaitable[object]],
) -> ExitInfo:
    """``terminate()`` (SIGTERM), wait up to ``grace`` seconds for the exit, then ``kill()``
    (SIGKILL) and wait for it: the driver's ``stop``. The exit is the shim's record."""
    await terminate()
    try:
        async with asyncio.timeout(max(grace, 0.0)):
            return await wait_exit(handle)
    except TimeoutError:
        pass
    await kill()
    return await wait_exit(handle)


async def recover_containers(handles: Sequence[ContainerHandle]) -> list[Recovered]:
    """Each container on disk with its exit: None while it runs, the shim's record once it
    ended, or a lost exit when the shim died without one (e.g. the host rebooted)."""
    found: list[Recovered] = []
    for h in handles:
        info = read_exit(Path(h.state_dir), h.started_at)
        if info is None and not running(h):
            info = await wait_exit(h)  # gone without a record: a lost exit
        found.append(Recovered(handle=h, exit=info))
    return found


# -- exec sessions -------------------------------------------------------------------------------


class _ProcessSession:
    """What both exec sessions do alike: wait for and kill their process."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    async def wait(self) -> int:
        rc = await self.proc.wait()
        return 128 - rc if rc < 0 else rc

    async def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()


class PipeExecSession(_ProcessSession):
    """An ``ExecSession`` over an asyncio subprocess with stdin/stdout/stderr pipes."""

    async def write_stdin(self, data: bytes) -> None:
        if self.proc.stdin is None:
            raise BrokenPipeError("exec session has no stdin")
        self.proc.stdin.write(data)
        await self.proc.stdin.drain()

    async def close_stdin(self) -> None:
        if self.proc.stdin is not None and not self.proc.stdin.is_closing():
            self.proc.stdin.close()
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                await self.proc.stdin.wait_closed()

    async def read_stdout(self) -> bytes:
        assert self.proc.stdout is not None
        return await self.proc.stdout.read(65536)

    async def read_stderr(self) -> bytes:
        assert self.proc.stderr is not None
        return await self.proc.stderr.read(65536)

    async def resize(self, width: int, height: int) -> None:
        return None


class PtyExecSession(_ProcessSession):
    """An ``ExecSession`` whose process runs on a pty; stdout carries both streams."""

    def __init__(
        self,
        proc: asyncio.subprocess.Process,
        master: int,
        on_resize: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(proc)
        self.master = master
        self.on_resize = on_resize
        os.set_blocking(master, False)

    async def _ready(self, writer: bool) -> None:
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        add, remove = (
            (loop.add_writer, loop.remove_writer)
            if writer
            else (loop.add_reader, loop.remove_reader)
        )
        add(self.master, _resolve, done)
        try:
            await done
        finally:
            remove(self.master)

    async def write_stdin(self, data: bytes) -> None:
        while data:
            try:
                n = os.write(self.master, data)
                data = data[n:]
            except BlockingIOError:
                await self._ready(writer=True)

    async def close_stdin(self) -> None:
        with contextlib.suppress(OSError):
            await self.write_stdin(b"\x04")  # ^D: EOF for the line discipline

    async def read_stdout(self) -> bytes:
        while True:
            try:
                return os.read(self.master, 65536)
            except BlockingIOError:
                await self._ready(writer=False)
            except OSError as e:
                if e.errno == errno.EIO:  # every slave end closed
                    return b""
                raise

    async def read_stderr(self) -> bytes:
        return b""

    async def resize(self, width: int, height: int) -> None:
        fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))
        if self.on_resize is not None:
            self.on_resize()

    def __del__(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.master)


async def spawn_exec(
    argv: Sequence[str],
    *,
    tty: bool,
    stdin: bool,
    env: dict[str, str] | None = None,
    cwd: str | None = None,
    preexec_fn: Callable[[], None] | None = None,
    user: int | None = None,
    group: int | None = None,
    on_resize: Callable[[asyncio.subprocess.Process], None] | None = None,
) -> PipeExecSession | PtyExecSession:
    """Start ``argv`` as an asyncio subprocess with pipes, or on a new pty when ``tty``."""
    ids: dict[str, Any] = {}
    if user is not None or group is not None:
        ids = {"user": user, "group": group, "extra_groups": []}
    if not tty:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            cwd=cwd,
            preexec_fn=preexec_fn,
            start_new_session=True,
            **ids,
        )
        return PipeExecSession(proc)
    master, slave = os.openpty()

    def setup() -> None:
        # Make the pty the child's controlling terminal. The stdlib runs preexec_fn after
        # setsid() and the dup2 of stdio, but uvloop (the agent's loop) runs it right
        # after fork, before libuv's setsid() and dup2: so start the session here (EPERM:
        # already a leader) and name the slave by its own descriptor, not by fd 0.
        with contextlib.suppress(OSError):
            os.setsid()
        fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
        if preexec_fn is not None:
            preexec_fn()

    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
            cwd=cwd,
            preexec_fn=setup,
            start_new_session=True,
            **ids,
        )
    except BaseException:
        os.close(master)
        raise
    finally:
        os.close(slave)
    resize_cb = (lambda: on_resize(proc)) if on_resize is not None else None
    return PtyExecSession(proc, master, resize_cb)
