"""``GET /ui/watch`` on a real ``corral server`` over HTTPS with its CA: several API
watches in one chunked answer, each upstream line tagged with its watch's index; each
watch opened with the caller's own token, so RBAC answers per watch (``END 403`` for
the one the user may not watch, the others go on); refused ``w`` parameters are a 400
Status and anonymous callers a 401, before any watch is opened."""

from __future__ import annotations

import asyncio
import http.client
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from aiohttp import web

from conftest import RunningServer, start_server
from corral.dashboard import watch_mux

WATCHER_TOKEN = "pod-watcher-token-0123456789"
NS = "default"


@pytest.fixture(scope="module")
def mux_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    base = tmp_path_factory.mktemp("dashboard-watch")
    tokens = base / "tokens.csv"
    tokens.write_text(f'{WATCHER_TOKEN},podwatcher,u2,"watchers"\n')
    extra = ["--no-scheduler", "--token-auth-file", str(tokens)]
    srv = start_server(base / "data", extra=extra)
    try:
        _grant_pods(srv)
        yield srv
    finally:
        srv.stop()


def connect(srv: RunningServer) -> http.client.HTTPSConnection:
    return http.client.HTTPSConnection("127.0.0.1", srv.port, context=srv.ssl_context(), timeout=30)


def call(
    srv: RunningServer, method: str, path: str, body: Any = None, token: str | None = None
) -> tuple[int, dict[str, Any]]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    conn = connect(srv)
    try:
        data = json.dumps(body).encode() if body is not None else None
        conn.request(method, path, body=data, headers=headers)
        r = conn.getresponse()
        return r.status, json.loads(r.read() or b"{}")
    finally:
        conn.close()


def _grant_pods(srv: RunningServer) -> None:
    """podwatcher may get, list and watch pods; nothing else."""
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": "pod-watcher"},
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}],
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": "pod-watcher"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                    "name": "pod-watcher"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User",
                      "name": "podwatcher"}],
    }  # fmt: skip
    rbac = "/apis/rbac.authorization.k8s.io/v1"
    for path, obj in ((f"{rbac}/clusterroles", role), (f"{rbac}/clusterrolebindings", binding)):
        code, answer = call(srv, "POST", path, obj, srv.token)
        assert code == 201, answer


def list_rv(srv: RunningServer, path: str) -> str:
    code, answer = call(srv, "GET", path, token=srv.token)
    assert code == 200, answer
    return str(answer["metadata"]["resourceVersion"])


class Mux:
    """One open ``/ui/watch`` answer, read line by line."""

    def __init__(self, srv: RunningServer, watches: list[str], token: str | None) -> None:
        self.conn = connect(srv)
        query = "&".join("w=" + quote(w, safe="") for w in watches)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.conn.request("GET", f"/ui/watch?{query}", headers=headers)
        self.resp = self.conn.getresponse()

    def close(self) -> None:
        self.conn.close()

    def line(self) -> tuple[int, str] | None:
        """The next non-heartbeat line as (index, rest); None at the end of the answer."""
        while True:
            raw = self.resp.readline()
            if not raw:
                return None
            text = raw.decode().rstrip("\n")
            if not text:
                continue  # heartbeat
            index, tab, rest = text.partition("\t")
            assert tab, f"an untagged line: {text!r}"
            return int(index), rest

    def until(self, want: Any, limit: int = 200) -> list[tuple[int, str]]:
        """Lines up to and including the first for which ``want(index, rest)`` holds."""
        seen: list[tuple[int, str]] = []
        for _ in range(limit):
            got = self.line()
            assert got is not None, f"the stream ended before the wanted line; saw {seen}"
            seen.append(got)
            if want(*got):
                return seen
        raise AssertionError(f"no wanted line in {limit}: {seen}")


