"""Fault scenario ``agents``: the node agent SIGKILLed under ``corral up``, under load.

``run(work, long=...)`` starts ``corral up`` (one node, ``testing/up.py``), runs two
Deployments of the demo image (``sleep``; one with an exec readiness probe) and, ``kills``
times at a random moment, SIGKILLs the agent process only (its containers' shims and the
containers stay), while pods keep being created: one just before each kill (it may be
caught half-started) and some right after it, while no agent runs. After each return:

- every pod that was Running and Ready before keeps its container: same containerID,
  same restartCount, same init process on the host (``runc state``, read here, not
  through the agent) (``healthy_pods_restarted``, must be 0);
- none of them turns not Running or not Ready meanwhile, nor does the Node (a watch
  of the namespace records every status written);
- the pods created meanwhile start (``pods_created_meanwhile``, ``pods_started``);
- ``corral up``'s output says the agent was started again, once per kill.

``agent_back_ready_s`` is kill to the node's next Lease renewal (the restarted agent
renews at once), the supervisor's back-off included (``apiserver/children.py``).
"""

from __future__ import annotations

import json
import os
import random
import signal
import statistics
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from corral.testing.process import free_port
from corral.testing.up import UpProcess, wait_clean
from corral.testing.wait import eventually

NS = "faults-agents"
IMAGE = "corral.local/busybox:1.35"  # the demo image ``corral up`` imports (cli/up.py)
#: what ``corral up`` prints (logs) when its supervisor starts the agent of NODE again
RESTART_SAID = "starting corral agent {node} again"
FLAKY = "if [ -e /tmp/blip ]; then rm /tmp/blip; exit 1; fi; touch /tmp/blip"


@dataclass
class Seen:
    """One healthy pod's container as first recorded."""

    name: str
    container_id: str
    restarts: int
    pid: int


@dataclass
class Figures:
    kills: int = 0
    restarted: set[str] = field(default_factory=set)
    meanwhile: list[str] = field(default_factory=list)
    churn: list[str] = field(default_factory=list)
    back_s: list[float] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)


def _pod(name: str, probed: bool) -> dict[str, Any]:
    c: dict[str, Any] = {
        "name": "main",
        "image": IMAGE,
        "imagePullPolicy": "IfNotPresent",
        "command": ["sleep", "3600"],
    }
    if probed:
        # fails every other run: a blip the default failureThreshold (3) absorbs, so the
        # pod is Ready throughout, unless a restarted agent forgets that it was Ready; a
        # generous timeout, so a slow ``runc exec`` on a loaded machine is not a failure
        c["readinessProbe"] = {
            "exec": {"command": ["sh", "-c", FLAKY]},
            "periodSeconds": 1,
            "timeoutSeconds": 10,
        }
    return {
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"containers": [c], "terminationGracePeriodSeconds": 1},
    }


def _deployment(name: str, replicas: int, probed: bool) -> dict[str, Any]:
    pod = _pod(name, probed)
    return {
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": pod["spec"]},
        },
    }


def _ready(pod: Any) -> bool:
    conds = (pod.status and pod.status.conditions) or []
    return (
        pod.status is not None
        and pod.status.phase == "Running"
        and any(c.type == "Ready" and c.status == "True" for c in conds)
    )


