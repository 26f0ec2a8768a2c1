"""Leader election and fencing against one real ``corral server``.

Short timers throughout (lease 2 s, renew deadline 1.5 s, retry 0.3 s). The electors of
the first tests run in this process (their ``lead()`` records what happened, in order);
one runs in a child process so that it can be SIGKILLed (no release); a leader whose
calls go through a TCP relay that is SIGSTOPped stands for a leader cut off from its
server. The last test runs two real ``corral controller-manager --leader-elect``.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import RunningServer, start_server
from corral.api.errors import StatusError
from corral.client.leaderelection import FENCE_HEADER, LeaderElector
from corral.client.rest import (
    CONFIGMAPS,
    LEASES,
    NAMESPACES,
    REPLICASETS,
    Client,
    KubeConfig,
    Resource,
)
from corral.testing.process import free_port
from corral.testing.wait import eventually

SERVICEACCOUNTS = Resource("", "v1", "serviceaccounts")
TIMERS = {"lease_duration": 2.0, "renew_deadline": 1.5, "retry_period": 0.3}
FLAGS = [
    "--leader-elect",
    "--leader-elect-lease-duration",
    "2",
    "--leader-elect-renew-deadline",
    "1.5",
    "--leader-elect-retry-period",
    "0.3",
]

#: an elector in a process of its own: prints LEADING once it leads, then waits
CANDIDATE = """
import asyncio, sys
from corral.client.leaderelection import LeaderElector
from corral.client.rest import Client

async def main() -> None:
    client = Client.from_kubeconfig(sys.argv[1])
    e = LeaderElector(client, sys.argv[2], sys.argv[3], lease_duration=2.0,
                      renew_deadline=1.5, retry_period=0.3)
    async def lead() -> None:
        print("LEADING", flush=True)
        await asyncio.Event().wait()
    await e.run(lead)

asyncio.run(main())
"""

#: a TCP relay (127.0.0.1:argv[1] -> 127.0.0.1:argv[2]) the tests can SIGSTOP
RELAY = """
import asyncio, sys

async def pipe(r, w):
    try:
        while data := await r.read(65536):
            w.write(data)
            await w.drain()
    finally:
        w.close()

async def handle(r, w):
    ur, uw = await asyncio.open_connection("127.0.0.1", int(sys.argv[2]))
    await asyncio.gather(pipe(r, uw), pipe(ur, w), return_exceptions=True)

async def main():
    srv = await asyncio.start_server(handle, "127.0.0.1", int(sys.argv[1]))
    print("READY", flush=True)
    await srv.serve_forever()

asyncio.run(main())
"""


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    # election on (a SQLite server has it off by default): its lifecycle loops campaign
    s = start_server(tmp_path_factory.mktemp("le") / "data", extra=["--no-scheduler", *FLAGS])
    yield s
    s.stop()


def _lease_name() -> str:
    return f"le-{uuid.uuid4().hex[:8]}"


class Recorder:
    """What the electors' ``lead()`` did, in order: ("start"|"stop", who)."""

    def __init__(self) -> None:
        self.log: list[tuple[str, str]] = []

    def lead(self, who: str):  # type: ignore[no-untyped-def]
        async def run() -> None:
            self.log.append(("start", who))
            try:
                await asyncio.Event().wait()
            finally:
                self.log.append(("stop", who))

        return run

    def leading(self) -> set[str]:
        now: set[str] = set()
        for what, who in self.log:
            (now.add if what == "start" else now.discard)(who)
        return now

    def never_two(self) -> bool:
        now: set[str] = set()
        for what, who in self.log:
            (now.add if what == "start" else now.discard)(who)
            if len(now) > 1:
                return False
        return True


