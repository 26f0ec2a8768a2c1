"""What the e2e tests share (imported by name, as ``tests/conftest.py`` is: a conftest.py
here would shadow that one): a ``Cluster`` (a real server, one real ``corral agent``
subprocess and the real kubectl, with the kubectl calls the tests repeat), the context
manager that starts one and tears it down, the module fixture ``cluster`` (one cluster
per runtime a test module runs under: ``from e2ekit import cluster``), and builders and
predicates for pod manifests and pod JSON.

``running_cluster`` starts the server (with the controller manager when asked), for the
``oci`` runtime a local registry holding ``busybox:1.35`` built from busybox-static (the
agent pulls ``docker.io`` through it, never Docker Hub), and the agent. On the way out it
deletes every workload and pod, waits for the agent to finish them, then stops the agent,
resets its data directory (which also deletes the agent's bridge), and stops the registry
and the server: nothing is left behind (shims, network namespaces, mounts, the bridge)
even when a test failed. When another test run on the same host holds the default bridge
``corral0``, the agent gets a bridge and pod CIDR of its own (``pod_network_args``).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import shutil
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from conftest import Kubectl, RunningServer, start_server
from corral.testing.agent import AgentProcess
from corral.testing.registry import LocalRegistry, build_busybox, missing_tools, push
from corral.testing.wait import eventually

Obj = dict[str, Any]

RUNTIMES = ["process", "oci"]
IMAGE = "busybox:1.35"


def skip_reason(runtime: str) -> str | None:
    """Why pods of ``runtime`` cannot run here, or None."""
    if os.geteuid() != 0:
        return "e2e pods need root (cgroups, runc)"
    if runtime == "oci":
        if shutil.which("runc") is None:
            return "runc is not installed (apt-get install runc)"
        if not Path("/usr/lib/cni/bridge").exists():
            return "the CNI plugins are not installed (apt-get install containernetworking-plugins)"
        return missing_tools()
    return None


def require(runtime: str) -> None:
    """Skip the test (or the module's fixture) when pods of ``runtime`` cannot run here."""
    if reason := skip_reason(runtime):
        pytest.skip(reason)


@dataclass
class Cluster:
    server: RunningServer
    kubectl: Kubectl
    agent: AgentProcess
    runtime: str
    image: str
    registry: LocalRegistry | None
    prefix: str  # of the namespaces ``ns`` creates

    def ns(self) -> str:
        name = f"{self.prefix}-{uuid.uuid4().hex[:8]}"
        self.kubectl("create", "namespace", name)
        return name

    def apply(self, ns: str, manifest: Obj) -> None:
        self.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(manifest))

    def get(self, ns: str, what: str) -> Obj:
        out: Obj = json.loads(self.kubectl("get", what, "-n", ns, "-o", "json").stdout)
        return out

    def pod(self, ns: str, name: str) -> Obj:
        return self.get(ns, f"pod/{name}")

    def pods(self, ns: str, selector: str) -> list[Obj]:
        out = self.kubectl("get", "pods", "-n", ns, "-l", selector, "-o", "json").stdout
        items: list[Obj] = json.loads(out)["items"]
        return items

    def live_pods(self, ns: str, selector: str) -> list[Obj]:
        return [p for p in self.pods(ns, selector) if not p["metadata"].get("deletionTimestamp")]

    def logs(self, ns: str, name: str, *args: str) -> str:
        return str(self.kubectl("logs", name, "-n", ns, *args).stdout)

    def exec(self, ns: str, name: str, *argv: str, check: bool = True) -> str:
        return str(self.kubectl("exec", name, "-n", ns, "--", *argv, check=check).stdout)

    def events(self, ns: str, name: str) -> list[Obj]:
        """The Events about pod ``name``."""
        items: list[Obj] = self.get(ns, "events")["items"]
        return [e for e in items if e["involvedObject"].get("name") == name]

    def wait(self, what: str, pred: Callable[[], bool], timeout: float = 40.0) -> None:
        """Return once ``pred()`` holds; fail with ``what`` and the agent's log otherwise."""
        try:
            eventually(pred, timeout=timeout, interval=0.1)
        except AssertionError:
            raise AssertionError(
                f"{what}: not reached within {timeout} s\nagent log:\n{self.agent.log_tail(30)}"
            ) from None

    def wait_pod(
        self, ns: str, name: str, pred: Callable[[Obj], Any], timeout: float = 30.0
    ) -> Obj:
        """Pod ``name`` once ``pred(pod)`` holds; fail with its last status and the agent's
        log otherwise."""
        last: list[Obj] = []

        def check() -> bool:
            p = self.pod(ns, name)
            last[:] = [p]
            return bool(pred(p))

        try:
            eventually(check, timeout=timeout, interval=0.2)
        except AssertionError:
            raise AssertionError(
                f"pod {ns}/{name} never matched; last status:\n"
                f"{json.dumps(last[0].get('status') if last else None, indent=1)}\n"
                f"agent log:\n{self.agent.log_tail()}"
            ) from None
        return last[0]

    def wait_event(
        self, ns: str, name: str, reason: str, contains: str = "", timeout: float = 30.0
    ) -> Obj:
        """The first Event about pod ``name`` with ``reason`` and ``contains`` in its message."""
        found: list[Obj] = []

        def check() -> bool:
            found[:] = [
                e
                for e in self.events(ns, name)
                if e["reason"] == reason and contains in e["message"]
            ]
            return bool(found)

        eventually(check, timeout=timeout, interval=0.2)
        return found[0]


