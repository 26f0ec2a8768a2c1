"""What DELETE and deletecollection answer, resource by resource, as upstream's registries.

Kubernetes' generic store answers a DELETE with the object while it still exists (held by
finalizers, or terminating gracefully); once it is gone, with the object where the kind's
registry sets ``ReturnDeletedObject`` (``pkg/registry/**/storage/storage.go``: pods,
services, serviceaccounts, podtemplates, resourcequotas, namespaces), else with a Status
``Success`` naming it (``details``: name, group, the resource as ``kind``, uid). The Python
client's typed methods are generated from the same rule (``delete_namespaced_service``
returns a ``V1Service``) and fail on any other answer. A deletecollection answers the
list of the objects as they were read before the deletes.

Every row creates one object in a fresh namespace on the session's real server and
deletes it with ``propagationPolicy: Background`` (Jobs and ReplicationControllers
otherwise default to Orphan, whose finalizer keeps the object: a row of its own).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from kubernetes import client

from conftest import Raw

Obj = dict[str, Any]

POD_SPEC: Obj = {"containers": [{"name": "c", "image": "busybox"}]}
TEMPLATE: Obj = {"metadata": {"labels": {"app": "x"}}, "spec": POD_SPEC}
SELECTOR: Obj = {"matchLabels": {"app": "x"}}
BACKGROUND: Obj = {"propagationPolicy": "Background"}


def _name() -> str:
    return "del-" + uuid.uuid4().hex[:8]


# (path of the collection, {NS} for the namespace; the object's fields besides its name;
#  the kind a DELETE answers: the object's own kind, or "Status")
# fmt: off
ROWS: list[tuple[str, str, Obj, str]] = [
    ("pods", "/api/v1/namespaces/{ns}/pods", {"spec": POD_SPEC}, "Pod"),
    ("services", "/api/v1/namespaces/{ns}/services", {"spec": {"ports": [{"port": 80}]}}, "Service"),
    ("serviceaccounts", "/api/v1/namespaces/{ns}/serviceaccounts", {}, "ServiceAccount"),
    ("podtemplates", "/api/v1/namespaces/{ns}/podtemplates", {"template": TEMPLATE}, "PodTemplate"),
    ("resourcequotas", "/api/v1/namespaces/{ns}/resourcequotas", {"spec": {"hard": {"pods": "3"}}}, "ResourceQuota"),
    ("configmaps", "/api/v1/namespaces/{ns}/configmaps", {"data": {"a": "b"}}, "Status"),
    ("secrets", "/api/v1/namespaces/{ns}/secrets", {"stringData": {"a": "b"}}, "Status"),
    ("endpoints", "/api/v1/namespaces/{ns}/endpoints", {}, "Status"),
    ("events", "/api/v1/namespaces/{ns}/events",
     {"involvedObject": {"kind": "Pod", "name": "p", "namespace": "{ns}"}, "reason": "R", "message": "m"}, "Status"),
    ("limitranges", "/api/v1/namespaces/{ns}/limitranges",
     {"spec": {"limits": [{"type": "Container", "max": {"cpu": "1"}}]}}, "Status"),
    ("replicationcontrollers", "/api/v1/namespaces/{ns}/replicationcontrollers",
     {"spec": {"replicas": 0, "selector": {"app": "x"}, "template": TEMPLATE}}, "Status"),
    ("nodes", "/api/v1/nodes", {}, "Status"),
    ("deployments", "/apis/apps/v1/namespaces/{ns}/deployments",
     {"spec": {"replicas": 0, "selector": SELECTOR, "template": TEMPLATE}}, "Status"),
    ("replicasets", "/apis/apps/v1/namespaces/{ns}/replicasets",
     {"spec": {"replicas": 0, "selector": SELECTOR, "template": TEMPLATE}}, "Status"),
    ("daemonsets", "/apis/apps/v1/namespaces/{ns}/daemonsets",
     {"spec": {"selector": SELECTOR, "template": TEMPLATE}}, "Status"),
    ("statefulsets", "/apis/apps/v1/namespaces/{ns}/statefulsets",
     {"spec": {"replicas": 0, "serviceName": "s", "selector": SELECTOR, "template": TEMPLATE}}, "Status"),
    ("controllerrevisions", "/apis/apps/v1/namespaces/{ns}/controllerrevisions", {"revision": 1, "data": {}}, "Status"),
    ("jobs", "/apis/batch/v1/namespaces/{ns}/jobs",
     {"spec": {"suspend": True, "template": {"spec": {**POD_SPEC, "restartPolicy": "Never"}}}}, "Status"),
    ("cronjobs", "/apis/batch/v1/namespaces/{ns}/cronjobs",
     {"spec": {"schedule": "0 0 1 1 *", "suspend": True, "jobTemplate": {"spec": {"template": {
         "spec": {**POD_SPEC, "restartPolicy": "Never"}}}}}}, "Status"),
    ("leases", "/apis/coordination.k8s.io/v1/namespaces/{ns}/leases", {"spec": {"holderIdentity": "h"}}, "Status"),
    ("endpointslices", "/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices",
     {"addressType": "IPv4", "endpoints": []}, "Status"),
    ("events.events.k8s.io", "/apis/events.k8s.io/v1/namespaces/{ns}/events",
     {"eventTime": "2026-01-01T00:00:00.000000Z", "reportingController": "c", "reportingInstance": "i",
      "action": "A", "reason": "R", "type": "Normal", "regarding": {"kind": "Pod", "name": "p", "namespace": "{ns}"}},
     "Status"),
    ("poddisruptionbudgets", "/apis/policy/v1/namespaces/{ns}/poddisruptionbudgets",
     {"spec": {"minAvailable": 1, "selector": SELECTOR}}, "Status"),
    ("priorityclasses", "/apis/scheduling.k8s.io/v1/priorityclasses", {"value": 10}, "Status"),
]
# fmt: on


def _fill(value: Any, ns: str) -> Any:
    """``value`` with every ``{ns}`` string replaced by the namespace."""
    if isinstance(value, dict):
        return {k: _fill(v, ns) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, ns) for v in value]
    return value.replace("{ns}", ns) if isinstance(value, str) else value


def _ok(res: tuple[int, dict[str, str], bytes], *codes: int) -> Obj:
    status, _, body = res
    assert status in (codes or (200,)), body
    out: Obj = json.loads(body)
    return out


def _create(raw: Raw, path: str, ns: str, fields: Obj, **meta: Any) -> Obj:
    body = {"metadata": {"name": _name(), **meta}, **_fill(fields, ns)}
    return _ok(raw("POST", path.format(ns=ns), body), 201)


@pytest.mark.parametrize(("resource", "path", "fields", "answer"), ROWS, ids=[r[0] for r in ROWS])
def test_delete_answers_as_upstream(
    raw: Raw, ns: str, resource: str, path: str, fields: Obj, answer: str
) -> None:
    created = _create(raw, path, ns, fields)
    name, uid = created["metadata"]["name"], created["metadata"]["uid"]
    got = _ok(raw("DELETE", f"{path.format(ns=ns)}/{name}", BACKGROUND), 200)
    assert got["kind"] == answer, got
    if answer == "Status":
        group = path.split("/")[2] if path.startswith("/apis/") else ""
        details = {"name": name, "kind": resource.split(".")[0], "uid": uid}
        if group:
            details["group"] = group
        assert got == {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success",
            "details": details,
        }
    else:
        assert (got["metadata"]["name"], got["metadata"]["uid"]) == (name, uid)


def test_namespace_delete_answers_the_terminating_namespace(raw: Raw) -> None:
    name = _name()
    _ok(raw("POST", "/api/v1/namespaces", {"metadata": {"name": name}}), 201)
    got = _ok(raw("DELETE", f"/api/v1/namespaces/{name}"))
    assert got["kind"] == "Namespace" and got["status"]["phase"] == "Terminating", got
    assert got["metadata"]["deletionTimestamp"]


def test_delete_held_by_a_finalizer_answers_the_object(raw: Raw, ns: str) -> None:
    """Without ReturnDeletedObject, an object that stays (finalizers) is the answer."""
    path = "/api/v1/namespaces/{ns}/configmaps"
    cm = _create(raw, path, ns, {}, finalizers=["example.com/hold"])
    name = cm["metadata"]["name"]
    got = _ok(raw("DELETE", f"{path.format(ns=ns)}/{name}"))
    assert got["kind"] == "ConfigMap" and got["metadata"]["deletionTimestamp"], got
    # releasing the finalizer lets it go
    patch = {"metadata": {"finalizers": None}}
    status, _, _ = raw(
        "PATCH",
        f"{path.format(ns=ns)}/{name}",
        json.dumps(patch).encode(),
        {"Content-Type": "application/merge-patch+json"},
    )
    assert status == 200
    assert raw("GET", f"{path.format(ns=ns)}/{name}")[0] == 404


def test_job_without_propagation_policy_is_orphaned_and_answered(raw: Raw, ns: str) -> None:
    """Jobs default to Orphan: the orphan finalizer holds the Job, which is the answer."""
    path = "/apis/batch/v1/namespaces/{ns}/jobs"
    row = next(r for r in ROWS if r[0] == "jobs")
    job = _create(raw, path, ns, row[2])
    got = _ok(raw("DELETE", f"{path.format(ns=ns)}/{job['metadata']['name']}"))
    assert got["kind"] == "Job" and "orphan" in got["metadata"]["finalizers"], got


@pytest.mark.parametrize(
    ("resource", "path", "fields", "answer"),
    [r for r in ROWS if r[0] in ("services", "configmaps", "pods", "deployments")],
    ids=["services", "configmaps", "pods", "deployments"],
)
def test_deletecollection_answers_the_list_it_deleted(
    raw: Raw, ns: str, resource: str, path: str, fields: Obj, answer: str
) -> None:
    made = [_create(raw, path, ns, fields, labels={"batch": "b"}) for _ in range(2)]
    _create(raw, path, ns, fields, labels={"batch": "keep"})
    base = path.format(ns=ns)
    got = _ok(raw("DELETE", base + "?labelSelector=batch%3Db", BACKGROUND))
    kind = made[0]["kind"]
    assert (got["kind"], got["apiVersion"]) == (f"{kind}List", made[0]["apiVersion"])
    assert int(got["metadata"]["resourceVersion"]) > 0
    assert sorted(i["metadata"]["uid"] for i in got["items"]) == sorted(
        m["metadata"]["uid"] for m in made
    )
    left = _ok(raw("GET", base + "?labelSelector=batch"))["items"]  # not kube-root-ca.crt
    live = [i for i in left if not i["metadata"].get("deletionTimestamp")]
    assert [i["metadata"]["labels"]["batch"] for i in live] == ["keep"]


def test_python_client_delete_namespaced_service(api_client: client.ApiClient, ns: str) -> None:
    v1 = client.CoreV1Api(api_client)
    v1.create_namespaced_service(
        ns, {"metadata": {"name": "web"}, "spec": {"ports": [{"port": 80}]}}
    )
    deleted = v1.delete_namespaced_service("web", ns)
    assert isinstance(deleted, client.V1Service)
    assert deleted.metadata.name == "web" and deleted.spec.ports[0].port == 80
    sa = v1.create_namespaced_service_account(ns, {"metadata": {"name": "robot"}})
    gone = v1.delete_namespaced_service_account("robot", ns)
    assert isinstance(gone, client.V1ServiceAccount) and gone.metadata.uid == sa.metadata.uid
    v1.create_namespaced_resource_quota(
        ns, {"metadata": {"name": "q"}, "spec": {"hard": {"pods": "2"}}}
    )
    assert isinstance(v1.delete_namespaced_resource_quota("q", ns), client.V1ResourceQuota)
    v1.create_namespaced_config_map(ns, {"metadata": {"name": "cm"}})
    status = v1.delete_namespaced_config_map("cm", ns)
    assert status["status"] == "Success" and status["details"]["name"] == "cm"
