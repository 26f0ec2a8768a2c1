"""PodGC on a real server, driven by the real ``kubernetes`` client: a pod bound to a Node
that is deleted is marked Failed with ``DisruptionTarget`` (``DeletionByPodGC``) and then
removed; a StatefulSet pod on a deleted Node is removed and recreated.

One server per module: ``corral server --no-scheduler`` with its controller manager
running only ``podgc`` and ``statefulset``, with a 200 ms gc period and a 1 s quarantine
(upstream: 20 s and 40 s). Pods are bound by hand through ``pods/binding``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes import watch as k8s_watch

from conftest import RunningServer, start_server
from corral.testing.wait import eventually

Obj = dict[str, Any]


@pytest.fixture(scope="module")
def gc_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    extra = ["--no-scheduler", "--no-metrics-server"]
    for arg in ("controllers=podgc,statefulset", "pod-gc-period=200ms", "pod-gc-quarantine=1s"):
        extra += ["--kube-controller-manager-arg", arg]
    srv = start_server(tmp_path_factory.mktemp("podgc") / "data", extra=extra, controllers=True)
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def api(gc_server: RunningServer) -> Iterator[k8s.ApiClient]:
    c = k8s_config.new_client_from_config(str(gc_server.kubeconfig))
    yield c
    c.close()


@pytest.fixture
def ns(api: k8s.ApiClient) -> Iterator[str]:
    name = "gc-" + uuid.uuid4().hex[:6]
    core = k8s.CoreV1Api(api)
    core.create_namespace({"metadata": {"name": name}})
    yield name
    core.delete_namespace(name)


def _node(core: k8s.CoreV1Api) -> str:
    name = "gc-node-" + uuid.uuid4().hex[:6]
    core.create_node({"metadata": {"name": name}})
    return name


def _bind(core: k8s.CoreV1Api, ns: str, pod: str, node: str) -> None:
    body = {"metadata": {"name": pod}, "target": {"apiVersion": "v1", "kind": "Node", "name": node}}
    core.create_namespaced_pod_binding(pod, ns, body, _preload_content=False)


def test_pod_on_deleted_node_failed_then_removed(api: k8s.ApiClient, ns: str) -> None:
    core = k8s.CoreV1Api(api)
    node = _node(core)
    manifest = {
        "metadata": {"name": "orphan"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    }
    created = core.create_namespaced_pod(ns, manifest)
    _bind(core, ns, "orphan", node)
    w = k8s_watch.Watch()
    stream = w.stream(
        core.list_namespaced_pod,
        ns,
        field_selector="metadata.name=orphan",
        resource_version=created.metadata.resource_version,
        timeout_seconds=30,
    )
    core.delete_node(node)
    seen: list[tuple[str, str | None, list[tuple[str, str | None, str | None]]]] = []
    try:
        for ev in stream:
            p = ev["object"]
            conds = [(c.type, c.reason, c.message) for c in p.status.conditions or ()]
            seen.append((ev["type"], p.status.phase, conds))
            if ev["type"] == "DELETED":
                break
    finally:
        w.stop()
    assert seen and seen[-1][0] == "DELETED", f"the orphaned pod was not removed: {seen}"
    failed = [s for s in seen if s[0] == "MODIFIED" and s[1] == "Failed"]
    assert failed, f"the pod was never marked Failed before its deletion: {seen}"
    assert ("DisruptionTarget", "DeletionByPodGC", "PodGC: node no longer exists") in failed[0][
        2
    ], seen


def test_statefulset_pod_on_deleted_node_recreated(api: k8s.ApiClient, ns: str) -> None:
    core, apps = k8s.CoreV1Api(api), k8s.AppsV1Api(api)
    node = _node(core)
    apps.create_namespaced_stateful_set(
        ns,
        {
            "metadata": {"name": "web"},
            "spec": {
                "replicas": 1,
                "serviceName": "web",
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "c", "image": "busybox"}]},
                },
            },
        },
    )

    def pod() -> k8s.V1Pod | None:
        try:
            return core.read_namespaced_pod("web-0", ns)
        except k8s.ApiException as e:
            if e.status == 404:
                return None
            raise

    first = eventually(pod, what="the StatefulSet's pod web-0")
    _bind(core, ns, "web-0", node)
    eventually(lambda: (p := pod()) is not None and p.spec.node_name == node, what="web-0 bound")
    core.delete_node(node)
    again = eventually(
        lambda: (p := pod()) is not None and p.metadata.uid != first.metadata.uid and p,
        what="web-0 recreated after its node was deleted",
    )
    assert not again.spec.node_name  # a new pod, waiting to be scheduled
    assert again.status.phase == "Pending"
