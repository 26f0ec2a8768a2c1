"""Pod Security Standards (api/pod_security*.py): each check's verdict and text, the
levels and versions, the namespace labels. Expected texts are upstream's, word for word."""

from __future__ import annotations

from typing import Any

import pytest

from corral.api.pod_security import (
    DEFAULT_POLICY,
    Evaluator,
    LevelVersion,
    Policy,
    compare_levels,
    parse_version,
    policy_to_evaluate,
)

Obj = dict[str, Any]
EVAL = Evaluator()
RESTRICTED_OK = {
    "runAsNonRoot": True,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


def pod(sc: Obj | None = None, **spec: Any) -> tuple[Obj, Obj]:
    """A pod whose one container "c" has securityContext ``sc``; ``spec`` overrides."""
    c: Obj = {"name": "c", "image": "busybox"}
    if sc is not None:
        c["securityContext"] = sc
    meta = spec.pop("metadata", {})
    return meta, {"containers": [c], **spec}


def detail(level: str, p: tuple[Obj, Obj], version: str = "latest") -> str:
    return EVAL.evaluate(LevelVersion(level, version), *p).forbidden_detail()


# --- baseline ----------------------------------------------------------------------------
BASELINE_CASES = [
    ("allowed", pod(), ""),
    ("hostProcess", pod({"windowsOptions": {"hostProcess": True}}),
     'hostProcess (container "c" must not set securityContext.windowsOptions.hostProcess=true)'),
    ("hostProcess-pod", pod(securityContext={"windowsOptions": {"hostProcess": True}}),
     "hostProcess (pod must not set securityContext.windowsOptions.hostProcess=true)"),
    ("hostNamespaces", pod(hostNetwork=True, hostPID=True, hostIPC=True),
     "host namespaces (hostNetwork=true, hostPID=true, hostIPC=true)"),
    ("privileged", pod({"privileged": True}),
     'privileged (container "c" must not set securityContext.privileged=true)'),
    ("capabilities", pod({"capabilities": {"add": ["SYS_ADMIN", "CHOWN", "NET_RAW"]}}),
     'non-default capabilities (container "c" must not include "NET_RAW", "SYS_ADMIN" '
     "in securityContext.capabilities.add)"),
    ("capabilities-default-set", pod({"capabilities": {"add": ["CHOWN", "KILL"]}}), ""),
    ("hostPath", pod(volumes=[{"name": "h", "hostPath": {"path": "/"}}, {"name": "e", "emptyDir": {}}]),
     'hostPath volumes (volume "h")'),
    ("hostPorts", pod(containers=[
        {"name": "a", "ports": [{"containerPort": 80, "hostPort": 8080}, {"containerPort": 9, "hostPort": 443}]},
        {"name": "b", "ports": [{"containerPort": 80}]},
    ]), 'hostPort (container "a" uses hostPorts 443, 8080)'),
    ("appArmor", pod({"appArmorProfile": {"type": "Unconfined"}}),
     'forbidden AppArmor profile (container "c" must not set AppArmor profile type to "Unconfined")'),
    ("appArmor-annotation", pod(metadata={"annotations": {
        "container.apparmor.security.beta.kubernetes.io/c": "unconfined"}}),
     "forbidden AppArmor profile (annotation must not set AppArmor profile type to "
     '"container.apparmor.security.beta.kubernetes.io/c="unconfined"")'),
    ("appArmor-allowed", pod({"appArmorProfile": {"type": "Localhost", "localhostProfile": "p"}}), ""),
    ("seLinux", pod({"seLinuxOptions": {"type": "spc_t", "user": "u", "role": "r"}}),
     'seLinuxOptions (container "c" set forbidden securityContext.seLinuxOptions: '
     'type "spc_t"; user may not be set; role may not be set)'),
    ("seLinux-allowed", pod({"seLinuxOptions": {"type": "container_engine_t", "level": "s0"}}), ""),
    ("procMount", pod({"procMount": "Unmasked"}),
     'procMount (container "c" must not set securityContext.procMount to "Unmasked")'),
    ("seccomp", pod(securityContext={"seccompProfile": {"type": "Unconfined"}}),
     'seccompProfile (pod must not set securityContext.seccompProfile.type to "Unconfined")'),
    ("seccomp-unset-is-fine", pod({"seccompProfile": None}), ""),
    ("sysctls", pod(securityContext={"sysctls": [
        {"name": "net.ipv4.tcp_rmem", "value": "1"}, {"name": "kernel.msgmax", "value": "1"}]}),
     "forbidden sysctls (kernel.msgmax)"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("p", "want"), [c[1:] for c in BASELINE_CASES], ids=[c[0] for c in BASELINE_CASES]
)
def test_baseline_checks(p: tuple[Obj, Obj], want: str) -> None:
    assert detail("baseline", p) == want


def test_privileged_level_allows_everything() -> None:
    p = pod({"privileged": True}, hostNetwork=True)
    assert EVAL.evaluate(LevelVersion("privileged", "latest"), *p).allowed


def test_baseline_violations_in_upstream_order_and_reasons() -> None:
    p = pod({"privileged": True, "capabilities": {"add": ["NET_ADMIN"]}}, hostPID=True)
    result = EVAL.evaluate(LevelVersion("baseline", "latest"), *p)
    assert result.forbidden_reason() == "non-default capabilities, host namespaces, privileged"


# --- restricted --------------------------------------------------------------------------
RESTRICTED_CASES = [
    ("compliant", pod(RESTRICTED_OK), ""),
    ("compliant-pod-level", pod(
        {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}},
        securityContext={"runAsNonRoot": True, "seccompProfile": {"type": "Localhost", "localhostProfile": "x"}},
    ), ""),
    ("bare", pod(),
     'allowPrivilegeEscalation != false (container "c" must set securityContext.allowPrivilegeEscalation=false), '
     'unrestricted capabilities (container "c" must set securityContext.capabilities.drop=["ALL"]), '
     'runAsNonRoot != true (pod or container "c" must set securityContext.runAsNonRoot=true), '
     'seccompProfile (pod or container "c" must set securityContext.seccompProfile.type to '
     '"RuntimeDefault" or "Localhost")'),
    ("capabilities-add", pod({**RESTRICTED_OK, "capabilities": {"drop": ["ALL"], "add": ["CHOWN"]}}),
     'unrestricted capabilities (container "c" must not include "CHOWN" in securityContext.capabilities.add)'),
    ("runAsNonRoot-false", pod({**RESTRICTED_OK, "runAsNonRoot": False}, securityContext={"runAsNonRoot": False}),
     'runAsNonRoot != true (pod and container "c" must not set securityContext.runAsNonRoot=false)'),
    ("runAsUser-0", pod({**RESTRICTED_OK, "runAsUser": 0}),
     'runAsUser=0 (container "c" must not set runAsUser=0)'),
    ("volumes", pod(RESTRICTED_OK, volumes=[
        {"name": "n", "nfs": {"server": "s", "path": "/"}}, {"name": "h", "hostPath": {"path": "/"}},
        {"name": "p", "projected": {"sources": []}}]),
     'restricted volume types (volumes "n", "h" use restricted volume types "hostPath", "nfs")'),
    ("seccomp-explicit", pod({**RESTRICTED_OK, "seccompProfile": {"type": "Unconfined"}}),
     'seccompProfile (container "c" must not set securityContext.seccompProfile.type to "Unconfined")'),
    ("windows", pod({"runAsNonRoot": True}, os={"name": "windows"}), ""),
    ("baseline-too", pod({**RESTRICTED_OK, "privileged": True}),
     'privileged (container "c" must not set securityContext.privileged=true)'),
]  # fmt: skip


@pytest.mark.parametrize(
    ("p", "want"), [c[1:] for c in RESTRICTED_CASES], ids=[c[0] for c in RESTRICTED_CASES]
)
def test_restricted_checks(p: tuple[Obj, Obj], want: str) -> None:
    assert detail("restricted", p) == want


def test_every_kind_of_container_is_visited() -> None:
    meta, spec = pod(RESTRICTED_OK)
    spec["initContainers"] = [{"name": "i", "securityContext": {"privileged": True}}]
    spec["ephemeralContainers"] = [{"name": "e", "securityContext": {"privileged": True}}]
    result = EVAL.evaluate(LevelVersion("baseline", "latest"), meta, spec)
    assert result.forbidden_detail() == (
        'privileged (containers "i", "e" must not set securityContext.privileged=true)'
    )


# --- versions ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("p", "version", "want"),
    [
        # runAsUser joined restricted in v1.23; before it, only the other checks
        (pod({**RESTRICTED_OK, "runAsUser": 0}), "v1.22", ""),
        (pod({**RESTRICTED_OK, "runAsUser": 0}), "v1.23", "runAsUser=0"),
        # capabilities_restricted from v1.22; before it the baseline capability check
        (pod({**RESTRICTED_OK, "capabilities": {"add": ["SYS_ADMIN"]}}), "v1.21", "non-default capabilities"),
        # Windows pods exempt from the Linux-only checks from v1.25
        (pod({"runAsNonRoot": True}, os={"name": "windows"}), "v1.24",
         "allowPrivilegeEscalation != false, unrestricted capabilities, seccompProfile"),
        # sysctls: tcp_rmem allowed from v1.32, ip_local_reserved_ports from v1.27
        (pod(RESTRICTED_OK, securityContext={"sysctls": [{"name": "net.ipv4.tcp_rmem", "value": "1"}]}),
         "v1.31", "forbidden sysctls"),
        (pod(RESTRICTED_OK, securityContext={"sysctls": [{"name": "net.ipv4.ip_local_reserved_ports"}]}),
         "v1.26", "forbidden sysctls"),
        # container_engine_t allowed from v1.31
        (pod({**RESTRICTED_OK, "seLinuxOptions": {"type": "container_engine_t"}}), "v1.30", "seLinuxOptions"),
        # versions after the one implemented evaluate it, like latest
        (pod(RESTRICTED_OK, securityContext={"sysctls": [{"name": "net.ipv4.tcp_rmem"}]}), "v1.40", ""),
        # v1.0-v1.18 read the seccomp annotations, not the fields
        (pod(RESTRICTED_OK, metadata={"annotations": {"seccomp.security.alpha.kubernetes.io/pod": "unconfined"}}),
         "v1.18", "seccompProfile"),
        (pod({**RESTRICTED_OK, "seccompProfile": {"type": "Unconfined"}}), "v1.18", ""),
    ],
    ids=["runAsUser-1.22", "runAsUser-1.23", "caps-1.21", "windows-1.24", "sysctl-1.31", "sysctl-1.26",
         "selinux-1.30", "future", "seccomp-annotation-1.18", "seccomp-field-1.18"],
)  # fmt: skip
def test_versions(p: tuple[Obj, Obj], version: str, want: str) -> None:
    result = EVAL.evaluate(LevelVersion("restricted", version), *p)
    assert result.forbidden_reason() == want


