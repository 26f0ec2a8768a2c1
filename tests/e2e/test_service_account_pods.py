"""A pod calls the API as its service account, through the ``kubernetes`` Service.

Nothing faked: a real server with its controllers (the ServiceAccount and root-CA
controllers make ``default`` and ``kube-root-ca.crt``), a real ``oci`` agent with its
in-process proxy (``--proxy auto``: the ClusterIP 10.96.0.1:443 is DNATed to the
endpoint the API server's endpoint reconciler publishes, its advertise address), and the
busybox image. The agent fills the pod's ``kube-api-access-*`` projected volume with a
TokenRequest bound to the pod; the pod presents that token to
``https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT``, verifying the server
against the volume's ``ca.crt``. busybox's own ``wget`` cannot be the client: its TLS
1.2 client sends no signature_algorithms, so the server would have to sign with SHA-1,
which OpenSSL refuses at any security level above 0 (and it verifies no certificate
anyway). So the pod (busybox image, real runc) gets the host's ``openssl`` binary and
libraries as read-only hostPath mounts and speaks HTTP/1.0 through ``openssl
s_client -verify_return_error``. A Role allowing ``list pods`` bound to the
namespace's ``default`` ServiceAccount lets it list pods; listing secrets is 403; a pod
with ``automountServiceAccountToken: false`` has no such directory.

Root only (runc, CNI, iptables); skips with the reason otherwise.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator

import pytest
from e2ekit import Cluster, Obj, pod_manifest, require, running, running_cluster

SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
API = "https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT"


def call(path: str, method: str = "GET", body: str = "") -> str:
    """A shell line: ``method path`` as the pod's service account over TLS verified
    against the pod's ``ca.crt`` and the ClusterIP in the serving certificate; prints
    the HTTP answer (status line, headers, body)."""
    head = (
        f"{method} {path} HTTP/1.0\\r\\nHost: kubernetes.default.svc\\r\\n"
        f"Authorization: Bearer $(cat {SA_DIR}/token)\\r\\n"
        f"Content-Type: application/json\\r\\nContent-Length: {len(body)}\\r\\n\\r\\n"
    )
    return (
        f"printf \"{head}%s\" '{body}' | /usr/local/bin/openssl s_client -quiet "
        f"-CAfile {SA_DIR}/ca.crt -verify_return_error -verify_ip $KUBERNETES_SERVICE_HOST "
        f"-connect $KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT 2>/dev/null"
    )


def answer(raw: str) -> tuple[int, Obj]:
    """The status code and JSON body of an HTTP/1.x answer (``\\r\\n`` read as ``\\n``)."""
    head, _, body = raw.replace("\r\n", "\n").partition("\n\n")
    assert head.startswith("HTTP/1.") and body, f"no HTTP answer: {raw!r}"
    return int(head.split()[1]), json.loads(body)


def with_host_openssl(pod: Obj) -> Obj:
    """``pod`` with the host's ``openssl`` and its libraries mounted read-only (see the
    module docstring: busybox's own TLS client cannot talk to a TLS 1.2+ server that
    refuses SHA-1 signatures, and verifies no certificate)."""
    mounts = {
        "libs": ("/usr/lib/x86_64-linux-gnu", "/lib/x86_64-linux-gnu", "Directory"),
        "loader": ("/usr/lib64", "/lib64", "Directory"),
        "openssl": ("/usr/bin/openssl", "/usr/local/bin/openssl", "File"),
    }
    pod["spec"]["volumes"] = [
        {"name": n, "hostPath": {"path": src, "type": kind}} for n, (src, _, kind) in mounts.items()
    ]
    pod["spec"]["containers"][0]["volumeMounts"] = [
        {"name": n, "mountPath": dst, "readOnly": True} for n, (_, dst, _) in mounts.items()
    ]
    return pod


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    if os.geteuid() != 0 or not shutil.which("iptables-restore"):
        pytest.skip("the Service data path needs root and iptables-restore")
    require("oci")
    base = tmp_path_factory.mktemp("sapods-oci")
    with running_cluster(
        base, "oci", "sapods", controllers=True, agent_args=["--proxy", "auto"]
    ) as c:
        yield c


def test_pod_lists_pods_with_its_token_and_is_refused_secrets(cluster: Cluster) -> None:
    ns = cluster.ns()
    k = cluster.kubectl
    cluster.wait(  # the controllers' ServiceAccount and CA bundle: the admission needs them
        "default ServiceAccount and kube-root-ca.crt",
        lambda: (
            k("get", "sa/default", "cm/kube-root-ca.crt", "-n", ns, check=False).returncode == 0
        ),
    )
    k("create", "role", "pod-reader", "--verb=list", "--resource=pods", "-n", ns)
    k("create", "rolebinding", "pod-reader", "--role=pod-reader",
      f"--serviceaccount={ns}:default", "-n", ns)  # fmt: skip
    cluster.apply(ns, with_host_openssl(pod_manifest("caller", cluster.image, ["sleep", "3600"])))
    opted_out = pod_manifest("quiet", cluster.image, ["sleep", "3600"])
    opted_out["spec"]["automountServiceAccountToken"] = False
    cluster.apply(ns, opted_out)
    pod = cluster.wait_pod(ns, "caller", running, timeout=60)
    cluster.wait_pod(ns, "quiet", running, timeout=60)

    volume = next(v for v in pod["spec"]["volumes"] if v["name"].startswith("kube-api-access-"))
    assert volume["projected"]["sources"][0]["serviceAccountToken"]["expirationSeconds"] == 3607
    ca = cluster.exec(ns, "caller", "cat", f"{SA_DIR}/ca.crt")
    assert ca.strip() == (cluster.server.data_dir / "pki" / "ca.crt").read_text().strip()
    assert cluster.exec(ns, "caller", "cat", f"{SA_DIR}/namespace") == ns

    # the endpoint reconciler's objects, which the proxy follows
    sl = json.loads(k("get", "endpointslice/kubernetes", "-n", "default", "-o", "json").stdout)
    assert sl["metadata"]["labels"]["kubernetes.io/service-name"] == "kubernetes"
    assert sl["addressType"] == "IPv4" and sl["ports"][0]["name"] == "https"

    def run(path: str, method: str = "GET", body: str = "") -> tuple[int, Obj]:
        return answer(cluster.exec(ns, "caller", "sh", "-c", call(path, method, body)))

    code, listed = run(f"/api/v1/namespaces/{ns}/pods")
    assert code == 200 and listed["kind"] == "PodList"
    assert {p["metadata"]["name"] for p in listed["items"]} == {"caller", "quiet"}

    code, refused = run(f"/api/v1/namespaces/{ns}/secrets")
    assert code == 403
    assert refused["message"] == (
        f'secrets is forbidden: User "system:serviceaccount:{ns}:default" cannot list '
        f'resource "secrets" in API group "" in the namespace "{ns}"'
    )

    review = '{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}'
    code, who = run("/apis/authentication.k8s.io/v1/selfsubjectreviews", "POST", review)
    assert code == 201, who
    user = who["status"]["userInfo"]
    assert user["username"] == f"system:serviceaccount:{ns}:default"
    assert user["extra"]["authentication.kubernetes.io/pod-name"] == ["caller"]

    listing = cluster.exec(ns, "quiet", "sh", "-c", f"test -e {SA_DIR} || echo absent")
    assert listing.strip() == "absent"
    assert not any(
        v["name"].startswith("kube-api-access-")
        for v in cluster.pod(ns, "quiet")["spec"].get("volumes") or []
    )
