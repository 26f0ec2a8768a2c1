"""Indexes the controllers of one process share (``controllers/base.py``): each is kept
once per informer, whatever the number of controllers that look objects up through it."""

from __future__ import annotations

from typing import Any, cast

import pytest

from corral.client.informer import strip_managed_fields
from corral.client.rest import PODS, Client
from corral.controllers.base import (
    CONTROLLER_UID_INDEX,
    NAMESPACE_INDEX,
    NODE_NAME_INDEX,
    ORPHAN_NAMESPACE_INDEX,
    controller_uid_index,
    namespace_index,
    node_name_index,
    orphan_namespace_index,
)
from corral.controllers.manager import ControllerManager

Obj = dict[str, Any]

OWNED: Obj = {
    "metadata": {
        "namespace": "ns",
        "ownerReferences": [
            {"kind": "Node", "uid": "other", "name": "n"},
            {"kind": "ReplicaSet", "uid": "rs-1", "name": "r", "controller": True},
        ],
    },
    "spec": {"nodeName": "n1"},
}
BARE: Obj = {"metadata": {"namespace": "ns"}, "spec": {}}


@pytest.mark.parametrize(
    ("fn", "obj", "values"),
    [
        (namespace_index, OWNED, ["ns"]),
        (namespace_index, {"metadata": {}}, [""]),
        (orphan_namespace_index, OWNED, []),
        (orphan_namespace_index, BARE, ["ns"]),
        (controller_uid_index, OWNED, ["rs-1"]),
        (controller_uid_index, BARE, []),
        (node_name_index, OWNED, ["n1"]),
        (node_name_index, BARE, [""]),
    ],
    ids=["ns", "ns-unset", "orphan-owned", "orphan-bare", "uid", "uid-none", "node", "unbound"],
)
def test_index_values(fn: Any, obj: Obj, values: list[str]) -> None:
    assert fn(obj) == values


class _Config:
    ca_pem = b""
    token = ""

    def __getattr__(self, name: str) -> None:
        return None


class _NoClient:
    config = _Config()


async def test_every_controller_on_one_factory_shares_the_pod_indexes() -> None:
    manager = ControllerManager(cast(Client, _NoClient()))
    pods = manager.factory.informer(PODS)
    names = set(pods._indexes)
    shared = {NAMESPACE_INDEX, ORPHAN_NAMESPACE_INDEX, CONTROLLER_UID_INDEX, NODE_NAME_INDEX}
    assert shared <= names
    # one index per way of grouping: none of the shared ones again under another name
    fns = [fn for fn, _ in pods._indexes.values()]
    assert len(fns) == len(set(fns)) == len(names)
    assert not {n for n in names if n.endswith(("/namespace", "/node", "orphan-namespace"))} - {
        ORPHAN_NAMESPACE_INDEX
    }
    # a pod is found by every controller through the one index
    pods.apply("ADDED", {**OWNED, "metadata": {**OWNED["metadata"], "name": "p"}})
    assert [p["metadata"]["name"] for p in pods.by_index(NODE_NAME_INDEX, "n1")] == ["p"]
    assert [p["metadata"]["name"] for p in pods.by_index(CONTROLLER_UID_INDEX, "rs-1")] == ["p"]


async def test_the_controller_managers_caches_keep_no_managed_fields() -> None:
    """As kube-controller-manager's informers: no controller reads ``managedFields``, and
    an update without them keeps the stored ones, so no cache holds them."""
    manager = ControllerManager(cast(Client, _NoClient()))
    managed = [{"manager": "m", "operation": "Update", "fieldsV1": {"f:spec": {}}}]
    pod: Obj = {**OWNED, "metadata": {**OWNED["metadata"], "name": "p", "managedFields": managed}}
    pods = manager.factory.informer(PODS)
    pods.apply("ADDED", pod)
    stored = pods.get("ns/p")
    assert stored is not None
    assert "managedFields" not in stored["metadata"]
    assert pod["metadata"]["managedFields"] == managed  # the event's object is left alone
    assert {inf.transform for inf in manager.factory._informers.values()} == {strip_managed_fields}
