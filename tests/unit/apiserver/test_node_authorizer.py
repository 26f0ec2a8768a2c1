"""The Node authorizer (node_authz.py): the graph, kept from cache events, and its decisions."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from corral.api.rbac import Attributes
from corral.apiserver.node_authz import (
    CONFIGMAP,
    PV,
    PVC,
    SECRET,
    SERVICE_ACCOUNT,
    NodeAuthorizer,
    NodeGraph,
    node_identity,
)
from corral.storage.base import DELETE, KV, PUT, Event
from corral.storage.cache import WatchCache

Obj = dict[str, Any]


def pod(name: str, node: str = "", ns: str = "ns", uid: str = "", **spec: Any) -> Obj:
    return {
        "metadata": {"name": name, "namespace": ns, "uid": uid or name},
        "spec": {"containers": [{"name": "c", "image": "i"}], "nodeName": node, **spec},
    }


def container(**kw: Any) -> list[Obj]:
    return [{"name": "c", "image": "i", **kw}]


# --- the graph ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "kind", "name"),
    [
        ({"containers": container(env=[{"name": "E", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}])}, SECRET, "s"),
        ({"containers": container(envFrom=[{"secretRef": {"name": "s"}}])}, SECRET, "s"),
        ({"initContainers": container(envFrom=[{"secretRef": {"name": "s"}}])}, SECRET, "s"),
        ({"ephemeralContainers": container(envFrom=[{"secretRef": {"name": "s"}}])}, SECRET, "s"),
        ({"volumes": [{"name": "v", "secret": {"secretName": "s"}}]}, SECRET, "s"),
        ({"volumes": [{"name": "v", "projected": {"sources": [{"secret": {"name": "s"}}]}}]}, SECRET, "s"),
        ({"volumes": [{"name": "v", "csi": {"driver": "d", "nodePublishSecretRef": {"name": "s"}}}]}, SECRET, "s"),
        ({"imagePullSecrets": [{"name": "s"}]}, SECRET, "s"),
        ({"containers": container(env=[{"name": "E", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "k"}}}])}, CONFIGMAP, "c"),
        ({"containers": container(envFrom=[{"configMapRef": {"name": "c"}}])}, CONFIGMAP, "c"),
        ({"volumes": [{"name": "v", "configMap": {"name": "c"}}]}, CONFIGMAP, "c"),
        ({"volumes": [{"name": "v", "projected": {"sources": [{"configMap": {"name": "c"}}]}}]}, CONFIGMAP, "c"),
        ({"volumes": [{"name": "v", "persistentVolumeClaim": {"claimName": "c"}}]}, PVC, "c"),
        ({"volumes": [{"name": "v", "ephemeral": {"volumeClaimTemplate": {}}}]}, PVC, "p-v"),
        ({"serviceAccountName": "sa"}, SERVICE_ACCOUNT, "sa"),
    ],
    ids=[
        "env-secret", "envFrom-secret", "init-container", "ephemeral-container", "secret-volume",
        "projected-secret", "csi-secret", "imagePullSecrets", "env-configmap", "envFrom-configmap",
        "configmap-volume", "projected-configmap", "pvc", "ephemeral-pvc", "serviceaccount",
    ],
)  # fmt: skip
def test_pod_references_reach_its_node_only(spec: Obj, kind: str, name: str) -> None:
    g = NodeGraph()
    g.add_pod(pod("p", "n1", **spec))
    assert g.has_path("n1", kind, "ns", name)
    assert not g.has_path("n2", kind, "ns", name)
    assert not g.has_path("n1", kind, "other", name)
    g.delete_pod("ns", "p")
    assert not g.has_path("n1", kind, "ns", name)


def test_shared_secret_stays_reachable_until_the_last_pod_goes() -> None:
    g = NodeGraph()
    vol = [{"name": "v", "secret": {"secretName": "s"}}]
    g.add_pod(pod("a", "n1", volumes=vol))
    g.add_pod(pod("b", "n1", volumes=vol))
    g.add_pod(pod("c", "n2", volumes=vol))
    g.delete_pod("ns", "a")
    assert g.has_path("n1", SECRET, "ns", "s")
    g.delete_pod("ns", "b")
    assert not g.has_path("n1", SECRET, "ns", "s")
    assert g.has_path("n2", SECRET, "ns", "s")


def test_rebound_pod_moves_its_references() -> None:
    g = NodeGraph()
    g.add_pod(pod("p", "n1", imagePullSecrets=[{"name": "s"}]))
    g.add_pod(pod("p", "n2", uid="new", imagePullSecrets=[{"name": "s"}]))
    assert not g.has_path("n1", SECRET, "ns", "s")
    assert g.has_path("n2", SECRET, "ns", "s")
    assert g.has_path("n2", "pod", "ns", "p") and not g.has_path("n1", "pod", "ns", "p")


def test_mirror_pod_reaches_nothing_but_itself() -> None:
    g = NodeGraph()
    p = pod("m", "n1", imagePullSecrets=[{"name": "s"}])
    p["metadata"]["annotations"] = {"kubernetes.io/config.mirror": "x"}
    g.add_pod(p)
    assert g.has_path("n1", "pod", "ns", "m")
    assert not g.has_path("n1", SECRET, "ns", "s")


def test_pv_and_its_secrets_through_the_bound_claim() -> None:
    g = NodeGraph()
    g.add_pv(
        {
            "metadata": {"name": "pv1"},
            "spec": {
                "claimRef": {"namespace": "ns", "name": "c"},
                "csi": {"driver": "d", "nodeStageSecretRef": {"name": "s"}},
            },
        }
    )
    assert not g.has_path("n1", PV, "", "pv1")
    g.add_pod(pod("p", "n1", volumes=[{"name": "v", "persistentVolumeClaim": {"claimName": "c"}}]))
    assert g.has_path("n1", PV, "", "pv1")
    assert g.has_path("n1", SECRET, "ns", "s")
    assert not g.has_path("n2", SECRET, "ns", "s")
    g.delete_pv("pv1")
    assert not g.has_path("n1", SECRET, "ns", "s")


# --- following the watch cache -------------------------------------------------------------


class Caches:
    def __init__(self) -> None:
        self.cache = WatchCache()
        node = {"spec.nodeName": lambda o: str(o.get("spec", {}).get("nodeName") or "")}
        self.pods = self.cache.register("/registry/core/pods/", node)
        self.pvs = self.cache.register("/registry/core/persistentvolumes/", {})
        self.rev = 0

    def put(self, key: str, obj: Obj, delete: bool = False) -> None:
        self.rev += 1
        kv = KV(key, obj, orjson.dumps(obj), self.rev, self.rev)
        self.cache.apply(Event(DELETE if delete else PUT, kv, None, self.rev))

    def pod(self, p: Obj, delete: bool = False) -> None:
        self.put(f"/registry/core/pods/ns/{p['metadata']['name']}", p, delete)


def test_graph_follows_pod_events() -> None:
    c = Caches()
    vol = [{"name": "v", "secret": {"secretName": "s"}}]
    c.pod(pod("before", "n1", volumes=[{"name": "v", "secret": {"secretName": "old"}}]))
    g = NodeGraph()
    c.cache.listeners.append(g.follow(c.pods, c.pvs, None))
    assert g.has_path("n1", SECRET, "ns", "old")  # loaded from what the cache held
    c.pod(pod("p", "", volumes=vol))
    assert not g.has_path("n1", SECRET, "ns", "s")  # not bound yet
    c.pod(pod("p", "n1", volumes=vol))  # bound
    assert g.has_path("n1", SECRET, "ns", "s")
    status = pod("p", "n1", volumes=vol)
    status["status"] = {"phase": "Running"}
    c.pod(status)  # a status update keeps it
    assert g.has_path("n1", SECRET, "ns", "s")
    c.pod(status, delete=True)
    assert not g.has_path("n1", SECRET, "ns", "s")
    assert not g.has_path("n1", "pod", "ns", "p")


def test_graph_follows_pv_events() -> None:
    c = Caches()
    g = NodeGraph()
    c.cache.listeners.append(g.follow(c.pods, c.pvs, None))
    c.pod(pod("p", "n1", volumes=[{"name": "v", "persistentVolumeClaim": {"claimName": "c"}}]))
    pv = {"metadata": {"name": "pv1"}, "spec": {}}
    c.put("/registry/core/persistentvolumes/pv1", pv)
    assert not g.has_path("n1", PV, "", "pv1")
    pv["spec"]["claimRef"] = {"namespace": "ns", "name": "c"}
    c.put("/registry/core/persistentvolumes/pv1", pv)
    assert g.has_path("n1", PV, "", "pv1")
    c.put("/registry/core/persistentvolumes/pv1", pv, delete=True)
    assert not g.has_path("n1", PV, "", "pv1")


# --- decisions -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def authz() -> NodeAuthorizer:
    g = NodeGraph()
    g.add_pod(
        pod(
            "p1",
            "n1",
            serviceAccountName="sa",
            volumes=[
                {"name": "a", "secret": {"secretName": "s1"}},
                {"name": "b", "configMap": {"name": "c1"}},
                {"name": "c", "persistentVolumeClaim": {"claimName": "claim1"}},
            ],
        )
    )
    g.add_pod(pod("p2", "n2", volumes=[{"name": "a", "secret": {"secretName": "s2"}}]))
    return NodeAuthorizer(graph=g)


N1 = ("system:node:n1", ("system:nodes", "system:authenticated"))


def attrs(verb: str, resource: str, name: str = "", ns: str = "ns", **kw: Any) -> Attributes:
    return Attributes(
        N1[0], N1[1], verb, kw.pop("group", ""), resource, name=name, namespace=ns, **kw
    )


NO_REL = "no relationship found between node 'n1' and this object"


@pytest.mark.parametrize(
    ("a", "allowed", "reason"),
    [
        (attrs("get", "secrets", "s1"), True, ""),
        (attrs("get", "secrets", "s2"), False, NO_REL),
        (attrs("get", "secrets", "nope"), False, NO_REL),
        (attrs("list", "secrets"), False, "No Object name found"),
        (attrs("watch", "secrets", "s1"), True, ""),  # fieldSelector metadata.name=s1
        (attrs("create", "secrets"), False, "can only read resources of this type"),
        (attrs("get", "configmaps", "c1"), True, ""),
        (attrs("get", "configmaps", "c1", ns="other"), False, NO_REL),
        (attrs("get", "persistentvolumeclaims", "claim1"), True, ""),
        (attrs("list", "persistentvolumeclaims"), False, "can only get individual resources of this type"),
        (attrs("update", "persistentvolumeclaims", "claim1", subresource="status"), True, ""),
        (attrs("create", "serviceaccounts", "sa", subresource="token"), True, ""),
        (attrs("create", "serviceaccounts", "other", subresource="token"), False, NO_REL),
        (attrs("get", "serviceaccounts", "sa"), False, "can only create tokens for individual service accounts"),
        (attrs("get", "pods", "p1"), True, ""),
        (attrs("get", "pods", "p2"), False, NO_REL),
        (attrs("list", "pods", ns="", field_selector="spec.nodeName=n1"), True, ""),
        (attrs("watch", "pods", ns="", field_selector="spec.nodeName=n2"), False, "can only list/watch pods with spec.nodeName field selector"),
        (attrs("list", "pods", ns=""), False, "can only list/watch pods with spec.nodeName field selector"),
        (attrs("create", "pods"), True, ""),
        (attrs("delete", "pods", "p2"), True, ""),  # NodeRestriction refuses it
        (attrs("update", "pods", "p1", subresource="status"), True, ""),
        (attrs("create", "pods", "p1", subresource="eviction"), True, ""),
        (attrs("update", "pods", "p1"), False, ""),
        (attrs("create", "pods", "p1", subresource="exec"), False, ""),
        (attrs("get", "nodes", "n1", ns=""), True, ""),
        (attrs("get", "nodes", "n2", ns=""), False, "node 'n1' cannot read 'n2', only its own Node object"),
        (attrs("list", "nodes", ns=""), False, "node 'n1' cannot read all nodes, only its own Node object"),
        (attrs("patch", "nodes", "n2", ns="", subresource="status"), True, ""),  # NodeRestriction
        (attrs("delete", "nodes", "n1", ns=""), False, ""),
        (attrs("update", "leases", "n1", ns="kube-node-lease", group="coordination.k8s.io"), True, ""),
        (attrs("create", "leases", ns="kube-node-lease", group="coordination.k8s.io"), True, ""),
        (attrs("update", "leases", "n2", ns="kube-node-lease", group="coordination.k8s.io"), False, "can only access node lease with the same name as the requesting node"),
        (attrs("get", "leases", "n1", ns="default", group="coordination.k8s.io"), False, 'can only access leases in the "kube-node-lease" system namespace'),
        (attrs("list", "leases", ns="kube-node-lease", group="coordination.k8s.io"), False, "can only get, create, update, patch, or delete a node lease"),
        (attrs("create", "events"), True, ""),  # the static node rules
        (attrs("list", "services"), True, ""),
        (attrs("create", "tokenreviews", ns="", group="authentication.k8s.io"), True, ""),
        (attrs("create", "certificatesigningrequests", ns="", group="certificates.k8s.io"), True, ""),
        (attrs("list", "deployments", group="apps"), False, ""),
        (attrs("delete", "services", "x"), False, ""),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)  # fmt: skip
def test_decisions(authz: NodeAuthorizer, a: Attributes, allowed: bool, reason: str) -> None:
    d = authz.authorize(a)
    assert (d.allowed, d.reason, d.denied) == (allowed, reason, False)


def test_only_nodes_are_its_concern(authz: NodeAuthorizer) -> None:
    alice = Attributes(
        "alice", ("system:authenticated",), "get", "", "secrets", name="s1", namespace="ns"
    )
    assert authz.authorize(alice).reason == "" and not authz.authorize(alice).allowed
    # a node's name without the group, or the group without the name, is not a node
    assert node_identity("system:node:n1", ("system:authenticated",)) == ("", False)
    assert node_identity("corral:hollow-nodes", ("system:nodes",)) == ("", False)
    nameless = Attributes(
        "system:node:", ("system:nodes",), "get", "", "secrets", name="s1", namespace="ns"
    )
    assert authz.authorize(nameless).reason == 'unknown node for user "system:node:"'
