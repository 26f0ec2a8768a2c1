"""``pods/log`` and ``pods/exec``: checked here against the Pod, then proxied to the agent.

``ResourceHandler.subresource`` calls ``AgentProxy.log`` / ``AgentProxy.exec``. Each reads
the pod from the watch cache and validates the request as the real API server (and,
for the container's state, the kubelet) would, with their exact messages:

- no ``container`` and several containers → 400 ``a container name must be specified
  for pod p1, choose one of: [c1 c2]`` (`` or one of the init containers: [i1]``);
- an unknown container → 400 ``container c9 is not valid for pod p1``;
- a pod without a node → 400 ``pod p1 does not have a host assigned``;
- logs of a container that has not started → 400 ``container "c1" in pod "p1" is
  waiting to start: ContainerCreating``; ``previous`` without a terminated previous
  attempt → 400 ``previous terminated container "c1" in pod "p1" not found``;
- exec without a command → 400 ``you must specify at least 1 command``; exec in a
  container that is not running → 400 ``container not found ("c1")``.

Then it finds the agent from the Node object (``status.addresses`` InternalIP, else
Hostname; ``status.daemonEndpoints.kubeletEndpoint.Port``) and opens
``http://<address>:<port>/containerLogs/...`` or ``/exec/...`` (``agent/server.py``)
over TLS with the ``kube-apiserver-kubelet-client`` certificate, or, to a plain-HTTP
agent, with ``Authorization: Bearer <node_token>``, the admin token bound by HMAC to the
node's name (``util/bearer.py``; the agent checks it against its kubeconfig's token):
never the admin token itself, since the scheme and address are the node's own word. The log stream is copied through chunk by chunk as it arrives; an exec
WebSocket is accepted from the client with the subprotocol the agent chose, and frames
are pumped both ways until either side closes, then both are closed. When the client
goes away, aiohttp cancels the handler and the upstream connection closes with it.

A node whose agent cannot be reached answers a 500 Status worded like upstream's
(``Get "http://...": dial tcp 10.0.0.1:10250: connect: connection refused``); a node
with no agent port (no ``daemonEndpoints``) answers a 500 that says so.

Kept apart from ``handlers.py`` because it is the API server's only outgoing HTTP, and
its validation is pure functions over the pod dict (unit-testable without a server).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import ssl
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiohttp import WSMsgType, web
from yarl import URL

from corral.api import errors
from corral.api.nodes import agent_endpoint, agent_scheme
from corral.apiserver.store import Registry
from corral.util.bearer import node_token

log = logging.getLogger("corral.apiserver.proxy")

EXEC_PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")
CONNECT_TIMEOUT = 10.0
_TRUE = ("1", "t", "T", "true", "TRUE", "True")
_LOG_INTS = ("tailLines", "sinceSeconds", "limitBytes")

Obj = dict[str, Any]


# --- validation (pure) ------------------------------------------------------------------------
def _names(containers: Any) -> list[str]:
    return [c.get("name", "") for c in containers or [] if isinstance(c, dict)]


def choose_container(pod: Obj, requested: str) -> str:
    """The container a request means, or a 400 as ``streamLocation`` words it."""
    spec = pod.get("spec") or {}
    name = pod["metadata"]["name"]
    containers = _names(spec.get("containers"))
    if not requested:
        if len(containers) == 1:
            return containers[0]
        if not containers:
            raise errors.bad_request(f"a container name must be specified for pod {name}")
        msg = (
            f"a container name must be specified for pod {name}, "
            f"choose one of: [{' '.join(containers)}]"
        )
        inits = _names(spec.get("initContainers"))
        if inits:
            msg += f" or one of the init containers: [{' '.join(inits)}]"
        raise errors.bad_request(msg)
    every = (
        containers + _names(spec.get("initContainers")) + _names(spec.get("ephemeralContainers"))
    )
    if requested not in every:
        raise errors.bad_request(f"container {requested} is not valid for pod {name}")
    return requested


def node_of(pod: Obj) -> str:
    """The pod's node, or 400 ``pod p1 does not have a host assigned``."""
    node = (pod.get("spec") or {}).get("nodeName")
    if not node:
        raise errors.bad_request(f"pod {pod['metadata']['name']} does not have a host assigned")
    return str(node)


def container_status(pod: Obj, container: str) -> Obj | None:
    st = pod.get("status") or {}
    for key in ("containerStatuses", "initContainerStatuses", "ephemeralContainerStatuses"):
        for cs in st.get(key) or []:
            if isinstance(cs, dict) and cs.get("name") == container:
                return cs
    return None


