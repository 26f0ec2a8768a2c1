"""The runtime's default seccomp policy (``RuntimeDefault``) and ``Localhost`` profiles, as
the OCI ``linux.seccomp`` section runc applies.

``ocispec.container_config`` calls ``runtime_default`` with the container's final bounding
capabilities; ``pods.py`` calls ``load_localhost`` for a ``Localhost`` profile before it
starts the container. The policy is containerd's CRI default (and Docker's, which it
follows): every syscall fails with EPERM unless allowed; about 360 are allowed outright;
``socket`` for every address family but ``AF_ALG`` and ``AF_VSOCK``; ``personality`` for
five personas; ``clone`` without namespace flags, ``clone3`` with ENOSYS (so that libc
falls back to ``clone``, whose flags can be checked) unless ``CAP_SYS_ADMIN``; and more
syscalls for each capability the container holds (``mount`` and ``unshare`` only with
``CAP_SYS_ADMIN``, ``ptrace`` from Linux 4.8 on). Names the host's libseccomp does not
know are skipped by runc, so one list serves old and new kernels.

Pure apart from ``load_localhost``, which reads one JSON file under the agent's
``DATA/seccomp/`` directory (the kubelet's ``<root-dir>/seccomp``) and refuses a path
that leads out of it.
"""

from __future__ import annotations

import json
import platform
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from corral.agent.drivers.base import CREATE_CONTAINER_ERROR, StartError

EPERM = 1
ENOSYS = 38
AF_ALG = 38
AF_VSOCK = 40
#: CLONE_NEWNS | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET | NEWCGROUP
CLONE_NAMESPACE_FLAGS = (
    0x00020000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000 | 0x02000000
)
#: personality(2) values a process may set: PER_LINUX, PER_LINUX32, UNAME26,
#: UNAME26 | PER_LINUX32, and 0xffffffff (the query)
PERSONAS = (0x0, 0x0008, 0x20000, 0x20008, 0xFFFFFFFF)

