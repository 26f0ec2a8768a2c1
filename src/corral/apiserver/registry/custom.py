"""Strategy for the custom resources one CRD version defines (``crontabs.stable.example.com``).

Built by ``apiserver/crds.py`` for every served version of an established CRD, from the
CRD object: its structural schema (``corral.api.structural``) prunes unknown fields,
fills defaults and validates (types, formats, enum, bounds, CEL...; 422 with field
paths); ``status`` is kept out of main-resource writes when the status subresource is on;
``metadata.generation`` moves on any change outside metadata and status, as upstream's
``customResourceStrategy``; the table is the version's ``additionalPrinterColumns``
(or upstream's default Age column) evaluated by JSONPath; ``selectableFields`` become
field selectors. ``VersionConverter`` serves a non-storage version (conversion ``None``:
only ``apiVersion`` changes) and defaults and prunes objects read from storage, as
upstream does on read after a schema change.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Any, ClassVar

import orjson
from mypy_extensions import mypyc_attr

from corral.api import errors
from corral.api.errors import FieldError
from corral.api.schema import definitions as kube_definitions
from corral.api.validation import validate_object_meta
from corral.apiserver.registry.base import (
    API_VERSION_DOC,
    KIND_DOC,
    META_REF,
    Obj,
    ScaleAccess,
    Strategy,
)

_OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
#: converted objects a VersionConverter keeps (watch events fan out to many watchers)
RAW_CACHE = 1024
#: a path nothing lives at: a scale subresource without ``labelSelectorPath``
NO_PATH = ("\x00",)


# --- the simple JSONPath of printer columns and selectable fields ------------------------------

_TOKEN = re.compile(
    r"""\.(?P<name>[^.\[]+)|\[(?:(?P<index>-?\d+)|'(?P<quoted>[^']*)'|"(?P<dq>[^"]*)"|(?P<star>\*)|\?\(@\.(?P<fpath>[\w.\-]+)\s*(?P<op>==|!=)\s*(?P<fval>'[^']*'|"[^"]*"|[^)]*)\))\]"""
)


def parse_json_path(path: str) -> list[tuple[str, Any]] | None:
    """``.spec.items[0].name``, ``.status.conditions[?(@.type=="Ready")].status`` as steps;
    None when the path is not of that simple form."""
    path = path.strip()
    if path.startswith("{") and path.endswith("}"):
        path = path[1:-1]
    steps: list[tuple[str, Any]] = []
    pos = 0
    while pos < len(path):
        m = _TOKEN.match(path, pos)
        if m is None:
            return None
        if m.group("name") is not None:
            steps.append(("key", m.group("name")))
        elif m.group("index") is not None:
            steps.append(("index", int(m.group("index"))))
        elif m.group("quoted") is not None or m.group("dq") is not None:
            steps.append(
                ("key", m.group("quoted") if m.group("quoted") is not None else m.group("dq"))
            )
        elif m.group("star") is not None:
            steps.append(("all", None))
        else:
            raw = m.group("fval").strip()
            value: Any = raw[1:-1] if raw[:1] in "'\"" else _literal(raw)
            steps.append(("filter", (m.group("fpath").split("."), m.group("op"), value)))
        pos = m.end()
    return steps


def _literal(raw: str) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw


def eval_json_path(obj: Any, steps: list[tuple[str, Any]]) -> list[Any]:
    """Every value ``steps`` reach in ``obj`` (missing keys reach nothing)."""
    current = [obj]
    for kind, arg in steps:
        nxt: list[Any] = []
        for v in current:
            if (kind == "key" and isinstance(v, dict) and arg in v) or (
                kind == "index" and isinstance(v, list) and -len(v) <= arg < len(v)
            ):
                nxt.append(v[arg])
            elif kind == "all":
                nxt.extend(v if isinstance(v, list) else v.values() if isinstance(v, dict) else [])
            elif kind == "filter" and isinstance(v, list):
                fpath, op, want = arg
                for item in v:
                    got: Any = item
                    for k in fpath:
                        got = got.get(k) if isinstance(got, dict) else None
                    if (got == want) == (op == "=="):
                        nxt.append(item)
        current = nxt
    return current


