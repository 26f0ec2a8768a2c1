"""Chronos' REST API (``corral.chronos.http``) over an in-memory service.

Two kinds of client drive it: aiohttp's test client for the exact wire (codes, bodies,
Content-Types, both path prefixes), and the real ``chronos-python`` 1.2.1, whose calls
are synchronous (httplib2) and so run in a thread against the app served on a free port,
in its default ``/v1`` mode and its legacy (Chronos 2.x) mode.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import sys
import types
from collections.abc import AsyncIterator, Callable
from http import HTTPStatus
from typing import Any

import chronos
import httplib2
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

try:
    from corral.chronos.jobs import JobError
except ModuleNotFoundError as e:  # jobs.py is being written elsewhere: stand in until it lands
    if e.name != "corral.chronos.jobs":
        raise

    class JobError(ValueError):  # type: ignore[no-redef]
        pass

    _jobs = types.ModuleType("corral.chronos.jobs")
    _jobs.JobError = JobError  # type: ignore[attr-defined]
    sys.modules["corral.chronos.jobs"] = _jobs

from corral.chronos import http

Obj = dict[str, Any]
NAME = re.compile(r"[\w.-]+")

JOB: Obj = {
    "name": "etl-hourly",
    "command": "echo 1",
    "owner": "ops@x.com",
    "disabled": False,
    "async": False,  # required by the client in legacy mode
    "schedule": "R/2026-01-01T00:00:00Z/PT1H",
}
CHILD: Obj = {
    "name": "report",
    "command": "python report.py",
    "owner": "ops@x.com",
    "disabled": False,
    "async": False,
    "parents": ["etl-hourly"],
}


class FakeService:
    """``http.Service`` in memory, with just enough of Chronos' validation to refuse jobs."""

    def __init__(self) -> None:
        self.store: dict[str, Obj] = {}
        self.upserts: list[tuple[str, bool]] = []
        self.runs: list[tuple[str, list[str] | None]] = []
        self.killed: list[str] = []
        self.succeeded: list[str] = []
        self.current: dict[str, str] = {}

    async def upsert(self, body: Any, *, dependent: bool) -> None:
        name = body.get("name")
        if not isinstance(name, str) or not NAME.fullmatch(name):
            raise JobError("the job's name is invalid. Allowed names: '([\\w\\.-]+)'")
        if dependent:
            unknown = [p for p in body.get("parents") or [] if p not in self.store]
            if not body.get("parents") or unknown:
                raise JobError("Error, parent does not exist")
        elif not str(body.get("schedule", "")).startswith("R"):
            raise JobError(f"Cannot parse schedule '{body.get('schedule')}' (wtf bro)")
        self.upserts.append((name, dependent))
        self.store[name] = {
            "shell": True,
            "successCount": 0,
            "errorCount": 0,
            "lastSuccess": "",
            "lastError": "",
            **body,
        }

    def jobs(self) -> list[Obj]:
        return [self.store[n] for n in sorted(self.store)]

    def job(self, name: str) -> Obj | None:
        return self.store.get(name)

    async def delete(self, name: str) -> bool:
        return self.store.pop(name, None) is not None

    async def run_now(self, name: str, arguments: list[str] | None) -> bool:
        if name not in self.store:
            return False
        self.runs.append((name, arguments))
        return True

    async def kill_tasks(self, name: str) -> bool:
        if name not in self.store:
            return False
        self.killed.append(name)
        return True

    async def mark_success(self, name: str) -> bool:
        if name not in self.store:
            return False
        self.succeeded.append(name)
        return True

    def job_stat(self, name: str) -> Obj | None:
        if name not in self.store:
            return None
        hist = dict.fromkeys(http.PERCENTILES, 1.5)
        return {
            "histogram": {**hist, "count": 1},
            "taskStatHistory": [
                {
                    "taskId": f"ct:1767225600000:0:{name}:",
                    "jobName": name,
                    "slaveId": "agent-1",
                    "startTime": "01/01/26 00:00:00",
                    "endTime": "01/01/26 00:00:01",
                    "duration": "0d0h0m1s",
                    "status": "success",
                }
            ],
        }

    def percentiles(self, which: str) -> list[Obj]:
        assert which in http.PERCENTILES
        return [{"jobNameLabel": n, "time": 2.0 - i} for i, n in enumerate(sorted(self.store))]

    def graph_csv(self) -> str:
        nodes = [
            f"node,{n},{'success' if j['successCount'] else 'fresh'},{self.current.get(n, 'idle')}\n"
            for n, j in sorted(self.store.items())
        ]
        links = [
            f"link,{p},{n}\n" for n, j in sorted(self.store.items()) for p in j.get("parents", [])
        ]
        return "".join(nodes + links)

    def graph_dot(self) -> str:
        edges = "".join(
            f'"{p}"->"{n}";\n' for n, j in sorted(self.store.items()) for p in j.get("parents", [])
        )
        return f"digraph G {{\n{edges}}}\n"

    def metrics(self) -> Obj:
        return {
            "version": "3.0.0",
            "gauges": {"jobs.count": {"value": len(self.store)}},
            "counters": {},
            "histograms": {},
            "meters": {},
            "timers": {},
        }

    def leader(self) -> str:
        return "127.0.0.1:4400"

    def why(self, name: str) -> list[str]:
        return [f"{name} waits for nothing"]


