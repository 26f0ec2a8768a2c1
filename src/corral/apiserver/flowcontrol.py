"""API Priority and Fairness: classify each request, queue it fairly, reject when full.

Upstream's APF filter (k8s.io/apiserver/pkg/util/flowcontrol) at Corral's scale. The
middleware (``app.py``) calls ``FlowControl.admit`` after authentication and
impersonation and before authorization. A request is matched against the default
FlowSchemas (``flowschemas.py``, upstream's bootstrap set, lowest matchingPrecedence
first) which name its priority level and how its *flow* is told apart (ByUser,
ByNamespace). Each limited level owns a number of seats, its share of the server-wide
limit (``--max-requests-inflight`` + ``--max-mutating-requests-inflight``), and queues:

    arrive --seat free, nothing queued--> execute --finish--> (free seat: dispatch)
       |                                     ^
       +--shuffle-shard: hand of queues,     | start-time fair queuing: the non-empty
          shortest one; full --> 429         | queue whose next virtual start is least
          wait > wait limit --> 429 ---------+

A list holds several seats, one per 100 objects it scans (``work_width``, upstream's
list work estimator). Handlers mostly run without awaiting, so a wide list (more than
one seat) seated beside others of its level first yields one turn of the event loop
(requests that arrive together then meet in the queues; a cheap one-seat request is not
worth the turn), and every request keeps its seat while its answer is written (``send``). ``LevelQueues`` is the sans-I/O part (tickets in, dispatched tickets out;
tests drive it directly); ``FlowControl`` and ``Admission`` are the thin asyncio shell:
one future per waiting request.
Exempt requests (system:masters, health probes) never wait. Long-running requests other
than watch (exec, attach, logs, port-forward, proxy) skip APF, as upstream; a watch
waits its turn but frees its seat as soon as its handler starts (upstream: init only).
"""

from __future__ import annotations

import asyncio
import hashlib
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web

from corral.api import errors
from corral.apiserver.flowschemas import (
    FLOW_SCHEMAS,
    MASTERS,
    PRIORITY_LEVELS,
    FlowSchema,
    PriorityLevel,
    matches,
)
from corral.apiserver.identity import UserInfo
from corral.apiserver.request_info import RequestInfo, resolve

#: upstream's defaults, 600 seats in all. Handlers mostly run without awaiting, so seats
#: do not buy parallelism in one Python process; what they bound is how many requests
#: of a level are let in ahead of the others (a flood of one user, global-default: 49
#: seats, delays a Lease update, node-high: 98, by at most 49 of its requests, not by
#: all it has sent). But a write holds its seat while it awaits the group commit (one
#: fsync), so a level's seats over a write's latency bound its write rate: with 100 +
#: 50 the scheduler's bindings (workload-high: 25 seats at ~60 ms under load) stopped
#: near 450 a second at 5,000 hollow nodes, with the server's loop not saturated
#: (``bench/scheduler_perf.py``). The price: more of a flood's wide lists interleave on
#: the loop (README, Reliability: the ``flood`` rows).
DEFAULT_MAX_INFLIGHT = 400
DEFAULT_MAX_MUTATING_INFLIGHT = 200
#: how long a request may wait in a queue: upstream's quarter of ``--request-timeout``
DEFAULT_REQUEST_TIMEOUT = 60.0
#: what a rejected request is told (upstream's value)
RETRY_AFTER_SECONDS = 1
TOO_MANY_REQUESTS = "TooManyRequests"
TOO_MANY_MESSAGE = "Too many requests, please try again later."

#: what ``admit`` leaves in the request for the authorizer (resolved once)
REQUEST_INFO_KEY = "request_info"
#: classifications remembered (by user and request shape) before the memo starts over
CLASSIFIED_MEMO = 4096

FLOW_SCHEMA_UID_HEADER = "X-Kubernetes-PF-FlowSchema-UID"
PRIORITY_LEVEL_UID_HEADER = "X-Kubernetes-PF-PriorityLevel-UID"

