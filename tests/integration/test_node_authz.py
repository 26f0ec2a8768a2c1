"""The Node authorizer and NodeRestriction admission with the real kubectl and Python
client, acting as agent ``n1`` through impersonation (``--as=system:node:n1
--as-group=system:nodes``): n1 reads the Secret of a pod bound to it and not another's,
cannot list Secrets, lists only its own pods, updates its own Node's status and Lease
and not n2's, and cannot delete a pod bound to n2.

One ``corral server`` without scheduler, controllers or agents: the pods are bound by
setting ``spec.nodeName`` and never run.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from conftest import Kubectl, RunningServer, api_client_for, start_server

NS = "node-authz"
AS_N1 = ["--as=system:node:n1", "--as-group=system:nodes"]


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    s = start_server(tmp_path_factory.mktemp("nodeauthz") / "data", extra=["--no-scheduler"])
    with api_client_for(s.kubeconfig) as api:
        core = client.CoreV1Api(api)
        core.create_namespace({"metadata": {"name": NS}})
        for n in ("n1", "n2"):
            core.create_node({"metadata": {"name": n}})
            core.create_namespaced_secret(NS, {"metadata": {"name": f"s-{n}"}, "data": {}})
            pod = {
                "metadata": {"name": f"p-{n}"},
                "spec": {
                    "nodeName": n,
                    "containers": [{"name": "c", "image": "busybox"}],
                    "volumes": [{"name": "v", "secret": {"secretName": f"s-{n}"}}],
                },
            }
            core.create_namespaced_pod(NS, pod)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def kctl(srv: RunningServer, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    return Kubectl(srv.kubeconfig, tmp_path_factory.mktemp("kubecache"))


@pytest.fixture(scope="module")
def n1(srv: RunningServer) -> Iterator[client.CoreV1Api]:
    """The Python client acting as node n1."""
    with api_client_for(srv.kubeconfig) as api:
        api.set_default_header("Impersonate-User", "system:node:n1")
        api.set_default_header("Impersonate-Group", "system:nodes")
        yield client.CoreV1Api(api)


def forbidden(call: Any, *args: Any, **kw: Any) -> str:
    with pytest.raises(ApiException) as e:
        call(*args, **kw)
    assert e.value.status == 403, e.value.body
    body = json.loads(e.value.body)
    assert body["reason"] == "Forbidden"
    return str(body["message"])


def test_node_reads_only_the_secrets_of_its_pods(kctl: Kubectl) -> None:
    out = kctl("get", "secret", "s-n1", "-n", NS, "-o", "name", *AS_N1).stdout
    assert out.strip() == "secret/s-n1"
    res = kctl("get", "secret", "s-n2", "-n", NS, *AS_N1, check=False)
    assert res.returncode != 0
    assert (
        'secrets "s-n2" is forbidden: User "system:node:n1" cannot get resource "secrets" '
        'in API group "" in the namespace "node-authz": no relationship found between '
        "node 'n1' and this object"
    ) in res.stderr
    res = kctl("get", "secrets", "-n", NS, *AS_N1, check=False)
    assert res.returncode != 0
    assert 'User "system:node:n1" cannot list resource "secrets"' in res.stderr


def test_node_lists_only_its_pods(n1: client.CoreV1Api) -> None:
    pods = n1.list_pod_for_all_namespaces(field_selector="spec.nodeName=n1")
    assert [p.metadata.name for p in pods.items] == ["p-n1"]
    msg = forbidden(n1.list_pod_for_all_namespaces)
    assert msg.endswith("can only list/watch pods with spec.nodeName field selector")


def test_node_updates_only_its_own_node(n1: client.CoreV1Api) -> None:
    cond = {"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "ok"}
    got = n1.patch_node_status("n1", {"status": {"conditions": [cond]}})
    assert [c.type for c in got.status.conditions] == ["Ready"]
    msg = forbidden(n1.patch_node_status, "n2", {"status": {"conditions": [cond]}})
    assert msg == 'nodes "n2" is forbidden: node "n1" is not allowed to modify node "n2"'
    msg = forbidden(
        n1.patch_node, "n1", {"spec": {"taints": [{"key": "k", "effect": "NoSchedule"}]}}
    )
    assert msg == 'nodes "n1" is forbidden: node "n1" is not allowed to modify taints'


def test_node_cannot_delete_a_pod_of_another_node(n1: client.CoreV1Api) -> None:
    msg = forbidden(n1.delete_namespaced_pod, "p-n2", NS)
    assert msg == (
        'pods "p-n2" is forbidden: node "n1" can only delete pods with spec.nodeName set to itself'
    )


def test_node_lease(srv: RunningServer) -> None:
    with api_client_for(srv.kubeconfig) as api:
        api.set_default_header("Impersonate-User", "system:node:n1")
        api.set_default_header("Impersonate-Group", "system:nodes")
        leases = client.CoordinationV1Api(api)
        body = {"metadata": {"name": "n1"}, "spec": {"holderIdentity": "n1"}}
        leases.create_namespaced_lease("kube-node-lease", body)
        leases.patch_namespaced_lease(
            "n1", "kube-node-lease", {"spec": {"leaseDurationSeconds": 40}}
        )
        other = {"metadata": {"name": "n2"}, "spec": {"holderIdentity": "n1"}}
        msg = forbidden(leases.create_namespaced_lease, "kube-node-lease", other)
        assert msg == (
            'leases.coordination.k8s.io "n2" is forbidden: can only access node lease with '
            "the same name as the requesting node"
        )
