"""Service ClusterIP and NodePort allocation, safe with several API servers on one store.

On create (and on an update that needs new ports, e.g. ClusterIP → NodePort), a
Service without a ``clusterIP`` gets a free address of the service CIDR (the first one
is the ``kubernetes`` Service's), and every port of a NodePort or LoadBalancer Service
without a ``nodePort`` gets a free one of the node-port range; addresses and ports the
client asks for are checked against the range and against what other Services hold.

Several servers write one store, and each one's watch cache lags the others' writes,
so what the cache shows taken is only a first filter. What decides is the store: every
allocated value is one key, ``/registry/ranges/serviceips/<ip>`` or
``/registry/ranges/servicenodeports/<port>``, made with ``create`` before the Service
is written: ``KeyExists`` means another request (here or on another server) holds it.
This is upstream's allocation model since 1.33 (KEP-1880: one ``IPAddress`` object per
ClusterIP, created before the Service, ``AlreadyExists`` = taken, plus a repair loop);
upstream still keeps NodePorts in one bitmap updated with compare-and-swap, which would
make every NodePort create on every server contend on one key, so ports get one key
each too. The watch cache ignores these prefixes (no resource is registered there).

A claim records the Service (``namespace/name``), its uid and when it was made. Its
life:

- made by the create/update that allocates the value; once that write is done or has
  failed, the release (``Registry.async_write_hooks``) keeps it only if this server's
  cache, caught up with the store (a failed etcd write may have applied), shows the
  Service holding the value, else deletes it (kept when it cannot catch up: a leak);
- a Service deleted, or updated so that it drops the value, is seen by every server's
  watch cache (``on_change``); ``run`` then deletes the claim if it still names that uid
  (compare-and-delete on its mod revision: several servers doing it is harmless), and
  until then an allocation that meets the claim knows it is free (the release happened
  at a later revision than the claim);
- a claim whose Service is not in the cache holding it, older than ``grace`` (longer
  than any request may take) is a leak (a server died between claim and write): the
  next allocation meeting it deletes it (compare-and-delete) and takes the value;
- at start, ``run`` makes the missing claims of every cached Service (a store written
  before claims existed, or migrated without them), as upstream's repair loop does, and
  logs a value held by two Services; once caught up, it deletes those it made for a
  Service deleted meanwhile.

Dynamic picks start at a random point of the upper part of each range, so that two
servers rarely try the same value and the lower band stays free for values users ask
for (upstream's static/dynamic split, KEP-3070 and KEP-3668).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import random
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import orjson

from corral.api import errors
from corral.storage.base import KV, KeyExists, KeyNotFound, RevisionMismatch, Storage
from corral.storage.cache import DELETED, Entry, ResourceCache
from corral.util.clock import Clock, SystemClock

log = logging.getLogger("corral.apiserver.allocation")

Obj = dict[str, Any]
Release = Callable[[], Awaitable[None]]

IP_PREFIX = "/registry/ranges/serviceips/"
PORT_PREFIX = "/registry/ranges/servicenodeports/"
#: a claim older than this whose Service does not hold it is a leak (seconds); more
#: than the longest request (``--request-timeout`` 60 s)
GRACE = 120.0

_NODE_PORT_TYPES = ("NodePort", "LoadBalancer")


def held_ips(svc: Obj) -> set[str]:
    spec = svc.get("spec") or {}
    return {ip for ip in spec.get("clusterIPs") or [spec.get("clusterIP")] if ip and ip != "None"}


def held_ports(svc: Obj) -> set[int]:
    spec = svc.get("spec") or {}
    return {int(p["nodePort"]) for p in spec.get("ports") or [] if p.get("nodePort")}


def held_keys(svc: Obj) -> set[str]:
    """The claim keys of what ``svc`` holds."""
    return {IP_PREFIX + ip for ip in held_ips(svc)} | {
        PORT_PREFIX + str(p) for p in held_ports(svc)
    }


def static_band(size: int, cap: int, div: int) -> int:
    """How many values at the bottom of a range dynamic picks leave for requests, as
    upstream: ``min(max(16, size // div), cap)``, (256, 16) for addresses and (128, 32)
    for node ports."""
    return min(max(16, size // div), cap)


class ServiceAllocator:
    """Allocates from one service CIDR and one node-port range (module docstring)."""

    def __init__(
        self,
        services: ResourceCache,
        storage: Storage,
        cidr: str = "10.96.0.0/12",
        node_ports: tuple[int, int] = (30000, 32767),
        *,
        clock: Clock | None = None,
        grace: float = GRACE,
    ) -> None:
        self.services = services
        self.storage = storage
        self.network = ipaddress.ip_network(cidr)
        self.node_ports = node_ports
        self.clock = clock or SystemClock()
        self.grace = grace
        #: values this server's in-flight requests are claiming (skipped at once)
        self._pending: set[str] = set()
        #: claim key -> (Service uid, revision, time) of a release the cache saw
        self._released: dict[str, tuple[str, int, float]] = {}
        self._queue: asyncio.Queue[str] = asyncio.Queue()

    @property
    def first_ip(self) -> str:
        """The address the ``kubernetes`` Service holds."""
        return str(self.network.network_address + 1)

    # --- what the cache shows taken ----------------------------------------------------------
    def _others(self, key: str) -> Iterator[Obj]:
        for k, e in self.services.entries.items():
            if k != key:
                yield orjson.loads(e.raw)

    def _taken(self, key: str) -> tuple[set[str], set[int]]:
        ips: set[str] = set()
        ports: set[int] = set()
        for svc in self._others(key):
            ips |= held_ips(svc)
            ports |= held_ports(svc)
        return ips, ports

    # --- the write hook ----------------------------------------------------------------------
    async def allocate(self, svc: Obj, key: str) -> Release | None:
        """Fill ``svc``'s clusterIP and nodePorts, claiming each new value in the store;
        returns the release to await once the write is done or failed."""
        spec = svc.setdefault("spec", {})
        meta = svc.get("metadata") or {}
        owner = key[len(self.services.prefix) :]
        uid = str(meta.get("uid") or "")
        current = self.services.entries.get(key)
        had = held_keys(current.obj()) if current is not None else set()
        made: list[KV] = []
        try:
            await self._allocate(spec, key, owner, uid, had, made)
        except BaseException:
            await self._drop(made)
            raise

        def unheld() -> list[KV]:
            entry = self.services.entries.get(key)
            keep = held_keys(entry.obj()) if entry is not None and entry.uid == uid else set()
            return [kv for kv in made if kv.key not in keep]

        async def release() -> None:
            if not unheld():
                return
            # a write that failed may still have been applied (etcd: the answer or this
            # server's watch was late): look again once the cache has caught up; if it
            # cannot, keep the claims (a leak ``_stale`` reclaims after ``grace``)
            try:
                await self._sync()
            except Exception as e:
                log.warning("keeping the claims of %s: %s", owner, e)
                return
            await self._drop(unheld())

        return release if made else None

    async def _allocate(
        self, spec: Obj, key: str, owner: str, uid: str, had: set[str], made: list[KV]
    ) -> None:
        ips, ports = self._taken(key)
        if _asks_for(spec, ips, ports):  # this server's cache may lag a release elsewhere
            await self._sync()
            ips, ports = self._taken(key)
        name = key.rsplit("/", 1)[-1]
        if spec.get("type", "ClusterIP") != "ExternalName" and spec.get("clusterIP") != "None":
            requested = spec.get("clusterIP") or ""
            claim = IP_PREFIX + requested
            if requested:
                if (
                    self._check_ip(requested, name)
                    and claim not in had
                    and (
                        requested in ips or not await self._claim_requested(claim, owner, uid, made)
                    )
                ):
                    raise _ip_taken(requested, name)
            else:
                ip = await self._pick(self._ip_candidates(ips), IP_PREFIX, owner, uid, made)
                if ip is None:
                    raise errors.internal("failed to allocate a serviceIP: range is full")
                spec["clusterIP"] = ip
                spec["clusterIPs"] = [ip]
        if spec.get("type") not in _NODE_PORT_TYPES:
            return
        # a LoadBalancer with allocateLoadBalancerNodePorts false gets none (those asked
        # for are still checked and kept), as upstream
        no_new = spec.get("type") == "LoadBalancer" and (
            spec.get("allocateLoadBalancerNodePorts") is False
        )
        asked = [p.get("nodePort") for p in spec.get("ports") or []]
        for i, port in enumerate(spec.get("ports") or []):
            want = port.get("nodePort")
            if want:
                self._check_port(i, want, ports, name)
                ports.add(want)
                claim = PORT_PREFIX + str(want)
                if claim not in had and not await self._claim_requested(claim, owner, uid, made):
                    raise _port_taken(i, want, name)
            elif not no_new:
                taken = ports | {int(p) for p in asked if p}
                np = await self._pick(self._port_candidates(taken), PORT_PREFIX, owner, uid, made)
                if np is None:
                    raise errors.internal("failed to allocate a nodePort: range is full")
                port["nodePort"] = int(np)
                ports.add(int(np))

    # --- claims ------------------------------------------------------------------------------
    async def _claim(self, claim: str, owner: str, uid: str, made: list[KV]) -> bool:
        """Take ``claim`` for the Service ``owner``/``uid``: True when it is ours (made
        now, or already naming ``uid``), False when someone else holds it."""
        if claim in self._pending:
            return False
        self._pending.add(claim)
        try:
            record = {
                "metadata": {"name": claim.rsplit("/", 1)[-1]},
                "service": owner,
                "uid": uid,
                "time": self.clock.now(),
            }
            for _ in range(3):
                try:
                    made.append(await self.storage.create(claim, record))
                    return True
                except KeyExists:
                    pass
                kv = await self.storage.get(claim)
                if kv is None:
                    continue  # released meanwhile: try again
                if uid and kv.obj.get("uid") == uid and not self._released_since(kv):
                    return True
                if not self._stale(kv):
                    return False
                with contextlib.suppress(KeyNotFound, RevisionMismatch):
                    await self.storage.delete(claim, kv.mod_revision)
            return False
        finally:
            self._pending.discard(claim)

    async def _claim_requested(self, claim: str, owner: str, uid: str, made: list[KV]) -> bool:
        """``_claim`` for a value the client asked for: a refusal is checked once more
        after this server's cache has caught up with the store (another server may
        have released it a moment ago)."""
        if await self._claim(claim, owner, uid, made):
            return True
        if not await self._sync():
            return False
        return await self._claim(claim, owner, uid, made)

    async def _sync(self) -> bool:
        """Wait until this server's cache has caught up with the store (``sync``, a
        no-op on SQLite); False when the store has no such barrier."""
        sync = getattr(self.storage, "sync", None)
        if sync is None:
            return False
        await sync()
        return True

    async def _pick(
        self, candidates: Iterator[str], prefix: str, owner: str, uid: str, made: list[KV]
    ) -> str | None:
        for value in candidates:
            if await self._claim(prefix + value, owner, uid, made):
                return value
        return None

    def _released_since(self, kv: KV) -> bool:
        """Whether the cache saw the claim's Service let the value go after the claim
        was made (``run`` is about to delete it)."""
        seen = self._released.get(kv.key)
        return seen is not None and seen[0] == kv.obj.get("uid") and seen[1] > kv.mod_revision

    def _stale(self, kv: KV) -> bool:
        """Whether the claim ``kv`` holds nothing any more (module docstring)."""
        uid = str(kv.obj.get("uid") or "")
        if self._released_since(kv):
            return True
        owner = str(kv.obj.get("service") or "")
        entry = self.services.entries.get(self.services.prefix + owner)
        if entry is not None and entry.uid == uid and kv.key in held_keys(entry.obj()):
            return False
        return self.clock.now() - float(kv.obj.get("time") or 0) > self.grace

    async def _drop(self, claims: list[KV]) -> None:
        """Compare-and-delete ``claims``; a failure leaves a leak (reclaimed after
        ``grace``) rather than hiding the request's own outcome."""
        for kv in claims:
            try:
                await self.storage.delete(kv.key, kv.mod_revision)
            except (KeyNotFound, RevisionMismatch):
                pass
            except Exception as e:
                log.warning("dropping %s: %s", kv.key, e)

    # --- candidates ---------------------------------------------------------------------------
    def _ip_candidates(self, taken: set[str]) -> Iterator[str]:
        base = int(self.network.network_address)
        # offsets 2 .. size-2: not the network address, the kubernetes Service's or the
        # broadcast address
        for off in _order(2, self.network.num_addresses - 2, 256, 16):
            ip = str(ipaddress.ip_address(base + off))
            if ip not in taken:
                yield ip

    def _port_candidates(self, taken: set[int]) -> Iterator[str]:
        lo, hi = self.node_ports
        for off in _order(0, hi - lo + 1, 128, 32):
            if lo + off not in taken:
                yield str(lo + off)

    # --- checks ------------------------------------------------------------------------------
    def _check_ip(self, ip: str, name: str) -> bool:
        """Whether ``ip`` is an address at all (else the strategy words the error);
        raises when it is outside the service CIDR."""
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return False
        if addr not in self.network:
            why = (
                f"failed to allocate IP {ip}: the provided IP ({ip}) is not in the valid "
                f"range. The range of valid IPs is {self.network}"
            )
            raise errors.invalid_object("Service", "", name, [_ip_error(ip, why)])
        return True

    def _check_port(self, i: int, port: int, taken: set[int], name: str) -> None:
        lo, hi = self.node_ports
        if not lo <= port <= hi:
            why = f"provided port is not in the valid range. The range of valid ports is {lo}-{hi}"
        elif port in taken:
            why = "provided port is already allocated"
        else:
            return
        field = f"spec.ports[{i}].nodePort"
        raise errors.invalid_object("Service", "", name, [errors.invalid(field, port, why)])

    # --- following the cache, and the repair at start ----------------------------------------
    def on_change(self, type_: str, entry: Entry, prev: Entry | None, rc: ResourceCache) -> None:
        """Watch cache listener: note the values a Service let go (deleted, or updated
        without them) for ``run`` to delete their claims."""
        if rc is not self.services:
            return
        before = held_keys(prev.obj()) if prev is not None else set()
        if type_ == DELETED:
            gone = before | held_keys(entry.obj())
        else:
            gone = before - held_keys(entry.obj())
        if not gone:
            return
        now = self.clock.now()
        for claim in gone:
            self._released[claim] = (entry.uid, entry.revision, now)
            self._queue.put_nowait(claim)

    async def run(self) -> None:
        """Repair once (claims for every cached Service), then delete the claims of
        released values as the cache reports them. Runs until cancelled."""
        try:
            await self.repair()
        except Exception as e:  # the allocation itself does not depend on it
            log.warning("service allocation repair: %s", e)
        while True:
            await self._release(await self._queue.get())

    async def drain(self) -> None:
        """Release what the cache has reported so far (``run``'s step, for tests)."""
        while not self._queue.empty():
            await self._release(self._queue.get_nowait())

    async def _release(self, claim: str) -> None:
        seen = self._released.get(claim)
        if seen is None:
            return
        try:
            kv = await self.storage.get(claim)
            if kv is not None and kv.obj.get("uid") == seen[0] and kv.mod_revision < seen[1]:
                with contextlib.suppress(KeyNotFound, RevisionMismatch):
                    await self.storage.delete(claim, kv.mod_revision)
        except Exception as e:  # a leak the next allocation meeting it reclaims
            log.warning("releasing %s: %s", claim, e)
        self._forget_old()

    def _forget_old(self) -> None:
        cutoff = self.clock.now() - self.grace
        for claim in [c for c, (_, _, t) in self._released.items() if t < cutoff]:
            del self._released[claim]

    async def repair(self) -> int:
        """Make the claim of every value a cached Service holds and has none; returns how
        many were made. A value claimed by another Service is logged, as upstream's
        repair loop reports a double allocation."""
        made: list[tuple[str, KV]] = []
        for svc_key, entry in list(self.services.entries.items()):
            owner = svc_key[len(self.services.prefix) :]
            for claim in sorted(held_keys(entry.obj())):
                record = {
                    "metadata": {"name": claim.rsplit("/", 1)[-1]},
                    "service": owner,
                    "uid": entry.uid,
                    "time": self.clock.now(),
                }
                try:
                    made.append((svc_key, await self.storage.create(claim, record)))
                except KeyExists:
                    kv = await self.storage.get(claim)
                    if kv is not None and kv.obj.get("uid") != entry.uid and not self._stale(kv):
                        log.warning(
                            "%s of Service %s is also claimed by %s",
                            claim.rsplit("/", 1)[-1],
                            owner,
                            kv.obj.get("service"),
                        )
        if made and await self._sync():
            # a Service deleted (or changed) while this ran, its release already
            # handled: its claim just made would hold the value until ``grace``
            dropped = [
                kv
                for svc_key, kv in made
                if (e := self.services.entries.get(svc_key)) is None
                or e.uid != kv.obj.get("uid")
                or kv.key not in held_keys(e.obj())
            ]
            await self._drop(dropped)
            made = [m for m in made if m[1] not in dropped]
        if made:
            log.info("service allocation repair: %d claims made", len(made))
        return len(made)


