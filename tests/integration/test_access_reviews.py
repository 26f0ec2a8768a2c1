"""The access reviews with the real kubectl and Python client: ``kubectl auth can-i``
(SelfSubjectAccessReview), ``kubectl auth can-i --list`` (SelfSubjectRulesReview),
``kubectl auth whoami`` (SelfSubjectReview), SubjectAccessReview and
LocalSubjectAccessReview decided by RBAC over the bootstrap policy and a RoleBinding,
their discovery and their refusals.

One ``corral server`` running only the ``clusterrole-aggregation`` controller (which
fills ClusterRole ``view``); the clients here are the admin (enforcement itself is
tested in ``test_authorization.py``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from conftest import Kubectl, Raw, RunningServer, api_client_for, start_rbac_server
from corral.testing.wait import eventually

Obj = dict[str, Any]
JANE_VIEW = 'RBAC: allowed by RoleBinding "jane-view/ns1" of ClusterRole "view" to User "jane"'


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    s = start_rbac_server(tmp_path_factory.mktemp("reviews") / "data")
    yield s
    s.stop()


@pytest.fixture(scope="module")
def kctl(srv: RunningServer, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    return Kubectl(srv.kubeconfig, tmp_path_factory.mktemp("kubecache"))


@pytest.fixture(scope="module")
def api(srv: RunningServer) -> Iterator[Any]:
    with api_client_for(srv.kubeconfig) as c:
        core = client.CoreV1Api(c)
        for name in ("ns1", "ns2"):
            core.create_namespace({"metadata": {"name": name}})
        client.RbacAuthorizationV1Api(c).create_namespaced_role_binding(
            "ns1",
            {
                "metadata": {"name": "jane-view"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": "view",
                },
                "subjects": [
                    {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "jane"}
                ],
            },
        )
        rbac = client.RbacAuthorizationV1Api(c)

        def view_aggregated() -> bool:
            rules = rbac.read_cluster_role("view").rules or []
            return any("pods" in (r.resources or []) and "get" in r.verbs for r in rules)

        eventually(view_aggregated, timeout=10, interval=0.1)
        yield c


def test_can_i(kctl: Kubectl) -> None:
    res = kctl("auth", "can-i", "create", "pods")
    assert res.stdout.strip() == "yes"
    res = kctl("auth", "can-i", "get", "/healthz")
    assert res.stdout.strip() == "yes"


@pytest.mark.parametrize(
    ("args", "attributes"),
    [
        (
            ["get", "pods/web", "--subresource=log", "-n", "ns1"],
            {
                "namespace": "ns1",
                "verb": "get",
                "resource": "pods",
                "subresource": "log",
                "name": "web",
            },
        ),
        (
            ["list", "deployments.apps", "-n", "ns2"],
            {"namespace": "ns2", "verb": "list", "group": "apps", "resource": "deployments"},
        ),
    ],
)
def test_can_i_protobuf_body(kctl: Kubectl, args: list[str], attributes: Obj) -> None:
    """kubectl sends the review as protobuf: the answer echoes the spec it decoded to."""
    res = kctl("auth", "can-i", *args, "-v=8")
    assert res.stdout.strip() == "yes"
    bodies = [
        ln
        for ln in res.stderr.splitlines()
        if '"Response Body"' in ln and "SelfSubjectAccessReview" in ln
    ]
    assert len(bodies) == 1
    answer = json.loads(json.loads(bodies[0].split("body=", 1)[1]))
    assert answer["spec"] == {"resourceAttributes": attributes}


def test_impersonation(kctl: Kubectl, api: Any) -> None:
    """kubectl --as / --as-group: the reviews answer for the impersonated identity
    (``api`` makes the RoleBinding jane-view in ns1)."""
    out = json.loads(
        kctl("auth", "whoami", "--as", "jane", "--as-group", "devs", "-o", "json").stdout
    )
    assert out["status"]["userInfo"] == {
        "username": "jane",
        "groups": ["devs", "system:authenticated"],
    }
    res = kctl("auth", "can-i", "create", "pods", "--as", "jane", check=False)
    assert (res.returncode, res.stdout.strip()) == (1, "no")
    res = kctl("auth", "can-i", "get", "pods", "-n", "ns1", "--as", "jane")
    assert res.stdout.strip() == "yes"


def test_can_i_list(kctl: Kubectl) -> None:
    lines = [ln.split() for ln in kctl("auth", "can-i", "--list").stdout.splitlines()]
    assert lines[0] == ["Resources", "Non-Resource", "URLs", "Resource", "Names", "Verbs"]
    assert ["*.*", "[]", "[]", "[*]"] in lines  # cluster-admin
    assert ["[*]", "[]", "[*]"] in lines
    # system:basic-user, through system:authenticated
    assert ["selfsubjectaccessreviews.authorization.k8s.io", "[]", "[]", "[create]"] in lines


def test_whoami(kctl: Kubectl) -> None:
    out = json.loads(kctl("auth", "whoami", "-o", "json").stdout)
    assert out["kind"] == "SelfSubjectReview"
    assert out["status"]["userInfo"] == {
        "username": "admin",
        "groups": ["system:masters", "system:authenticated"],
    }
    table = kctl("auth", "whoami").stdout
    rows = [ln.split(None, 1) for ln in table.splitlines()]
    assert rows == [
        ["ATTRIBUTE", "VALUE"],
        ["Username", "admin"],
        ["Groups", "[system:masters system:authenticated]"],
    ]


@pytest.mark.parametrize(
    ("verb", "namespace", "allowed", "reason"),
    [
        ("get", "ns1", True, JANE_VIEW),
        ("list", "ns1", True, JANE_VIEW),
        ("create", "ns1", False, None),
        ("get", "ns2", False, None),
    ],
)
def test_subject_access_review(
    api: Any, verb: str, namespace: str, allowed: bool, reason: str | None
) -> None:
    authz: Any = client.AuthorizationV1Api(api)
    body = client.V1SubjectAccessReview(
        spec=client.V1SubjectAccessReviewSpec(
            user="jane",
            resource_attributes=client.V1ResourceAttributes(
                namespace=namespace, verb=verb, resource="pods"
            ),
        )
    )
    out = authz.create_subject_access_review(body)
    assert (out.status.allowed, out.status.reason, out.status.denied) == (allowed, reason, None)
    local = client.V1LocalSubjectAccessReview(spec=body.spec)
    out = authz.create_namespaced_local_subject_access_review(namespace, local)
    assert (out.status.allowed, out.status.reason) == (allowed, reason)


def test_local_review_namespaces(api: Any) -> None:
    """The object's namespace must be the path's, and the spec's the object's (as
    upstream's ValidateLocalSubjectAccessReview)."""
    authz: Any = client.AuthorizationV1Api(api)
    spec = client.V1SubjectAccessReviewSpec(
        user="jane",
        resource_attributes=client.V1ResourceAttributes(
            namespace="ns1", verb="get", resource="pods"
        ),
    )
    with pytest.raises(ApiException) as e:
        authz.create_namespaced_local_subject_access_review(
            "ns2",
            client.V1LocalSubjectAccessReview(
                metadata=client.V1ObjectMeta(namespace="ns1"), spec=spec
            ),
        )
    assert e.value.status == 400
    assert json.loads(e.value.body or "{}")["message"] == (
        "the namespace of the provided object does not match the namespace sent on the request"
    )
    with pytest.raises(ApiException) as e:
        authz.create_namespaced_local_subject_access_review(
            "ns2", client.V1LocalSubjectAccessReview(spec=spec)
        )
    assert e.value.status == 422
    assert json.loads(e.value.body or "{}")["message"] == (
        '.authorization.k8s.io "" is invalid: spec.resourceAttributes.namespace: '
        'Invalid value: "ns1": must match metadata.namespace'
    )
    out = authz.create_namespaced_local_subject_access_review(
        "ns1", client.V1LocalSubjectAccessReview(spec=spec)
    )
    assert (out.metadata.namespace, out.status.allowed, out.status.reason) == (
        "ns1",
        True,
        JANE_VIEW,
    )


def test_invalid_review(srv: RunningServer) -> None:
    raw = Raw(srv)
    code, _, body = raw(
        "POST",
        "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
        {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview", "spec": {}},
    )
    status = json.loads(body)
    assert (code, status["reason"]) == (422, "Invalid")
    assert status["message"] == (
        '.authorization.k8s.io "" is invalid: spec.resourceAttributes: '
        'Invalid value: "null": exactly one of nonResourceAttributes or resourceAttributes '
        "must be specified"
    )
    # create only, and nothing is stored
    code, _, _ = raw("GET", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews")
    assert code == 405


def test_explain(kctl: Kubectl) -> None:
    """The review kinds are in OpenAPI: kubectl explain finds them."""
    out = kctl("explain", "selfsubjectaccessreviews.spec").stdout
    assert "KIND:       SelfSubjectAccessReview" in out
    assert "resourceAttributes" in out


def test_discovery(srv: RunningServer) -> None:
    raw = Raw(srv)
    _, _, body = raw("GET", "/apis/authorization.k8s.io/v1")
    listed = {r["name"]: (r["verbs"], r["namespaced"]) for r in json.loads(body)["resources"]}
    assert listed == {
        "localsubjectaccessreviews": (["create"], True),
        "selfsubjectaccessreviews": (["create"], False),
        "selfsubjectrulesreviews": (["create"], False),
        "subjectaccessreviews": (["create"], False),
    }
    _, _, body = raw("GET", "/apis/authentication.k8s.io/v1")
    names = [r["name"] for r in json.loads(body)["resources"]]
    assert "selfsubjectreviews" in names
