"""Certificates renewed while the server runs (``apiserver/cert_renewal.py``): which are
due, and how a renewed one reaches its user (``SSLContext`` reloaded in place, a
component's kubeconfig rewritten and its loop or child restarted); ``Children.restart``.
Issuing runs in this process here (``issue_here``), the same functions the child runs."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import ssl
import sys
from pathlib import Path

import pytest
import yaml

from corral.apiserver.cert_renewal import CertRenewal, Due, ServingPair
from corral.apiserver.certs import (
    DEFAULT_SANS,
    SERVER_COMMON_NAME,
    Pki,
    ensure_pki,
    ensure_serving_pair,
)
from corral.apiserver.children import Children
from corral.apiserver.client_certs import (
    ensure_identities,
    ensure_identity,
    kubeconfig_path,
    pair_paths,
    write_component_kubeconfig,
)
from corral.apiserver.component_identities import (
    CONTROLLER_MANAGER,
    KUBELET_CLIENT,
    SCHEDULER,
    Identity,
)
from corral.util.pki import issue_client, issue_serving, load_pair, san_names, write_pair

URL = "https://127.0.0.1:6443"
METRICS_HOSTS = ("metrics-server.kube-system.svc", "127.0.0.1")


def issue_here(renewal: CertRenewal, due: Due) -> None:
    """What ``issue_in_child`` runs in its child, in this process."""
    if due.server:
        ensure_pki(renewal.data_dir, renewal.server_hosts or [])
    ensure_identities(renewal.data_dir, due.identities)
    for pair in due.serving:
        ensure_serving_pair(renewal.data_dir, pair.name, pair.hosts)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    ensure_pki(tmp_path, [])
    return tmp_path


def short_lived(data_dir: Path, ident: Identity) -> bytes:
    """``ident``'s pair living one hour, issued 50 minutes ago (its record written then):
    due now, in the last fifth of its lifetime. Returns the certificate's PEM."""
    pki = Pki.at(data_dir)
    ca = load_pair(pki.ca_cert, pki.ca_key)
    assert ca is not None
    then = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=50)
    cert, key = issue_client(ident.user, ident.groups, then, ca, dt.timedelta(hours=1))
    crt_path, key_path = pair_paths(data_dir, ident)
    write_pair(crt_path, key_path, cert, key)
    ensure_identity(data_dir, ident, now=then)  # kept, and recorded as checked then
    assert crt_path.read_bytes() != b""
    return crt_path.read_bytes()


def handshake(server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext) -> tuple[bytes, bytes]:
    """A TLS handshake in memory: (the certificate the client saw, the one the server saw),
    DER."""
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client = client_ctx.wrap_bio(c_in, c_out, server_hostname="localhost")
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    done: set[str] = set()
    for _ in range(20):
        for name, obj in (("client", client), ("server", server)):
            try:
                obj.do_handshake()
                done.add(name)
            except ssl.SSLWantReadError:
                pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if len(done) == 2:
            break
    seen_by_client = client.getpeercert(binary_form=True)
    seen_by_server = server.getpeercert(binary_form=True)
    assert seen_by_client and seen_by_server
    return seen_by_client, seen_by_server


def der(path: Path) -> bytes:
    return ssl.PEM_cert_to_DER_cert(path.read_text())


def test_due_is_what_is_in_the_last_part_of_its_lifetime(data_dir: Path) -> None:
    ensure_identity(data_dir, SCHEDULER)
    ensure_serving_pair(data_dir, "metrics-server", METRICS_HOSTS)
    renewal = CertRenewal(data_dir, Children(), server_hosts=[])
    renewal.identities[SCHEDULER.name] = SCHEDULER
    renewal.serving["metrics-server"] = ServingPair("metrics-server", METRICS_HOSTS)
    now = dt.datetime.now(dt.UTC)

    assert not renewal.due(now)
    # one year: a client certificate is due in its last fifth (73 days), serving ones 30 days
    later = renewal.due(now + dt.timedelta(days=300))
    assert later == Due(False, (SCHEDULER,), ())
    assert renewal.due(now + dt.timedelta(days=340)) == Due(
        True, (SCHEDULER,), (renewal.serving["metrics-server"],)
    )
    # a record that no longer holds (the file changed) is looked at again
    crt, _ = pair_paths(data_dir, SCHEDULER)
    crt.write_bytes(crt.read_bytes() + b"\n")
    assert renewal.due(now) == Due(False, (SCHEDULER,), ())


