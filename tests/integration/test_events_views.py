"""core/v1 and events.k8s.io/v1 Events are one stored resource seen in two shapes.

Whichever API writes an event, both list, get, watch, select and delete the same object
(same name, uid and resourceVersion), each in its own version's shape.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from conftest import Kubectl, Raw

EVENTS_V1 = "/apis/events.k8s.io/v1/namespaces/{ns}/events"
EVENTS_CORE = "/api/v1/namespaces/{ns}/events"


def _name() -> str:
    return "ev-" + uuid.uuid4().hex[:8]


def _core_event(ns: str, name: str, pod: str = "p") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": name},
        "involvedObject": {"kind": "Pod", "namespace": ns, "name": pod, "uid": "pod-uid"},
        "reason": "Pulled",
        "message": "pulled the image",
        "type": "Normal",
        "source": {"component": "kubelet", "host": "node-1"},
        "count": 2,
        "firstTimestamp": "2024-01-01T00:00:00Z",
        "lastTimestamp": "2024-01-01T00:01:00Z",
    }


def _v1_event(ns: str, name: str, pod: str = "p") -> dict[str, Any]:
    return {
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": {"name": name},
        "regarding": {"kind": "Pod", "namespace": ns, "name": pod},
        "note": "scheduled it",
        "reason": "Scheduled",
        "action": "Binding",
        "type": "Normal",
        "eventTime": "2024-01-01T00:00:00.000000Z",
        "reportingController": "example.com/scheduler",
        "reportingInstance": "scheduler-1",
    }


def _ok(res: tuple[int, dict[str, str], bytes], code: int = 200) -> dict[str, Any]:
    status, _, body = res
    assert status == code, body
    out: dict[str, Any] = json.loads(body)
    return out


def _same_identity(a: dict[str, Any], b: dict[str, Any]) -> None:
    for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp"):
        assert a["metadata"][k] == b["metadata"][k], k


def test_created_through_core_read_through_events_v1(raw: Raw, ns: str) -> None:
    name = _name()
    made = _ok(raw("POST", EVENTS_CORE.format(ns=ns), _core_event(ns, name)), 201)
    got = _ok(raw("GET", EVENTS_V1.format(ns=ns) + "/" + name))
    _same_identity(made, got)
    assert got["apiVersion"] == "events.k8s.io/v1"
    assert got["regarding"]["name"] == "p"
    assert got["note"] == "pulled the image"
    assert got["deprecatedSource"] == {"component": "kubelet", "host": "node-1"}
    assert got["deprecatedCount"] == 2
    assert got["deprecatedFirstTimestamp"] == "2024-01-01T00:00:00Z"
    assert got["deprecatedLastTimestamp"] == "2024-01-01T00:01:00Z"
    assert not {"involvedObject", "message", "source", "count"} & set(got)


def test_created_through_events_v1_read_through_core(raw: Raw, ns: str) -> None:
    name = _name()
    made = _ok(raw("POST", EVENTS_V1.format(ns=ns), _v1_event(ns, name)), 201)
    assert made["apiVersion"] == "events.k8s.io/v1"
    assert made["regarding"]["name"] == "p"
    got = _ok(raw("GET", EVENTS_CORE.format(ns=ns) + "/" + name))
    _same_identity(made, got)
    assert got["apiVersion"] == "v1"
    assert got["involvedObject"]["name"] == "p"
    assert got["message"] == "scheduled it"
    assert got["reportingComponent"] == "example.com/scheduler"
    assert got["reportingInstance"] == "scheduler-1"
    assert got["action"] == "Binding"
    assert not {"regarding", "note", "reportingController"} & set(got)


def test_each_api_validates_its_own_shape(raw: Raw, ns: str) -> None:
    legacy = _core_event(ns, _name())  # no eventTime, action...: fine for core/v1 only
    status, _, body = raw(
        "POST", EVENTS_V1.format(ns=ns), {**legacy, "apiVersion": "events.k8s.io/v1"}
    )
    assert status == 422, body
    assert "eventTime: Required value" in json.loads(body)["message"]
    _ok(raw("POST", EVENTS_CORE.format(ns=ns), legacy), 201)


def test_update_through_either_api(raw: Raw, ns: str) -> None:
    name = _name()
    _ok(raw("POST", EVENTS_V1.format(ns=ns), _v1_event(ns, name)), 201)
    # events.k8s.io keeps note immutable; core/v1 lets message change
    status, _, body = raw(
        "PATCH",
        EVENTS_V1.format(ns=ns) + "/" + name,
        {"note": "changed"},
        {"Content-Type": "application/merge-patch+json"},
    )
    assert status == 422 and "note: Invalid value" in json.loads(body)["message"], body
    core = _ok(
        raw(
            "PATCH",
            EVENTS_CORE.format(ns=ns) + "/" + name,
            {"message": "changed"},
            {"Content-Type": "application/merge-patch+json"},
        )
    )
    got = _ok(raw("GET", EVENTS_V1.format(ns=ns) + "/" + name))
    assert got["note"] == "changed"
    assert got["metadata"]["resourceVersion"] == core["metadata"]["resourceVersion"]
    # a series update through events.k8s.io is allowed and shows in core/v1
    series = {"count": 2, "lastObservedTime": "2024-01-01T00:00:09.000000Z"}
    _ok(
        raw(
            "PATCH",
            EVENTS_V1.format(ns=ns) + "/" + name,
            {"series": series},
            {"Content-Type": "application/merge-patch+json"},
        )
    )
    assert _ok(raw("GET", EVENTS_CORE.format(ns=ns) + "/" + name))["series"] == series


def test_lists_hold_the_same_objects(raw: Raw, ns: str) -> None:
    a, b = _name(), _name()
    _ok(raw("POST", EVENTS_CORE.format(ns=ns), _core_event(ns, a)), 201)
    _ok(raw("POST", EVENTS_V1.format(ns=ns), _v1_event(ns, b)), 201)
    core = _ok(raw("GET", EVENTS_CORE.format(ns=ns)))
    v1 = _ok(raw("GET", EVENTS_V1.format(ns=ns)))
    assert core["kind"] == "EventList" and core["apiVersion"] == "v1"
    assert v1["kind"] == "EventList" and v1["apiVersion"] == "events.k8s.io/v1"

    def ids(lst: dict[str, Any]) -> list[tuple[str, str, str]]:
        return [
            (i["metadata"]["name"], i["metadata"]["uid"], i["metadata"]["resourceVersion"])
            for i in lst["items"]
        ]

    assert ids(core) == ids(v1)
    assert {n for n, _, _ in ids(core)} == {a, b}
    assert all("regarding" in i for i in v1["items"])
    assert all("involvedObject" in i for i in core["items"])


def test_field_selectors_use_each_versions_names(raw: Raw, ns: str) -> None:
    a, b = _name(), _name()
    _ok(raw("POST", EVENTS_CORE.format(ns=ns), _core_event(ns, a, pod="one")), 201)
    _ok(raw("POST", EVENTS_V1.format(ns=ns), _v1_event(ns, b, pod="two")), 201)

    def names(path: str) -> set[str]:
        return {i["metadata"]["name"] for i in _ok(raw("GET", path))["items"]}

    assert names(EVENTS_CORE.format(ns=ns) + "?fieldSelector=involvedObject.name%3Dtwo") == {b}
    assert names(EVENTS_V1.format(ns=ns) + "?fieldSelector=regarding.name%3Dtwo") == {b}
    assert names(EVENTS_V1.format(ns=ns) + "?fieldSelector=regarding.name%3Done") == {a}
    sel = "reportingController%3Dexample.com%2Fscheduler"
    assert names(EVENTS_V1.format(ns=ns) + "?fieldSelector=" + sel) == {b}
    sel = "reportingComponent%3Dexample.com%2Fscheduler"
    assert names(EVENTS_CORE.format(ns=ns) + "?fieldSelector=" + sel) == {b}
    # source is source.component, else the reporting controller
    assert names(EVENTS_V1.format(ns=ns) + "?fieldSelector=source%3Dkubelet") == {a}
    sel = "source%3Dexample.com%2Fscheduler"
    assert names(EVENTS_CORE.format(ns=ns) + "?fieldSelector=" + sel) == {b}
    status, _, body = raw(
        "GET", EVENTS_V1.format(ns=ns) + "?fieldSelector=involvedObject.name%3Done"
    )
    assert status == 400
    assert json.loads(body)["message"] == "field label not supported: involvedObject.name"


def test_watch_through_events_v1_sees_core_writes(raw: Raw, ns: str) -> None:
    start = _ok(raw("GET", EVENTS_V1.format(ns=ns)))["metadata"]["resourceVersion"]
    name = _name()
    _ok(raw("POST", EVENTS_CORE.format(ns=ns), _core_event(ns, name)), 201)
    _ok(raw("DELETE", EVENTS_V1.format(ns=ns) + "/" + name))
    out = _ok_lines(
        raw(
            "GET",
            EVENTS_V1.format(ns=ns)
            + f"?watch=1&resourceVersion={start}&timeoutSeconds=1&fieldSelector=regarding.name%3Dp",
        )
    )
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in out] == [
        ("ADDED", name),
        ("DELETED", name),
    ]
    assert all(e["object"]["apiVersion"] == "events.k8s.io/v1" for e in out)
    assert out[0]["object"]["note"] == "pulled the image"
    # the core/v1 watch of the same history shows the core shape
    core = _ok_lines(
        raw("GET", EVENTS_CORE.format(ns=ns) + f"?watch=1&resourceVersion={start}&timeoutSeconds=1")
    )
    assert [e["object"]["metadata"]["uid"] for e in core] == [
        e["object"]["metadata"]["uid"] for e in out
    ]
    assert core[0]["object"]["message"] == "pulled the image"


def _ok_lines(res: tuple[int, dict[str, str], bytes]) -> list[dict[str, Any]]:
    status, _, body = res
    assert status == 200, body
    return [json.loads(line) for line in body.splitlines() if line.strip()]


def test_delete_through_one_api_removes_from_both(raw: Raw, ns: str) -> None:
    a, b = _name(), _name()
    _ok(raw("POST", EVENTS_CORE.format(ns=ns), _core_event(ns, a)), 201)
    _ok(raw("POST", EVENTS_V1.format(ns=ns), _v1_event(ns, b)), 201)
    gone = _ok(raw("DELETE", EVENTS_V1.format(ns=ns) + "/" + a))
    assert gone["status"] == "Success"
    assert gone["details"]["group"] == "events.k8s.io"
    assert raw("GET", EVENTS_CORE.format(ns=ns) + "/" + a)[0] == 404
    _ok(raw("DELETE", EVENTS_CORE.format(ns=ns) + "/" + b))
    status, _, body = raw("GET", EVENTS_V1.format(ns=ns) + "/" + b)
    assert status == 404
    assert json.loads(body)["message"] == f'events.events.k8s.io "{b}" not found'


def test_delete_collection_through_events_v1(raw: Raw, ns: str) -> None:
    a, b = _name(), _name()
    _ok(raw("POST", EVENTS_CORE.format(ns=ns), _core_event(ns, a)), 201)
    _ok(raw("POST", EVENTS_CORE.format(ns=ns), _core_event(ns, b, pod="q")), 201)
    out = _ok(raw("DELETE", EVENTS_V1.format(ns=ns) + "?fieldSelector=regarding.name%3Dq"))
    assert [i["metadata"]["name"] for i in out["items"]] == [b]
    assert out["items"][0]["regarding"]["name"] == "q"
    left = _ok(raw("GET", EVENTS_CORE.format(ns=ns)))["items"]
    assert [i["metadata"]["name"] for i in left] == [a]


def test_kubectl_get_events_shows_both(kubectl: Kubectl, raw: Raw, ns: str) -> None:
    a, b = _name(), _name()
    _ok(raw("POST", EVENTS_CORE.format(ns=ns), _core_event(ns, a)), 201)
    _ok(raw("POST", EVENTS_V1.format(ns=ns), _v1_event(ns, b)), 201)
    for resource in ("events", "events.events.k8s.io"):
        listed = json.loads(kubectl("get", resource, "-n", ns, "-o", "json").stdout)
        assert {i["metadata"]["name"] for i in listed["items"]} == {a, b}, resource
        rows = kubectl("get", resource, "-n", ns, "--no-headers").stdout.splitlines()
        assert sorted(r.split()[2] for r in rows) == ["Pulled", "Scheduled"], rows
    got = json.loads(kubectl("get", "events.events.k8s.io", a, "-n", ns, "-o", "json").stdout)
    assert got["regarding"]["name"] == "p"
