"""Chronos schedules: ``R[n]/<start>/<period>`` parsed, stepped through and rewritten.

Pure: no I/O, no clock (time comes in as unix seconds, floats). ``jobs.normalize``
validates a job's schedule with ``parse``; the planner asks for the slots due
(``catch_up``, each clock tick) and the next one (``next_slot``, to sleep until), and
stores the rewritten schedule (``Schedule.text()``) with the slot it claims.

What Chronos does, and so what this does (mesos/chronos ``Iso8601Expressions``,
``JobUtils.skipForward``, ``JobSchedule``, Joda-Time underneath):

- ``R`` repeats forever (``repeats == -1``), ``Rn`` n more times, ``R0`` never. The text
  must match Chronos' regex ``(R[0-9]*)/(.*)/(P.*)`` whole; an empty start means "now
  minus one second". Anything else is refused with Chronos' 400 message, ``Cannot parse
  schedule '...' (wtf bro)`` (sic), and a start before ``1970-01-01T00:00:01Z`` with
  ``Scheduled start date '...' is before 1970!``.
- ``scheduleTimeZone`` replaces the start's zone keeping its wall-clock fields (Joda's
  ``withZoneRetainFields``): ``2026-03-01T09:00:00Z`` in ``America/New_York`` is 09:00
  New York time. Without it the start keeps the offset it was written with (a fixed
  offset: no daylight saving); a start without an offset is UTC.
- Slot ``k`` is ``start.plus(period.multipliedBy(k))``: every field times k, added to the
  start in one go, so slots do not drift (P1M from Jan 31: Feb 28, Mar 31, Apr 30).
  Joda adds the fields in order, years, months, weeks, days on the wall clock of the
  start's zone (a month end clamps: Jan 31 + P1M is Feb 28 or 29, Feb 29 + P1Y is
  Feb 28; P1D keeps 09:00 at 09:00 across a DST change), then hours, minutes, seconds
  as elapsed time (PT1H across DST is 3600 s). A wall-clock time that a DST change
  skips is the instant the gap moves it to (02:30 is 03:30 EDT); one that happens
  twice is the earlier instant, unless the offset the previous instant had fits
  (Joda's rule). So a daily 02:30 job in ``America/New_York`` runs at 03:30 EDT on the
  spring-forward day and at 02:30 again from the next day on (see below); on the
  fall-back day 02:30 comes once (EST, 25 h after the run before), and a daily 01:30
  job runs at the first 01:30 (EDT), once, then at 01:30 EST the day after.
- After a run Chronos rewrites the schedule: the start moves to the first slot after
  it and ``n`` goes down. The rewritten start is a new origin, so a month-end start
  drifts across rewrites exactly as in Chronos (Jan 31, then Feb 28, then Mar 28).

Where this differs from Chronos (docs/chronos.md): the slots passed by a rewrite are
all counted against ``n`` (ISO 8601's reading, and Chronos 2.x's, which counted each
skipped slot; 3.x takes one off however many it skipped), and the first slot after an
instant is found exactly, where 3.x estimates it with standard (24 h) days. A zero
period, which Chronos accepts and then loops on, is refused, and so is an unknown
``scheduleTimeZone`` (Java silently uses GMT). An empty start with a time zone is "now
minus one second" in that zone (Chronos leaves it in UTC, then reads the rewritten UTC
start as wall-clock time of the zone). A start rewritten onto a skipped wall-clock
time keeps it on the clock (``02:30-05:00``, the instant of 03:30 EDT), so the next day
is 02:30 again; Joda would go on at 03:30. ISO 8601 allows a week period only alone
(``P2W``); Joda also took ``P1W2D``.

Library: ``aniso8601`` parses the datetimes, dates and durations (with its
``TupleBuilder`` for durations, which keeps each field as written: Joda's ``Period``
keeps ``PT90M`` as 90 minutes, prints it back that way and adds its fields one by one);
``dateutil.relativedelta`` adds years and months with Joda's month-end clamping;
``zoneinfo`` (with the ``tzdata`` package where the system has no tz database) gives
the named zones.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

import aniso8601
from aniso8601.builders import TupleBuilder
from dateutil.relativedelta import relativedelta

__all__ = [
    "POLICIES",
    "Period",
    "Schedule",
    "ScheduleError",
    "advance",
    "catch_up",
    "count",
    "duration_seconds",
    "format_time",
    "next_slot",
    "occurrences",
    "parse",
    "parse_period",
]

#: Chronos' own split of a schedule (``Iso8601Expressions.iso8601ExpressionRegex``),
#: matched against the whole text
SCHEDULE_RE = re.compile(r"(R[0-9]*)/(.*)/(P.*)")
#: catch-up policies after missed slots (docs/chronos.md)
POLICIES = ("none", "last", "all")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
#: Chronos refuses a start before this instant (``Iso8601JobResource``)
_MIN_START_MS = 1000
_LONG_MAX = 2**63 - 1
_INT_MAX = 2**31 - 1  # a Joda period field is an int
#: slots past year 9999 (what ``datetime`` holds) are "never"
_FAR_MS = 253_402_300_800_000
# average lengths, only to guess a slot index before stepping to the exact one
_DAY_MS = 86_400_000
_YEAR_MS = 365.2425 * _DAY_MS
_MONTH_MS = _YEAR_MS / 12


class ScheduleError(ValueError):
    """A schedule Chronos would refuse; ``str(e)`` is Chronos' 400 message."""


