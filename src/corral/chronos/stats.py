"""Run statistics as Chronos reports them: ``GET job/stat/NAME`` (a histogram and the
task history) and ``GET stats/<percentile>`` (every job by that percentile).

Pure. ``service.py`` passes the run durations (seconds) and the run records it keeps in
a job's status.

What Chronos does (mesos/chronos 3.x ``JobMetrics``, ``HistogramSerializer``,
``StatsResource``, ``JobStatWrapperSerializer``; Dropwizard Metrics 3.1):

- each finished run adds its duration **in milliseconds** (an integer) to a Dropwizard
  histogram; ``job/stat`` shows its snapshot in ms: ``75thPercentile`` ...
  ``99thPercentile``, ``median``, ``mean``, ``count``. A quantile is a Dropwizard
  ``WeightedSnapshot`` value: the sorted values with equal weights, the one at the
  largest cumulative weight not above the quantile (no interpolation);
- ``stats/<percentile>`` lists ``{"jobNameLabel", "time"}`` for every job, the time in
  **seconds** (ms / 1000), slowest first; a job without runs has an empty histogram and
  is listed with 0.0; an unknown percentile matches no job and gives ``[]``;
- ``taskStatHistory`` entries: ``taskId``, ``jobName``, ``slaveId``, ``startTime`` and
  ``endTime`` as ``MM/dd/yy HH:mm:ss`` (``N/A`` when unknown), ``duration`` as Joda
  prints it (``1h2m5s``: days never, zero hours and minutes left out, seconds always;
  only when both times are known) and ``status`` (``Success``, ``Fail``, ``Running``,
  ``Idle``).

Differences: Chronos' reservoir decays (recent runs weigh more) and keeps at most 1028
values; here every duration given weighs the same (the caller keeps the recent ones).
Chronos' ``mean`` is the median (``HistogramSerializer`` writes ``getValue(0.5)``);
here it is the mean. Times are shown in UTC (Chronos: the JVM's zone).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

__all__ = ["PERCENTILES", "histogram", "percentile_list", "task_stat"]

#: the ``stats/<which>`` names and their quantiles (``mean`` is not one)
PERCENTILES: Mapping[str, float | None] = {
    "99thPercentile": 0.99,
    "98thPercentile": 0.98,
    "95thPercentile": 0.95,
    "75thPercentile": 0.75,
    "median": 0.5,
    "mean": None,
}
_STATUS = {
    "success": "Success",
    "task_finished": "Success",
    "fail": "Fail",
    "failure": "Fail",
    "error": "Fail",
    "killed": "Fail",
    "running": "Running",
    "task_running": "Running",
    "idle": "Idle",
}
_FAILED_TASK_STATES = (
    "task_failed",
    "task_killed",
    "task_lost",
    "task_error",
    "task_dropped",
    "task_gone",
    "task_gone_by_operator",
    "task_unknown",
)


def _value(values: list[int], quantile: float) -> float:
    """Dropwizard's ``WeightedSnapshot.getValue`` with equal weights."""
    if not values:
        return 0.0
    weight = 1.0 / len(values)
    cumulative = [0.0]
    for _ in values[1:]:
        cumulative.append(cumulative[-1] + weight)  # summed as Java does, rounding included
    pos = bisect_right(cumulative, quantile) - 1
    if pos < 1:
        return float(values[0])
    return float(values[min(pos, len(values) - 1)])


def histogram(durations_s: Sequence[float]) -> dict[str, Any]:
    """``job/stat``'s ``histogram`` of run durations given in seconds, reported in ms."""
    values = sorted(max(0, round(d * 1000)) for d in durations_s)
    return {
        "75thPercentile": _value(values, 0.75),
        "95thPercentile": _value(values, 0.95),
        "98thPercentile": _value(values, 0.98),
        "99thPercentile": _value(values, 0.99),
        "median": _value(values, 0.5),
        "mean": sum(values) / len(values) if values else 0.0,
        "count": len(values),
    }


def percentile_list(
    durations_by_job: Mapping[str, Sequence[float]], which: str
) -> list[dict[str, Any]]:
    """``stats/<which>``: ``[{"jobNameLabel": job, "time": seconds}]`` for every job, by
    time descending (ties by name); ``[]`` for an unknown ``which``."""
    if which not in PERCENTILES:
        return []
    rows = [(histogram(d)[which] / 1000.0, name) for name, d in durations_by_job.items()]
    rows.sort(key=lambda r: (-r[0], r[1]))
    return [{"jobNameLabel": name, "time": time} for time, name in rows]


def _instant(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(float(value), UTC)
    parsed = datetime.fromisoformat(str(value))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _clock(t: datetime | None) -> str:
    return "N/A" if t is None else t.astimezone(UTC).strftime("%m/%d/%y %H:%M:%S")


def _duration_text(seconds: float) -> str:
    """Joda's ``Duration.toPeriod`` (hours, minutes, seconds) printed with days, hours and
    minutes when not zero and seconds always: ``26h0m5s`` is ``26h5s``."""
    total = max(0, int(seconds))
    hours, minutes, secs = total // 3600, total // 60 % 60, total % 60
    return (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "") + f"{secs}s"


def _status(value: Any) -> str:
    key = str(value or "").lower()
    if key in _FAILED_TASK_STATES:
        return "Fail"
    return _STATUS.get(key, "Idle")


def task_stat(run: Mapping[str, Any]) -> dict[str, Any]:
    """One ``taskStatHistory`` entry from a run record: ``taskId``, ``jobName``, the
    agent (``slaveId``, or ``agent``/``agentId``), ``startTime`` and ``endTime`` (unix
    seconds or ISO 8601), ``status`` (``success``/``failure``/``running`` or a Mesos task
    state). ``duration`` is end minus start (or the record's ``duration`` in seconds
    when a time is missing but the run ended)."""
    start, end = _instant(run.get("startTime")), _instant(run.get("endTime"))
    out: dict[str, Any] = {
        "taskId": str(run.get("taskId") or ""),
        "jobName": str(run.get("jobName") or ""),
        "slaveId": str(run.get("slaveId") or run.get("agent") or run.get("agentId") or ""),
        "startTime": _clock(start),
        "endTime": _clock(end),
    }
    if start is not None and end is not None:
        out["duration"] = _duration_text((end - start).total_seconds())
    elif end is not None and isinstance(run.get("duration"), int | float):
        out["duration"] = _duration_text(float(run["duration"]))
    out["status"] = _status(run.get("status"))
    return out
