"""The root CA publisher: the ``kube-root-ca.crt`` ConfigMap in every namespace.

Run by ``ControllerManager`` as ``root-ca-cert-publisher`` (upstream's
``pkg/controller/certificates/rootcacertpublisher``). Each namespace holds a ConfigMap
``kube-root-ca.crt`` whose ``ca.crt`` is the cluster CA (PEM) a pod verifies the API
server with: the ServiceAccount admission's projected volume mounts it at
``/var/run/secrets/kubernetes.io/serviceaccount/ca.crt``. The CA is the controller
manager's kubeconfig's (as upstream's falls back to its client's CA data without
``--root-ca-file``); a client without one (plain HTTP) publishes nothing.

The key is a namespace name: a namespace added or updated, or its ConfigMap changed or
deleted, queues it; ``sync`` creates the ConfigMap, or puts back its ``ca.crt`` and
description annotation when they differ (other keys are dropped, as upstream). Only the
ConfigMaps of that name are watched (a field selector).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, ClassVar

from corral.api.errors import StatusError
from corral.api.rootca import DESCRIPTION, DESCRIPTION_ANNOTATION, KEY, NAME, configmap
from corral.client.informer import Informer
from corral.client.rest import CONFIGMAPS, NAMESPACES, Client
from corral.controllers.base import Controller, InformerFactory, clone
from corral.controllers.serviceaccount import terminating
from corral.util.clock import Clock

log = logging.getLogger("corral.controllers.rootca")

Obj = dict[str, Any]


class RootCACertPublisher(Controller):
    """Keeps ``kube-root-ca.crt`` with the cluster CA in every namespace."""

    name: ClassVar[str] = "root-ca-cert-publisher"

    def __init__(
        self,
        client: Client,
        factory: InformerFactory,
        *,
        workers: int = 1,
        clock: Clock | None = None,
        root_ca: bytes | None = None,
    ) -> None:
        super().__init__(client, factory, workers=workers, clock=clock)
        self.root_ca = (root_ca or client.config.ca_pem or b"").decode()
        self.namespaces = factory.informer(NAMESPACES)
        self.namespaces.add_handler(self._on_namespace)
        self.configmaps = Informer(client, CONFIGMAPS, field_selector=f"metadata.name={NAME}")
        self.configmaps.add_handler(self._on_configmap)

    def _on_namespace(self, type_: str, obj: Obj, _old: Obj | None) -> None:
        if type_ != "DELETED":
            self.queue.add(obj["metadata"]["name"])

    def _on_configmap(self, type_: str, obj: Obj, _old: Obj | None) -> None:
        if type_ != "ADDED":
            self.queue.add(obj["metadata"].get("namespace", ""))

    async def run(self) -> None:
        if not self.root_ca:
            log.info("no cluster CA in the kubeconfig: %s ConfigMaps are not published", NAME)
            await asyncio.Event().wait()  # idle until cancelled, as a running controller
        async with asyncio.TaskGroup() as tg:
            task = tg.create_task(self.configmaps.run(), name="informer-configmaps-root-ca")
            try:
                await self.configmaps.wait_for_sync(120)
                await super().run()
            finally:
                task.cancel()

    def wanted(self, cm: Obj | None) -> Obj | None:
        """The ConfigMap to write (None: ``cm`` is right)."""
        if cm is None:
            return configmap(self.root_ca)
        annotations = (cm.get("metadata") or {}).get("annotations") or {}
        if cm.get("data") == {KEY: self.root_ca} and (
            annotations.get(DESCRIPTION_ANNOTATION) == DESCRIPTION
        ):
            return None
        out = clone(cm)
        out["data"] = {KEY: self.root_ca}
        out["metadata"].setdefault("annotations", {})[DESCRIPTION_ANNOTATION] = DESCRIPTION
        return out

    async def sync(self, key: str) -> None:
        """Create or repair ``kube-root-ca.crt`` in namespace ``key`` (gone or being
        deleted: nothing)."""
        ns = self.namespaces.get(key)
        if ns is None or (ns.get("metadata") or {}).get("deletionTimestamp"):
            return
        cm = self.configmaps.get(f"{key}/{NAME}")
        body = self.wanted(cm)
        if body is None:
            return
        try:
            if cm is None:
                await self.client.create(CONFIGMAPS, body, key)
            else:
                await self.client.update(CONFIGMAPS, body, key)
        except StatusError as e:
            if (cm is None and e.code == 409) or terminating(e) or e.code == 404:
                return
            raise
