"""The ``csrsigning`` controller: issues approved CertificateSigningRequests of the
``kubernetes.io`` signers with the cluster CA, as upstream's
``pkg/controller/certificates/signer``.

It runs when the controller manager has ``--cluster-signing-cert-file`` and
``--cluster-signing-key-file`` (the API server passes its ``DATA/pki/ca.{crt,key}``).
An approved CSR without a certificate, not Denied or Failed, for
``kubernetes.io/kube-apiserver-client`` (client auth only), ``...-client-kubelet`` or
``kubernetes.io/kubelet-serving`` (the constraints of ``csrapproving``) gets a
certificate for the request's subject and SANs, valid from an hour back (clock skew)
for ``spec.expirationSeconds`` (at most ``--cluster-signing-duration``, one year, and
never past the CA), with the key usages asked for; a request the signer refuses gets a
``Failed`` condition (reason ``SignerValidationFailure``). Both are written through
``/status``. ``cryptography`` is imported at the first signature (the controller
manager may share the API server's process).
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
from pathlib import Path
from typing import Any, ClassVar

from corral.api.errors import StatusError
from corral.client.rest import Client
from corral.controllers.base import Controller, InformerFactory
from corral.controllers.csrapproving import (
    CSRS,
    KUBE_APISERVER_CLIENT,
    KUBELET_CLIENT,
    KUBELET_SERVING,
    MORE_THAN_ONE_CN,
    kubelet_client_problem,
    kubelet_serving_problem,
    parse_request,
)
from corral.util.clock import Clock

log = logging.getLogger("corral.controllers.csrsigning")

Obj = dict[str, Any]

SIGNERS = (KUBE_APISERVER_CLIENT, KUBELET_CLIENT, KUBELET_SERVING)
MAX_DURATION = dt.timedelta(days=365)
BACKDATE = dt.timedelta(hours=1)
_API_CLIENT_USAGES = {"digital signature", "key encipherment", "client auth"}


def _kinds(csr: Obj) -> set[str]:
    return {
        str(c.get("type"))
        for c in (csr.get("status") or {}).get("conditions") or []
        if isinstance(c, dict)
    }


def wants_signing(csr: Obj) -> bool:
    """Approved, not Denied/Failed, no certificate yet, one of our signers."""
    kinds = _kinds(csr)
    return (
        (csr.get("spec") or {}).get("signerName") in SIGNERS
        and "Approved" in kinds
        and not kinds & {"Denied", "Failed"}
        and not (csr.get("status") or {}).get("certificate")
    )


def signer_problem(csr: Obj) -> str:
    """Why the CSR's signer refuses it, or ``""``."""
    spec = csr.get("spec") or {}
    usages = list(spec.get("usages") or [])
    try:
        req = parse_request(csr)
    except ValueError as e:
        return f"unable to parse csr: {e}"
    signer = spec.get("signerName")
    if req.common_name_count > 1:
        return MORE_THAN_ONE_CN
    if signer == KUBELET_CLIENT:
        return kubelet_client_problem(req, usages)
    if signer == KUBELET_SERVING:
        return kubelet_serving_problem(req, usages)
    if "client auth" not in usages or not set(usages) <= _API_CLIENT_USAGES:
        return "invalid usage for client certificate"
    return ""


def duration(csr: Obj, maximum: dt.timedelta = MAX_DURATION) -> dt.timedelta:
    seconds = (csr.get("spec") or {}).get("expirationSeconds")
    if isinstance(seconds, int) and seconds > 0:
        return min(maximum, dt.timedelta(seconds=seconds))
    return maximum


def sign(csr: Obj, ca_cert_pem: bytes, ca_key_pem: bytes, now: dt.datetime) -> bytes:
    """The PEM certificate for ``csr`` signed by the CA (subject and SANs as requested)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import ExtendedKeyUsageOID

    ca = x509.load_pem_x509_certificate(ca_cert_pem)
    key = serialization.load_pem_private_key(ca_key_pem, None)
    req = x509.load_pem_x509_csr(base64.b64decode((csr.get("spec") or {})["request"]))
    usages = set((csr.get("spec") or {}).get("usages") or [])
    eku = []
    if "client auth" in usages:
        eku.append(ExtendedKeyUsageOID.CLIENT_AUTH)
    if "server auth" in usages:
        eku.append(ExtendedKeyUsageOID.SERVER_AUTH)
    not_after = min(now + duration(csr), ca.not_valid_after_utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(req.subject)
        .issuer_name(ca.subject)
        .public_key(req.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(not_after)
        .add_extension(
            x509.KeyUsage(
                digital_signature="digital signature" in usages,
                content_commitment="content commitment" in usages,
                key_encipherment="key encipherment" in usages,
                data_encipherment="data encipherment" in usages,
                key_agreement="key agreement" in usages,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    )
    if eku:
        builder = builder.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
    try:
        san = req.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        builder = builder.add_extension(san, critical=False)
    except x509.ExtensionNotFound:
        pass
    try:
        ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
    except x509.ExtensionNotFound:
        pass
    cert = builder.sign(key, hashes.SHA256())  # type: ignore[arg-type]
    return cert.public_bytes(serialization.Encoding.PEM)


class CSRSigningController(Controller):
    """Signs approved CSRs of the kubernetes.io signers with the cluster CA."""

    name: ClassVar[str] = "csrsigning"

    def __init__(
        self,
        client: Client,
        factory: InformerFactory,
        *,
        workers: int = 1,
        clock: Clock | None = None,
        cert_file: str = "",
        key_file: str = "",
    ) -> None:
        super().__init__(client, factory, workers=workers, clock=clock)
        self.cert_file, self.key_file = cert_file, key_file
        self.csrs = factory.informer(CSRS)
        self.csrs.add_handler(lambda _t, obj, _old: self.enqueue(obj))

    def _now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.clock.now(), dt.UTC)

    async def sync(self, key: str) -> None:
        csr = self.csrs.get(key)
        if csr is None or not wants_signing(csr) or not self.cert_file:
            return
        status = dict(csr.get("status") or {})
        problem = signer_problem(csr)
        if problem:
            status["conditions"] = [
                *(status.get("conditions") or []),
                {
                    "type": "Failed",
                    "status": "True",
                    "reason": "SignerValidationFailure",
                    "message": problem,
                },
            ]
        else:
            ca_pem = Path(self.cert_file).read_bytes()
            key_pem = Path(self.key_file).read_bytes()
            pem = sign(csr, ca_pem, key_pem, self._now())
            status["certificate"] = base64.b64encode(pem).decode()
        body = {**csr, "status": status}
        try:
            await self.client.update(CSRS, body, sub="status")
        except StatusError as e:
            if e.code == 404:
                return
            raise
        log.info("%s %s", "refused" if problem else "signed", key)
