"""The strategy protocol every resource plugs into the generic store.

A strategy is the per-kind part of the REST machinery, as in Kubernetes'
``rest.RESTCreateStrategy``: it prepares an object for create and update (status is
reset or kept, ``generation`` bumped when the spec changes), validates it (pure: returns
field errors, never raises), and names the fields a ``fieldSelector`` may use. The
generic handlers call it; it never does I/O.

``ResourceInfo`` is one row of the registry table: the names a resource is known by and
its strategy. Adding a resource is one strategy module plus one row.

A row may be a *view*: another API version of a resource stored under a different row
(``events.k8s.io/v1`` Events are core/v1 Events, as in Kubernetes where both are one
stored resource). A view names that row in ``storage`` and carries a ``Converter``
between the two shapes; the store keeps one copy, in the storage row's shape.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Protocol

from mypy_extensions import mypyc_attr

from corral.api.errors import FieldError
from corral.api.validation import validate_object_meta

Obj = dict[str, Any]


# subclassed at run time: CRD strategies (``custom.strategy_for``), interpreted modules
@mypyc_attr(allow_interpreted_subclasses=True)
class Strategy:
    """Defaults shared by all kinds; subclasses override what differs."""

    #: the kind has a ``status`` subresource: writes to the main resource keep status.
    has_status: ClassVar[bool] = False
    #: top-level fields whose change bumps ``metadata.generation`` (empty: never tracked).
    spec_fields: ClassVar[tuple[str, ...]] = ("spec",)
    #: deletion sets deletionTimestamp and waits (pods) instead of removing at once.
    graceful_delete: ClassVar[bool] = False
    #: DELETE answers with the object rather than a Status once it is gone (upstream
    #: registries with ``ReturnDeletedObject``: pods, services, serviceaccounts,
    #: namespaces, podtemplates, resourcequotas).
    return_deleted_object: ClassVar[bool] = False
    #: propagation policy when a DELETE names none (Jobs and RCs keep the legacy Orphan).
    default_gc_policy: ClassVar[str] = "Background"
    #: name must be a DNS-1123 subdomain ("subdomain") or label ("label"), or anything ("path").
    name_format: ClassVar[str] = "subdomain"
    #: extra field selectors: selector field -> function reading it from the object.
    field_selectors: ClassVar[dict[str, Callable[[Obj], str]]] = {}
    #: lists are ordered by ``list_position`` (then by key) instead of by key alone
    ordered_lists: ClassVar[bool] = False
    #: OpenAPI definitions of a kind the Kubernetes 1.32 schemas lack (Corral's own
    #: kinds, as a CRD carries its schema): definition name -> JSON Schema in the
    #: ``$defs`` dialect of ``corral.api.schema``, each with its
    #: ``x-kubernetes-group-version-kind`` (the kind and its List). The store decodes and
    #: prunes by them, OpenAPI v3/v2 publish them. Empty: the 1.32 set describes the kind.
    definitions: ClassVar[dict[str, dict[str, Any]]] = {}
    #: what OpenAPI v3 and v2 publish instead of ``definitions`` when they differ (a
    #: CRD's schema as upstream publishes it: unknown fields left open, int-or-string
    #: unfolded), same dialect and names; None: ``definitions``
    published_definitions: ClassVar[dict[str, dict[str, Any]] | None] = None
    published_definitions_v2: ClassVar[dict[str, dict[str, Any]] | None] = None
    #: objects decode as Go structs do (a wrong JSON type is a 400, nulls are dropped,
    #: unknown fields pruned by ``definitions`` or the 1.32 schemas). False for custom
    #: resources, whose strategy prunes (``prune``) and whose schema validates types (422).
    typed: ClassVar[bool] = True
    #: ``default`` and ``prepare_for_update`` write into an updated object nothing but
    #: keys of its top level and of its metadata (the values under those keys are never
    #: written into). Then a merge patch of the main resource decodes the stored object
    #: once, unless an admission plugin may mutate it (``Registry.patch``). False unless
    #: a strategy promises it.
    shallow_update_prepare: ClassVar[bool] = False

    def prune(self, obj: Obj) -> list[str]:
        """Drop the fields the schema does not know, in place; their paths (``spec.foo``).
        Only called when not ``typed``."""
        return []

    def prepare_for_delete(self, obj: Obj, now: str) -> None:
        """Called once, when a delete first marks ``obj`` (``now`` is the time): may add
        finalizers and conditions (a CRD's cleanup finalizer). Mutates ``obj``."""

    def table_columns(self) -> list[dict[str, Any]] | None:
        """``columnDefinitions`` of a kind whose printer is data (a CRD's
        additionalPrinterColumns); None: ``apiserver/tables.py`` has its printer."""
        return None

    def table_row(self, obj: Obj, now: datetime) -> list[Any]:
        """The cells of one object under ``table_columns`` (only called when those exist)."""
        return []

    def list_position(self, obj: Obj) -> str:
        """The value lists sort by when ``ordered_lists`` (events: their time)."""
        return ""

    # --- create / update ----------------------------------------------------------
    def prepare_for_create(self, obj: Obj) -> None:
        """Reset what a client may not set on create; called before validation."""
        if self.has_status:
            obj.pop("status", None)
            self.default_status(obj)
        if self.spec_fields:
            obj["metadata"]["generation"] = 1

    def default_status(self, obj: Obj) -> None:
        """The status a fresh object starts with (e.g. a Pod's ``phase: Pending``)."""

    def default(self, obj: Obj) -> None:
        """Fill defaults the real server fills (restartPolicy, strategy...). Mutates ``obj``."""

    def prepare_for_update(self, new: Obj, old: Obj) -> None:
        """Keep status on main-resource writes; bump generation on a spec change."""
        if self.has_status:
            if "status" in old:
                new["status"] = old["status"]
            else:
                new.pop("status", None)
        self.bump_generation(new, old)

    def bump_generation(self, new: Obj, old: Obj) -> None:
        if not self.spec_fields:
            return
        gen = old["metadata"].get("generation", 1)
        changed = any(new.get(f) != old.get(f) for f in self.spec_fields)
        new["metadata"]["generation"] = gen + 1 if changed else gen

    def prepare_for_status_update(self, new: Obj, old: Obj) -> None:
        """A ``/status`` write changes status (and labels/annotations), nothing else."""
        for key in list(new):
            if key not in ("metadata", "status", "kind", "apiVersion"):
                new.pop(key)
        for key, val in old.items():
            if key not in ("metadata", "status", "kind", "apiVersion"):
                new[key] = val
        if "generation" in old["metadata"]:
            new["metadata"]["generation"] = old["metadata"]["generation"]

    # --- validation ----------------------------------------------------------------
    def validate(self, obj: Obj) -> list[FieldError]:
        """Errors for a new object (metadata checks included via ``validate_metadata``)."""
        return []

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        """Errors for an update; by default the create rules plus immutable-field rules."""
        return self.validate(new)

    def validate_status_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return []

    #: subresources besides ``status`` that update the object through the strategy
    #: (a CSR's ``approval``): the store calls the two methods below for them
    update_subresources: ClassVar[tuple[str, ...]] = ()

    def prepare_for_subresource_update(self, subresource: str, new: Obj, old: Obj) -> None:
        """Keep what a write to ``subresource`` may not change (one of
        ``update_subresources``). Mutates ``new``."""

    def validate_subresource_update(self, subresource: str, new: Obj, old: Obj) -> list[FieldError]:
        return []

    def validate_metadata(self, obj: Obj, namespaced: bool) -> list[FieldError]:
        return validate_object_meta(obj.get("metadata", {}), namespaced, self.name_format)


@dataclass(frozen=True)
class ScaleAccess:
    """Where a kind keeps what ``/scale`` reads and writes."""

    replicas_path: tuple[str, ...] = ("spec", "replicas")
    status_replicas_path: tuple[str, ...] = ("status", "replicas")
    selector_path: tuple[str, ...] = ("spec", "selector")
    #: ReplicationController's selector is a plain map, not a LabelSelector.
    selector_is_map: bool = False


class Converter(Protocol):
    """Converts a view's objects to and from the shape of the resource it is stored as.

    Both functions return a new object (the argument is not mutated) and keep
    ``metadata`` as it is; ``field_labels`` maps each field selector the view accepts to
    the storage resource's selectable field holding the same value.
    """

    field_labels: ClassVar[dict[str, str]]

    def to_storage(self, obj: Obj) -> Obj: ...

    def from_storage(self, obj: Obj) -> Obj: ...


@dataclass(frozen=True)
class ResourceInfo:
    """One row of the registry table."""

    group: str
    version: str
    kind: str
    plural: str
    singular: str
    namespaced: bool
    strategy: Strategy
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    verbs: tuple[str, ...] = (
        "create",
        "delete",
        "deletecollection",
        "get",
        "list",
        "patch",
        "update",
        "watch",
    )
    scale: ScaleAccess | None = None
    #: extra subresources beyond status/scale: name -> (kind, verbs, group, version)
    extra_subresources: tuple[tuple[str, str, tuple[str, ...], str, str], ...] = field(default=())
    #: (group, plural) of the row whose storage this one shares: a view, converted by
    #: ``converter`` on every read and write (None: stored as itself)
    storage: tuple[str, str] | None = None
    converter: Converter | None = None

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def list_kind(self) -> str:
        return self.kind + "List"

    @property
    def qualified(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural


# --- OpenAPI definitions of Corral's own kinds ----------------------------------------------
META_REF = "#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1."
API_VERSION_DOC = (
    "APIVersion defines the versioned schema of this representation of an object. "
    "Servers should convert recognized schemas to the latest internal value, and may "
    "reject unrecognized values."
)
KIND_DOC = "Kind is a string value representing the REST resource this object represents."


def schema_prop(type_: str, doc: str, fmt: str = "") -> dict[str, Any]:
    """A schema property of a JSON type with its description (and ``format``)."""
    out: dict[str, Any] = {"type": type_, "description": doc}
    if fmt:
        out["format"] = fmt
    return out


def schema_strings(doc: str) -> dict[str, Any]:
    """A schema property: an array of strings."""
    return {"type": "array", "description": doc, "items": {"type": "string"}}


def kind_definitions(
    group: str,
    version: str,
    kind: str,
    definition: str,
    description: str,
    spec: dict[str, Any],
    status: dict[str, Any],
    plural_doc: str,
) -> dict[str, dict[str, Any]]:
    """The object and list schemas of a Corral kind (``Strategy.definitions``), as the
    OpenAPI documents and ``kubectl explain`` read them; ``plural_doc`` names the items
    (``"Frameworks"``)."""
    return {
        definition: {
            "description": description,
            "type": "object",
            "properties": {
                "apiVersion": {"type": "string", "description": API_VERSION_DOC},
                "kind": {"type": "string", "description": KIND_DOC},
                "metadata": {
                    "$ref": META_REF + "ObjectMeta",
                    "description": "Standard object metadata.",
                },
                "spec": spec,
                "status": status,
            },
            "x-kubernetes-group-version-kind": [{"group": group, "kind": kind, "version": version}],
        },
        definition + "List": {
            "description": f"{kind}List is a list of {plural_doc}.",
            "type": "object",
            "properties": {
                "apiVersion": {"type": "string", "description": API_VERSION_DOC},
                "items": {
                    "type": "array",
                    "description": f"The {plural_doc}.",
                    "items": {"$ref": "#/$defs/" + definition},
                },
                "kind": {"type": "string", "description": KIND_DOC},
                "metadata": {
                    "$ref": META_REF + "ListMeta",
                    "description": "Standard list metadata.",
                },
            },
            "required": ["items"],
            "x-kubernetes-group-version-kind": [
                {"group": group, "kind": kind + "List", "version": version}
            ],
        },
    }
