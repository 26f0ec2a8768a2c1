"""Corral's own async client and informers against a real server."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest

from conftest import RunningServer, start_server
from corral.api.errors import StatusError
from corral.client.informer import Informer
from corral.client.rest import Client, Resource

CONFIGMAPS = Resource("", "v1", "configmaps")


async def _until(pred, timeout: float = 10) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(timeout):
        while not pred():
            await asyncio.sleep(0.02)


async def test_client_verbs_and_errors(server: RunningServer) -> None:
    c = Client.from_kubeconfig(server.kubeconfig)
    try:
        name = "c-" + uuid.uuid4().hex[:6]
        made = await c.create(
            CONFIGMAPS, {"metadata": {"name": name}, "data": {"a": "1"}}, "default"
        )
        assert made["metadata"]["name"] == name
        got = await c.patch(CONFIGMAPS, name, {"data": {"b": "2"}}, "default")
        assert got["data"] == {"a": "1", "b": "2"}
        with pytest.raises(StatusError) as e:
            await c.create(CONFIGMAPS, {"metadata": {"name": name}}, "default")
        assert e.value.code == 409 and e.value.reason == "AlreadyExists"
        await c.delete(CONFIGMAPS, name, "default")
        with pytest.raises(StatusError) as e:
            await c.get(CONFIGMAPS, name, "default")
        assert e.value.code == 404
    finally:
        await c.close()


async def test_informer_follows_changes_and_indexes(server: RunningServer) -> None:
    c = Client.from_kubeconfig(server.kubeconfig)
    ns = "inf-" + uuid.uuid4().hex[:6]
    await c.create(Resource("", "v1", "namespaces", False), {"metadata": {"name": ns}})
    inf = Informer(c, CONFIGMAPS, namespace=ns)
    inf.add_index("team", lambda o: [o["metadata"].get("labels", {}).get("team", "")])
    seen: list[tuple[str, str]] = []
    inf.add_handler(lambda t, o, old: seen.append((t, o["metadata"]["name"])))
    task = asyncio.create_task(inf.run())
    try:
        await c.create(CONFIGMAPS, {"metadata": {"name": "before", "labels": {"team": "a"}}}, ns)
        await inf.wait_for_sync()
        await c.create(CONFIGMAPS, {"metadata": {"name": "after", "labels": {"team": "b"}}}, ns)
        await c.patch(CONFIGMAPS, "after", {"metadata": {"labels": {"team": "a"}}}, ns)
        await c.delete(CONFIGMAPS, "before", ns)
        await _until(lambda: ("DELETED", "before") in seen and len(inf.by_index("team", "a")) == 1)
        assert [o["metadata"]["name"] for o in inf.by_index("team", "a")] == ["after"]
        assert ("ADDED", "after") in seen and ("MODIFIED", "after") in seen
    finally:
        task.cancel()
        await c.close()


async def test_informer_relists_after_410(tmp_path: Path) -> None:
    srv = start_server(tmp_path / "d", extra=["--history", "5"])
    c = Client.from_kubeconfig(srv.kubeconfig)
    try:
        inf = Informer(c, CONFIGMAPS, namespace="default", watch_timeout=1)
        deleted: list[str] = []
        inf.add_handler(
            lambda t, o, old: deleted.append(o["metadata"]["name"]) if t == "DELETED" else None
        )
        await c.create(CONFIGMAPS, {"metadata": {"name": "gone"}}, "default")
        await inf._list()
        stale = inf.resource_version
        await c.delete(CONFIGMAPS, "gone", "default")
        for i in range(20):  # push "gone"'s deletion out of the 5-revision history
            await c.create(CONFIGMAPS, {"metadata": {"name": f"n{i}"}}, "default")
        inf.resource_version = stale
        task = asyncio.create_task(inf.run())
        await _until(lambda: "gone" in deleted and len(inf.store) >= 20)
        task.cancel()
    finally:
        await c.close()
        srv.stop()
