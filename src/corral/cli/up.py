"""``corral up``: the pieces of a local cluster beyond the API server.

``main`` (cli/main.py) builds the ``Server`` with the agent command lines from
``agent_commands`` (N local agents, each with its own data directory and logs/exec port),
then ``report_progress`` prints what is up as it comes up: the API server, then each node
as it turns Ready. Registry mirrors (``--registry-mirror``, ``--insecure-registry``, and
``DATA_DIR/registries.toml`` or ``registries.yaml``) go to every agent (``registry_args``). The demo image (``ensure_demo_image``) is imported into each agent's
image store before the agents start, so the README's tour runs with no registry at all.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import socket
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from corral.apiserver.server import Server
from corral.api.conditions import find_condition
from corral.util.clock import parse_rfc3339

log = logging.getLogger("corral.up")

DEMO_IMAGE = "corral.local/busybox:1.35"
#: the demo image's label: how many applets it links (the host's busybox's, all of them)
DEMO_LABEL = "dev.corral.demo.applets"
#: pod IPs of a ``corral up`` cluster (outside the agents' stand-alone default 10.88/16)
CLUSTER_CIDR = "10.89.0.0/16"


def controller_args() -> list[str]:
    """The controller manager of ``corral up`` gives each Node a pod CIDR (nodeipam)."""
    return ["--allocate-node-cidrs", "--cluster-cidr", CLUSTER_CIDR]


def node_names(count: int) -> list[str]:
    host = socket.gethostname().split(".")[0].lower() or "node"
    return [host] if count == 1 else [f"{host}-{i}" for i in range(count)]


def add_registry_flags(p: argparse.ArgumentParser) -> None:
    """``corral up --registry-mirror R=URL --insecure-registry HOST``: for every agent."""
    p.add_argument(
        "--registry-mirror",
        action="append",
        default=[],
        metavar="REGISTRY=URL[,URL]",
        help="every agent pulls REGISTRY's images from URL first (repeatable), e.g. "
        "docker.io=http://10.0.0.5:5000; DATA_DIR/registries.toml or registries.yaml "
        "configures mirrors too",
    )
    p.add_argument(
        "--insecure-registry",
        action="append",
        default=[],
        metavar="HOST[:PORT]",
        help="every agent contacts HOST over plain HTTP or without verifying its "
        "certificate (repeatable; loopback hosts always are)",
    )


def registry_args(data_dir: Path, mirrors: list[str], insecure: list[str]) -> list[str]:
    """The agents' registry flags: ``corral up``'s own, and ``--registry-config`` for the
    ``registries.toml``/``registries.yaml`` of the data directory. Checked here, so a bad
    mirror or file stops ``corral up`` with one line (``ValueError``) rather than every
    agent failing later."""
    from corral.agent.images.hosts import RegistryHosts
    from corral.agent.images.registries import cluster_file

    config = cluster_file(data_dir)
    RegistryHosts.from_flags(mirrors, insecure, None, config)
    out: list[str] = []
    for flag in mirrors:
        out += ["--registry-mirror", flag]
    for host in insecure:
        out += ["--insecure-registry", host]
    if config is not None:
        out += ["--registry-config", str(config.resolve())]
    return out


def agent_commands(
    data_dir: Path, count: int, runtime: str, registry: Sequence[str] = ()
) -> list[list[str]]:
    """``corral agent`` arguments of each local agent (ports 10250, 10251, ...);
    ``registry``: the flags ``registry_args`` made, given to every agent."""
    out = []
    for i, name in enumerate(node_names(count)):
        out.append(
            [
                "--name",
                name,
                "--runtime",
                runtime,
                "--data-dir",
                str(data_dir / "agents" / name),
                "--port",
                str(10250 + i),
                "--proxy",
                "auto" if i == 0 else "off",  # one proxy per host: the iptables are shared
            ]
        )
        # one bridge per agent; its /24 of pod IPs is the Node's spec.podCIDR, which the
        # controller manager allocates from CLUSTER_CIDR (controller_args)
        out[-1] += [
            "--pod-cidr",
            "auto",
            "--cluster-cidr",
            CLUSTER_CIDR,
            "--bridge",
            f"corral-n{i}",
            *registry,
        ]
    return out


def _ready(node: dict[str, Any], since: float) -> bool:
    """Ready, as reported by an agent that has run since ``since`` (unix seconds): the
    Ready condition of a node from before a restart does not count."""
    c = find_condition(node, "Ready")
    if c is None:
        return False
    try:
        beat = parse_rfc3339(str(c.get("lastHeartbeatTime")))
    except ValueError:
        return False
    return bool(c.get("status") == "True") and beat >= int(since)


async def report_progress(server: Server, names: list[str], t0: float, timeout: float) -> None:
    """Print each node as it becomes Ready (from the server's own cache)."""
    registry = server.registry
    assert registry is not None
    info = registry.by_gvr[("", "v1", "nodes")]
    since = time.time() - (time.monotonic() - t0)
    waiting = list(names)
    deadline = time.monotonic() + timeout
    while waiting and time.monotonic() < deadline:
        for name in list(waiting):
            entry = registry.entry(info, "", name)
            if entry is not None and _ready(registry.decode(info, entry), since):
                print(f"  node {name} Ready ({time.monotonic() - t0:.1f} s)", flush=True)
                waiting.remove(name)
        await asyncio.sleep(0.05)
    for name in waiting:
        print(f"  node {name} not Ready after {timeout:.0f} s; see the agent's log", flush=True)


async def report_service(
    what: str, bind: str, port: int, path: str, hint: str, t0: float, timeout: float = 20.0
) -> None:
    """Print a service's address once ``path`` answers 200 there (the Mesos master runs
    with the scheduler; they and Chronos run in this process or, with ``--loops
    processes``, as its children)."""
    import aiohttp

    host = "127.0.0.1" if bind in ("0.0.0.0", "::") else bind
    url = f"http://{host}:{port}"
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
        while time.monotonic() < deadline:
            try:
                async with session.get(f"{url}{path}") as r:
                    if r.status == 200:
                        print(
                            f"  {what} on {url} ({time.monotonic() - t0:.1f} s): {hint}", flush=True
                        )
                        return
            except (aiohttp.ClientError, OSError, TimeoutError):
                pass
            await asyncio.sleep(0.1)
    print(f"  {what} not answering on {url}; see its log", flush=True)


def prepare_agents(data_dir: Path, names: list[str]) -> None:
    """Import the demo image (busybox from this host) into each agent's image store. The
    image is labelled with the applets it links (``DEMO_LABEL``): one made by an older
    Corral (with fewer applets, no ``tar`` for ``kubectl cp``) is built and imported again."""
    import shutil

    from corral.agent.images.demo import build_busybox, demo_tools_missing, host_applets
    from corral.agent.images.store import ImageStore

    missing = demo_tools_missing()
    if missing:
        print(f"  demo image {DEMO_IMAGE} skipped: {missing}", flush=True)
        return
    want = str(len(host_applets()))
    layout: Path | None = None
    for name in names:
        store = ImageStore(data_dir / "agents" / name / "images")
        info = store.lookup(DEMO_IMAGE)
        if info is not None and (info.config.get("Labels") or {}).get(DEMO_LABEL) == want:
            continue
        if layout is None:
            layout = data_dir / "demo-image"
            marker = layout / DEMO_LABEL
            if not marker.exists() or marker.read_text() != want:
                shutil.rmtree(layout, ignore_errors=True)
                build_busybox(layout, "1.35", labels={DEMO_LABEL: want})
                marker.write_text(want)
        asyncio.run(store.import_archive(layout, name=DEMO_IMAGE))
        print(f"  demo image {DEMO_IMAGE} imported for {name}", flush=True)
