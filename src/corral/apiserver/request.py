"""Turning an HTTP request into what the generic handlers need.

``parse_path`` splits a Kubernetes REST path (``/apis/apps/v1/namespaces/ns/deployments/web/scale``)
into group, version, resource, namespace, name and subresource. ``negotiate`` reads the
Accept header: plain JSON, ``as=Table`` or ``as=PartialObjectMetadata(List)``. Bodies are
JSON or YAML (a missing Content-Type is read as JSON, as kubectl relies on).
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from typing import Any

import orjson
import yaml

from corral.api import errors
from corral.api.protobuf import PROTOBUF_CONTENT_TYPE, decode_k8s_protobuf
from corral.util.jsontypes import NESTED, SCALAR

MAX_BODY = 3 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class PathInfo:
    group: str
    version: str
    resource: str = ""
    namespace: str = ""
    name: str = ""
    subresource: str = ""
    #: /api/v1/namespaces/{ns} is the namespace object itself, not a scope
    namespaced_path: bool = False


def parse_path(path: str) -> PathInfo | None:
    """None when the path is not a resource path at all (the caller answers 404)."""
    parts = [p for p in path.split("/") if p]
    if not parts:
        return None
    if parts[0] == "api":
        if len(parts) < 2:
            return None
        group, version, rest = "", parts[1], parts[2:]
    elif parts[0] == "apis":
        if len(parts) < 3:
            return None
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    if not rest:
        return PathInfo(group, version)
    namespace = ""
    namespaced = False
    if rest[0] == "namespaces" and len(rest) >= 3:
        namespace, rest, namespaced = rest[1], rest[2:], True
        if rest and rest[0] == "namespaces":
            return None
    if namespaced and not rest:
        return None
    resource = rest[0]
    name = rest[1] if len(rest) > 1 else ""
    sub = rest[2] if len(rest) > 2 else ""
    if len(rest) > 3:
        return None
    return PathInfo(group, version, resource, namespace, name, sub, namespaced)


# --- content negotiation ---------------------------------------------------------------------

JSON = "json"
TABLE = "table"
PARTIAL = "partial"


@dataclass(frozen=True, slots=True)
class Accept:
    format: str  # json | table | partial
    version: str = "v1"  # meta.k8s.io version for Table/Partial
    only_special: bool = False  # no plain-JSON fallback offered
    acceptable: bool = True  # False: nothing in Accept can be produced (406)


#: Accept headers already negotiated (clients send a handful of distinct ones); the
#: memo starts over when it holds this many
NEGOTIATED_MEMO = 256
_negotiated: dict[str, Accept] = {}


def negotiate(accept: str) -> Accept:
    """Pick the answer's form from the Accept header, the first supported entry wins.

    Protobuf and CBOR are never produced: offered beside JSON they fall back to JSON,
    offered alone they make the answer 406, as does an unknown Table version. Pure, so
    each distinct header is parsed once (``Accept`` is frozen).
    """
    found = _negotiated.get(accept)
    if found is None:
        if len(_negotiated) >= NEGOTIATED_MEMO:
            _negotiated.clear()
        found = _negotiated[accept] = _negotiate(accept)
    return found


def _negotiate(accept: str) -> Accept:
    if not accept.strip():
        return Accept(JSON)
    fallback = False
    chosen: Accept | None = None
    for item in accept.split(","):
        parts = [p.strip() for p in item.split(";")]
        media = parts[0].lower()
        params = {}
        for p in parts[1:]:
            if "=" in p:
                k, v = p.split("=", 1)
                params[k.strip()] = v.strip()
        if media not in ("application/json", "*/*", "application/*", "application/yaml"):
            continue
        as_ = params.get("as")
        if as_ is None:
            fallback = True
            if chosen is None:
                chosen = Accept(JSON)
            continue
        version = params.get("v", "v1")
        if chosen is None and params.get("g") == "meta.k8s.io" and version in ("v1", "v1beta1"):
            if as_ == "Table":
                chosen = Accept(TABLE, version)
            elif as_ in ("PartialObjectMetadata", "PartialObjectMetadataList"):
                chosen = Accept(PARTIAL, version)
    if chosen is None:
        return Accept(JSON, acceptable=False)
    if chosen.format != JSON and not fallback:
        return Accept(chosen.format, chosen.version, only_special=True)
    return chosen


NOT_ACCEPTABLE_MESSAGE = (
    "only the following media types are accepted: application/json, application/yaml, "
    "application/json;as=Table;v=v1;g=meta.k8s.io, "
    "application/json;as=PartialObjectMetadata;v=v1;g=meta.k8s.io"
)


# --- bodies ------------------------------------------------------------------------------------


def decode_body(raw: bytes, content_type: str) -> Any:
    """Decode a JSON or YAML body; malformed input is a 400 with the decoder's reason."""
    if len(raw) > MAX_BODY:
        raise errors.too_large()
    ct = content_type.split(";")[0].strip().lower()
    if not raw.strip():
        raise errors.bad_request("the body of the request was empty")
    if ct in ("application/yaml", "application/apply-patch+yaml", "text/yaml"):
        try:
            docs = list(yaml.safe_load_all(raw))
            if len(docs) != 1:
                raise errors.bad_request("the body must hold exactly one YAML document")
            return _shallow(_json_safe(docs[0]), "error converting YAML to JSON: ")
        except yaml.YAMLError as e:
            raise errors.bad_request(f"error converting YAML to JSON: {e}") from None
        except RecursionError:
            raise errors.bad_request(f"error converting YAML to JSON: {_TOO_DEEP}") from None
    if ct == PROTOBUF_CONTENT_TYPE:
        return decode_k8s_protobuf(raw)
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        if "depth" in str(e).lower() or "recursion" in str(e).lower():
            raise errors.bad_request(f"error decoding JSON: {_TOO_DEEP}") from None
        raise errors.bad_request(f"error decoding JSON: {e}") from None
    # every object or array opens with a bracket (more may sit in strings): a body with
    # no more of them than ``MAX_DEPTH`` cannot nest deeper, and needs no walk
    if raw.count(b"{") + raw.count(b"[") <= MAX_DEPTH:
        return doc
    return _shallow(doc, "error decoding JSON: ")


