"""The Marathon scheduler: apps, their instances, the launch queue and the deployments
being carried out. Sans-I/O: events in (a deployment started or restored after a
restart of the service, offers, status updates, clock ticks), instructions out (``Launch``, ``Decline``, ``Kill``, ``Revive``,
``Suppress``, ``Publish``); ``service.MarathonService`` is the shell that awaits them.

What it keeps per app: the definition (``apps``, the current root), the number of
instances to keep (``targets``: set by a deployment's Start/Scale steps, absent until
the app's StartApplication step), and while a RestartApplication step runs, the budget
of new instances ``plan.replace_step`` allows (``limits``). The queue is derived::

    wanted(app) = limits[app] - active new instances      while it restarts
                = targets[app] - active instances          otherwise

and offers are matched (``launcher.match``) for every app with ``wanted > 0`` whose
back-off delay has passed; an offer takes at most its ``pods`` instances (its node's
free pod slots, which the offers of one agent in a batch share). Every event ends with ``_settle``: restarts take their next
``replace_step`` (kill old, allow new), the running step of every deployment is checked
(``deployments.Run``), extra instances outside a restart are killed (``killSelection``),
instances of apps that are gone (and no step will stop) are killed, and offers are
revived or suppressed as the queue needs.

Failures (TASK_FAILED, TASK_ERROR, a finished long-running task) record
``lastTaskFailure`` and delay the app's next launch: ``backoffSeconds``, times
``backoffFactor`` after each further failure, at most ``maxLaunchDelaySeconds``
(``reset_delay`` and a new config clear it). A lost agent's tasks (TASK_LOST, GONE,
DROPPED) are simply gone, so the queue replaces them elsewhere, and so is a task the
master refused because its node's pods limit was reached (TASK_ERROR ``no_room``: the
offer's ``pods`` were advisory, not held, and another launch took them); TASK_UNREACHABLE
instances become inactive (replaced, and killed should they come back) after the app's
``unreachableStrategy.inactiveAfterSeconds`` and are forgotten after
``expungeAfterSeconds``. Unhealthy instances are killed by the agent (the health check
is the pod's liveness probe, with ``maxConsecutiveFailures``) and so replaced. A KILL
that no terminal state answers within ``KILL_RETRY_SECONDS`` is sent again (the master
may have failed to carry it out), as Marathon's ``kill_retry_timeout``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from corral.marathon import deployments as ev
from corral.marathon import plan as plans
from corral.marathon.apps_view import timestamp
from corral.marathon.deployments import Run
from corral.marathon.instances import (
    FAILURES,
    TERMINAL,
    UNREACHABLE,
    Instance,
    failure,
    no_room,
    task_id,
)
from corral.marathon.launcher import (
    REASONS,
    OfferSpace,
    Placed,
    match,
    readiness_url,
    task_info,
)
from corral.mesos.framework_calls import Decline, Kill, Launch, Revive, Suppress

Obj = dict[str, Any]
#: a KILL not answered by a terminal state within this long is sent again (Marathon's
#: ``kill_retry_timeout``): the master may have failed to carry it out
KILL_RETRY_SECONDS = 10.0


# --- instructions (beside the master calls of ``mesos.framework_calls``) -----------------------
@dataclass(frozen=True)
class Publish:
    event: Obj


Instruction = Launch | Decline | Kill | Revive | Suppress | Publish


@dataclass
class Backoff:
    delay: float
    until: float


@dataclass
class OfferSummary:
    """``processedOffersSummary`` of one queued app (since it was last not queued)."""

    since: float
    processed: int = 0
    unused: int = 0
    last_unused: float | None = None
    last_used: float | None = None
    declined: dict[str, int] = field(default_factory=dict)

    def record(self, reason: str | None, now: float) -> None:
        self.processed += 1
        if reason is None:
            self.last_used = now
            return
        self.unused += 1
        self.last_unused = now
        self.declined[reason] = self.declined.get(reason, 0) + 1

    def body(self) -> Obj:
        reasons = []
        reached = self.processed
        for reason in REASONS:
            declined = self.declined.get(reason, 0)
            reasons.append({"reason": reason, "declined": declined, "processed": reached})
            reached -= declined
        return {
            "processedOffersCount": self.processed,
            "unusedOffersCount": self.unused,
            "lastUnusedOfferAt": timestamp(self.last_unused) if self.last_unused else None,
            "lastUsedOfferAt": timestamp(self.last_used) if self.last_used else None,
            "rejectSummaryLastOffers": reasons,
            "rejectSummaryLaunchAttempt": reasons,
        }


def _has_health(app: Mapping[str, Any]) -> bool:
    return bool(app.get("healthChecks"))


def config_version(app: Mapping[str, Any]) -> str:
    """The app's ``lastConfigChangeAt``: what its instances of the current config carry."""
    info = app.get("versionInfo") or {}
    return str(info.get("lastConfigChangeAt") or app.get("version") or "")