#: upstream's list work estimator (request/config.go): a list holds one seat per this
#: many objects it scans, at most ``MAXIMUM_SEATS`` (and never more than its level has)
OBJECTS_PER_SEAT = 100
MAXIMUM_SEATS = 10

#: upstream's BasicLongRunningRequestCheck: these verbs and subresources
LONG_RUNNING_VERBS = frozenset({"watch", "proxy"})
LONG_RUNNING_SUBRESOURCES = frozenset({"attach", "exec", "proxy", "log", "portforward"})


def too_many_requests() -> errors.StatusError:
    """Upstream's 429 Status (``details.retryAfterSeconds``; the header says it too)."""
    return errors.StatusError(
        429, TOO_MANY_REQUESTS, TOO_MANY_MESSAGE, {"retryAfterSeconds": RETRY_AFTER_SECONDS}
    )


def is_long_running(info: RequestInfo) -> bool:
    return info.verb in LONG_RUNNING_VERBS or (
        info.resource_request and info.subresource in LONG_RUNNING_SUBRESOURCES
    )


def work_width(info: RequestInfo, object_count: int) -> int:
    """Seats a request holds while it executes (upstream's WorkEstimator, by object
    count): a list of a resource with N objects in the cache scans all N, so holds
    ceil(N / 100) seats, 1 to 10; a list of one name (a ``metadata.name=`` field
    selector sets ``info.name``, as upstream) and everything else hold 1. (A watch holds its seat only until its
    handler starts, below, so it is 1 too.)"""
    if info.verb != "list" or info.name:
        return 1
    return max(1, min(MAXIMUM_SEATS, math.ceil(object_count / OBJECTS_PER_SEAT)))


def classify(user: UserInfo, info: RequestInfo) -> tuple[FlowSchema, str]:
    """The FlowSchema ``user``'s request matches (least matchingPrecedence first, then
    name, as upstream), and its flow distinguisher ("" when the schema has none)."""
    for fs in FLOW_SCHEMAS:
        if matches(fs, user, info):
            if fs.distinguisher == "ByUser":
                return fs, user.username
            if fs.distinguisher == "ByNamespace":
                return fs, info.namespace
            return fs, ""
    return FLOW_SCHEMAS[-1], user.username  # no group at all: catch-all, by user


def deal_hand(flow_hash: int, queues: int, hand_size: int) -> list[int]:
    """Shuffle sharding: ``hand_size`` distinct queue indexes dealt from ``flow_hash``
    (each draw takes the hash modulo the cards left), so two flows rarely share a hand."""
    hand_size = min(hand_size, queues)
    deck = list(range(queues))
    hand = []
    for left in range(queues, queues - hand_size, -1):
        flow_hash, i = divmod(flow_hash, left)
        hand.append(deck.pop(i))
    return hand


def flow_hash(schema: str, distinguisher: str) -> int:
    digest = hashlib.sha256(f"{schema}\x00{distinguisher}".encode()).digest()
    return int.from_bytes(digest[:16], "big")


@dataclass(eq=False)
class Ticket:
    """One request in a level: waiting in ``queue`` (an index, -1: none) or executing,
    holding ``width`` seats."""

    queue: int
    width: int = 1
    dispatched: bool = False
    done: bool = False
    #: set by the shell: resolved when the ticket is dispatched
    waker: asyncio.Future[None] | None = None


@dataclass
class _Queue:
    waiting: deque[Ticket] = field(default_factory=deque)
    executing: int = 0
    #: virtual time at which this queue's next request starts (start-time fair queuing)
    next_start: float = 0.0


