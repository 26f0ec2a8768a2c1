"""Endpoints and EndpointSlices for a Service, against a real server and kubectl.

The server runs its controller manager (``start_server(controllers=True)``) but no
scheduler and no agent: the test creates a Node object and pods bound to it, and plays
the kubelet by writing ``pods/status`` (phase, podIP, the Ready condition) with
``kubectl patch --subresource=status``. Deleted pods stay terminating (no agent finishes
them), which is what the terminating case needs.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from conftest import Kubectl, RunningServer, start_server
from corral.testing.wait import eventually

Obj = dict[str, Any]
NODE = "fake-node"


@pytest.fixture(scope="module")
def ep_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    srv = start_server(
        tmp_path_factory.mktemp("ep") / "data", extra=["--no-scheduler"], controllers=True
    )
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def kc(ep_server: RunningServer, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    return Kubectl(ep_server.kubeconfig, tmp_path_factory.mktemp("kubecache"))


class Cluster:
    def __init__(self, kc: Kubectl) -> None:
        self.kc = kc
        self.ns = "ep-" + uuid.uuid4().hex[:8]
        kc("create", "namespace", self.ns)

    def apply(self, obj: Obj) -> None:
        self.kc("apply", "-n", self.ns, "-f", "-", input=json.dumps(obj))

    def pod(self, name: str, ip: str, ready: bool = True, app: str = "web") -> None:
        self.apply(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": name, "labels": {"app": app}},
                "spec": {
                    "nodeName": NODE,
                    "containers": [
                        {
                            "name": "c",
                            "image": "busybox",
                            "ports": [{"name": "http", "containerPort": 8080}],
                        }
                    ],
                },
            }
        )
        self.status(name, ip, ready)

    def status(self, name: str, ip: str, ready: bool) -> None:
        cond = {"type": "Ready", "status": "True" if ready else "False"}
        body = {"status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}], "conditions": [cond]}}  # fmt: skip
        self.kc(
            "patch", "pod", name, "-n", self.ns, "--subresource=status", "--type=merge",
            "-p", json.dumps(body),
        )  # fmt: skip

    def get_json(self, *args: str) -> Obj:
        out: Obj = json.loads(self.kc("get", "-n", self.ns, *args, "-o", "json").stdout)
        return out

    def slices(self) -> list[Obj]:
        items: list[Obj] = self.get_json("endpointslices", "-l", "kubernetes.io/service-name=web")[
            "items"
        ]
        return items

    def slice_endpoints(self) -> dict[str, Obj]:
        """Pod name -> endpoint, over every slice of the Service."""
        return {e["targetRef"]["name"]: e for s in self.slices() for e in s.get("endpoints") or ()}

    def endpoints(self) -> tuple[list[str], list[str]]:
        """(ready IPs, not-ready IPs) of the Endpoints ``web``."""
        res = self.kc("get", "endpoints", "web", "-n", self.ns, "-o", "json", check=False)
        if res.returncode != 0:
            return [], []
        ready: list[str] = []
        not_ready: list[str] = []
        for subset in json.loads(res.stdout).get("subsets") or ():
            ready += [a["ip"] for a in subset.get("addresses") or ()]
            not_ready += [a["ip"] for a in subset.get("notReadyAddresses") or ()]
        return sorted(ready), sorted(not_ready)


def _conditions(c: Cluster) -> dict[str, tuple[bool, bool, bool]]:
    return {
        name: (e["conditions"]["ready"], e["conditions"]["serving"], e["conditions"]["terminating"])
        for name, e in c.slice_endpoints().items()
    }


@pytest.mark.kubectl
def test_service_endpoints_follow_its_pods(kc: Kubectl) -> None:
    c = Cluster(kc)
    kc("apply", "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": NODE, "labels": {"topology.kubernetes.io/zone": "zone-a"}},
    }))  # fmt: skip
    c.pod("web-0", "10.244.7.10")
    c.pod("web-1", "10.244.7.11")
    c.pod("other", "10.244.7.99", app="other")
    c.apply(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web"},
            "spec": {
                "selector": {"app": "web"},
                "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
            },
        }
    )

    # both pods, ready, in one slice with the resolved port
    eventually(lambda: _conditions(c) == {
        "web-0": (True, True, False), "web-1": (True, True, False),
    })  # fmt: skip
    (slc,) = c.slices()
    assert slc["addressType"] == "IPv4"
    assert slc["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]
    labels = slc["metadata"]["labels"]
    assert labels["endpointslice.kubernetes.io/managed-by"] == "endpointslice-controller.k8s.io"
    (ref,) = slc["metadata"]["ownerReferences"]
    assert (ref["kind"], ref["name"], ref["controller"]) == ("Service", "web", True)
    assert slc["metadata"]["name"].startswith("web-")
    ep = c.slice_endpoints()["web-0"]
    assert (ep["addresses"], ep["nodeName"], ep["zone"]) == (["10.244.7.10"], NODE, "zone-a")

    eventually(lambda: c.endpoints() == (["10.244.7.10", "10.244.7.11"], []))
    table = kc("get", "endpoints", "web", "-n", c.ns).stdout
    assert "10.244.7.10:8080" in table and "10.244.7.11:8080" in table

    # a pod turning NotReady: ready=false in the slice, notReadyAddresses in Endpoints
    c.status("web-1", "10.244.7.11", ready=False)
    eventually(lambda: _conditions(c).get("web-1") == (False, False, False))
    eventually(lambda: c.endpoints() == (["10.244.7.10"], ["10.244.7.11"]))

    # scaling out: a new ready pod is added
    c.pod("web-2", "10.244.7.12")
    eventually(lambda: sorted(c.slice_endpoints()) == ["web-0", "web-1", "web-2"])
    eventually(lambda: c.endpoints() == (["10.244.7.10", "10.244.7.12"], ["10.244.7.11"]))
    assert len(c.slices()) == 1

    # a terminating pod (no agent finishes it): terminating in the slice, gone from Endpoints
    kc("delete", "pod", "web-0", "-n", c.ns, "--wait=false")
    eventually(lambda: _conditions(c).get("web-0") == (False, True, True))
    eventually(lambda: c.endpoints() == (["10.244.7.12"], ["10.244.7.11"]))

    # the Service deleted: its Endpoints go, its slices with it (garbage collector)
    kc("delete", "service", "web", "-n", c.ns)
    eventually(lambda: c.slices() == [])
    eventually(lambda: kc("get", "endpoints", "web", "-n", c.ns, check=False).returncode != 0)
