"""The metrics server's serving certificate, and the caBundle its APIService carries.

Called by ``MetricsServer.run`` (``metrics/server.py``). Two cases, as metrics-server:

- ``--tls-cert-file``/``--tls-private-key-file`` given (``corral server``/``corral up``
  pass a pair issued by the cluster CA, ``apiserver/certs.ensure_serving_pair``): the
  caBundle is the kubeconfig's certificate authority, which issued it;
- none: a fresh self-signed certificate (metrics-server's default), issued in a
  short-lived child process (``corral.util.pki``) so ``cryptography`` never enters this
  process; the caBundle is that certificate itself.

Either way the APIService carries ``caBundle`` and no ``insecureSkipTLSVerify``: the
aggregator verifies the server name ``metrics-server.kube-system.svc`` against it.
"""

from __future__ import annotations

import ssl
import tempfile
import time
from pathlib import Path

from corral.util.pki import self_signed_in_child

SERVICE_DNS = "metrics-server.kube-system.svc"


def serving_context(
    cert_file: str, key_file: str, ca_pem: bytes | None, hosts: list[str], client_ca: str = ""
) -> tuple[ssl.SSLContext, bytes]:
    """(server TLS context, caBundle PEM). Blocking: run it in a thread. With
    ``client_ca`` (PEM) a client certificate is asked for and, when sent, verified against
    it (``metrics/auth.py`` reads who it names)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_alpn_protocols(["http/1.1"])
    if client_ca:
        ctx.verify_mode = ssl.CERT_OPTIONAL
        ctx.load_verify_locations(cadata=client_ca)
    if cert_file:
        if not key_file:
            raise ValueError("--tls-cert-file needs --tls-private-key-file")
        if ca_pem is None:
            raise ValueError("--tls-cert-file needs a kubeconfig with the CA that issued it")
        ctx.load_cert_chain(cert_file, key_file)
        return ctx, ca_pem
    with tempfile.TemporaryDirectory(prefix="corral-metrics-") as d:
        cert, key = Path(d) / "tls.crt", Path(d) / "tls.key"
        names = [SERVICE_DNS, "localhost", *hosts]
        self_signed_in_child(cert, key, f"metrics-server@{int(time.time())}", names)
        ctx.load_cert_chain(cert, key)
        return ctx, cert.read_bytes()
