"""A status patch (merge or strategic) and a PUT decode the stored object once
(``Registry._guaranteed_update``'s ``copying``): the stored bytes, resourceVersion,
managedFields, answer and errors must be those of the two-decode path.

Each case runs on two real registries over SQLite: one as shipped, one whose
``_guaranteed_update`` is forced to decode twice. Stored objects are seeded through
``update_obj`` (no defaulting, no required-field filling), so that the status steps
that write into the status (``_fill_status``, the Service and CSR status hooks) meet
old containers a one-decode patch would share if it did not copy them.
"""

from __future__ import annotations

import base64
import types
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from corral.api.errors import StatusError
from corral.apiserver import store
from corral.apiserver.registry import certificates
from corral.apiserver.registry.table import RESOURCES
from corral.apiserver.store import (
    MERGE_PATCH,
    STRATEGIC_PATCH,
    Registry,
    WriteOptions,
)
from corral.storage.cache import WatchCache
from corral.storage.sqlite import SQLiteStorage
from corral.testing.clock import FakeClock

Obj = dict[str, Any]


async def _registry(path: Path, two_decodes: bool) -> tuple[Registry, SQLiteStorage]:
    storage = SQLiteStorage(path)
    await storage.start()
    reg = Registry(storage, WatchCache(), RESOURCES, FakeClock())
    kvs, rev = await storage.list("/registry/")
    reg.cache.load(kvs, rev, [], rev)
    storage.listeners.append(reg.cache.apply)
    if two_decodes:
        shipped = Registry._guaranteed_update

        async def decode_twice(self: Registry, *args: Any, **kw: Any) -> Any:
            kw["copying"] = False
            return await shipped(self, *args, **kw)

        reg._guaranteed_update = types.MethodType(decode_twice, reg)  # type: ignore[method-assign]
    ns = reg.by_gvr[("", "v1", "namespaces")]
    await reg.create(ns, "", {"metadata": {"name": "default"}}, WriteOptions())
    return reg, storage


@pytest.fixture(autouse=True)
def _fixed_wall_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CSR strategy stamps its conditions with the wall clock (``_now``): the two
    registries' runs must not straddle a second."""
    monkeypatch.setattr(certificates, "_now", lambda: "2024-02-02T00:00:00Z")


@pytest.fixture
async def registries(tmp_path: Path) -> AsyncIterator[tuple[Registry, Registry]]:
    one, s1 = await _registry(tmp_path / "one.db", False)
    try:
        two, s2 = await _registry(tmp_path / "two.db", True)
        try:
            yield one, two
        finally:
            await s2.close()
    finally:
        await s1.close()


POD: Obj = {
    "metadata": {"name": "p", "namespace": "default", "labels": {"app": "a"}},
    "spec": {"containers": [{"name": "c", "image": "busybox"}], "nodeName": "n1"},
}
#: stored as is: conditions and container statuses miss required fields
POD_STATUS: Obj = {
    "phase": "Pending",
    "conditions": [{"type": "PodScheduled"}, {"type": "Ready", "status": "False"}],
    "containerStatuses": [{"name": "c", "state": {"waiting": {}}}],
    "hostIPs": [{"ip": "10.0.0.1"}],
    "nominatedNodeName": "n1",
}
SERVICE: Obj = {
    "metadata": {"name": "s", "namespace": "default"},
    "spec": {"type": "LoadBalancer", "ports": [{"port": 80}], "clusterIP": "10.96.0.9"},
}
#: an ingress without ipMode: the status hook fills it in (``VIP``)
SERVICE_STATUS: Obj = {"loadBalancer": {"ingress": [{"ip": "1.2.3.4"}]}}
CSR_STATUS: Obj = {"conditions": [{"type": "Failed", "status": "True", "reason": "r"}]}


def _csr_request() -> str:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "someone")])
    pem = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(name)
        .sign(ec.generate_private_key(ec.SECP256R1()), hashes.SHA256())
        .public_bytes(serialization.Encoding.PEM)
    )
    return base64.b64encode(pem).decode()


CSR_REQUEST = _csr_request()  # one for both registries: their bytes compare

