"""The API server's PKI: a private CA, the serving certificate, the admin token, kubeconfigs.

Called once at start-up by the server's entry point (``corral`` CLI): ``ensure_pki``
creates, on first start, a CA (ECDSA P-256, 10 years, CN ``corral-ca``) and a serving
certificate signed by it under ``<data_dir>/pki/``; later starts reuse them, so
kubeconfigs written earlier keep working. The serving certificate alone is re-issued
(by the same CA) when a requested host is missing from its SANs, when it expires within
30 days, or when it no longer matches the CA or its key. ``ensure_admin_token`` does the
same for the bearer token of the ``admin`` user, and ``write_kubeconfig`` hands both to
kubectl and the ``kubernetes`` client.

Files (keys and the token are mode 0600, written atomically)::

    pki/ca.crt  pki/ca.key  pki/server.crt  pki/server.key  pki/admin.token

and ``pki/checked.json``, the record of the last full check: the server calls
``ensure_pki_in_child``, which trusts that record while the files are unchanged and
otherwise runs ``ensure_pki`` in a short-lived child process, so the serving process
never loads ``cryptography`` (~7 MB of its memory).

``Pki.ssl_context()`` is the server side of TLS: TLS 1.2 or newer, and ALPN offering
only ``http/1.1`` because the server does not speak HTTP/2 (Go clients such as kubectl
offer ``h2`` first and must be told no).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import secrets
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from corral.util.pki import (
    BACKDATE,
    issue_serving,
    load_pair,
    run_in_child,
    san_key,
    san_names,
    write_atomic,
    write_pair,
)

if TYPE_CHECKING:  # imported where used: a restart with a checked PKI never loads it
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec

    SanName = x509.DNSName | x509.IPAddress

CA_COMMON_NAME = "corral-ca"
SERVER_COMMON_NAME = "corral-apiserver"
CA_VALIDITY = dt.timedelta(days=3650)
#: a serving certificate this close to expiry is re-issued at start-up.
RENEW_BEFORE = dt.timedelta(days=30)
#: always in the serving certificate: loopback, and the in-cluster service names.
DEFAULT_SANS = (
    "127.0.0.1",
    "::1",
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)

#: what the last full check found (``pki/checked.json``): a digest of the four files, the
#: serving certificate's SANs and validity. While the files are unchanged, a start-up
#: reads this instead of parsing them, so the server never loads ``cryptography`` (~7 MB).
CHECKED = "checked.json"


@dataclass(frozen=True)
class Pki:
    """Where the PKI files are; the server loads its TLS context from them."""

    dir: Path
    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path

    @classmethod
    def at(cls, data_dir: Path) -> Pki:
        d = data_dir / "pki"
        return cls(d, d / "ca.crt", d / "ca.key", d / "server.crt", d / "server.key")

    @property
    def ca_pem(self) -> bytes:
        """The CA certificate (PEM): what clients trust."""
        return self.ca_cert.read_bytes()

    def ssl_context(self) -> ssl.SSLContext:
        """The server's TLS context: TLS 1.2+, serving certificate, ALPN ``http/1.1`` only,
        and client certificates requested (optional) and verified against the CA: the
        x509 authenticator (``apiserver/authn.py``) reads the verified peer's subject."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(self.server_cert, self.server_key)
        ctx.load_verify_locations(cafile=str(self.ca_cert))
        ctx.verify_mode = ssl.CERT_OPTIONAL
        ctx.set_alpn_protocols(["http/1.1"])
        return ctx

    def client_ssl_context(self) -> ssl.SSLContext:
        """A client context trusting only this CA (for in-process clients and tests)."""
        ctx = ssl.create_default_context(cafile=str(self.ca_cert))
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        return ctx


# --- public entry points -----------------------------------------------------------


def ensure_pki(data_dir: Path, hosts: Iterable[str], *, now: dt.datetime | None = None) -> Pki:
    """Create or reuse the CA and serving certificate under ``data_dir/pki``.

    ``hosts`` are extra DNS names or IP addresses for the serving certificate's SANs.
    ``now`` (UTC) is injectable for tests. Raises ``ValueError`` for an empty host.
    """
    now = now or dt.datetime.now(dt.UTC)
    pki = Pki.at(data_dir)
    pki.dir.mkdir(parents=True, exist_ok=True)
    os.chmod(pki.dir, 0o700)
    all_hosts = [*DEFAULT_SANS, *hosts]
    if _still_checked(pki, _san_keys(all_hosts), now):
        return pki
    sans = san_names(all_hosts)

    loaded = load_pair(pki.ca_cert, pki.ca_key)
    if loaded is None:
        ca_cert, ca_key = _issue_ca(now)
        write_pair(pki.ca_cert, pki.ca_key, ca_cert, ca_key)
    else:
        ca_cert, ca_key = loaded

    server = load_pair(pki.server_cert, pki.server_key)
    if server is None or not _server_cert_ok(server[0], ca_cert, sans, now):
        server = issue_serving(SERVER_COMMON_NAME, sans, now, (ca_cert, ca_key))
        write_pair(pki.server_cert, pki.server_key, *server)
    _write_checked(pki, server[0])
    return pki


