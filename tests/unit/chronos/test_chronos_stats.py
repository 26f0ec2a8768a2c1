"""Run statistics: Dropwizard-style histograms in ms, percentile lists in s, task history."""

from __future__ import annotations

from typing import Any

import pytest

from corral.chronos import stats

ZERO = {
    "75thPercentile": 0.0,
    "95thPercentile": 0.0,
    "98thPercentile": 0.0,
    "99thPercentile": 0.0,
    "median": 0.0,
    "mean": 0.0,
    "count": 0,
}


@pytest.mark.parametrize(
    ("durations", "expected"),
    [
        ([], ZERO),
        (
            [1.5],
            {
                "75thPercentile": 1500.0,
                "95thPercentile": 1500.0,
                "98thPercentile": 1500.0,
                "99thPercentile": 1500.0,
                "median": 1500.0,
                "mean": 1500.0,
                "count": 1,
            },
        ),
        (
            [0.3, 0.1, 0.2],
            {
                "75thPercentile": 300.0,
                "95thPercentile": 300.0,
                "98thPercentile": 300.0,
                "99thPercentile": 300.0,
                "median": 200.0,
                "mean": 200.0,
                "count": 3,
            },
        ),
        (
            [float(s) for s in range(1, 11)],
            {
                "75thPercentile": 8000.0,
                "95thPercentile": 10000.0,
                "98thPercentile": 10000.0,
                "99thPercentile": 10000.0,
                "median": 6000.0,
                "mean": 5500.0,
                "count": 10,
            },
        ),
        (
            [float(s) for s in range(100, 0, -1)],
            {
                "75thPercentile": 75000.0,
                "95thPercentile": 95000.0,
                "98thPercentile": 98000.0,
                "99thPercentile": 99000.0,
                "median": 50000.0,
                "mean": 50500.0,
                "count": 100,
            },
        ),
    ],
    ids=["none", "one", "three-unsorted", "ten", "hundred-with-java-float-sums"],
)
def test_histogram_in_ms(durations: list[float], expected: dict[str, Any]) -> None:
    assert stats.histogram(durations) == expected


def test_histogram_keys_in_chronos_order() -> None:
    assert list(stats.histogram([1.0])) == [
        "75thPercentile",
        "95thPercentile",
        "98thPercentile",
        "99thPercentile",
        "median",
        "mean",
        "count",
    ]


BY_JOB = {
    "fast": [0.5, 0.5],
    "slow": [10.0, 20.0, 30.0],
    "idle": [],
    "mid": [2.0],
    "also-mid": [2.0],
}


@pytest.mark.parametrize(
    ("which", "expected"),
    [
        (
            "median",
            [("slow", 20.0), ("also-mid", 2.0), ("mid", 2.0), ("fast", 0.5), ("idle", 0.0)],
        ),
        (
            "99thPercentile",
            [("slow", 30.0), ("also-mid", 2.0), ("mid", 2.0), ("fast", 0.5), ("idle", 0.0)],
        ),
        (
            "mean",
            [("slow", 20.0), ("also-mid", 2.0), ("mid", 2.0), ("fast", 0.5), ("idle", 0.0)],
        ),
        ("90thPercentile", []),
    ],
    ids=["median", "99th", "mean", "unknown"],
)
def test_percentile_list_in_seconds_slowest_first(
    which: str, expected: list[tuple[str, float]]
) -> None:
    assert stats.percentile_list(BY_JOB, which) == [
        {"jobNameLabel": name, "time": time} for name, time in expected
    ]


def test_percentiles_are_the_endpoint_names() -> None:
    assert set(stats.PERCENTILES) == {
        "99thPercentile",
        "98thPercentile",
        "95thPercentile",
        "75thPercentile",
        "median",
        "mean",
    }
    assert stats.PERCENTILES["mean"] is None


START = 1_767_225_600.0  # 2026-01-01T00:00:00Z


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (0.9, "0s"),
        (59.9, "59s"),
        (61, "1m1s"),
        (3600, "1h0s"),
        (3725.5, "1h2m5s"),
        (90005, "25h5s"),
    ],
    ids=["zero", "under-a-second", "under-a-minute", "minute", "hour", "hms", "over-a-day"],
)
def test_task_stat_duration_as_joda_prints_it(seconds: float, text: str) -> None:
    entry = stats.task_stat({"taskId": "t", "startTime": START, "endTime": START + seconds})
    assert entry["duration"] == text


def test_task_stat_of_a_finished_run() -> None:
    run = {
        "taskId": "ct:1767225600000:0:etl",
        "jobName": "etl",
        "agent": "node-1",
        "startTime": "2026-01-01T00:00:00.000Z",
        "endTime": "2026-01-01T01:02:05.500Z",
        "duration": 3725.5,
        "status": "success",
        "slot": 1767225600000,
    }
    assert stats.task_stat(run) == {
        "taskId": "ct:1767225600000:0:etl",
        "jobName": "etl",
        "slaveId": "node-1",
        "startTime": "01/01/26 00:00:00",
        "endTime": "01/01/26 01:02:05",
        "duration": "1h2m5s",
        "status": "Success",
    }


def test_task_stat_of_a_running_run() -> None:
    entry = stats.task_stat(
        {"taskId": "t", "jobName": "j", "slaveId": "s1", "startTime": START, "status": "running"}
    )
    assert entry == {
        "taskId": "t",
        "jobName": "j",
        "slaveId": "s1",
        "startTime": "01/01/26 00:00:00",
        "endTime": "N/A",
        "status": "Running",
    }


def test_task_stat_duration_from_the_record_when_a_time_is_missing() -> None:
    entry = stats.task_stat(
        {"taskId": "t", "endTime": START, "duration": 65.0, "status": "failure"}
    )
    assert (entry["startTime"], entry["duration"], entry["status"]) == ("N/A", "1m5s", "Fail")


@pytest.mark.parametrize(
    ("status", "shown"),
    [
        ("success", "Success"),
        ("TASK_FINISHED", "Success"),
        ("failure", "Fail"),
        ("TASK_FAILED", "Fail"),
        ("TASK_KILLED", "Fail"),
        ("running", "Running"),
        ("TASK_RUNNING", "Running"),
        ("", "Idle"),
        (None, "Idle"),
    ],
    ids=str,
)
def test_task_stat_status(status: Any, shown: str) -> None:
    assert stats.task_stat({"status": status})["status"] == shown
