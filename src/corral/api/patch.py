"""The three PATCH body formats Kubernetes accepts besides server-side apply.

Called by the API server's PATCH handler (and by anything that needs to apply a patch to a
plain-dict object): :func:`json_patch` (RFC 6902, ``application/json-patch+json``),
:func:`merge_patch` (RFC 7386, ``application/merge-patch+json``) and
:func:`strategic_merge_patch` (``application/strategic-merge-patch+json``, the format
``kubectl apply``/``edit``/``patch``/``set`` send).

All three are pure: they never mutate their inputs and return a new document. A caller
that will not change ``doc`` or the result's untouched parts (the API server's: a decode
of the stored object) passes ``owned=True`` to skip copying ``doc``: the two merge patches
then build copy-on-write, sharing the values the patch leaves alone with ``doc`` and
copying only the maps on the way to a change, so ``doc`` stays as it was (the store then
uses one decode as both the stored object and the patch's base). Failures raise
:class:`~corral.api.errors.StatusError` with the code, reason and wording the real apiserver
uses (``k8s.io/apiserver/pkg/endpoints/handlers/patch.go``):

* a JSON patch body that does not decode as a list of operations -> 400 BadRequest with the
  decoder's message; a patch that fails to apply (missing path, failed ``test``...) -> 422
  Invalid with the generic "the server rejected our request due to an error in our request"
  (the server hides the underlying error);
* a merge patch that is not a JSON object -> 400 ``Invalid JSON Patch``;
* strategic merge patch: malformed directives -> 400 with the ``mergepatch`` sentinel
  messages, lists of lists -> 422 generic, other malformed patches (unknown ``$patch``
  value, list element without its merge key) -> 500 with reason unset, as the real server
  answers for errors that are not API statuses.

Strategic merge patch is driven by the schema (:class:`~corral.api.schema.SchemaNode`):
``x-kubernetes-patch-strategy`` / ``x-kubernetes-patch-merge-key`` on a list decide whether
it merges by key (containers by ``name``), merges as a set of primitives (finalizers) or is
replaced whole. Where the schema is unknown it degrades to a JSON merge patch. Semantics
follow the SIG API Machinery document "Strategic Merge Patch" and the ordering rules of the
"preserve order in strategic merge patch" proposal: ``$setElementOrder`` wins, then the
order in the patch list, then the order in the live list.
"""

from __future__ import annotations

from typing import Any

import jsonpatch

from corral.api.errors import BAD_REQUEST, INVALID, StatusError, bad_request
from corral.api.schema import SchemaNode
from corral.util.jsontypes import NUMBER

DIRECTIVE = "$patch"
RETAIN_KEYS = "$retainKeys"
DELETE_FROM_PRIMITIVE_LIST = "$deleteFromPrimitiveList/"
SET_ELEMENT_ORDER = "$setElementOrder/"

REPLACE = "replace"
MERGE = "merge"
DELETE = "delete"

# mergepatch sentinel errors (k8s.io/apimachinery/pkg/util/mergepatch/errors.go).
ERR_BAD_PATCH_FORMAT_PRIMITIVE_LIST = "invalid patch format of primitive list"
ERR_BAD_PATCH_FORMAT_RETAIN_KEYS = "invalid patch format of retainKeys"
ERR_BAD_PATCH_FORMAT_SET_ELEMENT_ORDER = "invalid patch type of setElementOrder list"
ERR_NO_LIST_OF_LISTS = "lists of lists are not supported"

UNPROCESSABLE = "the server rejected our request due to an error in our request"
INVALID_JSON_PATCH = "Invalid JSON Patch"


def _unprocessable() -> StatusError:
    """422 as built by ``NewGenericServerResponse``: generic message, empty details."""
    return StatusError(422, INVALID, UNPROCESSABLE, {})


def _not_a_status(message: str) -> StatusError:
    """500 for a plain Go error reaching the handler (reason ``StatusReasonUnknown``)."""
    return StatusError(500, "", message)


def _go_type(value: Any) -> str:
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, NUMBER):
        return "number"
    return "string"


def _go_repr(value: Any) -> str:
    """A rough rendering of Go's ``%v`` for decoded JSON (``map[k:v]``, ``[a b]``)."""
    if isinstance(value, dict):
        inner = " ".join(f"{k}:{_go_repr(v)}" for k, v in sorted(value.items()))
        return f"map[{inner}]"
    if isinstance(value, list):
        return "[" + " ".join(_go_repr(v) for v in value) + "]"
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# --- RFC 6902 ---------------------------------------------------------------------------


