"""A custom executor (pymesos' ``MesosExecutorDriver``, unmodified) launched by a pymesos
framework on a real agent: its task states reach the framework, and framework messages
go both ways, in order, also once the executor's task has ended (it says goodbye when it
is shut down)."""

from __future__ import annotations

import base64
import sys
from pathlib import Path
from typing import Any

import pytest
from mesoskit import Framework, mesos_cluster, wait

# pymesos 0.3.15 drops sockets without closing them (its call connection after errors,
# its stream connection on failover): their ResourceWarning is not ours to fail on
pytestmark = [
    pytest.mark.timeout(180),
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
]

EXECUTOR = """
import sys, threading, time
from pymesos import Executor, MesosExecutorDriver, decode_data, encode_data

class Echo(Executor):
    task = None

    def launchTask(self, driver, task):
        self.task = task
        threading.Thread(
            target=driver.sendStatusUpdate,
            args=({"task_id": task["task_id"], "state": "TASK_RUNNING", "message": "echoing"},),
        ).start()

    def frameworkMessage(self, driver, message):
        data = decode_data(message)
        driver.sendFrameworkMessage(encode_data(b"pong:" + data))
        if data == b"finish":
            driver.sendStatusUpdate({"task_id": self.task["task_id"], "state": "TASK_FINISHED"})

    def killTask(self, driver, task_id):
        driver.sendStatusUpdate({"task_id": task_id, "state": "TASK_KILLED"})
        driver.stop()

    def shutdown(self, driver):
        driver.sendFrameworkMessage(encode_data(b"bye"))
        driver.stop()

MesosExecutorDriver(Echo(), use_addict=True).run()
"""


def completed(state: dict[str, Any]) -> bool:
    return any(
        t["id"] == "echo-1" for f in state["frameworks"] for t in f.get("completed_tasks", [])
    )


def test_a_custom_executor_exchanges_framework_messages(tmp_path: Path) -> None:
    script = tmp_path / "echo_executor.py"
    script.write_text(EXECUTOR)
    launched: list[Any] = []

    def on_offers(driver: Any, offers: list[Any]) -> None:
        for offer in offers:
            if launched:
                driver.declineOffer(offer.id, {"refuse_seconds": 5})
                continue
            launched.append(offer.agent_id.value)
            task = {
                "name": "echo",
                "task_id": {"value": "echo-1"},
                "agent_id": {"value": offer.agent_id.value},
                "resources": [
                    {"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}},
                    {"name": "mem", "type": "SCALAR", "scalar": {"value": 64}},
                ],
                "executor": {
                    "executor_id": {"value": "echo-executor"},
                    "name": "echo executor",
                    "command": {"value": f"{sys.executable} {script}"},
                    "resources": [
                        {"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}},
                        {"name": "mem", "type": "SCALAR", "scalar": {"value": 64}},
                    ],
                },
            }
            driver.launchTasks(offer.id, [task], {"refuse_seconds": 5})

    with mesos_cluster(tmp_path, runtimes=("process",)) as c:
        fw = Framework.start(c.master, "echo", on_offers)
        try:
            wait(lambda: "TASK_RUNNING" in fw.recorder.states("echo-1"), "TASK_RUNNING", 60)
            running = next(u for u in fw.recorder.updates if u["state"] == "TASK_RUNNING")
            assert running["source"] == "SOURCE_EXECUTOR"
            assert running.get("message") == "echoing"
            agent = launched[0]
            words = [b"ping%d" % i for i in range(8)] + [b"finish"]
            for word in words:
                fw.driver.sendFrameworkMessage(
                    {"value": "echo-executor"},
                    {"value": agent},
                    base64.b64encode(word).decode(),
                )
            wait(lambda: "TASK_FINISHED" in fw.recorder.states("echo-1"), "TASK_FINISHED", 30)
            # its task done, the executor is shut down, and what it says then still arrives
            wait(lambda: len(fw.recorder.messages) > len(words), "every answer and a goodbye", 30)
            got = [base64.b64decode(d) for _, _, d in fw.recorder.messages]
            assert got == [b"pong:" + w for w in words] + [b"bye"]
            assert {(e, a) for e, a, _ in fw.recorder.messages} == {("echo-executor", agent)}
            assert completed(c.get("/state"))
        finally:
            fw.stop()
        wait(lambda: not c.task_pods(), "the executor's pod gone after TEARDOWN", 60)
