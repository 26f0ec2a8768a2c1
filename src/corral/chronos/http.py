"""Chronos' REST API (port 4400) as an aiohttp app over a ``Service``.

``build_app(service)`` serves what ``chronos-python`` 1.2.1, the Chronos UI and scripts
call, under ``/v1/scheduler`` (Chronos 3.x) and ``/scheduler`` (2.x, the client's
``scheduler_api_version=None``):

====== ======================= ============================================================
POST   iso8601, dependency     upsert (PUT too: 2.x and the client's legacy ``update``) 204
GET    jobs                    every job, 200
GET    jobs/search             ``name``, ``command``, ``any``, ``limit`` (10), ``offset``
GET    jobs/summary            ``{"jobs": [{name, status, state, schedule, parents, disabled}]}``
GET    job/{name}              the job, 200
PUT    job/{name}              run now (``?arguments=``), 204
DELETE job/{name}              204
DELETE task/kill/{name}        kill its tasks, 204
PUT    job/success/{name}      200 ``marked job NAME as successful: true|false`` (text)
GET    job/stat/{name}         ``{"histogram", "taskStatHistory"}``
GET    stats/{percentile}      ``[{"jobNameLabel", "time"}]``; an unknown percentile gives []
GET    graph/csv, graph/dot    text/plain; an empty graph is 204
GET    leader                  ``{"leader": "host:port"}`` (also at ``/leader``)
====== ======================= ============================================================

and, unprefixed, ``/ping`` (``pong``), ``/metrics`` (Dropwizard MetricsServlet JSON) and
``/leader``. With several instances, a standby passes requests on to the leader
(``standby.py``); ``leader`` names the Lease holder, ``503 There is no leader`` while
there is none. Job names in paths arrive URL-decoded (the client quotes spaces as ``%20``).

Codes and words are Chronos' (mesos/chronos ``scheduler/api/*.scala``, v3.0.2): an
unknown job is ``400 {"message": "Job 'x' not found", "status": "Bad Request"}`` (Chronos
fails a ``require``), ``JobSchedule 'x' not found`` for delete and kill. Two traps of the
client shape every answer: it treats an empty body with any status but 204 as a failure,
and reads ``Content-Type`` to decide how to decode a body. So empty answers are 204, every
answer carries a Content-Type, and every error (bad JSON, a job the service refuses, an
unknown route, a crash) is a JSON ``{"message", "status"}`` object, never aiohttp's text.

Where this differs from Chronos, on purpose: ``search?any=`` alone filters (Chronos then
returns every job, a bug); bad ``limit``/``offset`` are a 400, not Jersey's 404;
``arguments`` are split like a shell would (``shlex``) for ``Service.run_now`` where
Chronos appends the raw string to the command (dropping ``;``).

The handlers only translate: parsing, status codes, bodies. What a job is and what
running one means is the service's (``service.py``); it raises ``JobError`` for a job it
refuses, which is the only exception turned into a 400 here.
"""

from __future__ import annotations

import logging
import shlex
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any, Protocol

import orjson
from aiohttp import web
from aiohttp.typedefs import Middleware

from corral.chronos import standby
from corral.chronos.jobs import JobError
from corral.client.reviews import Reviewer

log = logging.getLogger("corral.chronos.http")

Obj = dict[str, Any]

PREFIXES = ("/v1/scheduler", "/scheduler")
PERCENTILES = (
    "99thPercentile",
    "98thPercentile",
    "95thPercentile",
    "75thPercentile",
    "median",
    "mean",
)
SEARCH_LIMIT = 10  # Chronos' default page when ``limit`` is absent


class Service(Protocol):
    """What the API needs from Chronos' brain; ``service.ChronosService`` implements it.

    Reads are synchronous (from caches); writes are awaited. Methods returning ``bool``
    answer ``False`` for an unknown job; ``upsert`` raises ``JobError`` with a message for
    the client when it refuses a job, and stores nothing then.
    """

    async def upsert(self, body: Any, *, dependent: bool) -> None: ...
    def jobs(self) -> list[Obj]: ...
    def job(self, name: str) -> Obj | None: ...
    async def delete(self, name: str) -> bool: ...
    async def run_now(self, name: str, arguments: list[str] | None) -> bool: ...
    async def kill_tasks(self, name: str) -> bool: ...
    async def mark_success(self, name: str) -> bool: ...
    def job_stat(self, name: str) -> Obj | None: ...
    def percentiles(self, which: str) -> list[Obj]: ...
    def graph_csv(self) -> str: ...
    def graph_dot(self) -> str: ...
    def metrics(self) -> Obj: ...
    def leader(self) -> str: ...

    def why(self, name: str) -> list[str]: ...


SERVICE_KEY = web.AppKey("chronos_service", Service)


