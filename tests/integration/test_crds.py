"""CustomResourceDefinitions end to end: the real kubectl and the ``kubernetes`` client.

One server for the module. A CRD with a schema, printer columns, a short name and the
``all`` category is applied and used at once (discovery refreshes), custom objects are
created, refused (422 with upstream's words), explained, watched, scaled and deleted with
their CRD; the naming conflict, multiple versions, defaulting and pruning, garbage
collection, namespace deletion and a restart (CRDs served again before anything else)
each have a test.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, dynamic, watch
from kubernetes.client.exceptions import ApiException

from conftest import Kubectl, api_client_for, start_server
from corral.testing.process import ServerProcess
from corral.testing.wait import eventually

GROUP = "stable.example.com"

CRONTAB_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": f"crontabs.{GROUP}"},
    "spec": {
        "group": GROUP,
        "scope": "Namespaced",
        "names": {
            "plural": "crontabs",
            "singular": "crontab",
            "kind": "CronTab",
            "shortNames": ["ct"],
            "categories": ["all"],
        },
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "selectableFields": [{"jsonPath": ".spec.image"}],
                "subresources": {
                    "status": {},
                    "scale": {
                        "specReplicasPath": ".spec.replicas",
                        "statusReplicasPath": ".status.replicas",
                        "labelSelectorPath": ".status.selector",
                    },
                },
                "additionalPrinterColumns": [
                    {"name": "Spec", "type": "string", "jsonPath": ".spec.cronSpec"},
                    {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"},
                    {"name": "Image", "type": "string", "jsonPath": ".spec.image", "priority": 1},
                    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                ],
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "description": "What the cron tab runs, and when.",
                                "properties": {
                                    "cronSpec": {
                                        "type": "string",
                                        "pattern": r"^(\d+|\*)(/\d+)?(\s+(\d+|\*)(/\d+)?){4}$",
                                        "description": "The schedule, in cron format.",
                                    },
                                    "image": {"type": "string"},
                                    "replicas": {
                                        "type": "integer",
                                        "minimum": 1,
                                        "maximum": 10,
                                        "default": 1,
                                    },
                                },
                            },
                            "status": {
                                "type": "object",
                                "properties": {
                                    "replicas": {"type": "integer"},
                                    "selector": {"type": "string"},
                                },
                            },
                        },
                    }
                },
            }
        ],
    },
}


def crontab(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/v1",
        "kind": "CronTab",
        "metadata": {"name": name},
        "spec": {"cronSpec": "* * * * */5", "image": "cron:1", **spec},
    }


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    s = start_server(tmp_path_factory.mktemp("crds") / "data")
    yield s
    s.stop()


@pytest.fixture(scope="module")
def kc(srv: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    return Kubectl(srv.kubeconfig, tmp_path_factory.mktemp("kubecache"))


@pytest.fixture(scope="module")
def api(srv: ServerProcess) -> Iterator[client.ApiClient]:
    with api_client_for(srv.kubeconfig) as c:
        yield c


@pytest.fixture(scope="module")
def crontabs(kc: Kubectl, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The CronTab CRD, applied with kubectl (the first test relies on it being new)."""
    path = tmp_path_factory.mktemp("manifests") / "crd.yaml"
    path.write_text(yaml.safe_dump(CRONTAB_CRD))
    return path


def _apply(kc: Kubectl, obj: dict[str, Any], *args: str, check: bool = True) -> Any:
    return kc("apply", "-f", "-", *args, input=yaml.safe_dump(obj), check=check)


