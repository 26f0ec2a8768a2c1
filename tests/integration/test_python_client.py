"""The ``kubernetes`` PyPI client against a real Corral server: watch, chunking, GC, namespaces."""

from __future__ import annotations

import threading
import time

import pytest
from kubernetes import client, watch
from kubernetes.client.rest import ApiException


def _cm(
    name: str, labels: dict[str, str] | None = None, data: dict[str, str] | None = None
) -> dict:
    return {"metadata": {"name": name, "labels": labels or {}}, "data": data or {"k": "v"}}


def test_crud_and_conflict(api_client, ns) -> None:
    v1 = client.CoreV1Api(api_client)
    created = v1.create_namespaced_config_map(ns, _cm("a"))
    assert int(created.metadata.resource_version) > 0
    got = v1.read_namespaced_config_map("a", ns)
    got.data["k"] = "w"
    updated = v1.replace_namespaced_config_map("a", ns, got)
    assert int(updated.metadata.resource_version) > int(created.metadata.resource_version)
    with pytest.raises(ApiException) as e:
        v1.replace_namespaced_config_map("a", ns, got)  # stale resourceVersion
    assert e.value.status == 409
    with pytest.raises(ApiException) as e:
        v1.create_namespaced_config_map(ns, _cm("a"))
    assert e.value.status == 409 and "already exists" in e.value.body


def test_generate_name(api_client, ns) -> None:
    v1 = client.CoreV1Api(api_client)
    made = v1.create_namespaced_config_map(ns, {"metadata": {"generateName": "gen-"}, "data": {}})
    assert made.metadata.name.startswith("gen-") and len(made.metadata.name) == 9


def test_chunked_list(api_client, ns) -> None:
    v1 = client.CoreV1Api(api_client)
    for i in range(25):
        v1.create_namespaced_config_map(ns, _cm(f"c{i:02d}", {"chunk": "yes"}))
    names: list[str] = []
    first = v1.list_namespaced_config_map(ns, limit=10, label_selector="chunk=yes")
    names += [i.metadata.name for i in first.items]
    token = first.metadata._continue
    assert token
    while token:
        page = v1.list_namespaced_config_map(
            ns, limit=10, _continue=token, label_selector="chunk=yes"
        )
        names += [i.metadata.name for i in page.items]
        token = page.metadata._continue
    assert names == [f"c{i:02d}" for i in range(25)]
    unfiltered = v1.list_namespaced_config_map(ns, limit=5)  # with kube-root-ca.crt: 26
    assert unfiltered.metadata.remaining_item_count == 21


def test_label_and_field_selectors(api_client, ns) -> None:
    v1 = client.CoreV1Api(api_client)
    v1.create_namespaced_config_map(ns, _cm("x", {"app": "a", "tier": "1"}))
    v1.create_namespaced_config_map(ns, _cm("y", {"app": "b"}))
    assert [
        i.metadata.name
        for i in v1.list_namespaced_config_map(ns, label_selector="app in (a,c),tier").items
    ] == ["x"]
    assert [
        i.metadata.name
        for i in v1.list_namespaced_config_map(ns, label_selector="app!=a,app").items
    ] == ["y"]
    assert [
        i.metadata.name
        for i in v1.list_namespaced_config_map(ns, field_selector="metadata.name=y").items
    ] == ["y"]
    with pytest.raises(ApiException) as e:
        v1.list_namespaced_config_map(ns, field_selector="spec.foo=1")
    assert e.value.status == 400
    with pytest.raises(ApiException) as e:
        v1.list_namespaced_config_map(ns, label_selector="a in (")
    assert e.value.status == 400


def test_watch_events_and_resume(api_client, ns) -> None:
    v1 = client.CoreV1Api(api_client)
    start = v1.list_namespaced_config_map(ns).metadata.resource_version
    v1.create_namespaced_config_map(ns, _cm("w"))
    v1.patch_namespaced_config_map("w", ns, {"data": {"k": "2"}})
    v1.delete_namespaced_config_map("w", ns)
    w = watch.Watch()
    seen = []
    for ev in w.stream(
        v1.list_namespaced_config_map, ns, resource_version=start, timeout_seconds=2
    ):
        seen.append((ev["type"], ev["object"].metadata.name))
        if len(seen) == 3:
            w.stop()
    assert seen == [("ADDED", "w"), ("MODIFIED", "w"), ("DELETED", "w")]


def test_watch_selector_enter_and_leave(api_client, ns) -> None:
    v1 = client.CoreV1Api(api_client)
    v1.create_namespaced_config_map(ns, _cm("s", {"pick": "no"}))
    rv = v1.list_namespaced_config_map(ns).metadata.resource_version
    v1.patch_namespaced_config_map("s", ns, {"metadata": {"labels": {"pick": "yes"}}})
    v1.patch_namespaced_config_map("s", ns, {"metadata": {"labels": {"pick": "no"}}})
    w = watch.Watch()
    types = []
    for ev in w.stream(
        v1.list_namespaced_config_map,
        ns,
        label_selector="pick=yes",
        resource_version=rv,
        timeout_seconds=2,
    ):
        types.append(ev["type"])
        if len(types) == 2:
            w.stop()
    assert types == ["ADDED", "DELETED"]