class LevelQueues:
    """Seats and fair queues of one limited priority level; sans-I/O, not thread-safe.

    ``arrive`` returns a ticket (dispatched at once, or waiting) or None (rejected:
    the chosen queue is full, or the level rejects rather than queues); ``finish``
    frees its seats and ``cancel`` withdraws a waiting ticket; both return the tickets
    that got seats because of it. A ticket of width W needs W free seats; as upstream,
    the request chosen next waits for them and none behind it overtakes it (so a wide
    list is not starved by narrow ones), and its queue's virtual clock advances by W.
    """

    def __init__(self, level: PriorityLevel, seats: int) -> None:
        self.level = level
        self.seats = max(1, seats)
        self.executing = 0
        self.queues = [_Queue() for _ in range(level.queues)]
        self.waiting = 0
        #: virtual time: the start tag of the request dispatched last
        self.virtual_time = 0.0

    def arrive(self, hashed: int, width: int = 1) -> Ticket | None:
        width = max(1, min(width, self.seats))
        if self.waiting == 0 and self.executing + width <= self.seats:
            return self._start(Ticket(-1, width))
        if not self.queues:  # LimitResponse Reject (catch-all)
            return None
        hand = deal_hand(hashed, len(self.queues), self.level.hand_size)
        idx = min(hand, key=lambda i: len(self.queues[i].waiting) + self.queues[i].executing)
        q = self.queues[idx]
        if len(q.waiting) >= self.level.queue_length_limit:
            return None
        if not q.waiting:
            q.next_start = max(q.next_start, self.virtual_time)
        t = Ticket(idx, width)
        q.waiting.append(t)
        self.waiting += 1
        return t

    def finish(self, t: Ticket) -> list[Ticket]:
        if t.done or not t.dispatched:
            return []
        t.done = True
        self.executing -= t.width
        if t.queue >= 0:
            self.queues[t.queue].executing -= t.width
        return self._dispatch()

    def cancel(self, t: Ticket) -> list[Ticket]:
        """Withdraw ``t`` if it still waits (timed out, client gone); a dispatched
        ticket is finished instead."""
        if t.dispatched:
            return self.finish(t)
        if t.done:
            return []
        t.done = True
        self.queues[t.queue].waiting.remove(t)
        self.waiting -= 1
        return self._dispatch()  # a wide ticket withdrawn may unblock narrower ones

    def _start(self, t: Ticket) -> Ticket:
        t.dispatched = True
        self.executing += t.width
        if t.queue >= 0:
            self.queues[t.queue].executing += t.width
        return t

    def _dispatch(self) -> list[Ticket]:
        out = []
        while self.waiting and self.executing < self.seats:
            q = min((q for q in self.queues if q.waiting), key=lambda q: q.next_start)
            if self.executing + q.waiting[0].width > self.seats:
                break  # the next in fair order waits for enough seats; nobody overtakes
            t = q.waiting.popleft()
            self.waiting -= 1
            self.virtual_time = q.next_start
            q.next_start += t.width
            out.append(self._start(t))
        return out


def level_seats(total: int, levels: tuple[PriorityLevel, ...]) -> dict[str, int]:
    """Each limited level's nominal concurrency limit: ceil(total * shares / sum)."""
    limited = [pl for pl in levels if not pl.exempt]
    shares = sum(pl.shares for pl in limited)
    return {pl.name: max(1, math.ceil(total * pl.shares / shares)) for pl in limited}


@dataclass
class LevelStats:
    #: by upstream's reason label: queue-full, concurrency-limit, time-out
    rejected: dict[str, int] = field(default_factory=dict)