async def _until(cond, what: str, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(timeout):
        while not cond():
            await asyncio.sleep(0.05)


def test_one_leads_and_release_hands_over(srv: RunningServer) -> None:
    async def main() -> None:
        name = _lease_name()
        rec = Recorder()
        clients = [Client.from_kubeconfig(srv.kubeconfig) for _ in range(3)]
        electors = [
            LeaderElector(c, name, f"e{i}", advertise={"mesos": f"h:{i}"}, **TIMERS)
            for i, c in enumerate(clients)
        ]
        tasks = [asyncio.create_task(e.run(rec.lead(e.identity))) for e in electors]
        try:
            await _until(lambda: len(rec.leading()) == 1, "a leader")
            await asyncio.sleep(1.0)  # a few renewals and polls: still exactly one
            (first,) = rec.leading()
            leader = next(e for e in electors if e.identity == first)
            assert leader.is_leader
            assert sum(e.is_leader for e in electors) == 1
            idx = electors.index(leader)
            for e in electors:  # everyone knows where the leader listens
                await _until(lambda e=e: e.leader_advertise() is not None, "advertise")
                assert e.leader_advertise() == {"mesos": f"h:{idx}"}
            # a graceful stop releases the Lease: a standby takes over at its next poll
            tasks[idx].cancel()
            await asyncio.gather(tasks[idx], return_exceptions=True)
            lease = await clients[0].get(LEASES, name, "kube-system")
            assert not lease["spec"].get("holderIdentity")
            await _until(lambda: len(rec.leading()) == 1, "a new leader", timeout=3.0)
            assert first not in rec.leading()
            lease = await clients[0].get(LEASES, name, "kube-system")
            assert lease["spec"]["holderIdentity"] in rec.leading()
            assert lease["spec"]["leaseTransitions"] == 1
            assert rec.never_two()
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for c in clients:
                await c.close()

    asyncio.run(main())


def test_killed_leader_is_replaced_after_the_lease(srv: RunningServer) -> None:
    name = _lease_name()
    proc = subprocess.Popen(
        [sys.executable, "-c", CANDIDATE, str(srv.kubeconfig), name, "doomed"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "LEADING"

        async def main() -> None:
            rec = Recorder()
            client = Client.from_kubeconfig(srv.kubeconfig)
            e = LeaderElector(client, name, "heir", **TIMERS)
            task = asyncio.create_task(e.run(rec.lead("heir")))
            try:
                await asyncio.sleep(1.0)  # the holder renews: the heir waits
                assert rec.leading() == set() and e.leader == "doomed"
                proc.send_signal(signal.SIGKILL)  # no release: the lease has to expire
                await _until(lambda: rec.leading() == {"heir"}, "the heir leads")
                lease = await client.get(LEASES, name, "kube-system")
                assert lease["spec"]["holderIdentity"] == "heir"
                assert lease["spec"]["leaseTransitions"] == 1
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                await client.close()

        asyncio.run(main())
    finally:
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def test_cut_off_leader_stops_before_takeover_and_is_fenced(srv: RunningServer) -> None:
    """The leader reaches the server through a relay that is then SIGSTOPped: its
    renewals hang, it cancels ``lead()`` at its renew deadline, strictly before the
    standby (who polls the server directly) takes the Lease; the write it then tries
    with its old fence is refused with 409, while unfenced writes pass."""
    port = free_port()
    target = srv.url.rsplit(":", 1)[1]
    relay = subprocess.Popen(
        [sys.executable, "-c", RELAY, str(port), target], stdout=subprocess.PIPE, text=True
    )
    try:
        assert relay.stdout is not None
        assert relay.stdout.readline().strip() == "READY"

        async def main() -> None:
            name = _lease_name()
            rec = Recorder()
            direct = KubeConfig.load(srv.kubeconfig)
            via_relay = KubeConfig(f"https://127.0.0.1:{port}", direct.token, direct.ca_pem)
            cut, standby_client = Client(via_relay), Client(direct)
            leader = LeaderElector(cut, name, "cut", **TIMERS)
            standby = LeaderElector(standby_client, name, "standby", **TIMERS)
            t1 = asyncio.create_task(leader.run(rec.lead("cut")))
            await _until(lambda: rec.leading() == {"cut"}, "cut leads")
            t2 = asyncio.create_task(standby.run(rec.lead("standby")))
            try:
                await asyncio.sleep(0.6)
                stale = dict(cut.write_headers)
                assert stale[FENCE_HEADER].startswith(f"kube-system/{name};cut;")
                os.kill(relay.pid, signal.SIGSTOP)
                await _until(lambda: rec.leading() == {"standby"}, "the standby leads")
                # the order of what happened, not its timing
                assert rec.log == [
                    ("start", "cut"),
                    ("stop", "cut"),
                    ("start", "standby"),
                ], rec.log
                assert not leader.is_leader
                # a write fenced with the deposed leader's fence: refused
                ns = "default"
                writer = Client(direct)
                writer.write_headers.update(stale)
                cm = {"metadata": {"name": f"{name}-x"}, "data": {"a": "b"}}
                with pytest.raises(StatusError) as err:
                    await writer.create(CONFIGMAPS, cm, ns)
                assert err.value.code == 409
                assert "no longer the leader" in err.value.message
                # the new leader's fenced writes, and unfenced ones, pass
                await standby_client.create(CONFIGMAPS, cm, ns)
                assert FENCE_HEADER in standby_client.write_headers
                writer.write_headers.clear()
                await writer.delete(CONFIGMAPS, cm["metadata"]["name"], ns)
                await writer.close()
            finally:
                os.kill(relay.pid, signal.SIGCONT)
                for t in (t1, t2):
                    t.cancel()
                await asyncio.gather(t1, t2, return_exceptions=True)
                await cut.close()
                await standby_client.close()

        asyncio.run(main())
    finally:
        relay.kill()
        relay.wait()
        if relay.stdout is not None:
            relay.stdout.close()


def test_server_lifecycle_loops_run_under_their_lease(srv: RunningServer) -> None:
    """``corral server --leader-elect``: the lifecycle loops hold
    ``corral-apiserver-lifecycle`` and act (a new namespace gets its ServiceAccount)."""

    async def main() -> None:
        client = Client.from_kubeconfig(srv.kubeconfig)
        ns = f"le-{uuid.uuid4().hex[:6]}"
        try:
            lease = await client.get(LEASES, "corral-apiserver-lifecycle", "kube-system")
            assert lease["spec"]["holderIdentity"]
            await client.create(NAMESPACES, {"metadata": {"name": ns}})
            async with asyncio.timeout(10):
                while True:
                    try:
                        await client.get(SERVICEACCOUNTS, "default", ns)
                        break
                    except StatusError:
                        await asyncio.sleep(0.1)
            await client.delete(NAMESPACES, ns)
        finally:
            await client.close()

    asyncio.run(main())


def _manager(srv: RunningServer, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "corral", "controller-manager", "--kubeconfig",
             str(srv.kubeconfig), "--controllers", "replicaset", *FLAGS],
            stdout=out,
            stderr=subprocess.STDOUT,
        )  # fmt: skip


def test_two_controller_managers_only_one_acts(srv: RunningServer, tmp_path: Path) -> None:
    """Two real ``corral controller-manager --leader-elect``: one runs its controllers
    (it logs "controllers running" once its informers synced), the other waits; the
    leader's ReplicaSet gets its pods; stopped gracefully, the leader hands over."""
    logs = [tmp_path / "cm0.log", tmp_path / "cm1.log"]
    procs = [_manager(srv, p) for p in logs]

    def acting() -> list[int]:
        return [i for i, p in enumerate(logs) if "controllers running" in p.read_text()]

    async def replicaset_gets_pods() -> None:
        client = Client.from_kubeconfig(srv.kubeconfig)
        name = f"le-{uuid.uuid4().hex[:6]}"
        rs = {
            "metadata": {"name": name},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": {"app": name}},
                    "spec": {"containers": [{"name": "c", "image": "busybox"}]},
                },
            },
        }
        try:
            await client.create(REPLICASETS, rs, "default")
            async with asyncio.timeout(15):
                while True:
                    got = await client.get(REPLICASETS, name, "default")
                    if (got.get("status") or {}).get("replicas") == 2:
                        break
                    await asyncio.sleep(0.1)
            await client.delete(REPLICASETS, name, "default", propagation="Background")
        finally:
            await client.close()

    try:
        eventually(lambda: len(acting()) == 1, timeout=15, what="one controller manager leads")
        asyncio.run(replicaset_gets_pods())
        (first,) = acting()
        assert procs[1 - first].poll() is None  # the standby runs, but does not act
        procs[first].send_signal(signal.SIGTERM)  # graceful: releases the Lease
        procs[first].wait(timeout=15)
        eventually(lambda: 1 - first in acting(), timeout=15, what="the standby takes over")
    finally:
        for p in procs:
            p.kill()
            p.wait()
