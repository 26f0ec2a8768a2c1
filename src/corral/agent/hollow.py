"""The hollow runtime: many simulated nodes in one process, for scale tests (as kubemark and
KWOK do). ``corral agent --runtime hollow --count N`` runs ``main``; tests and benchmarks
build a ``HollowAgent`` directly.

One ``HollowAgent`` speaks for all its nodes at once, so 5,000 of them stay light:

- registration and Lease renewal go through ``corral.agent.node`` (pipelined, bounded;
  past the first round each node renews at its own phase of the interval, a steady
  stream rather than one burst of all nodes);
- ONE pod watch (field selector ``spec.nodeName!=``) feeds an informer whose store keeps
  only the pods bound to its nodes, indexed by ``spec.nodeName``;
- the event handler only enqueues ``namespace/name`` keys; ``workers`` sync loops (32 by
  default, so at most 32 writes are in flight) bring each pod one step forward;
- delays (start, exit-after, grace) are loop timers that re-enqueue the key, not tasks.

A pod's simulated life (``sync``), one write per arrow::

    bound, Pending --start_delay--> Running (ready) --exit-after--> Succeeded / Failed
                                        ^                  |  (Never; OnFailure and code 0)
                                        +--restartCount+1--+  (Always; OnFailure and code != 0)
    deletionTimestamp set --min(grace, grace_cap)--> DELETE gracePeriodSeconds=0

The status documents are built by pure functions (``running_status``, ``exited_status``)
and unit-tested. A restarted agent adopts pods it already runs (a ``hollow://`` container
ID) instead of restarting them.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import functools
import hashlib
import logging
import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from corral.api.errors import StatusError
from corral.api.nodes import AGENT_SCHEME
from corral.client.informer import Informer, WorkQueue, key_of
from corral.client.rest import NODES, PODS, Client, KubeConfig, add_server_flag
from corral.util import eventloop
from corral.util.bearer import bearer_matches, node_token
from corral.util.clock import Clock, SystemClock, parse_rfc3339, rfc3339
from corral.util.durations import parse_go_duration
from corral.util.gc_tuning import settling

from .node import (
    DEFAULT_CAPACITY,
    LEASE_DURATION,
    RENEW_INTERVAL,
    LeaseRenewer,
    NodeSpec,
    bounded,
    node_status,
    parse_labels,
    register_node,
    register_nodes,
    serve_until_signalled,
)
from .resource_metrics import hollow_sample, render

log = logging.getLogger("corral.agent.hollow")

Obj = dict[str, Any]

EXIT_AFTER = "hollow.corral.dev/exit-after"
EXIT_CODE = "hollow.corral.dev/exit-code"
CONTAINER_ID_SCHEME = "hollow://"
#: pod network: one /24 per node in 10.128.0.0/9 (clear of the 10.96.0.0/12 services)
BLOCKS = 1 << 15
#: how long a Lease renewal may take before the renewals of N nodes fall behind their
#: rate: kubelets renew on their own connections, so a loaded server slows each renewal
#: without slowing the rate; one process renewing for N nodes keeps enough workers
#: (``lease_workers``) for its rate at this latency
RENEWAL_LATENCY_BUDGET = 0.25


def lease_workers(nodes: int, renew_interval: float, floor: int = 32) -> int:
    """Renewal workers that keep ``nodes`` Leases renewed every ``renew_interval``
    seconds while each renewal takes up to ``RENEWAL_LATENCY_BUDGET`` (at least ``floor``):
    125 for 5,000 nodes every 10 s."""
    return max(floor, math.ceil(nodes / renew_interval * RENEWAL_LATENCY_BUDGET))


def parse_duration(text: str) -> float:
    """Seconds in a Go duration (``5s``, ``1m30s``, ``250ms``); ValueError if malformed
    or negative."""
    seconds = parse_go_duration(text.strip())
    if seconds < 0:
        raise ValueError(f"negative duration {text!r}")
    return seconds


def exit_plan(pod: Obj) -> tuple[float, int] | None:
    """(seconds after start, exit code) from the pod's annotations, None when it runs on."""
    ann = (pod.get("metadata") or {}).get("annotations") or {}
    after = ann.get(EXIT_AFTER)
    if after is None:
        return None
    try:
        return parse_duration(str(after)), int(ann.get(EXIT_CODE, "0"))
    except ValueError:
        return None


