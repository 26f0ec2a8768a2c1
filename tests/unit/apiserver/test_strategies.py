"""The shared registry suite: every resource's strategy on valid and invalid objects.

Each object goes through what the generic store does on create: ``default``, metadata
filled (uid, namespace), ``prepare_for_create``, ``validate_metadata`` and ``validate``.
Then a few per-kind tables: defaults, updates, cron schedules, field selectors.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from corral.apiserver.registry.base import ResourceInfo
from corral.apiserver.registry.batch import cron_schedule_error
from corral.apiserver.registry.table import RESOURCES

UID = "0b8a9d6e-0000-4000-8000-000000000001"


def info(group: str, plural: str) -> ResourceInfo:
    return next(r for r in RESOURCES if r.group == group and r.plural == plural)


def create(group: str, plural: str, obj: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Run ``obj`` through the create path; return the stored object and error strings."""
    row = info(group, plural)
    obj = copy.deepcopy(obj)
    meta = obj.setdefault("metadata", {})
    meta.setdefault("name", "x")
    if row.namespaced:
        meta.setdefault("namespace", "default")
    meta["uid"] = UID
    row.strategy.default(obj)
    row.strategy.prepare_for_create(obj)
    errs = row.strategy.validate_metadata(obj, row.namespaced) + row.strategy.validate(obj)
    return obj, [str(e) for e in errs]


