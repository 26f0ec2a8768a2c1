"""Probes (corral.agent.probes): the threshold/schedule state machine on fake times, the
startup gate, and one real probe of each kind against a real HTTP server, a real TCP
listener and real subprocesses."""

from __future__ import annotations

import asyncio
import datetime
import socket
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from corral.agent.probes import (
    ContainerProbes,
    ProbeError,
    ProbeKind,
    ProbeResult,
    ProbeTracker,
    errored_message,
    killing_message,
    run_probe,
    unhealthy_message,
)

S, F, U = ProbeResult.SUCCESS, ProbeResult.FAILURE, ProbeResult.UNKNOWN
T0 = 1_000.0  # container start, on a fake clock

# --- the tracker ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("probe", "want"),
    [
        ({}, (0, 10, 1, 1, 3)),
        (
            {
                "initialDelaySeconds": 5,
                "periodSeconds": 2,
                "timeoutSeconds": 3,
                "successThreshold": 2,
                "failureThreshold": 1,
            },
            (5, 2, 3, 2, 1),
        ),
        ({"periodSeconds": 0, "failureThreshold": 0}, (0, 10, 1, 1, 3)),
    ],
    ids=["defaults", "explicit", "zero-means-default"],
)
def test_tracker_spec(probe: dict[str, Any], want: tuple[int, ...]) -> None:
    t = ProbeTracker(probe)
    got = (t.initial_delay, t.period, t.timeout, t.success_threshold, t.failure_threshold)
    assert got == want


@pytest.mark.parametrize(
    ("kind", "initial"),
    [(None, U), ("liveness", S), ("readinessProbe", F), (ProbeKind.STARTUP, U)],
    ids=["no-kind", "liveness", "readiness", "startup"],
)
def test_initial_verdict(kind: str | None, initial: ProbeResult) -> None:
    assert ProbeTracker({}, kind).result is initial


def test_next_due_schedule() -> None:
    t = ProbeTracker({"initialDelaySeconds": 15, "periodSeconds": 10})
    assert t.next_due(T0) == T0 + 15
    t.record(True, T0 + 15.2)
    assert t.next_due(T0) == T0 + 25.2
    t.record(False, T0 + 25.3)
    assert t.next_due(T0) == T0 + 35.3
    fresh = ProbeTracker({"periodSeconds": 3})
    assert fresh.next_due(T0) == T0  # no delay: due at once
    fresh.record(True, T0 - 50)  # a probe recorded before a (re)start: delay still counts
    assert fresh.next_due(T0) == T0


THRESHOLDS = [
    ("readiness", {}, [True], [S]),
    ("readiness", {}, [True, False, False, False], [S, S, S, F]),
    ("readiness", {"successThreshold": 3}, [True, True, True], [F, F, S]),
    ("readiness", {"successThreshold": 2}, [True, False, True, True], [F, F, F, S]),
    ("readiness", {"failureThreshold": 2}, [True, False, True, False, False], [S, S, S, S, F]),
    ("readiness", {"failureThreshold": 1}, [False, True, False], [F, S, F]),
    ("liveness", {}, [False, False], [S, S]),
    ("liveness", {}, [False, False, False], [S, S, F]),
    ("liveness", {"failureThreshold": 1}, [False], [F]),
    ("startup", {"failureThreshold": 2}, [False, True], [U, S]),
    ("startup", {"failureThreshold": 2}, [False, False], [U, F]),
    (None, {}, [False, False, False, True], [U, U, F, S]),
]


@pytest.mark.parametrize(
    ("kind", "probe", "outcomes", "verdicts"),
    THRESHOLDS,
    ids=[
        "readiness-first-success",
        "readiness-three-failures",
        "readiness-success-threshold",
        "readiness-success-run-broken",
        "readiness-failure-run-broken",
        "readiness-failure-threshold-1",
        "liveness-below-threshold",
        "liveness-at-threshold",
        "liveness-threshold-1",
        "startup-recovers",
        "startup-fails",
        "no-kind",
    ],
)
def test_thresholds(
    kind: str | None, probe: dict[str, Any], outcomes: list[bool], verdicts: list[ProbeResult]
) -> None:
    t = ProbeTracker(probe, kind)
    got = [t.record(ok, T0 + 10 * i) for i, ok in enumerate(outcomes)]
    assert got == verdicts
    assert t.result is verdicts[-1]


