"""Two elected copies each of the Mesos master (``corral scheduler --mesos-port``),
Marathon and Chronos against one real server: a standby master redirects (307, as
Mesos' ``Master::Http::redirect``) and a pymesos framework pointed at it subscribes to
the leader; Marathon and Chronos standbys proxy to their leader (the real ``marathon``
and ``chronos`` clients, credentials passed through); ``/v2/leader`` and ``/leader`` name
the leader on every instance. SIGKILL the leading master and make the leading Marathon
abdicate (``DELETE /v2/leader`` through the standby): the standbys take over,
``/master/redirect`` follows, Chronos' framework (given both masters) moves its stream to
the new leading master and the new Marathon leader subscribes there.

Short lease timers (3 s lease, 2 s renew deadline, 0.5 s retry) keep the take-over
quick; the test waits for states, it never times them.
"""

from __future__ import annotations

import base64
import gc
import json
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from mesoskit import Framework

from corral.client.leaderelection import EXIT_LEADERSHIP_LOST
from corral.testing.process import ServerProcess, free_ports
from corral.testing.wait import eventually

marathon = pytest.importorskip("marathon")
chronos = pytest.importorskip("chronos")

ELECTION = [
    "--leader-elect",
    "--leader-elect-lease-duration", "3",
    "--leader-elect-renew-deadline", "2",
    "--leader-elect-retry-period", "0.5",
]  # fmt: skip
OPEN_MASTER = [
    "--no-authenticate-http-frameworks",
    "--no-authenticate-http-readwrite",
    "--no-authenticate-http-readonly",
]


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


def http(
    url: str, body: Any = None, auth: tuple[str, str] | None = None, method: str | None = None
) -> tuple[int, dict[str, str], bytes]:
    """One request, redirects not followed: (status, headers, body); (0, {}, b"") when
    nothing answers."""
    headers = {"Accept": "application/json"}
    if body is not None:
        headers["Content-Type"] = "application/json"
    if auth is not None:
        headers["Authorization"] = "Basic " + base64.b64encode(":".join(auth).encode()).decode()
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with _OPENER.open(req, timeout=10) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()
    except OSError:
        return 0, {}, b""


@dataclass
class Pairs:
    server: ServerProcess
    base: Path
    mesos: list[int]
    marathon: list[int]
    chronos: list[int]
    procs: dict[tuple[str, int], subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def admin(self) -> tuple[str, str]:
        return ("admin", self.server.token)

    def start(self, command: str, port: int, *args: str) -> None:
        log = self.base / f"{command}-{port}.log"
        argv = [
            sys.executable,
            "-m",
            "corral",
            command,
            "--kubeconfig",
            str(self.server.kubeconfig),
        ]
        argv += [*args, *ELECTION, "--log-level", "INFO"]
        with open(log, "ab") as out:
            self.procs[command, port] = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)

    def kill(self, command: str, port: int) -> None:
        proc = self.procs[command, port]
        proc.kill()
        proc.wait()

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def mesos_leader(self, ports: list[int] | None = None) -> int | None:
        """The leading master's port, once every master (of ``ports``) names it at
        ``/redirect`` and it says so itself (``master/elected`` in ``/metrics/snapshot``)."""
        named = set()
        for port in self.mesos if ports is None else ports:
            status, headers, _ = http(f"http://127.0.0.1:{port}/redirect")
            if status != 307:
                return None
            named.add(headers["Location"])
        if len(named) != 1:
            return None
        leader = int(named.pop().rpartition(":")[2])
        status, _, body = http(f"http://127.0.0.1:{leader}/metrics/snapshot")
        if status != 200 or json.loads(body)["master/elected"] != 1.0:
            return None
        return leader

    def leader_of(self, ports: list[int], path: str) -> int | None:
        """The port every instance names at ``path`` (``/v2/leader``, ``/leader``), when
        they all agree."""
        named = set()
        for port in ports:
            status, _, body = http(f"http://127.0.0.1:{port}{path}", auth=self.admin)
            if status != 200:
                return None
            named.add(json.loads(body)["leader"])
        if len(named) != 1:
            return None
        return int(named.pop().rpartition(":")[2])

    def other(self, ports: list[int], port: int) -> int:
        return next(p for p in ports if p != port)


