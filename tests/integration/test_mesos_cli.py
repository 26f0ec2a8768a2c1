"""``corral top`` and ``corral why framework/NAME`` as a user runs them (``python -m corral``
subprocesses) against a server with ``--mesos-port`` and a real ``pymesos`` framework."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from mesoskit import Framework, mesos_cluster, wait

from corral.testing.process import free_port

# pymesos 0.3.15 drops sockets without closing them (its call connection after errors,
# its stream connection on failover): their ResourceWarning is not ours to fail on
pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
]


def corral(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "corral", *args], capture_output=True, text=True, timeout=60
    )


def test_why_names_the_filter_and_top_shows_roles_and_frameworks(tmp_path: Path) -> None:
    def decline_for_long(driver: Any, offers: list[Any]) -> None:
        for offer in offers:
            driver.declineOffer(offer.id, {"refuse_seconds": 300})

    with mesos_cluster(tmp_path, hollow=2) as c:
        wait(lambda: len(c.get("/state")["slaves"]) == 2, "2 hollow agents")
        fw = Framework.start(c.master, "picky-cli", decline_for_long)
        try:
            wait(lambda: len(fw.recorder.offers) >= 2, "both agents offered and declined")
            wait(
                lambda: not c.get("/corral/top")["frameworks"][0]["outstanding_offers"], "declined"
            )
            fid = fw.recorder.framework_id

            why = corral("why", "framework/picky-cli", "--master", c.master)
            assert why.returncode == 0, why.stderr
            lines = why.stdout.splitlines()
            assert lines[0] == f"framework/picky-cli ({fid}):"
            assert any("filtered on 2 agent(s)" in line for line in lines[1:]), why.stdout
            by_id = corral("why", f"fw/{fid}", "--master", c.master)
            assert by_id.returncode == 0, by_id.stderr
            assert "filtered on 2 agent(s)" in by_id.stdout

            unknown = corral("why", "fw/no-such-framework", "--master", c.master)
            assert unknown.returncode == 1
            assert "no framework with id or name 'no-such-framework'" in unknown.stderr

            top = corral("top", "-n", "1", "--master", c.master)
            assert top.returncode == 0, top.stderr
            assert "\x1b[" not in top.stdout  # not a terminal: plain text
            rows = {line.split()[0]: line.split() for line in top.stdout.splitlines() if line}
            assert "*" in rows and "kubernetes" in rows
            assert "picky-cli" in rows
            assert rows["picky-cli"][1] == f"{fid[:8]}..{fid[-4:]}"  # short id
            assert rows["picky-cli"][3] == "yes"  # connected
            assert "Total:   cpus 8, mem 64.0G" in top.stdout

            twice = corral("top", "-n", "2", "-d", "0.2", "--master", c.master)
            assert twice.returncode == 0, twice.stderr
            assert twice.stdout.count("corral top - Mesos master") == 2
        finally:
            fw.stop()


def test_an_unreachable_master_is_a_clear_error() -> None:
    master = f"127.0.0.1:{free_port()}"  # nothing listens there
    for args in (["top", "-n", "1"], ["why", "framework/anything"]):
        res = corral(*args, "--master", master)
        assert res.returncode == 1, (args, res.stdout, res.stderr)
        assert f"cannot reach the Mesos master at {master}: " in res.stderr
        assert res.stdout == ""
