"""A Mesos v1 scheduler HTTP client (asyncio, aiohttp, JSON): how an in-tree framework
(Chronos and Marathon) talks to the Mesos master exactly as it would to Mesos.

``SchedulerClient.run`` owns the SUBSCRIBE stream: it posts SUBSCRIBE, reads the
RecordIO body (``corral.util.recordio``) and hands every event, HEARTBEAT included, to
``on_event`` in order, one at a time (the next is read only once the callback returned).
The calls (ACCEPT, DECLINE, KILL, ...) go over other keep-alive connections of the same
``aiohttp`` session with the stream's ``Mesos-Stream-Id``. Nothing here knows what a
framework does with its offers: the caller decides, this module only speaks the wire
(docs/chronos.md; ``../shared/reference/mesos-marathon-chronos-wire.md`` section 1).

Subscription, as the Mesos scheduler library keeps it::

              +--------- 307: switch master ---------+
              v                                       |
    run --> SUBSCRIBE --200--> SUBSCRIBED --> connected (events ...) --EOF, error,
              ^   |                                   |   silence > 2 x heartbeat
              |   +-- 503, 5xx, connect error ---+    |
              |                                  v    v
              +-- re-SUBSCRIBE with framework_id <-- back off 1 s, x2 .. backoff_max
                                                 (jitter); reset by a SUBSCRIBED

    ERROR event ("Framework has been removed"): delivered, then run raises
    FrameworkRemoved (any other ERROR: FrameworkError); a 4xx to SUBSCRIBE: CallRefused.
    close(): run returns; teardown(): TEARDOWN, then run returns.

A re-subscription (a new SUBSCRIBED event) voids every offer of the previous stream;
status updates that were not acknowledged come again. Suppressed roles are remembered
and sent with the next SUBSCRIBE, so a reconnect does not unsuppress the framework.

Calls wait (up to ``call_timeout``) for a subscribed stream, and raise ``CallRefused`` on
a 4xx. A 403 means the master does not know the stream the call named (the master
restarted, or the stream is being replaced): the call waits for the next SUBSCRIBED and
is sent again, except ACCEPT, whose offers died with the old stream. Connection errors
and 5xx are retried a few times (ACCEPT and MESSAGE only when the request surely did not
reach the master: an ACCEPT sent twice would have its tasks dropped as using spent
offers). A call made by ``on_event`` itself (in ``run``'s task) never waits for a new
stream, since only that task can make one: unsubscribed it fails at once with
``CallFailed``, and a 403 is raised as ``CallRefused``; so ``on_event`` should catch
``SchedulerCallError`` from its calls (or let it end ``run``). With ``implicit_acks`` an
acknowledgement that cannot be delivered is only logged: the master resends the update.

Several masters (``"h1:5050,h2:5050"``, the elected masters of ``corral scheduler
--leader-elect``): SUBSCRIBE goes to the first; a standby's 307 switches to the leader it
names; a master that cannot be reached or answers 503 (no leader elected yet) makes the
client try the next one at once. Once every master failed in a row it waits: 0.5 s when
one of them answered (an election is under way: a standby that says 503, or still
redirects to the leader that died until its Lease expires), the back-off when none did.
So a framework keeps running when its leading master dies, and finds the new one within
about half a second of its election. (pymesos itself only follows
307: its configured master must answer again, or be a standby, for it to find the new
leader; give it a master that stays up or a ``zk://`` it cannot use here.)

Mind ``framework_info.failover_timeout``: Mesos' default is 0, which removes the
framework (and kills its tasks) as soon as its stream breaks, before any re-subscription
can come; a framework meant to survive reconnects and restarts sets it (Chronos: a week).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import inspect
import logging
import random
from collections.abc import Awaitable, Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson

from corral.util.recordio import Decoder

log = logging.getLogger("corral.mesos.framework_client")

Obj = dict[str, Any]
EventHandler = Callable[[Obj], Awaitable[None] | None]

SCHEDULER_PATH = "/api/v1/scheduler"
DEFAULT_PORT = 5050
#: waiting for SUBSCRIBE's response and its first record
SUBSCRIBE_TIMEOUT = 30.0
#: Mesos' heartbeat interval until SUBSCRIBED says otherwise
DEFAULT_HEARTBEAT = 15.0
#: a stream silent for this many heartbeat intervals is lost (the Mesos scheduler library)
HEARTBEAT_MISSES = 2
#: attempts of a call after connection errors or 5xx answers
CALL_ATTEMPTS = 4
#: how long a call answered 403 on the current stream waits for that stream to end by
#: itself before the client re-subscribes on its own
STALE_STREAM_GRACE = 2.0
#: consecutive 307 redirects followed before backing off
REDIRECTS_IN_A_ROW = 3
#: the pause between rounds of SUBSCRIBEs while masters answer but none leads yet
LEADERLESS_RETRY = 0.5

REMOVED_MESSAGE = "Framework has been removed"


class FrameworkError(Exception):
    """The master sent an ERROR event (e.g. "Framework failed over": another scheduler
    subscribed with this framework id): ``run`` delivered it and stopped."""


class FrameworkRemoved(FrameworkError):
    """The framework is gone (torn down, or its failover timeout passed): it cannot
    subscribe with this id again."""


class SchedulerCallError(Exception):
    """A call did not take effect (``CallRefused``, ``CallFailed``)."""


class CallRefused(SchedulerCallError):
    """The master answered the call (or SUBSCRIBE) with a 4xx; the message is its text."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}" if message else str(status))
        self.status = status
        self.message = message


