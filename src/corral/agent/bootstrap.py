"""Joining a cluster with a bootstrap token, and renewing the node's client certificate.

``corral agent --server URL --token ID.SECRET [--ca-cert-hash sha256:HEX]`` without a
kubeconfig runs ``join`` first, kubeadm's token discovery and the kubelet's TLS
bootstrap:

1. read ``kube-public/cluster-info`` anonymously, without trusting the server's TLS
   certificate yet, and check its ``jws-kubeconfig-ID`` signature with the token (only a
   server that knows the token can sign; ``api/bootstraptoken.verify_detached``); with
   ``--ca-cert-hash``, the CA in it must also have that public key hash;
2. with the token (user ``system:bootstrap:ID``) and now the CA, create a
   CertificateSigningRequest for ``CN=system:node:NAME, O=system:nodes`` (signer
   ``kubernetes.io/kube-apiserver-client-kubelet``, a fresh P-256 key), which the
   controller manager approves (``csrapproving``) and signs (``csrsigning``);
3. write the certificate and key to ``DATA/pki/`` and ``DATA/kubeconfig`` (0600) for the
   agent to run with, as a normal agent.

``renew_loop`` runs beside the agent: at 80% of the certificate's lifetime it asks for a
new one the same way, authenticated by the current certificate (a ``selfnodeclient``
renewal), rewrites the files and points the running client at them. An agent that
already holds ``DATA/kubeconfig`` joins no more: it starts with that file.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import logging
import ssl
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from corral.api import bootstraptoken as bt
from corral.api.errors import StatusError
from corral.client.rest import Client, KubeConfig, Resource, parse_servers, servers_extension
from corral.util.pki import write_atomic

log = logging.getLogger("corral.agent.bootstrap")

Obj = dict[str, Any]

CSRS = Resource("certificates.k8s.io", "v1", "certificatesigningrequests", namespaced=False)
SIGNER = "kubernetes.io/kube-apiserver-client-kubelet"
RENEW_AT = 0.8


class JoinError(RuntimeError):
    """The join cannot go on: the message says why, in one line."""


def _public_key_hash(ca_pem: bytes) -> str:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    cert = x509.load_pem_x509_certificate(ca_pem)
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return bt.ca_cert_hash(spki)


def verify_cluster_info(cm: Obj, token: str, ca_cert_hash: str = "") -> bytes | None:
    """The CA (PEM) of a ``cluster-info`` ConfigMap signed with ``token``, None when it
    carries none (plain http); ``JoinError`` with kubeadm's words otherwise."""
    parsed = bt.parse_token(token)
    if parsed is None:
        raise JoinError(
            f'the bootstrap token "{token}" was not of the form "^([a-z0-9]{{6}}).([a-z0-9]{{16}})$"'
        )
    token_id, secret = parsed
    data = cm.get("data") or {}
    content = data.get(bt.KUBECONFIG_KEY)
    if not content:
        raise JoinError("there is no kubeconfig in the cluster-info ConfigMap")
    jws = data.get(bt.JWS_PREFIX + token_id)
    if not jws:
        raise JoinError(
            "there is no JWS signed token in the cluster-info ConfigMap. This token id "
            f'"{token_id}" is invalid for this cluster, or if this token is new, wait a few '
            "seconds for the controller manager to sign it"
        )
    if not bt.verify_detached(content, jws, token_id, secret):
        raise JoinError(
            "failed to verify JWS signature of received cluster info object, can't trust "
            "this API Server"
        )
    cfg = yaml.safe_load(content)
    clusters = cfg.get("clusters") or []
    if not clusters:
        raise JoinError("the cluster-info kubeconfig names no cluster")
    ca_b64 = (clusters[0].get("cluster") or {}).get("certificate-authority-data")
    ca_pem = base64.b64decode(ca_b64) if ca_b64 else None
    if ca_cert_hash:
        if ca_pem is None:
            raise JoinError("cluster-info carries no CA, so --ca-cert-hash cannot match")
        found = _public_key_hash(ca_pem)
        if found.lower() != ca_cert_hash.lower():
            raise JoinError(
                f"cluster CA found in cluster-info ConfigMap is invalid: none of the public "
                f'keys "{found}" are pinned'
            )
    return ca_pem