def json_patch(doc: dict[str, Any], ops: Any) -> dict[str, Any]:
    """Apply an RFC 6902 JSON patch (already decoded from JSON) to a copy of ``doc``."""
    if ops is None:  # Go decodes ``null`` into an empty patch
        copied: dict[str, Any] = clone(doc)
        return copied
    if not isinstance(ops, list):
        raise bad_request(
            f"json: cannot unmarshal {_go_type(ops)} into Go value of type jsonpatch.Patch"
        )
    for op in ops:
        if op is not None and not isinstance(op, dict):
            raise bad_request(
                f"json: cannot unmarshal {_go_type(op)} into Go value of type jsonpatch.Operation"
            )
    try:
        result = jsonpatch.JsonPatch(ops).apply(doc, in_place=False)
    except Exception as exc:  # any failure to apply is the same 422 on the wire
        raise _unprocessable() from exc
    if not isinstance(result, dict):
        raise _unprocessable()
    return result


# --- RFC 7386 ---------------------------------------------------------------------------


def clone(value: Any) -> Any:
    """A deep copy of decoded JSON: ``copy.deepcopy`` without its memo (JSON has no
    shared references to keep), several times faster."""
    if isinstance(value, dict):
        return {k: clone(v) for k, v in value.items()}
    if isinstance(value, list):
        return [clone(v) for v in value]
    return value


def _merge_patch_value(target: Any, patch: Any) -> Any:
    """``target`` merged with ``patch``; ``target`` is not changed (touched maps are
    copied), its untouched values are shared."""
    if not isinstance(patch, dict):
        return clone(patch)
    out: dict[str, Any] = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = _merge_patch_value(out.get(key), value)
    return out


def merge_patch(doc: dict[str, Any], patch: Any, *, owned: bool = False) -> dict[str, Any]:
    """Apply an RFC 7386 JSON merge patch: objects merge, ``null`` deletes, the rest replaces.

    With ``owned`` (``doc`` is the caller's own copy) the result shares ``doc``'s values
    the patch leaves alone instead of copies of them; ``doc`` itself is not changed."""
    if not isinstance(patch, dict):
        raise StatusError(400, BAD_REQUEST, INVALID_JSON_PATCH)
    result: dict[str, Any] = _merge_patch_value(doc if owned else clone(doc), patch)
    return result


# --- strategic merge patch -----------------------------------------------------------


def _strategies(value: str) -> tuple[str, bool]:
    """Split ``merge,retainKeys`` into the list/map strategy and the retainKeys flag."""
    parts = [p for p in value.split(",") if p]
    main = next((p for p in parts if p != "retainKeys"), "")
    return main, "retainKeys" in parts


def _child(node: SchemaNode | None, key: str) -> tuple[SchemaNode | None, str, str]:
    """Schema of ``key`` under ``node`` with its patch strategy and merge key.

    Extensions written beside a ``$ref`` (``DeploymentSpec.strategy``: retainKeys,
    ``PodDisruptionBudgetSpec.selector``: replace) live on the parent's property, which
    ``SchemaNode`` does not keep once it resolves the reference, so read them here.
    """
    if node is None:
        return None, "", ""
    if node.is_object:
        child = node.field(key)
        if child is None:
            return None, "", ""
        prop = node.raw.get("properties", {}).get(key, {})
        strategy = str(prop.get("x-kubernetes-patch-strategy") or child.patch_strategy)
        merge_key = str(prop.get("x-kubernetes-patch-merge-key") or child.patch_merge_key)
        return child, _strategies(strategy)[0], merge_key
    if node.is_map:
        value = node.value()
        if value is None:
            return None, "", ""
        return value, _strategies(value.patch_strategy)[0], value.patch_merge_key
    return None, "", ""


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "map"
    if isinstance(value, list):
        return "list"
    return "scalar"


def _same(a: Any, b: Any) -> bool:
    """Go's ``==`` on decoded JSON scalars (no bool/number confusion)."""
    if isinstance(a, bool) != isinstance(b, bool):
        return False
    return bool(a == b)


def _drop_nulls(value: Any) -> Any:
    """Discard ``null`` map values (IgnoreUnmatchedNulls) when there is nothing to delete."""
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_nulls(v) for v in value]
    return value


def _fresh(patch_value: Any, node: SchemaNode | None, strategy: str, merge_key: str) -> Any:
    """A patch value for a key the original does not have: merged into an empty value,
    so nested directives are interpreted rather than stored."""
    if isinstance(patch_value, dict):
        if strategy == REPLACE:
            return _drop_nulls(patch_value)
        return _merge_map({}, patch_value, node)
    if isinstance(patch_value, list):
        return _merge_list([], patch_value, node.items() if node else None, strategy, merge_key)
    return patch_value


