"""How fast this machine's CPU is right now: the CPU time of a fixed piece of Python.

These machines share their cores with other tenants: the same pure-Python loop takes
0.45 s of CPU in one minute and 0.77 s in the next (measured here, no other process of
ours running). A throughput figure means little without the speed it was taken at, so a
benchmark calls ``cpu_ms()`` before and after its measured phase and reports both: a
run at 600 pods/s with ``cpu_ms`` 30% above another run's was taken on a slower machine,
not on slower code. The figure is CPU time (``time.process_time``), so a wait for the
CPU does not count: only how much work a CPU second buys.
"""

from __future__ import annotations

import statistics
import time

#: iterations of the fixed loop (~20-30 ms of CPU on these machines)
ITERATIONS = 200_000


def _work(n: int) -> int:
    """A fixed mix of what an interpreter does: arithmetic, a dict, a list, a str."""
    acc = 0
    d: dict[int, int] = {}
    items: list[str] = []
    for i in range(n):
        acc += i * i % 7
        d[i & 1023] = acc
        if i % 64 == 0:
            items.append(str(acc))
    return acc + len(d) + len("".join(items))


def cpu_ms(reps: int = 5, iterations: int = ITERATIONS) -> float:
    """Median CPU milliseconds of ``reps`` runs of the fixed loop: lower is faster."""
    if reps < 1 or iterations < 1:
        raise ValueError("reps and iterations must be positive")
    runs = []
    for _ in range(reps):
        t = time.process_time()
        _work(iterations)
        runs.append((time.process_time() - t) * 1000)
    return round(statistics.median(runs), 2)