def restarts_after_exit(restart_policy: str, code: int) -> bool:
    """Whether a container exiting with ``code`` is restarted (the pod stays Running)."""
    if restart_policy == "Never":
        return False
    if restart_policy == "OnFailure":
        return code != 0
    return True  # Always (the default)


def node_block(index: int, base: int) -> int:
    """The /24 block number of the agent's ``index``-th node."""
    return (base + index) % BLOCKS


def host_ip(block: int) -> str:
    """The node's fake InternalIP (loopback range, never routed)."""
    return f"127.{block >> 8}.{block & 255}.1"


def pod_ip(block: int, host: int) -> str:
    return f"10.{128 + (block >> 8)}.{block & 255}.{host}"


def _digest(*parts: str) -> str:
    return hashlib.sha256("/".join(parts).encode()).hexdigest()


@functools.lru_cache(maxsize=1024)  # a pure function of the few images a cluster runs
def image_id(image: str) -> str:
    """A stable fake digest reference for an image (``repo@sha256:...``)."""
    repo = image.split("@", 1)[0]
    last = repo.rsplit("/", 1)[-1]
    if ":" in last:
        repo = repo[: len(repo) - len(last)] + last.split(":", 1)[0]
    return f"{repo}@sha256:{_digest('image', image)}"


def container_id(uid: str, name: str, restarts: int) -> str:
    return CONTAINER_ID_SCHEME + _digest(uid, name, str(restarts))


def _conditions(old: list[Obj], want: list[tuple[str, str, str]], now: str) -> list[Obj]:
    """``want`` (type, status, reason) as conditions; a transition time moves only when the
    status changes. Conditions of other types (PodScheduled, readiness gates) are kept."""
    prior = {c.get("type"): c for c in old}
    out: list[Obj] = []
    for type_, status, reason in want:
        was = prior.pop(type_, None)
        since = was.get("lastTransitionTime") if was and was.get("status") == status else None
        c: Obj = {"type": type_, "status": status, "lastProbeTime": None}
        c["lastTransitionTime"] = since or now
        if reason:
            c["reason"] = reason
        out.append(c)
    scheduled = prior.pop("PodScheduled", None) or {
        "type": "PodScheduled",
        "status": "True",
        "lastProbeTime": None,
        "lastTransitionTime": now,
    }
    return [*out, scheduled, *prior.values()]


def _init_statuses(pod: Obj, started: str) -> list[Obj]:
    uid = pod["metadata"].get("uid", "")
    return [
        {
            "name": c["name"],
            "image": c.get("image", ""),
            "imageID": image_id(c.get("image", "")),
            "containerID": container_id(uid, c["name"], 0),
            "ready": True,
            "started": False,
            "restartCount": 0,
            "state": {
                "terminated": {
                    "exitCode": 0,
                    "reason": "Completed",
                    "startedAt": started,
                    "finishedAt": started,
                    "containerID": container_id(uid, c["name"], 0),
                }
            },
        }
        for c in pod["spec"].get("initContainers") or []
    ]


def _container_statuses(pod: Obj, restarts: int, state: Obj, last: Obj, ready: bool) -> list[Obj]:
    uid = pod["metadata"].get("uid", "")
    out: list[Obj] = []
    for c in pod["spec"].get("containers") or []:
        cid = container_id(uid, c["name"], restarts)
        st = {k: {**v, "containerID": cid} if k == "terminated" else v for k, v in state.items()}
        lst = {
            k: {**v, "containerID": container_id(uid, c["name"], restarts - 1)}
            for k, v in last.items()
        }
        out.append(
            {
                "name": c["name"],
                "image": c.get("image", ""),
                "imageID": image_id(c.get("image", "")),
                "containerID": cid,
                "ready": ready,
                "started": ready,
                "restartCount": restarts,
                "state": st,
                "lastState": lst,
            }
        )
    return out


def _terminated(code: int, started: float, finished: float) -> Obj:
    return {
        "exitCode": code,
        "reason": "Completed" if code == 0 else "Error",
        "startedAt": rfc3339(started),
        "finishedAt": rfc3339(finished),
    }


