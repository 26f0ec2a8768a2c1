"""``bench/calibrate.py``: the machine-speed figure the shape benchmark reports beside
its throughput. Its value depends on the machine and is never asserted; what is tested is
that it measures the work it is given (more work, more CPU) and refuses nonsense."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

import pytest


@pytest.fixture(scope="module")
def cal(import_bench: Callable[[str], ModuleType]) -> ModuleType:
    return import_bench("calibrate")


def test_more_work_costs_more_cpu(cal: ModuleType) -> None:
    small = cal.cpu_ms(reps=3, iterations=20_000)
    large = cal.cpu_ms(reps=3, iterations=400_000)
    assert 0 < small < large


@pytest.mark.parametrize("kwargs", [{"reps": 0}, {"iterations": 0}, {"reps": -1}])
def test_non_positive_sizes_are_refused(cal: ModuleType, kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="positive"):
        cal.cpu_ms(**kwargs)