@pytest.mark.parametrize(
    ("kind", "held"),
    [("liveness", True), ("startup", True), ("readiness", False)],
    ids=["liveness", "startup", "readiness"],
)
def test_on_hold_after_failure(kind: str, held: bool) -> None:
    t = ProbeTracker({"failureThreshold": 1}, kind)
    assert t.record(False, T0).success is False
    assert t.on_hold is held


def test_result_success_property() -> None:
    assert (S.success, F.success, U.success) == (True, False, None)


# --- the aggregate: startup gate ------------------------------------------------------------

CONTAINER = {
    "name": "app",
    "startupProbe": {"periodSeconds": 1, "failureThreshold": 3},
    "livenessProbe": {"initialDelaySeconds": 5, "periodSeconds": 10},
    "readinessProbe": {"periodSeconds": 5},
}


def test_startup_gates_liveness_and_readiness() -> None:
    cp = ContainerProbes(CONTAINER, T0)
    assert (cp.started, cp.ready, cp.restart) == (False, False, None)
    assert cp.due(T0) == [ProbeKind.STARTUP]
    assert cp.record("startup", False, T0) is U
    assert cp.due(T0 + 0.5) == []
    assert cp.next_due() == T0 + 1
    assert cp.due(T0 + 1) == [ProbeKind.STARTUP]
    assert cp.record(ProbeKind.STARTUP, True, T0 + 1) is S
    assert (cp.started, cp.ready) == (True, False)
    # startup stops; liveness waits for its delay from the container start, readiness is due
    assert cp.due(T0 + 1) == [ProbeKind.READINESS]
    assert cp.next_due() == T0  # overdue: run now
    assert cp.record("readiness", True, T0 + 1) is S
    assert cp.ready
    assert cp.due(T0 + 5) == [ProbeKind.LIVENESS]
    assert cp.due(T0 + 6) == [ProbeKind.LIVENESS, ProbeKind.READINESS]


def test_startup_failure_means_restart() -> None:
    cp = ContainerProbes(CONTAINER, T0)
    for i in range(3):
        cp.record("startup", False, T0 + i)
    assert cp.restart is ProbeKind.STARTUP
    assert (cp.started, cp.ready) == (False, False)
    assert cp.due(T0 + 100) == [] and cp.next_due() is None


def test_liveness_failure_means_restart_readiness_keeps_state() -> None:
    cp = ContainerProbes({"livenessProbe": {"failureThreshold": 2}, "readinessProbe": {}}, T0)
    assert cp.started and not cp.ready
    assert cp.due(T0) == [ProbeKind.LIVENESS, ProbeKind.READINESS]
    cp.record("readiness", True, T0)
    cp.record("liveness", False, T0)
    assert cp.restart is None and cp.ready
    cp.record("liveness", False, T0 + 10)
    assert cp.restart is ProbeKind.LIVENESS
    assert cp.due(T0 + 100) == []


def test_no_probes() -> None:
    cp = ContainerProbes({"name": "plain"}, T0)
    assert (cp.started, cp.ready, cp.restart, cp.due(T0), cp.next_due()) == (
        True,
        True,
        None,
        [],
        None,
    )


def test_messages() -> None:
    assert (
        unhealthy_message("liveness", "HTTP probe failed with statuscode: 500")
        == "Liveness probe failed: HTTP probe failed with statuscode: 500"
    )
    assert unhealthy_message(ProbeKind.READINESS, "x") == "Readiness probe failed: x"
    assert killing_message("app", "liveness") == (
        "Container app failed liveness probe, will be restarted"
    )
    assert killing_message("app", "startupProbe", restart=False) == (
        "Container app failed startup probe, will not be restarted"
    )
    assert errored_message("readiness", U, "boom") == (
        "Readiness probe errored and resulted in unknown state: boom"
    )


