"""Big answers go out gzipped, as kube-apiserver's response compression sends them: over
128 KiB and only to a client that asks for gzip; kubectl (whose Go transport asks for
it) reads them unchanged. Small answers and watches are never compressed."""

from __future__ import annotations

import gzip
import http.client
import json
import uuid
from pathlib import Path
from typing import Any

from conftest import Kubectl, RunningServer


def call(
    srv: RunningServer, path: str, **headers: str
) -> tuple[int, http.client.HTTPMessage, bytes]:
    conn = http.client.HTTPSConnection("127.0.0.1", srv.port, context=srv.ssl_context(), timeout=30)
    try:
        conn.request("GET", path, headers={"Authorization": f"Bearer {srv.token}", **headers})
        r = conn.getresponse()
        return r.status, r.headers, r.read(2**20) if "watch" in path else r.read()
    finally:
        conn.close()


def _big(listed: dict[str, Any]) -> list[str]:
    """The test's ConfigMaps (a namespace also has ``kube-root-ca.crt``)."""
    return sorted(n for cm in listed["items"] if (n := cm["metadata"]["name"]).startswith("big"))


def test_a_big_list_is_gzipped_for_clients_that_ask_and_kubectl_reads_it(
    server: RunningServer, kubectl: Kubectl
) -> None:
    ns = f"gz-{uuid.uuid4().hex[:6]}"
    kubectl("create", "namespace", ns)
    for i in range(3):  # 3 x 60 KB: the list is over the 128 KiB threshold, one item is not
        kubectl("create", "configmap", f"big-{i}", "-n", ns, f"--from-literal=data={'x' * 60_000}")
    path = f"/api/v1/namespaces/{ns}/configmaps"

    status, headers, body = call(server, path, **{"Accept-Encoding": "gzip, deflate"})
    assert status == 200
    assert headers["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in headers.get_all("Vary", [])
    assert len(body) < 20_000  # 180 KB of repeats
    listed: dict[str, Any] = json.loads(gzip.decompress(body))
    assert _big(listed) == ["big-0", "big-1", "big-2"]

    status, headers, plain = call(server, path)  # no Accept-Encoding: as stored
    assert status == 200 and "Content-Encoding" not in headers
    assert json.loads(plain) == listed
    status, headers, _ = call(server, path, **{"Accept-Encoding": "gzip;q=0"})
    assert "Content-Encoding" not in headers

    status, headers, one = call(server, f"{path}/big-0", **{"Accept-Encoding": "gzip"})
    assert status == 200 and "Content-Encoding" not in headers  # 60 KB: under the threshold
    assert json.loads(one)["data"]["data"] == "x" * 60_000

    out = json.loads(kubectl("get", "configmaps", "-n", ns, "-o", "json").stdout)
    assert _big(out) == ["big-0", "big-1", "big-2"]
    kubectl("delete", "namespace", ns, "--wait=false")


def test_a_watch_is_never_gzipped(server: RunningServer, kubectl: Kubectl, tmp_path: Path) -> None:
    ns = f"gzw-{uuid.uuid4().hex[:6]}"
    kubectl("create", "namespace", ns)
    (tmp_path / "data").write_text("y" * 140_000)  # one argument may not be that long
    kubectl("create", "configmap", "big", "-n", ns, f"--from-file={tmp_path / 'data'}")
    path = f"/api/v1/namespaces/{ns}/configmaps?watch=true&timeoutSeconds=1"
    status, headers, body = call(server, path, **{"Accept-Encoding": "gzip"})
    assert status == 200 and "Content-Encoding" not in headers
    first = json.loads(body.split(b"\n", 1)[0])
    assert first["type"] == "ADDED" and first["object"]["metadata"]["name"] == "big"
    kubectl("delete", "namespace", ns, "--wait=false")