class FlowControl:
    """The asyncio shell over one ``LevelQueues`` per limited level."""

    def __init__(
        self,
        max_inflight: int = DEFAULT_MAX_INFLIGHT,
        max_mutating_inflight: int = DEFAULT_MAX_MUTATING_INFLIGHT,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
        object_count: Callable[[str, str], int] | None = None,
    ) -> None:
        self.total = max_inflight + max_mutating_inflight
        #: (API group, resource) -> objects cached, for a list's width (``work_width``)
        self.object_count = object_count or (lambda group, resource: 0)
        self.wait_limit = request_timeout / 4
        seats = level_seats(self.total, PRIORITY_LEVELS)
        self.levels = {
            pl.name: LevelQueues(pl, seats[pl.name]) for pl in PRIORITY_LEVELS if not pl.exempt
        }
        self.stats = {pl.name: LevelStats() for pl in PRIORITY_LEVELS}
        self._by_name = {pl.name: pl for pl in PRIORITY_LEVELS}
        self.exempt = next(fs for fs in FLOW_SCHEMAS if fs.name == "exempt")
        self.exempt_level_uid = self._by_name[self.exempt.level].uid
        #: (user, request shape) -> (FlowSchema, its level's uid, flow hash): matching a
        #: non-master's request walks a dozen schemas, sha256 hashes its flow; both are
        #: the same for every request of that shape
        self._classified: dict[tuple[object, ...], tuple[FlowSchema, str, int]] = {}

    def classified(self, user: UserInfo, info: RequestInfo) -> tuple[FlowSchema, str, int]:
        """The FlowSchema of ``user``'s request, its level's uid and its flow's hash."""
        key = (
            user.username, user.groups, info.resource_request, info.verb, info.api_group,
            info.resource, info.subresource, info.namespace,
            "" if info.resource_request else info.path,
        )  # fmt: skip
        found = self._classified.get(key)
        if found is None:
            if len(self._classified) >= CLASSIFIED_MEMO:
                self._classified.clear()
            fs, distinguisher = classify(user, info)
            found = (fs, self._by_name[fs.level].uid, flow_hash(fs.name, distinguisher))
            self._classified[key] = found
        return found

    def admit(self, request: web.Request, user: UserInfo) -> Admission:
        """``async with admit(request, user) as seat``: hold a seat of the request's
        level while the body runs; raises the 429 StatusError (and marks ``request`` for
        the Retry-After header) when rejected. ``seat`` says whether a seat is held:
        then the body should send its answer with ``send`` before it returns (the seat
        covers the writing, as upstream's). Leaves the resolved ``RequestInfo`` as
        ``request[REQUEST_INFO_KEY]``, except for system:masters (the exempt schema
        takes all their requests; nothing is resolved)."""
        return Admission(self, request, user)

    @staticmethod
    async def send(request: web.Request, resp: web.StreamResponse) -> None:
        """Write ``resp`` now, while the seat is held: a handler that builds its answer
        without awaiting holds no seat otherwise, and a big answer to a slow client
        would cost nothing. aiohttp then finds it sent."""
        if not resp.prepared:
            await resp.prepare(request)
            await resp.write_eof()

    def reject(self, request: web.Request, level: str, reason: str) -> None:
        """Count a rejection of ``reason`` and raise the 429 (Retry-After set)."""
        rejected = self.stats[level].rejected
        rejected[reason] = rejected.get(reason, 0) + 1
        request["retry_after"] = str(RETRY_AFTER_SECONDS)
        raise too_many_requests()

    @staticmethod
    def wake(tickets: list[Ticket]) -> None:
        """Resolve the futures of the tickets ``LevelQueues`` just dispatched."""
        for t in tickets:
            if t.waker is not None and not t.waker.done():
                t.waker.set_result(None)

    async def on_response_prepare(self, request: web.Request, resp: web.StreamResponse) -> None:
        """aiohttp signal: the PF headers, and Retry-After on a rejection."""
        for h in (FLOW_SCHEMA_UID_HEADER, PRIORITY_LEVEL_UID_HEADER):
            uid = request.get(h)
            if uid:
                resp.headers[h] = uid
        retry = request.get("retry_after")
        if retry:
            resp.headers["Retry-After"] = retry

    def metrics(self) -> str:
        """Prometheus text of upstream's three gauges/counters, by priority level."""
        lines = [
            "# TYPE apiserver_flowcontrol_rejected_requests_total counter",
            *(
                f'apiserver_flowcontrol_rejected_requests_total{{priority_level="{n}",'
                f'reason="{reason}"}} {count}'
                for n, s in self.stats.items()
                for reason, count in sorted(s.rejected.items())
            ),
            "# TYPE apiserver_flowcontrol_current_inqueue_requests gauge",
            *(
                f'apiserver_flowcontrol_current_inqueue_requests{{priority_level="{n}"}} '
                f"{lq.waiting}"
                for n, lq in self.levels.items()
            ),
            "# TYPE apiserver_flowcontrol_current_executing_requests gauge",
            *(
                f'apiserver_flowcontrol_current_executing_requests{{priority_level="{n}"}} '
                f"{lq.executing}"
                for n, lq in self.levels.items()
            ),
        ]
        return "\n".join(lines) + "\n"