class Scheduler:
    """See the module docstring. ``new_id`` makes the unique part of task ids."""

    def __init__(self, role: str = "*", new_id: Callable[[], str] | None = None) -> None:
        self.role = role
        self.new_id = new_id or (lambda: str(uuid.uuid4()))
        self.apps: dict[str, Obj] = {}
        self.targets: dict[str, int] = {}
        self.limits: dict[str, int] = {}
        #: every instance by task id (read it; change it through ``_add``/``_forget``)
        self.instances: dict[str, Instance] = {}
        #: the same instances by app, in launch order (``of_app`` is O(the app's))
        self._by_app: dict[str, dict[str, Instance]] = {}
        self.backoff: dict[str, Backoff] = {}
        self.summaries: dict[str, OfferSummary] = {}
        self.failures: dict[str, Obj] = {}
        self.runs: dict[str, Run] = {}
        self.suppressed = False
        self.launched = 0

    # --- state ------------------------------------------------------------------------------
    def load(self, apps: Mapping[str, Obj]) -> None:
        """The apps as stored (a restart of the service): each keeps its instances
        (``restore`` then carries on the deployments that were running)."""
        self.apps = {a: dict(v) for a, v in apps.items()}
        self.targets = {a: int(v.get("instances") or 0) for a, v in apps.items()}

    def adopt(self, inst: Instance) -> None:
        """An instance found running (its pod) when the service started."""
        self._add(inst)

    def _add(self, inst: Instance) -> None:
        self._forget(inst.task_id)
        self.instances[inst.task_id] = inst
        self._by_app.setdefault(inst.app_id, {})[inst.task_id] = inst

    def _forget(self, tid: str) -> None:
        inst = self.instances.pop(tid, None)
        if inst is None:
            return
        group = self._by_app.get(inst.app_id)
        if group is not None:
            group.pop(tid, None)
            if not group:
                del self._by_app[inst.app_id]

    def of_app(self, app_id: str) -> list[Instance]:
        return list(self._by_app.get(app_id, {}).values())

    def wanted(self, app_id: str) -> int:
        """How many instances the app waits to launch."""
        if app_id not in self.apps or app_id not in self.targets:
            return 0
        insts = [i for i in self.of_app(app_id) if i.active]
        if app_id in self.limits:
            config = config_version(self.apps[app_id])
            new = sum(1 for i in insts if i.config_version == config)
            return max(0, self.limits[app_id] - new)
        return max(0, self.targets[app_id] - len(insts))

    def delayed(self, app_id: str, now: float) -> float:
        """Seconds until the app may launch again (0: now)."""
        b = self.backoff.get(app_id)
        return max(0.0, b.until - now) if b else 0.0

    def locking(self, app_ids: Iterable[str]) -> list[str]:
        return plans.lock_conflict([r.plan for r in self.runs.values()], app_ids)

    def app_deployments(self, app_id: str) -> list[str]:
        return [r.id for r in self.runs.values() if app_id in r.apps]

    # --- deployments ------------------------------------------------------------------------
    def start(self, run: Run, now: float) -> list[Instruction]:
        """Carry out a deployment whose target is the new root (``run.target``): the
        apps become the target's, and the first step begins."""
        for app_id, app in run.target.items():
            old = self.apps.get(app_id)
            if old is not None and config_version(old) != config_version(app):
                self.backoff.pop(app_id, None)
        self.apps = {a: dict(v) for a, v in run.target.items()}
        for gone in set(self.targets) - set(self.apps):
            self.targets.pop(gone, None)
            self.limits.pop(gone, None)
            self.backoff.pop(gone, None)
        self.runs[run.id] = run
        return self._settle(now)

    def restore(self, run: Run, now: float) -> list[Instruction]:
        """Carry on a deployment a previous run of the service had begun (``load`` and
        ``adopt`` first: the apps are already its target's): the running step begins
        again where the instances are (a restart replaces the old-config instances still
        left; new-config ones with readiness checks must pass them again), and apps whose
        StartApplication step is still to come wait for it."""
        for n, step in enumerate(run.plan["steps"], 1):
            for action in step["actions"]:
                if action["action"] == plans.START and n > run.step:
                    self.targets.pop(action["app"], None)
        self.runs[run.id] = run
        out: list[Instruction] = []
        if run.step >= 1:
            out += self._begin_step(run, now)
            for action in run.actions():
                app = self.apps.get(action["app"])
                if action["action"] != plans.RESTART or app is None:
                    continue
                if app.get("readinessChecks"):
                    config = config_version(app)
                    for inst in self.of_app(action["app"]):
                        if inst.config_version == config and inst.readiness_result is None:
                            inst.readiness_ok = False
        return out + self._settle(now)

    def cancel(self, deployment_id: str, now: float) -> list[Instruction]:
        """Stop a deployment where it is (``force``): its instances stay as they are, an
        app it was restarting keeps its old and new instances (``targets`` counts both)."""
        run = self.runs.pop(deployment_id, None)
        if run is None:
            return []
        for app_id in run.apps:
            if app_id in self.limits:
                self.limits.pop(app_id)
                active = sum(1 for i in self.of_app(app_id) if i.active)
                self.targets[app_id] = max(active, int(self.apps[app_id].get("instances") or 0))
        out: list[Instruction] = [Publish(ev.deployment_done(run, now, success=False))]
        return out + self._settle(now)

    def _begin_step(self, run: Run, now: float) -> list[Instruction]:
        out: list[Instruction] = []
        for action in run.actions():
            app_id, kind = action["app"], action["action"]
            app = self.apps.get(app_id)
            if kind == plans.START and app is not None:
                self.targets.setdefault(app_id, 0)
            elif kind == plans.SCALE and app is not None:
                self.targets[app_id] = int(app.get("instances") or 0)
                self.limits.pop(app_id, None)
            elif kind == plans.RESTART and app is not None:
                self.targets[app_id] = int(app.get("instances") or 0)
                self.limits[app_id] = 0
            elif kind == plans.STOP:
                self.targets.pop(app_id, None)
                self.limits.pop(app_id, None)
                for inst in self.of_app(app_id):
                    out += self._kill(inst)
        return [Publish(ev.deployment_info(run, now)), *out]

    def _action_done(self, action: Obj) -> bool:
        app_id, kind = action["app"], action["action"]
        insts = self.of_app(app_id)
        if kind == plans.STOP:
            return all(i.inactive for i in insts)
        app = self.apps.get(app_id)
        if app is None or kind == plans.START:
            return True
        if kind == plans.RESTART:
            return app_id not in self.limits
        n = int(app.get("instances") or 0)
        active = [i for i in insts if i.active]
        leaving = [i for i in insts if i.killing and not i.inactive]
        health = _has_health(app)
        return len(active) == n and not leaving and all(i.ready(health) for i in active)

    def _progress(self, now: float) -> list[Instruction]:
        out: list[Instruction] = []
        for run in list(self.runs.values()):
            if not run.plan["steps"]:  # nothing to change
                self.runs.pop(run.id, None)
                out.append(Publish(ev.deployment_done(run, now, success=True)))
                continue
            while True:
                if run.step == 0:
                    run.step = 1
                    out += self._begin_step(run, now)
                if not all(self._action_done(a) for a in run.actions()):
                    break
                out.append(Publish(ev.deployment_step_success(run, now)))
                if run.step >= len(run.plan["steps"]):
                    self.runs.pop(run.id, None)
                    out.append(Publish(ev.deployment_done(run, now, success=True)))
                    break
                run.step += 1
                out += self._begin_step(run, now)
        return out

    def _restart(self, app_id: str) -> list[Instruction]:
        """One ``plan.replace_step`` of an app's rolling restart."""
        app = self.apps[app_id]
        config = config_version(app)
        health = _has_health(app)
        insts = [i for i in self.of_app(app_id) if not i.terminal and not i.inactive]
        old = [i for i in insts if i.config_version != config]
        new = [i for i in insts if i.config_version == config and not i.killing]
        old_running = [i for i in old if not i.killing]
        strategy = app.get("upgradeStrategy") or {}
        n = int(app.get("instances") or 0)
        kill, start = plans.replace_step(
            n,
            float(strategy.get("minimumHealthCapacity", 1.0)),
            float(strategy.get("maximumOverCapacity", 1.0)),
            sum(1 for i in old_running if i.ready(health)),
            len(old_running),
            len(new),
            sum(1 for i in new if i.ready(health)),
            old_killing=len(old) - len(old_running),
        )
        out: list[Instruction] = []
        victims = sorted(old_running, key=lambda i: (i.ready(health), _age_key(app, i)))
        for inst in victims[:kill]:
            out += self._kill(inst)
        self.limits[app_id] = len(new) + start
        done = kill == 0 and start == 0 and len(old) == 0
        if done and sum(1 for i in new if i.ready(health)) >= n:
            self.limits.pop(app_id, None)
        return out

    # --- offers -----------------------------------------------------------------------------
    def offers(self, offers: list[Obj], now: float) -> list[Instruction]:
        wanted = {a: self.wanted(a) for a in sorted(self.apps) if self.delayed(a, now) == 0}
        wanted = {a: n for a, n in wanted.items() if n > 0}
        out: list[Instruction] = []
        declined: list[str] = []
        room: dict[str, int] = {}  # pod slots left per agent (its offers share them)
        for offer in offers:
            space = OfferSpace.of(offer)
            if space.pods is not None:
                space.pods = min(space.pods, room.get(space.agent_id, space.pods))
            tasks: list[Obj] = []
            for app_id in list(wanted):
                if space.full():
                    break  # the node takes no more pods: the other apps wait for the next
                app = self.apps[app_id]
                # where the app runs matters to its constraints only
                placed = (
                    [Placed(i.host, i.attributes) for i in self.of_app(app_id) if i.active]
                    if app.get("constraints")
                    else []
                )
                summary = self.summaries.setdefault(app_id, OfferSummary(now))
                first = True
                while wanted[app_id] > 0:
                    placement = match(app, space, placed, self.role)
                    if first:
                        summary.record(placement if isinstance(placement, str) else None, now)
                        first = False
                    if isinstance(placement, str):
                        break
                    tid = task_id(app_id, self.new_id())
                    tasks.append(task_info(app, tid, space, placement))
                    space.take(app, placement.host_ports)
                    inst = Instance(
                        task_id=tid,
                        app_id=app_id,
                        version=str(app.get("version") or ""),
                        config_version=config_version(app),
                        agent_id=space.agent_id,
                        host=space.hostname,
                        ports=list(placement.host_ports),
                        service_ports=_service_ports(app),
                        staged_at=now,
                        attributes=dict(space.attributes),
                        readiness_ok=not app.get("readinessChecks"),
                    )
                    self._add(inst)
                    if app.get("constraints"):
                        placed.append(Placed(inst.host, inst.attributes))
                    wanted[app_id] -= 1
                    self.launched += 1
                    out.append(Publish(ev.instance_changed(inst, now)))
            if space.pods is not None:
                room[space.agent_id] = space.pods
            if tasks:
                out.append(Launch(space.offer_id, space.agent_id, tuple(tasks)))
            else:
                declined.append(space.offer_id)
        if declined:
            # while anything is queued (even delayed) the agents' offers must come back soon
            queued = any(self.wanted(a) > 0 for a in self.apps)
            out.append(Decline(tuple(declined), 1.0 if queued else 60.0))
        return out + self._settle(now)

    def subscribed(self) -> list[Instruction]:
        """A new subscription: the master may keep an old suppression or refusal filters."""
        self.suppressed = not any(self.wanted(a) for a in self.apps)
        return [Suppress()] if self.suppressed else [Revive()]

    # --- status updates ---------------------------------------------------------------------
    def update(self, status: Obj, now: float) -> list[Instruction]:
        """A status update taken in (``observe``), then ``settle``."""
        return self.observe(status, now) + self._settle(now)

    def observe(self, status: Obj, now: float) -> list[Instruction]:
        """A status update taken in, without settling: a shell fed a burst of updates
        calls ``settle`` once after them (settling reads every instance)."""
        tid = str((status.get("task_id") or {}).get("value") or "")
        agent = str((status.get("agent_id") or {}).get("value") or "")
        state = str(status.get("state") or "")
        inst = self.instances.get(tid)
        if inst is None:
            # a task no app owns (its app is gone, or it was launched before a restart
            # whose pod was not found): it must not run
            return [Kill(tid, agent)] if state and state not in TERMINAL else []
        changed, health_changed = inst.observe(status, now)
        if agent:
            inst.agent_id = agent
        out: list[Instruction] = []
        if changed:
            out.append(Publish(ev.status_update(inst, status, now)))
            out.append(Publish(ev.instance_changed(inst, now)))
        app = self.apps.get(inst.app_id)
        if health_changed and app is not None and _has_health(app):
            out.append(Publish(ev.health_changed(inst, now)))
        if inst.terminal:
            self._forget(tid)
            if inst.healthy is False and not inst.killing and app is not None:
                out.append(Publish(ev.unhealthy_killed(inst, now)))
            if state in FAILURES and not inst.killing and not no_room(status):
                self.failures[inst.app_id] = failure(inst, status, now)
                if app is not None:
                    self._back_off(app, now)
        elif state == UNREACHABLE and app is not None:
            out += self._unreachable(app, inst, now)
        return out

    def settle(self, now: float) -> list[Instruction]:
        """What every event ends with (see the module docstring); for ``observe``."""
        return self._settle(now)

    def _back_off(self, app: Obj, now: float) -> None:
        b = self.backoff.get(app["id"])
        base = float(app.get("backoffSeconds", 1))
        top = float(app.get("maxLaunchDelaySeconds", 300))
        delay = base if b is None else min(top, b.delay * float(app.get("backoffFactor", 1.15)))
        self.backoff[app["id"]] = Backoff(delay, now + delay)

    def reset_delay(self, app_id: str) -> None:
        self.backoff.pop(app_id, None)

    def _unreachable(self, app: Obj, inst: Instance, now: float) -> list[Instruction]:
        strategy = app.get("unreachableStrategy")
        if not isinstance(strategy, dict) or inst.unreachable_since is None:
            return []  # "disabled": it stays an instance until it comes back or is gone
        out: list[Instruction] = []
        since = now - inst.unreachable_since
        if not inst.inactive and since >= float(strategy.get("inactiveAfterSeconds", 0)):
            inst.inactive = True
            out += self._kill(inst)
        if since >= float(strategy.get("expungeAfterSeconds", 0)) and inst.inactive:
            self._forget(inst.task_id)
        return out

    def tick(self, now: float) -> list[Instruction]:
        """The clock moved: unreachable instances age, back-off delays end, kills not
        answered within ``KILL_RETRY_SECONDS`` are sent again."""
        out: list[Instruction] = []
        for inst in list(self.instances.values()):
            app = self.apps.get(inst.app_id)
            if inst.state == UNREACHABLE and app is not None:
                out += self._unreachable(app, inst, now)
            if inst.killing and not inst.terminal:
                if inst.kill_sent is None:
                    inst.kill_sent = now
                elif now - inst.kill_sent >= KILL_RETRY_SECONDS:
                    inst.kill_sent = now
                    out.append(Kill(inst.task_id, inst.agent_id))
        return out + self._settle(now)

    # --- readiness checks -------------------------------------------------------------------
    def readiness_due(self, now: float) -> list[tuple[str, Obj, str]]:
        """``(task id, check, url)`` of the running instances whose readiness check is
        due now (at once when they run, then every ``intervalSeconds``)."""
        out = []
        for inst in self.instances.values():
            if inst.readiness_ok or inst.state != "TASK_RUNNING" or inst.killing:
                continue
            app = self.apps.get(inst.app_id)
            checks = (app or {}).get("readinessChecks") or []
            if app is None or not checks:
                inst.readiness_ok = True
                continue
            check = checks[0]
            interval = float(check.get("intervalSeconds", 30))
            if inst.readiness_probed is not None and now - inst.readiness_probed < interval:
                continue
            url = readiness_url(app, check, inst.ports, inst.ip or inst.host)
            if url is None:
                continue
            inst.readiness_probed = now
            out.append((inst.task_id, check, url))
        return out

    def readiness(self, tid: str, ok: bool, response: Obj | None, now: float) -> list[Instruction]:
        """A readiness probe's answer (``response``: status, contentType, body)."""
        inst = self.instances.get(tid)
        if inst is None:
            return []
        inst.readiness_ok = ok
        app = self.apps.get(inst.app_id) or {}
        check = ((app.get("readinessChecks") or [{}]) or [{}])[0]
        result: Obj = {"name": str(check.get("name") or "readinessCheck"), "taskId": tid}
        result["ready"] = ok
        if response is not None and check.get("preserveLastResponse"):
            result["lastResponse"] = response
        inst.readiness_result = result
        return self._settle(now)

    def readiness_results(self, app_id: str, config_version: str | None = None) -> list[Obj]:
        """The readiness results of the app's live instances; with ``config_version``
        only those launched with it (a deployment shows its own instances' results)."""
        return [
            dict(i.readiness_result)
            for i in self.of_app(app_id)
            if i.readiness_result is not None
            and not i.terminal
            and (config_version is None or i.config_version == config_version)
        ]

    # --- the API's changes ------------------------------------------------------------------
    def kill(self, task_ids: Iterable[str]) -> list[Instruction]:
        out: list[Instruction] = []
        for tid in task_ids:
            inst = self.instances.get(tid)
            if inst is not None:
                out += self._kill(inst)
        return out

    def _kill(self, inst: Instance) -> list[Instruction]:
        if inst.terminal:
            return []
        inst.killing = True
        return [Kill(inst.task_id, inst.agent_id)]

    # --- after every event ------------------------------------------------------------------
    def _settle(self, now: float) -> list[Instruction]:
        out: list[Instruction] = []
        for app_id in list(self.limits):
            if app_id in self.apps:
                out += self._restart(app_id)
        out += self._progress(now)
        for app_id in list(self.limits):  # a step that began above
            if app_id in self.apps:
                out += self._restart(app_id)
        out += self._progress(now)
        stopping: set[str] = set()
        for run in self.runs.values():
            stopping |= run.pending_stops()
        for app_id in [a for a in self._by_app if a not in self.apps and a not in stopping]:
            for inst in self.of_app(app_id):
                if not inst.killing:
                    out += self._kill(inst)
        # one pass over each app's instances: kill the extra ones, count what it waits for
        short: dict[str, int] = {}
        for app_id, target in self.targets.items():
            if app_id in self.limits or app_id not in self.apps:
                continue
            active = [i for i in self.of_app(app_id) if i.active]
            extra = len(active) - target
            short[app_id] = -extra
            if extra > 0:
                app = self.apps[app_id]
                health = _has_health(app)
                order = sorted(active, key=lambda i: (i.ready(health), _age_key(app, i)))
                for inst in order[:extra]:
                    out += self._kill(inst)
        queued = [a for a in self.apps if (short[a] if a in short else self.wanted(a)) > 0]
        waiting = set(queued)
        for app_id in list(self.summaries):
            if app_id not in waiting:
                del self.summaries[app_id]
        launchable = any(self.delayed(a, now) == 0 for a in queued)
        if launchable and self.suppressed:
            self.suppressed = False
            out.append(Revive())
        elif not queued and not self.suppressed:
            self.suppressed = True
            out.append(Suppress())
        return out

    # --- reading ----------------------------------------------------------------------------
    def queue(self, now: float) -> list[Obj]:
        out = []
        for app_id in sorted(self.apps):
            count = self.wanted(app_id)
            if count <= 0:
                continue
            summary = self.summaries.setdefault(app_id, OfferSummary(now))
            left = self.delayed(app_id, now)
            out.append(
                {
                    "app": self.apps[app_id],
                    "count": count,
                    "delay": {"timeLeftSeconds": round(left), "overdue": left == 0},
                    "since": timestamp(summary.since),
                    "processedOffersSummary": summary.body(),
                }
            )
        return out

    def why(self, app_id: str, now: float) -> list[str]:
        """What an app waits for, one line a reason."""
        app = self.apps.get(app_id)
        if app is None:
            return [f"app {app_id} does not exist"]
        out: list[str] = []
        for run in self.runs.values():
            if app_id in run.apps:
                acts = ", ".join(f"{a['action']} {a['app']}" for a in run.actions())
                out.append(
                    f"deployment {run.id} at step {run.step}/{len(run.plan['steps'])}: {acts}"
                )
        if app_id not in self.targets:
            out.append("not started yet: its deployment has not reached StartApplication")
        count = self.wanted(app_id)
        if count:
            out.append(f"{count} instance(s) waiting for offers")
            left = self.delayed(app_id, now)
            if left:
                out.append(f"launch delayed {left:.0f} s more (back-off after failures)")
            summary = self.summaries.get(app_id)
            if summary is None or summary.processed == 0:
                out.append("no offer has come since it was queued")
            else:
                for reason, n in sorted(summary.declined.items()):
                    out.append(f"{n} of {summary.processed} offer(s) declined: {reason}")
        insts = [i for i in self.of_app(app_id) if not i.terminal]
        health = _has_health(app)
        not_ready = [i for i in insts if i.active and not i.ready(health)]
        if not_ready:
            out.append(f"{len(not_ready)} instance(s) not yet running and healthy")
        failure = self.failures.get(app_id)
        if failure:
            out.append(f"last failure: {failure['state']} {failure['message']}".rstrip())
        return out or ["nothing: all instances run"]


def _age_key(app: Mapping[str, Any], inst: Instance) -> float:
    """Sort key putting the instance to kill first (``killSelection``)."""
    if app.get("killSelection") == "OLDEST_FIRST":
        return inst.staged_at
    return -inst.staged_at


def _service_ports(app: Mapping[str, Any]) -> list[int]:
    defs = app.get("portDefinitions") or (app.get("container") or {}).get("portMappings") or []
    return [int(d.get("port", d.get("servicePort", 0)) or 0) for d in defs]