#: allowed to every container
ALLOWED: tuple[str, ...] = (
    "accept", "accept4", "access", "adjtimex", "alarm", "bind", "brk", "cachestat",
    "capget", "capset", "chdir", "chmod", "chown", "chown32", "clock_adjtime",
    "clock_adjtime64", "clock_getres", "clock_getres_time64", "clock_gettime",
    "clock_gettime64", "clock_nanosleep", "clock_nanosleep_time64", "close", "close_range",
    "connect", "copy_file_range", "creat", "dup", "dup2", "dup3", "epoll_create",
    "epoll_create1", "epoll_ctl", "epoll_ctl_old", "epoll_pwait", "epoll_pwait2",
    "epoll_wait", "epoll_wait_old", "eventfd", "eventfd2", "execve", "execveat", "exit",
    "exit_group", "faccessat", "faccessat2", "fadvise64", "fadvise64_64", "fallocate",
    "fanotify_mark", "fchdir", "fchmod", "fchmodat", "fchmodat2", "fchown", "fchown32",
    "fchownat", "fcntl", "fcntl64", "fdatasync", "fgetxattr", "flistxattr", "flock", "fork",
    "fremovexattr", "fsetxattr", "fstat", "fstat64", "fstatat64", "fstatfs", "fstatfs64",
    "fsync", "ftruncate", "ftruncate64", "futex", "futex_requeue", "futex_time64",
    "futex_wait", "futex_waitv", "futex_wake", "futimesat", "getcpu", "getcwd", "getdents",
    "getdents64", "getegid", "getegid32", "geteuid", "geteuid32", "getgid", "getgid32",
    "getgroups", "getgroups32", "getitimer", "getpeername", "getpgid", "getpgrp", "getpid",
    "getppid", "getpriority", "getrandom", "getresgid", "getresgid32", "getresuid",
    "getresuid32", "getrlimit", "get_robust_list", "getrusage", "getsid", "getsockname",
    "getsockopt", "get_thread_area", "gettid", "gettimeofday", "getuid", "getuid32",
    "getxattr", "getxattrat", "inotify_add_watch", "inotify_init", "inotify_init1",
    "inotify_rm_watch", "io_cancel", "ioctl", "io_destroy", "io_getevents", "io_pgetevents",
    "io_pgetevents_time64", "ioprio_get", "ioprio_set", "io_setup", "io_submit", "ipc",
    "kill", "landlock_add_rule", "landlock_create_ruleset", "landlock_restrict_self",
    "lchown", "lchown32", "lgetxattr", "link", "linkat", "listen", "listmount", "listxattr",
    "listxattrat", "llistxattr", "_llseek", "lremovexattr", "lseek", "lsetxattr",
    "lsm_get_self_attr", "lsm_list_modules", "lsm_set_self_attr", "lstat", "lstat64",
    "madvise", "membarrier", "memfd_create", "memfd_secret", "mincore", "mkdir", "mkdirat",
    "mknod", "mknodat", "mlock", "mlock2", "mlockall", "map_shadow_stack", "mmap", "mmap2",
    "mprotect", "mq_getsetattr", "mq_notify", "mq_open", "mq_timedreceive",
    "mq_timedreceive_time64", "mq_timedsend", "mq_timedsend_time64", "mq_unlink", "mremap",
    "mseal", "msgctl", "msgget", "msgrcv", "msgsnd", "msync", "munlock", "munlockall",
    "munmap", "name_to_handle_at", "nanosleep", "newfstatat", "_newselect", "open",
    "openat", "openat2", "pause", "pidfd_open", "pidfd_send_signal", "pipe", "pipe2",
    "pkey_alloc", "pkey_free", "pkey_mprotect", "poll", "ppoll", "ppoll_time64", "prctl",
    "pread64", "preadv", "preadv2", "prlimit64", "process_mrelease", "pselect6",
    "pselect6_time64", "pwrite64", "pwritev", "pwritev2", "read", "readahead", "readlink",
    "readlinkat", "readv", "recv", "recvfrom", "recvmmsg", "recvmmsg_time64", "recvmsg",
    "remap_file_pages", "removexattr", "removexattrat", "rename", "renameat", "renameat2",
    "restart_syscall", "rmdir", "rseq", "rt_sigaction", "rt_sigpending", "rt_sigprocmask",
    "rt_sigqueueinfo", "rt_sigreturn", "rt_sigsuspend", "rt_sigtimedwait",
    "rt_sigtimedwait_time64", "rt_tgsigqueueinfo", "sched_getaffinity", "sched_getattr",
    "sched_getparam", "sched_get_priority_max", "sched_get_priority_min",
    "sched_getscheduler", "sched_rr_get_interval", "sched_rr_get_interval_time64",
    "sched_setaffinity", "sched_setattr", "sched_setparam", "sched_setscheduler",
    "sched_yield", "seccomp", "select", "semctl", "semget", "semop", "semtimedop",
    "semtimedop_time64", "send", "sendfile", "sendfile64", "sendmmsg", "sendmsg", "sendto",
    "setfsgid", "setfsgid32", "setfsuid", "setfsuid32", "setgid", "setgid32", "setgroups",
    "setgroups32", "setitimer", "setpgid", "setpriority", "setregid", "setregid32",
    "setresgid", "setresgid32", "setresuid", "setresuid32", "setreuid", "setreuid32",
    "setrlimit", "set_robust_list", "setsid", "setsockopt", "set_thread_area",
    "set_tid_address", "setuid", "setuid32", "setxattr", "setxattrat", "shmat", "shmctl",
    "shmdt", "shmget", "shutdown", "sigaltstack", "signalfd", "signalfd4", "sigprocmask",
    "sigreturn", "socketcall", "socketpair", "splice", "stat", "stat64", "statfs",
    "statfs64", "statmount", "statx", "symlink", "symlinkat", "sync", "sync_file_range",
    "syncfs", "sysinfo", "tee", "tgkill", "time", "timer_create", "timer_delete",
    "timer_getoverrun", "timer_gettime", "timer_gettime64", "timer_settime",
    "timer_settime64", "timerfd_create", "timerfd_gettime", "timerfd_gettime64",
    "timerfd_settime", "timerfd_settime64", "times", "tkill", "truncate", "truncate64",
    "ugetrlimit", "umask", "uname", "unlink", "unlinkat", "uretprobe", "utime", "utimensat",
    "utimensat_time64", "utimes", "vfork", "vmsplice", "wait4", "waitid", "waitpid",
    "write", "writev"
)  # fmt: skip

