"""Raw HTTP against the API edge: bad input, content negotiation, subresources, durability."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from conftest import Raw, start_server


def status_of(body: bytes) -> dict[str, Any]:
    s = json.loads(body)
    assert s["kind"] == "Status" and s["apiVersion"] == "v1"
    return s


@pytest.mark.parametrize(
    ("method", "path", "body", "ctype", "code", "reason", "message"),
    [
        ("POST", "/api/v1/namespaces/default/configmaps", b"{not json", "application/json", 400, "BadRequest", "error decoding JSON"),
        ("POST", "/api/v1/namespaces/default/configmaps", b"a: [b", "application/yaml", 400, "BadRequest", "error converting YAML to JSON"),
        ("POST", "/api/v1/namespaces/default/configmaps", b'{"kind":"Secret","apiVersion":"v1","metadata":{"name":"x"}}', "application/json", 400, "BadRequest", "does not match the expected kind"),
        ("POST", "/api/v1/namespaces/default/configmaps", b'{"apiVersion":"apps/v1","metadata":{"name":"x"}}', "application/json", 400, "BadRequest", "does not match the expected API version"),
        ("POST", "/api/v1/namespaces/default/configmaps", b"[1,2]", "application/json", 400, "BadRequest", "not a JSON or YAML object"),
        ("POST", "/api/v1/namespaces/default/configmaps", b'{"metadata":{"name":"Bad_Name"}}', "application/json", 422, "Invalid", 'ConfigMap "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name"'),
        ("POST", "/api/v1/namespaces/default/configmaps", b'{"metadata":{"name":"x","namespace":"other"}}', "application/json", 400, "BadRequest", "does not match the namespace"),
        ("POST", "/api/v1/namespaces/nosuchns/configmaps", b'{"metadata":{"name":"x"}}', "application/json", 404, "NotFound", 'namespaces "nosuchns" not found'),
        ("GET", "/api/v1/namespaces/default/configmaps?labelSelector=a%20in%20(", None, "", 400, "BadRequest", "unable to parse requirement"),
        ("GET", "/api/v1/namespaces/default/pods?fieldSelector=spec.bogus%3D1", None, "", 400, "BadRequest", "field label not supported: spec.bogus"),
        ("GET", "/api/v1/nosuchresource", None, "", 404, "NotFound", "the server could not find the requested resource"),
        ("GET", "/apis/nosuch.group/v1/things", None, "", 404, "NotFound", "the server could not find the requested resource"),
        ("GET", "/totally/unknown", None, "", 404, "NotFound", "the server could not find the requested resource"),
        ("PUT", "/api/v1/namespaces/default/configmaps", b"{}", "application/json", 405, "MethodNotAllowed", ""),
        ("PATCH", "/api/v1/namespaces/default/configmaps/x", b"{}", "text/plain", 415, "UnsupportedMediaType", ""),
        ("GET", "/api/v1/namespaces/default/configmaps?limit=abc", None, "", 400, "BadRequest", ""),
    ],
    ids=["json", "yaml", "kind", "apiversion", "array", "invalid-name", "ns-mismatch", "no-ns", "label-sel",
         "field-sel", "no-resource", "no-group", "no-path", "method", "media-type", "limit"],
)  # fmt: skip
def test_bad_input_gets_status(
    raw: Raw,
    method: str,
    path: str,
    body: bytes | None,
    ctype: str,
    code: int,
    reason: str,
    message: str,
) -> None:
    status, _headers, out = raw(method, path, body, {"Content-Type": ctype} if ctype else None)
    assert status == code, out
    s = status_of(out)
    assert s["code"] == code and s["reason"] == reason and s["status"] == "Failure"
    assert message in s["message"]
    assert out.endswith(b"}\n") or out.endswith(b"}")


def test_status_bytes_exact(raw: Raw) -> None:
    _, _, out = raw("GET", "/api/v1/namespaces/default/services/nosuch")
    assert (
        out
        == b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"services \\"nosuch\\" not found","reason":"NotFound","details":{"name":"nosuch","kind":"services"},"code":404}\n'
    )


def test_anonymous_is_forbidden_and_a_bad_token_401(raw: Raw) -> None:
    """No credentials at all: system:anonymous, whom RBAC does not let list namespaces
    (upstream's 403 body); a token nobody accepts: 401."""
    status, _, out = raw("GET", "/api/v1/namespaces", auth=False)
    assert status == 403
    assert status_of(out) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'namespaces is forbidden: User "system:anonymous" cannot list resource '
        '"namespaces" in API group "" at the cluster scope',
        "reason": "Forbidden",
        "details": {"kind": "namespaces"},
        "code": 403,
    }
    status, _, out = raw(
        "GET", "/api/v1/namespaces", headers={"Authorization": "Bearer wrong"}, auth=False
    )
    assert status == 401 and status_of(out)["reason"] == "Unauthorized"


