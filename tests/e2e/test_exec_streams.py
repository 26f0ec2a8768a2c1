"""Exec streams on real ``oci`` pods: stdin held open, its v5 close, large inputs, ``kubectl cp``.

Through the real API server (``apiserver/proxy.py``) to a real agent (``agent/server.py``)
and ``runc exec`` in a busybox container (the test image carries every applet of the
host's busybox, ``tar`` included, as ``corral.local/busybox`` does):

- the Python client's own e2e shapes (kubernetes-client/python
  ``kubernetes/e2e_test/test_client.py``: ``test_pod_apis``, ``test_pod_exec_close_channel``,
  ``test_exit_code``): ``sh`` with stdin open answers line by line, in text and binary
  frames; ``close_channel(0)`` (v5: ``[255, 0]``) ends ``cat``; the exit status arrives
  on channel 3 as a metav1.Status;
- ``kubectl cp`` both ways (tar over exec) and ``kubectl exec -i`` with a large stdin,
  checked by SHA-256 on the other side: 5 MB, and the issue's 20 MB copy and 100 MB
  stdin (about 3 s together here); ``CORRAL_SMALL_STREAMS=1`` leaves the large ones out
  on a slow machine.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2ekit import Cluster, pod_manifest, require, running, running_cluster
from kubernetes import client, config
from kubernetes.stream import stream
from kubernetes.stream.ws_client import ERROR_CHANNEL, WSClient

MB = 1024 * 1024
NEEDS_BIG = pytest.mark.skipif(
    os.environ.get("CORRAL_SMALL_STREAMS") == "1", reason="CORRAL_SMALL_STREAMS=1: small only"
)
POD = "shell"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    require("oci")
    with running_cluster(tmp_path_factory.mktemp("exec-streams"), "oci", "exec-streams") as c:
        yield c


@pytest.fixture(scope="module")
def ns(cluster: Cluster) -> str:
    """A namespace with one running busybox pod, ``shell``."""
    name = cluster.ns()
    cluster.apply(name, pod_manifest(POD, cluster.image, ["sh", "-c", "exec sleep 3600"]))
    cluster.wait_pod(name, POD, running, timeout=60)
    return name


@pytest.fixture(scope="module")
def v1(cluster: Cluster) -> Iterator[client.CoreV1Api]:
    cfg = client.Configuration()
    config.load_kube_config(config_file=str(cluster.server.kubeconfig), client_configuration=cfg)
    with client.ApiClient(cfg) as c:
        yield client.CoreV1Api(c)


def _open(v1: client.CoreV1Api, ns: str, argv: list[str], **kw: Any) -> WSClient:
    resp: WSClient = stream(
        v1.connect_post_namespaced_pod_exec,
        POD,
        ns,
        command=argv,
        stderr=True,
        stdin=True,
        stdout=True,
        tty=False,
        _preload_content=False,
        **kw,
    )
    return resp


def _shut(resp: WSClient) -> None:
    """Close the client's socket for good (its ``close()`` returns early once the server
    has closed, which would leave an unclosed-socket warning)."""
    resp.close()
    resp.sock.shutdown()


def _status(resp: WSClient, deadline: float) -> dict[str, Any]:
    """The Status on the error channel once the server has sent it."""
    line: Any = ""
    while not line and time.monotonic() < deadline:
        resp.update(timeout=1)
        line = resp.read_channel(ERROR_CHANNEL)
    assert line, "no Status on the error channel"
    status: dict[str, Any] = json.loads(line)
    return status


# --- the Python client's e2e shapes ---------------------------------------------------------
def _output(v1: client.CoreV1Api, ns: str, argv: list[str], binary: bool = False) -> Any:
    """What ``argv`` printed on stdout, stdin closed: ``stream()``'s preloaded form, read
    the same way (``run_forever``, ``read_all``) but with the socket closed after."""
    resp: WSClient = stream(
        v1.connect_get_namespaced_pod_exec, POD, ns, command=argv,
        stderr=False, stdin=False, stdout=True, tty=False, binary=binary,
        _preload_content=False,
    )  # fmt: skip
    try:
        resp.run_forever(timeout=30)
        assert not resp.is_open()
        return resp.read_all()
    finally:
        _shut(resp)


def test_exec_without_stdin_runs_the_applets(v1: client.CoreV1Api, ns: str) -> None:
    """``test_pod_apis``' first calls: ``seq``, ``gzip`` and ``uptime`` are in the image."""
    out = _output(v1, ns, ["/bin/sh", "-c", "for i in $(seq 1 3); do date; done"])
    assert isinstance(out, str) and len(out.splitlines()) == 3, out
    packed = _output(v1, ns, ["/bin/sh", "-c", 'echo -n "This is a test string" | gzip'], True)
    assert gzip.decompress(packed).decode() == "This is a test string"
    up = _output(v1, ns, ["uptime"])
    assert len(up.splitlines()) == 1 and "load average" in up, up