def refusal(srv: RunningServer, watches: list[str], token: str | None) -> tuple[int, str]:
    """Open ``/ui/watch`` and read a refusal: (HTTP status, the Status body's reason);
    an answer that is no refusal is (its status, "") and its stream is left unread."""
    mux = Mux(srv, watches, token)
    try:
        if mux.resp.status < 400:
            return mux.resp.status, ""
        doc = json.loads(mux.resp.read())
        assert doc["kind"] == "Status", doc
        return mux.resp.status, str(doc["reason"])
    finally:
        mux.close()


def event_named(rest: str, kind_type: str, name: str) -> bool:
    if rest.startswith("END "):
        return False
    ev = json.loads(rest)
    return bool(ev["type"] == kind_type and ev["object"]["metadata"]["name"] == name)


def watch_path(path: str, rv: str, extra: str = "") -> str:
    return f"{path}?watch=1&allowWatchBookmarks=true&resourceVersion={rv}{extra}"


def test_two_watches_in_one_stream_each_tagged(mux_server: RunningServer) -> None:
    cms, secrets = f"/api/v1/namespaces/{NS}/configmaps", f"/api/v1/namespaces/{NS}/secrets"
    watches = [
        watch_path(cms, list_rv(mux_server, cms)),
        watch_path(secrets, list_rv(mux_server, secrets)),
    ]
    mux = Mux(mux_server, watches, mux_server.token)
    try:
        assert mux.resp.status == 200
        assert mux.resp.headers["Content-Type"].startswith("text/plain")
        assert mux.resp.headers["Cache-Control"] == "no-store"
        cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "mux-cm"},
              "data": {"a": "line one\nline two"}}  # fmt: skip
        code, answer = call(mux_server, "POST", cms, cm, mux_server.token)
        assert code == 201, answer
        seen = mux.until(lambda i, rest: i == 0 and event_named(rest, "ADDED", "mux-cm"))
        assert all(i == 0 for i, _ in seen), seen  # nothing happened to secrets yet
        ev = json.loads(seen[-1][1])
        assert ev["object"]["data"]["a"] == "line one\nline two"

        secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "mux-secret"},
                  "stringData": {"k": "v"}}  # fmt: skip
        code, answer = call(mux_server, "POST", secrets, secret, mux_server.token)
        assert code == 201, answer
        mux.until(lambda i, rest: i == 1 and event_named(rest, "ADDED", "mux-secret"))

        # both streams go on: a change to the configmap is tagged 0 again
        code, answer = call(mux_server, "DELETE", f"{cms}/mux-cm", None, mux_server.token)
        assert code == 200, answer
        mux.until(lambda i, rest: i == 0 and event_named(rest, "DELETED", "mux-cm"))
    finally:
        mux.close()


def test_rbac_applies_per_watch(mux_server: RunningServer) -> None:
    pods = "/api/v1/pods"
    rv = list_rv(mux_server, pods)
    watches = [watch_path(pods, rv), watch_path("/api/v1/secrets", rv)]
    mux = Mux(mux_server, watches, WATCHER_TOKEN)
    try:
        assert mux.resp.status == 200
        seen = mux.until(lambda i, rest: i == 1 and rest.startswith("END "))
        status, _, body = seen[-1][1].partition("\t")
        assert status == "END 403"
        doc = json.loads(body)
        assert doc["kind"] == "Status" and doc["reason"] == "Forbidden", doc
        assert "podwatcher" in doc["message"]

        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "mux-pod"},
               "spec": {"containers": [{"name": "c", "image": "busybox"}]}}  # fmt: skip
        code, answer = call(mux_server, "POST", f"/api/v1/namespaces/{NS}/pods", pod,
                             mux_server.token)  # fmt: skip
        assert code == 201, answer
        seen = mux.until(lambda i, rest: i == 0 and event_named(rest, "ADDED", "mux-pod"))
        assert all(i == 0 for i, _ in seen), seen  # the secrets watch said its END once
    finally:
        mux.close()


