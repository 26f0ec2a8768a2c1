"""The runtime driver protocol the node agent drives, and the plain data it passes.

The pod lifecycle (``agent/pods.py``) decides *what* should run; a driver makes it so on
this machine. Every driver (``process``, ``oci``) implements ``Driver``; one harness test
suite (``tests/unit/agent/drivers/test_harness.py``) runs against each of them.

Contract, shared by all drivers:

- ``create_sandbox`` prepares what the containers of one pod share (for ``oci``: network,
  IPC and UTS namespaces held by a pause process; for ``process``: a directory) and returns
  a ``Sandbox``; ``remove_sandbox`` undoes it. Both are idempotent.
- ``start`` creates and starts one container and returns once its main process exists
  (``ContainerHandle.pid``). It raises ``StartError`` with a Kubernetes reason
  (``CreateContainerError``, ``RunContainerError``...) when it cannot; nothing is left
  behind then. The container writes stdout and stderr to ``spec.log_path`` in the CRI log
  format (``2026-11-27T16:45:19.123456789Z stdout F text``), one file per attempt.
- Each container is supervised by a small *shim* process that outlives the agent: it holds
  the container's stdio, writes the log, waits for the exit and records it in the
  container's state directory. So ``recover`` after an agent restart finds every container
  again, running or exited, from disk alone; handles are plain, JSON-serialisable data.
- ``wait`` returns when the container has exited (at once if it already has).
- ``stop`` sends SIGTERM, waits up to ``grace`` seconds, then SIGKILL; returns the exit.
- ``remove`` deletes the container's runtime state (cgroup, bundle, shim state); logs stay
  until ``remove_sandbox``.
- ``exec`` runs a command beside the container's main process (same namespaces, cgroup,
  env and working directory) and returns an ``ExecSession`` with pipes.
- ``stats`` reads current usage (cgroup counters) without blocking.
- optional: ``attach`` (``Attachable``) to a container's main process; drivers without
  it are attached to through the container's log, output only (``agent/attach.py``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

# Kubernetes' container waiting/terminated reasons that drivers may produce
CREATE_CONTAINER_ERROR = "CreateContainerError"
RUN_CONTAINER_ERROR = "RunContainerError"
CREATE_CONFIG_ERROR = "CreateContainerConfigError"
OOM_KILLED = "OOMKilled"
COMPLETED = "Completed"
ERROR = "Error"


class StartError(Exception):
    """A container could not be created or started; ``reason`` is Kubernetes' word."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class Mount:
    """A host path bind-mounted into the container."""

    host_path: str
    container_path: str
    read_only: bool = False


@dataclass(frozen=True)
class Limits:
    """Resource limits of one container (None = unlimited)."""

    memory_bytes: int | None = None
    cpu_millis: int | None = None  # limits.cpu as a CFS quota
    cpu_shares: int | None = None  # from requests.cpu, as the kubelet computes it
    pids: int | None = None


@dataclass(frozen=True)
class SandboxSpec:
    """What the containers of one pod share."""

    pod_uid: str
    namespace: str
    name: str
    hostname: str
    dir: Path  # the pod's directory on this node (volumes, logs, state live under it)
    host_network: bool = False
    resolv_conf: str | None = None  # the pod's /etc/resolv.conf (None: the host's)
    #: hostPorts: (hostPort, containerPort, protocol, hostIP) (``oci``: CNI portmap)
    port_mappings: tuple[tuple[int, int, str, str], ...] = ()


@dataclass(frozen=True)
class Sandbox:
    """A created sandbox; JSON-serialisable so an agent restart finds it again."""

    pod_uid: str
    dir: str
    ip: str  # the pod IP (the host's address for ``process`` and hostNetwork)
    pid: int = 0  # the pause process (``oci``), 0 when there is none
    data: dict[str, Any] = field(default_factory=dict)  # driver-private

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ImageInfo:
    """An unpacked image: its root filesystem (read-only, shared) and its OCI config."""

    ref: str
    digest: str  # image (manifest) digest: "sha256:..."
    rootfs: Path
    config: dict[str, Any]  # the OCI image config's "config" object (Entrypoint, Cmd, Env...)


