"""CRDs that must not hurt anything else: the real kubectl and ``kubernetes`` client.

One server for the module (restarted once). A CRD naming a built-in resource is
shadowed by it (and its deletion leaves the built-in's objects alone); protected groups
need the API approval annotation; a CRD whose names stopped being accepted keeps being
served across a restart, its objects loaded and their dependents kept; the garbage
collector leaves dependents of owners of unknown kinds alone; empty name lists, CRDs
without a served version, metadata of custom objects, deep bodies, selectable fields
added later, discovery order, the published OpenAPI, watches of a deleted CRD and an
empty scale selector each have a test.
"""

from __future__ import annotations

import copy
import json
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from conftest import Kubectl, api_client_for, start_server
from corral.testing.process import ServerProcess
from corral.testing.wait import eventually

GROUP = "guard.example.com"


def crd(
    plural: str,
    kind: str,
    group: str = GROUP,
    schema: dict[str, Any] | None = None,
    **names: Any,
) -> dict[str, Any]:
    version: dict[str, Any] = {
        "name": "v1",
        "served": True,
        "storage": True,
        "schema": {
            "openAPIV3Schema": schema
            or {
                "type": "object",
                "properties": {
                    "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
                },
            }
        },
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": plural, "kind": kind, **names},
            "versions": [version],
        },
    }


def obj(kind: str, name: str, group: str = GROUP, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{group}/v1",
        "kind": kind,
        "metadata": {"name": name},
        "spec": spec,
    }


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    s = start_server(tmp_path_factory.mktemp("crdguards") / "data")
    yield s
    s.stop()


