"""The PKI: CA and serving certificate created once, reused, re-issued when they must be."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import ipaddress
import ssl
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from cryptography import x509

from corral.apiserver.certs import (
    CA_COMMON_NAME,
    Pki,
    ensure_admin_token,
    ensure_pki,
    ensure_pki_in_child,
    san_names,
    write_kubeconfig,
)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _sans(pki: Pki) -> set[str]:
    ext = _cert(pki.server_cert).extensions.get_extension_for_class(x509.SubjectAlternativeName)
    return {str(name.value) for name in ext.value}


def test_first_start_creates_ca_and_serving_cert(tmp_path: Path) -> None:
    pki = ensure_pki(tmp_path, ["10.0.0.7", "corral.example"])

    assert pki.dir == tmp_path / "pki"
    ca = _cert(pki.ca_cert)
    assert ca.subject.rfc4514_string() == f"CN={CA_COMMON_NAME}"
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert ca.not_valid_after_utc - ca.not_valid_before_utc > dt.timedelta(days=3649)
    server = _cert(pki.server_cert)
    server.verify_directly_issued_by(ca)
    assert {"127.0.0.1", "::1", "localhost", "10.0.0.7", "corral.example"} <= _sans(pki)
    assert _mode(pki.ca_key) == 0o600
    assert _mode(pki.server_key) == 0o600


def test_restart_reuses_everything(tmp_path: Path) -> None:
    first = ensure_pki(tmp_path, ["corral.example"])
    files = {p: p.read_bytes() for p in (first.ca_cert, first.ca_key, first.server_cert)}

    second = ensure_pki(tmp_path, ["corral.example"])

    assert second == first
    assert {p: p.read_bytes() for p in files} == files


@pytest.mark.parametrize(
    ("hosts_then", "hosts_now", "now_offset", "reissued"),
    [
        (["a.example"], ["a.example"], dt.timedelta(0), False),
        (["a.example", "b.example"], ["b.example"], dt.timedelta(0), False),
        (["a.example"], ["b.example"], dt.timedelta(0), True),
        (["a.example"], ["192.168.1.9"], dt.timedelta(0), True),
        (["a.example"], ["a.example"], dt.timedelta(days=340), True),
    ],
    ids=["same-hosts", "subset", "new-dns-name", "new-ip", "near-expiry"],
)
def test_serving_cert_reissued_only_when_needed(
    tmp_path: Path,
    hosts_then: list[str],
    hosts_now: list[str],
    now_offset: dt.timedelta,
    reissued: bool,
) -> None:
    start = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    pki = ensure_pki(tmp_path, hosts_then, now=start)
    ca_before, server_before = pki.ca_cert.read_bytes(), pki.server_cert.read_bytes()

    ensure_pki(tmp_path, hosts_now, now=start + now_offset)

    assert pki.ca_cert.read_bytes() == ca_before
    assert (pki.server_cert.read_bytes() != server_before) is reissued
    _cert(pki.server_cert).verify_directly_issued_by(_cert(pki.ca_cert))
    assert set(hosts_now) <= _sans(pki)


def test_lost_ca_key_makes_a_new_ca_and_reissues(tmp_path: Path) -> None:
    pki = ensure_pki(tmp_path, [])
    old_ca = pki.ca_cert.read_bytes()
    pki.ca_key.unlink()

    ensure_pki(tmp_path, [])

    assert pki.ca_cert.read_bytes() != old_ca
    _cert(pki.server_cert).verify_directly_issued_by(_cert(pki.ca_cert))


@pytest.mark.parametrize(
    ("hosts", "expected"),
    [
        (["127.0.0.1"], [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
        (["[::1]"], [x509.IPAddress(ipaddress.ip_address("::1"))]),
        (["Corral.Example", "corral.example"], [x509.DNSName("corral.example")]),
    ],
    ids=["ipv4", "bracketed-ipv6", "dns-deduplicated"],
)
def test_san_names(hosts: list[str], expected: list[x509.GeneralName]) -> None:
    assert san_names(hosts) == expected


def test_san_names_rejects_empty_host() -> None:
    with pytest.raises(ValueError, match="empty host"):
        san_names([""])


def test_admin_token_is_created_once(tmp_path: Path) -> None:
    token = ensure_admin_token(tmp_path)

    assert len(token) >= 40
    assert ensure_admin_token(tmp_path) == token
    assert _mode(tmp_path / "pki" / "admin.token") == 0o600


def test_kubeconfig(tmp_path: Path) -> None:
    path = tmp_path / "home" / "kubeconfig"
    write_kubeconfig(path, "https://127.0.0.1:6443", b"PEM", "tok", cluster_name="c", user="u")

    config = yaml.safe_load(path.read_text())
    assert _mode(path) == 0o600
    assert config["current-context"] == "c"
    assert config["contexts"] == [{"name": "c", "context": {"cluster": "c", "user": "u"}}]
    cluster = config["clusters"][0]["cluster"]
    assert cluster["server"] == "https://127.0.0.1:6443"
    assert base64.b64decode(cluster["certificate-authority-data"]) == b"PEM"
    assert config["users"] == [{"name": "u", "user": {"token": "tok"}}]


def test_kubeconfig_without_ca_and_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "kubeconfig"
    write_kubeconfig(path, "https://old:6443", b"PEM", "old")
    write_kubeconfig(path, "http://127.0.0.1:8080", None, "new")

    config = yaml.safe_load(path.read_text())
    assert config["clusters"] == [
        {"name": "corral", "cluster": {"server": "http://127.0.0.1:8080"}}
    ]
    assert [p.name for p in tmp_path.iterdir()] == ["kubeconfig"]


async def _handshake(
    server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext, server_hostname: str
) -> str | None:
    """Connect over real loopback TCP; return the negotiated ALPN protocol."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"ok")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=server_ctx)
    port = server.sockets[0].getsockname()[1]
    async with server, asyncio.timeout(10):
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=client_ctx, server_hostname=server_hostname
        )
        try:
            assert await reader.read() == b"ok"
            proto: str | None = writer.get_extra_info("ssl_object").selected_alpn_protocol()
        finally:
            writer.close()
    return proto


