"""marathon.corral.dev/v1 Apps against a real server: the ``kubernetes`` client's
namespaced custom-object calls in namespace ``marathon``, Corral's own client (the one the
Marathon service uses: field selector on the app id, watch, a status write with a
``resourceVersion`` precondition), kubectl (discovery, table, category, explain, apply,
delete) and validation answered with 422 and field paths; and that a resource named
``apps`` leaves kubectl's resolution of the ``apps`` group (``deployments.apps``) alone."""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import random
import re
import subprocess
import uuid
from collections.abc import AsyncGenerator, Callable
from typing import Any, cast

import pytest
import yaml
from kindkit import CustomObjects, never_500
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from conftest import RunningServer
from corral.api.errors import StatusError
from corral.client.rest import MARATHON_APPS, Client

GROUP, VERSION, PLURAL, NS = "marathon.corral.dev", "v1", "apps", "marathon"
URL = f"/apis/{GROUP}/{VERSION}/namespaces/{NS}/{PLURAL}"
APP_VERSION = "2026-12-04T10:00:00.000Z"
Obj = dict[str, Any]
#: the conftest fixtures, by what they are called with
Kubectl = Callable[..., subprocess.CompletedProcess[str]]
Raw = Callable[..., tuple[int, dict[str, str], bytes]]


def object_name(app_id: str) -> str:
    """The App's name for a Marathon id, as the service derives it: a lowercase slug of
    the id's path and 10 hex digits of its SHA-1 (a DNS label)."""
    digest = hashlib.sha1(app_id.encode()).hexdigest()[:10]
    slug = re.sub(r"[^a-z0-9]+", "-", app_id.lower()).strip("-")[:52].strip("-")
    return f"{slug}-{digest}" if slug else f"app-{digest}"


def new_ids(prefix: str = "/it/web") -> tuple[str, str]:
    """A fresh (Marathon id, object name) pair."""
    app_id = f"{prefix}-{uuid.uuid4().hex[:10]}"
    return app_id, object_name(app_id)


def app_json(app_id: str, **kw: Any) -> Obj:
    """An app as Marathon serialises it, the RAML defaults filled in."""
    out: Obj = {
        "id": app_id,
        "cmd": "python3 -m http.server $PORT0",
        "cpus": 0.25,
        "mem": 64,
        "disk": 0,
        "gpus": 0,
        "instances": 2,
        "container": {
            "type": "DOCKER",
            "docker": {"image": "nginx:1.27", "network": "BRIDGE"},
            "volumes": [],
        },
        "constraints": [["hostname", "UNIQUE"]],
        "portDefinitions": [{"port": 10000, "protocol": "tcp", "name": "http", "labels": {}}],
        "healthChecks": [{"protocol": "HTTP", "path": "/", "portIndex": 0}],
        "upgradeStrategy": {"minimumHealthCapacity": 1.0, "maximumOverCapacity": 1.0},
        "backoffSeconds": 1,
        "backoffFactor": 1.15,
        "maxLaunchDelaySeconds": 300,
        "killSelection": "YOUNGEST_FIRST",
        "env": {"LOG": "info"},
        "labels": {"team": "x"},
        "version": APP_VERSION,
        **kw,
    }
    return {k: v for k, v in out.items() if v is not ...}  # ``...``: leave the key out


def marathon_app(obj_name: str, app_id: str, **kw: Any) -> Obj:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "App",
        "metadata": {"name": obj_name, "namespace": NS},
        "spec": {"app": app_json(app_id, **kw)},
    }


STATUS: Obj = {
    "tasksRunning": 2,
    "tasksStaged": 0,
    "tasksHealthy": 1,
    "tasksUnhealthy": 1,
    "queued": 0,
    "deployments": [{"id": "97c136bf-5a28-4821-9d94-480d9fbb01c8"}],
    "lastTaskFailure": {
        "appId": "/it/web",
        "taskId": "it_web.1f2e",
        "state": "TASK_FAILED",
        "message": "Command exited with status 1",
        "host": "node-1",
        "timestamp": "2026-12-04T09:59:00.000Z",
        "version": APP_VERSION,
    },
    "version": APP_VERSION,
}


