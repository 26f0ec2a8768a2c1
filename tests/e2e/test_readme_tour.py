"""The README's five-minute tour, run as written: each command of its ``sh`` block is
typed into one bash session on a pseudo-terminal (``pexpect``), against a fresh ``corral
up``, and what the command shows is checked against what the tour's comment says it
shows. A command a reader would rerun until it shows what the comment says (a pod just
created, a Service's first answers) is retried for a while; the interactive ones (``exec
-it``, ``get -w``) are driven as a person would: a shell typed into, Ctrl-C."""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from test_up import Up, up  # noqa: F401 - the ``up`` fixture

pexpect = pytest.importorskip("pexpect")

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="corral up's agents need root here")

README = Path(__file__).resolve().parents[2] / "README.md"
PROMPT = "TOUR-PROMPT> "
RC = re.compile(r"rc=(\d+)")


def tour_commands(readme: str) -> list[str]:
    """The commands of the tour's ``sh`` block, continuation lines joined, comments cut."""
    section = readme.split("## A five-minute tour with kubectl", 1)[1]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    out: list[str] = []
    pending = ""
    for raw in block.splitlines():
        line = pending + (raw.lstrip() if pending else raw)
        if line.rstrip().endswith("\\"):
            pending = line.rstrip()[:-1].rstrip() + " "
            continue
        pending = ""
        command = re.sub(r"\s+#.*$", "", line).strip()
        if command:
            out.append(command)
    return out


@dataclass
class Shell:
    """One bash on a pty; ``run`` types a line and returns (exit code, what it printed)."""

    child: pexpect.spawn

    @classmethod
    def start(cls, env: dict[str, str]) -> Shell:
        child = pexpect.spawn(
            "bash", ["--norc", "--noprofile"], env=env, encoding="utf-8", timeout=120,
            dimensions=(50, 200),
        )  # fmt: skip
        half = len(PROMPT) // 2  # typed in two quoted halves: the echo is not the prompt
        child.sendline(f"PS1='{PROMPT[:half]}''{PROMPT[half:]}'; export PS1")
        child.expect_exact(PROMPT)
        return cls(child)

    def run(self, command: str, timeout: float = 120) -> tuple[int, str]:
        self.child.sendline(command)
        self.child.expect_exact(PROMPT, timeout=timeout)
        printed = _printed(self.child.before, command)
        return self.rc(), printed

    def rc(self) -> int:
        self.child.sendline("echo rc=$?")
        self.child.expect(r"rc=(\d+)\r\n")
        rc = int(self.child.match.group(1))
        self.child.expect_exact(PROMPT)
        return rc

    def close(self) -> None:
        self.child.close(force=True)


def _printed(before: str, command: str) -> str:
    """What the command printed: the echoed command line itself left out."""
    text = before.replace("\r", "")
    first, _, rest = text.partition("\n")
    return rest if command[:20] in first or not rest else text


def _until(
    shell: Shell, command: str, ok: Callable[[str], bool], what: str, timeout: float = 90
) -> str:
    """Rerun ``command`` until its output satisfies ``ok`` (as a reader would)."""
    deadline = time.monotonic() + timeout
    rc, out = -1, ""
    while time.monotonic() < deadline:
        rc, out = shell.run(command)
        if rc == 0 and ok(out):
            return out
        time.sleep(1)
    raise AssertionError(f"{command!r} never showed {what}; last output (rc {rc}):\n{out}")


def _exec_shell(shell: Shell, command: str) -> None:
    """``kubectl exec -it hello -- sh``: a shell in the container; ``exit 3`` -> rc 3."""
    shell.child.sendline(command)
    shell.child.expect(r"[#$] ", timeout=60)
    shell.child.sendline("echo inside-$((6*7))")
    shell.child.expect_exact("inside-42", timeout=30)
    shell.child.sendline("exit 3")
    shell.child.expect_exact(PROMPT, timeout=30)
    assert shell.rc() == 3, "the shell's exit code did not come back through kubectl"


