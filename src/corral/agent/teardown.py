"""Removing every workload a runtime driver holds, fast: ``corral agent --reset`` and
``corral down``.

``clear`` recovers what the driver has (``Driver.recover``), then works on all pods at
once: each pod's running containers are stopped together (SIGTERM, ``grace`` seconds,
SIGKILL: these pods are thrown away, not shut down politely, so the grace is short and
runs out once, not once per container), then its containers and its sandbox are
removed, at most ``limit`` pods at a time (the removals are CPU: runc, the CNI plugins,
``ip netns``). Only the driver's public methods are used. A pod that fails is logged and
the others go on. A light module on purpose: ``corral down`` imports it without the
kubelet.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

from corral.agent.drivers.base import Driver, Recovered

log = logging.getLogger("corral.agent.teardown")

#: seconds a container gets between SIGTERM and SIGKILL
GRACE = 0.5


async def clear(driver: Driver, grace: float = GRACE, limit: int = 8) -> tuple[int, int]:
    """Stop and remove every container and sandbox ``driver`` recovers (see the module
    docstring); return how many (containers, sandboxes)."""
    sandboxes, containers = await driver.recover()
    by_pod: dict[str, list[Recovered]] = {sb.pod_uid: [] for sb in sandboxes}
    for r in containers:
        by_pod.setdefault(r.handle.pod_uid, []).append(r)
    sandbox_of = {sb.pod_uid: sb for sb in sandboxes}
    gate = asyncio.Semaphore(limit)

    async def pod(uid: str, found: list[Recovered]) -> None:
        try:  # one pod that cannot be removed does not keep the others
            async with asyncio.TaskGroup() as tg:  # the grace runs out once per pod
                for r in found:
                    if r.exit is None:
                        tg.create_task(driver.stop(r.handle, grace))
            async with gate:
                for r in found:
                    await driver.remove(r.handle)
                if (sb := sandbox_of.get(uid)) is not None:
                    await driver.remove_sandbox(sb)
        except Exception:
            log.exception("pod %s: not removed completely", uid)

    async with asyncio.TaskGroup() as tg:
        for uid, found in by_pod.items():
            tg.create_task(pod(uid, found))
    return len(containers), len(sandboxes)


def remove_empty_cgroup_parents(name: str = "corral") -> None:
    """The pods' parent cgroup ``name`` in every hierarchy, where it is empty (``rmdir``
    only: another cluster's pods keep it); runc makes it and nothing else removes it."""
    for parent in Path("/sys/fs/cgroup").glob(f"*/{name}"):
        with contextlib.suppress(OSError):
            parent.rmdir()
