"""Strategies for the simple core/v1 kinds and events.k8s.io/v1 Events.

Namespace, Node, ConfigMap, Secret, ServiceAccount and Event: small kinds whose rules fit
in a few lines each (Pods, Services and ReplicationControllers have their own modules).
Notable real-server behaviour kept here: a Namespace always carries the ``kubernetes``
finalizer and the ``kubernetes.io/metadata.name`` label; a Node may be created with its
status; a Secret's ``stringData`` is folded (base64) into ``data`` and dropped; ConfigMaps
and Secrets marked ``immutable`` refuse data changes.

events.k8s.io/v1 Events are a view of core/v1 Events, as in Kubernetes: one stored
object, served in either shape. ``EventConverter`` maps the renamed fields (``regarding``
is ``involvedObject``, ``note`` is ``message``, ``reportingController`` is
``reportingComponent``, ``deprecatedSource``/``deprecatedFirstTimestamp``/
``deprecatedLastTimestamp``/``deprecatedCount`` are ``source``/``firstTimestamp``/
``lastTimestamp``/``count``); each API validates with its own rules on its own shape.

Called by the generic store through the registry table (``table.py``).
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, ClassVar

from corral.api.errors import FieldError, forbidden, invalid, required, too_long
from corral.api.validation import (
    is_config_map_key,
    is_qualified_name,
    validate_enum,
    validate_immutable,
    validate_qualified_name,
)
from corral.apiserver.registry.base import Obj, Strategy

MAX_SECRET_SIZE = 1024 * 1024
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
IMMUTABLE_SET = "field is immutable when `immutable` is set"
TAINT_EFFECTS = ["NoSchedule", "PreferNoSchedule", "NoExecute"]


def _get(obj: Obj, *path: str) -> Any:
    cur: Any = obj
    for key in path:
        if not isinstance(cur, dict):
            return None
        cur = cur.get(key)
    return cur


def field_getter(*path: str) -> Any:
    """A field-selector function reading ``path`` ("" when absent)."""

    def get(obj: Obj) -> str:
        value = _get(obj, *path)
        if isinstance(value, bool):
            return "true" if value else "false"
        return "" if value is None else str(value)

    return get


# --- Namespace -------------------------------------------------------------------------


class NamespaceStrategy(Strategy):
    has_status = True
    spec_fields = ()
    #: upstream's store sets ``ReturnDeletedObject`` (its REST's own ``Delete`` answers
    #: the Terminating namespace before), so every DELETE answers the Namespace
    return_deleted_object = True
    name_format = "label"
    field_selectors: ClassVar[dict[str, Any]] = {"status.phase": field_getter("status", "phase")}

    def default(self, obj: Obj) -> None:
        name = _get(obj, "metadata", "name")
        if name:
            obj["metadata"].setdefault("labels", {})[NAMESPACE_NAME_LABEL] = name

    def prepare_for_create(self, obj: Obj) -> None:
        self.default(obj)
        finalizers = obj.setdefault("spec", {}).setdefault("finalizers", [])
        if "kubernetes" not in finalizers:
            finalizers.append("kubernetes")
        super().prepare_for_create(obj)

    def default_status(self, obj: Obj) -> None:
        obj["status"] = {"phase": "Active"}

    def prepare_for_update(self, new: Obj, old: Obj) -> None:
        """Spec finalizers change only through ``/finalize``; status only through ``/status``."""
        super().prepare_for_update(new, old)
        if "spec" in old:
            new["spec"] = old["spec"]
        else:
            new.pop("spec", None)
        self.default(new)

    def validate(self, obj: Obj) -> list[FieldError]:
        errs: list[FieldError] = []
        for f in _get(obj, "spec", "finalizers") or []:
            errs.extend(validate_qualified_name(str(f), "spec.finalizers"))
        return errs


# --- Node ------------------------------------------------------------------------------


class NodeStrategy(Strategy):
    has_status = True
    spec_fields = ()
    field_selectors: ClassVar[dict[str, Any]] = {
        "spec.unschedulable": lambda o: "true" if _get(o, "spec", "unschedulable") else "false"
    }

    def prepare_for_create(self, obj: Obj) -> None:
        """Nodes may be created with their status (the agent registers itself so)."""
        obj.setdefault("spec", {})

    def validate(self, obj: Obj) -> list[FieldError]:
        errs: list[FieldError] = []
        for i, taint in enumerate(_get(obj, "spec", "taints") or []):
            p = f"spec.taints[{i}]"
            key = taint.get("key") or ""
            if not key:
                errs.append(required(f"{p}.key"))
            else:
                errs.extend(invalid(f"{p}.key", key, m) for m in is_qualified_name(key))
            effect = taint.get("effect")
            if not effect:
                errs.append(required(f"{p}.effect"))
            else:
                errs.extend(validate_enum(effect, f"{p}.effect", TAINT_EFFECTS))
        return errs


# --- ConfigMap and Secret --------------------------------------------------------------


def _validate_keys(
    bag: Any, path: str, other: Any, other_name: str
) -> tuple[list[FieldError], int]:
    errs: list[FieldError] = []
    size = 0
    if not isinstance(bag, dict):
        return errs, size
    for key, value in bag.items():
        errs.extend(invalid(f"{path}[{key}]", key, m) for m in is_config_map_key(key))
        if isinstance(other, dict) and key in other:
            errs.append(invalid(f"{path}[{key}]", key, f"duplicate of key present in {other_name}"))
        size += len(value) if isinstance(value, str) else 0
    return errs, size


def base64_error(value: Any) -> str | None:
    """Go's ``illegal base64 data at input byte N`` for a bad ``[]byte`` JSON string."""
    if not isinstance(value, str):
        return "illegal base64 data at input byte 0"
    try:
        base64.b64decode(value.replace("\r", "").replace("\n", ""), validate=True)
        return None
    except (binascii.Error, ValueError):
        alphabet = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
        for i, ch in enumerate(value):
            if ch not in alphabet:
                return f"illegal base64 data at input byte {i}"
        return f"illegal base64 data at input byte {len(value) - len(value) % 4}"


