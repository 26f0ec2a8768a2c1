"""A node agent's presence in the API: the Node it registers and the Lease it renews.

Every runtime (hollow now; process and oci later) registers its Node(s) with
``register_nodes`` and keeps them alive with ``LeaseRenewer``; both take many nodes at
once so that one process can speak for thousands of hollow nodes. The object builders
(``node_object``, ``lease_object``, ``node_status``) are pure and unit-tested.

Shapes follow the kubelet (1.32): the Node carries the well-known labels, capacity and
allocatable, InternalIP/Hostname addresses, the four standard conditions with the
kubelet's reasons and messages, and ``nodeInfo``. The Lease lives in ``kube-node-lease``,
is named after the node, is owned by the Node (so the garbage collector removes it with
the node), and is renewed every 10 s with a 40 s duration.

Requests are pipelined: ``bounded`` runs a batch of coroutines through a fixed pool of
workers, never one task per node. Past the first round, each node's Lease renews at a
phase of its own within the interval (``renewal_due``), so N nodes send a steady N per
interval rather than a burst of N every interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import random
import signal
import sys
import threading
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from corral.api.errors import StatusError
from corral.client.rest import LEASES, NODES, Client
from corral.util.clock import Clock, SystemClock, rfc3339, rfc3339_micro

log = logging.getLogger("corral.agent")

Obj = dict[str, Any]

LEASE_NAMESPACE = "kube-node-lease"
KUBELET_VERSION = "v1.32.0"
LEASE_DURATION = 40
RENEW_INTERVAL = 10.0
#: the kubelet's lease controller renews with ``wait.JitterUntil(sync, renewInterval, 0.04,
#: ...)``: up to 4% of the interval late
RENEW_JITTER = 0.04
#: the renewal loop wakes at most this often and sends what is due (5,000 nodes at 10 s:
#: ~50 per wake-up). Measured (bench.scheduler_perf, 1,000 idle nodes): one renewal at a
#: time, every 10 ms, cost the server twice the CPU per renewal (its writes no longer
#: share commits) and the agent 2.5x; every 100 ms costs what one burst per interval did
MIN_TICK = 0.1

DEFAULT_CAPACITY: dict[str, str] = {
    "cpu": "4",
    "memory": "32Gi",
    "ephemeral-storage": "100Gi",
    "pods": "110",
}

#: (type, status, reason, message) of a healthy node, as the kubelet reports them
HEALTHY_CONDITIONS: tuple[tuple[str, str, str, str], ...] = (
    ("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
    ("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
    ("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
    ("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
)  # fmt: skip


@dataclass(frozen=True)
class NodeSpec:
    """What an agent says about one node: its name, labels, resources and address."""

    name: str
    internal_ip: str
    labels: dict[str, str] = field(default_factory=dict)
    capacity: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_CAPACITY))
    allocatable: dict[str, str] | None = None
    runtime_version: str = "hollow://1.0"
    os_image: str = "Corral hollow node"
    kernel_version: str = "hollow"
    kubelet_port: int = 10250  # where the agent serves logs and exec (daemonEndpoints)
    pod_cidr: str = ""  # published as spec.podCIDR when the agent was given one
    #: extra Node annotations (a real agent's ``LOCAL_PATH_ROOT``), kept on re-registration
    annotations: dict[str, str] = field(default_factory=dict)


def parse_labels(text: str) -> dict[str, str]:
    """``k=v,k2=v2`` as ``--labels`` takes it (a bare key gets the empty value)."""
    out: dict[str, str] = {}
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        k, _, v = part.partition("=")
        if not k.strip():
            raise ValueError(f"invalid label {part!r}: empty key")
        out[k.strip()] = v.strip()
    return out


def node_labels(name: str, extra: dict[str, str]) -> dict[str, str]:
    """The kubelet's well-known labels plus the agent's own (which win)."""
    return {
        "beta.kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        **extra,
    }


def _uuid_of(text: str) -> str:
    h = hashlib.sha256(text.encode()).hexdigest()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def node_conditions(now: float, since: float | None = None) -> list[Obj]:
    """The four healthy conditions, heartbeat ``now``, transition ``since`` (or now)."""
    beat, moved = rfc3339(now), rfc3339(now if since is None else since)
    return [
        {
            "type": t,
            "status": s,
            "reason": r,
            "message": m,
            "lastHeartbeatTime": beat,
            "lastTransitionTime": moved,
        }
        for t, s, r, m in HEALTHY_CONDITIONS
    ]


def node_status(spec: NodeSpec, now: float, since: float | None = None) -> Obj:
    """``status`` of a healthy node as its kubelet would write it."""
    return {
        "capacity": dict(spec.capacity),
        "allocatable": dict(spec.allocatable if spec.allocatable is not None else spec.capacity),
        "conditions": node_conditions(now, since),
        "addresses": [
            {"type": "InternalIP", "address": spec.internal_ip},
            {"type": "Hostname", "address": spec.name},
        ],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": spec.kubelet_port}},
        "nodeInfo": {
            "machineID": _uuid_of("machine/" + spec.name).replace("-", ""),
            "systemUUID": _uuid_of("system/" + spec.name),
            "bootID": _uuid_of("boot/" + spec.name),
            "kernelVersion": spec.kernel_version,
            "osImage": spec.os_image,
            "containerRuntimeVersion": spec.runtime_version,
            "kubeletVersion": KUBELET_VERSION,
            "kubeProxyVersion": "",
            "operatingSystem": "linux",
            "architecture": "amd64",
        },
    }


def node_object(spec: NodeSpec, now: float) -> Obj:
    """The Node an agent registers (POSTed with its status, as the kubelet does)."""
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": spec.name,
            "labels": node_labels(spec.name, spec.labels),
            "annotations": {
                "node.alpha.kubernetes.io/ttl": "0",
                "volumes.kubernetes.io/controller-managed-attach-detach": "true",
                **spec.annotations,
            },
        },
        "spec": {"podCIDR": spec.pod_cidr, "podCIDRs": [spec.pod_cidr]} if spec.pod_cidr else {},
        "status": node_status(spec, now),
    }


def lease_object(node: str, now: float, node_uid: str = "", duration: int = LEASE_DURATION) -> Obj:
    """The node's Lease in ``kube-node-lease``, owned by its Node when the uid is known."""
    meta: Obj = {"name": node, "namespace": LEASE_NAMESPACE}
    if node_uid:
        meta["ownerReferences"] = [
            {"apiVersion": "v1", "kind": "Node", "name": node, "uid": node_uid}
        ]
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": meta,
        **renewal_patch(node, now, duration),
    }


