"""``corral up`` runs the scheduler (with the Mesos master), the controller manager,
Chronos and Marathon as tasks of the API server's process (``cli/loops.py``): its only
child processes are the agents. A loop that fails (here Chronos, whose port is taken) is
logged and started again until it runs. No root needed: no real agent, one hollow node.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

from test_server_children import children_of

from corral.client.rest import DEPLOYMENTS, PODS, Client
from corral.testing.process import free_ports
from corral.testing.wait import eventually


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return bool(r.status == 200)
    except OSError:
        return False


async def _deployment_runs(kubeconfig: Path) -> None:
    client = Client.from_kubeconfig(kubeconfig)
    labels = {"app": "inproc"}
    deploy = {
        "metadata": {"name": "inproc"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]},
            },
        },
    }
    try:
        await client.create(DEPLOYMENTS, deploy, "default")
        async with asyncio.timeout(30):
            while True:  # the controllers made the pod, the scheduler bound it
                pods = (await client.list(PODS, "default", label_selector="app=inproc"))["items"]
                if any((p.get("status") or {}).get("phase") == "Running" for p in pods):
                    return
                await asyncio.sleep(0.1)
    finally:
        await client.close()


def test_up_runs_the_loops_in_its_process_and_restarts_a_failed_one(tmp_path: Path) -> None:
    data = tmp_path / "corral"
    mesos, chronos, marathon, api = free_ports(4)
    taken = socket.socket()  # Chronos cannot listen: its loop fails until this closes
    taken.bind(("127.0.0.1", chronos))
    taken.listen()
    argv = [sys.executable, "-m", "corral", "up", "--data-dir", str(data)]
    argv += ["--port", str(api), "--agents", "0", "--hollow-nodes", "1"]
    argv += ["--mesos-port", str(mesos), "--chronos-port", str(chronos)]
    argv += ["--marathon-port", str(marathon), "--log-level", "WARNING"]
    log = tmp_path / "up.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    try:
        eventually(lambda: "corral chronos (in-process) failed" in log.read_text(), 30)
        assert "OSError" in log.read_text()  # the traceback is logged
        taken.close()
        eventually(lambda: "Corral is up" in log.read_text(), 60)
        eventually(lambda: _answers(f"http://127.0.0.1:{chronos}/ping"), 30)
        text = log.read_text()
        assert "starting corral chronos again" in text, text
        assert _answers(f"http://127.0.0.1:{marathon}/ping")
        assert _answers(f"http://127.0.0.1:{mesos}/version")
        asyncio.run(_deployment_runs(data / "kubeconfig"))
        # the one child process is the hollow agent: no scheduler, controller manager,
        # chronos or marathon process
        kids = list(children_of(proc.pid).values())
        assert len(kids) == 1 and " agent " in kids[0], kids
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
    finally:
        taken.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
