"""What the API fuzzer (``make fuzz``) found, fixed at the root: each as the pure call
that used to raise something other than a Kubernetes Status."""

from __future__ import annotations

import pytest

from corral.api import errors
from corral.apiserver.handlers import _warning_headers
from corral.apiserver.store import Registry, WriteOptions


@pytest.mark.parametrize(
    "meta",
    [{}, {"labels": {"a": "b"}}],
    ids=["empty", "no-name"],
)
async def test_create_without_a_usable_name_is_invalid(registry: Registry, meta: object) -> None:
    seen: list[str] = []
    registry.admission[("", "configmaps")].append(lambda req: seen.append(req.name))
    cm = registry.by_gvr[("", "v1", "configmaps")]
    with pytest.raises(errors.StatusError) as e:
        await registry.create(cm, "default", {"metadata": meta}, WriteOptions())
    assert e.value.code == 422
    assert seen == [""]  # admission saw the request, before validation refused it


@pytest.mark.parametrize(
    ("text", "header"),
    [
        ('unknown field "a\nb"', '299 - "unknown field \\"a b\\""'),
        ("x\r\x0b\x1f\x7fy\tz", '299 - "x    y\tz"'),
        ("back\\slash", '299 - "back\\\\slash"'),
    ],
    ids=["newline", "controls", "backslash"],
)
def test_warning_header_is_one_safe_line(text: str, header: str) -> None:
    assert _warning_headers([text]) == {"Warning": header}
