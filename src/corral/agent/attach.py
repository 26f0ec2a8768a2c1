"""The agent's ``/attach`` endpoint: a WebSocket to a container's main process.

``AgentServer`` routes ``GET /attach/{namespace}/{pod}/{container}?stdin&stdout&stderr&tty``
here; the API server's ``pods/attach`` (``apiserver/attach.py``) has checked the pod and
the container against the Pod object and proxies the frames. The protocol is exec's
(``agent/server.py``): ``v5.channel.k8s.io`` or ``v4.channel.k8s.io``, each binary
message ``<channel><payload>``, channels 0 stdin, 1 stdout, 2 stderr, 3 status, 4 resize
(``{"Width":80,"Height":24}``), and in v5 ``[255, 0]`` closes stdin.

What flows (the driver's ``attach``; for ``oci`` conmon's attach socket,
``drivers/attach.py``): the container's output from the moment of attaching (earlier
output is in ``kubectl logs``), stdin when asked for and the container was started with
``stdin: true`` (closing it closes the container's stdin if it is ``stdinOnce``), and
resizes of its pty when it has ``tty: true``. The session ends when the container exits
(its output drained): then, as the kubelet's ``ServeAttach``, a ``Success`` Status on
channel 3, never an exit code (``kubectl run`` reads that from the Pod's status); or when
the client leaves, which leaves the container running. A container that cannot be
attached to ends with a ``Failure`` Status on channel 3.

A container with no attach socket (the ``process`` driver; under the ``oci`` driver's
shim, i.e. ``mixed`` supervision without stdin or tty, and Mesos tasks) is attached to
output only (``LogAttach``): its CRI log followed from the current end, streams kept
apart, until it exits; asking such a container for stdin is a ``Failure``.

As with CRI-O (which starts conmon the same way), the end of *any* attach session to a
``stdinOnce`` container closes its stdin, output-only sessions included.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, cast

import orjson
from aiohttp import WSMessage, WSMsgType, web

from corral.agent.drivers.attach import AttachError
from corral.agent.drivers.base import Attachable, AttachSession, ContainerHandle, Driver
from corral.agent.logs import CHUNK, POLL_INTERVAL, parse_record
from corral.api import errors

log = logging.getLogger("corral.agent.attach")

PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")
STDIN, STDOUT, STDERR, STATUS, RESIZE = 0, 1, 2, 3, 4
CLOSE_CHANNEL = 255
_TRUE = ("1", "true", "True", "TRUE", "t", "T")
_FLAGS = ("stdin", "stdout", "stderr", "tty")


def channel_message(msg: WSMessage) -> bytes | None:
    """A channel-protocol WebSocket message's bytes (exec and attach read alike): a text
    frame counts as its UTF-8 bytes, as upstream's ``wsstream`` reads every message (the
    Python client's ``write_stdin(str)`` and its resize JSON are text frames); None for
    a control message or an empty one."""
    if msg.type == WSMsgType.TEXT:
        data: bytes = msg.data.encode("utf-8", "surrogateescape")
    elif msg.type == WSMsgType.BINARY:
        data = msg.data
    else:
        return None
    return data or None


class AttachLookup(Protocol):
    """The part of the agent server's ``ContainerLookup`` that attach reads."""

    def exec_target(
        self, namespace: str, pod: str, container: str
    ) -> tuple[Driver, ContainerHandle] | None: ...
    def log_files(self, namespace: str, pod: str, container: str) -> list[Path] | None: ...
    def is_running(self, namespace: str, pod: str, container: str) -> bool: ...


class LogAttach:
    """Output-only attach to a container without an attach socket (the ``process``
    driver, the shim): its CRI log followed from the current end, record by record with
    its stream, until the container has exited and the log is drained. Stdin and
    resizes are not for such containers (``serve_attach`` refuses stdin)."""

    def __init__(self, path: Path, running: Callable[[], bool], poll: float = POLL_INTERVAL):
        self._file = path.open("rb")
        self._file.seek(0, os.SEEK_END)
        self._running = running
        self._poll = poll
        self._rest = b""
        self._pending: deque[tuple[int, bytes]] = deque()

    async def read(self) -> tuple[int, bytes] | None:
        while not self._pending:
            gone = not self._running()  # (sampled before reading: nothing written is lost)
            data = self._file.read(CHUNK)
            if data:
                *lines, self._rest = (self._rest + data).split(b"\n")
                for line in lines:
                    try:
                        rec = parse_record(line)
                    except ValueError:
                        continue  # (a line cut by the seek to the end)
                    self._pending.append(
                        (STDOUT if rec.stream == "stdout" else STDERR, rec.content())
                    )
                continue
            if gone:
                return None
            await asyncio.sleep(self._poll)
        return self._pending.popleft()

    async def write_stdin(self, data: bytes) -> None:
        return None

    def close_stdin(self) -> None:
        return None

    async def resize(self, width: int, height: int) -> None:
        return None

    def close(self) -> None:
        self._file.close()