@dataclass(frozen=True)
class Period:
    """A Joda ``Period`` of the standard type: each field as written, never normalised."""

    years: int = 0
    months: int = 0
    weeks: int = 0
    days: int = 0
    hours: int = 0
    minutes: int = 0
    seconds: int = 0
    millis: int = 0

    @property
    def calendar(self) -> bool:
        """Whether the period has fields added on the wall clock (years to days)."""
        return bool(self.years or self.months or self.weeks or self.days)

    @property
    def exact_ms(self) -> int:
        """Its hours, minutes, seconds and millis: elapsed time, in ms."""
        return ((self.hours * 60 + self.minutes) * 60 + self.seconds) * 1000 + self.millis

    @property
    def zero(self) -> bool:
        return not self.calendar and self.exact_ms == 0

    def approx_ms(self) -> float:
        """An average length, for estimates only."""
        return (
            self.years * _YEAR_MS
            + self.months * _MONTH_MS
            + (self.weeks * 7 + self.days) * _DAY_MS
            + self.exact_ms
        )

    def text(self) -> str:
        """As Joda's ``ISOPeriodFormat.standard()`` prints it (``PT1.500S``; zero: ``PT0S``)."""
        out = "P"
        for value, unit in ((self.years, "Y"), (self.months, "M"), (self.weeks, "W")):
            if value:
                out += f"{value}{unit}"
        if self.days:
            out += f"{self.days}D"
        time = ""
        if self.hours:
            time += f"{self.hours}H"
        if self.minutes:
            time += f"{self.minutes}M"
        if self.seconds or self.millis:
            time += f"{self.seconds}" + (f".{self.millis:03d}" if self.millis else "") + "S"
        if time:
            out += "T" + time
        return "PT0S" if out == "P" else out


@dataclass(frozen=True)
class Schedule:
    """A parsed schedule. ``start`` is aware: in ``ZoneInfo(tz)`` when ``tz`` is set, else
    in the fixed offset it was written with. ``repeats``: -1 forever, n more, 0 never."""

    repeats: int
    start: datetime
    period: Period
    tz: str = ""

    def text(self) -> str:
        """The schedule as Chronos shows it: ``R5/2026-01-01T00:00:00.000Z/PT1H``."""
        head = "R" if self.repeats < 0 else f"R{self.repeats}"
        return f"{head}/{format_time(self.start)}/{self.period.text()}"


