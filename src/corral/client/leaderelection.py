"""Leader election on a coordination.k8s.io/v1 Lease, as client-go's ``leaderelection``.

Who calls it: every component that must act once per cluster (the scheduler with the
Mesos master, the controller manager, Marathon, Chronos, the API server's lifecycle
loops) wraps its work in ``LeaderElector.run(lead)``. Several processes run the same
elector on the same Lease; one holds it and runs ``lead()``, the others poll.

How it decides (the facts of client-go's ``tools/leaderelection``):

* acquire and renew are an ``update`` of the Lease carrying the ``resourceVersion`` last
  read (optimistic concurrency: of two candidates, one wins and the other gets 409);
  a missing Lease is created;
* a candidate takes a Lease held by someone else only when the Lease has not changed
  for ``leaseDurationSeconds`` by its OWN monotonic clock (the time it last saw the
  record change, "observedTime"), never by comparing ``renewTime`` with its clock: the
  hosts' clocks need not agree, only run at about the same rate;
* ``leaseTransitions`` grows by one whenever the holder changes; ``acquireTime`` and
  ``renewTime`` are MicroTime;
* the leader renews every ``retry_period``; when it has not renewed for
  ``renew_deadline`` (< ``lease_duration``), it stops: ``lead()`` is cancelled and
  awaited BEFORE any candidate can see the lease expire, then it campaigns again;
* on a clean stop (``run`` cancelled) the holder releases the Lease (empty
  ``holderIdentity``, as ``ReleaseOnCancel``), so a standby takes over at its next poll.

Fencing: while it leads, the elector puts a header on every mutating request of its
client (``Client.write_headers``) naming the Lease, its holder and ``leaseTransitions``;
the API server refuses a write whose fence no longer matches the Lease
(``corral.apiserver.fencing``). A deposed leader that wakes up from a pause therefore
cannot write, even before it notices it lost. The fence stays on the client after the
leadership is lost (a stale fence is refused); it is replaced on the next acquisition.

``advertise`` is written on the Lease as annotations ``corral.dev/advertise-<key>`` while
leading (e.g. ``mesos: "host:port"``), so standbys know where to send their clients
(``leader_advertise()``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import socket
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from corral.api.errors import StatusError
from corral.client.rest import LEASES, Client
from corral.util.clock import Clock, SystemClock, rfc3339_micro

log = logging.getLogger("corral.leaderelection")

Obj = dict[str, Any]

#: the request header carrying a write's fence: ``<namespace>/<name>;<holder>;<transitions>``
FENCE_HEADER = "X-Corral-Lease-Fence"
#: the annotation prefix of the leader's advertised listeners
ADVERTISE_PREFIX = "corral.dev/advertise-"
#: client-go's JitterFactor for the acquire loop
_JITTER = 1.2


class LeadershipLost(Exception):
    """``run(..., once=True)``: the one term ended."""


#: the exit code of a command whose term ended (``LeadershipLost``): its supervisor
#: (``apiserver/children.py``) starts it again at once, as a fresh standby, rather than
#: backing off as after a crash (sysexits' EX_TEMPFAIL: "try again")
EXIT_LEADERSHIP_LOST = 75


def new_identity() -> str:
    """``hostname_uuid4``: unique per process, readable in ``kubectl get lease``."""
    return f"{socket.gethostname()}_{uuid.uuid4()}"


def format_fence(namespace: str, name: str, holder: str, transitions: int) -> str:
    return f"{namespace}/{name};{holder};{transitions}"


def parse_fence(value: str) -> tuple[str, str, str, int] | None:
    """``(namespace, name, holder, transitions)`` of a fence header, None if malformed."""
    parts = value.split(";")
    if len(parts) != 3:
        return None
    ns, _, name = parts[0].partition("/")
    try:
        transitions = int(parts[2])
    except ValueError:
        return None
    if not ns or not name or not parts[1]:
        return None
    return ns, name, parts[1], transitions


class LeaderElector:
    """Campaign for the Lease ``namespace/name`` as ``identity``; run work while leading.

    ``is_leader`` is true only while this elector holds the Lease AND renewed it less
    than ``renew_deadline`` ago (so it turns false before anyone else can take over).
    """

    def __init__(
        self,
        client: Client,
        name: str,
        identity: str,
        *,
        namespace: str = "kube-system",
        lease_duration: float = 15.0,
        renew_deadline: float = 10.0,
        retry_period: float = 2.0,
        advertise: dict[str, str] | None = None,
        clock: Clock | None = None,
        fence: bool = True,
    ) -> None:
        if not 0 < retry_period < renew_deadline < lease_duration:
            raise ValueError(
                "leader election needs 0 < retry period < renew deadline < lease duration "
                f"(got {retry_period}, {renew_deadline}, {lease_duration})"
            )
        self.client = client
        self.name = name
        self.namespace = namespace
        self.identity = identity or new_identity()
        self.lease_duration = lease_duration
        self.renew_deadline = renew_deadline
        self.retry_period = retry_period
        self.advertise = dict(advertise or {})
        self._clock: Clock = clock or SystemClock()
        self._fenced: list[Client] = [client] if fence else []
        # the last Lease object seen (with its resourceVersion) and when it last changed
        self._observed: Obj | None = None
        self._observed_rv = ""
        self._observed_time = 0.0
        # monotonic start of the last successful acquire/renew, while we hold the Lease
        self._renewed_at: float | None = None
        self._abdicate = asyncio.Event()
        self._stepped_down = asyncio.Event()

    # --- what others read ----------------------------------------------------------------
    @property
    def is_leader(self) -> bool:
        return (
            self._renewed_at is not None
            and self._clock.monotonic() - self._renewed_at < self.renew_deadline
        )

    @property
    def leader(self) -> str:
        """The holder last observed ("" when none): informational."""
        return str(_spec(self._observed).get("holderIdentity") or "")

    @property
    def lease_transitions(self) -> int:
        return int(_spec(self._observed).get("leaseTransitions") or 0)

    def leader_advertise(self) -> dict[str, str] | None:
        """The advertise map of the live holder (ourselves included), None when no holder
        is known or its lease has expired by our observation."""
        if self._observed is None or not self.leader:
            return None
        if self.leader == self.identity:
            return dict(self.advertise) if self.is_leader else None
        if not self._lease_valid():
            return None
        ann = (self._observed.get("metadata") or {}).get("annotations") or {}
        return {
            k[len(ADVERTISE_PREFIX) :]: v for k, v in ann.items() if k.startswith(ADVERTISE_PREFIX)
        }

    def fence(self, client: Client) -> None:
        """Also put this elector's fence on ``client``'s writes (a second client of the
        elected work)."""
        self._fenced.append(client)
        if self._renewed_at is not None:
            self._set_fence()

    async def abdicate(self) -> None:
        """Step down now (Marathon's ``DELETE /v2/leader``): ``lead()`` is cancelled and
        the Lease released before this returns; the elector then waits one lease duration
        before campaigning again, so that a standby takes over. No-op when not leading."""
        if self._renewed_at is None:
            return
        self._stepped_down.clear()
        self._abdicate.set()
        async with asyncio.timeout(self.renew_deadline):
            await self._stepped_down.wait()

    # --- the loop --------------------------------------------------------------------------
    async def run(self, lead: Callable[[], Awaitable[None]], *, once: bool = False) -> None:
        """Campaign forever; run ``lead()`` as a task while leading and cancel it (and wait
        for it) when leadership is lost. Cancelling ``run`` stops ``lead()`` and releases
        the Lease. If ``lead()`` returns or raises by itself, the Lease is released and
        ``run`` returns or raises the same. ``once``: after the first term ends (lost or
        abdicated), raise ``LeadershipLost`` instead of campaigning again (what
        kube-scheduler and kube-controller-manager do: they exit, and their supervisor
        starts them afresh, with fresh state)."""
        try:
            while True:
                await self._acquire()
                done = await self._lead(lead)
                if done:
                    return
                abdicated = self._abdicate.is_set()
                if abdicated:
                    self._abdicate.clear()
                    await self._release()
                    self._stepped_down.set()
                if once:
                    raise LeadershipLost(f"{self.namespace}/{self.name}: leadership lost")
                if abdicated:
                    await asyncio.sleep(self.lease_duration)
        finally:
            if self._renewed_at is not None:
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(self.renew_deadline):
                        await asyncio.shield(self._release())

    async def _acquire(self) -> None:
        while True:
            if await self._try_acquire_or_renew():
                log.info("%s: acquired the lease %s/%s", self.identity, self.namespace, self.name)
                return
            await asyncio.sleep(self.retry_period * (1 + random.random() * _JITTER))

    async def _lead(self, lead: Callable[[], Awaitable[None]]) -> bool:
        """Run ``lead()`` while renewing; True when ``lead()`` ended by itself."""

        async def _work() -> None:
            await lead()

        task = asyncio.create_task(_work(), name=f"lead:{self.name}")
        abdicate = asyncio.create_task(self._abdicate.wait())
        try:
            while True:
                await asyncio.wait(
                    {task, abdicate}, timeout=self.retry_period, return_when=asyncio.FIRST_COMPLETED
                )
                if task.done():
                    await self._release()
                    task.result()  # re-raises what lead() raised
                    return True
                if abdicate.done():
                    log.info("%s: abdicating %s/%s", self.identity, self.namespace, self.name)
                    return False
                if not await self._renew():
                    log.warning(
                        "%s: could not renew %s/%s within %.1fs: stopped leading",
                        self.identity,
                        self.namespace,
                        self.name,
                        self.renew_deadline,
                    )
                    self._renewed_at = None
                    return False
        finally:
            abdicate.cancel()
            if not task.done():
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(task, return_exceptions=True)

    async def _renew(self) -> bool:
        """Retry renewing every ``retry_period`` until ``renew_deadline`` has passed since
        the last successful renewal (client-go's renew loop with PollImmediateUntil)."""
        assert self._renewed_at is not None
        deadline = self._renewed_at + self.renew_deadline
        while True:
            left = deadline - self._clock.monotonic()
            if left <= 0:
                return False
            try:
                async with asyncio.timeout(left):
                    if await self._try_acquire_or_renew():
                        return True
            except TimeoutError:
                return False
            left = deadline - self._clock.monotonic()
            if left <= 0:
                return False
            await asyncio.sleep(min(self.retry_period, left))

    # --- one attempt -----------------------------------------------------------------------
    async def _try_acquire_or_renew(self) -> bool:
        started = self._clock.monotonic()
        now = rfc3339_micro(self._clock.now())
        # 1. fast path: the leader updates the object it last wrote
        if self._renewed_at is not None and self._observed is not None and self._lease_valid():
            old = _spec(self._observed)
            new = self._record(
                now, old.get("acquireTime") or now, int(old.get("leaseTransitions") or 0)
            )
            if await self._write(self._with_spec(self._observed, new), started):
                return True
        # 2. read (or create) the Lease
        try:
            lease: Obj = await self.client.get(LEASES, self.name, self.namespace)
        except StatusError as e:
            if e.code != 404:
                log.debug("%s: cannot read the lease: %s", self.identity, e)
                return False
            obj: Obj = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": self.name, "namespace": self.namespace},
            }
            spec = self._record(now, now, 0)
            if await self._write(self._with_spec(obj, spec), started, create=True):
                return True
            # another candidate created it first: learn who leads now, not a poll later
            with contextlib.suppress(Exception):
                self._observe(await self.client.get(LEASES, self.name, self.namespace))
            return False
        except Exception as e:
            log.debug("%s: cannot read the lease: %s", self.identity, e)
            return False
        self._observe(lease)
        # 3. held by someone else and not expired by our observation: wait
        old = _spec(lease)
        holder = old.get("holderIdentity") or ""
        if holder and holder != self.identity and self._lease_valid():
            self._renewed_at = None
            return False
        if holder == self.identity and self._renewed_at is not None:
            new = self._record(
                now, old.get("acquireTime") or now, int(old.get("leaseTransitions") or 0)
            )
        else:
            new = self._record(now, now, int(old.get("leaseTransitions") or 0) + 1)
        return await self._write(self._with_spec(lease, new), started)

    async def _write(self, obj: Obj, started: float, *, create: bool = False) -> bool:
        try:
            if create:
                out = await self.client.create(LEASES, obj, self.namespace)
            else:
                out = await self.client.update(LEASES, obj, self.namespace)
        except Exception as e:
            log.debug("%s: lease write failed: %s", self.identity, e)
            return False
        self._observe(out)
        self._renewed_at = started
        self._set_fence()
        return True

    async def _release(self) -> None:
        """Give the Lease up (holder cleared, duration 1 s, as client-go's release)."""
        was = self._observed
        self._renewed_at = None
        if was is None or _spec(was).get("holderIdentity") != self.identity:
            return
        now = rfc3339_micro(self._clock.now())
        spec = {
            "holderIdentity": None,
            "leaseDurationSeconds": 1,
            "acquireTime": now,
            "renewTime": now,
            "leaseTransitions": int(_spec(was).get("leaseTransitions") or 0),
        }
        obj = self._with_spec(was, spec, advertise=False)
        try:
            out = await self.client.update(LEASES, obj, self.namespace)
            self._observe(out)
            log.info("%s: released the lease %s/%s", self.identity, self.namespace, self.name)
        except Exception as e:
            log.info("%s: could not release %s/%s: %s", self.identity, self.namespace, self.name, e)

    # --- helpers ---------------------------------------------------------------------------
    def _record(self, now: str, acquired: str, transitions: int) -> Obj:
        return {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": max(1, math.ceil(self.lease_duration)),
            "acquireTime": acquired,
            "renewTime": now,
            "leaseTransitions": transitions,
        }

    def _with_spec(self, lease: Obj, spec: Obj, *, advertise: bool = True) -> Obj:
        meta = dict(lease.get("metadata") or {})
        ann = {
            k: v
            for k, v in (meta.get("annotations") or {}).items()
            if not k.startswith(ADVERTISE_PREFIX)
        }
        if advertise:
            ann.update({ADVERTISE_PREFIX + k: v for k, v in self.advertise.items()})
        if ann:
            meta["annotations"] = ann
        else:
            meta.pop("annotations", None)
        return {**lease, "metadata": meta, "spec": {k: v for k, v in spec.items() if v is not None}}

    def _observe(self, lease: Obj) -> None:
        """client-go's setObservedRecord: the observation time moves only when the record
        changes (a new resourceVersion)."""
        rv = str((lease.get("metadata") or {}).get("resourceVersion") or "")
        if self._observed is None or rv != self._observed_rv:
            self._observed_time = self._clock.monotonic()
        self._observed = lease
        self._observed_rv = rv

    def _lease_valid(self) -> bool:
        spec = _spec(self._observed)
        duration = float(spec.get("leaseDurationSeconds") or self.lease_duration)
        return self._clock.monotonic() < self._observed_time + duration

    def _set_fence(self) -> None:
        value = format_fence(self.namespace, self.name, self.identity, self.lease_transitions)
        for c in self._fenced:
            c.write_headers[FENCE_HEADER] = value


def _spec(lease: Obj | None) -> Obj:
    if lease is None:
        return {}
    spec: Obj = lease.get("spec") or {}
    return spec
