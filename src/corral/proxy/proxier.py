"""The proxier: watch Services and EndpointSlices, keep this node's data path in step.

``Proxier.run`` starts two informers, waits for their first lists, reconciles once (so
rules left by an earlier run are replaced), then re-syncs after every change, coalescing
bursts (at most one sync per ``min_sync_interval``, 50 ms by default) and every
``resync_period`` seconds anyway (rules removed behind its back come back). Each sync
computes the whole ``ServicePort`` table (``rules.service_ports``) and hands it to a
backend that applies it atomically; a failed sync is logged and retried on the next
tick. On the way out (cancellation, SIGTERM through ``cli``) the backend removes
everything it added.

Backends:

- ``IptablesBackend`` (root): ``iptables-restore --noflush`` of our chains only, the
  jumps from the built-in chains ensured with ``-C``/``-I`` (on the first sync, then at
  most every ``jump_check_interval``: eight commands would triple a sync's time), ``route_localnet`` turned on
  so ``127.0.0.1:<nodePort>`` works (as kube-proxy does) and put back on cleanup. Its
  commands go through a ``Runner`` with an optional prefix (``ip netns exec NS``), which
  is how the unit tests run it against a private network namespace.
  With an ``owner``, it first claims the chains (``owner.py``): it refuses to start
  (``ChainsConflict``; its cleanup then touches nothing) while another cluster's proxy
  runs on this host, replaces the chains of one that is gone, and gives up its claim on
  cleanup.
- ``userspace.UserspaceBackend``: the relay for hosts where the kernel path is not ours.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from corral.client.informer import Informer, Obj
from corral.client.rest import ENDPOINTSLICES, SERVICES, Client
from corral.proxy import owner as chains_owner
from corral.proxy import rules
from corral.proxy.rules import ServicePort

log = logging.getLogger("corral.proxy")


class ProxyError(Exception):
    """A data-path command failed (its stderr is the message)."""


class Backend(Protocol):
    async def sync(self, ports: list[ServicePort]) -> None: ...

    async def cleanup(self) -> None: ...


@dataclass
class Runner:
    """Runs commands, each under ``prefix`` (e.g. ``["ip", "netns", "exec", "ns1"]``)."""

    prefix: Sequence[str] = ()
    timeout: float = 30.0

    async def __call__(self, *argv: str, input: str = "") -> tuple[int, str, str]:
        # no stdin pipe unless there is input: on uvloop, feeding b"" to a command that
        # never reads (iptables-save) fails once it has exited ("the handler is closed")
        proc = await asyncio.create_subprocess_exec(
            *self.prefix,
            *argv,
            stdin=asyncio.subprocess.PIPE if input else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            async with asyncio.timeout(self.timeout):
                out, err = await proc.communicate(input.encode() if input else None)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise ProxyError(f"{' '.join(argv)}: timed out after {self.timeout} s") from None
        return proc.returncode or 0, out.decode(), err.decode()

    async def check(self, *argv: str, input: str = "") -> str:
        rc, out, err = await self(*argv, input=input)
        if rc != 0:
            raise ProxyError(f"{' '.join(argv)} failed ({rc}): {err.strip() or out.strip()}")
        return out


ROUTE_LOCALNET = "net.ipv4.conf.all.route_localnet"


@dataclass
class IptablesBackend:
    """kube-proxy's iptables mode. Owns the KUBE-* chains of ``filter`` and ``nat``."""

    run: Runner = field(default_factory=Runner)
    cluster_cidr: str = "10.88.0.0/16"
    localhost_nodeports: bool = True
    #: this node's IP (loadBalancerSourceRanges that include it admit the host)
    node_ip: str = ""
    #: seconds between checks that the jumps from the built-in chains are still there
    jump_check_interval: float = 10.0
    _jumps_checked: float = -1e9
    _chains: dict[str, set[str]] = field(default_factory=dict)
    #: who claims the chains (an agent's data dir, a kubeconfig): ``owner.py``; "" and
    #: commands run under a prefix (another network namespace) claim nothing
    owner: str = ""
    _started: bool = False
    _refused: bool = False
    _localnet_before: str | None = None

    @classmethod
    def left_by(cls, record: chains_owner.ChainsOwner) -> IptablesBackend:
        """A backend for the chains a proxy that is gone left behind (``corral down``):
        its ``cleanup`` removes them and puts ``route_localnet`` back as it was."""
        backend = cls(owner=record.owner)
        backend._localnet_before = record.localnet_before
        return backend

    async def _start(self) -> None:
        claiming = bool(self.owner) and not self.run.prefix
        if claiming:
            try:
                chains_owner.check(self.owner)
            except chains_owner.ChainsConflict:
                self._refused = True
                raise
        # chains an earlier run left behind: declared stale so the first sync drops them
        self._chains = rules.our_chains(await self.run.check("iptables-save"))
        if self.localhost_nodeports:
            before = (await self.run.check("sysctl", "-n", ROUTE_LOCALNET)).strip()
            if before != "1":
                await self.run.check("sysctl", "-qw", f"{ROUTE_LOCALNET}=1")
                self._localnet_before = before
        if claiming:
            self._localnet_before = chains_owner.claim(self.owner, self._localnet_before)
        self._started = True

    async def sync(self, ports: list[ServicePort]) -> None:
        if not self._started:
            await self._start()
        ruleset = rules.iptables_ruleset(
            ports, cluster_cidr=self.cluster_cidr, stale=self._chains, node_ip=self.node_ip
        )
        await self.run.check("iptables-restore", "-w", "5", "--noflush", input=ruleset.text)
        self._chains = ruleset.chains
        if time.monotonic() - self._jumps_checked >= self.jump_check_interval:
            await self._ensure_jumps()
            self._jumps_checked = time.monotonic()

    async def _ensure_jumps(self) -> None:
        for table, chain, spec in rules.JUMPS:
            rc, _, _ = await self.run("iptables", "-w", "5", "-t", table, "-C", chain, *spec)
            if rc != 0:
                await self.run.check("iptables", "-w", "5", "-t", table, "-I", chain, "1", *spec)

    async def cleanup(self) -> None:
        """Remove the jumps, then every KUBE-* chain; put ``route_localnet`` back."""
        if self._refused:  # the chains are another live proxy's
            return
        for table, chain, spec in rules.JUMPS:
            for _ in range(16):  # duplicates, should anything have added them twice
                rc, _, _ = await self.run("iptables", "-w", "5", "-t", table, "-D", chain, *spec)
                if rc != 0:
                    break
        found = rules.our_chains(await self.run.check("iptables-save"))
        text = rules.cleanup_ruleset(found)
        if text:
            await self.run.check("iptables-restore", "-w", "5", "--noflush", input=text)
        if self._localnet_before is not None:
            await self.run.check("sysctl", "-qw", f"{ROUTE_LOCALNET}={self._localnet_before}")
            self._localnet_before = None
        if self.owner and not self.run.prefix:
            chains_owner.release()
        self._chains = {}
        self._started = False
        self._jumps_checked = -1e9