def test_an_upstream_that_ends_says_end_200_and_the_answer_ends(
    mux_server: RunningServer,
) -> None:
    cms = f"/api/v1/namespaces/{NS}/configmaps"
    mux = Mux(mux_server, [watch_path(cms, list_rv(mux_server, cms), "&timeoutSeconds=1")],
              mux_server.token)  # fmt: skip
    try:
        seen = mux.until(lambda i, rest: rest.startswith("END "))
        assert seen[-1] == (0, "END 200\t")
        assert mux.line() is None  # the last watch ended: so did the answer
    finally:
        mux.close()


@pytest.mark.parametrize(
    "watches",
    [
        [],
        ["/api/v1/pods"],
        ["/api/v1/pods?watch=false"],
        ["/healthz?watch=1"],
        ["/ui/watch?watch=1&w=/api/v1/pods"],
        ["/api/../ui/watch?watch=1"],
        ["/api/v1/%2e%2e/%2e%2e/ui/watch?watch=1"],
        ["//example.com/api/v1/pods?watch=1"],
        ["/api/v1/pods?watch=1 HTTP/1.1"],
        ["/api/v1/pods?watch=1"] * 17,
    ],
    ids=["none", "not-a-watch", "watch-false", "not-api", "the-mux-itself", "dot-segments",
         "encoded-dots", "other-host", "space", "too-many"],
)  # fmt: skip
def test_refused_watch_paths_are_400_status(mux_server: RunningServer, watches: list[str]) -> None:
    assert refusal(mux_server, watches, mux_server.token) == (400, "BadRequest")


@pytest.mark.parametrize("token", [None, "not-a-token"], ids=["anonymous", "bad-token"])
def test_needs_an_authenticated_user(mux_server: RunningServer, token: str | None) -> None:
    assert refusal(mux_server, ["/api/v1/pods?watch=1"], token) == (401, "Unauthorized")


# ---- in process: the heartbeat, and a page that goes away closes every upstream ----------


class Upstream:
    """A stand-in API server whose watches send one line, then stay open until closed."""

    def __init__(self) -> None:
        self.opened = 0
        self.closed = asyncio.Event()
        self.open = 0

    async def watch(self, request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        self.opened += 1
        self.open += 1
        try:
            name = request.match_info["name"]
            await resp.write(
                b'{"type":"ADDED","object":{"metadata":{"name":"%s"}}}\n' % name.encode()
            )
            await asyncio.Event().wait()  # until the mux goes away (handler cancelled)
        finally:
            self.open -= 1
            if not self.open:
                self.closed.set()
        return resp


async def serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://127.0.0.1:{port}"


async def test_heartbeat_and_closing_the_page_closes_the_upstreams(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(watch_mux, "HEARTBEAT", 0.05)
    upstream = Upstream()
    up_app = web.Application()
    up_app.router.add_get("/api/v1/{name}", upstream.watch)
    up_runner, up_url = await serve(up_app)
    mux = watch_mux.WatchMux(up_url)
    mux_app = web.Application()
    mux_app.router.add_get("/ui/watch", mux.serve)
    mux_runner, mux_url = await serve(mux_app)
    try:
        async with asyncio.timeout(20), aiohttp.ClientSession() as client:
            query = "&".join(f"w=/api/v1/{n}%3Fwatch%3D1" for n in ("a", "b", "c"))
            resp = await client.get(f"{mux_url}/ui/watch?{query}")
            assert resp.status == 200
            lines: set[bytes] = set()
            while len(lines) < 3:
                line = await resp.content.readline()
                if line.strip():
                    lines.add(line)
            assert lines == {
                b'%d\t{"type":"ADDED","object":{"metadata":{"name":"%s"}}}\n' % (i, n)
                for i, n in enumerate((b"a", b"b", b"c"))
            }
            assert await resp.content.readline() == b"\n"  # nothing else to say: heartbeat
            assert upstream.open == 3
            resp.close()  # the page goes away
            await upstream.closed.wait()
        assert upstream.opened == 3 and upstream.open == 0
    finally:
        await mux.close()
        await mux_runner.cleanup()
        await up_runner.cleanup()