class MarathonApps(CustomObjects):
    """The ``kubernetes`` client's custom-object calls for Apps, typed."""

    def __init__(self, api_client: client.ApiClient) -> None:
        super().__init__(api_client, GROUP, VERSION, PLURAL, NS)

    def create(self, obj_name: str, app_id: str, **kw: Any) -> Obj:
        return self.create_body(marathon_app(obj_name, app_id, **kw))


@pytest.fixture
def apps(api_client: client.ApiClient) -> MarathonApps:
    return MarathonApps(api_client)


# --- the Python client ---------------------------------------------------------------


def test_python_client_create_list_patch_status(apps: MarathonApps) -> None:
    app_id, obj_name = new_ids()
    made = apps.create(obj_name, app_id, futureField={"kept": True})
    assert made["metadata"]["generation"] == 1 and "status" not in made
    assert made["metadata"]["namespace"] == NS
    assert made["spec"]["app"]["futureField"] == {"kept": True}  # unknown app fields kept
    assert made["spec"]["app"]["constraints"] == [["hostname", "UNIQUE"]]
    listed = apps.list()
    assert listed["kind"] == "AppList"
    assert obj_name in [i["metadata"]["name"] for i in listed["items"]]
    assert obj_name in [i["metadata"]["name"] for i in apps.list_all()["items"]]

    patch = {"status": STATUS, "spec": {"app": {"cmd": "rm -rf /"}}}
    patched = apps.patch_status(obj_name, patch)
    assert patched["status"] == STATUS
    assert patched["spec"] == made["spec"]  # /status writes nothing but status
    assert patched["metadata"]["generation"] == 1

    # the deployment finished, the instances healthy: a merge patch keeps the rest
    done = {"deployments": [], "tasksHealthy": 2, "tasksUnhealthy": 0}
    status = apps.patch_status(obj_name, {"status": done})["status"]
    assert status["deployments"] == [] and status["tasksHealthy"] == 2
    assert status["lastTaskFailure"] == STATUS["lastTaskFailure"]

    # a new definition (PUT /v2/apps/{id}): spec written, status kept, generation bumped
    new_version = "2026-12-04T11:00:00.000Z"
    spec = apps.patch(
        obj_name,
        {"spec": {"app": {"instances": 3, "version": new_version}, "versions": [APP_VERSION]}},
    )
    assert spec["metadata"]["generation"] == 2
    assert spec["spec"]["app"]["instances"] == 3 and spec["spec"]["versions"] == [APP_VERSION]
    assert spec["status"]["tasksHealthy"] == 2
    # the id is immutable: the object's name is derived from it
    with pytest.raises(ApiException) as e:
        apps.patch(obj_name, {"spec": {"app": {"id": "/it/renamed"}}})
    assert e.value.status == 422
    (cause,) = json.loads(cast(str, e.value.body))["details"]["causes"]
    assert cause["field"] == "spec.app.id"
    assert cause["message"] == 'Invalid value: "/it/renamed": field is immutable'
    apps.delete(obj_name)
    assert not apps.exists(obj_name)


def test_same_name_is_already_exists(apps: MarathonApps) -> None:
    """One App per Marathon id: the derived name makes a second create a 409."""
    app_id, obj_name = new_ids()
    apps.create(obj_name, app_id)
    with pytest.raises(ApiException) as e:
        apps.create(obj_name, app_id, instances=5)
    assert e.value.status == 409
    assert json.loads(cast(str, e.value.body))["reason"] == "AlreadyExists"
    apps.delete(obj_name)


# --- Corral's own client: what the Marathon service does ---------------------------------