def _seed(service: FakeService, *jobs: Obj) -> None:
    for job in jobs:
        service.store[job["name"]] = {"successCount": 0, "lastSuccess": "", "lastError": "", **job}


@pytest.fixture
def service() -> FakeService:
    return FakeService()


@pytest.fixture
def seen() -> list[tuple[str, str]]:
    """(method, path) of every request the app answered."""
    return []


@pytest.fixture
async def client(
    service: FakeService, seen: list[tuple[str, str]]
) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    app = http.build_app(service)

    async def record(request: web.Request, response: web.StreamResponse) -> None:
        seen.append((request.method, request.path))

    app.on_response_prepare.append(record)
    async with TestClient(TestServer(app, host="127.0.0.1")) as c:
        yield c


# --- the wire, with aiohttp's client -----------------------------------------------------------

Client = TestClient[web.Request, web.Application]
PREFIXES = pytest.mark.parametrize("p", http.PREFIXES, ids=["v1", "legacy"])


async def _error(resp: Any, status: int = 400) -> str:
    assert resp.status == status, await resp.text()
    assert resp.content_type == "application/json"
    body = await resp.json()
    assert body["status"] == HTTPStatus(status).phrase
    message: str = body["message"]
    return message


async def _empty(resp: Any) -> None:
    assert resp.status == 204, await resp.text()
    assert await resp.read() == b""
    assert "Content-Type" in resp.headers


@PREFIXES
@pytest.mark.parametrize(
    ("method", "path", "dependent"),
    [
        ("POST", "iso8601", False),
        ("PUT", "iso8601", False),
        ("POST", "dependency", True),
        ("PUT", "dependency", True),
    ],
    ids=["post-iso8601", "put-iso8601", "post-dependency", "put-dependency"],
)
async def test_upsert_answers_204(
    client: Client, service: FakeService, p: str, method: str, path: str, dependent: bool
) -> None:
    _seed(service, JOB)
    job = CHILD if dependent else {**JOB, "command": "echo 2"}
    await _empty(await client.request(method, f"{p}/{path}", json=job))
    assert service.upserts == [(job["name"], dependent)]
    assert service.store[job["name"]]["command"] == job["command"]


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"", "no job"),
        (b"   ", "no job"),
        (b'{"name": "a",', "Cannot parse the job as JSON"),
        (b"\xff\xfe", "Cannot parse the job as JSON"),
        (b"[1, 2]", "not an array"),
        (b'"a job"', "not a string"),
        (b"null", "not null"),
        (b"3", "not a number"),
    ],
    ids=["empty", "blank", "truncated", "not-utf8", "array", "string", "null", "number"],
)
async def test_malformed_bodies_are_400(
    client: Client, service: FakeService, body: bytes, words: str
) -> None:
    resp = await client.post(
        "/v1/scheduler/iso8601", data=body, headers={"Content-Type": "application/json"}
    )
    assert words in await _error(resp)
    assert service.upserts == []


