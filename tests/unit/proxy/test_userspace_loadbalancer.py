"""The userspace relay listens on a load-balancer ingress address that is this host's (a
node's InternalIP); an address configured nowhere here (a pool's) gets no listener."""

from __future__ import annotations

from test_userspace import ask, endpoints  # noqa: F401  (the fixture)

from corral.proxy.rules import Endpoint, ServicePort
from corral.proxy.userspace import UserspaceBackend, is_local_address
from corral.testing.process import free_port


def lb(eps: list[Endpoint], port: int, *ips: str) -> ServicePort:
    return ServicePort(
        "t", "web", "", "TCP", "10.96.0.10", port, 0, 0, tuple(eps), lb_ips=tuple(ips)
    )


def test_is_local_address() -> None:
    assert is_local_address("127.0.0.1")
    assert not is_local_address("203.0.113.77")  # TEST-NET-3: on no host


async def test_listens_on_a_local_ingress_address_only(endpoints: list[Endpoint]) -> None:  # noqa: F811
    backend = UserspaceBackend(node_port_address="127.0.0.1")
    port = free_port()
    try:
        await backend.sync([lb(endpoints, port, "127.0.0.1", "203.0.113.77")])
        assert backend.addresses == [("127.0.0.1", port)]
        seen = {await ask(port) for _ in range(30)}
        assert seen == {str(e.port) for e in endpoints}
        await backend.sync([lb(endpoints, port)])  # the ingress went away
        assert backend.addresses == []
    finally:
        await backend.cleanup()
