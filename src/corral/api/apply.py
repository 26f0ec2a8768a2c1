"""Field ownership (``metadata.managedFields``) and server-side apply.

Called by the API server's write path: every create, update and non-apply patch calls
:func:`record_update` on the object about to be stored; an ``application/apply-patch+yaml``
PATCH calls :func:`server_side_apply` (with ``live=None`` when the object does not exist,
which creates it). :func:`fields_of` is the FieldsV1 encoder both use.

The model follows structured-merge-diff as the real apiserver runs it:

* a *field set* is a set of paths; a path is a tuple of FieldsV1 path elements:
  ``f:<name>`` for struct fields and map keys, ``k:{"name":"nginx"}`` for an item of an
  associative list (``x-kubernetes-list-type: map``, keys in sorted order, compact JSON),
  ``v:<json>`` for an item of a set, ``i:<n>`` otherwise. FieldsV1 is the same set as a
  tree, with ``".": {}`` marking a node that is a member and also has children;
* an *applier* owns exactly the fields of its last applied configuration (leaves, list
  items, empty maps, map keys - never the structs in between);
* an *updater* (operation ``Update``) gains what its write added or changed; a field that
  changes leaves every other manager's set, and a field removed leaves every set;
* apply merges the configuration into the live object by schema (associative lists by
  key, sets as unions, atomic lists and maps replaced), removes what the applier applied
  last time, dropped now, and nobody else owns, and fails with 409 when the change would
  take a field another manager owns (unless ``force``).

Managers are entries keyed by (manager, operation, apiVersion for updaters, subresource).
``apiVersion``/``kind``/``metadata.name``... are never recorded, nor ``status`` through
the main resource nor ``spec`` through ``/status``, as the real server's reset fields.

Cost: the hot writes (a kubelet status write, a Lease renewal) change values, not who owns
them. Comparing old and new skips equal subtrees, and a stored entry the write neither adds
to nor takes from is re-emitted from its FieldsV1 in one walk, never decoded into paths.
The bytes are those a full decode and re-encode would give (``_canonical``); a tree found
canonical is remembered by its JSON (bounded), so the walk is mostly a lookup. A create's
FieldsV1 is built straight from the object in order (``_update_tree``), a path set's from
its paths sorted once (``encode_fields``), and a comparison skips the field the
subresource resets and filters only the identity fields (``_comparison``).

Deliberate simplification: struct-typed nodes never get ``".": {}`` (the real server marks
pointer structs that a write creates, e.g. ``f:rollingUpdate``); it cannot tell Go pointer
structs from value structs from the OpenAPI schema. Maps and list items do get it.
"""

from __future__ import annotations

import copy
from collections.abc import Container, Iterable
from itertools import pairwise
from typing import Any

import orjson

from corral.api.errors import CONFLICT, StatusError, bad_request
from corral.api.schema import SchemaNode
from corral.util.jsontypes import NESTED

Path = tuple[str, ...]
PathSet = set[Path]

APPLY = "Apply"
UPDATE = "Update"
FIELDS_V1 = "FieldsV1"
FIELD_MANAGER_CONFLICT = "FieldManagerConflict"

# Never recorded in a field set (the fieldmanager's strip set).
_STRIPPED: frozenset[Path] = frozenset(
    {
        ("f:apiVersion",),
        ("f:kind",),
        ("f:metadata", "f:name"),
        ("f:metadata", "f:namespace"),
        ("f:metadata", "f:creationTimestamp"),
        ("f:metadata", "f:selfLink"),
        ("f:metadata", "f:uid"),
        ("f:metadata", "f:clusterName"),
        ("f:metadata", "f:generation"),
        ("f:metadata", "f:managedFields"),
        ("f:metadata", "f:resourceVersion"),
    }
)

_ABSENT: Any = object()


# --- path elements and shapes ------------------------------------------------------------


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def _child(node: SchemaNode | None, key: str) -> tuple[SchemaNode | None, bool]:
    """Schema under ``key`` and whether ``key`` is a named struct field."""
    if node is None or node.is_opaque:
        return None, False
    if node.is_object:
        child = node.field(key)
        return child, child is not None
    if node.is_map:
        return node.value(), False
    return None, False


def _shape(value: Any, node: SchemaNode | None) -> str:
    """``struct``, ``map`` (free-form or schemaless), ``listmap``, ``set`` or ``leaf``."""
    if isinstance(value, dict):
        if node is None or node.is_opaque:
            return "map"
        if node.map_type == "atomic":
            return "leaf"
        if node.is_object:
            return "struct"
        if node.is_map:
            return "map"
        return "leaf"
    if isinstance(value, list):
        if node is None or node.is_opaque or not node.is_list:
            return "leaf"
        list_type = node.list_type
        if list_type == "map" and node.list_map_keys:
            return "listmap"
        if list_type == "set":
            return "set"
        return "leaf"
    return "leaf"


#: schema defaults of list-map key fields: a key left out means its default (since
#: Kubernetes 1.21), so ``{port: 80}`` and ``{port: 80, protocol: TCP}`` are one item
_KEY_DEFAULTS = {"protocol": "TCP"}


