"""metrics-server's reading of a request for its SubjectAccessReview, and its 403s."""

from __future__ import annotations

import json

import pytest

from corral.metrics.auth import MetricsAttributes, forbidden, request_attributes

P = "/apis/metrics.k8s.io/v1beta1"


@pytest.mark.parametrize(
    ("method", "path", "query", "want"),
    [
        ("GET", f"{P}/nodes", {}, MetricsAttributes("list", f"{P}/nodes", "metrics.k8s.io", "nodes")),
        ("GET", f"{P}/nodes/n1", {}, MetricsAttributes("get", f"{P}/nodes/n1", "metrics.k8s.io", "nodes", name="n1")),
        ("GET", f"{P}/pods", {}, MetricsAttributes("list", f"{P}/pods", "metrics.k8s.io", "pods")),
        ("GET", f"{P}/namespaces/ns/pods", {}, MetricsAttributes("list", f"{P}/namespaces/ns/pods", "metrics.k8s.io", "pods", namespace="ns")),
        ("GET", f"{P}/namespaces/ns/pods/p", {"watch": "true"},
         MetricsAttributes("watch", f"{P}/namespaces/ns/pods/p", "metrics.k8s.io", "pods", name="p", namespace="ns")),
        ("GET", f"{P}/namespaces/ns", {}, MetricsAttributes("get", f"{P}/namespaces/ns", "metrics.k8s.io", "namespaces", name="ns", namespace="ns")),
        ("POST", f"{P}/nodes", {}, MetricsAttributes("post", f"{P}/nodes", "metrics.k8s.io", "nodes")),
        ("GET", P, {}, MetricsAttributes("get", P)),
        ("GET", "/apis", {}, MetricsAttributes("get", "/apis")),
        ("GET", "/openapi/v2", {}, MetricsAttributes("get", "/openapi/v2")),
    ],
    ids=["list-nodes", "get-node", "all-pods", "ns-pods", "watch-pod", "namespace", "post",
         "group-version", "apis", "non-resource"],
)  # fmt: skip
def test_request_attributes(
    method: str, path: str, query: dict[str, str], want: MetricsAttributes
) -> None:
    assert request_attributes(method, path, query) == want


def test_forbidden_messages() -> None:
    named = forbidden("u", request_attributes("GET", f"{P}/nodes/n1", {}), "no rule")
    assert (named.code, named.reason) == (403, "Forbidden")
    assert json.loads(named.body())["message"] == (
        'nodes.metrics.k8s.io "n1" is forbidden: User "u" cannot get resource "nodes" in API '
        'group "metrics.k8s.io" at the cluster scope: no rule'
    )
    path = forbidden("u", request_attributes("GET", "/apis", {}))
    assert json.loads(path.body())["message"] == 'forbidden: User "u" cannot get path "/apis"'