#: allowed from Linux 4.8 (where ptrace can no longer bypass seccomp)
PTRACE_FAMILY = ("process_vm_readv", "process_vm_writev", "ptrace")

#: per machine: the seccomp architectures (native first) and extra syscalls
ARCHES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "x86_64": (
        ("SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"),
        ("arch_prctl", "modify_ldt"),
    ),
    "aarch64": (
        ("SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"),
        (
            "arm_fadvise64_64", "arm_sync_file_range", "sync_file_range2", "breakpoint",
            "cacheflush", "set_tls",
        ),
    ),
}  # fmt: skip
ARCH_ALIASES = {"amd64": "x86_64", "arm64": "aarch64"}

#: syscalls a capability in the bounding set unlocks
BY_CAPABILITY: dict[str, tuple[str, ...]] = {
    "CAP_DAC_READ_SEARCH": ("open_by_handle_at",),
    "CAP_SYS_ADMIN": (
        "bpf", "clone", "clone3", "fanotify_init", "fsconfig", "fsmount", "fsopen", "fspick",
        "lookup_dcookie", "mount", "mount_setattr", "move_mount", "open_tree",
        "perf_event_open", "quotactl", "quotactl_fd", "setdomainname", "sethostname", "setns",
        "syslog", "umount", "umount2", "unshare",
    ),
    "CAP_SYS_BOOT": ("reboot",),
    "CAP_SYS_CHROOT": ("chroot",),
    "CAP_SYS_MODULE": ("delete_module", "init_module", "finit_module"),
    "CAP_SYS_PACCT": ("acct",),
    "CAP_SYS_PTRACE": (
        "kcmp", "pidfd_getfd", "process_madvise", "process_vm_readv", "process_vm_writev",
        "ptrace",
    ),
    "CAP_SYS_RAWIO": ("iopl", "ioperm"),
    "CAP_SYS_TIME": ("settimeofday", "stime", "clock_settime", "clock_settime64"),
    "CAP_SYS_TTY_CONFIG": ("vhangup",),
    "CAP_SYS_NICE": ("get_mempolicy", "mbind", "set_mempolicy", "set_mempolicy_home_node"),
    "CAP_SYSLOG": ("syslog",),
    "CAP_BPF": ("bpf",),
    "CAP_PERFMON": ("perf_event_open",),
}  # fmt: skip

#: the keys of a runtime-spec ``LinuxSeccomp`` (what a Localhost profile may set)
SPEC_KEYS = (
    "defaultAction", "defaultErrnoRet", "architectures", "flags", "listenerPath",
    "listenerMetadata", "syscalls",
)  # fmt: skip
SYSCALL_KEYS = ("names", "action", "errnoRet", "args")


def _rule(names: Iterable[str], action: str = "SCMP_ACT_ALLOW", **extra: Any) -> dict[str, Any]:
    return {"names": list(names), "action": action, **extra}


def _arg(index: int, value: int, op: str, value_two: int | None = None) -> dict[str, Any]:
    arg: dict[str, Any] = {"index": index, "value": value, "op": op}
    if value_two is not None:
        arg["valueTwo"] = value_two
    return arg


def kernel_at_least(release: str, want: tuple[int, int]) -> bool:
    """Whether a kernel release string (``6.1.0-13-amd64``) is at least ``want``."""
    m = re.match(r"(\d+)\.(\d+)", release)
    return m is not None and (int(m[1]), int(m[2])) >= want


