"""OCI runtime spec (``config.json``) generation for ``OciDriver``: pure functions, no I/O.

``OciDriver`` calls ``container_config`` for app containers and ``pause_config`` for a
pod's sandbox process; runc reads the result from the bundle. Defaults follow
``runc spec`` and Docker (capabilities, masked and read-only ``/proc`` paths, the standard
``/proc``, ``/dev``, ``/dev/pts``, ``/dev/shm``, ``/dev/mqueue``, ``/sys`` mounts), so a
container here behaves like one run by containerd or Docker.

Hardening, as containerd's CRI does it for the kubelet: Docker's default capability set,
``add``/``drop`` applied in CRI's order (``ALL`` first, then single names), no ambient
capabilities, everything for a privileged container; the kubelet's masked and read-only
``/proc`` and ``/sys`` paths unless privileged or ``procMount: Unmasked``;
``noNewPrivileges`` for ``allowPrivilegeEscalation: false``; the uid, gid and additional
gids the pod worker resolved (``agent/securitycontext.py``); and the seccomp policy
(``seccomp.py``): ``RuntimeDefault`` is built from the final bounding set, ``Localhost``
comes loaded in the spec, a privileged container never gets one.

A host-root container (``ContainerSpec.host_rootfs``: a Mesos host-command task) has an
empty directory as ``root.path`` and, as its first mount, the host's ``/`` bound onto
it recursively and recursively read-only (``rbind`` + runc's ``rro``, i.e.
``mount_setattr(AT_RECURSIVE, MOUNT_ATTR_RDONLY)``: runc >= 1.1, Linux >= 5.12; a
plain ``ro`` would leave every submount of ``/`` writable). The standard mounts go on
top, except ``/sys`` in the host's network namespace: sysfs is per network namespace,
and mounting the host's own sysfs again over the bound ``/sys`` fails with EBUSY, so the
bound (read-only) ``/sys`` stays. Everything lives in the container's mount namespace
and goes with it: nothing is mounted on the host.
"""

from __future__ import annotations

from typing import Any

from corral.agent.drivers.base import ContainerSpec, Limits, Mount
from corral.agent.drivers.cgroups import CFS_PERIOD_US
from corral.agent.drivers.seccomp import runtime_default

OCI_VERSION = "1.0.2"

DEFAULT_CAPABILITIES = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
)
ALL_CAPABILITIES = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
]
#: the kubelet's default masked paths (pkg/securitycontext), which containerd applies
MASKED_PATHS = (
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
)
READONLY_PATHS = (
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
)


def _cap_names(names: tuple[str, ...]) -> list[str]:
    """Kubernetes' names (``NET_ADMIN``, any case, ``CAP_`` optional) as OCI's, ``ALL`` left out."""
    out = []
    for n in names:
        n = n.upper()
        if n != "ALL":
            out.append(n if n.startswith("CAP_") else "CAP_" + n)
    return out


def capability_set(add: tuple[str, ...], drop: tuple[str, ...], privileged: bool) -> list[str]:
    """The bounding (= effective = permitted) set, as containerd's CRI computes it: every
    capability when privileged; else Docker's default set, replaced by every capability
    when ``add`` holds ``ALL``, then emptied when ``drop`` holds ``ALL``; then the single
    names of ``add`` added and those of ``drop`` removed (so ``add: [ALL], drop: [CHOWN]``
    is all but CHOWN and ``drop: [ALL], add: [NET_BIND_SERVICE]`` just that one)."""
    if privileged:
        return list(ALL_CAPABILITIES)
    caps = set(DEFAULT_CAPABILITIES)
    if any(n.upper() == "ALL" for n in add):
        caps = set(ALL_CAPABILITIES)
    if any(n.upper() == "ALL" for n in drop):
        caps = set()
    caps |= set(_cap_names(add))
    caps -= set(_cap_names(drop))
    return sorted(caps)


