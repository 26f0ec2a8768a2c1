"""``dashboard/faces.py`` and ``Dashboard.handle``'s routing, over real HTTP: a
``Dashboard`` served by aiohttp's low-level server proxies to real aiohttp apps standing
in for a face (and a second one for a standby's leader). Checked: the method, path,
query, body and ``Authorization`` reach the face and nothing else of the request does;
the answer's status, type and body come back without hop-by-hop headers or
``WWW-Authenticate``; chunked answers stream; a 307 to another origin is followed with
the credentials; 401 without a user; 503/404 Status bodies."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import RawTestServer, TestClient, TestServer
from multidict import CIMultiDict, CIMultiDictProxy

from corral.api import errors
from corral.dashboard import Dashboard
from corral.dashboard.faces import answer_headers, request_headers


@dataclass(frozen=True)
class FakeUser:
    username: str
    groups: tuple[str, ...]


ANONYMOUS = FakeUser("system:anonymous", ("system:unauthenticated",))


def authenticate(request: web.Request) -> FakeUser:
    """The API server's chain in miniature: one good token, a bad one is 401."""
    auth = request.headers.get("Authorization", "")
    if auth == "Bearer good":
        return FakeUser("alice", ("dev", "system:authenticated"))
    if auth:
        raise errors.unauthorized()
    return ANONYMOUS


def check_token(token: str) -> FakeUser | None:
    return FakeUser("alice", ("dev",)) if token == "good" else None


async def echo(request: web.Request) -> web.Response:
    body = await request.read()
    seen = {str(k): v for k, v in request.headers.items() if k.lower() != "host"}
    answer = {"method": request.method, "path_qs": request.raw_path, "headers": seen,
              "body": body.decode()}  # fmt: skip
    return web.Response(
        body=orjson.dumps(answer),
        status=201 if request.method == "POST" else 200,
        headers={
            "Content-Type": "application/json",
            "Keep-Alive": "timeout=5",
            "X-Face": "yes",
            "Set-Cookie": "a=b",
        },
    )


async def stream(request: web.Request) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    for i in range(3):
        await resp.write(f"part {i}\n".encode())
    await resp.write_eof()
    return resp


async def private(request: web.Request) -> web.Response:
    return web.Response(
        status=401, text="Unauthorized.", headers={"WWW-Authenticate": 'Basic realm="m"'}
    )


async def version(request: web.Request) -> web.Response:
    return web.json_response({"version": "1.11.0"})


def face_app(leader_port: int = 0) -> web.Application:
    app = web.Application()
    app.router.add_route("*", "/echo", echo)
    app.router.add_get("/stream", stream)
    app.router.add_get("/private", private)
    app.router.add_get("/version", version)

    async def redirect(request: web.Request) -> web.Response:
        loc = f"//127.0.0.1:{leader_port}/echo?{request.query_string}"
        return web.Response(status=307, headers={"Location": loc})

    app.router.add_route("*", "/redirect", redirect)
    return app


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def status_handler(dash: Dashboard, request: web.BaseRequest) -> web.StreamResponse:
    """``APIApp.handle``'s error mapping, for a Dashboard alone."""
    try:
        return await dash.handle(request)  # type: ignore[arg-type]
    except errors.StatusError as e:
        return web.Response(body=e.body(), status=e.code, content_type="application/json")


@pytest.fixture
async def client() -> AsyncIterator[TestClient]:  # type: ignore[type-arg]
    async with TestServer(face_app()) as leader, TestServer(face_app(leader.port or 0)) as face:
        dash = Dashboard(
            authenticate=authenticate,
            check_token=check_token,
            faces={
                "mesos": str(face.make_url("")),
                "marathon": f"http://127.0.0.1:{closed_port()}",
            },
            version="v1.32.0+test",
        )
        server = RawTestServer(lambda r: status_handler(dash, r))
        try:
            tc: TestClient = TestClient(server)  # type: ignore[type-arg]
            async with tc as c:
                yield c
        finally:
            await dash.close()


GOOD = {"Authorization": "Bearer good"}


async def test_request_reaches_the_face(client: TestClient) -> None:  # type: ignore[type-arg]
    r = await client.post(
        "/ui/faces/mesos/echo?a=1&b=x%26y%2B",
        data=b'{"x": 1}',
        headers={
            **GOOD,
            "Content-Type": "application/json",
            "Cookie": "session=s",
            "X-Custom": "no",
        },
    )
    assert r.status == 201
    assert r.headers["Content-Type"] == "application/json"
    got = await r.json()
    assert got["method"] == "POST"
    assert got["path_qs"] == "/echo?a=1&b=x%26y%2B"
    assert got["body"] == '{"x": 1}'
    assert got["headers"]["Authorization"] == "Bearer good"
    assert "Cookie" not in got["headers"] and "X-Custom" not in got["headers"]
    # the answer: the face's own headers, minus hop-by-hop and cookies, plus ours
    assert r.headers["X-Face"] == "yes"
    assert "Keep-Alive" not in r.headers and "Set-Cookie" not in r.headers
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in r.headers["Content-Security-Policy"]


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
async def test_methods(client: TestClient, method: str) -> None:  # type: ignore[type-arg]
    r = await client.request(method, "/ui/faces/mesos/echo", headers=GOOD)
    assert r.status == 200
    assert (await r.json())["method"] == method


