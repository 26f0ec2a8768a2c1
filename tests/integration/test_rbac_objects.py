"""RBAC API objects with the real kubectl and Python client: the typed ``kubectl create``
commands (sent as protobuf), the bootstrap policy, printer columns, ClusterRole
aggregation by the controller manager, validation answers and roleRef immutability.

One ``corral server`` running only the ``clusterrole-aggregation`` controller; nothing is
authorised by these objects yet (every client shares the admin token).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from conftest import Kubectl, RunningServer, api_client_for, start_rbac_server
from corral.testing.wait import eventually

Obj = dict[str, Any]
VIEW_LABEL = "rbac.authorization.k8s.io/aggregate-to-view"


@pytest.fixture(scope="module")
def rbac_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    srv = start_rbac_server(tmp_path_factory.mktemp("rbac") / "data")
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def kctl(rbac_server: RunningServer, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    return Kubectl(rbac_server.kubeconfig, tmp_path_factory.mktemp("kubecache"))


@pytest.fixture(scope="module")
def rbac(rbac_server: RunningServer) -> Iterator[client.RbacAuthorizationV1Api]:
    with api_client_for(rbac_server.kubeconfig) as api:
        client.CoreV1Api(api).create_namespace({"metadata": {"name": "rbac-t"}})
        yield client.RbacAuthorizationV1Api(api)


def uniq(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def test_bootstrap_roles_listed(kctl: Kubectl) -> None:
    out = kctl("get", "clusterroles").stdout
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "CREATED", "AT"]
    names = {line.split()[0] for line in lines[1:]}
    for name in ("cluster-admin", "admin", "edit", "view", "system:discovery",
                 "system:basic-user", "system:public-info-viewer", "system:node",
                 "system:kube-scheduler", "system:kube-controller-manager"):  # fmt: skip
        assert name in names


def test_cluster_admin_binding_wide(kctl: Kubectl) -> None:
    lines = kctl("get", "clusterrolebinding", "cluster-admin", "-o", "wide").stdout.splitlines()
    assert lines[0].split() == ["NAME", "ROLE", "AGE", "USERS", "GROUPS", "SERVICEACCOUNTS"]
    cells = lines[1].split()
    assert cells[:2] == ["cluster-admin", "ClusterRole/cluster-admin"]
    assert cells[-1] == "system:masters"
    got = json.loads(kctl("get", "clusterrolebinding", "system:public-info-viewer",
                          "-o", "json").stdout)  # fmt: skip
    assert [s["name"] for s in got["subjects"]] == [
        "system:authenticated",
        "system:unauthenticated",
    ]
    assert got["metadata"]["annotations"] == {"rbac.authorization.kubernetes.io/autoupdate": "true"}


def test_kubectl_create_typed(kctl: Kubectl, rbac: client.RbacAuthorizationV1Api) -> None:
    role, crole = uniq("reader"), uniq("logs")
    kctl("create", "role", role, "-n", "rbac-t", "--verb=get,list", "--resource=pods")
    kctl("create", "clusterrole", crole, "--verb=get", "--non-resource-url=/logs/*")
    kctl("create", "rolebinding", role, "-n", "rbac-t", f"--role={role}", "--user=alice",
         "--serviceaccount=rbac-t:default")  # fmt: skip
    kctl("create", "clusterrolebinding", crole, f"--clusterrole={crole}", "--group=devs")

    r = rbac.read_namespaced_role(role, "rbac-t")
    assert [(x.api_groups, x.resources, x.verbs) for x in r.rules] == [
        ([""], ["pods"], ["get", "list"])
    ]
    cr = rbac.read_cluster_role(crole)
    assert [(x.non_resource_urls, x.verbs) for x in cr.rules] == [(["/logs/*"], ["get"])]
    rb = rbac.read_namespaced_role_binding(role, "rbac-t")
    assert (rb.role_ref.kind, rb.role_ref.name) == ("Role", role)
    assert [(s.kind, s.name, s.namespace) for s in rb.subjects] == [
        ("User", "alice", None),
        ("ServiceAccount", "default", "rbac-t"),
    ]
    lines = kctl("get", "rolebinding", role, "-n", "rbac-t", "-o", "wide").stdout.splitlines()
    cells = lines[1].split()
    assert cells[1] == f"Role/{role}"
    assert cells[3:] == ["alice", "rbac-t:default"]  # no groups: an empty cell
    crb = rbac.read_cluster_role_binding(crole)
    assert [(s.kind, s.name) for s in crb.subjects] == [("Group", "devs")]
    roles = kctl("get", "roles", "-n", "rbac-t").stdout.splitlines()
    assert roles[0].split() == ["NAME", "CREATED", "AT"]


def test_aggregation_into_view_edit_admin(
    kctl: Kubectl, rbac: client.RbacAuthorizationV1Api
) -> None:
    name = uniq("widgets-view")
    rule = {"apiGroups": ["example.com"], "resources": [name], "verbs": ["get", "list"]}
    rbac.create_cluster_role(
        {"metadata": {"name": name, "labels": {VIEW_LABEL: "true"}}, "rules": [rule]}
    )

    def rules_of(role: str) -> list[Obj]:
        got = json.loads(kctl("get", "clusterrole", role, "-o", "json").stdout)
        return list(got.get("rules") or [])

    for role in ("view", "edit", "admin"):  # view is labelled into edit, edit into admin
        eventually(lambda role=role: rule in rules_of(role), timeout=10)
    view = rules_of("view")
    # the bootstrap system:aggregate-to-view rules are there too
    assert {
        "apiGroups": [""],
        "resources": ["namespaces"],
        "verbs": ["get", "list", "watch"],
    } in view
    # unlabelling removes the rule again
    rbac.patch_cluster_role(name, {"metadata": {"labels": {VIEW_LABEL: None}}})
    eventually(lambda: rule not in rules_of("view"), timeout=10)


def test_invalid_binding_is_422(kctl: Kubectl, rbac: client.RbacAuthorizationV1Api) -> None:
    body = {
        "metadata": {"name": "bad"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "x"},
        "subjects": [{"kind": "ServiceAccount", "name": "default"}],
    }
    with pytest.raises(ApiException) as exc:
        rbac.create_cluster_role_binding(body)
    assert exc.value.status == 422
    status = json.loads(exc.value.body)
    assert status["reason"] == "Invalid"
    assert status["message"] == (
        'ClusterRoleBinding.rbac.authorization.k8s.io "bad" is invalid: '
        '[roleRef.kind: Unsupported value: "Role": supported values: "ClusterRole", '
        "subjects[0].namespace: Required value]"
    )
    assert [c["field"] for c in status["details"]["causes"]] == [
        "roleRef.kind",
        "subjects[0].namespace",
    ]


def test_role_ref_immutable(kctl: Kubectl) -> None:
    name = uniq("imm")
    kctl("create", "clusterrolebinding", name, "--clusterrole=view", "--user=bob")
    res = kctl("patch", "clusterrolebinding", name, "--type=merge",
               "-p", '{"roleRef":{"name":"edit"}}', check=False)  # fmt: skip
    assert res.returncode != 0
    assert (
        f'The ClusterRoleBinding "{name}" is invalid: roleRef: Invalid value: '
        'rbac.RoleRef{APIGroup:"rbac.authorization.k8s.io", Kind:"ClusterRole", '
        'Name:"edit"}: cannot change roleRef'
    ) in res.stderr
    # subjects may change
    kctl("patch", "clusterrolebinding", name, "--type=merge",
         "-p", '{"subjects":[{"kind":"User","apiGroup":"rbac.authorization.k8s.io","name":"carol"}]}')  # fmt: skip


def test_binding_defaults(kctl: Kubectl) -> None:
    """rbac/v1 defaulting: roleRef.apiGroup and a User/Group subject's apiGroup may be
    left out (upstream fills them in)."""
    name = uniq("dflt")
    manifest = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": name, "namespace": "default"},
        "roleRef": {"kind": "Role", "name": "r"},
        "subjects": [{"kind": "User", "name": "jane"}, {"kind": "Group", "name": "devs"}],
    }
    kctl("create", "-f", "-", input=json.dumps(manifest))
    out = json.loads(kctl("get", "rolebinding", name, "-n", "default", "-o", "json").stdout)
    g = "rbac.authorization.k8s.io"
    assert out["roleRef"] == {"apiGroup": g, "kind": "Role", "name": "r"}
    assert [s["apiGroup"] for s in out["subjects"]] == [g, g]