def test_kubectl_crd_then_objects(kc: Kubectl, crontabs: Path) -> None:
    kc("apply", "-f", str(crontabs))
    # at once, as with a real server: the discovery cache sees the new resource
    assert "No resources found" in kc("get", "crontabs").stderr
    _apply(kc, crontab("nightly"))
    out = kc("get", "ct").stdout.splitlines()
    assert out[0].split() == ["NAME", "SPEC", "REPLICAS", "AGE"]
    assert out[1].split()[:6] == ["nightly", "*", "*", "*", "*", "*/5"]
    assert out[1].split()[6] == "1"  # defaulted
    wide = kc("get", "ct", "-o", "wide").stdout.splitlines()
    assert wide[0].split() == ["NAME", "SPEC", "REPLICAS", "IMAGE", "AGE"]
    assert "crontab.stable.example.com/nightly" in kc("get", "all").stdout
    crd = json.loads(kc("get", "crd", f"crontabs.{GROUP}", "-o", "json").stdout)
    conds = {c["type"]: c for c in crd["status"]["conditions"]}
    assert conds["Established"]["status"] == "True"
    assert conds["NamesAccepted"]["reason"] == "NoConflicts"
    assert crd["status"]["acceptedNames"]["shortNames"] == ["ct"]
    assert crd["status"]["storedVersions"] == ["v1"]
    kc("wait", "--for=condition=Established", f"crd/crontabs.{GROUP}", "--timeout=10s")


def test_kubectl_invalid_object(kc: Kubectl, crontabs: Path) -> None:
    bad = crontab("bad", cronSpec="every minute", replicas=50)
    res = _apply(kc, bad, check=False)
    assert res.returncode != 0
    assert 'The CronTab "bad" is invalid' in res.stderr
    assert (
        r'spec.cronSpec: Invalid value: "every minute": spec.cronSpec in body should match '
        r"'^(\d+|\*)(/\d+)?(\s+(\d+|\*)(/\d+)?){4}$'" in res.stderr
    )
    assert (
        "spec.replicas: Invalid value: 50: spec.replicas in body should be less than or equal to 10"
        in res.stderr
    )
    # unknown fields: kubectl asks for Strict validation
    res = _apply(kc, crontab("extra", color="red"), check=False)
    assert 'strict decoding error: unknown field "spec.color"' in res.stderr
    assert "bad" not in kc("get", "ct", "-o", "name").stdout


def test_kubectl_explain(kc: Kubectl, crontabs: Path) -> None:
    out = kc("explain", "crontab.spec").stdout
    assert "KIND:       CronTab" in out
    assert "What the cron tab runs, and when." in out
    assert "cronSpec\t<string>" in out
    assert "The schedule, in cron format." in out