@pytest.fixture(scope="module")
def kc(srv: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    return Kubectl(srv.kubeconfig, tmp_path_factory.mktemp("kubecache"))


@pytest.fixture(scope="module")
def api(srv: ServerProcess) -> Iterator[client.ApiClient]:
    with api_client_for(srv.kubeconfig) as c:
        yield c


def _apply(kc: Kubectl, o: dict[str, Any], *args: str, check: bool = True) -> Any:
    return kc("apply", "-f", "-", *args, input=yaml.safe_dump(o), check=check)


def _conditions(api: client.ApiClient, name: str) -> dict[str, dict[str, Any]]:
    ext = client.ApiextensionsV1Api(api)
    got = api.sanitize_for_serialization(ext.read_custom_resource_definition(name))
    return {c["type"]: c for c in (got.get("status") or {}).get("conditions") or []}


def _wait_gone(api: client.ApiClient, name: str) -> None:
    ext = client.ApiextensionsV1Api(api)

    def gone() -> bool:
        try:
            ext.read_custom_resource_definition(name)
        except ApiException as e:
            return e.status == 404
        return False

    eventually(gone)


def test_builtin_resource_is_never_taken_over(api: client.ApiClient, kc: Kubectl) -> None:
    sched = client.SchedulingV1Api(api)
    sched.create_priority_class({"metadata": {"name": "keep-me"}, "value": 7})
    shadow = crd(
        "priorityclasses",
        "PriorityClass",
        group="scheduling.k8s.io",
        schema={"type": "object", "x-kubernetes-preserve-unknown-fields": True},
    )
    shadow["spec"]["scope"] = "Cluster"
    shadow["metadata"]["annotations"] = {"api-approved.kubernetes.io": "unapproved, testing"}
    _apply(kc, shadow)
    name = "priorityclasses.scheduling.k8s.io"
    conds = eventually(lambda: (c := _conditions(api, name)).get("Established") and c)
    # upstream: the naming controller only sees CRDs; the built-in handler answers first
    assert conds["Established"]["status"] == "True"
    assert conds["KubernetesAPIApprovalPolicyConformant"]["reason"] == "UnapprovedAnnotation"
    # the built-in still validates
    with pytest.raises(ApiException) as e:
        sched.create_priority_class({"metadata": {"name": "bad"}, "value": 2_000_000_000})
    assert e.value.status == 422
    assert sched.read_priority_class("keep-me").value == 7
    kc("delete", "crd", name, "--timeout=20s")
    _wait_gone(api, name)
    assert sched.read_priority_class("keep-me").value == 7
    assert "priorityclass.scheduling.k8s.io/keep-me" in kc("get", "pc", "-o", "name").stdout
    sched.delete_priority_class("keep-me")


@pytest.mark.parametrize(
    ("annotation", "want"),
    [
        (
            None,
            "metadata.annotations[api-approved.kubernetes.io]: Required value: protected groups "
            'must have approval annotation "api-approved.kubernetes.io", see '
            "https://github.com/kubernetes/enhancements/pull/1111",
        ),
        (
            "bad value",
            'metadata.annotations[api-approved.kubernetes.io]: Invalid value: "bad value": '
            'protected groups must have approval annotation "api-approved.kubernetes.io" with '
            'either a URL or a reason starting with "unapproved", see '
            "https://github.com/kubernetes/enhancements/pull/1111",
        ),
    ],
)
def test_protected_group_needs_approval(
    api: client.ApiClient, annotation: str | None, want: str
) -> None:
    body = crd("things", "Thing", group="x.k8s.io")
    if annotation is not None:
        body["metadata"]["annotations"] = {"api-approved.kubernetes.io": annotation}
    ext = client.ApiextensionsV1Api(api)
    with pytest.raises(ApiException) as e:
        ext.create_custom_resource_definition(body)
    assert e.value.status == 422
    assert json.loads(e.value.body)["message"] == (
        f'CustomResourceDefinition.apiextensions.k8s.io "things.x.k8s.io" is invalid: {want}'
    )


def test_approved_protected_group(api: client.ApiClient) -> None:
    body = crd("things", "Thing", group="x.k8s.io")
    url = "https://github.com/kubernetes/kubernetes/pull/79724"
    body["metadata"]["annotations"] = {"api-approved.kubernetes.io": url}
    ext = client.ApiextensionsV1Api(api)
    ext.create_custom_resource_definition(body)
    cond = eventually(
        lambda: _conditions(api, "things.x.k8s.io").get("KubernetesAPIApprovalPolicyConformant")
    )
    assert (cond["status"], cond["reason"], cond["message"]) == (
        "True",
        "ApprovedAnnotation",
        f"approved in {url}",
    )
    ext.delete_custom_resource_definition("things.x.k8s.io")
    _wait_gone(api, "things.x.k8s.io")


def _dead_owner_canary(core: client.CoreV1Api, name: str) -> None:
    """A ConfigMap owned by a ConfigMap that is gone: once the collector deleted it, it
    has looked at everything queued before."""
    core.create_namespaced_config_map(
        "default",
        {
            "metadata": {
                "name": name,
                "ownerReferences": [
                    {
                        "apiVersion": "v1",
                        "kind": "ConfigMap",
                        "name": "gone",
                        "uid": str(uuid.uuid4()),
                    }
                ],
            }
        },
    )

    def collected() -> bool:
        try:
            core.read_namespaced_config_map(name, "default")
        except ApiException as e:
            return e.status == 404
        return False

    eventually(collected)


def test_owner_of_unknown_kind_keeps_its_dependents(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    core.create_namespaced_config_map(
        "default",
        {
            "metadata": {
                "name": "orphan-of-unknown",
                "ownerReferences": [
                    {
                        "apiVersion": "nothing.example.com/v1",
                        "kind": "Nothing",
                        "name": "x",
                        "uid": str(uuid.uuid4()),
                    }
                ],
            }
        },
    )
    _dead_owner_canary(core, "canary-1")
    assert core.read_namespaced_config_map("orphan-of-unknown", "default")
    core.delete_namespaced_config_map("orphan-of-unknown", "default")


def test_conflicting_crd_survives_restart(
    api: client.ApiClient, kc: Kubectl, srv: ServerProcess
) -> None:
    _apply(kc, crd("gizmos", "Gizmo", shortNames=["gz"]))
    _apply(kc, crd("gadgets", "Gadget", shortNames=["gd"]))
    co = client.CustomObjectsApi(api)
    core = client.CoreV1Api(api)
    g1 = eventually(
        lambda: _try(
            lambda: co.create_namespaced_custom_object(
                GROUP, "v1", "default", "gizmos", obj("Gizmo", "g1")
            )
        )
    )
    core.create_namespaced_config_map(
        "default",
        {
            "metadata": {
                "name": "owned-by-g1",
                "ownerReferences": [
                    {
                        "apiVersion": f"{GROUP}/v1",
                        "kind": "Gizmo",
                        "name": "g1",
                        "uid": g1["metadata"]["uid"],
                    }
                ],
            }
        },
    )
    # a short name already taken: NamesAccepted False, still served under the old names
    _apply(kc, crd("gizmos", "Gizmo", shortNames=["gd"]))
    cond = eventually(
        lambda: (
            (c := _conditions(api, f"gizmos.{GROUP}")["NamesAccepted"])["status"] == "False" and c
        )
    )
    assert cond["reason"] == "ShortNamesConflict"
    assert "gizmo.guard.example.com/g1" in kc("get", "gz", "-o", "name").stdout

    srv.stop()
    again = ServerProcess.start(srv.data_dir, port=srv.port, extra=srv.argv[10:], timeout=30)
    srv.proc = again.proc
    got = co.get_namespaced_custom_object(GROUP, "v1", "default", "gizmos", "g1")
    assert got["metadata"]["uid"] == g1["metadata"]["uid"]
    _dead_owner_canary(core, "canary-2")
    assert core.read_namespaced_config_map("owned-by-g1", "default")
    # deleting the CRD deletes its objects (listed by storage prefix) and then theirs
    kc("delete", "crd", f"gizmos.{GROUP}", f"gadgets.{GROUP}", "--timeout=20s")
    eventually(
        lambda: _try(lambda: core.read_namespaced_config_map("owned-by-g1", "default")) is None
    )


def _try(call: Callable[[], Any]) -> Any:
    try:
        return call()
    except ApiException:
        return None


def test_empty_name_lists_and_no_served_version(api: client.ApiClient, kc: Kubectl) -> None:
    _apply(kc, crd("blanks", "Blank", shortNames=[], categories=[]))
    assert "No resources found" in kc("get", "blanks").stderr
    co = client.CustomObjectsApi(api)
    co.create_namespaced_custom_object(GROUP, "v1", "default", "blanks", obj("Blank", "b"))
    unserved = crd("hiddens", "Hidden")
    unserved["spec"]["versions"][0]["served"] = False
    _apply(kc, unserved)
    eventually(lambda: _conditions(api, f"hiddens.{GROUP}").get("Established"))
    assert _try(lambda: co.list_namespaced_custom_object(GROUP, "v1", "default", "hiddens")) is None
    # other CRDs still change what is served
    _apply(kc, crd("blanks", "Blank", shortNames=["bl"]))
    assert "blank.guard.example.com/b" in eventually(
        lambda: kc("get", "bl", "-o", "name", check=False).stdout
    )
    unserved["spec"]["versions"][0]["served"] = True
    _apply(kc, unserved)
    assert eventually(
        lambda: _try(lambda: co.list_namespaced_custom_object(GROUP, "v1", "default", "hiddens"))
    )
    kc("delete", "crd", f"blanks.{GROUP}", f"hiddens.{GROUP}", "--timeout=20s")


@pytest.fixture(scope="module")
def widgets(api: client.ApiClient, kc: Kubectl) -> str:
    schema = {
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "x-kubernetes-preserve-unknown-fields": True,
                "properties": {
                    "a": {"type": "string"},
                    "port": {"x-kubernetes-int-or-string": True},
                    "replicas": {"type": "integer"},
                },
            }
        },
    }
    body = crd("widgets", "Widget", schema=schema)
    body["spec"]["versions"][0]["subresources"] = {
        "scale": {"specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas"}
    }
    _apply(kc, body)
    eventually(lambda: _conditions(api, f"widgets.{GROUP}").get("Established"))
    return "widgets"


