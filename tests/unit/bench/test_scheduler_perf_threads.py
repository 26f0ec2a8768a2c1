"""``bench/scheduler_perf.py``'s per-thread report: the server threads' running and
waiting shares, read from ``/proc/PID/task/TID/schedstat``.

The figures depend on the machine and are never asserted; what is tested is the
arithmetic (deltas over the span, busiest first) and that this process's own threads
are read. ``bench`` is not an installed package: ``import_bench`` (``tests/conftest.py``)
imports it.
"""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Callable
from types import ModuleType

import pytest


@pytest.fixture(scope="module")
def sp(import_bench: Callable[[str], ModuleType]) -> ModuleType:
    return import_bench("scheduler_perf")


def test_shares_are_deltas_over_the_span_busiest_first(sp: ModuleType) -> None:
    before = {"1": (10.0, 1.0), "2": (3.0, 0.5), "3": (0.0, 0.0)}
    after = {"1": (18.5, 2.4), "2": (3.7, 1.9), "3": (0.1, 0.0), "4": (0.05, 0.0)}
    rows = sp._threads_share(before, after, 10.0)
    assert rows == [{"running": 0.85, "waiting": 0.14}, {"running": 0.07, "waiting": 0.14}]


def test_reads_every_thread_of_a_process(sp: ModuleType) -> None:
    stop = threading.Event()
    t = threading.Thread(target=stop.wait)
    t.start()
    try:
        got = sp._thread_sched(os.getpid())
    finally:
        stop.set()
        t.join()
    assert str(os.getpid()) in got and str(t.native_id) in got
    assert all(run >= 0 and wait >= 0 for run, wait in got.values())


def test_pin_puts_the_server_alone_on_cpu_0_and_undoes_this_process(sp: ModuleType) -> None:
    mine = os.sched_getaffinity(0)
    if 0 not in mine or len(mine) < 2:
        pytest.skip("needs CPU 0 and one more")
    server = subprocess.Popen(["sleep", "30"])
    other = subprocess.Popen(["sleep", "30"])
    try:
        unpin = sp.pin(server.pid, [other.pid])
        try:
            assert os.sched_getaffinity(server.pid) == {0}
            assert os.sched_getaffinity(other.pid) == mine - {0}
            assert os.sched_getaffinity(0) == mine - {0}
        finally:
            unpin()
        assert os.sched_getaffinity(0) == mine
    finally:
        for p in (server, other):
            p.kill()
            p.wait()
