"""Service data path: rule sync time, ClusterIP against direct, endpoint propagation
(issue 6's benchmark).

``python -m bench.services_perf --out FILE [--runs 5] [--services 1000] [--endpoints 10]
[--load-seconds 5] [--rounds 3] [--scale-to 5] [--source 10.88.0.1] [--skip-cluster]``

Three sections, figures reported, never asserted (exit status 0 unless the benchmark
itself breaks; a section that fails is recorded as ``{"error": ...}`` and the next runs):

1. ``rule_sync`` (root, no cluster): ``rules.service_ports`` + ``rules.iptables_ruleset``
   over 1,000 Services with 10 ready endpoints each (API-shaped Service and EndpointSlice
   dicts, as the proxier's informers hold them), the pure render timed in-process; the
   text applied with ``iptables-restore -w 5 --noflush`` (what ``IptablesBackend.sync``
   runs) inside a private network namespace ``corral-bench-XXXXXX``, first into empty
   tables, then again after one Service's endpoint changed (the incremental sync: this
   proxier always rewrites every chain, so it costs what a full sync does). One fresh
   namespace per run, deleted in ``finally``: the host's own tables are never touched.
   Median of ``--runs``; ``ip netns exec`` alone is timed too (it is in every apply).
2. ``throughput`` (root, runc, CNI): a fresh ``corral server`` (controllers and
   scheduler) and one ``corral agent --runtime oci --proxy iptables`` (busybox imported
   into its image store beforehand, as ``bench.pod_startup`` does), a 1-replica busybox
   ``httpd`` Deployment serving its hostname behind a ClusterIP Service, and an identical
   bare pod for the direct load (why two pods: ``throughput``'s docstring). From this
   process, aiohttp with a new connection per request (busybox httpd closes each one),
   16 concurrent, ``--load-seconds`` against the bare pod's IP and then the ClusterIP
   (order alternating), ``--rounds`` times. The load connects from ``--source``, by
   default the bridge's address 10.88.0.1 (inside the pod CIDR: the ClusterIP path is
   DNAT only, as for a pod); ``--source ''`` uses the host's default source (outside the
   pod CIDR: DNAT plus MASQUERADE), which suffers resent SYNs (``throughput``).
   Requests/s and p50/p99 latency per target, the ClusterIP/direct ratio per round,
   medians. Target: the kernel path costs < 10 %. The rate counts answers within the
   window; ``over_1s`` counts requests that waited for a resent SYN (mostly httpd's
   listen backlog of 9 overflowing), ``client_cpu_pct`` and
   ``machine_busy_pct`` say whether the load generator or the machine ran out first.
3. ``propagation``: the same Deployment scaled from 1 to ``--scale-to``, ``--rounds``
   times (back to 1 in between). A pod watch notes, per new pod, the arrival of the
   event in which its Ready condition turned True; 4 pollers request the ClusterIP in a
   tight loop and note when each hostname first answers (the time the request was
   *started*: the DNAT was in place by its SYN). Latency = first answer - Ready event.
   A poll picks one of the n endpoints at random, so the figure carries a sampling error
   of about n / poll rate (``polls_per_s`` is reported).

Cleanup, each step in ``finally``: the namespace (Deployment, Service, pods) is deleted
and its pods waited for, the agent stopped (its proxy removes its rules) and reset
(``AgentProcess.reset``), the server stopped; then ``iptables-save`` is checked for
KUBE-* lines (``cleanup.kube_rules_after``, should be 0; leftovers are removed as the e2e
fixture does) and ``net.ipv4.conf.all.route_localnet`` put back. Sections 2-3 refuse to
run while KUBE-* rules exist on the host (another proxy's: not ours to touch).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import uvloop

from bench.report import write_report
from bench.run import git_info, machine_info
from bench.server import BenchServer
from corral.proxy import rules
from corral.proxy.proxier import ROUTE_LOCALNET, IptablesBackend
from corral.testing.agent import AgentProcess

Obj = dict[str, Any]

IMAGE = "corral.local/busybox:1.35"
NS = "svc-bench"
APP = "web"
WEB = f"labelSelector=app%3D{APP}"  # the Deployment's pods
DIRECT = "direct"
POD_CIDR = "10.88.0.0/16"  # the agent's default, and its proxy's --cluster-cidr
BRIDGE_IP = "10.88.0.1"  # the bridge's (gateway's) address in it
CONCURRENCY = 16
POLLERS = 4


def _log(msg: str) -> None:
    print(f"[services {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile, ``q`` in 0..1 (as ``bench.pod_startup``)."""
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


def ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


# --- 1. rule sync in a private network namespace --------------------------------------------


def api_objects(services: int, endpoints: int, changed: int = -1) -> tuple[list[Obj], list[Obj]]:
    """``services`` ClusterIP Services (one named TCP port) and one EndpointSlice each with
    ``endpoints`` ready addresses; Service number ``changed`` has its last endpoint moved
    to another address (the incremental sync's one change)."""
    svcs: list[Obj] = []
    slices: list[Obj] = []
    for i in range(services):
        name = f"svc-{i:04d}"
        svcs.append(
            {
                "metadata": {"namespace": "bench", "name": name},
                "spec": {
                    "type": "ClusterIP",
                    "clusterIP": f"10.96.{i // 250}.{i % 250 + 1}",
                    "ports": [{"name": "http", "port": 80, "protocol": "TCP"}],
                },
            }
        )
        addrs = [f"10.{100 + i // 250}.{i % 250}.{j + 1}" for j in range(endpoints)]
        if i == changed:
            addrs[-1] = f"10.{100 + i // 250}.{i % 250}.200"
        slices.append(
            {
                "metadata": {
                    "namespace": "bench",
                    "name": f"{name}-abcde",
                    "labels": {rules.SERVICE_NAME_LABEL: name},
                },
                "addressType": "IPv4",
                "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
                "endpoints": [{"addresses": [a], "conditions": {"ready": True}} for a in addrs],
            }
        )
    return svcs, slices


@contextlib.contextmanager
def private_netns() -> Iterator[str]:
    """A fresh network namespace (loopback up), deleted on the way out."""
    name = f"corral-bench-{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def timed_run(argv: list[str], text: str = "") -> float:
    """Seconds ``argv`` took (spawn to exit); raises if it failed."""
    t0 = time.perf_counter()
    res = subprocess.run(argv, input=text.encode() if text else None, capture_output=True)
    dt = time.perf_counter() - t0
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:5])} failed: {res.stderr.decode().strip()}")
    return dt


def render(
    services: list[Obj], slices: list[Obj], stale: dict[str, set[str]] | None
) -> tuple[rules.Ruleset, float, float]:
    """The ruleset and the seconds ``service_ports`` and ``iptables_ruleset`` took."""
    t0 = time.perf_counter()
    ports = rules.service_ports(services, slices)
    t1 = time.perf_counter()
    ruleset = rules.iptables_ruleset(ports, cluster_cidr=POD_CIDR, stale=stale)
    return ruleset, t1 - t0, time.perf_counter() - t1


