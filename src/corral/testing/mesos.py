"""Test kit for the Mesos side (``make test`` installs pymesos: scripts/pymesos-deps.sh): a server whose scheduler process serves the Mesos master
API, and ``pymesos`` frameworks whose callbacks are recorded for the tests to wait on.

``MesosCluster`` runs ``corral server --mesos-port P`` (optionally with hollow nodes) and
any number of real ``corral agent`` processes; ``Framework`` wraps a
``pymesos.MesosSchedulerDriver`` (the unmodified PyPI client) around a ``Recorder``
scheduler whose ``on_offers`` policy the test chooses.
"""

from __future__ import annotations

import base64
import contextlib
import json
import ssl
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pymesos

from corral.testing.agent import AgentProcess
from corral.testing.process import ServerProcess, free_ports

Obj = dict[str, Any]


def scalar(resources: list[Any], name: str) -> float:
    return float(sum(r["scalar"]["value"] for r in resources if r["name"] == name))


def resources(cpus: float, mem: float) -> list[Obj]:
    return [
        {"name": "cpus", "type": "SCALAR", "scalar": {"value": cpus}},
        {"name": "mem", "type": "SCALAR", "scalar": {"value": mem}},
    ]


def command_task(offer: Any, name: str, cmd: str, cpus: float = 0.1, mem: float = 32) -> Obj:
    return {
        "name": name,
        "task_id": {"value": name},
        "agent_id": {"value": offer["agent_id"]["value"]},
        "resources": resources(cpus, mem),
        "command": {"value": cmd},
    }


class Recorder(pymesos.Scheduler):  # type: ignore[misc]
    """Records every callback; ``on_offers(driver, offers)`` decides what to do."""

    def __init__(self, on_offers: Callable[[Any, list[Any]], None] | None = None) -> None:
        self.on_offers = on_offers
        self.lock = threading.Lock()
        self.framework_id = ""
        self.registrations = 0
        self.offers: list[Any] = []
        self.updates: list[Obj] = []
        self.rescinded: list[str] = []
        self.messages: list[tuple[str, str, bytes]] = []
        self.errors: list[str] = []
        self.disconnects = 0

    def registered(self, driver: Any, framework_id: Any, master_info: Any) -> None:
        with self.lock:
            self.framework_id = framework_id["value"]
            self.registrations += 1

    def reregistered(self, driver: Any, master_info: Any) -> None:
        with self.lock:
            self.framework_id = driver.framework_id
            self.registrations += 1

    def disconnected(self, driver: Any) -> None:
        with self.lock:
            self.disconnects += 1

    def resourceOffers(self, driver: Any, offers: list[Any]) -> None:
        with self.lock:
            self.offers.extend(offers)
        if self.on_offers is not None:
            self.on_offers(driver, offers)

    def offerRescinded(self, driver: Any, offer_id: Any) -> None:
        with self.lock:
            self.rescinded.append(offer_id["value"])

    def statusUpdate(self, driver: Any, update: Any) -> None:
        with self.lock:
            self.updates.append(json.loads(json.dumps(update)))

    def frameworkMessage(self, driver: Any, executor_id: Any, agent_id: Any, data: Any) -> None:
        with self.lock:
            self.messages.append((executor_id["value"], agent_id["value"], data))

    def error(self, driver: Any, message: str) -> None:
        with self.lock:
            self.errors.append(message)

    def states(self, task_id: str) -> list[str]:
        with self.lock:
            return [u["state"] for u in self.updates if u["task_id"]["value"] == task_id]


@dataclass
class Framework:
    """A pymesos driver running in its own threads."""

    recorder: Recorder
    driver: Any
    info: Obj = field(default_factory=dict)

    @classmethod
    def start(
        cls,
        master: str,
        name: str = "",
        on_offers: Callable[[Any, list[Any]], None] | None = None,
        implicit_acknowledgements: bool = True,
        principal: str | None = None,
        secret: str | None = None,
        registered: bool = True,
        **info: Any,
    ) -> Framework:
        """Start a driver (with ``principal``/``secret``: HTTP basic credentials) and,
        if ``registered``, wait until the master registered it."""
        rec = Recorder(on_offers)
        fw = {"user": "root", "name": name or f"fw-{uuid.uuid4().hex[:6]}", **info}
        driver = pymesos.MesosSchedulerDriver(
            rec,
            fw,
            master,
            use_addict=True,
            implicit_acknowledgements=implicit_acknowledgements,
            principal=principal,
            secret=secret,
        )
        driver.start()
        out = cls(rec, driver, fw)
        if registered:
            wait(lambda: rec.framework_id != "", "framework registered", 20)
        return out

    def stop(self, failover: bool = False) -> None:
        with contextlib.suppress(Exception):
            self.driver.stop(failover)
        with contextlib.suppress(Exception):
            self.driver.join()


