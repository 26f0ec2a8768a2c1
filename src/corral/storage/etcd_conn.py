"""The gRPC connection of the etcd backend: endpoints, TLS, retries, error mapping.

``EtcdStorage`` (``storage/etcd.py``) speaks etcd's v3 gRPC API through the generated
stubs that the ``aetcd`` package ships (``aetcd.rpc``) over one ``grpc.aio`` channel
(not aetcd's ``Client``: it takes one plain-text host, and the store needs several
endpoints and TLS). The channel talks to one endpoint at a time; when an RPC fails
with UNAVAILABLE (refused, reset, member stopped) the connection moves to the next
endpoint and the call is retried with back-off until ``retry_for`` seconds have
passed, then ``StorageUnavailable`` is raised (the API answers 503).

**An attempt that hangs is abandoned early.** When the etcd leader dies, a follower
keeps forwarding proposals (and linearizable reads) to it until its election timeout
notices; those requests are lost, and the member answers them only after its request
timeout (5 s + 2 election timeouts: 7 s with default timers) although a new leader is
there after 1-2 s. The same hang comes from a half-open connection to a member that is
gone. So the first attempt of a call gets ``attempt_timeout`` (2 s), a retry twice the
previous one up to ``rpc_timeout``: a lost request is sent again (to the next endpoint)
once the cluster has a new leader, and an overloaded etcd still gets the longer
deadline. Writes are retried
too: a txn that failed UNAVAILABLE did not reach a member's raft log in the common
case (connection refused); if it did, the compare of the retry fails, never a second
write, and ``EtcdStorage`` recognises its own bytes in the key (docs/etcd-client.md).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import grpc
from aetcd import rpc

from corral.storage.base import StorageError, StorageFull, StorageUnavailable

log = logging.getLogger("corral.storage.etcd")

T = TypeVar("T")

#: the longest deadline of one attempt of a unary RPC (seconds)
RPC_TIMEOUT = 10.0
#: the deadline of a call's first attempt; doubled on each retry up to RPC_TIMEOUT
ATTEMPT_TIMEOUT = 2.0
#: how long a call keeps retrying across endpoints before it fails (seconds)
RETRY_FOR = 15.0
#: gRPC metadata asking the member to fail the call when it has no raft leader
#: (etcd's clientv3 ``WithRequireLeader``): a member cut off from the quorum must not
#: keep a watch open that will never see an event
REQUIRE_LEADER = (("hasleader", "true"),)

_RETRIABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}
#: etcd errors that mean "try another member / again later"
_RETRIABLE_MESSAGES = (
    "no leader",
    "leader changed",
    "timed out",
    "not capable",
    "too many requests",
    "stopped",
)

_OPTIONS = [
    ("grpc.max_receive_message_length", -1),
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.keepalive_permit_without_calls", 0),
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1_000),
]


@dataclass(frozen=True, slots=True)
class EtcdTLS:
    """Client TLS to etcd, as etcd's clients take it (``--cacert``/``--cert``/``--key``)."""

    cafile: Path | None = None
    certfile: Path | None = None
    keyfile: Path | None = None

    def credentials(self) -> Any:
        def read(p: Path | None) -> bytes | None:
            return p.read_bytes() if p is not None else None

        return grpc.ssl_channel_credentials(
            root_certificates=read(self.cafile),
            private_key=read(self.keyfile),
            certificate_chain=read(self.certfile),
        )


def parse_endpoints(url: str) -> list[str]:
    """``etcd://h1:p1,h2:p2`` (also ``etcd://h`` -> port 2379) -> ["h1:p1", "h2:p2"]."""
    if not url.startswith("etcd://"):
        raise ValueError(f"not an etcd datastore URL: {url!r}")
    rest = url[len("etcd://") :].strip("/")
    out = []
    for part in rest.split(","):
        part = part.strip()
        if part.startswith(("http://", "https://")):
            part = part.split("://", 1)[1]
        if not part:
            continue
        if part.rsplit(":", 1)[-1].isdigit() and not part.endswith("]"):
            out.append(part)
        else:
            out.append(f"{part}:2379")
    if not out:
        raise ValueError(f"etcd datastore URL names no endpoint: {url!r}")
    return out


def _retriable(e: grpc.aio.AioRpcError) -> bool:
    if e.code() in _RETRIABLE:
        return True
    details = (e.details() or "").lower()
    return e.code() == grpc.StatusCode.UNKNOWN and any(m in details for m in _RETRIABLE_MESSAGES)


