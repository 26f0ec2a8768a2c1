"""Fault scenario ``partition`` (issue 16, Deliver 3): node loss and network partition.

Two test hosts (``corral.testing.hosts``: network namespaces on a bridge, one real
``oci`` agent each) and a server with short node-lifecycle timers. For each cut, in a
fresh namespace, workloads that prefer the host to be cut: a Deployment (may run twice:
it is replaced), a one-replica StatefulSet, an Indexed Job with ``podReplacementPolicy:
Failed`` (and a podFailurePolicy that ignores DisruptionTarget: evicted pods are replaced
without back-off, but only once Failed, and are never counted as failures), and a command
task of a pymesos framework that is not partition-aware (``partition_mesos.py``). Then
the host is cut off:

``link``     the bridge-side end of its veth pair set down (nothing in or out);
``oneway``   inside that host's network namespace only, ``iptables -I OUTPUT -d <server>
             -j DROP``: its heartbeats stop, packets from the server still arrive.

Checked, as upstream Kubernetes behaves: the Node goes Ready=Unknown with the
``node.kubernetes.io/unreachable`` taint, its pods' Ready turns False, the Deployment's
pods are replaced on the other hosts after the tolerationSeconds (figure
``replace_lost_node_pods_s``: cut to replacements Running); the StatefulSet pod is not
recreated while the old pod object still exists (its deletion waits for the agent), the
Job index is not started again while its pod is terminating. When the host returns its
agent stops the stale pods (their containers' processes are gone from the machine:
``stale_pods_left``), and the released Job completes each index exactly once. The Mesos
task gets TASK_LOST, the framework relaunches it elsewhere, and on return the lost one
is killed and never reports TASK_RUNNING again.

"Ran twice" is observed on the machine itself, not through the API: every container's
command carries a per-run marker in its argv and the pod's uid in its environment, and a
sampler reads ``/proc`` every 100 ms; more than one live process for the StatefulSet's
identity or for one Job index at a time, or a Job index Succeeded twice, counts in
``ran_twice``. The sampler sees only this run's marker, never another cluster's.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import statistics
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from corral.testing.faults.partition_kit import (
    IMAGE,
    JOB_COMPLETIONS,
    WEB_REPLICAS,
    Api,
    Proc,
    Sampler,
    describe,
    live,
    ready_cond,
    running,
    scan,
    wait_for,
    workloads,
)
from corral.testing.faults.partition_mesos import MesosProbe
from corral.testing.hosts import TestHost, TestHosts, ip
from corral.testing.mesos import OPEN
from corral.testing.process import free_port

log = logging.getLogger("corral.testing.faults.partition")

Obj = dict[str, Any]

GRACE = "3s"  # --node-monitor-grace-period
LEASE_S = "4"  # the agents' --node-lease-duration-seconds: renewed every second
SETTLE_S = 2.0  # how long a cut is held after the replacements run (the twice-window)
HOSTS = 2  # the cut one and where its pods go


# --- cuts ----------------------------------------------------------------------------------------
def cut(hosts: TestHosts, h: TestHost, kind: str) -> Callable[[], object]:
    """Cut ``h`` off; returns the function that heals it. ``link``: the bridge's end of
    its veth down; ``oneway``: its own OUTPUT chain drops what goes to the server (the
    rule lives in the host's namespace only, and goes with it)."""
    if kind == "link":
        ip("link", "set", h.veth, "down")
        return lambda: ip("link", "set", h.veth, "up")
    rule = ["OUTPUT", "-d", hosts.gateway, "-j", "DROP"]
    h.run("iptables", "-w", "-I", *rule)
    return lambda: h.run("iptables", "-w", "-D", *rule, check=False)


@dataclass
class CutResult:
    replace_s: float | None
    ran_twice: list[str]
    stale_left: int
    violations: list[str]


def one_cut(
    api: Api, hosts: TestHosts, h: TestHost, kind: str, n: int, work: Path, probe: MesosProbe
) -> CutResult:
    """Workloads (and a Mesos task) on ``h``, cut, watch, heal, check. The namespace is
    deleted and the replacement task killed after."""
    ns = f"cut-{n}-{kind}"
    marker = f"cpart{uuid.uuid4().hex[:8]}"
    release = work / f"release-{n}"
    release.mkdir(mode=0o777)
    violations: list[str] = []
    api.call("POST", "/api/v1/namespaces", {"metadata": {"name": ns}})
    for path, body in workloads(marker, h.name, release):
        api.call("POST", "/" + path.format(ns=ns), body)
    pods_path = f"/api/v1/namespaces/{ns}/pods"

    def pods(app: str | None = None) -> list[Obj]:
        items = api.items(pods_path)
        if app is None:
            return items
        return [p for p in items if (p["metadata"].get("labels") or {}).get("app") == app]

    def all_running() -> bool:
        ps = [p for p in pods() if live(p)]
        return len(ps) == WEB_REPLICAS + 1 + JOB_COMPLETIONS and all(
            running(p) and ready_cond(p) == "True" for p in ps
        )

    show = lambda: describe(pods())  # noqa: E731
    wait_for(f"{ns}: every pod Running and Ready", all_running, 90, show)
    on_h = [p for p in pods() if p["spec"].get("nodeName") == h.name]
    web_lost = [p["metadata"]["name"] for p in on_h if p["metadata"]["labels"].get("app") == "web"]
    db_before = next(p for p in pods("db"))
    guarded = [p for p in on_h if p["metadata"]["labels"].get("app") != "web"]
    if db_before["spec"].get("nodeName") != h.name or len(guarded) < 1 + JOB_COMPLETIONS:
        violations.append(f"{ns}: the StatefulSet pod or a Job pod is not on {h.name}")
    lost_task, new_task = f"{ns}-lost", f"{ns}-replacement"
    probe.launch(lost_task, marker, h.name)
    wait_for(f"{lost_task} TASK_RUNNING", lambda: "TASK_RUNNING" in probe.states(lost_task), 60)
    sampler = Sampler(marker)
    replace_s: float | None = None
    with sampler.running():
        t0 = time.monotonic()
        heal = cut(hosts, h, kind)
        try:
            node_path = f"/api/v1/nodes/{h.name}"
            wait_for(
                f"{h.name} Ready=Unknown and tainted unreachable",
                lambda: (
                    ready_cond(api.get(node_path)) == "Unknown"
                    and any(
                        t.get("key") == "node.kubernetes.io/unreachable"
                        for t in api.get(node_path)["spec"].get("taints") or ()
                    )
                ),
                60,
            )

            def replaced() -> bool:
                elsewhere = [
                    p
                    for p in pods("web")
                    if live(p) and running(p) and p["spec"].get("nodeName") != h.name
                ]
                return len(elsewhere) >= WEB_REPLICAS

            wait_for(f"{ns}: the web pods replaced off {h.name}", replaced, 60, show)
            replace_s = time.monotonic() - t0
            if db_before["spec"].get("nodeName") == h.name:
                marked = [p for p in pods() if p["spec"].get("nodeName") == h.name]
                if any(ready_cond(p) == "True" for p in marked):
                    violations.append(f"{ns}: a pod on the lost node still Ready")
            wait_for(f"{lost_task} TASK_LOST", lambda: "TASK_LOST" in probe.states(lost_task), 30)
            probe.launch(new_task, marker, None, avoid=h.name)  # as such a framework does
            wait_for(
                f"{new_task} TASK_RUNNING", lambda: "TASK_RUNNING" in probe.states(new_task), 60
            )
            time.sleep(SETTLE_S)  # the window in which a second db-0 or index would start
            for p in pods("db"):
                if p["metadata"]["uid"] != db_before["metadata"]["uid"] and running(p):
                    violations.append(f"{ns}: db-0 recreated while the old one was unconfirmed")
        finally:
            heal()
        wait_for(
            f"{h.name} Ready again",
            lambda: ready_cond(api.get(f"/api/v1/nodes/{h.name}")) == "True",
            60,
        )

        def stale() -> list[Proc]:
            alive = {p["metadata"]["uid"] for p in pods() if live(p)}
            alive |= {t for t in (lost_task, new_task) if probe.states(t)[-1:] == ["TASK_RUNNING"]}
            return [p for p in scan(marker) if p.uid not in alive]

        with contextlib.suppress(TimeoutError):
            wait_for(f"{ns}: stale containers stopped", lambda: not stale(), 60, show)
        stale_left = len(stale())
        if stale_left:
            violations.append(f"{ns}: {stale_left} stale container(s) still running: {stale()}")
        (release / "go").touch()
        job_path = f"/apis/batch/v1/namespaces/{ns}/jobs/idx"
        try:
            wait_for(
                f"{ns}: job complete",
                lambda: any(
                    c.get("type") == "Complete" and c.get("status") == "True"
                    for c in api.get(job_path).get("status", {}).get("conditions") or ()
                ),
                90,
                show,
            )
            # the podFailurePolicy ignores them: the evicted pods keep their
            # DisruptionTarget condition (the agent's status patch merges conditions by
            # type) and are never counted as failures
            failed = api.get(job_path).get("status", {}).get("failed") or 0
            if failed:
                violations.append(f"{ns}: the Job counted {failed} evicted pod(s) as failed")
        except TimeoutError as e:
            violations.append(str(e))
    twice = sampler.twice()
    if sampler.kinds != {"web", "db", "job", "mesos"}:
        violations.append(f"{ns}: only {sorted(sampler.kinds)} seen in /proc (the check is blind)")
    succeeded: dict[str, int] = {}
    for p in pods():
        idx = (p["metadata"].get("annotations") or {}).get(
            "batch.kubernetes.io/job-completion-index"
        )
        if idx is not None and (p.get("status") or {}).get("phase") == "Succeeded":
            succeeded[idx] = succeeded.get(idx, 0) + 1
    twice += [f"job-{i} succeeded {k} times" for i, k in sorted(succeeded.items()) if k > 1]
    if probe.back_to_running(lost_task):
        twice.append(f"Mesos task {lost_task} (TASK_RUNNING after TASK_LOST)")
    probe.kill(new_task)
    job = api.get(f"/apis/batch/v1/namespaces/{ns}/jobs/idx")
    if int(job.get("status", {}).get("succeeded") or 0) != JOB_COMPLETIONS:
        violations.append(f"{ns}: job succeeded {job.get('status')}")
    if not web_lost:
        violations.append(f"{ns}: no web pod was on {h.name} (nothing to replace)")
    violations += [f"{ns}: {t} ran twice" for t in twice]
    api.call("DELETE", f"/api/v1/namespaces/{ns}")
    return CutResult(replace_s if web_lost else None, twice, stale_left, violations)


# --- the scenario --------------------------------------------------------------------------------
def skip_reason() -> str | None:
    """Why this scenario cannot run here, or None."""
    from corral.agent.images.demo import demo_tools_missing

    if os.geteuid() != 0:
        return "node partitions need root (network namespaces, runc, iptables)"
    for tool in ("runc", "nsenter", "iptables", "skopeo"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    if not Path("/usr/lib/cni/bridge").exists():
        return "the CNI plugins are not installed"
    return demo_tools_missing()


def _pct(xs: list[float], q: float) -> float | None:
    if not xs:
        return None
    if len(xs) == 1:
        return round(xs[0], 2)
    return round(statistics.quantiles(xs, n=100, method="inclusive")[int(q) - 1], 2)


def run(work: Path, *, long: bool = False) -> dict[str, object]:
    """Short: one link-down cut and one one-way drop. Long: four of each."""
    import asyncio

    from corral.agent.images.demo import build_busybox
    from corral.agent.images.store import ImageStore

    layout = build_busybox(work / "layout", "1.35")
    hosts = TestHosts.create(HOSTS, work)
    figures: list[float] = []
    twice: list[str] = []
    stale = 0
    violations: list[str] = []
    probe: MesosProbe | None = None
    try:
        mesos_port = free_port()
        srv = hosts.start_server(
            extra=[
                "--mesos-port", str(mesos_port), *OPEN,
                "--kube-controller-manager-arg", f"node-monitor-grace-period={GRACE}",
                "--kube-controller-manager-arg", "node-monitor-period=500ms",
            ]
        )  # fmt: skip
        if srv.port == mesos_port:  # two free_port calls may agree
            raise RuntimeError(f"the API server and the Mesos master both got {mesos_port}")
        for h in hosts.hosts:
            asyncio.run(ImageStore(h.data_dir / "images").import_archive(layout, name=IMAGE))
        hosts.start_agents(["--node-lease-duration-seconds", LEASE_S])
        api = Api(srv.url, srv.token, srv.ssl_context())
        probe = MesosProbe(f"{hosts.gateway}:{mesos_port}", IMAGE)  # it binds as the server
        probe.start()
        # the short form (the suite) holds one one-way drop, the subtler cut; the long
        # form alternates it with link-down cuts
        kinds = ["link", "oneway"] * 4 if long else ["oneway"]
        for n, kind in enumerate(kinds):
            h = hosts.hosts[n % HOSTS]
            try:
                res = one_cut(api, hosts, h, kind, n, work, probe)
            except TimeoutError as e:
                violations.append(f"cut {n} ({kind} on {h.name}): {e}\n{hosts.logs(15)}")
                continue
            if res.replace_s is not None:
                figures.append(res.replace_s)
            twice += res.ran_twice
            stale += res.stale_left
            violations += res.violations
    finally:
        if probe is not None:
            probe.stop()
        hosts.teardown()
    return {
        "cuts": len(figures),
        "replace_lost_node_pods_s": {"p50": _pct(figures, 50), "p99": _pct(figures, 99)},
        "ran_twice": len(twice),
        "stale_pods_left": stale,
        "violations": violations,
    }