# --- parsing -------------------------------------------------------------------------------------
def parse(text: str, tz: str = "", now: float | None = None) -> Schedule:
    """Parse a Chronos schedule; ``tz`` is the job's ``scheduleTimeZone``. ``now`` is needed
    only for an empty start (``R//PT1H``: now minus one second, to the ms). Raises
    ``ScheduleError`` with Chronos' message."""
    bad = ScheduleError(f"Cannot parse schedule '{text}' (wtf bro)")
    m = SCHEDULE_RE.fullmatch(text) if isinstance(text, str) else None
    if m is None:
        raise bad
    repeat_text, start_text, period_text = m.groups()
    repeats = -1 if repeat_text == "R" else int(repeat_text[1:])
    if repeats > _LONG_MAX:
        raise bad
    zone = _zone(tz) if tz else None
    try:
        period = parse_period(period_text)
    except ValueError:
        raise bad from None
    if period.zero:
        raise bad
    if start_text == "":
        if now is None:
            raise TypeError("parse: a schedule with an empty start needs `now`")
        ms = math.floor((now - 1.0) * 1000)
        start = _from_ms(ms, zone or UTC)
    else:
        try:
            start = _parse_start(start_text)
        except (ValueError, OverflowError, NotImplementedError):  # aniso8601: "+YYYYY"
            raise bad from None
        if zone is not None:  # Joda's withZoneRetainFields
            start = _attach(start.replace(tzinfo=None), zone, start.utcoffset())
    if _to_ms(start) < _MIN_START_MS:
        raise ScheduleError(f"Scheduled start date '{format_time(start)}' is before 1970!")
    return Schedule(repeats, start, period, tz)


def parse_period(text: str) -> Period:
    """An ISO 8601 duration as Joda's standard period: integer fields, seconds to the ms.
    Raises ``ValueError`` (fractions other than of seconds, unreadable text)."""
    try:
        d = aniso8601.parse_duration(text, builder=TupleBuilder)
    except NotImplementedError as e:  # forms aniso8601 knows but does not build
        raise ValueError(str(e)) from None
    fields: list[int] = []
    for part in (d.PnY, d.PnM, d.PnW, d.PnD, d.TnH, d.TnM):
        if part is None:
            fields.append(0)
        elif part.isdigit():
            fields.append(int(part))
        else:
            raise ValueError(f"only seconds may have a fraction: {text!r}")
    seconds, millis = 0, 0
    if d.TnS is not None:
        try:
            s = Decimal(d.TnS.replace(",", "."))
        except InvalidOperation:
            raise ValueError(f"bad seconds in {text!r}") from None
        seconds = int(s)
        millis = int((s - seconds) * 1000)  # Joda keeps ms, dropping finer digits
    if max(*fields, seconds) > _INT_MAX:
        raise ValueError(f"a field of {text!r} is too large")
    years, months, weeks, days, hours, minutes = fields
    return Period(years, months, weeks, days, hours, minutes, seconds, millis)


def duration_seconds(text: str) -> float:
    """An ISO 8601 duration (``epsilon``: ``PT60S``) in seconds, weeks and days counted as
    7 x 24 h and 24 h (Joda's ``toStandardSeconds``). Raises ``ValueError`` when it cannot
    be read or has years or months (no fixed length)."""
    try:
        p = parse_period(text)
    except ValueError:
        raise ValueError(f"Cannot parse duration '{text}'") from None
    if p.years or p.months:
        raise ValueError(f"Duration '{text}' has years or months, which have no fixed length")
    return (p.weeks * 7 + p.days) * 86_400 + p.exact_ms / 1000


def _zone(tz: str) -> tzinfo:
    try:
        return ZoneInfo(tz)
    except (KeyError, ValueError, OSError):  # ZoneInfoNotFoundError is a KeyError
        raise ScheduleError(f"Unknown scheduleTimeZone '{tz}'") from None