async def test_a_renewed_client_certificate_rewrites_the_kubeconfig_and_restarts_its_user(
    data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "corral")
    old = short_lived(data_dir, SCHEDULER)
    ensure_identity(data_dir, CONTROLLER_MANAGER)
    paths = {
        i.name: write_component_kubeconfig(data_dir, i, URL)
        for i in (SCHEDULER, CONTROLLER_MANAGER)
    }
    children = Children()
    runs: list[tuple[str, bytes]] = []

    async def component(argv: list[str]) -> None:
        config = yaml.safe_load(Path(argv[1]).read_text())
        runs.append((argv[1], config["users"][0]["user"]["client-certificate-data"].encode()))
        await asyncio.Event().wait()

    for name, path in paths.items():
        children.start_loop(name, component, ["--kubeconfig", str(path)])
    await asyncio.sleep(0)
    renewal = CertRenewal(data_dir, children, issue=issue_here, server_url=URL)
    renewal.identities.update(
        {SCHEDULER.name: SCHEDULER, CONTROLLER_MANAGER.name: CONTROLLER_MANAGER}
    )
    try:
        assert await renewal.renew_once() == [f"identity {SCHEDULER.name}"]
        await asyncio.sleep(0)
        crt, _ = pair_paths(data_dir, SCHEDULER)
        assert crt.read_bytes() != old
        # the scheduler started again, with the new certificate; the controller manager not
        assert [r[0] for r in runs] == [
            str(paths["scheduler"]),
            str(paths["controller-manager"]),
            str(paths["scheduler"]),
        ]
        assert runs[2][1] != runs[0][1]
        config = yaml.safe_load(kubeconfig_path(data_dir, SCHEDULER).read_text())
        assert config["clusters"][0]["cluster"]["server"] == URL
        assert [lp.restarts for lp in children.loops] == [0, 0]
        assert "renewed the client certificate of system:kube-scheduler" in caplog.text
        assert await renewal.renew_once() == []  # renewed: not due any more
    finally:
        await children.stop()


async def test_the_servers_own_certificates_are_reloaded_into_the_same_contexts(
    data_dir: Path,
) -> None:
    pki = Pki.at(data_dir)
    ca = load_pair(pki.ca_cert, pki.ca_key)
    assert ca is not None
    # a serving certificate 25 days from expiry (renewed 30 days before)
    then = dt.datetime.now(dt.UTC) - dt.timedelta(days=340)
    write_pair(pki.server_cert, pki.server_key, *issue_serving(
        SERVER_COMMON_NAME, san_names(DEFAULT_SANS), then, ca))  # fmt: skip
    old_server = der(pki.server_cert)
    short_lived(data_dir, KUBELET_CLIENT)
    kubelet_crt, kubelet_key = pair_paths(data_dir, KUBELET_CLIENT)
    old_client = der(kubelet_crt)
    server_ctx = pki.ssl_context()
    client_ctx = ssl.create_default_context(cafile=str(pki.ca_cert))
    client_ctx.load_cert_chain(kubelet_crt, kubelet_key)
    assert handshake(server_ctx, client_ctx) == (old_server, old_client)
    renewal = CertRenewal(data_dir, Children(), issue=issue_here, server_hosts=[])
    renewal.server_context, renewal.kubelet_client = server_ctx, client_ctx

    renewed = await renewal.renew_once()

    assert sorted(renewed) == ["identity apiserver-kubelet-client", "server"]
    new_server, new_client = der(pki.server_cert), der(kubelet_crt)
    assert (new_server, new_client) != (old_server, old_client)
    assert handshake(server_ctx, client_ctx) == (new_server, new_client)


async def test_a_renewed_agent_serving_pair_restarts_nobody_a_metrics_one_its_server(
    data_dir: Path,
) -> None:
    children = Children()
    renewal = CertRenewal(data_dir, children, issue=issue_here)
    for name, reloads in (("agent-n1", True), ("metrics-server", False)):
        renewal.serving[name] = ServingPair(name, ("127.0.0.1",), reloads)
        (data_dir / "pki" / f"{name}.crt").write_text("not yet issued")
    sleeper = [sys.executable, "-c", "import sys; sys.stdin.read()"]
    agent = children.start(
        "agent", [*sleeper, "--tls-cert-file", str(data_dir / "pki/agent-n1.crt")]
    )
    metrics = children.start(
        "metrics-server", [*sleeper, "--tls-cert-file", str(data_dir / "pki/metrics-server.crt")]
    )
    first_agent, first_metrics = agent.proc, metrics.proc
    try:
        assert sorted(await renewal.renew_once()) == ["serving agent-n1", "serving metrics-server"]
        assert agent.proc is first_agent
        assert metrics.proc is not first_metrics
        assert first_metrics is not None and first_metrics.poll() is not None
        assert metrics.restarts == 0
    finally:
        await children.stop()


async def test_children_restart_stops_and_starts_the_named_ones_only() -> None:
    children = Children()
    sleeper = [sys.executable, "-c", "import sys; sys.stdin.read()"]
    a = children.start("agent", [*sleeper, "a"])
    b = children.start("agent", [*sleeper, "b"])
    c = children.start("scheduler", [*sleeper, "c"])
    before = {x.name + x.argv[-1]: x.proc for x in (a, b, c)}
    try:
        assert await children.restart("agent", argv_has="b") == 1
        assert a.proc is before["agenta"] and c.proc is before["schedulerc"]
        assert b.proc is not before["agentb"]
        old = before["agentb"]
        assert old is not None and old.poll() is not None
        assert b.proc is not None and b.proc.poll() is None
        assert await children.restart("agent") == 2
        assert a.proc is not before["agenta"]
    finally:
        await children.stop()
