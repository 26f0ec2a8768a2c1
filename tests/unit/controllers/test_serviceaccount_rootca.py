"""The ServiceAccounts controller and the root CA publisher: one sync per namespace,
and the writes it makes."""

from __future__ import annotations

from typing import Any, cast

from test_job import FakeClient, FakeClock

from corral.client.rest import CONFIGMAPS, NAMESPACES, Client
from corral.controllers.base import InformerFactory
from corral.controllers.rootca import DESCRIPTION, NAME, RootCACertPublisher
from corral.controllers.serviceaccount import SERVICE_ACCOUNTS, ServiceAccountsController

Obj = dict[str, Any]
CA = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def _ns(name: str, phase: str = "Active", deleting: bool = False) -> Obj:
    meta: Obj = {"name": name}
    if deleting:
        meta["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    return {"metadata": meta, "status": {"phase": phase}}


async def test_default_service_account_per_active_namespace() -> None:
    client = FakeClient(FakeClock())
    factory = InformerFactory(cast(Client, client))
    ctrl = ServiceAccountsController(cast(Client, client), factory)
    client.attach(factory, NAMESPACES)
    client.informers["serviceaccounts"] = ctrl.accounts
    client.seed(NAMESPACES, _ns("a"))
    client.seed(NAMESPACES, _ns("b"))
    client.seed(NAMESPACES, _ns("gone", "Terminating", deleting=True))
    client.seed(SERVICE_ACCOUNTS, {"metadata": {"name": "default", "namespace": "b"}})
    for key in ("a", "b", "gone", "missing"):
        await ctrl.sync(key)
    assert client.actions == [("create", "serviceaccounts", "default")]
    assert ("serviceaccounts", "a", "default") in client.objects
    await ctrl.sync("a")  # now in the cache: nothing more
    assert len(client.actions) == 1


async def test_root_ca_configmap_created_and_repaired() -> None:
    client = FakeClient(FakeClock())
    factory = InformerFactory(cast(Client, client))
    ctrl = RootCACertPublisher(cast(Client, client), factory, root_ca=CA)
    client.attach(factory, NAMESPACES)
    client.informers["configmaps"] = ctrl.configmaps
    client.seed(NAMESPACES, _ns("a"))
    client.seed(NAMESPACES, _ns("gone", "Terminating", deleting=True))
    await ctrl.sync("a")
    await ctrl.sync("gone")
    cm = client.objects[("configmaps", "a", NAME)]
    assert cm["data"] == {"ca.crt": CA.decode()}
    assert cm["metadata"]["annotations"] == {"kubernetes.io/description": DESCRIPTION}
    assert client.actions == [("create", "configmaps", NAME)]
    await ctrl.sync("a")
    assert len(client.actions) == 1
    # someone edits it: the data is put back (other keys dropped), other metadata kept
    edited = {**cm, "data": {"ca.crt": "x", "extra": "y"}}
    edited["metadata"] = {**cm["metadata"], "labels": {"keep": "me"}}
    await client.update(CONFIGMAPS, edited, "a")
    await ctrl.sync("a")
    fixed = client.objects[("configmaps", "a", NAME)]
    assert fixed["data"] == {"ca.crt": CA.decode()}
    assert fixed["metadata"]["labels"] == {"keep": "me"}
    assert client.actions[-1] == ("update", "configmaps", NAME)