def runtime_default(
    capabilities: Iterable[str], *, machine: str | None = None, kernel: str | None = None
) -> dict[str, Any]:
    """The ``RuntimeDefault`` policy for a container whose bounding set is
    ``capabilities`` (``CAP_*`` names), on ``machine`` (``platform.machine()``) running
    ``kernel`` (``platform.release()``)."""
    machine = ARCH_ALIASES.get(machine or platform.machine(), machine or platform.machine())
    arches, arch_extra = ARCHES.get(machine, ((), ()))
    caps = set(capabilities)
    rules: list[dict[str, Any]] = [_rule(ALLOWED)]
    # socket(2) for every family but AF_ALG and AF_VSOCK: three one-condition rules (runc
    # ORs the conditions of one rule on the same argument, so "!= a and != b" cannot be one)
    rules += [
        _rule(["socket"], args=[_arg(0, AF_ALG, "SCMP_CMP_LT")]),
        _rule(["socket"], args=[_arg(0, AF_ALG + 1, "SCMP_CMP_EQ")]),
        _rule(["socket"], args=[_arg(0, AF_VSOCK, "SCMP_CMP_GT")]),
    ]
    rules += [_rule(["personality"], args=[_arg(0, p, "SCMP_CMP_EQ")]) for p in PERSONAS]
    if kernel_at_least(kernel or platform.release(), (4, 8)):
        rules.append(_rule(PTRACE_FAMILY))
    if arch_extra:
        rules.append(_rule(arch_extra))
    for cap, names in BY_CAPABILITY.items():
        if cap in caps:
            rules.append(_rule(names))
    if "CAP_SYS_ADMIN" not in caps:
        # clone without any CLONE_NEW* flag; clone3 (whose flags live in memory seccomp
        # cannot read) answers ENOSYS so that libc falls back to clone
        rules.append(
            _rule(["clone"], args=[_arg(0, CLONE_NAMESPACE_FLAGS, "SCMP_CMP_MASKED_EQ", 0)])
        )
        rules.append(_rule(["clone3"], "SCMP_ACT_ERRNO", errnoRet=ENOSYS))
    return {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": EPERM,
        "architectures": list(arches),
        "syscalls": rules,
    }


def localhost_path(root: Path, profile: str) -> Path:
    """``profile`` (``localhostProfile``) under ``root``; ``StartError`` when it is absolute
    or leads out of ``root`` (``..``, or a symbolic link pointing elsewhere)."""
    base = root.resolve()
    path = (base / profile).resolve()
    if not profile or Path(profile).is_absolute() or not path.is_relative_to(base):
        raise StartError(
            CREATE_CONTAINER_ERROR,
            f"failed to generate seccomp spec opts: localhostProfile {profile!r} is not a "
            f"path under {base}",
        )
    return path


def load_localhost(root: Path, profile: str) -> dict[str, Any]:
    """The ``Localhost`` profile ``profile`` under ``root`` (a runtime-spec ``LinuxSeccomp``
    document, or a Docker-style one: keys runc does not know are dropped, as containerd's
    decoding drops them); ``StartError`` (``CreateContainerError``) when it cannot be read."""
    path = localhost_path(root, profile)
    try:
        doc = json.loads(path.read_text())
    except OSError as e:
        raise StartError(
            CREATE_CONTAINER_ERROR,
            f"failed to generate seccomp spec opts: cannot load seccomp profile "
            f'"{path}": {e.strerror or e}',
        ) from e
    except ValueError as e:
        raise StartError(
            CREATE_CONTAINER_ERROR,
            f'failed to generate seccomp spec opts: decoding seccomp profile failed "{path}": {e}',
        ) from e
    if not isinstance(doc, dict):
        raise StartError(
            CREATE_CONTAINER_ERROR,
            f'failed to generate seccomp spec opts: decoding seccomp profile failed "{path}": '
            "not a JSON object",
        )
    out = {k: doc[k] for k in SPEC_KEYS if k in doc}
    out["syscalls"] = [
        {k: rule[k] for k in SYSCALL_KEYS if k in rule}
        for rule in doc.get("syscalls") or []
        if isinstance(rule, dict)
    ]
    return out
