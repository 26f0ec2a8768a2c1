"""The workload controllers with real pods: a real server (scheduler and controller
manager) and one real ``corral agent --runtime process``, driven with the real kubectl.

Deployments (rollout, rolling update, scale, undo), Jobs (completion and back-off
failure), a DaemonSet, a StatefulSet (ordered start, a deleted pod comes back under its
name), a ReplicationController, and a ReplicaSet adopting a bare pod. The process runtime
runs the container command on the host (no image pull), so the pods run host binaries:
``/bin/busybox``, ``sh``. CronJobs are left to their fake-clock unit tests: a real
schedule needs a real minute.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from e2ekit import Cluster, Obj, running_cluster

BUSYBOX = shutil.which("busybox") or "/bin/busybox"
SLEEP = [BUSYBOX, "sleep", "3600"]
WORKLOADS = "deployments,replicasets,replicationcontrollers,statefulsets,daemonsets,jobs"

pytestmark = pytest.mark.skipif(
    not os.path.exists(BUSYBOX) or shutil.which("kubectl") is None,
    reason="needs kubectl and busybox on the host (the process runtime runs host binaries)",
)


def running(pod: Obj) -> bool:
    st = pod.get("status") or {}
    states = [cs.get("state") or {} for cs in st.get("containerStatuses") or []]
    return st.get("phase") == "Running" and bool(states) and all("running" in s for s in states)


def ready(pod: Obj) -> bool:
    conds = (pod.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conds)


def controller_of(obj: Obj) -> Obj | None:
    for ref in obj["metadata"].get("ownerReferences") or []:
        if ref.get("controller"):
            return dict(ref)
    return None


def template(labels: dict[str, str], command: list[str], **spec: Any) -> Obj:
    return {
        "metadata": {"labels": labels},
        "spec": {
            "containers": [{"name": "main", "image": "busybox", "command": command}],
            "terminationGracePeriodSeconds": 2,
            **spec,
        },
    }


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    base = tmp_path_factory.mktemp("ctl-pods")
    with running_cluster(base, "process", "ctl", controllers=True, workloads=WORKLOADS) as cluster:
        yield cluster


# --- Deployment ----------------------------------------------------------------------------


def test_deployment_rolls_out_updates_scales_and_undoes(cluster: Cluster) -> None:
    ns = cluster.ns()
    k = cluster.kubectl
    deploy = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "template": template({"app": "web"}, SLEEP),
        },
    }
    cluster.apply(ns, deploy)
    k("rollout", "status", "deployment/web", "-n", ns, "--timeout=60s", timeout=70)
    pods = cluster.live_pods(ns, "app=web")
    assert len(pods) == 3 and all(running(p) and ready(p) for p in pods), pods
    out = k("exec", pods[0]["metadata"]["name"], "-n", ns, "--", "sh", "-c", "echo in-pod").stdout
    assert out.strip() == "in-pod"

    # a new command is a new template: a rolling update to completion
    new_cmd = [BUSYBOX, "sleep", "3601"]
    patch = [
        {"op": "replace", "path": "/spec/template/spec/containers/0/command", "value": new_cmd}
    ]
    k("patch", "deployment", "web", "-n", ns, "--type=json", "-p", json.dumps(patch))
    k("rollout", "status", "deployment/web", "-n", ns, "--timeout=60s", timeout=70)

    def updated(cmd: list[str], n: int) -> Callable[[], bool]:
        def check() -> bool:
            pods = cluster.live_pods(ns, "app=web")
            return len(pods) == n and all(
                running(p) and p["spec"]["containers"][0]["command"] == cmd for p in pods
            )

        return check

    cluster.wait("3 pods with the new command", updated(new_cmd, 3))
    sets = cluster.get(ns, "replicasets")["items"]
    assert sorted(rs["spec"]["replicas"] for rs in sets) == [0, 3]

    k("scale", "deployment/web", "-n", ns, "--replicas=1")
    cluster.wait("1 pod left", updated(new_cmd, 1))
    k("rollout", "status", "deployment/web", "-n", ns, "--timeout=60s", timeout=70)

    k("rollout", "undo", "deployment/web", "-n", ns)
    k("rollout", "status", "deployment/web", "-n", ns, "--timeout=60s", timeout=70)
    cluster.wait("back to the first command", updated(SLEEP, 1))


# --- Job -------------------------------------------------------------------------------------


def job(name: str, script: str, **spec: Any) -> Obj:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "template": template({}, ["sh", "-c", script], restartPolicy="Never"),
            **spec,
        },
    }


def test_jobs_complete_and_fail_after_backoff_limit(cluster: Cluster) -> None:
    ns = cluster.ns()
    k = cluster.kubectl
    # backoffLimit 0: its one failed pod fails the Job at once (a second pod would first
    # wait out the 10 s pod-failure back-off: tests/unit/controllers/test_job.py's
    # test_failed_pods_back_off_then_backoff_limit and tests/integration/test_jobs.py)
    cluster.apply(ns, job("fails", "exit 1", backoffLimit=0))
    cluster.apply(ns, job("ok", "echo done", completions=3, parallelism=2))
    k("wait", "--for=condition=complete", "job/ok", "-n", ns, "--timeout=60s", timeout=70)
    ok = cluster.get(ns, "job/ok")
    assert ok["status"]["succeeded"] == 3 and not ok["status"].get("failed")
    pods = cluster.pods(ns, "job-name=ok")
    assert len(pods) == 3
    assert all(p["status"]["phase"] == "Succeeded" for p in pods)
    assert not any(p["metadata"].get("finalizers") for p in pods)  # tracking finalizer off
    assert k("logs", pods[0]["metadata"]["name"], "-n", ns).stdout.strip() == "done"

    k("wait", "--for=condition=failed", "job/fails", "-n", ns, "--timeout=60s", timeout=70)
    failed = cluster.get(ns, "job/fails")
    conds = {c["type"]: c for c in failed["status"]["conditions"]}
    assert conds["Failed"]["status"] == "True"
    assert conds["Failed"]["reason"] == "BackoffLimitExceeded"
    assert failed["status"]["failed"] == 1
    assert all(p["status"]["phase"] == "Failed" for p in cluster.pods(ns, "job-name=fails"))


# --- DaemonSet -----------------------------------------------------------------------------


def test_daemonset_runs_one_pod_on_the_node(cluster: Cluster) -> None:
    ns = cluster.ns()
    ds = {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": "agent"},
        "spec": {
            "selector": {"matchLabels": {"app": "daemon"}},
            "template": template({"app": "daemon"}, SLEEP),
        },
    }
    cluster.apply(ns, ds)
    cluster.kubectl("rollout", "status", "ds/agent", "-n", ns, "--timeout=60s", timeout=70)
    pods = cluster.live_pods(ns, "app=daemon")
    assert len(pods) == 1
    assert pods[0]["spec"]["nodeName"] == cluster.agent.name
    cluster.wait(
        "daemon pod running", lambda: all(map(running, cluster.live_pods(ns, "app=daemon")))
    )
    st = cluster.get(ns, "ds/agent")["status"]
    assert st["desiredNumberScheduled"] == st["numberReady"] == 1


# --- StatefulSet ---------------------------------------------------------------------------


def test_statefulset_starts_in_order_and_keeps_pod_names(cluster: Cluster) -> None:
    ns = cluster.ns()
    sts = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 2,
            "serviceName": "web",
            "selector": {"matchLabels": {"app": "sts"}},
            "template": template({"app": "sts"}, SLEEP),
        },
    }
    cluster.apply(ns, sts)
    seen_second: list[Obj] = []

    def both_ready() -> bool:
        pods = {p["metadata"]["name"]: p for p in cluster.live_pods(ns, "app=sts")}
        if "web-1" in pods and not seen_second:
            # the first snapshot that shows web-1: web-0 is already Running and Ready
            seen_second.append(pods)
            first = pods.get("web-0")
            assert first is not None and running(first) and ready(first), first
        return len(pods) == 2 and all(running(p) and ready(p) for p in pods.values())

    cluster.wait("web-0 and web-1 ready", both_ready)
    pods = {p["metadata"]["name"]: p for p in cluster.live_pods(ns, "app=sts")}
    ready_at = next(c for c in pods["web-0"]["status"]["conditions"] if c["type"] == "Ready")
    assert pods["web-1"]["metadata"]["creationTimestamp"] >= ready_at["lastTransitionTime"]

    old_uid = pods["web-0"]["metadata"]["uid"]
    cluster.kubectl("delete", "pod", "web-0", "-n", ns, timeout=60)

    def recreated() -> bool:
        pods = {p["metadata"]["name"]: p for p in cluster.live_pods(ns, "app=sts")}
        p = pods.get("web-0")
        return p is not None and p["metadata"]["uid"] != old_uid and running(p) and ready(p)

    cluster.wait("web-0 recreated", recreated)
    st = cluster.get(ns, "sts/web")["status"]
    cluster.wait(
        "status counts 2 ready",
        lambda: cluster.get(ns, "sts/web")["status"].get("readyReplicas") == 2,
    )
    assert st["replicas"] == 2


# --- ReplicationController -----------------------------------------------------------------


def test_replicationcontroller_keeps_two_pods(cluster: Cluster) -> None:
    ns = cluster.ns()
    rc = {
        "apiVersion": "v1",
        "kind": "ReplicationController",
        "metadata": {"name": "rc"},
        "spec": {
            "replicas": 2,
            "selector": {"app": "rc"},
            "template": template({"app": "rc"}, SLEEP),
        },
    }
    cluster.apply(ns, rc)

    def two_running() -> bool:
        pods = cluster.live_pods(ns, "app=rc")
        return len(pods) == 2 and all(map(running, pods))

    cluster.wait("2 rc pods running", two_running)
    victim = cluster.live_pods(ns, "app=rc")[0]["metadata"]["name"]
    cluster.kubectl("delete", "pod", victim, "-n", ns, "--wait=false")

    def replaced() -> bool:
        pods = cluster.live_pods(ns, "app=rc")
        names = {p["metadata"]["name"] for p in pods}
        return len(pods) == 2 and victim not in names and all(map(running, pods))

    cluster.wait("the deleted pod replaced", replaced)
    cluster.wait(
        "rc status 2 ready",
        lambda: cluster.get(ns, "rc/rc")["status"].get("readyReplicas") == 2,
    )


# --- adoption ------------------------------------------------------------------------------


def test_replicaset_adopts_a_matching_bare_pod(cluster: Cluster) -> None:
    ns = cluster.ns()
    bare = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "bare", "labels": {"app": "adopt"}},
        "spec": template({}, SLEEP)["spec"],
    }
    cluster.apply(ns, bare)
    cluster.wait("bare pod running", lambda: all(map(running, cluster.live_pods(ns, "app=adopt"))))
    rs = {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": "adopter"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "adopt"}},
            "template": template({"app": "adopt"}, SLEEP),
        },
    }
    cluster.apply(ns, rs)
    rs_uid = cluster.get(ns, "rs/adopter")["metadata"]["uid"]

    def adopted_and_counted() -> bool:
        pods = cluster.live_pods(ns, "app=adopt")
        st = cluster.get(ns, "rs/adopter").get("status") or {}
        return (
            len(pods) == 2
            and all(map(running, pods))
            and all((controller_of(p) or {}).get("uid") == rs_uid for p in pods)
            and st.get("readyReplicas") == 2
        )

    cluster.wait("the bare pod adopted and one pod created", adopted_and_counted)
    pod = cluster.get(ns, "pod/bare")  # the same pod, not a replacement
    ref = controller_of(pod)
    assert ref is not None
    assert (ref["kind"], ref["name"], ref["blockOwnerDeletion"]) == ("ReplicaSet", "adopter", True)
