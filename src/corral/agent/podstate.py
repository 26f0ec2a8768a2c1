"""A pod's state on its node, and the pure rules the kubelet applies to it.

``PodState`` holds what the agent knows of one pod: its sandbox and, per container, the
current attempt (handle, exit) and the previous attempt's exit. The functions here are
sans-I/O and unit-tested: ``should_restart`` (restartPolicy), ``BackOff`` (the kubelet's
crash-loop back-off), ``pod_phase`` (kubelet's getPhase) and ``pod_status`` (the status
document the agent writes, with ``ephemeralContainerStatuses``: ephemeral containers,
added to a running pod by ``kubectl debug``, count for neither phase nor readiness). ``agent/pods.py`` is the thin shell that awaits.

A container's life, as the status shows it::

    waiting(ContainerCreating | ErrImagePull | CreateContainerConfigError | PodInitializing)
        |  start
        v
    running --exit--> terminated(Completed | Error | OOMKilled)
        ^                 |  restart policy says restart
        |                 v
        +--back-off-- waiting(CrashLoopBackOff)   lastState = terminated

Back-off (as the kubelet's ``flowcontrol.Backoff`` for containers): the first restart is
immediate; later ones wait 10 s, doubling to 5 min; a container that ran 10 min resets it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from corral.util.clock import rfc3339

from .drivers.base import ContainerHandle, ExitInfo, Sandbox

Obj = dict[str, Any]

BACKOFF_INITIAL = 10.0
BACKOFF_MAX = 300.0
BACKOFF_RESET = 600.0

CONTAINER_CREATING = "ContainerCreating"
POD_INITIALIZING = "PodInitializing"
CRASH_LOOP = "CrashLoopBackOff"
ERR_IMAGE_PULL = "ErrImagePull"
IMAGE_PULL_BACKOFF = "ImagePullBackOff"
CONFIG_ERROR = "CreateContainerConfigError"


def should_restart(policy: str, exit_code: int) -> bool:
    """Whether a container that exited with ``exit_code`` is restarted (restartPolicy)."""
    if policy == "Never":
        return False
    if policy == "OnFailure":
        return exit_code != 0
    return True


@dataclass
class BackOff:
    """Crash-loop back-off of one container: ``next_delay`` after each exit."""

    delay: float = 0.0  # the delay before the next restart (0: immediate)

    def after_exit(self, ran_for: float) -> float:
        """The wait before restarting a container that ran ``ran_for`` seconds; advances."""
        if ran_for >= BACKOFF_RESET:
            self.delay = 0.0
        wait = self.delay
        self.delay = BACKOFF_INITIAL if self.delay == 0 else min(self.delay * 2, BACKOFF_MAX)
        return wait


@dataclass
class ContainerState:
    """What the agent knows of one container of a pod."""

    name: str
    init: bool
    attempt: int = -1  # -1: never started; else the current attempt (= restartCount)
    handle: ContainerHandle | None = None
    exit: ExitInfo | None = None  # how the current attempt ended
    last_exit: ExitInfo | None = None  # how the previous attempt ended (lastState)
    last_id: str = ""  # containerID of the previous attempt
    waiting: tuple[str, str] = (CONTAINER_CREATING, "")  # reason, message when not started
    restart_at: float | None = None  # set while waiting out a back-off
    backoff: BackOff = field(default_factory=BackOff)
    ready: bool = False
    started: bool = False  # startup probe passed (or none)
    image_id: str = ""
    done: bool = False  # exited for good (no restart), or never to start (launch failed)
    ephemeral: bool = False  # a spec.ephemeralContainers entry: started once, never restarted

    @property
    def running(self) -> bool:
        return self.handle is not None and self.exit is None

    def restart_count(self) -> int:
        return max(self.attempt, 0)


@dataclass
class PodState:
    """One pod on this node: its sandbox and its containers (init ones first)."""

    uid: str
    namespace: str
    name: str
    containers: dict[str, ContainerState] = field(default_factory=dict)
    sandbox: Sandbox | None = None
    start_time: float | None = None
    terminal: str = ""  # "Succeeded" / "Failed" once decided for good

    def init_states(self) -> list[ContainerState]:
        return [c for c in self.containers.values() if c.init]

    def app_states(self) -> list[ContainerState]:
        return [c for c in self.containers.values() if not c.init and not c.ephemeral]

    def ephemeral_states(self) -> list[ContainerState]:
        return [c for c in self.containers.values() if c.ephemeral]


def add_ephemeral(st: PodState, pod: Obj) -> list[str]:
    """Track the pod's ephemeral containers not known yet (they are only ever added, by
    ``pods/ephemeralcontainers``); their names."""
    added = []
    for c in (pod.get("spec") or {}).get("ephemeralContainers") or []:
        name = c.get("name") if isinstance(c, dict) else None
        if name and name not in st.containers:
            st.containers[name] = ContainerState(name, init=False, ephemeral=True)
            added.append(name)
    return added


def new_pod_state(pod: Obj) -> PodState:
    meta = pod["metadata"]
    spec = pod.get("spec") or {}
    st = PodState(meta.get("uid", ""), meta.get("namespace") or "default", meta["name"])
    for c in spec.get("initContainers") or []:
        st.containers[c["name"]] = ContainerState(c["name"], init=True, waiting=("", ""))
    for c in spec.get("containers") or []:
        waiting = (POD_INITIALIZING if spec.get("initContainers") else CONTAINER_CREATING, "")
        st.containers[c["name"]] = ContainerState(c["name"], init=False, waiting=waiting)
    add_ephemeral(st, pod)
    return st


def init_done(st: PodState) -> bool:
    return all(c.exit is not None and c.exit.exit_code == 0 for c in st.init_states())


def pod_phase(pod: Obj, st: PodState) -> str:
    """The kubelet's ``getPhase`` over the agent's view of the containers."""
    if st.terminal:
        return st.terminal
    policy = (pod.get("spec") or {}).get("restartPolicy") or "Always"
    for c in st.init_states():
        if c.done and (c.exit is None or c.exit.exit_code != 0):
            return "Failed"  # an init container failed (or never started) for good
    if not init_done(st):
        return "Pending"
    running = waiting = stopped = succeeded = 0
    for c in st.app_states():
        if c.running:
            running += 1
        elif c.exit is not None:
            stopped += 1
            succeeded += c.exit.exit_code == 0
        elif c.last_exit is not None:
            stopped += 1  # waiting with a last termination (crash loop)
            succeeded += c.last_exit.exit_code == 0
        elif c.done:
            stopped += 1  # given up before it ever ran (a Mesos task's launch failure)
        else:
            waiting += 1
    if waiting:
        return "Pending"
    if running:
        return "Running"
    if stopped:
        if policy == "Always":
            return "Running"
        if stopped == succeeded:
            return "Succeeded"
        if policy == "OnFailure":
            return "Running"
        return "Failed"
    return "Pending"


def _terminated(info: ExitInfo, cid: str) -> Obj:
    out: Obj = {
        "exitCode": info.exit_code,
        "reason": info.reason,
        "startedAt": rfc3339(info.started_at),
        "finishedAt": rfc3339(info.finished_at),
        "containerID": cid,
    }
    if info.signal:
        out["signal"] = info.signal
    if info.message:
        out["message"] = info.message
    return out


def container_id(driver: str, handle: ContainerHandle | None) -> str:
    return f"{driver}://{handle.id}" if handle is not None else ""


def container_status(spec: Obj, c: ContainerState, driver: str) -> Obj:
    cid = container_id(driver, c.handle)
    state: Obj
    if c.running and c.handle is not None:
        state = {"running": {"startedAt": rfc3339(c.handle.started_at)}}
    elif c.exit is not None and (c.done or c.restart_at is None):
        state = {"terminated": _terminated(c.exit, cid)}
    else:
        reason, message = c.waiting
        w: Obj = {"reason": reason or CONTAINER_CREATING}
        if message:
            w["message"] = message
        state = {"waiting": w}
    last: Obj = {}
    if c.exit is not None and "waiting" in state:
        last = {"terminated": _terminated(c.exit, cid)}
    elif c.last_exit is not None:
        last = {"terminated": _terminated(c.last_exit, c.last_id)}
    out: Obj = {
        "name": c.name,
        "image": spec.get("image", ""),
        "imageID": c.image_id,
        "ready": c.ready and c.running,
        "restartCount": c.restart_count(),
        "started": c.started and c.running,
        "state": state,
        "lastState": last,
    }
    if cid:
        out["containerID"] = cid
    return out


def ephemeral_status(spec: Obj, c: ContainerState, driver: str) -> Obj:
    """An ephemeral container's status: never ready (it has no probes), never restarted;
    once it exited it stays terminated."""
    out = container_status(spec, c, driver)
    out["ready"] = False
    if c.exit is not None and c.handle is not None:
        out["state"] = {"terminated": _terminated(c.exit, container_id(driver, c.handle))}
        out["lastState"] = {}
    return out


def _condition(old: dict[str, Obj], type_: str, ok: bool, reason: str, msg: str, now: str) -> Obj:
    status = "True" if ok else "False"
    was = old.get(type_)
    since = was.get("lastTransitionTime") if was and was.get("status") == status else None
    c: Obj = {"type": type_, "status": status, "lastProbeTime": None}
    c["lastTransitionTime"] = since or now
    if not ok and reason:
        c["reason"] = reason
        if msg:
            c["message"] = msg
    return c


def pod_status(pod: Obj, st: PodState, driver: str, host_ip: str, now: float) -> Obj:
    """The pod's status document as the kubelet would write it now."""
    spec = pod.get("spec") or {}
    old = pod.get("status") or {}
    at = rfc3339(now)
    phase = pod_phase(pod, st)
    by_name = {c["name"]: c for c in (spec.get("initContainers") or [])}
    by_name.update({c["name"]: c for c in (spec.get("containers") or [])})
    by_name.update({c["name"]: c for c in (spec.get("ephemeralContainers") or [])})
    inits = [container_status(by_name[c.name], c, driver) for c in st.init_states()]
    apps = [container_status(by_name[c.name], c, driver) for c in st.app_states()]
    ephemerals = [
        ephemeral_status(by_name.get(c.name) or {}, c, driver) for c in st.ephemeral_states()
    ]
    prior = {c.get("type"): c for c in old.get("conditions") or []}
    incomplete = [c.name for c in st.init_states() if not (c.exit and c.exit.exit_code == 0)]
    unready = [c["name"] for c in apps if not c["ready"]]
    terminal = phase in ("Succeeded", "Failed")
    # as the kubelet's status/generate.go: a finished pod is not ready "PodCompleted"
    # (Succeeded) or "PodFailed"; it counts as initialized once it succeeded or any app
    # container ever started, so a pod failed by an init container stays uninitialized
    # (which kubectl shows as Init:Error)
    why = {"Succeeded": "PodCompleted", "Failed": "PodFailed"}.get(phase, "ContainersNotReady")
    unready_msg = f"containers with unready status: [{' '.join(unready)}]"
    app_started = any(c.attempt >= 0 for c in st.app_states())
    initialized = not incomplete or phase == "Succeeded" or app_started
    conds = [
        _condition(prior, "PodReadyToStartContainers", st.sandbox is not None and not terminal,
                   "", "", at),
        _condition(prior, "Initialized", initialized, "ContainersNotInitialized",
                   f"containers with incomplete status: [{' '.join(incomplete)}]", at),
        _condition(prior, "Ready", not unready, why, "" if terminal else unready_msg, at),
        _condition(prior, "ContainersReady", not unready, why, "" if terminal else unready_msg,
                   at),
    ]  # fmt: skip
    scheduled = prior.get("PodScheduled") or {
        "type": "PodScheduled",
        "status": "True",
        "lastProbeTime": None,
        "lastTransitionTime": at,
    }
    known = {"PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled"}
    others = [c for t, c in prior.items() if t not in known]
    out: Obj = {
        "phase": phase,
        "conditions": [*conds, scheduled, *others],
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}],
        "startTime": old.get("startTime") or rfc3339(st.start_time or now),
        "containerStatuses": apps,
    }
    if st.sandbox is not None and st.sandbox.ip:
        out["podIP"] = st.sandbox.ip
        out["podIPs"] = [{"ip": st.sandbox.ip}]
    elif old.get("podIP"):
        out["podIP"] = old["podIP"]
        out["podIPs"] = old.get("podIPs") or [{"ip": old["podIP"]}]
    if inits:
        out["initContainerStatuses"] = inits
    if ephemerals:
        out["ephemeralContainerStatuses"] = ephemerals
    if old.get("qosClass"):
        out["qosClass"] = old["qosClass"]
    return out