def rule_sync(n_services: int, n_endpoints: int, runs: int) -> dict[str, Any]:
    base = api_objects(n_services, n_endpoints)
    changed = api_objects(n_services, n_endpoints, changed=n_services // 2)
    per_run: list[dict[str, float]] = []
    size: dict[str, int] = {}
    for run in range(runs):
        full, sp_s, rs_s = render(*base, stale=None)
        incr, isp_s, irs_s = render(*changed, stale=full.chains)
        size = {
            "lines": full.text.count("\n"),
            "bytes": len(full.text),
            "nat_chains": len(full.chains["nat"]),
            "sep_chains_removed_by_incremental": incr.text.count("\n-X KUBE-SEP-"),
        }
        with private_netns() as ns:
            pre = ["ip", "netns", "exec", ns]
            exec_s = timed_run([*pre, "true"])
            restore = [*pre, "iptables-restore", "-w", "5", "--noflush"]
            apply_s = timed_run(restore, full.text)
            incr_apply_s = timed_run(restore, incr.text)
            saved = subprocess.run(
                [*pre, "iptables-save", "-t", "nat"], capture_output=True, text=True, check=True
            ).stdout
            sep = sum(1 for ln in saved.splitlines() if ln.startswith(":KUBE-SEP-"))
            if sep != n_services * n_endpoints:
                raise RuntimeError(f"{sep} KUBE-SEP chains after the incremental sync")
        per_run.append(
            {
                "render_ms": ms(sp_s + rs_s),
                "service_ports_ms": ms(sp_s),
                "iptables_ruleset_ms": ms(rs_s),
                "apply_ms": ms(apply_s),
                "incremental_render_ms": ms(isp_s + irs_s),
                "incremental_apply_ms": ms(incr_apply_s),
                "netns_exec_ms": ms(exec_s),
            }
        )
        _log(f"rule sync run {run + 1}/{runs}: {per_run[-1]}")
    keys = list(per_run[0])
    median = {k: round(statistics.median(r[k] for r in per_run), 2) for k in keys}
    iptables = subprocess.run(["iptables", "--version"], capture_output=True, text=True)
    return {
        "services": n_services,
        "endpoints_per_service": n_endpoints,
        "iptables": iptables.stdout.strip(),
        "ruleset": size,
        "median": median,
        "runs": per_run,
    }


# --- 2-3. a real node: throughput and propagation --------------------------------------------


def kube_rule_lines() -> int:
    out = subprocess.run(["iptables-save"], capture_output=True, text=True, check=True).stdout
    return sum(1 for ln in out.splitlines() if "KUBE-" in ln)


def cluster_skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "needs root (runc, CNI, iptables)"
    for tool in ("runc", "iptables-restore", "ip"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    if not Path("/usr/lib/cni/bridge").exists():
        return "the CNI plugins are not installed"
    if kube_rule_lines():
        return "KUBE-* rules exist on the host already (another proxy's): not ours to touch"
    return None


def httpd_spec() -> Obj:
    """A pod spec: busybox httpd on 8080 serving the pod's hostname."""
    script = "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 8080 -h /www"
    container = {
        "name": "httpd",
        "image": IMAGE,
        "command": ["sh", "-c", script],
        "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1},
    }
    return {"containers": [container], "terminationGracePeriodSeconds": 1}


def direct_pod() -> Obj:
    """The pod the direct load goes to: the Deployment's pod spec, not selected by the
    Service (see ``throughput`` for why not the Service's own pod)."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": DIRECT, "labels": {"bench": DIRECT}},
        "spec": httpd_spec(),
    }


def deployment(replicas: int) -> Obj:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": APP},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": APP}},
            "template": {
                "metadata": {"labels": {"app": APP}},
                "spec": httpd_spec(),
            },
        },
    }


def service() -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": APP},
        "spec": {
            "selector": {"app": APP},
            "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}],
        },
    }


def is_ready(pod: Obj) -> bool:
    for c in (pod.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return bool(c.get("status") == "True")
    return False


async def api(s: aiohttp.ClientSession, method: str, path: str, body: Obj | None = None) -> Obj:
    headers = {"Content-Type": "application/merge-patch+json"} if method == "PATCH" else {}
    data = orjson.dumps(body) if body is not None else None
    async with s.request(method, path, data=data, headers=headers) as r:
        text = await r.read()
        if r.status >= 300:
            raise RuntimeError(f"{method} {path}: {r.status} {text.decode()[:300]}")
        out: Obj = orjson.loads(text)
        return out


async def live_pods(s: aiohttp.ClientSession, query: str = "") -> list[Obj]:
    items: list[Obj] = (await api(s, "GET", f"/api/v1/namespaces/{NS}/pods?{query}"))["items"]
    return items


async def wait_for(what: str, cond: Any, timeout: float, interval: float = 0.2) -> Any:
    """Await ``cond()`` until it returns something truthy; fail with ``what`` after
    ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = await cond()
        if got:
            return got
        await asyncio.sleep(interval)
    raise TimeoutError(f"{what}: not within {timeout} s")


def http_session(limit: int, timeout: float, source: str = "") -> aiohttp.ClientSession:
    """A new TCP connection per request (busybox httpd closes each one anyway), from
    address ``source`` when given."""
    conn = aiohttp.TCPConnector(
        limit=limit, force_close=True, local_addr=(source, 0) if source else None
    )
    return aiohttp.ClientSession(connector=conn, timeout=aiohttp.ClientTimeout(total=timeout))


async def fetch(http: aiohttp.ClientSession, url: str) -> str:
    async with http.get(url) as r:
        body = await r.read()
        if r.status != 200:
            raise RuntimeError(f"{url}: {r.status}")
        return body.decode().strip()


def cpu_busy() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine from /proc/stat."""
    f = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    total = sum(f[:8])
    return total - f[3] - f[4], total


async def load(url: str, seconds: float, source: str = "") -> dict[str, Any]:
    """``CONCURRENCY`` closed-loop clients for ``seconds``: rate, latency, CPU.

    The rate counts the requests answered within the window (a straggler whose SYN was
    dropped and resent a second later does not stretch it); latencies are of every
    request started within it; CPU is sampled at the window's start and end."""
    lat: list[float] = []
    done_in_window = 0
    errors = 0
    cpu: dict[str, float] = {}
    async with http_session(CONCURRENCY, 5.0, source) as http:
        t_start = time.monotonic()
        deadline = t_start + seconds

        async def client() -> None:
            nonlocal errors, done_in_window
            while (t0 := time.monotonic()) < deadline:
                try:
                    await fetch(http, url)
                except (aiohttp.ClientError, TimeoutError, RuntimeError):
                    errors += 1
                    continue
                t1 = time.monotonic()
                lat.append(t1 - t0)
                if t1 <= deadline:
                    done_in_window += 1

        async def meter() -> None:
            busy0, total0 = cpu_busy()
            own0 = time.process_time()
            await asyncio.sleep(max(0.0, deadline - time.monotonic()))
            busy1, total1 = cpu_busy()
            cpu["client_cpu_pct"] = round(100 * (time.process_time() - own0) / seconds, 1)
            cpu["machine_busy_pct"] = round(100 * (busy1 - busy0) / max(1, total1 - total0), 1)

        async with asyncio.TaskGroup() as tg:
            tg.create_task(meter())
            for _ in range(CONCURRENCY):
                tg.create_task(client())
    return {
        "requests_per_s": round(done_in_window / seconds, 1),
        "p50_ms": ms(percentile(lat, 0.5)) if lat else None,
        "p99_ms": ms(percentile(lat, 0.99)) if lat else None,
        "max_ms": ms(max(lat)) if lat else None,
        "over_1s": sum(1 for x in lat if x >= 1.0),
        "requests": len(lat),
        "errors": errors,
        **cpu,
    }


async def throughput(
    pod_ip: str, web_ip: str, cluster_ip: str, rounds: int, seconds: float, source: str
) -> dict[str, Any]:
    """Direct load against ``pod_ip`` (the bare ``direct`` pod), ClusterIP load against
    the Service (its one endpoint ``web_ip``, an identical pod).

    Two pods, so that the 4-tuples one load leaves in TIME_WAIT in the pod (60 s) are
    never met by the other's SYNs (the host's TCP timestamp offset differs by destination
    address, ClusterIP or pod IP, so such a SYN can fail the pod's PAWS check and wait a
    second for its resend). Both loads connect from ``source`` (default the bridge's
    address, in the pod CIDR: a pod's view, DNAT only); with the host's default source
    (outside the pod CIDR, so also MASQUERADE --random-fully) the ClusterIP rate fell
    from run to run (2,700 -> 660/s, each client waiting out resent SYNs) in trials while
    bound to the bridge address it held: see the README."""
    targets = {"direct": f"http://{pod_ip}:8080/", "cluster_ip": f"http://{cluster_ip}/"}
    per_round: list[dict[str, Any]] = []
    for i in range(rounds):
        order = ["direct", "cluster_ip"] if i % 2 == 0 else ["cluster_ip", "direct"]
        res = {k: await load(targets[k], seconds, source) for k in order}
        res["ratio"] = round(
            res["cluster_ip"]["requests_per_s"] / max(res["direct"]["requests_per_s"], 1e-9), 3
        )
        per_round.append(res)
        _log(
            f"throughput round {i + 1}/{rounds}: direct {res['direct']['requests_per_s']}/s, "
            f"cluster IP {res['cluster_ip']['requests_per_s']}/s, ratio {res['ratio']}"
        )

    def med(target: str, key: str) -> float:
        return round(float(statistics.median(r[target][key] for r in per_round)), 2)

    median: dict[str, Any] = {
        t: {k: med(t, k) for k in ("requests_per_s", "p50_ms", "p99_ms")}
        for t in ("direct", "cluster_ip")
    }
    median["ratio"] = round(statistics.median(r["ratio"] for r in per_round), 3)
    median["kernel_path_cost_pct"] = round(100 * (1 - median["ratio"]), 1)
    return {
        "pod_ip": pod_ip,
        "web_ip": web_ip,
        "source": source or "(the host's default)",
        "cluster_ip": cluster_ip,
        "concurrency": CONCURRENCY,
        "seconds": seconds,
        "median": median,
        "runs": per_round,
    }


async def ready_events(
    s: aiohttp.ClientSession, rv: str, old: set[str], out: dict[str, float]
) -> None:
    """Note in ``out`` when the watch event arrives in which a new pod turned Ready."""
    path = f"/api/v1/namespaces/{NS}/pods?watch=1&resourceVersion={rv}&{WEB}"
    async with s.get(path, timeout=aiohttp.ClientTimeout(total=None)) as r:
        async for line in r.content:
            now = time.monotonic()
            obj = orjson.loads(line)["object"]
            name = obj["metadata"]["name"]
            if name not in old and name not in out and is_ready(obj):
                out[name] = now
    raise RuntimeError("the pod watch ended")


async def poll(
    http: aiohttp.ClientSession, url: str, seen: dict[str, float], count: list[int]
) -> None:
    """Request ``url`` in a tight loop; note when each hostname first answers."""
    while True:
        t0 = time.monotonic()
        try:
            name = await fetch(http, url)
        except (aiohttp.ClientError, TimeoutError, RuntimeError):
            continue
        count[0] += 1
        seen.setdefault(name, t0)


async def propagation_round(
    s: aiohttp.ClientSession, cluster_ip: str, n: int, source: str
) -> dict[str, Any]:
    listing = await api(s, "GET", f"/api/v1/namespaces/{NS}/pods?{WEB}")
    old = {p["metadata"]["name"] for p in listing["items"]}
    ready_at: dict[str, float] = {}
    seen: dict[str, float] = {}
    count = [0]

    def done() -> bool:
        new = set(ready_at)
        return len(new) >= n - len(old) and new <= set(seen)

    async with http_session(POLLERS, 1.0, source) as http:
        tasks = [
            asyncio.create_task(
                ready_events(s, listing["metadata"]["resourceVersion"], old, ready_at)
            )
        ]
        tasks += [
            asyncio.create_task(poll(http, f"http://{cluster_ip}/", seen, count))
            for _ in range(POLLERS)
        ]
        try:
            t0 = time.monotonic()
            await api(s, "PATCH", f"/apis/apps/v1/namespaces/{NS}/deployments/{APP}",
                      {"spec": {"replicas": n}})  # fmt: skip

            async def finished() -> bool:
                for t in tasks:
                    if t.done():
                        t.result()  # raises what stopped it
                return done()

            await wait_for(f"{n - len(old)} new pods ready and reached", finished, 90, 0.01)
            polls_per_s = count[0] / (time.monotonic() - t0)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    return {
        "latency_ms": {name: ms(seen[name] - ready_at[name]) for name in sorted(ready_at)},
        "polls_per_s": round(polls_per_s, 1),
    }


async def scale_to_one(s: aiohttp.ClientSession) -> None:
    await api(s, "PATCH", f"/apis/apps/v1/namespaces/{NS}/deployments/{APP}",
              {"spec": {"replicas": 1}})  # fmt: skip

    async def one_left() -> bool:
        return len(await live_pods(s, WEB)) == 1

    await wait_for("scaled back to 1 pod", one_left, 60)
    await asyncio.sleep(0.5)  # the proxy drops the gone endpoints


async def propagation(
    s: aiohttp.ClientSession, cluster_ip: str, rounds: int, n: int, source: str
) -> dict[str, Any]:
    per_round: list[dict[str, Any]] = []
    for i in range(rounds):
        per_round.append(await propagation_round(s, cluster_ip, n, source))
        _log(f"propagation round {i + 1}/{rounds}: {per_round[-1]}")
        await scale_to_one(s)
    lat = [v for r in per_round for v in r["latency_ms"].values()]
    return {
        "scale": f"1 -> {n}",
        "samples": len(lat),
        "p50_ms": round(percentile(lat, 0.5), 2),
        "p99_ms": round(percentile(lat, 0.99), 2),
        "min_ms": min(lat),
        "max_ms": max(lat),
        "runs": per_round,
    }


@contextlib.asynccontextmanager
async def node(work: Path) -> AsyncIterator[tuple[BenchServer, AgentProcess]]:
    """A server (controllers, scheduler) and one oci agent running the iptables proxy;
    everything stopped, reset and checked on the way out (``cleanup`` in the report)."""
    srv = BenchServer.start(work / "server")
    agent: AgentProcess | None = None
    try:
        from corral.agent.images.demo import build_busybox
        from corral.agent.images.store import ImageStore

        layout = build_busybox(work / "layout", "1.35")
        await ImageStore(work / "agent" / "images").import_archive(layout, name=IMAGE)
        agent = AgentProcess.start(
            srv.kubeconfig, f"svc-bench-{uuid.uuid4().hex[:4]}", "oci", work / "agent",
            extra=["--proxy", "iptables", "--pod-cidr", POD_CIDR],
        )  # fmt: skip
        yield srv, agent
    finally:
        try:
            if agent is not None:
                agent.stop()
                agent.reset()
        finally:
            srv.stop()


async def delete_workload(s: aiohttp.ClientSession) -> None:
    """Delete the Deployment (its ReplicaSet and pods) and the namespace; wait for the pods."""
    with contextlib.suppress(RuntimeError):
        await api(s, "DELETE", f"/apis/apps/v1/namespaces/{NS}/deployments/{APP}")
    with contextlib.suppress(RuntimeError):
        await api(s, "DELETE", f"/api/v1/namespaces/{NS}")

    async def gone() -> bool:
        return not await live_pods(s)

    await wait_for("the bench pods deleted", gone, 60)


async def on_a_node(args: argparse.Namespace, work: Path, report: Obj) -> None:
    async with node(work) as (srv, _agent), srv.session(16) as s:
        try:
            await api(s, "POST", "/api/v1/namespaces", {"metadata": {"name": NS}})
            await api(s, "POST", f"/apis/apps/v1/namespaces/{NS}/deployments", deployment(1))
            await api(s, "POST", f"/api/v1/namespaces/{NS}/pods", direct_pod())
            svc = await api(s, "POST", f"/api/v1/namespaces/{NS}/services", service())
            cluster_ip = svc["spec"]["clusterIP"]

            async def both_ready() -> dict[str, str]:
                ready = [p for p in await live_pods(s) if is_ready(p)]
                ips = {
                    DIRECT if p["metadata"]["name"] == DIRECT else APP: p["status"]["podIP"]
                    for p in ready
                    if (p.get("status") or {}).get("podIP")
                }
                return ips if len(ips) == 2 else {}

            ips = await wait_for("the web and direct pods Ready", both_ready, 90)
            pod_ip = ips[DIRECT]
            async with http_session(1, 1.0) as http:

                async def answers() -> bool:
                    try:
                        return bool(await fetch(http, f"http://{cluster_ip}/"))
                    except (aiohttp.ClientError, TimeoutError, RuntimeError):
                        return False

                await wait_for("the ClusterIP answers", answers, 30)
            _log(f"direct pod {pod_ip}, web pod {ips[APP]} behind ClusterIP {cluster_ip}")
            report["throughput"] = await section(
                throughput(
                    pod_ip, ips[APP], cluster_ip, args.rounds, args.load_seconds, args.source
                )
            )
            report["propagation"] = await section(
                propagation(s, cluster_ip, args.rounds, args.scale_to, args.source)
            )
        finally:
            await delete_workload(s)


async def section(work: Any) -> Any:
    """``await work``; a failure becomes ``{"error": ...}`` so the other sections go on."""
    try:
        return await work
    except Exception as e:
        import traceback

        traceback.print_exc()
        return {"error": f"{type(e).__name__}: {e}"}


def localnet() -> str:
    return Path("/proc/sys", *ROUTE_LOCALNET.split(".")).read_text().strip()


async def cluster_sections(args: argparse.Namespace, report: Obj) -> None:
    if reason := cluster_skip_reason():
        _log(f"throughput and propagation skipped: {reason}")
        report["throughput"] = report["propagation"] = {"skipped": reason}
        return
    localnet_before = localnet()
    try:
        with tempfile.TemporaryDirectory(prefix="corral-bench-svc-") as tmp:
            await on_a_node(args, Path(tmp), report)
    finally:
        left = kube_rule_lines()
        if left:  # the agent's proxy failed to clean up: do it, as the e2e fixture does
            await IptablesBackend(localhost_nodeports=False).cleanup()
        if localnet() != localnet_before:
            Path("/proc/sys", *ROUTE_LOCALNET.split(".")).write_text(localnet_before)
        report["cleanup"] = {
            "kube_rules_after": left,
            "kube_rules_after_fallback": kube_rule_lines(),
            "route_localnet_restored": localnet() == localnet_before,
        }
        _log(f"cleanup: {report['cleanup']}")


def summary(report: Obj) -> str:
    parts: list[str] = []
    rs = report.get("rule_sync") or {}
    if "median" in rs:
        m = rs["median"]
        parts.append(
            f"{rs['services']}x{rs['endpoints_per_service']}: render {m['render_ms']} ms, "
            f"apply {m['apply_ms']} ms, incremental {m['incremental_render_ms']} + "
            f"{m['incremental_apply_ms']} ms"
        )
    tp = report.get("throughput") or {}
    if "median" in tp:
        m = tp["median"]
        parts.append(
            f"direct {m['direct']['requests_per_s']}/s vs ClusterIP "
            f"{m['cluster_ip']['requests_per_s']}/s (ratio {m['ratio']}, "
            f"cost {m['kernel_path_cost_pct']} %)"
        )
    pr = report.get("propagation") or {}
    if "p50_ms" in pr:
        parts.append(f"propagation p50 {pr['p50_ms']} ms, p99 {pr['p99_ms']} ms")
    return "services: " + ("; ".join(parts) or "no figures")


async def main_async(args: argparse.Namespace) -> Obj:
    report: Obj = {"command": sys.argv, "machine": machine_info(), "git": git_info()}
    if os.geteuid() != 0 or shutil.which("iptables-restore") is None:
        report["rule_sync"] = {"skipped": "needs root and iptables-restore (a network namespace)"}
    else:
        _log(f"rule sync: {args.services} services x {args.endpoints} endpoints ...")
        report["rule_sync"] = await section(
            asyncio.to_thread(rule_sync, args.services, args.endpoints, args.runs)
        )
    if not args.skip_cluster:
        await cluster_sections(args, report)
    report["machine"]["loadavg_at_end"] = Path("/proc/loadavg").read_text().split()[:3]
    return report


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.services_perf")
    p.add_argument("--out", default="bench/results/services.json")
    p.add_argument("--runs", type=int, default=5, help="rule sync runs")
    p.add_argument("--services", type=int, default=1000)
    p.add_argument("--endpoints", type=int, default=10)
    p.add_argument("--load-seconds", type=float, default=5.0)
    p.add_argument("--rounds", type=int, default=3, help="throughput and propagation rounds")
    p.add_argument("--scale-to", type=int, default=5)
    p.add_argument(
        "--source",
        default=BRIDGE_IP,
        help="address the load connects from ('' = the host's default: masqueraded)",
    )
    p.add_argument("--skip-cluster", action="store_true", help="rule sync only")
    args = p.parse_args(argv)
    t0 = time.monotonic()
    report = uvloop.run(main_async(args))
    report["duration_s"] = round(time.monotonic() - t0, 1)
    write_report(args.out, report)
    print(summary(report), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
