"""Authorization enforced, with the real kubectl and Python client on one server.

Users act through the admin's impersonation (``kubectl --as``, the client's
``Impersonate-User`` header) or a static token (``--token-auth-file``): a ``view`` user
reads but cannot write, an ``edit`` user creates pods but not roles, an RBAC writer
cannot grant what it does not hold (upstream's escalation message), anonymous reaches
``/version`` and nothing under ``/api``, and a user without the ``impersonate`` verb
cannot act as someone else. Every refusal is upstream's 403 body.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from conftest import Kubectl, Raw, RunningServer, api_client_for, start_rbac_server
from corral.testing.wait import eventually

G = "rbac.authorization.k8s.io"
BOB_TOKEN = "bob-token-0123456789"
NS = "team"


def binding(name: str, kind: str, role: str, user: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "roleRef": {"apiGroup": G, "kind": kind, "name": role},
        "subjects": [{"apiGroup": G, "kind": "User", "name": user}],
    }


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    base = tmp_path_factory.mktemp("authz")
    tokens = base / "tokens.csv"
    tokens.write_text(f'{BOB_TOKEN},bob,uid-bob,"devs"\n')
    s = start_rbac_server(base / "data", "--token-auth-file", str(tokens))
    yield s
    s.stop()


@pytest.fixture(scope="module")
def admin(srv: RunningServer) -> Iterator[Any]:
    with api_client_for(srv.kubeconfig) as c:
        client.CoreV1Api(c).create_namespace({"metadata": {"name": NS}})
        rb = client.RbacAuthorizationV1Api(c)
        rb.create_namespaced_role_binding(NS, binding("viewer", "ClusterRole", "view", "viewer"))
        rb.create_namespaced_role_binding(NS, binding("editor", "ClusterRole", "edit", "editor"))

        def aggregated() -> bool:
            rules = rb.read_cluster_role("edit").rules or []
            return any("pods" in (r.resources or []) and "create" in r.verbs for r in rules)

        eventually(aggregated, timeout=15, interval=0.1)
        yield c


@pytest.fixture(scope="module")
def kctl(srv: RunningServer, admin: Any, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    return Kubectl(srv.kubeconfig, tmp_path_factory.mktemp("kubecache"))


@contextlib.contextmanager
def client_as(kubeconfig: Path, user: str) -> Iterator[Any]:
    """A Python client that impersonates ``user`` through the admin's credentials."""
    with api_client_for(kubeconfig) as c:
        c.set_default_header("Impersonate-User", user)
        yield c


def refusal(e: pytest.ExceptionInfo[ApiException]) -> dict[str, Any]:
    assert e.value.status == 403
    body: dict[str, Any] = json.loads(e.value.body)
    return body


def test_view_user_reads_and_cannot_write(kctl: Kubectl) -> None:
    res = kctl("--as", "viewer", "get", "pods", "-n", NS)
    assert res.returncode == 0
    res = kctl("--as", "viewer", "create", "configmap", "c1", "-n", NS, check=False)
    assert res.returncode != 0
    assert res.stderr.strip() == (
        'error: failed to create configmap: configmaps is forbidden: User "viewer" cannot '
        'create resource "configmaps" in API group "" in the namespace "team"'
    )
    res = kctl("--as", "viewer", "get", "secrets", "-n", NS, check=False)
    assert res.stderr.strip() == (
        'Error from server (Forbidden): secrets is forbidden: User "viewer" cannot list '
        'resource "secrets" in API group "" in the namespace "team"'
    )
    # outside the namespace of the binding, nothing
    res = kctl("--as", "viewer", "get", "pods", "-n", "default", check=False)
    assert "Forbidden" in res.stderr


def test_edit_user_creates_pods_not_roles(srv: RunningServer, admin: Any) -> None:
    pod = {
        "metadata": {"name": "p1"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    }
    with client_as(srv.kubeconfig, "editor") as c:
        core = client.CoreV1Api(c)
        created = core.create_namespaced_pod(NS, pod)
        assert created.metadata.name == "p1"
        assert [p.metadata.name for p in core.list_namespaced_pod(NS).items] == ["p1"]
        role = {
            "metadata": {"name": "r"},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}],
        }
        with pytest.raises(ApiException) as e:
            client.RbacAuthorizationV1Api(c).create_namespaced_role(NS, role)
        body = refusal(e)
        assert body["message"] == (
            f'roles.{G} is forbidden: User "editor" cannot create resource "roles" in API '
            f'group "{G}" in the namespace "team"'
        )
        assert body["details"] == {"group": G, "kind": "roles"}
        with pytest.raises(ApiException) as e:
            core.read_node("n1")
        body = refusal(e)
        assert body["message"] == (
            'nodes "n1" is forbidden: User "editor" cannot get resource "nodes" in API group '
            '"" at the cluster scope'
        )
        assert body["details"] == {"name": "n1", "kind": "nodes"}