@contextlib.contextmanager
def running_cluster(
    base: Path,
    runtime: str,
    prefix: str,
    *,
    controllers: bool = False,
    workloads: str = "",
    agent_args: Sequence[str] = (),
    server_args: Sequence[str] = (),
    tls: bool = True,
) -> Iterator[Cluster]:
    """A cluster under ``base`` whose one agent runs ``runtime``, named ``PREFIX-RUNTIME-*``.

    ``controllers``: the server runs the controller manager too; ``workloads`` (kinds,
    comma-separated) are deleted before the pods on the way out, so that no controller
    makes new ones while the agent finishes them; ``agent_args`` are added to the agent's
    command line (e.g. ``["--proxy", "auto"]``), ``server_args`` to the server's (e.g.
    ``["--mesos-port", "P"]``); ``tls``: the agent serves HTTPS with a certificate from
    the cluster CA and checks its callers as a kubelet does (``agent_tls_args``); without
    it, a stand-alone agent's plain HTTP on one port, the admin token its only key.
    """
    srv = start_server(base / "server", controllers=controllers, extra=list(server_args))
    registry: LocalRegistry | None = None
    extra: list[str] = list(agent_args)
    try:
        if runtime == "oci":
            registry = LocalRegistry.start(base / "registry")
            layout = build_busybox(base / "layout", "1.35")
            push(layout, "1.35", f"{registry.host}/library/{IMAGE}")
            extra += ["--registry-mirror", f"docker.io=http://{registry.host}"]
            if "--bridge" not in extra:
                extra += pod_network_args(base / "agent")
        name = f"{prefix}-{runtime}-{uuid.uuid4().hex[:4]}"
        if tls and "--tls-cert-file" not in extra:
            extra += agent_tls_args(srv, name)
        agent = AgentProcess.start(srv.kubeconfig, name, runtime, base / "agent", extra=extra)
    except BaseException:
        if registry is not None:
            registry.stop()
        srv.stop()
        raise
    kubectl = Kubectl(srv.kubeconfig, base / "kubecache")
    try:
        yield Cluster(srv, kubectl, agent, runtime, IMAGE, registry, prefix)
        # the pods go with a grace of 1 s, not their own (5 s: a ``sleep`` as PID 1 ignores
        # SIGTERM): the agent stops each as for any delete, without the module waiting 5 s.
        # Workloads go first, orphaning their pods (the GC would delete those with their
        # own grace); a pod a controller still made meanwhile is deleted as it shows up.
        if workloads:
            kinds = with_owned_workloads(workloads)
            kubectl("delete", kinds, "--all", "-A", "--cascade=orphan", "--wait=false", check=False)

        def no_pods() -> bool:
            pods = json.loads(kubectl("get", "pods", "-A", "-o", "json").stdout)["items"]
            if any(not p["metadata"].get("deletionTimestamp") for p in pods):
                kubectl(
                    "delete", "pods", "--all", "-A", "--grace-period=1", "--wait=false", check=False
                )
            return not pods

        eventually(no_pods, timeout=30, interval=0.1)
    finally:
        agent.stop()
        # the server is not needed by the reset (local): both at once
        stopping = threading.Thread(target=srv.stop)
        stopping.start()
        try:
            agent.reset()
        finally:
            if registry is not None:
                registry.stop()
            stopping.join()