def renewal_patch(node: str, now: float, duration: int = LEASE_DURATION) -> Obj:
    """The merge patch of a Lease renewal (``spec``: holder, duration, ``renewTime``)."""
    return {
        "spec": {
            "holderIdentity": node,
            "leaseDurationSeconds": duration,
            "renewTime": rfc3339_micro(now),
        }
    }


async def bounded(jobs: Iterable[Callable[[], Awaitable[None]]], limit: int) -> None:
    """Run ``jobs`` with at most ``limit`` in flight, by ``limit`` workers (not one task
    per job). A job that raises is logged and does not stop the others."""
    it = iter(jobs)

    async def worker() -> None:
        for job in it:  # the shared iterator hands each job to exactly one worker
            try:
                await job()
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.warning("agent request failed: %s", e)

    async with asyncio.TaskGroup() as tg:
        for _ in range(max(1, limit)):
            tg.create_task(worker())


async def register_node(client: Client, spec: NodeSpec, clock: Clock) -> Obj:
    """Create the Node, or when it exists refresh its labels and status; returns it."""
    body = node_object(spec, clock.now())
    try:
        return await client.create(NODES, body)
    except StatusError as e:
        if e.code != 409:
            raise
    patch: Obj = {"metadata": {"labels": body["metadata"]["labels"]}}
    if spec.annotations:
        patch["metadata"]["annotations"] = dict(spec.annotations)
    if spec.pod_cidr:
        current = await client.get(NODES, spec.name)
        if not (current.get("spec") or {}).get("podCIDR"):
            patch["spec"] = body["spec"]
    await client.patch(NODES, spec.name, patch)
    out: Obj = await client.patch(NODES, spec.name, {"status": body["status"]}, sub="status")
    return out


async def register_nodes(
    client: Client, specs: Sequence[NodeSpec], clock: Clock, concurrency: int = 32
) -> dict[str, str]:
    """Register every node (pipelined); returns node name -> uid of those registered."""
    uids: dict[str, str] = {}

    def job(spec: NodeSpec) -> Callable[[], Awaitable[None]]:
        async def run() -> None:
            node = await register_node(client, spec, clock)
            uids[spec.name] = node["metadata"].get("uid", "")

        return run

    await bounded((job(s) for s in specs), concurrency)
    return uids


def renewal_due(slot: int, nodes: int, interval: float, u: float) -> float:
    """When renewal ``slot`` is due, in seconds after the first round's start: slot ``j``
    renews node ``j % nodes`` for the ``j // nodes + 1``-th time after the first round, at
    its own phase (node ``i`` at ``(i + 1) / nodes`` of each interval), late by ``u``
    (0 <= u < 1) of the jitter: ``RENEW_JITTER`` of the interval, at most one node's share
    of it, so the slots stay in order. One node's renewals are ``interval`` apart, within
    the jitter; the first comes at most ``interval`` (plus jitter) after the first round."""
    step = interval / nodes
    return (slot + 1) * step + u * min(step, RENEW_JITTER * interval)


