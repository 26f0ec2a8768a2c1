"""Server-side ``Table`` columns and cells for ``kubectl get``, as the real server prints them.

Called by the API server's list/get/watch handlers when the client asks for
``application/json;as=Table;v=v1;g=meta.k8s.io``: :func:`columns` gives
``columnDefinitions`` and :func:`row` the ``cells`` of one object. kubectl prints the
cells verbatim (it only upper-cases the column names and hides ``priority`` 1 columns
unless ``-o wide``), so every cell here is formatted as
``pkg/printers/internalversion/printers.go`` (Kubernetes 1.32) formats it, including
``Age`` via :func:`human_duration`. The real server always generates the wide cells
(``GenerateOptions{Wide: true}``), so rows always carry every column.

Kinds without a printer get the generic convertor's ``Name`` and ``Created At`` columns.
Corral's own kinds (mesos.corral.dev Frameworks, chronos.corral.dev ChronosJobs,
marathon.corral.dev Apps) have printers here too, in the same style (wide columns at
priority 1).
Column descriptions are the OpenAPI field docs, read lazily from :mod:`corral.api.schema`.
Time is injected (``now``) so tests are deterministic.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from corral.api import schema
from corral.api.selectors import (
    SelectorError,
    format_label_selector,
    format_labels,
    try_selector_from_object,
)
from corral.apiserver.registry.autoscaling import table_cells
from corral.apiserver.registry.autoscaling_v1 import HPAV1Converter
from corral.apiserver.registry.certificates import csr_cells

Obj = Mapping[str, Any]

# --- durations and timestamps ----------------------------------------------------------------


def human_duration(seconds: float) -> str:
    """``duration.HumanDuration``: ~2-3 significant figures (``5s``, ``3m20s``, ``2d5h``)."""
    secs = int(seconds)  # truncates toward zero, like Go's int(d.Seconds())
    if secs < -1:
        return "<invalid>"
    if secs < 0:
        return "0s"
    if secs < 60 * 2:
        return f"{secs}s"
    minutes = secs // 60
    if minutes < 10:
        s = secs % 60
        return f"{minutes}m" if s == 0 else f"{minutes}m{s}s"
    if minutes < 60 * 3:
        return f"{minutes}m"
    hours = secs // 3600
    if hours < 8:
        m = minutes % 60
        return f"{hours}h" if m == 0 else f"{hours}h{m}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        h = hours % 24
        return f"{hours // 24}d" if h == 0 else f"{hours // 24}d{h}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        dy = (hours // 24) % 365
        years = hours // 24 // 365
        return f"{years}y" if dy == 0 else f"{years}y{dy}d"
    return f"{hours // 24 // 365}y"


def _parse_time(value: Any) -> datetime | None:
    """An RFC 3339 timestamp (``metav1.Time``/``MicroTime``); ``None`` when absent/zero."""
    if not isinstance(value, str) or not value:
        return None
    try:
        t = datetime.fromisoformat(value)
    except ValueError:
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    if t.year <= 1:
        return None
    return t


def _since(value: Any, now: datetime) -> str:
    """``translateTimestampSince``: ``<unknown>`` for a zero time."""
    t = _parse_time(value)
    if t is None:
        return "<unknown>"
    return human_duration((now - t).total_seconds())


# --- column definitions --------------------------------------------------------------------

_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
_CORE = "io.k8s.api.core.v1."
_APPS = "io.k8s.api.apps.v1."
_BATCH = "io.k8s.api.batch.v1."
_HPA = "io.k8s.api.autoscaling.v2.HorizontalPodAutoscaler"
_CSR_SPEC = "io.k8s.api.certificates.v1.CertificateSigningRequestSpec"


@functools.cache
def _doc(definition: str, prop: str) -> str:
    """The OpenAPI description of ``definition.prop`` (the Go SwaggerDoc), or ``""``."""
    d = schema.definitions().get(definition) or {}
    p = (d.get("properties") or {}).get(prop) or {}
    desc = p.get("description", "")
    return desc if isinstance(desc, str) else ""


@dataclass(frozen=True, slots=True)
class _Col:
    name: str
    type: str = "string"
    doc: tuple[str, str] | str = ""  # (definition, property) or a literal description
    priority: int = 0
    format: str = ""

    def definition(self) -> dict[str, Any]:
        desc = self.doc if isinstance(self.doc, str) else _doc(*self.doc)
        return {
            "name": self.name,
            "type": self.type,
            "format": self.format,
            "description": desc,
            "priority": self.priority,
        }


_NAME = _Col("Name", "string", (_META, "name"), 0, "name")
_AGE = _Col("Age", "string", (_META, "creationTimestamp"))
_CONTAINERS = _Col("Containers", doc="Names of each container in the template.", priority=1)
_IMAGES = _Col("Images", doc="Images referenced by each container in the template.", priority=1)

_DEFAULT_COLUMNS = (
    _NAME,
    _Col("Created At", "date", (_META, "creationTimestamp")),
)

_EVENT_COLUMNS = (
    _Col("Last Seen", doc=(_CORE + "Event", "lastTimestamp")),
    _Col("Type", doc=(_CORE + "Event", "type")),
    _Col("Reason", doc=(_CORE + "Event", "reason")),
    _Col("Object", doc=(_CORE + "Event", "involvedObject")),
    _Col("Subobject", doc=(_CORE + "ObjectReference", "fieldPath"), priority=1),
    _Col("Source", doc=(_CORE + "Event", "source"), priority=1),
    _Col("Message", doc=(_CORE + "Event", "message")),
    _Col("First Seen", doc=(_CORE + "Event", "firstTimestamp"), priority=1),
    _Col("Count", doc=(_CORE + "Event", "count"), priority=1),
    _Col("Name", "string", (_META, "name"), 1, "name"),
)

_COLUMNS: dict[tuple[str, str], tuple[_Col, ...]] = {
    ("", "pods"): (
        _NAME,
        _Col("Ready", doc="The aggregate readiness state of this pod for accepting traffic."),
        _Col("Status", doc="The aggregate status of the containers in this pod."),
        _Col(
            "Restarts",
            doc="The number of times the containers in this pod have been restarted and when "
            "the last container in this pod has restarted.",
        ),
        _AGE,
        _Col("IP", doc=(_CORE + "PodStatus", "podIP"), priority=1),
        _Col("Node", doc=(_CORE + "PodSpec", "nodeName"), priority=1),
        _Col("Nominated Node", doc=(_CORE + "PodStatus", "nominatedNodeName"), priority=1),
        _Col("Readiness Gates", doc=(_CORE + "PodSpec", "readinessGates"), priority=1),
    ),
    ("", "replicationcontrollers"): (
        _NAME,
        _Col("Desired", "integer", (_CORE + "ReplicationControllerSpec", "replicas")),
        _Col("Current", "integer", (_CORE + "ReplicationControllerStatus", "replicas")),
        _Col("Ready", "integer", (_CORE + "ReplicationControllerStatus", "readyReplicas")),
        _AGE,
        _CONTAINERS,
        _IMAGES,
        _Col("Selector", doc=(_CORE + "ReplicationControllerSpec", "selector"), priority=1),
    ),
    ("apps", "replicasets"): (
        _NAME,
        _Col("Desired", "integer", (_APPS + "ReplicaSetSpec", "replicas")),
        _Col("Current", "integer", (_APPS + "ReplicaSetStatus", "replicas")),
        _Col("Ready", "integer", (_APPS + "ReplicaSetStatus", "readyReplicas")),
        _AGE,
        _CONTAINERS,
        _IMAGES,
        _Col("Selector", doc=(_APPS + "ReplicaSetSpec", "selector"), priority=1),
    ),
    ("apps", "daemonsets"): (
        _NAME,
        _Col("Desired", "integer", (_APPS + "DaemonSetStatus", "desiredNumberScheduled")),
        _Col("Current", "integer", (_APPS + "DaemonSetStatus", "currentNumberScheduled")),
        _Col("Ready", "integer", (_APPS + "DaemonSetStatus", "numberReady")),
        _Col("Up-to-date", "integer", (_APPS + "DaemonSetStatus", "updatedNumberScheduled")),
        _Col("Available", "integer", (_APPS + "DaemonSetStatus", "numberAvailable")),
        _Col("Node Selector", doc=(_CORE + "PodSpec", "nodeSelector")),
        _AGE,
        _CONTAINERS,
        _IMAGES,
        _Col("Selector", doc=(_APPS + "DaemonSetSpec", "selector"), priority=1),
    ),
    ("batch", "jobs"): (
        _NAME,
        _Col("Status", doc="Status of the job."),
        _Col("Completions", doc=(_BATCH + "JobStatus", "succeeded")),
        _Col("Duration", doc="Time required to complete the job."),
        _AGE,
        _CONTAINERS,
        _IMAGES,
        _Col("Selector", doc=(_BATCH + "JobSpec", "selector"), priority=1),
    ),
    ("batch", "cronjobs"): (
        _NAME,
        _Col("Schedule", doc=(_BATCH + "CronJobSpec", "schedule")),
        _Col("Timezone", doc=(_BATCH + "CronJobSpec", "timeZone")),
        _Col("Suspend", "boolean", (_BATCH + "CronJobSpec", "suspend")),
        _Col("Active", "integer", (_BATCH + "CronJobStatus", "active")),
        _Col("Last Schedule", doc=(_BATCH + "CronJobStatus", "lastScheduleTime")),
        _AGE,
        _CONTAINERS,
        _IMAGES,
        _Col("Selector", doc=(_BATCH + "JobSpec", "selector"), priority=1),
    ),
    ("", "services"): (
        _NAME,
        _Col("Type", doc=(_CORE + "ServiceSpec", "type")),
        _Col("Cluster-IP", doc=(_CORE + "ServiceSpec", "clusterIP")),
        _Col("External-IP", doc=(_CORE + "ServiceSpec", "externalIPs")),
        _Col("Port(s)", doc=(_CORE + "ServiceSpec", "ports")),
        _AGE,
        _Col("Selector", doc=(_CORE + "ServiceSpec", "selector"), priority=1),
    ),
    ("apps", "statefulsets"): (
        _NAME,
        _Col("Ready", doc="Number of the pod with ready state"),
        _AGE,
        _CONTAINERS,
        _IMAGES,
    ),
    ("", "endpoints"): (
        _NAME,
        _Col("Endpoints", doc=(_CORE + "Endpoints", "subsets")),
        _AGE,
    ),
    ("", "nodes"): (
        _NAME,
        _Col("Status", doc="The status of the node"),
        _Col("Roles", doc="The roles of the node"),
        _AGE,
        _Col("Version", doc=(_CORE + "NodeSystemInfo", "kubeletVersion")),
        _Col("Internal-IP", doc=(_CORE + "NodeStatus", "addresses"), priority=1),
        _Col("External-IP", doc=(_CORE + "NodeStatus", "addresses"), priority=1),
        _Col("OS-Image", doc=(_CORE + "NodeSystemInfo", "osImage"), priority=1),
        _Col("Kernel-Version", doc=(_CORE + "NodeSystemInfo", "kernelVersion"), priority=1),
        _Col(
            "Container-Runtime",
            doc=(_CORE + "NodeSystemInfo", "containerRuntimeVersion"),
            priority=1,
        ),
    ),
    ("", "events"): _EVENT_COLUMNS,
    ("events.k8s.io", "events"): _EVENT_COLUMNS,
    ("", "namespaces"): (
        _NAME,
        _Col("Status", doc="The status of the namespace"),
        _AGE,
    ),
    ("", "secrets"): (
        _NAME,
        _Col("Type", doc=(_CORE + "Secret", "type")),
        _Col("Data", doc=(_CORE + "Secret", "data")),
        _AGE,
    ),
    ("", "serviceaccounts"): (
        _NAME,
        _Col("Secrets", doc=(_CORE + "ServiceAccount", "secrets")),
        _AGE,
    ),
    ("", "configmaps"): (
        _NAME,
        _Col("Data", doc=(_CORE + "ConfigMap", "data")),
        _AGE,
    ),
    ("apps", "deployments"): (
        _NAME,
        _Col("Ready", doc="Number of the pod with ready state"),
        _Col("Up-to-date", doc=(_APPS + "DeploymentStatus", "updatedReplicas")),
        _Col("Available", doc=(_APPS + "DeploymentStatus", "availableReplicas")),
        _AGE,
        _CONTAINERS,
        _IMAGES,
        _Col("Selector", doc=(_APPS + "DeploymentSpec", "selector"), priority=1),
    ),
    ("coordination.k8s.io", "leases"): (
        _NAME,
        _Col("Holder", doc=("io.k8s.api.coordination.v1.LeaseSpec", "holderIdentity")),
        _AGE,
    ),
    ("autoscaling", "horizontalpodautoscalers"): (
        _NAME,
        _Col("Reference", doc=(_HPA + "Spec", "scaleTargetRef")),
        _Col("Targets", doc=(_HPA + "Spec", "metrics")),
        _Col("MinPods", doc=(_HPA + "Spec", "minReplicas")),
        _Col("MaxPods", "integer", (_HPA + "Spec", "maxReplicas")),
        _Col("Replicas", "integer", (_HPA + "Status", "currentReplicas")),
        _AGE,
    ),
    ("apps", "controllerrevisions"): (
        _NAME,
        _Col("Controller", doc="Controller of the object"),
        _Col("Revision", doc=(_APPS + "ControllerRevision", "revision")),
        _AGE,
    ),
    ("apiregistration.k8s.io", "apiservices"): (
        _NAME,
        _Col("Service", doc="The reference to the service that hosts this API endpoint."),
        _Col("Available", doc="Whether this service is available."),
        _AGE,
    ),
    ("scheduling.k8s.io", "priorityclasses"): (
        _NAME,
        _Col("Value", "integer", ("io.k8s.api.scheduling.v1.PriorityClass", "value")),
        _Col(
            "Global-Default", "boolean", ("io.k8s.api.scheduling.v1.PriorityClass", "globalDefault")
        ),
        _AGE,
        _Col(
            "PreemptionPolicy", doc=("io.k8s.api.scheduling.v1.PriorityClass", "preemptionPolicy")
        ),
    ),
    ("discovery.k8s.io", "endpointslices"): (
        _NAME,
        _Col("AddressType", doc=("io.k8s.api.discovery.v1.EndpointSlice", "addressType")),
        _Col("Ports", doc=("io.k8s.api.discovery.v1.EndpointSlice", "ports")),
        _Col("Endpoints", doc=("io.k8s.api.discovery.v1.EndpointSlice", "endpoints")),
        _AGE,
    ),
    ("", "persistentvolumes"): (
        _NAME,
        _Col("Capacity", doc=(_CORE + "PersistentVolumeSpec", "capacity")),
        _Col("Access Modes", doc=(_CORE + "PersistentVolumeSpec", "accessModes")),
        _Col(
            "Reclaim Policy", doc=(_CORE + "PersistentVolumeSpec", "persistentVolumeReclaimPolicy")
        ),
        _Col("Status", doc=(_CORE + "PersistentVolumeStatus", "phase")),
        _Col("Claim", doc=(_CORE + "PersistentVolumeSpec", "claimRef")),
        _Col("StorageClass", doc=(_CORE + "PersistentVolumeSpec", "storageClassName")),
        _Col(
            "VolumeAttributesClass",
            doc=(_CORE + "PersistentVolumeSpec", "volumeAttributesClassName"),
        ),
        _Col("Reason", doc=(_CORE + "PersistentVolumeStatus", "reason")),
        _AGE,
        _Col("VolumeMode", doc=(_CORE + "PersistentVolumeSpec", "volumeMode"), priority=1),
    ),
    ("", "persistentvolumeclaims"): (
        _NAME,
        _Col("Status", doc=(_CORE + "PersistentVolumeClaimStatus", "phase")),
        _Col("Volume", doc=(_CORE + "PersistentVolumeClaimSpec", "volumeName")),
        _Col("Capacity", doc=(_CORE + "PersistentVolumeClaimStatus", "capacity")),
        _Col("Access Modes", doc=(_CORE + "PersistentVolumeClaimStatus", "accessModes")),
        _Col("StorageClass", doc=(_CORE + "PersistentVolumeClaimSpec", "storageClassName")),
        _Col(
            "VolumeAttributesClass",
            doc=(_CORE + "PersistentVolumeClaimSpec", "volumeAttributesClassName"),
        ),
        _AGE,
        _Col("VolumeMode", doc=(_CORE + "PersistentVolumeClaimSpec", "volumeMode"), priority=1),
    ),
    ("storage.k8s.io", "storageclasses"): (
        _NAME,
        _Col("Provisioner", doc=("io.k8s.api.storage.v1.StorageClass", "provisioner")),
        _Col("ReclaimPolicy", doc=("io.k8s.api.storage.v1.StorageClass", "reclaimPolicy")),
        _Col("VolumeBindingMode", doc=("io.k8s.api.storage.v1.StorageClass", "volumeBindingMode")),
        _Col(
            "AllowVolumeExpansion",
            doc=("io.k8s.api.storage.v1.StorageClass", "allowVolumeExpansion"),
        ),
        _AGE,
    ),
    ("certificates.k8s.io", "certificatesigningrequests"): (
        _NAME,
        _AGE,
        _Col("SignerName", doc=(_CSR_SPEC, "signerName")),
        _Col("Requestor", doc="Name of the user which made this request."),
        _Col("RequestedDuration", doc=(_CSR_SPEC, "expirationSeconds")),
        _Col("Condition", doc="State of this request."),
    ),
    # Roles and ClusterRoles print the default Name / Created At, as upstream
    ("rbac.authorization.k8s.io", "rolebindings"): (
        _NAME,
        _Col("Role", doc=("io.k8s.api.rbac.v1.RoleBinding", "roleRef")),
        _AGE,
        _Col("Users", doc="Users in the roleBinding", priority=1),
        _Col("Groups", doc="Groups in the roleBinding", priority=1),
        _Col("ServiceAccounts", doc="ServiceAccounts in the roleBinding", priority=1),
    ),
    ("rbac.authorization.k8s.io", "clusterrolebindings"): (
        _NAME,
        _Col("Role", doc=("io.k8s.api.rbac.v1.ClusterRoleBinding", "roleRef")),
        _AGE,
        _Col("Users", doc="Users in the clusterRoleBinding", priority=1),
        _Col("Groups", doc="Groups in the clusterRoleBinding", priority=1),
        _Col("ServiceAccounts", doc="ServiceAccounts in the clusterRoleBinding", priority=1),
    ),
    ("mesos.corral.dev", "frameworks"): (
        _NAME,
        _Col("Framework", doc="The name the framework registered with (frameworkInfo.name)."),
        _Col("Roles", doc="The roles the framework subscribed to (* by default)."),
        _Col("Connected", doc="Whether the framework's scheduler is connected to the master."),
        _Col("Tasks", "integer", "Number of the framework's running tasks."),
        _Col("CPUs", "number", "CPUs allocated to the framework's tasks."),
        _Col("Mem", "number", "Memory (MB) allocated to the framework's tasks."),
        _AGE,
        _Col("Active", doc="Whether the framework receives offers.", priority=1),
        _Col("User", doc="The user the framework's tasks run as.", priority=1),
        _Col("Principal", doc="The principal the framework authenticated as.", priority=1),
        _Col("Hostname", doc="The host the framework's scheduler runs on.", priority=1),
    ),
    # NAME is the Chronos name ([\w.-]+, not a DNS name); the object's own name (the
    # "name"-format column kubectl prefixes with the kind) is the wide OBJECT column
    ("chronos.corral.dev", "chronosjobs"): (
        _Col("Name", doc="The job's Chronos name (spec.job.name)."),
        _Col("Schedule", doc="The ISO 8601 repeating interval; - for a dependent job."),
        _Col("Parents", doc="The jobs this dependent job runs after; - for a scheduled job."),
        _Col("Last Success", doc="When the job last succeeded; <none> if it never did."),
        _Col("Last Error", doc="When the job last failed; <none> if it never did."),
        _Col("Success", "integer", "Number of successful runs."),
        _Col("Errors", "integer", "Number of failed runs."),
        _Col("Disabled", doc="Whether the job is disabled (not run)."),
        _AGE,
        _Col("Object", "string", (_META, "name"), 1, "name"),
    ),
    # ID is the Marathon id (/web/api, not a DNS name), as NAME is for ChronosJobs; the
    # object's own name is the wide OBJECT column. Amounts absent from the definition are
    # Marathon's defaults (1 instance, 1 CPU, 128 MB), as the app would run with them.
    ("marathon.corral.dev", "apps"): (
        _Col("ID", doc="The app's Marathon id (spec.app.id)."),
        _Col("Instances", "integer", "Number of instances the app asks for (1 by default)."),
        _Col("Running", "integer", "Number of the app's running tasks."),
        _Col("Healthy", "integer", "Number of the app's tasks whose health checks pass."),
        _Col("Deployments", "integer", "Number of the deployments in progress for the app."),
        _Col("CPUs", "number", "CPUs each instance asks for (1 by default)."),
        _Col("Mem", "number", "Memory (MB) each instance asks for (128 by default)."),
        _AGE,
        _Col("Object", "string", (_META, "name"), 1, "name"),
        _Col("Image", doc="The container image; <none> for a command without one.", priority=1),
        _Col("Cmd", doc="The command (cmd, else args); <none> for the image's own.", priority=1),
    ),
}


def has_table(resource: str, group: str) -> bool:
    """True when the kind has its own printer (otherwise the generic Name/Created At)."""
    return (group, resource) in _COLUMNS


def columns(resource: str, group: str) -> list[dict[str, Any]]:
    """``columnDefinitions`` for the resource; unknown kinds get Name and Created At."""
    cols = _COLUMNS.get((group, resource), _DEFAULT_COLUMNS)
    return [c.definition() for c in cols]


# --- shared cell helpers -------------------------------------------------------------------


def _m(obj: Obj | None, key: str) -> Obj:
    """A nested mapping, ``{}`` when absent or null."""
    if obj is None:
        return {}
    v = obj.get(key)
    return v if isinstance(v, Mapping) else {}


def _l(obj: Obj | None, key: str) -> list[Any]:
    if obj is None:
        return []
    v = obj.get(key)
    return v if isinstance(v, list) else []


def _i(obj: Obj | None, key: str, default: int = 0) -> int:
    if obj is None:
        return default
    v = obj.get(key)
    return v if isinstance(v, int) and not isinstance(v, bool) else default


def _s(obj: Obj | None, key: str) -> str:
    if obj is None:
        return ""
    v = obj.get(key)
    return v if isinstance(v, str) else ""


def _name(obj: Obj) -> str:
    return _s(_m(obj, "metadata"), "name")


def _age(obj: Obj, now: datetime) -> str:
    return _since(_m(obj, "metadata").get("creationTimestamp"), now)


def _layout_containers(containers: list[Any]) -> tuple[str, str]:
    names = ",".join(_s(c, "name") for c in containers if isinstance(c, Mapping))
    images = ",".join(_s(c, "image") for c in containers if isinstance(c, Mapping))
    return names, images


def _template_containers(spec: Obj) -> list[Any]:
    return _l(_m(_m(spec, "template"), "spec"), "containers")


def _has_condition(conditions: list[Any], ctype: str) -> bool:
    """``hasJobCondition``: the first condition of the type decides."""
    for c in conditions:
        if isinstance(c, Mapping) and c.get("type") == ctype:
            return c.get("status") == "True"
    return False


def _list_with_more(items: list[str], more: bool, count: int, limit: int) -> str:
    ret = ",".join(items)
    if more:
        return f"{ret} + {count - limit} more..."
    return ret or "<unset>"


def _join_host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# --- per-kind rows ---------------------------------------------------------------------------


def _is_restartable_init(container: Obj | None) -> bool:
    return container is not None and container.get("restartPolicy") == "Always"


def _later(current: datetime | None, terminated: Obj | None) -> datetime | None:
    if terminated is None:
        return current
    t = _parse_time(terminated.get("finishedAt"))
    if t is not None and (current is None or current < t):
        return t
    return current


def _terminated_reason(term: Obj, prefix: str) -> str:
    if _s(term, "reason"):
        return prefix + _s(term, "reason")
    if _i(term, "signal"):
        return f"{prefix}Signal:{_i(term, 'signal')}"
    return f"{prefix}ExitCode:{_i(term, 'exitCode')}"


def _pod_row(pod: Obj, now: datetime) -> list[Any]:
    spec, status, meta = _m(pod, "spec"), _m(pod, "status"), _m(pod, "metadata")
    conditions = _l(status, "conditions")
    restarts = 0
    restartable_restarts = 0
    total = len(_l(spec, "containers"))
    ready = 0
    last_restart: datetime | None = None
    last_restartable_restart: datetime | None = None
    phase = _s(status, "phase")
    reason = _s(status, "reason") or phase
    for c in conditions:
        is_scheduled = isinstance(c, Mapping) and c.get("type") == "PodScheduled"
        if is_scheduled and c.get("reason") == "SchedulingGated":
            reason = "SchedulingGated"

    init_specs = _l(spec, "initContainers")
    init_by_name: dict[str, Obj] = {}
    for c in init_specs:
        if isinstance(c, Mapping):
            init_by_name[_s(c, "name")] = c
            if _is_restartable_init(c):
                total += 1

    initializing = False
    for i, cs in enumerate(_l(status, "initContainerStatuses")):
        if not isinstance(cs, Mapping):
            continue
        restarts += _i(cs, "restartCount")
        last_term = _m(cs, "lastState").get("terminated")
        last_restart = _later(last_restart, last_term if isinstance(last_term, Mapping) else None)
        restartable = _is_restartable_init(init_by_name.get(_s(cs, "name")))
        if restartable:
            restartable_restarts += _i(cs, "restartCount")
            last_restartable_restart = _later(
                last_restartable_restart, last_term if isinstance(last_term, Mapping) else None
            )
        state = _m(cs, "state")
        term = state.get("terminated")
        waiting = state.get("waiting")
        if isinstance(term, Mapping) and _i(term, "exitCode") == 0:
            continue
        if restartable and cs.get("started") is True:
            if cs.get("ready") is True:
                ready += 1
            continue
        if isinstance(term, Mapping):
            reason = _terminated_reason(term, "Init:")
        elif (
            isinstance(waiting, Mapping)
            and _s(waiting, "reason")
            and _s(waiting, "reason") != "PodInitializing"
        ):
            reason = "Init:" + _s(waiting, "reason")
        else:
            reason = f"Init:{i}/{len(init_specs)}"
        initializing = True
        break

    initialized = False
    for c in conditions:
        if isinstance(c, Mapping) and c.get("type") == "Initialized":
            initialized = c.get("status") == "True"
            break

    if not initializing or initialized:
        restarts = restartable_restarts
        last_restart = last_restartable_restart
        has_running = False
        for cs in reversed(_l(status, "containerStatuses")):
            if not isinstance(cs, Mapping):
                continue
            restarts += _i(cs, "restartCount")
            last_term = _m(cs, "lastState").get("terminated")
            last_restart = _later(
                last_restart, last_term if isinstance(last_term, Mapping) else None
            )
            state = _m(cs, "state")
            term = state.get("terminated")
            waiting = state.get("waiting")
            if isinstance(waiting, Mapping) and _s(waiting, "reason"):
                reason = _s(waiting, "reason")
            elif isinstance(term, Mapping):
                reason = _terminated_reason(term, "")
            elif cs.get("ready") is True and isinstance(state.get("running"), Mapping):
                has_running = True
                ready += 1
        if reason == "Completed" and has_running:
            ready_cond = any(
                isinstance(c, Mapping) and c.get("type") == "Ready" and c.get("status") == "True"
                for c in conditions
            )
            reason = "Running" if ready_cond else "NotReady"

    deleting = bool(meta.get("deletionTimestamp"))
    if deleting and _s(status, "reason") == "NodeLost":
        reason = "Unknown"
    elif deleting and phase not in ("Succeeded", "Failed"):
        reason = "Terminating"

    restarts_text = str(restarts)
    if restarts != 0 and last_restart is not None:
        ago = human_duration((now - last_restart).total_seconds())
        restarts_text = f"{restarts} ({ago} ago)"

    pod_ip = _s(status, "podIP")
    if not pod_ip:
        ips = _l(status, "podIPs")
        if ips and isinstance(ips[0], Mapping):
            pod_ip = _s(ips[0], "ip")
    gates = _l(spec, "readinessGates")
    readiness = "<none>"
    if gates:
        true_count = 0
        for gate in gates:
            ctype = gate.get("conditionType") if isinstance(gate, Mapping) else None
            for c in conditions:
                if isinstance(c, Mapping) and c.get("type") == ctype:
                    if c.get("status") == "True":
                        true_count += 1
                    break
        readiness = f"{true_count}/{len(gates)}"
    return [
        _name(pod),
        f"{ready}/{total}",
        reason,
        restarts_text,
        _age(pod, now),
        pod_ip or "<none>",
        _s(spec, "nodeName") or "<none>",
        _s(status, "nominatedNodeName") or "<none>",
        readiness,
    ]


def _replication_controller_row(obj: Obj, now: datetime) -> list[Any]:
    spec, status = _m(obj, "spec"), _m(obj, "status")
    names, images = _layout_containers(_template_containers(spec))
    selector = spec.get("selector")
    return [
        _name(obj),
        _i(spec, "replicas", 1),
        _i(status, "replicas"),
        _i(status, "readyReplicas"),
        _age(obj, now),
        names,
        images,
        format_labels(selector if isinstance(selector, Mapping) else None),
    ]


def _object_selector(spec: Obj) -> Mapping[str, Any] | None:
    sel = spec.get("selector")
    return sel if isinstance(sel, Mapping) else None


def _replica_set_row(obj: Obj, now: datetime) -> list[Any]:
    spec, status = _m(obj, "spec"), _m(obj, "status")
    names, images = _layout_containers(_template_containers(spec))
    return [
        _name(obj),
        _i(spec, "replicas", 1),
        _i(status, "replicas"),
        _i(status, "readyReplicas"),
        _age(obj, now),
        names,
        images,
        format_label_selector(_object_selector(spec)),
    ]


def _daemon_set_row(obj: Obj, now: datetime) -> list[Any]:
    spec, status = _m(obj, "spec"), _m(obj, "status")
    names, images = _layout_containers(_template_containers(spec))
    node_selector = _m(_m(spec, "template"), "spec").get("nodeSelector")
    return [
        _name(obj),
        _i(status, "desiredNumberScheduled"),
        _i(status, "currentNumberScheduled"),
        _i(status, "numberReady"),
        _i(status, "updatedNumberScheduled"),
        _i(status, "numberAvailable"),
        format_labels(node_selector if isinstance(node_selector, Mapping) else None),
        _age(obj, now),
        names,
        images,
        format_label_selector(_object_selector(spec)),
    ]


def _job_row(obj: Obj, now: datetime) -> list[Any]:
    spec, status, meta = _m(obj, "spec"), _m(obj, "status"), _m(obj, "metadata")
    succeeded = _i(status, "succeeded")
    completions = spec.get("completions")
    if isinstance(completions, int):
        completions_text = f"{succeeded}/{completions}"
    else:
        parallelism = _i(spec, "parallelism")
        if parallelism > 1:
            completions_text = f"{succeeded}/1 of {parallelism}"
        else:
            completions_text = f"{succeeded}/1"
    start = _parse_time(status.get("startTime"))
    done = _parse_time(status.get("completionTime"))
    if start is None:
        duration = ""
    elif done is None:
        duration = human_duration((now - start).total_seconds())
    else:
        duration = human_duration((done - start).total_seconds())
    conditions = _l(status, "conditions")
    if _has_condition(conditions, "Complete"):
        state = "Complete"
    elif _has_condition(conditions, "Failed"):
        state = "Failed"
    elif meta.get("deletionTimestamp"):
        state = "Terminating"
    elif _has_condition(conditions, "Suspended"):
        state = "Suspended"
    elif _has_condition(conditions, "FailureTarget"):
        state = "FailureTarget"
    else:
        state = "Running"
    names, images = _layout_containers(_template_containers(spec))
    return [
        _name(obj),
        state,
        completions_text,
        duration,
        _age(obj, now),
        names,
        images,
        format_label_selector(_object_selector(spec)),
    ]


def _bool_ptr(v: Any) -> str:
    if isinstance(v, bool):
        return "True" if v else "False"
    return "<unset>"


def _cron_job_row(obj: Obj, now: datetime) -> list[Any]:
    spec, status = _m(obj, "spec"), _m(obj, "status")
    last = status.get("lastScheduleTime")
    job_spec = _m(_m(spec, "jobTemplate"), "spec")
    names, images = _layout_containers(_template_containers(job_spec))
    tz = spec.get("timeZone")
    return [
        _name(obj),
        _s(spec, "schedule"),
        tz if isinstance(tz, str) else "<none>",
        _bool_ptr(spec.get("suspend")),
        len(_l(status, "active")),
        _since(last, now) if last else "<none>",
        _age(obj, now),
        names,
        images,
        format_label_selector(_object_selector(job_spec)),
    ]


def _load_balancer_ips(status: Obj) -> str:
    seen: set[str] = set()
    for ing in _l(_m(status, "loadBalancer"), "ingress"):
        if not isinstance(ing, Mapping):
            continue
        if _s(ing, "ip"):
            seen.add(_s(ing, "ip"))
        elif _s(ing, "hostname"):
            seen.add(_s(ing, "hostname"))
    return ",".join(sorted(seen))


def _service_external_ip(svc: Obj) -> str:
    spec = _m(svc, "spec")
    external = [x for x in _l(spec, "externalIPs") if isinstance(x, str)]
    stype = _s(spec, "type")
    if stype in ("ClusterIP", "NodePort"):
        return ",".join(external) if external else "<none>"
    if stype == "LoadBalancer":
        lb = _load_balancer_ips(_m(svc, "status"))
        if external:
            return ",".join(([*lb.split(",")] if lb else []) + external)
        return lb or "<pending>"
    if stype == "ExternalName":
        return _s(spec, "externalName")
    return "<unknown>"


def _service_ports(ports: list[Any]) -> str:
    pieces = []
    for p in ports:
        if not isinstance(p, Mapping):
            continue
        proto = _s(p, "protocol")
        if _i(p, "nodePort") > 0:
            pieces.append(f"{_i(p, 'port')}:{_i(p, 'nodePort')}/{proto}")
        else:
            pieces.append(f"{_i(p, 'port')}/{proto}")
    return ",".join(pieces)


def _service_row(obj: Obj, now: datetime) -> list[Any]:
    spec = _m(obj, "spec")
    cluster_ips = [x for x in _l(spec, "clusterIPs") if isinstance(x, str)]
    internal = cluster_ips[0] if cluster_ips else (_s(spec, "clusterIP") or "<none>")
    selector = spec.get("selector")
    return [
        _name(obj),
        _s(spec, "type"),
        internal,
        _service_external_ip(obj),
        _service_ports(_l(spec, "ports")) or "<none>",
        _age(obj, now),
        format_labels(selector if isinstance(selector, Mapping) else None),
    ]


def _stateful_set_row(obj: Obj, now: datetime) -> list[Any]:
    spec, status = _m(obj, "spec"), _m(obj, "status")
    names, images = _layout_containers(_template_containers(spec))
    return [
        _name(obj),
        f"{_i(status, 'readyReplicas')}/{_i(spec, 'replicas', 1)}",
        _age(obj, now),
        names,
        images,
    ]


def _format_endpoints(obj: Obj) -> str:
    subsets = [s for s in _l(obj, "subsets") if isinstance(s, Mapping)]
    if not subsets:
        return "<none>"
    items: list[str] = []
    limit, more, count = 3, False, 0
    for ss in subsets:
        addresses = [a for a in _l(ss, "addresses") if isinstance(a, Mapping)]
        ports = [p for p in _l(ss, "ports") if isinstance(p, Mapping)]
        if not ports:
            count += len(addresses)
            for a in addresses:
                if len(items) == limit:
                    more = True
                    break
                items.append(_s(a, "ip"))
            continue
        for port in ports:
            count += len(addresses)
            for a in addresses:
                if len(items) == limit:
                    more = True
                    break
                items.append(_join_host_port(_s(a, "ip"), _i(port, "port")))
    ret = ",".join(items)
    if more:
        return f"{ret} + {count - limit} more..."
    return ret


def _endpoints_row(obj: Obj, now: datetime) -> list[Any]:
    return [_name(obj), _format_endpoints(obj), _age(obj, now)]


def _endpoint_slice_row(obj: Obj, now: datetime) -> list[Any]:
    limit = 3
    ports: list[str] = []
    more, count = False, 0
    for p in _l(obj, "ports"):
        if not isinstance(p, Mapping):
            continue
        if len(ports) < limit:
            if isinstance(p.get("port"), int):
                ports.append(str(p["port"]))
            elif isinstance(p.get("name"), str):
                ports.append(p["name"])
            else:
                ports.append("*")
        elif len(ports) == limit:
            more = True
        count += 1
    ports_text = _list_with_more(ports, more, count, limit)
    addrs: list[str] = []
    more, count = False, 0
    for ep in _l(obj, "endpoints"):
        for a in _l(ep, "addresses") if isinstance(ep, Mapping) else []:
            if len(addrs) < limit:
                addrs.append(str(a))
            elif len(addrs) == limit:
                more = True
            count += 1
    return [
        _name(obj),
        _s(obj, "addressType"),
        ports_text,
        _list_with_more(addrs, more, count, limit),
        _age(obj, now),
    ]


def _node_roles(labels: Mapping[str, Any]) -> list[str]:
    roles: set[str] = set()
    for k, v in labels.items():
        if k.startswith("node-role.kubernetes.io/"):
            role = k[len("node-role.kubernetes.io/") :]
            if role:
                roles.add(role)
        elif k == "kubernetes.io/role" and v:
            roles.add(str(v))
    return sorted(roles)


def _node_address(status: Obj, kind: str) -> str:
    for a in _l(status, "addresses"):
        if isinstance(a, Mapping) and a.get("type") == kind:
            return _s(a, "address")
    return "<none>"


def _node_row(obj: Obj, now: datetime) -> list[Any]:
    spec, status = _m(obj, "spec"), _m(obj, "status")
    states: list[str] = []
    ready_cond: Obj | None = None
    for c in _l(status, "conditions"):
        if isinstance(c, Mapping) and c.get("type") == "Ready":
            ready_cond = c  # the last one wins, as with the map upstream
    if ready_cond is not None:
        states.append("Ready" if ready_cond.get("status") == "True" else "NotReady")
    if not states:
        states.append("Unknown")
    if spec.get("unschedulable") is True:
        states.append("SchedulingDisabled")
    roles = ",".join(_node_roles(_m(obj, "metadata").get("labels") or {}))
    info = _m(status, "nodeInfo")
    return [
        _name(obj),
        ",".join(states),
        roles or "<none>",
        _age(obj, now),
        _s(info, "kubeletVersion"),
        _node_address(status, "InternalIP"),
        _node_address(status, "ExternalIP"),
        _s(info, "osImage") or "<unknown>",
        _s(info, "kernelVersion") or "<unknown>",
        _s(info, "containerRuntimeVersion") or "<unknown>",
    ]


def _namespace_row(obj: Obj, now: datetime) -> list[Any]:
    return [_name(obj), _s(_m(obj, "status"), "phase"), _age(obj, now)]


def _secret_row(obj: Obj, now: datetime) -> list[Any]:
    keys = set(_m(obj, "data")) | set(_m(obj, "stringData"))
    return [_name(obj), _s(obj, "type"), len(keys), _age(obj, now)]


def _service_account_row(obj: Obj, now: datetime) -> list[Any]:
    return [_name(obj), len(_l(obj, "secrets")), _age(obj, now)]


def _config_map_row(obj: Obj, now: datetime) -> list[Any]:
    return [_name(obj), len(_m(obj, "data")) + len(_m(obj, "binaryData")), _age(obj, now)]


def _deployment_row(obj: Obj, now: datetime) -> list[Any]:
    spec, status = _m(obj, "spec"), _m(obj, "status")
    try:
        selector = str(try_selector_from_object(_object_selector(spec)))
    except SelectorError:
        selector = "<invalid>"
    names, images = _layout_containers(_template_containers(spec))
    return [
        _name(obj),
        f"{_i(status, 'readyReplicas')}/{_i(spec, 'replicas', 1)}",
        _i(status, "updatedReplicas"),
        _i(status, "availableReplicas"),
        _age(obj, now),
        names,
        images,
        selector,
    ]


def _events_v1_as_core(obj: Obj) -> dict[str, Any]:
    """The fields of an ``events.k8s.io/v1`` Event under their core/v1 names."""
    return {
        "metadata": obj.get("metadata") or {},
        "involvedObject": obj.get("regarding") or {},
        "reason": obj.get("reason", ""),
        "message": obj.get("note", ""),
        "type": obj.get("type", ""),
        "source": obj.get("deprecatedSource") or {},
        "firstTimestamp": obj.get("deprecatedFirstTimestamp"),
        "lastTimestamp": obj.get("deprecatedLastTimestamp"),
        "count": obj.get("deprecatedCount", 0),
        "eventTime": obj.get("eventTime"),
        "series": obj.get("series"),
        "reportingComponent": obj.get("reportingController", ""),
        "reportingInstance": obj.get("reportingInstance", ""),
    }


def _event_row(obj: Obj, now: datetime) -> list[Any]:
    first = (
        _since(obj.get("firstTimestamp"), now)
        if _parse_time(obj.get("firstTimestamp")) is not None
        else _since(obj.get("eventTime"), now)
    )
    last = (
        _since(obj.get("lastTimestamp"), now)
        if _parse_time(obj.get("lastTimestamp")) is not None
        else first
    )
    count = _i(obj, "count")
    series = obj.get("series")
    if isinstance(series, Mapping):
        last = _since(series.get("lastObservedTime"), now)
        count = _i(series, "count")
    elif count == 0:
        count = 1
    involved = _m(obj, "involvedObject")
    kind = _s(involved, "kind").lower()
    target = f"{kind}/{_s(involved, 'name')}" if _s(involved, "name") else kind
    source = _m(obj, "source")
    component = _s(source, "component") or _s(obj, "reportingComponent")
    host = _s(source, "host") or _s(obj, "reportingInstance")
    return [
        last,
        _s(obj, "type"),
        _s(obj, "reason"),
        target,
        _s(involved, "fieldPath"),
        f"{component}, {host}" if host else component,
        _s(obj, "message").strip(),
        first,
        count,
        _name(obj),
    ]


def _events_v1_row(obj: Obj, now: datetime) -> list[Any]:
    return _event_row(_events_v1_as_core(obj), now)


def _api_service_row(obj: Obj, now: datetime) -> list[Any]:
    svc = _m(obj, "spec").get("service")
    service = f"{_s(svc, 'namespace')}/{_s(svc, 'name')}" if isinstance(svc, Mapping) else "Local"
    available = "Unknown"
    for c in _l(_m(obj, "status"), "conditions"):
        if isinstance(c, Mapping) and c.get("type") == "Available":
            status, reason = _s(c, "status"), _s(c, "reason")
            available = f"{status} ({reason})" if status != "True" and reason else status
    return [_name(obj), service, available, _age(obj, now)]


def _hpa_row(obj: Obj, now: datetime) -> list[Any]:
    # autoscaling/v1 objects print through their v2 form, as upstream prints the internal one
    hpa = HPAV1Converter().to_storage(obj) if obj.get("apiVersion") == "autoscaling/v1" else obj
    return [*table_cells(hpa), _age(obj, now)]


def _lease_row(obj: Obj, now: datetime) -> list[Any]:
    return [_name(obj), _s(_m(obj, "spec"), "holderIdentity"), _age(obj, now)]


def _controller_name(obj: Obj) -> str:
    for ref in _l(_m(obj, "metadata"), "ownerReferences"):
        if isinstance(ref, Mapping) and ref.get("controller") is True:
            api_version = _s(ref, "apiVersion")
            parts = api_version.split("/")
            group = parts[0] if len(parts) == 2 else ""
            kind = _s(ref, "kind")
            if not kind and not group:
                return _s(ref, "name")
            group_kind = f"{kind}.{group}" if group else kind
            return f"{group_kind.lower()}/{_s(ref, 'name')}"
    return "<none>"


def _controller_revision_row(obj: Obj, now: datetime) -> list[Any]:
    return [_name(obj), _controller_name(obj), _i(obj, "revision"), _age(obj, now)]


def _priority_class_row(obj: Obj, now: datetime) -> list[Any]:
    return [
        _name(obj),
        _i(obj, "value"),
        obj.get("globalDefault") is True,
        _age(obj, now),
        _s(obj, "preemptionPolicy"),
    ]


def _role_binding_row(obj: Obj, now: datetime) -> list[Any]:
    # upstream's rbac.SubjectsStrings: ServiceAccounts print as namespace:name (name
    # alone without a namespace)
    users: list[str] = []
    groups: list[str] = []
    sas: list[str] = []
    for subject in _l(obj, "subjects"):
        if not isinstance(subject, Mapping):
            continue
        kind, name = _s(subject, "kind"), _s(subject, "name")
        if kind == "User":
            users.append(name)
        elif kind == "Group":
            groups.append(name)
        elif kind == "ServiceAccount":
            sa_ns = _s(subject, "namespace")
            sas.append(f"{sa_ns}:{name}" if sa_ns else name)
    ref = _m(obj, "roleRef")
    return [
        _name(obj),
        f"{_s(ref, 'kind')}/{_s(ref, 'name')}",
        _age(obj, now),
        ", ".join(users),
        ", ".join(groups),
        ", ".join(sas),
    ]


def _true_false(value: Any) -> str:
    return "True" if value is True else "False"


def _amount(obj: Obj, key: str) -> int | float:
    """A resource amount as a JSON number kubectl prints plainly (``128``, not ``128.0``)."""
    v = obj.get(key)
    if not isinstance(v, int | float) or isinstance(v, bool):
        return 0
    return int(v) if isinstance(v, int) or v.is_integer() else v


def _framework_row(obj: Obj, now: datetime) -> list[Any]:
    info = _m(_m(obj, "spec"), "frameworkInfo")
    status = _m(obj, "status")
    roles = [r for r in _l(info, "roles") if isinstance(r, str)]
    if not roles and _s(info, "role"):
        roles = [_s(info, "role")]
    allocated = _m(status, "allocated")
    return [
        _name(obj),
        _s(info, "name"),
        ",".join(roles) or "*",
        _true_false(status.get("connected")),
        _i(_m(status, "tasks"), "running"),
        _amount(allocated, "cpus"),
        _amount(allocated, "mem"),
        _age(obj, now),
        _true_false(status.get("active")),
        _s(info, "user"),
        _s(info, "principal"),
        _s(info, "hostname"),
    ]


def _chronos_job_row(obj: Obj, now: datetime) -> list[Any]:
    job = _m(_m(obj, "spec"), "job")
    status = _m(obj, "status")
    parents = [p for p in _l(job, "parents") if isinstance(p, str)]
    return [
        _s(job, "name"),
        _s(job, "schedule") or "-",
        ",".join(parents) or "-",
        _s(status, "lastSuccess") or "<none>",
        _s(status, "lastError") or "<none>",
        _i(status, "successCount"),
        _i(status, "errorCount"),
        _true_false(job.get("disabled")),
        _age(obj, now),
        _name(obj),
    ]


def _amount_or(obj: Obj, key: str, default: int | float) -> int | float:
    """``_amount`` of ``obj[key]``, ``default`` when absent or not a number."""
    v = obj.get(key)
    return _amount(obj, key) if isinstance(v, int | float) and not isinstance(v, bool) else default


def _marathon_app_row(obj: Obj, now: datetime) -> list[Any]:
    app = _m(_m(obj, "spec"), "app")
    status = _m(obj, "status")
    args = [a for a in _l(app, "args") if isinstance(a, str)]
    return [
        _s(app, "id"),
        _i(app, "instances", 1),
        _i(status, "tasksRunning"),
        _i(status, "tasksHealthy"),
        len(_l(status, "deployments")),
        _amount_or(app, "cpus", 1),
        _amount_or(app, "mem", 128),
        _age(obj, now),
        _name(obj),
        _s(_m(_m(app, "container"), "docker"), "image") or "<none>",
        _s(app, "cmd") or " ".join(args) or "<none>",
    ]


_ACCESS_MODE_SHORT = (
    ("ReadWriteOnce", "RWO"),
    ("ReadOnlyMany", "ROX"),
    ("ReadWriteMany", "RWX"),
    ("ReadWriteOncePod", "RWOP"),
)


def _access_modes(modes: list[Any]) -> str:
    """``GetAccessModesAsString``: RWO, ROX, RWX, RWOP in that order, comma-joined."""
    return ",".join(short for mode, short in _ACCESS_MODE_SHORT if mode in modes)


def _beta_class(obj: Obj) -> str:
    """The class named by the beta annotation (``GetPersistentVolume[Claim]Class``)."""
    return _s(_m(_m(obj, "metadata"), "annotations"), "volume.beta.kubernetes.io/storage-class")


def _persistent_volume_row(obj: Obj, now: datetime) -> list[Any]:
    spec, status = _m(obj, "spec"), _m(obj, "status")
    ref = spec.get("claimRef")
    claim = f"{_s(ref, 'namespace')}/{_s(ref, 'name')}" if isinstance(ref, Mapping) else ""
    phase = "Terminating" if _m(obj, "metadata").get("deletionTimestamp") else _s(status, "phase")
    storage_class = _beta_class(obj) or _s(spec, "storageClassName")
    return [
        _name(obj),
        str(_m(spec, "capacity").get("storage") or "0"),
        _access_modes(_l(spec, "accessModes")),
        _s(spec, "persistentVolumeReclaimPolicy"),
        phase,
        claim,
        storage_class,
        _s(spec, "volumeAttributesClassName") or "<unset>",
        _s(status, "reason"),
        _age(obj, now),
        _s(spec, "volumeMode") or "<unset>",
    ]


def _persistent_volume_claim_row(obj: Obj, now: datetime) -> list[Any]:
    spec, status = _m(obj, "spec"), _m(obj, "status")
    phase = "Terminating" if _m(obj, "metadata").get("deletionTimestamp") else _s(status, "phase")
    capacity = modes = ""
    if _s(spec, "volumeName"):
        modes = _access_modes(_l(status, "accessModes"))
        capacity = str(_m(status, "capacity").get("storage") or "0")
    storage_class = _beta_class(obj) or _s(spec, "storageClassName")
    return [
        _name(obj),
        phase,
        _s(spec, "volumeName"),
        capacity,
        modes,
        storage_class,
        _s(spec, "volumeAttributesClassName") or "<unset>",
        _age(obj, now),
        _s(spec, "volumeMode") or "<unset>",
    ]


def _storage_class_row(obj: Obj, now: datetime) -> list[Any]:
    annotations = _m(obj, "metadata").get("annotations") or {}
    default = "true" in (
        annotations.get("storageclass.kubernetes.io/is-default-class"),
        annotations.get("storageclass.beta.kubernetes.io/is-default-class"),
    )
    return [
        _name(obj) + (" (default)" if default else ""),
        _s(obj, "provisioner"),
        _s(obj, "reclaimPolicy") or "Delete",
        _s(obj, "volumeBindingMode") or "Immediate",
        obj.get("allowVolumeExpansion") is True,
        _age(obj, now),
    ]


def _default_row(obj: Obj, now: datetime) -> list[Any]:
    t = _parse_time(_m(obj, "metadata").get("creationTimestamp"))
    created = t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if t else "0001-01-01T00:00:00Z"
    return [_name(obj), created]


_ROWS: dict[tuple[str, str], Callable[[Obj, datetime], list[Any]]] = {
    ("", "pods"): _pod_row,
    ("", "replicationcontrollers"): _replication_controller_row,
    ("apps", "replicasets"): _replica_set_row,
    ("apps", "daemonsets"): _daemon_set_row,
    ("batch", "jobs"): _job_row,
    ("batch", "cronjobs"): _cron_job_row,
    ("", "services"): _service_row,
    ("apps", "statefulsets"): _stateful_set_row,
    ("", "endpoints"): _endpoints_row,
    ("", "nodes"): _node_row,
    ("", "events"): _event_row,
    ("events.k8s.io", "events"): _events_v1_row,
    ("", "namespaces"): _namespace_row,
    ("", "secrets"): _secret_row,
    ("", "serviceaccounts"): _service_account_row,
    ("", "configmaps"): _config_map_row,
    ("apps", "deployments"): _deployment_row,
    ("coordination.k8s.io", "leases"): _lease_row,
    ("apiregistration.k8s.io", "apiservices"): _api_service_row,
    ("apps", "controllerrevisions"): _controller_revision_row,
    ("autoscaling", "horizontalpodautoscalers"): _hpa_row,
    ("scheduling.k8s.io", "priorityclasses"): _priority_class_row,
    ("discovery.k8s.io", "endpointslices"): _endpoint_slice_row,
    ("", "persistentvolumes"): _persistent_volume_row,
    ("", "persistentvolumeclaims"): _persistent_volume_claim_row,
    ("storage.k8s.io", "storageclasses"): _storage_class_row,
    ("rbac.authorization.k8s.io", "rolebindings"): _role_binding_row,
    ("rbac.authorization.k8s.io", "clusterrolebindings"): _role_binding_row,
    ("certificates.k8s.io", "certificatesigningrequests"): lambda o, now: csr_cells(
        o, now, human_duration, _age(o, now)
    ),
    ("mesos.corral.dev", "frameworks"): _framework_row,
    ("chronos.corral.dev", "chronosjobs"): _chronos_job_row,
    ("marathon.corral.dev", "apps"): _marathon_app_row,
}


def row(resource: str, group: str, obj: Obj, now: datetime) -> list[Any]:
    """The ``cells`` of one object (all columns, wide included), as of ``now`` (aware)."""
    return _ROWS.get((group, resource), _default_row)(obj, now)


_POD_SUCCEEDED = [
    {
        "type": "Completed",
        "status": "True",
        "reason": "Succeeded",
        "message": "The pod has completed successfully.",
    }
]
_POD_FAILED = [
    {"type": "Completed", "status": "True", "reason": "Failed", "message": "The pod failed."}
]


def row_conditions(resource: str, group: str, obj: Obj) -> list[dict[str, Any]] | None:
    """``rows[].conditions``: pods that ended carry a ``Completed`` condition, else ``None``."""
    if (group, resource) != ("", "pods"):
        return None
    phase = _s(_m(obj, "status"), "phase")
    if phase == "Succeeded":
        return [dict(c) for c in _POD_SUCCEEDED]
    if phase == "Failed":
        return [dict(c) for c in _POD_FAILED]
    return None


__all__ = ["columns", "has_table", "human_duration", "row", "row_conditions"]
