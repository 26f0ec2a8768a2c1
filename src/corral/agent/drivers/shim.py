"""The per-container shim: holds a container's stdio, writes its CRI log, records its exit.

Started by the ``process`` and ``oci`` drivers as ``python -I -S shim.py STATE_DIR`` (run
by path, stdlib only, so it starts in a few milliseconds and does not import corral). It
daemonises at once (forks; the first process exits) so it is never the agent's child and
outlives an agent restart. Protocol, all through files in ``STATE_DIR``:

- reads ``spec.json``: ``mode`` ("process" | "runc"), ``argv``, ``env``, ``cwd``,
  ``log_path``, ``stdin`` (bool: give the container a FIFO ``STATE_DIR/stdin``),
  ``uid``/``gid`` and ``cgroup_procs`` (files the child writes itself into before exec;
  process mode), ``oom_control`` (the memory cgroup file whose ``oom_kill`` counter tells
  an OOM kill; ``memory.events`` on cgroup v2), ``runc`` (``binary``, ``root``, ``id``,
  ``bundle``; runc mode), ``stdio_files`` ([stdout, stderr]: files the raw output is
  also appended to, e.g. a Mesos sandbox's ``stdout`` and ``stderr``; optional);
- once the container's main process runs, writes ``state.json`` {pid, started_at,
  start_ticks, shim_pid, shim_start_ticks} atomically, then reports ``ok PID`` (or
  ``error MESSAGE`` and exits 1) on its stdout, which the driver reads, and closes it;
- copies the container's stdout/stderr into ``log_path`` in the CRI format;
- on exit writes ``exit.json`` {exit_code, signal, finished_at, oom_killed} atomically
  (after ``runc delete`` in runc mode) and exits.

In runc mode the shim is a child subreaper and uses ``runc create`` + ``runc start``, so
the container's init is re-parented to it, it reaps the real wait status, and it reads the
OOM counter before ``runc delete`` removes the cgroup.
"""

from __future__ import annotations

import functools
import json
import os
import selectors
import signal
import subprocess
import sys
import time
from typing import Any

MAX_LINE = 16 * 1024
PR_SET_CHILD_SUBREAPER = 36


def cri_timestamp(ns: int) -> bytes:
    """RFC 3339 with nanoseconds, UTC: ``2026-11-27T16:45:19.123456789Z``."""
    sec, frac = divmod(ns, 1_000_000_000)
    return (time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)) + f".{frac:09d}Z").encode()