def _parse_start(text: str) -> datetime:
    """Joda's ``DateTime.parse``: a date, or a date and time, with an optional offset."""
    if "T" in text:
        raw = aniso8601.parse_datetime(text, builder=TupleBuilder)
        if raw.time.hh == "24":  # aniso8601 reads 24:00 as the same day's 00:00; Joda refuses it
            raise ValueError("hour 24")
        dt = aniso8601.parse_datetime(text)
    else:
        d = aniso8601.parse_date(text)
        dt = datetime(d.year, d.month, d.day) if isinstance(d, date) else d
    if not isinstance(dt, datetime):
        raise ValueError(f"not a datetime: {text!r}")
    dt = dt.replace(microsecond=dt.microsecond // 1000 * 1000)  # Joda keeps ms
    offset = dt.utcoffset()
    if offset is None:
        return dt.replace(tzinfo=UTC)  # Joda: the JVM's zone, UTC on a Chronos host
    return dt.replace(tzinfo=UTC if not offset else timezone(offset))


# --- instants --------------------------------------------------------------------------------------
def format_time(dt: datetime) -> str:
    """Joda's ``ISODateTimeFormat.dateTime()``: ``2026-01-01T00:00:00.000Z`` or
    ``...000-05:00``, in the datetime's own zone."""
    out = (
        f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}T"
        f"{dt.hour:02d}:{dt.minute:02d}:{dt.second:02d}.{dt.microsecond // 1000:03d}"
    )
    offset = dt.utcoffset()
    if not offset:
        return out + "Z"
    sign = "-" if offset < timedelta(0) else "+"
    secs = int(abs(offset).total_seconds())
    out += f"{sign}{secs // 3600:02d}:{secs // 60 % 60:02d}"
    return out + (f":{secs % 60:02d}" if secs % 60 else "")


def _to_ms(dt: datetime) -> int:
    return (dt - _EPOCH) // _MS


def _from_ms(ms: int, zone: tzinfo) -> datetime:
    return (_EPOCH + ms * _MS).astimezone(zone)


def _attach(naive: datetime, zone: tzinfo, hint: timedelta | None) -> datetime:
    """Wall-clock ``naive`` in ``zone`` as Joda's ``convertLocalToUTC(local, false,
    original)``: the original instant's offset when it fits; else a time a DST change
    skips moves forward by the gap, and a time that happens twice is the earlier."""
    if isinstance(zone, timezone):
        return naive.replace(tzinfo=zone)
    first, second = naive.replace(tzinfo=zone, fold=0), naive.replace(tzinfo=zone, fold=1)
    if first.utcoffset() == second.utcoffset():
        return first
    back = first.astimezone(UTC).astimezone(zone).replace(tzinfo=None)
    if back == naive and second.utcoffset() == hint:  # twice on the clock: keep the offset
        return second.astimezone(UTC).astimezone(zone)
    # skipped: fold=0 reads it with the offset before the change, i.e. moves it forward
    # by the gap (02:30 is the instant of 03:30). The wall-clock fields stay 02:30, so a
    # start rewritten onto that slot keeps counting days from 02:30 (no drift to 03:30)
    # and prints as 02:30 with the offset before the change (the same instant)
    return first


def _plus(s: Schedule, k: int) -> datetime:
    """``start.plus(period.multipliedBy(k))``, in the start's zone."""
    p, t = s.period, s.start
    zone = t.tzinfo
    assert zone is not None
    steps: list[Any] = []
    if p.years:
        steps.append(relativedelta(years=p.years * k))
    if p.months:
        steps.append(relativedelta(months=p.months * k))
    if p.weeks:
        steps.append(timedelta(weeks=p.weeks * k))
    if p.days:
        steps.append(timedelta(days=p.days * k))
    for step in steps:
        t = _attach(t.replace(tzinfo=None) + step, zone, t.utcoffset())
    if p.exact_ms:
        t = (t.astimezone(UTC) + p.exact_ms * k * _MS).astimezone(zone)
    return t


def _at(s: Schedule, k: int) -> int:
    """Slot ``k`` (0 is the start) in ms since the epoch, repeats not considered; past
    year 9999, ``_FAR_MS + k`` (still increasing in k)."""
    if not s.period.calendar:
        return min(_to_ms(s.start) + k * s.period.exact_ms, _FAR_MS + k)
    try:
        return min(_to_ms(_plus(s, k)), _FAR_MS + k)
    except (OverflowError, ValueError):
        return _FAR_MS + k