async def test_service_client_selects_watches_and_writes_status(
    server: RunningServer, apps: MarathonApps
) -> None:
    c = Client.from_kubeconfig(server.kubeconfig)
    try:
        app_id, obj_name = new_ids("/it/group.a/web")
        listed = await c.list(MARATHON_APPS, NS)
        events = cast(
            AsyncGenerator[Obj, None],
            c.watch(
                MARATHON_APPS,
                NS,
                resource_version=listed["metadata"]["resourceVersion"],
                field_selector=f"spec.app.id={app_id}",
                timeout_seconds=20,
            ),
        )
        made = await c.create(MARATHON_APPS, marathon_app(obj_name, app_id), NS)
        async with asyncio.timeout(20):
            event = await anext(events)
        assert event["type"] == "ADDED" and event["object"]["metadata"]["name"] == obj_name
        await events.aclose()

        found = await c.list(MARATHON_APPS, NS, field_selector=f"spec.app.id={app_id}")
        assert [i["metadata"]["name"] for i in found["items"]] == [obj_name]
        other = await c.list(MARATHON_APPS, field_selector="spec.app.id=/no/such/app")
        assert other["items"] == []

        # a status write from a stale copy loses: the service reads, then writes
        first = copy.deepcopy(made)
        first["status"] = {"tasksStaged": 2, "queued": 0}
        won = await c.update(MARATHON_APPS, first, NS, sub="status")
        assert won["status"]["tasksStaged"] == 2 and won["metadata"]["generation"] == 1
        stale = copy.deepcopy(first)
        stale["status"]["tasksStaged"] = 0
        with pytest.raises(StatusError) as e:
            await c.update(MARATHON_APPS, stale, NS, sub="status")
        assert e.value.code == 409 and e.value.reason == "Conflict"
        assert (await c.get(MARATHON_APPS, obj_name, NS))["status"]["tasksStaged"] == 2
        await c.delete(MARATHON_APPS, obj_name, NS)
    finally:
        await c.close()


# --- kubectl ---------------------------------------------------------------------------

HEADER = ["ID", "INSTANCES", "RUNNING", "HEALTHY", "DEPLOYMENTS", "CPUS", "MEM", "AGE"]


def _columns(header: str) -> list[str]:
    """The column names of a kubectl table header (two or more spaces between columns)."""
    return [c.strip() for c in header.split("  ") if c.strip()]


@pytest.mark.kubectl
def test_kubectl_discovery_table_yaml_explain(kubectl: Kubectl, apps: MarathonApps) -> None:
    lines = kubectl("api-resources").stdout.splitlines()
    (row,) = [ln.split() for ln in lines if ln.split()[:1] == ["apps"]]
    assert row == ["apps", "mapp", "marathon.corral.dev/v1", "true", "App"]
    by_group = kubectl("api-resources", "--api-group", GROUP, "-o", "wide").stdout
    assert "marathon" in by_group.splitlines()[1].split()  # the category

    app_id, obj_name = new_ids()
    apps.create(obj_name, app_id)
    apps.patch_status(obj_name, {"status": STATUS})
    db_id, db_obj = new_ids("/it/db")
    apps.create(db_obj, db_id, cmd=..., args=["postgres", "-p", "5432"], container=...,
                cpus=1, mem=...)  # fmt: skip

    table = kubectl("get", "apps.marathon.corral.dev", "-n", NS).stdout.splitlines()
    assert _columns(table[0]) == HEADER
    (cells,) = [ln.split() for ln in table[1:] if ln.startswith(app_id + " ")]
    assert cells[:7] == [app_id, "2", "2", "1", "1", "0.25", "64"]
    (db,) = [ln.split() for ln in table[1:] if ln.startswith(db_id + " ")]
    assert db[:7] == [db_id, "2", "0", "0", "0", "1", "128"]  # Marathon's default mem

    wide = kubectl("get", "mapp", "-n", NS, "-o", "wide").stdout.splitlines()
    assert _columns(wide[0]) == [*HEADER, "OBJECT", "IMAGE", "CMD"]
    (line,) = [ln for ln in wide[1:] if ln.startswith(app_id + " ")]
    assert line.split()[8:10] == [obj_name, "nginx:1.27"]
    assert line.rstrip().endswith("python3 -m http.server $PORT0")
    (line,) = [ln for ln in wide[1:] if ln.startswith(db_id + " ")]
    assert line.split()[8:] == [db_obj, "<none>", "postgres", "-p", "5432"]

    every = kubectl("get", "mapp", "-A").stdout.splitlines()
    assert _columns(every[0]) == ["NAMESPACE", *HEADER]
    assert any(ln.split()[:3] == [NS, app_id, "2"] for ln in every[1:])
    for name in ("apps", "app", "marathon"):  # plural, singular, the category
        out = kubectl("get", name, "-n", NS).stdout.splitlines()
        assert _columns(out[0]) == HEADER, name
        assert any(ln.startswith(app_id + " ") for ln in out), name
    shown = kubectl("get", "mapp", "-n", NS, "--show-kind", "-o", "wide").stdout.splitlines()
    assert any(f"app.marathon.corral.dev/{obj_name}" in ln.split() for ln in shown)
    selected = kubectl(
        "get", "mapp", "-n", NS, "--field-selector", f"spec.app.id={app_id}", "-o", "name"
    ).stdout.split()
    assert selected == [f"app.marathon.corral.dev/{obj_name}"]
    none = kubectl("get", "mapp", "-A", "--field-selector", "spec.app.id=/no/such/app")
    assert none.stdout == "" and "No resources found" in none.stderr

    obj = yaml.safe_load(kubectl("get", "app", obj_name, "-n", NS, "-o", "yaml").stdout)
    assert obj["kind"] == "App" and obj["apiVersion"] == "marathon.corral.dev/v1"
    assert obj["spec"]["app"]["container"]["docker"]["image"] == "nginx:1.27"
    assert obj["status"] == STATUS

    explain = kubectl("explain", "app").stdout
    assert "KIND:       App" in explain and "GROUP:      marathon.corral.dev" in explain
    spec = kubectl("explain", "app.spec").stdout
    assert "FIELD: spec <Object>" in spec and "app\t<Object> -required-" in spec
    assert "versions\t<[]string>" in spec
    app = kubectl("explain", "mapp.spec.app").stdout
    assert "id\t<string> -required-" in app and "constraints\t<[][]string>" in app
    assert "instances\t<integer>" in app and "healthChecks\t<[]Object>" in app
    running = kubectl("explain", "apps.status.tasksRunning").stdout
    assert "FIELD: tasksRunning <integer>" in running
    deployments = kubectl("explain", "apps.marathon.corral.dev.status.deployments").stdout
    assert "FIELD: deployments <[]Object>" in deployments
    assert "id\t<string> -required-" in deployments

    deleted = kubectl("delete", "app", obj_name, "-n", NS).stdout
    assert deleted.strip() == f'app.marathon.corral.dev "{obj_name}" deleted'
    res = kubectl("get", "mapp", obj_name, "-n", NS, check=False)
    assert res.returncode == 1
    assert f'apps.marathon.corral.dev "{obj_name}" not found' in res.stderr
    kubectl("delete", "apps.marathon.corral.dev", db_obj, "-n", NS)


