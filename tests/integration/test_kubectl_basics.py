"""kubectl 1.32 against a real Corral server: discovery, CRUD, output formats, errors."""

from __future__ import annotations

import json

import yaml

DEPLOY = """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: nginx
        image: nginx:1.26
        ports: [{containerPort: 80}]
"""


def test_version_is_1_32(kubectl) -> None:
    out = kubectl("version", "-o", "json").stdout
    server = json.loads(out)["serverVersion"]
    assert (server["major"], server["minor"]) == ("1", "32")


def test_api_resources_lists_core_and_apps(kubectl) -> None:
    out = kubectl("api-resources").stdout
    for needle in ("pods", "deployments", "cronjobs", "leases", "endpointslices", "namespaces"):
        assert needle in out
    assert "deploy" in out and "apps/v1" in out


def test_default_namespaces_and_kubernetes_service(kubectl) -> None:
    out = kubectl("get", "namespaces").stdout
    for ns in ("default", "kube-system", "kube-public", "kube-node-lease"):
        assert ns in out
    svc = kubectl("get", "service", "kubernetes", "-n", "default", "-o", "json").stdout
    assert json.loads(svc)["spec"]["ports"][0]["port"] == 443
    sa = kubectl("get", "serviceaccount", "default", "-n", "kube-system", "-o", "name").stdout
    assert sa.strip() == "serviceaccount/default"


def test_create_get_table_wide_yaml_json(kubectl, ns) -> None:
    kubectl("create", "-n", ns, "-f", "-", input=DEPLOY)
    table = kubectl("get", "deploy", "-n", ns).stdout.splitlines()
    assert table[0].split() == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert table[1].split()[0] == "web"
    wide = kubectl("get", "deploy", "web", "-n", ns, "-o", "wide").stdout.splitlines()
    assert wide[0].split()[5:] == ["CONTAINERS", "IMAGES", "SELECTOR"]
    assert "nginx:1.26" in wide[1]
    obj = yaml.safe_load(kubectl("get", "deploy", "web", "-n", ns, "-o", "yaml").stdout)
    assert obj["spec"]["replicas"] == 2
    assert obj["metadata"]["generation"] == 1
    assert obj["spec"]["strategy"]["type"] == "RollingUpdate"
    as_json = json.loads(kubectl("get", "deploy", "web", "-n", ns, "-o", "json").stdout)
    assert as_json["metadata"]["uid"] == obj["metadata"]["uid"]


def test_create_twice_is_already_exists(kubectl, ns) -> None:
    kubectl("create", "-n", ns, "-f", "-", input=DEPLOY)
    res = kubectl("create", "-n", ns, "-f", "-", input=DEPLOY, check=False)
    assert res.returncode == 1
    assert (
        'Error from server (AlreadyExists): error when creating "STDIN": deployments.apps "web" already exists'
        in res.stderr
    )


def test_get_missing_is_not_found(kubectl, ns) -> None:
    res = kubectl("get", "pod", "nosuch", "-n", ns, check=False)
    assert res.returncode == 1
    assert 'Error from server (NotFound): pods "nosuch" not found' in res.stderr