class LeaseRenewer:
    """Keeps one Lease per node fresh: one round of all nodes at once, then each node once
    every ``interval`` seconds at its own phase (``renewal_due``; what falls due within a
    ``MIN_TICK`` goes out together), through ``concurrency`` workers (a merge patch of
    ``spec``; a missing Lease is created). ``renewals`` and
    ``failures`` count requests, for logs and benchmarks."""

    def __init__(
        self,
        client: Client,
        nodes: Sequence[str],
        *,
        uids: dict[str, str] | None = None,
        interval: float = RENEW_INTERVAL,
        duration: int = LEASE_DURATION,
        concurrency: int = 32,
        clock: Clock | None = None,
    ) -> None:
        self.client = client
        self.nodes = list(nodes)
        self.uids = uids if uids is not None else {}
        self.interval = interval
        self.duration = duration
        self.concurrency = concurrency
        self.clock = clock or SystemClock()
        self.renewals = 0
        self.failures = 0
        self._exists: set[str] = set()

    async def renew(self, node: str) -> None:
        now = self.clock.now()
        if node in self._exists:
            patch = renewal_patch(node, now, self.duration)
            try:  # the renewed Lease is not decoded: nothing here reads it
                await self.client.request(
                    "PATCH",
                    LEASES.path(LEASE_NAMESPACE, node),
                    body=patch,
                    content_type="application/merge-patch+json",
                    decode=False,
                )
                self.renewals += 1
                return
            except StatusError as e:
                if e.code != 404:
                    raise
                self._exists.discard(node)
        body = lease_object(node, now, self.uids.get(node, ""), self.duration)
        try:
            await self.client.create(LEASES, body, LEASE_NAMESPACE)
        except StatusError as e:
            if e.code != 409:
                raise
            self._exists.add(node)  # someone (an earlier run) made it: patch it now
            await self.renew(node)
            return
        self._exists.add(node)
        self.renewals += 1

    async def renew_all(self) -> None:
        """One round: every node's lease, pipelined."""

        def job(node: str) -> Callable[[], Awaitable[None]]:
            async def run() -> None:
                try:
                    await self.renew(node)
                except Exception:
                    self.failures += 1
                    raise

            return run

        await bounded((job(n) for n in self.nodes), self.concurrency)

    async def run(self) -> None:
        """Renew forever: every Lease at once (they may not exist yet), then each at its
        own phase, as many kubelets started at random times do. A renewal whose slot comes
        while the node's last one still waits or runs is skipped (never two of one node at
        once); when the server falls behind, due renewals go out as workers free up."""
        started = self.clock.monotonic()
        await self.renew_all()
        n = len(self.nodes)
        if n == 0:
            return
        queue: asyncio.Queue[str] = asyncio.Queue()
        pending: set[str] = set()  # queued or in flight

        async def worker() -> None:
            while True:
                node = await queue.get()
                try:
                    await self.renew(node)
                except Exception as e:
                    self.failures += 1
                    log.warning("agent request failed: %s", e)
                finally:
                    pending.discard(node)

        async with asyncio.TaskGroup() as tg:
            for _ in range(max(1, min(self.concurrency, n))):
                tg.create_task(worker())
            slot = 0
            while True:
                due = started + renewal_due(slot, n, self.interval, random.random())
                node = self.nodes[slot % n]
                slot += 1
                left = due - self.clock.monotonic()
                if left > 0:  # what falls due within the tick goes out with this slot
                    await asyncio.sleep(max(left, MIN_TICK))
                if node not in pending:
                    pending.add(node)
                    queue.put_nowait(node)


# --- the agent process ---------------------------------------------------------------------


async def serve_until_signalled(
    run: Callable[[], Awaitable[None]], client: Client, exit_on_stdin_eof: bool
) -> None:
    """Await ``run()`` until SIGINT or SIGTERM (with ``exit_on_stdin_eof`` also until stdin
    closes: the parent, ``corral server`` or ``corral up``, is gone), then close ``client``.

    What an agent process's ``main`` runs (``corral agent`` with any runtime). Cancelling
    ``run()`` is the normal way out: it returns, it does not raise ``CancelledError``.
    """
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, task.cancel)
    if exit_on_stdin_eof:
        # a daemon thread, not the loop's executor: its blocking read must not hold the
        # process open at exit when run() ends by itself (an error)
        def wait_eof() -> None:
            sys.stdin.buffer.read()
            with contextlib.suppress(RuntimeError):  # the loop is already closed
                loop.call_soon_threadsafe(task.cancel)

        threading.Thread(target=wait_eof, name="stdin-eof", daemon=True).start()
    try:
        await run()
    except asyncio.CancelledError:
        pass
    finally:
        await client.close()