def running_status(
    pod: Obj,
    host: str,
    ip: str,
    started: float,
    now: float,
    *,
    restarts: int = 0,
    last_exit: tuple[int, float, float] | None = None,
    pod_started: float | None = None,
) -> Obj:
    """The status of a pod whose containers all run since ``started`` (wall seconds);
    ``last_exit`` (code, started, finished) of the previous run fills ``lastState`` after
    a restart; ``startTime`` is ``pod_started`` (default ``started``) unless already set."""
    at = rfc3339(started)
    old = pod.get("status") or {}
    last = {"terminated": _terminated(*last_exit)} if last_exit is not None else {}
    want = [
        ("PodReadyToStartContainers", "True", ""),
        ("Initialized", "True", ""),
        ("Ready", "True", ""),
        ("ContainersReady", "True", ""),
    ]
    first = rfc3339(pod_started if pod_started is not None else started)
    out: Obj = {
        "phase": "Running",
        "conditions": _conditions(old.get("conditions") or [], want, rfc3339(now)),
        "hostIP": host,
        "hostIPs": [{"ip": host}],
        "podIP": ip,
        "podIPs": [{"ip": ip}],
        "startTime": old.get("startTime") or first,
        "containerStatuses": _container_statuses(
            pod, restarts, {"running": {"startedAt": at}}, last, True
        ),
    }
    if pod["spec"].get("initContainers"):
        out["initContainerStatuses"] = _init_statuses(pod, first)
    return out


def exited_status(pod: Obj, code: int, started: float, now: float, restarts: int = 0) -> Obj:
    """The status of a pod whose containers, running since ``started``, all exited with
    ``code`` for good (Succeeded on 0, else Failed)."""
    want = [
        ("PodReadyToStartContainers", "False", ""),
        ("Initialized", "True", ""),
        ("Ready", "False", "PodCompleted"),
        ("ContainersReady", "False", "PodCompleted"),
    ]
    old = pod.get("status") or {}
    term = {"terminated": _terminated(code, started, now)}
    return {
        "phase": "Succeeded" if code == 0 else "Failed",
        "conditions": _conditions(old.get("conditions") or [], want, rfc3339(now)),
        "containerStatuses": _container_statuses(pod, restarts, term, {}, False),
    }


def adoptable(pod: Obj) -> bool:
    """Whether the pod already runs under a hollow runtime (an agent restart finds it)."""
    status = pod.get("status") or {}
    cs = status.get("containerStatuses") or []
    return (
        status.get("phase") == "Running"
        and bool(status.get("podIP"))
        and bool(cs)
        and all(str(c.get("containerID", "")).startswith(CONTAINER_ID_SCHEME) for c in cs)
    )


class IPPool:
    """Pod IPs of one node: hosts .2 to .254 of its /24, lowest free first."""

    def __init__(self, block: int) -> None:
        self.block = block
        self.used: set[int] = set()

    def take(self) -> str:
        for h in range(2, 255):
            if h not in self.used:
                self.used.add(h)
                return pod_ip(self.block, h)
        raise RuntimeError(f"no free pod IP on block {self.block}")

    def claim(self, ip: str) -> None:
        parts = ip.split(".")
        if len(parts) == 4 and ip == pod_ip(self.block, int(parts[3])):
            self.used.add(int(parts[3]))

    def release(self, ip: str) -> None:
        parts = ip.split(".")
        if len(parts) == 4 and parts[3].isdigit() and ip == pod_ip(self.block, int(parts[3])):
            self.used.discard(int(parts[3]))


@dataclass
class _Pod:
    """What the agent remembers of one pod it runs (monotonic deadlines, wall start)."""

    uid: str
    node: str
    ip: str = ""
    start_due: float | None = None
    started: float | None = None
    first_started: float | None = None
    exit_due: float | None = None
    delete_due: float | None = None
    restarts: int = 0
    done: bool = False


_META_KEPT = (
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "annotations",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
)


def slim(pod: Obj) -> Obj:
    """The part of a pod the hollow runtime reads: identity, annotations, deletion, the
    containers' names and images, restart policy, node, and the status. (About a third
    of a full pod's memory; 5,000 cached pods cost ~40 MB less.)"""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    out_spec: Obj = {k: spec[k] for k in ("nodeName", "restartPolicy") if k in spec}
    for k in ("containers", "initContainers"):
        if spec.get(k):
            out_spec[k] = [_slim_container(c) for c in spec[k]]
    return {
        "metadata": {k: meta[k] for k in _META_KEPT if k in meta},
        "spec": out_spec,
        "status": pod.get("status") or {},
    }


