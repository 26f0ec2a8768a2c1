"""The book of outstanding offers, each held in the node table as a pseudo-pod.

``Allocator`` (``offers/allocator.py``) decides; this module keeps the record: offers by
id (in creation order, so the oldest are first for ``offer_timeout``), by agent (ports
already offered, offers to rescind when an agent goes) and by framework, the resources
offered per role and per (framework, role) for DRF, and one table hold per offer. The
hold is a ``PodInfo`` keyed ``offer/<id>`` whose requests are the offer's resources (pods
column 0), added with ``NodeTable.add_pod`` when the offer is made and removed when it
is released, so the Kubernetes scheduler, which reads ``table.requested``, never places
a pod into offered resources; holds carry the highest priority, so preemption never
evicts one (``Allocator.reclaim`` is the way in). Every way out of the book (accept,
decline, rescind, timeout) goes through ``release``, so a hold cannot outlive its offer.

Offers are made in batches (one per allocation cycle): their vectors share one
read-only block, and the holds share empty fields, to keep a 5,000-offer cycle cheap.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Protocol

import numpy as np

from corral.offers.model import Offer
from corral.offers.resources import Ranges
from corral.offers.usage import HOLD_PREFIX, Vec3, add3
from corral.scheduler.framework import PodInfo
from corral.scheduler.snapshot import NodeTable

#: holds outrank every pod (int32 max), so preemption never picks one as a victim; a
#: pending pod gets offered resources through ``Allocator.reclaim`` instead
HOLD_PRIORITY = 2**31 - 1
# shared empty fields of the holds (the table and the plugins only read them)
_NO_OBJ: dict[str, Any] = {}
_NO_LABELS: dict[str, str] = {}
_NO_LIST: list[Any] = []
_NO_NONZERO = np.zeros(2, dtype=np.int64)
_NO_NONZERO.flags.writeable = False


class NewOffer(Protocol):
    """What ``OfferBook.create`` needs for one offer (``cycle.Draft`` fits)."""

    row: int
    agent: str
    framework_id: str
    role: str
    resources: Vec3
    ports: Ranges


class OfferBook:
    """See the module docstring. ``offers``, ``by_agent``, ``by_fw``, ``offered_role``
    and ``offered_fw`` are for reading; change them only through the methods."""

    def __init__(self, table: NodeTable, id_prefix: str) -> None:
        self.table = table
        self._prefix = id_prefix
        self._next_id = 1
        self.offers: dict[str, Offer] = {}
        self.by_agent: dict[str, dict[str, Offer]] = {}
        self.by_fw: dict[str, dict[str, Offer]] = {}
        self.offered_role: dict[str, Vec3] = {}
        self.offered_fw: dict[tuple[str, str], Vec3] = {}
        self._holds: dict[str, PodInfo] = {}

    def __len__(self) -> int:
        return len(self.offers)

    def create(
        self,
        drafts: Sequence[NewOffer],
        attributes: Callable[[int, str], tuple[dict[str, Any], ...]],
        now: float,
        pod_room: Callable[[int], int | None] = lambda row: None,
    ) -> list[Offer]:
        """Make, record and hold one offer per draft (ids count up). ``pod_room`` gives
        the free pod slots an offer on a row advertises (not held: see ``Offer``)."""
        if not drafts:
            return []
        t = self.table
        vecs = np.zeros((len(drafts), 4), dtype=np.int64)
        vecs[:, :3] = [d.resources for d in drafts]
        vecs.flags.writeable = False  # each offer and its hold get a row view
        made: list[Offer] = []
        sums: dict[tuple[str, str], Vec3] = {}
        for i, d in enumerate(drafts):
            oid = f"{self._prefix}{self._next_id}"
            self._next_id += 1
            vec = vecs[i]
            offer = Offer(
                oid,
                d.framework_id,
                d.agent,
                d.role,
                vec,
                d.ports,
                attributes(d.row, d.agent),
                now,
                pod_room(d.row),
            )
            hold = PodInfo(
                obj=_NO_OBJ,
                key=HOLD_PREFIX + oid,
                uid=oid,
                namespace="",
                labels=_NO_LABELS,
                requests=vec,
                priority=HOLD_PRIORITY,
                node_selector=_NO_LABELS,
                affinity=_NO_OBJ,
                tolerations=_NO_LIST,
                host_ports=[],
                spread=_NO_LIST,
                nonzero_requests=_NO_NONZERO,
            )
            t.add_pod(hold, d.agent)
            self.offers[oid] = offer
            self._holds[oid] = hold
            self.by_agent.setdefault(d.agent, {})[oid] = offer
            self.by_fw.setdefault(d.framework_id, {})[oid] = offer
            k = (d.framework_id, d.role)
            sums[k] = add3(sums.get(k), d.resources)
            made.append(offer)
        for (fid, role), v in sums.items():
            self.offered_fw[(fid, role)] = add3(self.offered_fw.get((fid, role)), v)
            self.offered_role[role] = add3(self.offered_role.get(role), v)
        return made

    def release(self, oid: str) -> Offer:
        """Drop an outstanding offer (``KeyError`` if unknown) and lift its hold."""
        offer = self.offers.pop(oid)
        del self._holds[oid]
        self.table.remove_pod(HOLD_PREFIX + oid)
        for index, key in ((self.by_agent, offer.agent), (self.by_fw, offer.framework_id)):
            group = index[key]
            del group[oid]
            if not group:
                del index[key]
        v = offer.resources
        for acc in (
            self.offered_role[offer.role],
            self.offered_fw[(offer.framework_id, offer.role)],
        ):
            acc[0] -= int(v[0])
            acc[1] -= int(v[1])
            acc[2] -= int(v[2])
        return offer

    def expired(self, now: float, timeout: float) -> list[str]:
        """Ids of the offers made ``timeout`` or more seconds before ``now``."""
        old = []
        for oid, o in self.offers.items():
            if o.created + timeout > now:
                break
            old.append(oid)
        return old

    def offered_before(self, cutoff: float) -> tuple[dict[str, Vec3], dict[tuple[str, str], Vec3]]:
        """Resources of the offers made at or before ``cutoff`` (monotonic), per role and
        per (framework, role): what DRF charges a framework for offers it sits on."""
        by_role: dict[str, Vec3] = {}
        by_fw: dict[tuple[str, str], Vec3] = {}
        for o in self.offers.values():
            if o.created > cutoff:
                break
            v: Vec3 = [int(o.resources[0]), int(o.resources[1]), int(o.resources[2])]
            by_role[o.role] = add3(by_role.get(o.role), v)
            k = (o.framework_id, o.role)
            by_fw[k] = add3(by_fw.get(k), v)
        return by_role, by_fw

    def oldest(self) -> Offer | None:
        return next(iter(self.offers.values()), None)

    def forget_framework(self, fid: str) -> None:
        """Drop the (zero) offered sums of a framework that has gone."""
        for key in [k for k in self.offered_fw if k[0] == fid]:
            del self.offered_fw[key]

    @contextmanager
    def lifted(self) -> Iterator[None]:
        """Every hold out of the table for the duration; back in however it ends."""
        out: list[str] = []
        try:
            for oid in self._holds:
                self.table.remove_pod(HOLD_PREFIX + oid)
                out.append(oid)
            yield
        finally:
            for oid in out:
                self.table.add_pod(self._holds[oid], self.offers[oid].agent)