def standard_mounts(privileged: bool) -> list[dict[str, Any]]:
    sys_opts = ["nosuid", "noexec", "nodev"] + ([] if privileged else ["ro"])
    return [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {
            "destination": "/dev",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "strictatime", "mode=755", "size=65536k"],
        },
        {
            "destination": "/dev/pts",
            "type": "devpts",
            "source": "devpts",
            "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
        },
        {
            "destination": "/dev/shm",
            "type": "tmpfs",
            "source": "shm",
            "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        },
        {
            "destination": "/dev/mqueue",
            "type": "mqueue",
            "source": "mqueue",
            "options": ["nosuid", "noexec", "nodev"],
        },
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": sys_opts},
        {  # the container's own cgroups, read-only (containerd's default spec has it)
            "destination": "/sys/fs/cgroup",
            "type": "cgroup",
            "source": "cgroup",
            "options": ["nosuid", "noexec", "nodev", "relatime", "ro"],
        },
    ]


#: the host's root as a container's root filesystem, read-only all the way down
HOST_ROOT_MOUNT: dict[str, Any] = {
    "destination": "/",
    "type": "bind",
    "source": "/",
    "options": ["rbind", "rro"],
}


def bind_mount(m: Mount) -> dict[str, Any]:
    options = ["rbind", "rprivate", "ro" if m.read_only else "rw"]
    return {
        "destination": m.container_path,
        "type": "bind",
        "source": m.host_path,
        "options": options,
    }


def resources(limits: Limits, privileged: bool) -> dict[str, Any]:
    res: dict[str, Any] = {
        "devices": [{"allow": privileged, "access": "rwm"}],
    }
    if limits.memory_bytes is not None:
        res["memory"] = {"limit": limits.memory_bytes}
    cpu: dict[str, Any] = {}
    if limits.cpu_millis is not None:
        cpu["quota"] = max(1000, limits.cpu_millis * CFS_PERIOD_US // 1000)
        cpu["period"] = CFS_PERIOD_US
    if limits.cpu_shares is not None:
        cpu["shares"] = max(2, limits.cpu_shares)
    if cpu:
        res["cpu"] = cpu
    if limits.pids is not None:
        res["pids"] = {"limit": limits.pids}
    return res


def _base(
    *,
    args: list[str],
    env: dict[str, str],
    cwd: str,
    uid: int,
    gid: int,
    caps: list[str],
    additional_gids: tuple[int, ...] = (),
    unmasked: bool = False,
    seccomp: dict[str, Any] | None = None,
    no_new_privileges: bool,
    root: str,
    readonly_root: bool,
    mounts: list[dict[str, Any]],
    namespaces: list[dict[str, Any]],
    cgroups_path: str,
    res: dict[str, Any],
    privileged: bool,
    hostname: str | None = None,
) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "ociVersion": OCI_VERSION,
        "process": {
            "terminal": False,
            "user": {"uid": uid, "gid": gid},
            # (no ambient or inheritable set: containerd's CRI clears ambient capabilities)
            "args": args,
            "env": [f"{k}={v}" for k, v in env.items()],
            "cwd": cwd,
            "capabilities": {k: caps for k in ("bounding", "effective", "permitted")},
            "noNewPrivileges": no_new_privileges,
        },
        "root": {"path": root, "readonly": readonly_root},
        "mounts": mounts,
        "linux": {
            "resources": res,
            "cgroupsPath": cgroups_path,
            "namespaces": namespaces,
            "maskedPaths": [] if privileged or unmasked else list(MASKED_PATHS),
            "readonlyPaths": [] if privileged or unmasked else list(READONLY_PATHS),
        },
    }
    if additional_gids:
        cfg["process"]["user"]["additionalGids"] = sorted(set(additional_gids))
    if seccomp is not None and not privileged:
        cfg["linux"]["seccomp"] = seccomp
    if hostname is not None:
        cfg["hostname"] = hostname
    return cfg


