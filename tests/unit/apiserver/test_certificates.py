"""CertificateSigningRequest validation, subresource preparation, the table cell and
the node CSR recognisers of csrapproving/csrsigning."""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
from typing import Any

import pytest

from corral.apiserver.registry.certificates import (
    CertificateSigningRequestStrategy,
    condition_summary,
    validate_csr,
    validate_csr_update,
    validate_signer_name,
)
from corral.controllers.csrapproving import (
    MORE_THAN_ONE_CN,
    client_permission,
    kubelet_client_problem,
    kubelet_serving_problem,
    node_owns_names,
    parse_request,
)
from corral.controllers.csrsigning import sign, signer_problem, wants_signing

Obj = dict[str, Any]


def csr_pem(
    cn: str,
    orgs: tuple[str, ...] = ("system:nodes",),
    dns: tuple[str, ...] = (),
    ips: tuple[str, ...] = (),
) -> bytes:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs]
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    b = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(attrs))
    sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
    sans += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    if sans:
        b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return b.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def csr(
    cn: str = "system:node:n1",
    signer: str = "kubernetes.io/kube-apiserver-client-kubelet",
    usages: tuple[str, ...] = ("digital signature", "client auth"),
    username: str = "",
    **kw: Any,
) -> Obj:
    obj: Obj = {
        "metadata": {"name": "c"},
        "spec": {
            "request": base64.b64encode(csr_pem(cn, **kw)).decode(),
            "signerName": signer,
            "usages": list(usages),
        },
        "status": {},
    }
    if username:
        obj["spec"]["username"] = username
    return obj


def _msgs(errs: list[Any]) -> list[str]:
    return [str(e) for e in errs]


def test_valid_csr() -> None:
    assert validate_csr(csr()) == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"request": base64.b64encode(b"junk").decode()}, "spec.request: Invalid value"),
        ({"usages": []}, "spec.usages: Required value"),
        ({"usages": ["client auth", "client auth"]}, "spec.usages[1]: Duplicate value"),
        ({"usages": ["nope"]}, 'spec.usages[0]: Unsupported value: "nope"'),
        ({"signerName": "kubernetes.io/legacy-unknown"}, "the legacy signerName is not allowed via this API version"),
        ({"signerName": "nodomain"}, "must be a fully qualified domain and path of the form 'example.com/signer-name'"),
        ({"expirationSeconds": 599}, "may not specify a duration less than 600 seconds (10 minutes)"),
    ],
    ids=["bad-request", "no-usages", "dup-usage", "unknown-usage", "legacy-signer", "bad-signer", "short-duration"],
)  # fmt: skip
def test_invalid_spec(change: Obj, expected: str) -> None:
    obj = csr()
    obj["spec"].update(change)
    assert any(expected in m for m in _msgs(validate_csr(obj))), _msgs(validate_csr(obj))


def test_bad_request_message_is_upstreams() -> None:
    obj = csr()
    obj["spec"]["request"] = base64.b64encode(b"junk").decode()
    assert "PEM block type must be CERTIFICATE REQUEST" in _msgs(validate_csr(obj))[0]


def test_signer_name_domain_needs_two_segments() -> None:
    assert (
        "should be a domain with at least two segments separated by dots"
        in _msgs(validate_signer_name("spec.signerName", "example/foo"))[0]
    )


@pytest.mark.parametrize(
    ("conditions", "expected"),
    [
        ([{"type": "Approved", "status": "False"}], 'Unsupported value: "False"'),
        ([{"type": "Approved", "status": "True"}, {"type": "Denied", "status": "True"}],
         "Approved and Denied conditions are mutually exclusive"),
        ([{"type": "Foo", "status": "True"}, {"type": "Foo", "status": "True"}], "Duplicate value"),
        ([{"type": "", "status": "True"}], "status.conditions[0].type: Required value"),
    ],
    ids=["approved-false", "approved-and-denied", "duplicate", "empty-type"],
)  # fmt: skip
def test_invalid_conditions(conditions: list[Obj], expected: str) -> None:
    obj = csr()
    obj["status"]["conditions"] = conditions
    assert any(expected in m for m in _msgs(validate_csr(obj)))