def test_metadata_of_custom_objects_is_decoded(api: client.ApiClient, widgets: str) -> None:
    co = client.CustomObjectsApi(api)
    for field, value, where in (
        ("labels", "x", "ObjectMeta.metadata.labels of type map[string]string"),
        ("annotations", {"a": 1}, "ObjectMeta.metadata.annotations"),
        ("finalizers", [1], "ObjectMeta.metadata.finalizers of type string"),
        ("ownerReferences", "x", "ObjectMeta.metadata.ownerReferences of type []v1."),
    ):
        body = obj("Widget", "meta")
        body["metadata"][field] = value
        with pytest.raises(ApiException) as e:
            co.create_namespaced_custom_object(GROUP, "v1", "default", widgets, body)
        assert e.value.status == 400, field
        message = json.loads(e.value.body)["message"]
        assert message.startswith('Widget in version "v1" cannot be handled as a Widget: json: ')
        assert f"into Go struct field {where}" in message, message
    body = obj("Widget", "meta")
    body["metadata"]["bogus"] = 1
    made, _, headers = co.create_namespaced_custom_object_with_http_info(
        GROUP, "v1", "default", widgets, body
    )
    assert "bogus" not in made["metadata"]
    assert 'unknown field \\"metadata.bogus\\"' in headers.get("Warning", "")
    with pytest.raises(ApiException) as e:
        co.create_namespaced_custom_object(
            GROUP,
            "v1",
            "default",
            widgets,
            {**body, "metadata": {"name": "m2", "bogus": 1}},
            field_validation="Strict",
        )
    assert e.value.status == 400
    assert json.loads(e.value.body)["message"] == (
        'Widget in version "v1" cannot be handled as a Widget: strict decoding error: '
        'unknown field "metadata.bogus"'
    )
    co.delete_namespaced_custom_object(GROUP, "v1", "default", widgets, "meta")