def test_escalation_is_refused(srv: RunningServer, kctl: Kubectl, admin: Any) -> None:
    """A user who may write roles in the namespace (not ``escalate``) cannot put in one
    a permission it does not hold; with the rules it holds, it can."""
    rb = client.RbacAuthorizationV1Api(admin)
    rb.create_namespaced_role(
        NS,
        {
            "metadata": {"name": "role-writer"},
            "rules": [
                {"apiGroups": [G], "resources": ["roles"], "verbs": ["create", "get"]},
                {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]},
            ],
        },
    )
    rb.create_namespaced_role_binding(NS, binding("rw", "Role", "role-writer", "rolewriter"))
    kctl("--as", "rolewriter", "create", "role", "cm-reader", "--verb=get",
         "--resource=configmaps", "-n", NS)  # fmt: skip
    res = kctl("--as", "rolewriter", "create", "role", "secret-reader", "--verb=get,list",
               "--resource=secrets", "-n", NS, check=False)  # fmt: skip
    assert res.returncode != 0
    assert (
        f'roles.{G} "secret-reader" is forbidden: user "rolewriter" '
        '(groups=["system:authenticated"]) is attempting to grant RBAC permissions not '
        'currently held:\n{APIGroups:[""], Resources:["secrets"], Verbs:["get" "list"]}'
    ) in res.stderr


def test_anonymous(raw: Raw) -> None:
    status, _, out = raw("GET", "/api", auth=False)
    assert status == 403
    assert json.loads(out) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'forbidden: User "system:anonymous" cannot get path "/api"',
        "reason": "Forbidden",
        "details": {},
        "code": 403,
    }
    status, _, out = raw("GET", "/version", auth=False)
    assert status == 200 and "gitVersion" in json.loads(out)
    status, _, _ = raw("GET", "/healthz", auth=False)
    assert status == 200


def test_impersonation_needs_the_verb(raw: Raw, admin: Any) -> None:
    bob = {"Authorization": f"Bearer {BOB_TOKEN}"}
    status, _, out = raw("GET", "/api/v1/namespaces/team/pods", auth=False,
                         headers={**bob, "Impersonate-User": "viewer"})  # fmt: skip
    assert status == 403
    assert json.loads(out)["message"] == (
        'users "viewer" is forbidden: User "bob" cannot impersonate resource "users" in API '
        'group "" at the cluster scope'
    )
    rb = client.RbacAuthorizationV1Api(admin)
    rb.create_cluster_role(
        {
            "metadata": {"name": "impersonate-viewer"},
            "rules": [
                {
                    "apiGroups": [""],
                    "resources": ["users"],
                    "verbs": ["impersonate"],
                    "resourceNames": ["viewer"],
                }
            ],
        }
    )
    rb.create_cluster_role_binding(binding("bob-imp", "ClusterRole", "impersonate-viewer", "bob"))

    def as_viewer() -> int:
        code, _, _ = raw("GET", "/api/v1/namespaces/team/pods", auth=False,
                         headers={**bob, "Impersonate-User": "viewer"})  # fmt: skip
        return code

    eventually(lambda: as_viewer() == 200, timeout=5, interval=0.05)
    # a group is one more question: bob may not impersonate groups
    status, _, out = raw("GET", "/api/v1/namespaces/team/pods", auth=False,
                         headers={**bob, "Impersonate-User": "viewer",
                                  "Impersonate-Group": "system:masters"})  # fmt: skip
    assert status == 403
    assert json.loads(out)["message"].startswith(
        'groups "system:masters" is forbidden: User "bob" cannot impersonate resource "groups"'
    )
    # and bob himself may do nothing in the namespace
    status, _, _ = raw("GET", "/api/v1/namespaces/team/pods", auth=False, headers=bob)
    assert status == 403


@pytest.fixture(scope="module")
def raw(srv: RunningServer) -> Raw:
    return Raw(srv)