def _index_after(s: Schedule, after: float) -> int:
    """The smallest k >= 0 whose slot is strictly after ``after`` (unix seconds)."""
    after = min(after, (_FAR_MS - 1) / 1000)  # past year 9999 every slot is "never"
    start_ms = _to_ms(s.start)
    if start_ms / 1000 > after:
        return 0
    if not s.period.calendar:
        step = s.period.exact_ms
        k = max(0, int((after * 1000 - start_ms) // step))
    else:
        k = max(0, int((after * 1000 - start_ms) // s.period.approx_ms()))
    while k > 0 and _at(s, k - 1) / 1000 > after:
        k -= 1
    while _at(s, k) / 1000 <= after:
        k += 1
    return k


def _cap(s: Schedule, k: int) -> int:
    return k if s.repeats < 0 else min(k, s.repeats)


# --- stepping --------------------------------------------------------------------------------------
def occurrences(s: Schedule, after: float, until: float) -> list[float]:
    """The slots in ``(after, until]``, oldest first; at most ``repeats`` from the start
    when finite."""
    if s.repeats == 0 or until <= after:
        return []
    out: list[float] = []
    k = _index_after(s, after)
    while s.repeats < 0 or k < s.repeats:
        ms = _at(s, k)
        if ms / 1000 > until or ms >= _FAR_MS:
            break
        out.append(ms / 1000)
        k += 1
    return out


def count(s: Schedule, after: float, until: float) -> int:
    """How many slots ``occurrences(s, after, until)`` has, without listing them."""
    if s.repeats == 0 or until <= after:
        return 0
    return max(0, _cap(s, _index_after(s, until)) - _cap(s, _index_after(s, after)))


def next_slot(s: Schedule, after: float) -> float | None:
    """The first slot strictly after ``after``; None once the repeats are used up."""
    k = _index_after(s, after)
    if s.repeats >= 0 and k >= s.repeats:
        return None
    ms = _at(s, k)
    return None if ms >= _FAR_MS else ms / 1000


def _skip(s: Schedule, k: int) -> Schedule:
    """``s`` with its first ``k`` slots gone: the start at slot k, k fewer repeats."""
    if k <= 0 or s.repeats == 0:
        return s
    repeats = -1 if s.repeats < 0 else max(0, s.repeats - k)
    if _at(s, k) >= _FAR_MS:  # no slot before year 10000 is left: used up
        return Schedule(0, s.start, s.period, s.tz)
    return Schedule(repeats, _plus(s, k), s.period, s.tz)


def advance(s: Schedule, slot: float) -> Schedule:
    """The schedule once ``slot`` ran or was skipped: the start moves to the first slot
    after it, and every slot passed (the start's, and any up to ``slot``) is taken off a
    finite ``repeats`` (one, when ``slot`` is the start). ``R0`` stays as it is."""
    return _skip(s, _index_after(s, slot))


def catch_up(
    s: Schedule,
    last_slot: float | None,
    now: float,
    policy: str = "last",
    limit: int = 1000,
    *,
    epsilon_s: float | None = None,
) -> tuple[list[float], Schedule]:
    """The slots to run at ``now`` and the schedule advanced past ``now``.

    The slots due are those in ``(last_slot, now]`` (all up to ``now`` when
    ``last_slot`` is None). The newest of them is the current one; the others were
    missed (a later slot came before they ran). A slot is late when ``epsilon_s`` is
    given and it is at least that old (Chronos 2.x's ``epsilon``: a run that cannot
    start within it is skipped); without ``epsilon_s`` nothing is late.

    - ``none``: the current slot only, and only if it is not late;
    - ``last``: the newest due slot, late or not (Chronos 3.x: one late run, the rest
      skipped);
    - ``all``: every due slot, oldest first, but at most the newest ``limit`` of them;
      the older ones are skipped (``count`` tells how many were due), so a long
      downtime never turns into a cliff of runs.

    The returned schedule has every slot up to ``now`` taken off (``advance``), whether
    it runs or is skipped. Each call costs a few slot computations, however many slots
    were missed."""
    if policy not in POLICIES:
        raise ValueError(f"catch-up policy must be one of {', '.join(POLICIES)}: {policy!r}")
    if s.repeats == 0:
        return [], s
    first = 0 if last_slot is None else _cap(s, _index_after(s, last_slot))
    end_raw = _index_after(s, now)
    end = _cap(s, end_raw)
    run: range = range(0)
    if first < end:
        newest = end - 1
        if policy == "all":
            run = range(max(first, end - max(limit, 0)), end)
        else:
            late = epsilon_s is not None and now - _at(s, newest) / 1000 >= epsilon_s
            if policy == "last" or not late:
                run = range(newest, end)
    return [_at(s, k) / 1000 for k in run], _skip(s, end_raw)
