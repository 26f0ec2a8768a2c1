"""Tests for corral.api.schema's typed decoding of a merge-patched object (``stored``).

The API server decodes a JSON merge patch's result against the kind's schema with the
stored object it was patched from as ``stored``: the containers the patch left alone are
taken as they are instead of walked. The answer must be exactly the full decoding's.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from corral.api.patch import merge_patch
from corral.api.schema import SchemaNode, TypeMismatch, check_types, for_kind


def _pod_schema() -> SchemaNode:
    node = for_kind("", "v1", "Pod")
    assert node is not None
    return node


def _stored_pod() -> dict[str, Any]:
    """A bound pod as stored: its PodScheduled condition carries ``lastProbeTime: null``
    (as Go encodes a zero time), the one null the server writes on purpose."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "namespace": "default", "labels": {"app": "web"}},
        "spec": {
            "containers": [{"name": "c", "image": "busybox"}],
            "nodeName": "n1",
            "priority": 0,
        },
        "status": {
            "phase": "Pending",
            "conditions": [{"type": "PodScheduled", "status": "True", "lastProbeTime": None}],
        },
    }


CASES = {
    "status-phase": {"status": {"phase": "Running"}},
    "whole-status": {"status": {"phase": "Running", "podIP": "10.1.0.2", "conditions": []}},
    "label": {"metadata": {"labels": {"tier": "front"}}},
    "label-removed": {"metadata": {"labels": {"app": None}}},
    "spec-field": {"spec": {"activeDeadlineSeconds": 30.0}},
    "unknown-field": {"status": {"bogus": 1}, "spec": {"alsoBogus": True}},
}


@pytest.mark.parametrize("patch", list(CASES.values()), ids=list(CASES))
def test_merge_patched_decoding_is_the_full_decoding(patch: dict[str, Any]) -> None:
    node = _pod_schema()
    cur = _stored_pod()
    merged = merge_patch(cur, patch, owned=True)
    full_unknown: list[str] = []
    fast_unknown: list[str] = []
    full = check_types(orjson.loads(orjson.dumps(merged)), node, unknown=full_unknown)
    fast = check_types(merged, node, unknown=fast_unknown, stored=cur)
    assert orjson.dumps(fast) == orjson.dumps(full)
    assert fast_unknown == full_unknown


def test_shared_containers_are_kept_and_nulls_still_dropped() -> None:
    node = _pod_schema()
    cur = _stored_pod()
    merged = merge_patch(cur, {"metadata": {"annotations": {"a": "b"}}}, owned=True)
    out = check_types(merged, node, stored=cur)
    assert out["spec"] is cur["spec"]  # left alone by the patch: not walked again
    assert out["status"] is not cur["status"]  # holds a null: decoded, the null dropped
    assert out["status"]["conditions"] == [{"type": "PodScheduled", "status": "True"}]


def test_a_patched_value_of_the_wrong_type_is_refused_as_before() -> None:
    node = _pod_schema()
    cur = _stored_pod()
    patch = {"spec": {"priority": "high"}}
    with pytest.raises(TypeMismatch) as full:
        check_types(merge_patch(_stored_pod(), patch), node)
    with pytest.raises(TypeMismatch) as fast:
        check_types(merge_patch(cur, patch, owned=True), node, stored=cur)
    assert str(fast.value) == str(full.value)