def ensure_pki_in_child(data_dir: Path, hosts: Iterable[str]) -> Pki:
    """``ensure_pki``, for a long-running server: when the last check's record does not
    stand (first start, new SANs, files changed, near expiry), the check and any issuing
    run in a short-lived ``python`` child, so ``cryptography`` is never loaded into the
    serving process. Raises ``ValueError`` with the child's message when it fails."""
    hosts = list(hosts)
    pki = Pki.at(data_dir)
    if pki.dir.is_dir() and _still_checked(
        pki, _san_keys([*DEFAULT_SANS, *hosts]), dt.datetime.now(dt.UTC)
    ):
        return pki
    code = (
        "import sys; from pathlib import Path; from corral.apiserver.certs import ensure_pki; "
        "ensure_pki(Path(sys.argv[1]), sys.argv[2:])"
    )
    run_in_child([str(data_dir), *hosts], f"the PKI in {pki.dir}", code)
    return pki


def ensure_serving_pair(
    data_dir: Path, name: str, hosts: Iterable[str], *, now: dt.datetime | None = None
) -> tuple[Path, Path]:
    """``pki/NAME.crt`` and ``pki/NAME.key``: a serving certificate for ``hosts`` issued by
    the CA of ``ensure_pki`` (which must have run), for a server the API server starts
    (the metrics server); re-issued as the API server's own. Returns the two paths."""
    now = now or dt.datetime.now(dt.UTC)
    pki = Pki.at(data_dir)
    cert_path, key_path = pki.dir / f"{name}.crt", pki.dir / f"{name}.key"
    sans = san_names(hosts)
    ca = load_pair(pki.ca_cert, pki.ca_key)
    if ca is None:
        raise ValueError(f"no CA in {pki.dir}")
    pair = load_pair(cert_path, key_path)
    if pair is None or not _server_cert_ok(pair[0], ca[0], sans, now):
        pair = issue_serving(name, sans, now, ca)
        write_pair(cert_path, key_path, *pair)
    rec = {"digest": _pair_digest(pki, cert_path, key_path), "sans": sorted(_san_keys(hosts))}
    rec["not_after"] = (pair[0].not_valid_after_utc - RENEW_BEFORE).isoformat()
    write_atomic(pki.dir / f"{name}.{CHECKED}", json.dumps(rec).encode(), 0o600)
    return cert_path, key_path


def ensure_serving_pair_in_child(
    data_dir: Path, name: str, hosts: Iterable[str]
) -> tuple[Path, Path]:
    """``ensure_serving_pair`` in a short-lived child unless its last record stands (as
    ``ensure_pki_in_child``): the serving process never loads ``cryptography``."""
    hosts = list(hosts)
    pki = Pki.at(data_dir)
    cert_path, key_path = pki.dir / f"{name}.crt", pki.dir / f"{name}.key"
    if not serving_pair_checked(data_dir, name, hosts, dt.datetime.now(dt.UTC)):
        code = (
            "import sys; from pathlib import Path; "
            "from corral.apiserver.certs import ensure_serving_pair; "
            "ensure_serving_pair(Path(sys.argv[1]), sys.argv[2], sys.argv[3:])"
        )
        run_in_child([str(data_dir), name, *hosts], f"the {name} certificate", code)
    return cert_path, key_path


def serving_pair_checked(data_dir: Path, name: str, hosts: Iterable[str], now: dt.datetime) -> bool:
    """The record of ``pki/NAME``'s last check holds at ``now`` for ``hosts`` (the files
    unchanged, not yet due for renewal): nothing to issue. No ``cryptography``."""
    pki = Pki.at(data_dir)
    try:
        rec = json.loads((pki.dir / f"{name}.{CHECKED}").read_text())
        return bool(
            rec["digest"] == _pair_digest(pki, pki.dir / f"{name}.crt", pki.dir / f"{name}.key")
            and _san_keys(hosts) <= set(rec["sans"])
            and now < dt.datetime.fromisoformat(rec["not_after"])
        )
    except (OSError, ValueError, KeyError, TypeError):
        return False


