"""The ServiceAccounts controller: a ``default`` ServiceAccount in every namespace.

Run by ``ControllerManager`` as ``serviceaccount`` (upstream's
``pkg/controller/serviceaccount`` ``ServiceAccountsController`` with its one
``ServiceAccountsToEnsure``, ``default``). The key is a namespace name: a namespace added
or updated, or a ``default`` ServiceAccount deleted, queues its namespace; ``sync``
creates the ``default`` ServiceAccount when the namespace is Active and has none
(AlreadyExists and a namespace being terminated are not errors). The ServiceAccount
admission (``apiserver/sa_admission.py``) relies on it to admit pods with their token.

Only the ``default`` ServiceAccounts are watched (a field selector), so the controller
holds one small object per namespace whatever else the cluster stores.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, ClassVar

from corral.api.errors import StatusError
from corral.client.informer import Informer
from corral.client.rest import NAMESPACES, Client, Resource
from corral.controllers.base import Controller, InformerFactory
from corral.util.clock import Clock

log = logging.getLogger("corral.controllers.serviceaccount")

Obj = dict[str, Any]

SERVICE_ACCOUNTS = Resource("", "v1", "serviceaccounts")
#: upstream's ``DefaultServiceAccountsControllerOptions().ServiceAccounts``
TO_ENSURE = ("default",)


def terminating(err: StatusError) -> bool:
    """Whether ``err`` refuses a create because the namespace is being terminated."""
    return err.code == 403 and "because it is being terminated" in err.message


class ServiceAccountsController(Controller):
    """Keeps the ``default`` ServiceAccount in every Active namespace."""

    name: ClassVar[str] = "serviceaccount"

    def __init__(
        self,
        client: Client,
        factory: InformerFactory,
        *,
        workers: int = 1,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(client, factory, workers=workers, clock=clock)
        self.namespaces = factory.informer(NAMESPACES)
        self.namespaces.add_handler(self._on_namespace)
        self.accounts = Informer(
            client, SERVICE_ACCOUNTS, field_selector="metadata.name=" + ",".join(TO_ENSURE)
        )
        self.accounts.add_handler(self._on_account)

    def _on_namespace(self, type_: str, obj: Obj, _old: Obj | None) -> None:
        if type_ != "DELETED":
            self.queue.add(obj["metadata"]["name"])

    def _on_account(self, type_: str, obj: Obj, _old: Obj | None) -> None:
        if type_ == "DELETED":
            self.queue.add(obj["metadata"].get("namespace", ""))

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            task = tg.create_task(self.accounts.run(), name="informer-serviceaccounts-default")
            try:
                await self.accounts.wait_for_sync(120)
                await super().run()
            finally:
                task.cancel()

    async def sync(self, key: str) -> None:
        """Create the missing ServiceAccounts of namespace ``key`` (gone or not Active:
        nothing)."""
        ns = self.namespaces.get(key)
        if ns is None or (ns.get("status") or {}).get("phase", "Active") != "Active":
            return
        for name in TO_ENSURE:
            if self.accounts.get(f"{key}/{name}") is not None:
                continue
            try:
                await self.client.create(SERVICE_ACCOUNTS, {"metadata": {"name": name}}, key)
            except StatusError as e:
                if e.code == 409 or terminating(e):
                    continue
                raise
            log.debug("created serviceaccount %s/%s", key, name)
