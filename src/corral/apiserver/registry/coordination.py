"""Strategy for coordination.k8s.io/v1 Leases (node heartbeats, leader election).

A Lease has a ``spec`` but, as on the real server, no ``generation`` tracking and no
status. Validation covers the numeric fields (``ValidateLeaseSpec``).

Called by the generic store through the registry table (``table.py``).
"""

from __future__ import annotations

from corral.api.errors import FieldError
from corral.api.validation import validate_nonnegative, validate_positive
from corral.apiserver.registry.base import Obj, Strategy


class LeaseStrategy(Strategy):
    spec_fields = ()
    # no defaults, no status, no generation: preparing an update writes nothing, so a
    # renewal (a merge patch of ``spec``) decodes the stored Lease once
    shallow_update_prepare = True

    def validate(self, obj: Obj) -> list[FieldError]:
        spec = obj.get("spec") or {}
        errs = validate_positive(spec.get("leaseDurationSeconds"), "spec.leaseDurationSeconds")
        errs += validate_nonnegative(spec.get("leaseTransitions"), "spec.leaseTransitions")
        return errs
