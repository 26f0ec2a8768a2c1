"""NodeRestriction admission (node_restriction.py): what a node may write."""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest

from corral.api.errors import StatusError
from corral.apiserver.admission_chain import CONNECT, CREATE, DELETE, UPDATE, AdmissionRequest
from corral.apiserver.identity import UserInfo
from corral.apiserver.node_restriction import NodeRestriction, forbidden_labels
from corral.apiserver.registry.base import ResourceInfo
from corral.apiserver.registry.table import RESOURCES
from corral.storage.base import KV, PUT, Event
from corral.storage.cache import WatchCache

Obj = dict[str, Any]
N1 = UserInfo("system:node:n1", ("system:nodes", "system:authenticated"))
INFO = {(i.group, i.plural): i for i in RESOURCES}


def info(plural: str, group: str = "") -> ResourceInfo:
    return INFO[(group, plural)]


def pod(name: str, node: str, uid: str = "", **kw: Any) -> Obj:
    return {
        "metadata": {"name": name, "namespace": "ns", "uid": uid or name, **kw.pop("meta", {})},
        "spec": {"containers": [{"name": "c", "image": "i"}], "nodeName": node, **kw},
    }


@pytest.fixture(scope="module")
def plugin() -> NodeRestriction:
    cache = WatchCache()
    pods = cache.register("/registry/core/pods/", {})
    nodes = cache.register("/registry/core/nodes/", {})
    for rev, (key, obj) in enumerate(
        [
            ("/registry/core/nodes/n1", {"metadata": {"name": "n1", "uid": "uid-n1"}}),
            ("/registry/core/pods/ns/mine", pod("mine", "n1")),
            ("/registry/core/pods/ns/theirs", pod("theirs", "n2")),
        ],
        1,
    ):
        cache.apply(Event(PUT, KV(key, obj, orjson.dumps(obj), rev, rev), None, rev))
    return NodeRestriction(pods, nodes)


def mirror(**kw: Any) -> Obj:
    owner = {"apiVersion": "v1", "kind": "Node", "name": "n1", "uid": "uid-n1", "controller": True}
    owner.update(kw.pop("owner", {}))
    p = pod("static-n1", kw.pop("node", "n1"), **kw)
    p["metadata"]["annotations"] = {"kubernetes.io/config.mirror": "hash"}
    p["metadata"]["ownerReferences"] = [owner]
    return p


def req(op: str, plural: str, name: str = "", obj: Obj | None = None, old: Obj | None = None, *, ns: str = "ns", sub: str = "", group: str = "", user: UserInfo | None = N1) -> AdmissionRequest:  # fmt: skip
    return AdmissionRequest(op, info(plural, group), ns, name, sub, obj, old, user)


def node(
    name: str = "n1", labels: dict[str, str] | None = None, taints: list[Obj] | None = None
) -> Obj:
    return {
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {"taints": taints} if taints else {},
    }


TAINT = {"key": "k", "effect": "NoSchedule"}
SECRET_VOL = [{"name": "v", "secret": {"secretName": "s"}}]
PVC = {"metadata": {"name": "c", "namespace": "ns", "resourceVersion": "1"}, "spec": {"volumeName": "pv"}, "status": {"phase": "Bound"}}  # fmt: skip
PVC_GROWN = {**PVC, "metadata": {**PVC["metadata"], "resourceVersion": "2"}, "status": {"phase": "Bound", "capacity": {"storage": "2Gi"}}}  # fmt: skip
PVC_RELABELLED = {**PVC, "metadata": {**PVC["metadata"], "labels": {"a": "b"}}}
TOKEN = {"spec": {"boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": "mine", "uid": "mine"}}}  # fmt: skip


def token(**ref: Any) -> Obj:
    t = copy.deepcopy(TOKEN)
    t["spec"]["boundObjectRef"].update(ref)
    return t


