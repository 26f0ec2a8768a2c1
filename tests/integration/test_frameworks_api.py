"""mesos.corral.dev/v1 Frameworks against a real server: the ``kubernetes`` client's
custom-object calls, kubectl (discovery, table, explain, delete) and the garbage collector
removing a deleted Framework's task pods in namespace ``mesos``."""

from __future__ import annotations

import json
import random
import subprocess
import uuid
from collections.abc import Callable
from typing import Any, cast

import pytest
import yaml
from kindkit import CustomObjects, never_500
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from corral.testing.wait import eventually

GROUP, VERSION, PLURAL = "mesos.corral.dev", "v1", "frameworks"
URL = f"/apis/{GROUP}/{VERSION}/{PLURAL}"
Obj = dict[str, Any]
#: the conftest fixtures, by what they are called with
Kubectl = Callable[..., subprocess.CompletedProcess[str]]
Raw = Callable[..., tuple[int, dict[str, str], bytes]]


def new_id() -> str:
    return f"{uuid.uuid4()}-0000"


def framework(fid: str, **info: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Framework",
        "metadata": {"name": fid},
        "spec": {
            "frameworkInfo": {
                "user": "root",
                "name": "my-framework",
                "id": {"value": fid},
                "failover_timeout": 100,
                "roles": ["*"],
                "capabilities": [{"type": "MULTI_ROLE"}],
                "checkpoint": True,
                "labels": {"labels": [{"key": "k", "value": "v"}]},
                **info,
            }
        },
    }


class Frameworks(CustomObjects):
    """The ``kubernetes`` client's custom-object calls for Frameworks, typed."""

    def __init__(self, api_client: client.ApiClient) -> None:
        super().__init__(api_client, GROUP, VERSION, PLURAL)

    def create(self, fid: str, **info: Any) -> Obj:
        return self.create_body(framework(fid, **info))


def task_pod(api_client: client.ApiClient, fw: Obj, name: str) -> None:
    core = client.CoreV1Api(api_client)
    try:
        core.create_namespace(cast(Any, {"metadata": {"name": "mesos"}}))
    except ApiException as e:
        assert e.status == 409
    owner = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Framework",
        "name": fw["metadata"]["name"],
        "uid": fw["metadata"]["uid"],
        "blockOwnerDeletion": True,
    }
    pod: Any = {
        "metadata": {
            "name": name,
            "labels": {f"{GROUP}/framework-id": fw["metadata"]["name"]},
            "ownerReferences": [owner],
        },
        "spec": {
            "schedulerName": "corral-mesos",  # the Kubernetes scheduler leaves it alone
            "containers": [{"name": "task", "image": "busybox", "command": ["sleep", "1d"]}],
        },
    }
    core.create_namespaced_pod("mesos", pod)


def pod_exists(api_client: client.ApiClient, name: str) -> bool:
    try:
        client.CoreV1Api(api_client).read_namespaced_pod(name, "mesos")
    except ApiException as e:
        assert e.status == 404
        return False
    return True


# --- the Python client ---------------------------------------------------------------


def test_python_client_create_list_patch_status(api_client: client.ApiClient) -> None:
    fws = Frameworks(api_client)
    fid = new_id()
    made = fws.create(fid)
    assert made["metadata"]["generation"] == 1 and "status" not in made
    assert made["spec"]["frameworkInfo"]["labels"] == {"labels": [{"key": "k", "value": "v"}]}
    listed = fws.list()
    assert listed["kind"] == "FrameworkList"
    assert fid in [i["metadata"]["name"] for i in listed["items"]]

    status = {
        "connected": True,
        "active": True,
        "registeredTime": "2026-12-04T10:00:00Z",
        "tasks": {"running": 2, "staging": 0, "finished": 5},
        "allocated": {"cpus": 0.5, "mem": 128, "disk": 0},
        "offered": {"cpus": 1, "mem": 512, "disk": 0},
    }
    patched = fws.patch_status(fid, {"status": status, "spec": {"frameworkInfo": {"name": "x"}}})
    assert patched["status"] == status
    assert patched["spec"] == made["spec"]  # /status writes nothing but status
    assert patched["metadata"]["generation"] == 1

    # the master clears disconnectedTime with a merge patch null
    gone = {"connected": False, "disconnectedTime": "2026-12-04T10:01:00Z"}
    assert fws.patch_status(fid, {"status": gone})["status"]["disconnectedTime"]
    back = fws.patch_status(fid, {"status": {"connected": True, "disconnectedTime": None}})
    assert back["status"]["connected"] is True and "disconnectedTime" not in back["status"]

    # a spec write keeps status and bumps the generation
    spec = fws.patch(fid, {"spec": {"frameworkInfo": {"failover_timeout": 5}}})
    assert spec["metadata"]["generation"] == 2
    assert spec["spec"]["frameworkInfo"]["failover_timeout"] == 5
    assert spec["status"]["tasks"]["running"] == 2
    fws.delete(fid)
    assert not fws.exists(fid)