def _watch_crash(shell: Shell, command: str) -> None:
    """``kubectl get pod crash -w``: Error, then CrashLoopBackOff; Ctrl-C ends the watch."""
    shell.child.sendline(command)
    shell.child.expect(r"Error|CrashLoopBackOff", timeout=90)
    shell.child.expect_exact("CrashLoopBackOff", timeout=90)
    shell.child.sendintr()
    shell.child.expect_exact(PROMPT, timeout=30)


def _curl_pods(shell: Shell, command: str) -> None:
    """``curl http://CLUSTER-IP/``: answered by the web pods, a different one each time."""
    seen: set[str] = set()
    deadline = time.monotonic() + 60
    while len(seen) < 2 and time.monotonic() < deadline:
        rc, out = shell.run(command)
        if rc == 0 and out.strip().startswith("web-"):
            seen.add(out.strip())
        else:
            time.sleep(0.5)
    assert len(seen) >= 2, f"the Service did not spread requests over the pods: {seen}"


def check(shell: Shell, command: str, oci: bool) -> None:
    """Run one tour command and check it shows what the tour says."""
    if command.startswith("kubectl exec -it "):
        return _exec_shell(shell, command)
    if command.startswith("kubectl get pod crash -w"):
        return _watch_crash(shell, command)
    if command.startswith("curl "):
        return _curl_pods(shell, command)
    expect: dict[str, tuple[Callable[[str], bool], str]] = {
        "kubectl get nodes": (
            lambda o: " Ready " in o and (not oci or "oci://runc" in o),
            "the node Ready with runc",
        ),
        "kubectl get pods -o wide": (
            lambda o: re.search(r"hello\s+1/1\s+Running", o) is not None,
            "hello Running",
        ),
        "kubectl logs hello": (lambda o: "hello from hello" in o, "the pod's greeting"),
        "kubectl rollout status": (lambda o: "successfully rolled out" in o, "the rollout done"),
        "kubectl get deploy,rs,pods": (
            lambda o: len(re.findall(r"web-\S+\s+1/1\s+Running", o)) == 3,
            "3 web pods Running",
        ),
        "kubectl get svc,endpointslices": (
            lambda o: "service/web" in o and "8080" in o,
            "the Service and its endpoints",
        ),
        "kubectl exec hello -- wget": (
            lambda o: o.strip().startswith("web-"),
            "a web pod's name, through cluster DNS",
        ),
        "kubectl describe pod crash": (
            lambda o: all(r in o for r in ("Scheduled", "Created", "Started", "BackOff")),
            "the events Scheduled, Created, Started, BackOff",
        ),
        "kubectl explain": (lambda o: "rollingUpdate" in o, "the field's documentation"),
        "kubectl delete namespace demo": (
            lambda o: 'namespace "demo" deleted' in o,
            "the namespace deleted",
        ),
    }
    for prefix, (ok, what) in expect.items():
        if command.startswith(prefix):
            _until(shell, command, ok, what)
            return
    rc, out = shell.run(command)
    assert rc == 0, f"{command!r} failed ({rc}):\n{out}"


def test_tour_commands_are_read_from_the_readme() -> None:
    commands = tour_commands(README.read_text())
    assert commands[0].startswith("export KUBECONFIG=")
    assert any("--replicas=3 -- sh -c" in c for c in commands)  # a continued line, joined
    assert not any("#" in c and "echo" not in c for c in commands)


@pytest.mark.timeout(400)
def test_the_readme_tour_runs_as_written(up: Up) -> None:  # noqa: F811
    up.start()
    oci = shutil.which("runc") is not None
    env = dict(os.environ, TERM="dumb")
    env.pop("KUBECONFIG", None)
    shell = Shell.start(env)
    try:
        for command in tour_commands(README.read_text()):
            if command.startswith("export KUBECONFIG="):
                command = f"export KUBECONFIG={up.data}/kubeconfig"  # this cluster's
            t0 = time.monotonic()
            check(shell, command, oci)
            print(f"{time.monotonic() - t0:5.1f} s  {command}")
        rc, out = shell.run("kubectl get namespace demo")
        assert rc != 0 and "NotFound" in out, "the tour's namespace is still there"
    finally:
        shell.close()