def _item_pe(
    item: Any, index: int, node: SchemaNode, shape: str, names: list[str] | None = None
) -> str:
    """The path element of a list item; ``names``: ``sorted(node.list_map_keys)``, when
    the caller sorted them once for the whole list."""
    if shape == "set":
        return "v:" + _json(item)
    if isinstance(item, dict):
        keys = {}
        for k in sorted(node.list_map_keys) if names is None else names:
            if k in item:
                keys[k] = item[k]
            elif k in _KEY_DEFAULTS:
                keys[k] = _KEY_DEFAULTS[k]
        if keys:
            return "k:" + _json(keys)
    return f"i:{index}"


def _children(value: Any, node: SchemaNode | None, shape: str) -> list[tuple[str, Any, Any, bool]]:
    """(path element, child value, child schema, is named struct field) of a container."""
    out: list[tuple[str, Any, Any, bool]] = []
    if shape in ("struct", "map"):
        for key, child_value in value.items():
            child_node, named = _child(node, key)
            out.append(("f:" + key, child_value, child_node, named))
    elif shape in ("listmap", "set"):
        assert node is not None
        item_node = node.items()
        names = sorted(node.list_map_keys)
        for i, item in enumerate(value):
            out.append((_item_pe(item, i, node, shape, names), item, item_node, False))
    return out


# --- field sets <-> FieldsV1 -------------------------------------------------------------


def _to_set(value: Any, node: SchemaNode | None, path: Path, out: PathSet) -> None:
    """structured-merge-diff's ToFieldSet: leaves, list items, empty maps, map keys."""
    shape = _shape(value, node)
    if shape == "leaf":
        if path:
            out.add(path)
        return
    for pe, child_value, child_node, named in _children(value, node, shape):
        child_path = (*path, pe)
        _to_set(child_value, child_node, child_path, out)
        if shape in ("listmap", "set") or child_value is None or child_value == {} or not named:
            out.add(child_path)


def _reset_prefixes(subresource: str) -> tuple[Path, ...]:
    if subresource == "":
        return (("f:status",),)
    if subresource == "status":
        return (("f:spec",),)
    return ()


def _strip(paths: Iterable[Path], subresource: str) -> PathSet:
    # the reset prefixes are one element long: a path is reset when it starts with one
    if not paths:
        return set()
    resets = {r[0] for r in _reset_prefixes(subresource)}
    return {
        p
        for p in paths
        if not (p and p[0] in resets) and p not in _STRIPPED and p != ("f:metadata",)
    }


_RANK = {"f": 0, "k": 1, "v": 2, "i": 3}
#: heads whose FieldsV1 order is their string order (ranks 0-2 are in letter order, and
#: the rest of an element sorts as a string after its two-character head)
_STRING_ORDERED = frozenset({"f:", "k:", "v:"})


def _pe_sort_key(pe: str) -> tuple[int, str]:
    head = pe[:1]
    if head == "i":
        return 3, pe[2:].rjust(12, "0")
    return _RANK.get(head, 4), pe[2:]


def _sorted_pes(pes: Iterable[str]) -> list[str]:
    """``sorted(pes, key=_pe_sort_key)``: the plain string sort where that is the same
    (only ``f:``, ``k:`` and ``v:`` elements, no two of which tie), without a key call
    per element."""
    out = sorted(pes)
    for pe in out:
        if pe[:2] not in _STRING_ORDERED:
            return sorted(out, key=_pe_sort_key)
    return out


def encode_fields(paths: Iterable[Path]) -> dict[str, Any]:
    """Serialise a field set as FieldsV1 (``"."`` first, then elements in path order).

    Where every element is ``f:``, ``k:`` or ``v:``, FieldsV1 order is the plain tuple
    sort (a path before its extensions, siblings in string order): nodes are created in
    their final order, a member with children (the next path extends it) with its
    ``"."`` first, and nothing is sorted or copied afterwards."""
    ordered = sorted(paths if isinstance(paths, set | frozenset) else set(paths))
    count = len(ordered)
    tree: dict[str, Any] = {}
    for i, path in enumerate(ordered):
        if not path:
            continue
        cursor = tree
        for pe in path[:-1]:
            child = cursor.get(pe)
            if child is None:
                if pe[:2] not in _STRING_ORDERED:
                    return _encode_any(ordered)
                child = cursor[pe] = {}
            cursor = child
        last = path[-1]
        if last not in cursor:
            if last[:2] not in _STRING_ORDERED:
                return _encode_any(ordered)
            size = len(path)
            after = ordered[i + 1] if i + 1 < count else ()
            cursor[last] = {".": {}} if len(after) > size and after[:size] == path else {}
    return tree