#: how deeply a body may nest objects and arrays. Go's decoder allows 10000 levels;
#: ours stops far earlier, since every object must also survive being encoded inside
#: lists, tables, watch events and managedFields (orjson encodes at most 255 levels)
MAX_DEPTH = 200
_TOO_DEEP = "exceeded max depth"


def _shallow(value: Any, prefix: str) -> Any:
    """``value``, unless it nests deeper than ``MAX_DEPTH`` (a 400, as Go's decoder
    answers a body past its limit)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        v, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise errors.bad_request(prefix + _TOO_DEEP)
        if isinstance(v, dict):
            stack.extend((x, depth + 1) for x in v.values() if isinstance(x, NESTED))
        elif isinstance(v, list):
            stack.extend((x, depth + 1) for x in v if isinstance(x, NESTED))
    return value


class _Duplicate(Exception):
    """Raised by ``_no_duplicates`` at the first object that repeats a key."""


def _no_duplicates(items: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(items)
    if len(out) != len(items):
        raise _Duplicate
    return out


class _Pairs(dict[str, Any]):
    """A JSON object that remembers the keys it saw twice."""

    dupes: list[str]


def _pairs(items: list[tuple[str, Any]]) -> _Pairs:
    out = _Pairs()
    out.dupes = []
    for k, v in items:
        if k in out:
            out.dupes.append(k)
        out[k] = v
    return out


_NO_DUPLICATES = json.JSONDecoder(object_pairs_hook=_no_duplicates)
_NAMING_DUPLICATES = json.JSONDecoder(object_pairs_hook=_pairs)


def duplicate_fields(raw: bytes, decoded: Any = None) -> list[str]:
    """Paths (``spec.replicas``) of keys a JSON body repeats; Go's strict decoder names
    them (``fieldValidation``), orjson keeps the last silently. Called for every create
    and update not asking ``fieldValidation=Ignore``: a body without duplicates (nearly
    all) is told apart by the C decoder with a hook that only compares sizes, and only
    one with duplicates is decoded again to name them. The two decoders are made once:
    ``json.loads`` with a hook builds a new one per call, which cost as much as the
    decode of a small body.

    ``decoded``: orjson's decoding of ``raw``, when the caller has it. A body that is
    exactly orjson's encoding of it (compact, as Corral's components and any orjson
    client send) holds no key twice, since the decoded maps cannot: that is one encode
    and a compare: ~2 µs for the hollow agent's status patch where the hooked decode took
    ~11 (1 against 3.6 for the shape's pod). Any other body
    (whitespace, other escapes or number forms, a repeated key) takes the check above."""
    if b'"' not in raw:
        return []
    if isinstance(decoded, dict | list):
        with contextlib.suppress(TypeError, orjson.JSONEncodeError):
            if orjson.dumps(decoded) == raw:
                return []
    try:
        text = raw.decode("utf-8", "surrogatepass")  # (what ``json.loads`` does to UTF-8)
        _NO_DUPLICATES.decode(text)
        return []
    except _Duplicate:
        pass
    except ValueError:
        return []
    try:
        doc = _NAMING_DUPLICATES.decode(text)
    except ValueError:
        return []
    out: list[str] = []

    def walk(v: Any, path: str) -> None:
        if isinstance(v, _Pairs):
            out.extend(f"{path}.{k}" if path else k for k in v.dupes)
            for k, x in v.items():
                walk(x, f"{path}.{k}" if path else k)
        elif isinstance(v, list):
            for i, x in enumerate(v):
                walk(x, f"{path}[{i}]")

    walk(doc, "")
    return out


def _json_safe(v: Any) -> Any:
    """YAML may yield dates and non-string keys; the API is JSON."""
    if isinstance(v, dict):
        return {str(k): _json_safe(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_json_safe(x) for x in v]
    if isinstance(v, SCALAR) or v is None:
        return v
    return str(v)
