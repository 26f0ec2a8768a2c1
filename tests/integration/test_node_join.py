"""Joining with a bootstrap token, end to end with the real kubectl: ``corral token
create`` writes the token, the controller manager's bootstrap signer signs
``cluster-info``, the agent's join (``agent/bootstrap.join``, what ``corral agent
--server URL --token T`` runs) discovers the CA, sends its CSR, and csrapproving and
csrsigning give it ``system:node:NAME``; a wrong token is refused. Then ``kubectl get
csr`` and ``kubectl certificate approve`` on a CSR nobody auto-approves.

One ``corral server`` with only the csrapproving, csrsigning and bootstrapsigner
controllers.
"""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import Kubectl, RunningServer, start_server
from corral.agent.bootstrap import JoinError, join, new_csr


@pytest.fixture(scope="module")
def join_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    base = tmp_path_factory.mktemp("join")
    extra = ["--no-scheduler", "--no-metrics-server"]
    extra += [
        "--kube-controller-manager-arg",
        "controllers=csrapproving,csrsigning,bootstrapsigner",
    ]
    srv = start_server(base / "data", extra=extra, controllers=True)
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def kc(join_server: RunningServer, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    return Kubectl(join_server.kubeconfig, tmp_path_factory.mktemp("kubectl-cache"))


def _corral(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "corral", *args], capture_output=True, text=True, timeout=60
    )


def _join_with_retry(server: str, token: str, node: str, data: Path) -> Path:
    """The signer signs cluster-info a moment after the token appears: retry that one."""
    deadline = time.monotonic() + 30
    while True:
        try:
            return asyncio.run(join(server, token, node, data, timeout=60))
        except JoinError as e:
            if "no JWS signed token" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def test_token_join_gives_node_identity(
    join_server: RunningServer, kc: Kubectl, tmp_path: Path
) -> None:
    out = _corral("token", "create", "--data-dir", str(join_server.data_dir), "--ttl", "1h")
    assert out.returncode == 0, out.stderr
    token = out.stdout.splitlines()[0]
    assert "corral agent --server https://" in out.stdout and "--ca-cert-hash sha256:" in out.stdout
    listed = _corral("token", "list", "--data-dir", str(join_server.data_dir))
    assert token in listed.stdout and "authentication,signing" in listed.stdout
    ca_hash = out.stdout.split("--ca-cert-hash ")[1].split()[0]
    server = out.stdout.split("--server ")[1].split()[0]

    kubeconfig = _join_with_retry(server, token, "joiner", tmp_path / "agent")
    who = kc("auth", "whoami", "-o", "json", "--kubeconfig", str(kubeconfig))
    info = json.loads(who.stdout)["status"]["userInfo"]
    assert info["username"] == "system:node:joiner"
    assert "system:nodes" in info["groups"]

    csrs = kc("get", "csr").stdout
    assert "kubernetes.io/kube-apiserver-client-kubelet" in csrs
    assert "system:bootstrap:" + token.split(".")[0] in csrs and "Approved,Issued" in csrs

    # a token the server does not know: the signature cannot be checked, nothing joins
    wrong = token.split(".")[0] + "." + "0" * 16
    with pytest.raises(JoinError, match="failed to verify JWS signature"):
        asyncio.run(join(server, wrong, "intruder", tmp_path / "bad", timeout=10))
    unknown = "zzzzzz.0123456789abcdef"
    with pytest.raises(JoinError, match="no JWS signed token"):
        asyncio.run(join(server, unknown, "intruder", tmp_path / "bad", timeout=10))
    # a pinned CA hash that does not match is refused before anything is sent
    with pytest.raises(JoinError, match="none of the public keys"):
        asyncio.run(join(server, token, "x", tmp_path / "bad", ca_cert_hash="sha256:" + "0" * 64))
    assert ca_hash.startswith("sha256:")

    deleted = _corral(
        "token", "delete", token.split(".")[0], "--data-dir", str(join_server.data_dir)
    )
    assert deleted.returncode == 0, deleted.stderr


def test_kubectl_certificate_approve(kc: Kubectl) -> None:
    csr_pem, _key = new_csr("manual")
    manifest = {
        "apiVersion": "certificates.k8s.io/v1",
        "kind": "CertificateSigningRequest",
        "metadata": {"name": "manual-csr"},
        "spec": {
            "request": base64.b64encode(csr_pem).decode(),
            "signerName": "example.com/custom",
            "usages": ["digital signature", "client auth"],
            "expirationSeconds": 3600,
        },
    }
    kc("create", "-f", "-", input=json.dumps(manifest))
    row = kc("get", "csr", "manual-csr").stdout.splitlines()
    assert row[0].split() == [
        "NAME",
        "AGE",
        "SIGNERNAME",
        "REQUESTOR",
        "REQUESTEDDURATION",
        "CONDITION",
    ]
    assert row[1].split()[2:] == ["example.com/custom", "admin", "60m", "Pending"]
    kc("certificate", "approve", "manual-csr")
    got = json.loads(kc("get", "csr", "manual-csr", "-o", "json").stdout)
    cond = got["status"]["conditions"][0]
    assert (cond["type"], cond["status"], cond["reason"]) == ("Approved", "True", "KubectlApprove")
    assert got["spec"]["username"] == "admin"
    # a plain update keeps the stored status: approval goes through /approval only
    got["status"]["conditions"] = []
    kc("replace", "-f", "-", input=json.dumps(got))
    again = json.loads(kc("get", "csr", "manual-csr", "-o", "json").stdout)
    assert [c["type"] for c in again["status"]["conditions"]] == ["Approved"]
    # Denied beside Approved: refused by validation, through the Python client
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    from conftest import api_client_for

    with api_client_for(kc.kubeconfig) as api:
        certs = client.CertificatesV1Api(api)
        body = api.sanitize_for_serialization(certs.read_certificate_signing_request("manual-csr"))
        body["status"]["conditions"].append({"type": "Denied", "status": "True", "reason": "No"})
        with pytest.raises(ApiException) as e:
            certs.replace_certificate_signing_request_approval("manual-csr", body)
    assert e.value.status == 422
    assert "Approved and Denied conditions are mutually exclusive" in e.value.body