async def test_an_oversized_body_is_a_json_413(client: Client, service: FakeService) -> None:
    body = json.dumps({**JOB, "description": "x" * (2 << 20)}).encode()
    resp = await client.post(
        "/v1/scheduler/iso8601",
        data=io.BytesIO(body),
        headers={"Content-Type": "application/json"},
    )
    assert "Maximum request body size" in await _error(resp, 413)
    assert service.upserts == []


@pytest.mark.parametrize(
    ("path", "job", "message"),
    [
        ("iso8601", {**JOB, "schedule": "every hour"}, "Cannot parse schedule 'every hour'"),
        ("iso8601", {**JOB, "name": "job with spaces"}, "the job's name is invalid"),
        ("dependency", {**CHILD, "parents": ["ghost"]}, "Error, parent does not exist"),
    ],
    ids=["schedule", "name", "parent"],
)
async def test_refused_jobs_are_400_with_the_services_message(
    client: Client, service: FakeService, path: str, job: Obj, message: str
) -> None:
    assert message in await _error(await client.post(f"/v1/scheduler/{path}", json=job))
    assert service.store == {}


@PREFIXES
async def test_jobs_and_job(client: Client, service: FakeService, p: str) -> None:
    resp = await client.get(f"{p}/jobs")
    assert (resp.status, resp.content_type, await resp.json()) == (200, "application/json", [])
    _seed(service, JOB, CHILD)
    assert [j["name"] for j in await (await client.get(f"{p}/jobs")).json()] == [
        "etl-hourly",
        "report",
    ]
    resp = await client.get(f"{p}/job/report")
    assert resp.status == 200
    assert (await resp.json())["parents"] == ["etl-hourly"]


@PREFIXES
@pytest.mark.parametrize(
    ("method", "path", "message"),
    [
        ("GET", "job/ghost", "Job 'ghost' not found"),
        ("PUT", "job/ghost", "Job 'ghost' not found"),
        ("GET", "job/stat/ghost", "Job 'ghost' not found"),
        ("DELETE", "job/ghost", "JobSchedule 'ghost' not found"),
        ("DELETE", "task/kill/ghost", "JobSchedule 'ghost' not found"),
    ],
    ids=["get", "run", "stat", "delete", "kill"],
)
async def test_unknown_jobs_are_400_as_chronos(
    client: Client, p: str, method: str, path: str, message: str
) -> None:
    assert await _error(await client.request(method, f"{p}/{path}")) == message


@pytest.mark.parametrize(
    ("query", "arguments"),
    [
        ("", None),
        ("?arguments=", None),
        ("?arguments=%20%20", None),
        ("?arguments=-debug", ["-debug"]),
        ("?arguments=-v%20--out%20%22a%20b%22", ["-v", "--out", "a b"]),
        ("?arguments=a,b", ["a,b"]),
        ("?arguments=-v&arguments=-q", ["-v", "-q"]),
    ],
    ids=["none", "empty", "blank", "one", "quoted", "comma", "repeated"],
)
async def test_run_now(
    client: Client, service: FakeService, query: str, arguments: list[str] | None
) -> None:
    _seed(service, JOB)
    await _empty(await client.put(f"/v1/scheduler/job/etl-hourly{query}"))
    assert service.runs == [("etl-hourly", arguments)]


async def test_run_now_with_unbalanced_quotes_is_400(client: Client, service: FakeService) -> None:
    _seed(service, JOB)
    resp = await client.put("/v1/scheduler/job/etl-hourly?arguments=%22open")
    assert "Cannot parse arguments" in await _error(resp)
    assert service.runs == []


@PREFIXES
async def test_delete_kill_and_success(client: Client, service: FakeService, p: str) -> None:
    _seed(service, JOB, CHILD)
    await _empty(await client.delete(f"{p}/task/kill/etl-hourly"))
    assert service.killed == ["etl-hourly"]
    resp = await client.put(f"{p}/job/success/etl-hourly")
    assert (resp.status, resp.content_type) == (200, "text/plain")
    assert await resp.text() == "marked job etl-hourly as successful: true"
    assert service.succeeded == ["etl-hourly"]
    resp = await client.put(f"{p}/job/success/ghost")  # Chronos: 200, false
    assert await resp.text() == "marked job ghost as successful: false"
    await _empty(await client.delete(f"{p}/job/report"))
    assert list(service.store) == ["etl-hourly"]


