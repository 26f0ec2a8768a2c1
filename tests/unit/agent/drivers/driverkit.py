"""Helpers for the driver harness: the ``Kit`` a test drives, log readers, polling.

Imported by ``conftest.py`` (fixtures) and ``test_harness.py`` (a module of its own rather
than ``conftest`` so that its name cannot clash with ``tests/conftest.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from corral.agent.drivers.base import (
    ContainerSpec,
    Driver,
    ImageInfo,
    Sandbox,
    SandboxSpec,
)
from corral.agent.drivers.cni import PodNetwork
from corral.agent.drivers.oci import OciDriver
from corral.agent.drivers.process import ProcessDriver
from corral.agent.images.demo import host_applets

BUSYBOX = Path("/bin/busybox")
#: every applet of the host's busybox, as in the images the agent runs (``demo.py``)
APPLETS: tuple[str, ...] = host_applets() if BUSYBOX.exists() else ()
#: a CRI log line: RFC 3339 with nanoseconds, in UTC (``Z``, the shim) or with an offset
#: (``+00:00``, conmon: CRI-O's format), the stream, F (full) or P (partial), the text
CRI_LINE = re.compile(
    rb"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}(?:Z|[+-]\d\d:\d\d) (stdout|stderr) ([FP]) (.*)$"
)


def sh(script: str) -> list[str]:
    """argv that works in both drivers: the host's busybox path is the image's too."""
    return ["/bin/busybox", "sh", "-c", script]


def read_log(path: Path) -> list[tuple[str, str, str]]:
    """(stream, tag, text) per CRI log line; asserts every line is well formed."""
    if not path.exists():
        return []
    out = []
    for line in path.read_bytes().splitlines():
        m = CRI_LINE.match(line)
        assert m, f"malformed CRI log line {line!r}"
        out.append((m[1].decode(), m[2].decode(), m[3].decode()))
    return out


def log_text(path: Path) -> list[str]:
    return [text for _, _, text in read_log(path)]


async def until(pred: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    """Poll ``pred`` every 20 ms until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def oci_skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "the oci driver needs root"
    if shutil.which("runc") is None:
        return "the oci driver needs runc"
    if not Path("/usr/lib/cni/bridge").exists():
        return "the oci driver needs the CNI plugins in /usr/lib/cni"
    return None


@dataclass
class Kit:
    """One driver under test plus what a test needs to drive it."""

    kind: str
    driver: Driver
    data_dir: Path
    tmp: Path
    image: ImageInfo
    sandboxes: list[Sandbox] = field(default_factory=list)

    @property
    def root(self) -> bool:
        return os.geteuid() == 0

    @property
    def has_cgroups(self) -> bool:
        return getattr(self.driver, "cgroups", None) is not None

    def new_driver(self) -> Driver:
        """A second driver object on the same data directory: an agent restart."""
        return make_driver(self.kind, self.data_dir)

    async def sandbox(self, hostname: str = "pod-a") -> Sandbox:
        uid = str(uuid.uuid4())
        spec = SandboxSpec(
            pod_uid=uid,
            namespace="default",
            name=hostname,
            hostname=hostname,
            dir=self.tmp / "pods" / uid,
        )
        sb = await self.driver.create_sandbox(spec)
        self.sandboxes.append(sb)
        return sb

    def spec(self, sandbox: Sandbox, argv: list[str], name: str = "c", **kw: Any) -> ContainerSpec:
        kw.setdefault("env", {"PATH": "/bin:/usr/bin"})
        return ContainerSpec(
            pod_uid=sandbox.pod_uid,
            namespace="default",
            pod_name="p",
            name=name,
            attempt=0,
            argv=argv,
            log_path=Path(sandbox.dir) / "logs" / f"{name}-{uuid.uuid4().hex[:6]}.log",
            image=self.image,
            **kw,
        )


#: the oci driver tests' own pod network (not ``corral0``, which a cluster on this host may
#: use), removed at the end of the session (``driverfixtures``)
TEST_BRIDGE, TEST_SUBNET = "cdrv-test", "10.85.0.0/24"


def kit_network(data_dir: Path) -> PodNetwork:
    return PodNetwork(ipam_dir=data_dir / "cni", bridge=TEST_BRIDGE, subnet=TEST_SUBNET)


def make_driver(kind: str, data_dir: Path) -> Driver:
    if kind == "oci":
        return OciDriver(data_dir, network=kit_network(data_dir))
    if kind == "process-nocgroups":
        return ProcessDriver(data_dir, cgroups=None, cgroup_parent="corral-test")
    return ProcessDriver(data_dir, cgroup_parent="corral-test")


def leftover_pids(data_dir: Path) -> list[int]:
    import json

    pids = []
    for state in data_dir.rglob("state.json"):
        with contextlib.suppress(OSError, ValueError):
            d = json.loads(state.read_text())
            pids += [int(d["pid"]), int(d["shim_pid"])]
    return [p for p in pids if os.path.exists(f"/proc/{p}")]