DEPLOY = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, labels: {app: web}}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: nginx, image: "nginx:1.26"}]}
"""


@pytest.mark.kubectl
def test_apps_group_still_resolves(kubectl: Kubectl, apps: MarathonApps, ns: str) -> None:
    """``deployments.apps`` and friends are the apps group's; ``apps`` is this resource,
    and nothing of one shows up under the other."""
    kubectl("create", "-n", ns, "-f", "-", input=DEPLOY)
    app_id, obj_name = new_ids()
    apps.create(obj_name, app_id)

    for name in ("deployments", "deployments.apps", "deploy", "deployments.v1.apps"):
        table = kubectl("get", name, "-n", ns).stdout.splitlines()
        assert table[0].split() == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"], name
        assert [ln.split()[0] for ln in table[1:]] == ["web"], name
    names = kubectl("get", "deployments.apps", "web", "-n", ns, "-o", "name").stdout.split()
    assert names == ["deployment.apps/web"]
    got = json.loads(kubectl("get", "deployments.apps", "-n", ns, "-o", "json").stdout)
    assert [i["kind"] for i in got["items"]] == ["Deployment"]
    # the Deployment's namespace has no Apps; the Apps are Apps, not Deployments
    assert (
        kubectl("get", "apps", "-n", ns).stderr.strip() == f"No resources found in {ns} namespace."
    )
    listed = json.loads(kubectl("get", "apps", "-n", NS, "-o", "json").stdout)
    assert {i["kind"] for i in listed["items"]} == {"App"}
    assert obj_name in [i["metadata"]["name"] for i in listed["items"]]
    assert "App" not in {
        i["kind"] for i in json.loads(kubectl("get", "all", "-n", NS, "-o", "json").stdout)["items"]
    }

    resources = kubectl("api-resources").stdout.splitlines()
    rows = {tuple(ln.split()[:3]) for ln in resources[1:]}
    assert ("deployments", "deploy", "apps/v1") in rows
    assert ("apps", "mapp", "marathon.corral.dev/v1") in rows
    apps_group = kubectl("api-resources", "--api-group", "apps", "-o", "name").stdout.split()
    assert "apps" not in apps_group and "apps.marathon.corral.dev" not in apps_group
    assert "deployments.apps" in apps_group
    named = kubectl("api-resources", "-o", "name").stdout.split()
    assert "apps.marathon.corral.dev" in named and "deployments.apps" in named
    explain = kubectl("explain", "deployments.apps.spec.replicas").stdout
    assert "GROUP:      apps" in explain and "KIND:       Deployment" in explain
    scale = kubectl("scale", "deployments.apps/web", "-n", ns, "--replicas", "3").stdout
    assert scale.strip() == "deployment.apps/web scaled"
    # as on a Kubernetes server: the apps group has no resource named apps, and kubectl
    # does not fall back to the one in marathon.corral.dev
    res = kubectl("get", "apps.apps", "-n", ns, check=False)
    assert res.returncode == 1
    assert res.stderr.strip() == 'error: the server doesn\'t have a resource type "apps"'
    apps.delete(obj_name)


@pytest.mark.kubectl
def test_kubectl_apply_checks_fields_by_the_schema(kubectl: Kubectl, apps: MarathonApps) -> None:
    app_id, obj_name = new_ids()
    body = marathon_app(obj_name, app_id)
    body["spec"]["bogus"] = 1
    body["spec"]["app"]["futureField"] = {"kept": True}
    strict = kubectl("apply", "-f", "-", input=json.dumps(body), check=False)
    assert strict.returncode == 1
    assert 'strict decoding error: unknown field "spec.bogus"' in strict.stderr
    res = kubectl("apply", "--validate=warn", "-f", "-", input=json.dumps(body))
    assert 'unknown field "spec.bogus"' in res.stderr
    obj = json.loads(kubectl("get", "mapp", obj_name, "-n", NS, "-o", "json").stdout)
    assert "bogus" not in obj["spec"]
    assert obj["spec"]["app"]["futureField"] == {"kept": True}
    del body["spec"]["bogus"]
    body["spec"]["app"]["instances"] = 5  # applied again: an update
    kubectl("apply", "-f", "-", input=json.dumps(body))
    obj = json.loads(kubectl("get", "mapp", obj_name, "-n", NS, "-o", "json").stdout)
    assert obj["spec"]["app"]["instances"] == 5 and obj["metadata"]["generation"] == 2
    kubectl("delete", "mapp", obj_name, "-n", NS)


# --- validation ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kw", "field", "message"),
    [
        ({"id": ...}, "spec.app.id", "Required value"),
        ({"id": "web"}, "spec.app.id", "Invalid value: \"web\": must be absolute (start with '/')"),
        ({"id": "/"}, "spec.app.id", 'Invalid value: "/": must contain at least one path element'),
        ({"id": "/Web/API"}, "spec.app.id", 'Invalid value: "/Web/API": must be an absolute path of'),
        ({"id": "/web/../api"}, "spec.app.id", 'Invalid value: "/web/../api": must be an absolute path of'),
        ({"id": "/web/tasks"}, "spec.app.id", 'Invalid value: "/web/tasks": must not end with any of the following reserved keywords: restart, tasks, versions'),
        ({"cmd": ["echo"]}, "spec.app.cmd", 'Invalid value: ["echo"]: must be of type string'),
        ({"args": ["echo", 1]}, "spec.app.args[1]", "Invalid value: 1: must be of type string"),
        ({"cpus": -0.5}, "spec.app.cpus", "Invalid value: -0.5: must be greater than or equal to 0"),
        ({"instances": -1}, "spec.app.instances", "Invalid value: -1: must be greater than or equal to 0"),
        ({"instances": 1.5}, "spec.app.instances", "Invalid value: 1.5: must be of type integer"),
        ({"requirePorts": "no"}, "spec.app.requirePorts", 'Invalid value: "no": must be of type boolean'),
        ({"dependencies": ["/db", "/db"]}, "spec.app.dependencies[1]", 'Duplicate value: "/db"'),
        ({"version": "yesterday"}, "spec.app.version", 'Invalid value: "yesterday": must be an RFC 3339 date and time'),
    ],
    ids=["no-id", "relative-id", "root-id", "uppercase-id", "dotdot-id", "reserved-id",
         "bad-cmd", "bad-args", "negative-cpus", "negative-instances", "fractional-instances",
         "bad-require-ports", "duplicate-dependency", "bad-version"],
)  # fmt: skip
def test_invalid_apps_are_422(
    raw: Raw, apps: MarathonApps, kw: Obj, field: str, message: str
) -> None:
    app_id, obj_name = new_ids()
    status, _, body = raw("POST", URL, marathon_app(obj_name, app_id, **kw))
    assert status == 422, body
    err = json.loads(body)
    assert err["reason"] == "Invalid"
    assert err["details"]["group"] == GROUP and err["details"]["kind"] == "App"
    causes = err["details"]["causes"]
    assert any(c["field"] == field and c["message"].startswith(message) for c in causes), causes
    assert (
        f'App.marathon.corral.dev "{obj_name}" is invalid: {field}: {message}' in (err["message"])
    )


def test_invalid_names_spec_and_versions_are_422(raw: Raw, apps: MarathonApps) -> None:
    app_id, _ = new_ids()
    status, _, body = raw("POST", URL, marathon_app(app_id, app_id))  # an id is no DNS label
    assert status == 422, body
    assert json.loads(body)["details"]["causes"][0]["field"] == "metadata.name"
    status, _, body = raw("POST", URL, {**marathon_app("x-1", app_id), "spec": {}})
    assert status == 422, body
    assert json.loads(body)["details"]["causes"] == [
        {"reason": "FieldValueRequired", "message": "Required value", "field": "spec.app"}
    ]
    versions = {**marathon_app("x-2", app_id)}
    versions["spec"]["versions"] = [APP_VERSION, "2026-12-04"]
    status, _, body = raw("POST", URL, versions)
    assert status == 422, body
    assert json.loads(body)["details"]["causes"] == [
        {
            "reason": "FieldValueInvalid",
            "message": 'Invalid value: "2026-12-04": must be an RFC 3339 date and time, '
            'e.g. "2026-12-04T10:00:00.000Z"',
            "field": "spec.versions[1]",
        }
    ]


def test_invalid_status_is_refused(raw: Raw, apps: MarathonApps) -> None:
    app_id, obj_name = new_ids()
    assert raw("POST", URL, marathon_app(obj_name, app_id))[0] == 201
    merge = {"Content-Type": "application/merge-patch+json"}
    cases: list[tuple[Obj, int, str]] = [
        ({"tasksRunning": -1}, 422, "status.tasksRunning"),
        ({"tasksHealthy": -2}, 422, "status.tasksHealthy"),
        ({"queued": -1}, 422, "status.queued"),
        ({"deployments": [{"id": "a"}, {"id": "a"}]}, 422, "status.deployments[1].id"),
        ({"deployments": [{"id": ""}]}, 422, "status.deployments[0].id"),
        ({"version": "yesterday"}, 422, "status.version"),
        ({"tasksStaged": "1"}, 400, "of type int32"),  # wrong JSON types fail typed decoding
        ({"version": 5}, 400, "of type string"),
    ]
    for patch, code, where in cases:
        status, _, body = raw("PATCH", f"{URL}/{obj_name}/status", {"status": patch}, merge)
        assert status == code, (patch, body)
        err = json.loads(body)
        if code == 422:
            assert err["details"]["causes"][0]["field"] == where, err
        else:
            assert where in err["message"], err
    ok = {"status": {"version": "", "lastTaskFailure": {"message": "x", "anything": [1]}}}
    status, _, body = raw("PATCH", f"{URL}/{obj_name}/status", ok, merge)
    assert status == 200, body
    assert json.loads(body)["status"]["lastTaskFailure"]["anything"] == [1]
    assert raw("DELETE", f"{URL}/{obj_name}")[0] == 200


def test_mutations_never_500(raw: Raw, apps: MarathonApps) -> None:
    """Every field of a full App replaced by values of the wrong type: 4xx or success."""
    seed = marathon_app("seed", "/seed")
    seed["spec"]["versions"] = [APP_VERSION]
    seed["status"] = copy.deepcopy(STATUS)
    bad = never_500(raw, URL, seed, random.Random("marathonapps"), 3)
    assert not bad, "\n".join(bad[:20])