# --- runners: exec --------------------------------------------------------------------------


async def subprocess_exec(argv: list[str], timeout: float) -> tuple[int, bytes]:
    """A real exec_fn: runs argv on the host, stdout+stderr combined."""
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    try:
        out, _ = await proc.communicate()
    except asyncio.CancelledError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return proc.returncode, out


async def no_exec(argv: list[str], timeout: float) -> tuple[int, bytes]:
    raise AssertionError("exec not expected")


EXEC = [
    (["true"], True, ""),
    (["sh", "-c", "echo ok"], True, "ok\n"),
    (["sh", "-c", "echo bad >&2; exit 3"], False, "bad\n"),
    (["sh", "-c", "echo $(WHO)"], True, "me\n"),
    (["sleep", "5"], False, 'command "sleep 5" timed out'),
]


@pytest.mark.parametrize(
    ("command", "ok", "output"),
    EXEC,
    ids=["exit-0", "output", "nonzero-with-stderr", "expanded", "timeout"],
)
async def test_exec_probe(command: list[str], ok: bool, output: str) -> None:
    probe = {"exec": {"command": command}, "timeoutSeconds": 1}
    got = await run_probe(
        probe, pod_ip="127.0.0.1", exec_fn=subprocess_exec, container_ports=[], env={"WHO": "me"}
    )
    assert got == (ok, output)


async def test_exec_runtime_error_is_probe_error() -> None:
    async def broken(argv: list[str], timeout: float) -> tuple[int, bytes]:
        raise RuntimeError("container not running")

    with pytest.raises(ProbeError, match="container not running"):
        await run_probe({"exec": {"command": ["x"]}}, pod_ip="", exec_fn=broken, container_ports=[])


# --- runners: HTTP --------------------------------------------------------------------------


async def _ok(request: web.Request) -> web.Response:
    return web.Response(text="fine")


async def _fail(request: web.Request) -> web.Response:
    return web.Response(status=500, text="broken")


async def _slow(request: web.Request) -> web.Response:
    await asyncio.sleep(5)
    return web.Response(text="late")


async def _redirect(request: web.Request) -> web.Response:
    raise web.HTTPFound("/ok")


async def _away(request: web.Request) -> web.Response:
    raise web.HTTPFound("http://other.invalid/ok")


async def _echo(request: web.Request) -> web.Response:
    h = request.headers
    return web.Response(
        text=f"{h.get('X-Probe')}|{h.get('User-Agent')}|{h.get('Host')}|{request.path_qs}"
    )


def _app() -> web.Application:
    app = web.Application()
    app.router.add_get("/ok", _ok)
    app.router.add_get("/fail", _fail)
    app.router.add_get("/slow", _slow)
    app.router.add_get("/redirect", _redirect)
    app.router.add_get("/away", _away)
    app.router.add_get("/echo", _echo)
    return app


@pytest.fixture
async def http_port() -> AsyncIterator[int]:
    server = TestServer(_app(), host="127.0.0.1")
    await server.start_server()
    assert server.port is not None
    yield server.port
    await server.close()


def _self_signed(tmp: Path) -> ssl.SSLContext:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "probe-test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    (tmp / "c.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp / "k.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(tmp / "c.pem", tmp / "k.pem")
    return ctx


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port  # closed: connecting is refused


def http(path: str, port: Any, **extra: Any) -> dict[str, Any]:
    return {"httpGet": {"path": path, "port": port, **extra}, "timeoutSeconds": 1}


PORTS = [{"name": "web", "containerPort": 0}]


@pytest.mark.parametrize(
    ("path", "ok", "output"),
    [
        ("/ok", True, "fine"),
        ("/fail", False, "HTTP probe failed with statuscode: 500"),
        ("/missing", False, "HTTP probe failed with statuscode: 404"),
        ("/redirect", True, "fine"),
        ("/away", True, "Probe terminated redirects, Response body: "),
    ],
    ids=["200", "500", "404", "same-host-redirect-followed", "other-host-redirect-not-followed"],
)
async def test_http_probe(http_port: int, path: str, ok: bool, output: str) -> None:
    got = await run_probe(
        http(path, http_port), pod_ip="127.0.0.1", exec_fn=no_exec, container_ports=[]
    )
    assert got[0] is ok
    assert got[1].startswith(output)