def test_body_over_3mib_is_refused(raw: Raw) -> None:
    big = json.dumps(
        {"metadata": {"name": "big"}, "data": {"k": "x" * (3 * 1024 * 1024 + 10)}}
    ).encode()
    status, _, out = raw("POST", "/api/v1/namespaces/default/configmaps", big)
    assert status == 413
    assert status_of(out)["reason"] == "RequestEntityTooLarge"
    assert raw("GET", "/api/v1/namespaces/default/configmaps/big")[0] == 404


def test_warn_field_validation_header(raw: Raw) -> None:
    status, headers, out = raw(
        "POST",
        "/api/v1/namespaces/default/configmaps?fieldValidation=Warn",
        {"metadata": {"name": "warned"}, "bogus": 1},
    )
    assert status == 201
    assert headers.get("Warning") == '299 - "unknown field \\"bogus\\""'
    assert "bogus" not in json.loads(out)


def test_strict_duplicate_and_unknown_fields(raw: Raw) -> None:
    body = b'{"metadata":{"name":"dup"},"data":{"a":"1"},"data":{"b":"2"},"extra":1}'
    status, _, out = raw(
        "POST", "/api/v1/namespaces/default/configmaps?fieldValidation=Strict", body
    )
    assert status == 400
    assert status_of(out)["message"] == (
        'ConfigMap in version "v1" cannot be handled as a ConfigMap: strict decoding error: '
        'unknown field "extra", duplicate field "data"'
    )
    status, headers, _ = raw(
        "POST", "/api/v1/namespaces/default/configmaps?fieldValidation=Warn", body
    )
    assert status == 201 and 'duplicate field \\"data\\"' in headers["Warning"]


def test_wrong_type_is_a_decoding_error(raw: Raw) -> None:
    status, _, out = raw(
        "POST",
        "/apis/apps/v1/namespaces/default/deployments",
        {"metadata": {"name": "typed"}, "spec": {"replicas": "three"}},
    )
    assert status == 400
    assert status_of(out)["message"] == (
        'Deployment in version "v1" cannot be handled as a Deployment: json: cannot unmarshal '
        "string into Go struct field DeploymentSpec.spec.replicas of type int32"
    )


def test_dry_run_stores_nothing(raw: Raw) -> None:
    rv = json.loads(raw("GET", "/api/v1/namespaces/default/configmaps")[2])["metadata"][
        "resourceVersion"
    ]
    status, _, out = raw(
        "POST", "/api/v1/namespaces/default/configmaps?dryRun=All", {"metadata": {"name": "dry"}}
    )
    assert status == 201 and json.loads(out)["metadata"]["name"] == "dry"
    assert raw("GET", "/api/v1/namespaces/default/configmaps/dry")[0] == 404
    # nothing was written: the first configmap event after ``rv`` is a later real create
    # (the list's resourceVersion itself moves with the server's own lease renewals)
    assert (
        raw("POST", "/api/v1/namespaces/default/configmaps", {"metadata": {"name": "wet"}})[0]
        == 201
    )
    got: list[dict[str, Any]] = []
    _watch_lines(raw, f"/api/v1/namespaces/default/configmaps?watch=1&resourceVersion={rv}", 1, got)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in got] == [("ADDED", "wet")]