def proc_start_ticks(pid: int) -> int:
    """Field 22 of /proc/PID/stat (start time in clock ticks since boot): a pid's identity."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        data = f.read()
    return int(data[data.rindex(b")") + 2 :].split()[19])


def join_cgroups(procs: list[str]) -> None:
    """Write the calling process into each cgroup ``procs`` file: a container's command (or
    an exec in it, see ``ProcessDriver.exec``) runs this between fork and exec."""
    for p in procs:
        fd = os.open(p, os.O_WRONLY)
        try:
            os.write(fd, b"0")
        finally:
            os.close(fd)


def write_json_atomic(path: str, obj: dict[str, Any]) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f)
    os.rename(tmp, path)


class CriLogWriter:
    """Splits one stream into CRI log lines (``F`` full, ``P`` partial over 16 KiB)."""

    def __init__(self, fd: int, stream: str) -> None:
        self.fd = fd
        self.tag = stream.encode()
        self.buf = b""

    def _emit(self, line: bytes, full: bool) -> None:
        head = cri_timestamp(time.time_ns()) + b" " + self.tag + (b" F " if full else b" P ")
        os.write(self.fd, head + line + b"\n")

    def feed(self, data: bytes) -> None:
        self.buf += data
        while True:
            nl = self.buf.find(b"\n")
            if nl < 0:
                break
            line, self.buf = self.buf[:nl], self.buf[nl + 1 :]
            while len(line) > MAX_LINE:
                self._emit(line[:MAX_LINE], False)
                line = line[MAX_LINE:]
            self._emit(line, True)
        while len(self.buf) > MAX_LINE:
            self._emit(self.buf[:MAX_LINE], False)
            self.buf = self.buf[MAX_LINE:]

    def close(self) -> None:
        if self.buf:
            self._emit(self.buf, True)
            self.buf = b""


def read_oom_kills(path: str | None) -> int:
    """The ``oom_kill`` counter of a memory cgroup (v1 oom_control or v2 memory.events)."""
    if not path:
        return 0
    try:
        with open(path) as f:
            for line in f:
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
    except OSError:
        pass
    return 0


class Shim:
    def __init__(self, state_dir: str) -> None:
        self.dir = state_dir
        with open(os.path.join(state_dir, "spec.json")) as f:
            self.spec: dict[str, Any] = json.load(f)
        self.started_at = 0.0

    def path(self, name: str) -> str:
        return os.path.join(self.dir, name)

    # -- reporting to the driver -------------------------------------------------------------

    def report(self, line: str) -> None:
        try:
            os.write(1, (line + "\n").encode())
        except OSError:
            pass
        null = os.open(os.devnull, os.O_RDWR)
        os.dup2(null, 1)
        os.close(null)

    def fail(self, message: str) -> None:
        self.report("error " + message.replace("\n", " ").strip())
        sys.exit(1)

    # -- stdio -------------------------------------------------------------------------------

    def stdin_fd(self) -> int:
        if self.spec.get("stdin"):
            fifo = self.path("stdin")
            if not os.path.exists(fifo):
                os.mkfifo(fifo, 0o600)
            return os.open(fifo, os.O_RDWR)  # RDWR: never EOF while the shim lives
        return os.open(os.devnull, os.O_RDONLY)

    # -- starting ----------------------------------------------------------------------------

    def start_process(self, stdin: int, out_w: int, err_w: int) -> int:
        procs: list[str] = list(self.spec.get("cgroup_procs") or [])
        uid, gid = self.spec.get("uid"), self.spec.get("gid")
        try:
            child = subprocess.Popen(
                self.spec["argv"],
                env=self.spec["env"],
                cwd=self.spec.get("cwd") or None,
                stdin=stdin,
                stdout=out_w,
                stderr=err_w,
                start_new_session=True,
                preexec_fn=functools.partial(join_cgroups, procs) if procs else None,
                user=uid,
                group=gid,
                extra_groups=[] if (uid is not None or gid is not None) else None,
                close_fds=True,
            )
        except OSError as e:  # worded as runc words it: the reason becomes RunContainerError
            argv0 = self.spec["argv"][0] if self.spec["argv"] else ""
            self.fail(f'exec: "{argv0}": {e.strerror or e}')
        except subprocess.SubprocessError as e:
            self.fail(f"{type(e).__name__}: {e}")
        child.returncode = 0  # we reap it ourselves via os.waitpid; keep Popen quiet
        return child.pid

    def runc(self, *args: str) -> list[str]:
        r = self.spec["runc"]
        cmd = [r["binary"], "--root", r["root"], "--log", self.path("runc.log"), "--log-format"]
        return [*cmd, "json", *args]

    def runc_error(self, fallback: str) -> str:
        msg = fallback
        try:
            with open(self.path("runc.log")) as f:
                for line in f:
                    try:
                        entry = json.loads(line)
                    except ValueError:
                        continue
                    if entry.get("level") in ("error", "fatal"):
                        msg = str(entry.get("msg", msg))
        except OSError:
            pass
        return msg

    def start_runc(self, stdin: int, out_w: int, err_w: int) -> int:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
        r = self.spec["runc"]
        pid_file = self.path("container.pid")
        create = subprocess.run(
            self.runc("create", "--bundle", r["bundle"], "--pid-file", pid_file, r["id"]),
            stdin=stdin,
            stdout=out_w,
            stderr=err_w,
            close_fds=True,
        )
        if create.returncode != 0:
            self.fail(self.runc_error(f"runc create exited {create.returncode}"))
        with open(pid_file) as f:
            pid = int(f.read().strip())
        start = subprocess.run(
            self.runc("start", r["id"]),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        if start.returncode != 0:
            subprocess.run(self.runc("delete", "--force", r["id"]), capture_output=True)
            self.fail(self.runc_error(start.stderr.decode(errors="replace") or "runc start failed"))
        return pid

    # -- running -----------------------------------------------------------------------------

    def run(self) -> None:
        mode = self.spec.get("mode", "process")
        log_path = self.spec["log_path"]
        try:
            os.makedirs(os.path.dirname(log_path), exist_ok=True)
            log_fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        except OSError as e:
            self.fail(f"cannot open log {log_path}: {e}")
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        stdin = self.stdin_fd()
        if mode == "runc":
            pid = self.start_runc(stdin, out_w, err_w)
        else:
            pid = self.start_process(stdin, out_w, err_w)
        for fd in (out_w, err_w, stdin):
            os.close(fd)
        self.started_at = time.time()
        try:
            ticks = proc_start_ticks(pid)
            pidfd = os.pidfd_open(pid)
        except OSError:
            ticks, pidfd = 0, -1
        write_json_atomic(
            self.path("state.json"),
            {
                "pid": pid,
                "started_at": self.started_at,
                "start_ticks": ticks,
                "shim_pid": os.getpid(),
                "shim_start_ticks": proc_start_ticks(os.getpid()),
            },
        )
        self.report(f"ok {pid}")
        status = self.pump(pid, pidfd, out_r, err_r, log_fd)
        self.finish(status)

    def raw_files(self) -> tuple[int, int]:
        """Descriptors of the ``stdio_files`` (-1 where there is none or it cannot be
        opened: a missing copy never stops the container)."""
        fds = [-1, -1]
        for i, path in enumerate((self.spec.get("stdio_files") or [])[:2]):
            try:
                fds[i] = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
            except OSError:
                pass
        return fds[0], fds[1]

    def pump(self, pid: int, pidfd: int, out_r: int, err_r: int, log_fd: int) -> int:
        """Copy output into the log until the main process exits; return its wait status."""
        writers = {out_r: CriLogWriter(log_fd, "stdout"), err_r: CriLogWriter(log_fd, "stderr")}
        raw_out, raw_err = self.raw_files()
        raw = {out_r: raw_out, err_r: raw_err}

        def feed(fd: int, data: bytes) -> None:
            writers[fd].feed(data)
            if raw[fd] >= 0:
                try:
                    os.write(raw[fd], data)
                except OSError:
                    pass

        sel = selectors.DefaultSelector()
        for fd in writers:
            sel.register(fd, selectors.EVENT_READ)
        if pidfd >= 0:
            sel.register(pidfd, selectors.EVENT_READ)
        status: int | None = None
        while status is None:
            for key, _ in sel.select(timeout=None if pidfd >= 0 else 0.2):
                fd = int(key.fd)
                if fd == pidfd:
                    continue
                data = os.read(fd, 65536)
                if data:
                    feed(fd, data)
                else:
                    sel.unregister(fd)
            status = self.reap(pid)
        # the main process is gone: drain what is buffered, but do not wait for leftovers
        # (a daemonised grandchild) that still hold the pipes
        for fd, w in writers.items():
            os.set_blocking(fd, False)
            try:
                while data := os.read(fd, 65536):
                    feed(fd, data)
            except BlockingIOError:
                pass
            w.close()
            os.close(fd)
            if raw[fd] >= 0:
                os.close(raw[fd])
        return status

    def reap(self, pid: int) -> int | None:
        """The wait status of ``pid`` if it has exited (also reaps other orphans)."""
        result: int | None = None
        while True:
            try:
                got, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                if result is None and not os.path.exists(f"/proc/{pid}"):
                    return 255 << 8  # not our child and gone: status unknown
                return result
            if got == 0:
                return result
            if got == pid:
                result = status

    def finish(self, status: int) -> None:
        sig: int | None = None
        if os.WIFSIGNALED(status):
            sig = os.WTERMSIG(status)
            code = 128 + sig
        else:
            code = os.WEXITSTATUS(status)
        oom = read_oom_kills(self.spec.get("oom_control")) > 0
        if self.spec.get("mode") == "runc":
            r = self.spec["runc"]
            subprocess.run(
                self.runc("delete", "--force", r["id"]),
                stdin=subprocess.DEVNULL,
                capture_output=True,
            )
        write_json_atomic(
            self.path("exit.json"),
            {"exit_code": code, "signal": sig, "finished_at": time.time(), "oom_killed": oom},
        )


def main() -> None:
    state_dir = sys.argv[1]
    # a daemon keeps nothing of its parent's but stdio: an agent on uvloop (libuv does not
    # close inherited descriptors) would otherwise leak its sockets, and the report pipe,
    # into every shim and hold the driver's read of our report open until the exit
    os.closerange(3, 65536)
    if os.fork() > 0:
        os._exit(0)  # the driver reaps this one; the shim itself is nobody's child
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    Shim(state_dir).run()


if __name__ == "__main__":
    main()