class CallFailed(SchedulerCallError):
    """The call could not be delivered: no subscribed stream within ``call_timeout``,
    the client closed or ``run`` ended, or connection errors and 5xx answers on every
    attempt (for ACCEPT: the request may have reached the master)."""


def master_base(master: str) -> str:
    """``http://host:port`` of ``host``, ``host:port`` or a URL (port 5050 by default)."""
    text = master.strip()
    if text.startswith(("zk://", "zoo://")):
        raise ValueError(f"ZooKeeper master detection is not supported: {master!r}")
    if "//" not in text:
        text = "//" + text
    parts = urlsplit(text)
    scheme = parts.scheme or "http"
    if not parts.hostname:
        raise ValueError(f"no master host in {master!r}")
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    return f"{scheme}://{host}:{parts.port or DEFAULT_PORT}"


def master_list(masters: str) -> list[str]:
    """The base URLs of ``"h1:p1,h2:p2"`` (``master_base`` each; at least one)."""
    out = [master_base(m) for m in masters.split(",") if m.strip()]
    if not out:
        raise ValueError(f"no master in {masters!r}")
    return list(dict.fromkeys(out))


def redirect_target(location: str, current: str) -> str:
    """The master a 307 ``Location`` (``//leader:5050/...`` or a URL) points at."""
    parts = urlsplit(location)
    if not parts.netloc:
        return current
    scheme = parts.scheme or urlsplit(current).scheme or "http"
    return master_base(f"{scheme}://{parts.netloc}")


def backoff_delay(attempt: int, backoff_max: float, rng: random.Random | None = None) -> float:
    """Seconds to wait before re-subscribing after ``attempt`` failures in a row: 1 s
    doubling to ``backoff_max``, each drawn from [3/4, 1] of that (jitter)."""
    nominal = min(backoff_max, 2.0 ** min(attempt, 30))
    return nominal * (rng or random).uniform(0.75, 1.0)


def _ids(values: Iterable[str]) -> list[Obj]:
    return [{"value": v} for v in values]


def _filters(refuse_seconds: float | None) -> Obj:
    return {} if refuse_seconds is None else {"filters": {"refuse_seconds": refuse_seconds}}


class _Retry(Exception):
    """SUBSCRIBE did not give a stream; back off and try again. ``answered``: a master
    answered (a 5xx such as 503 "No leader elected"), it was not unreachable."""

    def __init__(self, message: str, *, answered: bool = False) -> None:
        super().__init__(message)
        self.answered = answered


class _Redirect(Exception):
    def __init__(self, master: str) -> None:
        super().__init__(master)
        self.master = master


