"""No request can make the server answer 500: wrong types everywhere, for every resource.

Valid objects of each kind are mutated field by field (a value replaced by a string, a
number, a list, a map, null) and sent as create, update and patch; every answer must be a
Status with a 4xx code or a success, never 500, and the server must keep serving.
"""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from kindkit import json_paths, with_value

from conftest import Raw

SEEDS: dict[str, tuple[str, dict[str, Any]]] = {
    "pods": (
        "/api/v1/namespaces/default/pods",
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "f", "labels": {"a": "b"}},
            "spec": {
                "containers": [
                    {
                        "name": "c",
                        "image": "i",
                        "ports": [{"containerPort": 80}],
                        "env": [{"name": "E", "value": "v"}],
                        "resources": {"limits": {"cpu": "1"}},
                        "volumeMounts": [{"name": "v", "mountPath": "/v"}],
                    }
                ],
                "volumes": [{"name": "v", "emptyDir": {}}],
                "tolerations": [{"key": "k", "operator": "Exists"}],
                "affinity": {"nodeAffinity": {}},
            },
        },
    ),
    "deployments": (
        "/apis/apps/v1/namespaces/default/deployments",
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "f"},
            "spec": {
                "replicas": 1,
                "selector": {
                    "matchLabels": {"a": "b"},
                    "matchExpressions": [{"key": "a", "operator": "In", "values": ["b"]}],
                },
                "strategy": {
                    "type": "RollingUpdate",
                    "rollingUpdate": {"maxSurge": 1, "maxUnavailable": "25%"},
                },
                "template": {
                    "metadata": {"labels": {"a": "b"}},
                    "spec": {"containers": [{"name": "c", "image": "i"}]},
                },
            },
        },
    ),
    "services": (
        "/api/v1/namespaces/default/services",
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "f"},
            "spec": {
                "selector": {"a": "b"},
                "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
                "type": "ClusterIP",
            },
        },
    ),
    "jobs": (
        "/apis/batch/v1/namespaces/default/jobs",
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": "f"},
            "spec": {
                "completions": 2,
                "parallelism": 1,
                "template": {
                    "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "i"}]}
                },
            },
        },
    ),
    "cronjobs": (
        "/apis/batch/v1/namespaces/default/cronjobs",
        {
            "apiVersion": "batch/v1",
            "kind": "CronJob",
            "metadata": {"name": "f"},
            "spec": {
                "schedule": "*/5 * * * *",
                "jobTemplate": {
                    "spec": {
                        "template": {
                            "spec": {
                                "restartPolicy": "OnFailure",
                                "containers": [{"name": "c", "image": "i"}],
                            }
                        }
                    }
                },
            },
        },
    ),
    "secrets": (
        "/api/v1/namespaces/default/secrets",
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "f"},
            "data": {"k": "dg=="},
            "stringData": {"s": "t"},
        },
    ),
    "configmaps": (
        "/api/v1/namespaces/default/configmaps",
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": "f",
                "ownerReferences": [{"apiVersion": "v1", "kind": "X", "name": "o", "uid": "u"}],
                "finalizers": ["a/b"],
            },
            "data": {"k": "v"},
        },
    ),
    "events": (
        "/api/v1/namespaces/default/events",
        {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": "f"},
            "involvedObject": {"kind": "Pod", "name": "p", "namespace": "default"},
            "reason": "R",
            "message": "m",
            "type": "Normal",
        },
    ),
    "leases": (
        "/apis/coordination.k8s.io/v1/namespaces/default/leases",
        {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": "f"},
            "spec": {"holderIdentity": "h", "leaseDurationSeconds": 10},
        },
    ),
    "endpointslices": (
        "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices",
        {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {"name": "f"},
            "addressType": "IPv4",
            "endpoints": [{"addresses": ["10.0.0.1"]}],
            "ports": [{"port": 80}],
        },
    ),
    "statefulsets": (
        "/apis/apps/v1/namespaces/default/statefulsets",
        {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": {"name": "f"},
            "spec": {
                "serviceName": "s",
                "selector": {"matchLabels": {"a": "b"}},
                "template": {
                    "metadata": {"labels": {"a": "b"}},
                    "spec": {"containers": [{"name": "c", "image": "i"}]},
                },
            },
        },
    ),
    "daemonsets": (
        "/apis/apps/v1/namespaces/default/daemonsets",
        {
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "metadata": {"name": "f"},
            "spec": {
                "selector": {"matchLabels": {"a": "b"}},
                "template": {
                    "metadata": {"labels": {"a": "b"}},
                    "spec": {"containers": [{"name": "c", "image": "i"}]},
                },
            },
        },
    ),
    "nodes": (
        "/api/v1/nodes",
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": "f"},
            "spec": {"taints": [{"key": "k", "effect": "NoSchedule"}]},
        },
    ),
    "namespaces": (
        "/api/v1/namespaces",
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "f"}},
    ),
    "priorityclasses": (
        "/apis/scheduling.k8s.io/v1/priorityclasses",
        {
            "apiVersion": "scheduling.k8s.io/v1",
            "kind": "PriorityClass",
            "metadata": {"name": "f"},
            "value": 10,
        },
    ),
}

