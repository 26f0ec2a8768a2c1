"""Chronos end to end: ``chronos-python`` (unmodified) against ``corral chronos``, a
framework on the Mesos master, its runs as pods on a real ``process`` agent."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

chronos = pytest.importorskip("chronos", reason="chronos-python: pip install -e '.[test]'")

from corral.testing.mesos import MesosCluster, mesos_cluster, wait  # noqa: E402
from corral.testing.process import free_port  # noqa: E402

pytestmark = [
    pytest.mark.timeout(240),
    # pymesos-free, but chronos-python's httplib2 clients drop their sockets unclosed
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[MesosCluster, str]]:
    port = free_port()
    base = tmp_path_factory.mktemp("chronos")
    with mesos_cluster(base, runtimes=("process",), extra=["--chronos-port", str(port)]) as c:
        where = f"127.0.0.1:{port}"
        wait(lambda: _ping(where), "the Chronos API", 30)
        yield c, where


def _ping(where: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://{where}/ping", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def _client(where: str) -> Any:
    return chronos.connect(where)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _job(name: str, **fields: Any) -> dict[str, Any]:
    return {
        "name": name,
        "command": "true",
        "owner": "ops@example.com",
        "disabled": False,
        "cpus": 0.05,
        "mem": 32,
        "disk": 0,
        **fields,
    }


def _get(client: Any, name: str) -> dict[str, Any]:
    return next(j for j in client.list() if j["name"] == name)


def test_the_client_api(cluster: tuple[MesosCluster, str]) -> None:
    _, where = cluster
    c = _client(where)
    c.add(_job("api-a", schedule="R/2030-01-01T00:00:00Z/PT1H", description="nightly etl"))
    c.add(_job("api-b", parents=["api-a"], command="echo child"))
    names = {j["name"] for j in c.list()}
    assert {"api-a", "api-b"} <= names
    assert [j["name"] for j in c.search(name="API-A")] == ["api-a"]
    assert [j["name"] for j in c.search(command="echo child")] == ["api-b"]
    job = _get(c, "api-a")
    assert job["schedule"].startswith("R/2030-01-01T00:00:00")
    assert job["lastSuccess"] == "" and job["lastError"] == ""
    c.update(_job("api-a", schedule="R/2031-01-01T00:00:00Z/PT2H"))
    assert "2031" in _get(c, "api-a")["schedule"]
    graph = c.scheduler_graph()
    assert "link,api-a,api-b" in graph
    for which in ("99th", "98th", "95th", "75th", "median", "mean"):
        assert isinstance(getattr(c, f"scheduler_stat_{which}")(), list)
    assert "counters" in c.metrics()
    assert set(c.job_stat("api-a")) == {"histogram", "taskStatHistory"}
    c.delete("api-b")
    c.delete("api-a")
    assert not {"api-a", "api-b"} & {j["name"] for j in c.list()}


def test_bad_jobs_are_refused(
    cluster: tuple[MesosCluster, str], caplog: pytest.LogCaptureFixture
) -> None:
    _, where = cluster
    c = _client(where)
    caplog.set_level(logging.ERROR, logger="chronos")
    for bad in (
        _job("bad-schedule", schedule="R/not-a-date/PT1H"),
        _job("orphan", parents=["no-such-parent"]),
    ):
        with pytest.raises(chronos.ChronosAPIError):
            c.add(bad)
    text = caplog.text
    assert "Cannot parse schedule" in text
    assert "no-such-parent" in text
    assert not {"bad-schedule", "orphan"} & {j["name"] for j in c.list()}


def test_a_job_every_2s_runs_and_counts_successes(cluster: tuple[MesosCluster, str]) -> None:
    mc, where = cluster
    c = _client(where)
    start = datetime.now(UTC).timestamp() + 1
    c.add(_job("tick", schedule=f"R/{_iso(start)}/PT2S"))
    try:
        wait(lambda: _get(c, "tick")["successCount"] >= 3, "three successful runs", 60)
        job = _get(c, "tick")
        assert job["errorCount"] == 0
        assert job["lastSuccess"]
        stat = c.job_stat("tick")
        assert len(stat["taskStatHistory"]) >= 3
        pods = [
            p
            for p in mc.task_pods()
            if "ct:" in p["metadata"]["annotations"].get("mesos.corral.dev/task-id", "")
        ]
        assert pods, "each run is a pod"
    finally:
        c.delete("tick")


def test_a_chain_runs_in_order_and_failures_are_retried(cluster: tuple[MesosCluster, str]) -> None:
    _, where = cluster
    c = _client(where)
    c.add(_job("chain-a", schedule="R/2030-01-01T00:00:00Z/P1D", command="echo a"))
    c.add(_job("chain-b", parents=["chain-a"], command="echo b"))
    c.add(_job("chain-c", parents=["chain-b"], command="echo c"))
    c.add(_job("flaky", schedule="R/2030-01-01T00:00:00Z/P1D", command="exit 1", retries=2))
    try:
        c.run("chain-a")
        c.run("flaky")
        wait(lambda: _get(c, "chain-c")["successCount"] == 1, "the chain to finish", 60)
        a, b, cc = (_get(c, n)["lastSuccess"] for n in ("chain-a", "chain-b", "chain-c"))
        assert a < b < cc
        wait(lambda: _get(c, "flaky")["errorCount"] == 1, "the flaky job's error", 60)
        stat = c.job_stat("flaky")
        assert len(stat["taskStatHistory"]) == 1  # one error after 3 attempts
        assert _get(c, "flaky")["successCount"] == 0
    finally:
        for n in ("chain-c", "chain-b", "chain-a", "flaky"):
            c.delete(n)


def test_run_now_with_threads(cluster: tuple[MesosCluster, str]) -> None:
    """Several clients at once (chronos-python is synchronous) do not lose a job."""
    _, where = cluster
    errors: list[BaseException] = []

    def add(i: int) -> None:
        try:
            _client(where).add(_job(f"many-{i}", schedule="R/2030-01-01T00:00:00Z/P1D"))
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=add, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    c = _client(where)
    assert {f"many-{i}" for i in range(8)} <= {j["name"] for j in c.list()}
    for i in range(8):
        c.delete(f"many-{i}")


def test_corral_why_job(cluster: tuple[MesosCluster, str]) -> None:
    import subprocess
    import sys

    _, where = cluster
    c = _client(where)
    c.add(_job("why-parent", schedule="R/2030-01-01T00:00:00Z/P1D"))
    c.add(_job("why-child", parents=["why-parent"]))
    try:
        out = subprocess.run(
            [sys.executable, "-m", "corral", "why", "job/why-child", "--chronos", where],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert out.returncode == 0, out.stderr
        assert "why-parent" in out.stdout
        out = subprocess.run(
            [sys.executable, "-m", "corral", "why", "job/why-parent", "--chronos", where],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert "next slot is 2030-01-01" in out.stdout
        missing = subprocess.run(
            [sys.executable, "-m", "corral", "why", "job/nope", "--chronos", where],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert missing.returncode == 1 and "not found" in missing.stderr
    finally:
        c.delete("why-child")
        c.delete("why-parent")
