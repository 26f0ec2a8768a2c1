"""The Pod Security Standards checks, one function per check and version, pure.

What upstream's ``k8s.io/pod-security-admission/policy`` holds, as of Kubernetes 1.32:
each check reads a pod's metadata and spec (plain JSON dicts, as stored) and returns
``None`` when it allows the pod or a ``Violation`` with upstream's reason and detail
text, word for word, since the admission messages are built from them. ``CHECKS`` is
the table ``pod_security.Evaluator`` turns into per-level, per-version lists: a check
belongs to a level (baseline checks also run at restricted), and has one or more
versions, each applying from a minimum policy version ``v1.N`` (stored as ``N``) until
the next; a restricted version may override (replace) baseline checks.

The checks never raise on odd shapes (a field of the wrong type counts as absent): the
admission plugin runs them before validation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]

BASELINE = "baseline"
RESTRICTED = "restricted"


@dataclass(frozen=True, slots=True)
class Violation:
    """Why a check forbids a pod: ``reason`` is short (kept when listing many pods),
    ``detail`` names containers and values (shown for one pod)."""

    reason: str
    detail: str = ""


CheckFn = Callable[[Obj, Obj], Violation | None]  # (pod metadata, pod spec)


@dataclass(frozen=True, slots=True)
class VersionedCheck:
    minimum: int  # the first policy version v1.N this function applies to
    fn: CheckFn
    overrides: tuple[str, ...] = ()  # baseline check ids it replaces (restricted only)


@dataclass(frozen=True, slots=True)
class Check:
    id: str
    level: str
    versions: tuple[VersionedCheck, ...]


# --- helpers ---------------------------------------------------------------------------
def _d(v: Any) -> Obj:
    return v if isinstance(v, dict) else {}


def _l(v: Any) -> list[Any]:
    return v if isinstance(v, list) else []


def containers(spec: Obj) -> Iterator[Obj]:
    """Init containers, containers, ephemeral containers (upstream's visitContainers)."""
    for field in ("initContainers", "containers", "ephemeralContainers"):
        for c in _l(spec.get(field)):
            if isinstance(c, dict):
                yield c


def _name(c: Obj) -> str:
    return str(c.get("name", ""))


def _sc(c: Obj) -> Obj | None:
    sc = c.get("securityContext")
    return sc if isinstance(sc, dict) else None


def join_quote(items: list[str]) -> str:
    return '"' + '", "'.join(items) + '"' if items else ""


def pluralize(singular: str, plural: str, count: int) -> str:
    return singular if count == 1 else plural


def _containers_phrase(names: list[str]) -> str:
    return f"{pluralize('container', 'containers', len(names))} {join_quote(names)}"


def _windows(spec: Obj) -> bool:
    return _d(spec.get("os")).get("name") == "windows"


# --- baseline ----------------------------------------------------------------------------
def _app_armor(meta: Obj, spec: Obj) -> Violation | None:
    def bad_type(profile: Any) -> bool:
        return _d(profile).get("type") not in ("RuntimeDefault", "Localhost")

    setters: list[str] = []
    values: set[str] = set()
    pod_profile = _d(spec.get("securityContext")).get("appArmorProfile")
    if isinstance(pod_profile, dict) and bad_type(pod_profile):
        setters.append("pod")
        values.add(str(pod_profile.get("type", "")))
    bad: list[str] = []
    for c in containers(spec):
        profile = _d(_sc(c)).get("appArmorProfile")
        if isinstance(profile, dict) and bad_type(profile):
            bad.append(_name(c))
            values.add(str(profile.get("type", "")))
    if bad:
        setters.append(_containers_phrase(bad))
    annotations = sorted(
        f"{k}={_go_quote(str(v))}"
        for k, v in _d(meta.get("annotations")).items()
        if k.startswith("container.apparmor.security.beta.kubernetes.io/")
        and not (not v or v == "runtime/default" or str(v).startswith("localhost/"))
    )
    value_list = sorted(values) + annotations
    if annotations:
        setters.append(pluralize("annotation", "annotations", len(annotations)))
    if not setters:
        return None
    return Violation(
        pluralize("forbidden AppArmor profile", "forbidden AppArmor profiles", len(value_list)),
        f"{' and '.join(setters)} must not set AppArmor profile type to {join_quote(value_list)}",
    )


BASELINE_CAPABILITIES = frozenset(
    {
        "AUDIT_WRITE",
        "CHOWN",
        "DAC_OVERRIDE",
        "FOWNER",
        "FSETID",
        "KILL",
        "MKNOD",
        "NET_BIND_SERVICE",
        "SETFCAP",
        "SETGID",
        "SETPCAP",
        "SETUID",
        "SYS_CHROOT",
    }
)


def _capabilities_baseline(meta: Obj, spec: Obj) -> Violation | None:
    bad: list[str] = []
    caps: set[str] = set()
    for c in containers(spec):
        added = [str(a) for a in _l(_d(_d(_sc(c)).get("capabilities")).get("add"))]
        extra = [a for a in added if a not in BASELINE_CAPABILITIES]
        if extra:
            bad.append(_name(c))
            caps.update(extra)
    if not bad:
        return None
    return Violation(
        "non-default capabilities",
        f"{_containers_phrase(bad)} must not include {join_quote(sorted(caps))} "
        "in securityContext.capabilities.add",
    )


def _host_namespaces(meta: Obj, spec: Obj) -> Violation | None:
    found = [f"{f}=true" for f in ("hostNetwork", "hostPID", "hostIPC") if spec.get(f) is True]
    return Violation("host namespaces", ", ".join(found)) if found else None


def _host_path_volumes(meta: Obj, spec: Obj) -> Violation | None:
    names = [str(v.get("name", "")) for v in _l(spec.get("volumes")) if _has(v, "hostPath")]
    if not names:
        return None
    return Violation(
        "hostPath volumes", f"{pluralize('volume', 'volumes', len(names))} {join_quote(names)}"
    )


def _has(volume: Any, source: str) -> bool:
    return isinstance(volume, dict) and volume.get(source) is not None


def _host_ports(meta: Obj, spec: Obj) -> Violation | None:
    bad: list[str] = []
    ports: set[int] = set()
    for c in containers(spec):
        used = [p.get("hostPort") for p in _l(c.get("ports")) if isinstance(p, dict)]
        used_ports = [p for p in used if isinstance(p, int) and p != 0]
        if used_ports:
            bad.append(_name(c))
            ports.update(used_ports)
    if not bad:
        return None
    # upstream sorts the ports as strings
    listed = sorted(str(p) for p in ports)
    return Violation(
        "hostPort",
        f"{_containers_phrase(bad)} {pluralize('uses', 'use', len(bad))} "
        f"{pluralize('hostPort', 'hostPorts', len(listed))} {', '.join(listed)}",
    )


def _privileged(meta: Obj, spec: Obj) -> Violation | None:
    bad = [_name(c) for c in containers(spec) if _d(_sc(c)).get("privileged") is True]
    if not bad:
        return None
    return Violation(
        "privileged", f"{_containers_phrase(bad)} must not set securityContext.privileged=true"
    )


def _proc_mount(meta: Obj, spec: Obj) -> Violation | None:
    bad: list[str] = []
    kinds: set[str] = set()
    for c in containers(spec):
        pm = _d(_sc(c)).get("procMount")
        if pm is not None and pm != "Default":
            bad.append(_name(c))
            kinds.add(str(pm))
    if not bad:
        return None
    return Violation(
        "procMount",
        f"{_containers_phrase(bad)} must not set securityContext.procMount to "
        f"{join_quote(sorted(kinds))}",
    )


def _se_linux(allowed: frozenset[str]) -> CheckFn:
    def check(meta: Obj, spec: Obj) -> Violation | None:
        bad_types: set[str] = set()
        flags = {"user": False, "role": False}

        def valid(opts: Obj) -> bool:
            ok = True
            t = str(opts.get("type") or "")
            if t not in allowed:
                ok = False
                bad_types.add(t)
            for f in ("user", "role"):
                if opts.get(f):
                    ok = False
                    flags[f] = True
            return ok

        setters: list[str] = []
        pod_opts = _d(spec.get("securityContext")).get("seLinuxOptions")
        if isinstance(pod_opts, dict) and not valid(pod_opts):
            setters.append("pod")
        bad: list[str] = []
        for c in containers(spec):
            opts = _d(_sc(c)).get("seLinuxOptions")
            if isinstance(opts, dict) and not valid(opts):
                bad.append(_name(c))
        if bad:
            setters.append(_containers_phrase(bad))
        if not setters:
            return None
        data: list[str] = []
        if bad_types:
            types = sorted(bad_types)
            data.append(f"{pluralize('type', 'types', len(types))} {join_quote(types)}")
        if flags["user"]:
            data.append("user may not be set")
        if flags["role"]:
            data.append("role may not be set")
        return Violation(
            "seLinuxOptions",
            f"{' and '.join(setters)} set forbidden securityContext.seLinuxOptions: "
            + "; ".join(data),
        )

    return check


_SELINUX_1_0 = frozenset({"", "container_t", "container_init_t", "container_kvm_t"})
_SELINUX_1_31 = _SELINUX_1_0 | {"container_engine_t"}


def _valid_seccomp_annotation(v: str) -> bool:
    return v in ("runtime/default", "docker/default") or v.startswith("localhost/")


def _seccomp_baseline_1_0(meta: Obj, spec: Obj) -> Violation | None:
    annotations = _d(meta.get("annotations"))
    forbidden: set[str] = set()
    pod_key = "seccomp.security.alpha.kubernetes.io/pod"
    if pod_key in annotations and not _valid_seccomp_annotation(str(annotations[pod_key])):
        forbidden.add(f"{pod_key}={_go_quote(str(annotations[pod_key]))}")
    for c in containers(spec):
        key = "container.seccomp.security.alpha.kubernetes.io/" + _name(c)
        if key in annotations and not _valid_seccomp_annotation(str(annotations[key])):
            forbidden.add(f"{key}={_go_quote(str(annotations[key]))}")
    if not forbidden:
        return None
    return Violation(
        "seccompProfile",
        f"forbidden {pluralize('annotation', 'annotations', len(forbidden))} "
        + ", ".join(sorted(forbidden)),
    )


def _seccomp_ok(profile: Obj) -> bool:
    return profile.get("type") in ("RuntimeDefault", "Localhost")


def _seccomp(restricted: bool) -> CheckFn:
    """Baseline (1.19): an explicit type must be RuntimeDefault or Localhost.
    Restricted (1.19): and every container must have one, its own or the pod's."""

    def check(meta: Obj, spec: Obj) -> Violation | None:
        setters: list[str] = []
        values: set[str] = set()
        pod_set = False
        pod_profile = _d(spec.get("securityContext")).get("seccompProfile")
        if isinstance(pod_profile, dict):
            if not _seccomp_ok(pod_profile):
                setters.append("pod")
                values.add(str(pod_profile.get("type", "")))
            else:
                pod_set = True
        explicit: list[str] = []
        implicit: list[str] = []
        for c in containers(spec):
            profile = _d(_sc(c)).get("seccompProfile")
            if isinstance(profile, dict):
                if not _seccomp_ok(profile):
                    explicit.append(_name(c))
                    values.add(str(profile.get("type", "")))
            elif not pod_set:
                implicit.append(_name(c))
        if explicit:
            setters.append(_containers_phrase(explicit))
        if setters:
            return Violation(
                "seccompProfile",
                f"{' and '.join(setters)} must not set securityContext.seccompProfile.type "
                f"to {join_quote(sorted(values))}",
            )
        if restricted and implicit:
            return Violation(
                "seccompProfile",
                f"pod or {_containers_phrase(implicit)} must set "
                'securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost"',
            )
        return None

    return check


_SYSCTLS_1_0 = frozenset(
    {
        "kernel.shm_rmid_forced",
        "net.ipv4.ip_local_port_range",
        "net.ipv4.tcp_syncookies",
        "net.ipv4.ping_group_range",
        "net.ipv4.ip_unprivileged_port_start",
    }
)
_SYSCTLS_1_27 = _SYSCTLS_1_0 | {"net.ipv4.ip_local_reserved_ports"}
_SYSCTLS_1_29 = _SYSCTLS_1_27 | {
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
}
_SYSCTLS_1_32 = _SYSCTLS_1_29 | {"net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem"}


def _sysctls(allowed: frozenset[str]) -> CheckFn:
    def check(meta: Obj, spec: Obj) -> Violation | None:
        sysctls = _l(_d(spec.get("securityContext")).get("sysctls"))
        names = [str(_d(s).get("name", "")) for s in sysctls]
        bad = [n for n in names if n not in allowed]
        return Violation("forbidden sysctls", ", ".join(bad)) if bad else None

    return check


def _host_process(meta: Obj, spec: Obj) -> Violation | None:
    def set_(sc: Any) -> bool:
        return _d(_d(sc).get("windowsOptions")).get("hostProcess") is True

    setters = ["pod"] if set_(spec.get("securityContext")) else []
    bad = [_name(c) for c in containers(spec) if set_(_sc(c))]
    if bad:
        setters.append(_containers_phrase(bad))
    if not setters:
        return None
    return Violation(
        "hostProcess",
        f"{' and '.join(setters)} must not set securityContext.windowsOptions.hostProcess=true",
    )


# --- restricted ------------------------------------------------------------------------
def _windows_exempt(fn: CheckFn) -> CheckFn:
    """From v1.25 a pod with ``spec.os.name: windows`` passes the Linux-only checks (API
    validation refuses those fields on Windows pods)."""

    def check(meta: Obj, spec: Obj) -> Violation | None:
        return None if _windows(spec) else fn(meta, spec)

    return check


def _allow_privilege_escalation(meta: Obj, spec: Obj) -> Violation | None:
    bad = [
        _name(c)
        for c in containers(spec)
        if _d(_sc(c)).get("allowPrivilegeEscalation") is not False
    ]
    if not bad:
        return None
    return Violation(
        "allowPrivilegeEscalation != false",
        f"{_containers_phrase(bad)} must set securityContext.allowPrivilegeEscalation=false",
    )


def _capabilities_restricted(meta: Obj, spec: Obj) -> Violation | None:
    missing_drop: list[str] = []
    adding: list[str] = []
    caps: set[str] = set()
    for c in containers(spec):
        capabilities = _d(_sc(c)).get("capabilities")
        if not isinstance(capabilities, dict):
            missing_drop.append(_name(c))
            continue
        if "ALL" not in _l(capabilities.get("drop")):
            missing_drop.append(_name(c))
        extra = [str(a) for a in _l(capabilities.get("add")) if a != "NET_BIND_SERVICE"]
        if extra:
            adding.append(_name(c))
            caps.update(extra)
    details: list[str] = []
    if missing_drop:
        details.append(
            f'{_containers_phrase(missing_drop)} must set securityContext.capabilities.drop=["ALL"]'
        )
    if adding:
        details.append(
            f"{_containers_phrase(adding)} must not include {join_quote(sorted(caps))} "
            "in securityContext.capabilities.add"
        )
    return Violation("unrestricted capabilities", "; ".join(details)) if details else None


#: the inline volume sources the restricted level allows
ALLOWED_VOLUMES = (
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "image",
    "persistentVolumeClaim",
    "projected",
    "secret",
)
#: the others, in the order upstream names the first one a volume uses
RESTRICTED_VOLUMES = (
    "hostPath",
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "gitRepo",
    "nfs",
    "iscsi",
    "glusterfs",
    "rbd",
    "flexVolume",
    "cinder",
    "cephfs",
    "flocker",
    "fc",
    "azureFile",
    "vsphereVolume",
    "quobyte",
    "azureDisk",
    "photonPersistentDisk",
    "portworxVolume",
    "scaleIO",
    "storageos",
)


def _restricted_volumes(meta: Obj, spec: Obj) -> Violation | None:
    bad: list[str] = []
    kinds: set[str] = set()
    for v in _l(spec.get("volumes")):
        if not isinstance(v, dict) or any(_has(v, s) for s in ALLOWED_VOLUMES):
            continue
        bad.append(str(v.get("name", "")))
        kinds.add(next((s for s in RESTRICTED_VOLUMES if _has(v, s)), "unknown"))
    if not bad:
        return None
    types = sorted(kinds)
    return Violation(
        "restricted volume types",
        f"{pluralize('volume', 'volumes', len(bad))} {join_quote(bad)} "
        f"{pluralize('uses', 'use', len(bad))} "
        f"{pluralize('restricted volume type', 'restricted volume types', len(types))} "
        f"{join_quote(types)}",
    )


def _run_as_non_root(meta: Obj, spec: Obj) -> Violation | None:
    setters: list[str] = []
    pod_value = _d(spec.get("securityContext")).get("runAsNonRoot")
    if pod_value is False:
        setters.append("pod")
    pod_non_root = pod_value is True
    explicit: list[str] = []
    implicit: list[str] = []
    for c in containers(spec):
        value = _d(_sc(c)).get("runAsNonRoot")
        if isinstance(value, bool):
            if not value:
                explicit.append(_name(c))
        elif not pod_non_root:
            implicit.append(_name(c))
    if explicit:
        setters.append(_containers_phrase(explicit))
    if setters:
        return Violation(
            "runAsNonRoot != true",
            f"{' and '.join(setters)} must not set securityContext.runAsNonRoot=false",
        )
    if implicit:
        return Violation(
            "runAsNonRoot != true",
            f"pod or {_containers_phrase(implicit)} must set securityContext.runAsNonRoot=true",
        )
    return None


def _run_as_user(meta: Obj, spec: Obj) -> Violation | None:
    def root(sc: Any) -> bool:
        v = _d(sc).get("runAsUser")
        return isinstance(v, int) and not isinstance(v, bool) and v == 0

    setters = ["pod"] if root(spec.get("securityContext")) else []
    bad = [_name(c) for c in containers(spec) if root(_sc(c))]
    if bad:
        setters.append(_containers_phrase(bad))
    if not setters:
        return None
    return Violation("runAsUser=0", f"{' and '.join(setters)} must not set runAsUser=0")


def _go_quote(s: str) -> str:
    """Go's ``%q`` for the printable strings found in annotations."""
    out = []
    for ch in s:
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _v(minimum: int, fn: CheckFn, *overrides: str) -> VersionedCheck:
    return VersionedCheck(minimum, fn, overrides)


#: every check of policy version v1.32 (upstream's ``DefaultChecks``)
CHECKS: tuple[Check, ...] = (
    Check("appArmorProfile", BASELINE, (_v(0, _app_armor),)),
    Check("capabilities_baseline", BASELINE, (_v(0, _capabilities_baseline),)),
    Check("hostNamespaces", BASELINE, (_v(0, _host_namespaces),)),
    Check("hostPathVolumes", BASELINE, (_v(0, _host_path_volumes),)),
    Check("hostPorts", BASELINE, (_v(0, _host_ports),)),
    Check("privileged", BASELINE, (_v(0, _privileged),)),
    Check("procMount", BASELINE, (_v(0, _proc_mount),)),
    Check(
        "seLinuxOptions",
        BASELINE,
        (_v(0, _se_linux(_SELINUX_1_0)), _v(31, _se_linux(_SELINUX_1_31))),
    ),
    Check(
        "seccompProfile_baseline",
        BASELINE,
        (_v(0, _seccomp_baseline_1_0), _v(19, _seccomp(restricted=False))),
    ),
    Check(
        "sysctls",
        BASELINE,
        (
            _v(0, _sysctls(_SYSCTLS_1_0)),
            _v(27, _sysctls(_SYSCTLS_1_27)),
            _v(29, _sysctls(_SYSCTLS_1_29)),
            _v(32, _sysctls(_SYSCTLS_1_32)),
        ),
    ),
    Check("windowsHostProcess", BASELINE, (_v(0, _host_process),)),
    Check(
        "allowPrivilegeEscalation",
        RESTRICTED,
        (
            _v(8, _allow_privilege_escalation),
            _v(25, _windows_exempt(_allow_privilege_escalation)),
        ),
    ),
    Check(
        "capabilities_restricted",
        RESTRICTED,
        (
            _v(22, _capabilities_restricted, "capabilities_baseline"),
            _v(25, _windows_exempt(_capabilities_restricted), "capabilities_baseline"),
        ),
    ),
    Check("restrictedVolumes", RESTRICTED, (_v(0, _restricted_volumes, "hostPathVolumes"),)),
    Check("runAsNonRoot", RESTRICTED, (_v(0, _run_as_non_root),)),
    Check("runAsUser", RESTRICTED, (_v(23, _run_as_user),)),
    Check(
        "seccompProfile_restricted",
        RESTRICTED,
        (
            _v(19, _seccomp(restricted=True), "seccompProfile_baseline"),
            _v(25, _windows_exempt(_seccomp(restricted=True)), "seccompProfile_baseline"),
        ),
    ),
)
