"""Shared fixtures: a real ``corral server`` subprocess, kubectl and the kubernetes client."""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import ssl
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from corral.testing.process import ServerProcess

# The suite starts hundreds of ``python -m corral`` children (servers, their components,
# agents, resets, CLI runs): with PYTHONDONTWRITEBYTECODE set each one compiled Corral's
# ~300 modules again (~0.4 s of CPU before it does anything). The first child now writes
# them to ``__pycache__`` (git-ignored) and every later one reads them.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "one_runtime(name): the scenario tests the agent's own logic, not the container "
        "runtime: under the e2e ``cluster`` fixture's other runtimes it is marked slow",
    )


@pytest.hookimpl(tryfirst=True)  # before ``-m "not slow"`` deselects
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """``@pytest.mark.one_runtime("process")``: a long e2e scenario whose subject is the
    node agent's logic (the kubelet's back-off, say), not the container runtime, runs
    under that one runtime in ``make test``; its runs under the other runtimes of the
    ``cluster`` fixture (``[oci]``) are marked ``slow`` and stay in ``make test-slow``.
    It keeps the suite under its time budget without running the same logic twice."""
    for item in items:
        marker = item.get_closest_marker("one_runtime")
        callspec = getattr(item, "callspec", None)
        if marker is None or callspec is None or "cluster" not in callspec.params:
            continue
        if callspec.params["cluster"] != marker.args[0]:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session", autouse=True)
def _leave_no_cgroup_parents() -> Iterator[None]:
    """The pods' parent cgroup ``corral`` that the suite's agents made (runc and the
    process driver make it, a reset removes it, but not every test's agent is reset
    last): removed at the end where empty, unless it was there before the run."""
    before = list(Path("/sys/fs/cgroup").glob("*/corral"))
    yield
    if not before:
        from corral.agent.teardown import remove_empty_cgroup_parents

        remove_empty_cgroup_parents()


RunningServer = ServerProcess


def start_server(
    data_dir: Path,
    port: int | None = None,
    extra: list[str] | None = None,
    controllers: bool = False,
) -> ServerProcess:
    """A ``corral server`` subprocess; the workload controllers only when asked for
    (most tests create pods, ReplicaSets and Jobs by hand or run a controller in-process)."""
    args = list(extra or [])
    if not controllers:
        args.append("--no-controllers")
        if "--metric-resolution" not in args:  # the metrics server only where asked for
            args.append("--no-metrics-server")
    return ServerProcess.start(data_dir, port=port, extra=args, timeout=30.0)


def start_rbac_server(data_dir: Path, *args: str) -> ServerProcess:
    """A server whose only loop is the ``clusterrole-aggregation`` controller (it fills
    the bootstrap roles admin, edit and view): what the RBAC tests need, and no more;
    ``args``: more ``corral server`` arguments (``--token-auth-file F``)."""
    extra = ["--no-scheduler", "--no-metrics-server", *args]
    extra += ["--kube-controller-manager-arg", "controllers=clusterrole-aggregation"]
    return start_server(data_dir, extra=extra, controllers=True)


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    # the shared server runs the scheduler but not the workload controllers: tests here
    # create ReplicaSets and their pods by hand
    srv = start_server(tmp_path_factory.mktemp("corral") / "data")
    yield srv
    srv.stop()


@dataclass
class Kubectl:
    kubeconfig: Path
    cache_dir: Path

    def __call__(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        cmd = [
            "kubectl",
            "--kubeconfig",
            str(self.kubeconfig),
            "--cache-dir",
            str(self.cache_dir),
            *args,
        ]
        env = dict(os.environ, KUBECONFIG=str(self.kubeconfig))
        res = subprocess.run(
            cmd, input=input, capture_output=True, text=True, timeout=timeout, env=env
        )
        if check and res.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} failed ({res.returncode}):\n{res.stdout}\n{res.stderr}"
            )
        return res


@pytest.fixture(scope="session")
def kubectl(server: RunningServer, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    return Kubectl(server.kubeconfig, tmp_path_factory.mktemp("kubecache"))


@contextlib.contextmanager
def api_client_for(kubeconfig: Path) -> Iterator[Any]:
    """A ``kubernetes`` ApiClient for a server's kubeconfig, closed on exit; the fixtures
    of test modules with their own server use it."""
    from kubernetes import client, config

    cfg = client.Configuration()
    config.load_kube_config(config_file=str(kubeconfig), client_configuration=cfg)
    with client.ApiClient(cfg) as c:
        yield c


@pytest.fixture(scope="session")
def api_client(server: RunningServer):  # type: ignore[no-untyped-def]
    with api_client_for(server.kubeconfig) as c:
        yield c


@pytest.fixture
def ns(api_client) -> Iterator[str]:  # type: ignore[no-untyped-def]
    from kubernetes import client

    name = "t-" + uuid.uuid4().hex[:8]
    v1 = client.CoreV1Api(api_client)
    v1.create_namespace({"metadata": {"name": name}})
    # as upstream's e2e framework: a TLS server publishes kube-root-ca.crt in every new
    # namespace shortly after; wait for it so a test's lists and watches start after it
    deadline = time.monotonic() + 10
    while api_client.configuration.host.startswith("https") and time.monotonic() < deadline:
        names = [c.metadata.name for c in v1.list_namespaced_config_map(name).items]
        if "kube-root-ca.crt" in names:
            break
        time.sleep(0.05)
    yield name


class Raw:
    """A tiny HTTPS client so tests can send exactly the bytes they mean."""

    def __init__(self, srv: RunningServer) -> None:
        cfg = yaml.safe_load(srv.kubeconfig.read_text())
        self.token = cfg["users"][0]["user"]["token"]
        self.url = srv.url
        self.ctx = ssl.create_default_context(cafile=str(srv.data_dir / "pki" / "ca.crt"))

    def __call__(
        self,
        method: str,
        path: str,
        body: bytes | dict[str, Any] | list[Any] | None = None,
        headers: dict[str, str] | None = None,
        auth: bool = True,
    ) -> tuple[int, dict[str, str], bytes]:
        data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
        h = {"Content-Type": "application/json"} if data is not None else {}
        if auth:
            h["Authorization"] = f"Bearer {self.token}"
        h.update(headers or {})
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=h)
        try:
            with urllib.request.urlopen(req, context=self.ctx, timeout=20) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()


@pytest.fixture(scope="session")
def raw(server: RunningServer) -> Raw:
    return Raw(server)


@pytest.fixture(scope="session")
def import_bench() -> Callable[[str], ModuleType]:
    """``import_bench(name)`` is the module ``bench.<name>``: ``bench`` is not an installed
    package, so the repository root is put on ``sys.path`` for the import only."""

    def load(name: str) -> ModuleType:
        with pytest.MonkeyPatch.context() as mp:
            mp.syspath_prepend(str(Path(__file__).resolve().parents[1]))
            return importlib.import_module(f"bench.{name}")

    return load
