"""The dashboard's server side on a real ``corral server`` (with its Mesos master, without
Marathon or Chronos), over HTTPS with the server's CA and no Kubernetes client: the page's
files are public with their security headers and ETags, ``/ui/login`` checks tokens and
kubeconfigs with the server's own authenticator, ``/ui/info`` and the faces' proxy need
a user, and the proxy passes the user's credentials to the Mesos master."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from typing import Any

import pytest

from conftest import RunningServer, start_server
from corral.dashboard import STATIC_DIR
from corral.testing.process import free_ports
from corral.testing.wait import eventually

FILE_TOKEN = "viewer-token-0123456789"
CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; frame-ancestors 'none'"
)


@pytest.fixture(scope="module")
def ui_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    base = tmp_path_factory.mktemp("dashboard")
    tokens = base / "tokens.csv"
    tokens.write_text(f'{FILE_TOKEN},viewer,u1,"viewers"\n')
    (mesos_port,) = free_ports(1)
    extra = ["--mesos-port", str(mesos_port), "--token-auth-file", str(tokens)]
    srv = start_server(base / "data", extra=extra)
    try:
        yield srv
    finally:
        srv.stop()


def call(
    srv: RunningServer,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, http.client.HTTPMessage, bytes]:
    """One request as sent (the path is not normalised), over HTTPS with the server's CA."""
    conn = http.client.HTTPSConnection("127.0.0.1", srv.port, context=srv.ssl_context(), timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return r.status, r.headers, r.read()
    finally:
        conn.close()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def status_of(body: bytes) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(body)
    assert doc["kind"] == "Status" and doc["apiVersion"] == "v1", doc
    return doc


def test_ui_redirects_to_the_page(ui_server: RunningServer) -> None:
    code, headers, _ = call(ui_server, "GET", "/ui")
    assert code in (301, 308) and headers["Location"] == "/ui/"


def test_page_is_public_with_security_headers_and_etag(ui_server: RunningServer) -> None:
    code, headers, body = call(ui_server, "GET", "/ui/")
    assert code == 200
    assert body == (STATIC_DIR / "index.html").read_bytes()
    assert headers["Content-Type"].startswith("text/html")
    assert headers["Content-Security-Policy"] == CSP
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert headers["Cache-Control"] == "no-cache"
    etag = headers["ETag"]
    assert etag.startswith('"')
    code, headers, body = call(ui_server, "GET", "/ui/", headers={"If-None-Match": etag})
    assert code == 304 and body == b"" and headers["ETag"] == etag
    code, _, _ = call(ui_server, "GET", "/ui/", headers={"If-None-Match": '"other"'})
    assert code == 200
    code, headers, body = call(ui_server, "HEAD", "/ui/index.html")
    assert code == 200 and body == b"" and headers["ETag"] == etag
    code, _, body = call(ui_server, "DELETE", "/ui/index.html")
    assert code == 405 and status_of(body)["reason"] == "MethodNotAllowed"


def test_modules_are_javascript(ui_server: RunningServer) -> None:
    modules = sorted((STATIC_DIR / "js").glob("*.js"))
    assert modules, "the page ships its ES modules"
    rel = modules[0].relative_to(STATIC_DIR).as_posix()
    code, headers, body = call(ui_server, "GET", f"/ui/{rel}")
    assert code == 200 and headers["Content-Type"].startswith("text/javascript")
    assert body == modules[0].read_bytes()


def test_gzip_when_accepted(ui_server: RunningServer) -> None:
    import gzip

    big = max(STATIC_DIR.rglob("*.js"), key=lambda p: p.stat().st_size)
    if big.stat().st_size < 2048:
        pytest.skip("no module large enough to be compressed yet")
    rel = big.relative_to(STATIC_DIR).as_posix()
    code, headers, body = call(ui_server, "GET", f"/ui/{rel}", headers={"Accept-Encoding": "gzip"})
    assert code == 200 and headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(body) == big.read_bytes()
    assert "Accept-Encoding" in headers["Vary"]


@pytest.mark.parametrize(
    "path",
    ["/ui/../x", "/ui/js/../../pyproject.toml", "/ui/%2e%2e/faces.py", "/ui/missing.js",
     "/ui/.hidden", "/ui/js"],
    ids=["dotdot", "dotdot-deep", "encoded-dotdot", "missing", "dotfile", "directory"],
)  # fmt: skip
def test_refused_paths_are_404_status(ui_server: RunningServer, path: str) -> None:
    code, _, body = call(ui_server, "GET", path)
    assert code == 404
    assert status_of(body)["reason"] == "NotFound"


def test_login_with_the_admin_token(ui_server: RunningServer) -> None:
    body = json.dumps({"token": ui_server.token}).encode()
    code, headers, answer = call(
        ui_server, "POST", "/ui/login", body, {"Content-Type": "application/json"}
    )
    assert code == 200, answer
    doc = json.loads(answer)
    assert doc["token"] == ui_server.token
    assert doc["user"] == "admin" or "system:masters" in doc["groups"]
    assert headers["Cache-Control"] == "no-store"


def test_login_with_a_file_token(ui_server: RunningServer) -> None:
    code, _, answer = call(
        ui_server, "POST", "/ui/login", json.dumps({"token": FILE_TOKEN}).encode()
    )
    assert code == 200
    doc = json.loads(answer)
    assert doc["user"] == "viewer" and "viewers" in doc["groups"]


def test_login_with_a_bad_token_is_401(ui_server: RunningServer) -> None:
    code, _, answer = call(ui_server, "POST", "/ui/login", b'{"token": "not-a-token"}')
    assert code == 401
    assert status_of(answer)["reason"] == "Unauthorized"


def test_login_with_the_kubeconfig(ui_server: RunningServer) -> None:
    text = ui_server.kubeconfig.read_text()
    code, _, answer = call(
        ui_server, "POST", "/ui/login", json.dumps({"kubeconfig": text}).encode()
    )
    assert code == 200, answer
    assert json.loads(answer)["token"] == ui_server.token


def test_login_with_a_certificate_kubeconfig_is_400(ui_server: RunningServer) -> None:
    text = (
        "contexts: [{name: c, context: {user: u}}]\ncurrent-context: c\n"
        "users: [{name: u, user: {client-certificate-data: AAAA, client-key-data: BBBB}}]\n"
    )
    code, _, answer = call(
        ui_server, "POST", "/ui/login", json.dumps({"kubeconfig": text}).encode()
    )
    assert code == 400
    assert "kubectl create token" in status_of(answer)["message"]


def test_info_needs_a_user(ui_server: RunningServer) -> None:
    code, _, answer = call(ui_server, "GET", "/ui/info")
    assert code == 401 and status_of(answer)["reason"] == "Unauthorized"
    code, _, answer = call(ui_server, "GET", "/ui/info", headers=bearer(FILE_TOKEN))
    assert code == 200
    doc = json.loads(answer)
    assert doc["user"] == "viewer"
    assert doc["version"].startswith("v1.32")
    assert doc["faces"]["marathon"] is False and doc["faces"]["chronos"] is False


def _mesos_version(srv: RunningServer) -> bytes | None:
    code, _, body = call(srv, "GET", "/ui/faces/mesos/version", headers=bearer(srv.token))
    return body if code == 200 else None


def test_mesos_through_the_proxy(ui_server: RunningServer) -> None:
    body = eventually(lambda: _mesos_version(ui_server), what="the Mesos master via /ui/faces")
    assert body is not None and "version" in json.loads(body)
    code, _, answer = call(ui_server, "GET", "/ui/faces/mesos/version")
    assert code == 401 and status_of(answer)["reason"] == "Unauthorized"
    code, _, answer = call(ui_server, "GET", "/ui/faces/mesos/version", headers=bearer("bad"))
    assert code == 401
    code, _, answer = call(ui_server, "GET", "/ui/info", headers=bearer(ui_server.token))
    assert json.loads(answer)["faces"]["mesos"] is True


def test_the_master_sees_the_users_credentials(ui_server: RunningServer) -> None:
    eventually(lambda: _mesos_version(ui_server), what="the Mesos master via /ui/faces")
    # /state is authenticated and authorized by the master itself: the admin may read it

    def state() -> tuple[int, http.client.HTTPMessage, bytes] | None:
        r = call(ui_server, "GET", "/ui/faces/mesos/state", headers=bearer(ui_server.token))
        return r if r[0] != 503 else None  # 503: the master has not recovered yet

    answer = eventually(state, what="the master's /state")
    assert answer is not None
    code, headers, body = answer
    assert code == 200, body
    assert headers["Content-Type"].startswith("application/json")
    assert "frameworks" in json.loads(body)
    # a user without RBAC for mesos.corral.dev is the master's refusal, passed back
    code, headers, _ = call(ui_server, "GET", "/ui/faces/mesos/state", headers=bearer(FILE_TOKEN))
    assert code == 403
    assert "WWW-Authenticate" not in headers


def test_marathon_not_started_is_503(ui_server: RunningServer) -> None:
    code, _, answer = call(
        ui_server, "GET", "/ui/faces/marathon/v2/apps", headers=bearer(ui_server.token)
    )
    assert code == 503
    doc = status_of(answer)
    assert doc["reason"] == "ServiceUnavailable"
    assert "the Marathon API is not running beside this server" in doc["message"]
