"""Chronos' writes to its ChronosJob objects: claims and status patches.

``service.ChronosService`` hands every ``Claim`` and ``WriteStatus`` of the planner to
one ``JobWrites`` and gets a future back, which it awaits before anything that depends
on the write being durable (acknowledging a task's status update, answering the REST
API). The shape is for throughput without giving up exactly once:

- per job, writes go one at a time and in the order they were asked for (a lock per
  job; asyncio's locks are FIFO), so a later result never lands under an earlier one;
- status patches of a job that wait for its lock are merged into one (later fields
  win), so a burst of results for a job costs one write;
- across jobs, up to ``concurrency`` writes are in flight at once (a semaphore), so the
  API server's round trip is no longer paid once per run, serially;
- a write that fails is tried again (``ATTEMPTS``, with back-off) and then its future
  fails: the caller does not acknowledge, and rolls the planner back for a claim.

A claim is the conditional update of docs/chronos.md: the object's ``resourceVersion``
is the precondition, and a stored ``lastSlot`` as late as the claimed slot means
another process has it (``LOST``). ``fresh`` gives the planner's current ``openRuns`` of
a job at the moment a write is sent, so what is stored is never older than the planner.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from corral.api.errors import StatusError
from corral.chronos import jobs
from corral.chronos.instructions import Claim
from corral.client.informer import Informer
from corral.client.rest import CHRONOS_JOBS, Client

log = logging.getLogger("corral.chronos")

Obj = dict[str, Any]
NAMESPACE = "chronos"
#: writes in flight at once, across jobs
CONCURRENCY = 32
#: tries of one write before its future fails (a 409 of a claim re-reads and retries apart)
ATTEMPTS = 4
WON, LOST = "won", "lost"


class WriteFailed(Exception):
    """A write could not be made durable (the API server kept failing)."""


@dataclass
class _Batch:
    future: asyncio.Future[None]
    status: Obj = field(default_factory=dict)
    disable: bool = False


class JobWrites:
    """See the module docstring. ``spawn`` runs a coroutine under the service's
    supervision; ``fresh(job)`` is the planner's ``openRuns`` of the job now."""

    def __init__(
        self,
        client: Client,
        informer: Informer,
        spawn: Callable[[Coroutine[Any, Any, None]], None],
        fresh: Callable[[str], Obj | None],
        *,
        concurrency: int = CONCURRENCY,
        backoff: float = 0.2,
    ) -> None:
        self.client = client
        self.informer = informer
        self._spawn = spawn
        self._fresh = fresh
        self._sem = asyncio.Semaphore(concurrency)
        self._locks: dict[str, asyncio.Lock] = {}
        self._batches: dict[str, _Batch] = {}
        #: the future of the last write asked for, per job (what an ack waits for)
        self.last: dict[str, asyncio.Future[Any]] = {}
        self.backoff = backoff
        self.counters = {"writes": 0, "write_retries": 0, "claims_lost": 0, "writes_failed": 0}

    def _lock(self, name: str) -> asyncio.Lock:
        lock = self._locks.get(name)
        if lock is None:
            lock = self._locks[name] = asyncio.Lock()
        return lock

    def _future(self) -> asyncio.Future[Any]:
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        # a failure is reported by whoever awaits it; nobody awaiting is no error
        fut.add_done_callback(lambda f: f.cancelled() or f.exception())
        return fut

    # --- status patches -----------------------------------------------------------------------
    def patch(self, name: str, status: Obj, disable: bool = False) -> asyncio.Future[None]:
        """Merge ``status`` into the job's stored status (and disable the job)."""
        batch = self._batches.get(name)
        if batch is None:
            batch = self._batches[name] = _Batch(self._future())
            self.last[name] = batch.future
            self._spawn(self._flush(name))
        batch.status.update(status)
        batch.disable = batch.disable or disable
        return batch.future

    async def _flush(self, name: str) -> None:
        async with self._lock(name):
            batch = self._batches.pop(name)
            try:
                await self._retrying(name, lambda: self._send_patch(name, batch))
            except Exception as e:  # reported through the future
                batch.future.set_exception(e)
            else:
                batch.future.set_result(None)

    async def _send_patch(self, name: str, batch: _Batch) -> None:
        status = dict(batch.status)
        oname = jobs.object_name(name)
        if "openRuns" in status:
            fresh = self._fresh(name)
            if fresh is None:
                fresh = status["openRuns"]
            # a merge patch merges maps: the slots no longer open are nulled out
            stored = self.informer.get(f"{NAMESPACE}/{oname}") or {}
            before = (stored.get("status") or {}).get("openRuns") or {}
            gone = {k: None for k in before if k not in fresh}
            status["openRuns"] = {**gone, **fresh}
        try:
            made = await self.client.patch(
                CHRONOS_JOBS, oname, {"status": status}, NAMESPACE, sub="status"
            )
            self.informer.apply("MODIFIED", made)
            if batch.disable:
                made = await self.client.patch(
                    CHRONOS_JOBS, oname, {"spec": {"job": {"disabled": True}}}, NAMESPACE
                )
                self.informer.apply("MODIFIED", made)
        except StatusError as e:
            if e.code != 404:  # a deleted job's result has nowhere to go
                raise

    async def _retrying(self, name: str, send: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
        for attempt in range(ATTEMPTS):
            try:
                async with self._sem:
                    self.counters["writes"] += 1
                    return await send()
            except asyncio.CancelledError:
                raise
            except Exception as e:  # the API server failed: try again
                if attempt + 1 >= ATTEMPTS:
                    self.counters["writes_failed"] += 1
                    log.warning("chronos: writing job %s failed: %s", name, e)
                    raise WriteFailed(f"job {name}: {e}") from e
                self.counters["write_retries"] += 1
                await asyncio.sleep(self.backoff * 2**attempt)
        raise AssertionError("unreachable")

    # --- claims -------------------------------------------------------------------------------
    def claim(self, ins: Claim) -> asyncio.Future[str]:
        """Claim the slot: the future gives ``WON`` or ``LOST``, or fails."""
        fut: asyncio.Future[str] = self._future()
        self.last[ins.job] = fut

        async def go() -> None:
            async with self._lock(ins.job):
                try:
                    won = await self._retrying(ins.job, lambda: self._claim_once(ins))
                except Exception as e:  # reported through the future
                    fut.set_exception(e)
                else:
                    fut.set_result(WON if won else LOST)

        self._spawn(go())
        return fut

    async def _claim_once(self, ins: Claim) -> bool:
        """The conditional status write that makes a slot this process's to run."""
        for _ in range(3):
            obj = self.informer.get(f"{NAMESPACE}/{jobs.object_name(ins.job)}")
            if obj is None:
                return False
            status = dict(obj.get("status") or {})
            # ``>=``: after a 409 the fresh object may show this very slot claimed by
            # another Chronos, which then runs it (not this one)
            if int(status.get("lastSlot") or -1) >= ins.slot_ms:
                self.counters["claims_lost"] += 1
                return False
            patch = dict(ins.status)
            fresh = self._fresh(ins.job)
            if fresh is not None:
                patch["openRuns"] = fresh
            if "openRuns" in patch:  # a merge patch merges maps: closed slots nulled out
                before = status.get("openRuns") or {}
                patch["openRuns"] = {
                    **{k: None for k in before if k not in patch["openRuns"]},
                    **patch["openRuns"],
                }
            patch["lastSlot"] = ins.slot_ms
            if ins.schedule:
                patch["schedule"] = ins.schedule
            # the precondition: a merge patch naming the resourceVersion it read (409 when
            # the object changed since), smaller than the whole object back
            body = {"metadata": {"resourceVersion": obj["metadata"]["resourceVersion"]}}
            body["status"] = patch
            try:
                made = await self.client.patch(
                    CHRONOS_JOBS, obj["metadata"]["name"], body, NAMESPACE, sub="status"
                )
            except StatusError as e:
                if e.code == 404:
                    return False
                if e.code != 409:
                    raise
                fresh_obj = await self.client.get(CHRONOS_JOBS, obj["metadata"]["name"], NAMESPACE)
                self.informer.apply("MODIFIED", fresh_obj)
                continue
            self.informer.apply("MODIFIED", made)
            return True
        self.counters["claims_lost"] += 1
        return False
