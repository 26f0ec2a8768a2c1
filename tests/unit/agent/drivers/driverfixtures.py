"""Fixtures for the driver harness (imported by test_harness.py: a conftest.py here would
shadow tests/conftest.py, which other tests import by name): a busybox image, and each
driver with a clean-up kit.

``kit`` is parametrised over every driver (``process``, ``process-nocgroups`` — what a
non-root agent gets — and ``oci``, which needs root, runc and the CNI plugins and skips
with the reason otherwise). Every test's sandboxes are removed afterwards and the fixture
checks that nothing is left behind (processes, cgroups, mounts, network namespaces).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from driverkit import (
    APPLETS,
    BUSYBOX,
    TEST_BRIDGE,
    Kit,
    leftover_pids,
    make_driver,
    oci_skip_reason,
)

from corral.agent.drivers.base import ImageInfo
from corral.agent.drivers.cgroups import Cgroups


@pytest.fixture(scope="session", autouse=True)
def _remove_test_cgroup_parent() -> Iterator[None]:
    """After the session: the tests' cgroup parent and their bridge (``TEST_BRIDGE``)."""
    yield
    if (cgroups := Cgroups.detect()) is not None:
        cgroups.remove_everywhere("corral-test")
    if Path(f"/sys/class/net/{TEST_BRIDGE}").exists():
        subprocess.run(["ip", "link", "delete", TEST_BRIDGE], capture_output=True, check=False)


@pytest.fixture(scope="session")
def busybox_image(tmp_path_factory: pytest.TempPathFactory) -> ImageInfo:
    if not BUSYBOX.exists():
        pytest.skip("needs a static busybox at /bin/busybox")
    root = tmp_path_factory.mktemp("image") / "rootfs"
    for d in ("bin", "etc", "tmp", "proc", "sys", "dev", "www", "work"):
        (root / d).mkdir(parents=True)
    shutil.copy2(BUSYBOX, root / "bin" / "busybox")
    for applet in APPLETS:
        (root / "bin" / applet).symlink_to("busybox")
    (root / "www" / "index.html").write_text("hello from the pod\n")
    (root / "tmp").chmod(0o1777)
    return ImageInfo(ref="busybox", digest="sha256:test", rootfs=root, config={})


@pytest.fixture(params=["process", "process-nocgroups", "oci"])
async def kit(
    request: pytest.FixtureRequest, tmp_path: Path, busybox_image: ImageInfo
) -> AsyncIterator[Kit]:
    kind: str = request.param
    if kind == "oci" and (reason := oci_skip_reason()):
        pytest.skip(reason)
    data_dir = tmp_path / "data"
    k = Kit(kind, make_driver(kind, data_dir), data_dir, tmp_path, busybox_image)
    try:
        yield k
    finally:
        for sb in k.sandboxes:
            await k.driver.remove_sandbox(sb)
        leftovers = leftover_pids(data_dir)
        for pid in leftovers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        mounts = [
            line
            for line in Path("/proc/self/mountinfo").read_text().splitlines()
            if str(tmp_path) in line
        ]
        for line in mounts:
            subprocess.run(["umount", "-l", line.split()[4]], check=False)
        netns = []
        if kind == "oci":
            netns = [
                n
                for n in subprocess.run(
                    ["ip", "netns", "list"], capture_output=True, text=True, check=False
                ).stdout.split()
                if any(n == "corral-" + sb.pod_uid.replace("-", "")[:16] for sb in k.sandboxes)
            ]
            for n in netns:
                subprocess.run(["ip", "netns", "delete", n], check=False)
        cgroups = Cgroups.detect()
        stale_cgroups = []
        if cgroups is not None:
            parent = "corral" if kind == "oci" else "corral-test"
            for sb in k.sandboxes:
                for d in cgroups.dirs(f"{parent}/{sb.pod_uid}").values():
                    if d.exists():
                        stale_cgroups.append(str(d))
                cgroups.remove(f"{parent}/{sb.pod_uid}")
        assert not leftovers, f"processes left behind: {leftovers}"
        assert not mounts, f"mounts left behind: {mounts}"
        assert not netns, f"network namespaces left behind: {netns}"
        assert not stale_cgroups, f"cgroups left behind: {stale_cgroups}"
