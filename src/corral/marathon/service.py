"""The Marathon service: the I/O shell around ``scheduler.Scheduler``, and the
``service_api.Service`` the REST API (``http.py``) calls.

``run`` loads the stored state, subscribes to the Mesos master as the framework
``marathon`` (``framework_client.SchedulerClient``; its id is kept in the ConfigMap
``marathon/marathon-framework`` so a restarted Marathon fails over and keeps its tasks),
reconciles, and then feeds the scheduler the master's events and a clock tick a second,
carrying out what it answers (status updates are taken in one by one and the scheduler
settles after them at most every ``SETTLE_SECONDS``, not once per update). Framework
calls go through one outbox task, in order, so an API call never waits for the master.

Its state is the API's (``store.Store``: App objects, ConfigMaps of versions and groups,
namespace ``marathon``). A change is written before its deployment starts; a write that fails undoes the writes
made before it (nothing half-created) and answers ``Invalid``/``Conflict``. A running
deployment is stored too (``store.Store.save_run``) before the call that started it
answers, again (by the ``marathon-deployments`` writer task, in order) whenever its step
begins, and deleted when it ends or is cancelled. A restarted service keeps every app at
its stored instances (the scheduler's queue brings them there), adopts the running
instances from their pods (``mesos`` namespace, label ``marathon.corral.dev/app``),
carries on every stored deployment from its stored step with its id
(``Scheduler.restore``: a half-done rolling restart goes on replacing old-config
instances), and reconciliation corrects their states; a task no app owns is killed. Status updates are acknowledged once the
scheduler took them in (instances are not stored: Mesos is their record).

Readiness checks (the app's first) are probed by this service over HTTP, at the
instance's address (``TaskStatus`` IP, else the agent's hostname) and the host port of
the check's ``portName`` (a bridge mapping's container port), as soon as the instance
runs and then every ``intervalSeconds`` until it passes; an instance launched with
readiness checks counts as ready in deployments only once one passed. Instances adopted
after a restart count as ready.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import aiohttp

from corral.client.basic_auth import basic_header
from corral.client.rest import Client
from corral.marathon import apps as appdefs
from corral.marathon import plan as plans
from corral.marathon.apps_errors import AppError
from corral.marathon.apps_ids import parent_id, split_id
from corral.marathon.apps_view import timestamp
from corral.marathon.deployments import Run
from corral.marathon.instances import Instance, counts, task_stats, to_task
from corral.marathon.scheduler import Instruction, Publish, Scheduler, config_version
from corral.marathon.service_api import (
    Conflict,
    Deployment,
    EventSink,
    Invalid,
    Locked,
    NotFound,
)
from corral.marathon.store import NAMESPACE, Store, object_name
from corral.mesos.framework_calls import Decline, Kill, Launch, Revive, Suppress
from corral.mesos.framework_client import SchedulerCallError, SchedulerClient

log = logging.getLogger("corral.marathon")

Obj = dict[str, Any]
__all__ = ["NAMESPACE", "MarathonService", "object_name"]
MARATHON_VERSION = "1.10.19"
TICK_SECONDS = 1.0
#: status updates are taken in as they come and the scheduler settles after them at most
#: this often (settling reads every instance: once per update would be O(updates x
#: instances) while 10,000 tasks start)
SETTLE_SECONDS = 0.05
#: the events after which a deployment's stored form is behind
_RUN_EVENTS = frozenset({"deployment_info", "deployment_success", "deployment_failed"})


class _Null:
    def publish(self, event: Obj) -> None:
        pass


class MarathonService:
    """See the module docstring."""

    def __init__(
        self,
        client: Client,
        master: str,
        *,
        leader: str = "127.0.0.1:8080",
        events: EventSink | None = None,
        clock: Callable[[], float] = time.time,
        role: str = "*",
        principal: str = "",
        secret: str = "",
    ) -> None:
        self.client = client
        self.master = master
        #: who this framework authenticates to the master as (HTTP basic), or ""
        self.principal = principal
        self.secret = secret
        self.leader_address = leader
        self.events: EventSink = events or _Null()
        self.now = clock
        self.role = role
        self.scheduler = Scheduler(role)
        self.store = Store(client)
        self.framework: SchedulerClient | None = None
        self.framework_id: str | None = None
        self.ready = asyncio.Event()
        self._lock = asyncio.Lock()
        self._last_version = ""
        self._outbox: asyncio.Queue[Instruction] = asyncio.Queue()
        self._unsettled = asyncio.Event()
        #: deployments whose stored form is behind (a step began, or they ended)
        self._runs_dirty: set[str] = set()
        self._runs_changed = asyncio.Event()
        self._started = time.time()
        self._tg: asyncio.TaskGroup | None = None
        self._http: aiohttp.ClientSession | None = None

    # --- running ------------------------------------------------------------------------------
    async def run(self) -> None:
        await self.store.ensure_namespace()
        self.framework_id = await self.store.framework_id()
        self.scheduler.load(await self.store.load())
        if self.framework_id:
            for inst in await self.store.adopted(self.framework_id, self.now()):
                self.scheduler.adopt(inst)
        runs = await self.store.load_runs()
        info = {
            "user": "root",
            "name": "marathon",
            "roles": [self.role],
            "capabilities": [{"type": "MULTI_ROLE"}, {"type": "PARTITION_AWARE"}],
            "failover_timeout": 7 * 24 * 3600.0,
            "checkpoint": True,
            "webui_url": f"http://{self.leader_address}",
        }
        if self.principal:
            info["principal"] = self.principal
        self.framework = SchedulerClient(
            self.master,
            info,
            on_event=self._on_event,
            framework_id=self.framework_id,
            implicit_acks=True,
            authorization=self._authorization(),
        )
        for run in runs:
            log.info("marathon: resuming deployment %s at step %d", run.id, run.step)
            self.dispatch(self.scheduler.restore(run, self.now()))
        async with asyncio.TaskGroup() as tg:
            self._tg = tg
            tg.create_task(self.framework.run(), name="marathon-framework")
            tg.create_task(self._drain(), name="marathon-outbox")
            tg.create_task(self._ticks(), name="marathon-ticks")
            tg.create_task(self._settler(), name="marathon-settle")
            tg.create_task(self._run_writer(), name="marathon-deployments")
            self.ready.set()

    def _authorization(self) -> str | None:
        """The ``Authorization`` header towards the master (``--mesos-authentication-*``)."""
        if not (self.principal and self.secret):
            return None
        return basic_header(self.principal, self.secret)

    async def close(self) -> None:
        """Stop talking to the master; store what the deployments' writer had left."""
        with contextlib.suppress(Exception):
            await self._store_runs()
        if self.framework is not None:
            await self.framework.close()
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def _ticks(self) -> None:
        while True:
            await asyncio.sleep(TICK_SECONDS)
            now = self.now()
            self.dispatch(self.scheduler.tick(now))
            for tid, check, url in self.scheduler.readiness_due(now):
                if self._tg is not None:
                    self._tg.create_task(self._probe(tid, check, url))
            try:
                for app_id in list(self.scheduler.apps):
                    await self.store.write_status(app_id, self._status(app_id))
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("marathon: writing app status failed")

    async def _settler(self) -> None:
        """Settle the scheduler after status updates, at most every ``SETTLE_SECONDS``."""
        while True:
            await self._unsettled.wait()
            self._unsettled.clear()
            self.dispatch(self.scheduler.settle(self.now()))
            await asyncio.sleep(SETTLE_SECONDS)

    async def _run_writer(self) -> None:
        """Bring the stored deployments up to date: save the running ones whose step
        began, delete the ended ones; a failed write is tried again a second later."""
        while True:
            await self._runs_changed.wait()
            self._runs_changed.clear()
            await self._store_runs()
            if self._runs_dirty:
                await asyncio.sleep(TICK_SECONDS)
                self._runs_changed.set()

    async def _store_runs(self) -> None:
        for did in sorted(self._runs_dirty):
            self._runs_dirty.discard(did)
            try:
                run = self.scheduler.runs.get(did)
                if run is None:
                    await self.store.delete_run(did)
                else:
                    await self.store.save_run(run)
            except asyncio.CancelledError:
                self._runs_dirty.add(did)
                raise
            except Exception:
                log.exception("marathon: storing deployment %s failed", did)
                self._runs_dirty.add(did)

    async def _probe(self, tid: str, check: Obj, url: str) -> None:
        """One readiness probe, from this host: ready when the answer's status is one
        of ``httpStatusCodesForReady``."""
        if self._http is None:
            self._http = aiohttp.ClientSession()
        codes = [int(c) for c in check.get("httpStatusCodesForReady") or [200]]
        timeout = aiohttp.ClientTimeout(total=float(check.get("timeoutSeconds", 10)))
        response: Obj | None = None
        try:
            async with self._http.get(url, timeout=timeout, ssl=False) as r:
                body = (await r.read())[:4096].decode("utf-8", "replace")
                response = {"status": r.status, "contentType": r.content_type, "body": body}
                ok = r.status in codes
        except (aiohttp.ClientError, OSError, TimeoutError) as e:
            ok = False
            log.debug("marathon: readiness probe %s of %s: %s", url, tid, e)
        self.dispatch(self.scheduler.readiness(tid, ok, response, self.now()))

    async def _drain(self) -> None:
        while True:
            ins = await self._outbox.get()
            try:
                await self._call(ins)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.warning("marathon: %s failed: %s", type(ins).__name__, e)
                if isinstance(ins, Launch):  # the tasks never reached the master
                    for task in ins.tasks:
                        status = {"task_id": task["task_id"], "state": "TASK_DROPPED"}
                        self.dispatch(self.scheduler.observe(status, self.now()))
                    self._unsettled.set()

    async def _call(self, ins: Instruction) -> None:
        fw = self.framework
        if fw is None:
            return
        if isinstance(ins, Launch):
            await fw.launch(ins.offer_id, list(ins.tasks), refuse_seconds=1.0)
        elif isinstance(ins, Decline):
            await fw.decline(list(ins.offer_ids), refuse_seconds=ins.refuse_seconds)
        elif isinstance(ins, Kill):
            await fw.kill(ins.task_id, ins.agent_id or None)
        elif isinstance(ins, Revive):
            await fw.revive()
        elif isinstance(ins, Suppress):
            await fw.suppress()

    def dispatch(self, instructions: Iterable[Instruction]) -> None:
        """Publish events now; queue the framework calls for the outbox, in order."""
        for ins in instructions:
            if isinstance(ins, Publish):
                kind = ins.event.get("eventType")
                if kind in _RUN_EVENTS:
                    did = ins.event.get("id") or (ins.event.get("plan") or {}).get("id")
                    self._runs_dirty.add(str(did))
                    self._runs_changed.set()
                try:
                    self.events.publish(ins.event)
                except Exception:
                    log.exception("marathon: publishing %s failed", ins.event.get("eventType"))
            else:
                self._outbox.put_nowait(ins)

    async def _on_event(self, event: Obj) -> None:
        kind = event.get("type")
        now = self.now()
        if kind == "SUBSCRIBED":
            fid = event["subscribed"]["framework_id"]["value"]
            if fid != self.framework_id:
                await self.store.save_framework_id(fid)
                self.framework_id = fid
            assert self.framework is not None
            with contextlib.suppress(SchedulerCallError):
                await self.framework.reconcile([])
            self.dispatch(self.scheduler.subscribed())
        elif kind == "OFFERS":
            offers = (event.get("offers") or {}).get("offers") or []
            self.dispatch(self.scheduler.offers(offers, now))
        elif kind == "UPDATE":
            status = (event.get("update") or {}).get("status") or {}
            self.dispatch(self.scheduler.observe(status, now))
            self._unsettled.set()
        elif kind == "ERROR":
            log.error("marathon: the master says: %s", (event.get("error") or {}).get("message"))

    # --- loading and storing ------------------------------------------------------------------
    def _status(self, app_id: str) -> Obj:
        c = self.counts(app_id)
        app = self.scheduler.apps[app_id]
        status: Obj = {
            "tasksRunning": c["running"],
            "tasksStaged": c["staged"],
            "tasksHealthy": c["healthy"],
            "tasksUnhealthy": c["unhealthy"],
            "queued": self.scheduler.wanted(app_id),
            "deployments": [{"id": d} for d in self.scheduler.app_deployments(app_id)],
            "version": str(app.get("version") or ""),
        }
        failure = self.scheduler.failures.get(app_id)
        if failure:
            status["lastTaskFailure"] = failure
        return status

    # --- changes ------------------------------------------------------------------------------
    def _version(self) -> str:
        """A version stamp later than every earlier one (ms resolution)."""
        now = self.now()
        stamp = timestamp(now)
        while stamp <= self._last_version:
            now += 0.001
            stamp = timestamp(now)
        self._last_version = stamp
        return stamp

    async def deploy(
        self,
        changes: Mapping[str, Obj | None],
        *,
        force: bool = False,
        create_only: bool = False,
        groups: Mapping[str, Obj | None] | None = None,
    ) -> Deployment:
        async with self._lock:
            version = self._version()
            current = self.scheduler.apps
            target = dict(current)
            for app_id, new in changes.items():
                old = current.get(app_id)
                if new is None:
                    if old is None:
                        raise NotFound(f"App '{app_id}' does not exist")
                    del target[app_id]
                    continue
                if create_only and old is not None:
                    raise Conflict(f"An app with id [{app_id}] already exists.")
                if create_only and app_id in self.group_ids():
                    raise Conflict(f"A group with id [{app_id}] already exists.")
                target[app_id] = appdefs.with_version(old, new, now=version)
            return await self._start(current, target, set(changes), version, force, groups)

    async def _start(
        self,
        current: Mapping[str, Obj],
        target: dict[str, Obj],
        touched: set[str],
        version: str,
        force: bool,
        groups: Mapping[str, Obj | None] | None = None,
    ) -> Deployment:
        """Check the lock, plan, write, then start the deployment (``_lock`` held)."""
        new_groups = dict(self.store.groups)
        for gid, body in (groups or {}).items():
            if body is None:
                for g in [g for g in new_groups if g == gid or g.startswith(gid + "/")]:
                    del new_groups[g]
            else:
                new_groups[gid] = {"dependencies": list(body.get("dependencies") or [])}
        touched |= {a for a in target if target[a] != current.get(a)}
        touched |= set(current) - set(target)
        locked = self.scheduler.locking(touched)
        if locked and not force:
            raise Locked(locked)
        did = str(uuid.uuid4())
        original_deps = _deps(self.store.groups)
        target_deps = _deps(new_groups)
        try:
            p = plans.plan(
                current,
                target,
                deployment_id=did,
                version=version,
                original_group_deps=original_deps,
                target_group_deps=target_deps,
            )
        except AppError as e:
            raise Invalid(e.body()) from None
        run = Run(
            p,
            dict(current),
            dict(target),
            original_groups=original_deps,
            target_groups=target_deps,
        )
        await self.store.save_run(run)
        try:
            await self.store.persist(current, target, new_groups)
        except BaseException:
            with contextlib.suppress(Exception):
                await self.store.delete_run(did)
            raise
        now = self.now()
        for other in locked:
            self.dispatch(self.scheduler.cancel(other, now))
        self.dispatch(self.scheduler.start(run, now))
        return Deployment(did, version)

    def _known(self, app_id: str) -> Obj:
        app = self.scheduler.apps.get(app_id)
        if app is None:
            raise NotFound(f"App '{app_id}' does not exist")
        return app

    async def restart(self, app_id: str, *, force: bool = False) -> Deployment:
        async with self._lock:
            old = self._known(app_id)
            version = self._version()
            target = dict(self.scheduler.apps)
            target[app_id] = appdefs.with_version(old, old, now=version, restart=True)
            return await self._start(self.scheduler.apps, target, {app_id}, version, force)

    async def kill_tasks(
        self,
        task_ids: Iterable[str],
        *,
        scale: bool = False,
        wipe: bool = False,
        force: bool = False,
    ) -> Deployment | list[Obj]:
        insts = [self.scheduler.instances[t] for t in task_ids if t in self.scheduler.instances]
        if not insts:
            raise NotFound("None of the given tasks exist")
        if not scale:
            out = [self._task(i) for i in insts]
            self.dispatch(self.scheduler.kill(i.task_id for i in insts))
            return out
        async with self._lock:
            by_app: dict[str, int] = {}
            for i in insts:
                by_app[i.app_id] = by_app.get(i.app_id, 0) + 1
            locked = self.scheduler.locking(by_app)
            if locked and not force:
                raise Locked(locked)
            version = self._version()
            target = dict(self.scheduler.apps)
            for app_id, n in by_app.items():
                old = target.get(app_id)
                if old is None:
                    continue
                new = {**old, "instances": max(0, int(old.get("instances") or 0) - n)}
                target[app_id] = appdefs.with_version(old, new, now=version)
            # marked as being killed first, so that the scale step keeps the others
            kills = self.scheduler.kill(i.task_id for i in insts)
            try:
                deployment = await self._start(
                    self.scheduler.apps, target, set(by_app), version, True
                )
            except BaseException:
                for i in insts:
                    i.killing = False
                    i.kill_sent = None
                raise
            self.dispatch(kills)
            return deployment

    async def cancel_deployment(
        self, deployment_id: str, *, force: bool = False
    ) -> Deployment | None:
        async with self._lock:
            run = self.scheduler.runs.get(deployment_id)
            if run is None:
                raise NotFound(f"DeploymentPlan {deployment_id} does not exist")
            if force:
                self.dispatch(self.scheduler.cancel(deployment_id, self.now()))
                return None
            version = self._version()
            current = self.scheduler.apps
            reverted = plans.revert(run.original, run.target, current)
            target: dict[str, Obj] = {}
            for app_id, app in reverted.items():
                old = current.get(app_id)
                target[app_id] = app if old == app else appdefs.with_version(old, app, now=version)
            # the groups stay as they are: a rollback is of apps
            return await self._start(current, target, set(run.apps), version, True)

    async def reset_delay(self, app_id: str) -> None:
        if self.scheduler.wanted(app_id) <= 0:
            raise NotFound(f"Application {app_id} not found in tasks queue.")
        self.scheduler.reset_delay(app_id)
        self.dispatch(self.scheduler.tick(self.now()))

    # --- reads --------------------------------------------------------------------------------
    def apps(self) -> list[Obj]:
        return [self.scheduler.apps[a] for a in sorted(self.scheduler.apps)]

    def app(self, app_id: str) -> Obj | None:
        return self.scheduler.apps.get(app_id)

    def app_versions(self, app_id: str) -> list[str] | None:
        if app_id not in self.scheduler.apps:
            return None
        return sorted(self.store.versions.get(app_id) or {}, reverse=True)

    def app_version(self, app_id: str, version: str) -> Obj | None:
        if app_id not in self.scheduler.apps:
            return None
        return (self.store.versions.get(app_id) or {}).get(version)

    def _task(self, inst: Instance) -> Obj:
        app = self.scheduler.apps.get(inst.app_id) or {}
        return to_task(inst, has_health=bool(app.get("healthChecks")))

    def tasks(self, app_id: str | None = None) -> list[Obj]:
        insts = sorted(self.scheduler.instances.values(), key=lambda i: (i.app_id, i.staged_at))
        return [
            self._task(i)
            for i in insts
            if (app_id is None or i.app_id == app_id)
            and i.app_id in self.scheduler.apps  # a task no app owns is being killed
            and not i.terminal
            and not i.inactive
        ]

    def counts(self, app_id: str) -> Obj:
        app = self.scheduler.apps.get(app_id) or {}
        return counts(self.scheduler.of_app(app_id), has_health=bool(app.get("healthChecks")))

    def last_task_failure(self, app_id: str) -> Obj | None:
        return self.scheduler.failures.get(app_id)

    def task_stats(self, app_id: str) -> Obj | None:
        app = self.scheduler.apps.get(app_id)
        if app is None:
            return None
        return task_stats(self.scheduler.of_app(app_id), app, self.now())

    def readiness(self, app_id: str) -> list[Obj]:
        return self.scheduler.readiness_results(app_id)

    def app_deployments(self, app_id: str) -> list[str]:
        return self.scheduler.app_deployments(app_id)

    def group_dependencies(self) -> dict[str, list[str]]:
        return _deps(self.store.groups)

    def group_ids(self) -> list[str]:
        out = {"/"}
        for gid in [*self.store.groups, *(parent_id(a) for a in self.scheduler.apps)]:
            segments = split_id(gid)
            for i in range(1, len(segments) + 1):
                out.add("/" + "/".join(segments[:i]))
        return sorted(out)

    def deployments(self) -> list[Obj]:
        out = []
        for run in self.scheduler.runs.values():
            if run.plan["totalSteps"] == 0 or run.step == 0:
                out.append(dict(run.plan))
            else:
                ready = {
                    a: self.scheduler.readiness_results(
                        a, config_version(run.target[a]) if a in run.target else None
                    )
                    for a in run.apps
                }
                out.append(plans.at_step(run.plan, run.step, readiness=ready))
        return out

    def queue(self) -> list[Obj]:
        return self.scheduler.queue(self.now())

    def info(self) -> Obj:
        host, _, port = self.leader_address.rpartition(":")
        return {
            "name": "marathon",
            "version": MARATHON_VERSION,
            "buildref": "corral",
            "elected": True,
            "leader": self.leader(),
            "frameworkId": self.framework_id,
            "http_config": {"http_port": int(port or 8080), "https_port": 8443},
            "marathon_config": {
                "master": self.master,
                "framework_name": "marathon",
                "hostname": host,
                "ha": False,
                "checkpoint": True,
                "executor": "//cmd",
                "failover_timeout": 7 * 24 * 3600,
                "mesos_role": self.role,
                "mesos_user": "root",
                "task_launch_timeout": 300000,
            },
            "zookeeper_config": {"zk": "", "zk_timeout": 10000},
        }

    def leader(self) -> str | None:
        fw = self.framework
        return self.leader_address if fw is not None and fw.connected.is_set() else None

    def metrics(self) -> Obj:
        s = self.scheduler
        live = [i for i in s.instances.values() if not i.terminal]
        return {
            "version": "4.0.0",
            "gauges": {
                "marathon.apps.active.gauge": {"value": len(s.apps)},
                "marathon.deployments.active.gauge": {"value": len(s.runs)},
                "marathon.instances.running.gauge": {
                    "value": sum(1 for i in live if i.state == "TASK_RUNNING")
                },
                "marathon.instances.staged.gauge": {
                    "value": sum(1 for i in live if i.state != "TASK_RUNNING")
                },
                "marathon.instances.launch-queue.gauge": {
                    "value": sum(s.wanted(a) for a in s.apps)
                },
                "marathon.uptime.gauge": {"value": time.time() - self._started},
            },
            "counters": {"marathon.tasks.launched.counter": {"count": s.launched}},
            "histograms": {},
            "meters": {},
            "timers": {},
        }

    def why(self, app_id: str) -> list[str]:
        return self.scheduler.why(app_id, self.now())


def _deps(groups: Mapping[str, Obj]) -> dict[str, list[str]]:
    return {
        gid: list(body.get("dependencies") or [])
        for gid, body in groups.items()
        if body.get("dependencies")
    }
