"""Fault scenario ``crash`` (issue 16, Deliver 1): SIGKILL under a write load, then check.

Six writers (``crash_load.Writer``: ConfigMaps and encrypted Secrets, a unique payload
and its SHA-256 in each object) create, update and delete while ``corral server`` is
SIGKILLed at random moments and started again on the same data dir and port, ``kills``
times; then the same with ``corral up`` as a whole. Two watchers (``crash_load.Watcher``)
resume their watch streams across the kills.

Each attempt is recorded; one without an answer (the kill) is resolved afterwards by a
GET: its name then holds either the state before it or the state it would write, and
anything else is a lost write. So for every name the committed attempts are known
exactly, and the checks are exact, not statistical:

- an answer the acknowledged writes make impossible (409/404 on the next write), a
  resolution GET finding neither state, or a final state other than the last committed
  attempt's: ``acknowledged_writes_lost`` (when the attempt was acknowledged);
- an object or a watch event whose checksum does not match: ``half_written``;
- a list after a restart at a resourceVersion below the highest one acknowledged before
  it, or an object below its acknowledged one: ``rv_regressions``;
- watchers (real watch streams, ``allowWatchBookmarks``, resumed from the last
  resourceVersion they saw after each kill) must show each committed attempt once, in
  order, with its type (ADDED, MODIFIED, DELETED) and acknowledged resourceVersion:
  ``watch_missed``, ``watch_repeated``; a 410 on resume is a violation, since the server
  keeps its history across restarts (``--history`` revisions in the database).

``restart_to_serving_s``: from exec of the restarted process to its first successful
authenticated request.
"""

from __future__ import annotations

import functools
import json
import random
import signal
import ssl
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from corral.testing.faults.crash_load import (
    EXPECTED_TYPE,
    KINDS,
    NS,
    PREFIX,
    Endpoint,
    Ledger,
    Seen,
    State,
    Watcher,
    Writer,
    body,
    payload_of,
    rv_of,
)
from corral.testing.process import ServerProcess, free_port
from corral.testing.up import UpProcess
from corral.testing.wait import wait_for


# --- the processes killed -----------------------------------------------------------------
class Target(Protocol):
    """A process to kill and start again on the same data dir and port."""

    def start(self) -> float:
        """Start it; seconds from exec to its first successful authenticated request."""
        ...

    def kill(self) -> None: ...

    def stop(self) -> None: ...

    def endpoint(self) -> Endpoint: ...


def _serving(
    ep_of: Callable[[], Endpoint], alive: Callable[[], bool], t0: float, timeout: float = 90.0
) -> float:
    """Seconds from ``t0`` until an authenticated GET answers 200."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive():
            raise RuntimeError("it exited while starting")
        try:
            ans = ep_of().once("GET", f"/api/v1/namespaces/{NS}")
        except OSError:  # no token or CA written yet
            ans = None
        if ans is not None and ans[0] == 200:
            return time.monotonic() - t0
        time.sleep(0.01)
    raise RuntimeError("it did not serve")


class ServerTarget:
    """``corral server`` (its scheduler and controller-manager children included)."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir, self.port = data_dir, free_port()
        self.proc: ServerProcess | None = None
        self._ep: Endpoint | None = None

    def start(self) -> float:
        t0 = time.monotonic()
        self.proc = ServerProcess.start(self.data_dir, self.port, ["--no-metrics-server"])
        self._ep = None
        proc = self.proc
        return _serving(self.endpoint, lambda: proc.proc.poll() is None, t0)

    def endpoint(self) -> Endpoint:
        if self._ep is None:
            pki = self.data_dir / "pki"
            ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
            self._ep = Endpoint(self.port, (pki / "admin.token").read_text().strip(), ctx)
        return self._ep

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()


class UpTarget(ServerTarget):
    """``corral up`` as a whole (no agents: the store and its loops are what is tested)."""

    def __init__(self, data_dir: Path) -> None:
        super().__init__(data_dir)
        self.up = UpProcess(data_dir, self.port, agents=0, extra=["--no-metrics-server"])

    def start(self) -> float:
        t0 = time.monotonic()
        self.up.launch()
        self._ep = None
        proc = self.up.proc
        assert proc is not None
        try:
            return _serving(self.endpoint, lambda: proc.poll() is None, t0)
        except RuntimeError as e:
            raise RuntimeError(f"corral up: {e}:\n{self.up.output()}") from None

    def kill(self) -> None:
        self.up.signal(signal.SIGKILL)

    def stop(self) -> None:
        if self.up.proc is not None and self.up.proc.poll() is None:
            self.up.signal(signal.SIGINT)