def _validate_immutable_data(new: Obj, old: Obj, keys: tuple[str, ...]) -> list[FieldError]:
    errs: list[FieldError] = []
    if old.get("immutable") is True:
        if new.get("immutable") is not True:
            errs.append(forbidden("immutable", IMMUTABLE_SET))
        for key in keys:
            if (new.get(key) or {}) != (old.get(key) or {}):
                errs.append(forbidden(key, IMMUTABLE_SET))
    return errs


class ConfigMapStrategy(Strategy):
    spec_fields = ()

    def validate(self, obj: Obj) -> list[FieldError]:
        data, binary = obj.get("data"), obj.get("binaryData")
        errs, size = _validate_keys(data, "data", binary, "binaryData")
        errs2, size2 = _validate_keys(binary, "binaryData", data, "data")
        errs.extend(errs2)
        for key, value in (binary or {}).items():
            msg = base64_error(value)
            if msg:
                errs.append(invalid(f"binaryData[{key}]", value, msg))
        if size + size2 > MAX_SECRET_SIZE:
            errs.append(too_long("data", MAX_SECRET_SIZE))
        return errs

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return self.validate(new) + _validate_immutable_data(new, old, ("data", "binaryData"))


SECRET_TYPES_REQUIRED_KEYS = {
    "kubernetes.io/dockercfg": (".dockercfg",),
    "kubernetes.io/dockerconfigjson": (".dockerconfigjson",),
    "kubernetes.io/tls": ("tls.crt", "tls.key"),
    "kubernetes.io/ssh-auth": ("ssh-privatekey",),
}


def merge_string_data(obj: Obj) -> None:
    """Fold ``stringData`` into ``data`` (base64) and drop it, as the v1 conversion does."""
    string_data = obj.pop("stringData", None)
    if isinstance(string_data, dict) and string_data:
        data = obj.get("data")
        if not isinstance(data, dict):
            data = obj["data"] = {}
        for key, value in string_data.items():
            data[key] = base64.b64encode(str(value).encode()).decode()


