"""Issuing X.509 certificates: SAN entries, serving and client leaf certificates, PEM files.

Shared by the API server's PKI (``apiserver/certs.py``: its CA, its serving certificate
and the metrics server's; ``apiserver/client_certs.py``: the components' client
certificates) and by ``corral metrics-server`` run on its own (a self-signed
serving certificate, as metrics-server makes without ``--tls-cert-file``).

``cryptography`` costs ~7 MB of a process's memory, so long-running servers never import
it: they call ``run_in_child``, which runs one of this module's commands in a short-lived
``python -m corral.util.pki`` child. Everything needing ``cryptography`` imports it where
used; importing this module alone does not load it.

Command (the child): ``python -m corral.util.pki self-signed CERT KEY COMMON_NAME HOST...``
writes a fresh self-signed serving certificate and its key.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec

    SanName = x509.DNSName | x509.IPAddress

SERVER_VALIDITY = dt.timedelta(days=365)
#: client certificates (the components' identities) live a year too
CLIENT_VALIDITY = dt.timedelta(days=365)
#: backdating absorbs small clock differences between a server and its clients.
BACKDATE = dt.timedelta(hours=1)


def san_key(host: str) -> str:
    """``ip:ADDR`` or ``dns:name`` for a host, as ``san_names`` normalises it; ``ValueError``
    for an empty one."""
    host = host.strip().strip("[]")
    if not host:
        raise ValueError("empty host name for the serving certificate")
    try:
        return f"ip:{ipaddress.ip_address(host)}"
    except ValueError:
        return f"dns:{host.lower()}"


def san_names(hosts: Iterable[str]) -> list[SanName]:
    """Hosts as SAN entries (IP addresses as ``IPAddress``), deduplicated, order kept."""
    from cryptography import x509

    out: list[SanName] = []
    for host in hosts:
        kind, _, value = san_key(host).partition(":")
        name: SanName = (
            x509.IPAddress(ipaddress.ip_address(value)) if kind == "ip" else x509.DNSName(value)
        )
        if name not in out:
            out.append(name)
    return out


def _leaf(
    subject: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    now: dt.datetime,
    usage: x509.ObjectIdentifier,
) -> x509.CertificateBuilder:
    """A leaf certificate's common part: subject, key, serial, start (backdated), the
    critical digital-signature key usage and one extended key usage."""
    from cryptography import x509

    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    )


def _sign(
    builder: x509.CertificateBuilder,
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
    not_after: dt.datetime,
) -> x509.Certificate:
    """``builder`` signed by a CA: its issuer, an end no later than the CA's, not a CA
    itself, and the CA's key identifier."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    ca_cert, ca_key = issuer
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return (
        builder.issuer_name(ca_cert.subject)
        .not_valid_after(min(not_after, ca_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )


def issue_serving(
    common_name: str,
    sans: list[SanName],
    now: dt.datetime,
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None = None,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A serving certificate (ECDSA P-256, server auth) for ``sans``, signed by ``issuer``
    (a CA's certificate and key), or self-signed without one."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    not_after = now + SERVER_VALIDITY
    builder = (
        _leaf(subject, key, now, ExtendedKeyUsageOID.SERVER_AUTH)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if issuer is None:  # its own trust anchor (a caBundle of itself)
        cert = builder.issuer_name(subject).not_valid_after(not_after).sign(key, hashes.SHA256())
        return cert, key
    return _sign(builder, issuer, not_after), key


def issue_client(
    common_name: str,
    organizations: Iterable[str],
    now: dt.datetime,
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
    validity: dt.timedelta = CLIENT_VALIDITY,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A client certificate (ECDSA P-256, client auth) signed by ``issuer`` (a CA's
    certificate and key): the subject's CN is the user and each O a group, as the API
    server's x509 authenticator reads them (kubeadm's ``system:masters`` admin, a
    kubelet's ``system:node:NAME`` in ``system:nodes``)."""
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    builder = _leaf(x509.Name(attrs), key, now, ExtendedKeyUsageOID.CLIENT_AUTH)
    return _sign(builder, issuer, now + validity), key


def subject_of(cert: x509.Certificate) -> tuple[str, tuple[str, ...]]:
    """A certificate's CN and its Os, in order (what the x509 authenticator reads)."""
    from cryptography.x509.oid import NameOID

    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    orgs = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    return (str(cns[0].value) if cns else "", tuple(str(o.value) for o in orgs))


def load_pair(
    cert_path: Path, key_path: Path
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None:
    """The certificate and its EC key, or None when missing, unreadable or mismatched."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError):
        return None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        return None
    if cert.public_key() != key.public_key():
        return None
    return cert, key


def write_pair(
    cert_path: Path,
    key_path: Path,
    cert: x509.Certificate,
    key: ec.EllipticCurvePrivateKey,
) -> None:
    """The key (mode 0600) and the certificate (0644) as PEM, each written atomically."""
    from cryptography.hazmat.primitives import serialization

    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    write_atomic(key_path, key_pem, 0o600)
    write_atomic(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)


def write_atomic(
    path: Path, data: bytes, mode: int, *, exclusive: bool = False, sync_dir: bool = False
) -> None:
    """Write via a temporary file in the same directory (fsynced) and ``os.replace``: a
    crash leaves the old file or the new one, never a mix. ``exclusive``: ``os.link``
    instead, so that a file another process put there first wins; ``sync_dir``: fsync
    the directory too, so that the rename itself survives a crash."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if not exclusive:
            os.replace(tmp, path)
        else:
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)  # gone already after os.replace
    if sync_dir:
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def run_in_child(argv: list[str], what: str, code: str | None = None) -> None:
    """Run ``python -m corral.util.pki ARGV`` (or ``python -c CODE ARGV``) and wait;
    ``ValueError`` naming ``what`` with the child's last error line when it fails."""
    cmd = [sys.executable, "-c", code] if code else [sys.executable, "-m", __name__]
    run = subprocess.run([*cmd, *argv], capture_output=True, text=True)
    if run.returncode != 0:
        lines = run.stderr.strip().splitlines() or [f"exit status {run.returncode}"]
        raise ValueError(f"cannot set up {what}: {lines[-1]}")


def self_signed_in_child(
    cert_path: Path, key_path: Path, common_name: str, hosts: Iterable[str]
) -> None:
    """A self-signed serving certificate for ``hosts``, issued in a child process."""
    run_in_child(
        ["self-signed", str(cert_path), str(key_path), common_name, *hosts],
        f"a serving certificate in {cert_path.parent}",
    )


def main(argv: list[str]) -> int:
    if len(argv) < 4 or argv[0] != "self-signed":
        print("usage: python -m corral.util.pki self-signed CERT KEY CN HOST...", file=sys.stderr)
        return 2
    cert_path, key_path, cn, hosts = Path(argv[1]), Path(argv[2]), argv[3], argv[4:]
    cert, key = issue_serving(cn, san_names(hosts), dt.datetime.now(dt.UTC))
    write_pair(cert_path, key_path, cert, key)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
