"""``config.json`` for attachable containers (``ocispec.container_config``): a tty
container asks runc for a terminal (and gets ``TERM``), and an ephemeral container with a
target joins the target's PID namespace."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from corral.agent.drivers.base import ContainerSpec
from corral.agent.drivers.ocispec import container_config


def _config(**spec: Any) -> dict[str, Any]:
    cs = ContainerSpec(
        pod_uid="u1", namespace="ns", pod_name="p", name="c", attempt=0, argv=["sh"],
        env={"PATH": "/bin"}, log_path=Path("/tmp/x.log"), **spec,
    )  # fmt: skip
    return container_config(
        cs, rootfs="/r", env=dict(cs.env), pause_pid=42, netns="/run/netns/x", etc_files={},
        cgroups_path="/corral/u1/c",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("tty", "term"), [(True, "TERM=xterm"), (False, None)], ids=["tty", "no-tty"]
)
def test_terminal(tty: bool, term: str | None) -> None:
    process = _config(tty=tty)["process"]
    assert process["terminal"] is tty
    assert (
        (term in process["env"]) if term else not any(e.startswith("TERM=") for e in process["env"])
    )


def test_pid_namespace_of_the_target() -> None:
    ns = {n["type"]: n for n in _config(pid_namespace="/proc/77/ns/pid")["linux"]["namespaces"]}
    assert ns["pid"] == {"type": "pid", "path": "/proc/77/ns/pid"}
    ns = {n["type"]: n for n in _config()["linux"]["namespaces"]}
    assert ns["pid"] == {"type": "pid"}
