"""Names shared by every side of the Mesos model: labels, annotations, the API group.

A Mesos task is a Pod (the pod is the universal unit of work, DESIGN.md). The master
(``corral.mesos``) writes these labels and annotations when it turns a TaskInfo into a
Pod; the agent reads them to give the task a sandbox and the Mesos environment; the
allocator (``corral.offers``) reads them to charge the pod to its framework and role.
Label values are limited to 63 characters of ``[A-Za-z0-9._-]``, so ids that may not fit
(task ids are any string) are labelled by a hash and kept whole in an annotation.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

#: what the master's TASK_ERROR says of a task past its node's pods limit: the offer had
#: no room (offers carry the node's free ``pods`` but do not hold them), the task is not
#: at fault, so a framework that finds this launches it again elsewhere, without back-off
POD_LIMIT_REACHED = "pods limit is reached"

#: the API group of the Framework kind (``kubectl get frameworks``)
GROUP = "mesos.corral.dev"
VERSION = "v1"
#: the namespace every Mesos task pod lives in
NAMESPACE = "mesos"
#: ``spec.schedulerName`` of task pods: the Kubernetes scheduler leaves them alone; the
#: master binds them to the offered node itself (through the binding guard)
SCHEDULER_NAME = "corral-mesos"
#: the role Kubernetes pods count toward by default (DRF sees the whole pool)
KUBERNETES_ROLE = "kubernetes"

# labels on task pods
FRAMEWORK_ID = f"{GROUP}/framework-id"
TASK_HASH = f"{GROUP}/task"  # label_safe(task id)
AGENT_ID = f"{GROUP}/agent-id"
ROLE = f"{GROUP}/role"
# annotations on task pods
TASK_ID = f"{GROUP}/task-id"  # the task id, whole
TASK_INFO = f"{GROUP}/task-info"  # the TaskInfo as JSON (what the framework sent)
EXECUTOR_ID = f"{GROUP}/executor-id"
#: JSON list of CommandInfo.URI the agent fetches into the sandbox before the task starts
URIS = f"{GROUP}/uris"
#: "true": the task has no image; it runs on the agent's own filesystem in a sandbox
HOST_COMMAND = f"{GROUP}/host-command"
#: the last TaskStatus state the framework acknowledged (so a restarted master resends
#: only what was not acknowledged)
ACKED_STATE = f"{GROUP}/acked-state"
#: "true" once the framework asked for the task to be killed (its end is TASK_KILLED)
KILL_REQUESTED = f"{GROUP}/kill-requested"
#: JSON TaskStatus written by the agent when a custom executor sends UPDATE
EXECUTOR_STATUS = f"{GROUP}/executor-status"

#: the image a host-command task pod names (the agent never pulls it)
HOST_IMAGE = "corral.local/mesos-host:latest"

_LABEL_OK = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$")


def label_safe(value: str) -> str:
    """``value`` itself when it is a valid label value, else a 40-hex-digit hash of it."""
    if _LABEL_OK.match(value):
        return value
    return hashlib.sha1(value.encode()).hexdigest()


def task_pod_name(framework_id: str, task_id: str) -> str:
    """A DNS-1123 pod name for a task, unique per (framework, task) and stable."""
    slug = re.sub(r"[^a-z0-9-]+", "-", task_id.lower()).strip("-")[:40].strip("-") or "task"
    digest = hashlib.sha1(f"{framework_id}\0{task_id}".encode()).hexdigest()[:10]
    return f"{slug}-{digest}"


def role_error(role: str) -> str | None:
    """Why ``role`` is not a valid Mesos role name (``mesos::roles::validate``), or None.

    ``*`` is the default role; others are ``/``-separated paths of components that are
    neither ``.``, ``..`` nor ``*``, do not start with ``-`` and hold no whitespace or
    control character.
    """
    if role == "*":
        return None
    if not role:
        return "Role names cannot be the empty string"
    if role.startswith("/"):
        return "Role cannot start with a slash"
    if role.endswith("/"):
        return "Role cannot end with a slash"
    if "//" in role:
        return "Role cannot contain two adjacent slashes"
    for component in role.split("/"):
        if component in (".", "..", "*"):
            return f"Role cannot include '{component}' as a component"
        if component.startswith("-"):
            return f"Role component '{component}' is invalid because it starts with a dash"
        if any(c.isspace() or unicodedata.category(c) == "Cc" for c in component):
            return (
                f"Role component {component!r} is invalid because it contains "
                "whitespace or a control character"
            )
    return None
