"""The node agent for real pods (``corral agent --runtime process|oci``): the kubelet's job.

``NodeAgent.run``:

1. registers its Node (capacity read off this machine, ``daemonEndpoints`` naming the port
   its ``AgentServer`` listens on) and renews its Lease every 10 s (``agent/node.py``);
2. asks the driver what survived the last agent (``Driver.recover``): containers keep
   running while the agent restarts, and each pod worker adopts its own;
3. watches the pods bound to this node (field selector ``spec.nodeName=NAME``) and runs
   one ``PodWorker`` (``agent/pods.py``) per pod uid; event handlers only hand the new
   object to the worker and wake it;
4. once the first list is in, removes what the driver recovered for pods that no longer
   exist, and the Mesos task sandboxes (``DATA/mesos/sandboxes/<uid>``) of such pods;
5. keeps local persistent volumes: its Node carries ``LOCAL_PATH_ROOT`` (``DATA/storage``),
   claims are mounted through ``claims.ClientClaimLookup``, and a ``LocalPathCleaner``
   over an informer of PersistentVolumes removes the directories of this node's deleted
   local-path volumes (``agent/claims.py``);
6. serves logs and exec to the API server (``agent/server.py``), answering through the
   ``ContainerLookup`` this class implements, and the Mesos executor API to the custom
   executors of its task pods (``agent/mesos_executor.py``).

Workers never raise out of ``run`` (a failed sync is logged and retried), so one bad pod
cannot take the agent down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from corral.api.conditions import condition_true
from corral.api.errors import StatusError
from corral.api.nodes import AGENT_SCHEME
from corral.api.volumes import LOCAL_PATH_ROOT, node_label_selector
from corral.client.events import EventRecorder
from corral.client.informer import Informer
from corral.client.rest import NODES, PERSISTENT_VOLUMES, PODS, SERVICES, Client
from corral.client.reviews import Reviewer
from corral.util.clock import Clock, SystemClock

from .auth import AgentAuth, ServingTLS
from .claims import ClientClaimLookup, LocalPathCleaner
from .drivers.base import ContainerHandle, Driver, ExitInfo, Recovered, Sandbox
from .images import ImageStore
from .mesos_executor import MesosExecutors
from .mesos_task import orphan_sandboxes, sandboxes_dir
from .node import LEASE_DURATION, LeaseRenewer, NodeSpec, node_status, register_node
from .objects import ClientLookup
from .pods import VOLUME_REFRESH, NodeContext, PodWorker
from .resource_metrics import ContainerUsage, Sample, node_usage
from .sa_token import TokenManager, client_fetch
from .server import AgentServer

log = logging.getLogger("corral.agent")

Obj = dict[str, Any]

STATUS_INTERVAL = 60.0  # the Node's status (heartbeat in its conditions) is refreshed this often
CHECK_INTERVAL = 10.0  # ... and looked at this often (the kubelet's nodeStatusUpdateFrequency)


def host_capacity(data_dir: Path) -> dict[str, str]:
    """cpu, memory, ephemeral-storage and pods of this machine, as the kubelet reports."""
    mem_kib = 0
    with contextlib.suppress(OSError), open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
                break
    st = os.statvfs(data_dir)
    return {
        "cpu": str(os.cpu_count() or 1),
        "memory": f"{mem_kib}Ki",
        "ephemeral-storage": f"{st.f_blocks * st.f_frsize // 1024}Ki",
        "pods": "110",
    }


def _kernel() -> str:
    return os.uname().release


def _os_image() -> str:
    with contextlib.suppress(OSError), open("/etc/os-release") as f:
        for line in f:
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip().strip('"')
    return "Linux"


class NodeAgent:
    """One real node: registers it, renews its Lease, runs the pods bound to it."""

    def __init__(
        self,
        client: Client,
        name: str,
        driver: Driver,
        *,
        data_dir: Path,
        images: ImageStore | None,
        node_ip: str = "127.0.0.1",
        port: int = 10250,
        labels: dict[str, str] | None = None,
        token: str = "",
        tls: ServingTLS | None = None,
        clock: Clock | None = None,
        pids_limit: int | None = None,
        cluster_dns: tuple[str, ...] = (),
        cluster_domain: str = "cluster.local",
        on_registered: Callable[[Obj], Awaitable[None]] | None = None,
        pod_cidr: str = "",
        seccomp_default: bool = False,
        node_lease_duration: int = LEASE_DURATION,
        volume_refresh: float = VOLUME_REFRESH,
    ) -> None:
        self.client = client
        self.node_lease_duration = node_lease_duration
        self.name = name
        self.driver = driver
        #: awaited once the Node is registered, before any pod is looked at
        self.on_registered = on_registered
        self.pod_cidr = pod_cidr  # published as the Node's spec.podCIDR
        self.data_dir = data_dir
        self.node_ip = node_ip
        self.port = port
        self.labels = dict(labels or {})
        self.clock = clock or SystemClock()
        self.images = images
        self.pods_dir = data_dir / "pods"
        self.pods_dir.mkdir(parents=True, exist_ok=True)
        #: where local-path volumes live (published in the Node's LOCAL_PATH_ROOT)
        self.storage_root = (data_dir / "storage").resolve()
        self.storage_root.mkdir(parents=True, exist_ok=True)
        capacity = host_capacity(data_dir)
        self.ctx = NodeContext(
            client=client,
            driver=driver,
            images=images,
            recorder=EventRecorder(client, "kubelet", self.clock),
            lookup=ClientLookup(client),
            node_name=name,
            host_ip=node_ip,
            pods_dir=self.pods_dir,
            clock=self.clock,
            allocatable=capacity,
            is_root=os.geteuid() == 0,
            pids_limit=pids_limit,
            cluster_dns=cluster_dns,
            cluster_domain=cluster_domain,
            mesos_sandboxes=sandboxes_dir(data_dir),
            claims=ClientClaimLookup(client),
            seccomp_root=data_dir / "seccomp",  # Localhost profiles (the kubelet's too)
            seccomp_default=seccomp_default,
            tokens=TokenManager(client_fetch(client), self.clock),
            volume_refresh=volume_refresh,
        )
        self.capacity = capacity
        self.services = Informer(client, SERVICES)
        self.ctx.services = lambda: list(self.services.store.values())
        # with a serving certificate: authenticated and authorised as the kubelet's API
        auth = AgentAuth(name, Reviewer(client)) if tls is not None else None
        self.server = AgentServer(self, token, node_ip, port, tls=tls, auth=auth, node_name=name)
        self.server.resource_metrics = self.resource_metrics
        self.executors = MesosExecutors(
            client, name, node_ip, self.server.executor_listeners, clock=self.clock
        )
        self.server.executors = self.ctx.executors = self.executors
        self.workers: dict[str, PodWorker] = {}
        self.pods = Informer(client, PODS, field_selector=f"spec.nodeName={name}")
        self.pods.add_handler(self._on_pod)
        # only this node's local-path volumes (the provisioner labels them with the node)
        self.volumes = Informer(
            client, PERSISTENT_VOLUMES, label_selector=node_label_selector(name)
        )
        self.cleaner = LocalPathCleaner(client, name, str(self.storage_root))
        self.volumes.add_handler(self.cleaner.on_volume)
        self.ready = asyncio.Event()
        self._recovered: dict[str, tuple[Sandbox | None, list[Recovered]]] = {}
        self._tg: asyncio.TaskGroup | None = None
        self.leases: LeaseRenewer | None = None

    def _spec(self) -> NodeSpec:
        return NodeSpec(
            self.name,
            self.node_ip,
            self.labels,
            self.capacity,
            runtime_version=self.driver.runtime_version(),
            os_image=_os_image(),
            kernel_version=_kernel(),
            kubelet_port=self.server.port,
            pod_cidr=self.pod_cidr,
            annotations={
                LOCAL_PATH_ROOT: str(self.storage_root),
                AGENT_SCHEME: "http" if self.server.tls is None else "https",
            },
        )

    async def run(self) -> None:
        """Run until cancelled; running containers are left running on the way out."""
        sandboxes, containers = await self.driver.recover()
        for sb in sandboxes:
            self._recovered.setdefault(sb.pod_uid, (sb, []))
        for r in containers:
            sandbox, found = self._recovered.get(r.handle.pod_uid, (None, []))
            found.append(r)
            self._recovered[r.handle.pod_uid] = (sandbox, found)
        await self.server.start()
        try:
            node = await register_node(self.client, self._spec(), self.clock)
            if self.on_registered is not None:  # e.g. the pod network from spec.podCIDR
                await self.on_registered(node)
            uids = {self.name: node["metadata"].get("uid", "")}
            lease = self.node_lease_duration  # renewed every quarter of it, as the kubelet
            self.leases = LeaseRenewer(
                self.client, [self.name], uids=uids, clock=self.clock,
                duration=lease, interval=lease / 4,
            )  # fmt: skip
            async with asyncio.TaskGroup() as tg:
                self._tg = tg
                tg.create_task(self.leases.run(), name="agent-lease")
                tg.create_task(self.services.run(), name="agent-services")
                await self.services.wait_for_sync()
                tg.create_task(self.pods.run(), name="agent-pods")
                tg.create_task(self._heartbeat(), name="agent-node-status")
                tg.create_task(self.volumes.run(), name="agent-persistentvolumes")
                tg.create_task(self.cleaner.run(), name="agent-local-path-cleanup")
                await self.pods.wait_for_sync()
                tg.create_task(self._remove_orphans(), name="agent-orphans")
                self.ready.set()
        finally:
            self._tg = None
            await self.server.stop()

    async def _heartbeat(self) -> None:
        """Every 10 s look at the Node; post its status when the node lifecycle controller
        marked it otherwise than Ready (the agent was away), or every ``STATUS_INTERVAL``."""
        since = self.clock.now()
        posted = since
        while True:
            await asyncio.sleep(CHECK_INTERVAL)
            try:
                node = await self.client.get(NODES, self.name)
                due = self.clock.now() - posted >= STATUS_INTERVAL
                if due or not condition_true(node, "Ready"):
                    status = node_status(self._spec(), self.clock.now(), since)
                    await self.client.patch(NODES, self.name, {"status": status}, sub="status")
                    posted = self.clock.now()
            except StatusError as e:
                if e.code == 404:
                    await register_node(self.client, self._spec(), self.clock)
                else:
                    log.warning("node status update failed: %s", e)
            except OSError as e:
                log.warning("node status update failed: %s", e)

    async def _remove_orphans(self) -> None:
        """Containers recovered for pods that are no longer bound here are removed."""
        live = {(p["metadata"].get("uid") or "") for p in self.pods.store.values()}
        assert self.ctx.mesos_sandboxes is not None
        # (listed with no await since ``live`` was read: no worker made one in between)
        for path in orphan_sandboxes(self.ctx.mesos_sandboxes, live):
            log.info("removing the Mesos sandbox of pod %s, no longer on this node", path.name)
            await asyncio.to_thread(shutil.rmtree, path, True)
        for uid in [u for u in self._recovered if u not in live]:
            sandbox, found = self._recovered.pop(uid)
            for r in found:
                try:
                    if r.exit is None:
                        await self.driver.stop(r.handle, 2.0)
                    await self.driver.remove(r.handle)
                except Exception as e:
                    log.warning("removing orphan container %s: %s", r.handle.id, e)
            if sandbox is not None:
                with contextlib.suppress(Exception):
                    await self.driver.remove_sandbox(sandbox)
            log.info("removed the containers of pod %s, no longer on this node", uid)

    def _on_pod(self, type_: str, pod: Obj, old: Obj | None) -> None:
        uid = pod["metadata"].get("uid") or ""
        worker = self.workers.get(uid)
        if type_ == "DELETED":
            if worker is not None:
                worker.deleted()
            return
        if worker is not None:
            worker.update(pod)
            return
        if self._tg is None:
            return
        worker = PodWorker(self.ctx, pod)
        sandbox, found = self._recovered.pop(uid, (None, []))
        if sandbox is not None or found:
            pairs: list[tuple[ContainerHandle, ExitInfo | None]] = [
                (r.handle, r.exit) for r in found
            ]
            worker.adopt(sandbox, pairs)
        self.workers[uid] = worker
        self._tg.create_task(self._run_worker(uid, worker), name=f"pod-{uid}")

    async def _run_worker(self, uid: str, worker: PodWorker) -> None:
        try:
            await worker.run()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("pod worker %s stopped", uid)
        finally:
            if self.workers.get(uid) is worker:
                del self.workers[uid]

    # --- /metrics/resource, for metrics-server (read in a worker thread) -------------------------
    def resource_metrics(self) -> Sample:
        """The node's and its running containers' usage now (``agent/resource_metrics.py``)."""
        sample = Sample(timestamp=time.time())
        node = node_usage()
        if node is not None:
            sample.node_cpu_seconds, sample.node_memory_bytes = node
        for w in list(self.workers.values()):
            for c in list(w.st.containers.values()):
                handle = c.handle
                if handle is None or not c.running:
                    continue
                stats = self.driver.stats(handle)
                if stats is None:
                    sample.scrape_error = True
                    continue
                sample.containers.append(
                    ContainerUsage(
                        w.st.namespace,
                        w.st.name,
                        c.name,
                        stats.cpu_nanos / 1e9,
                        stats.memory_bytes,
                        handle.started_at,
                    )
                )
        return sample

    # --- ContainerLookup, for the AgentServer ----------------------------------------------------
    def _find(self, ns: str, pod: str) -> PodWorker | None:
        for w in self.workers.values():
            if w.st.namespace == ns and w.st.name == pod:
                return w
        return None

    def log_files(self, ns: str, pod: str, container: str) -> list[Path] | None:
        w = self._find(ns, pod)
        if w is None or container not in w.st.containers:
            return None
        d = w.dir / "logs" / container
        if not d.is_dir():
            return []
        files = [p for p in d.glob("*.log") if p.stem.isdigit()]
        return sorted(files, key=lambda p: int(p.stem))

    def is_running(self, ns: str, pod: str, container: str) -> bool:
        w = self._find(ns, pod)
        c = w.st.containers.get(container) if w is not None else None
        return bool(c is not None and c.running)

    def pod_network(self, ns: str, pod: str) -> str | None:
        """For port-forward: the pod's network namespace, "" for the host's, None if the
        pod has no sandbox here (``agent/portforward.py``'s ``PodNetworks``)."""
        w = self._find(ns, pod)
        if w is None or w.st.sandbox is None:
            return None
        netns = w.st.sandbox.data.get("netns")
        return str(netns) if netns else ""

    def exec_target(
        self, ns: str, pod: str, container: str
    ) -> tuple[Driver, ContainerHandle] | None:
        w = self._find(ns, pod)
        c = w.st.containers.get(container) if w is not None else None
        if c is None or not c.running or c.handle is None:
            return None
        return self.driver, c.handle