def pki_checked(data_dir: Path, hosts: Iterable[str], now: dt.datetime) -> bool:
    """The record of the last ``ensure_pki`` holds at ``now`` for ``hosts``: the serving
    certificate needs no renewal. No ``cryptography``."""
    return _still_checked(Pki.at(data_dir), _san_keys([*DEFAULT_SANS, *hosts]), now)


def _pair_digest(pki: Pki, cert_path: Path, key_path: Path) -> str:
    h = hashlib.sha256()
    for path in (pki.ca_cert, cert_path, key_path):
        h.update(path.read_bytes())
        h.update(b"\0")
    return h.hexdigest()


def ensure_admin_token(data_dir: Path) -> str:
    """The admin bearer token, created on first call (``data_dir/pki/admin.token``, 0600)."""
    path = data_dir / "pki" / "admin.token"
    if path.exists():
        token = path.read_text().strip()
        if token:
            return token
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    write_atomic(path, token.encode() + b"\n", 0o600)
    return token


def write_kubeconfig(
    path: Path,
    server_url: str,
    ca_pem: bytes | None,
    token: str,
    cluster_name: str = "corral",
    user: str = "admin",
    servers: Iterable[str] = (),
) -> None:
    """Write a kubeconfig for ``user`` at ``server_url`` (atomically, mode 0600).

    ``ca_pem`` becomes ``certificate-authority-data``; ``None`` omits it (plain http).
    The context is named after the cluster and made current. ``servers``: every API
    server of an HA cluster, written as the ``corral.dev/servers`` cluster extension
    (``corral.client.rest.servers_extension``) after ``server_url``.
    """
    from corral.client.rest import servers_extension

    cluster: dict[str, object] = {"server": server_url}
    if ca_pem is not None:
        cluster["certificate-authority-data"] = base64.b64encode(ca_pem).decode()
    if extensions := servers_extension([server_url, *servers]):
        cluster["extensions"] = extensions
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cluster_name, "cluster": cluster}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": cluster_name, "context": {"cluster": cluster_name, "user": user}}],
        "current-context": cluster_name,
        "preferences": {},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, yaml.safe_dump(config, sort_keys=False).encode(), 0o600)


# --- issuing -------------------------------------------------------------------------


def _issue_ca(
    now: dt.datetime, common_name: str = CA_COMMON_NAME
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _server_cert_ok(
    cert: x509.Certificate, ca_cert: x509.Certificate, sans: list[SanName], now: dt.datetime
) -> bool:
    """Still signed by this CA, valid past the renewal margin, and covering every SAN."""
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature

    try:
        cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature):
        return False
    if cert.not_valid_after_utc - RENEW_BEFORE < now or cert.not_valid_before_utc > now:
        return False
    try:
        have = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    present = set(have)
    return all(name in present for name in sans)


# --- the record of the last check ------------------------------------------------------


def _san_keys(hosts: Iterable[str]) -> set[str]:
    """``ip:ADDR`` / ``dns:name`` for each host, as ``san_names`` normalises them."""
    return {san_key(h) for h in hosts}


def _digest(pki: Pki) -> str:
    """SHA-256 over the four files (``OSError`` when one is missing)."""
    h = hashlib.sha256()
    for path in (pki.ca_cert, pki.ca_key, pki.server_cert, pki.server_key):
        h.update(path.read_bytes())
        h.update(b"\0")
    return h.hexdigest()


def _still_checked(pki: Pki, wanted: set[str], now: dt.datetime) -> bool:
    """The files are those of the last full check, which holds at ``now`` for ``wanted``."""
    try:
        rec = json.loads((pki.dir / CHECKED).read_text())
        if rec["digest"] != _digest(pki):
            return False
        not_before = dt.datetime.fromisoformat(rec["not_before"])
        not_after = dt.datetime.fromisoformat(rec["not_after"])
        have = set(rec["sans"])
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return not_before <= now <= not_after - RENEW_BEFORE and wanted <= have


def _write_checked(pki: Pki, cert: x509.Certificate) -> None:
    from cryptography import x509

    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return
    sans = [f"ip:{n.value}" if isinstance(n, x509.IPAddress) else f"dns:{n.value}" for n in ext]
    rec = {
        "digest": _digest(pki),
        "not_before": cert.not_valid_before_utc.isoformat(),
        "not_after": cert.not_valid_after_utc.isoformat(),
        "sans": sorted(sans),
    }
    write_atomic(pki.dir / CHECKED, json.dumps(rec).encode(), 0o600)