CASES: list[tuple[str, str, str, Obj, str, Any]] = [
    ("pod-merge-new-status", "pods", "v1", POD_STATUS, MERGE_PATCH,
     {"status": {"phase": "Running", "podIP": "10.1.0.2", "podIPs": [{"ip": "10.1.0.2"}]}}),
    ("pod-merge-conditions", "pods", "v1", POD_STATUS, MERGE_PATCH,
     {"status": {"conditions": [{"type": "Ready", "status": "True"}]}}),
    ("pod-merge-labels", "pods", "v1", POD_STATUS, MERGE_PATCH,
     {"metadata": {"labels": {"b": "c"}}, "status": {"phase": "Running"}}),
    ("pod-merge-drop-status", "pods", "v1", POD_STATUS, MERGE_PATCH, {"status": None}),
    ("pod-merge-nothing", "pods", "v1", POD_STATUS, MERGE_PATCH, {}),
    ("pod-merge-spec-ignored", "pods", "v1", POD_STATUS, MERGE_PATCH,
     {"spec": {"nodeName": "n2"}, "status": {"message": "m"}}),
    ("pod-merge-stale-rv", "pods", "v1", POD_STATUS, MERGE_PATCH,
     {"metadata": {"resourceVersion": "1"}, "status": {"phase": "Running"}}),
    ("pod-merge-bad-type", "pods", "v1", POD_STATUS, MERGE_PATCH, {"status": {"phase": 5}}),
    ("pod-merge-unknown-field", "pods", "v1", POD_STATUS, MERGE_PATCH,
     {"status": {"phase": "Running", "bogus": {"x": 1}}}),
    ("pod-strategic-conditions", "pods", "v1", POD_STATUS, STRATEGIC_PATCH,
     {"status": {"conditions": [{"type": "Ready", "status": "True"}]}}),
    ("pod-strategic-container", "pods", "v1", POD_STATUS, STRATEGIC_PATCH,
     {"status": {"containerStatuses": [{"name": "c", "ready": True}]}}),
    ("pod-strategic-delete", "pods", "v1", POD_STATUS, STRATEGIC_PATCH,
     {"status": {"conditions": [{"type": "PodScheduled", "$patch": "delete"}]}}),
    ("service-merge-other-field", "services", "v1", SERVICE_STATUS, MERGE_PATCH,
     {"status": {"conditions": [{"type": "T", "status": "True", "reason": "R", "message": "",
                                 "lastTransitionTime": "2024-01-01T00:00:00Z"}]}}),
    ("service-strategic-other-field", "services", "v1", SERVICE_STATUS, STRATEGIC_PATCH,
     {"status": {"loadBalancer": {"ingress": [{"ip": "1.2.3.4"}, {"ip": "5.6.7.8"}]}}}),
    ("csr-merge-certificate", "certificatesigningrequests", "certificates.k8s.io/v1",
     CSR_STATUS, MERGE_PATCH, {"status": {"certificate": None}}),
]  # fmt: skip


def _seed(plural: str, status: Obj) -> Obj:
    if plural == "pods":
        return {**orjson.loads(orjson.dumps(POD)), "status": status}
    if plural == "services":
        return {**orjson.loads(orjson.dumps(SERVICE)), "status": status}
    return {
        "metadata": {"name": "c"},
        "spec": {
            "request": CSR_REQUEST,
            "signerName": "example.com/s",
            "usages": ["digital signature"],
        },
        "status": status,
    }


async def _run(reg: Registry, plural: str, version: str, status: Obj, ct: str, body: Any) -> Any:
    group, _, v = version.rpartition("/")
    info = reg.by_gvr[(group, v, plural)]
    ns = "default" if info.namespaced else ""
    name = "c" if plural == "certificatesigningrequests" else ("p" if plural == "pods" else "s")
    key = reg.key(info, ns, name)
    seed = _seed(plural, orjson.loads(orjson.dumps(status)))
    seed["metadata"]["namespace"] = ns
    seed["metadata"]["uid"] = "u-1"
    seed["metadata"]["managedFields"] = [
        {
            "manager": "m",
            "operation": "Update",
            "apiVersion": version,
            "time": "2024-01-01T00:00:00Z",
            "fieldsType": "FieldsV1",
            "fieldsV1": {"f:metadata": {"f:labels": {}}},
        }
    ]
    seed = {"apiVersion": version, "kind": info.kind, **seed}
    await reg.storage.create(key, seed)
    for want_answer in (True, False):  # the same patch twice: a change, then maybe a no-op
        try:
            res = await reg.patch(
                info, ns, name, ct, orjson.loads(orjson.dumps(body)), WriteOptions(), "status"
            )
            answer: Any = (res.raw, res.warnings)
        except StatusError as e:
            answer = ("error", e.code, str(e))
        entry = reg.get(info, ns, name)
        if want_answer:
            first = (answer, entry.raw, entry.revision)
    return first, (answer, entry.raw, entry.revision)


@pytest.mark.parametrize(
    ("plural", "version", "status", "ct", "body"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
async def test_one_decode_stores_what_two_do(
    registries: tuple[Registry, Registry],
    plural: str,
    version: str,
    status: Obj,
    ct: str,
    body: Any,
) -> None:
    one, two = registries
    got = await _run(one, plural, version, status, ct, body)
    want = await _run(two, plural, version, status, ct, body)
    assert got == want


async def test_a_put_decodes_once_and_stores_what_two_decodes_store(
    registries: tuple[Registry, Registry], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store, "new_uid", lambda: "u-1")  # the two pods' bytes compare

    async def put(reg: Registry) -> tuple[bytes, int]:
        info = reg.by_gvr[("", "v1", "pods")]
        await reg.create(info, "default", orjson.loads(orjson.dumps(POD)), WriteOptions())
        cur = reg.decode(info, reg.get(info, "default", "p"))
        cur["metadata"]["labels"]["b"] = "c"
        cur["status"] = {"phase": "Running", "conditions": [{"type": "Ready"}]}
        await reg.update(info, "default", "p", cur, WriteOptions(field_manager="x"))
        cur = reg.decode(info, reg.get(info, "default", "p"))
        cur["status"]["phase"] = "Succeeded"
        await reg.update(info, "default", "p", cur, WriteOptions(field_manager="y"), "status")
        e = reg.get(info, "default", "p")
        return e.raw, e.revision

    one, two = registries
    assert await put(one) == await put(two)