def path_tuple(json_path: str) -> tuple[str, ...]:
    """``.spec.replicas`` -> ``("spec", "replicas")`` (scale subresource paths)."""
    return tuple(p for p in json_path.split(".") if p)


def text(value: Any) -> str:
    """A value as kubectl's JSONPath printer writes it."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dict | list):
        return orjson.dumps(value).decode()
    return "" if value is None else str(value)


# --- table ----------------------------------------------------------------------------


def _meta_doc(prop: str) -> str:
    return str(kube_definitions()[_OBJECT_META]["properties"].get(prop, {}).get("description", ""))


def _since(value: str, now: datetime) -> str:
    from corral.apiserver.tables import human_duration

    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return "<invalid>"
    return human_duration((now - t).total_seconds())


def _cell(col_type: str, value: Any, now: datetime) -> Any:
    """``cellForJSONValue`` (a string column prints any value as text)."""
    if value is None:
        return None
    if col_type == "string":
        return text(value)
    if col_type == "integer" and isinstance(value, int | float) and not isinstance(value, bool):
        return int(value)
    if col_type == "number" and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if col_type == "boolean" and isinstance(value, bool):
        return value
    if col_type == "date" and isinstance(value, str):
        return _since(value, now)
    return None


def printer_columns(version: Obj) -> list[dict[str, Any]]:
    """The version's additionalPrinterColumns, or upstream's default Age column."""
    cols = [c for c in version.get("additionalPrinterColumns") or [] if isinstance(c, dict)]
    if cols:
        return cols
    return [
        {
            "name": "Age",
            "type": "date",
            "description": _meta_doc("creationTimestamp"),
            "jsonPath": ".metadata.creationTimestamp",
        }
    ]


# --- strategy --------------------------------------------------------------------------------


def definition_name(group: str, version: str, kind: str) -> str:
    """Upstream's OpenAPI name of a custom kind: ``com.example.stable.v1.CronTab``."""
    return ".".join([*reversed(group.split(".")), version, kind])


