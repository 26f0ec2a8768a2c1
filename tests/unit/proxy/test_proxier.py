"""The proxier's sync loop: informer events coalesce into few syncs of the whole table;
the backend is cleaned up when the proxier stops."""

from __future__ import annotations

import asyncio
from typing import Any

from corral.client.rest import Client, KubeConfig
from corral.proxy.proxier import Proxier
from corral.proxy.rules import ServicePort


class RecordingBackend:
    def __init__(self) -> None:
        self.synced: list[list[ServicePort]] = []
        self.cleaned = False

    async def sync(self, ports: list[ServicePort]) -> None:
        self.synced.append(ports)

    async def cleanup(self) -> None:
        self.cleaned = True


def service(i: int) -> dict[str, Any]:
    return {
        "metadata": {"name": f"s{i}", "namespace": "d", "resourceVersion": str(i)},
        "spec": {"clusterIP": f"10.96.0.{i}", "ports": [{"port": 80, "protocol": "TCP"}]},
    }


async def test_bursts_of_events_coalesce() -> None:
    backend = RecordingBackend()
    client = Client(KubeConfig("http://127.0.0.1:9", "", None))  # never called
    proxier = Proxier(client, "n1", "127.0.0.1", backend, min_sync_interval=0.1)
    for inf in (proxier.services, proxier.slices):
        inf._synced.set()  # as if the first lists were in
    loop = asyncio.create_task(proxier._loop())
    try:
        await asyncio.sleep(0.05)
        assert len(backend.synced) == 1 and backend.synced[0] == []  # reconciled at start
        for i in range(1, 51):
            proxier.services.apply("ADDED", service(i))
            await asyncio.sleep(0.001)
        await asyncio.sleep(0.4)
        assert 2 <= len(backend.synced) <= 4
        assert len(backend.synced[-1]) == 50
        proxier.services.apply("DELETED", service(1))
        await asyncio.sleep(0.3)
        assert len(backend.synced[-1]) == 49
    finally:
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)
        await client.close()


async def test_run_cleans_up_on_cancel() -> None:
    backend = RecordingBackend()
    client = Client(KubeConfig("http://127.0.0.1:9", "", None))  # informers just retry
    proxier = Proxier(client, "n1", "127.0.0.1", backend)
    task = asyncio.create_task(proxier.run())
    await asyncio.sleep(0.1)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await client.close()
    assert backend.cleaned
