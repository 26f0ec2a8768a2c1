"""Fault-injection scenarios on real processes: crash, agent restarts, node loss and
partition, framework and loop failover, overload, disk faults.

Each module exposes ``run(work, *, long=False) -> dict``: it builds a cluster under
``work``, injects its faults, checks its invariants and tears everything down, returning
JSON-able figures and a ``violations`` list (empty when every invariant held). The short
form runs in the suite (``tests/faults/``), the long form in ``make faults``
(``bench/faults.py``, ``bench/results/faults.json``).
"""
