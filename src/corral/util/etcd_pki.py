"""Certificates for a local etcd cluster that serves its clients over TLS.

``EtcdCluster(tls=True)`` (``util/etcd_process.py``) calls ``ensure_etcd_pki`` before it
starts its members: a CA of its own (not the API server's: etcd's clients are the API
servers, which trust etcd's CA through ``--datastore-cafile``), one serving certificate
for every member (server and client auth, as etcd's docs ask of a member certificate:
etcd 3.4's gateway dials the member with it), and one client certificate for the API
servers (``--datastore-certfile/--datastore-keyfile``; members run with
``--client-cert-auth``). Keys are ECDSA P-256, written with ``pki.write_pair``; files
that exist are kept, so a restarted cluster keeps its certificates.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from corral.util.pki import BACKDATE, san_names, write_pair

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec

VALIDITY = dt.timedelta(days=3650)


@dataclass(frozen=True, slots=True)
class EtcdPki:
    """Where the files are: the CA, the members' pair, the clients' pair."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path

    @classmethod
    def at(cls, d: Path) -> EtcdPki:
        return cls(
            d / "ca.crt", d / "server.crt", d / "server.key", d / "client.crt", d / "client.key"
        )


def _cert(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None,
    *,
    server: bool = False,
    client: bool = False,
    hosts: list[str] | None = None,
) -> x509.Certificate:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    ca = issuer is None
    issuer_name, signer = issuer if issuer is not None else (name, key)
    b = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=0 if ca else None), True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=not ca,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=ca,
                crl_sign=ca,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
    )
    usages = [ExtendedKeyUsageOID.SERVER_AUTH] * server + [ExtendedKeyUsageOID.CLIENT_AUTH] * client
    if usages:
        b = b.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    if hosts:
        b = b.add_extension(x509.SubjectAlternativeName(san_names(hosts)), critical=False)
    return b.sign(signer, hashes.SHA256())


def ensure_etcd_pki(d: Path, hosts: list[str]) -> EtcdPki:
    """The CA and both pairs under ``d`` (made once; kept when present)."""
    from cryptography.hazmat.primitives.asymmetric import ec

    pki = EtcdPki.at(d)
    if all(p.exists() for p in (pki.ca, pki.server_cert, pki.server_key)) and all(
        p.exists() for p in (pki.client_cert, pki.client_key)
    ):
        return pki
    d.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert("corral-etcd-ca", ca_key, None)
    write_pair(pki.ca, d / "ca.key", ca, ca_key)
    issuer = (ca.subject, ca_key)
    key = ec.generate_private_key(ec.SECP256R1())
    names = [*hosts, "localhost", "127.0.0.1"]
    cert = _cert("corral-etcd", key, issuer, server=True, client=True, hosts=names)
    write_pair(pki.server_cert, pki.server_key, cert, key)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _cert("corral-apiserver-etcd-client", key, issuer, client=True)
    write_pair(pki.client_cert, pki.client_key, cert, key)
    return pki
