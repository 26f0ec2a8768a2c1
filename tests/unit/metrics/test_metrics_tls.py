"""The metrics server's serving certificate and caBundle (metrics/tls.py): issued by the
cluster CA (``--tls-cert-file``) or self-signed in a child process; either way a client
trusting only the caBundle verifies the name the aggregator dials,
``metrics-server.kube-system.svc`` (TLS handshakes in memory, no sockets)."""

from __future__ import annotations

import ssl
import sys
from pathlib import Path

import pytest

from corral.apiserver.certs import ensure_pki, ensure_serving_pair
from corral.metrics.tls import SERVICE_DNS, serving_context


def handshake(server: ssl.SSLContext, ca_pem: bytes, name: str) -> None:
    """A full TLS handshake between ``server`` and a client trusting only ``ca_pem``."""
    client = ssl.create_default_context(cadata=ca_pem.decode())
    bios = [ssl.MemoryBIO() for _ in range(4)]
    c = client.wrap_bio(bios[0], bios[1], server_hostname=name)
    s = server.wrap_bio(bios[2], bios[3], server_side=True)
    done = {c: False, s: False}
    for _ in range(10):
        for end in (c, s):
            if not done[end]:
                try:
                    end.do_handshake()
                    done[end] = True
                except ssl.SSLWantReadError:
                    pass
        bios[2].write(bios[1].read())
        bios[0].write(bios[3].read())
        if all(done.values()):
            return
    raise AssertionError("handshake did not finish")


def test_self_signed_is_its_own_ca_bundle() -> None:
    before = "cryptography" in sys.modules
    ctx, ca = serving_context("", "", None, ["127.0.0.1"])
    handshake(ctx, ca, SERVICE_DNS)
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(ctx, ca, "other.kube-system.svc")
    assert ("cryptography" in sys.modules) == before  # issued in a child process


def test_cluster_ca_issued_certificate(tmp_path: Path) -> None:
    pki = ensure_pki(tmp_path, [])
    crt, key = ensure_serving_pair(tmp_path, "metrics-server", [SERVICE_DNS])
    ctx, ca = serving_context(str(crt), str(key), pki.ca_pem, [])
    assert ca == pki.ca_pem
    handshake(ctx, ca, SERVICE_DNS)
    other = ensure_pki(tmp_path / "other", []).ca_pem
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(ctx, other, SERVICE_DNS)


def test_a_certificate_needs_its_key_and_ca() -> None:
    with pytest.raises(ValueError, match="--tls-private-key-file"):
        serving_context("tls.crt", "", b"ca", [])
    with pytest.raises(ValueError, match="the CA that issued it"):
        serving_context("tls.crt", "tls.key", None, [])
