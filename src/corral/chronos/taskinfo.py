"""A run's Mesos TaskInfo and the small readers the planner shares (resources, offers,
constraints, numbers and times in a job's JSON).

Pure functions, called by ``planner.Planner`` when it places runs into offers and
records results; split from it to keep the planner about decisions only.
"""

from __future__ import annotations

import math
import re
import shlex
from typing import Any

from corral.chronos import schedule as sched
from corral.chronos.instructions import Run

Obj = dict[str, Any]


def task_info(job: Obj, r: Run, agent: str) -> Obj:
    """The Mesos TaskInfo of one run."""
    cmd: Obj = {"value": str(job.get("command") or ""), "shell": bool(job.get("shell", True))}
    args = [str(a) for a in (job.get("arguments") or [])] + list(r.arguments)
    if args:
        if cmd["shell"]:
            cmd["value"] = " ".join([cmd["value"], *(shlex.quote(a) for a in args)])
        else:
            cmd["arguments"] = [cmd["value"], *args]
    env = [
        {"name": str(e.get("name")), "value": str(e.get("value", ""))}
        for e in job.get("environmentVariables") or []
        if isinstance(e, dict) and e.get("name")
    ]
    env += [
        {"name": "CHRONOS_JOB_NAME", "value": str(job["name"])},
        {"name": "CHRONOS_RESOURCE_CPU", "value": str(number(job.get("cpus")))},
        {"name": "CHRONOS_RESOURCE_MEM", "value": str(number(job.get("mem")))},
        {"name": "CHRONOS_RESOURCE_DISK", "value": str(number(job.get("disk")))},
    ]
    cmd["environment"] = {"variables": env}
    uris = [{"value": u} for u in job.get("uris") or [] if isinstance(u, str)]
    uris += [
        {"value": f["uri"], **{k: f[k] for k in ("executable", "extract", "cache") if k in f}}
        for f in job.get("fetch") or []
        if isinstance(f, dict) and f.get("uri")
    ]
    if uris:
        cmd["uris"] = uris
    need = needs(job)
    resources = [
        {"name": "cpus", "type": "SCALAR", "scalar": {"value": need["cpus"]}},
        {"name": "mem", "type": "SCALAR", "scalar": {"value": need["mem"]}},
    ]
    if need["disk"]:
        resources.append({"name": "disk", "type": "SCALAR", "scalar": {"value": need["disk"]}})
    info: Obj = {
        "name": f"ChronosTask:{job['name']}",
        "task_id": {"value": r.task_id},
        "agent_id": {"value": agent},
        "resources": resources,
        "command": cmd,
        "labels": {"labels": [{"key": "chronos.corral.dev/job", "value": label(str(job["name"]))}]},
    }
    container = job.get("container")
    if isinstance(container, dict) and container.get("image"):
        docker: Obj = {"image": container["image"]}
        if container.get("forcePullImage"):
            docker["force_pull_image"] = True
        network = str(container.get("network") or "").upper()
        if network in ("HOST", "BRIDGE"):
            docker["network"] = network
        info["container"] = {"type": "DOCKER", "docker": docker}
    return info


def label(value: str) -> str:
    from corral.api.mesos import label_safe

    return label_safe(value)


def needs(job: Obj) -> dict[str, float]:
    return {
        "cpus": number(job.get("cpus")) or 0.1,
        "mem": number(job.get("mem")) or 128.0,
        "disk": number(job.get("disk")),
    }


def scalars(resources: list[Obj]) -> dict[str, float]:
    out = {"cpus": 0.0, "mem": 0.0, "disk": 0.0}
    for r in resources:
        if r.get("name") in out and r.get("type", "SCALAR") == "SCALAR":
            out[r["name"]] += float((r.get("scalar") or {}).get("value") or 0.0)
    return out


def pod_slots(resources: list[Obj]) -> float | None:
    """The offer's ``pods`` (its node's free pod slots, Corral's custom resource), or None
    when the offer has none (no pods limit)."""
    found = [
        r for r in resources if r.get("name") == "pods" and r.get("type", "SCALAR") == "SCALAR"
    ]
    if not found:
        return None
    return sum(float((r.get("scalar") or {}).get("value") or 0.0) for r in found)


def constraints_ok(job: Obj, offer: Obj) -> bool:
    """Chronos' constraints: [attribute, EQUALS|LIKE|UNLIKE, value]; ``hostname`` too."""
    attrs = {"hostname": str(offer.get("hostname") or "")}
    for a in offer.get("attributes") or []:
        if a.get("type") == "TEXT":
            attrs[str(a.get("name"))] = str((a.get("text") or {}).get("value") or "")
        elif a.get("type") == "SCALAR":
            attrs[str(a.get("name"))] = str((a.get("scalar") or {}).get("value"))

    for c in job.get("constraints") or []:
        if not isinstance(c, list) or len(c) < 2:
            continue
        field_, op = str(c[0]), str(c[1]).upper()
        value = str(c[2]) if len(c) > 2 else ""
        have = attrs.get(field_)
        if op == "EQUALS" and have != value:
            return False
        if op == "LIKE" and (have is None or not re.fullmatch(value, have)):
            return False
        if op == "UNLIKE" and have is not None and re.fullmatch(value, have):
            return False
    return True


def number(v: Any) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return 0.0
    return f if math.isfinite(f) and f > 0 else 0.0


def seconds(v: Any) -> float | None:
    """An ISO 8601 duration (``PT60S``) in seconds, None when absent or unreadable."""
    if not isinstance(v, str) or not v:
        return None
    try:
        return sched.duration_seconds(v)
    except ValueError:
        return None


def iso(ts: float | None) -> str:
    if ts is None:
        return ""
    from datetime import UTC, datetime

    return (
        datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.")
        + f"{int(ts * 1000) % 1000:03d}Z"
    )


def ts(text: Any) -> float | None:
    if not isinstance(text, str) or not text:
        return None
    from datetime import datetime

    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
