"""``pods/portforward`` end to end: the real kubectl and the real Python client, into real
``oci`` pods (busybox httpd in the pod's own network namespace).

kubectl 1.32 speaks SPDY/3.1 tunnelled in a WebSocket (``SPDY/3.1+portforward.k8s.io``);
the Python client the ``v4.channel.k8s.io`` port channels. One cluster for the module;
one pod serving two ports (8080 and 8081, different pages) behind a Service and a
Deployment's selector (no controllers run: kubectl resolves both to that pod itself).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import queue
import re
import select
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from e2ekit import Cluster, pod_manifest, require, running, running_cluster

pytestmark = pytest.mark.timeout(180)

SERVE = (
    "mkdir -p /www /www2 && echo page-8080 > /www/index.html && "
    "echo page-8081 > /www2/index.html && httpd -p 8081 -h /www2 && "
    "exec httpd -f -p 8080 -h /www"
)
#: one upload on port 9000 into /tmp/up (stdin held open: nc ends on the network's EOF)
SINK = ["sh", "-c", "sleep 3600 | nc -l -p 9000 > /tmp/up; sleep 3600"]
FORWARDING = re.compile(r"Forwarding from 127\.0\.0\.1:(\d+) -> (\d+)")


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cluster, str]]:
    """The cluster and the namespace of pod ``web`` (Service ``web``, Deployment ``web``)."""
    require("oci")
    base = tmp_path_factory.mktemp("portforward-oci")
    with running_cluster(base, "oci", "portforward", workloads="deployments") as c:
        ns = c.ns()
        labels = {"app": "web"}
        manifest = pod_manifest("web", c.image, ["sh", "-c", SERVE])
        manifest["metadata"]["labels"] = labels
        manifest["spec"]["containers"].append({"name": "sink", "image": c.image, "command": SINK})
        c.apply(ns, manifest)
        c.apply(
            ns,
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "web"},
                "spec": {"selector": labels, "ports": [{"port": 80, "targetPort": 8080}]},
            },
        )
        c.apply(
            ns,
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "web"},
                "spec": {
                    "replicas": 0,
                    "selector": {"matchLabels": labels},
                    "template": {
                        "metadata": {"labels": labels},
                        "spec": {"containers": [{"name": "main", "image": c.image}]},
                    },
                },
            },
        )
        c.wait_pod(ns, "web", running, timeout=60)
        yield c, ns


class Forwarder:
    """A running ``kubectl port-forward``: its output lines, read by a thread."""

    def __init__(
        self, c: Cluster, ns: str, target: str, *ports: str, env: dict[str, str] | None = None
    ) -> None:
        k = c.kubectl
        cmd = ["kubectl", "--kubeconfig", str(k.kubeconfig), "--cache-dir", str(k.cache_dir)]
        self.proc = subprocess.Popen(
            [*cmd, "port-forward", "-n", ns, target, *ports],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, **(env or {})},
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.output: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def local_ports(self, count: int) -> dict[int, int]:
        """{pod port: local port} once kubectl listens for ``count`` ports."""
        found: dict[int, int] = {}
        deadline = time.monotonic() + 30
        while len(found) < count and time.monotonic() < deadline:
            with contextlib.suppress(queue.Empty):
                line = self.lines.get(timeout=1)
                if line is None:
                    break
                self.output.append(line)
                if m := FORWARDING.search(line):
                    found[int(m.group(2))] = int(m.group(1))
        assert len(found) == count, f"kubectl port-forward did not start: {self.output}"
        return found

    def rest(self, timeout: float = 30) -> str:
        """The output until kubectl exits (within ``timeout``)."""
        self.proc.wait(timeout=timeout)
        while (line := self.lines.get(timeout=5)) is not None:
            self.output.append(line)
        return "".join(self.output)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        assert self.proc.stdout is not None
        self.proc.stdout.close()


@contextlib.contextmanager
def port_forward(c: Cluster, ns: str, target: str, *ports: str) -> Iterator[dict[int, int]]:
    """``kubectl port-forward TARGET PORTS`` running; {pod port: local port}."""
    fw = Forwarder(c, ns, target, *ports)
    try:
        yield fw.local_ports(len(ports))
    finally:
        fw.stop()


def get(port: int, path: str = "/") -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
        return str(r.read().decode())


def test_kubectl_forwards_two_ports_to_a_pod_in_sequence_and_at_once(
    web: tuple[Cluster, str],
) -> None:
    c, ns = web
    with port_forward(c, ns, "pod/web", ":8080", ":8081") as local:
        for _ in range(10):
            assert get(local[8080]) == "page-8080\n"
            assert get(local[8081]) == "page-8081\n"
        with ThreadPoolExecutor(8) as pool:
            pages = list(pool.map(lambda i: get(local[8080 + i % 2]), range(40)))
        assert pages == [f"page-{8080 + i % 2}\n" for i in range(40)]


def test_kubectl_forwards_to_a_service_and_a_deployment(web: tuple[Cluster, str]) -> None:
    c, ns = web
    with port_forward(c, ns, "svc/web", ":80") as local:  # to the Service's targetPort
        assert [get(local[8080]) for _ in range(50)] == ["page-8080\n"] * 50
    with port_forward(c, ns, "deployment/web", ":8081") as local:
        assert get(local[8081]) == "page-8081\n"


def test_kubectl_uploads_megabytes_and_half_closes(web: tuple[Cluster, str]) -> None:
    c, ns = web
    payload = os.urandom(4 * 1024 * 1024)
    with port_forward(c, ns, "pod/web", ":9000") as local:
        s = socket.create_connection(("127.0.0.1", local[9000]))
        with s:
            s.settimeout(30)
            s.sendall(payload)
            s.shutdown(socket.SHUT_WR)  # nc sees EOF, writes the file out and exits
            assert s.recv(100) == b""  # ... and its end comes back
    want = hashlib.md5(payload).hexdigest()

    def stored() -> bool:
        out = c.kubectl("exec", "web", "-n", ns, "-c", "sink", "--", "md5sum", "/tmp/up")
        return bool(out.stdout.split()[0] == want)

    c.wait("the upload in /tmp/up", stored, timeout=20)


def test_kubectl_shows_the_error_when_nothing_listens(web: tuple[Cluster, str]) -> None:
    c, ns = web
    # kubectl reports the agent's error and, as upstream's, gives up on the pod
    fw = Forwarder(c, ns, "pod/web", ":9999")
    try:
        local = fw.local_ports(1)
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", local[9999])) as s,
        ):
            s.settimeout(10)
            s.recv(100)
        out = fw.rest()
    finally:
        fw.stop()
    assert "an error occurred forwarding" in out and "-> 9999" in out, out
    assert "connect: connection refused" in out, out
    assert fw.proc.returncode == 1, out
    assert "error: lost connection to pod" in out, out


def _http_over(sock: socket.socket) -> str:
    """Send a GET on ``sock`` and read one whole response (by Content-Length)."""
    sock.sendall(b"GET / HTTP/1.0\r\nHost: pod\r\n\r\n")
    data = b""
    while True:
        r, _, _ = select.select([sock], [], [], 10)
        assert r, f"no answer; so far {data!r}"
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
        head, sep, body = data.partition(b"\r\n\r\n")
        if sep:
            m = re.search(rb"Content-Length: (\d+)", head, re.I)
            if m and len(body) >= int(m.group(1)):
                break
    return data.decode()


def finish(pf: Any) -> None:
    """Close a ``PortForward`` and its WebSocket (the client leaves the socket open when
    the server closed first: every port's connection ended)."""
    pf.close()
    for t in threading.enumerate():
        if t.name.startswith("Kubernetes port forward proxy"):
            t.join(10)
    pf.websocket.shutdown()


def test_python_client_portforward_raw_sockets(web: tuple[Cluster, str]) -> None:
    from kubernetes import client, config
    from kubernetes.stream import portforward

    c, ns = web
    cfg = client.Configuration()
    config.load_kube_config(config_file=str(c.server.kubeconfig), client_configuration=cfg)
    with client.ApiClient(cfg) as api_client:
        api = client.CoreV1Api(api_client)
        pf = portforward(api.connect_get_namespaced_pod_portforward, "web", ns, ports="8080,8081")
        assert pf.connected
        for port in (8080, 8081):
            sock = pf.socket(port)
            sock.setblocking(True)
            assert _http_over(sock).endswith(f"page-{port}\n")
            sock.close()
        for port in (8080, 8081):
            assert pf.error(port) is None
        finish(pf)

        # nothing listens on 9999: its error channel says so, 8080 still works
        pf = portforward(api.connect_get_namespaced_pod_portforward, "web", ns, ports="9999,8080")
        sock = pf.socket(8080)
        assert _http_over(sock).endswith("page-8080\n")
        deadline = time.monotonic() + 10
        while pf.error(9999) is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "connect: connection refused" in (pf.error(9999) or ""), pf.error(9999)
        finish(pf)


def test_missing_pod_and_raw_spdy_are_refused(web: tuple[Cluster, str]) -> None:
    c, ns = web
    res = c.kubectl("port-forward", "-n", ns, "pod/nope", ":80", check=False, timeout=30)
    assert res.returncode == 1
    assert 'pods "nope" not found' in res.stderr
    # without the WebSocket tunnel kubectl upgrades to raw SPDY/3.1, which Corral refuses
    # (at once: kubectl dials before it listens)
    fw = Forwarder(c, ns, "pod/web", ":8080", env={"KUBECTL_PORT_FORWARD_WEBSOCKETS": "false"})
    try:
        out = fw.rest()
    finally:
        fw.stop()
    assert fw.proc.returncode == 1, out
    assert "raw SPDY/3.1 is not supported by Corral" in out, out


def test_process_runtime_forwards_to_the_host_port(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """A ``process`` pod shares the host's network: the agent connects on the host."""
    require("process")
    base = tmp_path_factory.mktemp("portforward-process")
    www = base / "www"
    www.mkdir()
    (www / "index.html").write_text("from-the-host\n")
    with socket.socket() as s:  # a free port on the host for the pod's httpd
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    serve = ["/bin/busybox", "httpd", "-f", "-p", f"127.0.0.1:{port}", "-h", str(www)]
    with running_cluster(base, "process", "portforward") as c:
        ns = c.ns()
        c.apply(ns, pod_manifest("hostweb", c.image, serve))
        c.wait_pod(ns, "hostweb", running, timeout=30)
        with port_forward(c, ns, "pod/hostweb", f":{port}") as local:
            assert [get(local[port]) for _ in range(5)] == ["from-the-host\n"] * 5