def test_kubectl_watch_sees_update(kc: Kubectl, srv: ServerProcess, crontabs: Path) -> None:
    _apply(kc, crontab("watched"))
    proc = subprocess.Popen(
        [
            *("kubectl", "--kubeconfig", str(srv.kubeconfig), "--cache-dir", str(kc.cache_dir)),
            *("get", "ct", "watched", "-w", "--output-watch-events"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().split()[:2] == ["EVENT", "NAME"]
        assert proc.stdout.readline().split()[:2] == ["ADDED", "watched"]
        kc("patch", "ct", "watched", "--type=merge", "-p", '{"spec":{"replicas":7}}')
        line = proc.stdout.readline().split()
        assert line[:2] == ["MODIFIED", "watched"] and "7" in line
    finally:
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def test_python_dynamic_client(api: client.ApiClient, crontabs: Path, tmp_path: Path) -> None:
    # its discovery cache in the test's directory, not the client's default in /tmp
    dyn = dynamic.DynamicClient(api, cache_file=str(tmp_path / "discovery.json"))
    res = dyn.resources.get(api_version=f"{GROUP}/v1", kind="CronTab")
    made = res.create(body=crontab("dyn", replicas=2), namespace="default")
    assert made.spec.replicas == 2 and made.metadata.generation == 1
    names = [i.metadata.name for i in res.get(namespace="default").items]
    assert "dyn" in names
    patched = res.patch(
        name="dyn",
        namespace="default",
        body={"spec": {"image": "cron:2"}},
        content_type="application/merge-patch+json",
    )
    assert patched.spec.image == "cron:2" and patched.metadata.generation == 2
    selected = res.get(namespace="default", field_selector="spec.image=cron:2").items
    assert [i.metadata.name for i in selected] == ["dyn"]
    status = res.status.patch(
        name="dyn",
        namespace="default",
        body={"status": {"replicas": 2, "selector": "app=cron"}, "spec": {"image": "no"}},
        content_type="application/merge-patch+json",
    )
    assert status.status.replicas == 2 and status.spec.image == "cron:2"
    assert status.metadata.generation == 2  # a status write moves no generation
    res.delete(name="dyn", namespace="default")
    with pytest.raises(dynamic.exceptions.NotFoundError):
        res.get(name="dyn", namespace="default")


def test_python_custom_objects_scale_and_watch(api: client.ApiClient, crontabs: Path) -> None:
    co = client.CustomObjectsApi(api)
    co.create_namespaced_custom_object(GROUP, "v1", "default", "crontabs", crontab("scaled"))
    co.patch_namespaced_custom_object_status(
        GROUP, "v1", "default", "crontabs", "scaled", {"status": {"replicas": 1, "selector": "a=b"}}
    )
    scale = co.get_namespaced_custom_object_scale(GROUP, "v1", "default", "crontabs", "scaled")
    assert scale["spec"]["replicas"] == 1
    assert scale["status"] == {"replicas": 1, "selector": "a=b"}
    co.patch_namespaced_custom_object_scale(
        GROUP, "v1", "default", "crontabs", "scaled", {"spec": {"replicas": 4}}
    )
    obj = co.get_namespaced_custom_object(GROUP, "v1", "default", "crontabs", "scaled")
    assert obj["spec"]["replicas"] == 4
    with pytest.raises(ApiException) as e:
        co.patch_namespaced_custom_object_scale(
            GROUP, "v1", "default", "crontabs", "scaled", {"spec": {"replicas": 11}}
        )
    assert e.value.status == 422
    rv = obj["metadata"]["resourceVersion"]
    co.patch_namespaced_custom_object(
        GROUP, "v1", "default", "crontabs", "scaled", {"spec": {"image": "cron:3"}}
    )
    seen = []
    w = watch.Watch()
    for ev in w.stream(
        co.list_namespaced_custom_object,
        GROUP,
        "v1",
        "default",
        "crontabs",
        resource_version=rv,
        field_selector="metadata.name=scaled",
        timeout_seconds=5,
    ):
        seen.append((ev["type"], ev["object"]["spec"]["image"]))
        w.stop()
    assert seen == [("MODIFIED", "cron:3")]
    co.delete_namespaced_custom_object(GROUP, "v1", "default", "crontabs", "scaled")


def test_defaults_pruning_and_warnings(api: client.ApiClient, crontabs: Path) -> None:
    co = client.CustomObjectsApi(api)
    body = crontab("pruned", unknown=1)
    body["extra"] = {"a": 1}
    resp = co.create_namespaced_custom_object_with_http_info(
        GROUP, "v1", "default", "crontabs", body
    )
    obj, headers = resp[0], resp[2]
    assert "extra" not in obj and "unknown" not in obj["spec"]
    assert obj["spec"]["replicas"] == 1
    assert 'unknown field \\"extra\\"' in headers.get("Warning", "")
    co.delete_namespaced_custom_object(GROUP, "v1", "default", "crontabs", "pruned")


def test_names_conflict(api: client.ApiClient, crontabs: Path) -> None:
    ext = client.ApiextensionsV1Api(api)
    other = json.loads(json.dumps(CRONTAB_CRD))
    other["metadata"]["name"] = f"crontabs2.{GROUP}"
    other["spec"]["names"] = {"plural": "crontabs2", "kind": "CronTab", "shortNames": ["ct2"]}
    ext.create_custom_resource_definition(other)

    def conditions() -> dict[str, Any] | None:
        crd = api.sanitize_for_serialization(
            ext.read_custom_resource_definition(f"crontabs2.{GROUP}")
        )
        conds = {c["type"]: c for c in crd["status"].get("conditions") or []}
        return conds if "NamesAccepted" in conds else None

    conds = eventually(conditions)
    assert conds["NamesAccepted"]["status"] == "False"
    # singular, kind and listKind all clash; as upstream, the last check's words stay
    assert conds["NamesAccepted"]["reason"] == "ListKindConflict"
    assert conds["NamesAccepted"]["message"] == '"CronTabList" is already in use'
    assert conds["Established"]["reason"] == "NotAccepted"
    co = client.CustomObjectsApi(api)
    with pytest.raises(ApiException) as e:
        co.list_namespaced_custom_object(GROUP, "v1", "default", "crontabs2")
    assert e.value.status == 404
    ext.delete_custom_resource_definition(f"crontabs2.{GROUP}")


def test_crd_validation(api: client.ApiClient) -> None:
    ext = client.ApiextensionsV1Api(api)
    bad = json.loads(json.dumps(CRONTAB_CRD))
    bad["metadata"]["name"] = "wrong.example.com"
    bad["spec"]["versions"][0]["storage"] = False
    with pytest.raises(ApiException) as e:
        ext.create_custom_resource_definition(bad)
    assert e.value.status == 422
    causes = {(c["field"], c["message"]) for c in json.loads(e.value.body)["details"]["causes"]}
    fields = {f for f, _ in causes}
    assert (
        "metadata.name",
        'Invalid value: "wrong.example.com": must be spec.names.plural+"."+spec.group',
    ) in causes
    assert "spec.versions" in fields


def test_multiple_versions(api: client.ApiClient, kc: Kubectl) -> None:
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.multi.example.com"},
        "spec": {
            "group": "multi.example.com",
            "scope": "Cluster",
            "names": {"plural": "widgets", "kind": "Widget"},
            "versions": [
                {
                    "name": name,
                    "served": served,
                    "storage": name == "v1",
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {
                                    "type": "object",
                                    "properties": {"size": {"type": "integer"}},
                                }
                            },
                        }
                    },
                }
                for name, served in (("v1beta1", True), ("v1", True), ("v1alpha1", False))
            ],
        },
    }
    _apply(kc, crd)
    co = client.CustomObjectsApi(api)
    made = co.create_cluster_custom_object(
        "multi.example.com",
        "v1beta1",
        "widgets",
        {
            "apiVersion": "multi.example.com/v1beta1",
            "kind": "Widget",
            "metadata": {"name": "w"},
            "spec": {"size": 3},
        },
    )
    assert made["apiVersion"] == "multi.example.com/v1beta1"
    got = co.get_cluster_custom_object("multi.example.com", "v1", "widgets", "w")
    assert got["apiVersion"] == "multi.example.com/v1" and got["spec"]["size"] == 3
    assert got["metadata"]["uid"] == made["metadata"]["uid"]
    with pytest.raises(ApiException) as e:
        co.get_cluster_custom_object("multi.example.com", "v1alpha1", "widgets", "w")
    assert e.value.status == 404
    group = json.loads(kc("get", "--raw", "/apis/multi.example.com").stdout)
    assert group["preferredVersion"]["version"] == "v1"
    assert [v["version"] for v in group["versions"]] == ["v1", "v1beta1"]
    kc("delete", "crd", "widgets.multi.example.com")


