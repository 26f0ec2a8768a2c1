"""Strategy for scheduling.k8s.io/v1 PriorityClasses.

User classes may not use the ``system-`` prefix nor a value above one billion; the value
and preemption policy are fixed after creation (``ValidatePriorityClass[Update]``).
Enforcing a single ``globalDefault`` needs the store and is left to the server layer.

Called by the generic store through the registry table (``table.py``).
"""

from __future__ import annotations

from corral.api.errors import FieldError, forbidden, invalid
from corral.api.validation import validate_enum, validate_immutable
from corral.apiserver.registry.base import Obj, Strategy

HIGHEST_USER_PRIORITY = 1_000_000_000
SYSTEM_CLASSES = {"system-cluster-critical": 2_000_000_000, "system-node-critical": 2_000_001_000}


class PriorityClassStrategy(Strategy):
    spec_fields = ()

    def default(self, obj: Obj) -> None:
        obj.setdefault("preemptionPolicy", "PreemptLowerPriority")

    def validate(self, obj: Obj) -> list[FieldError]:
        errs: list[FieldError] = []
        name = (obj.get("metadata") or {}).get("name") or ""
        value = obj.get("value", 0)
        if name in SYSTEM_CLASSES:
            if value != SYSTEM_CLASSES[name]:
                errs.append(invalid("metadata.name", name, "name and value don't match"))
        elif name.startswith("system-"):
            errs.append(
                invalid(
                    "metadata.name",
                    name,
                    "priority class names with 'system-' prefix are reserved for system use only",
                )
            )
        elif isinstance(value, int) and value > HIGHEST_USER_PRIORITY:
            errs.append(
                forbidden(
                    "value",
                    f"maximum allowed value of a user defined priority is {HIGHEST_USER_PRIORITY}",
                )
            )
        errs += validate_enum(
            obj.get("preemptionPolicy"), "preemptionPolicy", ["Never", "PreemptLowerPriority"]
        )
        return errs

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        errs = self.validate(new)
        if new.get("value", 0) != old.get("value", 0):
            errs.append(forbidden("value", "may not be changed in an update."))
        errs += validate_immutable(
            new.get("preemptionPolicy"), old.get("preemptionPolicy"), "preemptionPolicy"
        )
        return errs