def pause_config(
    *, busybox_root: str, hostname: str, netns: str | None, cgroups_path: str
) -> dict[str, Any]:
    """The sandbox's pause process: holds the pod's network (``netns`` path; None for
    hostNetwork), IPC and UTS namespaces; sleeps forever."""
    namespaces: list[dict[str, Any]] = [{"type": "pid"}, {"type": "ipc"}, {"type": "mount"}]
    if netns is not None:
        namespaces += [{"type": "network", "path": netns}, {"type": "uts"}]
    return _base(
        args=["/bin/busybox", "sleep", "2147483647"],
        env={"PATH": "/bin"},
        cwd="/",
        uid=0,
        gid=0,
        caps=[],
        no_new_privileges=True,
        root=busybox_root,
        readonly_root=True,
        mounts=standard_mounts(privileged=False)[:2],
        namespaces=namespaces,
        cgroups_path=cgroups_path,
        res={},
        privileged=False,
        hostname=hostname if netns is not None else None,
    )


def container_config(
    spec: ContainerSpec,
    *,
    rootfs: str,
    env: dict[str, str],
    pause_pid: int,
    netns: str | None,
    etc_files: dict[str, str],
    cgroups_path: str,
) -> dict[str, Any]:
    """An app container joining the sandbox's network, IPC and UTS namespaces; with
    ``spec.host_rootfs``, on the host's read-only root (``rootfs`` is an empty directory)."""
    pid: dict[str, Any] = {"type": "pid"}
    if spec.pid_namespace:  # an ephemeral container sharing its target's processes
        pid["path"] = spec.pid_namespace
    namespaces: list[dict[str, Any]] = [
        pid,
        {"type": "mount"},
        {"type": "ipc", "path": f"/proc/{pause_pid}/ns/ipc"},
    ]
    if netns is not None:
        namespaces += [
            {"type": "network", "path": netns},
            {"type": "uts", "path": f"/proc/{pause_pid}/ns/uts"},
        ]
    mounts = standard_mounts(spec.privileged)
    if spec.host_rootfs:
        keep_sys = netns is None  # the host's sysfs is already there (and cannot be remounted)
        mounts = [HOST_ROOT_MOUNT] + [
            m for m in mounts if not (keep_sys and m["destination"] == "/sys")
        ]
    mounts += [
        {"destination": dest, "type": "bind", "source": src, "options": ["rbind", "rprivate"]}
        for dest, src in etc_files.items()
    ]
    mounts += [bind_mount(m) for m in spec.mounts]
    caps = capability_set(spec.capabilities_add, spec.capabilities_drop, spec.privileged)
    seccomp: dict[str, Any] | None = None
    if spec.seccomp == "RuntimeDefault":
        seccomp = runtime_default(caps)
    elif spec.seccomp == "Localhost":
        seccomp = spec.seccomp_profile
    if spec.tty and "TERM" not in env:
        env = {**env, "TERM": "xterm"}  # (as CRI-O and containerd set it for a tty)
    cfg = _base(
        args=spec.argv,
        env=env,
        cwd=spec.working_dir or "/",
        uid=spec.run_as_user or 0,
        gid=spec.run_as_group or 0,
        caps=caps,
        additional_gids=spec.supplemental_groups,
        unmasked=spec.unmasked_proc,
        seccomp=seccomp,
        # Kubernetes' allowPrivilegeEscalation defaults to true
        no_new_privileges=spec.no_new_privileges and not spec.privileged,
        root=rootfs,
        readonly_root=spec.read_only_root and not spec.host_rootfs,  # (rro does it)
        mounts=mounts,
        namespaces=namespaces,
        cgroups_path=cgroups_path,
        res=resources(spec.limits, spec.privileged),
        privileged=spec.privileged,
    )
    # a tty: runc makes a pty and hands its master to the monitor (``--console-socket``)
    cfg["process"]["terminal"] = spec.tty
    return cfg