async def discover(server: str, timeout: float = 10.0) -> Obj:
    """``kube-public/cluster-info`` read anonymously (the server's certificate is not
    checked: the signature is what is trusted)."""
    path = f"{server}/api/v1/namespaces/{bt.KUBE_PUBLIC}/configmaps/{bt.CLUSTER_INFO}"
    insecure: ssl.SSLContext | bool = False
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as s,
        s.get(path, ssl=insecure) as r,
    ):
        body = await r.read()
        if r.status != 200:
            raise JoinError(
                f"cannot read cluster-info from {server}: HTTP {r.status} {body[:200]!r}"
            )
        out: Obj = yaml.safe_load(body)
        return out


def new_csr(node: str) -> tuple[bytes, bytes]:
    """(CSR PEM, key PEM) for ``CN=system:node:NODE, O=system:nodes`` (P-256)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:nodes"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"system:node:{node}"),
        ]
    )
    csr = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return csr.public_bytes(serialization.Encoding.PEM), key_pem


async def request_certificate(
    client: Client, node: str, *, timeout: float = 120.0, poll: float = 0.5
) -> tuple[bytes, bytes]:
    """Create a node client CSR with ``client``'s credentials and wait until it is
    signed: (certificate PEM, key PEM). ``JoinError`` when denied, failed or too slow."""
    csr_pem, key_pem = new_csr(node)
    body = {
        "apiVersion": "certificates.k8s.io/v1",
        "kind": "CertificateSigningRequest",
        "metadata": {"generateName": "node-csr-"},
        "spec": {
            "request": base64.b64encode(csr_pem).decode(),
            "signerName": SIGNER,
            "usages": ["digital signature", "client auth"],
        },
    }
    created = await client.create(CSRS, body)
    name = created["metadata"]["name"]
    log.info("certificate signing request %s sent for system:node:%s", name, node)
    try:
        async with asyncio.timeout(timeout):
            while True:
                csr = await client.get(CSRS, name)
                status = csr.get("status") or {}
                for c in status.get("conditions") or []:
                    if c.get("type") in ("Denied", "Failed"):
                        raise JoinError(
                            f"certificate signing request {name} {c['type'].lower()}: "
                            f"{c.get('message') or c.get('reason') or ''}".rstrip(": ")
                        )
                if status.get("certificate"):
                    return base64.b64decode(status["certificate"]), key_pem
                await asyncio.sleep(poll)
    except TimeoutError:
        raise JoinError(
            f"certificate signing request {name} was not signed within {timeout:.0f} s "
            "(is the controller manager running with csrapproving and csrsigning?)"
        ) from None


def write_credentials(
    data_dir: Path,
    server: str,
    ca_pem: bytes | None,
    cert_pem: bytes,
    key_pem: bytes,
    servers: list[str] | None = None,
) -> Path:
    """``DATA/pki/kubelet-client.{crt,key}`` and ``DATA/kubeconfig`` (0600); its path.
    ``servers``: every API server of an HA cluster (the ``corral.dev/servers`` extension)."""
    pki = data_dir / "pki"
    pki.mkdir(parents=True, exist_ok=True)
    write_atomic(pki / "kubelet-client.key", key_pem, 0o600)
    write_atomic(pki / "kubelet-client.crt", cert_pem, 0o644)
    cluster: Obj = {"server": server}
    if ca_pem is not None:
        cluster["certificate-authority-data"] = base64.b64encode(ca_pem).decode()
    if extensions := servers_extension([server, *(servers or [])]):
        cluster["extensions"] = extensions
    cfg = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "corral", "cluster": cluster}],
        "users": [
            {
                "name": "node",
                "user": {
                    "client-certificate-data": base64.b64encode(cert_pem).decode(),
                    "client-key-data": base64.b64encode(key_pem).decode(),
                },
            }
        ],
        "contexts": [{"name": "corral", "context": {"cluster": "corral", "user": "node"}}],
        "current-context": "corral",
        "preferences": {},
    }
    path = data_dir / "kubeconfig"
    write_atomic(path, yaml.safe_dump(cfg, sort_keys=False).encode(), 0o600)
    return path


async def join(
    server: str,
    token: str,
    node: str,
    data_dir: Path,
    *,
    ca_cert_hash: str = "",
    timeout: float = 120.0,
) -> Path:
    """Discovery, CSR, credentials: the kubeconfig path the agent then runs with.
    ``server`` may name several API servers (``URL,URL``): discovery reads the first that
    answers, the CSR fails over between them, and the kubeconfig names them all."""
    servers = parse_servers(server)
    info: Obj | None = None
    for i, server in enumerate(servers):
        try:
            info = await discover(server)
            break
        except (aiohttp.ClientError, OSError, TimeoutError) as e:
            if i == len(servers) - 1:
                raise JoinError(f"cannot reach {server}: {e or type(e).__name__}") from None
            log.warning("cannot read cluster-info from %s (%s); trying the next server", server, e)
    assert info is not None
    ca_pem = verify_cluster_info(info, token, ca_cert_hash)
    config = KubeConfig(servers[0], token, ca_pem, servers=servers)
    client = Client(config, user_agent="corral-agent/bootstrap")
    try:
        cert_pem, key_pem = await request_certificate(client, node, timeout=timeout)
    except StatusError as e:
        raise JoinError(f"the API server refused the join: {e.message}") from None
    finally:
        await client.close()
    path = write_credentials(data_dir, servers[0], ca_pem, cert_pem, key_pem, servers)
    log.info("joined as system:node:%s (kubeconfig %s)", node, path)
    return path


def validity(cert_pem: bytes) -> tuple[dt.datetime, dt.datetime]:
    from cryptography import x509

    cert = x509.load_pem_x509_certificate(cert_pem)
    return cert.not_valid_before_utc, cert.not_valid_after_utc


def renew_time(cert_pem: bytes) -> dt.datetime:
    """When to renew: 80% into the certificate's lifetime."""
    start, end = validity(cert_pem)
    return start + (end - start) * RENEW_AT


