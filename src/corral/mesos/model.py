"""The Mesos master's state: frameworks, tasks and counters, and small readers of
Mesos JSON shared by its modules (``master.py``, ``calls.py``, ``updates.py``,
``state.py``). Plain data; nothing here does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from corral.util.eventstream import EventStream

Obj = dict[str, Any]

VERSION = "1.11.0"  # the Mesos API version Corral speaks (pymesos wants a numeric one)
DEFAULT_FAILOVER_TIMEOUT = 0.0  # Mesos' FrameworkInfo default
RETRY_FIRST = 10.0
RETRY_MAX = 600.0
#: completed tasks remembered per framework (Mesos' --max_completed_tasks_per_framework)
MAX_COMPLETED_TASKS = 1000
#: finished tasks whose pods are kept (for ``kubectl logs``) per framework
KEEP_COMPLETED_PODS = 100
#: removed frameworks remembered (Mesos' --max_completed_frameworks)
MAX_COMPLETED_FRAMEWORKS = 50
#: the reason of the Events an agent records for an executor's MESSAGE call
EXECUTOR_MESSAGE = "ExecutorMessage"
#: the ConfigMap (namespace ``mesos``) holding role weights and quotas
POLICY_CONFIGMAP = "mesos-master"


class CallError(Exception):
    """A call the master refuses: ``code`` is the HTTP status (400 bad, 403 wrong stream)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class FrameworkState:
    id: str
    info: Obj
    uid: str = ""
    stream: EventStream | None = None
    connected: bool = False
    registered: float = 0.0
    reregistered: float | None = None
    disconnected: float | None = None  # unix time
    deadline: float | None = None  # monotonic: removed then unless it re-subscribes
    #: executor id -> agent, of executors that subscribed to an agent
    executors: dict[str, str] = field(default_factory=dict)

    @property
    def roles(self) -> list[str]:
        roles = list(self.info.get("roles") or [])
        if not roles:
            roles = [self.info.get("role") or "*"]
        return roles

    @property
    def capabilities(self) -> set[str]:
        caps = self.info.get("capabilities")
        if not isinstance(caps, list):
            return set()
        return {str(c.get("type", "")) for c in caps if isinstance(c, dict)}

    @property
    def failover_timeout(self) -> float:
        try:
            return max(0.0, float(self.info.get("failover_timeout") or DEFAULT_FAILOVER_TIMEOUT))
        except (TypeError, ValueError):
            return DEFAULT_FAILOVER_TIMEOUT


@dataclass
class TaskState:
    framework_id: str
    task_id: str
    pod_key: str
    agent: str
    role: str
    info: Obj
    pod: Obj | None = None
    launched: float = 0.0  # unix
    #: the status last sent (state, healthy), the one waiting for acknowledgement
    last: Obj | None = None
    pending: Obj | None = None
    next_retry: float = 0.0
    backoff: float = RETRY_FIRST
    acked_state: str = ""
    kill_requested: bool = False
    statuses: list[Obj] = field(default_factory=list)  # [{state, timestamp}] for /state
    created: bool = False  # the pod exists (seen or created)

    @property
    def state(self) -> str:
        return str((self.last or {}).get("state") or "TASK_STAGING")


@dataclass
class Metrics:
    offers_sent: int = 0
    offers_declined: int = 0
    offers_accepted: int = 0
    offers_rescinded: int = 0
    tasks_launched: int = 0
    updates_sent: int = 0
    calls: dict[str, int] = field(default_factory=dict)
    invalid_calls: int = 0
    frameworks_removed: int = 0
    accept_to_running: list[float] = field(default_factory=list)


def value(obj: Any) -> str:
    if isinstance(obj, dict):
        v = obj.get("value")
        return v if isinstance(v, str) else ""
    return ""


def roles_of(body: Obj) -> list[str] | None:
    roles = body.get("roles")
    return [r for r in roles if isinstance(r, str)] if isinstance(roles, list) and roles else None


def refuse_seconds(filters: Any) -> float | None:
    if not isinstance(filters, dict) or "refuse_seconds" not in filters:
        return None
    try:
        return float(filters["refuse_seconds"])
    except (TypeError, ValueError):
        return None


def grace_seconds(policy: Obj) -> int | None:
    gp = policy.get("grace_period") if isinstance(policy, dict) else None
    if isinstance(gp, dict) and "nanoseconds" in gp:
        try:
            return max(0, int(int(gp["nanoseconds"]) // 1_000_000_000))
        except (TypeError, ValueError):
            return None
    return None


def agent_address(node: Obj) -> str | None:
    """``ip:port`` of a node's agent server (as the API server finds it for exec)."""
    status = node.get("status") or {}
    port = ((status.get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}).get("Port")
    addrs = {a.get("type"): a.get("address") for a in status.get("addresses") or []}
    host = addrs.get("InternalIP") or addrs.get("Hostname")
    if not port or not host:
        return None
    return f"{host}:{port}"


def node_state_of(node: Obj) -> str:
    for c in (node.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return "ready" if c.get("status") == "True" else "unreachable"
    return "unreachable"


def parse_ts(text: Any) -> float | None:
    if not isinstance(text, str) or not text:
        return None
    from corral.util.clock import parse_rfc3339

    try:
        return parse_rfc3339(text)
    except ValueError:
        return None
