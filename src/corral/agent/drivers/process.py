"""``ProcessDriver``: runs a container's argv directly on the host, one shim per container.

Used by the node agent when no container runtime is wanted (development, tests, trusted
batch work). There is no image, no namespace and no network isolation: the pod IP is the
host's address, a sandbox is just the pod's directory, and every container runs on the
host's filesystem (``ContainerSpec.host_rootfs`` changes nothing; ``mounts`` are not
made). What it does give, when the agent runs as root with cgroups: a cgroup per
container (``corral/<pod-uid>/<id>`` in the memory, cpu, cpuacct and pids hierarchies,
or the v2 tree) with the container's limits, which the child joins before exec, so
limits, ``stats`` and OOM detection work as with ``oci``. As non-root it runs without
cgroups and says so once in the log.

State lives under ``data_dir`` (``containers/<id>/``, ``sandboxes/<pod-uid>.json``) so a
new driver object on the same directory ``recover``s everything.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import shutil
import signal
from pathlib import Path
from typing import Any

import corral
from corral.agent.drivers.base import (
    CREATE_CONTAINER_ERROR,
    ContainerHandle,
    ContainerSpec,
    ExecSession,
    ExitInfo,
    Recovered,
    Sandbox,
    SandboxSpec,
    StartError,
    Stats,
)
from corral.agent.drivers.cgroups import Cgroups
from corral.agent.drivers.shim import join_cgroups
from corral.agent.drivers.shimctl import (
    alive,
    launch_shim,
    load_handles,
    new_container_id,
    pod_containers,
    read_json,
    record_handle,
    recover_containers,
    running,
    spawn_exec,
    stop_with_grace,
    wait_exit,
    write_json_atomic,
)

log = logging.getLogger(__name__)

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CGROUP_PARENT = "corral"


def default_env(env: dict[str, str]) -> dict[str, str]:
    return env if "PATH" in env else {**env, "PATH": DEFAULT_PATH}


def _proc_stats(pid: int) -> Stats | None:
    """Usage of one process from /proc, for when there is no cgroup."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        with open(f"/proc/{pid}/statm", "rb") as f:
            rss_pages = int(f.read().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    ticks = int(fields[11]) + int(fields[12])  # utime + stime
    hz = os.sysconf("SC_CLK_TCK")
    return Stats(
        memory_bytes=rss_pages * os.sysconf("SC_PAGE_SIZE"),
        cpu_nanos=ticks * 1_000_000_000 // hz,
    )


class ProcessDriver:
    """Host processes under shims. ``cgroups``: ``"auto"`` (when root), or None to disable."""

    name = "process"

    def __init__(
        self,
        data_dir: Path,
        *,
        ip: str = "127.0.0.1",
        cgroups: Cgroups | str | None = "auto",
        cgroup_parent: str = CGROUP_PARENT,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.containers_dir = self.data_dir / "containers"
        self.sandboxes_dir = self.data_dir / "sandboxes"
        self.ip = ip
        self.cgroup_parent = cgroup_parent
        if isinstance(cgroups, str):
            if cgroups != "auto":
                raise ValueError(f"cgroups: {cgroups!r}")
            cgroups = Cgroups.detect()
        self.cgroups: Cgroups | None = cgroups
        if self.cgroups is None:
            log.info("process driver: running containers without cgroups (not root or none)")
        self.containers_dir.mkdir(parents=True, exist_ok=True)
        self.sandboxes_dir.mkdir(parents=True, exist_ok=True)

    def runtime_version(self) -> str:
        return f"process://{corral.__version__}"

    # -- sandboxes ---------------------------------------------------------------------------

    async def create_sandbox(self, spec: SandboxSpec) -> Sandbox:
        path = self.sandboxes_dir / f"{spec.pod_uid}.json"
        if (existing := read_json(path)) is not None:
            return Sandbox(**existing)
        spec.dir.mkdir(parents=True, exist_ok=True)
        sandbox = Sandbox(pod_uid=spec.pod_uid, dir=str(spec.dir), ip=self.ip)
        write_json_atomic(path, sandbox.to_json())
        return sandbox

    async def remove_sandbox(self, sandbox: Sandbox) -> None:
        for h in pod_containers(self.containers_dir, sandbox.pod_uid):
            await self.remove(h)
        if self.cgroups is not None:
            self.cgroups.remove(f"{self.cgroup_parent}/{sandbox.pod_uid}")
        with contextlib.suppress(FileNotFoundError):
            (self.sandboxes_dir / f"{sandbox.pod_uid}.json").unlink()

    # -- containers --------------------------------------------------------------------------

    def _cgroup(self, pod_uid: str, cid: str) -> str:
        return f"{self.cgroup_parent}/{pod_uid}/{cid}"

    async def start(self, sandbox: Sandbox, spec: ContainerSpec) -> ContainerHandle:
        cid = new_container_id()
        state_dir = self.containers_dir / cid
        state_dir.mkdir(parents=True)
        cwd = spec.working_dir or sandbox.dir
        env = default_env(spec.env)
        root = os.geteuid() == 0
        shim_spec: dict[str, Any] = {
            "mode": "process",
            "argv": spec.argv,
            "env": env,
            "cwd": cwd,
            "log_path": str(spec.log_path),
            "stdin": spec.stdin,
            "uid": spec.run_as_user if root else None,
            "gid": spec.run_as_group if root else None,
            "stdio_files": list(spec.stdio_files) if spec.stdio_files else None,
        }
        cgroup: str | None = None
        try:
            if not spec.argv:
                raise StartError(CREATE_CONTAINER_ERROR, "no command given")
            if self.cgroups is not None:
                cgroup = self._cgroup(spec.pod_uid, cid)
                try:
                    self.cgroups.create(cgroup, spec.limits)
                except OSError as e:
                    raise StartError(CREATE_CONTAINER_ERROR, f"cgroup {cgroup}: {e}") from e
                shim_spec["cgroup_procs"] = self.cgroups.procs_files(cgroup)
                shim_spec["oom_control"] = self.cgroups.oom_file(cgroup)
            state = await launch_shim(state_dir, shim_spec)
        except BaseException:
            self._cleanup(state_dir, cgroup)
            raise
        data = {
            "cgroup": cgroup,
            "env": env,
            "cwd": cwd,
            "uid": shim_spec["uid"],
            "gid": shim_spec["gid"],
        }
        return record_handle(state_dir, cid, spec, state, data)

    def _cleanup(self, state_dir: Path, cgroup: str | None) -> None:
        if cgroup is not None and self.cgroups is not None:
            self.cgroups.remove(cgroup)
        shutil.rmtree(state_dir, ignore_errors=True)

    async def wait(self, handle: ContainerHandle) -> ExitInfo:
        return await wait_exit(handle)

    async def _signal(self, handle: ContainerHandle, sig: int) -> None:
        """Signal the container's process group, if its main process still runs."""
        state = read_json(Path(handle.state_dir) / "state.json") or {}
        if not alive(handle.pid, state.get("start_ticks")):
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(handle.pid, sig)

    async def _kill(self, handle: ContainerHandle) -> None:
        """SIGKILL the process group and everything else in the container's cgroup."""
        await self._signal(handle, signal.SIGKILL)
        cgroup = handle.data.get("cgroup")
        if cgroup and self.cgroups is not None:
            # whatever left the process group (setsid'd daemons) dies with the container
            for d in self.cgroups.dirs(cgroup).values():
                for pid in self.cgroups.pids(d):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                break

    async def stop(self, handle: ContainerHandle, grace: float) -> ExitInfo:
        terminate = functools.partial(self._signal, handle, signal.SIGTERM)
        kill = functools.partial(self._kill, handle)
        return await stop_with_grace(handle, grace, terminate, kill)

    async def remove(self, handle: ContainerHandle) -> None:
        if running(handle):
            await self.stop(handle, 0)
        self._cleanup(Path(handle.state_dir), handle.data.get("cgroup"))

    async def recover(self) -> tuple[list[Sandbox], list[Recovered]]:
        sandboxes = [
            Sandbox(**d)
            for p in sorted(self.sandboxes_dir.glob("*.json"))
            if (d := read_json(p)) is not None
        ]
        handles, debris = load_handles(self.containers_dir)
        for debris_dir in debris:
            state = read_json(debris_dir / "state.json") or {}
            if alive(int(state.get("pid", 0)), state.get("start_ticks")):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(int(state["pid"]), signal.SIGKILL)
            spec = read_json(debris_dir / "spec.json") or {}
            procs = spec.get("cgroup_procs") or []
            cgroup = None
            if procs and self.cgroups is not None:
                pod_uid = Path(procs[0]).parent.parent.name
                cgroup = f"{self.cgroup_parent}/{pod_uid}/{debris_dir.name}"
            self._cleanup(debris_dir, cgroup)
        return sandboxes, await recover_containers(handles)

    async def exec(
        self, handle: ContainerHandle, argv: list[str], *, tty: bool, stdin: bool
    ) -> ExecSession:
        cgroup = handle.data.get("cgroup")
        procs = self.cgroups.procs_files(cgroup) if cgroup and self.cgroups else []
        try:
            return await spawn_exec(
                argv,
                tty=tty,
                stdin=stdin,
                env=handle.data.get("env"),
                cwd=handle.data.get("cwd"),
                preexec_fn=functools.partial(join_cgroups, procs) if procs else None,
                user=handle.data.get("uid"),
                group=handle.data.get("gid"),
            )
        except OSError as e:
            raise StartError(CREATE_CONTAINER_ERROR, f"exec {argv[:1]}: {e}") from e

    def stats(self, handle: ContainerHandle) -> Stats | None:
        cgroup = handle.data.get("cgroup")
        if cgroup and self.cgroups is not None:
            return self.cgroups.stats(cgroup)
        return _proc_stats(handle.pid)
