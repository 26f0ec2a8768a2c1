"""A HorizontalPodAutoscaler scaling a CPU-burning Deployment up and back down, with real
pods: the runc agent's cgroup counters, scraped by the metrics server every second,
read by the ``horizontalpodautoscaling`` controller through the API server's
aggregation layer (``/apis/metrics.k8s.io``), driven with the real kubectl 1.32.

Time is compressed through the controller manager's flags, as k3s takes them
(``--kube-controller-manager-arg``): the HPA is synced every second, a scale-down takes
the highest recommendation of the last 10 s (upstream: 5 min) and a new pod's CPU is
trusted 10 s after it starts (upstream: 5 min).

The Deployment's pods request 20m CPU and are limited to 100m (so that three burners take
a third of one core, not the machine): each burns its quota until ``/tmp/stop`` exists
(at most 120 s), then sleeps. ``kubectl autoscale --cpu-percent=50 --min=1 --max=3``
scales it up ("above target": hundreds of percent of the request), ``kubectl get hpa``
shows the usage as ``cpu: N%/50%``; once every pod is told to stop (``kubectl exec``
touching the file, in each pod as it appears) it scales back to 1 ("All metrics below
target") after the stabilisation window.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from e2ekit import Cluster, require, running_cluster

pytestmark = pytest.mark.timeout(240)

Obj = dict[str, Any]

HPA_FLAGS = (
    "horizontal-pod-autoscaler-sync-period=1s",
    "horizontal-pod-autoscaler-downscale-stabilization=10s",
    "horizontal-pod-autoscaler-cpu-initialization-period=10s",
)
# burns its CPU quota until /tmp/stop exists (touched by the test, or by the timer)
BURN = "(sleep 120; touch /tmp/stop) & while [ ! -f /tmp/stop ]; do :; done; exec sleep 3600"
UP_REASON = "cpu resource utilization (percentage of request) above target"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    require("oci")
    server_args = ["--metric-resolution", "1s"]
    for flag in HPA_FLAGS:
        server_args += ["--kube-controller-manager-arg", flag]
    with running_cluster(
        tmp_path_factory.mktemp("hpa-oci"),
        "oci",
        "hpa",
        controllers=True,
        workloads="horizontalpodautoscalers,deployments",
        server_args=server_args,
    ) as c:
        yield c


def deployment(image: str) -> Obj:
    container = {
        "name": "main",
        "image": image,
        "command": ["sh", "-c", BURN],
        "resources": {"requests": {"cpu": "20m"}, "limits": {"cpu": "100m"}},
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "burn"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "burn"}},
            "template": {
                "metadata": {"labels": {"app": "burn"}},
                "spec": {"containers": [container], "terminationGracePeriodSeconds": 1},
            },
        },
    }


def hpa_events(cluster: Cluster, ns: str) -> list[Obj]:
    return [
        e
        for e in cluster.get(ns, "events")["items"]
        if e["involvedObject"].get("kind") == "HorizontalPodAutoscaler"
    ]


def rescales(cluster: Cluster, ns: str) -> list[str]:
    """The messages of the HPA's SuccessfulRescale events."""
    return [e["message"] for e in hpa_events(cluster, ns) if e["reason"] == "SuccessfulRescale"]


def describe(cluster: Cluster, ns: str) -> str:
    """What to show when a wait fails: the HPA, its events, the pods' metrics."""
    hpa = cluster.kubectl("get", "hpa", "burn", "-n", ns, "-o", "json", check=False).stdout
    events = [(e["type"], e["reason"], e["message"]) for e in hpa_events(cluster, ns)]
    top = cluster.kubectl("top", "pods", "-n", ns, check=False)
    return f"hpa: {hpa}\nevents: {events}\ntop: {top.stdout}{top.stderr}"


def wait(cluster: Cluster, ns: str, what: str, pred: Callable[[], bool], timeout: float) -> None:
    try:
        cluster.wait(what, pred, timeout=timeout)
    except AssertionError as e:
        raise AssertionError(f"{e}\n{describe(cluster, ns)}") from None


