"""The fault scenarios' kits leave nothing behind when they fail midway: a process they
started is stopped, and ``corral down`` runs, whatever step raised (review of issue 16).

No cluster runs here: the step that fails is made to fail at once, and the process the
kit starts is a harmless ``sleep`` standing in for the real child."""

from __future__ import annotations

import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from corral.testing.faults import agents, flood


class _Admin:
    """An API that takes the setup's creates and then fails the first list."""

    async def create(self, *args: Any, **kw: Any) -> dict[str, Any]:
        return {}

    async def list(self, *args: Any, **kw: Any) -> dict[str, Any]:
        raise ConnectionError("the server went away")


async def test_flood_setup_stops_its_hollow_agents_when_it_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[subprocess.Popen[bytes]] = []

    def child(argv: list[str], log: Path) -> subprocess.Popen[bytes]:
        started.append(subprocess.Popen(["sleep", "60"]))
        return started[-1]

    monkeypatch.setattr(flood, "_child", child)
    srv = SimpleNamespace(data_dir=tmp_path)
    try:
        with pytest.raises(ConnectionError):
            await flood._setup(_Admin(), srv, flood.SHORT, tmp_path)  # type: ignore[arg-type]
        assert len(started) == 1
        assert started[0].poll() is not None, "the hollow agents' process outlived the setup"
    finally:
        for p in started:
            if p.poll() is None:
                p.kill()
            p.wait()


class _Up:
    """``UpProcess`` whose start fails (as when a node never came up); records what the
    scenario did to clean up."""

    calls: list[str] = []

    def __init__(self, data_dir: Path, port: int) -> None:
        self.data_dir = data_dir

    def start(self) -> str:
        self.calls.append("start")
        raise AssertionError("a node did not come up")

    def signal(self, sig: int) -> int:
        self.calls.append("signal")
        raise subprocess.TimeoutExpired("corral up", 60)  # and it did not stop in time

    def down(self) -> None:
        self.calls.append("down")


def test_agents_scenario_runs_corral_down_when_up_fails_to_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _Up.calls = []
    monkeypatch.setattr(agents, "UpProcess", _Up)
    with pytest.raises((AssertionError, subprocess.TimeoutExpired)):
        agents.run(tmp_path)
    assert _Up.calls == ["start", "signal", "down"], _Up.calls
