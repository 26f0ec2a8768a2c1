"""APIServices (apiregistration.k8s.io/v1) on the real server: validation with upstream's
paths and messages, the local registrations of built-in group-versions, the Available
condition of an APIService whose Service has no endpoints (and the 503 its proxy
answers), the Python client's ``create_from_yaml`` of an APIService manifest, and
``kubectl top`` over hollow nodes (the real-pod form is tests/e2e/test_kubectl_top.py)."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import Kubectl, Raw, start_server

APIS = "/apis/apiregistration.k8s.io/v1/apiservices"


def _apiservice(name: str, **spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "group": "example.corral.dev",
        "version": "v1alpha1",
        "groupPriorityMinimum": 100,
        "versionPriority": 100,
        "service": {"namespace": "default", "name": "nowhere", "port": 443},
        "insecureSkipTLSVerify": True,
    }
    base.update(spec)
    return {
        "apiVersion": "apiregistration.k8s.io/v1",
        "kind": "APIService",
        "metadata": {"name": name},
        "spec": base,
    }


def _causes(body: bytes) -> list[tuple[str, str]]:
    st = json.loads(body)
    assert st["kind"] == "Status" and st["reason"] == "Invalid", st
    return [(c["field"], c["message"]) for c in st["details"]["causes"]]


INVALID = [
    (
        "name-not-version-group",
        _apiservice("v1.wrong.corral.dev"),
        (
            "metadata.name",
            'Invalid value: "v1.wrong.corral.dev": must be `spec.version+"."+spec.group`: '
            '"v1alpha1.example.corral.dev"',
        ),
    ),
    (
        "group-priority",
        _apiservice("v1alpha1.example.corral.dev", groupPriorityMinimum=20001),
        ("spec.groupPriorityMinimum", "Invalid value: 20001: must be positive and less than 20000"),
    ),
    (
        "version-priority",
        _apiservice("v1alpha1.example.corral.dev", versionPriority=0),
        ("spec.versionPriority", "Invalid value: 0: must be positive and less than 1000"),
    ),
    (
        "ca-and-insecure",
        _apiservice("v1alpha1.example.corral.dev", caBundle="YWJj"),
        (
            "spec.insecureSkipTLSVerify",
            "Invalid value: true: may not be true if caBundle is present",
        ),
    ),
    (
        "local-with-insecure",
        _apiservice("v1alpha1.example.corral.dev", service=None),
        (
            "spec.insecureSkipTLSVerify",
            "Invalid value: true: local APIServices may not have insecureSkipTLSVerify",
        ),
    ),
    (
        "port-range",
        _apiservice(
            "v1alpha1.example.corral.dev",
            service={"namespace": "default", "name": "x", "port": 70000},
        ),
        (
            "spec.service.port",
            "Invalid value: 70000: port is not valid: must be between 1 and 65535, inclusive",
        ),
    ),
    (
        "service-name-required",
        _apiservice("v1alpha1.example.corral.dev", service={"namespace": "default"}),
        ("spec.service.name", "Required value"),
    ),
    (
        "empty-group",
        _apiservice("v2.", group="", version="v2"),
        (
            "spec.group",
            "Required value: only v1 may have an empty group and it better be legacy kube",
        ),
    ),
]


@pytest.mark.parametrize(
    "obj,cause", [(o, c) for _, o, c in INVALID], ids=[i for i, _, _ in INVALID]
)
def test_invalid_apiservice_is_422(raw: Raw, obj: dict[str, Any], cause: tuple[str, str]) -> None:
    code, _, body = raw("POST", APIS, obj)
    assert code == 422, body
    assert cause in _causes(body)


def _wait_condition(raw: Raw, name: str, want: str, timeout: float = 15.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    cond: dict[str, Any] = {}
    while time.monotonic() < deadline:
        code, _, body = raw("GET", f"{APIS}/{name}")
        assert code == 200, body
        conds = json.loads(body).get("status", {}).get("conditions") or []
        cond = next((c for c in conds if c["type"] == "Available"), {})
        if cond.get("reason") == want:
            return cond
        time.sleep(0.1)
    raise AssertionError(f"{name}: Available is {cond}, wanted reason {want}")


def test_builtin_group_versions_are_local_and_available(raw: Raw, kubectl: Kubectl) -> None:
    cond = _wait_condition(raw, "v1.apps", "Local")
    assert cond["status"] == "True"
    code, _, body = raw("GET", f"{APIS}/v1.")
    assert code == 200
    assert json.loads(body)["spec"].get("service") is None  # omitempty, as upstream
    out = kubectl("get", "apiservices").stdout
    assert out.splitlines()[0].split() == ["NAME", "SERVICE", "AVAILABLE", "AGE"]
    assert any(line.split()[:3] == ["v1.apps", "Local", "True"] for line in out.splitlines())


def test_apiservice_without_endpoints_is_unavailable(raw: Raw, kubectl: Kubectl) -> None:
    name = "v1alpha1.noendpoints.corral.dev"
    svc = {
        "metadata": {"name": "noendpoints", "namespace": "default"},
        "spec": {"ports": [{"name": "https", "port": 443, "targetPort": 8443}]},
    }
    assert raw("POST", "/api/v1/namespaces/default/services", svc)[0] == 201
    obj = _apiservice(
        name,
        group="noendpoints.corral.dev",
        service={"namespace": "default", "name": "noendpoints", "port": 443},
    )
    try:
        code, _, body = raw("POST", APIS, obj)
        assert code == 201, body
        cond = _wait_condition(raw, name, "EndpointsNotFound")
        assert cond["status"] == "False"
        assert cond["message"] == 'cannot find endpoints for service/noendpoints in "default"'
        ep = {"metadata": {"name": "noendpoints", "namespace": "default"}, "subsets": []}
        assert raw("POST", "/api/v1/namespaces/default/endpoints", ep)[0] == 201
        cond = _wait_condition(raw, name, "MissingEndpoints")
        assert cond["message"] == (
            'endpoints for service/noendpoints in "default" have no addresses with port name "https"'
        )
        # the group-version is claimed: its requests are proxied, and nothing answers
        code, _, body = raw("GET", "/apis/noendpoints.corral.dev/v1alpha1/things")
        assert code == 503, body
        st = json.loads(body)
        assert (st["reason"], st["message"]) == ("ServiceUnavailable", "service unavailable")
        out = kubectl("get", "apiservice", name).stdout
        row = out.splitlines()[1].split()
        assert row[:4] == [name, "default/noendpoints", "False", "(MissingEndpoints)"]
    finally:
        raw("DELETE", f"{APIS}/{name}")
        raw("DELETE", "/api/v1/namespaces/default/services/noendpoints")
        raw("DELETE", "/api/v1/namespaces/default/endpoints/noendpoints")


def test_create_from_yaml_of_an_apiservice(api_client: Any, raw: Raw, tmp_path: Path) -> None:
    from kubernetes import utils

    name = "v1beta1.fromyaml.corral.dev"
    doc = _apiservice(name, group="fromyaml.corral.dev", version="v1beta1")
    path = tmp_path / "apiservice.yaml"
    path.write_text(yaml.safe_dump(doc))
    try:
        created = utils.create_from_yaml(api_client, str(path))
        assert created[0][0].metadata.name == name
        code, _, body = raw("GET", f"{APIS}/{name}")
        assert code == 200
        assert json.loads(body)["spec"]["service"]["port"] == 443
    finally:
        raw("DELETE", f"{APIS}/{name}")


@pytest.fixture(scope="module")
def hollow_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Kubectl, Raw]]:
    """A server with 3 hollow nodes and the metrics server at a 1 s resolution."""
    base = tmp_path_factory.mktemp("metrics-hollow")
    srv = start_server(base / "data", extra=["--hollow-nodes", "3", "--metric-resolution", "1s"])
    try:
        yield Kubectl(srv.kubeconfig, base / "kubecache"), Raw(srv)
    finally:
        srv.stop()


def test_kubectl_top_of_hollow_nodes(hollow_cluster: tuple[Kubectl, Raw]) -> None:
    """Simulated nodes report usage derived from their pods' requests, through the whole
    path: agent exposition, scrape, APIService, aggregation proxy, kubectl."""
    kubectl, raw = hollow_cluster
    pod = {
        "metadata": {"name": "busy", "namespace": "default", "labels": {"app": "busy"}},
        "spec": {
            "nodeName": "hollow-1",
            "containers": [
                {
                    "name": "main",
                    "image": "busybox",
                    "resources": {"requests": {"cpu": "400m", "memory": "100Mi"}},
                }
            ],
        },
    }
    assert raw("POST", "/api/v1/namespaces/default/pods", pod)[0] == 201
    deadline = time.monotonic() + 20
    out = ""
    while time.monotonic() < deadline:
        res = kubectl("top", "pods", "-n", "default", "-l", "app=busy", check=False)
        out = res.stdout + res.stderr
        rows = [line.split() for line in res.stdout.splitlines()[1:]]
        if res.returncode == 0 and rows:
            # half the CPU request (200m), 60 % of the memory request (60Mi)
            assert rows[0][:3] == ["busy", "200m", "60Mi"], out
            break
        time.sleep(0.3)
    else:
        raise AssertionError(f"kubectl top pods: {out}")
    nodes = [line.split()[0] for line in kubectl("top", "nodes").stdout.splitlines()[1:]]
    assert sorted(nodes) == ["hollow-0", "hollow-1", "hollow-2"]
    # discovery: aggregated (what kubectl 1.32 asks for first) and legacy
    agg = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
    code, _, body = raw("GET", "/apis", headers={"Accept": agg})
    assert code == 200
    group = next(i for i in json.loads(body)["items"] if i["metadata"]["name"] == "metrics.k8s.io")
    [version] = group["versions"]
    assert version["version"] == "v1beta1"
    assert [
        (r["resource"], r["scope"], r["responseKind"]["kind"]) for r in version["resources"]
    ] == [
        ("nodes", "Cluster", "NodeMetrics"),
        ("pods", "Namespaced", "PodMetrics"),
    ]
    code, _, body = raw("GET", "/apis/metrics.k8s.io")
    assert code == 200 and json.loads(body)["preferredVersion"]["version"] == "v1beta1"
    code, _, body = raw("GET", "/apis/metrics.k8s.io/v1beta1/nodes/nosuch")
    assert code == 404
    assert json.loads(body)["message"] == 'nodes.metrics.k8s.io "nosuch" not found'


def test_metrics_apiservice_is_verified_and_answers_upstream_404s(
    hollow_cluster: tuple[Kubectl, Raw],
) -> None:
    """The metrics server's certificate comes from the cluster CA: its APIService carries
    that caBundle and no insecureSkipTLSVerify, and is Available (the aggregator verified
    the server name metrics-server.kube-system.svc). Missing pod metrics answer
    metrics-server's 404s; a hollow pod's logs answer a Status, not plain text."""
    kubectl, raw = hollow_cluster
    _wait_condition(raw, "v1beta1.metrics.k8s.io", "Passed")
    api = json.loads(raw("GET", f"{APIS}/v1beta1.metrics.k8s.io")[2])
    assert "insecureSkipTLSVerify" not in api["spec"]
    config = yaml.safe_load(Path(kubectl.kubeconfig).read_text())
    ca = config["clusters"][0]["cluster"]["certificate-authority-data"]
    assert base64.b64decode(api["spec"]["caBundle"]) == base64.b64decode(ca)
    ghost = {
        "metadata": {"name": "ghost", "namespace": "default"},
        "spec": {"nodeName": "no-such-node", "containers": [{"name": "c", "image": "busybox"}]},
    }
    assert raw("POST", "/api/v1/namespaces/default/pods", ghost)[0] == 201
    base = "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods"
    code, _, body = raw("GET", f"{base}/ghost")
    assert code == 404
    assert json.loads(body)["message"] == 'pods.metrics.k8s.io "default/ghost" not found'
    code, _, body = raw("GET", f"{base}/nosuch")
    assert code == 404 and json.loads(body)["message"] == 'pods "nosuch" not found'
    res = kubectl("logs", "busy", "-n", "default", check=False)
    assert res.returncode != 0
    assert 'hollow pod "default/busy" runs no containers' in res.stderr, res.stderr


def _direct(raw: Raw, path: str, token: str | None) -> tuple[int, dict[str, Any]]:
    """GET ``path`` from metrics-server itself (its Endpoints' address), not through the
    aggregator, with ``token`` as the bearer token (None: no credentials)."""
    import urllib.error
    import urllib.request

    ep = json.loads(raw("GET", "/api/v1/namespaces/kube-system/endpoints/metrics-server")[2])
    [subset] = ep["subsets"]
    ip, port = subset["addresses"][0]["ip"], subset["ports"][0]["port"]
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    req = urllib.request.Request(f"https://{ip}:{port}{path}", headers=headers)
    try:
        with urllib.request.urlopen(req, context=raw.ctx, timeout=20) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_metrics_server_authenticates_and_authorizes_callers(
    hollow_cluster: tuple[Kubectl, Raw],
) -> None:
    """metrics-server asks the API server about each caller (TokenReview, then
    SubjectAccessReview), as upstream's delegated authentication and authorization: no
    token or a bad one is 401, a ServiceAccount allowed to list node metrics only gets
    nodes and a 403 with upstream's words for pods."""
    _, raw = hollow_cluster
    _wait_condition(raw, "v1beta1.metrics.k8s.io", "Passed")
    nodes = "/apis/metrics.k8s.io/v1beta1/nodes"
    assert _direct(raw, nodes, None)[0] == 401
    assert _direct(raw, nodes, "not-a-token")[0] == 401
    sa = "metrics-node-reader"
    assert (
        raw("POST", "/api/v1/namespaces/default/serviceaccounts", {"metadata": {"name": sa}})[0]
        == 201
    )
    rbac = "/apis/rbac.authorization.k8s.io/v1"
    role = {
        "metadata": {"name": sa},
        "rules": [{"apiGroups": ["metrics.k8s.io"], "resources": ["nodes"], "verbs": ["list"]}],
    }
    assert raw("POST", f"{rbac}/clusterroles", role)[0] == 201
    binding = {
        "metadata": {"name": sa},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": sa},
        "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": "default"}],
    }
    assert raw("POST", f"{rbac}/clusterrolebindings", binding)[0] == 201
    code, _, body = raw(
        "POST", f"/api/v1/namespaces/default/serviceaccounts/{sa}/token", {"spec": {}}
    )
    assert code == 201, body
    token = json.loads(body)["status"]["token"]
    code, out = _direct(raw, nodes, token)
    assert code == 200 and out["kind"] == "NodeMetricsList", out
    code, out = _direct(raw, "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods", token)
    assert code == 403
    assert out["message"] == (
        'pods.metrics.k8s.io is forbidden: User "system:serviceaccount:default:metrics-node-reader" '
        'cannot list resource "pods" in API group "metrics.k8s.io" in the namespace "default"'
    ), out
    assert out["details"] == {"group": "metrics.k8s.io", "kind": "pods"}