class SecretStrategy(Strategy):
    spec_fields = ()
    field_selectors: ClassVar[dict[str, Any]] = {"type": field_getter("type")}

    def default(self, obj: Obj) -> None:
        if not obj.get("type"):
            obj["type"] = "Opaque"
        merge_string_data(obj)

    def prepare_for_create(self, obj: Obj) -> None:
        merge_string_data(obj)
        super().prepare_for_create(obj)

    def prepare_for_update(self, new: Obj, old: Obj) -> None:
        merge_string_data(new)
        super().prepare_for_update(new, old)

    def validate(self, obj: Obj) -> list[FieldError]:
        data = obj.get("data")
        errs, size = _validate_keys(data, "data", None, "")
        data = data if isinstance(data, dict) else {}
        for key, value in data.items():
            msg = base64_error(value)
            if msg:
                errs.append(invalid(f"data[{key}]", value, msg))
        if size > MAX_SECRET_SIZE:
            errs.append(too_long("data", MAX_SECRET_SIZE))
        stype = obj.get("type") or "Opaque"
        if stype == "kubernetes.io/service-account-token":
            name_key = "kubernetes.io/service-account.name"
            if not (_get(obj, "metadata", "annotations") or {}).get(name_key):
                errs.append(required(f"metadata.annotations[{name_key}]"))
        elif stype == "kubernetes.io/basic-auth" and not (
            data.get("username") or data.get("password")
        ):
            errs.append(required("data[username]"))
            errs.append(required("data[password]"))
        for key in SECRET_TYPES_REQUIRED_KEYS.get(stype, ()):
            if not data.get(key):
                errs.append(required(f"data[{key}]"))
        return errs

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        errs = self.validate(new)
        errs.extend(validate_immutable(new.get("type"), old.get("type"), "type"))
        errs.extend(_validate_immutable_data(new, old, ("data",)))
        return errs


class ServiceAccountStrategy(Strategy):
    spec_fields = ()
    return_deleted_object = True


# --- Events ----------------------------------------------------------------------------

EVENT_TYPES = ["Normal", "Warning"]
EVENT_V1_IMMUTABLE = ("regarding", "related", "reportingController", "reportingInstance",
                      "action", "reason", "type", "eventTime", "note")  # fmt: skip


def event_time(obj: Obj) -> str:
    """When an event (either API version) last happened; lists are in this order."""
    series = obj.get("series") or {}
    for t in (
        obj.get("lastTimestamp"),
        series.get("lastObservedTime"),
        obj.get("deprecatedLastTimestamp"),
        obj.get("eventTime"),
        obj.get("firstTimestamp"),
        (obj.get("metadata") or {}).get("creationTimestamp"),
    ):
        if t:
            # second-precision and microsecond times must sort together
            return str(t).replace("Z", ".000000Z") if "." not in str(t) else str(t)
    return ""


#: the ObjectReference fields an event's object may be selected by
OBJECT_REFERENCE_FIELDS = ("kind", "namespace", "name", "uid", "apiVersion", "resourceVersion",
                           "fieldPath")  # fmt: skip
#: events.k8s.io/v1 name -> core/v1 name of each renamed field
EVENT_V1_RENAMES = {
    "regarding": "involvedObject",
    "note": "message",
    "reportingController": "reportingComponent",
    "deprecatedSource": "source",
    "deprecatedFirstTimestamp": "firstTimestamp",
    "deprecatedLastTimestamp": "lastTimestamp",
    "deprecatedCount": "count",
}
_EVENT_CORE_RENAMES = {core: v1 for v1, core in EVENT_V1_RENAMES.items()}


def event_source(obj: Obj) -> str:
    """The ``source`` field selector of a core/v1 Event: ``source.component``, else the
    reporting controller (``reportingComponent``)."""
    return str(_get(obj, "source", "component") or obj.get("reportingComponent") or "")


def _renamed(obj: Obj, renames: dict[str, str], api_version: str) -> Obj:
    out: Obj = {"apiVersion": api_version, "kind": "Event"}
    for key, value in obj.items():
        if key not in ("apiVersion", "kind"):
            out[renames.get(key, key)] = value
    return out