async def test_names_in_paths_are_url_decoded(client: Client, service: FakeService) -> None:
    _seed(service, {**JOB, "name": "job with spaces"})
    resp = await client.get("/v1/scheduler/job/job%20with%20spaces")
    assert (await resp.json())["name"] == "job with spaces"
    await _empty(await client.put("/v1/scheduler/job/job%20with%20spaces"))
    assert service.runs == [("job with spaces", None)]
    resp = await client.get("/v1/scheduler/job/stat/job%20with%20spaces")
    assert resp.status == 200
    await _empty(await client.delete("/scheduler/job/job%20with%20spaces"))
    assert service.store == {}


@PREFIXES
async def test_job_stat_and_percentiles(client: Client, service: FakeService, p: str) -> None:
    _seed(service, JOB, CHILD)
    stat = await (await client.get(f"{p}/job/stat/etl-hourly")).json()
    assert set(stat) == {"histogram", "taskStatHistory"}
    for which in http.PERCENTILES:
        resp = await client.get(f"{p}/stats/{which}")
        assert (resp.status, resp.content_type) == (200, "application/json")
        assert [s["jobNameLabel"] for s in await resp.json()] == ["etl-hourly", "report"]
    resp = await client.get(f"{p}/stats/42ndPercentile")  # Chronos: no job has it
    assert (resp.status, await resp.json()) == (200, [])


@PREFIXES
async def test_graphs_are_text(client: Client, service: FakeService, p: str) -> None:
    await _empty(await client.get(f"{p}/graph/csv"))  # nothing to say: 204, not an empty 200
    _seed(service, JOB, CHILD)
    resp = await client.get(f"{p}/graph/csv")
    assert (resp.status, resp.content_type) == (200, "text/plain")
    assert await resp.text() == (
        "node,etl-hourly,fresh,idle\nnode,report,fresh,idle\nlink,etl-hourly,report\n"
    )
    resp = await client.get(f"{p}/graph/dot")
    assert (resp.status, resp.content_type) == (200, "text/plain")
    assert '"etl-hourly"->"report"' in await resp.text()


@PREFIXES
async def test_jobs_summary(client: Client, service: FakeService, p: str) -> None:
    _seed(service, JOB, {**CHILD, "successCount": 3, "disabled": True})
    service.current["report"] = "1 running"
    resp = await client.get(f"{p}/jobs/summary")
    assert resp.status == 200
    assert await resp.json() == {
        "jobs": [
            {
                "name": "etl-hourly",
                "status": "fresh",
                "state": "idle",
                "schedule": JOB["schedule"],
                "parents": [],
                "disabled": False,
            },
            {
                "name": "report",
                "status": "success",
                "state": "1 running",
                "schedule": "",
                "parents": ["etl-hourly"],
                "disabled": True,
            },
        ]
    }


SEARCH_JOBS = [
    {"name": "etl-hourly", "command": "echo 1"},
    {"name": "ETL-daily", "command": "python etl.py"},
    {"name": "backup", "command": "tar czf /b.tgz /data"},
    *({"name": f"bulk-{i:02}", "command": "true"} for i in range(12)),
]
BULK = [f"bulk-{i:02}" for i in range(12)]


@pytest.mark.parametrize(
    ("query", "names"),
    [
        ("", ["ETL-daily", "backup", *BULK[:8]]),
        ("?limit=100", ["ETL-daily", "backup", *BULK, "etl-hourly"]),
        ("?name=etl", ["ETL-daily", "etl-hourly"]),
        ("?name=ETL&limit=1&offset=1", ["etl-hourly"]),
        ("?command=ECHO", ["etl-hourly"]),
        ("?name=etl&command=python", ["ETL-daily"]),
        ("?any=TAR", ["backup"]),
        ("?any=etl", ["ETL-daily", "etl-hourly"]),
        ("?name=backup&any=echo", ["backup", "etl-hourly"]),
        ("?name=zzz", []),
        ("?name=bulk&limit=2&offset=10", ["bulk-10", "bulk-11"]),
        ("?name=bulk&offset=-3&limit=1", ["bulk-00"]),
        ("?name=bulk&limit=0", []),
        ("?name=bulk&limit=", BULK[:10]),
    ],
    ids=lambda v: (v or "no-query") if isinstance(v, str) else None,
)
async def test_search(client: Client, service: FakeService, query: str, names: list[str]) -> None:
    _seed(service, *SEARCH_JOBS)
    resp = await client.get(f"/v1/scheduler/jobs/search{query}")
    assert resp.status == 200
    assert [j["name"] for j in await resp.json()] == names