def _asks_for(spec: Obj, ips: set[str], ports: set[int]) -> bool:
    """Whether ``spec`` asks for an address or port the cache shows another Service
    holding."""
    if spec.get("clusterIP") in ips:
        return True
    return any(p.get("nodePort") in ports for p in spec.get("ports") or [])


def _order(start: int, end: int, cap: int, div: int) -> Iterator[int]:
    """Offsets ``start .. end-1``: the upper part from a random point, wrapping, then
    the static band at the bottom (``static_band``)."""
    size = max(0, end - start)
    band = min(static_band(size, cap, div), size)
    upper = size - band
    first = random.randrange(upper) if upper else 0
    for i in range(upper):
        yield start + band + (first + i) % upper
    yield from range(start, start + band)


def _ip_error(ip: str, why: str) -> errors.FieldError:
    shown = orjson.Fragment(b'[]string{"' + ip.encode() + b'"}')
    return errors.invalid("spec.clusterIPs", shown, why)


def _ip_taken(ip: str, name: str) -> errors.StatusError:
    why = f"failed to allocate IP {ip}: provided IP is already allocated"
    return errors.invalid_object("Service", "", name, [_ip_error(ip, why)])


def _port_taken(i: int, port: int, name: str) -> errors.StatusError:
    field = f"spec.ports[{i}].nodePort"
    why = "provided port is already allocated"
    return errors.invalid_object("Service", "", name, [errors.invalid(field, port, why)])
