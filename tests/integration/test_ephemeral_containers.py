"""``pods/ephemeralcontainers`` and the checks of ``pods/attach``, through the real API
server with the ``kubernetes`` client and plain HTTP (no agent: the pods stay unbound).

What ``kubectl debug`` relies on: GET answers the Pod; a strategic merge patch adds an
ephemeral container (defaulted), and only that changes; upstream's validation words come
back as 422 Invalid; the main resource cannot change them. ``pods/attach`` refuses what
upstream's ``AttachLocation`` refuses before any agent is asked.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from conftest import Raw, RunningServer

Obj = dict[str, Any]


@pytest.fixture
def core(api_client: Any) -> client.CoreV1Api:
    return client.CoreV1Api(api_client)


@pytest.fixture
def ns(core: client.CoreV1Api) -> Iterator[str]:
    name = f"ephemeral-{uuid.uuid4().hex[:6]}"
    core.create_namespace({"metadata": {"name": name}})
    yield name
    core.delete_namespace(name)


def _pod(name: str, *containers: str) -> Obj:
    return {
        "metadata": {"name": name},
        "spec": {"containers": [{"name": c, "image": "busybox:1.35"} for c in containers]},
    }


def _debugger(name: str = "debugger", **extra: Any) -> Obj:
    return {"name": name, "image": "busybox:1.35", "targetContainerName": "main", **extra}


def _invalid(e: ApiException) -> Obj:
    assert e.status == 422, (e.status, e.body)
    body: Obj = json.loads(e.body)
    assert body["reason"] == "Invalid" and body["details"]["kind"] == "Pod"
    return body


def test_ephemeral_containers_subresource(core: client.CoreV1Api, ns: str) -> None:
    core.create_namespaced_pod(ns, _pod("p", "main"))
    pod = core.read_namespaced_pod_ephemeralcontainers("p", ns)
    assert pod.kind == "Pod" and not pod.spec.ephemeral_containers

    patch = {"spec": {"ephemeralContainers": [_debugger(stdin=True, tty=True)]}}
    pod = core.patch_namespaced_pod_ephemeralcontainers("p", ns, patch)
    [ec] = pod.spec.ephemeral_containers
    assert (ec.name, ec.target_container_name, ec.stdin, ec.tty) == ("debugger", "main", True, True)
    assert (ec.image_pull_policy, ec.termination_message_policy) == ("IfNotPresent", "File")

    # only spec.ephemeralContainers is taken from the body
    patch = {
        "metadata": {"labels": {"sneaky": "yes"}},
        "spec": {"containers": [{"name": "main", "image": "other:1"}]},
    }
    pod = core.patch_namespaced_pod_ephemeralcontainers("p", ns, patch)
    assert not pod.metadata.labels and pod.spec.containers[0].image == "busybox:1.35"

    with pytest.raises(ApiException) as e:
        core.patch_namespaced_pod_ephemeralcontainers(
            "p",
            ns,
            {"spec": {"ephemeralContainers": [_debugger("d2", ports=[{"containerPort": 80}])]}},
        )
    body = _invalid(e.value)
    assert body["details"]["causes"] == [
        {
            "reason": "FieldValueForbidden",
            "message": "Forbidden: cannot be set for an Ephemeral Container",
            "field": "spec.ephemeralContainers[0].ports",  # (SMP puts new items first)
        }
    ]
    with pytest.raises(ApiException) as e:
        core.patch_namespaced_pod_ephemeralcontainers(
            "p", ns, {"spec": {"ephemeralContainers": [_debugger("main")]}}
        )
    assert "spec.ephemeralContainers[0].name: Duplicate value" in _invalid(e.value)["message"]

    current = core.read_namespaced_pod_ephemeralcontainers("p", ns)
    current.spec.ephemeral_containers = []
    with pytest.raises(ApiException) as e:
        core.replace_namespaced_pod_ephemeralcontainers("p", ns, current)
    assert (
        'existing ephemeral containers "debugger" may not be removed'
        in _invalid(e.value)["message"]
    )

    # the Pod itself cannot change them
    with pytest.raises(ApiException) as e:
        core.patch_namespaced_pod("p", ns, {"spec": {"ephemeralContainers": [_debugger("d3")]}})
    assert e.value.status == 422
    assert [c.name for c in core.read_namespaced_pod("p", ns).spec.ephemeral_containers] == [
        "debugger"
    ]


def test_attach_checks(server: RunningServer, core: client.CoreV1Api, ns: str) -> None:
    raw = Raw(server)
    core.create_namespaced_pod(ns, _pod("one", "main"))
    core.create_namespaced_pod(ns, _pod("two", "a", "b"))
    base = f"/api/v1/namespaces/{ns}/pods"
    cases = [
        ("one/attach?stdout=true", "pod one does not have a host assigned"),
        (
            "two/attach?stdout=true",
            "a container name must be specified for pod two, choose one of: [a b]",
        ),
        ("one/attach?container=nope&stdout=true", "container nope is not valid for pod one"),
    ]
    for path, message in cases:
        code, _, body = raw("POST", f"{base}/{path}")
        assert (code, json.loads(body)["message"]) == (400, message), path


def test_a_pod_cannot_be_created_with_ephemeral_containers(core: client.CoreV1Api, ns: str) -> None:
    pod = _pod("p", "main")
    pod["spec"]["ephemeralContainers"] = [_debugger()]
    with pytest.raises(ApiException) as e:
        core.create_namespaced_pod(ns, pod)
    [cause] = _invalid(e.value)["details"]["causes"]
    assert cause == {
        "reason": "FieldValueForbidden",
        "message": "Forbidden: cannot be set on create",
        "field": "spec.ephemeralContainers",
    }
    with pytest.raises(ApiException) as e:
        core.read_namespaced_pod("p", ns)
    assert e.value.status == 404
    # added later through the subresource, they stay through updates of the Pod
    core.create_namespaced_pod(ns, _pod("p", "main"))
    core.patch_namespaced_pod_ephemeralcontainers(
        "p", ns, {"spec": {"ephemeralContainers": [_debugger()]}}
    )
    core.patch_namespaced_pod("p", ns, {"metadata": {"labels": {"after": "debug"}}})
    assert core.read_namespaced_pod("p", ns).spec.ephemeral_containers[0].name == "debugger"