# --- kubectl ---------------------------------------------------------------------------


@pytest.mark.kubectl
def test_kubectl_discovery_table_yaml_explain(
    kubectl: Kubectl, api_client: client.ApiClient
) -> None:
    lines = kubectl("api-resources").stdout.splitlines()
    (row,) = [ln.split() for ln in lines if ln.split()[:1] == ["frameworks"]]
    assert row == ["frameworks", "fw", "mesos.corral.dev/v1", "false", "Framework"]

    fws = Frameworks(api_client)
    fid = new_id()
    fws.create(fid, roles=["dev", "ops"], principal="p", hostname="h1")
    allocated = {"cpus": 1.5, "mem": 256.0}
    fws.patch_status(
        fid,
        {
            "status": {
                "connected": True,
                "active": True,
                "tasks": {"running": 3},
                "allocated": allocated,
            }
        },
    )
    table = kubectl("get", "frameworks").stdout.splitlines()
    assert table[0].split() == [
        "NAME",
        "FRAMEWORK",
        "ROLES",
        "CONNECTED",
        "TASKS",
        "CPUS",
        "MEM",
        "AGE",
    ]
    (cells,) = [ln.split() for ln in table[1:] if ln.startswith(fid)]
    assert cells[:7] == [fid, "my-framework", "dev,ops", "True", "3", "1.5", "256"]

    wide = kubectl("get", "fw", fid, "-o", "wide").stdout.splitlines()
    assert wide[0].split()[8:] == ["ACTIVE", "USER", "PRINCIPAL", "HOSTNAME"]
    assert wide[1].split()[8:] == ["True", "root", "p", "h1"]
    by_category = kubectl("get", "mesos").stdout.splitlines()  # the category
    assert by_category[0].split()[:2] == ["NAME", "FRAMEWORK"]
    assert any(ln.startswith(fid) for ln in by_category)

    obj = yaml.safe_load(kubectl("get", "framework", fid, "-o", "yaml").stdout)
    assert obj["kind"] == "Framework" and obj["apiVersion"] == "mesos.corral.dev/v1"
    assert obj["spec"]["frameworkInfo"]["roles"] == ["dev", "ops"]
    assert obj["status"]["tasks"] == {"running": 3}

    explain = kubectl("explain", "framework").stdout
    assert "KIND:       Framework" in explain and "mesos.corral.dev" in explain
    info = kubectl("explain", "frameworks.spec.frameworkInfo").stdout
    assert "FIELD: frameworkInfo <Object>" in info
    status = kubectl("explain", "fw.status.connected").stdout
    assert "FIELD: connected <boolean>" in status

    out = kubectl("delete", "framework", fid).stdout
    assert out.strip() == f'framework.mesos.corral.dev "{fid}" deleted'
    res = kubectl("get", "framework", fid, check=False)
    assert res.returncode == 1
    assert f'frameworks.mesos.corral.dev "{fid}" not found' in res.stderr


@pytest.mark.kubectl
def test_kubectl_apply_checks_fields_by_the_schema(kubectl: Kubectl) -> None:
    fid = new_id()
    body = framework(fid)
    body["spec"]["bogus"] = 1
    body["spec"]["frameworkInfo"]["future_field"] = {"kept": True}
    strict = kubectl("apply", "-f", "-", input=json.dumps(body), check=False)
    assert strict.returncode == 1
    assert 'strict decoding error: unknown field "spec.bogus"' in strict.stderr
    res = kubectl("apply", "--validate=warn", "-f", "-", input=json.dumps(body))
    assert 'unknown field "spec.bogus"' in res.stderr
    obj = json.loads(kubectl("get", "fw", fid, "-o", "json").stdout)
    assert "bogus" not in obj["spec"]
    assert obj["spec"]["frameworkInfo"]["future_field"] == {"kept": True}
    kubectl("delete", "fw", fid)


# --- garbage collection of task pods --------------------------------------------------


@pytest.mark.kubectl
@pytest.mark.parametrize("cascade", ["background", "foreground"])
def test_deleting_a_framework_collects_its_task_pods(
    kubectl: Kubectl, api_client: client.ApiClient, cascade: str
) -> None:
    fws = Frameworks(api_client)
    fid = new_id()
    fw = fws.create(fid)
    pods = [f"task-{cascade}-{fid[:8]}-{i}" for i in range(2)]
    for name in pods:
        task_pod(api_client, fw, name)
    other = new_id()
    survivor = f"task-other-{other[:8]}"
    task_pod(api_client, fws.create(other), survivor)

    kubectl("delete", "framework", fid, f"--cascade={cascade}", "--wait=false")
    eventually(lambda: not any(pod_exists(api_client, p) for p in pods), timeout=20)
    eventually(lambda: not fws.exists(fid), timeout=20)
    assert pod_exists(api_client, survivor)  # another framework's task is left alone
    kubectl("delete", "framework", other)
    eventually(lambda: not pod_exists(api_client, survivor), timeout=20)


