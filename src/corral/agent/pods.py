"""The pod worker: one per pod bound to this node, it makes the pod's containers real.

``NodeAgent`` (``agent/kubelet.py``) creates a ``PodWorker`` for each pod its watch
delivers and calls ``update`` / ``deleted``; the worker's ``run`` loop wakes on those, on
a container exit, and on its own timers (back-off, probes, volume refresh), and each time
brings the pod one ``sync`` closer to its spec, as the kubelet's pod workers do:

1. deleted (deletionTimestamp set or gone): stop the containers (SIGTERM, the grace
   period, SIGKILL), write the final status, delete the pod for good (grace 0), clean up;
2. sandbox (``Driver.create_sandbox``) and volumes (``VolumeManager.setup``); for a
   Mesos task pod also its Mesos sandbox directory, with the task's URIs fetched into it
   (``mesos_task.py``, ``mesos_fetch.py``);
3. init containers one at a time, each to a zero exit, then the app containers together;
   an exited container restarts by ``restartPolicy`` after the crash-loop back-off;
   ephemeral containers (``kubectl debug``) start once each, in the target container's
   PID namespace when they name one, and are never restarted;
4. probes (startup gates liveness and readiness; a liveness failure kills the container);
5. the status document (``podstate.pod_status``), written only when it changed.

The decisions (phase, back-off, restart) are the pure functions of ``podstate``; this
module only awaits the driver, the image store and the API. Events are recorded as the
kubelet words them (Pulling, Pulled, Created, Started, Killing, BackOff, Unhealthy,
Failed, FailedMount).

A Mesos task pod that runs a custom executor (``mesos_executor.py``) is attached to the
node's executor API before its container starts (which adds ``MESOS_AGENT_ENDPOINT`` and
the rest of the executor's environment); its deletion first sends KILL and SHUTDOWN on
the executor's stream (``MesosExecutors.terminate``), and its exit ends that stream.

A Mesos task that cannot be launched (its URIs cannot be fetched, or the driver cannot
create its container) fails for good when its ``restartPolicy`` is ``Never``, as every
task pod's is: the pod turns ``Failed`` with the container still waiting, reason
``CreateContainerError`` and the cause as its message (the master reports TASK_FAILED,
REASON_CONTAINER_LAUNCH_FAILED). With another policy the launch is retried with back-off.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from corral.api.errors import StatusError
from corral.api.quantity import parse_quantity
from corral.client.events import EventRecorder
from corral.client.rest import PODS, STRATEGIC_MERGE, Client
from corral.util.clock import Clock

from . import securitycontext
from .claims import ClaimError, ClaimLookup
from .dns import host_resolv_conf, pod_resolv_conf
from .drivers.base import (
    CREATE_CONTAINER_ERROR,
    ContainerHandle,
    ContainerSpec,
    Driver,
    ExitInfo,
    ImageInfo,
    Limits,
    SandboxSpec,
    StartError,
)
from .env import ConfigError, ObjectLookup, container_env, resolve_argv
from .images import ImagePullError, ImageStore
from .mesos_executor import Executor, MesosExecutors, executor_env, is_custom_executor_pod
from .mesos_fetch import FetchError
from .mesos_task import (
    FETCHED_MARKER,
    MesosTask,
    container_sandbox,
    prepare_sandbox_in_thread,
    remove_sandbox,
    sandboxes_dir,
    task_env,
    task_mounts,
    task_of,
)
from .objects import VolumeError
from .podstate import (
    CONFIG_ERROR,
    CRASH_LOOP,
    ERR_IMAGE_PULL,
    IMAGE_PULL_BACKOFF,
    BackOff,
    ContainerState,
    PodState,
    add_ephemeral,
    init_done,
    new_pod_state,
    pod_phase,
    pod_status,
    should_restart,
)
from .probes import ProbeError, ProbeResult, ProbeTracker, run_probe
from .sa_token import TokenManager
from .volumes import VolumeManager

log = logging.getLogger("corral.agent.pods")

Obj = dict[str, Any]

CONFIG_RETRY = 2.0  # a missing ConfigMap/Secret is looked for again this often
VOLUME_REFRESH = 10.0  # configMap/secret volumes are re-read this often
PULL_BACKOFF_SHOW = 1.0  # ErrImagePull turns into ImagePullBackOff after this long
#: a volume that failed to set up is tried again after 0.5 s, doubling up to 2 min 2 s (the
#: kubelet's volume manager: goroutinemap/exponentialbackoff), not on the crash-loop scale
VOLUME_RETRY_FIRST, VOLUME_RETRY_MAX = 0.5, 122.0


def volume_retry_after(last: float) -> float:
    """The wait before setting up a pod's volumes again, ``last`` the previous wait (0:
    this is the first failure)."""
    return min(last * 2 or VOLUME_RETRY_FIRST, VOLUME_RETRY_MAX)


@dataclass
class NodeContext:
    """What every pod worker of one agent shares."""

    client: Client
    driver: Driver
    images: ImageStore | None
    recorder: EventRecorder
    lookup: ObjectLookup
    node_name: str
    host_ip: str
    pods_dir: Path
    clock: Clock
    allocatable: dict[str, str] = field(default_factory=dict)
    is_root: bool = False
    pids_limit: int | None = None
    #: the cluster's Services (for the service environment variables)
    services: Callable[[], Sequence[Obj]] = lambda: ()
    cluster_dns: tuple[str, ...] = ()  # --cluster-dns: the pods' nameservers
    cluster_domain: str = "cluster.local"
    #: where Mesos task sandboxes live (None: ``<pods_dir>/../mesos/sandboxes``)
    mesos_sandboxes: Path | None = None
    #: where persistentVolumeClaim volumes are resolved (None: such volumes are refused)
    claims: ClaimLookup | None = None
    #: the Mesos executor API of this node (None: custom executors get no endpoint)
    executors: MesosExecutors | None = None
    #: where Localhost seccomp profiles live (``DATA/seccomp``; None: refused)
    seccomp_root: Path | None = None
    #: containers without a seccompProfile get RuntimeDefault (``--seccomp-default``)
    seccomp_default: bool = False
    #: the pods' service-account tokens (None: projected token sources are skipped)
    tokens: TokenManager | None = None
    #: how often configMap, secret and projected volumes are re-read (seconds)
    volume_refresh: float = VOLUME_REFRESH


def host_ports(pod: Obj) -> tuple[tuple[int, int, str, str], ...]:
    """The pod's hostPorts: (hostPort, containerPort, protocol, hostIP), as the sandbox's
    port mappings (hostNetwork pods have none: they bind the host's ports themselves)."""
    spec = pod.get("spec") or {}
    if spec.get("hostNetwork"):
        return ()
    out = []
    for c in spec.get("containers") or []:
        for p in c.get("ports") or []:
            if p.get("hostPort"):
                out.append(
                    (
                        int(p["hostPort"]),
                        int(p["containerPort"]),
                        str(p.get("protocol") or "TCP"),
                        str(p.get("hostIP") or ""),
                    )
                )
    return tuple(out)


def _pod_ref(pod: Obj) -> Obj:
    """The pod as an Event's involvedObject (informer items carry no kind)."""
    return {"apiVersion": "v1", "kind": "Pod", "metadata": pod["metadata"]}


def _cpu_millis(q: Any) -> int:
    return int(parse_quantity(str(q)) * 1000)


def container_limits(container: Obj, pids: int | None) -> Limits:
    """Limits as the kubelet derives them: memory and CPU limits, shares from requests."""
    res = container.get("resources") or {}
    lim, req = res.get("limits") or {}, res.get("requests") or {}
    memory = int(parse_quantity(str(lim["memory"]))) if "memory" in lim else None
    cpu = _cpu_millis(lim["cpu"]) if "cpu" in lim else None
    req_cpu = req.get("cpu", lim.get("cpu"))
    shares = max(2, _cpu_millis(req_cpu) * 1024 // 1000) if req_cpu is not None else 2
    return Limits(memory_bytes=memory, cpu_millis=cpu, cpu_shares=shares, pids=pids)


def _security(pod: Obj, container: Obj) -> Obj:
    """The container's effective securityContext (``securitycontext.effective``)."""
    return securitycontext.effective(pod, container)


class PodWorker:
    """Runs one pod; ``run`` returns once the pod is deleted and cleaned up."""

    def __init__(self, ctx: NodeContext, pod: Obj) -> None:
        self.ctx = ctx
        self.pod = pod
        self.st: PodState = new_pod_state(pod)
        self.uid = self.st.uid
        self.dir = ctx.pods_dir / self.uid
        self.wake = asyncio.Event()
        self.gone = False
        self.finished = asyncio.Event()
        self.volumes = VolumeManager(
            self.dir, ctx.lookup, ctx.is_root, claims=ctx.claims, tokens=ctx.tokens
        )
        self.paths: dict[str, Path] | None = None
        self._volume_retry = 0.0
        self._sandbox_retry = 0.0
        self._sandbox_backoff = BackOff()
        self._volume_delay = 0.0  # the last wait after a volume failed (VOLUME_RETRY_*)
        self._refresh_at = 0.0
        sandboxes = ctx.mesos_sandboxes or sandboxes_dir(ctx.pods_dir.parent)
        self.task: MesosTask | None = task_of(pod, sandboxes)
        self._custom = self.task is not None and is_custom_executor_pod(pod)
        self.executor: Executor | None = None  # once attached to ``ctx.executors``
        self._fetched = False
        self._fetch_retry = 0.0
        self._fetch_backoff = BackOff()
        self._waits: dict[str, asyncio.Task[None]] = {}
        self._old: dict[str, list[ContainerHandle]] = {}  # earlier attempts, for cleanup
        self._written: Obj | None = None
        self._probes: dict[tuple[str, str], ProbeTracker] = {}
        self._pull_failed: dict[str, float] = {}
        self._pull_backoff: dict[str, BackOff] = {}
        phase = (pod.get("status") or {}).get("phase")
        if phase in ("Succeeded", "Failed"):
            self.st.terminal = phase  # a finished pod is never run again
            self._written = pod.get("status")

    # --- the API of the agent --------------------------------------------------------------
    def update(self, pod: Obj) -> None:
        self.pod = pod
        add_ephemeral(self.st, pod)  # (``kubectl debug`` added one: started by ``sync``)
        self.wake.set()

    def deleted(self) -> None:
        self.gone = True
        self.wake.set()

    def adopt(
        self, sandbox: Any, containers: list[tuple[ContainerHandle, ExitInfo | None]]
    ) -> None:
        """Take over what the driver recovered for this pod after an agent restart."""
        self.st.sandbox = sandbox
        by_name: dict[str, list[tuple[ContainerHandle, ExitInfo | None]]] = {}
        for h, e in containers:
            by_name.setdefault(h.name, []).append((h, e))
        for name, found in by_name.items():
            c = self.st.containers.get(name)
            if c is None:
                continue
            found.sort(key=lambda he: he[0].attempt)
            handle, exit_ = found[-1]
            c.attempt, c.handle, c.exit = handle.attempt, handle, exit_
            c.image_id = str(handle.data.get("image_id", ""))
            if len(found) > 1:
                prev, prev_exit = found[-2]
                c.last_exit, c.last_id = prev_exit, f"{self.ctx.driver.name}://{prev.id}"
            self._old[name] = [h for h, _ in found[:-1]]
            spec = self._spec(name)
            c.started = "startupProbe" not in spec
            c.ready = "readinessProbe" not in spec
            self._arm_probes(c, spec)
            if exit_ is None:
                self._resume_probed_state(c, handle)
                self._watch(c, handle)
        if self.st.start_time is None and containers:
            self.st.start_time = min(h.started_at for h, _ in containers)

    def _resume_probed_state(self, c: ContainerState, handle: ContainerHandle) -> None:
        """A running container taken over after an agent restart keeps the ``started`` and
        ``ready`` the last agent reported for it (same containerID), as upstream's
        KEP-4781: its probes run again at once, and only their verdicts (thresholds
        included) change it, so a restart alone never turns a Ready pod unready (nor an
        unready one Ready)."""
        cid = f"{self.ctx.driver.name}://{handle.id}"
        for cs in (self.pod.get("status") or {}).get("containerStatuses") or []:
            if cs.get("name") != c.name or cs.get("containerID") != cid:
                continue
            if "running" not in (cs.get("state") or {}):
                return
            c.started = bool(cs.get("started", c.started))
            c.ready = c.started and bool(cs.get("ready"))
            readiness = self._probes.get((c.name, "readiness"))
            if readiness is not None:
                readiness.result = ProbeResult.SUCCESS if c.ready else ProbeResult.FAILURE
            return

    # --- the loop ----------------------------------------------------------------------------
    async def run(self) -> None:
        retry = BackOff()
        while True:
            self.wake.clear()
            try:
                if await self.sync():
                    break
                retry = BackOff()
                due = self._next_due()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("pod %s/%s: sync failed", self.st.namespace, self.st.name)
                due = self.ctx.clock.now() + max(1.0, retry.after_exit(0))
            delay = max(0.0, due - self.ctx.clock.now())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self.wake.wait()
        self.finished.set()

    def _next_due(self) -> float:
        now = self.ctx.clock.now()
        dues = [now + 3600.0]
        if self.st.terminal:
            return dues[0]
        if self.st.sandbox is None:
            dues.append(self._sandbox_retry)
        if self.task is not None and not self._fetched:
            dues.append(self._fetch_retry)
        if self.paths is None:
            dues.append(self._volume_retry)
        else:
            dues.append(self._refresh_at)
        for c in self.st.containers.values():
            if c.restart_at is not None:
                dues.append(c.restart_at)
            failed = self._pull_failed.get(c.name)
            if failed is not None and c.waiting[0] == ERR_IMAGE_PULL:
                dues.append(failed + PULL_BACKOFF_SHOW)
        for (name, _), tracker in self._probes.items():
            c = self.st.containers[name]
            if c.running and c.handle is not None and not tracker.on_hold:
                dues.append(tracker.next_due(c.handle.started_at))
        return min(dues)

    # --- one step --------------------------------------------------------------------------------
    async def sync(self) -> bool:
        """Bring the pod one step closer to its spec; True once it is deleted and gone."""
        pod, now = self.pod, self.ctx.clock.now()
        if self.gone or pod["metadata"].get("deletionTimestamp"):
            await self._terminate()
            return True
        if self.st.terminal:
            return False
        if self.st.start_time is None:
            self.st.start_time = now
        if not await self._prepare(now):
            await self._write_status()
            return False
        policy = (pod.get("spec") or {}).get("restartPolicy") or "Always"
        if not init_done(self.st):
            await self._step_init(policy, now)
        if init_done(self.st):
            for c in self.st.app_states():
                await self._step_container(c, policy, now)
            for c in self.st.ephemeral_states():
                await self._step_ephemeral(c, now)
        await self._run_probes(now)
        phase = pod_phase(pod, self.st)
        if phase in ("Succeeded", "Failed") and not any(
            c.running for c in self.st.containers.values()
        ):
            self.st.terminal = phase
        await self._write_status()
        return False

    async def _prepare(self, now: float) -> bool:
        """Sandbox and volumes; False (with the reason recorded) while they are not ready."""
        pod = self.pod
        if self.paths is None:
            if now < self._volume_retry:
                return False
            try:
                self.paths = await self.volumes.setup(pod)
                self._refresh_at = now + self.ctx.volume_refresh
            except ConfigError as e:
                if isinstance(e, VolumeError):
                    msg = e.event_message
                else:
                    msg = f'MountVolume.SetUp failed for volume "" : {e}'
                await self._event("Warning", "FailedMount", msg)
                if isinstance(e, ClaimError):  # waits for a binding: look again soon
                    self._volume_retry = now + CONFIG_RETRY
                else:
                    self._volume_delay = volume_retry_after(self._volume_delay)
                    self._volume_retry = now + self._volume_delay
                return False
        elif now >= self._refresh_at:
            self._refresh_at = now + self.ctx.volume_refresh
            try:
                await self.volumes.refresh(pod)
            except ConfigError as e:
                log.info("pod %s: volume refresh: %s", self.st.name, e)
        if self.st.sandbox is None:
            if now < self._sandbox_retry:
                return False
            spec = pod.get("spec") or {}
            sandbox_spec = SandboxSpec(
                pod_uid=self.uid,
                namespace=self.st.namespace,
                name=self.st.name,
                hostname=str(spec.get("hostname") or self.st.name)[:63],
                dir=self.dir,
                host_network=bool(spec.get("hostNetwork")),
                resolv_conf=pod_resolv_conf(
                    pod, self.ctx.cluster_dns, self.ctx.cluster_domain, host_resolv_conf()
                ),
                port_mappings=host_ports(pod),
            )
            try:
                self.st.sandbox = await self.ctx.driver.create_sandbox(sandbox_spec)
            except StartError as e:
                await self._event(
                    "Warning", "FailedCreatePodSandBox", f"Failed to create pod sandbox: {e}"
                )
                # the pod waits in ContainerCreating; the sandbox is tried again
                self._sandbox_retry = now + max(2.0, self._sandbox_backoff.after_exit(0))
                return False
        if self.task is not None and not self._fetched and not await self._fetch(self.task, now):
            return False
        if self._custom and self.executor is None and self.ctx.executors is not None:
            spec = pod.get("spec") or {}
            assert self.st.sandbox is not None
            ip = self.st.sandbox.ip
            host_net = bool(spec.get("hostNetwork")) or ip == self.ctx.host_ip
            self.executor = await self.ctx.executors.attach(pod, ip, host_net)
        return True

    # --- Mesos tasks ---------------------------------------------------------------------------
    async def _fetch(self, task: MesosTask, now: float) -> bool:
        """Make the task's sandbox and fetch its URIs into it, once (an agent restart finds
        the marker, or the containers already started); False while that is not done."""
        marker = self.dir / FETCHED_MARKER
        if marker.exists() or any(c.attempt >= 0 for c in self.st.containers.values()):
            self._fetched = True
            return True
        if now < self._fetch_retry:
            return False
        containers = (self.pod.get("spec") or {}).get("containers") or [{}]
        sec = _security(self.pod, containers[0])  # the task's user owns its sandbox
        owner = (sec["runAsUser"], sec["runAsGroup"]) if self.ctx.is_root else (None, None)
        t0 = time.monotonic()
        try:
            count = await prepare_sandbox_in_thread(task, *owner)
        except FetchError as e:
            await self._launch_failed(f"failed to fetch the task's URIs: {e.message}")
            self._fetch_retry = now + max(1.0, self._fetch_backoff.after_exit(0))
            return False
        log.info(
            "pod %s/%s: task %s: %d URIs fetched into %s in %.3fs",
            self.st.namespace, self.st.name, task.task_id, count, task.sandbox,
            time.monotonic() - t0,
        )  # fmt: skip
        self.dir.mkdir(parents=True, exist_ok=True)
        marker.touch()
        self._fetched = True
        return True

    async def _launch_failed(self, message: str) -> None:
        """No container of this task pod could start: each waits with ``message``; with
        restartPolicy Never the pod fails for good (Mesos: TASK_FAILED, launch failed)."""
        never = (self.pod.get("spec") or {}).get("restartPolicy") == "Never"
        for c in self.st.containers.values():
            if c.attempt < 0:
                c.waiting = (CREATE_CONTAINER_ERROR, message)
                c.done = c.done or never
        await self._event("Warning", "Failed", f"Error: {message}")
        if never and not any(c.running for c in self.st.containers.values()):
            self.st.terminal = "Failed"

    async def _step_init(self, policy: str, now: float) -> None:
        for c in self.st.init_states():
            if c.exit is not None and c.exit.exit_code == 0:
                continue
            if c.running or c.done:
                return
            if c.exit is not None:  # failed
                if policy == "Never":
                    c.done = True
                    return
                if not await self._backoff_due(c, now):
                    return
            elif c.restart_at is not None and now < c.restart_at:
                return
            await self._start(c)
            return

    async def _step_container(self, c: ContainerState, policy: str, now: float) -> None:
        if c.running or c.done:
            return
        if c.exit is not None:
            if not should_restart(policy, c.exit.exit_code):
                c.done = True
                return
            if not await self._backoff_due(c, now):
                return
        elif c.restart_at is not None and now < c.restart_at:
            failed = self._pull_failed.get(c.name)
            pulling = failed is not None and c.waiting[0] == ERR_IMAGE_PULL
            if pulling and failed is not None and now >= failed + PULL_BACKOFF_SHOW:
                image = self._spec(c.name).get("image", "")
                c.waiting = (IMAGE_PULL_BACKOFF, f'Back-off pulling image "{image}"')
                await self._event("Normal", "BackOff", f'Back-off pulling image "{image}"', c)
            return
        await self._start(c)

    async def _step_ephemeral(self, c: ContainerState, now: float) -> None:
        """An ephemeral container starts once, in the running pod, and is never
        restarted (a failed start is retried, as a failed pull is, until it runs)."""
        if c.running or c.done:
            return
        if c.exit is not None:
            c.done = True
            return
        if c.restart_at is not None and now < c.restart_at:
            return
        await self._start(c)

    async def _backoff_due(self, c: ContainerState, now: float) -> bool:
        """For an exited container that will restart: True when its back-off is over."""
        assert c.exit is not None
        if c.restart_at is None:
            wait = c.backoff.after_exit(c.exit.finished_at - c.exit.started_at)
            c.restart_at = c.exit.finished_at + wait
            if c.restart_at > now:
                msg = (
                    f"back-off {int(wait)}s restarting failed container={c.name} "
                    f"pod={self.st.name}_{self.st.namespace}({self.uid})"
                )
                c.waiting = (CRASH_LOOP, msg)
                await self._event(
                    "Warning",
                    "BackOff",
                    f"Back-off restarting failed container {c.name} in pod "
                    f"{self.st.name}_{self.st.namespace}({self.uid})",
                    c,
                )
        return now >= c.restart_at

    # --- starting a container --------------------------------------------------------------------
    def _spec(self, name: str) -> Obj:
        spec = self.pod.get("spec") or {}
        every = [
            *(spec.get("initContainers") or []),
            *(spec.get("containers") or []),
            *(spec.get("ephemeralContainers") or []),
        ]
        for c in every:
            if c.get("name") == name:
                return dict(c)
        return {}

    async def _image(self, c: ContainerState, spec: Obj) -> ImageInfo | None:
        """The container's image (pulled per imagePullPolicy) or None (process driver)."""
        images, ref = self.ctx.images, str(spec.get("image") or "")
        if images is None or (self.task is not None and self.task.host_command):
            return None  # (a host-command task runs on the host's filesystem)
        if self.ctx.driver.name == "process":
            return images.lookup(ref)  # only for the image's default command, if present
        policy = spec.get("imagePullPolicy") or "IfNotPresent"
        present = images.lookup(ref)
        if present is not None and policy != "Always":
            await self._event(
                "Normal", "Pulled", f'Container image "{ref}" already present on machine', c
            )
            return present
        await self._event("Normal", "Pulling", f'Pulling image "{ref}"', c)
        t0 = time.monotonic()
        info = await images.ensure(ref, policy)
        took = time.monotonic() - t0
        await self._event(
            "Normal", "Pulled", f'Successfully pulled image "{ref}" in {took:.3f}s', c
        )
        return info

    async def _start(self, c: ContainerState) -> None:
        ctx, pod, now = self.ctx, self.pod, self.ctx.clock.now()
        spec = self._spec(c.name)
        sandbox = self.st.sandbox
        assert sandbox is not None and self.paths is not None
        try:
            image = await self._image(c, spec)
        except ImagePullError as e:
            image_ref = spec.get("image", "")
            await self._event("Warning", "Failed", f'Failed to pull image "{image_ref}": {e}', c)
            await self._event("Warning", "Failed", f"Error: {e.reason}", c)
            c.waiting = (e.reason, str(e))
            self._pull_failed[c.name] = now
            backoff = self._pull_backoff.setdefault(c.name, BackOff())
            c.restart_at = now + max(backoff.after_exit(0), 10.0 if backoff.delay > 10 else 0.0)
            if c.restart_at <= now:
                c.restart_at = now + 10.0
            return
        self._pull_failed.pop(c.name, None)
        self._pull_backoff.pop(c.name, None)
        task = self.task
        try:
            env = await container_env(
                pod,
                spec,
                ctx.lookup,
                pod_ip=sandbox.ip,
                host_ip=ctx.host_ip,
                node_name=ctx.node_name,
                image_env=(image.config.get("Env") if image else None),
                node_allocatable=ctx.allocatable,
                hostname=str((pod.get("spec") or {}).get("hostname") or self.st.name)[:63],
                services=ctx.services(),
            )
            if task is not None:
                own = [str(e.get("name")) for e in spec.get("env") or []]
                task_env(task, ctx.driver.name, env, own)
                if self.executor is not None:
                    executor_env(self.executor, ctx.node_name, env, own)
            argv = resolve_argv(spec, image.config if image else None, env)
            pid_namespace = self._target_pid_namespace(spec) if c.ephemeral else None
            mounts = self.volumes.mounts(pod, spec, self.paths)
            if task is not None:  # the sandbox first: volumes may lie inside it
                mounts = (*task_mounts(task, ctx.driver.name), *mounts)
            sec = _security(pod, spec)
            securitycontext.verify_run_as_non_root(pod, spec, sec, image)
        except ConfigError as e:
            c.waiting = (CONFIG_ERROR, str(e))
            c.restart_at = now + CONFIG_RETRY
            await self._event("Warning", "Failed", f"Error: {e}", c)
            return
        caps = sec["capabilities"]
        attempt = c.attempt + 1
        workdir = spec.get("workingDir")
        if not workdir and task is not None:  # a Mesos task runs in its sandbox
            workdir = container_sandbox(task, ctx.driver.name)
        if not workdir and image is not None:
            workdir = image.config.get("WorkingDir")
        stdio = None
        if task is not None:  # Mesos' sandbox files, beside the CRI log
            stdio = (str(task.sandbox / "stdout"), str(task.sandbox / "stderr"))
        cspec = ContainerSpec(
            pod_uid=self.uid,
            namespace=self.st.namespace,
            pod_name=self.st.name,
            name=c.name,
            attempt=attempt,
            argv=argv,
            env=env,
            log_path=self.dir / "logs" / c.name / f"{attempt}.log",
            working_dir=workdir or None,
            image=image,
            mounts=mounts,
            limits=container_limits(spec, ctx.pids_limit),
            run_as_user=sec["runAsUser"],
            run_as_group=sec["runAsGroup"],
            capabilities_add=tuple(caps.get("add") or ()),
            capabilities_drop=tuple(caps.get("drop") or ()),
            privileged=sec["privileged"],
            read_only_root=sec["readOnlyRootFilesystem"],
            stdin=bool(spec.get("stdin")),
            stdin_once=bool(spec.get("stdinOnce")),
            tty=bool(spec.get("tty")),
            pid_namespace=pid_namespace,
            host_rootfs=task is not None and task.host_command,
            stdio_files=stdio,
        )
        try:  # the user from the image's passwd, a Localhost seccomp profile: StartErrors
            hardening = securitycontext.hardening(
                sec, image, seccomp_root=ctx.seccomp_root, seccomp_default=ctx.seccomp_default
            )
            cspec = dataclasses.replace(cspec, **hardening)
            handle = await ctx.driver.start(sandbox, cspec)
        except StartError as e:
            c.waiting = (e.reason, e.message)
            await self._event("Warning", "Failed", f"Error: {e.message}", c)
            c.restart_at = now + max(c.backoff.after_exit(0), 1.0)
            if task is not None and (pod.get("spec") or {}).get("restartPolicy") == "Never":
                c.done = True  # a task's launch failed: not retried (pod_phase: Failed)
            return
        if c.handle is not None:  # keep the previous attempt (for --previous), drop older
            old = self._old.setdefault(c.name, [])
            old.append(c.handle)
            while len(old) > 1:
                stale = old.pop(0)
                with contextlib.suppress(Exception):
                    await ctx.driver.remove(stale)
            c.last_exit = c.exit
            c.last_id = f"{ctx.driver.name}://{c.handle.id}"
        c.handle, c.exit, c.attempt = handle, None, attempt
        if self.executor is not None and ctx.executors is not None and not c.init:
            ctx.executors.started(self.uid)
        c.restart_at, c.waiting = None, ("", "")
        c.image_id = image.digest if image is not None else ""
        c.started = "startupProbe" not in spec
        c.ready = "readinessProbe" not in spec
        self._arm_probes(c, spec)
        self._watch(c, handle)
        await self._event("Normal", "Created", f"Created container {c.name}", c)
        await self._event("Normal", "Started", f"Started container {c.name}", c)

    def _target_pid_namespace(self, spec: Obj) -> str | None:
        """An ephemeral container's ``targetContainerName``'s PID namespace, shared so the
        debugger sees the target's processes (None: no target). A target that is not
        running is a ``ConfigError`` (retried, as the kubelet's ``CreateContainerConfigError``),
        never a debugger in a PID namespace of its own."""
        name = str(spec.get("targetContainerName") or "")
        if not name:
            return None
        target = self.st.containers.get(name)
        if target is None or not target.running or target.handle is None:
            raise ConfigError(f"unable to find target container {name}")
        return f"/proc/{target.handle.pid}/ns/pid"

    def _watch(self, c: ContainerState, handle: ContainerHandle) -> None:
        old = self._waits.pop(c.name, None)
        if old is not None:
            old.cancel()
        self._waits[c.name] = asyncio.create_task(self._await_exit(c, handle))

    async def _await_exit(self, c: ContainerState, handle: ContainerHandle) -> None:
        try:
            info = await self.ctx.driver.wait(handle)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            log.warning("pod %s: waiting for %s failed: %s", self.st.name, c.name, e)
            return
        if c.handle is handle:
            c.exit, c.ready = info, False
            self.wake.set()
            executors = self.ctx.executors
            idle = not any(a.running for a in self.st.app_states())
            if self.executor is not None and executors is not None and idle:
                executors.exited(self.uid)  # its stream ends with it

    # --- probes ----------------------------------------------------------------------------------
    def _arm_probes(self, c: ContainerState, spec: Obj) -> None:
        for kind in ("startup", "liveness", "readiness"):
            probe = spec.get(f"{kind}Probe")
            if probe:
                self._probes[(c.name, kind)] = ProbeTracker(probe, kind)
            else:
                self._probes.pop((c.name, kind), None)

    async def _run_probes(self, now: float) -> None:
        due: list[tuple[ContainerState, str, ProbeTracker]] = []
        for (name, kind), tracker in self._probes.items():
            c = self.st.containers[name]
            if not c.running or c.handle is None or tracker.on_hold:
                continue
            if kind != "startup" and not c.started:
                continue
            if kind == "startup" and c.started:
                continue
            if tracker.next_due(c.handle.started_at) <= now:
                due.append((c, kind, tracker))
        if due:
            results = await asyncio.gather(
                *(self._probe(c, kind, t) for c, kind, t in due), return_exceptions=True
            )
            for (c, kind, tracker), res in zip(due, results, strict=True):
                if isinstance(res, ProbeError):  # not attempted: the result is discarded
                    label = kind.capitalize()
                    await self._event(
                        "Warning",
                        "Unhealthy",
                        f"{label} probe errored and resulted in unknown state: {res}",
                        c,
                    )
                    tracker.last_probe_at = now  # try again a period later
                elif isinstance(res, BaseException):
                    raise res
                else:
                    await self._after_probe(c, kind, tracker, *res)

    async def _probe(self, c: ContainerState, kind: str, tracker: ProbeTracker) -> tuple[bool, str]:
        handle = c.handle
        assert handle is not None and self.st.sandbox is not None
        driver = self.ctx.driver

        async def exec_fn(argv: list[str], timeout: float) -> tuple[int, bytes]:
            session = await driver.exec(handle, argv, tty=False, stdin=False)
            try:
                async with asyncio.timeout(timeout):
                    out = await session.read_stdout()
                    buf = bytearray(out)
                    while out:
                        out = await session.read_stdout()
                        buf += out
                    return await session.wait(), bytes(buf)
            except TimeoutError:
                await session.kill()
                raise

        return await run_probe(
            tracker.probe,
            pod_ip=self.st.sandbox.ip,
            exec_fn=exec_fn,
            container_ports=self._spec(c.name).get("ports") or [],
        )

    async def _after_probe(
        self, c: ContainerState, kind: str, tracker: ProbeTracker, ok: bool, message: str
    ) -> None:
        now = self.ctx.clock.now()
        verdict = tracker.record(ok, now)
        label = kind.capitalize()
        if not ok:
            await self._event("Warning", "Unhealthy", f"{label} probe failed: {message}", c)
        if kind == "readiness":
            if verdict.success is not None:
                c.ready = verdict.success
            return
        if kind == "startup":
            if verdict.success:
                c.started = True
                c.ready = (c.name, "readiness") not in self._probes
            elif verdict.success is False:
                await self._kill_unhealthy(c, "startup")
            return
        if verdict.success is False:
            await self._kill_unhealthy(c, "liveness")

    async def _kill_unhealthy(self, c: ContainerState, kind: str) -> None:
        handle = c.handle
        if handle is None:
            return
        policy = (self.pod.get("spec") or {}).get("restartPolicy") or "Always"
        tail = "will be restarted" if policy != "Never" else "will not be restarted"
        await self._event("Normal", "Killing", f"Container {c.name} failed {kind} probe, {tail}", c)
        spec = self.pod.get("spec") or {}
        grace = float(spec.get("terminationGracePeriodSeconds", 30))
        # the probe's own grace, when it has one, wins (as the kubelet, since 1.25)
        for cspec in spec.get("containers") or []:
            if cspec.get("name") == c.name:
                probe_grace = (cspec.get(f"{kind}Probe") or {}).get("terminationGracePeriodSeconds")
                if probe_grace is not None:
                    grace = float(probe_grace)
        info = await self.ctx.driver.stop(handle, grace)
        if c.handle is handle:
            c.exit, c.ready = info, False

    # --- status and events -----------------------------------------------------------------------
    async def _event(
        self, type_: str, reason: str, message: str, c: ContainerState | None = None
    ) -> None:
        """Record an Event on the pod; about one of its containers when ``c`` is given
        (``involvedObject.fieldPath`` as the kubelet's ``spec.containers{name}``)."""
        path = ""
        if c is not None:
            kind = "initContainers" if c.init else "containers"
            kind = "ephemeralContainers" if c.ephemeral else kind
            path = f"spec.{kind}{{{c.name}}}"
        await self.ctx.recorder.event(_pod_ref(self.pod), type_, reason, message, field_path=path)

    async def _write_status(self) -> None:
        status = pod_status(
            self.pod, self.st, self.ctx.driver.name, self.ctx.host_ip, self.ctx.clock.now()
        )
        if status == self._written:
            return
        meta = self.pod["metadata"]
        try:
            # strategic, as the kubelet's status manager patches: conditions merge by
            # type, so one another component added since our copy of the pod was last
            # refreshed (the DisruptionTarget of a taint eviction) is kept
            await self.ctx.client.patch(
                PODS, meta["name"], {"status": status}, meta.get("namespace"), sub="status",
                patch_type=STRATEGIC_MERGE,
            )  # fmt: skip
            self._written = status
        except StatusError as e:
            if e.code != 404:
                raise

    # --- the end -----------------------------------------------------------------------------------
    async def _terminate(self) -> None:
        pod = self.pod
        meta, spec = pod["metadata"], pod.get("spec") or {}
        grace = meta.get("deletionGracePeriodSeconds")
        if grace is None:
            grace = spec.get("terminationGracePeriodSeconds", 30)
        grace = float(grace)
        if self.gone:
            grace = min(grace, 2.0)
        if self.executor is not None and self.ctx.executors is not None:
            # KILL, then SHUTDOWN, each with a grace period to exit (mesos_executor.py)
            grace = await self.ctx.executors.terminate(self.uid, grace, self._exited_within)
        running = [c for c in self.st.containers.values() if c.running and c.handle]
        for c in running:
            await self._event("Normal", "Killing", f"Stopping container {c.name}", c)

        async def stop(c: ContainerState) -> None:
            assert c.handle is not None
            try:
                c.exit = await self.ctx.driver.stop(c.handle, grace)
            except Exception as e:
                log.warning("pod %s: stopping %s: %s", self.st.name, c.name, e)

        await asyncio.gather(*(stop(c) for c in running))
        for task in self._waits.values():
            task.cancel()
        if not self.gone:
            for c in self.st.containers.values():
                c.done = True
            if not self.st.terminal:
                # as the kubelet (1.27+) for a deleted pod: terminal once stopped,
                # Succeeded only when every container that ran exited 0
                ran = [c.exit for c in self.st.app_states() if c.exit is not None]
                ok = bool(ran) and all(e.exit_code == 0 for e in ran)
                self.st.terminal = "Succeeded" if ok else "Failed"
                await self._write_status()
        # as the kubelet, the pod object goes only once its resources are reclaimed
        await self.cleanup()
        if not self.gone:
            body = {"gracePeriodSeconds": 0, "preconditions": {"uid": self.uid}}
            try:
                await self.ctx.client.request(
                    "DELETE", PODS.path(meta.get("namespace"), meta["name"]), body=body
                )
            except StatusError as e:
                if e.code not in (404, 409):
                    raise

    async def _exited_within(self, timeout: float) -> bool:
        """Whether every container has exited, waiting up to ``timeout`` for that."""
        waits = [t for name, t in self._waits.items() if self.st.containers[name].running]
        if waits:
            await asyncio.wait(waits, timeout=timeout)
        return not any(c.running for c in self.st.containers.values())

    async def cleanup(self) -> None:
        """Remove every container, the sandbox, the volumes and the pod's directory."""
        driver = self.ctx.driver
        if self.ctx.executors is not None:
            await self.ctx.executors.detach(self.uid)
        handles = [h for hs in self._old.values() for h in hs]
        handles += [c.handle for c in self.st.containers.values() if c.handle is not None]
        for h in handles:
            try:
                await driver.remove(h)
            except Exception as e:
                log.warning("pod %s: removing %s: %s", self.st.name, h.id, e)
        if self.st.sandbox is not None:
            try:
                await driver.remove_sandbox(self.st.sandbox)
            except Exception as e:
                log.warning("pod %s: removing its sandbox: %s", self.st.name, e)
        try:
            await self.volumes.teardown()
        except Exception as e:
            log.warning("pod %s: tearing down volumes: %s", self.st.name, e)
        if self.ctx.tokens is not None:
            self.ctx.tokens.forget_pod(self.uid)
        if self.task is not None:
            await asyncio.to_thread(remove_sandbox, self.task)
        await asyncio.to_thread(shutil.rmtree, self.dir, True)