async def renew_loop(client: Client, node: str, kubeconfig: Path, data_dir: Path) -> None:
    """Renew the client certificate of ``kubeconfig`` at 80% of its lifetime, forever;
    ``client`` (the agent's) switches to the new one. A failed renewal is retried in a
    minute. Returns at once when the kubeconfig has no client certificate."""
    while True:
        cfg = KubeConfig.load(kubeconfig)
        if cfg.cert_pem is None:
            return
        wait = (renew_time(cfg.cert_pem) - dt.datetime.now(dt.UTC)).total_seconds()
        if wait > 0:
            await asyncio.sleep(wait)
        renewer = Client(cfg.with_servers(client.config.servers), user_agent="corral-agent/renew")
        try:
            cert_pem, key_pem = await request_certificate(renewer, node)
        except (JoinError, StatusError, OSError, aiohttp.ClientError) as e:
            log.warning("certificate renewal failed (retry in 60 s): %s", e)
            await asyncio.sleep(60)
            continue
        finally:
            await renewer.close()
        write_credentials(data_dir, cfg.server, cfg.ca_pem, cert_pem, key_pem, cfg.servers)
        # the new certificate, and the servers the client was pointed at (``--server``)
        client.config = KubeConfig.load(kubeconfig).with_servers(client.config.servers)
        await client.close()  # the next request opens a session with the new certificate
        log.info("client certificate renewed until %s", validity(cert_pem)[1])
