"""``corral dns`` against a real API server, queried with dnspython as a real client.

Services and a hand-made EndpointSlice are created with kubectl; ``corral dns`` runs as a
subprocess on 127.0.0.1 with a free port. Nothing leaves the machine: forwarding is
tested against a second local ``corral dns`` serving another domain.
"""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from conftest import Kubectl, RunningServer

READY = re.compile(rb"corral dns: serving (\S+) on ([\d.]+):(\d+) \(udp, tcp\)")


class DNSProcess:
    """A ``corral dns`` subprocess and the port it announced."""

    def __init__(self, kubeconfig: Path, *extra: str) -> None:
        argv = [
            sys.executable, "-m", "corral", "dns", "--kubeconfig", str(kubeconfig),
            "--listen", "127.0.0.1:0", "--exit-on-stdin-eof", "--log-level", "warning", *extra,
        ]  # fmt: skip
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        line: list[bytes] = []
        reader = threading.Thread(target=lambda: line.append(self.proc.stdout.readline()))  # type: ignore[union-attr]
        reader.start()
        reader.join(30)
        m = READY.match(line[0]) if line else None
        if m is None:
            self.stop()
            raise AssertionError(f"corral dns did not announce itself: {line!r}")
        self.port = int(m.group(3))

    def stop(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()  # --exit-on-stdin-eof
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    def query(self, name: str, rdtype: str = "A", *, tcp: bool = False) -> dns.message.Message:
        q = dns.message.make_query(name, dns.rdatatype.from_text(rdtype))
        if tcp:
            return dns.query.tcp(q, "127.0.0.1", port=self.port, timeout=5)
        return dns.query.udp(q, "127.0.0.1", port=self.port, timeout=5)


def _records(r: dns.message.Message, rdtype: str = "A") -> set[str]:
    want = dns.rdatatype.from_text(rdtype)
    return {rd.to_text() for rrset in r.answer if rrset.rdtype == want for rd in rrset}


def _until(pred: Callable[[], Any], timeout: float = 10) -> Any:
    """Poll ``pred`` until it returns something truthy (no fixed sleeps)."""
    deadline = time.monotonic() + timeout
    while True:
        got = pred()
        if got or time.monotonic() > deadline:
            return got
        time.sleep(0.05)


MANIFEST = """
apiVersion: v1
kind: Service
metadata: {{name: web, namespace: {ns}}}
spec:
  ports:
  - {{name: http, port: 80, protocol: TCP, targetPort: 8080}}
  - {{name: metrics, port: 9090, protocol: UDP}}
---
apiVersion: v1
kind: Service
metadata: {{name: db, namespace: {ns}}}
spec:
  clusterIP: None
  ports:
  - {{name: pg, port: 5432, protocol: TCP}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: db-manual
  namespace: {ns}
  labels: {{kubernetes.io/service-name: db}}
addressType: IPv4
ports:
- {{name: pg, port: 5432, protocol: TCP}}
endpoints:
- {{addresses: [10.88.7.1], hostname: db-0, conditions: {{ready: true}}}}
- {{addresses: [10.88.7.2], hostname: db-1, conditions: {{ready: true}}}}
- {{addresses: [10.88.7.3], hostname: db-2, conditions: {{ready: false}}}}
"""


@pytest.fixture
def dns_server(server: RunningServer) -> Iterator[DNSProcess]:
    proc = DNSProcess(server.kubeconfig)
    yield proc
    proc.stop()


def test_cluster_dns(kubectl: Kubectl, ns: str, dns_server: DNSProcess) -> None:
    kubectl("apply", "-f", "-", input=MANIFEST.format(ns=ns))
    cluster_ip = kubectl("get", "svc", "web", "-n", ns, "-o", "jsonpath={.spec.clusterIP}").stdout
    web = f"web.{ns}.svc.cluster.local."
    db = f"db.{ns}.svc.cluster.local."

    # A: the ClusterIP, authoritative, TTL 5
    r = _until(lambda: (x := dns_server.query(web)).answer and x)
    assert r, "web never resolved"
    assert r.rcode() == dns.rcode.NOERROR and r.flags & dns.flags.AA
    assert _records(r) == {cluster_ip}
    assert r.answer[0].ttl == 5

    # headless: the ready endpoint addresses; per-hostname names
    r = _until(lambda: len(_records(x := dns_server.query(db))) == 2 and x)
    assert r, "headless service never resolved to its two ready endpoints"
    assert _records(r) == {"10.88.7.1", "10.88.7.2"}
    assert _records(dns_server.query(f"db-1.{db}")) == {"10.88.7.2"}
    assert dns_server.query(f"db-2.{db}").rcode() == dns.rcode.NXDOMAIN  # not ready

    # SRV for named ports: ClusterIP -> the service name; headless -> each endpoint
    r = dns_server.query(f"_http._tcp.{web}", "SRV")
    assert _records(r, "SRV") == {f"0 100 80 {web}"}
    assert _records(dns_server.query(f"_metrics._udp.{web}", "SRV"), "SRV") == {f"0 100 9090 {web}"}
    r = dns_server.query(f"_pg._tcp.{db}", "SRV")
    assert _records(r, "SRV") == {f"0 50 5432 db-0.{db}", f"0 50 5432 db-1.{db}"}

    # unknown names in the domain: NXDOMAIN with the SOA; a known name without AAAA: NODATA
    r = dns_server.query(f"nope.{ns}.svc.cluster.local.")
    assert r.rcode() == dns.rcode.NXDOMAIN
    assert [rr.rdtype for rr in r.authority] == [dns.rdatatype.SOA]
    r = dns_server.query(web, "AAAA")
    assert r.rcode() == dns.rcode.NOERROR and not r.answer and r.authority

    # TCP answers the same
    r = dns_server.query(web, tcp=True)
    assert _records(r) == {cluster_ip}

    # no upstream: names outside the domain are refused
    assert dns_server.query("example.org.").rcode() == dns.rcode.REFUSED

    # a deleted service disappears
    kubectl("delete", "svc", "web", "-n", ns)
    r = _until(lambda: (x := dns_server.query(web)).rcode() == dns.rcode.NXDOMAIN and x)
    assert r, "web still resolves after its deletion"


def test_forwarding_to_upstream(server: RunningServer, kubectl: Kubectl, ns: str) -> None:
    """Names outside the cluster domain go to ``--upstream`` (here a second local server
    serving another domain), over UDP and over TCP."""
    kubectl("create", "service", "clusterip", "fwd", "--tcp=80:80", "-n", ns)
    cluster_ip = kubectl("get", "svc", "fwd", "-n", ns, "-o", "jsonpath={.spec.clusterIP}").stdout
    upstream = DNSProcess(server.kubeconfig, "--domain", "upstream.test")
    try:
        front = DNSProcess(server.kubeconfig, "--upstream", f"127.0.0.1:{upstream.port}")
        try:
            name = f"fwd.{ns}.svc.upstream.test."
            r = _until(lambda: (x := front.query(name)).answer and x)
            assert r, "forwarded name never resolved"
            assert _records(r) == {cluster_ip}
            # the upstream's reply is passed on as it is (as CoreDNS's forward plugin does)
            assert _records(front.query(name, tcp=True)) == {cluster_ip}
            assert front.query(f"nope.{ns}.svc.upstream.test.").rcode() == dns.rcode.NXDOMAIN
            # the front's own domain is still answered locally
            local = front.query(f"fwd.{ns}.svc.cluster.local.")
            assert _records(local) == {cluster_ip}
            assert local.flags & dns.flags.RA  # it offers recursion: it has an upstream
        finally:
            front.stop()
    finally:
        upstream.stop()
