"""The API server's lifecycle loops write to the store directly, not through the API, so
the leader-election fence of elected clients' requests (``fencing.py``) does not reach
them by itself: ``Lifecycle.fence`` runs the same check before each item's writes. A
server whose Lease was taken over (it paused past the lease duration) writes nothing."""

from __future__ import annotations

import asyncio

import pytest

from corral.apiserver.fencing import Fencing
from corral.apiserver.lifecycle import Lifecycle
from corral.apiserver.store import Registry, WriteOptions
from corral.client.leaderelection import format_fence

LEASE = "corral-apiserver-lifecycle"


@pytest.fixture
def registry_namespaces() -> tuple[str, ...]:
    return ("default", "kube-system")


async def test_a_deposed_lifecycle_writes_nothing(registry: Registry) -> None:
    leases = registry.by_gvr[("coordination.k8s.io", "v1", "leases")]
    sas = registry.by_gvr[("", "v1", "serviceaccounts")]
    ns = registry.by_gvr[("", "v1", "namespaces")]
    lease = {
        "metadata": {"name": LEASE},
        "spec": {"holderIdentity": "other", "leaseTransitions": 1},
    }
    await registry.create(leases, "kube-system", lease, WriteOptions())
    await registry.create(ns, "", {"metadata": {"name": "n1"}}, WriteOptions())
    lifecycle = Lifecycle(registry)
    fencing = Fencing(registry)
    checked: list[str] = []

    async def fence() -> None:  # this server's fence from its term before the takeover
        checked.append("")
        await fencing.check(format_fence("kube-system", LEASE, "me", 0), "", "lifecycle", "", "")

    lifecycle.fence = fence
    lifecycle._seed()
    items = lifecycle.queue.qsize()
    task = asyncio.create_task(lifecycle.run())
    try:
        async with asyncio.timeout(5):
            while len(checked) < items:  # every item was looked at, and refused
                await asyncio.sleep(0.01)
        assert registry.entry(sas, "n1", "default") is None

        # the Lease is this server's again: the loops do their work
        def mine(o: dict[str, object]) -> bool:
            o["spec"] = {"holderIdentity": "me", "leaseTransitions": 0}
            return True

        held = registry.entry(leases, "kube-system", LEASE)
        assert held is not None
        await registry.update_obj(leases, held.key, mine)
        lifecycle._seed()
        async with asyncio.timeout(5):
            while registry.entry(sas, "n1", "default") is None:
                await asyncio.sleep(0.01)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