class BadRequest(Exception):
    """A request this layer refuses; rendered as Chronos' 400 body."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# --- answers ---------------------------------------------------------------------------------


def _json(obj: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(obj), status=status, content_type="application/json")


def _text(text: str, status: int = 200) -> web.Response:
    if not text:
        return _no_content()
    return web.Response(text=text, status=status, content_type="text/plain")


def _no_content() -> web.Response:
    # a Content-Type on an empty answer too: some clients read it unconditionally
    return web.Response(status=204, content_type="application/json")


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    resp = _json({"message": message, "status": _reason(status)}, status)
    resp.headers.update(headers or {})
    return resp


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return str(status)


def _not_found(name: str) -> BadRequest:
    return BadRequest(f"Job '{name}' not found")


def _schedule_not_found(name: str) -> BadRequest:
    return BadRequest(f"JobSchedule '{name}' not found")


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure as Chronos' ``{"message", "status"}`` JSON, with its status code."""
    try:
        return await handler(request)
    except (BadRequest, JobError) as e:
        return _error(400, e.message if isinstance(e, BadRequest) else str(e))
    except web.HTTPException as e:
        if e.status < 400:
            raise
        keep = {k: v for k, v in e.headers.items() if k.lower() in ("allow", "retry-after")}
        text = e.text or ""
        if not text or text == f"{e.status}: {e.reason}":  # aiohttp's default words
            text = f"{e.reason}: {request.method} {request.path}"
        return _error(e.status, text, keep)
    except Exception as e:
        log.exception("%s %s failed", request.method, request.path)
        return _error(500, f"{type(e).__name__}: {e}")


# --- requests --------------------------------------------------------------------------------


def _service(request: web.Request) -> Service:
    return request.app[SERVICE_KEY]


def _name(request: web.Request) -> str:
    return request.match_info["name"]  # aiohttp has already percent-decoded it


async def _job_body(request: web.Request) -> Obj:
    raw = await request.read()
    if not raw.strip():
        raise BadRequest("The request has no job: send the job as a JSON object")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise BadRequest(f"Cannot parse the job as JSON: {e}") from None
    if not isinstance(body, dict):
        raise BadRequest(f"A job is a JSON object, not {_json_type(body)}")
    return body


