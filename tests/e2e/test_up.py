"""``corral up``: one command starts a whole local cluster (server, scheduler, controllers
and a real agent), prints the kubeconfig line, runs pods from the offline demo image,
resumes the same cluster after a simulated host reboot (every process gone, mounts and
network namespaces reset) with the same pods running again and nothing created twice,
and stops cleanly on Ctrl-C.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import signal
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from upkit import Up, children_of

from conftest import Kubectl
from corral.testing.agent import simulate_reboot
from corral.testing.process import free_port
from corral.testing.wait import eventually

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="corral up's agents need root here")


@pytest.fixture
def up(tmp_path: Path) -> Iterator[Up]:
    u = Up(tmp_path / "corral", free_port())
    yield u
    u.stop()


def _check_service(k: Kubectl) -> None:
    """The Service path of a ``corral up`` cluster: EndpointSlices from the controller, the
    agent's proxy (ClusterIP from the host reaches both pods), its node-local DNS."""
    k("expose", "deployment", "web", "--port=80", "--target-port=8080")
    ip = k("get", "svc", "web", "-o", "jsonpath={.spec.clusterIP}").stdout
    names = {p["metadata"]["name"] for p in _pods(k)}
    seen: set[str] = set()

    def both_answer() -> bool:
        try:
            with urllib.request.urlopen(f"http://{ip}/", timeout=2) as r:
                seen.add(r.read().decode().strip())
        except OSError:
            return False
        return seen == names

    eventually(both_answer, timeout=30)
    pod = sorted(names)[0]

    def resolves() -> bool:
        res = k("exec", pod, "--", "nslookup", "web.default.svc.cluster.local", check=False)
        return ip in res.stdout

    eventually(resolves, timeout=20)
    assert k("exec", pod, "--", "wget", "-qO-", "http://web/").stdout.strip() in names


def _pods(k: Kubectl) -> list[dict]:  # type: ignore[type-arg]
    return list(json.loads(k("get", "pods", "-o", "json").stdout)["items"])


def _all_running(k: Kubectl, n: int, restarts: int = 0) -> bool:
    pods = _pods(k)
    return len(pods) == n and all(
        (p.get("status") or {}).get("phase") == "Running"
        and "running" in p["status"]["containerStatuses"][0]["state"]
        and p["status"]["containerStatuses"][0]["restartCount"] >= restarts
        for p in pods
    )


def test_up_runs_the_demo_image_resumes_after_a_reboot_and_stops_on_ctrl_c(up: Up) -> None:
    out = up.start()
    assert f"export KUBECONFIG={up.data}/kubeconfig" in out
    assert "Ready" in out  # progress: the node came up
    k = Kubectl(up.data / "kubeconfig", up.data.parent / "kubecache")
    nodes = json.loads(k("get", "nodes", "-o", "json").stdout)["items"]
    assert len(nodes) == 1
    if shutil.which("runc"):  # oci: the server gave the node a pod CIDR; pods take IPs in it
        cidr = ipaddress.ip_network(nodes[0]["spec"]["podCIDR"])
        assert cidr.subnet_of(ipaddress.ip_network("10.89.0.0/16"))
    serve = "echo $(hostname) > /tmp/index.html; exec httpd -f -p 8080 -h /tmp"
    image = "--image=corral.local/busybox:1.35"
    k("create", "deployment", "web", image, "--replicas=2", "--", "sh", "-c", serve)
    eventually(lambda: _all_running(k, 2), timeout=60)
    if shutil.which("runc"):
        assert all(ipaddress.ip_address(p["status"]["podIP"]) in cidr for p in _pods(k))
    if shutil.which("runc") and shutil.which("iptables-restore"):
        _check_service(k)
    before = {p["metadata"]["uid"] for p in _pods(k)}
    rs_before = json.loads(k("get", "rs", "-o", "json").stdout)["items"]

    up.kill()
    simulate_reboot(up.data)
    t0 = time.monotonic()
    up.start()
    # the containers died with the host: each is started again (restartCount 1) in place
    eventually(lambda: _all_running(k, 2, restarts=1), timeout=60)
    print(f"pods running again {time.monotonic() - t0:.1f} s after the restart")
    after = _pods(k)
    assert {p["metadata"]["uid"] for p in after} == before  # nothing created twice
    rs_after = json.loads(k("get", "rs", "-o", "json").stdout)["items"]
    assert [r["metadata"]["uid"] for r in rs_after] == [r["metadata"]["uid"] for r in rs_before]
    assert (
        "running-again"
        in k("exec", after[0]["metadata"]["name"], "--", "echo", "running-again").stdout
    )

    assert up.proc is not None
    up.proc.send_signal(signal.SIGINT)
    assert up.proc.wait(30) == 0
    eventually(lambda: not children_of(up.data), timeout=30)
