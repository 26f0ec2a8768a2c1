"""pymesos tasks on real agents (``process`` and ``oci``/runc): host-command tasks with
fetched URIs, Docker-image tasks, failures, kills and memory limits, seen as TaskStatus
updates by the framework and as pods by kubectl."""

from __future__ import annotations

import http.server
import io
import json
import tarfile
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from e2ekit import RUNTIMES, Cluster, require, running_cluster

pytest.importorskip("pymesos", reason="pymesos: run scripts/pymesos-deps.sh")

from corral.testing.mesos import OPEN, Framework, wait
from corral.testing.process import free_port

# pymesos 0.3.15 drops sockets without closing them (its call connection after errors,
# its stream connection on failover): their ResourceWarning is not ours to fail on
pytestmark = [
    pytest.mark.timeout(240),
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
]

SCRIPT = b"#!/bin/sh\necho fetched script ran in $(pwd)\necho sandbox=$MESOS_SANDBOX\n"


#: the kills here are not the subject: 1 s of grace, not the default 3 s (``sleep`` or
#: ``sh`` as an oci container's PID 1 ignores SIGTERM, so a kill waits out the grace)
QUICK_KILL = {"grace_period": {"nanoseconds": 1_000_000_000}}


def _tarball() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("bin/hello.sh")
        info.size, info.mode = len(SCRIPT), 0o755
        tar.addfile(info, io.BytesIO(SCRIPT))
    return buf.getvalue()


@pytest.fixture(scope="module")
def files() -> Iterator[str]:
    """A 127.0.0.1 HTTP server with ``/hello.tgz``."""
    body = _tarball()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path != "/hello.tgz":
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}"
    finally:
        srv.shutdown()
        srv.server_close()


@pytest.fixture(scope="module", params=RUNTIMES)
def mesos(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Cluster, str]]:
    runtime: str = request.param
    require(runtime)
    port = free_port()
    base = tmp_path_factory.mktemp(f"mesos-tasks-{runtime}")
    with running_cluster(
        base, runtime, "mesos-tasks", server_args=["--mesos-port", str(port), *OPEN]
    ) as c:
        wait(lambda: _version(port), "the Mesos master", 30)
        yield c, f"127.0.0.1:{port}"


def _version(port: int) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/version", timeout=2) as r:
            return bool(json.loads(r.read())["version"])
    except OSError:
        return False