def check_log_state(pod: Obj, container: str, previous: bool) -> None:
    """Raise 400 when the container has no log to show, as the kubelet's
    ``validateContainerLogStatus`` words it (read from the Pod's status here)."""
    name = pod["metadata"]["name"]
    cs = container_status(pod, container)
    if cs is None:  # nothing reported yet: the kubelet would still be creating it
        cs = {"state": {"waiting": {"reason": "ContainerCreating"}}}
    state, last = cs.get("state") or {}, cs.get("lastState") or {}
    who = f'container "{container}" in pod "{name}"'
    if previous:
        if not (last.get("terminated") or {}).get("containerID"):
            raise errors.bad_request(
                f'previous terminated container "{container}" in pod "{name}" not found'
            )
        return
    if state.get("running") is not None:
        return
    if state.get("terminated") is not None:
        if state["terminated"].get("containerID") or (last.get("terminated") or {}).get(
            "containerID"
        ):
            return
        raise errors.bad_request(f"{who} is terminated")
    if last.get("terminated") is not None:
        if last["terminated"].get("containerID"):
            return
        raise errors.bad_request(f"{who} is terminated")
    waiting = state.get("waiting")
    if waiting is not None:
        reason = waiting.get("reason") or ""
        if reason == "ErrImagePull":
            raise errors.bad_request(f"{who} is waiting to start: image can't be pulled")
        if reason == "ImagePullBackOff":
            raise errors.bad_request(f"{who} is waiting to start: trying and failing to pull image")
        raise errors.bad_request(f"{who} is waiting to start: {reason}")
    raise errors.bad_request(f"{who} is waiting to start - no logs yet")


def log_params(pod_name: str, q: Any) -> dict[str, str]:
    """The agent's query for a ``pods/log`` request, validated as ``PodLogOptions``."""
    out: dict[str, str] = {}
    for flag in ("follow", "previous", "timestamps"):
        if q.get(flag, "") in _TRUE:
            out[flag] = "true"
    values: dict[str, int] = {}
    for key in _LOG_INTS:
        raw = q.get(key)
        if raw in (None, ""):
            continue
        try:
            values[key] = int(raw)
        except ValueError:
            raise errors.bad_request(f'strconv.ParseInt: parsing "{raw}": invalid syntax') from None
        out[key] = str(values[key])
    since_time = q.get("sinceTime")
    if since_time:
        try:
            datetime.fromisoformat(since_time)
        except ValueError:
            raise errors.bad_request(
                f'parsing time "{since_time}" as "2006-01-02T15:04:05Z07:00": cannot parse'
            ) from None
        out["sinceTime"] = since_time
    problems = []
    if values.get("tailLines", 0) < 0:
        problems.append(
            errors.invalid("tailLines", values["tailLines"], "must be greater than or equal to 0")
        )
    if values.get("limitBytes", 1) < 1:
        problems.append(
            errors.invalid("limitBytes", values["limitBytes"], "must be greater than 0")
        )
    if "sinceSeconds" in values and since_time:
        problems.append(
            errors.forbidden("", "at most one of `sinceTime` or `sinceSeconds` may be specified")
        )
    elif values.get("sinceSeconds", 1) < 1:
        problems.append(
            errors.invalid("sinceSeconds", values["sinceSeconds"], "must be greater than 0")
        )
    if problems:
        raise errors.invalid_object("PodLogOptions", "", pod_name, problems)
    return out


async def relay(
    request: web.Request, upstream: aiohttp.ClientResponse, headers: dict[str, str]
) -> web.StreamResponse:
    """Stream ``upstream``'s body back as the answer to ``request`` (chunked, as it comes),
    with its status and ``headers``: the relay of pods/log and of the aggregation layer
    (``apiserver/aggregator.py``)."""
    resp = web.StreamResponse(status=upstream.status, headers=headers)
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    async for chunk in upstream.content.iter_any():
        await resp.write(chunk)
    await resp.write_eof()
    return resp


# --- the proxy --------------------------------------------------------------------------------
def kubelet_client_context(data_dir: Path) -> ssl.SSLContext:
    """The API server's TLS client context towards agents: their certificates verified
    against the cluster CA (``DATA/pki/ca.crt``), and its ``kube-apiserver-kubelet-client``
    certificate presented (issued in a child when missing or due for renewal)."""
    from corral.apiserver.client_certs import ensure_identities_in_child, pair_paths
    from corral.apiserver.component_identities import KUBELET_CLIENT

    ensure_identities_in_child(data_dir, [KUBELET_CLIENT])
    crt, key = pair_paths(data_dir, KUBELET_CLIENT)
    ctx = ssl.create_default_context(cafile=str(data_dir / "pki" / "ca.crt"))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(crt, key)
    return ctx


