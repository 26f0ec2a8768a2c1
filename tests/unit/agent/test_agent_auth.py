"""The agent API's authentication and authorization (``agent/auth.py``): the kubelet's
request-to-SubjectAccessReview mapping, the x509 subject mapping, the 403 text, and a
real HTTPS round-trip of ``AgentServer`` with client certificates and tokens."""

from __future__ import annotations

import datetime as dt
import ssl
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from corral.agent.auth import (
    AgentAuth,
    ServingTLS,
    caller_from_peercert,
    forbidden_message,
    request_attributes,
)
from corral.agent.server import AgentServer
from corral.client.reviews import SUBJECT_ACCESS_REVIEWS, TOKEN_REVIEWS, Reviewer


@pytest.mark.parametrize(
    ("method", "path", "want"),
    [
        ("GET", "/containerLogs/ns/p/c", ("get", "proxy")),
        ("GET", "/logs/", ("get", "log")),
        ("GET", "/logs/messages", ("get", "log")),
        ("GET", "/logsx", ("get", "proxy")),
        ("GET", "/stats/summary", ("get", "stats")),
        ("GET", "/metrics", ("get", "metrics")),
        ("GET", "/metrics/resource", ("get", "metrics")),
        ("GET", "/pods", ("get", "proxy")),
        ("GET", "/exec/ns/p/c", ("create", "proxy")),
        ("POST", "/exec/ns/p/c", ("create", "proxy")),
        ("GET", "/attach/ns/p/c", ("create", "proxy")),
        ("GET", "/portForward/ns/p", ("create", "proxy")),
        ("POST", "/run/ns/p/c", ("create", "proxy")),
        # Corral's own subresource: the master's grant is not exec's ``nodes/proxy``
        ("POST", "/mesos/executor-message", ("create", "mesos")),
        ("POST", "/mesosx", ("create", "proxy")),
        ("PUT", "/checkpoint/ns/p/c", ("update", "checkpoint")),
        ("DELETE", "/pods", ("delete", "proxy")),
        ("PATCH", "/configz", ("patch", "proxy")),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_request_attributes(method: str, path: str, want: tuple[str, str]) -> None:
    assert request_attributes(method, path) == want


def test_forbidden_message_is_the_kubelets() -> None:
    assert forbidden_message("bob", "get", ["proxy"]) == (
        "Forbidden (user=bob, verb=get, resource=nodes, subresource(s)=[proxy])"
    )


def test_caller_from_peercert() -> None:
    cert = {
        "subject": (
            (("organizationName", "system:masters"),),
            (("organizationName", "team"),),
            (("commonName", "kube-apiserver-kubelet-client"),),
        )
    }
    caller = caller_from_peercert(cert)
    assert caller is not None
    assert caller.username == "kube-apiserver-kubelet-client"
    assert caller.groups == ("system:masters", "team", "system:authenticated")
    assert caller_from_peercert({}) is None
    assert caller_from_peercert({"subject": ((("organizationName", "x"),),)}) is None


# --- a real HTTPS round-trip ---------------------------------------------------------------


class ReviewAPI:
    """The API server's review answers: token ``alice-token`` is alice; alice may get
    nodes/metrics of n1 only; the certificate user may do anything."""

    def __init__(self) -> None:
        self.sars: list[dict[str, Any]] = []

    async def request(self, method: str, path: str, *, body: Any = None, **_: Any) -> Any:
        spec = body["spec"]
        if path == TOKEN_REVIEWS:
            if spec["token"] == "alice-token":
                return {"status": {"authenticated": True, "user": {"username": "alice"}}}
            return {"status": {"authenticated": False}}
        assert path == SUBJECT_ACCESS_REVIEWS
        self.sars.append(spec)
        ra = spec["resourceAttributes"]
        ok = spec["user"] == "kube-apiserver-kubelet-client" or (
            spec["user"] == "alice" and ra["subresource"] == "metrics" and ra["name"] == "n1"
        )
        return {"status": {"allowed": ok}}


class NoContainers:
    def log_files(self, namespace: str, pod: str, container: str) -> list[Path] | None:
        return None

    def is_running(self, namespace: str, pod: str, container: str) -> bool:
        return False

    def exec_target(self, namespace: str, pod: str, container: str) -> None:
        return None


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from corral.util.pki import issue_client, issue_serving, san_names, write_pair

    d = tmp_path_factory.mktemp("pki")
    now = dt.datetime.now(dt.UTC)
    ca = _ca(now)
    (d / "ca.crt").write_bytes(_pem(ca[0]))
    serving = issue_serving("n1", san_names(["n1", "127.0.0.1"]), now, ca)
    write_pair(d / "n1.crt", d / "n1.key", *serving)
    client = issue_client("kube-apiserver-kubelet-client", ["system:masters"], now, ca)
    write_pair(d / "client.crt", d / "client.key", *client)
    return {"dir": d}


def _pem(cert: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return bytes(cert.public_bytes(serialization.Encoding.PEM))


def _ca(now: dt.datetime) -> Any:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test-ca")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


async def test_agent_server_over_tls(pki: dict[str, Path]) -> None:
    d = pki["dir"]
    api = ReviewAPI()
    tls = ServingTLS(d / "n1.crt", d / "n1.key", (d / "ca.crt").read_bytes())
    auth = AgentAuth("n1", Reviewer(api))
    server = AgentServer(NoContainers(), "", "127.0.0.1", 0, tls=tls, auth=auth)
    await server.start()
    try:
        base = f"https://127.0.0.1:{server.port}"
        trust = ssl.create_default_context(cafile=str(d / "ca.crt"))
        with_cert = ssl.create_default_context(cafile=str(d / "ca.crt"))
        with_cert.load_cert_chain(d / "client.crt", d / "client.key")
        async with aiohttp.ClientSession() as s:
            async with s.get(f"{base}/healthz", ssl=trust) as r:
                assert r.status == 200  # public
            async with s.get(f"{base}/containerLogs/ns/p/c", ssl=trust) as r:
                assert r.status == 401
            async with s.get(
                f"{base}/containerLogs/ns/p/c",
                ssl=trust,
                headers={"Authorization": "Bearer wrong"},
            ) as r:
                assert r.status == 401
            alice = {"Authorization": "Bearer alice-token"}
            async with s.get(f"{base}/containerLogs/ns/p/c", ssl=trust, headers=alice) as r:
                assert r.status == 403
                assert await r.text() == (
                    "Forbidden (user=alice, verb=get, resource=nodes, subresource(s)=[proxy])"
                )
            async with s.get(f"{base}/metrics/resource", ssl=trust, headers=alice) as r:
                assert r.status == 404  # allowed: this agent serves no metrics
            async with s.get(f"{base}/containerLogs/ns/p/c", ssl=with_cert) as r:
                assert r.status == 404  # authorised: no such container here
                assert "not found on this node" in await r.text()
        assert {
            k: api.sars[-1][k] for k in ("user", "groups")} == {"user": "kube-apiserver-kubelet-client", "groups": [
            "system:masters", "system:authenticated"]}  # fmt: skip
        # the executor API is on plain HTTP, apart
        assert server.executor_port not in (0, server.port)
        assert server.executor_listeners.port == server.executor_port
        async with (
            aiohttp.ClientSession() as s,
            s.post(f"http://127.0.0.1:{server.executor_port}/api/v1/executor") as r,
        ):
            assert r.status == 404  # no executor API on this agent (None)
    finally:
        await server.stop()


def test_serving_tls_reloads_a_renewed_certificate(pki: dict[str, Path], tmp_path: Path) -> None:
    import shutil

    d = pki["dir"]
    crt, key = tmp_path / "a.crt", tmp_path / "a.key"
    shutil.copy(d / "n1.crt", crt)
    shutil.copy(d / "n1.key", key)
    tls = ServingTLS(crt, key, None)
    assert tls.reload_if_changed() is False
    shutil.copy(d / "client.crt", crt)  # any other valid pair
    shutil.copy(d / "client.key", key)
    assert tls.reload_if_changed() is True
    key.write_text("garbage")
    assert tls.reload_if_changed() is False  # kept the old pair
