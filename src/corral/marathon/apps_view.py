"""What a client is shown of apps and tasks: ``to_client`` (``GET /v2/apps``, with the
``embed`` options ``resolve_embed`` reads), ``task_to_client`` (``/v2/tasks``, an app's
``tasks``) and ``timestamp``, Marathon's time format (``2015-09-30T12:47:11.286Z``:
versions, task and health-check times).

Pure. ``http.py`` calls these (imported from ``apps``) to answer reads;
``groups.to_client`` renders each app of a group with ``to_client``. The output is
whitelisted key by key (``APP_KEYS``, ``TASK_KEYS``...) against what the ``marathon``
0.13.0 client's ``MarathonApp``/``MarathonTask`` constructors take: the client passes
every key as a keyword argument and fails on one it does not know, so a key Marathon 1.10
added (``tty``, ``check``, a port mapping's ``networkNames``) or one a stored object
carries is left out rather than shown.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from corral.marathon.apps_errors import Obj
from corral.marathon.apps_schema import DOCKER_NETWORKS, ENGINES, PROTOCOLS, READ_MODES

__all__ = [
    "APP_KEYS",
    "EMBEDS",
    "TASK_KEYS",
    "resolve_embed",
    "task_to_client",
    "timestamp",
    "to_client",
]


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


def _word_set(text: str) -> frozenset[str]:
    return frozenset(text.split())


def timestamp(when: datetime | float | str) -> str:
    """Marathon's timestamp: ``2015-09-30T12:47:11.286Z`` (UTC, milliseconds), from a
    datetime, epoch seconds, or an ISO 8601 string."""
    if isinstance(when, str):
        when = datetime.fromisoformat(when.replace("Z", "+00:00"))
    elif not isinstance(when, datetime):
        when = datetime.fromtimestamp(when, UTC)
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    when = when.astimezone(UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


#: every key ``MarathonApp.__init__`` takes (camelCase), in Marathon's order
APP_KEYS = _words(
    """
    id acceptedResourceRoles args backoffFactor backoffSeconds cmd constraints container
    cpus dependencies disk env executor fetch gpus healthChecks instances labels
    maxLaunchDelaySeconds mem networks portDefinitions ports readinessChecks
    readinessCheckResults requirePorts residency secrets storeUrls
    taskKillGracePeriodSeconds taskRateLimit upgradeStrategy uris user version versionInfo
    unreachableStrategy killSelection ipAddress role tasksStaged tasksRunning tasksHealthy
    tasksUnhealthy deployments tasks lastTaskFailure taskStats
    """
)
#: what only ``embed`` adds
_EMBEDDED = _word_set(
    """
    tasksStaged tasksRunning tasksHealthy tasksUnhealthy deployments tasks lastTaskFailure
    taskStats readinessCheckResults
    """
)
#: RAML ``(pragma.omitEmpty)`` fields: Marathon leaves them out when empty
_OMIT_EMPTY = _word_set(
    """
    args constraints dependencies env fetch healthChecks readinessChecks secrets
    """
)
_CONTAINER_KEYS = ("type", "docker", "portMappings", "volumes")
_PORT_MAPPING_KEYS = ("containerPort", "hostPort", "servicePort", "protocol", "name", "labels")
_VOLUME_KEYS = ("containerPath", "hostPath", "mode", "persistent", "external")
_READINESS_KEYS = _words(
    """
    name protocol path portName intervalSeconds timeoutSeconds httpStatusCodesForReady
    preserveLastResponse
    """
)
_PORT_DEFINITION_KEYS = ("port", "protocol", "name", "labels")
_FAILURE_KEYS = (
    "appId",
    "host",
    "message",
    "taskId",
    "instanceId",
    "slaveId",
    "state",
    "timestamp",
    "version",
)
#: every key ``MarathonTask.__init__`` takes
TASK_KEYS = _words(
    """
    id appId host ports servicePorts slaveId stagedAt startedAt version state ipAddresses
    healthCheckResults localVolumes region zone role
    """
)
_HEALTH_RESULT_KEYS = _words(
    """
    alive consecutiveFailures firstSuccess lastFailure lastSuccess lastFailureCause taskId
    instanceId
    """
)

#: the app embeds (``embed=app.tasks`` ...; ``apps.``/``group.apps.`` prefixes or none)
EMBEDS = ("tasks", "counts", "deployments", "lastTaskFailure", "taskStats", "readiness")


def resolve_embed(values: Iterable[str]) -> set[str]:
    """``InfoEmbedResolver.resolveApp``: query values to ``EMBEDS`` names (``tasks``
    brings ``deployments``; the deprecated ``failures`` brings tasks, lastTaskFailure and
    deployments; unknown values are ignored)."""
    out: set[str] = set()
    for value in values:
        for prefix in ("group.apps.", "apps.", "app."):
            if value.startswith(prefix):
                value = value[len(prefix) :]
                break
        if value == "tasks":
            out |= {"tasks", "deployments"}
        elif value == "failures":
            out |= {"tasks", "lastTaskFailure", "deployments"}
        elif value in EMBEDS:
            out.add(value)
    return out


def _pick(obj: Mapping[str, Any], keys: Iterable[str]) -> Obj:
    return {k: obj[k] for k in keys if obj.get(k) is not None}


def _time_or_none(value: Any) -> str | None:
    if value is None or value == "":
        return None
    try:
        return timestamp(value)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def to_client(
    app: Mapping[str, Any],
    *,
    tasks: Iterable[Mapping[str, Any]] | None = None,
    counts: Mapping[str, int] | None = None,
    deployments: Iterable[str | Mapping[str, Any]] | None = None,
    last_failure: Mapping[str, Any] | None = None,
    task_stats: Mapping[str, Any] | None = None,
    readiness: Iterable[Mapping[str, Any]] | None = None,
    embed: Collection[str] = frozenset(),
) -> Obj:
    """The app as ``GET /v2/apps/{id}`` shows it, with only keys ``MarathonApp`` takes.

    ``embed`` holds ``EMBEDS`` names (or query values: ``resolve_embed`` is applied):
    ``counts`` adds ``tasksStaged``/``tasksRunning``/``tasksHealthy``/``tasksUnhealthy``
    from ``counts`` (``{"staged", "running", "healthy", "unhealthy"}``, 0 when missing);
    ``tasks`` adds ``tasks`` (through ``task_to_client``); ``deployments`` adds
    ``[{"id"}]``; ``lastTaskFailure`` adds it when there is one; ``taskStats`` adds
    Marathon's ``tasksStats`` under the key the client takes, ``taskStats``;
    ``readiness`` adds ``readinessCheckResults``. Everything the client would refuse
    (``tty``, ``check``, ``executorResources``, ``resourceLimits``, a port mapping's
    ``networkNames``, unknown keys) is left out.
    """
    wanted = resolve_embed(embed)
    out: Obj = {}
    for key in APP_KEYS:
        value = app.get(key)
        if key in _EMBEDDED or value is None or (key in _OMIT_EMPTY and not value):
            continue
        out[key] = value
    if "container" in out:
        out["container"] = _container_to_client(out["container"])
    if "portDefinitions" in out:
        out["portDefinitions"] = [_pick(d, _PORT_DEFINITION_KEYS) for d in out["portDefinitions"]]
    if "readinessChecks" in out:
        out["readinessChecks"] = [_pick(rc, _READINESS_KEYS) for rc in out["readinessChecks"]]
    if "upgradeStrategy" in out:
        out["upgradeStrategy"] = _pick(
            out["upgradeStrategy"], ("minimumHealthCapacity", "maximumOverCapacity")
        )
    if isinstance(out.get("unreachableStrategy"), Mapping):
        out["unreachableStrategy"] = _pick(
            out["unreachableStrategy"], ("inactiveAfterSeconds", "expungeAfterSeconds")
        )
    info = out.pop("versionInfo", None)
    if isinstance(info, Mapping):
        times = {k: _time_or_none(info.get(k)) for k in ("lastScalingAt", "lastConfigChangeAt")}
        if all(times.values()):
            out["versionInfo"] = times
    if "counts" in wanted:
        c = counts or {}
        out["tasksStaged"] = int(c.get("staged", 0))
        out["tasksRunning"] = int(c.get("running", 0))
        out["tasksHealthy"] = int(c.get("healthy", 0))
        out["tasksUnhealthy"] = int(c.get("unhealthy", 0))
    if "deployments" in wanted:
        out["deployments"] = [
            {"id": d} if isinstance(d, str) else {"id": d["id"]} for d in deployments or []
        ]
    if "tasks" in wanted:
        out["tasks"] = [task_to_client(t) for t in tasks or []]
    if "lastTaskFailure" in wanted and last_failure:
        failure = _pick(last_failure, _FAILURE_KEYS)
        stamp = _time_or_none(failure.get("timestamp"))
        if stamp is None:
            failure.pop("timestamp", None)
        else:
            failure["timestamp"] = stamp
        out["lastTaskFailure"] = failure
    if "taskStats" in wanted and task_stats:
        out["taskStats"] = _task_stats_to_client(task_stats)
    if "readiness" in wanted:
        out["readinessCheckResults"] = [dict(r) for r in readiness or []]
    return out


def _container_to_client(container: Mapping[str, Any]) -> Obj:
    out = _pick(container, _CONTAINER_KEYS)
    if out.get("type") not in ENGINES:
        out["type"] = "DOCKER"
    if "portMappings" in out:
        mappings = [_pick(m, _PORT_MAPPING_KEYS) for m in out["portMappings"]]
        for m in mappings:
            if m.get("protocol") not in PROTOCOLS:
                m.pop("protocol", None)  # the client's default, "tcp", is then used
        out["portMappings"] = mappings
    if "volumes" in out:
        out["volumes"] = [
            _pick(v, _VOLUME_KEYS) for v in out["volumes"] if v.get("mode", "RW") in READ_MODES
        ]
    docker = out.get("docker")
    if isinstance(docker, Mapping) and docker.get("network") not in (None, *DOCKER_NETWORKS):
        out["docker"] = {k: v for k, v in docker.items() if k != "network"}
    return out


def _task_stats_to_client(stats: Mapping[str, Any]) -> Obj:
    out: Obj = {}
    for kind in (
        "startedAfterLastScaling",
        "withLatestConfig",
        "withOutdatedConfig",
        "totalSummary",
    ):
        block = stats.get(kind)
        if not isinstance(block, Mapping) or not isinstance(block.get("stats"), Mapping):
            continue
        inner = block["stats"]
        stat: Obj = {}
        if isinstance(inner.get("counts"), Mapping):
            stat["counts"] = _pick(inner["counts"], ("staged", "running", "healthy", "unhealthy"))
        if isinstance(inner.get("lifeTime"), Mapping):
            stat["lifeTime"] = _pick(inner["lifeTime"], ("averageSeconds", "medianSeconds"))
        out[kind] = {"stats": stat}
    return out


def task_to_client(task: Mapping[str, Any]) -> Obj:
    """A task as ``/v2/tasks`` shows it, with only the keys ``MarathonTask`` takes
    (``agentId``, ``checkResult`` are left out); ``stagedAt``/``startedAt`` and the health
    results' times as Marathon's timestamps."""
    out = _pick(task, TASK_KEYS)
    for key in ("stagedAt", "startedAt"):
        if key in out:
            stamp = _time_or_none(out[key])
            if stamp is None:
                out.pop(key)
            else:
                out[key] = stamp
    if "ipAddresses" in out:
        out["ipAddresses"] = [_pick(ip, ("ipAddress", "protocol")) for ip in out["ipAddresses"]]
    if "healthCheckResults" in out:
        results = []
        for result in out["healthCheckResults"]:
            r = _pick(result, _HEALTH_RESULT_KEYS)
            for key in ("firstSuccess", "lastFailure", "lastSuccess"):
                if key in r:
                    stamp = _time_or_none(r[key])
                    if stamp is None:
                        r.pop(key)
                    else:
                        r[key] = stamp
            results.append(r)
        out["healthCheckResults"] = results
    return out