def _dial_error(method: str, url: URL, e: aiohttp.ClientConnectorError) -> errors.StatusError:
    """Upstream's wording: ``Get "URL": dial tcp HOST:PORT: connect: connection refused``
    (``tls: failed to verify certificate: ...`` for an agent certificate not trusted)."""
    if isinstance(e, aiohttp.ClientConnectorCertificateError):
        return errors.StatusError(
            500,
            errors.INTERNAL_ERROR,
            f'{method} "{url}": tls: failed to verify certificate: {e.certificate_error}',
        )
    os_err = e.os_error
    why = os.strerror(os_err.errno).lower() if os_err.errno else str(os_err)
    if os_err.errno in (errno.ETIMEDOUT, None) and isinstance(os_err, TimeoutError):
        why = "i/o timeout"
    return errors.StatusError(
        500,
        errors.INTERNAL_ERROR,
        f'{method} "{url}": dial tcp {url.host}:{url.port}: connect: {why}',
    )


async def _refuse_redirect(
    session: aiohttp.ClientSession, ctx: Any, params: aiohttp.TraceRequestRedirectParams
) -> None:
    """Stop a WebSocket handshake (``ws_connect`` always follows redirects) that an agent
    answers with a redirect: the caller probes the URL without following it instead."""
    resp = params.response
    resp.close()
    raise aiohttp.WSServerHandshakeError(
        resp.request_info, (resp,), status=resp.status, message="redirects forbidden"
    )


async def _relay_error(resp: aiohttp.ClientResponse) -> web.Response:
    """An agent's non-success answer, relayed as a Status with its code; a redirect is
    not followed (upstream's ``PreventRedirects``: a node could send the API server's
    credentials anywhere the cluster CA vouches for, the API server itself included)."""
    if 300 <= resp.status < 400:
        raise errors.StatusError(
            500, errors.INTERNAL_ERROR, f'Get "{resp.url}": redirects forbidden'
        )
    body = await resp.read()
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        doc = None
    if isinstance(doc, dict) and doc.get("kind") == "Status":
        return web.Response(body=body, status=resp.status, content_type="application/json")
    text = body.decode("utf-8", "replace").strip() or resp.reason or "error"
    e = errors.StatusError(
        resp.status, errors.INTERNAL_ERROR if resp.status >= 500 else errors.BAD_REQUEST, text
    )
    return web.Response(body=e.body(), status=e.code, content_type="application/json")