# --- one phase: load, kills, checks ----------------------------------------------------------
def _list(ep: Endpoint, resource: str) -> tuple[int, dict[str, dict[str, Any]]]:
    ans = ep.once("GET", f"/api/v1/namespaces/{NS}/{resource}")
    if ans is None or ans[0] != 200:
        raise RuntimeError(f"list {resource}: {ans}")
    got = json.loads(ans[1])
    items = {i["metadata"]["name"]: i for i in got["items"]}
    return int(got["metadata"]["resourceVersion"]), items


def _resumed(watchers: dict[str, Watcher], streams: dict[str, int]) -> bool:
    """Whether every watcher opened a stream since it had ``streams[resource]``."""
    return all(w.streams > streams[r] for r, w in watchers.items())


def _phase(target: Target, ops: int, kills: int, writers: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    ledger = Ledger(ops)
    restarts: list[float] = []
    resources = list(KINDS)
    watchers: dict[str, Watcher] = {}
    pool: list[Writer] = []
    done_kills = 0
    try:
        target.start()
        ep = target.endpoint()
        for r in resources:
            watchers[r] = Watcher(ep, ledger, r, _list(ep, r)[0])
            watchers[r].start()
        for i in range(writers):
            names = [f"{PREFIX}w{i}-{k}" for k in range(6)]
            pool.append(Writer(ep, ledger, resources[i % len(resources)], names, seed + i))
            pool[-1].start()
        for at in sorted(rng.sample(range(ops // 10, ops * 9 // 10), kills)):
            deadline = time.monotonic() + 120
            while ledger.acked < at and time.monotonic() < deadline:
                time.sleep(0.005)
            time.sleep(rng.uniform(0, 0.05))
            streams = {r: w.streams for r, w in watchers.items()}
            target.kill()
            done_kills += 1
            restarts.append(target.start())
            highest = ledger.max_acked_rv
            for r in resources:
                list_rv = _list(ep, r)[0]
                if list_rv < highest:
                    ledger.violation(
                        "rv_regressions", f"list {r} after restart at {list_rv} < acked {highest}"
                    )
            # each watcher resumed before the next kill (``watch_streams`` counts them; on
            # a slow machine two close kills could otherwise fold two resumptions in one)
            wait_for(functools.partial(_resumed, watchers, streams), 30)
        if not ledger.done.wait(300):
            ledger.violation("", f"the load stalled at {ledger.acked} of {ops} writes")
            ledger.done.set()
        for t in pool:
            t.join(120)
        _drain(ep, ledger, watchers)
        _check(ep, ledger, watchers)
    finally:
        ledger.done.set()
        ledger.stop.set()
        for t in pool:
            t.join(10)
        for w in watchers.values():
            w.close()
        target.stop()
        for w in watchers.values():
            w.join(30)
    return {
        "operations": ledger.acked,
        "attempted": ledger.attempted,
        "kills": done_kills,
        "restarts": restarts,
        "watch_streams": sum(w.streams for w in watchers.values()),
        "counts": dict(ledger.counts),
        "violations": ledger.violations,
    }


def _drain(ep: Endpoint, ledger: Ledger, watchers: dict[str, Watcher]) -> None:
    """Write a fence object per resource and wait until its watcher has seen it: every
    earlier event has then been delivered."""
    for r, w in watchers.items():
        fence = _fence(ep, r)
        deadline = time.monotonic() + 60
        while w.last_rv < fence and w.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        if not fence or w.last_rv < fence:
            ledger.violation("", f"watch {r} did not reach the fence {fence} ({w.last_rv})")


def _fence(ep: Endpoint, r: str, limit: float = 30.0) -> int:
    """The resourceVersion of a fence object of resource ``r`` written now (0: none). A
    create that got no answer, or a 429/5xx, is tried again; a 409 says an earlier try
    made it, and a GET gives its version."""
    coll = f"/api/v1/namespaces/{NS}/{r}"
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        ans = ep.once("POST", coll, body(r, "fence", "fence"))
        if ans is not None and ans[0] == 409:
            ans = ep.once("GET", f"{coll}/fence")
        if ans is not None and ans[0] in (200, 201):
            return rv_of(json.loads(ans[1]))
        if ans is not None and ans[0] < 500 and ans[0] != 429:
            return 0
        time.sleep(0.2)
    return 0


def _check(ep: Endpoint, ledger: Ledger, watchers: dict[str, Watcher]) -> None:
    lists = {r: _list(ep, r)[1] for r in watchers}
    by_name: dict[tuple[str, str], list[Seen]] = defaultdict(list)
    for r, w in watchers.items():
        for ev in w.events:
            by_name[(r, ev.name)].append(ev)
    for (r, name), attempts in ledger.attempts.items():
        committed = [a for a in attempts if a.committed]
        if any(a.committed is None for a in attempts):
            ledger.violation("", f"{r}/{name}: an unanswered write was never resolved")
        # the final state is the last committed attempt's
        last = committed[-1] if committed else None
        want: State = None if last is None or last.kind == "delete" else last.payload
        obj = lists[r].get(name)
        have: State = None
        if obj is not None:
            have, whole = payload_of(r, obj)
            if not whole:
                ledger.violation("half_written", f"{r}/{name}: bad checksum in the final list")
            if last is not None and last.acked and have == want and rv_of(obj) < last.rv:
                ledger.violation("rv_regressions", f"{r}/{name}: at {rv_of(obj)} < acked {last.rv}")
        if have != want:
            figure = "acknowledged_writes_lost" if last is not None and last.acked else ""
            ledger.violation(figure, f"{r}/{name}: holds {have!r}, the last write left {want!r}")
        # the watch shows each committed attempt once, in order, typed and versioned
        events = by_name.pop((r, name), [])
        i = 0
        for a in committed:
            got = events[i] if i < len(events) else None
            if (
                got is None
                or got.payload != a.payload
                or (got.type == "DELETED") != (a.kind == "delete")
            ):
                figure = "watch_missed" if a.acked else "watch_missed_unacked"
                ledger.violation(figure, f"watch {r}/{name}: no event for {a.kind} {a.payload}")
                continue
            i += 1
            if got.type != EXPECTED_TYPE[a.kind]:
                ledger.violation(
                    "watch_wrong_type", f"watch {r}/{name} {got.rv}: {got.type} for {a.kind}"
                )
            if a.acked and a.rv and got.rv != a.rv:
                ledger.violation("rv_regressions", f"watch {r}/{name}: {got.rv} for acked {a.rv}")
        for ev in events[i:]:
            ledger.violation(
                "watch_unexplained", f"watch {r}/{name}: {ev.type} {ev.rv} {ev.payload}"
            )
    for (r, name), evs in by_name.items():
        if name != "fence":
            ledger.violation(
                "watch_unexplained", f"watch {r}/{name}: {len(evs)} events of no write"
            )


def _quantile(xs: list[float], q: float) -> float:
    if not xs:
        return 0.0
    s = sorted(xs)
    return round(s[min(len(s) - 1, int(q * len(s)))], 3)


MUST_BE_ZERO = (
    "acknowledged_writes_lost", "half_written", "rv_regressions", "watch_missed",
    "watch_repeated", "watch_expired", "watch_wrong_type", "watch_unexplained",
    "watch_missed_unacked",
)  # fmt: skip


def run(work: Path, *, long: bool = False, seed: int | None = None) -> dict[str, object]:
    """The scenario: ``corral server`` killed ``kills`` times under the load, then
    ``corral up`` killed (once in the short form); figures summed over both."""
    seed = random.randrange(1 << 30) if seed is None else seed
    plans: list[tuple[str, Target, int, int]] = [
        ("server", ServerTarget(work / "server"), 10_000 if long else 300, 20 if long else 2),
        ("up", UpTarget(work / "up"), 1_500 if long else 120, 3 if long else 1),
    ]
    out: dict[str, Any] = dict.fromkeys(MUST_BE_ZERO, 0)
    out.update(operations=0, attempted=0, kills=0, watch_streams=0, seed=seed)
    restarts: list[float] = []
    violations: list[str] = []
    for name, target, ops, kills in plans:
        res = _phase(target, ops, kills, 6, seed)
        for k in ("operations", "attempted", "kills", "watch_streams"):
            out[k] += res[k]
        for k, v in res["counts"].items():
            out[k] = out.get(k, 0) + v
        restarts += res["restarts"]
        violations += [f"{name}: {v}" for v in res["violations"]]
    out["restart_to_serving_s"] = {
        "p50": _quantile(restarts, 0.5),
        "p99": _quantile(restarts, 0.99),
    }
    out["violations"] = violations
    return out