async def test_other_methods_refused(client: TestClient) -> None:  # type: ignore[type-arg]
    r = await client.request("PATCH", "/ui/faces/mesos/echo", headers=GOOD)
    assert r.status == 405
    assert (await r.json())["reason"] == "MethodNotAllowed"


async def test_chunked_answer_streams(client: TestClient) -> None:  # type: ignore[type-arg]
    r = await client.get("/ui/faces/mesos/stream", headers=GOOD)
    assert r.status == 200
    assert await r.text() == "part 0\npart 1\npart 2\n"


async def test_face_401_without_a_password_dialog(client: TestClient) -> None:  # type: ignore[type-arg]
    r = await client.get("/ui/faces/mesos/private", headers=GOOD)
    assert r.status == 401
    assert "WWW-Authenticate" not in r.headers
    assert await r.text() == "Unauthorized."


async def test_standby_redirect_followed(client: TestClient) -> None:  # type: ignore[type-arg]
    r = await client.put("/ui/faces/mesos/redirect?q=7", data=b"body", headers=GOOD)
    assert r.status == 200
    got = await r.json()
    assert got["path_qs"] == "/echo?q=7"
    assert got["method"] == "PUT" and got["body"] == "body"
    assert got["headers"]["Authorization"] == "Bearer good"


@pytest.mark.parametrize(
    ("headers", "code"),
    [({}, 401), ({"Authorization": "Bearer bad"}, 401)],
    ids=["anonymous", "bad-token"],
)
async def test_faces_need_a_user(
    client: TestClient,  # type: ignore[type-arg]
    headers: dict[str, str],
    code: int,
) -> None:
    r = await client.get("/ui/faces/mesos/version", headers=headers)
    assert r.status == code
    assert (await r.json())["kind"] == "Status"


@pytest.mark.parametrize(
    ("path", "code", "words"),
    [
        ("/ui/faces/marathon/v2/apps", 503, "the Marathon API is not running beside this server"),
        ("/ui/faces/chronos/scheduler/jobs", 503, "the Chronos API is not running"),
        ("/ui/faces/nope/x", 404, "could not find"),
    ],
    ids=["not-listening", "not-started", "unknown-face"],
)
async def test_face_errors(
    client: TestClient,  # type: ignore[type-arg]
    path: str,
    code: int,
    words: str,
) -> None:
    r = await client.get(path, headers=GOOD)
    assert r.status == code
    body = await r.json()
    assert body["kind"] == "Status" and body["code"] == code and words in body["message"]


async def test_info(client: TestClient) -> None:  # type: ignore[type-arg]
    r = await client.get("/ui/info", headers=GOOD)
    assert r.status == 200
    assert await r.json() == {
        "user": "alice",
        "groups": ["dev", "system:authenticated"],
        "faces": {"mesos": True, "marathon": False, "chronos": False},
        "version": "v1.32.0+test",
    }
    assert (await client.get("/ui/info")).status == 401


async def test_login(client: TestClient) -> None:  # type: ignore[type-arg]
    r = await client.post("/ui/login", json={"token": "good"})
    assert r.status == 200
    assert await r.json() == {"token": "good", "user": "alice", "groups": ["dev"]}
    r = await client.post("/ui/login", json={"token": "bad"})
    assert r.status == 401 and (await r.json())["reason"] == "Unauthorized"
    assert (await client.get("/ui/login")).status == 405


async def test_redirect_to_slash(client: TestClient) -> None:  # type: ignore[type-arg]
    r = await client.get("/ui?x=1", allow_redirects=False)
    assert r.status == 301 and r.headers["Location"] == "/ui/?x=1"
    assert (await client.get("/uix")).status == 404


def test_answer_headers_drop_hop_by_hop() -> None:
    up: CIMultiDict[str] = CIMultiDict(
        [("Content-Type", "application/json"), ("Connection", "keep-alive, X-Hop"),
         ("X-Hop", "1"), ("Transfer-Encoding", "chunked"), ("Content-Length", "3"),
         ("WWW-Authenticate", "Basic"), ("Upgrade", "h2c"), ("X-Marathon-Leader", "a:1"),
         ("Set-Cookie", "a=b")]
    )  # fmt: skip
    got = answer_headers(CIMultiDictProxy(up))
    assert set(got) == {"Content-Type", "X-Marathon-Leader", "X-Content-Type-Options",
                        "Content-Security-Policy"}  # fmt: skip


def test_request_headers_allow_list() -> None:
    incoming: Mapping[str, Any] = CIMultiDictProxy(
        CIMultiDict({"authorization": "Bearer t", "Cookie": "c", "Host": "h", "Accept": "*/*",
                     "Connection": "close", "Content-Type": "text/plain"})
    )  # fmt: skip
    assert request_headers(incoming) == {
        "Authorization": "Bearer t",
        "Accept": "*/*",
        "Content-Type": "text/plain",
    }