def _encode_any(paths: Iterable[Path]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    members: set[int] = set()  # ids of the tree nodes that are members themselves
    for path in paths:
        cursor = tree
        for pe in path:
            child = cursor.get(pe)
            if child is None:
                child = cursor[pe] = {}
            cursor = child
        if path:
            members.add(id(cursor))
    return _order(tree, members, True)


def _order(tree: dict[str, Any], members: set[int], root: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if not root and tree and id(tree) in members:
        out["."] = {}
    for pe in _sorted_pes(tree) if len(tree) > 1 else tree:
        sub = tree[pe]
        out[pe] = _order(sub, members) if sub else {}  # a leaf is ``{}`` either way
    return out


def decode_fields(fields: Any, prefix: Path = ()) -> PathSet:
    """The set of paths a FieldsV1 tree holds."""
    out: PathSet = set()
    if not isinstance(fields, dict):
        return out
    for pe, sub in fields.items():
        if pe == ".":
            if prefix:
                out.add(prefix)
            continue
        path = (*prefix, pe)
        if not sub:
            out.add(path)
        else:
            out |= decode_fields(sub, path)
    return out


def _owns(fields: Any, path: Path) -> bool:
    """Whether ``path`` is in ``decode_fields(fields)``, without decoding it."""
    cursor = fields
    for pe in path[:-1]:
        cursor = cursor.get(pe) if isinstance(cursor, dict) else None
        if not cursor or not isinstance(cursor, dict):
            return False
    if not isinstance(cursor, dict) or path[-1] not in cursor:
        return False
    sub = cursor[path[-1]]
    return not sub or (isinstance(sub, dict) and "." in sub)


def _canonical(fields: Any) -> dict[str, Any] | None:
    """``encode_fields(decode_fields(fields))`` in one walk (a fresh tree), or None where
    the two could differ (path elements that sort alike: then take the long way)."""
    if not isinstance(fields, dict):
        return None
    return _canonical_children(fields)


def _canonical_children(node: dict[str, Any]) -> dict[str, Any] | None:
    out: dict[str, Any] = {}
    last = ""
    ordered = True  # already in FieldsV1 order (a stored tree mostly is: no sort needed)
    for pe, sub in node.items():
        if pe == ".":
            continue
        if not sub:
            value: dict[str, Any] = {}
        elif isinstance(sub, dict):
            children = _canonical_children(sub)
            if children is None:
                return None
            if children:
                value = {".": {}, **children} if "." in sub else children
            elif "." in sub:
                value = {}
            else:
                continue
        else:
            continue
        if ordered and out and not (last[:2] == pe[:2] and pe[:1] != "i" and last < pe):
            ordered = False
        out[pe] = value
        last = pe
    if ordered:
        return out
    keys = sorted(out, key=_pe_sort_key)
    if any(_pe_sort_key(a) == _pe_sort_key(b) for a, b in pairwise(keys)):
        return None
    return {pe: out[pe] for pe in keys}


def _canonical_as_is(node: dict[str, Any], inner: bool) -> bool:
    """Whether ``_canonical`` gives ``node`` back as it is (the same keys in the same
    order all through), checked without building anything. ``inner``: a node under the
    root, which may start with ``"."`` and must hold more than that."""
    last: str | None = None  # the last element before ``pe``
    for pe, sub in node.items():
        if type(sub) is not dict:
            return False  # dropped or turned into ``{}``
        if pe == ".":
            if not inner or last is not None or sub:
                return False
            continue
        if sub and not _canonical_as_is(sub, True):
            return False
        if last is not None and not (last[:2] == pe[:2] and pe[:1] != "i" and last < pe):
            return False
        last = pe
    return last is not None or not inner


#: stored FieldsV1 found canonical, by their JSON (the same JSON, the same answer): a
#: manager's tree comes back unchanged on most writes of an object, and objects of one
#: shape share theirs; bounded, emptied when full
_CANONICAL_SEEN: dict[bytes, None] = {}
_CANONICAL_SEEN_MAX = 8192


def _is_canonical(source: dict[str, Any]) -> bool:
    """``_canonical_as_is(source, False)``, remembered for the trees that are."""
    try:
        key = orjson.dumps(source)
    except TypeError:
        return _canonical_as_is(source, False)
    if key in _CANONICAL_SEEN:
        return True
    if not _canonical_as_is(source, False):
        return False
    if len(_CANONICAL_SEEN) >= _CANONICAL_SEEN_MAX:
        _CANONICAL_SEEN.clear()
    _CANONICAL_SEEN[key] = None
    return True


def fields_of(obj: Any, node: SchemaNode | None, subresource: str = "") -> dict[str, Any]:
    """The FieldsV1 an applier of ``obj`` owns (identity and reset fields left out)."""
    paths: PathSet = set()
    _to_set(obj, node, (), paths)
    return encode_fields(_strip(paths, subresource))


# --- comparison --------------------------------------------------------------------------


class _Comparison:
    """The paths added, modified and removed from one object to the next."""

    __slots__ = ("added", "modified", "removed")

    def __init__(self) -> None:
        self.added: PathSet = set()
        self.modified: PathSet = set()
        self.removed: PathSet = set()

    def changed(self) -> PathSet:
        return self.added | self.modified

    def is_same(self) -> bool:
        return not (self.added or self.modified or self.removed)


#: types whose equal values (``==``, same type) have the same JSON (not float: -0.0 == 0.0)
_PLAIN = frozenset({str, int, bool, type(None)})


def _equal(a: Any, b: Any) -> bool:
    kind = type(a)
    if kind is type(b) and kind in _PLAIN:
        return bool(a == b)
    return orjson.dumps(a, option=orjson.OPT_SORT_KEYS) == orjson.dumps(
        b, option=orjson.OPT_SORT_KEYS
    )


def _marks_self(shape: str, path: Path) -> bool:
    return bool(path) and (shape == "map" or path[-1][:2] in ("k:", "v:", "i:"))


def _one_sided(value: Any, node: SchemaNode | None, path: Path, into: PathSet) -> None:
    shape = _shape(value, node)
    if shape == "leaf":
        if path:
            into.add(path)
        return
    # A map marks itself; so does an empty struct or list, which structured-merge-diff's
    # comparison takes for a leaf when the other side is empty or absent too (a create's
    # ``securityContext: {}`` is its updater's ``f:securityContext``).
    if _marks_self(shape, path) or (path and not value):
        into.add(path)
    if shape in ("struct", "map"):  # the children of ``_children``, without building them
        for key, child_value in value.items():
            if isinstance(child_value, NESTED):
                _one_sided(child_value, _child(node, key)[0], (*path, "f:" + key), into)
            else:  # a scalar is a leaf whatever its schema
                into.add((*path, "f:" + key))
        return
    assert node is not None  # a listmap or a set has a schema
    item_node = node.items()
    names = sorted(node.list_map_keys)
    for i, item in enumerate(value):
        item_path = (*path, _item_pe(item, i, node, shape, names))
        into.add(item_path)  # a list item marks itself (``_marks_self``)
        if isinstance(item, NESTED):
            _one_sided(item, item_node, item_path, into)


def _compare(old: Any, new: Any, node: SchemaNode | None, path: Path, cmp: _Comparison) -> None:
    if old is new:  # both absent, or one value shared (a status write keeps the spec)
        return
    if old is _ABSENT:
        _one_sided(new, node, path, cmp.added)
        return
    if new is _ABSENT:
        removed: PathSet = set()
        _one_sided(old, node, path, removed)
        cmp.removed |= removed
        if path:
            cmp.removed.add(path)
        return
    old_shape, new_shape = _shape(old, node), _shape(new, node)
    if old_shape != new_shape or old_shape == "leaf":
        if not _equal(old, new) and path:
            cmp.modified.add(path)
        return
    # An unchanged subtree adds nothing: ``==`` (C, stops at the first difference) finds
    # it, ``_equal`` rules out what ``==`` does not tell apart (1, 1.0 and true).
    if old == new and _equal(old, new):
        return
    if old_shape in ("struct", "map"):
        _compare_fields(old, new, node, path, cmp)
        return
    old_children = {pe: (v, n) for pe, v, n, _f in _children(old, node, old_shape)}
    new_children = {pe: (v, n) for pe, v, n, _f in _children(new, node, new_shape)}
    for pe, (value, child_node) in new_children.items():
        was = old_children.get(pe)
        _compare(_ABSENT if was is None else was[0], value, child_node, (*path, pe), cmp)
    for pe, (value, child_node) in old_children.items():
        if pe not in new_children:
            _compare(value, _ABSENT, child_node, (*path, pe), cmp)


def _compare_fields(
    old: dict[str, Any],
    new: dict[str, Any],
    node: SchemaNode | None,
    path: Path,
    cmp: _Comparison,
    skip: Container[str] = (),
) -> None:
    """``_compare`` of two struct or map values, child by child (the children of
    ``_children``, without building them), leaving out the keys ``skip``."""
    for key, value in new.items():
        if key in skip:
            continue
        was = old.get(key, _ABSENT)
        if was is not value:
            kind = type(value)
            if kind is type(was) and kind in _PLAIN:  # two leaves: ``_equal`` is ``==``
                if was != value:
                    cmp.modified.add((*path, "f:" + key))
                continue
            _compare(was, value, _child(node, key)[0], (*path, "f:" + key), cmp)
    for key, was in old.items():
        if key not in new and key not in skip:
            _compare(was, _ABSENT, _child(node, key)[0], (*path, "f:" + key), cmp)


#: the top-level keys ``_comparison`` walks apart (``_IDENTITY``) or not at all (the
#: field a subresource resets), by subresource
_IDENTITY = frozenset({"apiVersion", "kind", "metadata"})
_SKIPPED = {
    "": _IDENTITY | {"status"},
    "status": _IDENTITY | {"spec"},
}
_MANAGED = ("managedFields",)


def _unmanaged_meta(meta: Any) -> Any:
    if isinstance(meta, dict) and "managedFields" in meta:
        return {k: v for k, v in meta.items() if k != "managedFields"}
    return meta


def _without_managed(obj: dict[str, Any] | None) -> dict[str, Any]:
    if obj is None:
        return {}
    out = dict(obj)
    meta = out.get("metadata")
    if isinstance(meta, dict) and "managedFields" in meta:
        out["metadata"] = {k: v for k, v in meta.items() if k != "managedFields"}
    return out


def _comparison(
    old: dict[str, Any] | None, new: dict[str, Any], node: SchemaNode | None, subresource: str
) -> _Comparison:
    """What changed from ``old`` to ``new``, managedFields left out: ``_compare`` of the
    two without their managedFields, walked in place rather than over copies (a
    Lease renewal or a status write compares a few fields of a small object, where the
    copies and the whole-metadata equality check cost as much as the walk).

    Of an object, the top-level field a subresource resets is not walked (all of it is
    stripped), and only the paths under ``apiVersion``, ``kind`` and ``metadata`` can be
    in ``_STRIPPED``: those are compared apart and stripped, the rest need no filter."""
    cmp = _Comparison()
    before = {} if old is None else old
    if _shape(new, node) in ("struct", "map"):  # an object of a kind: always
        _compare_fields(before, new, node, (), cmp, _SKIPPED.get(subresource, _IDENTITY))
        ident = _Comparison()  # what may hold stripped paths
        for key in ("apiVersion", "kind"):
            was, now = before.get(key, _ABSENT), new.get(key, _ABSENT)
            if was is now or (type(was) is str and type(now) is str and was == now):
                continue  # the usual: the same apiVersion and kind
            _compare(was, now, _child(node, key)[0], ("f:" + key,), ident)
        was, meta = before.get("metadata", _ABSENT), new.get("metadata", _ABSENT)
        if was is not meta:
            meta_node = _child(node, "metadata")[0]
            if (
                isinstance(was, dict)
                and isinstance(meta, dict)
                and _shape(meta, meta_node) in ("struct", "map")
            ):
                _compare_fields(was, meta, meta_node, ("f:metadata",), ident, _MANAGED)
            else:
                _compare(
                    _unmanaged_meta(was), _unmanaged_meta(meta), meta_node, ("f:metadata",), ident
                )
        if ident.added:
            cmp.added |= _strip(ident.added, subresource)
        if ident.modified:
            cmp.modified |= _strip(ident.modified, subresource)
        if ident.removed:
            cmp.removed |= _strip(ident.removed, subresource)
        return cmp
    _compare(_without_managed(old), _without_managed(new), node, (), cmp)
    cmp.added = _strip(cmp.added, subresource)
    cmp.modified = _strip(cmp.modified, subresource)
    cmp.removed = _strip(cmp.removed, subresource)
    return cmp


# --- managedFields entries ---------------------------------------------------------------


class _Manager:
    """One managedFields entry. ``fields`` is decoded from the stored FieldsV1 (``source``)
    on first use: a write that neither adds to nor takes from a manager's set (a kubelet
    status write, a Lease renewal) re-emits its FieldsV1 without building the path set."""

    __slots__ = ("_fields", "api_version", "manager", "operation", "source", "subresource", "time")

    def __init__(
        self,
        manager: str,
        operation: str,
        api_version: str,
        subresource: str,
        time: str | None,
        fields: PathSet | None,
        source: Any = None,
    ) -> None:
        self.manager = manager
        self.operation = operation
        self.api_version = api_version
        self.subresource = subresource
        self.time = time
        self._fields = fields
        self.source = source

    @property
    def fields(self) -> PathSet:
        if self._fields is None:
            self._fields = decode_fields(self.source)
        return self._fields

    @fields.setter
    def fields(self, value: PathSet) -> None:
        self._fields = value

    def discard(self, paths: PathSet) -> None:
        """Give up ``paths`` (a stored set holding none of them stays undecoded)."""
        if not paths:
            return
        if self._fields is None:
            source = self.source
            if not isinstance(source, dict):
                return  # owns nothing
            # most writes change fields under one or two top-level elements, which the
            # other managers (a status writer's spec owner) often have none of
            if {p[0] for p in paths if p}.isdisjoint(source):
                return
            if not any(_owns(source, p) for p in paths):
                return
        self.fields -= paths

    def include(self, paths: PathSet) -> None:
        """Take ``paths`` (a stored set holding all of them stays undecoded)."""
        if self._fields is not None or not all(_owns(self.source, p) for p in paths):
            self.fields |= paths

    def fields_v1(self) -> dict[str, Any]:
        """``encode_fields(self.fields)``; straight from ``source`` while undecoded: the
        stored tree itself when it is canonical already (as the server writes them)."""
        if self._fields is None:
            source = self.source
            if isinstance(source, dict) and _is_canonical(source):
                return source
            tree = _canonical(source)
            if tree is not None:
                return tree
        return encode_fields(self.fields)

    @property
    def identity(self) -> tuple[str, str, str, str]:
        version = self.api_version if self.operation == UPDATE else ""
        return (self.manager, self.operation, version, self.subresource)

    @property
    def identifier(self) -> str:
        """The JSON identifier structured-merge-diff sorts managers by."""
        ident: dict[str, str] = {"manager": self.manager, "operation": self.operation}
        if self.operation == UPDATE:
            ident["apiVersion"] = self.api_version
        if self.subresource:
            ident["subresource"] = self.subresource
        return _json(ident)

    def printed(self) -> str:
        text = _json(self.manager)
        if self.subresource:
            text += f" with subresource {_json(self.subresource)}"
        if self.operation == UPDATE:
            text += f" using {self.api_version}"
        return text

    def entry(self, fields_v1: dict[str, Any]) -> dict[str, Any]:
        """The managedFields entry, with ``fields_v1`` (this manager's ``fields_v1()``)."""
        out: dict[str, Any] = {
            "manager": self.manager,
            "operation": self.operation,
            "apiVersion": self.api_version,
        }
        if self.time is not None:
            out["time"] = self.time
        out["fieldsType"] = FIELDS_V1
        out["fieldsV1"] = fields_v1
        if self.subresource:
            out["subresource"] = self.subresource
        return out


def _decode_managers(entries: Any) -> dict[tuple[str, str, str, str], _Manager]:
    out: dict[tuple[str, str, str, str], _Manager] = {}
    if not isinstance(entries, list):
        return out
    for e in entries:
        if not isinstance(e, dict) or (not e.get("manager") and not e.get("operation")):
            continue
        m = _Manager(
            manager=str(e.get("manager", "")),
            operation=str(e.get("operation", UPDATE)),
            api_version=str(e.get("apiVersion", "")),
            subresource=str(e.get("subresource", "")),
            time=e.get("time"),
            fields=None,
            source=e.get("fieldsV1"),
        )
        out[m.identity] = m
    return out


def _managed_of(obj: dict[str, Any] | None) -> Any:
    if obj is None:
        return None
    meta = obj.get("metadata")
    return meta.get("managedFields") if isinstance(meta, dict) else None


def _store(obj: dict[str, Any], managers: Iterable[_Manager], keep: _Manager | None = None) -> None:
    """Write ``managers`` as ``obj``'s managedFields, in structured-merge-diff's order; a
    manager that owns nothing is left out (unless it is ``keep``)."""
    kept: list[tuple[_Manager, dict[str, Any]]] = []
    for m in managers:
        tree = m.fields_v1()
        if tree or m is keep:  # FieldsV1 is empty exactly when the set is
            kept.append((m, tree))
    kept.sort(
        key=lambda k: (
            k[0].operation,
            k[0].time or "",
            k[0].manager,
            k[0].api_version,
            k[0].subresource,
        )
    )
    meta = obj.setdefault("metadata", {})
    if kept:
        meta["managedFields"] = [m.entry(tree) for m, tree in kept]
    else:
        meta.pop("managedFields", None)


def _current_managers(
    live_new: dict[str, Any], live_old: dict[str, Any] | None, subresource: str
) -> dict[tuple[str, str, str, str], _Manager]:
    """The managers before this write (``decodeLiveOrNew``): the request's managedFields when
    it carries some (``[{}]`` resets them), else the live object's."""
    if subresource:
        return _decode_managers(_managed_of(live_old))
    requested = _managed_of(live_new)
    if requested == [{}]:
        return {}
    if isinstance(requested, list) and requested:
        decoded = _decode_managers(requested)
        if decoded:
            return decoded
    return _decode_managers(_managed_of(live_old))


def record_update(
    live_new: dict[str, Any],
    live_old: dict[str, Any] | None,
    manager: str,
    api_version: str,
    now: str,
    node: SchemaNode | None,
    subresource: str = "",
) -> None:
    """Record a non-apply write (operation ``Update``) in ``live_new``'s managedFields.

    ``live_old`` is the stored object (``None`` on create). Mutates only
    ``live_new["metadata"]["managedFields"]``.
    """
    if live_old is None and not _managed_of(live_new):
        # Create: the updater owns everything it wrote; build FieldsV1 in one walk.
        tree = _created_fields(live_new, node, subresource)
        meta = live_new.setdefault("metadata", {})
        if tree:
            entry: dict[str, Any] = {
                "manager": manager,
                "operation": UPDATE,
                "apiVersion": api_version,
                "time": now,
                "fieldsType": FIELDS_V1,
                "fieldsV1": tree,
            }
            if subresource:
                entry["subresource"] = subresource
            meta["managedFields"] = [entry]
        else:
            meta.pop("managedFields", None)
        return
    managers = _current_managers(live_new, live_old, subresource)
    cmp = _comparison(live_old, live_new, node, subresource)
    changed = cmp.changed()
    me = _Manager(manager, UPDATE, api_version, subresource, now, set())
    lost = changed | cmp.removed
    for ident, other in list(managers.items()):
        if ident == me.identity:
            continue
        other.discard(lost)
    previous = managers.get(me.identity)
    if previous is not None:
        previous.discard(cmp.removed)
        if changed:
            previous.include(changed)
            previous.time = now
            previous.api_version = api_version
    elif changed:
        me.fields = changed  # a fresh set (``changed()``), not used after
        managers[me.identity] = me
    _store(live_new, managers.values())


def _update_tree(value: Any, node: SchemaNode | None, shape: str) -> dict[str, Any]:
    """FieldsV1 of everything under a container, with the updater's membership rules
    (leaves, map nodes and list items are members; structs only through their fields)."""
    if shape in ("struct", "map"):  # ``"f:" + key`` sort as their keys: build in order
        out: dict[str, Any] = {}
        for key in sorted(value):
            child_value = value[key]
            if not isinstance(child_value, NESTED):  # a scalar is a leaf
                out["f:" + key] = {}
                continue
            child_node = _child(node, key)[0]
            child_shape = _shape(child_value, child_node)
            if child_shape == "leaf":
                out["f:" + key] = {}
                continue
            sub = _update_tree(child_value, child_node, child_shape)
            if child_shape == "map":
                out["f:" + key] = {".": {}, **sub} if sub else {}
            elif sub or not child_value:  # an empty struct or list is a leaf (_one_sided)
                out["f:" + key] = sub
        return out
    items: list[tuple[str, dict[str, Any]]] = []
    for pe, child_value, child_node, _named in _children(value, node, shape):
        child_shape = _shape(child_value, child_node)
        if child_shape == "leaf":
            items.append((pe, {}))
            continue
        sub = _update_tree(child_value, child_node, child_shape)
        member = child_shape == "map" or pe[:2] in ("k:", "v:", "i:")
        if member:
            items.append((pe, {".": {}, **sub} if sub else {}))
        elif sub:
            items.append((pe, sub))
    if any(pe[0] == "i" for pe, _ in items):
        items.sort(key=lambda item: _pe_sort_key(item[0]))
    else:
        items.sort()  # "f:" < "k:" < "v:" already sort as FieldsV1 orders them
    return dict(items)


def _created_fields(
    obj: dict[str, Any], node: SchemaNode | None, subresource: str
) -> dict[str, Any]:
    """What a create's updater owns: ``_one_sided`` over the new object, then stripped."""
    tree = _update_tree(_without_managed(obj), node, _shape(obj, node))
    for path in _STRIPPED:
        parent = tree
        for pe in path[:-1]:
            parent = parent.get(pe, {})
        parent.pop(path[-1], None)
    for reset in _reset_prefixes(subresource):
        tree.pop(reset[0], None)
    if not tree.get("f:metadata"):
        tree.pop("f:metadata", None)
    return tree


# --- server-side apply -------------------------------------------------------------------


def _merge(live: Any, config: Any, node: SchemaNode | None) -> Any:
    """Typed merge of an applied configuration into a live value (copies, never aliases)."""
    if live is _ABSENT or live is None:
        return _drop_nulls(copy.deepcopy(config))
    shape = _shape(config, node)
    if shape != _shape(live, node) or shape == "leaf":
        return _drop_nulls(copy.deepcopy(config))
    if shape in ("struct", "map"):
        out = dict(live)
        for key, value in config.items():
            if value is None:
                out.pop(key, None)
                continue
            child_node, _named = _child(node, key)
            out[key] = _merge(live.get(key, _ABSENT), value, child_node)
        return out
    return _merge_list(live, config, node, shape)


def _drop_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_nulls(v) for v in value]
    return value


def _merge_list(
    live: list[Any], config: list[Any], node: SchemaNode | None, shape: str
) -> list[Any]:
    """Merge associative lists/sets keeping the config's order for shared items and live-only
    items where they were (structured-merge-diff's interleaving)."""
    assert node is not None
    item_node = node.items()
    lhs = [(_item_pe(v, i, node, shape), v) for i, v in enumerate(live)]
    rhs = [(_item_pe(v, i, node, shape), v) for i, v in enumerate(config)]
    lhs_map = dict(lhs)
    rhs_map = dict(rhs)
    shared = [pe for pe, _v in rhs if pe in lhs_map]
    out: list[Any] = []
    merged: set[str] = set()
    li = ri = si = 0

    def take(pe: str) -> None:
        nonlocal si
        merged.add(pe)
        out.append(_merge(lhs_map.get(pe, _ABSENT), rhs_map[pe], item_node))
        if si < len(shared) and shared[si] == pe:
            si += 1

    while li < len(lhs) or ri < len(rhs):
        if li < len(lhs) and ri < len(rhs):
            pe = lhs[li][0]
            if pe == rhs[ri][0]:
                take(pe)
                li += 1
                ri += 1
                continue
            if pe in rhs_map and si < len(shared) and shared[si] != pe:
                li += 1
                continue
        if li < len(lhs):
            pe, value = lhs[li]
            if pe not in rhs_map:
                out.append(copy.deepcopy(value))
                li += 1
                continue
            if pe in merged:
                li += 1
                continue
        if ri < len(rhs):
            pe = rhs[ri][0]
            if pe not in merged:
                take(pe)
            ri += 1
        elif li < len(lhs):
            li += 1
    return out


def _prefixes(paths: PathSet) -> PathSet:
    return {p[:i] for p in paths for i in range(1, len(p))}


def _prune(
    value: Any,
    node: SchemaNode | None,
    path: Path,
    last: PathSet,
    last_pre: PathSet,
    owned: PathSet,
    owned_pre: PathSet,
) -> Any:
    """Remove what the applier owned last time and nobody owns now (struct fields count as
    owned when something beneath them is, structured-merge-diff's named-field rule)."""
    shape = _shape(value, node)
    if shape == "leaf":
        return value
    kept: list[tuple[str, Any]] = []
    for pe, child_value, child_node, named in _children(value, node, shape):
        child_path = (*path, pe)
        in_last = child_path in last or (named and child_path in last_pre)
        in_owned = child_path in owned or (named and child_path in owned_pre)
        if in_last and not in_owned:
            continue
        if child_path in last_pre:
            child_value = _prune(
                child_value, child_node, child_path, last, last_pre, owned, owned_pre
            )
        kept.append((pe, child_value))
    if shape in ("struct", "map"):
        return {pe[2:]: v for pe, v in kept}
    return [v for _pe, v in kept]


def _conflict_error(conflicts: list[tuple[_Manager, Path]]) -> StatusError:
    causes = [
        {
            "reason": FIELD_MANAGER_CONFLICT,
            "message": f"conflict with {m.printed()}",
            "field": _path_string(p),
        }
        for m, p in conflicts
    ]
    if len(conflicts) == 1:
        m, p = conflicts[0]
        message = f"Apply failed with 1 conflict: conflict with {m.printed()}: {_path_string(p)}"
    else:
        lines: list[str] = []
        by_manager: dict[str, tuple[_Manager, list[Path]]] = {}
        for m, p in conflicts:
            by_manager.setdefault(m.identifier, (m, []))[1].append(p)
        for ident in sorted(by_manager):
            m, paths = by_manager[ident]
            lines.append(f"conflicts with {m.printed()}:")
            lines.extend(f"- {_path_string(p)}" for p in paths)
        message = f"Apply failed with {len(conflicts)} conflicts: " + "\n".join(lines)
    return StatusError(409, CONFLICT, message, {"causes": causes})


def _value_string(value: Any) -> str:
    if isinstance(value, str):
        return _json(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    return _json(value)


def _path_string(path: Path) -> str:
    """``fieldpath.Path.String()``: ``.spec.containers[name="nginx"].image``."""
    out = ""
    for pe in path:
        kind, rest = pe[:1], pe[2:]
        if kind == "f":
            out += "." + rest
        elif kind == "k":
            keys = orjson.loads(rest)
            out += "[" + ",".join(f"{k}={_value_string(v)}" for k, v in keys.items()) + "]"
        elif kind == "v":
            out += f"[={_value_string(orjson.loads(rest))}]"
        else:
            out += f"[{rest}]"
    return out


def _sorted_paths(paths: PathSet) -> list[Path]:
    """Set iteration order: at each level, members first, then children, each sorted."""
    out: list[Path] = []

    def walk(prefix: Path) -> None:
        level = {
            p[len(prefix)]
            for p in paths | _prefixes(paths)
            if p[: len(prefix)] == prefix and len(p) > len(prefix)
        }
        ordered = sorted(level, key=_pe_sort_key)
        for pe in ordered:
            if (*prefix, pe) in paths:
                out.append((*prefix, pe))
        for pe in ordered:
            child = (*prefix, pe)
            if any(len(p) > len(child) and p[: len(child)] == child for p in paths):
                walk(child)

    walk(())
    return out


def server_side_apply(
    live: dict[str, Any] | None,
    applied: dict[str, Any],
    manager: str,
    api_version: str,
    force: bool,
    now: str,
    node: SchemaNode | None,
    subresource: str = "",
) -> dict[str, Any]:
    """Apply ``applied`` (the decoded apply-patch body) for ``manager``; return the new object.

    ``live`` is the stored object, ``None`` to create. Raises 409 Conflict listing the fields
    other managers own and this apply would change, unless ``force``; then they move to the
    applier. Never mutates its inputs.
    """
    applied_meta = applied.get("metadata")
    if isinstance(applied_meta, dict) and applied_meta.get("managedFields") is not None:
        raise bad_request("metadata.managedFields must be nil")
    patch_version = applied.get("apiVersion", "")
    if patch_version != api_version:
        raise bad_request(
            "Incorrect version specified in apply patch. "
            f"Specified patch version: {patch_version}, expected: {api_version}"
        )

    managers = _decode_managers(_managed_of(live))
    base = _without_managed(live)
    me = _Manager(manager, APPLY, api_version, subresource, now, set())
    previous = managers.get(me.identity)

    full_set: PathSet = set()
    _to_set(applied, node, (), full_set)
    merged = (
        _merge(base, applied, node) if live is not None else _drop_nulls(copy.deepcopy(applied))
    )

    if previous is not None and previous.fields:
        owned = set(full_set)
        for ident, m in managers.items():
            if ident != me.identity:
                owned |= m.fields
        merged = _prune(
            merged, node, (), previous.fields, _prefixes(previous.fields), owned, _prefixes(owned)
        )

    cmp = _comparison(base, merged, node, subresource)
    changed = cmp.changed()
    conflicts: list[tuple[_Manager, Path]] = []
    for ident in sorted(managers, key=lambda i: managers[i].identifier):
        if ident == me.identity:
            continue
        other = managers[ident]
        conflicts.extend((other, p) for p in _sorted_paths(other.fields & changed))
    if conflicts and not force:
        raise _conflict_error(conflicts)

    for ident, other in managers.items():
        if ident == me.identity:
            continue
        other.fields -= changed
        other.fields -= cmp.removed

    me.fields = _strip(full_set, subresource)
    if previous is not None and cmp.is_same():
        me.time = previous.time
    managers[me.identity] = me
    result: dict[str, Any] = merged
    _store(result, managers.values(), keep=me)
    return result