def test_watch_live_stream(api_client, ns) -> None:
    v1 = client.CoreV1Api(api_client)
    rv = v1.list_namespaced_config_map(ns).metadata.resource_version

    def later() -> None:
        time.sleep(0.3)
        v1.create_namespaced_config_map(ns, _cm("live"))

    t = threading.Thread(target=later)
    t.start()
    w = watch.Watch()
    got = None
    for ev in w.stream(v1.list_namespaced_config_map, ns, resource_version=rv, timeout_seconds=10):
        got = (ev["type"], ev["object"].metadata.name)
        w.stop()
    t.join()
    assert got == ("ADDED", "live")


def test_watch_too_old_gives_410(tmp_path) -> None:
    """A server keeping 5 revisions of history answers an older watch with ERROR 410."""
    import json
    import ssl
    import urllib.request

    import yaml

    from conftest import start_server

    srv = start_server(tmp_path / "data", extra=["--history", "5"])
    try:
        cfg = yaml.safe_load(srv.kubeconfig.read_text())
        token = cfg["users"][0]["user"]["token"]
        ctx = ssl.create_default_context(cafile=str(srv.data_dir / "pki" / "ca.crt"))

        def call(method: str, path: str, body: dict | None = None) -> bytes:
            req = urllib.request.Request(
                srv.url + path,
                method=method,
                data=json.dumps(body).encode() if body else None,
                headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            )
            with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
                return r.read()

        first = json.loads(call("GET", "/api/v1/namespaces/default/configmaps"))["metadata"][
            "resourceVersion"
        ]
        for i in range(20):
            call("POST", "/api/v1/namespaces/default/configmaps", {"metadata": {"name": f"h{i}"}})
        body = call(
            "GET",
            f"/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={first}&timeoutSeconds=2",
        )
        event = json.loads(body.splitlines()[0])
        assert event["type"] == "ERROR"
        assert event["object"]["code"] == 410 and event["object"]["reason"] == "Expired"
        assert event["object"]["message"].startswith(f"too old resource version: {first} (")
    finally:
        srv.stop()


def test_garbage_collection_background_orphan_foreground(api_client, ns) -> None:
    v1 = client.CoreV1Api(api_client)
    owner = v1.create_namespaced_config_map(ns, _cm("owner"))
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.metadata.uid}
    for i in range(3):
        v1.create_namespaced_config_map(
            ns, {"metadata": {"name": f"dep{i}", "ownerReferences": [ref]}}
        )
    v1.delete_namespaced_config_map("owner", ns, propagation_policy="Background")
    _eventually(
        lambda: (
            not [
                c
                for c in v1.list_namespaced_config_map(ns).items
                if c.metadata.name.startswith("dep")
            ]
        )
    )

    owner = v1.create_namespaced_config_map(ns, _cm("owner2"))
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner2", "uid": owner.metadata.uid}
    v1.create_namespaced_config_map(ns, {"metadata": {"name": "orph", "ownerReferences": [ref]}})
    v1.delete_namespaced_config_map("owner2", ns, propagation_policy="Orphan")
    _eventually(lambda: _missing(v1, ns, "owner2"))
    assert not v1.read_namespaced_config_map("orph", ns).metadata.owner_references

    owner = v1.create_namespaced_config_map(ns, _cm("owner3"))
    ref = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "name": "owner3",
        "uid": owner.metadata.uid,
        "blockOwnerDeletion": True,
    }
    v1.create_namespaced_config_map(ns, {"metadata": {"name": "fg", "ownerReferences": [ref]}})
    v1.delete_namespaced_config_map("owner3", ns, propagation_policy="Foreground")
    _eventually(lambda: _missing(v1, ns, "owner3") and _missing(v1, ns, "fg"))


def test_namespace_deletion(api_client) -> None:
    v1 = client.CoreV1Api(api_client)
    v1.create_namespace({"metadata": {"name": "doomed"}})
    v1.create_namespaced_config_map("doomed", _cm("x"))
    v1.delete_namespace("doomed")
    ns = v1.read_namespace("doomed")
    assert ns.status.phase == "Terminating"
    _eventually(lambda: _ns_missing(v1, "doomed"))


def test_create_in_terminating_namespace_forbidden(api_client) -> None:
    v1 = client.CoreV1Api(api_client)
    v1.create_namespace({"metadata": {"name": "closing"}})
    cm = v1.create_namespaced_config_map("closing", _cm("keep"))
    v1.patch_namespaced_config_map(
        "keep", "closing", {"metadata": {"finalizers": ["example.com/hold"]}}
    )
    v1.delete_namespace("closing")
    with pytest.raises(ApiException) as e:
        v1.create_namespaced_config_map("closing", _cm("late"))
    assert e.value.status == 403 and "being terminated" in e.value.body
    v1.patch_namespaced_config_map("keep", "closing", {"metadata": {"finalizers": None}})
    _eventually(lambda: _ns_missing(v1, "closing"))
    assert cm


def _missing(v1, ns: str, name: str) -> bool:  # type: ignore[no-untyped-def]
    try:
        v1.read_namespaced_config_map(name, ns)
    except ApiException as e:
        return e.status == 404
    return False


def _ns_missing(v1, name: str) -> bool:  # type: ignore[no-untyped-def]
    try:
        v1.read_namespace(name)
    except ApiException as e:
        return e.status == 404
    return False


def _eventually(pred, timeout: float = 10) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")