@pytest.mark.parametrize("binary", [False, True], ids=["text-frames", "binary-frames"])
def test_exec_with_stdin_open_answers_line_by_line(
    v1: client.CoreV1Api, ns: str, binary: bool
) -> None:
    """``test_pod_apis``: ``sh`` reads commands from a stdin that stays open."""

    def enc(s: str) -> Any:
        return s.encode() if binary else s

    resp = _open(v1, ns, ["/bin/sh"], binary=binary)
    try:
        resp.write_stdin(enc("echo test string 1\n"))
        assert resp.readline_stdout(timeout=10) == enc("test string 1")
        assert not resp.peek_stderr()
        resp.write_stdin(enc("echo test string 2 >&2\n"))
        assert resp.readline_stderr(timeout=10) == enc("test string 2")
        assert not resp.peek_stdout()
        resp.write_stdin(enc("exit\n"))
        status = _status(resp, time.monotonic() + 15)
        assert status == {"metadata": {}, "status": "Success"}
        resp.update(timeout=5)
        assert not resp.is_open()
    finally:
        _shut(resp)


def test_exec_close_stdin_channel_ends_cat(v1: client.CoreV1Api, ns: str) -> None:
    """``test_pod_exec_close_channel``: v5's ``[255, 0]`` is EOF on the command's stdin."""
    resp = _open(v1, ns, ["/bin/sh", "-c", "cat"])
    try:
        assert resp.subprotocol == "v5.channel.k8s.io"
        resp.write_stdin("test-close\n")
        assert resp.readline_stdout(timeout=10) == "test-close"
        resp.write_stdin("second\n")
        assert resp.readline_stdout(timeout=10) == "second"
        resp.close_channel(0)
        resp.run_forever(timeout=15)
        assert not resp.is_open(), "the session should end once cat has read EOF"
        assert resp.returncode == 0
    finally:
        _shut(resp)


def test_exec_exit_status_after_stdin_closes(v1: client.CoreV1Api, ns: str) -> None:
    """A non-zero exit, after reading stdin to its end, is a Failure Status on channel 3."""
    resp = _open(v1, ns, ["/bin/sh", "-c", "wc -l; exit 3"])
    try:
        resp.write_stdin("a\nb\n")
        resp.close_channel(0)
        resp.run_forever(timeout=15)
        assert not resp.is_open()
        assert resp.read_stdout().strip() == "2"
        status = json.loads(resp.read_channel(ERROR_CHANNEL))
        assert status["status"] == "Failure" and status["reason"] == "NonZeroExitCode"
        assert status["details"]["causes"] == [{"reason": "ExitCode", "message": "3"}]
    finally:
        _shut(resp)


# --- kubectl: large stdin and cp -----------------------------------------------------------
def _kubectl(cluster: Cluster, *args: str, stdin: Any = None) -> subprocess.CompletedProcess[bytes]:
    cmd = ["kubectl", "--kubeconfig", str(cluster.server.kubeconfig)]
    cmd += ["--cache-dir", str(cluster.kubectl.cache_dir), *args]
    res = subprocess.run(cmd, stdin=stdin, capture_output=True, timeout=300)
    assert res.returncode == 0, f"{' '.join(args)}: {res.stderr.decode(errors='replace')}"
    return res


def _random_file(path: Path, size: int) -> str:
    """Write ``size`` random bytes to ``path``; their SHA-256."""
    digest = hashlib.sha256()
    with open(path, "wb") as f:
        left = size
        while left:
            chunk = os.urandom(min(left, MB))
            digest.update(chunk)
            f.write(chunk)
            left -= len(chunk)
    return digest.hexdigest()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(MB):
            digest.update(chunk)
    return digest.hexdigest()


@pytest.mark.parametrize(
    "size", [5 * MB, pytest.param(100 * MB, marks=NEEDS_BIG)], ids=["5MB", "100MB"]
)
def test_kubectl_exec_large_stdin_arrives_whole(
    cluster: Cluster, ns: str, tmp_path: Path, size: int
) -> None:
    src = tmp_path / "in.bin"
    want = _random_file(src, size)
    with open(src, "rb") as f:
        res = _kubectl(cluster, "exec", "-i", "-n", ns, POD, "--", "sh", "-c",
                       "tee /tmp/in.bin | sha256sum; wc -c < /tmp/in.bin", stdin=f)  # fmt: skip
    digest, count = res.stdout.decode().split("\n")[:2]
    assert (digest.split()[0], int(count)) == (want, size)


@pytest.mark.parametrize(
    "size", [5 * MB, pytest.param(20 * MB, marks=NEEDS_BIG)], ids=["5MB", "20MB"]
)
def test_kubectl_cp_both_ways(cluster: Cluster, ns: str, tmp_path: Path, size: int) -> None:
    src = tmp_path / "up.bin"
    want = _random_file(src, size)
    _kubectl(cluster, "cp", str(src), f"{ns}/{POD}:/tmp/up.bin")
    inside = _kubectl(cluster, "exec", "-n", ns, POD, "--", "sha256sum", "/tmp/up.bin")
    assert inside.stdout.decode().split()[0] == want
    back = tmp_path / "down.bin"
    _kubectl(cluster, "cp", f"{ns}/{POD}:/tmp/up.bin", str(back))
    assert (back.stat().st_size, _sha256(back)) == (size, want)
