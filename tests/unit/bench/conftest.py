"""``bench`` is not an installed package: the ``import_bench`` fixture imports its
modules with the repository root put on ``sys.path`` for the import only."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[3]


def _import_bench(name: str) -> ModuleType:
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(ROOT))
        return importlib.import_module(f"bench.{name}")


@pytest.fixture(scope="session")
def import_bench() -> Callable[[str], ModuleType]:
    """``import_bench(name)`` is the module ``bench.<name>``."""
    return _import_bench
