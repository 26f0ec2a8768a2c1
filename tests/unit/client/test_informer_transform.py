"""Informer transforms (client-go's ``SetTransform``): what is stored and handed to the
handlers, and ``strip_managed_fields`` (``TransformStripManagedFields``)."""

from __future__ import annotations

import copy
from typing import Any, cast

from corral.client.informer import Informer, strip_managed_fields
from corral.client.rest import PODS, Client

Obj = dict[str, Any]

POD: Obj = {
    "metadata": {
        "name": "p",
        "namespace": "ns",
        "resourceVersion": "7",
        "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}],
    },
    "spec": {"nodeName": "n1"},
}


def test_strip_managed_fields_copies_and_leaves_the_rest() -> None:
    before = copy.deepcopy(POD)
    out = strip_managed_fields(POD)
    assert before == POD  # the argument is not mutated
    assert out == {
        "metadata": {"name": "p", "namespace": "ns", "resourceVersion": "7"},
        "spec": {"nodeName": "n1"},
    }
    bare: Obj = {"metadata": {"name": "q"}}
    assert strip_managed_fields(bare) is bare


def test_transform_applies_to_store_and_handlers() -> None:
    inf = Informer(cast(Client, None), PODS, transform=strip_managed_fields)
    seen: list[tuple[str, Obj]] = []
    inf.add_handler(lambda type_, obj, old: seen.append((type_, obj)))
    inf.apply("ADDED", POD)
    inf.apply("DELETED", POD)
    assert [t for t, _ in seen] == ["ADDED", "DELETED"]
    assert all("managedFields" not in obj["metadata"] for _, obj in seen)
    assert "managedFields" in POD["metadata"]


def test_without_transform_objects_are_kept_as_given() -> None:
    inf = Informer(cast(Client, None), PODS)
    inf.apply("ADDED", POD)
    assert inf.get("ns/p") is POD