@pytest.mark.parametrize("server_hostname", ["127.0.0.1", "localhost"], ids=["ip", "dns"])
async def test_tls_handshake_verifies_with_the_ca(tmp_path: Path, server_hostname: str) -> None:
    pki = ensure_pki(tmp_path, [])
    client = pki.client_ssl_context()
    client.set_alpn_protocols(["h2", "http/1.1"])

    assert await _handshake(pki.ssl_context(), client, server_hostname) == "http/1.1"


async def test_tls_handshake_fails_with_another_ca(tmp_path: Path) -> None:
    pki = ensure_pki(tmp_path / "a", [])
    other = ensure_pki(tmp_path / "b", [])

    with pytest.raises(ssl.SSLCertVerificationError):
        await _handshake(pki.ssl_context(), other.client_ssl_context(), "127.0.0.1")


async def test_tls_handshake_fails_for_unknown_host(tmp_path: Path) -> None:
    pki = ensure_pki(tmp_path, [])

    with pytest.raises(ssl.SSLCertVerificationError):
        await _handshake(pki.ssl_context(), pki.client_ssl_context(), "elsewhere.example")


def test_a_restart_with_unchanged_files_does_not_load_cryptography(tmp_path: Path) -> None:
    """The serving process stays ~7 MB lighter: the last check's record stands in for
    parsing the certificates while the files are those it checked."""
    ensure_pki(tmp_path, ["corral.example"])
    code = (
        "import sys; from pathlib import Path; from corral.apiserver.certs import ensure_pki; "
        f"ensure_pki(Path({str(tmp_path)!r}), ['corral.example']); "
        "print(any(m.startswith('cryptography') for m in sys.modules))"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "False"
    code = code.replace("'corral.example'", "'other.example'")  # a new SAN: the full path
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "True"
    assert "other.example" in _sans(Pki.at(tmp_path))  # re-issued for it


def test_ensure_pki_in_child_issues_in_a_child_then_trusts_the_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pki = ensure_pki_in_child(tmp_path, ["corral.example"])
    assert "corral.example" in _sans(pki)
    _cert(pki.server_cert).verify_directly_issued_by(_cert(pki.ca_cert))

    def no_child(*args: object, **kwargs: object) -> None:
        raise AssertionError("a child process for an unchanged PKI")

    monkeypatch.setattr(subprocess, "run", no_child)
    assert ensure_pki_in_child(tmp_path, ["corral.example"]) == pki
