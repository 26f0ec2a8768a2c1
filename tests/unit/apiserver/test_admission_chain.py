"""The admission chain in the generic registry: which writes reach the plugins, in
what shape, in which order relative to defaults and validation, and a refusal."""

from __future__ import annotations

from typing import Any

import pytest

from corral.api import errors
from corral.apiserver.admission_chain import AdmissionRequest
from corral.apiserver.identity import UserInfo
from corral.apiserver.store import MERGE_PATCH, DeleteOptions, Registry, WriteOptions

BOB = UserInfo("bob", ("system:authenticated",))


class Recorder:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str, str | None, bool, Any, Any]] = []

    def __call__(self, req: AdmissionRequest) -> None:
        user = req.user.username if req.user else None
        data = (req.obj or {}).get("data")
        old = (req.old or {}).get("data")
        self.seen.append((req.operation, req.name, req.subresource, user, req.dry_run, data, old))


async def test_every_write_reaches_the_plugins(registry: Registry) -> None:
    rec = Recorder()
    cm = registry.by_gvr[("", "v1", "configmaps")]
    registry.admission[("", "configmaps")].append(rec)
    opts = WriteOptions(field_manager="t", user=BOB)
    await registry.create(cm, "default", {"metadata": {"name": "a"}, "data": {"k": "1"}}, opts)
    await registry.update(cm, "default", "a", {"metadata": {"name": "a"}, "data": {"k": "2"}}, opts)
    await registry.patch(cm, "default", "a", MERGE_PATCH, {"data": {"k": "3"}}, opts)
    dry = WriteOptions(dry_run=True, field_manager="t", user=BOB)
    await registry.patch(cm, "default", "a", MERGE_PATCH, {"data": {"k": "4"}}, dry)
    await registry.delete(cm, "default", "a", DeleteOptions(user=BOB))
    await registry.create(cm, "default", {"metadata": {"name": "b"}}, WriteOptions())
    assert rec.seen == [
        ("CREATE", "a", "", "bob", False, {"k": "1"}, None),
        ("UPDATE", "a", "", "bob", False, {"k": "2"}, {"k": "1"}),
        ("UPDATE", "a", "", "bob", False, {"k": "3"}, {"k": "2"}),
        ("UPDATE", "a", "", "bob", True, {"k": "4"}, {"k": "3"}),
        ("DELETE", "a", "", "bob", False, None, {"k": "3"}),
        ("CREATE", "b", "", None, False, None, None),  # internal: no user
    ]


async def test_apply_create_carries_the_user(registry: Registry) -> None:
    rec = Recorder()
    cm = registry.by_gvr[("", "v1", "configmaps")]
    registry.admission[("", "configmaps")].append(rec)
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}
    await registry.apply(cm, "default", "c", body, WriteOptions(field_manager="m", user=BOB))
    assert [(op, user) for op, _, _, user, *_ in rec.seen] == [("CREATE", "bob")]


async def test_status_subresource_is_admitted_as_an_update(registry: Registry) -> None:
    seen: list[tuple[str, str]] = []
    ns = registry.by_gvr[("", "v1", "namespaces")]
    registry.admission[("", "namespaces")].append(
        lambda r: seen.append((r.operation, r.subresource))
    )
    body = {"metadata": {"name": "default"}, "status": {"phase": "Active"}}
    await registry.update(ns, "", "default", body, WriteOptions(user=BOB), "status")
    assert seen == [("UPDATE", "status")]


async def test_plugins_see_defaults_and_mutate_before_validation(registry: Registry) -> None:
    """A mutating plugin's change is stored; validation runs after it (a plugin that
    breaks the object gets a 422), and a refusal stops the write."""
    cm = registry.by_gvr[("", "v1", "configmaps")]

    def label(req: AdmissionRequest) -> None:
        assert req.obj is not None
        assert req.obj["metadata"]["uid"]  # prepared before admission
        req.obj["metadata"].setdefault("labels", {})["admitted"] = "yes"
        if req.name == "bad":
            req.obj["metadata"]["labels"]["admitted"] = "not a label value!"
        if req.name == "refused":
            raise errors.forbidden_error("refused", "configmaps", "", req.name)

    registry.admission[("", "configmaps")].append(label)
    opts = WriteOptions(user=BOB)
    res = await registry.create(cm, "default", {"metadata": {"name": "ok"}}, opts)
    assert res.obj["metadata"]["labels"] == {"admitted": "yes"}
    with pytest.raises(errors.StatusError) as bad:
        await registry.create(cm, "default", {"metadata": {"name": "bad"}}, opts)
    assert bad.value.code == 422
    with pytest.raises(errors.StatusError) as refused:
        await registry.create(cm, "default", {"metadata": {"name": "refused"}}, opts)
    assert refused.value.code == 403
    assert registry.entry(cm, "default", "refused") is None


async def test_no_plugin_no_entry(registry: Registry) -> None:
    """A resource without plugins leaves the defaultdict untouched (one lookup)."""
    cm = registry.by_gvr[("", "v1", "configmaps")]
    await registry.create(cm, "default", {"metadata": {"name": "z"}}, WriteOptions(user=BOB))
    assert ("", "configmaps") not in registry.admission
