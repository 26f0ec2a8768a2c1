"""A container's environment and argv, built the way the kubelet and containerd build them.

Called by the pod lifecycle (``agent/pods.py``) before each container start; the result
goes into ``ContainerSpec.env`` and ``ContainerSpec.argv``. A ``ConfigError`` means the
container cannot start yet: the lifecycle shows it as waiting reason
``CreateContainerConfigError`` with the error's message and retries on the next sync.

Order, as upstream (kubelet ``makeEnvironmentVariables`` + containerd's CRI plugin)::

    HOSTNAME=<pod hostname>        containerd adds it first (only when ``hostname`` is given)
    image Env ("KEY=VAL")          the OCI image config
    envFrom                        configMapRef / secretRef, ``prefix`` prepended, in order;
                                   keys that are not valid env names are skipped (a warning
                                   for an ``InvalidEnvironmentVariableNames`` event)
    env                            ``value`` with ``$(VAR)`` expanded against envFrom and
                                   earlier ``env`` entries (not image env), or ``valueFrom``

Later entries override earlier ones; a key keeps the position where it first appeared.
Service-link variables (``enableServiceLinks``: ``FOO_SERVICE_HOST``...) are not made:
Corral pods find services by DNS.

Field selectors (:func:`field_ref_value`) and resource selectors
(:func:`resource_field_value`) are shared with downwardAPI volumes (``volumes.py``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from fractions import Fraction
from typing import Any

from corral.agent.objects import (
    ConfigError,
    Obj,
    ObjectLookup,
    configmap_not_found,
    configmap_strings,
    secret_bytes,
    secret_not_found,
)
from corral.api.quantity import parse_quantity
from corral.api.validation import is_env_var_name

NO_COMMAND = "no command specified"

# --- $(VAR) expansion (third_party/forked/golang/expansion) ---------------------------------


def expand(text: str, env: Mapping[str, str]) -> str:
    """Expand ``$(VAR)`` from ``env``; ``$$`` is a literal ``$``; unknown refs stay as is.

    ``$(`` without a closing ``)`` and ``$`` before any other character are kept verbatim.
    """
    out: list[str] = []
    checkpoint = 0
    cursor = 0
    n = len(text)
    while cursor < n:
        if text[cursor] == "$" and cursor + 1 < n:
            out.append(text[checkpoint:cursor])
            rest = text[cursor + 1 :]
            if rest[0] == "$":
                out.append("$")
                advance = 1
            elif rest[0] == "(":
                close = rest.find(")", 1)
                if close >= 0:
                    name = rest[1:close]
                    out.append(env.get(name, f"$({name})"))
                    advance = close + 1
                else:
                    out.append("$(")
                    advance = 1
            else:
                out.append("$" + rest[0])
                advance = 1
            cursor += advance
            checkpoint = cursor + 1
        cursor += 1
    out.append(text[checkpoint:])
    return "".join(out)


# --- downward API ---------------------------------------------------------------------------


def _go_quote(s: str) -> str:
    """Go's ``%q`` for the strings labels and annotations hold."""
    out = ['"']
    for ch in s:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def format_map(m: Mapping[str, str]) -> str:
    """``fieldpath.FormatMap``: ``k="v"`` lines, keys sorted, no trailing newline."""
    return "\n".join(f"{k}={_go_quote(str(m[k]))}" for k in sorted(m))


def _split_subscript(path: str) -> tuple[str, str] | None:
    if not path.endswith("']"):
        return None
    i = path.find("['")
    if i < 0:
        return None
    return path[:i], path[i + 2 : -2]


