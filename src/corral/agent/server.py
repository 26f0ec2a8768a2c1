"""The node agent's HTTP API, the counterpart of the kubelet's port 10250.

The API server proxies ``pods/log`` and ``pods/exec`` here (``apiserver/proxy.py``); it
has already checked the pod, the container and its state against the Pod object, so
this server only serves what the node has:

``GET /containerLogs/{namespace}/{pod}/{container}``
    ``follow``, ``tailLines``, ``sinceSeconds``, ``sinceTime``, ``timestamps``,
    ``previous``, ``limitBytes`` (``agent/logs.py``). ``text/plain``; chunked and open
    until the container exits when following.
``GET /exec/{namespace}/{pod}/{container}?command=..&command=..&stdin&stdout&stderr&tty``
    A WebSocket speaking ``v5.channel.k8s.io`` or ``v4.channel.k8s.io``: each message
    (binary, or text as its UTF-8 bytes) is ``<channel><payload>``; channels 0 stdin,
    1 stdout, 2 stderr, 3 status, 4 resize (``{"Width":80,"Height":24}``); in v5,
    ``[255, ch]`` closes channel ``ch``
    (the client half-closes stdin so). The last message is the Status on channel 3
    (``Success``, or ``Failure`` with reason ``NonZeroExitCode`` and the exit code in
    ``details.causes[0].message``), then a normal close.
``GET /attach/{namespace}/{pod}/{container}?stdin&stdout&stderr&tty``
    The same channel protocol to the container's main process (``agent/attach.py``).
``GET /portForward/{namespace}/{pod}[?ports=P1,P2&uid=UID]``
    A WebSocket: kubectl's SPDY/3.1 tunnel (``SPDY/3.1+portforward.k8s.io``) or the
    ``v4.channel.k8s.io`` port channels, to TCP ports in the pod's network namespace
    (``agent/portforward.py``).
``GET /metrics/resource``
    The kubelet's resource metrics (Prometheus text) that metrics-server scrapes
    (``agent/resource_metrics.py``).
``GET /healthz``
    ``ok``, unauthenticated.
``POST /api/v1/executor``
    The Mesos v1 executor API (``agent/mesos_executor.py``), unauthenticated (executors
    have no token; a call is only accepted for an executor pod on this node). Also
    served, alone, on the extra addresses that module asks for (``listen``).
``POST /mesos/executor-message``
    ``{"framework_id", "executor_id", "data"}``: the master relays a framework's MESSAGE
    to that executor's stream; 202, or 404 if no such executor is subscribed here.

Errors before a WebSocket upgrade are Kubernetes ``Status`` bodies (JSON), so the API
server can relay them as they are; errors after it are a ``Failure`` Status on channel 3.

Security, as the kubelet's port 10250 (``agent/auth.py``): with ``tls`` (``corral agent
--tls-cert-file/--tls-private-key-file``, a certificate for the node from the cluster CA)
the server speaks HTTPS, reloads its certificate when the files change, authenticates
client certificates (the API server's ``kube-apiserver-kubelet-client``) and bearer
tokens (TokenReview) and authorises every request through a SubjectAccessReview on
``nodes/<subresource>``: 401 without credentials, 403 with the kubelet's text. The
Mesos executor API then moves to a plain-HTTP listener of its own
(``executor_port``): executors speak HTTP and hold no credentials; a call is only
accepted for an executor pod on this node, from that executor's own address
(``agent/mesos_executor.py``), and it reaches nothing but that executor's stream.

Without ``tls`` (a stand-alone agent in a test) the server keeps the old scheme, with
a warning: plain HTTP, and every other request needs ``Authorization: Bearer <token>``
equal to the agent's own kubeconfig token or to ``util.bearer.node_token`` of it and the
node's name (what the API server sends, so that a node that says it is plain HTTP gets
nothing it could use elsewhere); the Node is annotated
``agent.corral.dev/scheme: http`` (``api/nodes.py``) so the API server knows to use HTTP.

The server learns about containers only through ``ContainerLookup``, which the pod
lifecycle implements; it keeps no state of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol

import orjson
from aiohttp import web

from corral.agent.attach import channel_message, serve_attach
from corral.agent.auth import AgentAuth, ServingTLS
from corral.agent.drivers.base import ContainerHandle, Driver, ExecSession
from corral.agent.logs import options_from_query, stream_log
from corral.agent.mesos_executor import Answer, MesosExecutors
from corral.agent.portforward import PodNetworks
from corral.agent.portforward import serve as serve_port_forward
from corral.agent.resource_metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from corral.agent.resource_metrics import Sample, render
from corral.api import errors
from corral.util.bearer import bearer_matches, node_token
from corral.util.eventstream import EventStream

log = logging.getLogger("corral.agent.server")

EXEC_PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")
STDIN, STDOUT, STDERR, STATUS, RESIZE = 0, 1, 2, 3, 4
CLOSE_CHANNEL = 255  # v5: [255, ch] closes channel ch
#: once the command has exited, how long its stdout/stderr may still take to reach EOF
#: (a background child that inherited the pipes would otherwise hold the session open)
DRAIN_TIMEOUT = 2.0

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
EXECUTOR_API = "/api/v1/executor"
UNAUTHENTICATED = ("/healthz", EXECUTOR_API)


class ContainerLookup(Protocol):
    """What the agent server needs to know about the containers on this node.

    Implemented by the pod lifecycle. Every method is called on the server's event loop
    and must not block (read in-memory state; no I/O beyond a directory listing).
    """

    def log_files(self, namespace: str, pod: str, container: str) -> list[Path] | None:
        """The log files of every attempt of the container, oldest first (the last one
        is the current or latest attempt); ``[]`` if none has started yet; ``None`` if
        this node knows no such pod or container."""
        ...

    def is_running(self, namespace: str, pod: str, container: str) -> bool:
        """Whether the container's current attempt is running (ends ``logs -f``)."""
        ...

    def exec_target(
        self, namespace: str, pod: str, container: str
    ) -> tuple[Driver, ContainerHandle] | None:
        """The driver and handle to ``exec`` in, or ``None`` if not running here."""
        ...