def _slim_container(c: Obj) -> Obj:
    out: Obj = {"name": c.get("name"), "image": c.get("image")}
    requests = (c.get("resources") or {}).get("requests")
    if requests:  # what the simulated usage is derived from (``/metrics/resource``)
        out["resources"] = {"requests": requests}
    return out


class _BoundPods(Informer):
    """The one pod informer: watches bound pods, keeps only those of ``nodes``, and only
    the fields the agent reads (``slim``, as client-go's informer transforms do)."""

    def __init__(self, client: Client, nodes: set[str]) -> None:
        super().__init__(client, PODS, field_selector="spec.nodeName!=")
        self.nodes = nodes
        self.add_index("node", lambda p: [str((p.get("spec") or {}).get("nodeName") or "")])

    def apply(self, type_: str, obj: Obj) -> None:
        if (obj.get("spec") or {}).get("nodeName") not in self.nodes:
            if type_ == "DELETED" or key_of(obj) not in self.store:
                return
            type_ = "DELETED"  # cannot happen (nodeName is immutable), but stay exact
        super().apply(type_, slim(obj))


@dataclass
class Stats:
    """Counters of what the agent did, for logs, tests and benchmarks."""

    started: int = 0
    exited: int = 0
    restarted: int = 0
    deleted: int = 0
    writes: int = 0
    errors: int = 0
    adopted: int = 0