def agent_pids(data_dir: Path) -> list[int]:
    """Live ``corral agent`` processes of the cluster in ``data_dir`` (not zombies)."""
    root = str((data_dir / "agents").absolute())
    found = []
    for name in filter(str.isdigit, os.listdir("/proc")):
        try:
            argv = Path(f"/proc/{name}/cmdline").read_bytes().decode(errors="replace").split("\0")
            state = Path(f"/proc/{name}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        mine = any(a.startswith(root + "/") for a in argv)
        if state != "Z" and argv[1:4] == ["-m", "corral", "agent"] and mine:
            found.append(int(name))
    return found


def init_pid(data_dir: Path, node: str, container_id: str) -> int:
    """The container's init process on the host, as runc (not the agent) knows it; 0
    when runc has no such running container."""
    cid = container_id.split("://", 1)[-1]
    root = data_dir / "agents" / node / "oci" / "runc"
    res = subprocess.run(
        ["runc", "--root", str(root), "state", cid], capture_output=True, text=True
    )
    if res.returncode != 0:
        return 0
    state = json.loads(res.stdout)
    return int(state.get("pid") or 0) if state.get("status") == "running" else 0


class Watcher:
    """A watch on the scenario's pods in a thread: every status written for a pod in
    ``healthy`` that is not Running and Ready, or whose container changed, is a violation."""

    def __init__(self, api: Any, healthy: dict[str, Seen], figures: Figures) -> None:
        self.api, self.healthy, self.figures = api, healthy, figures
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="agents-watch", daemon=True)

    def _run(self) -> None:
        from kubernetes import client
        from kubernetes import watch as watch_mod

        watch: Any = watch_mod  # (untyped)
        v1: Any = client.CoreV1Api(self.api)
        rv = v1.list_namespaced_pod(NS).metadata.resource_version
        while not self.stop.is_set():
            w = watch.Watch()
            try:
                for ev in w.stream(
                    v1.list_namespaced_pod, NS, resource_version=rv, timeout_seconds=1
                ):
                    pod = ev["object"]
                    rv = pod.metadata.resource_version
                    self._check(ev["type"], pod)
            except Exception as e:  # 410 and the like: list again
                if self.stop.is_set():
                    return
                if "410" not in str(e):
                    self.figures.violations.append(f"watching pods failed: {e}")
                    return
                rv = v1.list_namespaced_pod(NS).metadata.resource_version

    def _check(self, type_: str, pod: Any) -> None:
        seen = self.healthy.get(pod.metadata.name)
        if seen is None:
            return
        statuses = (pod.status and pod.status.container_statuses) or []
        cs = statuses[0] if statuses else None
        if type_ == "DELETED" or not _ready(pod) or cs is None:
            phase = pod.status.phase if pod.status else None
            self.figures.violations.append(
                f"pod {seen.name} turned {type_} phase={phase} ready={_ready(pod)}"
            )
        elif cs.container_id != seen.container_id or cs.restart_count != seen.restarts:
            self.figures.restarted.add(seen.name)

    def __enter__(self) -> Watcher:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(10)


class Scenario:
    def __init__(self, up: UpProcess, api: Any, node: str, rng: random.Random) -> None:
        from kubernetes import client

        self.up, self.api, self.node, self.rng = up, api, node, rng
        # (the client's models are typed loosely; the scenario reads them as Any)
        self.v1: Any = client.CoreV1Api(api)
        self.apps: Any = client.AppsV1Api(api)
        self.leases: Any = client.CoordinationV1Api(api)
        self.figures = Figures()
        self.healthy: dict[str, Seen] = {}

    def setup(self, replicas: int) -> None:
        self.v1.create_namespace({"metadata": {"name": NS}})
        eventually(lambda: self._has_default_sa(), timeout=30)
        for name, probed in (("plain", False), ("probed", True)):
            self.apps.create_namespaced_deployment(NS, _deployment(name, replicas, probed))

        def all_ready() -> bool:
            pods = self.v1.list_namespaced_pod(NS).items
            return len(pods) == 2 * replicas and all(_ready(p) for p in pods)

        eventually(all_ready, timeout=60, interval=0.2)
        for p in self.v1.list_namespaced_pod(NS).items:
            cs = p.status.container_statuses[0]
            pid = init_pid(self.up.data_dir, self.node, cs.container_id)
            self.healthy[p.metadata.name] = Seen(
                p.metadata.name, cs.container_id, cs.restart_count, pid
            )
            if pid == 0:
                self.figures.violations.append(f"runc knows no process of {p.metadata.name}")

    def _has_default_sa(self) -> bool:
        return any(
            sa.metadata.name == "default"
            for sa in self.v1.list_namespaced_service_account(NS).items
        )

    def _renewed(self) -> float:
        lease = self.leases.read_namespaced_lease(self.node, "kube-node-lease")
        return float(lease.spec.renew_time.timestamp())

    def _create(self, name: str) -> None:
        self.v1.create_namespaced_pod(NS, _pod(name, probed=False))

    def kill_once(self, i: int, pause: tuple[float, float], meanwhile: int) -> None:
        """Create a pod, wait a random moment, SIGKILL the agent, create ``meanwhile``
        pods while none runs, and wait for the agent's next Lease renewal."""
        data = self.up.data_dir
        churn = f"churn-{i}"
        self._create(churn)
        self.figures.churn.append(churn)
        time.sleep(self.rng.uniform(*pause))
        pids = eventually(lambda: agent_pids(data), timeout=60, interval=0.05)
        killed_at = time.time()
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        self.figures.kills += 1
        eventually(lambda: not set(pids) & set(agent_pids(data)), timeout=10, interval=0.01)
        for j in range(meanwhile):
            name = f"meanwhile-{i}-{j}"
            self._create(name)
            if not agent_pids(data):  # created while no agent ran
                self.figures.meanwhile.append(name)
        try:
            renewed = eventually(
                lambda: (t := self._renewed()) > killed_at and t, timeout=90, interval=0.05
            )
        except AssertionError:
            self.figures.violations.append(f"kill {i}: the agent did not renew its Lease in 90 s")
            return
        self.figures.back_s.append(round(renewed - killed_at, 3))
        self.verify(i)

    def verify(self, i: int) -> None:
        """After a return: the healthy pods' processes are the same, the node is Ready."""
        node = self.v1.read_node(self.node)
        if not any(c.type == "Ready" and c.status == "True" for c in node.status.conditions or []):
            self.figures.violations.append(f"kill {i}: node {self.node} not Ready after return")
        for seen in self.healthy.values():
            pod = self.v1.read_namespaced_pod(seen.name, NS)
            cs = pod.status.container_statuses[0]
            pid = init_pid(self.up.data_dir, self.node, cs.container_id)
            if (cs.container_id, cs.restart_count, pid) != (
                seen.container_id,
                seen.restarts,
                seen.pid,
            ):
                self.figures.restarted.add(seen.name)

    def started(self, names: list[str], timeout: float) -> int:
        """How many of ``names`` are Running within ``timeout`` seconds (all, or fewer
        once the deadline passed)."""
        deadline = time.monotonic() + timeout
        while True:
            running = {
                p.metadata.name
                for p in self.v1.list_namespaced_pod(NS).items
                if p.status is not None and p.status.phase == "Running"
            }
            if set(names) <= running or time.monotonic() > deadline:
                return len(set(names) & running)
            time.sleep(0.2)