def test_updates_guard_conditions_and_certificate() -> None:
    old = csr()
    approved = csr()
    approved["spec"] = old["spec"]
    approved["status"]["conditions"] = [{"type": "Approved", "status": "True"}]
    assert (
        'updates may not add a condition of type "Approved"'
        in _msgs(validate_csr_update(approved, old))[0]
    )
    assert validate_csr_update(approved, old, "approval") == []
    assert (
        'updates may not remove a condition of type "Approved"'
        in _msgs(validate_csr_update(old, approved, "approval"))[0]
    )
    issued = {
        **approved,
        "status": {**approved["status"], "certificate": base64.b64encode(b"x").decode()},
    }
    assert any(
        "updates may not set certificate content" in m
        for m in _msgs(validate_csr_update(issued, approved, "approval"))
    )
    assert any(
        "must contain at least one CERTIFICATE PEM block" in m
        for m in _msgs(validate_csr_update(issued, approved, "status"))
    )


def test_strategy_create_clears_requestor_and_status() -> None:
    obj = csr(username="mallory")
    obj["spec"]["groups"] = ["system:masters"]
    obj["status"] = {"conditions": [{"type": "Approved", "status": "True"}]}
    CertificateSigningRequestStrategy().prepare_for_create(obj)
    assert "username" not in obj["spec"] and "groups" not in obj["spec"]
    assert obj["status"] == {}


def test_approval_changes_conditions_only_and_stamps_them() -> None:
    s = CertificateSigningRequestStrategy()
    old = csr()
    new = csr(cn="system:node:other")
    new["status"] = {"certificate": "eA==", "conditions": [{"type": "Approved", "status": "True"}]}
    s.prepare_for_subresource_update("approval", new, old)
    assert new["spec"] == old["spec"]
    assert "certificate" not in new["status"]
    cond = new["status"]["conditions"][0]
    assert cond["lastUpdateTime"] and cond["lastTransitionTime"]


def test_status_update_keeps_approval_conditions() -> None:
    s = CertificateSigningRequestStrategy()
    old = csr()
    old["status"] = {
        "conditions": [
            {"type": "Approved", "status": "True", "lastUpdateTime": "t", "lastTransitionTime": "t"}
        ]
    }
    new = csr()
    new["status"] = {"certificate": "eA==", "conditions": [{"type": "Failed", "status": "True"}]}
    s.prepare_for_status_update(new, old)
    assert [c["type"] for c in new["status"]["conditions"]] == ["Approved", "Failed"]
    assert new["spec"] == old["spec"] and new["status"]["certificate"] == "eA=="


@pytest.mark.parametrize(
    ("status", "summary"),
    [({}, "Pending"), ({"conditions": [{"type": "Approved"}], "certificate": "eA=="}, "Approved,Issued"),
     ({"conditions": [{"type": "Denied"}, {"type": "Failed"}]}, "Denied,Failed")],
    ids=["pending", "issued", "denied-failed"],
)  # fmt: skip
def test_condition_summary(status: Obj, summary: str) -> None:
    assert condition_summary({"status": status}) == summary


# --- recognisers -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kw", "usages", "problem"),
    [
        ({}, ("digital signature", "client auth"), ""),
        ({}, ("digital signature", "key encipherment", "client auth"), ""),
        ({"orgs": ("system:masters",)}, ("digital signature", "client auth"), "subject organization is not system:nodes"),
        ({"dns": ("n1",)}, ("digital signature", "client auth"), "dnsNames are not allowed"),
        ({"cn": "bob"}, ("digital signature", "client auth"), 'subject common name does not begin with "system:node:"'),
        ({}, ("server auth", "digital signature"), "usages did not match"),
    ],
    ids=["ec", "rsa-usages", "wrong-org", "with-san", "not-a-node", "server-usage"],
)  # fmt: skip
def test_kubelet_client_problem(kw: Obj, usages: tuple[str, ...], problem: str) -> None:
    req = parse_request(csr(cn=kw.pop("cn", "system:node:n1"), **kw))
    got = kubelet_client_problem(req, list(usages))
    assert got.startswith(problem) if problem else got == ""


@pytest.mark.parametrize(
    ("username", "groups_note", "permission"),
    [
        ("system:bootstrap:abcdef", "join", "nodeclient"),
        ("system:node:n1", "renewal", "selfnodeclient"),
    ],
    ids=["bootstrap", "self"],
)
def test_client_permission(username: str, groups_note: str, permission: str) -> None:
    obj = csr(username=username)
    assert client_permission(obj, parse_request(obj)) == permission


def test_client_permission_ignores_other_signers() -> None:
    obj = csr(signer="example.com/x", username="system:node:n1")
    assert client_permission(obj, parse_request(obj)) == ""


