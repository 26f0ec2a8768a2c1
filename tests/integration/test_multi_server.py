"""Two ``corral server`` processes on one etcd: what must hold when both write one store.

One single-member etcd (``EtcdCluster``) and two servers for the module, started at the
same moment on the empty store with one cluster token (neither fails on the built-in
objects the other made, both end up with the cluster's PKI). Each advertises its own
loopback address so that the ``kubernetes`` Service's endpoints can tell them apart,
with short endpoint-lease timers. Checked: a write on one is seen by a watcher and a
GET on the other with the same resourceVersion; Services created at once through both
get distinct ClusterIPs and NodePorts, and of two requests for the same address or port
exactly one wins; a CRD made on one is served by the other; kubectl creates, gets and
watches through one, and an object's resourceVersion is its mod revision in etcd; both
servers are in the endpoints and a SIGKILLed one leaves them once its lease has run out,
and started again on the same etcd it serves the same objects at the same versions
(last: it kills). The etcd serves its clients over TLS with client certificates
(``--datastore-cafile/certfile/keyfile``): the servers' and the test's own store.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import os
import queue
import socket
import subprocess
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any

import pytest

from conftest import Kubectl, Raw
from corral.storage.etcd import EtcdStorage
from corral.storage.etcd_conn import EtcdTLS
from corral.testing.process import ServerProcess, free_ports
from corral.testing.wait import eventually
from corral.util.etcd_process import EtcdCluster

TOKEN = "h6-multi-server-token"
ADDRESSES = ("127.0.0.2", "127.0.0.3")
#: endpoint lease renewal and TTL (seconds): upstream's 10/15 made short
INTERVAL, TTL = "0.3", "1.5"
NS = "/api/v1/namespaces/default"


class Pair:
    def __init__(self, etcd: EtcdCluster, servers: list[ServerProcess]) -> None:
        self.etcd = etcd
        self.servers = servers
        self.raw = [Raw(s) for s in servers]


def _start(etcd: EtcdCluster, data_dir: Path, port: int, advertise: str) -> ServerProcess:
    extra = [
        *etcd.datastore_args(), "--token", TOKEN, "--advertise-address", advertise,
        "--endpoint-reconciler-interval", INTERVAL, "--endpoint-reconciler-ttl", TTL,
        "--no-scheduler", "--no-controllers", "--no-metrics-server",
    ]  # fmt: skip
    return ServerProcess.start(data_dir, port=port, extra=extra, timeout=60.0)


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    work = tmp_path_factory.mktemp("multi")
    with EtcdCluster(work / "etcd", 1, tls=True) as etcd:
        etcd.start()
        ports = free_ports(2)
        started: list[ServerProcess] = []
        try:
            with ThreadPoolExecutor(2) as pool:  # both at once, on the empty store
                futures = [
                    pool.submit(_start, etcd, work / f"s{i}", ports[i], ADDRESSES[i])
                    for i in range(2)
                ]
                for f in futures:
                    try:
                        started.append(f.result())
                    except Exception:
                        for g in futures:  # the other one, if it came up
                            if g is not f and g.done() and g.exception() is None:
                                g.result().stop()
                        raise
            yield Pair(etcd, started)
        finally:
            for s in started:
                s.stop()


def _json(out: bytes) -> Any:
    return json.loads(out)


def test_both_came_up_on_the_empty_store_as_one_cluster(pair: Pair) -> None:
    a, b = pair.raw
    for r in (a, b):
        status, _, out = r("GET", "/api/v1/namespaces")
        assert status == 200
        names = [i["metadata"]["name"] for i in _json(out)["items"]]
        assert sorted(names) == sorted(set(names)) and "kube-system" in names
    svc = [_json(r("GET", f"{NS}/services/kubernetes")[2]) for r in (a, b)]
    assert svc[0]["metadata"]["uid"] == svc[1]["metadata"]["uid"]
    assert svc[0]["spec"]["clusterIP"] == "10.96.0.1"
    # one cluster: the same CA signs both servers' certificates
    ca = [(s.data_dir / "pki" / "ca.crt").read_bytes() for s in pair.servers]
    assert ca[0] == ca[1]


def test_a_write_on_one_is_seen_by_a_watcher_and_a_get_on_the_other(pair: Pair) -> None:
    a, b = pair.raw
    status, _, out = b("GET", f"{NS}/configmaps")
    rv = _json(out)["metadata"]["resourceVersion"]
    events: queue.Queue[dict[str, Any]] = queue.Queue()
    conn = http.client.HTTPSConnection("127.0.0.1", pair.servers[1].port, context=b.ctx, timeout=20)
    conn.connect()
    sock = conn.sock  # shut down at the end: the reader thread sees the stream end
    headers = {"Authorization": f"Bearer {b.token}"}
    conn.request("GET", f"{NS}/configmaps?watch=1&resourceVersion={rv}", headers=headers)
    resp = conn.getresponse()

    def read() -> None:
        with contextlib.suppress(OSError, ValueError):  # closed at the end of the test
            for line in resp:
                events.put(json.loads(line))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        body = {"metadata": {"name": "cross"}, "data": {"k": "v"}}
        status, _, out = a("POST", f"{NS}/configmaps", body)
        assert status == 201
        made = _json(out)["metadata"]
        ev = events.get(timeout=20)
        assert ev["type"] == "ADDED" and ev["object"]["metadata"]["name"] == "cross"
        assert ev["object"]["metadata"]["resourceVersion"] == made["resourceVersion"]
        # acknowledged by A: B's GET sees it at once, with the same resourceVersion
        status, _, out = b("GET", f"{NS}/configmaps/cross")
        assert status == 200
        assert _json(out)["metadata"]["resourceVersion"] == made["resourceVersion"]
        # and an update through B is one A reads back
        body = {"metadata": {"name": "cross"}, "data": {"k": "w"}}
        status, _, out = b("PUT", f"{NS}/configmaps/cross", body)
        assert status == 200
        status, _, out2 = a("GET", f"{NS}/configmaps/cross")
        assert _json(out2)["data"] == {"k": "w"}
        assert (
            _json(out2)["metadata"]["resourceVersion"] == _json(out)["metadata"]["resourceVersion"]
        )
    finally:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        reader.join(10)
        conn.close()


def _service(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {"type": "NodePort", "ports": [{"port": 80}], **spec},
    }


def test_services_created_at_once_through_both_get_distinct_addresses(pair: Pair) -> None:
    servers = pair.raw

    def create(i: int) -> tuple[int, Any]:
        status, _, out = servers[i % 2]("POST", f"{NS}/services", _service(f"dyn-{i}"))
        return status, _json(out)

    with ThreadPoolExecutor(20) as pool:
        made = list(pool.map(create, range(20)))
    assert [s for s, _ in made] == [201] * 20, made
    ips = [m["spec"]["clusterIP"] for _, m in made]
    ports = [m["spec"]["ports"][0]["nodePort"] for _, m in made]
    assert len(set(ips)) == 20 and "10.96.0.1" not in ips
    assert len(set(ports)) == 20


def test_of_two_requests_for_one_address_or_port_exactly_one_wins(pair: Pair) -> None:
    a, b = pair.raw

    def race(i: int) -> list[int]:
        ip, port = f"10.96.0.{20 + i}", 30020 + i
        bodies = [_service(f"req-{i}-{side}", clusterIP=ip) for side in "ab"]
        bodies += [_service(f"port-{i}-{side}") for side in "ab"]
        for body in bodies[2:]:
            body["spec"]["ports"][0]["nodePort"] = port
        with ThreadPoolExecutor(4) as pool:
            sent = [pool.submit(r, "POST", f"{NS}/services", body)
                    for r, body in zip((a, b, a, b), bodies, strict=True)]  # fmt: skip
            return [f.result()[0] for f in sent]

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(race, range(8)))
    for statuses in results:
        assert sorted(statuses[:2]) == [201, 422], results
        assert sorted(statuses[2:]) == [201, 422], results
    # deleting frees: a Service made on the other server may take the address at once
    status, _, out = a("GET", f"{NS}/services/req-0-a")
    holder = "req-0-a" if status == 200 else "req-0-b"
    assert a("DELETE", f"{NS}/services/{holder}")[0] == 200
    status, _, out = b("POST", f"{NS}/services", _service("again", clusterIP="10.96.0.20"))
    assert status == 201, out


CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.h6.example.com"},
    "spec": {
        "group": "h6.example.com",
        "scope": "Namespaced",
        "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "x-kubernetes-preserve-unknown-fields": True,
                    }
                },
            }
        ],
    },
}


def test_a_crd_made_on_one_is_served_by_the_other(pair: Pair) -> None:
    a, b = pair.raw
    status, _, out = a("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", CRD)
    assert status == 201, out
    path = "/apis/h6.example.com/v1/namespaces/default/widgets"
    widget = {"apiVersion": "h6.example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}
    status, _, out = b("POST", path, widget)
    assert status == 201, out
    status, _, out = a("GET", f"{path}/w")
    assert status == 200 and _json(out)["kind"] == "Widget"
    groups = eventually(
        lambda: (g := _json(b("GET", "/apis")[2])) and "h6.example.com" in json.dumps(g) and g,
        what="the CRD's group in the other server's discovery",
    )
    assert groups


def test_a_budget_is_kept_by_evictions_through_both(pair: Pair) -> None:
    a, b = pair.raw
    labels = {"app": "guarded"}
    pdb = {
        "metadata": {"name": "guard"},
        "spec": {"minAvailable": 5, "selector": {"matchLabels": labels}},
    }
    assert a("POST", "/apis/policy/v1/namespaces/default/poddisruptionbudgets", pdb)[0] == 201
    names = [f"guarded-{i}" for i in range(6)]
    ready = {"status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}}
    for name in names:
        pod = {
            "metadata": {"name": name, "labels": labels},
            "spec": {"nodeName": "nowhere", "containers": [{"name": "c", "image": "i"}]},
        }
        assert a("POST", f"{NS}/pods", pod)[0] == 201
        patch = {"Content-Type": "application/merge-patch+json"}
        assert a("PATCH", f"{NS}/pods/{name}/status", ready, patch)[0] == 200
    # both caches have every pod Ready before the race
    eventually(lambda: all(b("GET", f"{NS}/pods/{n}")[0] == 200 for n in names))

    def evict(i: int) -> int:
        body = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": names[i]}}
        return pair.raw[i % 2]("POST", f"{NS}/pods/{names[i]}/eviction", body)[0]

    with ThreadPoolExecutor(6) as pool:
        statuses = list(pool.map(evict, range(6)))
    assert sorted(statuses) == [201] + [429] * 5, statuses
    status, _, out = b("GET", "/apis/policy/v1/namespaces/default/poddisruptionbudgets/guard")
    assert status == 200
    assert list(_json(out)["status"]["disruptedPods"]) == [names[statuses.index(201)]]


@pytest.mark.kubectl
def test_kubectl_create_get_watch_and_versions_are_etcd_revisions(
    pair: Pair, tmp_path: Path
) -> None:
    srv = pair.servers[1]
    kubectl = Kubectl(srv.kubeconfig, tmp_path / "cache")
    kubectl("create", "configmap", "one", "--from-literal=a=b")
    cm = json.loads(kubectl("get", "configmap", "one", "-o", "json").stdout)
    assert cm["data"] == {"a": "b"}
    cmd = ["kubectl", "--kubeconfig", str(srv.kubeconfig), "--cache-dir", str(tmp_path / "c2")]
    cmd += ["get", "configmaps", "-w", "--output-watch-events"]
    cmd += ["--field-selector", "metadata.name=two"]
    # made before the watch starts, so that its list shows it whatever the timing
    kubectl("create", "configmap", "two", "--from-literal=x=y")
    watch = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy()
    )
    try:
        assert watch.stdout is not None
        out: queue.Queue[str] = queue.Queue()
        threading.Thread(target=_pump, args=(watch.stdout, out), daemon=True).start()
        lines = [_line(out) for _ in range(2)]
        kubectl("delete", "configmap", "two")
        lines.append(_line(out))
        assert lines == ["EVENT", "ADDED", "DELETED"]  # the header, then the events
    finally:
        watch.kill()
        watch.communicate()
    # resourceVersion is etcd's revision: the object's mod_revision in etcd
    assert asyncio.run(_mod_revision(pair.etcd, f"{CM_KEY}/one")) == int(
        cm["metadata"]["resourceVersion"]
    )


CM_KEY = "/registry/core/configmaps/default"


def _pump(stream: IO[str], out: queue.Queue[str]) -> None:
    for line in stream:
        out.put(line)


def _line(out: queue.Queue[str], timeout: float = 30.0) -> str:
    """The first word of kubectl's next output line, or a failure after ``timeout``."""
    try:
        return out.get(timeout=timeout).split()[0]
    except queue.Empty:
        raise AssertionError(f"kubectl printed nothing for {timeout:.0f} s") from None