@dataclass(frozen=True)
class ContainerSpec:
    """Everything a driver needs to run one container of a pod."""

    pod_uid: str
    namespace: str
    pod_name: str
    name: str
    attempt: int  # restart count: 0 for the first start
    argv: list[str]  # resolved command + args (image entrypoint/cmd already applied)
    env: dict[str, str]
    log_path: Path
    working_dir: str | None = None
    image: ImageInfo | None = None  # None for ``process`` when no image is unpacked
    mounts: tuple[Mount, ...] = ()
    limits: Limits = Limits()
    run_as_user: int | None = None
    run_as_group: int | None = None
    capabilities_add: tuple[str, ...] = ()
    capabilities_drop: tuple[str, ...] = ()
    privileged: bool = False
    read_only_root: bool = False
    stdin: bool = False
    tty: bool = False
    #: run on the host's own root filesystem, read-only, instead of an image (a Mesos
    #: host-command task; ``image`` is None). ``process`` always runs on the host; ``oci``
    #: gives the container a recursive read-only bind of ``/`` as its root, ``mounts``
    #: (which must name paths that exist on the host) on top
    host_rootfs: bool = False
    #: (stdout, stderr) files the raw output is also appended to, besides ``log_path``
    #: (a Mesos task's sandbox ``stdout`` and ``stderr``)
    stdio_files: tuple[str, str] | None = None
    #: keep stdin open until the first attach ends, then close it (``stdinOnce``)
    stdin_once: bool = False
    #: join this PID namespace (``/proc/PID/ns/pid``: an ephemeral container's target)
    #: instead of getting a new one
    pid_namespace: str | None = None
    #: hardening (``oci``; ``agent/securitycontext.py`` derives it from the securityContext):
    #: additional gids (the image's groups of the user, supplementalGroups, fsGroup)
    supplemental_groups: tuple[int, ...] = ()
    no_new_privileges: bool = False  # allowPrivilegeEscalation: false
    unmasked_proc: bool = False  # procMount: Unmasked (no masked or read-only /proc paths)
    #: "Unconfined", "RuntimeDefault" (``seccomp.runtime_default``) or "Localhost" (then
    #: ``seccomp_profile`` holds the loaded profile); privileged containers are unconfined
    seccomp: str = "Unconfined"
    seccomp_profile: dict[str, Any] | None = None


@dataclass(frozen=True)
class ContainerHandle:
    """A started container; JSON-serialisable (``to_json``/``from_json``)."""

    id: str  # unique on the node; ``<driver>://<id>`` is the containerID Kubernetes shows
    pod_uid: str
    name: str
    attempt: int
    pid: int  # the container's main process, as seen from the host
    started_at: float  # unix time
    state_dir: str
    data: dict[str, Any] = field(default_factory=dict)  # driver-private

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ContainerHandle:
        return cls(**d)


@dataclass(frozen=True)
class ExitInfo:
    """How a container ended."""

    exit_code: int
    started_at: float
    finished_at: float
    oom_killed: bool = False
    signal: int | None = None  # the signal that killed it, if any (exit_code is 128+n then)
    message: str = ""

    @property
    def reason(self) -> str:
        if self.oom_killed and self.exit_code != 0:  # (a child was killed, main survived)
            return OOM_KILLED
        return COMPLETED if self.exit_code == 0 else ERROR


@dataclass(frozen=True)
class Recovered:
    """One container found again by ``recover``: its handle, and its exit if it ended."""

    handle: ContainerHandle
    exit: ExitInfo | None


@dataclass(frozen=True)
class Stats:
    memory_bytes: int  # working set (usage less inactive file cache), as the kubelet's
    cpu_nanos: int  # cumulative CPU time


class ExecSession(Protocol):
    """A running ``exec``: write stdin, read stdout/stderr, wait for the exit code."""

    async def write_stdin(self, data: bytes) -> None: ...
    async def close_stdin(self) -> None: ...
    async def read_stdout(self) -> bytes: ...  # b"" at EOF
    async def read_stderr(self) -> bytes: ...  # b"" at EOF (always b"" with a tty)
    async def resize(self, width: int, height: int) -> None: ...
    async def wait(self) -> int: ...  # exit code
    async def kill(self) -> None: ...


class AttachSession(Protocol):
    """An attach client of a container's main process (``attach.ConmonAttach``): its
    output from the moment of attaching, its stdin, its pty's size."""

    async def read(self) -> tuple[int, bytes] | None: ...  # (1 stdout | 2 stderr, data)
    async def write_stdin(self, data: bytes) -> None: ...
    def close_stdin(self) -> None: ...
    async def resize(self, width: int, height: int) -> None: ...
    def close(self) -> None: ...


class Attachable(Protocol):
    """An optional driver ability (``oci``): attach to a running container's main process;
    raises ``attach.AttachError`` when that container cannot be attached to."""

    async def attach(self, handle: ContainerHandle) -> AttachSession: ...


class Driver(Protocol):
    """A runtime driver. Implementations: ``process.ProcessDriver``, ``oci.OciDriver``."""

    name: str  # "process" | "oci"

    def runtime_version(self) -> str: ...  # e.g. "oci://1.1.5" for Node.status.nodeInfo
    async def create_sandbox(self, spec: SandboxSpec) -> Sandbox: ...
    async def remove_sandbox(self, sandbox: Sandbox) -> None: ...
    async def start(self, sandbox: Sandbox, spec: ContainerSpec) -> ContainerHandle: ...
    async def wait(self, handle: ContainerHandle) -> ExitInfo: ...
    async def stop(self, handle: ContainerHandle, grace: float) -> ExitInfo: ...
    async def remove(self, handle: ContainerHandle) -> None: ...
    async def recover(self) -> tuple[list[Sandbox], list[Recovered]]: ...
    async def exec(
        self, handle: ContainerHandle, argv: list[str], *, tty: bool, stdin: bool
    ) -> ExecSession: ...
    def stats(self, handle: ContainerHandle) -> Stats | None: ...