#: what a workload owns that makes pods in turn: orphaned with it, it would go on making
#: them as fast as the teardown deletes them (a Deployment's ReplicaSets, a CronJob's Jobs)
OWNED_WORKLOADS = {"deployments": "replicasets", "cronjobs": "jobs"}


def with_owned_workloads(workloads: str) -> str:
    """``workloads`` (kinds, comma-separated) and, after them, the kinds they own."""
    kinds = [k for k in workloads.split(",") if k]
    for kind in list(kinds):
        owned = OWNED_WORKLOADS.get(kind)
        if owned is not None and owned not in kinds:
            kinds.append(owned)
    return ",".join(kinds)


def agent_tls_args(srv: RunningServer, name: str, node_ip: str = "127.0.0.1") -> list[str]:
    """A serving certificate for agent ``name`` from the server's cluster CA, as ``corral
    server`` issues its own agents' (``pki/agent-NAME.{crt,key}``): the agent then speaks
    HTTPS and authenticates and authorises its callers as a kubelet does (the API server
    by its kubelet-client certificate, the metrics-server by its own), not by the admin
    token of a plain-HTTP test agent."""
    from corral.apiserver.certs import ensure_serving_pair_in_child

    crt, key = ensure_serving_pair_in_child(srv.data_dir, f"agent-{name}", [name, node_ip])
    return ["--tls-cert-file", str(crt), "--tls-private-key-file", str(key)]


def pod_network_args(agent_dir: Path) -> list[str]:
    """The agent's default bridge (``corral0``, 10.88.0.0/16: what the tests expect) unless
    another cluster on this host holds it (another test run's, on a shared machine);
    then a bridge and /16 of this cluster's own, so the runs need not wait on each other
    (tests that name 10.88.0.1 then fail for that reason)."""
    from corral.agent.drivers.bridges import bridge, interfaces

    default = bridge("corral0")
    if default is None or not default.why_busy(agent_dir):
        return []
    taken = [ipaddress.ip_interface(a).network for i in interfaces() for a in i.addresses]
    for second in range(200, 250):
        net = ipaddress.ip_network(f"10.{second}.0.0/16")
        if not any(net.overlaps(t) for t in taken):
            return ["--bridge", f"ce2e-{uuid.uuid4().hex[:6]}", "--pod-cidr", str(net)]
    return []


@pytest.fixture(scope="module", params=RUNTIMES)
def cluster(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    """A cluster per runtime (skipped where it cannot run) for the test module; its
    namespaces and agent are named after the module (``test_pods``: ``pods-*``). A
    module's ``AGENT_ARGS`` (a list) are added to the agent's command line."""
    runtime: str = request.param
    require(runtime)
    prefix = request.module.__name__.removeprefix("test_").replace("_", "-")
    base = tmp_path_factory.mktemp(f"{prefix}-{runtime}")
    agent_args = list(getattr(request.module, "AGENT_ARGS", ()))
    with running_cluster(base, runtime, prefix, agent_args=agent_args) as c:
        yield c


# --- pod manifests and pod JSON -----------------------------------------------------------


def pod_manifest(name: str, image: str, command: list[str], **spec: Any) -> Obj:
    """A one-container (``main``) Pod; ``container=`` adds to the container, the other
    keywords to the pod spec."""
    container: Obj = {"name": "main", "image": image, "command": command}
    container.update(spec.pop("container", {}))
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": [container], "terminationGracePeriodSeconds": 5, **spec},
    }


def container_state(pod: Obj, name: str | None = None, init: bool = False) -> Obj:
    """The status of container ``name`` (the first when None), or {}."""
    key = "initContainerStatuses" if init else "containerStatuses"
    for cs in (pod.get("status") or {}).get(key) or []:
        if name is None or cs["name"] == name:
            return dict(cs)
    return {}


def state_of(pod: Obj, name: str | None = None, init: bool = False) -> Obj:
    return dict(container_state(pod, name, init).get("state") or {})


def running(pod: Obj) -> bool:
    """Phase Running and the first container running."""
    return (pod.get("status") or {}).get("phase") == "Running" and "running" in state_of(pod)


def phase(want: str) -> Callable[[Obj], bool]:
    return lambda p: (p.get("status") or {}).get("phase") == want


def condition(pod: Obj, type_: str) -> str:
    """The status ("True", "False") of the pod's condition ``type_``, or ""."""
    for c in (pod.get("status") or {}).get("conditions") or []:
        if c["type"] == type_:
            return str(c["status"])
    return ""
