"""Who holds UDP port 53: another cluster's agent (the agent refuses to start) or the
host's own DNS server (a warning; the agent starts without node-local DNS)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from corral.cli.agent import _port53_holder

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="binding port 53 needs root")

HOLD = (
    "import socket, time\n"
    "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
    "s.bind(('127.0.0.77', 53)); print('bound', flush=True); time.sleep(60)\n"
)


@pytest.mark.parametrize(("name", "corral"), [("corral-agent-x", True), ("dnsmasq-x", False)])
def test_the_holder_is_named_and_told_apart(name: str, corral: bool) -> None:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, name], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "bound"
        holder, is_corral = _port53_holder("127.0.0.77")
        assert _port53_holder("127.0.0.78") == ("another process (unknown)", False)
        assert f"pid={proc.pid}" in holder
        assert is_corral is corral
    finally:
        proc.kill()
        proc.communicate()