class HollowAgent:
    """Simulated nodes ``names``: registers them, renews their Leases, runs their pods."""

    def __init__(
        self,
        client: Client,
        names: Sequence[str],
        labels: dict[str, str] | None = None,
        capacity: dict[str, str] | None = None,
        clock: Clock | None = None,
        *,
        renew_interval: float = RENEW_INTERVAL,
        lease_duration: int = LEASE_DURATION,
        status_interval: float = 300.0,
        start_delay: float = 0.2,
        grace_cap: float = 1.0,
        workers: int = 32,
        ip_base: int | None = None,
        metrics_bind: str = "0.0.0.0",
    ) -> None:
        self.client = client
        self.names = list(names)
        self.labels = dict(labels or {})
        self.capacity = dict(capacity or DEFAULT_CAPACITY)
        self.clock = clock or SystemClock()
        self.status_interval = status_interval
        self.start_delay = start_delay
        self.grace_cap = grace_cap
        self.workers = workers
        base = ip_base if ip_base is not None else zlib.crc32(self.names[0].encode()) % BLOCKS
        self.pools = {n: IPPool(node_block(i, base)) for i, n in enumerate(self.names)}
        self.specs = [
            NodeSpec(
                n,
                host_ip(self.pools[n].block),
                self.labels,
                self.capacity,
                kubelet_port=0,
                annotations={AGENT_SCHEME: "http"},  # simulated metrics, on plain HTTP
            )
            for n in self.names
        ]
        self.uids: dict[str, str] = {}
        #: where the simulated ``/metrics/resource`` listens (every address by default:
        #: the nodes' 127.x addresses reach it)
        self.metrics_bind = metrics_bind
        self._metrics: web.AppRunner | None = None
        self._by_ip = {sp.internal_ip: sp.name for sp in self.specs}
        self._started = self.clock.now()
        self.pods = _BoundPods(client, set(self.names))
        self.pods.add_handler(self._on_pod)
        self.leases = LeaseRenewer(
            client,
            self.names,
            uids=self.uids,
            interval=renew_interval,
            duration=lease_duration,
            concurrency=lease_workers(len(self.names), renew_interval, workers),
            clock=self.clock,
        )
        self.queue = WorkQueue(max_backoff=10.0)
        self.stats = Stats()
        self.ready = asyncio.Event()
        self._state: dict[str, _Pod] = {}
        self._timers: dict[str, tuple[float, asyncio.TimerHandle]] = {}

    # --- the loop ------------------------------------------------------------------------
    async def run(self) -> None:
        """Register the nodes, then renew leases and run pods until cancelled."""
        await self._serve_metrics()
        self.uids.update(await register_nodes(self.client, self.specs, self.clock, self.workers))
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self.leases.run(), name="hollow-leases")
                tg.create_task(self.pods.run(), name="hollow-pods")
                tg.create_task(self._heartbeat(), name="hollow-node-status")
                await self.pods.wait_for_sync()
                for _ in range(self.workers):
                    tg.create_task(self._worker())
                self.ready.set()
        finally:
            for _, handle in self._timers.values():
                handle.cancel()
            self._timers.clear()
            self.queue.close()
            if self._metrics is not None:
                await self._metrics.cleanup()
                self._metrics = None

    # --- /metrics/resource of every node, on one port ---------------------------------------
    async def _serve_metrics(self) -> None:
        """Serve the simulated ``/metrics/resource`` (``agent/resource_metrics.py``) of all
        the nodes on one port of every address: the nodes' InternalIPs are in 127.0.0.0/8,
        so a scrape of ``<InternalIP>:<port>`` arrives here, and its local address names
        the node. Published as each node's ``kubeletEndpoint``; logs, exec and any other
        path answer a 404 Status (the API server relays it: hollow pods run nothing)."""
        app = web.Application()
        app.router.add_get("/metrics/resource", self._metrics_resource)
        app.router.add_route("*", "/{tail:.*}", self._not_served)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.metrics_bind, 0)
            await site.start()
        except OSError as e:
            log.warning("hollow nodes serve no resource metrics: %s", e)
            await runner.cleanup()
            return
        self._metrics = runner
        port = int(runner.addresses[0][1])
        self.specs = [dataclasses.replace(sp, kubelet_port=port) for sp in self.specs]

    async def _not_served(self, request: web.Request) -> web.Response:
        parts = request.path.strip("/").split("/")
        if parts[0] in ("containerLogs", "exec", "attach", "portForward") and len(parts) >= 3:
            msg = f'hollow pod "{parts[1]}/{parts[2]}" runs no containers: no {parts[0]} here'
        else:
            msg = "the server could not find the requested resource"
        e = StatusError(404, "NotFound", msg, {})
        return web.Response(body=e.body(), status=404, content_type="application/json")

    async def _metrics_resource(self, request: web.Request) -> web.Response:
        auth = request.headers.get("Authorization", "")
        token = self.client.config.token
        sock = request.transport.get_extra_info("sockname") if request.transport else None
        node = self._by_ip.get(str(sock[0]) if sock else "")
        # the shared token, or the node-bound one a scraper sends plain HTTP (util/bearer)
        if token and not (
            bearer_matches(auth, token) or bearer_matches(auth, node_token(token, node or ""))
        ):
            return web.Response(status=401, text="Unauthorized")
        if node is None:
            return web.Response(status=404, text="no hollow node has this address")
        now = self.clock.now()
        sample = hollow_sample(self.pods.by_index("node", node), self._started, now)
        return web.Response(text=render(sample), content_type="text/plain")

    async def _heartbeat(self) -> None:
        """Refresh each Node's status every ``status_interval`` (the kubelet's report
        frequency); a Node deleted meanwhile is registered again."""
        since = self.clock.now()
        while True:
            await asyncio.sleep(self.status_interval)

            def job(spec: NodeSpec) -> Any:
                async def run() -> None:
                    body = {"status": node_status(spec, self.clock.now(), since)}
                    try:
                        await self.client.patch(NODES, spec.name, body, sub="status")
                    except StatusError as e:
                        if e.code != 404:
                            raise
                        node = await register_node(self.client, spec, self.clock)
                        self.uids[spec.name] = node["metadata"].get("uid", "")

                return run

            await bounded((job(s) for s in self.specs), self.workers)

    async def _worker(self) -> None:
        while True:
            key = await self.queue.get()
            try:
                await self.sync(key)
                self.queue.forget(key)
            except Exception as e:
                self.stats.errors += 1
                delay = self.queue.retry(key)
                conflict = getattr(e, "code", None) == 409  # optimistic concurrency: routine
                level = logging.DEBUG if conflict else logging.INFO
                log.log(level, "hollow pod %s: %s (retry in %.2fs)", key, e, delay)
            finally:
                self.queue.done(key)

    def _on_pod(self, type_: str, pod: Obj, old: Obj | None) -> None:
        key = key_of(pod)
        if type_ == "DELETED":
            self._forget(key)
            return
        st = self._state.get(key)
        if (
            type_ == "MODIFIED"
            and old is not None
            and st is not None
            and st.uid == pod["metadata"].get("uid")
            and pod["metadata"].get("deletionTimestamp") == old["metadata"].get("deletionTimestamp")
        ):
            return  # our own status write coming back: nothing new to act on
        self.queue.add(key)

    def _forget(self, key: str) -> None:
        st = self._state.pop(key, None)
        if st is not None and st.ip:
            self.pools[st.node].release(st.ip)
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer[1].cancel()

    def _wake(self, key: str, due: float) -> None:
        """Sync ``key`` again at monotonic ``due`` (the earliest of the asked times)."""
        prior = self._timers.get(key)
        if prior is not None:
            if prior[0] <= due:
                return
            prior[1].cancel()
        delay = max(0.0, due - self.clock.monotonic())

        def fire() -> None:
            self._timers.pop(key, None)
            self.queue.add(key)

        self._timers[key] = (due, asyncio.get_running_loop().call_later(delay, fire))

    # --- one pod, one step ------------------------------------------------------------------
    async def sync(self, key: str) -> None:
        """Bring the pod ``key`` one step along its simulated life (at most one write)."""
        pod = self.pods.get(key)
        if pod is None:
            self._forget(key)
            return
        meta, spec = pod["metadata"], pod["spec"]
        uid = meta.get("uid", "")
        st = self._state.get(key)
        if st is not None and st.uid != uid:
            self._forget(key)
            st = None
        if st is None:
            st = self._state[key] = _Pod(uid, spec["nodeName"])
        now = self.clock.monotonic()
        if meta.get("deletionTimestamp"):
            await self._finish(key, pod, st, now)
            return
        phase = (pod.get("status") or {}).get("phase")
        if st.done or phase in ("Succeeded", "Failed"):
            self._release(st)
            return
        if st.started is None:
            if st.start_due is None and adoptable(pod):
                self._adopt(key, pod, st)
                return
            if st.start_due is None:
                st.start_due = now + self.start_delay
            if now < st.start_due:
                self._wake(key, st.start_due)
                return
            await self._start(key, pod, st)
            return
        if st.exit_due is not None:
            if now < st.exit_due:
                self._wake(key, st.exit_due)
                return
            await self._exit(key, pod, st)

    def _release(self, st: _Pod) -> None:
        st.done = True
        if st.ip:
            self.pools[st.node].release(st.ip)
            st.ip = ""

    def _arm_exit(self, key: str, pod: Obj, st: _Pod, ran: float = 0.0) -> None:
        plan = exit_plan(pod)
        if plan is None:
            st.exit_due = None
            return
        st.exit_due = self.clock.monotonic() + max(0.0, plan[0] - ran)
        self._wake(key, st.exit_due)

    def _adopt(self, key: str, pod: Obj, st: _Pod) -> None:
        status = pod["status"]
        st.ip = status["podIP"]
        self.pools[st.node].claim(st.ip)
        first = status["containerStatuses"][0]
        st.restarts = int(first.get("restartCount") or 0)
        running = (first.get("state") or {}).get("running") or {}
        try:
            st.started = parse_rfc3339(running["startedAt"])
        except (KeyError, ValueError):
            st.started = self.clock.now()
        try:
            st.first_started = parse_rfc3339(status["startTime"])
        except (KeyError, ValueError):
            st.first_started = st.started
        self.stats.adopted += 1
        self._arm_exit(key, pod, st, ran=max(0.0, self.clock.now() - st.started))

    async def _write_status(self, pod: Obj, status: Obj) -> None:
        """A merge patch of the pod's status; the answer is not decoded (the pod informer
        gets the written pod as a watch event)."""
        meta = pod["metadata"]
        await self.client.request(
            "PATCH",
            PODS.path(meta.get("namespace"), meta["name"], "status"),
            body={"status": status},
            content_type="application/merge-patch+json",
            decode=False,
        )
        self.stats.writes += 1

    async def _start(self, key: str, pod: Obj, st: _Pod) -> None:
        if not st.ip:
            st.ip = self.pools[st.node].take()
        started = self.clock.now()
        host = host_ip(self.pools[st.node].block)
        status = running_status(pod, host, st.ip, started, started, pod_started=started)
        try:
            await self._write_status(pod, status)
        except StatusError as e:
            if e.code == 404:
                return
            raise
        st.started = st.first_started = started
        self.stats.started += 1
        self._arm_exit(key, pod, st)

    async def _exit(self, key: str, pod: Obj, st: _Pod) -> None:
        plan = exit_plan(pod)
        code = plan[1] if plan else 0
        now = self.clock.now()
        ran_from = st.started if st.started is not None else now
        if restarts_after_exit(pod["spec"].get("restartPolicy") or "Always", code):
            host = host_ip(self.pools[st.node].block)
            status = running_status(
                pod,
                host,
                st.ip,
                now,
                now,
                restarts=st.restarts + 1,
                last_exit=(code, ran_from, now),
                pod_started=st.first_started,
            )
            await self._write_status(pod, status)
            st.restarts += 1
            st.started = now
            self.stats.restarted += 1
            self._arm_exit(key, pod, st)
            return
        await self._write_status(pod, exited_status(pod, code, ran_from, now, st.restarts))
        st.exit_due = None
        self.stats.exited += 1
        self._release(st)

    async def _finish(self, key: str, pod: Obj, st: _Pod, now: float) -> None:
        """Graceful deletion: after min(grace, grace_cap), delete for good (grace 0)."""
        if st.delete_due is None:
            grace = float(pod["metadata"].get("deletionGracePeriodSeconds") or 0)
            st.delete_due = now + min(grace, self.grace_cap)
        if now < st.delete_due:
            self._wake(key, st.delete_due)
            return
        meta = pod["metadata"]
        body = {"gracePeriodSeconds": 0, "preconditions": {"uid": meta.get("uid")}}
        try:
            await self.client.request(
                "DELETE", PODS.path(meta.get("namespace"), meta["name"]), body=body
            )
            self.stats.deleted += 1
        except StatusError as e:
            if e.code not in (404, 409):
                raise
        self._release(st)