def _nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = {"n": value}
    return value


def test_deep_bodies_are_bad_requests(api: client.ApiClient, widgets: str, kc: Kubectl) -> None:
    co = client.CustomObjectsApi(api)
    with pytest.raises(ApiException) as e:
        co.create_namespaced_custom_object(
            GROUP, "v1", "default", widgets, obj("Widget", "deep", deep=_nested(300))
        )
    assert e.value.status == 400
    assert json.loads(e.value.body)["message"] == "error decoding JSON: exceeded max depth"
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(200):
        schema = {"type": "object", "properties": {"p": schema}}
    ext = client.ApiextensionsV1Api(api)
    with pytest.raises(ApiException) as e:
        ext.create_custom_resource_definition(crd("deeps", "Deep", schema=schema))
    assert e.value.status == 400
    # a built-in kind too; and the server is fine afterwards
    deep = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "deep", "x": _nested(300)},
    }
    res = kc(
        "create",
        "--raw",
        "/api/v1/namespaces/default/configmaps",
        "-f",
        "-",
        input=json.dumps(deep),
        check=False,
    )
    assert res.returncode != 0 and "exceeded max depth" in res.stderr, res.stderr
    assert co.list_namespaced_custom_object(GROUP, "v1", "default", widgets)["kind"] == "WidgetList"


def test_scale_without_selector(api: client.ApiClient, widgets: str) -> None:
    co = client.CustomObjectsApi(api)
    co.create_namespaced_custom_object(
        GROUP, "v1", "default", widgets, obj("Widget", "scaled", replicas=2)
    )
    scale = co.get_namespaced_custom_object_scale(GROUP, "v1", "default", widgets, "scaled")
    assert scale["status"] == {"replicas": 0}
    assert scale["spec"] == {"replicas": 2}
    co.delete_namespaced_custom_object(GROUP, "v1", "default", widgets, "scaled")


def test_published_schema_keeps_unknown_fields_open(kc: Kubectl, widgets: str) -> None:
    items = [obj("Widget", f"l{i}", a="x", b=i, port="http") for i in range(2)]
    # kubectl validates client-side against the published OpenAPI (v3)
    _apply(kc, {"apiVersion": "v1", "kind": "List", "items": items})
    got = json.loads(kc("get", widgets, "l1", "-o", "json").stdout)
    assert got["spec"]["b"] == 1
    v3 = json.loads(kc("get", "--raw", f"/openapi/v3/apis/{GROUP}/v1").stdout)
    spec = v3["components"]["schemas"]["com.example.guard.v1.Widget"]["properties"]["spec"]
    assert spec["x-kubernetes-preserve-unknown-fields"] is True
    # int-or-string unfolded as upstream publishes it (kubectl explain then says
    # <Object>, as against a real server: its typeGuess reads only "type" and "$ref")
    assert spec["properties"]["port"]["anyOf"] == [{"type": "integer"}, {"type": "string"}]
    assert "FIELD: port <Object>" in kc("explain", f"{widgets}.spec.port").stdout
    v2 = json.loads(kc("get", "--raw", "/openapi/v2").stdout)
    spec = v2["definitions"]["com.example.guard.v1.Widget"]["properties"]["spec"]
    assert spec.get("x-kubernetes-preserve-unknown-fields") is True
    kc("delete", widgets, "l0", "l1")