def field_ref_value(
    pod: Obj,
    field_path: str,
    *,
    pod_ip: str = "",
    pod_ips: Sequence[str] = (),
    host_ip: str = "",
    host_ips: Sequence[str] = (),
) -> str:
    """The value of a downward API ``fieldRef``; ``ConfigError`` if unsupported."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    ips = list(pod_ips) or ([pod_ip] if pod_ip else [])
    hips = list(host_ips) or ([host_ip] if host_ip else [])
    sub = _split_subscript(field_path)
    if sub is not None:
        path, key = sub
        if path == "metadata.labels":
            return str((meta.get("labels") or {}).get(key, ""))
        if path == "metadata.annotations":
            return str((meta.get("annotations") or {}).get(key, ""))
        raise ConfigError(f'fieldPath "{field_path}" does not support subscript')
    match field_path:
        case "metadata.name":
            return str(meta.get("name", ""))
        case "metadata.namespace":
            return str(meta.get("namespace", ""))
        case "metadata.uid":
            return str(meta.get("uid", ""))
        case "metadata.labels":
            return format_map(meta.get("labels") or {})
        case "metadata.annotations":
            return format_map(meta.get("annotations") or {})
        case "spec.nodeName":
            return str(spec.get("nodeName", ""))
        case "spec.serviceAccountName":
            return str(spec.get("serviceAccountName", ""))
        case "status.hostIP":
            return hips[0] if hips else ""
        case "status.hostIPs":
            return ",".join(hips)
        case "status.podIP":
            return ips[0] if ips else ""
        case "status.podIPs":
            return ",".join(ips)
    raise ConfigError(f"unsupported fieldPath: {field_path}")


_NODE_DEFAULTED = ("cpu", "memory", "ephemeral-storage")


def _find_container(pod: Obj, name: str) -> Obj:
    spec = pod.get("spec") or {}
    for c in [*(spec.get("containers") or []), *(spec.get("initContainers") or [])]:
        if c.get("name") == name:
            return dict(c)
    raise ConfigError(f"container {name} not found")


def resource_field_value(
    pod: Obj,
    container: Obj | None,
    selector: Mapping[str, Any],
    node_allocatable: Mapping[str, str] | None = None,
) -> str:
    """A ``resourceFieldRef`` value: ceil(quantity / divisor) as an integer string.

    Unset limits read as the node's allocatable (``defaultPodLimitsForDownwardAPI``);
    unset requests read as 0. ``containerName`` in the selector picks another container.
    """
    name = selector.get("containerName")
    if name:
        container = _find_container(pod, str(name))
    if container is None:
        raise ConfigError("resourceFieldRef needs a containerName")
    res = str(selector.get("resource", ""))
    resources = container.get("resources") or {}
    try:
        divisor = parse_quantity(selector.get("divisor") or "1")
    except ValueError as e:
        raise ConfigError(str(e)) from None
    if divisor == 0:
        divisor = Fraction(1)
    kind, _, rname = res.partition(".")
    if kind not in ("limits", "requests") or rname not in _NODE_DEFAULTED:
        raise ConfigError(f"unsupported container resource : {res}")
    raw = (resources.get(kind) or {}).get(rname)
    if raw is None and kind == "limits":
        raw = (node_allocatable or {}).get(rname)
    try:
        amount = parse_quantity(raw) if raw is not None else Fraction(0)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    if rname == "cpu":  # MilliValue() / divisor.MilliValue(), rounded up
        a, d = math.ceil(amount * 1000), math.ceil(divisor * 1000)
    else:  # Value() / divisor.Value(), rounded up
        a, d = math.ceil(amount), math.ceil(divisor)
    return str(-((-a) // d))


# --- the environment ------------------------------------------------------------------------


def parse_image_env(image_env: Sequence[str] | None) -> dict[str, str]:
    """An OCI config ``Env`` list (``KEY=VAL``) as a dict; entries without ``=`` dropped."""
    out: dict[str, str] = {}
    for item in image_env or ():
        key, sep, val = item.partition("=")
        if sep and key:
            out[key] = val
    return out


def _optional(ref: Mapping[str, Any]) -> bool:
    return bool(ref.get("optional"))


def _invalid_keys_warning(keys: list[str], kind: str, ns: str, name: str) -> str:
    return (
        f"Keys [{', '.join(sorted(keys))}] from the EnvFrom {kind} {ns}/{name} were skipped "
        "since they are considered invalid environment variable names."
    )


class _Objects:
    """Per-call cache: each ConfigMap/Secret is read once per container, as the kubelet."""

    def __init__(self, lookup: ObjectLookup, namespace: str) -> None:
        self.lookup = lookup
        self.ns = namespace
        self.configmaps: dict[str, dict[str, str] | None] = {}
        self.secrets: dict[str, dict[str, bytes] | None] = {}

    async def configmap(self, name: str) -> dict[str, str] | None:
        if name not in self.configmaps:
            obj = await self.lookup.configmap(self.ns, name)
            self.configmaps[name] = None if obj is None else configmap_strings(obj)
        return self.configmaps[name]

    async def secret(self, name: str) -> dict[str, bytes] | None:
        if name not in self.secrets:
            obj = await self.lookup.secret(self.ns, name)
            self.secrets[name] = None if obj is None else secret_bytes(obj)
        return self.secrets[name]


def _text(b: bytes) -> str:
    return b.decode("utf-8", errors="surrogateescape")


async def kubelet_env(
    pod: Obj,
    container: Obj,
    lookup: ObjectLookup,
    *,
    pod_ip: str,
    host_ip: str,
    node_name: str = "",
    pod_ips: Sequence[str] = (),
    host_ips: Sequence[str] = (),
    node_allocatable: Mapping[str, str] | None = None,
    warnings: list[str] | None = None,
    services: Sequence[Obj] = (),
) -> dict[str, str]:
    """The variables the kubelet itself computes: envFrom, then env, then the service
    variables of ``services`` that neither defines (no image env).

    This is also the mapping that ``$(VAR)`` in command and args expands against.
    ``warnings`` (if given) receives ``InvalidEnvironmentVariableNames`` event messages.
    """
    ns = str((pod.get("metadata") or {}).get("namespace") or "default")
    if node_name and not (pod.get("spec") or {}).get("nodeName"):
        pod = {**pod, "spec": {**(pod.get("spec") or {}), "nodeName": node_name}}
    objects = _Objects(lookup, ns)
    env: dict[str, str] = {}
    svc_env = service_env(pod_services(pod, services))

    for src in container.get("envFrom") or []:
        prefix = str(src.get("prefix") or "")
        items: dict[str, str]
        if (ref := src.get("configMapRef")) is not None:
            name, kind = str(ref.get("name", "")), "configMap"
            cm = await objects.configmap(name)
            if cm is None:
                if _optional(ref):
                    continue
                raise ConfigError(configmap_not_found(name))
            items = cm
        elif (ref := src.get("secretRef")) is not None:
            name, kind = str(ref.get("name", "")), "secret"
            sec = await objects.secret(name)
            if sec is None:
                if _optional(ref):
                    continue
                raise ConfigError(secret_not_found(name))
            items = {k: _text(v) for k, v in sec.items()}
        else:
            continue
        invalid: list[str] = []
        for k, v in items.items():
            key = prefix + k
            if is_env_var_name(key):
                invalid.append(key)
                continue
            env[key] = v
        if invalid and warnings is not None:
            warnings.append(_invalid_keys_warning(invalid, kind, ns, name))

    for var in container.get("env") or []:
        name = str(var.get("name", ""))
        value = var.get("value")
        source = var.get("valueFrom")
        if value:
            env[name] = expand(str(value), {**svc_env, **env})
            continue
        if not source:
            env[name] = ""
            continue
        if (ref := source.get("fieldRef")) is not None:
            env[name] = field_ref_value(
                pod,
                str(ref.get("fieldPath", "")),
                pod_ip=pod_ip,
                pod_ips=pod_ips,
                host_ip=host_ip,
                host_ips=host_ips,
            )
        elif (ref := source.get("resourceFieldRef")) is not None:
            env[name] = resource_field_value(pod, container, ref, node_allocatable)
        elif (ref := source.get("configMapKeyRef")) is not None:
            cm_name, key = str(ref.get("name", "")), str(ref.get("key", ""))
            cm = await objects.configmap(cm_name)
            if cm is None:
                if _optional(ref):
                    continue
                raise ConfigError(configmap_not_found(cm_name))
            if key not in cm:
                if _optional(ref):
                    continue
                raise ConfigError(f"couldn't find key {key} in ConfigMap {ns}/{cm_name}")
            env[name] = cm[key]
        elif (ref := source.get("secretKeyRef")) is not None:
            s_name, key = str(ref.get("name", "")), str(ref.get("key", ""))
            sec = await objects.secret(s_name)
            if sec is None:
                if _optional(ref):
                    continue
                raise ConfigError(secret_not_found(s_name))
            if key not in sec:
                if _optional(ref):
                    continue
                raise ConfigError(f"couldn't find key {key} in Secret {ns}/{s_name}")
            env[name] = _text(sec[key])
        else:
            env[name] = ""
    for k, v in svc_env.items():
        env.setdefault(k, v)
    return env


def _service_ip_set(svc: Obj) -> bool:
    ip = str((svc.get("spec") or {}).get("clusterIP") or "")
    return ip not in ("", "None")


def service_env(services: Sequence[Obj]) -> dict[str, str]:
    """The Kubernetes service variables (``WEB_SERVICE_HOST``, ``WEB_SERVICE_PORT``,
    ``WEB_PORT_80_TCP``...) and Docker-link style ones for ``services``, as the kubelet's
    ``envvars.FromServices`` writes them; services without a ClusterIP are skipped."""
    out: dict[str, str] = {}
    for svc in services:
        if not _service_ip_set(svc):
            continue
        spec = svc.get("spec") or {}
        name = str(svc["metadata"]["name"]).upper().replace("-", "_")
        ip = str(spec["clusterIP"])
        ports = spec.get("ports") or []
        if not ports:
            continue
        out[f"{name}_SERVICE_HOST"] = ip
        out[f"{name}_SERVICE_PORT"] = str(ports[0].get("port"))
        for p in ports:
            if p.get("name"):
                pname = str(p["name"]).upper().replace("-", "_")
                out[f"{name}_SERVICE_PORT_{pname}"] = str(p.get("port"))
        first = ports[0]
        proto = str(first.get("protocol") or "TCP").lower()
        out[f"{name}_PORT"] = f"{proto}://{ip}:{first.get('port')}"
        for p in ports:
            proto = str(p.get("protocol") or "TCP")
            prefix = f"{name}_PORT_{p.get('port')}_{proto.upper()}"
            out[prefix] = f"{proto.lower()}://{ip}:{p.get('port')}"
            out[prefix + "_PROTO"] = proto.lower()
            out[prefix + "_PORT"] = str(p.get("port"))
            out[prefix + "_ADDR"] = ip
    return out


def pod_services(pod: Obj, services: Sequence[Obj]) -> list[Obj]:
    """The services whose variables a pod gets: those of its namespace when
    ``enableServiceLinks`` (default true), and always ``default/kubernetes``."""
    ns = str((pod.get("metadata") or {}).get("namespace") or "default")
    links = (pod.get("spec") or {}).get("enableServiceLinks", True) is not False
    out = []
    for svc in services:
        meta = svc.get("metadata") or {}
        mine = meta.get("namespace") == ns
        master = meta.get("namespace") == "default" and meta.get("name") == "kubernetes"
        if (links and mine) or master:
            out.append(svc)
    return out


def merge_env(
    kubelet: Mapping[str, str], image_env: Sequence[str] | None, hostname: str | None = None
) -> dict[str, str]:
    """What the process sees: ``HOSTNAME``, then image env, then the kubelet's variables."""
    out: dict[str, str] = {}
    if hostname is not None:
        out["HOSTNAME"] = hostname
    out.update(parse_image_env(image_env))
    out.update(kubelet)
    return out