def test_table_and_partial_metadata(raw: Raw) -> None:
    raw(
        "POST",
        "/api/v1/namespaces/default/configmaps",
        {"metadata": {"name": "tab", "labels": {"a": "b"}}, "data": {"x": "1"}},
    )
    status, headers, out = raw(
        "GET",
        "/api/v1/namespaces/default/configmaps/tab",
        headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"},
    )
    t = json.loads(out)
    assert t["kind"] == "Table" and [c["name"] for c in t["columnDefinitions"]] == [
        "Name",
        "Data",
        "Age",
    ]
    assert t["rows"][0]["cells"][:2] == ["tab", 1]
    assert t["rows"][0]["object"]["kind"] == "PartialObjectMetadata"
    assert headers["Content-Type"].startswith("application/json;as=Table")
    _, _, out = raw(
        "GET",
        "/api/v1/namespaces/default/configmaps",
        headers={"Accept": "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io"},
    )
    lst = json.loads(out)
    assert lst["kind"] == "PartialObjectMetadataList" and lst["apiVersion"] == "meta.k8s.io/v1"
    assert all(i["kind"] == "PartialObjectMetadata" and "data" not in i for i in lst["items"])
    # protobuf first, JSON offered: JSON, never 406
    status, _, _ = raw(
        "GET",
        "/api/v1/namespaces/default/configmaps/tab",
        headers={"Accept": "application/vnd.kubernetes.protobuf,application/json"},
    )
    assert status == 200
    for accept in (
        "application/vnd.kubernetes.protobuf",
        "application/json;as=Table;v=v9;g=meta.k8s.io",
        "text/html",
    ):
        status, _, out = raw(
            "GET", "/api/v1/namespaces/default/configmaps", headers={"Accept": accept}
        )
        assert status == 406 and status_of(out)["reason"] == "NotAcceptable", accept


def test_aggregated_discovery(raw: Raw) -> None:
    _status, headers, out = raw(
        "GET",
        "/apis",
        headers={
            "Accept": "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"
        },
    )
    assert (
        headers["Content-Type"]
        == "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
    )
    doc = json.loads(out)
    apps = next(i for i in doc["items"] if i["metadata"]["name"] == "apps")
    deploy = next(r for r in apps["versions"][0]["resources"] if r["resource"] == "deployments")
    assert {s["subresource"] for s in deploy["subresources"]} == {"scale", "status"}
    legacy = json.loads(raw("GET", "/apis")[2])
    assert legacy["kind"] == "APIGroupList"
    group = json.loads(raw("GET", "/apis/apps")[2])
    assert group["kind"] == "APIGroup" and group["preferredVersion"]["groupVersion"] == "apps/v1"


def test_status_subresource_and_generation(raw: Raw) -> None:
    dep = {
        "metadata": {"name": "gen"},
        "spec": {
            "selector": {"matchLabels": {"a": "b"}},
            "template": {
                "metadata": {"labels": {"a": "b"}},
                "spec": {"containers": [{"name": "c", "image": "i"}]},
            },
        },
        "status": {"replicas": 99},
    }
    status, _, out = raw("POST", "/apis/apps/v1/namespaces/default/deployments", dep)
    assert status == 201
    made = json.loads(out)
    assert made["metadata"]["generation"] == 1 and made["status"].get("replicas") is None
    _, _, out = raw(
        "PATCH",
        "/apis/apps/v1/namespaces/default/deployments/gen/status",
        {"status": {"replicas": 3}, "spec": {"replicas": 9}},
        {"Content-Type": "application/merge-patch+json"},
    )
    after = json.loads(out)
    assert after["status"]["replicas"] == 3 and after["spec"]["replicas"] == 1
    assert after["metadata"]["generation"] == 1
    _, _, out = raw(
        "PATCH",
        "/apis/apps/v1/namespaces/default/deployments/gen",
        {"spec": {"replicas": 4}, "status": {"replicas": 0}},
        {"Content-Type": "application/merge-patch+json"},
    )
    after = json.loads(out)
    assert after["metadata"]["generation"] == 2 and after["status"]["replicas"] == 3


