"""The scheduler's view of persistent volumes: informers of claims, volumes and classes,
the per-attempt resolution for the VolumeBinding plugin, and its PreBind step.

``Scheduler`` (``scheduler.py``) owns one :class:`VolumeCache`. Its informers run beside
the pod and node informers; their events (a claim created or bound, a volume or class
added) call ``moved`` so that the parked pods that use claims are tried again. Only pods that name
a claim are resolved (``PodInfo.claims``), so the scheduling of other pods costs nothing
more. ``prebind`` is awaited by the pod's bind task (never by the scheduling loop): each
unbound ``WaitForFirstConsumer`` claim is either pointed at by a matching static volume
(its ``claimRef``, which the PV controller completes) or annotated with the chosen node
(``volume.kubernetes.io/selected-node``, what the provisioner waits for); it then waits,
bounded (``BIND_TIMEOUT``, upstream's 600 s), until the claims are Bound to volumes
whose node affinity admits the node (upstream's ``checkBindings``). A claim whose
``selected-node`` was removed (the provisioner gave up), a volume of another node, a
timeout or a failed write is returned as the message of upstream's PreBind failure,
and the pod is forgotten and backed off.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from corral.api.errors import StatusError
from corral.api.volume_matching import node_affinity_error
from corral.api.volumes import BOUND_BY_CONTROLLER, SELECTED_NODE
from corral.client.informer import Informer, key_of
from corral.client.rest import (
    PERSISTENT_VOLUME_CLAIMS,
    PERSISTENT_VOLUMES,
    STORAGE_CLASSES,
    Client,
)
from corral.scheduler.framework import Obj, PodInfo
from corral.scheduler.plugins.volumebinding import PodVolumes, choose_volume, is_bound, resolve

log = logging.getLogger("corral.scheduler")

#: how long PreBind waits for the claims to be bound (upstream's bindTimeoutSeconds
#: default); a provisioner that fails gives up earlier by removing selected-node
BIND_TIMEOUT = 600.0
PREBIND_FAILED = 'running PreBind plugin "VolumeBinding": binding volumes: '


class VolumeCache:
    """Claims, volumes and classes as the scheduler sees them (see the module docstring)."""

    def __init__(self, client: Client, moved: Callable[[], None]) -> None:
        self.client = client
        self.claims = Informer(client, PERSISTENT_VOLUME_CLAIMS)
        self.volumes = Informer(client, PERSISTENT_VOLUMES)
        self.classes = Informer(client, STORAGE_CLASSES)
        self.bind_timeout = BIND_TIMEOUT
        self._moved = moved
        self._waiters: dict[str, set[asyncio.Event]] = {}
        self.claims.add_handler(self._on_claim)
        self.volumes.add_handler(self._on_volume)
        self.classes.add_handler(self._on_other)

    @property
    def informers(self) -> tuple[Informer, ...]:
        return (self.claims, self.volumes, self.classes)

    def synced(self) -> bool:
        return all(inf.synced for inf in self.informers)

    # -- informer handlers (no awaiting) ----------------------------------------------------

    def _on_claim(self, type_: str, pvc: Obj, old: Obj | None) -> None:
        for ev in self._waiters.get(key_of(pvc), ()):
            ev.set()
        if type_ != "DELETED":
            self._moved()

    def _on_volume(self, type_: str, pv: Obj, old: Obj | None) -> None:
        ref = (pv.get("spec") or {}).get("claimRef")
        if isinstance(ref, dict):  # PreBind may wait for this volume's node affinity
            for ev in self._waiters.get(f"{ref.get('namespace', '')}/{ref.get('name', '')}", ()):
                ev.set()
        self._on_other(type_, pv, old)

    def _on_other(self, type_: str, obj: Obj, old: Obj | None) -> None:
        if type_ != "DELETED":
            self._moved()

    # -- one attempt ------------------------------------------------------------------------

    def resolve(self, pod: PodInfo) -> PodVolumes:
        """The pod's claims from the caches, for ``VolumeBinding``."""
        return resolve(
            pod.namespace,
            pod.claims,
            self.claims.get,
            self.volumes.get,
            self.classes.get,
            lambda: self.volumes.store.values(),
        )

    async def prebind(self, pod: PodInfo, node: str, labels: dict[str, str]) -> str:
        """Bind or provision the pod's delayed claims on ``node`` (whose labels are
        ``labels``) and wait until they are Bound; "" when done, else the failure message
        (the pod is then retried)."""
        vols: PodVolumes | None = pod.volumes
        if vols is None or not vols.unbound:
            return ""
        taken: set[str] = set()
        static: dict[str, str] = {}  # claim key -> the volume PreBind pointed it at
        written: dict[str, int] = {}  # claim key -> resourceVersion of its selected-node
        for u in vols.unbound:
            pvc = self.claims.get(u.key)
            if pvc is not None and is_bound(pvc):
                continue
            try:
                pv = choose_volume(u, node, labels, frozenset(taken))
                if pv is not None:
                    taken.add(pv["metadata"]["name"])
                    static[u.key] = pv["metadata"]["name"]
                    await self._bind_volume(pv, pvc or u.claim)
                    continue
                annotations = ((pvc or {}).get("metadata") or {}).get("annotations") or {}
                if annotations.get(SELECTED_NODE) != node:
                    ns, _, name = u.key.partition("/")
                    patch = {"metadata": {"annotations": {SELECTED_NODE: node}}}
                    out = await self.client.patch(PERSISTENT_VOLUME_CLAIMS, name, patch, ns)
                    written[u.key] = _rv(out)
            except StatusError as e:
                return f"{PREBIND_FAILED}{e.message}"
        keys = [u.key for u in vols.unbound]
        return await self._wait_bound(keys, node, labels, static, written)

    async def _bind_volume(self, pv: Obj, pvc: Obj) -> None:
        """Point a static volume at the claim (upstream's ``bindAPIUpdate``): its
        ``claimRef``, written with the volume's resourceVersion as precondition."""
        meta, cmeta = pv["metadata"], pvc["metadata"]
        ref = {
            "kind": "PersistentVolumeClaim",
            "apiVersion": "v1",
            "namespace": cmeta.get("namespace", ""),
            "name": cmeta.get("name", ""),
            "uid": cmeta.get("uid", ""),
            "resourceVersion": cmeta.get("resourceVersion", ""),
        }
        patch = {
            "metadata": {
                "resourceVersion": meta.get("resourceVersion", ""),
                "annotations": {BOUND_BY_CONTROLLER: "yes"},
            },
            "spec": {"claimRef": ref},
        }
        await self.client.patch(PERSISTENT_VOLUMES, meta["name"], patch)

    async def _wait_bound(
        self,
        keys: list[str],
        node: str,
        labels: dict[str, str],
        static: dict[str, str] | None = None,
        written: dict[str, int] | None = None,
    ) -> str:
        """Wait until every claim of ``keys`` is Bound to a volume that admits ``node``
        (upstream's ``checkBindings``); "" when done, else the PreBind failure message."""
        ev = asyncio.Event()
        for key in keys:
            self._waiters.setdefault(key, set()).add(ev)
        try:
            async with asyncio.timeout(self.bind_timeout):
                while True:
                    ev.clear()
                    waiting = False
                    for key in keys:
                        got = (static or {}).get(key)
                        now = self.claims.get(key)
                        if now is not None and _rv(now) < (written or {}).get(key, 0):
                            waiting = True  # the cache has not seen selected-node yet
                            continue
                        why, done = self._check_binding(key, node, labels, got)
                        if why:
                            return PREBIND_FAILED + why
                        waiting = waiting or not done
                    if not waiting:
                        return ""
                    await ev.wait()
        except TimeoutError:
            log.info("claims %s not bound within %.0fs", ", ".join(keys), self.bind_timeout)
            return f"{PREBIND_FAILED}context deadline exceeded"
        finally:
            for key in keys:
                waiters = self._waiters.get(key)
                if waiters is not None:
                    waiters.discard(ev)
                    if not waiters:
                        del self._waiters[key]

    def _check_binding(
        self, key: str, node: str, labels: dict[str, str], static: str | None
    ) -> tuple[str, bool]:
        """(failure, bound) of one claim PreBind waits for, with upstream's words;
        ``static`` names the volume PreBind pointed the claim at (None: provisioned)."""
        name = key.partition("/")[2]
        pvc = self.claims.get(key)
        if pvc is None:
            return f'persistentvolumeclaim "{name}" not found', False
        volume_name = str((pvc.get("spec") or {}).get("volumeName") or "") or static
        if not volume_name:
            annotations = (pvc.get("metadata") or {}).get("annotations") or {}
            if annotations.get(SELECTED_NODE) != node:
                # the provisioner gave the claim back (external-provisioner's reschedule)
                return f'provisioning failed for PVC "{name}"', False
            return "", False
        pv = self.volumes.get(volume_name)
        if pv is None:
            return "", False  # the cache may not have it yet
        if why := node_affinity_error(pv, node, labels):
            return f'pv "{volume_name}" node affinity doesn\'t match node "{node}": {why}', False
        return "", is_bound(pvc)


def _rv(obj: Obj | None) -> int:
    try:
        return int(((obj or {}).get("metadata") or {}).get("resourceVersion") or 0)
    except ValueError:
        return 0
