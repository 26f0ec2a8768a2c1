"""Server-side Table columns and cells, checked against what kubectl shows on a real cluster."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from corral.apiserver.tables import columns, has_table, human_duration, row, row_conditions

NOW = datetime(2025, 1, 10, 12, 0, 0, tzinfo=UTC)
CREATED = "2025-01-10T11:55:00Z"  # 5m before NOW
META = {"name": "x", "namespace": "default", "creationTimestamp": CREATED}

DURATIONS = [
    (-5, "<invalid>"),
    (-1.5, "0s"),
    (0, "0s"),
    (5, "5s"),
    (119, "119s"),
    (120, "2m"),
    (200, "3m20s"),
    (599, "9m59s"),
    (600, "10m"),
    (179 * 60, "179m"),
    (3 * 3600, "3h"),
    (3 * 3600 + 25 * 60, "3h25m"),
    (8 * 3600, "8h"),
    (47 * 3600 + 59 * 60, "47h"),
    (48 * 3600, "2d"),
    (53 * 3600, "2d5h"),
    (8 * 86400, "8d"),
    (729 * 86400, "729d"),
    (730 * 86400, "2y"),
    (735 * 86400, "2y5d"),
    (8 * 365 * 86400, "8y"),
]


@pytest.mark.parametrize(("seconds", "text"), DURATIONS, ids=[str(d[0]) for d in DURATIONS])
def test_human_duration(seconds: float, text: str) -> None:
    assert human_duration(seconds) == text


def _names(resource: str, group: str) -> list[tuple[str, int]]:
    return [(c["name"], c["priority"]) for c in columns(resource, group)]


def test_pod_columns() -> None:
    cols = columns("pods", "")
    assert cols[0]["name"] == "Name" and cols[0]["format"] == "name"
    assert cols[0]["description"].startswith("Name must be unique within a namespace.")
    assert _names("pods", "") == [
        ("Name", 0),
        ("Ready", 0),
        ("Status", 0),
        ("Restarts", 0),
        ("Age", 0),
        ("IP", 1),
        ("Node", 1),
        ("Nominated Node", 1),
        ("Readiness Gates", 1),
    ]
    assert all(set(c) == {"name", "type", "format", "description", "priority"} for c in cols)


COLUMN_SETS = [
    (
        "deployments",
        "apps",
        ["Name", "Ready", "Up-to-date", "Available", "Age", "Containers", "Images", "Selector"],
    ),
    (
        "replicasets",
        "apps",
        ["Name", "Desired", "Current", "Ready", "Age", "Containers", "Images", "Selector"],
    ),
    (
        "daemonsets",
        "apps",
        [
            "Name",
            "Desired",
            "Current",
            "Ready",
            "Up-to-date",
            "Available",
            "Node Selector",
            "Age",
            "Containers",
            "Images",
            "Selector",
        ],
    ),
    ("statefulsets", "apps", ["Name", "Ready", "Age", "Containers", "Images"]),
    ("services", "", ["Name", "Type", "Cluster-IP", "External-IP", "Port(s)", "Age", "Selector"]),
    (
        "nodes",
        "",
        [
            "Name",
            "Status",
            "Roles",
            "Age",
            "Version",
            "Internal-IP",
            "External-IP",
            "OS-Image",
            "Kernel-Version",
            "Container-Runtime",
        ],
    ),
    (
        "events",
        "",
        [
            "Last Seen",
            "Type",
            "Reason",
            "Object",
            "Subobject",
            "Source",
            "Message",
            "First Seen",
            "Count",
            "Name",
        ],
    ),
    (
        "events",
        "events.k8s.io",
        [
            "Last Seen",
            "Type",
            "Reason",
            "Object",
            "Subobject",
            "Source",
            "Message",
            "First Seen",
            "Count",
            "Name",
        ],
    ),
    (
        "jobs",
        "batch",
        ["Name", "Status", "Completions", "Duration", "Age", "Containers", "Images", "Selector"],
    ),
    (
        "cronjobs",
        "batch",
        [
            "Name",
            "Schedule",
            "Timezone",
            "Suspend",
            "Active",
            "Last Schedule",
            "Age",
            "Containers",
            "Images",
            "Selector",
        ],
    ),
    (
        "priorityclasses",
        "scheduling.k8s.io",
        ["Name", "Value", "Global-Default", "Age", "PreemptionPolicy"],
    ),
    ("endpointslices", "discovery.k8s.io", ["Name", "AddressType", "Ports", "Endpoints", "Age"]),
    ("widgets", "example.com", ["Name", "Created At"]),
]


@pytest.mark.parametrize(
    ("resource", "group", "names"), COLUMN_SETS, ids=[f"{c[1]}/{c[0]}" for c in COLUMN_SETS]
)
def test_column_sets(resource: str, group: str, names: list[str]) -> None:
    assert [c["name"] for c in columns(resource, group)] == names
    assert has_table(resource, group) is (resource != "widgets")


def _pod(status: dict[str, Any], spec: dict[str, Any] | None = None, **meta: Any) -> dict[str, Any]:
    return {
        "metadata": {**META, "name": "web", **meta},
        "spec": spec or {"containers": [{"name": "c"}], "nodeName": "n1"},
        "status": status,
    }


RUNNING = {"running": {"startedAt": "2025-01-10T11:56:00Z"}}
POD_CASES: list[tuple[str, dict[str, Any], list[Any]]] = [
    (
        "running",
        _pod(
            {
                "phase": "Running",
                "podIP": "10.0.0.5",
                "containerStatuses": [
                    {"name": "c", "ready": True, "restartCount": 0, "state": RUNNING}
                ],
            }
        ),
        ["web", "1/1", "Running", "0", "5m", "10.0.0.5", "n1", "<none>", "<none>"],
    ),
    (
        "pending-unscheduled",
        _pod({"phase": "Pending"}, {"containers": [{"name": "a"}, {"name": "b"}]}),
        ["web", "0/2", "Pending", "0", "5m", "<none>", "<none>", "<none>", "<none>"],
    ),
    (
        "crashloop-with-restarts",
        _pod(
            {
                "phase": "Running",
                "containerStatuses": [
                    {
                        "name": "c",
                        "ready": False,
                        "restartCount": 2,
                        "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                        "lastState": {
                            "terminated": {"exitCode": 1, "finishedAt": "2025-01-10T11:57:00Z"}
                        },
                    }
                ],
            }
        ),
        ["web", "0/1", "CrashLoopBackOff", "2 (3m ago)", "5m", "<none>", "n1", "<none>", "<none>"],
    ),
    (
        "completed",
        _pod(
            {
                "phase": "Succeeded",
                "containerStatuses": [
                    {
                        "name": "c",
                        "ready": False,
                        "restartCount": 0,
                        "state": {"terminated": {"exitCode": 0, "reason": "Completed"}},
                    }
                ],
            }
        ),
        ["web", "0/1", "Completed", "0", "5m", "<none>", "n1", "<none>", "<none>"],
    ),
    (
        "exit-code-without-reason",
        _pod(
            {
                "phase": "Failed",
                "containerStatuses": [{"name": "c", "state": {"terminated": {"exitCode": 3}}}],
            }
        ),
        ["web", "0/1", "ExitCode:3", "0", "5m", "<none>", "n1", "<none>", "<none>"],
    ),
    (
        "init-waiting",
        _pod(
            {
                "phase": "Pending",
                "initContainerStatuses": [
                    {"name": "i", "state": {"waiting": {"reason": "PodInitializing"}}}
                ],
            },
            {"initContainers": [{"name": "i"}], "containers": [{"name": "c"}]},
        ),
        ["web", "0/1", "Init:0/1", "0", "5m", "<none>", "<none>", "<none>", "<none>"],
    ),
    (
        "init-crash",
        _pod(
            {
                "phase": "Pending",
                "initContainerStatuses": [
                    {
                        "name": "i",
                        "restartCount": 1,
                        "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                    }
                ],
            },
            {"initContainers": [{"name": "i"}], "containers": [{"name": "c"}]},
        ),
        ["web", "0/1", "Init:CrashLoopBackOff", "1", "5m", "<none>", "<none>", "<none>", "<none>"],
    ),
    (
        "sidecar-counts-as-container",
        _pod(
            {
                "phase": "Running",
                "conditions": [{"type": "Initialized", "status": "True"}],
                "initContainerStatuses": [
                    {"name": "side", "started": True, "ready": True, "state": RUNNING}
                ],
                "containerStatuses": [{"name": "c", "ready": True, "state": RUNNING}],
            },
            {
                "initContainers": [{"name": "side", "restartPolicy": "Always"}],
                "containers": [{"name": "c"}],
            },
        ),
        ["web", "2/2", "Running", "0", "5m", "<none>", "<none>", "<none>", "<none>"],
    ),
    (
        "terminating",
        _pod(
            {
                "phase": "Running",
                "containerStatuses": [{"name": "c", "ready": True, "state": RUNNING}],
            },
            deletionTimestamp="2025-01-10T11:59:00Z",
        ),
        ["web", "1/1", "Terminating", "0", "5m", "<none>", "n1", "<none>", "<none>"],
    ),
    (
        "scheduling-gated-and-readiness-gates",
        _pod(
            {
                "phase": "Pending",
                "conditions": [
                    {"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"},
                    {"type": "example.com/ok", "status": "True"},
                ],
            },
            {
                "containers": [{"name": "c"}],
                "readinessGates": [
                    {"conditionType": "example.com/ok"},
                    {"conditionType": "example.com/other"},
                ],
            },
        ),
        ["web", "0/1", "SchedulingGated", "0", "5m", "<none>", "<none>", "<none>", "1/2"],
    ),
]


@pytest.mark.parametrize(
    ("pod", "cells"), [c[1:] for c in POD_CASES], ids=[c[0] for c in POD_CASES]
)
def test_pod_rows(pod: dict[str, Any], cells: list[Any]) -> None:
    assert row("pods", "", pod, NOW) == cells


def test_pod_row_conditions() -> None:
    done = row_conditions("pods", "", {"status": {"phase": "Succeeded"}})
    assert done == [
        {
            "type": "Completed",
            "status": "True",
            "reason": "Succeeded",
            "message": "The pod has completed successfully.",
        }
    ]
    assert row_conditions("pods", "", {"status": {"phase": "Running"}}) is None


TEMPLATE = {
    "metadata": {"labels": {"app": "web"}},
    "spec": {"containers": [{"name": "a", "image": "nginx"}, {"name": "b", "image": "redis:7"}]},
}
SELECTOR = {"matchLabels": {"app": "web"}}
ROW_CASES: list[tuple[str, str, str, dict[str, Any], list[Any]]] = [
    (
        "deployment",
        "deployments",
        "apps",
        {
            "metadata": META,
            "spec": {"replicas": 3, "selector": SELECTOR, "template": TEMPLATE},
            "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2},
        },
        ["x", "2/3", 3, 2, "5m", "a,b", "nginx,redis:7", "app=web"],
    ),
    (
        "replicaset",
        "replicasets",
        "apps",
        {
            "metadata": META,
            "spec": {"replicas": 2, "selector": SELECTOR, "template": TEMPLATE},
            "status": {"replicas": 2},
        },
        ["x", 2, 2, 0, "5m", "a,b", "nginx,redis:7", "app=web"],
    ),
    (
        "replicationcontroller",
        "replicationcontrollers",
        "",
        {
            "metadata": META,
            "spec": {"replicas": 1, "selector": {"app": "web"}, "template": TEMPLATE},
            "status": {"replicas": 1, "readyReplicas": 1},
        },
        ["x", 1, 1, 1, "5m", "a,b", "nginx,redis:7", "app=web"],
    ),
    (
        "daemonset",
        "daemonsets",
        "apps",
        {
            "metadata": META,
            "spec": {
                "selector": SELECTOR,
                "template": {
                    "spec": {
                        "nodeSelector": {"os": "linux"},
                        "containers": [{"name": "a", "image": "i"}],
                    }
                },
            },
            "status": {
                "desiredNumberScheduled": 3,
                "currentNumberScheduled": 3,
                "numberReady": 2,
                "updatedNumberScheduled": 3,
                "numberAvailable": 2,
            },
        },
        ["x", 3, 3, 2, 3, 2, "os=linux", "5m", "a", "i", "app=web"],
    ),
    (
        "statefulset",
        "statefulsets",
        "apps",
        {
            "metadata": META,
            "spec": {"replicas": 3, "template": TEMPLATE},
            "status": {"readyReplicas": 1},
        },
        ["x", "1/3", "5m", "a,b", "nginx,redis:7"],
    ),
    (
        "service-clusterip",
        "services",
        "",
        {
            "metadata": META,
            "spec": {
                "type": "ClusterIP",
                "clusterIP": "10.96.0.1",
                "clusterIPs": ["10.96.0.1"],
                "ports": [{"port": 443, "protocol": "TCP"}],
                "selector": {"app": "web"},
            },
        },
        ["x", "ClusterIP", "10.96.0.1", "<none>", "443/TCP", "5m", "app=web"],
    ),
    (
        "service-nodeport",
        "services",
        "",
        {
            "metadata": META,
            "spec": {
                "type": "NodePort",
                "clusterIPs": ["10.96.0.9"],
                "ports": [
                    {"port": 80, "nodePort": 30080, "protocol": "TCP"},
                    {"port": 53, "protocol": "UDP"},
                ],
            },
        },
        ["x", "NodePort", "10.96.0.9", "<none>", "80:30080/TCP,53/UDP", "5m", "<none>"],
    ),
    (
        "service-loadbalancer-pending",
        "services",
        "",
        {"metadata": META, "spec": {"type": "LoadBalancer", "clusterIP": "None"}},
        ["x", "LoadBalancer", "None", "<pending>", "<none>", "5m", "<none>"],
    ),
    (
        "service-externalname",
        "services",
        "",
        {"metadata": META, "spec": {"type": "ExternalName", "externalName": "db.example.com"}},
        ["x", "ExternalName", "<none>", "db.example.com", "<none>", "5m", "<none>"],
    ),
    (
        "endpoints",
        "endpoints",
        "",
        {
            "metadata": META,
            "subsets": [
                {
                    "addresses": [
                        {"ip": "10.0.0.1"},
                        {"ip": "10.0.0.2"},
                        {"ip": "10.0.0.3"},
                        {"ip": "fd00::4"},
                    ],
                    "ports": [{"port": 80}],
                }
            ],
        },
        ["x", "10.0.0.1:80,10.0.0.2:80,10.0.0.3:80 + 1 more...", "5m"],
    ),
    ("endpoints-empty", "endpoints", "", {"metadata": META}, ["x", "<none>", "5m"]),
    (
        "endpointslice",
        "endpointslices",
        "discovery.k8s.io",
        {
            "metadata": META,
            "addressType": "IPv4",
            "ports": [{"port": 80}, {"name": "dns"}],
            "endpoints": [{"addresses": ["10.0.0.1"]}],
        },
        ["x", "IPv4", "80,dns", "10.0.0.1", "5m"],
    ),
    (
        "endpointslice-empty",
        "endpointslices",
        "discovery.k8s.io",
        {"metadata": META, "addressType": "IPv4"},
        ["x", "IPv4", "<unset>", "<unset>", "5m"],
    ),
    (
        "node",
        "nodes",
        "",
        {
            "metadata": {
                **META,
                "labels": {
                    "node-role.kubernetes.io/control-plane": "",
                    "kubernetes.io/role": "worker",
                },
            },
            "spec": {"unschedulable": True},
            "status": {
                "conditions": [
                    {"type": "MemoryPressure", "status": "False"},
                    {"type": "Ready", "status": "True"},
                ],
                "addresses": [
                    {"type": "InternalIP", "address": "192.168.1.2"},
                    {"type": "Hostname", "address": "n1"},
                ],
                "nodeInfo": {
                    "kubeletVersion": "v1.32.0",
                    "osImage": "Debian",
                    "kernelVersion": "6.1",
                    "containerRuntimeVersion": "corral://0.1",
                },
            },
        },
        [
            "x",
            "Ready,SchedulingDisabled",
            "control-plane,worker",
            "5m",
            "v1.32.0",
            "192.168.1.2",
            "<none>",
            "Debian",
            "6.1",
            "corral://0.1",
        ],
    ),
    (
        "node-unknown",
        "nodes",
        "",
        {"metadata": META},
        [
            "x",
            "Unknown",
            "<none>",
            "5m",
            "",
            "<none>",
            "<none>",
            "<unknown>",
            "<unknown>",
            "<unknown>",
        ],
    ),
    (
        "namespace",
        "namespaces",
        "",
        {"metadata": META, "status": {"phase": "Active"}},
        ["x", "Active", "5m"],
    ),
    (
        "configmap",
        "configmaps",
        "",
        {"metadata": META, "data": {"a": "1", "b": "2"}, "binaryData": {"c": ""}},
        ["x", 3, "5m"],
    ),
    (
        "secret",
        "secrets",
        "",
        {"metadata": META, "type": "Opaque", "data": {"a": "MQ=="}},
        ["x", "Opaque", 1, "5m"],
    ),
    ("serviceaccount", "serviceaccounts", "", {"metadata": META}, ["x", 0, "5m"]),
    (
        "job-complete",
        "jobs",
        "batch",
        {
            "metadata": META,
            "spec": {
                "completions": 1,
                "parallelism": 1,
                "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "u1"}},
                "template": TEMPLATE,
            },
            "status": {
                "succeeded": 1,
                "startTime": "2025-01-10T11:55:00Z",
                "completionTime": "2025-01-10T11:55:42Z",
                "conditions": [{"type": "Complete", "status": "True"}],
            },
        },
        [
            "x",
            "Complete",
            "1/1",
            "42s",
            "5m",
            "a,b",
            "nginx,redis:7",
            "batch.kubernetes.io/controller-uid=u1",
        ],
    ),
    (
        "job-running-parallel",
        "jobs",
        "batch",
        {
            "metadata": META,
            "spec": {"parallelism": 3, "template": TEMPLATE},
            "status": {"startTime": "2025-01-10T11:56:00Z"},
        },
        ["x", "Running", "0/1 of 3", "4m", "5m", "a,b", "nginx,redis:7", "<none>"],
    ),
    (
        "job-not-started",
        "jobs",
        "batch",
        {
            "metadata": META,
            "spec": {"completions": 5, "suspend": True, "template": TEMPLATE},
            "status": {"conditions": [{"type": "Suspended", "status": "True"}]},
        },
        ["x", "Suspended", "0/5", "", "5m", "a,b", "nginx,redis:7", "<none>"],
    ),
    (
        "cronjob",
        "cronjobs",
        "batch",
        {
            "metadata": META,
            "spec": {
                "schedule": "*/1 * * * *",
                "suspend": False,
                "jobTemplate": {"spec": {"template": TEMPLATE}},
            },
            "status": {"active": [{"name": "j1"}], "lastScheduleTime": "2025-01-10T11:59:00Z"},
        },
        ["x", "*/1 * * * *", "<none>", "False", 1, "60s", "5m", "a,b", "nginx,redis:7", "<none>"],
    ),
    (
        "cronjob-never-ran",
        "cronjobs",
        "batch",
        {
            "metadata": META,
            "spec": {
                "schedule": "@daily",
                "timeZone": "Etc/UTC",
                "jobTemplate": {"spec": {"template": TEMPLATE}},
            },
        },
        ["x", "@daily", "Etc/UTC", "<unset>", 0, "<none>", "5m", "a,b", "nginx,redis:7", "<none>"],
    ),
    (
        "event-core",
        "events",
        "",
        {
            "metadata": {**META, "name": "web.17a"},
            "involvedObject": {"kind": "Pod", "name": "web", "fieldPath": "spec.containers{c}"},
            "reason": "Pulled",
            "message": "Successfully pulled image \n",
            "type": "Normal",
            "source": {"component": "kubelet", "host": "n1"},
            "firstTimestamp": "2025-01-10T11:50:00Z",
            "lastTimestamp": "2025-01-10T11:58:00Z",
            "count": 4,
        },
        [
            "2m",
            "Normal",
            "Pulled",
            "pod/web",
            "spec.containers{c}",
            "kubelet, n1",
            "Successfully pulled image",
            "10m",
            4,
            "web.17a",
        ],
    ),
    (
        "event-core-new-style",
        "events",
        "",
        {
            "metadata": {**META, "name": "e"},
            "involvedObject": {"kind": "Node"},
            "reason": "Starting",
            "type": "Normal",
            "eventTime": "2025-01-10T11:59:30.000000Z",
            "reportingComponent": "corral-agent",
        },
        ["30s", "Normal", "Starting", "node", "", "corral-agent", "", "30s", 1, "e"],
    ),
    (
        "event-events-k8s-io",
        "events",
        "events.k8s.io",
        {
            "metadata": {**META, "name": "e2"},
            "regarding": {"kind": "Deployment", "name": "web"},
            "reason": "ScalingReplicaSet",
            "note": "Scaled up",
            "type": "Normal",
            "eventTime": "2025-01-10T11:00:00.000000Z",
            "series": {"count": 7, "lastObservedTime": "2025-01-10T11:59:00.000000Z"},
            "reportingController": "deployment-controller",
            "reportingInstance": "corral",
        },
        [
            "60s",
            "Normal",
            "ScalingReplicaSet",
            "deployment/web",
            "",
            "deployment-controller, corral",
            "Scaled up",
            "60m",
            7,
            "e2",
        ],
    ),
    (
        "lease",
        "leases",
        "coordination.k8s.io",
        {"metadata": META, "spec": {"holderIdentity": "n1"}},
        ["x", "n1", "5m"],
    ),
    (
        "lease-free",
        "leases",
        "coordination.k8s.io",
        {"metadata": META, "spec": {}},
        ["x", "", "5m"],
    ),
    (
        "controllerrevision",
        "controllerrevisions",
        "apps",
        {
            "metadata": {
                **META,
                "ownerReferences": [
                    {"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "ds", "controller": True}
                ],
            },
            "revision": 2,
        },
        ["x", "daemonset.apps/ds", 2, "5m"],
    ),
    (
        "apiservice",
        "apiservices",
        "apiregistration.k8s.io",
        {
            "metadata": {"name": "v1beta1.metrics.k8s.io", "creationTimestamp": CREATED},
            "spec": {
                "service": {"namespace": "kube-system", "name": "metrics-server", "port": 443}
            },
            "status": {
                "conditions": [
                    {"type": "Available", "status": "False", "reason": "MissingEndpoints"}
                ]
            },
        },
        ["v1beta1.metrics.k8s.io", "kube-system/metrics-server", "False (MissingEndpoints)", "5m"],
    ),
    (
        "priorityclass",
        "priorityclasses",
        "scheduling.k8s.io",
        {
            "metadata": META,
            "value": 2000000000,
            "globalDefault": False,
            "preemptionPolicy": "PreemptLowerPriority",
        },
        ["x", 2000000000, False, "5m", "PreemptLowerPriority"],
    ),
    (
        "default-convertor",
        "widgets",
        "example.com",
        {"metadata": META},
        ["x", "2025-01-10T11:55:00Z"],
    ),
    ("no-creation-timestamp", "configmaps", "", {"metadata": {"name": "x"}}, ["x", 0, "<unknown>"]),
]


@pytest.mark.parametrize(
    ("resource", "group", "obj", "cells"), [c[1:] for c in ROW_CASES], ids=[c[0] for c in ROW_CASES]
)
def test_rows(resource: str, group: str, obj: dict[str, Any], cells: list[Any]) -> None:
    got = row(resource, group, obj, NOW)
    assert got == cells
    assert len(got) == len(columns(resource, group))