def test_pod_binding_graceful_delete_and_eviction(raw: Raw) -> None:
    pod = {"metadata": {"name": "p1"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
    assert raw("POST", "/api/v1/namespaces/default/pods", pod)[0] == 201
    raw("POST", "/api/v1/nodes", {"metadata": {"name": "n1"}})
    binding = {
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": {"name": "p1"},
        "target": {"apiVersion": "v1", "kind": "Node", "name": "n1"},
    }
    status, _, out = raw("POST", "/api/v1/namespaces/default/pods/p1/binding", binding)
    assert status == 201, out
    status, _, out = raw("POST", "/api/v1/namespaces/default/pods/p1/binding", binding)
    assert status == 409
    p = json.loads(raw("GET", "/api/v1/namespaces/default/pods/p1")[2])
    assert p["spec"]["nodeName"] == "n1"
    assert any(
        c["type"] == "PodScheduled" and c["status"] == "True" for c in p["status"]["conditions"]
    )
    # graceful: a bound pod stays with deletionTimestamp until confirmed with grace 0
    status, _, out = raw("DELETE", "/api/v1/namespaces/default/pods/p1")
    assert status == 200 and json.loads(out)["metadata"]["deletionGracePeriodSeconds"] == 30
    assert raw("GET", "/api/v1/namespaces/default/pods/p1")[0] == 200
    raw("DELETE", "/api/v1/namespaces/default/pods/p1", {"gracePeriodSeconds": 0})
    assert raw("GET", "/api/v1/namespaces/default/pods/p1")[0] == 404
    # logs and exec say clearly that no agent is there
    raw(
        "POST",
        "/api/v1/namespaces/default/pods",
        {"metadata": {"name": "p2"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}},
    )
    status, _, out = raw("GET", "/api/v1/namespaces/default/pods/p2/log")
    assert status == 400 and "does not have a host assigned" in status_of(out)["message"]
    ev = {
        "apiVersion": "policy/v1",
        "kind": "Eviction",
        "metadata": {"name": "p2", "namespace": "default"},
    }
    assert raw("POST", "/api/v1/namespaces/default/pods/p2/eviction", ev)[0] == 201
    assert raw("GET", "/api/v1/namespaces/default/pods/p2")[0] == 404


def test_delete_collection(raw: Raw) -> None:
    for i in range(3):
        raw(
            "POST",
            "/api/v1/namespaces/default/configmaps",
            {"metadata": {"name": f"dc{i}", "labels": {"dc": "y"}}},
        )
    status, _, out = raw("DELETE", "/api/v1/namespaces/default/configmaps?labelSelector=dc%3Dy")
    assert status == 200 and len(json.loads(out)["items"]) == 3
    left = json.loads(raw("GET", "/api/v1/namespaces/default/configmaps?labelSelector=dc%3Dy")[2])
    assert left["items"] == []


def test_events_field_selector_and_order(raw: Raw) -> None:
    for i, ts in enumerate(["2026-11-27T10:00:02Z", "2026-11-27T10:00:01Z"]):
        ev = {
            "metadata": {"name": f"ev{i}"},
            "involvedObject": {"kind": "Pod", "name": "px", "namespace": "default"},
            "reason": "Tested",
            "message": f"m{i}",
            "type": "Normal",
            "firstTimestamp": ts,
            "lastTimestamp": ts,
            "count": 1,
        }
        assert raw("POST", "/api/v1/namespaces/default/events", ev)[0] == 201
    out = json.loads(
        raw(
            "GET",
            "/api/v1/namespaces/default/events?fieldSelector=involvedObject.name%3Dpx,involvedObject.kind%3DPod",
        )[2]
    )
    assert [e["metadata"]["name"] for e in out["items"]] == ["ev1", "ev0"]  # time order
    first = json.loads(
        raw(
            "GET",
            "/api/v1/namespaces/default/events?limit=1&fieldSelector=involvedObject.name%3Dpx",
        )[2]
    )
    assert [e["metadata"]["name"] for e in first["items"]] == ["ev1"]
    token = first["metadata"]["continue"]
    rest = json.loads(
        raw(
            "GET",
            f"/api/v1/namespaces/default/events?limit=5&continue={token}&fieldSelector=involvedObject.name%3Dpx",
        )[2]
    )
    assert [e["metadata"]["name"] for e in rest["items"]] == ["ev0"]


def _watch_lines(raw: Raw, path: str, n: int, out: list[dict[str, Any]]) -> None:
    req = urllib.request.Request(raw.url + path, headers={"Authorization": f"Bearer {raw.token}"})
    with urllib.request.urlopen(req, context=raw.ctx, timeout=20) as r:
        for line in r:
            out.append(json.loads(line))
            if len(out) >= n:
                return


def test_watch_stays_open_and_bookmarks_on_initial_events(raw: Raw) -> None:
    # every namespace holds kube-root-ca.crt (and kube-public cluster-info): the selector
    # makes the initial list empty, so the bookmark is the first event
    ns = "watch-bookmarks"
    assert raw("POST", "/api/v1/namespaces", {"metadata": {"name": ns}})[0] == 201
    got: list[dict[str, Any]] = []
    t = threading.Thread(
        target=_watch_lines,
        args=(
            raw,
            f"/api/v1/namespaces/{ns}/configmaps?watch=1&labelSelector=test%3Dbookmarks&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true",
            2,
            got,
        ),
    )
    t.start()
    time.sleep(0.5)
    raw(
        "POST",
        f"/api/v1/namespaces/{ns}/configmaps",
        {"metadata": {"name": "late", "labels": {"test": "bookmarks"}}},
    )
    t.join(15)
    assert got[0]["type"] == "BOOKMARK"
    assert got[0]["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}
    assert got[1]["type"] == "ADDED" and got[1]["object"]["metadata"]["name"] == "late"


def test_restart_keeps_objects_and_resource_versions_grow(tmp_path: Path) -> None:
    srv = start_server(tmp_path / "d")
    try:
        r = Raw(srv)
        rvs = []
        for i in range(20):
            _, _, out = r(
                "POST",
                "/api/v1/namespaces/default/configmaps",
                {"metadata": {"name": f"k{i}"}, "data": {"i": str(i)}},
            )
            rvs.append(json.loads(out)["metadata"]["resourceVersion"])
        k19 = {"metadata": {"name": "k19"}, "data": {"i": "19 again"}}
        assert r("PUT", "/api/v1/namespaces/default/configmaps/k19", k19)[0] == 200
        before = json.loads(r("GET", "/api/v1/namespaces/default/configmaps")[2])
        rv = int(before["metadata"]["resourceVersion"])
    finally:
        srv.stop()
    srv = start_server(tmp_path / "d", port=srv.port)
    try:
        r = Raw(srv)
        after = json.loads(r("GET", "/api/v1/namespaces/default/configmaps")[2])
        assert [i["metadata"] for i in after["items"]] == [i["metadata"] for i in before["items"]]
        _, _, out = r(
            "POST", "/api/v1/namespaces/default/configmaps", {"metadata": {"name": "new"}}
        )
        assert int(json.loads(out)["metadata"]["resourceVersion"]) > rv
        # a watch from before the restart resumes from the stored history (from k14's
        # resourceVersion: the loops write other resources in between)
        got: list[dict[str, Any]] = []
        _watch_lines(
            r,
            f"/api/v1/namespaces/default/configmaps?watch=1&resourceVersion={rvs[14]}&timeoutSeconds=2",
            6,
            got,
        )
        seen = [(e["type"], e["object"]["metadata"]["name"]) for e in got]
        # ... with each event's type: the update replays as MODIFIED, not ADDED
        assert seen == [("ADDED", f"k{i}") for i in range(15, 20)] + [("MODIFIED", "k19")]
    finally:
        srv.stop()


def test_kill_9_loses_no_acknowledged_write(tmp_path: Path) -> None:
    """Acknowledged creates survive SIGKILL of the server mid-stream."""
    srv = start_server(tmp_path / "d")
    acked: list[str] = []
    stop = threading.Event()
    r = Raw(srv)

    def writer(w: int) -> None:
        i = 0
        while not stop.is_set():
            name = f"w{w}-{i}"
            try:
                status, _, _ = r(
                    "POST", "/api/v1/namespaces/default/configmaps", {"metadata": {"name": name}}
                )
            except (OSError, urllib.error.URLError):
                return
            if status == 201:
                acked.append(name)
            i += 1

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    time.sleep(1.5)
    srv.kill()
    stop.set()
    for t in threads:
        t.join(10)
    assert len(acked) > 50
    srv = start_server(tmp_path / "d", port=srv.port)
    try:
        r = Raw(srv)
        names = {
            i["metadata"]["name"]
            for i in json.loads(r("GET", "/api/v1/namespaces/default/configmaps")[2])["items"]
        }
        missing = [a for a in acked if a not in names]
        assert not missing
    finally:
        srv.stop()


def test_service_cluster_ip_and_node_port_allocation(raw: Raw) -> None:
    def svc(name: str, **spec: Any) -> dict[str, Any]:
        return {"metadata": {"name": name}, "spec": {"ports": [{"port": 80}], **spec}}

    status, _, out = raw("POST", "/api/v1/namespaces/default/services", svc("a1"))
    assert status == 201
    ip = json.loads(out)["spec"]["clusterIP"]
    assert ip.startswith("10.") and ip != "10.96.0.1"
    status, _, out = raw("POST", "/api/v1/namespaces/default/services", svc("a2", clusterIP=ip))
    assert status == 422
    assert status_of(out)["message"] == (
        f'Service "a2" is invalid: spec.clusterIPs: Invalid value: []string{{"{ip}"}}: '
        f"failed to allocate IP {ip}: provided IP is already allocated"
    )
    status, _, out = raw("POST", "/api/v1/namespaces/default/services", svc("a3", clusterIP="None"))
    assert status == 201 and json.loads(out)["spec"]["clusterIP"] == "None"
    status, _, out = raw("POST", "/api/v1/namespaces/default/services", svc("np1", type="NodePort"))
    port = json.loads(out)["spec"]["ports"][0]["nodePort"]
    assert 30000 <= port <= 32767
    clash = svc("np2", type="NodePort")
    clash["spec"]["ports"][0]["nodePort"] = port
    status, _, out = raw("POST", "/api/v1/namespaces/default/services", clash)
    assert status == 422 and "provided port is already allocated" in status_of(out)["message"]
    # deleting frees the address
    raw("DELETE", "/api/v1/namespaces/default/services/a1")
    status, _, _ = raw("POST", "/api/v1/namespaces/default/services", svc("a4", clusterIP=ip))
    assert status == 201


def test_system_priority_classes_exist(raw: Raw) -> None:
    out = json.loads(raw("GET", "/apis/scheduling.k8s.io/v1/priorityclasses")[2])
    values = {i["metadata"]["name"]: i["value"] for i in out["items"]}
    assert values["system-node-critical"] == 2000001000
    assert values["system-cluster-critical"] == 2000000000


def test_immortal_namespaces(raw: Raw) -> None:
    for ns in ("default", "kube-system", "kube-public"):
        status, _, out = raw("DELETE", f"/api/v1/namespaces/{ns}")
        assert status == 403
        assert (
            status_of(out)["message"]
            == f'namespaces "{ns}" is forbidden: this namespace may not be deleted'
        )


def test_identity_is_not_writable(raw: Raw) -> None:
    raw("POST", "/api/v1/namespaces/default/configmaps", {"metadata": {"name": "ident"}})
    status, _, out = raw(
        "PATCH",
        "/api/v1/namespaces/default/configmaps/ident",
        {"metadata": {"name": "other"}},
        {"Content-Type": "application/merge-patch+json"},
    )
    assert status == 400
    assert (
        status_of(out)["message"]
        == "the name of the object (other) does not match the name on the URL (ident)"
    )
    status, _, out = raw(
        "PUT",
        "/api/v1/namespaces/default/configmaps/ident",
        {"metadata": {"name": "ident", "uid": "abc"}},
    )
    assert (
        status == 409
        and "Precondition failed: UID in precondition: abc" in status_of(out)["message"]
    )


def test_apply_needs_a_field_manager(raw: Raw) -> None:
    status, _, out = raw(
        "PATCH",
        "/api/v1/namespaces/default/configmaps/nofm",
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "nofm"}},
        {"Content-Type": "application/apply-patch+yaml"},
    )
    assert status == 422
    assert (
        status_of(out)["message"]
        == 'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch'
    )


def test_second_delete_only_shortens_grace(raw: Raw) -> None:
    raw("POST", "/api/v1/nodes", {"metadata": {"name": "grace-node"}})
    raw(
        "POST",
        "/api/v1/namespaces/default/pods",
        {
            "metadata": {"name": "gp"},
            "spec": {"nodeName": "grace-node", "containers": [{"name": "c", "image": "i"}]},
        },
    )
    first = json.loads(raw("DELETE", "/api/v1/namespaces/default/pods/gp")[2])
    assert first["metadata"]["deletionGracePeriodSeconds"] == 30
    second = json.loads(
        raw("DELETE", "/api/v1/namespaces/default/pods/gp", {"gracePeriodSeconds": 5})[2]
    )
    assert second["metadata"]["deletionGracePeriodSeconds"] == 5
    assert second["metadata"]["deletionTimestamp"] < first["metadata"]["deletionTimestamp"]
    longer = json.loads(
        raw("DELETE", "/api/v1/namespaces/default/pods/gp", {"gracePeriodSeconds": 60})[2]
    )
    assert longer["metadata"]["deletionGracePeriodSeconds"] == 5
    raw("DELETE", "/api/v1/namespaces/default/pods/gp", {"gracePeriodSeconds": 0})


def test_service_ip_and_type_changes(raw: Raw) -> None:
    svc = {"metadata": {"name": "tc"}, "spec": {"type": "NodePort", "ports": [{"port": 80}]}}
    made = json.loads(raw("POST", "/api/v1/namespaces/default/services", svc)[2])
    status, _, out = raw(
        "PATCH",
        "/api/v1/namespaces/default/services/tc",
        {"spec": {"clusterIP": "10.96.0.99"}},
        {"Content-Type": "application/merge-patch+json"},
    )
    assert status == 422 and "may not change once set" in status_of(out)["message"]
    status, _, out = raw(
        "PATCH",
        "/api/v1/namespaces/default/services/tc",
        {"spec": {"type": "ClusterIP"}},
        {"Content-Type": "application/merge-patch+json"},
    )
    assert status == 200, out
    after = json.loads(out)
    assert "nodePort" not in after["spec"]["ports"][0]
    assert after["spec"]["clusterIP"] == made["spec"]["clusterIP"]
    status, _, out = raw(
        "PATCH",
        "/api/v1/namespaces/default/services/tc",
        {"spec": {"type": "ExternalName", "externalName": "a.example"}},
        {"Content-Type": "application/merge-patch+json"},
    )
    assert status == 200, out
    assert "clusterIP" not in json.loads(out)["spec"]