REPLACEMENTS: list[Any] = [
    "x",
    7,
    -1,
    1.5,
    True,
    None,
    [],
    ["x"],
    [1, {"a": []}],
    {},
    {"x": 1},
    "",
    "%%%",
]


@pytest.mark.parametrize("resource", sorted(SEEDS))
def test_mutations_never_500(raw: Raw, resource: str) -> None:
    url, seed = SEEDS[resource]
    rnd = random.Random(resource)
    paths = [
        p
        for p in json_paths(seed)
        if p[:2] != ("metadata", "name") and p != ("apiVersion",) and p != ("kind",)
    ]
    bad: list[str] = []
    for i, path in enumerate(paths):
        for value in rnd.sample(REPLACEMENTS, 5):
            body = with_value(seed, path, value)
            name = f"fz-{i}-{rnd.randrange(10**6)}"
            body["metadata"] = (
                {**body["metadata"], "name": name}
                if isinstance(body.get("metadata"), dict)
                else body["metadata"]
            )
            status, _, out = raw("POST", url, json.dumps(body).encode())
            if status >= 500:
                bad.append(f"POST {path}={value!r}: {out[:300]!r}")
            item = f"{url}/{name}"
            if status == 201:
                for ctype, patch in (
                    ("application/merge-patch+json", with_value({"spec": {}}, ("spec",), value)),
                    ("application/strategic-merge-patch+json", body),
                    (
                        "application/json-patch+json",
                        [{"op": "replace", "path": "/" + "/".join(map(str, path)), "value": value}],
                    ),
                    ("application/apply-patch+yaml", body),
                ):
                    q = "?fieldManager=fuzz" if "apply" in ctype else ""
                    s2, _, o2 = raw(
                        "PATCH", item + q, json.dumps(patch).encode(), {"Content-Type": ctype}
                    )
                    if s2 >= 500:
                        bad.append(f"PATCH {ctype} {path}={value!r}: {o2[:300]!r}")
                s3, _, o3 = raw("PUT", item, json.dumps(body).encode())
                if s3 >= 500:
                    bad.append(f"PUT {path}={value!r}: {o3[:300]!r}")
                raw("DELETE", item + "?gracePeriodSeconds=0")
    # whole-body shapes
    for body in (
        b"null",
        b"1",
        b'"s"',
        b"[]",
        b"{}",
        b'{"metadata":[]}',
        b'{"metadata":{"name":5}}',
        b'{"metadata":{"labels":[1]}}',
        b'{"metadata":{"name":"ok","generateName":7}}',
        b'{"spec":"x","metadata":{"name":"q"}}',
    ):
        status, _, out = raw("POST", url, body)
        if status >= 500:
            bad.append(f"POST {body!r}: {out[:300]!r}")
    assert raw("GET", "/version")[0] == 200
    assert not bad, "\n".join(bad[:30])