@mypyc_attr(allow_interpreted_subclasses=True)  # one subclass per CRD version (strategy_for)
class CustomResourceStrategy(Strategy):
    """One served version of one CRD; ``strategy_for`` makes a subclass per version so
    the class-level facts (status subresource, definitions, field selectors) are set."""

    typed = False
    spec_fields: ClassVar[tuple[str, ...]] = ()

    def __init__(self, crd: Obj, version: Obj, structural: Any) -> None:
        spec = crd["spec"]
        self.group: str = spec["group"]
        self.kind: str = spec["names"]["kind"]
        self.plural: str = spec["names"]["plural"]
        self.namespaced = spec.get("scope") == "Namespaced"
        #: the CRD is being deleted: no new objects (upstream's crdHandler refuses them)
        self.terminating = bool(crd["metadata"].get("deletionTimestamp"))
        self.version_name: str = version["name"]
        self.schema = structural
        self._columns = printer_columns(version)
        self._paths = [parse_json_path(str(c.get("jsonPath", ""))) for c in self._columns]
        self._headers = [
            {
                "name": "Name",
                "type": "string",
                "format": "name",
                "description": _meta_doc("name"),
                "priority": 0,
            }
        ] + [
            {
                "name": c.get("name", ""),
                "type": c.get("type", ""),
                "format": c.get("format", ""),
                "description": c.get("description")
                or f"Custom resource definition column (in JSONPath format): {c.get('jsonPath', '')}",
                "priority": int(c.get("priority") or 0),
            }
            for c in self._columns
        ]

    # --- writes -----------------------------------------------------------------------
    def prune(self, obj: Obj) -> list[str]:
        if self.schema is None:
            return []
        return list(self.schema.prune(obj))

    def default(self, obj: Obj) -> None:
        if self.schema is not None:
            self.schema.default(obj)

    def prepare_for_create(self, obj: Obj) -> None:
        if self.terminating:
            raise errors.StatusError(
                405,
                errors.METHOD_NOT_ALLOWED,
                "create not allowed while custom resource definition is terminating",
                {"group": self.group, "kind": self.plural},
            )
        if self.has_status:
            obj.pop("status", None)
        obj["metadata"]["generation"] = 1

    def bump_generation(self, new: Obj, old: Obj) -> None:
        skip = ("metadata", "status") if self.has_status else ("metadata",)
        changed = {k: v for k, v in new.items() if k not in skip} != {
            k: v for k, v in old.items() if k not in skip
        }
        gen = old["metadata"].get("generation", 1)
        new["metadata"]["generation"] = gen + 1 if changed else gen

    def validate_metadata(self, obj: Obj, namespaced: bool) -> list[FieldError]:
        """Nothing here: ``validate`` checks metadata first, since its errors decide
        whether the CEL rules run (``prior``)."""
        return []

    def _checked(self, obj: Obj, old: Obj | None) -> list[FieldError]:
        meta = validate_object_meta(obj.get("metadata", {}), self.namespaced, self.name_format)
        if self.schema is None:
            return meta
        errs: list[FieldError] = self.schema.validate(obj, old, prior=meta)
        return meta + errs

    def validate(self, obj: Obj) -> list[FieldError]:
        return self._checked(obj, None)

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return self._checked(new, old)

    def validate_status_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return self._checked(new, old)

    # --- reads ------------------------------------------------------------------------
    def table_columns(self) -> list[dict[str, Any]] | None:
        return self._headers

    def table_row(self, obj: Obj, now: datetime) -> list[Any]:
        cells: list[Any] = [(obj.get("metadata") or {}).get("name", "")]
        for col, steps in zip(self._columns, self._paths, strict=True):
            found = eval_json_path(obj, steps) if steps is not None else []
            cells.append(_cell(str(col.get("type", "")), found[0], now) if found else None)
        return cells