@pytest.mark.parametrize("query", ["?limit=ten", "?offset=1.5"], ids=["limit", "offset"])
async def test_search_with_bad_paging_is_400(client: Client, query: str) -> None:
    assert "must be an integer" in await _error(
        await client.get(f"/v1/scheduler/jobs/search{query}")
    )


async def test_ping_metrics_leader(client: Client, service: FakeService) -> None:
    resp = await client.get("/ping")
    assert (resp.status, resp.content_type, await resp.text()) == (200, "text/plain", "pong\n")
    resp = await client.get("/metrics")
    assert resp.content_type == "application/json"
    assert set(await resp.json()) == {
        "version",
        "gauges",
        "counters",
        "histograms",
        "meters",
        "timers",
    }
    for path in ("/leader", "/v1/scheduler/leader", "/scheduler/leader"):
        resp = await client.get(path)
        assert await resp.json() == {"leader": "127.0.0.1:4400"}


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/v1/scheduler/nothing", 404),
        ("GET", "/v2/scheduler/jobs", 404),
        ("GET", "/v1/metrics", 404),
        ("DELETE", "/v1/scheduler/jobs", 405),
        ("GET", "/v1/scheduler/iso8601", 405),
    ],
    ids=["unknown", "v2", "prefixed-metrics", "delete-jobs", "get-iso8601"],
)
async def test_routing_errors_are_chronos_json(
    client: Client, method: str, path: str, status: int
) -> None:
    resp = await client.request(method, path)
    assert path in await _error(resp, status)
    if status == 405:
        assert "Allow" in resp.headers