def _failure(message: str) -> dict[str, Any]:
    return {
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": errors.INTERNAL_ERROR,
        "code": 500,
    }


SUCCESS: dict[str, Any] = {"metadata": {}, "status": "Success"}


async def serve_attach(request: web.Request, lookup: AttachLookup) -> web.StreamResponse:
    """Answer one ``/attach`` request (errors before the upgrade raise ``StatusError``)."""
    ns, pod, name = (request.match_info[k] for k in ("namespace", "pod", "container"))
    flags = {k: request.query.get(k, "") in _TRUE for k in _FLAGS}
    if not (flags["stdin"] or flags["stdout"] or flags["stderr"]):
        raise errors.bad_request("you must specify at least 1 of stdin, stdout, stderr")
    ws = web.WebSocketResponse(protocols=PROTOCOLS, max_msg_size=0, autoping=True)
    if not ws.can_prepare(request).ok:
        raise errors.bad_request("Upgrade request required")
    await ws.prepare(request)
    v5 = ws.ws_protocol == "v5.channel.k8s.io"
    try:
        status = await _attach(ws, lookup, ns, pod, name, flags, v5)
        if status is not None and not ws.closed:
            with contextlib.suppress(ConnectionError):
                await ws.send_bytes(bytes([STATUS]) + orjson.dumps(status))
    finally:
        await ws.close()
    return ws


async def _attach(
    ws: web.WebSocketResponse,
    lookup: AttachLookup,
    ns: str,
    pod: str,
    name: str,
    flags: dict[str, bool],
    v5: bool,
) -> dict[str, Any] | None:
    """Pump one attach session; the Status to end it with (None: the client left)."""
    target = lookup.exec_target(ns, pod, name)
    if target is None:
        return _failure(f'container not found ("{name}")')
    driver, handle = target
    session: AttachSession | None = None
    why = f"the {driver.name} runtime serves no attach socket"
    if getattr(driver, "attach", None) is not None:
        try:
            session = await cast(Attachable, driver).attach(handle)
        except AttachError as e:
            why = str(e)
        except Exception as e:  # the driver's words, told to the client
            log.info("attach to %s/%s/%s failed: %s", ns, pod, name, e)
            return _failure(f"error attaching to container: {e}")
    if session is None:
        files = lookup.log_files(ns, pod, name)
        if flags["stdin"] or not files:
            return _failure(f"error attaching to container: {why}")
        session = LogAttach(files[-1], lambda: lookup.is_running(ns, pod, name))

    async def to_client() -> None:
        while (packet := await session.read()) is not None:
            channel, data = packet
            if channel == STDERR and flags["tty"]:
                channel = STDOUT  # (a tty has one stream)
            wanted = flags["stdout" if channel == STDOUT else "stderr"]
            if wanted and data and not ws.closed:
                with contextlib.suppress(ConnectionError):
                    await ws.send_bytes(bytes([channel]) + data)

    async def from_client() -> None:
        stdin_open = flags["stdin"]
        async for msg in ws:
            if (data := channel_message(msg)) is None:
                continue
            channel, payload = data[0], data[1:]
            if channel == STDIN and stdin_open and payload:
                await session.write_stdin(payload)
            elif channel == RESIZE and payload and flags["tty"]:
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    size = orjson.loads(payload)
                    await session.resize(int(size["Width"]), int(size["Height"]))
            elif v5 and channel == CLOSE_CHANNEL and payload[:1] == b"\x00" and stdin_open:
                stdin_open = False
                session.close_stdin()

    output = asyncio.create_task(to_client())
    client = asyncio.create_task(from_client())
    try:
        await asyncio.wait([output, client], return_when=asyncio.FIRST_COMPLETED)
        return SUCCESS if output.done() else None
    finally:
        for t in (output, client):
            t.cancel()
        for t in (output, client):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        session.close()