def _merge_map(
    original: dict[str, Any], patch: dict[str, Any], node: SchemaNode | None
) -> dict[str, Any]:
    """``original`` merged with ``patch`` (a private copy, which may be mutated) as a new
    map; ``original`` and what it holds are not changed (copy-on-write: the result
    shares the values the patch leaves alone)."""
    if DIRECTIVE in patch:
        directive = patch[DIRECTIVE]
        if directive == REPLACE:
            return {k: _drop_nulls(v) for k, v in patch.items() if k != DIRECTIVE and v is not None}
        if directive == DELETE:
            return {}
        raise _not_a_status(f"unknown patch type: {_go_repr(directive)} in map: {_go_repr(patch)}")
    original = dict(original)  # same keys in the same order: edits below keep that order

    if RETAIN_KEYS in patch:
        retain = patch.pop(RETAIN_KEYS)
        if not isinstance(retain, list):
            raise bad_request(ERR_BAD_PATCH_FORMAT_RETAIN_KEYS)
        for key, value in patch.items():
            if value is None or key.startswith((DELETE_FROM_PRIMITIVE_LIST, SET_ELEMENT_ORDER)):
                continue
            if key not in retain:
                raise bad_request(ERR_BAD_PATCH_FORMAT_RETAIN_KEYS)
        for key in [k for k in original if k not in retain]:
            del original[key]

    for key in [k for k in patch if k.startswith(SET_ELEMENT_ORDER)]:
        _apply_element_order(original, patch, key, node)

    for key in [k for k in patch if k.startswith(DELETE_FROM_PRIMITIVE_LIST)]:
        to_delete = patch.pop(key)
        name = key[len(DELETE_FROM_PRIMITIVE_LIST) :]
        if not isinstance(to_delete, list) or not name:
            raise bad_request(ERR_BAD_PATCH_FORMAT_PRIMITIVE_LIST)
        current = original.get(name)
        if isinstance(current, list):
            original[name] = [v for v in current if not any(_same(v, d) for d in to_delete)]

    for key, value in patch.items():
        if key.startswith("$"):
            continue  # unknown directives are ignored, as old servers do
        if value is None or (isinstance(value, dict) and value.get(DIRECTIVE) == DELETE):
            original.pop(key, None)  # ``{"$patch": "delete"}`` is documented as ``null``
            continue
        child, strategy, merge_key = _child(node, key)
        if key not in original or _kind(original[key]) != _kind(value):
            original[key] = _fresh(value, child, strategy, merge_key)
            continue
        current = original[key]
        if isinstance(value, dict):
            if strategy == REPLACE:
                original[key] = _drop_nulls(value)
            else:
                original[key] = _merge_map(current, value, child)
        elif isinstance(value, list):
            original[key] = _merge_list(
                current, value, child.items() if child else None, strategy, merge_key
            )
        else:
            original[key] = value
    return original


def _apply_element_order(
    original: dict[str, Any], patch: dict[str, Any], key: str, node: SchemaNode | None
) -> None:
    order = patch.pop(key)
    name = key[len(SET_ELEMENT_ORDER) :]
    if not isinstance(order, list) or not name:
        raise bad_request(ERR_BAD_PATCH_FORMAT_SET_ELEMENT_ORDER)
    child, strategy, merge_key = _child(node, name)
    item_node = child.items() if child else None
    current = original.get(name)
    found_original = isinstance(current, list)
    patch_list = patch.pop(name, None)
    found_patch = isinstance(patch_list, list)
    if patch_list is not None and not found_patch:
        raise bad_request(ERR_BAD_PATCH_FORMAT_SET_ELEMENT_ORDER)
    live: list[Any] = current if isinstance(current, list) else []
    if found_original and found_patch:
        assert isinstance(patch_list, list)
        merged = _merge_list(live, patch_list, item_node, strategy, merge_key)
    elif found_patch:
        assert isinstance(patch_list, list)
        merged = _merge_list([], patch_list, item_node, strategy, merge_key)
    elif found_original:
        merged = live
    else:
        return
    key_of = merge_key if merged and isinstance(merged[0], dict) else ""
    in_order, server_only = _partition(merged, order, key_of)
    original[name] = _normalize_order(in_order, server_only, order, live, key_of)


def _index(items: list[Any], item: Any, merge_key: str) -> int:
    for i, candidate in enumerate(items):
        if merge_key:
            if (
                isinstance(candidate, dict)
                and isinstance(item, dict)
                and merge_key in candidate
                and _same(candidate[merge_key], item.get(merge_key))
            ):
                return i
        elif _same(candidate, item):
            return i
    return -1