def wait(pred: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = pred()
        if got:
            return got
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@dataclass
class MesosCluster:
    server: ServerProcess
    port: int
    agents: list[AgentProcess]
    server_args: list[str] = field(default_factory=list)

    def restart_server(self) -> None:
        """Stop the server (and with it the master) and start it again on the same data
        directory and ports."""
        self.server.stop()
        self.server = ServerProcess.start(
            self.server.data_dir, port=self.server.port, extra=self.server_args, log_level="INFO"
        )
        wait(lambda: _serving(self), "the Mesos master API again", 30)

    @property
    def master(self) -> str:
        return f"127.0.0.1:{self.port}"

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(f"http://{self.master}{path}", timeout=10) as r:
            return json.loads(r.read())

    def get_as(self, path: str, auth: tuple[str, str]) -> Any:
        """GET ``path`` of the master with HTTP basic credentials (principal, secret)."""
        raw = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        req = urllib.request.Request(
            f"http://{self.master}{path}", headers={"Authorization": f"Basic {raw}"}
        )
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())

    def operator(self, call: Obj) -> Any:
        req = urllib.request.Request(
            f"http://{self.master}/api/v1",
            data=json.dumps(call).encode(),
            headers={"Content-Type": "application/json", "Accept": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=10) as r:
            body = r.read()
            return json.loads(body) if body else None

    def kube(self, path: str) -> Any:
        ctx = ssl.create_default_context(cafile=str(self.server.ca_file))
        req = urllib.request.Request(
            f"{self.server.url}{path}", headers={"Authorization": f"Bearer {self.server.token}"}
        )
        with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
            return json.loads(r.read())

    def kube_post(
        self,
        path: str,
        body: Obj,
        method: str = "POST",
        content_type: str = "application/json",
    ) -> Any:
        ctx = ssl.create_default_context(cafile=str(self.server.ca_file))
        req = urllib.request.Request(
            f"{self.server.url}{path}",
            data=json.dumps(body).encode(),
            method=method,
            headers={
                "Authorization": f"Bearer {self.server.token}",
                "Content-Type": content_type,
            },
        )
        with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
            return json.loads(r.read())

    def task_pods(self) -> list[Obj]:
        items: list[Obj] = self.kube("/api/v1/namespaces/mesos/pods")["items"]
        return items


#: the master's (and so the server's Marathon and Chronos) authentication turned off
OPEN = [
    "--no-authenticate-http-frameworks",
    "--no-authenticate-http-readwrite",
    "--no-authenticate-http-readonly",
]


@contextlib.contextmanager
def mesos_cluster(
    base: Path,
    *,
    hollow: int = 0,
    runtimes: tuple[str, ...] = (),
    extra: list[str] | None = None,
    auth: bool = False,
) -> Iterator[MesosCluster]:
    """A server with the Mesos master; without ``auth`` its HTTP authentication is off
    (``OPEN``: the tests of the protocols themselves), Marathon's and Chronos' too."""
    # distinct, and none of the ports ``extra`` names (Marathon's, Chronos'): two
    # ``free_port`` calls in a row may return the same port
    taken = {int(a) for a in extra or [] if a.isdigit()}
    port, api_port = free_ports(2)
    while {port, api_port} & taken:
        port, api_port = free_ports(2)
    args = ["--mesos-port", str(port), *(extra or []), *([] if auth else OPEN)]
    if hollow:
        args += ["--hollow-nodes", str(hollow)]
    srv = ServerProcess.start(base / "server", port=api_port, extra=args, log_level="INFO")
    agents: list[AgentProcess] = []
    try:
        for i, runtime in enumerate(runtimes):
            name = f"mesos-{runtime}-{i}-{uuid.uuid4().hex[:4]}"
            agents.append(
                AgentProcess.start(
                    srv.kubeconfig, name, runtime, base / f"agent-{i}", extra=agent_tls(srv, name)
                )
            )
        cluster = MesosCluster(srv, port, agents, args)
        wait(lambda: _serving(cluster), "the Mesos master API", 30)
        yield cluster
    finally:
        for a in agents:
            a.stop()
        srv.stop()
        if "cluster" in locals():
            cluster.server.stop()
        for a in agents:
            with contextlib.suppress(Exception):
                a.reset()


def agent_tls(srv: ServerProcess, name: str) -> list[str]:
    """An agent's serving certificate from the server's cluster CA, as ``corral server``
    gives the agents it starts: the agent then serves HTTPS and checks its callers as a
    kubelet does (the master relays framework messages with its own certificate)."""
    from corral.apiserver.certs import ensure_serving_pair_in_child

    crt, key = ensure_serving_pair_in_child(srv.data_dir, f"agent-{name}", [name, "127.0.0.1"])
    return ["--tls-cert-file", str(crt), "--tls-private-key-file", str(key)]


def _serving(c: MesosCluster) -> bool:
    """The master answers and has recovered (``/health`` is 200)."""
    try:
        with urllib.request.urlopen(f"http://{c.master}/health", timeout=5) as r:
            return bool(r.status == 200)
    except OSError:
        return False