def _definitions(
    group: str, version: str, kind: str, structural: Any
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The object and list definitions: those the store reads (merge keys, SSA: the
    schema as ``SchemaNode`` walks it), and those OpenAPI v3 and v2 publish (upstream's
    ``published_schema``: properties beside preserve-unknown-fields stay open)."""
    from corral.api.structural import published_schema

    name = definition_name(group, version, kind)
    gvk = {"group": group, "kind": kind, "version": version}
    if structural is not None:
        node: dict[str, Any] = dict(structural.node_schema())
    else:
        node = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    lists = _list_definition(name, kind, gvk)
    published = []
    for v2 in (False, True):
        raw = published_schema(structural.schema, v2, META_REF + "ObjectMeta") if structural else {}
        raw = {**(raw or {"type": "object"}), "x-kubernetes-group-version-kind": [gvk]}
        published.append({name: raw, **lists})
    props = dict(node.get("properties") or {})
    props["apiVersion"] = {"type": "string", "description": API_VERSION_DOC}
    props["kind"] = {"type": "string", "description": KIND_DOC}
    props["metadata"] = {
        "$ref": META_REF + "ObjectMeta",
        "description": "Standard object's metadata.",
    }
    node["properties"] = props
    node["x-kubernetes-group-version-kind"] = [gvk]
    return {name: node, **lists}, published[0], published[1]


def _list_definition(name: str, kind: str, gvk: dict[str, str]) -> dict[str, Any]:
    list_def = {
        "description": f"{kind}List is a list of {kind}",
        "type": "object",
        "properties": {
            "apiVersion": {"type": "string", "description": API_VERSION_DOC},
            "items": {
                "type": "array",
                "description": f"List of {kind.lower()}s. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md",
                "items": {"$ref": "#/$defs/" + name},
            },
            "kind": {"type": "string", "description": KIND_DOC},
            "metadata": {"$ref": META_REF + "ListMeta", "description": "Standard list metadata."},
        },
        "required": ["items"],
        "x-kubernetes-group-version-kind": [{**gvk, "kind": kind + "List"}],
    }
    return {name + "List": list_def}


def _selectable(json_path: str) -> Any:
    """The field function of one ``selectableFields`` entry: the value at
    ``json_path`` as text (``""`` when absent), what field selectors compare."""
    steps = parse_json_path(json_path) or []

    def read(obj: Obj) -> str:
        found = eval_json_path(obj, steps)
        return text(found[0]) if found else ""

    return read


def strategy_for(crd: Obj, version: Obj) -> CustomResourceStrategy:
    """The strategy of one served version of ``crd``."""
    from corral.api.structural import StructuralSchema

    spec = crd["spec"]
    raw = (version.get("schema") or {}).get("openAPIV3Schema")
    structural = StructuralSchema(raw) if isinstance(raw, dict) else None
    subs = version.get("subresources") or {}
    fields = {
        str(f["jsonPath"]).lstrip("."): _selectable(str(f["jsonPath"]))
        for f in version.get("selectableFields") or []
        if isinstance(f, dict) and f.get("jsonPath")
    }
    stored, published, published_v2 = _definitions(
        spec["group"], version["name"], spec["names"]["kind"], structural
    )
    attrs = {
        "has_status": isinstance(subs.get("status"), dict),
        "definitions": stored,
        "published_definitions": published,
        "published_definitions_v2": published_v2,
        "field_selectors": fields,
    }
    cls = type(f"{spec['names']['kind']}Strategy", (CustomResourceStrategy,), attrs)
    strategy: CustomResourceStrategy = cls(crd, version, structural)
    return strategy


def scale_access(version: Obj) -> ScaleAccess | None:
    """Where the scale subresource reads and writes, None when the version has none."""
    scale = (version.get("subresources") or {}).get("scale")
    if not isinstance(scale, dict):
        return None
    selector = scale.get("labelSelectorPath")
    return ScaleAccess(
        replicas_path=path_tuple(str(scale.get("specReplicasPath", ""))),
        status_replicas_path=path_tuple(str(scale.get("statusReplicasPath", ""))),
        selector_path=path_tuple(str(selector)) if selector else NO_PATH,
    )


class VersionConverter:
    """Objects of one CRD stored in its storage version, served in ``version``: only
    ``apiVersion`` changes (conversion strategy ``None``); what is read is pruned and
    defaulted by the served version's schema, as upstream does on read."""

    field_labels: ClassVar[dict[str, str]] = {}

    def __init__(
        self, storage_api_version: str, api_version: str, strategy: CustomResourceStrategy
    ) -> None:
        self.storage_api_version = storage_api_version
        self.api_version = api_version
        self.strategy = strategy
        #: (key, revision) -> converted JSON, oldest first (``raw``)
        self._raw: dict[tuple[str, int], bytes] = {}

    def to_storage(self, obj: Obj) -> Obj:
        return {**obj, "apiVersion": self.storage_api_version}

    def from_storage(self, obj: Obj) -> Obj:
        out: Obj = orjson.loads(orjson.dumps(obj))
        out["apiVersion"] = self.api_version
        self.strategy.prune(out)
        self.strategy.default(out)
        return out

    def raw(self, key: str, revision: int, obj: Callable[[], Obj]) -> bytes:
        """The JSON of one stored object version in this version's shape, converted
        once however many watchers and readers ask (``obj`` decodes it on a miss)."""
        k = (key, revision)
        hit = self._raw.get(k)
        if hit is None:
            hit = self._raw[k] = orjson.dumps(self.from_storage(obj()))
            if len(self._raw) > RAW_CACHE:
                del self._raw[next(iter(self._raw))]
        return hit
