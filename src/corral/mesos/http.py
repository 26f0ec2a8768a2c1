"""The Mesos master's HTTP face (port 5050): the v1 scheduler API, the operator API and
the read-only endpoints that frameworks, dashboards and tools read.

- ``POST /api/v1/scheduler``: SUBSCRIBE answers a chunked RecordIO stream with a
  ``Mesos-Stream-Id`` (``stream.py``); every other call needs that header and answers
  ``202``; malformed calls ``400`` with a text message, a wrong or missing stream id
  ``403`` — the codes and words of Mesos' ``master/http.cpp``.
- ``POST /api/v1`` (and ``/api/v1/operator``): operator calls, ``200`` with JSON.
- ``GET /version``, ``/state`` (= ``/master/state``), ``/state-summary``,
  ``/metrics/snapshot``, ``/master/redirect`` (= ``/redirect``), ``/health``.

Built by ``build_app``; ``serve`` runs it beside the scheduler (cli/mesos.py).

With a ``MasterAuth`` (``auth.py``) the scheduler, operator and read-only endpoints are
authenticated (HTTP basic: a Corral user and its token) and authorized (RBAC, through
SubjectAccessReviews); ``/version``, ``/health`` and ``/redirect`` stay open.

Several masters (``corral scheduler --mesos-port`` with ``--leader-elect``): the elector
is on the app under ``util.leadership.LEADERSHIP`` (absent: this master always leads).
A standby answers as Mesos' ``Master::Http::redirect`` does, after authentication: every
endpoint but ``/version``, ``/health`` and ``/metrics/snapshot`` (answered locally:
``master/elected`` 0) is a ``307`` to ``//leader-host:port`` plus the request's path and
query (pymesos and ``framework_client`` take the netloc), or ``503 No leader elected``
while no one holds the Lease (or the Lease still names this listener, left by its
previous run); ``/redirect`` is a ``307`` to the leader's base URL. A
master that has just taken the Lease answers those endpoints ``503 Master has not
finished recovery`` until it has recovered its frameworks and tasks (``Master.ready``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
import orjson
from aiohttp import web

from corral.api.mesos import role_error
from corral.mesos import auth as mauth
from corral.mesos import state as st
from corral.mesos.master import Master
from corral.mesos.model import VERSION, CallError
from corral.offers.resources import UNLIMITED, to_vector
from corral.util import leadership as lead
from corral.util.eventstream import EventStream

log = logging.getLogger("corral.mesos.http")

Obj = dict[str, Any]
MASTER_KEY = web.AppKey("master", Master)
#: what a standby answers itself (everything else: a redirect to the leader)
STANDBY_LOCAL = frozenset(
    {"/version", "/health", "/master/health", "/metrics/snapshot", "/redirect", "/master/redirect"}
)
NO_LEADER = "No leader elected"
NOT_RECOVERED = "Master has not finished recovery"


def _json(obj: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(obj), status=status, content_type="application/json")


def _text(message: str, status: int) -> web.Response:
    return web.Response(text=message, status=status, content_type="text/plain")


async def _read_call(request: web.Request) -> Obj:
    ctype = request.content_type
    if ctype == "application/x-protobuf":
        raise CallError(
            415, "Corral's Mesos master speaks JSON: send 'Content-Type: application/json'"
        )
    if ctype not in ("application/json", "application/octet-stream", ""):
        raise CallError(415, f"Expecting 'Content-Type' of application/json; got '{ctype}'")
    accept = request.headers.get("Accept", "")
    if accept and "json" not in accept and "*/*" not in accept:
        raise CallError(406, "Expecting 'Accept' to allow application/json")
    raw = await request.read()
    try:
        call = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise CallError(400, f"Failed to parse body into JSON: {e}") from None
    if not isinstance(call, dict):
        raise CallError(400, "Failed to validate call: expecting a JSON object")
    if not isinstance(call.get("type"), str):
        raise CallError(400, "Failed to validate call: Expecting 'type' to be present")
    return call


async def scheduler_api(request: web.Request) -> web.StreamResponse:
    m = request.app[MASTER_KEY]
    try:
        call = await _read_call(request)
        user = request.get(mauth.USER_KEY)
        if call["type"] == "SUBSCRIBE":
            if "Mesos-Stream-Id" in request.headers:
                raise CallError(
                    400, "Subscribe calls should not include the 'Mesos-Stream-Id' header"
                )
            check = None
            if user is not None:
                _claim_principal(call, user.username)
                check = request.app[mauth.AUTH_KEY].subscribe_check(user)
            fw, stream = await m.subscribe(call, authorize=check)
        else:
            fw = m.framework_for_call(call, request.headers.get("Mesos-Stream-Id"))
            declared = str(fw.info.get("principal") or "")
            if user is not None and user.username != declared:
                raise CallError(400, mauth.principal_mismatch(user.username, declared))
            m.handle(fw, call)
            return web.Response(status=202)
    except CallError as e:
        m.metrics.invalid_calls += 1
        return _text(e.message, e.code)
    try:
        await stream.pump(request)
    finally:
        m.disconnected(fw, stream)
    return web.Response(status=200)  # never sent: the stream response was prepared


def _claim_principal(call: Obj, principal: str) -> None:
    """Mesos' check of an authenticated SUBSCRIBE: the FrameworkInfo's principal is the
    authenticated one, or is set to it when absent (``auth.py``)."""
    sub = call.get("subscribe")
    info = sub.get("framework_info") if isinstance(sub, dict) else None
    if not isinstance(info, dict):
        return  # the master's validation says what is missing
    declared = info.get("principal")
    if declared is None or declared == "":
        info["principal"] = principal
    elif declared != principal:
        raise CallError(
            400,
            "Failed to validate scheduler::Call: "
            + mauth.principal_mismatch(principal, str(declared)),
        )


async def version(request: web.Request) -> web.Response:
    return _json(
        {
            "version": VERSION,
            "build_date": "",
            "build_time": 0,
            "build_user": "corral",
            "git_sha": "",
            "git_tag": VERSION,
        }
    )


async def state(request: web.Request) -> web.Response:
    return _json(st.state_v0(request.app[MASTER_KEY]))


async def state_summary(request: web.Request) -> web.Response:
    return _json(st.state_summary(request.app[MASTER_KEY]))


async def metrics(request: web.Request) -> web.Response:
    snap = st.metrics_snapshot(request.app[MASTER_KEY])
    if not lead.leads(request.app):
        snap["master/elected"] = 0.0
    return _json(snap)


async def redirect(request: web.Request) -> web.Response:
    """``/redirect``: a 307 to the leading master's base URL (this one's, when it leads)."""
    m = request.app[MASTER_KEY]
    if lead.leads(request.app):
        return _temporary_redirect(f"//{m.hostname}:{m.port}")
    return _to_leader(request, with_path=False)


def _to_leader(request: web.Request, *, with_path: bool = True) -> web.Response:
    leader = lead.leader_of(request.app, "mesos")
    # a Lease still held by this listener's previous run names no live leader: a 307 to
    # ourselves would only loop (pymesos follows it at once, without a pause)
    if leader is None or leader == lead.own_address(request, "mesos"):
        log.warning("not the leading master, and no leader known: %s refused", request.path)
        return _text(NO_LEADER, 503)
    return _temporary_redirect(f"//{leader}{request.raw_path if with_path else ''}")


def _temporary_redirect(location: str) -> web.Response:
    # built by hand: aiohttp's HTTPTemporaryRedirect re-quotes the path through yarl
    return web.Response(status=307, headers={"Location": location})


@web.middleware
async def _standby(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """On a standby, the leader-only endpoints redirect (``Master::Http::redirect``); a
    newly elected master answers them 503 until it has recovered its frameworks and
    tasks (Mesos' "Master has not finished recovery"), never from an empty state."""
    if request.path in STANDBY_LOCAL:
        return await handler(request)
    if not lead.leads(request.app):
        return _to_leader(request)
    if lead.leadership(request.app) is not None and not request.app[MASTER_KEY].ready.is_set():
        return _text(NOT_RECOVERED, 503)
    return await handler(request)


async def health(request: web.Request) -> web.Response:
    """200 once the master has recovered its state and takes calls, 503 before; a
    standby is healthy (Mesos' ``/health`` of any master)."""
    if not lead.leads(request.app):
        return web.Response(status=200)
    return web.Response(status=200 if request.app[MASTER_KEY].ready.is_set() else 503)


# --- operator API ------------------------------------------------------------------------------
async def operator_api(request: web.Request) -> web.StreamResponse:
    m = request.app[MASTER_KEY]
    try:
        call = await _read_call(request)
        kind = call["type"]
        if not m.ready.is_set():
            raise CallError(503, "Master is not ready yet: recovering its state")
        if not isinstance(call.get(kind.lower(), {}), dict):
            raise CallError(400, f"Expecting '{kind.lower()}' to be an object")
        user = request.get(mauth.USER_KEY)
        if user is not None and await request.app[mauth.AUTH_KEY].denied(
            user, mauth.operator_accesses(call)
        ):
            return mauth.forbidden()
        if kind == "SUBSCRIBE":
            stream = EventStream(m.heartbeat)
            stream.send(
                {
                    "type": "SUBSCRIBED",
                    "subscribed": {
                        "get_state": st.get_state(m),
                        "heartbeat_interval_seconds": m.heartbeat,
                    },
                }
            )
            m.operator_streams.append(stream)
            try:
                await stream.pump(request)
            finally:
                stream.close()
            return web.Response(status=200)
        try:
            answer = await _operator_call(m, kind, call)
        except (TypeError, ValueError, AttributeError, OverflowError) as e:
            raise CallError(400, f"Invalid '{kind}' call: {e}") from None
    except CallError as e:
        return _text(e.message, e.code)
    if answer is None:
        return web.Response(status=200)
    return _json({"type": kind, kind.lower(): answer} if answer else {"type": kind})


async def _operator_call(m: Master, kind: str, call: Obj) -> Obj | None:
    body = call.get(kind.lower()) or {}
    if kind == "GET_HEALTH":
        return {"healthy": True}
    if kind == "GET_VERSION":
        return {"version_info": {"version": VERSION, "build_user": "corral"}}
    if kind == "GET_STATE":
        return st.get_state(m)
    if kind == "GET_AGENTS":
        return st.get_agents(m)
    if kind == "GET_FRAMEWORKS":
        return st.get_frameworks(m)
    if kind == "GET_TASKS":
        return st.get_tasks(m)
    if kind == "GET_EXECUTORS":
        return {"executors": [], "orphan_executors": []}
    if kind == "GET_ROLES":
        return st.get_roles(m)
    if kind == "GET_WEIGHTS":
        return st.get_weights(m)
    if kind == "GET_MASTER":
        return {
            "master_info": m.master_info(),
            "start_time": m.start_time,
            "elected_time": m.elected_time,
        }
    if kind == "GET_METRICS":
        snap = st.metrics_snapshot(m)
        return {"metrics": [{"name": k, "value": v} for k, v in snap.items()]}
    if kind == "GET_FLAGS":
        return {"flags": [{"name": k, "value": v} for k, v in st.state_v0(m)["flags"].items()]}
    if kind == "GET_QUOTA":
        return st.get_quota(m)
    if kind == "UPDATE_WEIGHTS":
        infos = body.get("weight_infos")
        if not isinstance(infos, list) or not infos:
            raise CallError(400, "Expecting 'update_weights.weight_infos' to be present")
        parsed = []
        for w in infos:
            role = w.get("role") if isinstance(w, dict) else None
            weight = w.get("weight") if isinstance(w, dict) else None
            if (
                not isinstance(role, str)
                or isinstance(weight, bool)
                or not isinstance(weight, int | float)
                or not 0 < weight < 1e9
            ):
                raise CallError(
                    400, f"Invalid weight info {w!r}: want a role and a positive weight"
                )
            _check_role(role)
            parsed.append((role, float(weight)))
        for role, weight in parsed:
            m.allocator.set_weight(role, weight)
        await m.save_policy()
        m.wake()
        return None
    if kind in ("UPDATE_QUOTA", "SET_QUOTA", "REMOVE_QUOTA"):
        for role, g, lim in _quota_configs(kind, body):
            try:
                m.allocator.set_quota(role, g, lim)
            except ValueError as e:
                raise CallError(400, f"Invalid quota for role '{role}': {e}") from None
        await m.save_policy()
        m.wake()
        return None
    raise CallError(400, f"Unsupported operator call type '{kind}'")


def _check_role(role: Any) -> None:
    why = role_error(role) if isinstance(role, str) else "a role name is a string"
    if why:
        raise CallError(400, f"Invalid role {role!r}: {why}")


def _quota_configs(kind: str, body: Obj) -> list[tuple[str, Any, Any]]:
    """(role, guarantee, limit) of UPDATE_QUOTA, SET_QUOTA (a guarantee; Mesos 1.9+
    treats it as a limit too, of the resources it names) and REMOVE_QUOTA."""
    out: list[tuple[str, Any, Any]] = []
    if kind == "REMOVE_QUOTA":
        role = body.get("role")
        if not isinstance(role, str) or not role:
            raise CallError(400, "Expecting 'remove_quota.role' to be present")
        _check_role(role)
        return [(role, None, None)]
    if kind == "SET_QUOTA":
        req = body.get("quota_request")
        if not isinstance(req, dict) or not isinstance(req.get("guarantee", []), list):
            raise CallError(400, "Expecting 'set_quota.quota_request' with a 'guarantee' list")
        role = req.get("role")
        if not isinstance(role, str) or not role:
            raise CallError(400, "Expecting 'set_quota.quota_request.role' to be present")
        _check_role(role)
        g = _resource_list(req.get("guarantee") or [])
        named = {r.get("name") for r in req.get("guarantee") or [] if isinstance(r, dict)}
        lim = np.array(g, copy=True)
        for i, name in enumerate(("cpus", "mem", "disk")):
            if name not in named:
                lim[i] = UNLIMITED
        return [(role, g, lim)]
    configs = body.get("quota_configs")
    if not isinstance(configs, list) or not configs:
        raise CallError(400, "Expecting 'update_quota.quota_configs' to be present")
    for c in configs:
        role = c.get("role") if isinstance(c, dict) else None
        if not isinstance(role, str) or not role:
            raise CallError(400, "Each quota config needs a 'role'")
        _check_role(role)
        out.append((role, _scalar_map(c.get("guarantees"), 0), _scalar_map(c.get("limits"), None)))
    return out


def _scalar_map(m: Any, unnamed: int | None) -> Any:
    """A ``{name: {value}}`` map as a table vector; a resource it does not name is
    ``unnamed`` (0 for a guarantee) or unlimited (None, for a limit)."""
    if m is None:
        return None
    if not isinstance(m, dict):
        raise CallError(400, "Quota guarantees and limits are maps of resource name to {value}")
    vals: dict[str, float] = {}
    for k, v in m.items():
        if k not in ("cpus", "mem", "disk"):
            raise CallError(400, f"Quota on '{k}' is not supported (cpus, mem, disk)")
        val = v.get("value") if isinstance(v, dict) else None
        if isinstance(val, bool) or not isinstance(val, int | float) or not 0 <= val < 1e12:
            raise CallError(400, f"Invalid quota value for '{k}': {v!r}")
        vals[k] = float(val)
    vec = to_vector(vals.get("cpus", 0.0), vals.get("mem", 0.0), vals.get("disk", 0.0))
    for i, name in enumerate(("cpus", "mem", "disk")):
        if name not in vals:
            vec[i] = UNLIMITED if unnamed is None else unnamed
    return vec


def _resource_list(res: list[Obj]) -> Any:
    from corral.offers.resources import parse_resources

    if isinstance(res, list) and any(isinstance(r, dict) and r.get("name") == "pods" for r in res):
        raise CallError(400, "Quota on 'pods' is not supported (cpus, mem, disk)")
    try:
        vec, _ = parse_resources(res)
    except (ValueError, TypeError, AttributeError, OverflowError) as e:
        raise CallError(400, f"Invalid resources: {e}") from None
    return np.asarray(vec)


async def corral_top(request: web.Request) -> web.Response:
    return _json(st.top(request.app[MASTER_KEY]))


async def corral_why(request: web.Request) -> web.Response:
    answer = st.why(request.app[MASTER_KEY], request.match_info["who"])
    return _json(answer, 200 if answer.get("found") else 404)


def build_app(master: Master, auth: mauth.MasterAuth | None = None) -> web.Application:
    """The master's routes; with ``auth``, its realms authenticated and its calls
    authorized (``auth.py``)."""
    app = web.Application(client_max_size=16 * 2**20, middlewares=[mauth.middleware, _standby])
    app[MASTER_KEY] = master
    if auth is not None:
        app[mauth.AUTH_KEY] = auth
    r = app.router
    r.add_post("/api/v1/scheduler", scheduler_api)
    r.add_post("/api/v1", operator_api)
    r.add_post("/api/v1/operator", operator_api)
    r.add_get("/version", version)
    for prefix in ("", "/master"):
        r.add_get(f"{prefix}/state", state)
        r.add_get(f"{prefix}/state.json", state)
        r.add_get(f"{prefix}/state-summary", state_summary)
        r.add_get(f"{prefix}/redirect", redirect)
        r.add_get(f"{prefix}/health", health)
    r.add_get("/metrics/snapshot", metrics)
    r.add_get("/corral/top", corral_top)
    r.add_get("/corral/why/{who}", corral_why)
    return app
