"""Fencing of elected writers: refuse a write whose leader-election fence is stale.

An elected loop (scheduler, controller manager, Marathon, Chronos: anything run under
``corral.client.leaderelection.LeaderElector``) sends ``X-Corral-Lease-Fence:
<namespace>/<name>;<holder>;<leaseTransitions>`` on every mutating request while it
holds the Lease. ``check`` runs in the API app before such a write is dispatched: it
waits for the store's consistent-read barrier (``storage.sync()``: on several servers
the Lease may just have changed on another one), then compares the fence with the Lease
as this server's watch cache holds it. A holder or transition count that differs means
the sender was deposed (it paused, lost its connection, and someone else took over):
the write is refused with a 409 Conflict Status, and the deposed loop sees its write
fail even before its own renew deadline tells it so.

Writes without the header are untouched (people, agents, single-server clusters), and a
write to the fence's own Lease is exempt (the elector renews and releases through the
same client). The check costs one header lookup for an unfenced request and a dict
lookup (the parsed Lease is memoised by its revision) for a fenced one, plus the barrier.

Called by ``apiserver/app.py`` (``APIApp.route``).
"""

from __future__ import annotations

from typing import Any

from corral.api import errors
from corral.apiserver.store import Registry
from corral.client.leaderelection import FENCE_HEADER, parse_fence

__all__ = ["FENCE_HEADER", "Fencing"]

_LEASES = ("coordination.k8s.io", "v1", "leases")


class Fencing:
    """The write fence check over one Registry."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        # lease key -> (revision, holder, transitions): parsed once per Lease revision
        self._seen: dict[str, tuple[int, str, int]] = {}

    async def check(self, fence: str, group: str, plural: str, namespace: str, name: str) -> None:
        """Raise a 409 Conflict unless ``fence`` names the current holder and transition
        count of its Lease; ``group/plural namespace/name`` is the write's target."""
        parsed = parse_fence(fence)
        if parsed is None:
            raise errors.bad_request(
                f"malformed {FENCE_HEADER} header {fence!r}: want <namespace>/<name>;<holder>;"
                "<leaseTransitions>"
            )
        ns, lease, holder, transitions = parsed
        target = (group, plural, name)
        if (group, plural) == (_LEASES[0], _LEASES[2]) and (namespace, name) == (ns, lease):
            return  # the elector's own renewals and release
        info = self.registry.by_gvr.get(_LEASES)
        if info is None:  # pragma: no cover - Leases are always served
            return
        sync: Any = getattr(self.registry.storage, "sync", None)
        if sync is not None:
            await sync()
        entry = self.registry.entry(info, ns, lease)
        if entry is None:
            raise _deposed(target, ns, lease, holder, transitions, "the Lease does not exist")
        seen = self._seen.get(entry.key)
        if seen is None or seen[0] != entry.revision:
            spec = entry.obj().get("spec") or {}
            seen = (
                entry.revision,
                str(spec.get("holderIdentity") or ""),
                int(spec.get("leaseTransitions") or 0),
            )
            self._seen[entry.key] = seen
        _, cur_holder, cur_transitions = seen
        if cur_holder != holder or cur_transitions != transitions:
            now = f"held by {cur_holder!r}" if cur_holder else "not held"
            why = f"the Lease is {now} at leaseTransitions {cur_transitions}"
            raise _deposed(target, ns, lease, holder, transitions, why)


def _deposed(
    target: tuple[str, str, str], ns: str, lease: str, holder: str, transitions: int, why: str
) -> errors.StatusError:
    group, plural, name = target
    return errors.conflict(
        plural,
        group,
        name,
        f"the writer is no longer the leader: its fence (Lease {ns}/{lease}, holder "
        f"{holder!r}, leaseTransitions {transitions}) is stale: {why}",
    )
