"""The hardening in ``config.json`` (``ocispec.container_config``, ``seccomp.py``): the
capability set as containerd's CRI computes it, masked and read-only paths, no new
privileges, additional gids, and the seccomp section (RuntimeDefault, Localhost,
privileged)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from corral.agent.drivers import seccomp
from corral.agent.drivers.base import ContainerSpec, StartError
from corral.agent.drivers.ocispec import (
    ALL_CAPABILITIES,
    DEFAULT_CAPABILITIES,
    MASKED_PATHS,
    READONLY_PATHS,
    capability_set,
    container_config,
)


def _config(**spec: Any) -> dict[str, Any]:
    cs = ContainerSpec(
        pod_uid="u1", namespace="ns", pod_name="p", name="c", attempt=0, argv=["sh"],
        env={"PATH": "/bin"}, log_path=Path("/tmp/x.log"), **spec,
    )  # fmt: skip
    return container_config(
        cs, rootfs="/r", env=dict(cs.env), pause_pid=42, netns="/run/netns/x", etc_files={},
        cgroups_path="/corral/u1/c",
    )  # fmt: skip


DOCKER = {
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
}  # fmt: skip


@pytest.mark.parametrize(
    ("add", "drop", "privileged", "want"),
    [
        ((), (), False, DOCKER),
        (("NET_ADMIN",), ("chown",), False, (DOCKER - {"CAP_CHOWN"}) | {"CAP_NET_ADMIN"}),
        ((), ("ALL",), False, set()),
        (("NET_BIND_SERVICE",), ("ALL",), False, {"CAP_NET_BIND_SERVICE"}),
        (("ALL",), ("CHOWN",), False, set(ALL_CAPABILITIES) - {"CAP_CHOWN"}),
        (("ALL",), ("ALL",), False, set()),
        (("CAP_SYS_TIME",), (), False, DOCKER | {"CAP_SYS_TIME"}),
        ((), ("ALL",), True, set(ALL_CAPABILITIES)),
    ],
    ids=[
        "docker-default", "add-and-drop", "drop-all", "drop-all-add-one", "add-all-drop-one",
        "add-all-drop-all", "cap-prefix", "privileged",
    ],
)  # fmt: skip
def test_capability_set(
    add: tuple[str, ...], drop: tuple[str, ...], privileged: bool, want: set[str]
) -> None:
    assert set(capability_set(add, drop, privileged)) == want


def test_default_capabilities_are_dockers() -> None:
    assert set(DEFAULT_CAPABILITIES) == DOCKER and len(DEFAULT_CAPABILITIES) == 14


def test_no_ambient_capabilities_and_all_three_sets_equal() -> None:
    caps = _config(capabilities_add=("NET_ADMIN",))["process"]["capabilities"]
    assert set(caps) == {"bounding", "effective", "permitted"}
    assert caps["bounding"] == caps["effective"] == caps["permitted"]


@pytest.mark.parametrize(
    ("spec", "masked"),
    [({}, True), ({"unmasked_proc": True}, False), ({"privileged": True}, False)],
    ids=["default", "procMount-Unmasked", "privileged"],
)
def test_masked_and_readonly_paths(spec: dict[str, Any], masked: bool) -> None:
    linux = _config(**spec)["linux"]
    assert linux["maskedPaths"] == (list(MASKED_PATHS) if masked else [])
    assert linux["readonlyPaths"] == (list(READONLY_PATHS) if masked else [])


def test_masked_paths_are_the_kubelets() -> None:
    assert set(MASKED_PATHS) == {
        "/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
        "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
        "/sys/firmware", "/sys/devices/virtual/powercap",
    }  # fmt: skip
    assert READONLY_PATHS == (
        "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("spec", "want"),
    [
        ({}, False),
        ({"no_new_privileges": True}, True),
        ({"no_new_privileges": True, "privileged": True}, False),
    ],
    ids=["default-escalation-allowed", "allowPrivilegeEscalation-false", "privileged"],
)
def test_no_new_privileges(spec: dict[str, Any], want: bool) -> None:
    assert _config(**spec)["process"]["noNewPrivileges"] is want


def test_user_and_additional_gids() -> None:
    user = _config(run_as_user=1000, run_as_group=3000, supplemental_groups=(2000, 4, 2000))[
        "process"
    ]["user"]
    assert user == {"uid": 1000, "gid": 3000, "additionalGids": [4, 2000]}
    assert _config()["process"]["user"] == {"uid": 0, "gid": 0}


def _rules(profile: dict[str, Any]) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = profile["syscalls"]
    return rules


def _allowed_plain(profile: dict[str, Any]) -> set[str]:
    return {
        n
        for r in _rules(profile)
        if r["action"] == "SCMP_ACT_ALLOW" and not r.get("args")
        for n in r["names"]
    }


@pytest.mark.parametrize(
    ("spec", "kind"),
    [
        ({}, None),
        ({"seccomp": "Unconfined"}, None),
        ({"seccomp": "RuntimeDefault"}, "default"),
        ({"seccomp": "RuntimeDefault", "privileged": True}, None),
        ({"seccomp": "Localhost", "seccomp_profile": {"defaultAction": "SCMP_ACT_LOG"}}, "local"),
    ],
    ids=["unset", "unconfined", "runtime-default", "privileged-never", "localhost"],
)
def test_seccomp_section(spec: dict[str, Any], kind: str | None) -> None:
    got = _config(**spec)["linux"].get("seccomp")
    if kind is None:
        assert got is None
    elif kind == "local":
        assert got == {"defaultAction": "SCMP_ACT_LOG"}
    else:
        assert got["defaultAction"] == "SCMP_ACT_ERRNO" and got["defaultErrnoRet"] == 1
        assert "mount" not in _allowed_plain(got)  # no CAP_SYS_ADMIN in Docker's set
        assert "chroot" in _allowed_plain(got)  # CAP_SYS_CHROOT is


def test_runtime_default_policy_facts() -> None:
    p = seccomp.runtime_default(DOCKER, machine="x86_64", kernel="6.1.0-13-amd64")
    assert p["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    plain = _allowed_plain(p)
    for name in ("read", "openat", "execve", "arch_prctl", "ptrace", "chroot", "socketpair"):
        assert name in plain, name
    for name in ("mount", "unshare", "setns", "reboot", "kexec_load", "bpf", "socket"):
        assert name not in plain, name
    by_name: dict[str, list[dict[str, Any]]] = {}
    for r in _rules(p):
        for n in r["names"]:
            by_name.setdefault(n, []).append(r)
    assert [r["args"][0]["value"] for r in by_name["personality"]] == [
        0,
        8,
        0x20000,
        0x20008,
        0xFFFFFFFF,
    ]
    assert [(a["op"], a["value"]) for r in by_name["socket"] for a in r["args"]] == [
        ("SCMP_CMP_LT", 38),
        ("SCMP_CMP_EQ", 39),
        ("SCMP_CMP_GT", 40),
    ]
    (clone,) = by_name["clone"]
    assert clone["args"] == [
        {"index": 0, "value": 0x7E020000, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}
    ]
    assert by_name["clone3"] == [{"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}]


@pytest.mark.parametrize(
    ("caps", "machine", "kernel", "allowed", "denied"),
    [
        ({"CAP_SYS_ADMIN"}, "x86_64", "6.1", {"mount", "unshare", "clone", "clone3"}, set()),
        ({"CAP_SYS_PTRACE"}, "x86_64", "6.1", {"kcmp", "pidfd_getfd"}, {"mount"}),
        ({"CAP_SYS_TIME"}, "x86_64", "6.1", {"settimeofday", "clock_settime"}, set()),
        (set(), "x86_64", "4.4.0", set(), {"ptrace", "chroot"}),
        (set(), "aarch64", "6.1", {"set_tls", "cacheflush"}, {"arch_prctl"}),
    ],
    ids=["sys-admin", "sys-ptrace", "sys-time", "old-kernel-no-ptrace", "aarch64"],
)
def test_runtime_default_by_capability_and_arch(
    caps: set[str], machine: str, kernel: str, allowed: set[str], denied: set[str]
) -> None:
    p = seccomp.runtime_default(caps, machine=machine, kernel=kernel)
    plain = _allowed_plain(p)
    assert allowed <= plain and not denied & plain
    if "CAP_SYS_ADMIN" in caps:  # no conditional clone, no ENOSYS clone3
        assert all(r["action"] == "SCMP_ACT_ALLOW" for r in _rules(p))
    if machine == "aarch64":
        assert p["architectures"] == ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]


def test_localhost_profile_is_loaded_and_trimmed(tmp_path: Path) -> None:
    (tmp_path / "profiles").mkdir()
    doc = {
        "defaultAction": "SCMP_ACT_ERRNO",
        "archMap": [{"architecture": "SCMP_ARCH_X86_64"}],
        "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW", "comment": "x"}],
    }
    (tmp_path / "profiles" / "p.json").write_text(json.dumps(doc))
    assert seccomp.load_localhost(tmp_path, "profiles/p.json") == {
        "defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}],
    }


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("../etc/passwd", "is not a path under"),
        ("/etc/passwd", "is not a path under"),
        ("link/x.json", "is not a path under"),
        ("missing.json", "cannot load seccomp profile"),
        ("bad.json", "decoding seccomp profile failed"),
    ],
    ids=["dotdot", "absolute", "symlink-out", "missing", "not-json"],
)
def test_localhost_profile_refused(tmp_path: Path, name: str, message: str) -> None:
    root = tmp_path / "seccomp"
    root.mkdir()
    (root / "link").symlink_to(tmp_path)
    (tmp_path / "x.json").write_text("{}")
    (root / "bad.json").write_text("{nope")
    with pytest.raises(StartError) as e:
        seccomp.load_localhost(root, name)
    assert e.value.reason == "CreateContainerError"
    assert message in e.value.message
