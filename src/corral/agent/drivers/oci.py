"""``OciDriver``: real containers through runc, a pause process per pod, CNI networking.

Used by the node agent on machines where it runs as root. A pod's sandbox is a named
network namespace (``ip netns add corral-<uid>``) attached to the ``corral0`` bridge by the
CNI plugins (``cni.py``), plus a pause container (busybox ``sleep``) that holds the pod's
IPC and UTS namespaces and its hostname. Each app container gets a bundle under its state
directory: ``config.json`` from ``ocispec.py`` and a rootfs that is an overlay of the
image's shared, read-only unpacked rootfs with a per-container upper directory, or, for
a host-root container (``ContainerSpec.host_rootfs``, a Mesos host-command task), an
empty directory onto which runc binds the host's ``/`` read-only inside the container's
own mount namespace (``ocispec.py``), so nothing is mounted on the host for it.

Each container has a monitor that outlives the agent, chosen by ``supervisor``
(``SUPERVISORS``; ``$CORRAL_OCI_SUPERVISOR``; default ``conmon``): **conmon**
(``conmon.py``: ~0.35 MB PSS, it runs ``runc create``, the driver ``runc start``; the
container stays in runc, stopped, until ``remove``) or the Python **shim** (``shim.py``:
~6.5 MB PSS, it drives ``runc create``/``start``/``delete``). ``mixed`` puts the pause
container under conmon and app containers under the shim. conmon's ``k8s-file`` lines
are CRI-O's: CRI lines stamped with an offset (``+00:00``, not ``Z``), split at its 8 KiB
reads, an unterminated last line left ``P``. A container with ``stdio_files`` (a Mesos task) is
always under the shim, since conmon cannot copy raw output into files. Either way the
exit lands in the state directory (``shimctl.read_exit``) with the OOM flag (conmon's
``oom`` file or the cgroup's ``oom_kill`` counter, read while the cgroup still exists),
so ``recover`` finds containers of both kinds, and of older agents, alike.

Layout under ``data_dir``: ``runc/`` (runc's ``--root``), ``cni/`` (IPAM leases),
``pause-rootfs/``, ``sandboxes/<pod-uid>.json`` and ``sandboxes/<pod-uid>/`` (the pause
container's state), ``containers/<id>/`` (state, bundle, overlay upper/work; ``conmon/``:
conmon's exit and OOM files and its attach-socket link).

Containers with ``stdin`` or ``tty`` run under conmon whenever it is installed, in any
supervisor mode: only conmon holds a pty from the start (``--terminal``) and serves the
attach socket that ``attach`` (``kubectl attach``, ``kubectl run -it``) connects to.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import dataclasses
import functools
import json
import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from corral.agent.drivers.attach import AttachError, ConmonAttach
from corral.agent.drivers.base import (
    CREATE_CONTAINER_ERROR,
    ContainerHandle,
    ContainerSpec,
    ExecSession,
    ExitInfo,
    Mount,
    Recovered,
    Sandbox,
    SandboxSpec,
    StartError,
    Stats,
)
from corral.agent.drivers.cgroups import Cgroups
from corral.agent.drivers.cni import PodNetwork
from corral.agent.drivers.conmon import conmon_binary, launch_conmon, run_command
from corral.agent.drivers.ocispec import container_config, pause_config
from corral.agent.drivers.process import default_env
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
    wait_pid,
    write_json_atomic,
)

CGROUP_PARENT = "corral"
SUPERVISOR_ENV = "CORRAL_OCI_SUPERVISOR"
#: "conmon" (the default): pause and app containers under conmon, ~0.35 MB PSS each;
#: "mixed": the pause container under conmon, app containers under the Python shim;
#: "shim": everything under the Python shim (~6.5 MB PSS each, as before conmon)
SUPERVISORS = ("conmon", "mixed", "shim")
DEFAULT_SUPERVISOR = "conmon"
MNT_DETACH = 2
_libc = ctypes.CDLL(None, use_errno=True)


def mount_overlay(lower: Path, upper: Path, work: Path, target: Path) -> None:
    opts = f"lowerdir={lower},upperdir={upper},workdir={work}"
    if _libc.mount(b"overlay", str(target).encode(), b"overlay", 0, opts.encode()) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount overlay on {target}: {os.strerror(err)}")


def umount(target: Path) -> None:
    """Detach a mount (ignores "not mounted")."""
    _libc.umount2(str(target).encode(), MNT_DETACH)


def host_mount_problem(mounts: Sequence[Mount]) -> str | None:
    """Why runc could not make ``mounts`` on a read-only host root, or None.

    A mount point must exist already unless it lies inside an earlier writable mount (or
    the container's own ``/dev`` tmpfs), where runc creates it; e.g. a volume inside the
    sandbox is fine, ``/data`` is only if the host has it.
    """
    covers: list[Mount] = [Mount("", "/dev")]
    for m in mounts:
        dest = os.path.normpath(m.container_path)
        cover = max(
            (
                c
                for c in covers
                if dest == c.container_path or dest.startswith(c.container_path + "/")
            ),
            key=lambda c: len(c.container_path),
            default=None,
        )
        if cover is None:
            where = dest
        elif cover.read_only:
            where = os.path.join(cover.host_path, os.path.relpath(dest, cover.container_path))
        else:
            where = ""
        if where and not os.path.lexists(where):
            return (
                f'mount point "{dest}" does not exist: a host-command container runs on the '
                "host's root filesystem, read-only, so its volumes must be mounted at paths "
                "that exist on the host or inside the sandbox"
            )
        covers.append(Mount(m.host_path, dest, m.read_only))
    return None


class OciDriver:
    """runc containers. Needs root, ``runc``, the CNI plugins and a static busybox."""

    name = "oci"

    def __init__(
        self,
        data_dir: Path,
        *,
        host_ip: str = "127.0.0.1",
        runc: str = "runc",
        network: PodNetwork | None = None,
        busybox: Path = Path("/bin/busybox"),
        cgroup_parent: str = CGROUP_PARENT,
        supervisor: str | None = None,
    ) -> None:
        self.data_dir = Path(data_dir).absolute()  # conmon runs elsewhere
        self.containers_dir = self.data_dir / "containers"
        self.sandboxes_dir = self.data_dir / "sandboxes"
        self.runc_root = self.data_dir / "runc"
        self.host_ip = host_ip
        self.runc_binary = shutil.which(runc) or runc
        self.network = network or PodNetwork(ipam_dir=self.data_dir / "cni")
        self.busybox = busybox
        self.cgroup_parent = cgroup_parent
        self.cgroups = Cgroups.detect()
        self.supervisor, self.conmon = self._pick_supervisor(supervisor)
        self._version: str | None = None
        for d in (self.containers_dir, self.sandboxes_dir, self.runc_root):
            d.mkdir(parents=True, exist_ok=True)

    def runtime_version(self) -> str:
        if self._version is None:
            out = subprocess.run(
                [self.runc_binary, "--version"], capture_output=True, text=True, check=False
            ).stdout
            first = out.splitlines()[0] if out else "runc version unknown"
            self._version = f"oci://runc-{first.split()[-1]}"
        return self._version

    @staticmethod
    def _pick_supervisor(wanted: str | None) -> tuple[str, str | None]:
        """(mode, conmon's path or None): ``wanted``, else ``$CORRAL_OCI_SUPERVISOR``, else
        ``DEFAULT_SUPERVISOR``; "shim" where conmon is not installed."""
        explicit = wanted or os.environ.get(SUPERVISOR_ENV) or None
        mode = explicit or DEFAULT_SUPERVISOR
        if mode not in SUPERVISORS:
            raise ValueError(f"supervisor: {mode!r} (one of {', '.join(SUPERVISORS)})")
        binary = conmon_binary() if mode != "shim" else None
        if binary is None and mode != "shim":
            if explicit is not None:
                raise ValueError(f"supervisor {mode}: conmon is not installed")
            mode = "shim"
        return mode, binary

    # -- helpers -----------------------------------------------------------------------------

    def _runc_cmd(self, *args: str) -> list[str]:
        return [self.runc_binary, "--root", str(self.runc_root), *args]

    async def _runc(self, *args: str) -> tuple[int, str]:
        return await self._run(*self._runc_cmd(*args))

    async def _run(self, *argv: str) -> tuple[int, str]:
        """Run ``argv`` to its end: (exit code, stdout and stderr)."""
        return await run_command(*argv)

    def _pause_rootfs(self) -> Path:
        root = self.data_dir / "pause-rootfs"
        if not (root / "bin" / "busybox").exists():
            tmp = self.data_dir / "pause-rootfs.tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            for sub in ("bin", "proc", "dev", "etc", "tmp"):
                (tmp / sub).mkdir(parents=True)
            shutil.copy2(self.busybox, tmp / "bin" / "busybox")
            shutil.rmtree(root, ignore_errors=True)
            tmp.rename(root)
        return root

    def _cgroup(self, pod_uid: str, cid: str) -> str:
        return f"{self.cgroup_parent}/{pod_uid}/{cid}"

    @staticmethod
    def _netns_name(pod_uid: str) -> str:
        return "corral-" + pod_uid.replace("-", "")[:16]

    @staticmethod
    def _etc_files(pod_dir: Path) -> dict[str, Path]:
        return {
            "/etc/hosts": pod_dir / "etc-hosts",
            "/etc/hostname": pod_dir / "etc-hostname",
            "/etc/resolv.conf": pod_dir / "etc-resolv.conf",
        }

    def _write_etc_files(self, spec: SandboxSpec, ip: str) -> None:
        files = self._etc_files(spec.dir)
        files["/etc/hostname"].write_text(spec.hostname + "\n")
        files["/etc/hosts"].write_text(
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
            f"{ip}\t{spec.hostname}\n"
        )
        resolv = spec.resolv_conf
        if resolv is None:
            try:
                resolv = Path("/etc/resolv.conf").read_text()
            except OSError:
                resolv = ""
        files["/etc/resolv.conf"].write_text(resolv)

    # -- sandboxes ---------------------------------------------------------------------------

    async def create_sandbox(self, spec: SandboxSpec) -> Sandbox:
        record = self.sandboxes_dir / f"{spec.pod_uid}.json"
        if (existing := read_json(record)) is not None:
            return Sandbox(**existing)
        spec.dir.mkdir(parents=True, exist_ok=True)
        state_dir = self.sandboxes_dir / spec.pod_uid
        shutil.rmtree(state_dir, ignore_errors=True)
        state_dir.mkdir(parents=True)
        pause_id = f"corral-pause-{spec.pod_uid}"
        data: dict[str, Any] = {
            "pause_id": pause_id,
            "state_dir": str(state_dir),
            "host_network": spec.host_network,
            "netns": None,
        }
        partial = Sandbox(pod_uid=spec.pod_uid, dir=str(spec.dir), ip="", data=data)
        try:
            ip = self.host_ip
            if not spec.host_network:
                name = self._netns_name(spec.pod_uid)
                rc, out = await self._run("ip", "netns", "add", name)
                if rc != 0 and "exists" not in out:
                    raise StartError(CREATE_CONTAINER_ERROR, f"ip netns add {name}: {out}")
                data["netns"] = f"/run/netns/{name}"
                data["port_mappings"] = [list(m) for m in spec.port_mappings]
                ip = await self.network.add(spec.pod_uid, data["netns"], spec.port_mappings)
            self._write_etc_files(spec, ip)
            bundle = state_dir / "bundle"
            bundle.mkdir()
            config = pause_config(
                busybox_root=str(self._pause_rootfs()),
                hostname=spec.hostname,
                netns=data["netns"],
                cgroups_path="/" + self._cgroup(spec.pod_uid, "pause"),
            )
            (bundle / "config.json").write_text(json.dumps(config))
            if self.conmon is not None:
                state = await launch_conmon(
                    state_dir,
                    conmon=self.conmon,
                    runc=self.runc_binary,
                    runc_root=self.runc_root,
                    cid=pause_id,
                    bundle=bundle,
                    log_path=state_dir / "pause.log",
                )
            else:
                state = await launch_shim(
                    state_dir,
                    {
                        "mode": "runc",
                        "log_path": str(state_dir / "pause.log"),
                        "runc": self._runc_spec(pause_id, bundle),
                    },
                )
        except BaseException:
            await self._teardown_sandbox(partial)
            raise
        sandbox = Sandbox(
            pod_uid=spec.pod_uid, dir=str(spec.dir), ip=ip, pid=int(state["pid"]), data=data
        )
        write_json_atomic(record, sandbox.to_json())
        return sandbox

    def _runc_spec(self, cid: str, bundle: Path) -> dict[str, str]:
        return {
            "binary": self.runc_binary,
            "root": str(self.runc_root),
            "id": cid,
            "bundle": str(bundle),
        }

    async def remove_sandbox(self, sandbox: Sandbox) -> None:
        for h in pod_containers(self.containers_dir, sandbox.pod_uid):
            await self.remove(h)
        await self._teardown_sandbox(sandbox)
        with contextlib.suppress(FileNotFoundError):
            (self.sandboxes_dir / f"{sandbox.pod_uid}.json").unlink()

    def _pause_alive(self, sandbox: Sandbox) -> bool:
        data = sandbox.data
        state_dir = Path(data.get("state_dir", self.sandboxes_dir / sandbox.pod_uid))
        state = read_json(state_dir / "state.json")
        if state is None:
            return False
        return alive(int(state.get("pid", 0)), state.get("start_ticks"))

    async def _teardown_sandbox(self, sandbox: Sandbox) -> None:
        data = sandbox.data
        pause_id = data.get("pause_id", f"corral-pause-{sandbox.pod_uid}")
        state_dir = Path(data.get("state_dir", self.sandboxes_dir / sandbox.pod_uid))
        await self._runc("kill", pause_id, "KILL")
        state = read_json(state_dir / "state.json")
        if state is not None:
            pause = ContainerHandle(
                id=pause_id,
                pod_uid=sandbox.pod_uid,
                name="pause",
                attempt=0,
                pid=int(state["pid"]),
                started_at=float(state["started_at"]),
                state_dir=str(state_dir),
            )
            async with asyncio.timeout(10):
                await wait_exit(pause)
        await self._runc("delete", "--force", pause_id)
        await self._monitor_gone(state_dir)
        netns = data.get("netns")
        if netns:
            with contextlib.suppress(StartError):
                mappings = [
                    (int(h), int(c), str(p), str(i))
                    for h, c, p, i in data.get("port_mappings") or []
                ]
                await self.network.delete(sandbox.pod_uid, netns, mappings)
            await self._run("ip", "netns", "delete", Path(netns).name)
        if self.cgroups is not None:  # (what runc made for the pod in every hierarchy)
            self.cgroups.remove_everywhere(f"{self.cgroup_parent}/{sandbox.pod_uid}")
        for f in self._etc_files(Path(sandbox.dir)).values():
            with contextlib.suppress(FileNotFoundError):
                f.unlink()
        shutil.rmtree(state_dir, ignore_errors=True)

    # -- containers --------------------------------------------------------------------------

    async def start(self, sandbox: Sandbox, spec: ContainerSpec) -> ContainerHandle:
        if spec.image is None and not spec.host_rootfs:
            raise StartError(CREATE_CONTAINER_ERROR, "the oci driver needs an image")
        if not spec.argv:
            raise StartError(CREATE_CONTAINER_ERROR, "no command given")
        if spec.host_rootfs and (problem := host_mount_problem(spec.mounts)):
            raise StartError(CREATE_CONTAINER_ERROR, problem)
        cid = new_container_id()
        state_dir = self.containers_dir / cid
        bundle = state_dir / "bundle"
        rootfs = bundle / "rootfs"
        upper, work = state_dir / "upper", state_dir / "work"
        for d in (rootfs, upper, work):
            d.mkdir(parents=True)
        cgroup = self._cgroup(spec.pod_uid, cid)
        env = default_env(spec.env)
        # a container one may attach to (stdin, tty) is conmon's whenever conmon is here:
        # the shim has no attach socket and no pty
        under_conmon = self.conmon is not None and not spec.stdio_files
        under_conmon = under_conmon and (self.supervisor == "conmon" or spec.stdin or spec.tty)
        if spec.tty and not under_conmon:
            spec = dataclasses.replace(spec, tty=False)
        try:
            if spec.image is not None and not spec.host_rootfs:
                try:
                    mount_overlay(spec.image.rootfs, upper, work, rootfs)
                except OSError as e:
                    raise StartError(CREATE_CONTAINER_ERROR, str(e)) from e
            etc = {k: str(v) for k, v in self._etc_files(Path(sandbox.dir)).items()}
            etc = {k: v for k, v in etc.items() if os.path.exists(v)}
            if spec.host_rootfs:
                # on the host's network the host's own files are right; in a pod network
                # ours go over them (a read-only root has no place for new mount points)
                host_net = sandbox.data.get("netns") is None
                etc = {} if host_net else {k: v for k, v in etc.items() if os.path.exists(k)}
            config = container_config(
                spec,
                rootfs=str(rootfs),
                env=env,
                pause_pid=sandbox.pid,
                netns=sandbox.data.get("netns"),
                etc_files=etc,
                cgroups_path="/" + cgroup,
            )
            (bundle / "config.json").write_text(json.dumps(config))
            oom_control = self.cgroups.oom_file(cgroup) if self.cgroups else None
            if under_conmon and self.conmon is not None:
                state = await launch_conmon(
                    state_dir,
                    conmon=self.conmon,
                    runc=self.runc_binary,
                    runc_root=self.runc_root,
                    cid=cid,
                    bundle=bundle,
                    log_path=spec.log_path,
                    stdin=spec.stdin,
                    stdin_once=spec.stdin_once,
                    terminal=spec.tty,
                    oom_control=oom_control,
                )
            else:  # conmon cannot copy the raw output into files (a Mesos task's sandbox)
                shim_spec: dict[str, Any] = {
                    "mode": "runc",
                    "log_path": str(spec.log_path),
                    "stdio_files": list(spec.stdio_files) if spec.stdio_files else None,
                    "stdin": spec.stdin,
                    "runc": self._runc_spec(cid, bundle),
                    "oom_control": oom_control,
                }
                state = await launch_shim(state_dir, shim_spec)
        except BaseException:
            await self._cleanup(cid, state_dir, cgroup)
            raise
        return record_handle(state_dir, cid, spec, state, {"cgroup": cgroup})

    async def _cleanup(self, cid: str, state_dir: Path, cgroup: str | None) -> None:
        await self._runc("delete", "--force", cid)
        await self._monitor_gone(state_dir)
        umount(state_dir / "bundle" / "rootfs")
        if cgroup is not None and self.cgroups is not None:
            self.cgroups.remove(cgroup)
        shutil.rmtree(state_dir, ignore_errors=True)

    @staticmethod
    async def _monitor_gone(state_dir: Path) -> None:
        """Wait (briefly) for the container's monitor to end: conmon writes its exit record
        into the state directory after the container is gone, which must not outlive it."""
        state = read_json(state_dir / "state.json")
        if state is None:  # (a failed start: a monitor may still be winding down)
            pid_file = state_dir / "conmon" / "conmon.pid"
            with contextlib.suppress(OSError, ValueError):
                state = {"shim_pid": int(pid_file.read_text().strip())}
        if state is not None and alive(
            int(state.get("shim_pid", 0)), state.get("shim_start_ticks")
        ):
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5):
                    await wait_pid(int(state["shim_pid"]), state.get("shim_start_ticks"))

    async def wait(self, handle: ContainerHandle) -> ExitInfo:
        return await wait_exit(handle)

    async def stop(self, handle: ContainerHandle, grace: float) -> ExitInfo:
        if not running(handle):
            return await self.wait(handle)
        terminate = functools.partial(self._runc, "kill", handle.id, "TERM")
        kill = functools.partial(self._runc, "kill", "--all", handle.id, "KILL")
        return await stop_with_grace(handle, grace, terminate, kill)

    async def remove(self, handle: ContainerHandle) -> None:
        if running(handle):
            await self.stop(handle, 0)
        await self._cleanup(handle.id, Path(handle.state_dir), handle.data.get("cgroup"))

    async def recover(self) -> tuple[list[Sandbox], list[Recovered]]:
        sandboxes = []
        for p in sorted(self.sandboxes_dir.glob("*.json")):
            d = read_json(p)
            if d is None:
                continue
            sb = Sandbox(**d)
            if self._pause_alive(sb):
                sandboxes.append(sb)
            else:  # after a reboot: its namespaces are gone; the pod gets a new sandbox
                await self._teardown_sandbox(sb)
                p.unlink(missing_ok=True)
        handles, debris = load_handles(self.containers_dir)
        for debris_dir in debris:
            await self._cleanup(debris_dir.name, debris_dir, None)
        return sandboxes, await recover_containers(handles)

    async def exec(
        self, handle: ContainerHandle, argv: list[str], *, tty: bool, stdin: bool
    ) -> ExecSession:
        cmd = self._runc_cmd("exec", *(["--tty"] if tty else []), handle.id, *argv)

        def forward_winch(proc: asyncio.subprocess.Process) -> None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(28)  # SIGWINCH: runc copies our pty's size to the container's

        return await spawn_exec(cmd, tty=tty, stdin=stdin, on_resize=forward_winch)

    async def attach(self, handle: ContainerHandle) -> ConmonAttach:
        """Attach to the container's main process through its conmon (``attach.py``);
        ``AttachError`` for a container under the shim, which serves no attach."""
        if not running(handle):
            raise AttachError("the container is not running")
        return await ConmonAttach.open(Path(handle.state_dir) / "bundle")

    def stats(self, handle: ContainerHandle) -> Stats | None:
        cgroup = handle.data.get("cgroup")
        if cgroup and self.cgroups is not None:
            return self.cgroups.stats(cgroup)
        return None