def update(group: str, plural: str, old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    row = info(group, plural)
    new = copy.deepcopy(new)
    row.strategy.default(new)
    row.strategy.prepare_for_update(new, old)
    errs = row.strategy.validate_metadata(new, row.namespaced) + row.strategy.validate_update(
        new, old
    )
    return [str(e) for e in errs]


def container(**kw: Any) -> dict[str, Any]:
    return {"name": "c", "image": "nginx:1.27", **kw}


def pod_spec(**kw: Any) -> dict[str, Any]:
    return {"containers": [container()], **kw}


def template(labels: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    return {"metadata": {"labels": labels or {"app": "x"}}, "spec": pod_spec(**spec)}


def deployment(**spec: Any) -> dict[str, Any]:
    return {"spec": {"selector": {"matchLabels": {"app": "x"}}, "template": template(), **spec}}


def job(**spec: Any) -> dict[str, Any]:
    return {"spec": {"template": template(restartPolicy="Never"), **spec}}


def cronjob(**spec: Any) -> dict[str, Any]:
    return {
        "spec": {
            "schedule": "*/5 * * * *",
            "jobTemplate": {"spec": {"template": template(restartPolicy="OnFailure")}},
            **spec,
        }
    }


def b64(s: str) -> str:
    import base64

    return base64.b64encode(s.encode()).decode()


# a real PKCS#10 request (EC P-256, CN=system:node:n1, O=system:nodes): the strategy checks
# its signature; more cases in test_certificates.py
NODE_CSR = """-----BEGIN CERTIFICATE REQUEST-----
MIHrMIGSAgEAMDAxFTATBgNVBAoMDHN5c3RlbTpub2RlczEXMBUGA1UEAwwOc3lz
dGVtOm5vZGU6bjEwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAATGzKj8qn6bmIq+
zzdH0GdyBR2HBWsQmmuObVQQTvJpVt/onUQYsmj3FMP0ujPIwexYS2Ya7M+2/YxS
FarcDoDboAAwCgYIKoZIzj0EAwIDSAAwRQIgBqgMz4MI/HVIfn1VJARkque5P0/2
KS1HSKDW5ZfMlT8CIQDU0iAWzsRsMeC9wSM52VbrPMBr/3kyJ6bumYNXWXqRDA==
-----END CERTIFICATE REQUEST-----
"""


# fmt: off
VALID: list[tuple[str, str, dict[str, Any]]] = [
    ("", "namespaces", {}),
    ("", "nodes", {"spec": {"taints": [{"key": "k", "effect": "NoSchedule"}]}}),
    ("", "pods", {"spec": pod_spec()}),
    ("", "services", {"spec": {"selector": {"app": "x"}, "ports": [{"port": 80}]}}),
    ("", "services", {"spec": {"type": "ExternalName", "externalName": "example.com"}}),
    ("", "endpoints", {"subsets": [{"addresses": [{"ip": "10.0.0.1"}], "ports": [{"port": 80}]}]}),
    ("", "configmaps", {"data": {"a.b": "x"}, "binaryData": {"c": b64("y")}}),
    ("", "secrets", {"data": {"k": b64("v")}, "stringData": {"s": "t"}}),
    ("", "events", {"involvedObject": {"kind": "Pod", "name": "p", "namespace": "default"}, "reason": "R", "type": "Normal"}),
    ("", "serviceaccounts", {}),
    ("", "resourcequotas", {"spec": {"hard": {"pods": "10", "requests.cpu": "4"}}}),
    ("", "limitranges", {"spec": {"limits": [{"type": "Container", "default": {"cpu": "500m"}}]}}),
    ("", "podtemplates", {"template": template()}),
    ("", "persistentvolumes", {"spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "hostPath": {"path": "/d"}}}),
    ("", "persistentvolumeclaims", {"spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}),
    ("storage.k8s.io", "storageclasses", {"provisioner": "rancher.io/local-path"}),  # more: test_storage_strategy.py
    ("policy", "poddisruptionbudgets", {"spec": {"minAvailable": 1, "selector": {"matchLabels": {"a": "b"}}}}),
    ("", "replicationcontrollers", {"spec": {"template": template()}}),
    ("apps", "deployments", deployment()),
    ("apps", "replicasets", deployment()),
    ("apps", "daemonsets", deployment()),
    ("apps", "statefulsets", deployment(serviceName="x")),
    ("apps", "controllerrevisions", {"data": {}, "revision": 1}),
    ("autoscaling", "horizontalpodautoscalers", {"spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "maxReplicas": 3}}),
    ("batch", "jobs", job()),
    ("batch", "cronjobs", cronjob(timeZone="Europe/Paris")),
    ("coordination.k8s.io", "leases", {"spec": {"holderIdentity": "a", "leaseDurationSeconds": 40}}),
    ("discovery.k8s.io", "endpointslices", {"addressType": "IPv4", "endpoints": [{"addresses": ["10.0.0.1"]}], "ports": [{"port": 80}]}),
    ("events.k8s.io", "events", {"eventTime": "2024-01-01T00:00:00.000000Z", "type": "Normal", "reason": "R", "action": "A",
                                 "reportingController": "example.com/c", "reportingInstance": "i"}),
    ("scheduling.k8s.io", "priorityclasses", {"value": 1000}),
    ("rbac.authorization.k8s.io", "roles", {"rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]}),  # more: test_rbac_strategy.py
    ("rbac.authorization.k8s.io", "clusterroles", {"metadata": {"name": "system:x"}, "rules": [{"nonResourceURLs": ["/healthz"], "verbs": ["get"]}]}),
    ("rbac.authorization.k8s.io", "rolebindings", {"roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"}, "subjects": [{"kind": "ServiceAccount", "name": "default"}]}),
    ("rbac.authorization.k8s.io", "clusterrolebindings", {"roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"}, "subjects": [{"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": "g"}]}),
    ("apiextensions.k8s.io", "customresourcedefinitions", {"metadata": {"name": "crontabs.stable.example.com"}, "spec": {  # more: test_crd_strategy.py
        "group": "stable.example.com", "scope": "Namespaced", "names": {"plural": "crontabs", "kind": "CronTab"},
        "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {"type": "object"}}}]}}),
    ("apiregistration.k8s.io", "apiservices", {"metadata": {"name": "v1beta1.metrics.k8s.io"}, "spec": {  # more: test_metrics_api.py
        "group": "metrics.k8s.io", "version": "v1beta1", "groupPriorityMinimum": 100, "versionPriority": 100,
        "service": {"namespace": "kube-system", "name": "metrics-server"}, "insecureSkipTLSVerify": True}}),
    ("mesos.corral.dev", "frameworks", {"spec": {"frameworkInfo": {"user": "root", "name": "f"}}}),  # more: test_registry_mesos.py
    ("chronos.corral.dev", "chronosjobs", {"spec": {"job": {"name": "j", "command": "true", "schedule": "R/2026-01-01T00:00:00Z/PT1H"}}}),  # more: test_registry_chronos.py
    ("marathon.corral.dev", "apps", {"spec": {"app": {"id": "/web/api", "cmd": "sleep 1000", "instances": 2}}}),  # more: test_registry_marathon.py
    ("certificates.k8s.io", "certificatesigningrequests", {"spec": {"request": b64(NODE_CSR),
     "signerName": "kubernetes.io/kube-apiserver-client-kubelet", "usages": ["digital signature", "client auth"]}}),
]

INVALID: list[tuple[str, str, dict[str, Any], str]] = [
    ("", "namespaces", {"metadata": {"name": "a.b"}}, 'metadata.name: Invalid value: "a.b": must not contain dots'),
    ("", "nodes", {"spec": {"taints": [{"key": "k", "effect": "Sometimes"}]}},
     'spec.taints[0].effect: Unsupported value: "Sometimes": supported values: "NoSchedule", "PreferNoSchedule", "NoExecute"'),
    ("", "pods", {"spec": {"containers": []}}, "spec.containers: Required value"),
    ("", "pods", {"spec": pod_spec(containers=[container(name="Bad")])}, 'spec.containers[0].name: Invalid value: "Bad": a lowercase RFC 1123 label'),
    ("", "pods", {"spec": pod_spec(containers=[container(), container()])}, 'spec.containers[1].name: Duplicate value: "c"'),
    ("", "pods", {"spec": pod_spec(containers=[{"name": "c"}])}, "spec.containers[0].image: Required value"),
    ("", "pods", {"spec": pod_spec(containers=[container(ports=[{"containerPort": 70000}])])},
     "spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive"),
    ("", "pods", {"spec": pod_spec(restartPolicy="Sometimes")},
     'spec.restartPolicy: Unsupported value: "Sometimes": supported values: "Always", "OnFailure", "Never"'),
    ("", "pods", {"spec": pod_spec(containers=[container(volumeMounts=[{"name": "v", "mountPath": "/v"}])])},
     'spec.containers[0].volumeMounts[0].name: Not found: "v"'),
    ("", "services", {"spec": {"ports": [{"port": 0}]}}, "spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive"),
    ("", "services", {"spec": {"ports": [{"port": 80}, {"port": 81}]}}, "spec.ports[0].name: Required value"),
    ("", "services", {"spec": {"ports": [{"name": "a", "port": 80}, {"name": "a", "port": 81}]}}, 'spec.ports[1].name: Duplicate value: "a"'),
    ("", "services", {"spec": {"ports": [{"port": 80, "protocol": "HTTP"}]}},
     'spec.ports[0].protocol: Unsupported value: "HTTP": supported values: "SCTP", "TCP", "UDP"'),
    ("", "services", {"spec": {"type": "Magic", "ports": [{"port": 80}]}},
     'spec.type: Unsupported value: "Magic": supported values: "ClusterIP", "ExternalName", "LoadBalancer", "NodePort"'),
    ("", "services", {"spec": {"ports": [{"port": 80, "nodePort": 30000}]}},
     "spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"),
    ("", "services", {"spec": {}}, "spec.ports: Required value"),
    ("", "endpoints", {"subsets": [{"addresses": [{"ip": "nope"}]}]},
     'subsets[0].addresses[0].ip: Invalid value: "nope": must be a valid IP address'),
    ("", "configmaps", {"data": {"": "x"}}, 'data[]: Invalid value: "": a valid config key must consist of alphanumeric characters'),
    ("", "configmaps", {"data": {"a": "x"}, "binaryData": {"a": b64("y")}}, 'data[a]: Invalid value: "a": duplicate of key present in binaryData'),
    ("", "secrets", {"data": {"": b64("x")}}, 'data[]: Invalid value: "": a valid config key'),
    ("", "secrets", {"data": {"k": "not base64!"}}, "illegal base64 data at input byte 3"),
    ("", "secrets", {"type": "kubernetes.io/tls", "data": {"tls.crt": b64("c")}}, "data[tls.key]: Required value"),
    ("", "events", {"metadata": {"namespace": "a"}, "involvedObject": {"kind": "Pod", "name": "p", "namespace": "b"}},
     'involvedObject.namespace: Invalid value: "b": does not match event.namespace'),
    ("", "replicationcontrollers", {"spec": {"selector": {"app": "y"}, "template": template()}},
     'spec.template.metadata.labels: Invalid value: map[string]string{"app":"x"}: selector does not match template labels'),
    ("", "replicationcontrollers", {"spec": {"template": template(restartPolicy="Never")}},
     'spec.template.spec.restartPolicy: Unsupported value: "Never": supported values: "Always"'),
    ("apps", "deployments", deployment(selector={"matchLabels": {"app": "y"}}),
     'spec.template.metadata.labels: Invalid value: map[string]string{"app":"x"}: `selector` does not match template `labels`'),
    ("apps", "deployments", {"spec": {"template": template()}}, "spec.selector: Required value"),
    ("apps", "deployments", deployment(selector={}), "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil)"),
    ("apps", "deployments", deployment(replicas=-1), "spec.replicas: Invalid value: -1: must be greater than or equal to 0"),
    ("apps", "deployments", deployment(strategy={"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 0}}),
     'spec.strategy.rollingUpdate.maxUnavailable: Invalid value: intstr.IntOrString{Type:0, IntVal:0, StrVal:""}: may not be 0 when `maxSurge` is 0'),
    ("apps", "deployments", deployment(strategy={"type": "Recreate", "rollingUpdate": {}}),
     "spec.strategy.rollingUpdate: Forbidden: may not be specified when strategy `type` is 'Recreate'"),
    ("apps", "deployments", deployment(template=template(restartPolicy="OnFailure")),
     'spec.template.spec.restartPolicy: Unsupported value: "OnFailure": supported values: "Always"'),
    ("apps", "replicasets", deployment(selector={"matchLabels": {"app": "y"}}), "`selector` does not match template `labels`"),
    ("apps", "daemonsets", deployment(updateStrategy={"type": "Sideways"}), 'spec.updateStrategy.type: Unsupported value: "Sideways"'),
    ("apps", "statefulsets", deployment(podManagementPolicy="Random"),
     'spec.podManagementPolicy: Unsupported value: "Random": supported values: "OrderedReady", "Parallel"'),
    ("apps", "controllerrevisions", {"data": {}, "revision": -1}, "revision: Invalid value: -1: must be greater than or equal to 0"),
    ("autoscaling", "horizontalpodautoscalers", {"spec": {"scaleTargetRef": {"kind": "Deployment"}, "maxReplicas": 3}}, "spec.scaleTargetRef.name: Required value"),
    ("batch", "jobs", {"spec": {"template": template()}}, 'spec.template.spec.restartPolicy: Required value: valid values: "OnFailure", "Never"'),
    ("batch", "jobs", job(parallelism=-1), "spec.parallelism: Invalid value: -1: must be greater than or equal to 0"),
    ("batch", "jobs", job(completionMode="Indexed", completions=None, parallelism=2),
     "spec.completions: Required value: when completion mode is Indexed"),
    ("batch", "jobs", job(podReplacementPolicy="Sometimes"),
     'spec.podReplacementPolicy: Unsupported value: "Sometimes": supported values: "Failed", "TerminatingOrFailed"'),
    ("batch", "jobs", job(podReplacementPolicy="TerminatingOrFailed", podFailurePolicy={"rules": []}),
     'spec.podReplacementPolicy: Unsupported value: "TerminatingOrFailed": supported values: "Failed"'),
    ("batch", "cronjobs", cronjob(schedule="x"), 'spec.schedule: Invalid value: "x": expected exactly 5 fields, found 1: [x]'),
    ("batch", "cronjobs", cronjob(schedule=""), "spec.schedule: Required value"),
    ("batch", "cronjobs", cronjob(timeZone="Mars/Olympus"), 'spec.timeZone: Invalid value: "Mars/Olympus": unknown time zone Mars/Olympus'),
    ("batch", "cronjobs", cronjob(concurrencyPolicy="Sometimes"),
     'spec.concurrencyPolicy: Unsupported value: "Sometimes": supported values: "Allow", "Forbid", "Replace"'),
    ("batch", "cronjobs", {"metadata": {"name": "a" * 53}, **cronjob()}, "metadata.name: Invalid value: \"" + "a" * 53 + '": must be no more than 52 characters'),
    ("coordination.k8s.io", "leases", {"spec": {"leaseDurationSeconds": 0}}, "spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0"),
    ("discovery.k8s.io", "endpointslices", {"endpoints": []}, "addressType: Required value"),
    ("discovery.k8s.io", "endpointslices", {"addressType": "IPv5"}, 'addressType: Unsupported value: "IPv5": supported values: "FQDN", "IPv4", "IPv6"'),
    ("discovery.k8s.io", "endpointslices", {"addressType": "IPv4", "endpoints": [{"addresses": ["::1"]}]},
     'endpoints[0].addresses[0]: Invalid value: "::1": must be a valid IPv4 address'),
    ("events.k8s.io", "events", {"type": "Normal"}, "eventTime: Required value"),
    ("scheduling.k8s.io", "priorityclasses", {"metadata": {"name": "system-x"}, "value": 1},
     "priority class names with 'system-' prefix are reserved for system use only"),
    ("scheduling.k8s.io", "priorityclasses", {"value": 2_000_000_000}, "value: Forbidden: maximum allowed value of a user defined priority is 1000000000"),
    ("", "resourcequotas", {"spec": {"hard": {"pods": "ten"}}}, "spec.hard[pods]: Invalid value"),
    ("policy", "poddisruptionbudgets", {"spec": {"minAvailable": 1, "maxUnavailable": 1}}, "minAvailable and maxUnavailable cannot be both set"),
    ("policy", "poddisruptionbudgets", {"spec": {"maxUnavailable": -1}}, "spec.maxUnavailable: Invalid value: -1"),
]
# fmt: on


@pytest.mark.parametrize(
    ("group", "plural", "obj"),
    VALID,
    ids=[f"{g or 'core'}/{p}-{i}" for i, (g, p, _) in enumerate(VALID)],
)
def test_valid_objects_create(group: str, plural: str, obj: dict[str, Any]) -> None:
    _, errs = create(group, plural, obj)
    assert errs == []


@pytest.mark.parametrize(
    ("group", "plural", "obj", "message"),
    INVALID,
    ids=[f"{g or 'core'}/{p}-{i}" for i, (g, p, _, _) in enumerate(INVALID)],
)
def test_invalid_objects_rejected(
    group: str, plural: str, obj: dict[str, Any], message: str
) -> None:
    _, errs = create(group, plural, obj)
    assert any(message in e for e in errs), errs


def test_every_resource_has_a_valid_case() -> None:
    covered = {(g, p) for g, p, _ in VALID}
    assert {(r.group, r.plural) for r in RESOURCES} == covered


# --- defaults --------------------------------------------------------------------------


def test_pod_defaults_and_initial_status() -> None:
    pod, _ = create(
        "",
        "pods",
        {"spec": pod_spec(containers=[container(image="nginx", ports=[{"containerPort": 80}])])},
    )
    spec = pod["spec"]
    assert {k: spec[k] for k in ("restartPolicy", "dnsPolicy", "schedulerName", "terminationGracePeriodSeconds",
                                 "securityContext", "serviceAccountName", "serviceAccount", "enableServiceLinks",
                                 "priority", "preemptionPolicy")} == {
        "restartPolicy": "Always", "dnsPolicy": "ClusterFirst", "schedulerName": "default-scheduler",
        "terminationGracePeriodSeconds": 30, "securityContext": {}, "serviceAccountName": "default",
        "serviceAccount": "default", "enableServiceLinks": True, "priority": 0,
        "preemptionPolicy": "PreemptLowerPriority",
    }  # fmt: skip
    c = spec["containers"][0]
    assert c["imagePullPolicy"] == "Always"
    assert c["terminationMessagePath"] == "/dev/termination-log"
    assert c["terminationMessagePolicy"] == "File"
    assert c["resources"] == {}
    assert c["ports"] == [{"containerPort": 80, "protocol": "TCP"}]
    # the default not-ready/unreachable tolerations come from an admission hook
    # (admission.DefaultTolerationSeconds, tested in test_eviction_admission.py)
    assert "tolerations" not in spec
    assert pod["status"] == {"phase": "Pending", "qosClass": "BestEffort"}


@pytest.mark.parametrize(
    ("resources", "qos"),
    [
        ({}, "BestEffort"),
        ({"requests": {"cpu": "100m"}}, "Burstable"),
        ({"limits": {"cpu": "1", "memory": "1Gi"}}, "Guaranteed"),
        ({"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "500m"}}, "Burstable"),
        (
            {
                "limits": {"cpu": "1", "memory": "1Gi"},
                "requests": {"cpu": "1000m", "memory": "1024Mi"},
            },
            "Guaranteed",
        ),
    ],
    ids=["none", "requests", "limits", "lower-requests", "equal-other-units"],
)
def test_pod_qos_class(resources: dict[str, Any], qos: str) -> None:
    pod, _ = create("", "pods", {"spec": pod_spec(containers=[container(resources=resources)])})
    assert pod["status"]["qosClass"] == qos


@pytest.mark.parametrize(
    ("image", "policy"),
    [("nginx", "Always"), ("nginx:latest", "Always"), ("nginx:1.27", "IfNotPresent"),
     ("localhost:5000/app", "Always"), ("nginx@sha256:abc", "IfNotPresent")],
    ids=["untagged", "latest", "tagged", "registry-port", "digest"],
)  # fmt: skip
def test_image_pull_policy_default(image: str, policy: str) -> None:
    pod, _ = create("", "pods", {"spec": pod_spec(containers=[container(image=image)])})
    assert pod["spec"]["containers"][0]["imagePullPolicy"] == policy


def test_workload_defaults() -> None:
    deploy, _ = create("apps", "deployments", deployment())
    assert deploy["spec"]["replicas"] == 1
    assert deploy["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"},
    }
    assert (deploy["spec"]["revisionHistoryLimit"], deploy["spec"]["progressDeadlineSeconds"]) == (
        10,
        600,
    )
    assert deploy["spec"]["template"]["spec"]["dnsPolicy"] == "ClusterFirst"
    assert "enableServiceLinks" not in deploy["spec"]["template"]["spec"]
    assert deploy["status"] == {} and deploy["metadata"]["generation"] == 1
    ds, _ = create("apps", "daemonsets", deployment())
    assert ds["spec"]["updateStrategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0},
    }
    sts, _ = create("apps", "statefulsets", deployment())
    assert sts["spec"]["podManagementPolicy"] == "OrderedReady"
    assert sts["spec"]["updateStrategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"partition": 0},
    }
    rc, _ = create("", "replicationcontrollers", {"spec": {"template": template()}})
    assert rc["spec"]["selector"] == {"app": "x"} and rc["metadata"]["labels"] == {"app": "x"}


def test_job_generates_selector_from_uid() -> None:
    created, errs = create("batch", "jobs", {"metadata": {"name": "pi"}, **job()})
    assert errs == []
    spec = created["spec"]
    assert spec["selector"] == {"matchLabels": {"batch.kubernetes.io/controller-uid": UID}}
    assert spec["template"]["metadata"]["labels"] == {
        "app": "x", "batch.kubernetes.io/controller-uid": UID, "batch.kubernetes.io/job-name": "pi",
        "controller-uid": UID, "job-name": "pi",
    }  # fmt: skip
    assert created["metadata"]["labels"] == {"app": "x"}
    assert {k: spec[k] for k in ("parallelism", "completions", "backoffLimit", "completionMode", "suspend", "manualSelector")} == {
        "parallelism": 1, "completions": 1, "backoffLimit": 6, "completionMode": "NonIndexed", "suspend": False, "manualSelector": False,
    }  # fmt: skip


def test_job_without_template_labels_gets_generated_labels() -> None:
    created, _ = create(
        "batch",
        "jobs",
        {
            "metadata": {"name": "pi"},
            "spec": {"template": {"spec": pod_spec(restartPolicy="Never")}},
        },
    )
    assert created["metadata"]["labels"]["batch.kubernetes.io/job-name"] == "pi"


def test_cronjob_defaults() -> None:
    cj, _ = create("batch", "cronjobs", cronjob())
    assert {k: cj["spec"][k] for k in ("concurrencyPolicy", "suspend", "successfulJobsHistoryLimit", "failedJobsHistoryLimit")} == {
        "concurrencyPolicy": "Allow", "suspend": False, "successfulJobsHistoryLimit": 3, "failedJobsHistoryLimit": 1,
    }  # fmt: skip


def test_secret_string_data_merged() -> None:
    secret, _ = create("", "secrets", {"data": {"a": b64("1")}, "stringData": {"b": "2", "a": "3"}})
    assert "stringData" not in secret
    assert secret["data"] == {"a": b64("3"), "b": b64("2")}
    assert secret["type"] == "Opaque"


def test_service_defaults() -> None:
    svc, _ = create("", "services", {"spec": {"type": "NodePort", "ports": [{"port": 80}]}})
    spec = svc["spec"]
    assert spec["ports"] == [{"port": 80, "protocol": "TCP", "targetPort": 80}]
    assert (
        spec["sessionAffinity"],
        spec["externalTrafficPolicy"],
        spec["internalTrafficPolicy"],
    ) == ("None", "Cluster", "Cluster")
    assert (spec["ipFamilyPolicy"], spec["ipFamilies"]) == ("SingleStack", ["IPv4"])
    assert svc["status"] == {"loadBalancer": {}}


def test_namespace_defaults() -> None:
    ns, _ = create("", "namespaces", {"metadata": {"name": "team-a"}})
    assert ns["spec"] == {"finalizers": ["kubernetes"]}
    assert ns["status"] == {"phase": "Active"}
    assert ns["metadata"]["labels"] == {"kubernetes.io/metadata.name": "team-a"}
    assert "generation" not in ns["metadata"]


# --- updates ---------------------------------------------------------------------------


def _stored(group: str, plural: str, obj: dict[str, Any]) -> dict[str, Any]:
    created, errs = create(group, plural, obj)
    assert errs == []
    return created


def test_pod_update_image_allowed_other_fields_forbidden() -> None:
    old = _stored(
        "",
        "pods",
        {"spec": pod_spec(tolerations=[{"key": "a", "operator": "Exists", "effect": "NoExecute"}])},
    )
    new = copy.deepcopy(old)
    new["spec"]["containers"][0]["image"] = "nginx:1.28"
    new["spec"]["tolerations"].append({"key": "k", "operator": "Exists"})
    assert update("", "pods", old, new) == []
    new["spec"]["restartPolicy"] = "Never"
    errs = update("", "pods", old, new)
    assert errs == [
        "spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`,"
        "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions "
        "to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was "
        "previously negative)"
    ]


def test_pod_update_removing_toleration_forbidden() -> None:
    old = _stored(
        "",
        "pods",
        {"spec": pod_spec(tolerations=[{"key": "a", "operator": "Exists", "effect": "NoExecute"}])},
    )
    new = copy.deepcopy(old)
    new["spec"]["tolerations"] = []
    assert any(e.startswith("spec: Forbidden") for e in update("", "pods", old, new))


@pytest.mark.parametrize(
    ("group", "plural", "obj", "change", "message"),
    [
        ("apps", "deployments", deployment(), lambda o: o["spec"].update(selector={"matchLabels": {"app": "x", "b": "c"}},
         template=template({"app": "x", "b": "c"})), "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{\"app\":\"x\", \"b\":\"c\"}"),
        ("apps", "statefulsets", deployment(), lambda o: o["spec"].update(serviceName="other"), "spec: Forbidden: updates to statefulset spec"),
        ("", "secrets", {"type": "Opaque"}, lambda o: o.update(type="kubernetes.io/basic-auth", data={"username": b64("u")}),
         'type: Invalid value: "kubernetes.io/basic-auth": field is immutable'),
        ("", "configmaps", {"data": {"a": "1"}, "immutable": True}, lambda o: o.update(data={"a": "2"}),
         "data: Forbidden: field is immutable when `immutable` is set"),
        ("batch", "jobs", job(), lambda o: o["spec"].update(completions=5), "spec.completions: Invalid value: 5: field is immutable"),
        ("scheduling.k8s.io", "priorityclasses", {"value": 1}, lambda o: o.update(value=2), "value: Forbidden: may not be changed in an update."),
        ("discovery.k8s.io", "endpointslices", {"addressType": "IPv4"}, lambda o: o.update(addressType="IPv6"),
         'addressType: Invalid value: "IPv6": field is immutable'),
    ],
    ids=["deploy-selector", "sts-spec", "secret-type", "cm-immutable", "job-completions", "pc-value", "slice-address-type"],
)  # fmt: skip
def test_update_rules(
    group: str, plural: str, obj: dict[str, Any], change: Any, message: str
) -> None:
    old = _stored(group, plural, obj)
    new = copy.deepcopy(old)
    change(new)
    errs = update(group, plural, old, new)
    assert any(message in e for e in errs), errs


def test_service_update_keeps_cluster_ip() -> None:
    old = _stored("", "services", {"spec": {"ports": [{"port": 80}]}})
    old["spec"].update(clusterIP="10.0.0.5", clusterIPs=["10.0.0.5"])
    row = info("", "services")
    new = {"metadata": copy.deepcopy(old["metadata"]), "spec": {"ports": [{"port": 80}]}}
    row.strategy.default(new)
    row.strategy.prepare_for_update(new, old)
    assert new["spec"]["clusterIPs"] == ["10.0.0.5"]
    new["spec"].update(clusterIP="10.0.0.6", clusterIPs=["10.0.0.6"])
    assert 'spec.clusterIPs[0]: Invalid value: []string{"10.0.0.6"}: may not change once set' in [
        str(e) for e in row.strategy.validate_update(new, old)
    ]


# --- cron schedules and field selectors ------------------------------------------------

ANY_ERROR = "<any error>"


@pytest.mark.parametrize(
    ("schedule", "message"),
    [
        ("*/5 * * * *", None), ("0 0 * * MON-FRI", None), ("@hourly", None), ("@every 1h30m", None),
        ("0 0 1 jan ?", None),
        ("x", "expected exactly 5 fields, found 1: [x]"),
        ("60 * * * *", ANY_ERROR),
        ("a * * * *", ANY_ERROR),
        ("* * 0 * *", ANY_ERROR),
        ("* 25 * * *", ANY_ERROR),
        ("*/0 * * * *", ANY_ERROR),
        ("@weird", "unrecognized descriptor: @weird"),
    ],
    ids=["step", "names", "hourly", "every", "question", "fields", "max", "int", "min", "hour", "step0", "descriptor"],
)  # fmt: skip
def test_cron_schedule_error(schedule: str, message: str | None) -> None:
    got = cron_schedule_error(schedule)
    if message is ANY_ERROR:
        assert got  # croniter's own wording
    else:
        assert got == message


@pytest.mark.parametrize(
    ("group", "plural", "obj", "field", "value"),
    [
        ("", "pods", {"spec": {"nodeName": "n1"}}, "spec.nodeName", "n1"),
        ("", "pods", {"spec": {}}, "spec.nodeName", ""),
        ("", "pods", {"spec": {}}, "spec.hostNetwork", "false"),
        ("", "pods", {"status": {"phase": "Running"}}, "status.phase", "Running"),
        ("", "events", {"involvedObject": {"uid": "u"}}, "involvedObject.uid", "u"),
        ("", "events", {"source": {"component": "kubelet"}}, "source", "kubelet"),
        ("", "secrets", {"type": "Opaque"}, "type", "Opaque"),
        ("", "namespaces", {"status": {"phase": "Active"}}, "status.phase", "Active"),
        ("", "nodes", {"spec": {}}, "spec.unschedulable", "false"),
        ("", "nodes", {"spec": {"unschedulable": True}}, "spec.unschedulable", "true"),
        ("apps", "replicasets", {"status": {"replicas": 2}}, "status.replicas", "2"),
        ("batch", "jobs", {"status": {}}, "status.successful", "0"),
        ("batch", "jobs", {"status": {"succeeded": 2}}, "status.successful", "2"),
        ("events.k8s.io", "events", {"regarding": {"kind": "Pod"}}, "regarding.kind", "Pod"),
    ],
    ids=["pod-node", "pod-node-empty", "pod-hostnetwork", "pod-phase", "event-uid", "event-source", "secret-type",
         "ns-phase", "node-unsched-false", "node-unsched-true", "rs-replicas", "job-successful", "job-succeeded", "eventv1-kind"],
)  # fmt: skip
def test_field_selectors(
    group: str, plural: str, obj: dict[str, Any], field: str, value: str
) -> None:
    assert info(group, plural).strategy.field_selectors[field](obj) == value
