"""``apiserver_request_duration_seconds`` of a real server, written by the ``kubernetes``
client and kubectl, read with ``kubectl get --raw /metrics`` as an operator would."""

from __future__ import annotations

import re

from kubernetes import client


def _counts(text: str, resource: str) -> dict[tuple[str, str, str, str], int]:
    """(verb, subresource, scope, dry_run) -> count, of ``resource``'s series."""
    out = {}
    for m in re.finditer(
        r"^apiserver_request_duration_seconds_count\{([^}]*)\} (\d+)$", text, re.M
    ):
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
        if labels["resource"] == resource and labels["component"] == "apiserver":
            key = (labels["verb"], labels["subresource"], labels["scope"], labels["dry_run"])
            out[key] = int(m.group(2))
    return out


def test_requests_are_observed_by_verb_scope_and_dry_run(kubectl, api_client, ns) -> None:  # type: ignore[no-untyped-def]
    before = _counts(kubectl("get", "--raw", "/metrics").stdout, "configmaps")
    v1 = client.CoreV1Api(api_client)
    v1.create_namespaced_config_map(ns, {"metadata": {"name": "m"}, "data": {"a": "1"}})
    v1.patch_namespaced_config_map("m", ns, {"data": {"a": "2"}})
    v1.read_namespaced_config_map("m", ns)
    v1.list_namespaced_config_map(ns)
    kubectl("create", "configmap", "dry", "-n", ns, "--dry-run=server", "--from-literal=a=b")
    kubectl("apply", "--server-side", "-n", ns, "-f", "-", input=APPLIED)
    text = kubectl("get", "--raw", "/metrics").stdout
    assert "# TYPE apiserver_request_duration_seconds histogram" in text
    after = _counts(text, "configmaps")
    grew = {k: after[k] - before.get(k, 0) for k in after if after[k] > before.get(k, 0)}
    for key in (
        ("POST", "", "resource", ""),
        ("PATCH", "", "resource", ""),
        ("GET", "", "resource", ""),
        ("LIST", "", "namespace", ""),
        ("POST", "", "resource", "All"),
        ("APPLY", "", "resource", ""),
    ):
        assert grew.get(key, 0) >= 1, f"{key} not observed: {grew}"
    # upstream's buckets, cumulative, ending at +Inf
    les = re.findall(
        r'^apiserver_request_duration_seconds_bucket\{[^}]*resource="configmaps"[^}]*'
        r'verb="POST"[^}]*le="([^"]+)"\}',
        text,
        re.M,
    )
    assert les[:4] == ["0.005", "0.025", "0.05", "0.1"] and les[22:24] == ["60", "+Inf"]


APPLIED = """
apiVersion: v1
kind: ConfigMap
metadata: {name: applied}
data: {a: b}
"""
