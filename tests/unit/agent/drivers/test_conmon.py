# ruff: noqa: F811  (the fixtures are imported from driverfixtures; see its docstring)
"""``OciDriver`` with every container under conmon (``supervisor="conmon"``), for real:
runc, Debian's conmon, a busybox image. What the Python shim gave must still hold: the
pause and app containers are conmon's children and survive an agent restart; a reboot
(conmon and the containers killed, the data directory kept) is recovered; exit codes,
the killing signal and OOM kills are reported; the log is CRI lines; exec works with a
tty; stdin stays open; a state directory an older agent's shim wrote is recovered; and a
Mesos task (raw output copied into its sandbox) stays under the shim. Skips without root,
runc, the CNI plugins or conmon."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from driverfixtures import _remove_test_cgroup_parent, busybox_image  # noqa: F401
from driverkit import Kit, kit_network, leftover_pids, oci_skip_reason, sh, until

from corral.agent.drivers.base import ERROR, OOM_KILLED, ImageInfo, Limits, SandboxSpec
from corral.agent.drivers.conmon import conmon_binary
from corral.agent.drivers.oci import OciDriver
from corral.agent.logs import parse_record
from corral.testing.agent import simulate_reboot


def comm(pid: int) -> str:
    return Path(f"/proc/{pid}/comm").read_text().strip()


def ppid(pid: int) -> int:
    data = Path(f"/proc/{pid}/stat").read_text()
    return int(data[data.rindex(")") + 2 :].split()[1])


def monitor_of(state_dir: str | Path) -> int:
    return int(json.loads((Path(state_dir) / "state.json").read_text())["shim_pid"])


def cri_log(path: Path) -> dict[str, bytes]:
    """What each stream wrote, from the CRI log (every line must parse)."""
    out = {"stdout": b"", "stderr": b""}
    for line in path.read_bytes().splitlines():
        rec = parse_record(line)
        out[rec.stream] += rec.content()
    return out


@pytest.fixture
async def ckit(tmp_path: Path, busybox_image: ImageInfo) -> AsyncIterator[Kit]:
    if reason := oci_skip_reason():
        pytest.skip(reason)
    if conmon_binary() is None:
        pytest.skip("needs conmon (apt-get install conmon)")
    data_dir = tmp_path / "data"
    k = Kit(
        "oci",
        OciDriver(data_dir, supervisor="conmon", network=kit_network(data_dir)),
        data_dir,
        tmp_path,
        busybox_image,
    )
    try:
        yield k
    finally:
        driver = OciDriver(data_dir, supervisor="conmon", network=kit_network(data_dir))
        sandboxes, found = await driver.recover()
        for sb in [*k.sandboxes, *sandboxes]:
            await driver.remove_sandbox(sb)
        for r in found:
            await driver.remove(r.handle)
        leftovers = leftover_pids(data_dir)
        for pid in leftovers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        mounts = [
            x for x in Path("/proc/self/mountinfo").read_text().splitlines() if str(tmp_path) in x
        ]
        for line in mounts:
            subprocess.run(["umount", "-l", line.split()[4]], check=False)
        assert not leftovers, f"processes left behind: {leftovers}"
        assert not mounts, f"mounts left behind: {mounts}"


async def test_pause_and_containers_are_conmons_children_and_log_cri_lines(ckit: Kit) -> None:
    sb = await ckit.sandbox()
    assert comm(ppid(sb.pid)) == "conmon"
    spec = ckit.spec(sb, sh("echo out; echo err >&2; printf partial; exec sleep 1000"))
    h = await ckit.driver.start(sb, spec)
    assert comm(ppid(h.pid)) == "conmon" and ppid(h.pid) == monitor_of(h.state_dir)
    assert ppid(monitor_of(h.state_dir)) != os.getpid()  # not the agent's child
    await until(lambda: b"partial" in spec.log_path.read_bytes(), what="the log")
    assert cri_log(spec.log_path) == {"stdout": b"out\npartial", "stderr": b"err\n"}
    session = await ckit.driver.exec(
        h, sh("[ -t 0 ] && echo is-a-tty; exit 2"), tty=True, stdin=True
    )
    out = b""
    async with asyncio.timeout(10):
        while chunk := await session.read_stdout():
            out += chunk
        assert await session.wait() == 2
    assert b"is-a-tty" in out
    info = await asyncio.wait_for(ckit.driver.stop(h, grace=0.2), 15)
    assert (info.exit_code, info.signal, info.reason) == (137, 9, ERROR)


async def test_exit_codes_and_oom_kills(ckit: Kit) -> None:
    sb = await ckit.sandbox()
    three = await ckit.driver.start(sb, ckit.spec(sb, sh("exit 3"), name="three"))
    hog = sh("x=$(/bin/busybox yes | /bin/busybox head -c 300000000); echo survived")
    oom = await ckit.driver.start(
        sb, ckit.spec(sb, hog, name="hog", limits=Limits(memory_bytes=64 * 2**20))
    )
    info = await asyncio.wait_for(ckit.driver.wait(three), 10)
    assert (info.exit_code, info.signal, info.oom_killed) == (3, None, False)
    assert info.finished_at >= info.started_at == three.started_at
    info = await asyncio.wait_for(ckit.driver.wait(oom), 30)
    assert (info.exit_code, info.oom_killed, info.reason) == (137, True, OOM_KILLED)


async def test_containers_survive_an_agent_restart(ckit: Kit) -> None:
    sb = await ckit.sandbox()
    long = await ckit.driver.start(sb, ckit.spec(sb, sh("exec sleep 1000"), name="long"))
    short = await ckit.driver.start(sb, ckit.spec(sb, sh("exit 5"), name="short"))
    await asyncio.wait_for(ckit.driver.wait(short), 10)
    monitor = monitor_of(long.state_dir)

    again = OciDriver(
        ckit.data_dir, supervisor="conmon", network=kit_network(ckit.data_dir)
    )  # a new agent on the same data
    sandboxes, found = await again.recover()
    assert [s.pod_uid for s in sandboxes] == [sb.pod_uid]
    by_name = {r.handle.name: r for r in found}
    assert by_name["long"].exit is None and by_name["long"].handle == long
    assert ppid(long.pid) == monitor and comm(monitor) == "conmon"
    short_exit = by_name["short"].exit
    assert short_exit is not None and short_exit.exit_code == 5
    info = await asyncio.wait_for(again.stop(long, grace=0.2), 10)
    assert (info.exit_code, info.signal) == (137, 9)  # (pid 1 ignores SIGTERM)


async def test_reboot_recovery(ckit: Kit) -> None:
    sb = await ckit.sandbox()
    h = await ckit.driver.start(sb, ckit.spec(sb, sh("exec sleep 1000")))
    monitors = [monitor_of(h.state_dir), monitor_of(sb.data["state_dir"])]
    for pid in monitors:  # a reboot takes the monitors too
        os.kill(pid, signal.SIGKILL)
    simulate_reboot(ckit.data_dir)

    again = OciDriver(ckit.data_dir, supervisor="conmon", network=kit_network(ckit.data_dir))
    sandboxes, found = await again.recover()
    assert sandboxes == []  # its pause is gone: torn down, the pod gets a new one
    assert [(r.handle.id, r.exit is not None and r.exit.exit_code) for r in found] == [(h.id, 255)]
    ckit.sandboxes.clear()
    assert not Path(sb.data["netns"]).exists()


async def test_stdin_stays_open(ckit: Kit) -> None:
    sb = await ckit.sandbox()
    spec = ckit.spec(sb, sh("echo ready; exec cat"), stdin=True)
    h = await ckit.driver.start(sb, spec)
    await until(lambda: b"ready" in spec.log_path.read_bytes(), what="ready")
    with pytest.raises(TimeoutError):  # cat sees no EOF: conmon holds its stdin
        await asyncio.wait_for(ckit.driver.wait(h), 0.5)
    assert (Path(h.state_dir) / "bundle" / "attach").is_socket()
    await ckit.driver.stop(h, grace=0)


async def test_an_older_agents_shim_containers_are_recovered(ckit: Kit) -> None:
    old = OciDriver(ckit.data_dir, supervisor="shim", network=kit_network(ckit.data_dir))
    uid = str(uuid.uuid4())
    sb = await old.create_sandbox(SandboxSpec(uid, "default", "p", "p", ckit.tmp / "pods" / uid))
    ckit.sandboxes.append(sb)
    h = await old.start(sb, ckit.spec(sb, sh("exec sleep 1000")))
    assert comm(ppid(h.pid)) != "conmon"

    sandboxes, found = await ckit.driver.recover()
    assert [s.pod_uid for s in sandboxes] == [uid]
    assert [(r.handle, r.exit) for r in found] == [(h, None)]
    info = await asyncio.wait_for(ckit.driver.stop(h, grace=0.2), 10)
    assert (info.exit_code, info.signal) == (137, 9)


async def test_a_mesos_task_with_sandbox_files_stays_under_the_shim(ckit: Kit) -> None:
    sb = await ckit.sandbox()
    files = (str(ckit.tmp / "stdout"), str(ckit.tmp / "stderr"))
    spec = ckit.spec(sb, sh("echo to-sandbox"), stdio_files=files)
    h = await ckit.driver.start(sb, spec)
    assert not (Path(h.state_dir) / "conmon").exists()
    await asyncio.wait_for(ckit.driver.wait(h), 10)
    assert Path(files[0]).read_text() == "to-sandbox\n"