@contextmanager
def _api(kubeconfig: Path) -> Iterator[Any]:
    from kubernetes import client, config

    cfg = client.Configuration()
    config.load_kube_config(  # type: ignore[no-untyped-call]
        config_file=str(kubeconfig), client_configuration=cfg
    )
    with client.ApiClient(cfg) as c:
        yield c


def _percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p99": None}
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return {"p50": round(statistics.median(ordered), 3), "p99": round(p99, 3)}


def run(work: Path, *, long: bool = False, seed: int | None = None) -> dict[str, object]:
    """The scenario (module docstring); the short form kills twice, the long one 20 times."""
    kills, replicas, meanwhile = (20, 4, 2) if long else (2, 2, 1)
    pause = (0.5, 12.0) if long else (0.2, 1.0)
    rng = random.Random(seed)
    up = UpProcess(work / "data", free_port())
    t0 = time.monotonic()
    node = ""
    sc: Scenario | None = None
    try:
        up.start()  # in the try: a start that fails midway is stopped and cleaned too
        with _api(up.kubeconfig) as api:
            from kubernetes import client

            nodes: Any = client.CoreV1Api(api).list_node()
            node = str(nodes.items[0].metadata.name)
            sc = Scenario(up, api, node, rng)
            sc.setup(replicas)
            with Watcher(api, sc.healthy, sc.figures):
                for i in range(kills):
                    sc.kill_once(i, pause, meanwhile)
                new = sc.figures.meanwhile + sc.figures.churn
                started = sc.started(new, timeout=60)
            said = up.output().count(RESTART_SAID.format(node=node))
    finally:
        try:
            up.signal(signal.SIGINT)
        finally:  # ``corral down`` cleans up even when up did not stop in time
            up.down()
    wait_clean(up.data_dir, timeout=30)
    f = sc.figures
    if said < f.kills:
        f.violations.append(f"corral up said {said} agent restarts for {f.kills} kills")
    if started < len(new):
        f.violations.append(f"{len(new) - started} of {len(new)} pods created under load never ran")
    if f.restarted:
        f.violations.append(f"healthy pods restarted: {sorted(f.restarted)}")
    return {
        "agent_kills": f.kills,
        "healthy_pods": len(sc.healthy),
        "healthy_pods_restarted": len(f.restarted),
        "pods_created_meanwhile": len(f.meanwhile),
        "pods_created_under_load": len(new),
        "pods_started": started,
        "agent_back_ready_s": _percentiles(f.back_s),
        "restarts_said": said,
        "wall_s": round(time.monotonic() - t0, 1),
        "violations": f.violations,
    }