@pytest.fixture(scope="module")
def pairs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pairs]:
    base = tmp_path_factory.mktemp("framework-leaders")
    extra = ["--no-scheduler", "--no-controllers", "--no-metrics-server"]
    srv = ServerProcess.start(base / "server", extra=extra)
    ports = free_ports(6)
    p = Pairs(srv, base, ports[0:2], ports[2:4], ports[4:6])
    masters = ",".join(f"127.0.0.1:{m}" for m in p.mesos)
    try:
        for port in p.mesos:
            p.start("scheduler", port, "--mesos-port", str(port), *OPEN_MASTER)
        for port in p.marathon:
            p.start("marathon", port, "--port", str(port), "--master", masters)
        for port in p.chronos:
            p.start("chronos", port, "--port", str(port), "--master", masters)
        eventually(p.mesos_leader, timeout=30, what="one leading Mesos master")
        eventually(lambda: p.leader_of(p.marathon, "/v2/leader"), 30, what="a Marathon leader")
        eventually(lambda: p.leader_of(p.chronos, "/leader"), 30, what="a Chronos leader")
        yield p
    finally:
        p.stop_all()
        srv.stop()


def test_a_standby_master_redirects_to_the_leader(pairs: Pairs) -> None:
    leader = pairs.mesos_leader()
    assert leader is not None
    standby = pairs.other(pairs.mesos, leader)
    here, there = f"http://127.0.0.1:{standby}", f"//127.0.0.1:{leader}"
    status, headers, _ = http(f"{here}/master/redirect")
    assert (status, headers["Location"]) == (307, there)
    status, headers, _ = http(f"{here}/master/state?jsonp=x")
    assert (status, headers["Location"]) == (307, f"{there}/master/state?jsonp=x")
    status, headers, _ = http(f"{here}/api/v1", {"type": "GET_HEALTH"})
    assert (status, headers["Location"]) == (307, f"{there}/api/v1")
    # what any master answers itself
    assert http(f"{here}/version")[0] == 200
    assert http(f"{here}/health")[0] == 200
    # the leader's own /redirect points at itself
    status, headers, _ = http(f"http://127.0.0.1:{leader}/redirect")
    assert (status, headers["Location"]) == (307, there)


def test_pymesos_pointed_at_the_standby_subscribes_to_the_leader(pairs: Pairs) -> None:
    leader = pairs.mesos_leader()
    assert leader is not None
    standby = pairs.other(pairs.mesos, leader)
    fw = Framework.start(f"127.0.0.1:{standby}", name="redirected")
    try:
        status, _, body = http(f"http://127.0.0.1:{leader}/api/v1", {"type": "GET_FRAMEWORKS"})
        assert status == 200
        frameworks = json.loads(body)["get_frameworks"]["frameworks"]
        mine = [
            f for f in frameworks if f["framework_info"]["id"]["value"] == fw.recorder.framework_id
        ]
        assert mine and mine[0]["connected"]
    finally:
        fw.stop()


def test_marathon_standby_proxies_to_the_leader(pairs: Pairs) -> None:
    leader = eventually(lambda: pairs.leader_of(pairs.marathon, "/v2/leader"), 10)
    standby = pairs.other(pairs.marathon, leader)
    client = marathon.MarathonClient(
        f"http://127.0.0.1:{standby}", username=pairs.admin[0], password=pairs.admin[1]
    )
    app = marathon.MarathonApp(cmd="sleep 600", cpus=0.01, mem=16, instances=0)
    try:
        created = client.create_app("proxied", app)
        assert created.id == "/proxied"
        assert "/proxied" in [a.id for a in client.list_apps()]
        assert client.get_leader() == {"leader": f"127.0.0.1:{leader}"}
    finally:
        client.session.close()
        client.sse_session.close()
    # the leader's answer, passed on with the proxy's Via and the leader's own header
    status, headers, _ = http(f"http://127.0.0.1:{standby}/v2/apps/proxied", auth=pairs.admin)
    assert status == 200
    assert headers["X-Marathon-Leader"] == f"http://127.0.0.1:{leader}"
    assert headers["X-Marathon-Via"] == f"1.1 127.0.0.1:{standby}"
    # the credentials travel with the request: the leader refuses none
    assert http(f"http://127.0.0.1:{standby}/v2/apps")[0] == 401
    # the event stream is a redirect, as Marathon's filter does
    status, headers, _ = http(f"http://127.0.0.1:{standby}/v2/events", auth=pairs.admin)
    assert (status, headers["Location"]) == (302, f"http://127.0.0.1:{leader}/v2/events")


