"""The scheduler's view of persistent volumes: informers of claims, volumes and classes,
the per-attempt resolution for the VolumeBinding plugin, and its PreBind step.

``Scheduler`` (``scheduler.py``) owns one :class:`VolumeCache`. Its informers run beside
the pod and node informers; their events (a claim created or bound, a volume or class
added) call ``moved`` so that pods waiting on them are tried again. Only pods that name
a claim are resolved (``PodInfo.claims``), so the scheduling of other pods costs nothing
more. ``prebind`` is awaited by the pod's bind task (never by the scheduling loop): each
unbound ``WaitForFirstConsumer`` claim is either pointed at by a matching static volume
(its ``claimRef``, which the PV controller completes) or annotated with the chosen node
(``volume.kubernetes.io/selected-node``, what the provisioner waits for); it then waits,
bounded, until the claims are Bound; a timeout or a failed write is returned as the
message of upstream's PreBind failure, and the pod is forgotten and backed off.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from corral.api.errors import StatusError
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

#: how long PreBind waits for provisioned claims to be bound (upstream: bindTimeoutSeconds)
BIND_TIMEOUT = 60.0
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
        self.volumes.add_handler(self._on_other)
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
        for u in vols.unbound:
            pvc = self.claims.get(u.key)
            if pvc is not None and is_bound(pvc):
                continue
            try:
                pv = choose_volume(u, node, labels, frozenset(taken))
                if pv is not None:
                    taken.add(pv["metadata"]["name"])
                    await self._bind_volume(pv, pvc or u.claim)
                    continue
                annotations = ((pvc or {}).get("metadata") or {}).get("annotations") or {}
                if annotations.get(SELECTED_NODE) != node:
                    ns, _, name = u.key.partition("/")
                    patch = {"metadata": {"annotations": {SELECTED_NODE: node}}}
                    await self.client.patch(PERSISTENT_VOLUME_CLAIMS, name, patch, ns)
            except StatusError as e:
                return f"{PREBIND_FAILED}{e.message}"
        return await self._wait_bound([u.key for u in vols.unbound], node)

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

    async def _wait_bound(self, keys: list[str], node: str) -> str:
        ev = asyncio.Event()
        for key in keys:
            self._waiters.setdefault(key, set()).add(ev)
        try:
            async with asyncio.timeout(self.bind_timeout):
                while True:
                    ev.clear()
                    waiting = False
                    for key in keys:
                        pvc = self.claims.get(key)
                        if pvc is None:
                            name = key.partition("/")[2]
                            return f'{PREBIND_FAILED}persistentvolumeclaim "{name}" not found'
                        if is_bound(pvc):
                            continue
                        selected = ((pvc.get("metadata") or {}).get("annotations") or {}).get(
                            SELECTED_NODE
                        )
                        if selected is not None and selected != node:
                            return (
                                f"{PREBIND_FAILED}claim {key} was selected for node "
                                f"{selected!r}, not {node!r}"
                            )
                        waiting = True
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