@pytest.mark.parametrize(
    ("r", "message"),
    [
        (req(CREATE, "pods", "static-n1", mirror()), None),
        (req(CREATE, "pods", "x", pod("x", "n1")), 'pods "x" is forbidden: pod does not have "kubernetes.io/config.mirror" annotation, node "n1" can only create mirror pods'),
        (req(CREATE, "pods", "static-n1", mirror(node="n2")), 'pods "static-n1" is forbidden: node "n1" can only create pods with spec.nodeName set to itself'),
        (req(CREATE, "pods", "static-n1", mirror(owner={"name": "n2"})), 'pods "static-n1" is forbidden: node "n1" can only create pods with an owner reference set to itself'),
        (req(CREATE, "pods", "static-n1", mirror(owner={"controller": False})), 'pods "static-n1" is forbidden: node "n1" can only create pods with a controller owner reference set to itself'),
        (req(CREATE, "pods", "static-n1", mirror(owner={"blockOwnerDeletion": True})), 'pods "static-n1" is forbidden: node "n1" must not set blockOwnerDeletion on an owner reference'),
        (req(CREATE, "pods", "static-n1", mirror(owner={"uid": "forged"})), 'pods "static-n1" is forbidden: node n1 UID mismatch: expected forged got uid-n1'),
        (req(CREATE, "pods", "static-n1", mirror(serviceAccountName="sa")), 'pods "static-n1" is forbidden: node "n1" can not create pods that reference a service account'),
        (req(CREATE, "pods", "static-n1", mirror(volumes=SECRET_VOL)), 'pods "static-n1" is forbidden: node "n1" can not create pods that reference secrets'),
        (req(CREATE, "pods", "static-n1", mirror(volumes=[{"name": "v", "configMap": {"name": "c"}}])), 'pods "static-n1" is forbidden: node "n1" can not create pods that reference configmaps'),
        (req(CREATE, "pods", "static-n1", mirror(volumes=[{"name": "v", "persistentVolumeClaim": {"claimName": "c"}}])), 'pods "static-n1" is forbidden: node "n1" can not create pods that reference persistentvolumeclaims'),
        (req(DELETE, "pods", "mine", old=pod("mine", "n1")), None),
        (req(DELETE, "pods", "theirs", old=pod("theirs", "n2")), 'pods "theirs" is forbidden: node "n1" can only delete pods with spec.nodeName set to itself'),
        (req(UPDATE, "pods", "mine", pod("mine", "n1"), pod("mine", "n1")), 'pods "mine" is forbidden: unexpected operation "UPDATE", node "n1" can only create and delete mirror pods'),
        (req(UPDATE, "pods", "mine", pod("mine", "n1"), pod("mine", "n1"), sub="status"), None),
        (req(UPDATE, "pods", "theirs", pod("theirs", "n2"), pod("theirs", "n2"), sub="status"), 'pods "theirs" is forbidden: node "n1" can only update pod status for pods with spec.nodeName set to itself'),
        (req(UPDATE, "pods", "mine", pod("mine", "n1", meta={"labels": {"a": "b"}}), pod("mine", "n1"), sub="status"), 'pods "mine" is forbidden: node "n1" cannot update labels through pod status'),
        (req(CREATE, "pods", "mine", {"metadata": {"name": "mine"}}, sub="eviction"), None),
        (req(CREATE, "pods", "theirs", {"metadata": {"name": "theirs"}}, sub="eviction"), 'pods "theirs" is forbidden: node n1 can only evict pods with spec.nodeName set to itself'),
        (req(CREATE, "pods", "theirs", {}, sub="binding"), 'pods "theirs" is forbidden: unexpected pod subresource "binding", only \'status\' and \'eviction\' are allowed'),
        (req(CONNECT, "pods", "theirs", sub="exec"), None),  # not its business
        (req(UPDATE, "nodes", "n1", node(), node(), ns="", sub="status"), None),
        (req(UPDATE, "nodes", "n2", node("n2"), node("n2"), ns="", sub="status"), 'nodes "n2" is forbidden: node "n1" is not allowed to modify node "n2"'),
        (req(CREATE, "nodes", "n2", node("n2"), ns=""), 'nodes "n2" is forbidden: node "n1" is not allowed to modify node "n2"'),
        (req(CREATE, "nodes", "n1", node(labels={"kubernetes.io/hostname": "n1", "node.kubernetes.io/x": "1", "mine": "y"}), ns=""), None),
        (req(CREATE, "nodes", "n1", node(labels={"node-restriction.kubernetes.io/a": "1", "node-role.kubernetes.io/master": ""}), ns=""), 'nodes "n1" is forbidden: node "n1" is not allowed to set the following labels: node-restriction.kubernetes.io/a, node-role.kubernetes.io/master'),
        (req(UPDATE, "nodes", "n1", node(), node(taints=[TAINT]), ns=""), 'nodes "n1" is forbidden: node "n1" is not allowed to modify taints'),
        (req(UPDATE, "nodes", "n1", node(labels={"x.k8s.io/y": "1"}), node(), ns=""), 'nodes "n1" is forbidden: is not allowed to modify labels: x.k8s.io/y'),
        (req(UPDATE, "persistentvolumeclaims", "c", PVC_GROWN, PVC, sub="status"), None),
        (req(UPDATE, "persistentvolumeclaims", "c", PVC_RELABELLED, PVC, sub="status"), 'persistentvolumeclaims "c" is forbidden: node "n1" is not allowed to update fields other than status.capacity and status.conditions: metadata.labels'),
        (req(UPDATE, "persistentvolumeclaims", "c", PVC, PVC), 'persistentvolumeclaims "c" is forbidden: may only update PVC status'),
        (req(CREATE, "serviceaccounts", "sa", TOKEN, sub="token"), None),
        (req(CREATE, "serviceaccounts", "sa", {"spec": {}}, sub="token"), 'serviceaccounts "sa" is forbidden: node requested token not bound to a pod'),
        (req(CREATE, "serviceaccounts", "sa", token(uid=""), sub="token"), 'serviceaccounts "sa" is forbidden: node requested token with a pod binding without a uid'),
        (req(CREATE, "serviceaccounts", "sa", token(uid="old"), sub="token"), 'serviceaccounts "sa" is forbidden: the UID in the bound object reference (old) does not match the UID in record. The object might have been deleted and then recreated'),
        (req(CREATE, "serviceaccounts", "sa", token(name="theirs", uid="theirs"), sub="token"), 'serviceaccounts "sa" is forbidden: node requested token bound to a pod scheduled on a different node'),
        (req(CREATE, "leases", "n1", {"metadata": {"name": "n1"}}, ns="kube-node-lease", group="coordination.k8s.io"), None),
        (req(CREATE, "leases", "n2", {"metadata": {"name": "n2"}}, ns="kube-node-lease", group="coordination.k8s.io"), 'leases.coordination.k8s.io "n2" is forbidden: can only access node lease with the same name as the requesting node'),
        (req(UPDATE, "leases", "n2", {"metadata": {"name": "n2"}}, {}, ns="kube-node-lease", group="coordination.k8s.io"), 'leases.coordination.k8s.io "n2" is forbidden: can only access node lease with the same name as the requesting node'),
        (req(CREATE, "leases", "n1", {"metadata": {"name": "n1"}}, ns="default", group="coordination.k8s.io"), 'leases.coordination.k8s.io "n1" is forbidden: can only access leases in the "kube-node-lease" system namespace'),
        (req(DELETE, "pods", "theirs", old=pod("theirs", "n2"), user=UserInfo("alice", ("system:authenticated",))), None),
        (req(DELETE, "pods", "theirs", old=pod("theirs", "n2"), user=None), None),
        (req(DELETE, "pods", "theirs", old=pod("theirs", "n2"), user=UserInfo("system:node:", ("system:nodes",))), 'pods "theirs" is forbidden: could not determine node from user "system:node:"'),
    ],
    ids=[
        "mirror-pod", "not-mirror", "mirror-other-node", "owner-other-node", "owner-not-controller",
        "block-owner-deletion", "owner-uid-forged", "mirror-sa", "mirror-secret", "mirror-configmap",
        "mirror-pvc", "delete-own-pod", "delete-other-pod", "update-pod", "own-pod-status",
        "other-pod-status", "labels-through-status", "evict-own", "evict-other", "binding",
        "connect-ignored", "own-node-status", "other-node-status", "create-other-node",
        "create-kubelet-labels", "create-forbidden-labels", "modify-taints", "modify-k8s-label",
        "pvc-capacity", "pvc-relabel", "pvc-not-status", "token-own-pod", "token-unbound",
        "token-no-uid", "token-uid-mismatch", "token-other-node", "own-lease", "other-lease-create",
        "other-lease-update", "lease-wrong-namespace", "not-a-node", "internal-write", "nameless-node",
    ],
)  # fmt: skip
def test_admission(plugin: NodeRestriction, r: AdmissionRequest, message: str | None) -> None:
    if message is None:
        plugin(r)
        return
    with pytest.raises(StatusError) as e:
        plugin(r)
    assert (e.value.code, e.value.message) == (403, message)


def test_missing_pod_is_not_found(plugin: NodeRestriction) -> None:
    with pytest.raises(StatusError) as e:
        plugin(req(CREATE, "pods", "gone", {"metadata": {"name": "gone"}}, sub="eviction"))
    assert e.value.code == 404


def test_forbidden_labels_are_changes_only() -> None:
    old = {"node-role.kubernetes.io/worker": "", "a": "1"}
    assert forbidden_labels(dict(old), old) == []  # unchanged: fine
    assert forbidden_labels({"a": "1"}, old) == ["node-role.kubernetes.io/worker"]  # removed