def _partition(items: list[Any], by: list[Any], merge_key: str) -> tuple[list[Any], list[Any]]:
    present = [v for v in items if _index(by, v, merge_key) >= 0]
    absent = [v for v in items if _index(by, v, merge_key) < 0]
    return present, absent


def _sort_by(items: list[Any], order: list[Any], merge_key: str) -> list[Any]:
    found = [v for v in items if _index(order, v, merge_key) >= 0]
    found.sort(key=lambda v: _index(order, v, merge_key))
    return found + [v for v in items if _index(order, v, merge_key) < 0]


def _normalize_order(
    patch_items: list[Any],
    server_only: list[Any],
    patch_order: list[Any],
    server_order: list[Any],
    merge_key: str,
) -> list[Any]:
    """Patch items in patch order, server-only items in live order, then interleave them
    keeping both relative orders, placing server-only items by their live position."""
    right = _sort_by(patch_items, patch_order, merge_key)
    left = _sort_by(server_only, server_order, merge_key)
    out: list[Any] = []
    i = j = 0
    while i < len(left) or j < len(right):
        if i >= len(left):
            out.append(right[j])
            j += 1
        elif j >= len(right):
            out.append(left[i])
            i += 1
        else:
            li = _index(server_order, left[i], merge_key)
            ri = _index(server_order, right[j], merge_key)
            if li >= 0 and ri >= 0 and li < ri:
                out.append(left[i])
                i += 1
            else:
                out.append(right[j])
                j += 1
    return out


def _merge_list(
    original: list[Any],
    patch: list[Any],
    item_node: SchemaNode | None,
    strategy: str,
    merge_key: str,
) -> list[Any]:
    if strategy != MERGE:
        return [_drop_nulls(v) for v in patch if not (isinstance(v, dict) and DIRECTIVE in v)]
    if not original and not patch:
        return original
    kinds = {_kind(v) for v in original + patch}
    if "list" in kinds:
        raise _unprocessable()
    if len(kinds) > 1:
        raise _not_a_status(f"list element types are not identical: {_go_repr([original, patch])}")
    if kinds != {"map"}:
        merged: list[Any] = []
        for value in original + patch:
            if not any(_same(value, seen) for seen in merged):
                merged.append(value)
        in_patch, server_only = _partition(merged, patch, "")
        return _normalize_order(in_patch, server_only, patch, original, "")

    if not merge_key:
        raise _not_a_status("cannot merge lists without merge key")
    plain: list[Any] = []
    replace = False
    for element in patch:
        if DIRECTIVE not in element:
            plain.append(element)
            continue
        directive = element[DIRECTIVE]
        if directive == DELETE:
            if merge_key not in element:
                raise _not_a_status(
                    f"map: {_go_repr(element)} does not contain declared merge key: {merge_key}"
                )
            original = [
                v
                for v in original
                if not (merge_key in v and _same(v[merge_key], element[merge_key]))
            ]
        elif directive == REPLACE:
            replace = True
        elif directive == MERGE:
            raise _not_a_status("merging lists cannot yet be specified in the patch")
        else:
            raise _not_a_status(
                f"unknown patch type: {_go_repr(directive)} in map: {_go_repr(element)}"
            )
    if replace:
        original, plain = [_drop_nulls(v) for v in plain], []
    merged = list(original)
    for element in plain:
        if merge_key not in element:
            raise _not_a_status(
                f"map: {_go_repr(element)} does not contain declared merge key: {merge_key}"
            )
        at = _index(merged, element, merge_key)
        if at >= 0:
            merged[at] = _merge_map(merged[at], element, item_node)
        else:
            merged.append(_merge_map({}, element, item_node))
    in_patch, server_only = _partition(merged, plain, merge_key)
    return _normalize_order(in_patch, server_only, plain, original, merge_key)


def strategic_merge_patch(
    doc: dict[str, Any], patch: Any, node: SchemaNode | None, *, owned: bool = False
) -> dict[str, Any]:
    """Apply a strategic merge patch to a copy of ``doc`` using ``node`` (the kind's schema).

    ``patch`` is the decoded request body. ``None`` (a JSON ``null`` body) changes nothing.
    With ``owned`` (``doc`` is the caller's own copy) ``doc`` is not copied first: the
    result shares the values the patch leaves alone (``doc`` itself is not changed, and is
    the result for a ``null`` body).
    """
    if patch is None:
        same: dict[str, Any] = doc if owned else clone(doc)
        return same
    if not isinstance(patch, dict):
        raise bad_request(
            f"json: cannot unmarshal {_go_type(patch)} into Go value of type map[string]interface {{}}"
        )
    return _merge_map(doc if owned else clone(doc), clone(patch), node)
