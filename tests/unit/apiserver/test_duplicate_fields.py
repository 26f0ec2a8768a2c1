"""``duplicate_fields``: the paths of the keys a JSON body repeats, as Go's strict decoder
names them, and nothing for a body without any (or one that is not JSON)."""

from __future__ import annotations

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