@pytest.mark.slow  # ~10-20 s: `make test-slow` (the suite keeps under 15 min)
def test_hpa_scales_a_cpu_burner_up_and_back_down(cluster: Cluster) -> None:
    ns = cluster.ns()
    cluster.apply(ns, deployment(cluster.image))

    def started() -> bool:
        return bool(cluster.get(ns, "deployment/burn").get("status", {}).get("readyReplicas"))

    cluster.wait("the burner runs", started, timeout=60)
    out = cluster.kubectl(
        "autoscale", "deployment", "burn", "--cpu-percent=50", "--min=1", "--max=3", "-n", ns
    )
    assert out.stdout.strip() == "horizontalpodautoscaler.autoscaling/burn autoscaled"

    # --- up: the one burner uses far more than half its request ---------------------------
    def scaled_up() -> bool:
        hpa = cluster.get(ns, "hpa/burn")
        dep = cluster.get(ns, "deployment/burn")
        desired = int((hpa.get("status") or {}).get("desiredReplicas") or 0)
        return desired > 1 and int(dep["spec"]["replicas"]) > 1

    wait(cluster, ns, "the HPA scales the Deployment up", scaled_up, timeout=90)
    ups = [m for m in rescales(cluster, ns) if m.endswith(f"reason: {UP_REASON}")]
    assert ups, rescales(cluster, ns)
    assert re.fullmatch(r"New size: [23]; reason: " + re.escape(UP_REASON), ups[0]), ups
    hpa = cluster.get(ns, "hpa/burn")
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "burn",
    }
    [current] = hpa["status"]["currentMetrics"]
    assert current["type"] == "Resource"
    assert current["resource"]["name"] == "cpu"
    assert current["resource"]["current"]["averageUtilization"] > 50
    active = {c["type"]: c for c in hpa["status"]["conditions"]}["ScalingActive"]
    assert (active["status"], active["reason"]) == ("True", "ValidMetricFound")

    lines = cluster.kubectl("get", "hpa", "burn", "-n", ns).stdout.splitlines()
    assert lines[0].split()[:3] == ["NAME", "REFERENCE", "TARGETS"]
    row = lines[1].split()
    assert row[:2] == ["burn", "Deployment/burn"]
    assert row[2] == "cpu:" and re.fullmatch(r"\d+%/50%", row[3]), lines
    assert int(row[3].split("%")[0]) > 50, lines
    assert row[4:6] == ["1", "3"], lines

    # --- down: every pod stops burning (each as it appears), then the window passes -------
    stopped: set[str] = set()

    def scaled_down() -> bool:
        for pod in cluster.live_pods(ns, "app=burn"):
            name = pod["metadata"]["name"]
            if name in stopped or (pod.get("status") or {}).get("phase") != "Running":
                continue
            res = cluster.kubectl("exec", name, "-n", ns, "--", "touch", "/tmp/stop", check=False)
            if res.returncode == 0:
                stopped.add(name)
        hpa = cluster.get(ns, "hpa/burn")
        dep = cluster.get(ns, "deployment/burn")
        desired = int((hpa.get("status") or {}).get("desiredReplicas") or 0)
        return desired == 1 and int(dep["spec"]["replicas"]) == 1

    wait(cluster, ns, "the HPA scales the Deployment back down", scaled_down, timeout=90)
    downs = [m for m in rescales(cluster, ns) if m.endswith("reason: All metrics below target")]
    # (a pod that still burnt when the others had stopped may have made it 3 -> 2 -> 1)
    assert downs and downs[-1] == "New size: 1; reason: All metrics below target", downs
    hpa = cluster.get(ns, "hpa/burn")
    assert hpa["status"]["currentMetrics"][0]["resource"]["current"]["averageUtilization"] < 50
    cluster.wait("one pod is left", lambda: len(cluster.live_pods(ns, "app=burn")) == 1)
    lines = cluster.kubectl("get", "hpa", "burn", "-n", ns).stdout.splitlines()
    assert re.fullmatch(r"\d+%/50%", lines[1].split()[3]), lines
