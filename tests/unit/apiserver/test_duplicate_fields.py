"""``duplicate_fields``: the paths of the keys a JSON body repeats, as Go's strict decoder
names them, and nothing for a body without any (or one that is not JSON)."""

from __future__ import annotations

import orjson
import pytest

from corral.apiserver.request import duplicate_fields


@pytest.mark.parametrize(
    ("raw", "paths"),
    [
        (b'{"kind":"ConfigMap","data":{"a":"1"}}', []),
        (b'{"data":{"a":"1"},"data":{"b":"2"}}', ["data"]),
        (
            b'{"spec":{"containers":[{"name":"a","image":"x","name":"b"}]}}',
            ["spec.containers[0].name"],
        ),
        (b'{"s":"\\"k\\":1, \\"k\\":2","k":1}', []),  # (quotes and colons inside a string)
        (b'{"\\u00e9":1,"\xc3\xa9":2}', ["\u00e9"]),  # one key, escaped and not
        (b"[1, 2, 3]", []),
        (b"{not json", []),
    ],
    ids=["none", "top", "in-a-list", "in-a-string", "escaped", "no-object", "bad"],
)
def test_duplicate_paths(raw: bytes, paths: list[str]) -> None:
    assert duplicate_fields(raw) == paths
    try:
        decoded = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return
    # the server passes its orjson decoding along: the same answer, whatever the body
    assert duplicate_fields(raw, decoded) == paths


def test_a_body_that_is_its_decodings_encoding_has_no_duplicate() -> None:
    body = {"metadata": {"name": "p"}, "status": {"conditions": [{"type": "Ready"}]}}
    raw = orjson.dumps(body)
    assert duplicate_fields(raw, body) == []
    assert duplicate_fields(raw, {"other": 1}) == []  # another encoding: the full check


def test_a_repeated_key_is_named_though_its_decoding_is_given() -> None:
    raw = b'{"metadata":{"name":"p"},"metadata":{"name":"q"}}'
    assert duplicate_fields(raw, orjson.loads(raw)) == ["metadata"]
    spaced = b'{"a": 1, "b": {"c": 2}}'  # not orjson's form: the hooked decoder decides
    assert duplicate_fields(spaced, orjson.loads(spaced)) == []
    big = b'{"n":18446744073709551616,"n":1}'  # orjson cannot encode that: no shortcut
    assert duplicate_fields(big, {"n": 18446744073709551616}) == ["n"]