class Admission:
    """One request's passage through ``FlowControl`` (an async context manager; a
    class rather than ``@asynccontextmanager``, which costs a cheap GET ~2%)."""

    __slots__ = ("fc", "lq", "request", "ticket", "user")

    def __init__(self, fc: FlowControl, request: web.Request, user: UserInfo) -> None:
        self.fc = fc
        self.request = request
        self.user = user
        self.lq: LevelQueues | None = None
        self.ticket: Ticket | None = None

    async def __aenter__(self) -> bool:
        fc, request = self.fc, self.request
        if MASTERS in self.user.groups:
            request[FLOW_SCHEMA_UID_HEADER] = fc.exempt.uid
            request[PRIORITY_LEVEL_UID_HEADER] = fc.exempt_level_uid
            return False
        info = resolve(request.method, request.path, request.query)
        request[REQUEST_INFO_KEY] = info
        watch = info.verb == "watch"
        if not watch and is_long_running(info):
            return False
        fs, level_uid, hashed = fc.classified(self.user, info)
        request[FLOW_SCHEMA_UID_HEADER] = fs.uid
        request[PRIORITY_LEVEL_UID_HEADER] = level_uid
        lq = fc.levels.get(fs.level)
        if lq is None:  # exempt
            return False
        width = 1
        if info.verb == "list":
            width = work_width(info, fc.object_count(info.api_group, info.resource))
        t = lq.arrive(hashed, width)
        if t is None:
            fc.reject(request, fs.level, "queue-full" if lq.queues else "concurrency-limit")
        assert t is not None
        if t.dispatched:
            # Seated at once beside others of its level: yield one turn of the loop
            # first. Handlers mostly run without awaiting, so without it a request would
            # finish before the next one is even parsed and no queue could ever form;
            # with it, the requests that arrive together meet here and are ordered by
            # level and flow. Alone in its level it runs at once (the turn would cost
            # ~2% of a cheap GET for nothing), and so does a one-seat request: a GET
            # of one object costs less than the turn (bench/authz_perf.py: a non-admin
            # GET lost ~20% of its rate to it under 32 clients).
            if width > 1 and lq.executing > t.width:
                try:
                    await asyncio.sleep(0)
                except BaseException:
                    fc.wake(lq.finish(t))
                    raise
        else:
            t.waker = asyncio.get_running_loop().create_future()
            try:
                async with asyncio.timeout(fc.wait_limit):
                    await t.waker
            except TimeoutError:
                fc.wake(lq.cancel(t))
                fc.reject(request, fs.level, "time-out")
            except BaseException:
                fc.wake(lq.cancel(t))
                raise
        if watch:  # a watch holds its seat through admission only
            fc.wake(lq.finish(t))
            return False
        self.lq, self.ticket = lq, t
        return True

    async def __aexit__(self, *exc: object) -> None:
        if self.lq is not None and self.ticket is not None:
            self.fc.wake(self.lq.finish(self.ticket))