def test_serving_csr_names_must_be_the_nodes() -> None:
    obj = csr(signer="kubernetes.io/kubelet-serving", usages=("digital signature", "server auth"),
              dns=("n1",), ips=("10.0.0.5",))  # fmt: skip
    req = parse_request(obj)
    assert kubelet_serving_problem(req, obj["spec"]["usages"]) == ""
    node = {
        "metadata": {"name": "n1"},
        "status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.5"}]},
    }
    assert node_owns_names(req, node)
    other = {
        "metadata": {"name": "n1"},
        "status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.6"}]},
    }
    assert not node_owns_names(req, other)


def _ca() -> tuple[bytes, bytes]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test-ca")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(1).not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    return cert.public_bytes(serialization.Encoding.PEM), key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def test_signing_an_approved_node_csr() -> None:
    from cryptography import x509
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    obj = csr()
    obj["spec"]["expirationSeconds"] = 3600
    assert not wants_signing(obj)
    obj["status"]["conditions"] = [{"type": "Approved", "status": "True"}]
    assert wants_signing(obj) and signer_problem(obj) == ""
    ca_pem, key_pem = _ca()
    now = dt.datetime.now(dt.UTC)
    cert = x509.load_pem_x509_certificate(sign(obj, ca_pem, key_pem, now))
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "system:node:n1"
    assert cert.not_valid_after_utc - now <= dt.timedelta(seconds=3601)
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]


def test_signer_refuses_a_non_node_kubelet_csr() -> None:
    obj = csr(cn="admin", orgs=("system:masters",))
    obj["status"]["conditions"] = [{"type": "Approved", "status": "True"}]
    assert signer_problem(obj) == "subject organization is not system:nodes"


def _two_cn_csr(first: str, last: str) -> Obj:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:nodes"),
        x509.NameAttribute(NameOID.COMMON_NAME, first),
        x509.NameAttribute(NameOID.COMMON_NAME, last),
    ])  # fmt: skip
    pem = x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hashes.SHA256())
    obj = csr(username=first)
    obj["spec"]["request"] = base64.b64encode(pem.public_bytes(serialization.Encoding.PEM)).decode()
    return obj


def test_a_subject_with_two_common_names_is_neither_approved_nor_signed() -> None:
    # The API server authenticates a certificate as its LAST CN (as Go): a node renewing
    # with CN=system:node:n1 + CN=system:kube-controller-manager must not get it.
    obj = _two_cn_csr("system:node:n1", "system:kube-controller-manager")
    req = parse_request(obj)
    assert req.common_name == "system:kube-controller-manager"
    assert client_permission(obj, req) == ""
    assert kubelet_client_problem(req, obj["spec"]["usages"]) != ""
    obj = _two_cn_csr("system:node:n1", "system:node:n2")
    req = parse_request(obj)
    assert kubelet_client_problem(req, obj["spec"]["usages"]) == MORE_THAN_ONE_CN
    assert client_permission(obj, req) == ""
    obj["status"]["conditions"] = [{"type": "Approved", "status": "True"}]
    assert signer_problem(obj) == MORE_THAN_ONE_CN
    obj["spec"]["signerName"] = "kubernetes.io/kube-apiserver-client"
    assert signer_problem(obj) == MORE_THAN_ONE_CN


def test_serving_names_another_node_or_the_api_server_has_are_not_the_nodes() -> None:
    def node(name: str, *addresses: str) -> Obj:
        return {
            "metadata": {"name": name},
            "status": {"addresses": [{"type": "InternalIP", "address": a} for a in addresses]},
        }

    serving = {
        "signer": "kubernetes.io/kubelet-serving",
        "usages": ("digital signature", "server auth"),
    }
    # n1 wrote n2's address into its own status: a certificate for it would let n1 pose as n2
    req = parse_request(csr(ips=("10.0.0.6",), **serving))
    n1, n2 = node("n1", "10.0.0.5", "10.0.0.6"), node("n2", "10.0.0.6")
    assert node_owns_names(req, n1, [n1])
    assert not node_owns_names(req, n1, [n1, n2])
    # the API server's names (the same CA signs its certificate) and loopback
    for name in ("kubernetes.default.svc", "kubernetes.default.svc.cluster.local", "localhost"):
        req = parse_request(csr(dns=(name,), **serving))
        assert not node_owns_names(req, node("n1", name), [])
    req = parse_request(csr(ips=("127.0.0.1",), **serving))
    assert not node_owns_names(req, node("n1", "127.0.0.1"), [])
