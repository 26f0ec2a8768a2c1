"""Service accounts end to end with the real kubectl and Python client: the ``default``
ServiceAccount and ``kube-root-ca.crt`` in a new namespace, ``kubectl create token``
(duration, audience) and the token's identity (``kubectl auth whoami``), a pod-bound
TokenRequest from the Python client that stops working once its pod is gone, and the
ServiceAccount admission's projected volume on a created pod.

One ``corral server`` whose only loops are the serviceaccount and root-ca-cert-publisher
controllers.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from conftest import Kubectl, RunningServer, api_client_for, start_server

MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"


@pytest.fixture(scope="module")
def sa_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    extra = ["--no-scheduler", "--no-metrics-server"]
    extra += ["--kube-controller-manager-arg", "controllers=serviceaccount,root-ca-cert-publisher"]
    srv = start_server(tmp_path_factory.mktemp("sa") / "data", extra=extra, controllers=True)
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def api(sa_server: RunningServer) -> Iterator[Any]:
    with api_client_for(sa_server.kubeconfig) as c:
        yield c


@pytest.fixture(scope="module")
def kubectl(sa_server: RunningServer, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    return Kubectl(sa_server.kubeconfig, tmp_path_factory.mktemp("kubecache"))


@pytest.fixture(scope="module")
def namespace(api: Any) -> str:
    """A new namespace, once its controllers have given it the default ServiceAccount."""
    core = client.CoreV1Api(api)
    core.create_namespace({"metadata": {"name": "sa-test"}})
    deadline = time.monotonic() + 30
    while True:
        try:
            core.read_namespaced_service_account("default", "sa-test")
            core.read_namespaced_config_map("kube-root-ca.crt", "sa-test")
            return "sa-test"
        except ApiException as e:
            if e.status != 404 or time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _with_token(srv: RunningServer, token: str, tmp: Path) -> Kubectl:
    """kubectl with a kubeconfig whose only credential is ``token``."""
    cfg = yaml.safe_load(srv.kubeconfig.read_text())
    cfg["users"][0]["user"] = {"token": token}
    tmp.mkdir(parents=True, exist_ok=True)
    path = tmp / "token.kubeconfig"
    path.write_text(yaml.safe_dump(cfg))
    return Kubectl(path, tmp / "cache")


def test_root_ca_configmap_holds_the_cluster_ca(
    sa_server: RunningServer, api: Any, namespace: str
) -> None:
    cm = client.CoreV1Api(api).read_namespaced_config_map("kube-root-ca.crt", namespace)
    assert cm.data == {"ca.crt": (sa_server.data_dir / "pki" / "ca.crt").read_text()}


def test_kubectl_create_token_and_whoami(
    sa_server: RunningServer, kubectl: Kubectl, namespace: str, tmp_path: Path
) -> None:
    token = kubectl("create", "token", "default", "-n", namespace, "--duration", "15m").stdout
    token = token.strip()
    claims = json.loads(_b64(token.split(".")[1]))
    assert claims["sub"] == f"system:serviceaccount:{namespace}:default"
    assert claims["exp"] - claims["iat"] == 900
    who = _with_token(sa_server, token, tmp_path)("auth", "whoami", "-o", "json").stdout
    info = json.loads(who)["status"]["userInfo"]
    assert info["username"] == f"system:serviceaccount:{namespace}:default"
    assert info["groups"] == [
        "system:serviceaccounts",
        f"system:serviceaccounts:{namespace}",
        "system:authenticated",
    ]
    assert info["extra"]["authentication.kubernetes.io/credential-id"] == [f"JTI={claims['jti']}"]
    # a token for another audience is not the API server's
    other = kubectl("create", "token", "default", "-n", namespace, "--audience", "vault").stdout
    res = _with_token(sa_server, other.strip(), tmp_path / "o")("auth", "whoami", check=False)
    assert res.returncode != 0 and "Unauthorized" in res.stderr
    res = kubectl("create", "token", "ghost", "-n", namespace, check=False)
    assert 'serviceaccounts "ghost" not found' in res.stderr


def test_pod_bound_token_and_projected_volume(
    sa_server: RunningServer, api: Any, namespace: str, tmp_path: Path
) -> None:
    core = client.CoreV1Api(api)
    pod = core.create_namespaced_pod(
        namespace,
        {
            "metadata": {"name": "p"},
            "spec": {"nodeName": "nowhere", "containers": [{"name": "c", "image": "busybox"}]},
        },
    )
    volume = pod.spec.volumes[-1]
    assert volume.name.startswith("kube-api-access-")
    sources = volume.projected.sources
    assert sources[0].service_account_token.expiration_seconds == 3607
    assert sources[1].config_map.name == "kube-root-ca.crt"
    assert sources[2].downward_api.items[0].field_ref.field_path == "metadata.namespace"
    mount = pod.spec.containers[0].volume_mounts[0]
    assert (mount.name, mount.mount_path, mount.read_only) == (volume.name, MOUNT, True)

    body = {
        "spec": {
            "audiences": [],
            "expirationSeconds": 3607,
            "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "p"},
        }
    }
    tr = core.create_namespaced_service_account_token("default", namespace, body)
    who = _with_token(sa_server, tr.status.token, tmp_path)
    info = json.loads(who("auth", "whoami", "-o", "json").stdout)["status"]["userInfo"]
    assert info["extra"]["authentication.kubernetes.io/pod-name"] == ["p"]
    assert info["extra"]["authentication.kubernetes.io/node-name"] == ["nowhere"]

    # a second token, never used before its pod is deleted, is refused afterwards
    tr2 = core.create_namespaced_service_account_token("default", namespace, body)
    core.delete_namespaced_pod("p", namespace, grace_period_seconds=0)
    res = _with_token(sa_server, tr2.status.token, tmp_path / "2")("auth", "whoami", check=False)
    assert res.returncode != 0 and "Unauthorized" in res.stderr
    with pytest.raises(ApiException) as e:
        core.create_namespaced_service_account_token("default", namespace, body)
    assert e.value.status == 404


def _b64(s: str) -> bytes:
    import base64

    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))