def test_garbage_collection_and_namespace_deletion(api: client.ApiClient, crontabs: Path) -> None:
    core = client.CoreV1Api(api)
    co = client.CustomObjectsApi(api)
    core.create_namespace({"metadata": {"name": "crd-ns"}})
    cm = core.create_namespaced_config_map("crd-ns", {"metadata": {"name": "owner"}})
    owned = crontab("owned")
    owned["metadata"]["ownerReferences"] = [
        {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": cm.metadata.uid}
    ]
    co.create_namespaced_custom_object(GROUP, "v1", "crd-ns", "crontabs", owned)
    co.create_namespaced_custom_object(GROUP, "v1", "crd-ns", "crontabs", crontab("kept"))
    core.delete_namespaced_config_map("owner", "crd-ns")

    def names() -> list[str]:
        items = co.list_namespaced_custom_object(GROUP, "v1", "crd-ns", "crontabs")["items"]
        return [i["metadata"]["name"] for i in items]

    eventually(lambda: names() == ["kept"])
    core.delete_namespace("crd-ns")
    eventually(lambda: not core.list_namespace(field_selector="metadata.name=crd-ns").items)


def test_delete_crd_removes_instances_and_restart(
    kc: Kubectl, srv: ServerProcess, api: client.ApiClient, crontabs: Path
) -> None:
    # served again after a restart, before anything else
    srv.stop()
    again = ServerProcess.start(srv.data_dir, port=srv.port, extra=srv.argv[10:], timeout=30)
    srv.proc = again.proc
    assert "nightly" in kc("get", "ct", "-o", "name").stdout
    kc("delete", "crd", f"crontabs.{GROUP}", "--timeout=20s")
    res = kc("get", "crontabs", check=False)
    assert res.returncode != 0
    co = client.CustomObjectsApi(api)
    with pytest.raises(ApiException) as e:
        co.list_namespaced_custom_object(GROUP, "v1", "default", "crontabs")
    assert e.value.status == 404
    # recreated, the CRD starts empty: its old instances went with it
    kc("apply", "-f", str(crontabs))
    assert eventually(lambda: "No resources found" in kc("get", "crontabs", check=False).stderr)


def test_terminating_crd_waits_for_held_instances(
    kc: Kubectl, api: client.ApiClient, crontabs: Path
) -> None:
    kc("apply", "-f", str(crontabs))
    co = client.CustomObjectsApi(api)
    held = crontab("held")
    held["metadata"]["finalizers"] = ["example.com/hold"]
    eventually(
        lambda: kc("apply", "-f", "-", input=yaml.safe_dump(held), check=False).returncode == 0
    )
    kc("delete", "crd", f"crontabs.{GROUP}", "--wait=false")

    def terminating() -> dict[str, Any] | None:
        crd = json.loads(kc("get", "crd", f"crontabs.{GROUP}", "-o", "json").stdout)
        conds = {c["type"]: c for c in crd["status"]["conditions"]}
        t = conds.get("Terminating")
        return t if t and t["reason"] == "InstanceDeletionInProgress" else None

    assert eventually(terminating)["status"] == "True"
    with pytest.raises(ApiException) as e:
        co.create_namespaced_custom_object(GROUP, "v1", "default", "crontabs", crontab("late"))
    assert e.value.status == 405
    assert json.loads(e.value.body)["message"] == (
        "create not allowed while custom resource definition is terminating"
    )
    co.patch_namespaced_custom_object(
        GROUP, "v1", "default", "crontabs", "held", {"metadata": {"finalizers": None}}
    )
    eventually(lambda: kc("get", "crd", "-o", "name").stdout.strip() == "")


def test_server_side_apply_merges_list_map(kc: Kubectl) -> None:
    """``x-kubernetes-list-type: map`` under a ``preserve-unknown-fields`` object: two
    appliers' items are merged by key, unknown fields kept."""
    schema = {
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "x-kubernetes-preserve-unknown-fields": True,
                "properties": {
                    "ports": {
                        "type": "array",
                        "x-kubernetes-list-type": "map",
                        "x-kubernetes-list-map-keys": ["name"],
                        "items": {
                            "type": "object",
                            "required": ["name"],
                            "properties": {"name": {"type": "string"}, "port": {"type": "integer"}},
                        },
                    }
                },
            }
        },
    }
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "gates.ssa.example.com"},
        "spec": {
            "group": "ssa.example.com",
            "scope": "Namespaced",
            "names": {"plural": "gates", "kind": "Gate"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": schema},
                }
            ],
        },
    }
    _apply(kc, crd)

    def gate(port: str, **extra: Any) -> dict[str, Any]:
        return {
            "apiVersion": "ssa.example.com/v1",
            "kind": "Gate",
            "metadata": {"name": "g"},
            "spec": {"ports": [{"name": port, "port": 80}], **extra},
        }

    _apply(kc, gate("http", note="kept"), "--server-side", "--field-manager=a")
    _apply(kc, gate("https"), "--server-side", "--field-manager=b")
    spec = json.loads(kc("get", "gates", "g", "-o", "json").stdout)["spec"]
    assert [p["name"] for p in spec["ports"]] == ["http", "https"]
    assert spec["note"] == "kept"
    kc("delete", "crd", "gates.ssa.example.com")