def _status_response(e: errors.StatusError) -> web.Response:
    return web.Response(body=e.body(), status=e.code, content_type="application/json")


def _not_found(namespace: str, pod: str, container: str) -> errors.StatusError:
    return errors.StatusError(
        404,
        errors.NOT_FOUND,
        f'container "{container}" in pod "{namespace}/{pod}" not found on this node',
    )


def exit_status(code: int, argv: list[str]) -> dict[str, Any]:
    """The channel-3 Status that ends an exec, as the kubelet words it."""
    if code == 0:
        return {"metadata": {}, "status": "Success"}
    return {
        "metadata": {},
        "status": "Failure",
        "message": (
            f"command terminated with non-zero exit code: "
            f"error executing command [{' '.join(argv)}], exit code {code}"
        ),
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]},
    }


def error_status(message: str) -> dict[str, Any]:
    """The channel-3 Status for an exec that could not run at all."""
    return {
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": errors.INTERNAL_ERROR,
        "code": 500,
    }


class AgentServer:
    """The agent's HTTP API over a ``ContainerLookup``; ``port=0`` picks a free port
    (read ``.port`` after ``start``)."""

    def __init__(
        self,
        lookup: ContainerLookup,
        token: str,
        host: str = "0.0.0.0",
        port: int = 10250,
        *,
        tls: ServingTLS | None = None,
        auth: AgentAuth | None = None,
        node_name: str = "",
    ) -> None:
        if (tls is None) != (auth is None):
            raise ValueError("the agent server's TLS and its authentication go together")
        if auth is None and not token:
            raise ValueError("the agent server needs a token to check requests against")
        self.lookup = lookup
        self.token = token
        self.host = host
        self.port = port
        self.tls = tls
        self.auth = auth
        #: without TLS, a request may also carry ``node_token(token, node_name)``, what the
        #: API server sends a plain-HTTP agent (``util/bearer.py``)
        self.node_token = node_token(token, node_name)
        #: where executors reach the executor API: the main port without TLS, else a
        #: plain-HTTP port of its own (set by ``start``)
        self.executor_port = port
        self.executor_listeners = _ExecutorListeners(self)
        self._reload: asyncio.Task[None] | None = None
        #: the Mesos executor API (None: answered 404)
        self.executors: MesosExecutors | None = None
        self._runner: web.AppRunner | None = None
        #: the executor API alone, on addresses executors are given (``listen``)
        self._executor_runner: web.AppRunner | None = None
        self._extra: dict[str, tuple[web.TCPSite, int]] = {}  # host -> (site, users)
        self._extra_lock = asyncio.Lock()
        #: reads the node's and its containers' usage for ``/metrics/resource`` (called in
        #: a worker thread; None: answered 404)
        self.resource_metrics: Callable[[], Sample] | None = None
        #: log streams being served right now (a client that leaves ends its stream)
        self.active_log_streams = 0

    def build(self) -> web.Application:
        app = web.Application(middlewares=[self._auth])
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/containerLogs/{namespace}/{pod}/{container}", self._logs)
        app.router.add_get("/exec/{namespace}/{pod}/{container}", self._exec)
        app.router.add_get("/attach/{namespace}/{pod}/{container}", self._attach)
        app.router.add_get("/portForward/{namespace}/{pod}", self._port_forward)
        app.router.add_get("/metrics/resource", self._metrics_resource)
        app.router.add_post(EXECUTOR_API, self._executor_call)
        app.router.add_post("/mesos/executor-message", self._executor_message)
        return app

    def build_executor_api(self) -> web.Application:
        app = web.Application()
        app.router.add_post(EXECUTOR_API, self._executor_call)
        return app

    async def start(self) -> None:
        self._runner = web.AppRunner(self.build(), handler_cancellation=True, access_log=None)
        await self._runner.setup()
        ctx = self.tls.context if self.tls is not None else None
        site = web.TCPSite(self._runner, self.host, self.port, ssl_context=ctx)
        await site.start()
        if self.port == 0:
            self.port = int(self._runner.addresses[0][1])
        if self.tls is None:
            self.executor_port = self.port
            log.warning(
                "agent API on http://%s:%d WITHOUT TLS: requests are checked against the "
                "agent's own token only (give --tls-cert-file/--tls-private-key-file)",
                self.host,
                self.port,
            )
            return
        self._reload = asyncio.create_task(self.tls.watch(), name="agent-serving-cert")
        runner = web.AppRunner(
            self.build_executor_api(), handler_cancellation=True, access_log=None
        )
        await runner.setup()
        self._executor_runner = runner
        await web.TCPSite(runner, self.host, 0).start()
        self.executor_port = int(runner.addresses[0][1])
        log.info(
            "agent API on https://%s:%d, executor API on http://%s:%d",
            self.host,
            self.port,
            self.host,
            self.executor_port,
        )

    async def stop(self) -> None:
        if self._reload is not None:
            self._reload.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reload
            self._reload = None
        if self._executor_runner is not None:
            await self._executor_runner.cleanup()
            self._executor_runner = None
            self._extra.clear()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _covers(self, host: str) -> bool:
        return host == self.host or self.host in ("", "0.0.0.0", "::")

    async def listen(self, host: str) -> bool:
        """Serve the executor API on ``host`` too, on the same port (one more user of it);
        False if ``host`` cannot be bound. Nothing to do where the main site listens."""
        if self._covers(host):
            return True
        async with self._extra_lock:
            site, users = self._extra.get(host, (None, 0))
            if site is None:
                if self._executor_runner is None:
                    runner = web.AppRunner(
                        self.build_executor_api(), handler_cancellation=True, access_log=None
                    )
                    await runner.setup()
                    self._executor_runner = runner
                site = web.TCPSite(self._executor_runner, host, self.executor_port)
                try:
                    await site.start()
                except OSError as e:
                    log.warning("executor API on %s:%d: %s", host, self.executor_port, e)
                    return False
            self._extra[host] = (site, users + 1)
            return True

    async def unlisten(self, host: str) -> None:
        """One user less of ``host``; the last one closes its listener."""
        if self._covers(host):
            return
        async with self._extra_lock:
            site, users = self._extra.get(host, (None, 0))
            if site is None:
                return
            if users > 1:
                self._extra[host] = (site, users - 1)
                return
            del self._extra[host]
            await site.stop()

    # --- plumbing ------------------------------------------------------------------------
    @web.middleware
    async def _auth(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            auth = request.headers.get("Authorization", "")
            if request.path in UNAUTHENTICATED:
                pass
            elif self.auth is None:
                if not (bearer_matches(auth, self.token) or bearer_matches(auth, self.node_token)):
                    raise errors.unauthorized()
            else:
                peercert = (
                    request.transport.get_extra_info("peercert") if request.transport else None
                )
                caller = await self.auth.authenticate(peercert, auth)
                if caller is None:
                    raise errors.unauthorized()
                refused = await self.auth.authorize(caller, request.method, request.path)
                if refused is not None:
                    log.info("%s %s: %s", request.method, request.path, refused)
                    return web.Response(status=403, text=refused)
            return await handler(request)
        except errors.StatusError as e:
            return _status_response(e)

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def _metrics_resource(self, request: web.Request) -> web.Response:
        if self.resource_metrics is None:
            raise errors.StatusError(404, errors.NOT_FOUND, "resource metrics are not served here")
        sample = await asyncio.to_thread(self.resource_metrics)
        return web.Response(
            body=render(sample).encode(), headers={"Content-Type": METRICS_CONTENT_TYPE}
        )

    # --- the Mesos executor API -------------------------------------------------------------
    async def _executor_call(self, request: web.Request) -> web.StreamResponse:
        if self.executors is None:
            return web.Response(status=404, text="No executor API on this agent")
        sock = request.transport.get_extra_info("sockname") if request.transport else None
        answer = await self.executors.call(
            await request.read(),
            request.headers.get("Content-Type"),
            accept=request.headers.get("Accept"),
            local=str(sock[0]) if sock else None,
            peer=request.remote,
        )
        if isinstance(answer, Answer):
            return web.Response(status=answer.status, text=answer.text)
        return await _serve(request, answer)

    async def _executor_message(self, request: web.Request) -> web.StreamResponse:
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError as e:
            raise errors.bad_request(f"invalid JSON: {e}") from None
        fields = [_id(body.get(k)) if isinstance(body, dict) else None for k in _MESSAGE]
        if not all(isinstance(f, str) and f for f in fields):
            raise errors.bad_request('expected {"framework_id", "executor_id", "data"} strings')
        fid, eid, data = (str(f) for f in fields)
        if self.executors is None or not self.executors.deliver(fid, eid, data):
            raise errors.StatusError(
                404,
                errors.NOT_FOUND,
                f'executor "{eid}" of framework "{fid}" is not subscribed here',
            )
        return web.Response(status=202)

    # --- logs ----------------------------------------------------------------------------
    async def _logs(self, request: web.Request) -> web.StreamResponse:
        ns, pod, name = (request.match_info[k] for k in ("namespace", "pod", "container"))
        try:
            opts = options_from_query(request.query, time.time())
        except ValueError as e:
            raise errors.bad_request(str(e)) from None
        files = self.lookup.log_files(ns, pod, name)
        if files is None:
            raise _not_found(ns, pod, name)
        if opts.previous:
            if len(files) < 2:
                raise errors.bad_request(
                    f'previous terminated container "{name}" in pod "{pod}" not found'
                )
            path = files[-2]

            def exited() -> bool:
                return True
        else:
            if not files:
                raise errors.bad_request(
                    f'container "{name}" in pod "{pod}" is waiting to start - no logs yet'
                )
            path = files[-1]

            def exited() -> bool:
                # gone, or replaced by a newer attempt (whose file we are not reading)
                current = self.lookup.log_files(ns, pod, name)
                return (
                    not current or current[-1] != path or not self.lookup.is_running(ns, pod, name)
                )

        resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
        if opts.follow:
            resp.enable_chunked_encoding()
        gen = stream_log(path, opts, exited)
        self.active_log_streams += 1
        try:
            await resp.prepare(request)
            async for chunk in gen:
                await resp.write(chunk)
        except FileNotFoundError:
            pass  # the pod was removed while following: the log simply ends
        finally:
            self.active_log_streams -= 1
            await gen.aclose()
        await resp.write_eof()
        return resp

    # --- attach (agent/attach.py) ----------------------------------------------------------
    async def _attach(self, request: web.Request) -> web.StreamResponse:
        return await serve_attach(request, self.lookup)

    # --- port-forward (agent/portforward.py) -------------------------------------------------
    async def _port_forward(self, request: web.Request) -> web.StreamResponse:
        networks = self.lookup if isinstance(self.lookup, PodNetworks) else None
        return await serve_port_forward(request, networks)

    # --- exec ----------------------------------------------------------------------------
    async def _exec(self, request: web.Request) -> web.StreamResponse:
        ns, pod, name = (request.match_info[k] for k in ("namespace", "pod", "container"))
        q = request.query
        argv = q.getall("command", [])
        if not argv:
            raise errors.bad_request("you must specify at least 1 command")
        flags = {k: q.get(k, "") in ("1", "true", "True", "TRUE", "t", "T") for k in _FLAGS}
        ws = web.WebSocketResponse(protocols=EXEC_PROTOCOLS, max_msg_size=0, autoping=True)
        if not ws.can_prepare(request).ok:
            raise errors.bad_request("Upgrade request required")
        await ws.prepare(request)
        v5 = ws.ws_protocol == "v5.channel.k8s.io"
        try:
            target = self.lookup.exec_target(ns, pod, name)
            if target is None:
                status = error_status(f'container not found ("{name}")')
            else:
                driver, handle = target
                try:
                    session = await driver.exec(
                        handle, list(argv), tty=flags["tty"], stdin=flags["stdin"]
                    )
                except Exception as e:  # the driver's own error, told to the client
                    log.info("exec in %s/%s/%s failed: %s", ns, pod, name, e)
                    status = error_status(f"failed to exec in container: {e}")
                else:
                    status = await _run_session(ws, session, list(argv), flags, v5)
            if not ws.closed:
                with contextlib.suppress(ConnectionError):
                    await ws.send_bytes(bytes([STATUS]) + orjson.dumps(status))
        finally:
            await ws.close()
        return ws


class _ExecutorListeners:
    """The ``Listeners`` (``agent/mesos_executor.py``) executors are given: the executor
    API's port and its per-address listeners."""

    def __init__(self, server: AgentServer) -> None:
        self._server = server

    @property
    def port(self) -> int:
        return self._server.executor_port

    async def listen(self, host: str) -> bool:
        return await self._server.listen(host)

    async def unlisten(self, host: str) -> None:
        await self._server.unlisten(host)


_FLAGS = ("stdin", "stdout", "stderr", "tty")
_MESSAGE = ("framework_id", "executor_id", "data")


def _id(raw: Any) -> Any:
    """An id as a string or as the Mesos ``{"value": ...}`` form."""
    return raw.get("value") if isinstance(raw, dict) else raw


async def _serve(request: web.Request, stream: EventStream) -> web.StreamResponse:
    """Serve ``stream`` as the request's response until it ends."""
    try:
        await stream.pump(request)
    finally:
        stream.close()
    return web.Response(status=200)  # never sent: the stream's response was prepared


async def _run_session(
    ws: web.WebSocketResponse,
    session: ExecSession,
    argv: list[str],
    flags: dict[str, bool],
    v5: bool,
) -> dict[str, Any]:
    """Pump one exec session through the WebSocket until the command exits; its Status.

    If the client goes away first, the command is killed.
    """

    async def pump(read: Callable[[], Awaitable[bytes]], channel: int) -> None:
        wanted = flags["stdout" if channel == STDOUT else "stderr"]
        while data := await read():  # read to EOF even if unwanted: never block the command
            if wanted and not ws.closed:
                with contextlib.suppress(ConnectionError):
                    await ws.send_bytes(bytes([channel]) + data)

    async def from_client() -> None:
        stdin_open = flags["stdin"]
        async for msg in ws:
            if (data := channel_message(msg)) is None:
                continue
            channel, payload = data[0], data[1:]
            if channel == STDIN and stdin_open and payload:
                try:
                    await session.write_stdin(payload)
                except (BrokenPipeError, ConnectionResetError):
                    stdin_open = False  # the command stopped reading: drop the rest
            elif channel == RESIZE and payload:
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    size = orjson.loads(payload)
                    await session.resize(int(size["Width"]), int(size["Height"]))
            elif v5 and channel == CLOSE_CHANNEL and payload[:1] == b"\x00" and stdin_open:
                stdin_open = False
                await session.close_stdin()

    readers = [asyncio.create_task(pump(session.read_stdout, STDOUT))]
    if not flags["tty"]:
        readers.append(asyncio.create_task(pump(session.read_stderr, STDERR)))
    client = asyncio.create_task(from_client())
    waiter = asyncio.create_task(session.wait())
    try:
        if not flags["stdin"]:
            await session.close_stdin()
        await asyncio.wait([waiter, client], return_when=asyncio.FIRST_COMPLETED)
        if not waiter.done():  # the client left: stop the command
            await session.kill()
        code = await waiter
        await asyncio.wait(readers, timeout=DRAIN_TIMEOUT)
        return exit_status(code, argv)
    finally:
        for t in (*readers, client, waiter):
            t.cancel()
        for t in (*readers, client, waiter):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
