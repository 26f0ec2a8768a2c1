"""Authentication with the real kubectl and Python client: a client-certificate user from
the cluster CA, a ``--token-auth-file`` user, a component's own kubeconfig (read by
Corral's REST client), a bad token (401), and TokenReview.

One ``corral server`` (no controllers) started with a token file.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from kubernetes import client
from kubernetes.client.rest import ApiException

from conftest import Kubectl, RunningServer, api_client_for, start_server
from corral.apiserver.client_certs import client_kubeconfig
from corral.client.rest import Client
from corral.util.pki import issue_client, load_pair

TOKEN = "file-token-0123456789"
AUTH = "system:authenticated"


@pytest.fixture(scope="module")
def authn_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    base = tmp_path_factory.mktemp("authn")
    tokens = base / "tokens.csv"
    tokens.write_text(f'{TOKEN},tok-user,1001,"devs,ops"\n')
    srv = start_server(base / "data", extra=["--token-auth-file", str(tokens)])
    yield srv
    srv.stop()


def _kubeconfig_with(srv: RunningServer, path: Path, user: dict[str, str]) -> Path:
    """The admin kubeconfig with its user's credentials replaced by ``user``."""
    import yaml

    cfg = yaml.safe_load(srv.kubeconfig.read_text())
    cfg["users"][0]["user"] = user
    path.write_text(yaml.safe_dump(cfg))
    return path


def _whoami(srv: RunningServer, kubeconfig: Path, tmp: Path) -> dict[str, Any]:
    out = Kubectl(kubeconfig, tmp / "cache")("auth", "whoami", "-o", "json").stdout
    info: dict[str, Any] = json.loads(out)["status"]["userInfo"]
    return info


def test_client_certificate_user_is_cn_and_organisations(
    authn_server: RunningServer, tmp_path: Path
) -> None:
    data = authn_server.data_dir / "pki"
    ca = load_pair(data / "ca.crt", data / "ca.key")
    assert ca is not None
    cert, key = issue_client("jane", ["devs", "qa"], dt.datetime.now(dt.UTC), ca)
    body = client_kubeconfig(
        authn_server.url,
        (data / "ca.crt").read_bytes(),
        cert.public_bytes(serialization.Encoding.PEM),
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        "jane",
    )
    path = tmp_path / "jane.kubeconfig"
    path.write_bytes(body)
    assert _whoami(authn_server, path, tmp_path) == {
        "username": "jane",
        "groups": ["devs", "qa", AUTH],
    }


def test_token_file_user(authn_server: RunningServer, tmp_path: Path) -> None:
    path = _kubeconfig_with(authn_server, tmp_path / "tok.kubeconfig", {"token": TOKEN})
    assert _whoami(authn_server, path, tmp_path) == {
        "username": "tok-user",
        "uid": "1001",
        "groups": ["devs", "ops", AUTH],
    }


def test_component_kubeconfig_is_its_own_identity(authn_server: RunningServer) -> None:
    path = authn_server.data_dir / "pki" / "scheduler.kubeconfig"

    async def whoami() -> Any:
        c = Client.from_kubeconfig(path)
        try:
            return await c.request(
                "POST",
                "/apis/authentication.k8s.io/v1/selfsubjectreviews",
                body={"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
            )
        finally:
            await c.close()

    info = asyncio.run(whoami())["status"]["userInfo"]
    assert info == {"username": "system:kube-scheduler", "groups": [AUTH]}


def test_bad_token_is_401(authn_server: RunningServer, tmp_path: Path) -> None:
    path = _kubeconfig_with(authn_server, tmp_path / "bad.kubeconfig", {"token": "wrong"})
    run = Kubectl(path, tmp_path / "cache")("get", "pods", check=False)
    assert run.returncode != 0
    assert "You must be logged in to the server" in run.stderr
    with api_client_for(path) as api, pytest.raises(ApiException) as e:
        client.CoreV1Api(api).list_namespaced_pod("default")
    assert e.value.status == 401
    assert json.loads(e.value.body)["reason"] == "Unauthorized"


def _review(token: str) -> Any:
    return client.V1TokenReview(spec=client.V1TokenReviewSpec(token=token))


def test_token_review(authn_server: RunningServer) -> None:
    with api_client_for(authn_server.kubeconfig) as api:
        authn_api = client.AuthenticationV1Api(api)
        ok = authn_api.create_token_review(_review(TOKEN))
        assert ok.status.authenticated is True
        assert ok.status.user.username == "tok-user"
        assert ok.status.user.groups == ["devs", "ops", AUTH]
        assert ok.status.audiences == ["https://kubernetes.default.svc.cluster.local"]
        bad = authn_api.create_token_review(_review("wrong"))
        assert not bad.status.authenticated
        assert bad.status.error == "invalid bearer token"
        with pytest.raises(ApiException) as e:
            authn_api.create_token_review(_review(""))
        assert e.value.status == 400
