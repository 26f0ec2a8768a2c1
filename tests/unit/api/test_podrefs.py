"""``api/podrefs.py``: what a pod names, walked once (``pod_names``), each kind's list in
upstream's visiting order: imagePullSecrets, then every container (init, regular,
ephemeral: envFrom, then env), then the volumes (in order, each source as
``VisitPodSecretNames`` / ``VisitPodConfigmapNames`` visit it)."""

from __future__ import annotations

from typing import Any

from corral.api.podrefs import PodNames, pod_names

Obj = dict[str, Any]


def env_from(secret: str, configmap: str) -> list[Obj]:
    return [{"secretRef": {"name": secret}}, {"configMapRef": {"name": configmap}}]


def env(secret: str, configmap: str) -> list[Obj]:
    return [
        {"name": "A", "valueFrom": {"secretKeyRef": {"name": secret, "key": "k"}}},
        {"name": "B", "valueFrom": {"configMapKeyRef": {"name": configmap, "key": "k"}}},
        {"name": "C", "value": "plain"},
        {"name": "D", "valueFrom": "not a map"},
    ]


POD: Obj = {
    "metadata": {"name": "web", "namespace": "ns"},
    "spec": {
        "imagePullSecrets": [{"name": "pull"}, {}],
        "initContainers": [{"name": "i", "envFrom": env_from("s-init", "c-init")}],
        "containers": [
            {"name": "a", "envFrom": env_from("s-from", "c-from"), "env": env("s-env", "c-env")},
            "not a container",
        ],
        "ephemeralContainers": [{"name": "e", "env": env("s-eph", "c-eph")}],
        "volumes": [
            {"name": "v1", "secret": {"secretName": "s-vol"}},
            {"name": "v2", "configMap": {"name": "c-vol"}},
            {
                "name": "v3",
                "projected": {
                    "sources": [
                        {"secret": {"name": "s-proj"}},
                        {"configMap": {"name": "c-proj"}},
                        {"serviceAccountToken": {"path": "token"}},
                    ]
                },
            },
            {"name": "v4", "csi": {"driver": "d", "nodePublishSecretRef": {"name": "s-csi"}}},
            {"name": "v5", "rbd": {"secretRef": {"name": "s-rbd"}}},
            {"name": "v6", "azureFile": {"secretName": "s-az"}},
            {"name": "v7", "persistentVolumeClaim": {"claimName": "data"}},
            {"name": "scratch", "ephemeral": {"volumeClaimTemplate": {}}},
        ],
        "resourceClaims": [
            {"name": "gpu", "resourceClaimName": "gpu-claim"},
            {"name": "tmpl", "resourceClaimTemplateName": "t"},
            {"name": "later", "resourceClaimTemplateName": "t"},
        ],
    },
    "status": {"resourceClaimStatuses": [{"name": "tmpl", "resourceClaimName": "web-tmpl-x"}]},
}


def test_one_walk_names_every_kind_in_upstreams_order() -> None:
    assert pod_names(POD) == PodNames(
        secrets=[
            "pull", "", "s-init", "s-from", "s-env", "s-eph",
            "s-vol", "s-proj", "s-csi", "s-rbd", "s-az",
        ],
        configmaps=["c-init", "c-from", "c-env", "c-eph", "c-vol", "c-proj"],
        claims=["data", "web-scratch"],
        resource_claims=["gpu-claim", "web-tmpl-x"],
    )  # fmt: skip


def test_a_pod_naming_nothing_and_malformed_parts_name_nothing() -> None:
    assert pod_names({}) == PodNames([], [], [], [])
    bad: Obj = {"spec": {"containers": "x", "volumes": [1, None], "imagePullSecrets": {}}}
    assert pod_names(bad) == PodNames([], [], [], [])
