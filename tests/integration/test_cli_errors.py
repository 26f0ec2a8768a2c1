"""Every ``corral`` subcommand fails in one line: a missing, unreadable or broken
kubeconfig, an API server that is not there or refuses the credentials, a bad flag, a
port already taken; never a traceback. Plus ``corral --version``.

Each case is a real ``python -m corral ...`` process. They are started together once per
module (``results``, at most ``PARALLEL`` at a time) and each test checks one of them:
exit status not 0, exactly one line on stderr, no "Traceback", and the words that say
what went wrong.
"""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from conftest import RunningServer
from corral.testing.process import free_port

PARALLEL = 4
DAEMONS = ["scheduler", "mesos-master", "chronos", "marathon", "controller-manager", "agent",
           "proxy", "dns"]  # fmt: skip


def _subcommands() -> list[str]:
    """Every subcommand ``corral --help`` lists."""
    import argparse

    from corral.cli.main import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sorted(sub.choices)


ALL = _subcommands()


@dataclass(frozen=True)
class Case:
    argv: tuple[str, ...]
    words: str  # what stderr must say
    status: int = 1
    prog: str = ""  # how the line starts; default "corral COMMAND"


def _kubeconfig(path: Path, server: str, token: str) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": server}}],
                "users": [{"name": "u", "user": {"token": token}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    return path


def _cases(tmp: Path, srv: RunningServer) -> dict[str, Case]:
    missing = str(tmp / "no-such-kubeconfig")
    nowhere = str(_kubeconfig(tmp / "nowhere.yaml", f"https://127.0.0.1:{free_port()}", "t"))
    real = yaml.safe_load(Path(srv.kubeconfig).read_text())
    real["users"][0]["user"]["token"] = "not-the-token"
    wrong_token = tmp / "wrong-token.yaml"
    wrong_token.write_text(yaml.safe_dump(real))
    broken = tmp / "broken.yaml"
    broken.write_text("clusters: [\n")
    cases: dict[str, Case] = {}
    for cmd in [*DAEMONS, "why"]:
        target = ["pod/x"] if cmd == "why" else []
        cases[f"{cmd}-missing-kubeconfig"] = Case(
            (cmd, *target, "--kubeconfig", missing),
            f"cannot read the kubeconfig {missing}: No such file or directory",
        )
        reach = "cannot reach the API server at https://127.0.0.1:" if cmd != "why" else (
            "cannot reach 127.0.0.1:"
        )  # fmt: skip
        cases[f"{cmd}-unreachable"] = Case((cmd, *target, "--kubeconfig", nowhere), reach)
    for cmd in ALL:
        cases[f"{cmd}-bad-flag"] = Case(
            (cmd, "--no-such-flag"), f"corral {cmd}: ", status=2
        )  # fmt: skip
    cases["why-kubeconfig-is-a-directory"] = Case(
        ("why", "pod/x", "--kubeconfig", str(tmp)), f"{tmp}: Is a directory"
    )
    cases["scheduler-broken-kubeconfig"] = Case(
        ("scheduler", "--kubeconfig", str(broken)), "is not a usable kubeconfig"
    )
    cases["scheduler-credentials-refused"] = Case(
        ("scheduler", "--kubeconfig", str(wrong_token)), "refused the credentials: 401"
    )
    cases["why-no-such-pod"] = Case(
        ("why", "pod/no-such-pod", "--kubeconfig", str(srv.kubeconfig)),
        'Error from server (NotFound): pods "no-such-pod" not found',
        prog="Error from server",  # kubectl's words
    )
    cases["top-unreachable"] = Case(
        ("top", "--master", f"127.0.0.1:{free_port()}", "-n", "1"), "cannot reach the Mesos master"
    )
    port = str(srv.port)
    cases["server-port-taken"] = Case(
        ("server", "--data-dir", str(tmp / "server"), "--port", port, "--no-scheduler",
         "--no-controllers"),
        "address already in use",
    )  # fmt: skip
    (tmp / "up").mkdir()
    (tmp / "up" / "registries.yaml").write_text("mirrors: {docker.io: {endpoint: [ftp://x]}}\n")
    cases["up-bad-registries-yaml"] = Case(
        ("up", "--data-dir", str(tmp / "up"), "--port", str(free_port()), "--runtime", "process"),
        "registries.yaml: docker.io: registry host 'ftp://x'",
        status=2,
    )
    cases["up-bad-registry-mirror"] = Case(
        ("up", "--data-dir", str(tmp / "up2"), "--port", str(free_port()), "--runtime", "process",
         "--registry-mirror", "docker.io"),
        "want REGISTRY=URL",
        status=2,
    )  # fmt: skip
    return cases


@pytest.fixture(scope="module")
def results(
    server: RunningServer, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, tuple[Case, subprocess.CompletedProcess[str]]]:
    tmp = tmp_path_factory.mktemp("cli-errors")
    cases = _cases(tmp, server)

    def run(case: Case) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "corral", *case.argv],
            capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
        )  # fmt: skip

    with ThreadPoolExecutor(PARALLEL) as pool:
        done = dict(zip(cases, pool.map(run, cases.values()), strict=True))
    return {name: (cases[name], done[name]) for name in cases}


CASE_NAMES = sorted(
    [f"{c}-missing-kubeconfig" for c in [*DAEMONS, "why"]]
    + [f"{c}-unreachable" for c in [*DAEMONS, "why", "top"]]
    + [f"{c}-bad-flag" for c in ALL]
    + ["why-kubeconfig-is-a-directory", "scheduler-broken-kubeconfig",
       "scheduler-credentials-refused", "why-no-such-pod", "server-port-taken",
       "up-bad-registries-yaml", "up-bad-registry-mirror"]
)  # fmt: skip


@pytest.mark.parametrize("name", CASE_NAMES)
def test_fails_in_one_line(
    results: dict[str, tuple[Case, subprocess.CompletedProcess[str]]], name: str
) -> None:
    case, res = results[name]
    lines = res.stderr.splitlines()
    assert "Traceback" not in res.stderr, res.stderr
    assert len(lines) == 1, res.stderr
    assert res.returncode == case.status, (res.returncode, res.stderr)
    assert lines[0].startswith(case.prog or f"corral {case.argv[0]}"), lines[0]
    assert case.words in lines[0], lines[0]


def test_bad_flag_points_to_help() -> None:
    res = subprocess.run(
        [sys.executable, "-m", "corral", "dns", "--kubeconfig", "k", "--ttl", "x"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert res.returncode == 2
    assert res.stderr == (
        "corral dns: argument --ttl: invalid int value: 'x' (see corral dns --help)\n"
    )


def test_version() -> None:
    from importlib.metadata import version

    res = subprocess.run(
        [sys.executable, "-m", "corral", "--version"], capture_output=True, text=True, timeout=60
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout == f"corral {version('corral')}\n"
    assert res.stdout.startswith("corral 0.")