class SchedulerClient:
    """One framework's connection to a Mesos master (see the module docstring).

    ``framework_id`` is the id to subscribe with (None: a new framework); SUBSCRIBED
    sets it. ``on_event`` may be a plain function or a coroutine function; an exception
    it raises ends ``run`` (the framework stays registered until its failover timeout).
    With ``implicit_acks`` every UPDATE that carries a uuid is acknowledged once
    ``on_event`` returned for it. ``session`` is used and left open; without one the
    client makes its own and ``close`` closes it.
    """

    def __init__(
        self,
        master: str,
        framework_info: Obj,
        *,
        on_event: EventHandler,
        framework_id: str | None = None,
        implicit_acks: bool = False,
        backoff_max: float = 15.0,
        session: aiohttp.ClientSession | None = None,
        call_timeout: float = 30.0,
        authorization: str | None = None,
    ) -> None:
        #: every master given (``"h1:p1,h2:p2"``), tried in turn when one fails
        self.masters = master_list(master)
        #: the master SUBSCRIBE and the calls go to now
        self.master = self.masters[0]
        #: the ``Authorization`` header of every request (HTTP basic: the framework's
        #: principal and secret, ``client.basic_auth.basic_header``), or None
        self.authorization = authorization
        self.framework_info = dict(framework_info)
        self.framework_id = framework_id
        self.implicit_acks = implicit_acks
        self.backoff_max = max(1.0, backoff_max)
        self.call_timeout = call_timeout
        self.connected = asyncio.Event()
        self.stream_id: str | None = None
        self.heartbeat_interval = DEFAULT_HEARTBEAT
        self.master_info: Obj | None = None
        self.subscriptions = 0  # SUBSCRIBED events seen
        self._on_event = on_event
        self._session = session
        self._own_session = session is None
        self._suppressed: set[str] = set()
        self._changed = asyncio.Event()  # replaced on every change of the fields below
        self._inner: asyncio.Task[None] | None = None
        self._stream_resp: aiohttp.ClientResponse | None = None
        self._stopping = False  # close() or a teardown: run returns
        self._closed = False
        self._ended: BaseException | str | None = None  # why run stopped, once it did
        self._teardown = ""  # "", "sending", "done"

    # --- the stream ---------------------------------------------------------------------------
    async def run(self) -> None:
        """Subscribe and deliver events until ``close``/``teardown`` (then return), an
        ERROR event (``FrameworkRemoved``/``FrameworkError``), a 4xx to SUBSCRIBE
        (``CallRefused``) or an exception from ``on_event``. Reconnects on its own."""
        if self._closed:
            raise RuntimeError("SchedulerClient is closed")
        if self._inner is not None:
            raise RuntimeError("SchedulerClient.run() is already running")
        self._ended = None
        self._stopping = False
        self._teardown = ""
        inner = asyncio.create_task(self._stream_loop(), name="mesos-scheduler-stream")
        self._inner = inner
        try:
            await inner
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if not self._stopping or (task is not None and task.cancelling()):
                self._ended = self._ended or "cancelled"
                raise
            self._ended = self._ended or "closed"
        except BaseException as e:
            self._ended = e
            raise
        else:
            self._ended = self._ended or "closed"
        finally:
            if not inner.done():
                inner.cancel()
                with contextlib.suppress(BaseException):
                    await inner
            self._inner = None
            self._lost()

    async def _stream_loop(self) -> None:
        attempt = 0
        redirects = 0
        failed = 0  # masters that failed in a row (a round of them: back off)
        answered = False  # a master of this round answered: a leader is being elected
        rng = random.Random()
        while not self._stopping:
            session = await self._get_session()
            try:
                subscribed = await self._subscribe_once(session)
                redirects = 0
                failed = 0
                if subscribed:
                    attempt = 0
            except _Redirect as r:
                log.warning("mesos scheduler: master %s redirects to %s", self.master, r.master)
                self.master = r.master
                redirects += 1
                answered = True
                if redirects <= REDIRECTS_IN_A_ROW:
                    continue
            except _Retry as e:
                log.info("mesos scheduler: subscribing to %s failed: %s", self.master, e)
                redirects = 0
                failed += 1
                answered = answered or e.answered
                if len(self.masters) > 1:
                    self.master = self._next_master()
                    if failed < len(self.masters) and not self._stopping:
                        continue
                failed = 0
            finally:
                self._lost()
            if await self._torn_down():
                return
            if self._stopping:
                return
            if answered:
                # masters answer but none leads yet (or one names a leader that died):
                # poll at a steady pace until the election settles, without backing off
                delay = LEADERLESS_RETRY * rng.uniform(0.75, 1.0)
            else:
                delay = backoff_delay(attempt, self.backoff_max, rng)
                attempt += 1
            answered = False
            log.info("mesos scheduler: re-subscribing to %s in %.1f s", self.master, delay)
            await asyncio.sleep(delay)

    def _next_master(self) -> str:
        """The master after the current one in the given list (the first when the
        current one came from a redirect)."""
        try:
            i = self.masters.index(self.master)
        except ValueError:
            return self.masters[0]
        return self.masters[(i + 1) % len(self.masters)]

    async def _subscribe_once(self, session: aiohttp.ClientSession) -> bool:
        """One SUBSCRIBE and its stream, until the stream ends (returns whether it got
        SUBSCRIBED) or cannot start (``_Retry``, ``_Redirect``, ``CallRefused``)."""
        info = dict(self.framework_info)
        call: Obj = {"type": "SUBSCRIBE", "subscribe": {"framework_info": info}}
        if self.framework_id:
            info["id"] = {"value": self.framework_id}
            call["framework_id"] = {"value": self.framework_id}
        if self._suppressed:
            call["subscribe"]["suppressed_roles"] = sorted(self._suppressed)
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.authorization:
            headers["Authorization"] = self.authorization
        try:
            async with asyncio.timeout(SUBSCRIBE_TIMEOUT):
                resp = await session.post(
                    self.master + SCHEDULER_PATH,
                    data=orjson.dumps(call),
                    headers=headers,
                    allow_redirects=False,
                    raise_for_status=False,
                    timeout=aiohttp.ClientTimeout(total=None, sock_connect=SUBSCRIBE_TIMEOUT),
                )
        except (aiohttp.ClientError, OSError, TimeoutError) as e:
            raise _Retry(f"{type(e).__name__}: {e}") from None
        got_subscribed = False
        try:
            if resp.status == 307:
                raise _Redirect(redirect_target(resp.headers.get("Location", ""), self.master))
            if resp.status != 200:
                text = await self._text(resp)
                if 400 <= resp.status < 500:
                    raise CallRefused(resp.status, text)
                raise _Retry(f"HTTP {resp.status}: {text}", answered=True)
            stream_id = resp.headers.get("Mesos-Stream-Id", "")
            self._stream_resp = resp
            decoder = Decoder()
            silence = SUBSCRIBE_TIMEOUT
            while True:
                try:
                    async with asyncio.timeout(silence):
                        chunk = await resp.content.readany()
                except TimeoutError:
                    log.warning(
                        "mesos scheduler: no event from %s for %.0f s: stream lost",
                        self.master,
                        silence,
                    )
                    return got_subscribed
                except (aiohttp.ClientError, OSError) as e:
                    log.info("mesos scheduler: stream from %s broke: %s", self.master, e)
                    return got_subscribed
                if not chunk:
                    log.info("mesos scheduler: stream from %s ended", self.master)
                    return got_subscribed
                try:
                    records = decoder.feed(chunk)
                except ValueError as e:
                    log.warning("mesos scheduler: bad stream from %s: %s", self.master, e)
                    return got_subscribed
                for record in records:
                    try:
                        event = orjson.loads(record)
                    except orjson.JSONDecodeError as e:
                        log.warning("mesos scheduler: bad event from %s: %s", self.master, e)
                        return got_subscribed
                    if not isinstance(event, dict):
                        continue
                    if event.get("type") == "SUBSCRIBED":
                        self._subscribed(event, stream_id)
                        got_subscribed = True
                        silence = HEARTBEAT_MISSES * self.heartbeat_interval
                    await self._deliver(event)
                    if self._stopping:  # close() or teardown() from on_event
                        return got_subscribed
        finally:
            self._stream_resp = None
            resp.close()

    def _subscribed(self, event: Obj, stream_id: str) -> None:
        sub = event.get("subscribed") or {}
        fid = (sub.get("framework_id") or {}).get("value")
        if isinstance(fid, str) and fid:
            self.framework_id = fid
        try:
            hb = float(sub.get("heartbeat_interval_seconds") or DEFAULT_HEARTBEAT)
        except (TypeError, ValueError):
            hb = DEFAULT_HEARTBEAT
        self.heartbeat_interval = hb if hb > 0 else DEFAULT_HEARTBEAT
        self.master_info = sub.get("master_info")
        self.stream_id = stream_id
        self.subscriptions += 1
        self.connected.set()
        self._signal()
        log.info(
            "mesos scheduler: subscribed to %s as framework %s", self.master, self.framework_id
        )

    async def _deliver(self, event: Obj) -> None:
        kind = event.get("type")
        result = self._on_event(event)
        if inspect.isawaitable(result):
            await result
        if kind == "UPDATE" and self.implicit_acks:
            status = (event.get("update") or {}).get("status") or {}
            try:
                await self.acknowledge(status)
            except SchedulerCallError as e:  # the master resends what is not acknowledged
                log.info("mesos scheduler: acknowledgement not delivered: %s", e)
        elif kind == "ERROR":
            message = str((event.get("error") or {}).get("message") or "")
            log.warning("mesos scheduler: master %s: ERROR %s", self.master, message)
            self._stopping = True
            if "removed" in message.lower():
                raise FrameworkRemoved(message or REMOVED_MESSAGE)
            raise FrameworkError(message)

    def _lost(self) -> None:
        """The stream is gone (or never came): calls wait for the next one."""
        if self.connected.is_set() or self.stream_id is not None:
            self.connected.clear()
            self.stream_id = None
        self._signal()

    def _signal(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def _torn_down(self) -> bool:
        """The stream ended while TEARDOWN was in flight: wait for its answer."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.call_timeout + 5):
                while self._teardown == "sending":
                    await self._changed.wait()
        return self._teardown == "done"

    # --- calls --------------------------------------------------------------------------------
    async def accept(
        self, offer_ids: list[str], operations: list[Obj], refuse_seconds: float | None = None
    ) -> None:
        """ACCEPT: run ``operations`` on the offers; what is left is declined (for
        ``refuse_seconds``, Mesos' default 5 s when None)."""
        body = {"offer_ids": _ids(offer_ids), "operations": operations, **_filters(refuse_seconds)}
        await self._call("ACCEPT", body, idempotent=False, across_streams=False)

    async def launch(
        self, offer_id: str, tasks: list[Obj], refuse_seconds: float | None = None
    ) -> None:
        """ACCEPT with one LAUNCH of ``tasks`` (TaskInfos); DECLINE when there are none."""
        if not tasks:
            await self.decline([offer_id], refuse_seconds)
            return
        await self.accept(
            [offer_id], [{"type": "LAUNCH", "launch": {"task_infos": tasks}}], refuse_seconds
        )

    async def decline(self, offer_ids: list[str], refuse_seconds: float | None = None) -> None:
        body = {"offer_ids": _ids(offer_ids), **_filters(refuse_seconds)}
        # offers die with their stream: after a re-subscription there is nothing to decline
        await self._call("DECLINE", body, across_streams=False, moot_across_streams=True)

    async def kill(self, task_id: str, agent_id: str | None = None) -> None:
        body: Obj = {"task_id": {"value": task_id}}
        if agent_id:
            body["agent_id"] = {"value": agent_id}
        await self._call("KILL", body)

    async def acknowledge(self, status: Obj) -> None:
        """ACKNOWLEDGE an UPDATE's ``status`` (its task_id, agent_id and uuid); nothing
        for a status without uuid (the master's own: reconciliation, invalid launches)."""
        uuid = status.get("uuid")
        if not uuid:
            return
        body: Obj = {"task_id": status.get("task_id"), "uuid": uuid}
        if status.get("agent_id"):
            body["agent_id"] = status["agent_id"]
        await self._call("ACKNOWLEDGE", body)

    async def reconcile(self, tasks: Iterable[tuple[str, str | None]] = ()) -> None:
        """RECONCILE these (task id, agent id or None); none: implicit (every task)."""
        items: list[Obj] = []
        for task_id, agent_id in tasks:
            item: Obj = {"task_id": {"value": task_id}}
            if agent_id:
                item["agent_id"] = {"value": agent_id}
            items.append(item)
        await self._call("RECONCILE", {"tasks": items})

    async def revive(self, roles: list[str] | None = None) -> None:
        """REVIVE offers (clears filters, unsuppresses) for ``roles`` (None: all)."""
        await self._call("REVIVE", {"roles": list(roles)} if roles else None)
        if roles:
            self._suppressed.difference_update(roles)
        else:
            self._suppressed.clear()

    async def suppress(self, roles: list[str] | None = None) -> None:
        """SUPPRESS offers for ``roles`` (None: all); kept across re-subscriptions."""
        await self._call("SUPPRESS", {"roles": list(roles)} if roles else None)
        self._suppressed.update(roles or self._roles())

    async def message(self, agent_id: str, executor_id: str, data: bytes) -> None:
        """MESSAGE to an executor (best effort, at most once: not resent)."""
        body = {
            "agent_id": {"value": agent_id},
            "executor_id": {"value": executor_id},
            "data": base64.b64encode(data).decode(),
        }
        await self._call("MESSAGE", body, idempotent=False)

    async def teardown(self) -> None:
        """TEARDOWN: the master kills the framework's tasks and forgets it; ``run``
        returns (without an error) once the master ends the stream."""

        def sending(outcome: str) -> None:
            self._teardown = outcome
            self._signal()

        try:
            await self._call("TEARDOWN", None, on_send=sending)
        except BaseException:
            sending("")
            raise
        sending("done")
        self._stopping = True
        self._stop_stream()

    async def close(self) -> None:
        """Stop: ``run`` returns and the connections close, without TEARDOWN (the
        framework stays registered until its failover timeout; a new client with the same
        ``framework_id`` takes it over)."""
        self._stopping = True
        self._closed = True
        self._ended = self._ended or "closed"
        self._stop_stream()
        inner = self._inner
        if inner is not None and inner is not asyncio.current_task():
            with contextlib.suppress(BaseException):
                await asyncio.wait({inner}, timeout=5.0)
        self._lost()
        if self._own_session and self._session is not None:
            session, self._session = self._session, None
            await session.close()

    def _stop_stream(self) -> None:
        inner = self._inner
        if inner is not None and not inner.done() and inner is not asyncio.current_task():
            inner.cancel()
        elif self._stream_resp is not None:
            self._stream_resp.close()  # from on_event: the read loop ends after it
        self._signal()

    def _roles(self) -> list[str]:
        roles = self.framework_info.get("roles")
        if isinstance(roles, list) and roles:
            return [str(r) for r in roles]
        return [str(self.framework_info.get("role") or "*")]

    async def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            if self._closed:
                raise CallFailed("the client is closed")
            self._session = aiohttp.ClientSession()
        return self._session

    async def _call(
        self,
        kind: str,
        payload: Obj | None,
        *,
        idempotent: bool = True,
        across_streams: bool = True,
        moot_across_streams: bool = False,
        on_send: Callable[[str], None] | None = None,
    ) -> None:
        """Send one call on the current stream (see the module docstring for retries)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.call_timeout
        failures = 0
        first_stream: str | None = None
        last_error = ""
        while True:
            stream_id = await self._wait_stream(deadline, kind)
            if first_stream is None:
                first_stream = stream_id
            elif stream_id != first_stream and not across_streams:
                if moot_across_streams:
                    return
                raise CallRefused(403, f"{kind}: the stream its offers came on is gone")
            call: Obj = {"type": kind, "framework_id": {"value": self.framework_id}}
            if payload is not None:
                call[kind.lower()] = payload
            headers = {
                "Content-Type": "application/json",
                "Accept": "application/json",
                "Mesos-Stream-Id": stream_id,
            }
            if self.authorization:
                headers["Authorization"] = self.authorization
            session = await self._get_session()
            if on_send is not None:
                on_send("sending")
            status, text = 0, ""
            try:
                async with (
                    asyncio.timeout_at(deadline),
                    session.post(
                        self.master + SCHEDULER_PATH,
                        data=orjson.dumps(call),
                        headers=headers,
                        allow_redirects=False,
                        raise_for_status=False,
                    ) as resp,
                ):
                    status = resp.status
                    text = await self._text(resp)
            except (aiohttp.ClientError, OSError, TimeoutError) as e:
                if on_send is not None:
                    on_send("")
                surely_unsent = isinstance(e, aiohttp.ClientConnectorError)
                last_error = f"{type(e).__name__}: {e}"
                failures += 1
                if (not idempotent and not surely_unsent) or isinstance(e, TimeoutError):
                    raise CallFailed(f"{kind} to {self.master}: {last_error}") from None
                if failures >= CALL_ATTEMPTS:
                    break
                await self._pause(0.2 * 2**failures, deadline)
                continue
            if 200 <= status < 300:
                return
            if on_send is not None:
                on_send("")
            if status == 403:
                if not await self._next_stream(stream_id, deadline, kind):
                    raise CallRefused(status, text)
                continue
            if 400 <= status < 500:
                raise CallRefused(status, text)
            # 307 (not the leader), 503 (no leader), other 5xx: try again shortly
            last_error = f"HTTP {status}: {text}"
            failures += 1
            if failures >= CALL_ATTEMPTS:
                break
            await self._pause(0.2 * 2**failures, deadline)
        raise CallFailed(f"{kind} to {self.master}: {last_error}")

    def _in_run(self) -> bool:
        return self._inner is not None and asyncio.current_task() is self._inner

    async def _wait_stream(self, deadline: float, kind: str) -> str:
        """The current stream id, waiting (until ``deadline``) for a subscription."""
        while True:
            if self._ended is not None and self._inner is None:
                raise CallFailed(f"{kind}: the client stopped ({self._ended})")
            if self._closed:
                raise CallFailed(f"{kind}: the client is closed")
            if self.connected.is_set() and self.stream_id is not None:
                return self.stream_id
            if self._in_run():
                raise CallFailed(f"{kind}: not subscribed (called from on_event)")
            changed = self._changed
            try:
                async with asyncio.timeout_at(deadline):
                    await changed.wait()
            except TimeoutError:
                raise CallFailed(
                    f"{kind}: not subscribed to {self.master} within {self.call_timeout:.0f} s"
                ) from None

    async def _next_stream(self, stale: str, deadline: float, kind: str) -> bool:
        """After a 403 on stream ``stale``: wait for another stream (re-subscribing when
        the master no longer knows one the client still reads). False: none will come."""
        if self._in_run():
            return False
        loop = asyncio.get_running_loop()
        grace_until = min(deadline, loop.time() + STALE_STREAM_GRACE)
        forced = False
        while True:
            if self._closed or self._stopping or (self._ended is not None and self._inner is None):
                return False
            if self.connected.is_set() and self.stream_id not in (None, stale):
                return True
            now = loop.time()
            if now >= deadline:
                return False
            if not forced and now >= grace_until and self.stream_id == stale:
                log.info("mesos scheduler: %s refused on stream %s: re-subscribing", kind, stale)
                forced = True
                if self._stream_resp is not None:
                    self._stream_resp.close()
            changed = self._changed
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout_at(grace_until if not forced else deadline):
                    await changed.wait()

    @staticmethod
    async def _pause(seconds: float, deadline: float) -> None:
        left = deadline - asyncio.get_running_loop().time()
        await asyncio.sleep(max(0.0, min(seconds, left)))

    @staticmethod
    async def _text(resp: aiohttp.ClientResponse) -> str:
        try:
            raw = await resp.read()
        except (aiohttp.ClientError, OSError):
            return ""
        return raw.decode("utf-8", "replace").strip()
