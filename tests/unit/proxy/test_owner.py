"""``proxy.owner``: the claim on the host's KUBE-* chains (a record per network namespace).

The record dir is the test's own (``RUN_DIR``); the other proxies are real processes:
a live one (a ``sleep`` standing for another cluster's agent) makes a claim fail with a
message naming its data dir, a gone one leaves a stale record that is taken over.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from corral.proxy import owner


@pytest.fixture(autouse=True)
def run_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(owner, "RUN_DIR", tmp_path)
    return tmp_path


@pytest.fixture
def other() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(["sleep", "60"])
    yield proc
    proc.kill()
    proc.wait()


def _record(pid: int, who: str, localnet: str | None = "0") -> None:
    ticks = owner._start_ticks(pid)
    rec = {"pid": pid, "ticks": ticks, "owner": who, "localnet_before": localnet}
    owner.record_path().write_text(json.dumps(rec))


def test_a_claim_records_this_process_and_release_drops_it() -> None:
    assert owner.claim("/a/agents/n", "0") == "0"
    rec = owner.read()
    assert rec is not None and rec.pid == os.getpid() and rec.owner == "/a/agents/n"
    owner.check("/b/agents/n")  # our own claim is no conflict
    owner.release()
    assert owner.read() is None


def test_a_live_proxy_of_another_cluster_is_a_conflict(other: subprocess.Popen[bytes]) -> None:
    _record(other.pid, "/other/agents/n0")
    with pytest.raises(owner.ChainsConflict, match=r"corral down --data-dir /other\Z"):
        owner.claim("/a/agents/n", "0")
    owner.check("/other/agents/n0")  # the same owner restarting is not
    owner.release()  # not ours: kept
    assert owner.read() is not None


def test_a_gone_proxys_record_is_taken_over_keeping_route_localnet(
    other: subprocess.Popen[bytes],
) -> None:
    _record(other.pid, "/other/agents/n0", localnet="0")
    other.kill()
    other.wait()
    # the chains' first proxy found route_localnet 0; the gone one left it at 1
    assert owner.claim("/a/agents/n", "1") == "0"
    rec = owner.read()
    assert rec is not None and rec.owner == "/a/agents/n" and rec.localnet_before == "0"