# --- the command ---------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="corral agent", description="Run a node agent (hollow runtime: simulated nodes)."
    )
    add_server_flag(p)
    p.add_argument("--kubeconfig", required=True, help="kubeconfig with the agent's credentials")
    p.add_argument("--name", required=True, help="node name (with --count: the name prefix)")
    p.add_argument(
        "--runtime", default="hollow", choices=["process", "oci", "hollow"], help="runtime driver"
    )
    p.add_argument("--count", type=int, default=None, help="hollow nodes NAME-0..NAME-{N-1}")
    p.add_argument("--data-dir", default="", help="agent state directory")
    p.add_argument("--labels", default="", help="extra node labels, k=v,k2=v2")
    p.add_argument(
        "--node-lease-duration-seconds",
        type=int,
        default=LEASE_DURATION,
        help="the nodes' Lease duration, renewed every quarter of it (as the real agent's)",
    )
    p.add_argument("--log-level", default="INFO")
    p.add_argument("--exit-on-stdin-eof", action="store_true", help=argparse.SUPPRESS)
    return p


def node_names(name: str, count: int | None) -> list[str]:
    """Without ``--count`` the one node is ``NAME``; ``--count N`` names ``NAME-0`` ...
    ``NAME-{N-1}``."""
    return [name] if count is None else [f"{name}-{i}" for i in range(count)]


def main(argv: list[str]) -> int:
    """``corral agent ...``: run until SIGINT/SIGTERM; 2 on bad arguments."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.runtime != "hollow":
        parser.error(f"--runtime {args.runtime}: only the hollow runtime is built in this entry")
    if args.count is not None and args.count < 1:
        parser.error("--count must be at least 1")
    if args.node_lease_duration_seconds <= 0:
        parser.error("--node-lease-duration-seconds must be greater than 0")
    try:
        labels = parse_labels(args.labels)
    except ValueError as e:
        parser.error(str(e))
    cfg = KubeConfig.load(args.kubeconfig, servers=args.server)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    lease = args.node_lease_duration_seconds
    names = node_names(args.name, args.count)
    # the pod workers' and watches' connections, plus one per renewal worker
    connections = 32 + lease_workers(len(names), lease / 4)
    client = Client(cfg, connections=connections, user_agent="corral-agent/hollow")
    agent = HollowAgent(client, names, labels, lease_duration=lease, renew_interval=lease / 4)
    # a process of its own: the collector is set up once the nodes are in and pods synced
    work = settling(agent.run, agent.ready)
    eventloop.run(lambda: serve_until_signalled(work, client, args.exit_on_stdin_eof))
    return 0