def test_seccomp_annotation_detail() -> None:
    p = pod(RESTRICTED_OK, metadata={"annotations": {
        "seccomp.security.alpha.kubernetes.io/pod": "unconfined",
        "container.seccomp.security.alpha.kubernetes.io/c": "docker/default"}})  # fmt: skip
    assert detail("baseline", p, "v1.0") == (
        'seccompProfile (forbidden annotation seccomp.security.alpha.kubernetes.io/pod="unconfined")'
    )


# --- levels, versions and labels ---------------------------------------------------------
def test_parse_and_compare() -> None:
    assert parse_version("v1.0") == ("v1.0", None)
    assert parse_version("v1.05") == ("latest", 'must be "latest" or "v1.x"')
    assert parse_version("v2.1")[1] is not None
    assert compare_levels("restricted", "baseline") == 1
    assert compare_levels("privileged", "baseline") == -1
    assert str(LevelVersion("baseline", "v1.29")) == "baseline:v1.29"


def lv(s: str) -> LevelVersion:
    level, version = s.split(":")
    return LevelVersion(level, version)


@pytest.mark.parametrize(
    ("labels", "want"),
    [
        ({}, ("privileged:latest", "privileged:latest", "privileged:latest")),
        ({"enforce": "baseline"}, ("baseline:latest", "privileged:latest", "baseline:latest")),
        ({"enforce": "baseline", "enforce-version": "v1.25"},
         ("baseline:v1.25", "privileged:latest", "baseline:v1.25")),
        ({"enforce": "baseline", "warn": "privileged"},
         ("baseline:latest", "privileged:latest", "privileged:latest")),
        ({"enforce": "baseline", "warn-version": "v1.20"},
         ("baseline:latest", "privileged:latest", "baseline:v1.20")),
        ({"enforce": "restricted", "warn": "baseline", "audit": "restricted", "audit-version": "v1.30"},
         ("restricted:latest", "restricted:v1.30", "baseline:latest")),
    ],
    ids=["none", "enforce-sets-warn", "enforce-version-too", "explicit-warn", "warn-version-kept", "all"],
)  # fmt: skip
def test_policy_from_labels(labels: dict[str, str], want: tuple[str, str, str]) -> None:
    full = {"pod-security.kubernetes.io/" + k: v for k, v in labels.items()}
    policy, errs = policy_to_evaluate(full)
    assert errs == []
    assert policy == Policy(*map(lv, want))