def test_apply_new_changed_unchanged(kubectl, ns) -> None:
    out = kubectl("apply", "-n", ns, "-f", "-", input=DEPLOY).stdout
    assert "deployment.apps/web created" in out
    out = kubectl("apply", "-n", ns, "-f", "-", input=DEPLOY).stdout
    assert "deployment.apps/web unchanged" in out
    changed = DEPLOY.replace("nginx:1.26", "nginx:1.27").replace("replicas: 2", "replicas: 3")
    out = kubectl("apply", "-n", ns, "-f", "-", input=changed).stdout
    assert "deployment.apps/web configured" in out
    obj = json.loads(kubectl("get", "deploy", "web", "-n", ns, "-o", "json").stdout)
    assert obj["spec"]["replicas"] == 3
    assert obj["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.27"
    assert obj["metadata"]["generation"] == 2


def test_server_side_apply_and_conflict(kubectl, ns) -> None:
    out = kubectl("apply", "--server-side", "-n", ns, "-f", "-", input=DEPLOY).stdout
    assert "serverside-applied" in out
    obj = json.loads(
        kubectl("get", "deploy", "web", "-n", ns, "-o", "json", "--show-managed-fields").stdout
    )
    managers = {m["manager"]: m["operation"] for m in obj["metadata"]["managedFields"]}
    assert managers.get("kubectl") == "Apply"
    kubectl("scale", "deploy", "web", "-n", ns, "--replicas=5")
    res = kubectl("apply", "--server-side", "-n", ns, "-f", "-", input=DEPLOY, check=False)
    assert res.returncode != 0
    assert "conflict" in res.stderr.lower()
    kubectl("apply", "--server-side", "--force-conflicts", "-n", ns, "-f", "-", input=DEPLOY)
    obj = json.loads(kubectl("get", "deploy", "web", "-n", ns, "-o", "json").stdout)
    assert obj["spec"]["replicas"] == 2


def test_replace_label_annotate_patch(kubectl, ns) -> None:
    kubectl("create", "-n", ns, "-f", "-", input=DEPLOY)
    kubectl("label", "deploy", "web", "-n", ns, "tier=front")
    kubectl("annotate", "deploy", "web", "-n", ns, "owner=team-a")
    obj = json.loads(kubectl("get", "deploy", "web", "-n", ns, "-o", "json").stdout)
    assert obj["metadata"]["labels"]["tier"] == "front"
    assert obj["metadata"]["annotations"]["owner"] == "team-a"
    kubectl(
        "patch",
        "deploy",
        "web",
        "-n",
        ns,
        "-p",
        '{"spec":{"template":{"spec":{"containers":[{"name":"nginx","image":"nginx:2"}]}}}}',
    )
    kubectl(
        "patch", "deploy", "web", "-n", ns, "--type=merge", "-p", '{"spec":{"minReadySeconds":5}}'
    )
    kubectl(
        "patch",
        "deploy",
        "web",
        "-n",
        ns,
        "--type=json",
        "-p",
        '[{"op":"replace","path":"/spec/replicas","value":4}]',
    )
    obj = json.loads(kubectl("get", "deploy", "web", "-n", ns, "-o", "json").stdout)
    c = obj["spec"]["template"]["spec"]["containers"]
    assert len(c) == 1 and c[0]["image"] == "nginx:2" and c[0]["ports"][0]["containerPort"] == 80
    assert obj["spec"]["minReadySeconds"] == 5
    assert obj["spec"]["replicas"] == 4
    obj["spec"]["replicas"] = 1
    kubectl("replace", "-f", "-", input=json.dumps(obj))
    stale = kubectl("replace", "-f", "-", input=json.dumps(obj), check=False)
    assert stale.returncode == 1
    assert "the object has been modified" in stale.stderr


def test_scale_subresource(kubectl, ns) -> None:
    kubectl("create", "-n", ns, "-f", "-", input=DEPLOY)
    kubectl("scale", "deploy", "web", "-n", ns, "--replicas=7")
    kubectl("scale", "deploy", "web", "-n", ns, "--current-replicas=7", "--replicas=3")
    obj = json.loads(kubectl("get", "deploy", "web", "-n", ns, "-o", "json").stdout)
    assert obj["spec"]["replicas"] == 3
    res = kubectl(
        "scale", "deploy", "web", "-n", ns, "--current-replicas=9", "--replicas=1", check=False
    )
    assert res.returncode != 0


def test_strict_field_validation(kubectl, ns) -> None:
    bad = DEPLOY.replace("replicas: 2", "replicas: 2\n  bogus: 1")
    res = kubectl("create", "-n", ns, "-f", "-", input=bad, check=False)
    assert res.returncode == 1
    assert 'unknown field "spec.bogus"' in res.stderr


def test_invalid_object_message(kubectl, ns) -> None:
    bad = DEPLOY.replace("replicas: 2", "replicas: -1")
    res = kubectl("create", "-n", ns, "-f", "-", input=bad, check=False)
    assert res.returncode == 1
    assert (
        'The Deployment "web" is invalid: spec.replicas: Invalid value: -1: must be greater than or equal to 0'
        in res.stderr
    )


def test_explain(kubectl) -> None:
    out = kubectl("explain", "pods.spec.containers").stdout
    assert "FIELD: containers" in out and "image" in out
    out = kubectl("explain", "deployments.spec.strategy").stdout
    assert "rollingUpdate" in out


def test_delete_and_wait(kubectl, ns) -> None:
    kubectl("create", "configmap", "c1", "-n", ns, "--from-literal=a=b")
    out = kubectl("delete", "configmap", "c1", "-n", ns).stdout
    assert 'configmap "c1" deleted' in out
    assert kubectl("get", "configmap", "c1", "-n", ns, check=False).returncode == 1


def test_wait_for_condition(kubectl, ns, api_client) -> None:
    from kubernetes import client

    kubectl("create", "-n", ns, "-f", "-", input=DEPLOY)
    v1 = client.AppsV1Api(api_client)
    v1.patch_namespaced_deployment_status(
        "web",
        ns,
        {
            "status": {
                "conditions": [
                    {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"}
                ]
            }
        },
    )
    out = kubectl(
        "wait", "deploy/web", "-n", ns, "--for=condition=Available", "--timeout=20s"
    ).stdout
    assert "condition met" in out


SVC = """
apiVersion: v1
kind: Service
metadata: {name: ssa-svc}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
"""


def test_server_side_apply_is_idempotent_with_defaulted_keys(kubectl, ns) -> None:
    for _ in range(2):
        kubectl("apply", "--server-side", "-n", ns, "-f", "-", input=SVC)
        kubectl("apply", "--server-side", "-n", ns, "-f", "-", input=DEPLOY)
    svc = json.loads(kubectl("get", "svc", "ssa-svc", "-n", ns, "-o", "json").stdout)
    assert [(p["port"], p["protocol"]) for p in svc["spec"]["ports"]] == [(80, "TCP")]
    dep = json.loads(kubectl("get", "deploy", "web", "-n", ns, "-o", "json").stdout)
    assert len(dep["spec"]["template"]["spec"]["containers"][0]["ports"]) == 1


def test_apply_a_list_file_uses_openapi_v2(kubectl, ns) -> None:
    kubectl("create", "configmap", "l1", "-n", ns, "--from-literal=a=1")
    exported = kubectl("get", "configmap", "l1", "-n", ns, "-o", "yaml").stdout
    as_list = (
        "apiVersion: v1\nkind: List\nitems:\n- " + exported.replace("\n", "\n  ").rstrip() + "\n"
    )
    out = kubectl("apply", "-n", ns, "-f", "-", input=as_list.replace('a: "1"', 'a: "2"'))
    assert "configmap/l1" in out.stdout
    bad = as_list.replace("data:", "bogus: 1\n  data:")
    res = kubectl("apply", "-n", ns, "-f", "-", input=bad, check=False)
    assert res.returncode == 1 and 'unknown field "bogus"' in res.stderr
    out = kubectl("explain", "--output=plaintext-openapiv2", "pods.spec").stdout
    assert "containers" in out


def test_quota_limitrange_pdb_are_served(kubectl, ns) -> None:
    kubectl("create", "quota", "q", "-n", ns, "--hard=pods=3,cpu=2")
    kubectl("create", "pdb", "web", "-n", ns, "--selector=app=web", "--min-available=1")
    lr = {
        "apiVersion": "v1",
        "kind": "LimitRange",
        "metadata": {"name": "lr"},
        "spec": {"limits": [{"type": "Container", "default": {"cpu": "500m"}}]},
    }
    kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(lr))
    quota = json.loads(kubectl("get", "quota", "q", "-n", ns, "-o", "json").stdout)
    assert quota["spec"]["hard"] == {"pods": "3", "cpu": "2"}
    pdb = json.loads(kubectl("get", "pdb", "web", "-n", ns, "-o", "json").stdout)
    assert pdb["spec"]["minAvailable"] == 1 and pdb["status"]["disruptionsAllowed"] == 0
    assert "lr" in kubectl("get", "limits", "-n", ns).stdout
    bad = kubectl(
        "create",
        "pdb",
        "both",
        "-n",
        ns,
        "--selector=a=b",
        "--min-available=1",
        "--max-unavailable=1",
        check=False,
    )
    assert bad.returncode != 0


def test_run_records_what_the_request_wrote(kubectl, ns) -> None:
    """A create's Update entry holds what the request wrote, defaulted, as upstream's field
    manager records it before the strategy and mutating admission: the service account's
    token volume, the default tolerations and the priority are nobody's fields, and an
    empty struct (``resources: {}``, ``securityContext: {}``) is a field of its own."""
    kubectl("run", "mf", "-n", ns, "--image=busybox", "--restart=Never")
    out = kubectl("get", "pod", "mf", "-n", ns, "-o", "json", "--show-managed-fields").stdout
    obj = json.loads(out)
    (entry,) = [m for m in obj["metadata"]["managedFields"] if m["manager"] == "kubectl-run"]
    assert entry["operation"] == "Update"
    assert entry["fieldsV1"] == {
        "f:metadata": {"f:labels": {".": {}, "f:run": {}}},
        "f:spec": {
            "f:containers": {
                'k:{"name":"mf"}': {
                    ".": {},
                    "f:image": {},
                    "f:imagePullPolicy": {},
                    "f:name": {},
                    "f:resources": {},
                    "f:terminationMessagePath": {},
                    "f:terminationMessagePolicy": {},
                }
            },
            "f:dnsPolicy": {},
            "f:enableServiceLinks": {},
            "f:restartPolicy": {},
            "f:schedulerName": {},
            "f:securityContext": {},
            "f:terminationGracePeriodSeconds": {},
        },
    }
    spec = obj["spec"]  # what admission added is there all the same
    assert spec["volumes"][0]["name"].startswith("kube-api-access-")
    assert spec["tolerations"] and spec["priority"] == 0