def storage_error(e: grpc.aio.AioRpcError, key: str) -> Exception:
    """A typed storage error for an etcd RPC error that is not retried."""
    details = e.details() or ""
    if e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "space" in details:
        return StorageFull(key, f"etcd: {details} (NOSPACE alarm)")
    return StorageError(key, f"etcd: {e.code().name}: {details}")


class Connection:
    """One gRPC channel to one of ``endpoints`` at a time (see the module docstring)."""

    def __init__(
        self,
        endpoints: list[str],
        *,
        tls: EtcdTLS | None = None,
        retry_for: float = RETRY_FOR,
        rpc_timeout: float = RPC_TIMEOUT,
        attempt_timeout: float = ATTEMPT_TIMEOUT,
    ) -> None:
        self.endpoints = list(endpoints)
        self.tls = tls
        self.retry_for = retry_for
        self.rpc_timeout = rpc_timeout
        self.attempt_timeout = min(attempt_timeout, rpc_timeout)
        #: attempts abandoned after their deadline (a lost request, a hung member)
        self.timeouts = 0
        self._index = random.randrange(len(self.endpoints))
        self._channel: Any = None
        self.kv: Any = None
        self.watch: Any = None
        self.maintenance: Any = None
        self.generation = 0  # bumped on every switch of endpoint
        #: old channels closing after a switch (their calls get ``grace``), awaited by close
        self._closing: set[asyncio.Task[None]] = set()

    @property
    def endpoint(self) -> str:
        return self.endpoints[self._index]

    def open(self) -> None:
        target = self.endpoint
        if self.tls is not None:
            self._channel = grpc.aio.secure_channel(target, self.tls.credentials(), _OPTIONS)
        else:
            self._channel = grpc.aio.insecure_channel(target, _OPTIONS)
        self.kv = rpc.KVStub(self._channel)
        self.watch = rpc.WatchStub(self._channel)
        self.maintenance = rpc.MaintenanceStub(self._channel)

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel = None
        # old channels: at most their grace (the store has ended its streams by now)
        await asyncio.gather(*self._closing, return_exceptions=True)

    async def rotate(self, generation: int) -> None:
        """Move to the next endpoint, unless another caller already did since
        ``generation`` was read."""
        if generation != self.generation:
            return
        self.generation += 1
        old = self._channel
        self._index = (self._index + 1) % len(self.endpoints)
        self.open()
        log.info("etcd: switching to endpoint %s", self.endpoint)
        if old is not None:
            # in the background: the caller retries at once instead of waiting out the
            # grace of the streams still open on the old channel (the watch)
            task = asyncio.create_task(old.close(grace=1.0), name="etcd-close-channel")
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    async def call(self, key: str, fn: Callable[[], Awaitable[T]]) -> T:
        """``fn()`` (one RPC on the current stubs), retried across endpoints with
        back-off while it fails with a retriable error, for up to ``retry_for`` s.
        Each attempt has a deadline: ``attempt_timeout``, doubled per retry up to
        ``rpc_timeout`` (the module docstring says why)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.retry_for
        delay = 0.05
        attempt = self.attempt_timeout
        while True:
            generation = self.generation
            try:
                async with asyncio.timeout(attempt):
                    return await fn()
            except TimeoutError:
                self.timeouts += 1
                if loop.time() + delay > deadline:
                    raise StorageUnavailable(
                        key,
                        f"etcd unavailable ({', '.join(self.endpoints)}): no answer from "
                        f"{self.endpoint} within {attempt:g} s",
                    ) from None
                log.info("etcd %s: no answer within %g s; retrying", self.endpoint, attempt)
                attempt = min(attempt * 2, self.rpc_timeout)
                await self.rotate(generation)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if task is None or task.cancelling() or generation == self.generation:
                    raise
                continue  # its channel was closed under it (a switch of endpoint): again
            except grpc.aio.AioRpcError as e:
                if not _retriable(e):
                    raise storage_error(e, key) from None
                if loop.time() + delay > deadline:
                    raise StorageUnavailable(
                        key,
                        f"etcd unavailable ({', '.join(self.endpoints)}): "
                        f"{e.code().name}: {e.details()}",
                    ) from None
                log.debug("etcd %s: %s: %s; retrying", self.endpoint, e.code().name, e.details())
                await self.rotate(generation)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)

    async def unary(self, stub: str, method: str, request: Any, key: str = "") -> Any:
        """One unary RPC (``stub`` in kv/maintenance) with the retry policy of ``call``."""

        async def once() -> Any:
            fn = getattr(getattr(self, stub), method)
            return await fn(request, timeout=self.rpc_timeout, metadata=REQUIRE_LEADER)

        return await self.call(key, once)
