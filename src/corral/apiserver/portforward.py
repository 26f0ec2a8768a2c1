"""``pods/portforward``: checked here against the Pod, then tunnelled to its agent.

``ResourceHandler.subresource`` calls ``port_forward``. As upstream's API server, this
only checks that the pod exists (404) and is bound (400 ``pod p1 does not have a host
assigned``), then passes the client's WebSocket through to the node agent's
``/portForward/{namespace}/{pod}`` (``agent/portforward.py``), which speaks both wire
protocols:

- ``SPDY/3.1+portforward.k8s.io``: kubectl 1.31+ (``PortForwardWebsockets``, on by
  default) sends ``GET`` with ``Upgrade: websocket`` offering only this subprotocol and
  no ``ports`` query; SPDY frames travel in binary messages, relayed unchanged here, as
  upstream's tunnelling handler relays them to the kubelet;
- ``v4.channel.k8s.io``: the Python client (``kubernetes.stream.portforward``, offering
  ``v5.channel.k8s.io,v4.channel.k8s.io`` with ``?ports=...``).

A request that is not a WebSocket upgrade (kubectl's raw SPDY/3.1 fallback, which it only
takes when the WebSocket upgrade fails, or with ``KUBECTL_PORT_FORWARD_WEBSOCKETS=false``)
gets a 400 that says what Corral speaks instead.

The agent is reached as for exec (``AgentProxy``: the node's InternalIP and
``daemonEndpoints`` port, its kubelet-client certificate or node-bound token); the pod's uid goes along so that the
agent's error messages name it as the kubelet's do.
"""

from __future__ import annotations

import aiohttp
from aiohttp import web

from corral.api import errors
from corral.apiserver.proxy import AgentProxy, _dial_error, _relay_error, node_of, pump

SPDY_TUNNEL = "SPDY/3.1+portforward.k8s.io"
#: the largest WebSocket message relayed: a full 16 MiB SPDY DATA frame, and some room
#: (as the node agent takes; an unbounded size would let one message fill the memory)
MAX_MESSAGE = (1 << 24) - 1 + 64 * 1024
CHANNELS_V4 = "v4.channel.k8s.io"
PROTOCOLS = (SPDY_TUNNEL, CHANNELS_V4)
NO_SPDY = (
    "pods/portforward over raw SPDY/3.1 is not supported by Corral: it speaks the WebSocket "
    f"protocols {SPDY_TUNNEL} (kubectl 1.31+ by default; unset "
    f"KUBECTL_PORT_FORWARD_WEBSOCKETS) and {CHANNELS_V4}"
)


def offered_protocols(header: str) -> list[str]:
    """The subprotocols of a ``Sec-WebSocket-Protocol`` header that the agent speaks, in
    the client's order."""
    return [p.strip() for p in header.split(",") if p.strip() in PROTOCOLS]


async def port_forward(
    proxy: AgentProxy, request: web.Request, ns: str, name: str
) -> web.StreamResponse:
    """Validate a ``pods/portforward`` request and relay its WebSocket to the pod's agent."""
    pod = proxy._pod(ns, name)
    node = node_of(pod)
    offered = offered_protocols(request.headers.get("Sec-WebSocket-Protocol", ""))
    probe = web.WebSocketResponse(protocols=offered)
    if not offered or not probe.can_prepare(request).ok:
        raise errors.bad_request(NO_SPDY)
    ports = request.query.getall("ports", [])
    if offered[0] != SPDY_TUNNEL and not ports:  # the channel protocols need the ports
        raise errors.bad_request('query parameter "port" is required')
    query = [("ports", p) for p in ports]
    query.append(("uid", str(pod["metadata"].get("uid", ""))))
    url = proxy.agent_url(node, f"/portForward/{ns}/{name}").with_query(query)
    headers = proxy._headers(request, url, node)
    async with proxy._session() as session:
        try:
            upstream = await session.ws_connect(
                url,
                protocols=offered,
                headers=headers,
                max_msg_size=MAX_MESSAGE,
                autoping=True,
            )
        except aiohttp.ClientConnectorError as e:
            raise _dial_error("Get", url, e) from None
        except aiohttp.WSServerHandshakeError:
            async with session.get(url, headers=headers, allow_redirects=False) as resp:
                return await _relay_error(resp)
        async with upstream:
            client = web.WebSocketResponse(
                protocols=[upstream.protocol or offered[0]], max_msg_size=MAX_MESSAGE
            )
            await client.prepare(request)
            await pump(client, upstream)
            return client