def test_selectable_fields_added_later(api: client.ApiClient, kc: Kubectl) -> None:
    body = crd(
        "colors",
        "Color",
        schema={
            "type": "object",
            "properties": {"spec": {"type": "object", "properties": {"hue": {"type": "string"}}}},
        },
    )
    _apply(kc, body)
    co = client.CustomObjectsApi(api)
    for name, hue in (("red", "warm"), ("blue", "cold")):
        eventually(
            lambda n=name, h=hue: _try(
                lambda: co.create_namespaced_custom_object(
                    GROUP, "v1", "default", "colors", obj("Color", n, hue=h)
                )
            )
        )
    body = copy.deepcopy(body)
    body["spec"]["versions"][0]["selectableFields"] = [{"jsonPath": ".spec.hue"}]
    _apply(kc, body)

    def selected() -> list[str]:
        got = _try(
            lambda: co.list_namespaced_custom_object(
                GROUP, "v1", "default", "colors", field_selector="spec.hue=warm"
            )
        )
        return [i["metadata"]["name"] for i in got["items"]] if got else []

    assert eventually(selected) == ["red"]
    kc("delete", "crd", f"colors.{GROUP}", "--timeout=20s")


def test_crds_come_after_every_builtin_group(kc: Kubectl, api: client.ApiClient) -> None:
    # short names of built-ins: a CRD's "sc" and "crd" must not shadow them for kubectl
    _apply(
        kc,
        crd("aardvarks", "Aardvark", group="aa.example.com", shortNames=["sc", "crd"]),
    )
    eventually(lambda: _conditions(api, "aardvarks.aa.example.com").get("Established"))
    groups = [g["name"] for g in json.loads(kc("get", "--raw", "/apis").stdout)["groups"]]
    builtin = [
        "apiregistration.k8s.io",
        "apps",
        "events.k8s.io",
        "autoscaling",
        "batch",
        "policy",
        "storage.k8s.io",
        "apiextensions.k8s.io",
        "scheduling.k8s.io",
    ]
    present = [g for g in groups if g in builtin]
    assert present == [g for g in builtin if g in present]
    assert groups.index("aa.example.com") > max(groups.index(g) for g in present)
    assert "storageclass.storage.k8s.io/" in kc("get", "sc", "-o", "name").stdout or (
        "No resources found" in kc("get", "sc").stderr
    )
    assert "customresourcedefinition.apiextensions.k8s.io/aardvarks.aa.example.com" in (
        kc("get", "crd", "-o", "name").stdout
    )
    kc("delete", "crd", "aardvarks.aa.example.com", "--timeout=20s")


def test_watch_ends_when_crd_is_deleted(api: client.ApiClient, kc: Kubectl) -> None:
    _apply(kc, crd("blinks", "Blink"))
    co = client.CustomObjectsApi(api)
    eventually(
        lambda: _try(lambda: co.list_namespaced_custom_object(GROUP, "v1", "default", "blinks"))
    )
    ended = threading.Event()

    def run() -> None:
        w = watch.Watch()
        for _ in w.stream(
            co.list_namespaced_custom_object, GROUP, "v1", "default", "blinks", timeout_seconds=30
        ):
            pass
        ended.set()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    co.create_namespaced_custom_object(GROUP, "v1", "default", "blinks", obj("Blink", "x"))
    kc("delete", "crd", f"blinks.{GROUP}", "--timeout=20s")
    assert ended.wait(10)