async def _mod_revision(etcd: EtcdCluster, key: str) -> int:
    assert etcd.client_tls is not None
    st = EtcdStorage(etcd.endpoints, tls=EtcdTLS(*etcd.client_tls))
    await st.start()
    try:
        kv = await st.get(key)
        assert kv is not None
        return int(kv.mod_revision)
    finally:
        await st.close()


def _endpoint_ips(r: Raw) -> list[str]:
    status, _, out = r("GET", f"{NS}/endpoints/kubernetes")
    if status != 200:
        return []
    subsets = _json(out).get("subsets") or []
    return [addr["ip"] for s in subsets for addr in s.get("addresses") or []]


def test_both_servers_are_endpoints_and_a_dead_one_leaves(pair: Pair) -> None:
    a, _ = pair.raw
    eventually(lambda: _endpoint_ips(a) == list(ADDRESSES), what="both servers' addresses")
    status, _, out = a(
        "GET", "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices/kubernetes"
    )
    assert status == 200
    assert sorted(e["addresses"][0] for e in _json(out)["endpoints"]) == list(ADDRESSES)
    dead = pair.servers[1]
    dead.kill()  # no goodbye: its lease runs out
    eventually(lambda: _endpoint_ips(a) == [ADDRESSES[0]], what="the dead server's address gone")
    # started again on the same etcd: the same objects, at the same versions
    status, _, out = a("GET", f"{NS}/configmaps/one")
    assert status == 200, out
    pair.servers[1] = _start(pair.etcd, dead.data_dir, dead.port, ADDRESSES[1])
    status, _, again = Raw(pair.servers[1])("GET", f"{NS}/configmaps/one")
    assert status == 200, again
    assert _json(again)["metadata"]["resourceVersion"] == _json(out)["metadata"]["resourceVersion"]