async def container_env(
    pod: Obj,
    container: Obj,
    lookup: ObjectLookup,
    *,
    pod_ip: str,
    host_ip: str,
    node_name: str,
    image_env: list[str] | None,
    hostname: str | None = None,
    pod_ips: Sequence[str] = (),
    host_ips: Sequence[str] = (),
    node_allocatable: Mapping[str, str] | None = None,
    warnings: list[str] | None = None,
    services: Sequence[Obj] = (),
) -> dict[str, str]:
    """The full environment of one container: :func:`kubelet_env` merged over the image's.

    ``hostname`` adds ``HOSTNAME`` as containerd does (the pod's ``spec.hostname`` or its
    name); image and pod env may override it. Raises ``ConfigError`` for a missing
    required ConfigMap/Secret/key or an unsupported selector.
    """
    own = await kubelet_env(
        pod,
        container,
        lookup,
        pod_ip=pod_ip,
        host_ip=host_ip,
        node_name=node_name,
        pod_ips=pod_ips,
        host_ips=host_ips,
        node_allocatable=node_allocatable,
        warnings=warnings,
        services=services,
    )
    return merge_env(own, image_env, hostname)


def resolve_argv(
    container: Obj, image_config: Mapping[str, Any] | None, env: Mapping[str, str]
) -> list[str]:
    """The process argv from ``command``/``args`` and the image's ``Entrypoint``/``Cmd``.

    ``$(VAR)`` in command and args expands against ``env`` (upstream uses the kubelet's
    variables only, i.e. :func:`kubelet_env`; passing the merged env also expands image
    variables). Then, as containerd: ``command`` replaces Entrypoint and drops Cmd;
    ``args`` alone replace Cmd; an Entrypoint of ``[""]`` counts as none. Nothing left:
    ``ConfigError("no command specified")``.
    """
    command = [expand(str(c), env) for c in container.get("command") or []]
    args = [expand(str(a), env) for a in container.get("args") or []]
    config = image_config or {}
    if not command:
        if not args:
            args = [str(a) for a in config.get("Cmd") or []]
        entrypoint = [str(e) for e in config.get("Entrypoint") or []]
        if entrypoint != [""]:
            command = entrypoint
    if not command and not args:
        raise ConfigError(NO_COMMAND)
    return command + args


__all__ = [
    "NO_COMMAND",
    "ConfigError",
    "ObjectLookup",
    "container_env",
    "expand",
    "field_ref_value",
    "format_map",
    "kubelet_env",
    "merge_env",
    "parse_image_env",
    "resolve_argv",
    "resource_field_value",
]