def test_invalid_labels_fail_closed_for_enforce_and_open_for_audit_and_warn() -> None:
    labels = {
        "pod-security.kubernetes.io/enforce": "strict",
        "pod-security.kubernetes.io/audit": "nope",
        "pod-security.kubernetes.io/warn-version": "1.25",
    }
    policy, errs = policy_to_evaluate(labels)
    assert policy == Policy(
        lv("restricted:latest"), lv("privileged:latest"), lv("privileged:latest")
    )
    assert [str(e) for e in errs] == [
        'metadata.labels[pod-security.kubernetes.io/enforce]: Invalid value: "strict": '
        "must be one of privileged, baseline, restricted",
        'metadata.labels[pod-security.kubernetes.io/audit]: Invalid value: "nope": '
        "must be one of privileged, baseline, restricted",
        'metadata.labels[pod-security.kubernetes.io/warn-version]: Invalid value: "1.25": '
        'must be "latest" or "v1.x"',
    ]


def test_defaults_fill_unlabelled_modes() -> None:
    defaults = Policy(lv("baseline:v1.30"), lv("restricted:latest"), lv("restricted:latest"))
    policy, _ = policy_to_evaluate({"pod-security.kubernetes.io/audit": "privileged"}, defaults)
    assert policy == Policy(lv("baseline:v1.30"), lv("privileged:latest"), lv("restricted:latest"))
    assert policy_to_evaluate(None) == (DEFAULT_POLICY, [])
