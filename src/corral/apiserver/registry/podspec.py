"""Pod spec defaulting and validation shared by Pods and every pod template.

The real server applies the same ``SetDefaults_PodSpec``/``SetDefaults_Container`` to a
Pod's spec and to the template inside a Deployment, Job or CronJob, and validates both
with ``ValidatePodSpec``. Pod-only additions (requests copied from limits, service links,
admission-added tolerations...) live in ``pods.py``.

Callers: the strategies in ``pods.py``, ``apps.py``, ``batch.py`` and ``core.py`` (RCs).
Everything here is pure and mutates only the dict it is given.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from corral.api.errors import FieldError, duplicate, invalid, not_supported, required
from corral.api.validation import (
    is_dns1123_subdomain,
    is_env_var_name,
    is_valid_port_name,
    is_valid_port_num,
    validate_annotations,
    validate_dns1123_label,
    validate_enum,
    validate_labels,
    validate_nonnegative,
)

Obj = dict[str, Any]

RESTART_POLICIES = ["Always", "OnFailure", "Never"]
DNS_POLICIES = ["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"]
PULL_POLICIES = ["Always", "IfNotPresent", "Never"]
PROTOCOLS = ["SCTP", "TCP", "UDP"]
TERMINATION_MESSAGE_POLICIES = ["File", "FallbackToLogsOnError"]
TOLERATION_EFFECTS = ["NoSchedule", "PreferNoSchedule", "NoExecute"]
_SOURCE_DEFAULT_MODE = ("secret", "configMap", "projected", "downwardAPI")
_PROBES = ("livenessProbe", "readinessProbe", "startupProbe")


# --- defaults ----------------------------------------------------------------------------


def default_pull_policy(image: str) -> str:
    """``Always`` for ``:latest`` or an untagged image, else ``IfNotPresent``."""
    if "@" in image:
        return "IfNotPresent"
    last = image.rsplit("/", 1)[-1]
    if ":" not in last:
        return "Always"
    return "Always" if last.rsplit(":", 1)[1] == "latest" else "IfNotPresent"


def _default_handler(handler: Any) -> None:
    if not isinstance(handler, dict):
        return
    http = handler.get("httpGet")
    if isinstance(http, dict):
        http.setdefault("path", "/")
        http.setdefault("scheme", "HTTP")


def _default_probe(probe: Any) -> None:
    if not isinstance(probe, dict):
        return
    probe.setdefault("timeoutSeconds", 1)
    probe.setdefault("periodSeconds", 10)
    probe.setdefault("successThreshold", 1)
    probe.setdefault("failureThreshold", 3)
    _default_handler(probe)
    grpc = probe.get("grpc")
    if isinstance(grpc, dict):
        grpc.setdefault("service", "")


def default_container(c: Obj) -> None:
    c.setdefault("terminationMessagePath", "/dev/termination-log")
    c.setdefault("terminationMessagePolicy", "File")
    if isinstance(c.get("image"), str) and c["image"]:
        c.setdefault("imagePullPolicy", default_pull_policy(c["image"]))
    c.setdefault("resources", {})
    for port in c.get("ports") or []:
        if isinstance(port, dict):
            port.setdefault("protocol", "TCP")
    for env in c.get("env") or []:
        ref = (env.get("valueFrom") or {}).get("fieldRef") if isinstance(env, dict) else None
        if isinstance(ref, dict):
            ref.setdefault("apiVersion", "v1")
    for name in _PROBES:
        _default_probe(c.get(name))
    lifecycle = c.get("lifecycle")
    if isinstance(lifecycle, dict):
        _default_handler(lifecycle.get("postStart"))
        _default_handler(lifecycle.get("preStop"))


def default_volume(v: Obj) -> None:
    sources = [k for k in v if k != "name"]
    if not sources:
        v["emptyDir"] = {}
    for key in _SOURCE_DEFAULT_MODE:
        src = v.get(key)
        if isinstance(src, dict):
            src.setdefault("defaultMode", 420)
    host = v.get("hostPath")
    if isinstance(host, dict):
        host.setdefault("type", "")


def default_pod_spec(spec: Obj) -> None:
    """``SetDefaults_PodSpec`` plus the container and volume defaults."""
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("securityContext", {})
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("schedulerName", "default-scheduler")
    host_network = spec.get("hostNetwork") is True
    for key in ("initContainers", "containers"):
        for c in spec.get(key) or []:
            if isinstance(c, dict):
                default_container(c)
                if host_network:
                    for port in c.get("ports") or []:
                        if isinstance(port, dict) and not port.get("hostPort"):
                            port["hostPort"] = port.get("containerPort", 0)
    for v in spec.get("volumes") or []:
        if isinstance(v, dict):
            default_volume(v)


def default_pod_template(template: Any) -> None:
    if isinstance(template, dict):
        spec = template.setdefault("spec", {})
        if isinstance(spec, dict):
            default_pod_spec(spec)


# --- validation --------------------------------------------------------------------------


def _validate_ports(ports: Any, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    names: set[str] = set()
    for i, port in enumerate(ports or []):
        p = f"{path}[{i}]"
        name = port.get("name")
        if name:
            msgs = is_valid_port_name(name)
            errs.extend(invalid(f"{p}.name", name, m) for m in msgs)
            if not msgs and name in names:
                errs.append(duplicate(f"{p}.name", name))
            names.add(name)
        cport = port.get("containerPort")
        if not cport:
            errs.append(required(f"{p}.containerPort"))
        else:
            errs.extend(invalid(f"{p}.containerPort", cport, m) for m in is_valid_port_num(cport))
        hport = port.get("hostPort")
        if hport:
            errs.extend(invalid(f"{p}.hostPort", hport, m) for m in is_valid_port_num(hport))
        proto = port.get("protocol")
        if not proto:
            errs.append(required(f"{p}.protocol"))
        elif proto not in PROTOCOLS:
            errs.append(not_supported(f"{p}.protocol", proto, PROTOCOLS))
    return errs


def _validate_env(env: Any, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    for i, e in enumerate(env or []):
        p = f"{path}[{i}].name"
        name = e.get("name")
        if not name:
            errs.append(required(p))
        else:
            errs.extend(invalid(p, name, m) for m in is_env_var_name(name))
    return errs


def _validate_container(c: Obj, path: str, volumes: set[str]) -> list[FieldError]:
    errs = validate_dns1123_label(c.get("name"), f"{path}.name")
    if not c.get("image"):
        errs.append(required(f"{path}.image"))
    tmp = c.get("terminationMessagePolicy")
    if not tmp:
        errs.append(required(f"{path}.terminationMessagePolicy"))
    elif tmp not in TERMINATION_MESSAGE_POLICIES:
        errs.append(
            not_supported(f"{path}.terminationMessagePolicy", tmp, TERMINATION_MESSAGE_POLICIES)
        )
    policy = c.get("imagePullPolicy")
    if not policy:
        errs.append(required(f"{path}.imagePullPolicy"))
    elif policy not in PULL_POLICIES:
        errs.append(not_supported(f"{path}.imagePullPolicy", policy, PULL_POLICIES))
    errs.extend(_validate_ports(c.get("ports"), f"{path}.ports"))
    errs.extend(_validate_env(c.get("env"), f"{path}.env"))
    for i, m in enumerate(c.get("volumeMounts") or []):
        p = f"{path}.volumeMounts[{i}]"
        name = m.get("name")
        if not name:
            errs.append(required(f"{p}.name"))
        elif name not in volumes:
            errs.append(FieldError("FieldValueNotFound", f"{p}.name", name))
        if not m.get("mountPath"):
            errs.append(required(f"{p}.mountPath"))
    return errs


def _validate_tolerations(tolerations: Any, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    for i, t in enumerate(tolerations or []):
        p = f"{path}[{i}]"
        op = t.get("operator") or "Equal"
        if op not in ("Equal", "Exists"):
            errs.append(not_supported(f"{p}.operator", op, ["Equal", "Exists"]))
        elif op == "Exists" and t.get("value"):
            errs.append(
                invalid(
                    f"{p}.operator",
                    t.get("value"),
                    "value must be empty when `operator` is 'Exists'",
                )
            )
        if not t.get("key") and op != "Exists":
            errs.append(
                invalid(
                    f"{p}.operator",
                    op,
                    'operator must be Exists when `key` is empty, which means "match all values and all keys"',
                )
            )
        effect = t.get("effect")
        if effect:
            errs.extend(validate_enum(effect, f"{p}.effect", TOLERATION_EFFECTS))
        if t.get("tolerationSeconds") is not None and effect != "NoExecute":
            errs.append(
                invalid(
                    f"{p}.effect",
                    effect or "",
                    "effect must be 'NoExecute' when `tolerationSeconds` is set",
                )
            )
    return errs


def validate_pod_spec(spec: Any, path: str, extra_volumes: Iterable[str] = ()) -> list[FieldError]:
    """``ValidatePodSpec`` for the fields users commonly set; ``extra_volumes`` are names
    that mounts may use besides ``volumes`` (a StatefulSet's claim templates)."""
    if not isinstance(spec, dict):
        return [required(path)]
    errs: list[FieldError] = []
    volumes: set[str] = set()
    for i, v in enumerate(spec.get("volumes") or []):
        p = f"{path}.volumes[{i}].name"
        name = v.get("name")
        verrs = validate_dns1123_label(name, p)
        errs.extend(verrs)
        if not verrs and name in volumes:
            errs.append(duplicate(p, name))
        volumes.add(name)
    mountable = volumes | set(extra_volumes)
    containers = spec.get("containers") or []
    if not containers:
        errs.append(required(f"{path}.containers"))
    seen: set[str] = set()
    for key in ("initContainers", "containers"):
        for i, c in enumerate(spec.get(key) or []):
            p = f"{path}.{key}[{i}]"
            errs.extend(_validate_container(c, p, mountable))
            name = c.get("name")
            if name and name in seen:
                errs.append(duplicate(f"{p}.name", name))
            if name:
                seen.add(name)
    restart = spec.get("restartPolicy")
    if not restart:
        errs.append(required(f"{path}.restartPolicy"))
    else:
        errs.extend(validate_enum(restart, f"{path}.restartPolicy", RESTART_POLICIES))
    dns = spec.get("dnsPolicy")
    if not dns:
        errs.append(required(f"{path}.dnsPolicy"))
    else:
        errs.extend(validate_enum(dns, f"{path}.dnsPolicy", DNS_POLICIES))
    errs.extend(
        validate_nonnegative(
            spec.get("terminationGracePeriodSeconds"), f"{path}.terminationGracePeriodSeconds"
        )
    )
    ads = spec.get("activeDeadlineSeconds")
    if ads is not None and (not isinstance(ads, int) or ads <= 0 or ads > 2**31 - 1):
        errs.append(
            invalid(
                f"{path}.activeDeadlineSeconds", ads, "must be between 1 and 2147483647, inclusive"
            )
        )
    sa = spec.get("serviceAccountName")
    if sa:
        errs.extend(invalid(f"{path}.serviceAccountName", sa, m) for m in is_dns1123_subdomain(sa))
    node = spec.get("nodeName")
    if node:
        errs.extend(invalid(f"{path}.nodeName", node, m) for m in is_dns1123_subdomain(node))
    errs.extend(_validate_tolerations(spec.get("tolerations"), f"{path}.tolerations"))
    return errs


def validate_pod_template(
    template: Any, path: str, extra_volumes: Iterable[str] = ()
) -> list[FieldError]:
    """``ValidatePodTemplateSpec``: template labels/annotations plus the pod spec."""
    if not isinstance(template, dict):
        return [required(path)]
    meta = template.get("metadata") or {}
    errs = validate_labels(meta.get("labels"), f"{path}.metadata.labels")
    errs.extend(validate_annotations(meta.get("annotations"), f"{path}.metadata.annotations"))
    errs.extend(validate_pod_spec(template.get("spec"), f"{path}.spec", extra_volumes))
    return errs


def template_labels(template: Any) -> dict[str, str]:
    if not isinstance(template, dict):
        return {}
    labels = (template.get("metadata") or {}).get("labels")
    return labels if isinstance(labels, dict) else {}