async def test_a_crash_is_a_json_500(
    client: Client, service: FakeService, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken() -> list[Obj]:
        raise RuntimeError("the informer is not synced")

    monkeypatch.setattr(service, "jobs", broken)
    resp = await client.get("/v1/scheduler/jobs")
    assert resp.status == 500
    assert await resp.json() == {
        "message": "RuntimeError: the informer is not synced",
        "status": "Internal Server Error",
    }


# --- the real chronos-python client ------------------------------------------------------------


@pytest.fixture(autouse=True)
def _fresh_client_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    # legacy mode extends the class-level ChronosJob.fields list in place, for good
    monkeypatch.setattr(chronos.ChronosJob, "fields", list(chronos.ChronosJob.fields))


class _ClosingHttp(httplib2.Http):
    """The client makes an ``httplib2.Http`` per call and never closes it: close its
    connection once the answer is read (it is never reused), or the leaked socket's
    ResourceWarning fails the test. The bytes on the wire are the same."""

    def request(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().request(*args, **kwargs)
        finally:
            self.close()


@pytest.fixture(autouse=True)
def _closing_connections(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(chronos.httplib2, "Http", _ClosingHttp)


@pytest.fixture(params=["v1", None], ids=["v1", "legacy"])
def cc(request: pytest.FixtureRequest, client: Client) -> chronos.ChronosClient:
    return chronos.connect(f"127.0.0.1:{client.port}", scheduler_api_version=request.param)


async def _call(fn: Callable[..., Any], *args: Any) -> Any:
    return await asyncio.to_thread(fn, *args)


def _prefix(cc: chronos.ChronosClient) -> str:
    return "/v1/scheduler" if cc.scheduler_api_version else "/scheduler"


async def test_chronos_python_end_to_end(
    cc: chronos.ChronosClient, service: FakeService, seen: list[tuple[str, str]]
) -> None:
    assert await _call(cc.list) == []
    assert await _call(cc.add, JOB) is None
    assert await _call(cc.add, CHILD) is None
    assert service.upserts == [("etl-hourly", False), ("report", True)]
    assert await _call(cc.update, {**JOB, "command": "echo 2"}) is None
    assert [j["name"] for j in await _call(cc.list)] == ["etl-hourly", "report"]
    assert service.store["etl-hourly"]["command"] == "echo 2"

    assert [j["name"] for j in await _call(cc.search, "ETL")] == ["etl-hourly"]
    assert [j["name"] for j in await _call(cc.search, None, "REPORT.py")] == ["report"]
    assert await _call(cc.search, "nothing-like-it") == []

    assert await _call(cc.run, "etl-hourly") is None
    assert service.runs == [("etl-hourly", None)]

    stat = await _call(cc.job_stat, "etl-hourly")
    assert stat["histogram"]["count"] == 1
    assert stat["taskStatHistory"][0]["jobName"] == "etl-hourly"
    for fn in (
        cc.scheduler_stat_99th,
        cc.scheduler_stat_98th,
        cc.scheduler_stat_95th,
        cc.scheduler_stat_75th,
        cc.scheduler_stat_median,
        cc.scheduler_stat_mean,
    ):
        assert await _call(fn) == [
            {"jobNameLabel": "etl-hourly", "time": 2.0},
            {"jobNameLabel": "report", "time": 1.0},
        ]
    assert await _call(cc.scheduler_graph) == (
        "node,etl-hourly,fresh,idle\nnode,report,fresh,idle\nlink,etl-hourly,report\n"
    )
    metrics = await _call(cc.metrics)
    assert metrics["gauges"]["jobs.count"] == {"value": 2}

    assert await _call(cc.delete_tasks, "etl-hourly") is None
    assert service.killed == ["etl-hourly"]
    assert await _call(cc.delete, "report") is None
    assert await _call(cc.delete, "etl-hourly") is None
    assert await _call(cc.list) == []
    assert await _call(cc.scheduler_graph) is None  # an empty graph is a 204

    prefix = _prefix(cc)
    assert all(path.startswith(prefix) for _, path in seen if path != "/metrics")
    # Chronos 3 took PUT away from iso8601; the client's legacy update still uses it
    update = "PUT" if cc.scheduler_api_version is None else "POST"
    assert (update, f"{prefix}/iso8601") in seen
    assert ("GET", "/metrics") in seen


async def test_chronos_python_names_with_spaces(
    cc: chronos.ChronosClient, service: FakeService
) -> None:
    _seed(service, {**JOB, "name": "job with spaces"})
    assert await _call(cc.run, "job with spaces") is None
    assert service.runs == [("job with spaces", None)]
    assert (await _call(cc.job_stat, "job with spaces"))["histogram"]["count"] == 1
    assert await _call(cc.delete_tasks, "job with spaces") is None
    assert await _call(cc.delete, "job with spaces") is None
    assert service.store == {}


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda cc: cc.add({**JOB, "schedule": "every hour"}),
            "Cannot parse schedule 'every hour'",
        ),
        (lambda cc: cc.add({**CHILD, "parents": ["ghost"]}), "Error, parent does not exist"),
        (lambda cc: cc.update({**JOB, "name": "a b"}), "the job's name is invalid"),
        (lambda cc: cc.run("ghost"), "Job 'ghost' not found"),
        (lambda cc: cc.job_stat("ghost"), "Job 'ghost' not found"),
        (lambda cc: cc.delete("ghost"), "JobSchedule 'ghost' not found"),
        (lambda cc: cc.delete_tasks("ghost"), "JobSchedule 'ghost' not found"),
    ],
    ids=["schedule", "parent", "name", "run", "stat", "delete", "kill"],
)
async def test_chronos_python_sees_server_400s(
    cc: chronos.ChronosClient,
    service: FakeService,
    caplog: pytest.LogCaptureFixture,
    call: Callable[[chronos.ChronosClient], Any],
    message: str,
) -> None:
    """The client turns a 400 into ChronosAPIError, but it then tries the next server and
    raises "No remaining Chronos servers to try": the server's message reaches only its
    log (``Error while calling URL: MESSAGE (...)``)."""
    caplog.set_level(logging.ERROR, logger="chronos")
    with pytest.raises(chronos.ChronosAPIError, match="No remaining Chronos servers"):
        await _call(call, cc)
    logged = [r.getMessage() for r in caplog.records if r.name == "chronos"]
    assert any(f"{message}" in line and "(...)" in line for line in logged), logged
    assert service.store == {}


def test_fake_service_is_a_service() -> None:
    svc: http.Service = FakeService()
    assert isinstance(http.build_app(svc), web.Application)
