"""The fault-injection suite (``corral.testing.faults``): short forms of each scenario.

They need root (runc, network namespaces, iptables, mounts) and are skipped with that
reason otherwise; the long forms run from ``make faults``.
"""

from __future__ import annotations

import os

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="fault scenarios need root (runc, netns, mounts)")
    here = os.path.dirname(__file__)
    for item in items:
        if str(item.fspath).startswith(here):
            item.add_marker(skip)