def _json_type(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    return "a number"


def _int_param(request: web.Request, key: str, default: int) -> int:
    raw = request.query.get(key, "")
    if not raw.strip():
        return default
    try:
        return int(raw)
    except ValueError:
        raise BadRequest(f"'{key}' must be an integer, not '{raw}'") from None


def _arguments(request: web.Request) -> list[str] | None:
    """``?arguments=-v --out "a b"`` as the words a shell would see; blank means none."""
    words: list[str] = []
    for raw in request.query.getall("arguments", []):
        try:
            words += shlex.split(raw)
        except ValueError as e:
            raise BadRequest(f"Cannot parse arguments '{raw}': {e}") from None
    return words or None


# --- handlers --------------------------------------------------------------------------------


async def upsert_scheduled(request: web.Request) -> web.Response:
    await _service(request).upsert(await _job_body(request), dependent=False)
    return _no_content()


async def upsert_dependent(request: web.Request) -> web.Response:
    await _service(request).upsert(await _job_body(request), dependent=True)
    return _no_content()


async def list_jobs(request: web.Request) -> web.Response:
    return _json(_service(request).jobs())


def _contains(job: Obj, key: str, term: str) -> bool:
    # ``term`` is lowercase; an empty term matches every job
    return term in str(job.get(key) or "").lower()


async def search_jobs(request: web.Request) -> web.Response:
    """Chronos' search: ``name`` and ``command`` must all match (case-insensitive
    substrings), or else ``any`` matches the name or the command; then ``offset``/``limit``.
    """
    q = request.query
    name, command, any_ = (q.get(k, "").lower() for k in ("name", "command", "any"))
    limit = max(0, _int_param(request, "limit", SEARCH_LIMIT))
    offset = max(0, _int_param(request, "offset", 0))

    def matches(job: Obj) -> bool:
        if (
            (name or command)
            and _contains(job, "name", name)
            and _contains(job, "command", command)
        ):
            return True
        return bool(any_) and (_contains(job, "name", any_) or _contains(job, "command", any_))

    jobs = _service(request).jobs()
    if name or command or any_:
        jobs = [j for j in jobs if matches(j)]
    return _json(jobs[offset : offset + limit])


async def jobs_summary(request: web.Request) -> web.Response:
    """Chronos' UI summary. ``status`` is the last outcome (fresh, success, failure) and
    ``state`` the current one (idle, queued, running): both as the graph CSV has them."""
    svc = _service(request)
    states: dict[str, tuple[str, str]] = {}
    for line in svc.graph_csv().splitlines():
        parts = line.split(",", 3)
        if len(parts) == 4 and parts[0] == "node":
            states[parts[1]] = (parts[2], parts[3])
    out = []
    for job in svc.jobs():
        name = str(job.get("name", ""))
        status, state = states.get(name, ("fresh", "idle"))
        out.append(
            {
                "name": name,
                "status": status,
                "state": state,
                "schedule": str(job.get("schedule") or ""),
                "parents": list(job.get("parents") or []),
                "disabled": bool(job.get("disabled", False)),
            }
        )
    return _json({"jobs": out})


async def get_job(request: web.Request) -> web.Response:
    name = _name(request)
    job = _service(request).job(name)
    if job is None:
        raise _not_found(name)
    return _json(job)


async def run_job(request: web.Request) -> web.Response:
    name = _name(request)
    arguments = _arguments(request)
    if not await _service(request).run_now(name, arguments):
        raise _not_found(name)
    return _no_content()


async def delete_job(request: web.Request) -> web.Response:
    name = _name(request)
    if not await _service(request).delete(name):
        raise _schedule_not_found(name)
    return _no_content()


async def kill_tasks(request: web.Request) -> web.Response:
    name = _name(request)
    if not await _service(request).kill_tasks(name):
        raise _schedule_not_found(name)
    return _no_content()


async def mark_success(request: web.Request) -> web.Response:
    # Chronos answers 200 with this sentence, false (not an error) for an unknown job
    name = _name(request)
    done = await _service(request).mark_success(name)
    return _text(f"marked job {name} as successful: {str(done).lower()}")


async def job_stat(request: web.Request) -> web.Response:
    name = _name(request)
    stat = _service(request).job_stat(name)
    if stat is None:
        raise _not_found(name)
    return _json(stat)


async def percentile_stats(request: web.Request) -> web.Response:
    which = request.match_info["which"]
    if which not in PERCENTILES:
        return _json([])  # as Chronos: no job has that statistic
    return _json(_service(request).percentiles(which))


async def graph_csv(request: web.Request) -> web.Response:
    return _text(_service(request).graph_csv())


async def graph_dot(request: web.Request) -> web.Response:
    return _text(_service(request).graph_dot())


async def leader(request: web.Request) -> web.Response:
    where = standby.leader(request, _service(request).leader())
    if where is None:
        return _error(503, standby.NO_LEADER)
    return _json({"leader": where})


async def why(request: web.Request) -> web.Response:
    """Corral's own: what job NAME waits for (``corral why job/NAME``)."""
    svc = _service(request)
    name = request.match_info["name"]
    if svc.job(name) is None:
        return _json({"message": f"Job '{name}' not found", "status": "Not Found"}, 404)
    return _json({"job": name, "reasons": svc.why(name)})


async def ping(request: web.Request) -> web.Response:
    resp = _text("pong\n")  # Dropwizard's PingServlet
    resp.headers["Cache-Control"] = "must-revalidate,no-cache,no-store"
    return resp


async def metrics(request: web.Request) -> web.Response:
    return _json(_service(request).metrics())


def build_app(service: Service, reviewer: Reviewer | None = None) -> web.Application:
    """Chronos' REST API over ``service``; with a ``reviewer``, every request
    authenticated and authorized (``auth.py``)."""
    from corral.chronos import auth

    middlewares: list[Middleware] = [_errors, standby.middleware(_error)]
    if reviewer is not None:
        middlewares.append(auth.middleware(reviewer))
    app = web.Application(middlewares=middlewares)
    app[SERVICE_KEY] = service
    standby.install(app)
    r = app.router
    for p in PREFIXES:
        for path, handler in (("iso8601", upsert_scheduled), ("dependency", upsert_dependent)):
            r.add_post(f"{p}/{path}", handler)
            r.add_put(f"{p}/{path}", handler)
        r.add_get(f"{p}/jobs", list_jobs)
        r.add_get(f"{p}/jobs/search", search_jobs)
        r.add_get(f"{p}/jobs/summary", jobs_summary)
        r.add_get(f"{p}/job/stat/{{name}}", job_stat)
        r.add_put(f"{p}/job/success/{{name}}", mark_success)
        r.add_get(f"{p}/job/{{name}}", get_job)
        r.add_put(f"{p}/job/{{name}}", run_job)
        r.add_delete(f"{p}/job/{{name}}", delete_job)
        r.add_delete(f"{p}/task/kill/{{name}}", kill_tasks)
        r.add_get(f"{p}/stats/{{which}}", percentile_stats)
        r.add_get(f"{p}/graph/csv", graph_csv)
        r.add_get(f"{p}/graph/dot", graph_dot)
        r.add_get(f"{p}/leader", leader)
    r.add_get("/leader", leader)
    r.add_get("/corral/why/{name}", why)
    r.add_get("/ping", ping)
    r.add_get("/metrics", metrics)
    return app