class EventConverter:
    """events.k8s.io/v1 Event <-> core/v1 Event (Kubernetes' ``pkg/apis/events/v1``
    conversion): fields renamed, the rest (eventTime, series, action, reason, type,
    related, reportingInstance, metadata) carried as they are.

    The object reference is a struct in both versions, never absent: ``regarding`` and
    ``involvedObject`` are ``{}`` when the other side had none.
    """

    field_labels: ClassVar[dict[str, str]] = {
        **{f"regarding.{k}": f"involvedObject.{k}" for k in OBJECT_REFERENCE_FIELDS},
        "reason": "reason",
        "reportingController": "reportingComponent",
        "source": "source",
        "type": "type",
    }

    def to_storage(self, obj: Obj) -> Obj:
        """An events.k8s.io/v1 Event as a core/v1 Event."""
        out = _renamed(obj, EVENT_V1_RENAMES, "v1")
        out.setdefault("involvedObject", {})
        return out

    def from_storage(self, obj: Obj) -> Obj:
        """A core/v1 Event as an events.k8s.io/v1 Event."""
        out = _renamed(obj, _EVENT_CORE_RENAMES, "events.k8s.io/v1")
        out.setdefault("regarding", {})
        return out


class EventStrategy(Strategy):
    """core/v1 Event (the legacy shape written by kubectl, kubelets and most clients)."""

    spec_fields = ()
    ordered_lists = True

    def list_position(self, obj: Obj) -> str:
        return event_time(obj)

    field_selectors: ClassVar[dict[str, Any]] = {
        **{
            f"involvedObject.{k}": field_getter("involvedObject", k)
            for k in OBJECT_REFERENCE_FIELDS
        },
        "reason": field_getter("reason"),
        "reportingComponent": field_getter("reportingComponent"),
        "source": event_source,
        "type": field_getter("type"),
    }

    def validate(self, obj: Obj) -> list[FieldError]:
        errs: list[FieldError] = []
        ns = _get(obj, "metadata", "namespace") or ""
        involved = obj.get("involvedObject")
        if not isinstance(involved, dict):
            return [required("involvedObject")]
        inv_ns = involved.get("namespace") or ""
        if (inv_ns and inv_ns != ns) or (not inv_ns and ns not in ("", "default")):
            errs.append(
                invalid("involvedObject.namespace", inv_ns, "does not match event.namespace")
            )
        etype = obj.get("type")
        if etype and etype not in EVENT_TYPES:
            errs.append(invalid("type", "", f"has invalid value: {etype}"))
        controller = obj.get("reportingComponent")
        if controller:
            errs.extend(validate_qualified_name(controller, "reportingController"))
        return errs


class EventV1Strategy(Strategy):
    """events.k8s.io/v1 Event: the newer shape, with the stricter create-time rules."""

    spec_fields = ()
    ordered_lists = True

    def list_position(self, obj: Obj) -> str:
        return event_time(obj)

    #: the events.k8s.io names (selection itself runs on the stored core/v1 fields,
    #: through ``EventConverter.field_labels``)
    field_selectors: ClassVar[dict[str, Any]] = {
        **{f"regarding.{k}": field_getter("regarding", k) for k in OBJECT_REFERENCE_FIELDS},
        "reason": field_getter("reason"),
        "reportingController": field_getter("reportingController"),
        "source": lambda o: event_source(EventConverter().to_storage(o)),
        "type": field_getter("type"),
    }

    def validate(self, obj: Obj) -> list[FieldError]:
        errs: list[FieldError] = []
        if not obj.get("eventTime"):
            errs.append(required("eventTime"))
        etype = obj.get("type")
        if etype not in EVENT_TYPES:
            errs.append(invalid("type", "", f"has invalid value: {etype or ''}"))
        if obj.get("deprecatedFirstTimestamp"):
            errs.append(invalid("deprecatedFirstTimestamp", "", "needs to be unset"))
        if obj.get("deprecatedLastTimestamp"):
            errs.append(invalid("deprecatedLastTimestamp", "", "needs to be unset"))
        if obj.get("deprecatedCount"):
            errs.append(invalid("deprecatedCount", "", "needs to be unset"))
        controller = obj.get("reportingController") or ""
        if not controller:
            errs.append(required("reportingController"))
        errs.extend(validate_qualified_name(controller, "reportingController"))
        if not obj.get("reportingInstance"):
            errs.append(required("reportingInstance"))
        if not obj.get("action"):
            errs.append(required("action"))
        if not obj.get("reason"):
            errs.append(required("reason"))
        note = obj.get("note") or ""
        if len(note) > 1024:
            errs.append(too_long("note", 1024))
        return errs

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        errs: list[FieldError] = []
        for key in EVENT_V1_IMMUTABLE:
            errs.extend(validate_immutable(new.get(key), old.get(key), key))
        return errs