class AgentProxy:
    """Validates and proxies ``pods/log`` and ``pods/exec`` to node agents.

    An agent with a serving certificate (``https``, ``api.nodes.agent_scheme``) is
    reached over TLS with ``ssl_context``: the agent's certificate verified against the
    cluster CA, and the API server's ``kube-apiserver-kubelet-client`` certificate as
    its credential (no bearer token is sent). An ``http`` agent (a stand-alone test
    agent) gets ``token``, the bearer token it checks; ``None`` forwards the caller's
    own ``Authorization`` header (which the API server has just accepted).
    """

    def __init__(
        self, registry: Registry, token: str | None, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        self.registry = registry
        self.token = token
        self.ssl_context = ssl_context

    def _pod(self, ns: str, name: str) -> Obj:
        info = self.registry.by_gvr[("", "v1", "pods")]
        pod: Obj = self.registry.get(info, ns, name).obj()
        return pod

    def _node(self, node_name: str) -> Obj:
        info = self.registry.by_gvr[("", "v1", "nodes")]
        entry = self.registry.entry(info, "", node_name)
        if entry is None:
            raise errors.not_found("nodes", "", node_name)
        node: Obj = entry.obj()
        return node

    def _endpoint(self, node_name: str) -> tuple[str, int]:
        return agent_endpoint(self._node(node_name))

    def agent_url(self, node_name: str, path: str) -> URL:
        """``path`` on the node's agent, with the agent's scheme."""
        node = self._node(node_name)
        host, port = agent_endpoint(node)
        return URL.build(scheme=agent_scheme(node), host=host, port=port, path=path)

    def _headers(self, request: web.Request, url: URL, node: str) -> dict[str, str]:
        """The credential for node ``node``'s agent at ``url``. The scheme and address are
        the node's own word (its Node object), so a plain-HTTP agent never gets the admin
        token itself, only ``node_token`` bound to that node: a node that turns itself
        to ``http`` (or points its address elsewhere) learns nothing it can use."""
        if url.scheme == "https" and self.ssl_context is not None:
            return {}  # the client certificate is the credential
        if self.token:
            return {"Authorization": f"Bearer {node_token(self.token, node)}"}
        auth = request.headers.get("Authorization")
        return {"Authorization": auth} if auth else {}

    def _session(self) -> aiohttp.ClientSession:
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_TIMEOUT)
        conn = aiohttp.TCPConnector(ssl=self.ssl_context if self.ssl_context else True)
        no_redirects = aiohttp.TraceConfig()
        no_redirects.on_request_redirect.append(_refuse_redirect)
        return aiohttp.ClientSession(
            timeout=timeout,
            auto_decompress=False,
            connector=conn,
            trace_configs=[no_redirects],
        )

    # --- pods/log -----------------------------------------------------------------------
    async def log(self, request: web.Request, ns: str, name: str) -> web.StreamResponse:
        pod = self._pod(ns, name)
        q = request.query
        container = choose_container(pod, q.get("container", ""))
        params = log_params(name, q)
        node = node_of(pod)
        check_log_state(pod, container, "previous" in params)
        url = self.agent_url(node, f"/containerLogs/{ns}/{name}/{container}").with_query(params)
        async with self._session() as session:
            try:
                upstream = await session.get(
                    url, headers=self._headers(request, url, node), allow_redirects=False
                )
            except aiohttp.ClientConnectorError as e:
                raise _dial_error("Get", url, e) from None
            async with upstream:
                if upstream.status != 200:
                    return await _relay_error(upstream)
                return await relay(request, upstream, {"Content-Type": "text/plain"})

    # --- pods/exec ----------------------------------------------------------------------
    async def exec(self, request: web.Request, ns: str, name: str) -> web.StreamResponse:
        pod = self._pod(ns, name)
        q = request.query
        container = choose_container(pod, q.get("container", ""))
        node = node_of(pod)
        argv = q.getall("command", [])
        if not argv:
            raise errors.bad_request("you must specify at least 1 command")
        cs = container_status(pod, container) or {}
        if (cs.get("state") or {}).get("running") is None:
            raise errors.bad_request(f'container not found ("{container}")')
        query = [(k, v) for k, v in q.items() if k != "container"]
        url = self.agent_url(node, f"/exec/{ns}/{name}/{container}").with_query(query)
        return await self.stream_channels(request, url, node)

    async def stream_channels(
        self, request: web.Request, url: URL, node: str
    ) -> web.StreamResponse:
        """Relay a ``v5``/``v4.channel.k8s.io`` WebSocket (exec, attach) to node ``node``'s
        agent at ``url``, frames both ways (``pump``)."""
        headers = self._headers(request, url, node)
        offered = [
            p.strip()
            for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",")
            if p.strip() in EXEC_PROTOCOLS
        ]
        client = web.WebSocketResponse(protocols=offered, max_msg_size=0)
        async with self._session() as session:
            if not client.can_prepare(request).ok or not offered:
                # kubectl's SPDY fallback, or a client without a channel protocol we speak:
                # let the agent say what is wrong (unauthorised, or an upgrade is required)
                return await self._probe(session, url, headers)
            try:
                upstream = await session.ws_connect(
                    url, protocols=offered, headers=headers, max_msg_size=0
                )
            except aiohttp.ClientConnectorError as e:
                raise _dial_error("Get", url, e) from None
            except aiohttp.WSServerHandshakeError:
                return await self._probe(session, url, headers)
            async with upstream:
                client = web.WebSocketResponse(
                    protocols=[upstream.protocol or offered[0]], max_msg_size=0
                )
                await client.prepare(request)
                await pump(client, upstream)
                return client

    async def _probe(
        self, session: aiohttp.ClientSession, url: URL, headers: dict[str, str]
    ) -> web.Response:
        """The agent's answer to a plain GET of the exec URL (it runs nothing without an
        upgrade): its Status, e.g. 401 or 400 ``Upgrade request required``."""
        try:
            async with session.get(url, headers=headers, allow_redirects=False) as resp:
                return await _relay_error(resp)
        except aiohttp.ClientConnectorError as e:
            raise _dial_error("Get", url, e) from None


async def pump(client: web.WebSocketResponse, upstream: aiohttp.ClientWebSocketResponse) -> None:
    """Copy frames both ways until one side closes; then close both."""

    async def to_agent() -> None:
        async for msg in client:
            if msg.type == WSMsgType.BINARY:
                await upstream.send_bytes(msg.data)
            elif msg.type == WSMsgType.TEXT:
                await upstream.send_str(msg.data)

    async def to_client() -> None:
        async for msg in upstream:
            if msg.type == WSMsgType.BINARY:
                await client.send_bytes(msg.data)
            elif msg.type == WSMsgType.TEXT:
                await client.send_str(msg.data)

    tasks = [asyncio.create_task(to_agent()), asyncio.create_task(to_client())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        with contextlib.suppress(Exception):
            await upstream.close()
        with contextlib.suppress(Exception):
            await client.close()