@pytest.mark.kubectl
def test_orphan_delete_keeps_task_pods(kubectl: Kubectl, api_client: client.ApiClient) -> None:
    fws = Frameworks(api_client)
    fid = new_id()
    name = f"task-orphan-{fid[:8]}"
    task_pod(api_client, fws.create(fid), name)
    kubectl("delete", "framework", fid, "--cascade=orphan")
    eventually(lambda: not fws.exists(fid), timeout=20)
    core = client.CoreV1Api(api_client)
    pod = core.read_namespaced_pod(name, "mesos")
    assert pod.metadata is not None and not pod.metadata.owner_references
    core.delete_namespaced_pod(name, "mesos", grace_period_seconds=0)


# --- validation ---------------------------------------------------------------------------


def _with(fid: str, **info: Any) -> dict[str, Any]:
    return framework(fid, **info)


def _without(fid: str, key: str) -> dict[str, Any]:
    body = framework(fid)
    del body["spec"]["frameworkInfo"][key]
    return body


@pytest.mark.parametrize(
    ("make", "field", "message"),
    [
        (lambda f: _without(f, "name"), "spec.frameworkInfo.name", "Required value"),
        (lambda f: _with(f, user=""), "spec.frameworkInfo.user", "Required value"),
        (lambda f: _with(f, failover_timeout=-5), "spec.frameworkInfo.failover_timeout",
         "Invalid value: -5: must be greater than or equal to 0"),
        (lambda f: _with(f, roles=["dev", "a//b"]), "spec.frameworkInfo.roles[1]",
         'Invalid value: "a//b": Role cannot contain two adjacent slashes'),
        (lambda f: _with(f, roles=["dev", "dev"]), "spec.frameworkInfo.roles[1]", 'Duplicate value: "dev"'),
        (lambda f: _with(f, id={"value": "someone-else"}), "spec.frameworkInfo.id.value",
         'Invalid value: "someone-else": must equal metadata.name'),
        (lambda f: {**framework(f), "spec": {}}, "spec.frameworkInfo", "Required value"),
    ],
    ids=["no-name", "empty-user", "negative-failover", "bad-role", "duplicate-role", "other-id", "no-info"],
)  # fmt: skip
def test_invalid_frameworks_are_422(raw: Raw, make: Any, field: str, message: str) -> None:
    fid = new_id()
    status, _, body = raw("POST", URL, make(fid))
    assert status == 422, body
    err = json.loads(body)
    assert err["reason"] == "Invalid"
    assert err["details"]["group"] == GROUP and err["details"]["kind"] == "Framework"
    causes = err["details"]["causes"]
    assert any(c["field"] == field and c["message"].startswith(message) for c in causes), causes
    assert f'Framework.mesos.corral.dev "{fid}" is invalid: {field}: {message}' in err["message"]


def test_invalid_status_is_refused(raw: Raw) -> None:
    fid = new_id()
    assert raw("POST", URL, framework(fid))[0] == 201
    merge = {"Content-Type": "application/merge-patch+json"}
    status, _, body = raw(
        "PATCH", f"{URL}/{fid}/status", {"status": {"tasks": {"running": -1}}}, merge
    )
    assert status == 422, body
    assert json.loads(body)["details"]["causes"][0]["field"] == "status.tasks.running"
    status, _, body = raw("PATCH", f"{URL}/{fid}/status", {"status": {"connected": "yes"}}, merge)
    assert status == 400, body  # a wrong JSON type fails typed decoding, as for any kind
    assert "of type bool" in json.loads(body)["message"]
    status, _, body = raw(
        "PATCH", f"{URL}/{fid}/status", {"status": {"registeredTime": "soon"}}, merge
    )
    assert status == 400 and 'parsing time "soon"' in json.loads(body)["message"], body
    status, _, body = raw(
        "PATCH", f"{URL}/{fid}/status", {"status": {"registeredTime": "2026-12-04"}}, merge
    )
    assert status == 422, body  # a date alone decodes, but is no RFC 3339 time
    assert json.loads(body)["details"]["causes"][0]["field"] == "status.registeredTime"
    assert raw("DELETE", f"{URL}/{fid}")[0] == 200


def test_mutations_never_500(raw: Raw) -> None:
    """Every field of a full Framework replaced by values of the wrong type: 4xx or success."""
    seed = framework("seed")
    seed["status"] = {"connected": True, "tasks": {"running": 1}, "allocated": {"cpus": 1}}

    def name(body: dict[str, Any], fid: str) -> None:
        spec = body.get("spec")
        fi = spec.get("frameworkInfo") if isinstance(spec, dict) else None
        if (
            isinstance(fi, dict)
            and isinstance(fi.get("id"), dict)
            and fi["id"].get("value") == "seed"
        ):
            fi["id"]["value"] = fid

    bad = never_500(raw, URL, seed, random.Random("frameworks"), 4, name)
    assert not bad, "\n".join(bad[:20])