async def test_http_probe_timeout(http_port: int) -> None:
    ok, output = await run_probe(
        http("/slow", http_port), pod_ip="127.0.0.1", exec_fn=no_exec, container_ports=[]
    )
    assert not ok
    assert output == (
        f'Get "http://127.0.0.1:{http_port}/slow": context deadline exceeded '
        "(Client.Timeout exceeded while awaiting headers)"
    )


async def test_http_probe_named_port_host_and_headers(http_port: int) -> None:
    ports = [{"name": "web", "containerPort": http_port}]
    probe = http(
        "/echo?x=1",
        "web",
        host="127.0.0.1",
        httpHeaders=[{"name": "X-Probe", "value": "yes"}, {"name": "Host", "value": "svc.local"}],
    )
    ok, output = await run_probe(probe, pod_ip="10.9.9.9", exec_fn=no_exec, container_ports=ports)
    assert (ok, output) == (True, "yes|kube-probe/1.32|svc.local|/echo?x=1")


async def test_http_probe_connection_refused() -> None:
    port = _free_port()
    ok, output = await run_probe(
        http("/healthz", port), pod_ip="127.0.0.1", exec_fn=no_exec, container_ports=[]
    )
    assert not ok
    assert output == (
        f'Get "http://127.0.0.1:{port}/healthz": dial tcp 127.0.0.1:{port}: connect: '
        "connection refused"
    )


async def test_https_probe_skips_verification(tmp_path: Path) -> None:
    server = TestServer(_app(), host="127.0.0.1", scheme="https")
    await server.start_server(ssl=_self_signed(tmp_path))
    try:
        got = await run_probe(
            http("/ok", server.port, scheme="HTTPS"),
            pod_ip="127.0.0.1",
            exec_fn=no_exec,
            container_ports=[],
        )
    finally:
        await server.close()
    assert got == (True, "fine")


@pytest.mark.parametrize(
    ("port", "message"),
    [
        ("metrics", "port metrics not found"),
        (0, "invalid port number: 0"),
        (70000, "invalid port number: 70000"),
    ],
    ids=["unknown-name", "zero", "too-large"],
)
async def test_bad_port_is_probe_error(port: Any, message: str) -> None:
    with pytest.raises(ProbeError, match=f"^{message}$"):
        await run_probe(http("/", port), pod_ip="127.0.0.1", exec_fn=no_exec, container_ports=PORTS)


# --- runners: TCP and gRPC ------------------------------------------------------------------


async def test_tcp_probe_open_port() -> None:
    async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        w.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        got = await run_probe(
            {"tcpSocket": {"port": str(port)}},  # a numeric string is a port number
            pod_ip="127.0.0.1",
            exec_fn=no_exec,
            container_ports=[],
        )
        assert got == (True, "")
        got = await run_probe(
            {"tcpSocket": {"port": "db"}},
            pod_ip="127.0.0.1",
            exec_fn=no_exec,
            container_ports=[{"name": "db", "containerPort": port}],
        )
        assert got == (True, "")
    finally:
        server.close()
        await server.wait_closed()


async def test_tcp_probe_refused() -> None:
    port = _free_port()
    got = await run_probe(
        {"tcpSocket": {"port": port}}, pod_ip="127.0.0.1", exec_fn=no_exec, container_ports=[]
    )
    assert got == (False, f"dial tcp 127.0.0.1:{port}: connect: connection refused")


async def test_grpc_unsupported() -> None:
    ok, output = await run_probe(
        {"grpc": {"port": 9090}}, pod_ip="127.0.0.1", exec_fn=no_exec, container_ports=[]
    )
    assert not ok and "not supported" in output


async def test_no_handler() -> None:
    with pytest.raises(ProbeError):
        await run_probe({}, pod_ip="127.0.0.1", exec_fn=no_exec, container_ports=[])