class Proxier:
    """Keeps ``backend`` in step with the Services and EndpointSlices of the cluster."""

    def __init__(
        self,
        client: Client,
        node_name: str,
        node_ip: str,
        backend: Backend,
        *,
        min_sync_interval: float = 0.05,
        resync_period: float = 30.0,
    ) -> None:
        self.client = client
        self.node_name = node_name
        self.node_ip = node_ip
        self.backend = backend
        self.min_sync_interval = min_sync_interval
        self.resync_period = resync_period
        self.services = Informer(client, SERVICES)
        self.slices = Informer(client, ENDPOINTSLICES)
        self._changed = asyncio.Event()
        self.syncs = 0
        self.last_ports: list[ServicePort] = []
        for inf in (self.services, self.slices):
            inf.add_handler(self._on_event)

    def _on_event(self, type_: str, obj: Obj, old: Obj | None) -> None:
        self._changed.set()

    def ports(self) -> list[ServicePort]:
        return rules.service_ports(
            self.services.store.values(), self.slices.store.values(), node_name=self.node_name
        )

    async def sync_once(self) -> None:
        t0 = time.monotonic()
        ports = self.ports()
        await self.backend.sync(ports)
        self.last_ports = ports
        self.syncs += 1
        eps = sum(len(p.endpoints) for p in ports)
        log.info(
            "synced %d service ports, %d endpoints in %.1f ms",
            len(ports), eps, (time.monotonic() - t0) * 1000,
        )  # fmt: skip

    async def _loop(self) -> None:
        await self.services.wait_for_sync(timeout=120)
        await self.slices.wait_for_sync(timeout=120)
        while True:
            self._changed.clear()
            try:
                await self.sync_once()
            except (ProxyError, OSError) as e:
                log.error("sync failed (retrying): %s", e)
                self._changed.set()
                await asyncio.sleep(1.0)
            await asyncio.sleep(self.min_sync_interval)  # coalesce bursts of events
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.resync_period):
                    await self._changed.wait()

    async def run(self) -> None:
        """Run until cancelled; the backend's rules are removed on the way out."""
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self.services.run())
                tg.create_task(self.slices.run())
                tg.create_task(self._loop())
        finally:
            try:
                async with asyncio.timeout(30):
                    await asyncio.shield(self.backend.cleanup())
                log.info("removed the service rules")
            except Exception:
                log.exception("cleanup of the service rules failed")