# chronos-python's httplib2 clients drop their sockets unclosed (as test_chronos_client)
@pytest.mark.filterwarnings("ignore::ResourceWarning")
def test_chronos_standby_proxies_to_the_leader(pairs: Pairs) -> None:
    leader = eventually(lambda: pairs.leader_of(pairs.chronos, "/leader"), 10)
    standby = pairs.other(pairs.chronos, leader)
    client = chronos.connect(f"127.0.0.1:{standby}", username="admin", password=pairs.admin[1])
    job = {
        "name": "proxied-job",
        "command": "true",
        "owner": "ops@example.com",
        "schedule": "R/2030-01-01T00:00:00Z/PT24H",
        "disabled": True,
    }
    client.add(job)
    assert "proxied-job" in [j["name"] for j in client.list()]
    del client
    gc.collect()  # the dropped sockets' warnings, while this test ignores them
    status, _, body = http(
        f"http://127.0.0.1:{leader}/v1/scheduler/job/proxied-job", auth=pairs.admin
    )
    assert status == 200 and json.loads(body)["name"] == "proxied-job"


def test_a_killed_master_and_an_abdicated_marathon_are_replaced(pairs: Pairs) -> None:
    """Last: it SIGKILLs the leading master and makes the leading Marathon abdicate
    (``DELETE /v2/leader``, sent to the standby, which passes it on)."""
    old_master = pairs.mesos_leader()
    old_marathon = pairs.leader_of(pairs.marathon, "/v2/leader")
    assert old_master is not None and old_marathon is not None
    new_master = pairs.other(pairs.mesos, old_master)
    new_marathon = pairs.other(pairs.marathon, old_marathon)
    pairs.kill("scheduler", old_master)
    url = f"http://127.0.0.1:{new_marathon}/v2/leader"
    status, _, body = http(url, auth=pairs.admin, method="DELETE")
    assert (status, json.loads(body)) == (200, {"message": "Leadership abdicated"})
    # its term over, the old leader exits (a supervisor would start it as a standby)
    assert pairs.procs["marathon", old_marathon].wait(20) == EXIT_LEADERSHIP_LOST
    eventually(
        lambda: pairs.mesos_leader([new_master]) == new_master,
        20,
        what="the standby master leading",
    )
    status, headers, _ = http(f"http://127.0.0.1:{new_master}/master/redirect")
    assert (status, headers["Location"]) == (307, f"//127.0.0.1:{new_master}")
    eventually(
        lambda: pairs.leader_of([new_marathon], "/v2/leader") == new_marathon,
        20,
        what="the standby Marathon leading",
    )

    def subscribed() -> bool:
        url = f"http://127.0.0.1:{new_master}/api/v1"
        status, _, body = http(url, {"type": "GET_FRAMEWORKS"})
        if status != 200:
            return False
        frameworks = json.loads(body)["get_frameworks"].get("frameworks") or []
        names = {f["framework_info"]["name"] for f in frameworks if f.get("connected")}
        return {"marathon", "chronos"} <= names

    # Chronos' leader lived on: its stream moved to the other master of its --master list;
    # Marathon's new leader subscribed afresh
    eventually(subscribed, 20, what="Marathon and Chronos subscribed to the new leading master")
    # the new Marathon leader serves the app its predecessor stored
    status, _, _ = http(f"http://127.0.0.1:{new_marathon}/v2/apps/proxied", auth=pairs.admin)
    assert status == 200
