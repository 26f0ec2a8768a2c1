"""Chronos schedules: parsing, Joda's calendar arithmetic in a zone, rewriting, catch-up.

Fixed instants only; nothing sleeps. Expected slots are written as UTC instants."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from corral.chronos import schedule as sched
from corral.chronos.schedule import Period, ScheduleError

NY = "America/New_York"


def ts(text: str) -> float:
    """An ISO 8601 instant (with its offset) in unix seconds."""
    return datetime.fromisoformat(text).timestamp()


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S") + (
        f".{round(t * 1000) % 1000:03d}Z" if round(t * 1000) % 1000 else "Z"
    )


def slots(text: str, tz: str = "", n: int = 10) -> list[str]:
    s = sched.parse(text, tz)
    out = sched.occurrences(s, s.start.timestamp() - 1, s.start.timestamp() + 10 * 366 * 86400)
    return [iso(t) for t in out[:n]]


# --- parsing ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "tz", "repeats", "shown"),
    [
        ("R5/2026-01-01T00:00:00Z/PT1H", "", 5, "R5/2026-01-01T00:00:00.000Z/PT1H"),
        ("R/2026-01-01T00:00:00Z/PT1H", "", -1, "R/2026-01-01T00:00:00.000Z/PT1H"),
        ("R0/2026-01-01T00:00:00Z/PT1H", "", 0, "R0/2026-01-01T00:00:00.000Z/PT1H"),
        ("R1/2026-01-01T10:00:00+05:30/P1D", "", 1, "R1/2026-01-01T10:00:00.000+05:30/P1D"),
        ("R/2026-03-01T09:00:00Z/P1D", NY, -1, "R/2026-03-01T09:00:00.000-05:00/P1D"),
        ("R/2026-07-01T09:00:00+02:00/P1D", NY, -1, "R/2026-07-01T09:00:00.000-04:00/P1D"),
        ("R/2026-01-01T00:00:00.123456Z/PT1M", "", -1, "R/2026-01-01T00:00:00.123Z/PT1M"),
        ("R/2026-01-01/P1D", "", -1, "R/2026-01-01T00:00:00.000Z/P1D"),
        ("R/2026-01-01T10:00/PT90M", "", -1, "R/2026-01-01T10:00:00.000Z/PT90M"),
        ("R/2026-01-01T00:00:00Z/PT1.5S", "", -1, "R/2026-01-01T00:00:00.000Z/PT1.500S"),
        (
            "R/2026-01-01T00:00:00Z/P1Y2M3DT4H5M6S",
            "",
            -1,
            "R/2026-01-01T00:00:00.000Z/P1Y2M3DT4H5M6S",
        ),
        ("R/2026-01-01T00:00:00Z/P2W", "", -1, "R/2026-01-01T00:00:00.000Z/P2W"),
        ("R/1970-01-01T00:00:01Z/PT1H", "", -1, "R/1970-01-01T00:00:01.000Z/PT1H"),
        ("R/1969-12-31T20:00:00-05:00/PT1H", "", -1, "R/1969-12-31T20:00:00.000-05:00/PT1H"),
        ("R/1970-01-01T00:00:00Z/PT1H", NY, -1, "R/1970-01-01T00:00:00.000-05:00/PT1H"),
    ],
    ids=[
        "R5",
        "R-forever",
        "R0",
        "fixed-offset-kept",
        "tz-retains-wall-clock-winter",
        "tz-retains-wall-clock-summer",
        "millis-only",
        "date-only",
        "start-without-seconds-PT90M-as-written",
        "fractional-seconds",
        "all-fields",
        "weeks",
        "first-second-of-1970",
        "1970-as-instant",
        "1970-in-new-york",
    ],
)
def test_parse_and_text(text: str, tz: str, repeats: int, shown: str) -> None:
    s = sched.parse(text, tz)
    assert s.repeats == repeats
    assert s.tz == tz
    assert s.text() == shown
    assert sched.parse(s.text(), tz) == s  # what Chronos shows reads back the same


def test_period_keeps_its_fields() -> None:
    assert sched.parse_period("PT90M") == Period(minutes=90)
    assert sched.parse_period("P1Y2M3DT4H5M6.25S") == Period(1, 2, 0, 3, 4, 5, 6, 250)
    assert sched.parse_period("PT0S").text() == "PT0S"


@pytest.mark.parametrize(
    ("now", "tz", "start"),
    [
        (ts("2026-01-01T00:00:00+00:00"), "", "2025-12-31T23:59:59.000Z"),
        (ts("2026-01-01T00:00:00.5+00:00"), "", "2025-12-31T23:59:59.500Z"),
        (ts("2026-01-01T12:00:00+00:00"), NY, "2026-01-01T06:59:59.000-05:00"),
    ],
    ids=["utc", "millis", "in-the-zone"],
)
def test_an_empty_start_is_now_minus_one_second(now: float, tz: str, start: str) -> None:
    s = sched.parse("R//PT1H", tz, now)
    assert s.text() == f"R/{start}/PT1H"
    assert sched.next_slot(s, now - 2) == now - 1


def test_an_empty_start_needs_now() -> None:
    with pytest.raises(TypeError):
        sched.parse("R//PT1H")


@pytest.mark.parametrize(
    "text",
    [
        "R/x/PT1H",
        "X/2026-01-01T00:00:00Z/PT1H",
        "R-1/2026-01-01T00:00:00Z/PT1H",
        "R/2026-01-01T00:00:00Z/1H",
        "R/2026-01-01T00:00:00Z/PT",
        "R/2026-01-01T00:00:00Z/PT0S",
        "R/2026-01-01T00:00:00Z/P1.5D",
        "R/2026-01-01T00:00:00Z/pt1h",
        "R/2026-13-01T00:00:00Z/PT1H",
        "R/2026-01-01T25:00:00Z/PT1H",
        "R/2026-01-01T24:00:00Z/PT1H",
        "R/2026-01-01T00:00:00Z/PT1H\n",
        " R/2026-01-01T00:00:00Z/PT1H",
        "R/2026-01-01T00:00:00Z",
        "R/2026-01-01T00:00:00Z/PT2147483648S",
        "R/+12026-01-01T00:00:00Z/PT1H",
        "",
    ],
    ids=[
        "bad-start",
        "no-R",
        "negative-repeats",
        "period-without-P",
        "empty-period",
        "zero-period",
        "fractional-days",
        "lowercase",
        "month-13",
        "hour-25",
        "hour-24",
        "trailing-newline",
        "leading-space",
        "no-period",
        "field-over-a-java-int",
        "extended-year",
        "empty",
    ],
)
def test_malformed_schedules_give_chronos_message(text: str) -> None:
    with pytest.raises(ScheduleError) as e:
        sched.parse(text, now=ts("2026-01-01T00:00:00+00:00"))
    assert str(e.value) == f"Cannot parse schedule '{text}' (wtf bro)"


@pytest.mark.parametrize(
    ("text", "tz", "shown"),
    [
        ("R/1969-12-31T23:59:59Z/PT1H", "", "1969-12-31T23:59:59.000Z"),
        ("R/1970-01-01T00:00:00Z/PT1H", "", "1970-01-01T00:00:00.000Z"),
        ("R/1970-01-01T00:00:00.999Z/PT1H", "", "1970-01-01T00:00:00.999Z"),
        ("R/1970-01-01T03:00:00+05:00/P1D", "", "1970-01-01T03:00:00.000+05:00"),
        ("R/1950-06-01T00:00:00Z/P1D", "Europe/Paris", "1950-06-01T00:00:00.000+01:00"),
    ],
    ids=["1969", "midnight-1970", "before-first-second", "offset", "in-a-zone"],
)
def test_a_start_before_1970_is_refused(text: str, tz: str, shown: str) -> None:
    with pytest.raises(ScheduleError) as e:
        sched.parse(text, tz)
    assert str(e.value) == f"Scheduled start date '{shown}' is before 1970!"


@pytest.mark.parametrize("tz", ["Mars/Base", "../etc/passwd", "America"], ids=str)
def test_an_unknown_time_zone_is_refused(tz: str) -> None:
    with pytest.raises(ScheduleError) as e:
        sched.parse("R/2026-01-01T00:00:00Z/PT1H", tz)
    assert str(e.value) == f"Unknown scheduleTimeZone '{tz}'"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("PT60S", 60.0), ("P1W", 604800.0), ("P1DT1H", 90000.0), ("PT1.5S", 1.5), ("PT0S", 0.0)],
    ids=["seconds", "week", "day-hour", "fraction", "zero"],
)
def test_duration_seconds(text: str, seconds: float) -> None:
    assert sched.duration_seconds(text) == seconds


@pytest.mark.parametrize(
    "text", ["P1M", "P1Y", "soon", ""], ids=["months", "years", "word", "empty"]
)
def test_duration_seconds_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        sched.duration_seconds(text)


# --- arithmetic ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "tz", "expected"),
    [
        (
            "R5/2026-01-31T10:00:00Z/P1M",
            "",
            [
                "2026-01-31T10:00:00Z",
                "2026-02-28T10:00:00Z",
                "2026-03-31T10:00:00Z",
                "2026-04-30T10:00:00Z",
                "2026-05-31T10:00:00Z",
            ],
        ),
        (
            "R3/2024-01-31T00:00:00Z/P1M",
            "",
            ["2024-01-31T00:00:00Z", "2024-02-29T00:00:00Z", "2024-03-31T00:00:00Z"],
        ),
        (
            "R5/2024-02-29T12:00:00Z/P1Y",
            "",
            [
                "2024-02-29T12:00:00Z",
                "2025-02-28T12:00:00Z",
                "2026-02-28T12:00:00Z",
                "2027-02-28T12:00:00Z",
                "2028-02-29T12:00:00Z",
            ],
        ),
        (
            "R3/2024-02-29T00:00:00Z/P1Y1M",
            "",
            ["2024-02-29T00:00:00Z", "2025-03-28T00:00:00Z", "2026-04-28T00:00:00Z"],
        ),
        (
            "R3/2026-01-01T00:00:00Z/P2W",
            "",
            ["2026-01-01T00:00:00Z", "2026-01-15T00:00:00Z", "2026-01-29T00:00:00Z"],
        ),
        (
            "R4/2026-03-07T09:00:00/P1D",
            NY,
            [
                "2026-03-07T14:00:00Z",
                "2026-03-08T13:00:00Z",
                "2026-03-09T13:00:00Z",
                "2026-03-10T13:00:00Z",
            ],
        ),
        (
            "R3/2026-10-31T09:00:00/P1D",
            NY,
            ["2026-10-31T13:00:00Z", "2026-11-01T14:00:00Z", "2026-11-02T14:00:00Z"],
        ),
        (
            "R4/2026-03-08T00:30:00/PT1H",
            NY,
            [
                "2026-03-08T05:30:00Z",
                "2026-03-08T06:30:00Z",
                "2026-03-08T07:30:00Z",
                "2026-03-08T08:30:00Z",
            ],
        ),
        (
            "R4/2026-11-01T00:30:00/PT1H",
            NY,
            [
                "2026-11-01T04:30:00Z",
                "2026-11-01T05:30:00Z",
                "2026-11-01T06:30:00Z",
                "2026-11-01T07:30:00Z",
            ],
        ),
        (
            "R3/2026-03-07T02:30:00/P1D",
            NY,
            ["2026-03-07T07:30:00Z", "2026-03-08T07:30:00Z", "2026-03-09T06:30:00Z"],
        ),
        (
            "R2/2026-10-31T01:30:00/P1D",
            NY,
            ["2026-10-31T05:30:00Z", "2026-11-01T05:30:00Z"],
        ),
        (
            "R3/2026-03-07T09:00:00-05:00/P1D",
            "",
            ["2026-03-07T14:00:00Z", "2026-03-08T14:00:00Z", "2026-03-09T14:00:00Z"],
        ),
        (
            "R3/2026-03-28T09:00:00/P1W",
            "Europe/Paris",
            ["2026-03-28T08:00:00Z", "2026-04-04T07:00:00Z", "2026-04-11T07:00:00Z"],
        ),
    ],
    ids=[
        "month-end-jan-31",
        "month-end-leap-feb-29",
        "leap-day-plus-P1Y",
        "years-then-months-like-joda",
        "two-weeks",
        "P1D-spring-forward-keeps-09:00",
        "P1D-fall-back-keeps-09:00",
        "PT1H-spring-forward-absolute",
        "PT1H-fall-back-absolute",
        "P1D-into-the-gap-moves-on-no-drift",
        "P1D-onto-an-overlap-is-the-earlier",
        "fixed-offset-has-no-dst",
        "P1W-across-european-dst",
    ],
)
def test_slots_are_calendar_correct(text: str, tz: str, expected: list[str]) -> None:
    assert slots(text, tz) == expected


def test_slots_are_n_periods_from_the_start() -> None:
    """Slot k is start + k x P, so P1M from Jan 31 comes back to the 31st."""
    s = sched.parse("R/2026-01-31T00:00:00Z/P1M")
    assert [
        iso(t)
        for t in sched.occurrences(
            s, ts("2026-06-01T00:00:00+00:00"), ts("2026-09-01T00:00:00+00:00")
        )
    ] == [
        "2026-06-30T00:00:00Z",
        "2026-07-31T00:00:00Z",
        "2026-08-31T00:00:00Z",
    ]


def test_a_rewritten_start_is_a_new_origin_as_in_chronos() -> None:
    """Chronos stores the rewritten start, so a month end drifts across rewrites."""
    s = sched.parse("R/2026-01-31T00:00:00Z/P1M")
    s = sched.advance(s, ts("2026-01-31T00:00:00+00:00"))
    assert s.text() == "R/2026-02-28T00:00:00.000Z/P1M"
    s = sched.advance(s, ts("2026-02-28T00:00:00+00:00"))
    assert s.text() == "R/2026-03-28T00:00:00.000Z/P1M"


def test_rewriting_across_dst_keeps_the_wall_clock_and_reads_back() -> None:
    s = sched.parse("R3/2026-03-07T09:00:00/P1D", NY)
    s = sched.advance(s, ts("2026-03-07T09:00:00-05:00"))
    assert s.text() == "R2/2026-03-08T09:00:00.000-04:00/P1D"
    assert sched.parse(s.text(), NY) == s
    assert iso(sched.next_slot(s, 0) or 0) == "2026-03-08T13:00:00Z"


# --- occurrences, next_slot, advance --------------------------------------------------------------
T0 = ts("2026-01-01T00:00:00+00:00")
H = 3600.0


@pytest.mark.parametrize(
    ("text", "after", "until", "expected"),
    [
        ("R/2026-01-01T00:00:00Z/PT1H", T0, T0 + 3 * H, [T0 + H, T0 + 2 * H, T0 + 3 * H]),
        ("R/2026-01-01T00:00:00Z/PT1H", T0 - 0.001, T0, [T0]),
        ("R/2026-01-01T00:00:00Z/PT1H", T0 + 0.5, T0 + H - 0.001, []),
        ("R/2026-01-01T00:00:00Z/PT1H", T0 + 5 * H, T0 + 5 * H, []),
        ("R/2026-01-01T00:00:00Z/PT1H", T0 + 5 * H, T0 + 4 * H, []),
        ("R3/2026-01-01T00:00:00Z/PT1H", T0 - H, T0 + 10 * H, [T0, T0 + H, T0 + 2 * H]),
        ("R1/2026-01-01T00:00:00Z/PT1H", T0 - H, T0 + 10 * H, [T0]),
        ("R0/2026-01-01T00:00:00Z/PT1H", T0 - H, T0 + 10 * H, []),
        ("R/2026-01-01T00:00:00Z/PT1H", T0 - 10 * H, T0 - H, []),
        (
            "R/2026-01-01T00:00:00Z/PT1H",
            T0 + 1_000_000 * H,
            T0 + 1_000_002 * H,
            [T0 + 1_000_001 * H, T0 + 1_000_002 * H],
        ),
    ],
    ids=[
        "after-excluded-until-included",
        "the-start",
        "between-slots",
        "empty-window",
        "reversed-window",
        "R3-at-most-three",
        "R1-once",
        "R0-never",
        "all-before-the-start",
        "far-ahead-no-iteration",
    ],
)
def test_occurrences_bounds(text: str, after: float, until: float, expected: list[float]) -> None:
    s = sched.parse(text)
    assert sched.occurrences(s, after, until) == expected
    assert sched.count(s, after, until) == len(expected)


@pytest.mark.parametrize(
    ("text", "after", "expected"),
    [
        ("R/2026-01-01T00:00:00Z/PT1H", T0 - 10 * H, T0),
        ("R/2026-01-01T00:00:00Z/PT1H", T0, T0 + H),
        ("R/2026-01-01T00:00:00Z/PT1H", T0 + H - 0.001, T0 + H),
        ("R2/2026-01-01T00:00:00Z/PT1H", T0 + H, None),
        ("R1/2026-01-01T00:00:00Z/PT1H", T0 - 1, T0),
        ("R1/2026-01-01T00:00:00Z/PT1H", T0, None),
        ("R0/2026-01-01T00:00:00Z/PT1H", T0 - H, None),
    ],
    ids=["before-start", "strictly-after", "just-before", "used-up", "R1", "R1-done", "R0"],
)
def test_next_slot(text: str, after: float, expected: float | None) -> None:
    assert sched.next_slot(sched.parse(text), after) == expected


@pytest.mark.parametrize(
    ("text", "slot", "shown"),
    [
        ("R5/2026-01-01T00:00:00Z/PT1H", T0, "R4/2026-01-01T01:00:00.000Z/PT1H"),
        ("R5/2026-01-01T00:00:00Z/PT1H", T0 + 2.5 * H, "R2/2026-01-01T03:00:00.000Z/PT1H"),
        ("R/2026-01-01T00:00:00Z/PT1H", T0 + 2 * H, "R/2026-01-01T03:00:00.000Z/PT1H"),
        ("R1/2026-01-01T00:00:00Z/PT1H", T0, "R0/2026-01-01T01:00:00.000Z/PT1H"),
        ("R2/2026-01-01T00:00:00Z/PT1H", T0 + 10 * H, "R0/2026-01-01T11:00:00.000Z/PT1H"),
        ("R0/2026-01-01T00:00:00Z/PT1H", T0 + 10 * H, "R0/2026-01-01T00:00:00.000Z/PT1H"),
        ("R5/2026-01-01T00:00:00Z/PT1H", T0 - H, "R5/2026-01-01T00:00:00.000Z/PT1H"),
    ],
    ids=[
        "one-slot",
        "passed-slots-all-count",
        "forever-stays-forever",
        "R1-to-R0",
        "past-the-end",
        "R0-stays-R0",
        "before-the-start-nothing",
    ],
)
def test_advance(text: str, slot: float, shown: str) -> None:
    assert sched.advance(sched.parse(text), slot).text() == shown


# --- catch-up --------------------------------------------------------------------------------
EVERY_SECOND = "R/2026-01-01T00:00:00Z/PT1S"
NOW = T0 + 10_000.5  # 10,000 slots after T0 (which ran) are due


@pytest.mark.parametrize(
    ("policy", "limit", "epsilon", "expected"),
    [
        ("none", 1000, None, [T0 + 10_000]),
        ("none", 1000, 60.0, [T0 + 10_000]),
        ("none", 1000, 0.25, []),
        ("last", 1000, None, [T0 + 10_000]),
        ("last", 1000, 0.25, [T0 + 10_000]),
        ("all", 1000, None, [T0 + k for k in range(9_001, 10_001)]),
        ("all", 20_000, None, [T0 + k for k in range(1, 10_001)]),
        ("all", 0, None, []),
    ],
    ids=[
        "none-runs-the-current-slot",
        "none-within-epsilon",
        "none-late-runs-nothing",
        "last",
        "last-runs-even-late",
        "all-capped-keeps-the-newest",
        "all-under-the-cap",
        "all-zero-cap",
    ],
)
def test_catch_up_after_10000_missed_slots(
    policy: str, limit: int, epsilon: float | None, expected: list[float]
) -> None:
    s = sched.parse(EVERY_SECOND)
    began = time.perf_counter()
    run, advanced = sched.catch_up(s, T0, NOW, policy, limit, epsilon_s=epsilon)
    missed = sched.count(s, T0, NOW)
    elapsed = time.perf_counter() - began
    assert run == expected
    assert missed == 10_000  # the skipped ones: missed - len(run)
    assert advanced.text() == "R/2026-01-01T02:46:41.000Z/PT1S"  # the first slot after now
    assert elapsed < 0.1


def test_catch_up_of_a_calendar_period_computes_rather_than_iterates() -> None:
    s = sched.parse("R/1990-01-01T09:00:00/P1D", NY)
    now = ts("2026-01-01T12:00:00+00:00")
    began = time.perf_counter()
    run, advanced = sched.catch_up(s, None, now, "all", 1000)
    elapsed = time.perf_counter() - began
    assert len(run) == 1000
    assert iso(run[-1]) == "2025-12-31T14:00:00Z"
    assert advanced.text() == "R/2026-01-01T09:00:00.000-05:00/P1D"
    assert sched.count(s, 0, now) == 13149
    assert elapsed < 0.1


@pytest.mark.parametrize(
    ("policy", "epsilon", "expected"),
    [
        ("none", 60.0, []),
        ("none", None, [T0]),
        ("last", 60.0, [T0]),
        ("all", 60.0, [T0]),
    ],
    ids=["none-skips-a-late-run", "none-without-epsilon-is-last", "last-runs-it", "all-runs-it"],
)
def test_catch_up_of_a_daily_job_two_hours_late(
    policy: str, epsilon: float | None, expected: list[float]
) -> None:
    s = sched.parse("R/2026-01-01T00:00:00Z/P1D")
    run, advanced = sched.catch_up(s, T0 - 86400, T0 + 2 * H, policy, epsilon_s=epsilon)
    assert run == expected
    assert advanced.text() == "R/2026-01-02T00:00:00.000Z/P1D"


def test_catch_up_counts_every_passed_slot_against_repeats() -> None:
    s = sched.parse("R100/2026-01-01T00:00:00Z/PT1S")
    run, advanced = sched.catch_up(s, T0, NOW, "all", 1000)
    assert run == [T0 + k for k in range(1, 100)]
    assert advanced.repeats == 0
    assert sched.catch_up(advanced, run[-1], NOW + 1, "all") == ([], advanced)


@pytest.mark.parametrize(
    ("last_slot", "now", "policy", "limit", "expected", "shown"),
    [
        (None, T0 + 5 * H, "last", 1000, [T0 + 5 * H], "R/2026-01-01T06:00:00.000Z/PT1H"),
        (None, T0 + 5 * H, "all", 3, [T0 + 3 * H, T0 + 4 * H, T0 + 5 * H], None),
        (T0 + 5 * H, T0 + 5.5 * H, "all", 1000, [], "R/2026-01-01T06:00:00.000Z/PT1H"),
        (None, T0 - H, "all", 1000, [], "R/2026-01-01T00:00:00.000Z/PT1H"),
        (T0, T0, "last", 1000, [], "R/2026-01-01T01:00:00.000Z/PT1H"),
    ],
    ids=[
        "new-job-with-old-start",
        "new-job-all-capped",
        "nothing-new-since-the-last-slot",
        "start-in-the-future",
        "the-last-slot-is-now",
    ],
)
def test_catch_up_windows(
    last_slot: float | None,
    now: float,
    policy: str,
    limit: int,
    expected: list[float],
    shown: str | None,
) -> None:
    s = sched.parse("R/2026-01-01T00:00:00Z/PT1H")
    run, advanced = sched.catch_up(s, last_slot, now, policy, limit)
    assert run == expected
    assert advanced.text() == (shown or "R/2026-01-01T06:00:00.000Z/PT1H")


def test_catch_up_in_steady_state_runs_each_slot_once() -> None:
    """What the planner does each tick: the advanced schedule and the last slot carried on."""
    s = sched.parse("R/2026-01-01T00:00:00Z/PT2S")
    last: float | None = None
    ran: list[float] = []
    for tick in range(0, 11):
        run, s = sched.catch_up(s, last, T0 + tick + 0.01, "last", epsilon_s=60.0)
        ran += run
        last = run[-1] if run else last
    assert ran == [T0, T0 + 2, T0 + 4, T0 + 6, T0 + 8, T0 + 10]


def test_catch_up_of_R0_and_a_bad_policy() -> None:
    s = sched.parse("R0/2026-01-01T00:00:00Z/PT1H")
    assert sched.catch_up(s, None, T0 + 10 * H, "all") == ([], s)
    with pytest.raises(ValueError):
        sched.catch_up(s, None, T0, "some")


def test_slots_past_year_9999_never_come() -> None:
    s = sched.parse("R/9999-12-30T00:00:00Z/P1D")
    last = ts("9999-12-31T00:00:00+00:00")
    assert sched.occurrences(s, 0, 1e15) == [s.start.timestamp(), last]
    assert sched.next_slot(s, last) is None
    assert sched.advance(s, last).text() == "R0/9999-12-30T00:00:00.000Z/P1D"


def test_a_start_rewritten_into_a_dst_gap_keeps_its_wall_clock() -> None:
    """02:30 on the spring-forward day is the instant of 03:30 EDT; the rewritten start
    keeps 02:30 on the clock, so the next day is 02:30 again (Joda would go on at 03:30)."""
    s = sched.parse("R/2026-03-07T02:30:00/P1D", NY)
    s = sched.advance(s, ts("2026-03-07T02:30:00-05:00"))
    assert s.text() == "R/2026-03-08T02:30:00.000-05:00/P1D"
    assert sched.parse(s.text(), NY) == s
    assert iso(sched.next_slot(s, 0) or 0) == "2026-03-08T07:30:00Z"
    assert iso(sched.next_slot(s, ts("2026-03-08T07:30:00+00:00")) or 0) == "2026-03-09T06:30:00Z"
