"""``kubectl top`` with real pods: the agent's ``/metrics/resource`` (runc containers'
cgroup counters), scraped by the metrics server at a 1 s resolution, served as
metrics.k8s.io/v1beta1 through the API server's aggregation layer (APIService
``v1beta1.metrics.k8s.io``), read by the real kubectl 1.32.

One cluster for the module: an idle busybox pod (holding 4 MB) and one burning a CPU; ``top nodes``
shows the node, ``top pods --containers`` both pods with non-zero memory, the burner with
more CPU than the idle one; ``-A`` and ``-l`` select as kubectl's flags say.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from e2ekit import Cluster, pod_manifest, require, running, running_cluster


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    require("oci")
    base = tmp_path_factory.mktemp("top-oci")
    with running_cluster(base, "oci", "top", server_args=["--metric-resolution", "1s"]) as c:
        yield c


@pytest.fixture(scope="module")
def pods(cluster: Cluster) -> str:
    ns = cluster.ns()
    # idle, holding a few MiB (a shell variable) so that kubectl shows more than 0Mi
    hold = "x=$(head -c 4000000 /dev/zero | tr '\\0' a); while :; do sleep 3600; done"
    idle = pod_manifest("idle", cluster.image, ["sh", "-c", hold])
    idle["metadata"]["labels"] = {"role": "idle"}
    burn = pod_manifest("burn", cluster.image, ["sh", "-c", "while :; do :; done"])
    burn["metadata"]["labels"] = {"role": "burn"}
    for p in (idle, burn):
        p["spec"]["terminationGracePeriodSeconds"] = 1
        cluster.apply(ns, p)
    for name in ("idle", "burn"):
        cluster.wait_pod(ns, name, running)
    return ns


def _rows(out: str) -> list[list[str]]:
    return [line.split() for line in out.splitlines()[1:] if line.strip()]


def _top(cluster: Cluster, *args: str, want: int, timeout: float = 20.0) -> list[list[str]]:
    """``kubectl top ARGS`` once it lists ``want`` rows (metrics need two scrapes)."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        res = cluster.kubectl("top", *args, check=False)
        last = res.stdout + res.stderr
        if res.returncode == 0 and len(_rows(res.stdout)) >= want:
            return _rows(res.stdout)
        time.sleep(0.3)
    raise AssertionError(f"kubectl top {' '.join(args)}: {last}")


def _millicores(cell: str) -> int:
    return int(cell.removesuffix("m")) if cell.endswith("m") else int(cell) * 1000


def _mebibytes(cell: str) -> int:
    assert cell.endswith("Mi"), cell
    return int(cell.removesuffix("Mi"))


def test_the_apiservice_is_available(cluster: Cluster) -> None:
    def available() -> bool:
        obj = json.loads(
            cluster.kubectl("get", "apiservice", "v1beta1.metrics.k8s.io", "-o", "json").stdout
        )
        conds = (obj.get("status") or {}).get("conditions") or []
        return any(c["type"] == "Available" and c["status"] == "True" for c in conds)

    cluster.wait("the metrics APIService is Available", available, timeout=20)
    groups = json.loads(cluster.kubectl("get", "--raw", "/apis").stdout)["groups"]
    assert "metrics.k8s.io" in [g["name"] for g in groups]


def test_top_nodes(cluster: Cluster, pods: str) -> None:
    rows = _top(cluster, "nodes", want=1)
    node = json.loads(cluster.kubectl("get", "nodes", "-o", "json").stdout)["items"][0]
    assert rows[0][0] == node["metadata"]["name"]
    assert _millicores(rows[0][1]) > 0
    assert _mebibytes(rows[0][3]) > 0


def test_top_pods_containers_burner_above_idle(cluster: Cluster, pods: str) -> None:
    rows = _top(cluster, "pods", "--containers", "-n", pods, want=2)
    by_pod = {r[0]: r for r in rows}
    assert set(by_pod) == {"idle", "burn"}
    assert by_pod["idle"][1] == "main"
    assert _mebibytes(by_pod["idle"][3]) >= 3
    raw = json.loads(
        cluster.kubectl(
            "get", "--raw", f"/apis/metrics.k8s.io/v1beta1/namespaces/{pods}/pods/idle"
        ).stdout
    )
    assert raw["kind"] == "PodMetrics"
    assert raw["containers"][0]["name"] == "main"
    assert raw["containers"][0]["usage"]["memory"] not in ("0", "")
    assert _millicores(by_pod["burn"][2]) > _millicores(by_pod["idle"][2])
    assert _millicores(by_pod["burn"][2]) >= 100


def test_top_pods_all_namespaces_and_selector(cluster: Cluster, pods: str) -> None:
    rows = _top(cluster, "pods", "-A", want=2)
    assert {(r[0], r[1]) for r in rows} >= {(pods, "idle"), (pods, "burn")}
    rows = _top(cluster, "pods", "-n", pods, "-l", "role=burn", want=1)
    assert [r[0] for r in rows] == ["burn"]
    res = cluster.kubectl(
        "get", "--raw", f"/apis/metrics.k8s.io/v1beta1/namespaces/{pods}/pods/nosuch", check=False
    )
    assert res.returncode != 0
    # metrics-server: no such pod is its pod lister's NotFound (pods without metrics yet
    # answer pods.metrics.k8s.io "NS/NAME", tests/integration/test_metrics_api.py)
    assert 'pods "nosuch" not found' in res.stderr
