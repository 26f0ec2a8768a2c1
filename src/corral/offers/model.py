"""What the allocator exchanges with its shell: offers, instructions, errors, config.

``offers/allocator.py`` returns these; the Mesos master's shell turns ``SendOffers`` into
OFFERS events and ``RescindOffer`` into RESCIND events, and ``InvalidOffers`` into an
ERROR for the ACCEPT that named them. Frozen dataclasses: instructions compare by value
(an ``Offer`` by identity, as it carries a numpy vector) and print readably in logs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from corral.api import mesos

if TYPE_CHECKING:  # numpy loads with the allocator, not with ``AllocatorConfig`` (cli)
    import numpy as np
    import numpy.typing as npt

    Vector = npt.NDArray[np.int64]


@dataclass(frozen=True, eq=False)
class Offer:
    """An outstanding offer. ``resources`` is a read-only table vector (cpu millicores,
    memory bytes, disk bytes, pods 0); ``ports`` inclusive ranges; ``attributes`` Mesos
    TEXT attributes from the node's labels (shared between offers: do not mutate);
    ``created`` is monotonic time; ``pods`` the node's free pod slots when the offer was
    made (None: the node has no pods limit), advertised as the ``pods`` resource but not
    held (two offers on one node may both carry them; the master refuses a task past the
    limit). Render with ``resources.render_resources``. Offers compare (and hash) by
    identity: there is one object per offer id."""

    id: str
    framework_id: str
    agent: str
    role: str
    resources: Vector
    ports: tuple[tuple[int, int], ...]
    attributes: tuple[dict[str, Any], ...]
    created: float
    pods: int | None = None


@dataclass(frozen=True)
class SendOffers:
    """Send these offers (one OFFERS event) to the framework."""

    framework_id: str
    offers: tuple[Offer, ...]


@dataclass(frozen=True)
class RescindOffer:
    """Tell the framework the offer is gone (RESCIND event); its resources are free."""

    framework_id: str
    offer_id: str


Instruction = SendOffers | RescindOffer


class InvalidOffers(Exception):
    """ACCEPT named offers that cannot be used together; nothing was changed."""


@dataclass
class AllocatorConfig:
    #: the allocation cycle the shell runs (seconds); a refusal lasts at least one cycle
    interval: float = 1.0
    #: rescind outstanding offers older than this (Mesos --offer_timeout; None = never)
    offer_timeout: float | None = None
    #: an offer carries cpus ≥ min_cpus OR mem ≥ min_mem_mb (--min_allocatable_resources)
    min_cpus: float = 0.01
    min_mem_mb: float = 32.0
    #: refuse_seconds when absent or negative, and its cap
    default_refuse: float = 5.0
    max_refuse: float = 31536000.0
    #: the ports an agent offers, inclusive (minus host ports in use and ports offered)
    port_range: tuple[int, int] = (31000, 32000)
    #: the role Kubernetes pods count toward, per namespace when listed
    kubernetes_role: str = mesos.KUBERNETES_ROLE
    namespace_roles: dict[str, str] = field(default_factory=dict)
    #: no framework with demand waits longer for an offer (None: pure DRF)
    starvation_bound: float | None = 2.0
    #: offer ids are f"{id_prefix}{n}"
    id_prefix: str = "O"