def _task(offer: Any, tid: str, **fields: Any) -> dict[str, Any]:
    return {
        "name": tid,
        "task_id": {"value": tid},
        "agent_id": {"value": offer["agent_id"]["value"]},
        "resources": [
            {"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}},
            {"name": "mem", "type": "SCALAR", "scalar": {"value": fields.pop("mem", 64)}},
        ],
        **fields,
    }


class Launcher:
    """Launches the queued tasks into the next offers (one task per offer)."""

    def __init__(self) -> None:
        self.queue: list[Any] = []
        self.lock = threading.Lock()

    def __call__(self, driver: Any, offers: list[Any]) -> None:
        for offer in offers:
            with self.lock:
                make = self.queue.pop(0) if self.queue else None
            if make is None:
                driver.declineOffer(offer.id, {"refuse_seconds": 0.5})
            else:
                driver.launchTasks(offer.id, [make(offer)], {"refuse_seconds": 0})

    def add(self, driver: Any, make: Any) -> None:
        with self.lock:
            self.queue.append(make)
        driver.reviveOffers()


def _final(fw: Framework, tid: str, timeout: float = 90) -> dict[str, Any]:
    terminal = {"TASK_FINISHED", "TASK_FAILED", "TASK_KILLED", "TASK_ERROR", "TASK_LOST"}

    def done() -> dict[str, Any] | None:
        with fw.recorder.lock:
            ups = [u for u in fw.recorder.updates if u["task_id"]["value"] == tid]
        return next((u for u in ups if u["state"] in terminal), None)

    got: dict[str, Any] = wait(done, f"a terminal update for {tid}", timeout)
    return got


def test_tasks_run_as_mesos_runs_them(mesos: tuple[Cluster, str], files: str) -> None:
    c, master = mesos
    launcher = Launcher()
    fw = Framework.start(master, f"e2e-{c.runtime}", launcher)
    try:
        # a host-command task: fetched URIs in its sandbox, run there
        launcher.add(
            fw.driver,
            lambda o: _task(
                o,
                "fetch",
                command={
                    "value": "./bin/hello.sh && test -f hello.tgz || ls -la",
                    "uris": [{"value": f"{files}/hello.tgz", "extract": True}],
                },
            ),
        )
        up = _final(fw, "fetch")
        assert up["state"] == "TASK_FINISHED", up
        assert "TASK_RUNNING" in fw.recorder.states("fetch")
        pod = _pod(c, "fetch")
        logs = c.kubectl("logs", "-n", "mesos", pod["metadata"]["name"]).stdout
        assert "fetched script ran in" in logs
        assert "sandbox=/" in logs
        # a command that fails: TASK_FAILED with Mesos' words
        launcher.add(fw.driver, lambda o: _task(o, "fails", command={"value": "exit 3"}))
        up = _final(fw, "fails")
        assert up["state"] == "TASK_FAILED"
        assert "status 3" in up.get("message", ""), up
        # a kill: TASK_KILLED
        launcher.add(
            fw.driver,
            lambda o: _task(o, "long", command={"value": "sleep 600"}, kill_policy=QUICK_KILL),
        )
        wait(lambda: "TASK_RUNNING" in fw.recorder.states("long"), "long running", 60)
        fw.driver.killTask({"value": "long"})
        assert _final(fw, "long")["state"] == "TASK_KILLED"
        # a health check: TASK_RUNNING with healthy true once it passes
        launcher.add(
            fw.driver,
            lambda o: _task(
                o,
                "healthy",
                command={"value": "touch ok; sleep 600"},
                kill_policy=QUICK_KILL,
                health_check={
                    "type": "COMMAND",
                    "command": {"value": "test -f ok"},
                    "delay_seconds": 0,
                    "interval_seconds": 1,
                    "grace_period_seconds": 0,
                },
            ),
        )

        def healthy() -> bool:
            with fw.recorder.lock:
                return any(
                    u["task_id"]["value"] == "healthy" and u.get("healthy") is True
                    for u in fw.recorder.updates
                )

        wait(healthy, "a healthy TASK_RUNNING", 60)
        fw.driver.killTask({"value": "healthy"})
        assert _final(fw, "healthy")["state"] == "TASK_KILLED"
        # kubectl shows the framework and its tasks
        out = c.kubectl("get", "frameworks").stdout
        assert f"e2e-{c.runtime}" in out
        names = c.kubectl("get", "pods", "-A", "-o", "name").stdout
        assert _pod(c, "fails")["metadata"]["name"] in names
        if c.runtime == "oci":
            # a Docker image task: the sandbox is mounted at /mnt/mesos/sandbox
            launcher.add(
                fw.driver,
                lambda o: _task(
                    o,
                    "image",
                    command={
                        "value": "echo in-image sandbox=$MESOS_SANDBOX; test -d $MESOS_SANDBOX"
                    },
                    container={"type": "DOCKER", "docker": {"image": c.image}},
                ),
            )
            up = _final(fw, "image")
            assert up["state"] == "TASK_FINISHED", up
            logs = c.kubectl("logs", "-n", "mesos", _pod(c, "image")["metadata"]["name"]).stdout
            assert "in-image sandbox=/mnt/mesos/sandbox" in logs
            # the task's memory is its limit: a hog is killed for it
            launcher.add(
                fw.driver,
                lambda o: _task(
                    o,
                    "hog",
                    mem=32,
                    command={"value": "head -c 200000000 /dev/zero | tail > /dev/null"},
                    container={"type": "DOCKER", "docker": {"image": c.image}},
                ),
            )
            up = _final(fw, "hog")
            assert up["state"] == "TASK_FAILED"
            assert up.get("reason") == "REASON_CONTAINER_LIMITATION_MEMORY", up
    finally:
        fw.stop()
    wait(lambda: not _task_pods(c), "task pods gone after TEARDOWN", 60)


def _task_pods(c: Cluster) -> list[dict[str, Any]]:
    out = c.kubectl("get", "pods", "-n", "mesos", "-o", "json").stdout
    items: list[dict[str, Any]] = json.loads(out)["items"]
    return items


def _pod(c: Cluster, tid: str) -> dict[str, Any]:
    for p in _task_pods(c):
        if (p["metadata"].get("annotations") or {}).get("mesos.corral.dev/task-id") == tid:
            return p
    raise AssertionError(f"no pod for task {tid}")
