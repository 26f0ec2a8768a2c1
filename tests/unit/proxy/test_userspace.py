"""The userspace relay on 127.0.0.1 (no root): balancing, affinity, refusal, reconcile."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from corral.proxy.rules import Endpoint, ServicePort
from corral.proxy.userspace import UserspaceBackend
from corral.testing.process import free_port


@pytest.fixture
async def endpoints() -> AsyncIterator[list[Endpoint]]:
    """Three TCP servers on 127.0.0.1, each answering its own port."""
    servers: list[asyncio.Server] = []
    eps: list[Endpoint] = []
    for _ in range(3):

        async def answer(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            port = w.get_extra_info("sockname")[1]
            await r.read(1)  # the client's byte: the relay carries both directions
            w.write(str(port).encode())
            await w.drain()
            w.close()

        s = await asyncio.start_server(answer, "127.0.0.1", 0)
        servers.append(s)
        eps.append(Endpoint("127.0.0.1", s.sockets[0].getsockname()[1]))
    yield eps
    for s in servers:
        s.close()


async def ask(port: int) -> str:
    r, w = await asyncio.open_connection("127.0.0.1", port)
    w.write(b"x")
    await w.drain()
    data = await asyncio.wait_for(r.read(), 5)
    w.close()
    return data.decode()


def nodeport(eps: list[Endpoint], node_port: int, affinity: int = 0) -> ServicePort:
    return ServicePort("t", "web", "", "TCP", "10.96.0.10", 80, node_port, affinity, tuple(eps))


async def test_relays_to_every_endpoint_and_refuses_without_endpoints(
    endpoints: list[Endpoint],
) -> None:
    backend = UserspaceBackend(node_port_address="127.0.0.1")
    np = free_port()
    try:
        await backend.sync([nodeport(endpoints, np)])
        assert backend.addresses == [("127.0.0.1", np)]
        seen = {await ask(np) for _ in range(60)}
        assert seen == {str(e.port) for e in endpoints}
        await backend.sync([nodeport(endpoints[:1], np)])  # reconciled in place
        assert {await ask(np) for _ in range(10)} == {str(endpoints[0].port)}
        await backend.sync([nodeport([], np)])
        assert backend.addresses == []
        with pytest.raises(ConnectionRefusedError):
            await ask(np)
    finally:
        await backend.cleanup()


async def test_client_ip_affinity_sticks(endpoints: list[Endpoint]) -> None:
    backend = UserspaceBackend(node_port_address="127.0.0.1")
    np = free_port()
    try:
        await backend.sync([nodeport(endpoints, np, affinity=60)])
        assert len({await ask(np) for _ in range(20)}) == 1
    finally:
        await backend.cleanup()
    with pytest.raises(ConnectionRefusedError):
        await ask(np)
