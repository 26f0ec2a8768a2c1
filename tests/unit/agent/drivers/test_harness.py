# ruff: noqa: F811  (the fixtures are imported from driverfixtures; see its docstring)
"""The driver harness: one suite, run against every runtime driver (see conftest ``kit``)."""

from __future__ import annotations

import asyncio
import subprocess
import urllib.request
from pathlib import Path

import pytest
from driverfixtures import _remove_test_cgroup_parent, busybox_image, kit  # noqa: F401
from driverkit import Kit, log_text, read_log, sh, until

from corral.agent.drivers.base import (
    COMPLETED,
    ERROR,
    OOM_KILLED,
    ExecSession,
    Limits,
    StartError,
)


async def drain(read: object) -> bytes:
    out = b""
    while chunk := await read():  # type: ignore[operator]
        out += chunk
    return out


async def run_exec(session: ExecSession) -> tuple[bytes, bytes, int]:
    async with asyncio.timeout(10):
        out, err = await asyncio.gather(drain(session.read_stdout), drain(session.read_stderr))
        return out, err, await session.wait()


async def test_output_lands_in_the_cri_log(kit: Kit) -> None:
    sb = await kit.sandbox()
    spec = kit.spec(sb, sh("echo out; echo err >&2; printf partial"))
    h = await kit.driver.start(sb, spec)
    assert h.pid > 0
    info = await asyncio.wait_for(kit.driver.wait(h), 10)
    assert info.exit_code == 0 and info.reason == COMPLETED
    lines = read_log(spec.log_path)
    assert ("stdout", "F", "out") in lines
    assert ("stderr", "F", "err") in lines
    # an unterminated last line: F (the shim) or P (conmon); either way its text is there
    assert ("stdout", "F", "partial") in lines or ("stdout", "P", "partial") in lines


async def test_long_lines_are_split_into_partials(kit: Kit) -> None:
    sb = await kit.sandbox()
    spec = kit.spec(sb, sh("/bin/busybox head -c 40000 /dev/zero | /bin/busybox tr '\\0' a; echo"))
    h = await kit.driver.start(sb, spec)
    await asyncio.wait_for(kit.driver.wait(h), 10)
    lines = [(tag, text) for s, tag, text in read_log(spec.log_path) if s == "stdout"]
    # split into partials of at most 16 KiB (the shim: 16 KiB, conmon: 8 KiB reads), the
    # last one full; joined, they are the line
    assert [tag for tag, _ in lines] == ["P"] * (len(lines) - 1) + ["F"] and len(lines) >= 3
    # (conmon may end the line with an empty F: the newline read on its own)
    assert all(0 < len(text) <= 16384 for _, text in lines[:-1]) and len(lines[-1][1]) <= 16384
    assert "".join(text for _, text in lines) == "a" * 40000


@pytest.mark.parametrize("code", [0, 3], ids=["zero", "three"])
async def test_exit_code(kit: Kit, code: int) -> None:
    sb = await kit.sandbox()
    h = await kit.driver.start(sb, kit.spec(sb, sh(f"exit {code}")))
    info = await asyncio.wait_for(kit.driver.wait(h), 10)
    assert info.exit_code == code
    assert info.signal is None and not info.oom_killed
    assert info.reason == (COMPLETED if code == 0 else ERROR)
    assert info.finished_at >= info.started_at == h.started_at
    # waiting again answers at once
    assert (await asyncio.wait_for(kit.driver.wait(h), 1)).exit_code == code


async def test_start_error_leaves_nothing_behind(kit: Kit) -> None:
    sb = await kit.sandbox()
    with pytest.raises(StartError) as e:
        await kit.driver.start(sb, kit.spec(sb, ["/no/such/binary"]))
    assert e.value.reason in ("CreateContainerError", "RunContainerError")
    assert list((kit.data_dir / "containers").iterdir()) == []


async def test_stop_sends_sigterm_first(kit: Kit) -> None:
    sb = await kit.sandbox()
    script = "trap 'echo got-term; exit 0' TERM; echo ready; while :; do sleep 0.05; done"
    spec = kit.spec(sb, sh(script))
    h = await kit.driver.start(sb, spec)
    await until(lambda: "ready" in log_text(spec.log_path), what="ready")
    info = await asyncio.wait_for(kit.driver.stop(h, grace=10), 15)
    assert info.exit_code == 0
    assert "got-term" in log_text(spec.log_path)


async def test_stop_kills_after_grace(kit: Kit) -> None:
    sb = await kit.sandbox()
    spec = kit.spec(sb, sh("trap '' TERM; echo ready; while :; do sleep 0.05; done"))
    h = await kit.driver.start(sb, spec)
    await until(lambda: "ready" in log_text(spec.log_path), what="ready")
    info = await asyncio.wait_for(kit.driver.stop(h, grace=0.3), 15)
    assert (info.exit_code, info.signal) == (137, 9)
    assert info.reason == ERROR


async def test_memory_limit_oom_kills(kit: Kit) -> None:
    if not kit.has_cgroups:
        pytest.skip("memory limits need root and cgroups")
    sb = await kit.sandbox()
    hog = sh("x=$(/bin/busybox yes | /bin/busybox head -c 300000000); echo survived")
    spec = kit.spec(sb, hog, limits=Limits(memory_bytes=64 * 2**20))
    h = await kit.driver.start(sb, spec)
    info = await asyncio.wait_for(kit.driver.wait(h), 30)
    assert info.oom_killed and info.reason == OOM_KILLED
    assert info.exit_code == 137
    assert "survived" not in log_text(spec.log_path)


async def test_recover_after_agent_restart(kit: Kit) -> None:
    sb = await kit.sandbox()
    long = await kit.driver.start(sb, kit.spec(sb, sh("exec sleep 1000"), name="long"))
    short = await kit.driver.start(sb, kit.spec(sb, sh("exit 5"), name="short"))
    await asyncio.wait_for(kit.driver.wait(short), 10)

    again = kit.new_driver()
    sandboxes, found = await again.recover()
    assert [s.pod_uid for s in sandboxes] == [sb.pod_uid]
    assert sandboxes[0].ip == sb.ip
    by_name = {r.handle.name: r for r in found}
    assert by_name["long"].exit is None
    assert by_name["long"].handle == long
    short_exit = by_name["short"].exit
    assert short_exit is not None and short_exit.exit_code == 5
    info = await asyncio.wait_for(again.stop(by_name["long"].handle, grace=0.2), 10)
    assert info.exit_code in (143, 137)
    await again.remove(by_name["short"].handle)
    _, found = await again.recover()
    assert [r.handle.name for r in found] == ["long"]


async def test_exec(kit: Kit) -> None:
    sb = await kit.sandbox()
    wd = "/work" if kit.kind == "oci" else str(kit.tmp)
    env = {"PATH": "/bin:/usr/bin", "GREETING": "hello"}
    h = await kit.driver.start(sb, kit.spec(sb, sh("exec sleep 1000"), env=env, working_dir=wd))
    session = await kit.driver.exec(
        h, sh("echo $GREETING; pwd; echo oops >&2; exit 4"), tty=False, stdin=False
    )
    out, err, code = await run_exec(session)
    assert out.decode().split() == ["hello", wd]
    assert err == b"oops\n" and code == 4

    cat = await kit.driver.exec(h, ["/bin/busybox", "cat"], tty=False, stdin=True)
    await cat.write_stdin(b"piped\n")
    await cat.close_stdin()
    out, _, code = await run_exec(cat)
    assert (out, code) == (b"piped\n", 0)
    await kit.driver.stop(h, grace=0)


async def test_exec_with_tty(kit: Kit) -> None:
    sb = await kit.sandbox()
    h = await kit.driver.start(sb, kit.spec(sb, sh("exec sleep 1000")))
    session = await kit.driver.exec(
        h, sh("[ -t 0 ] && echo is-a-tty; exit 2"), tty=True, stdin=True
    )
    await session.resize(100, 30)
    out, err, code = await run_exec(session)
    assert b"is-a-tty" in out and err == b"" and code == 2
    await kit.driver.stop(h, grace=0)


async def test_stats(kit: Kit) -> None:
    sb = await kit.sandbox()
    h = await kit.driver.start(sb, kit.spec(sb, sh("exec sleep 1000")))
    stats = kit.driver.stats(h)
    assert stats is not None
    assert stats.memory_bytes > 0 and stats.cpu_nanos >= 0
    await kit.driver.stop(h, grace=0)


async def test_env_and_working_dir(kit: Kit) -> None:
    sb = await kit.sandbox()
    wd = "/work" if kit.kind == "oci" else str(kit.tmp)
    spec = kit.spec(
        sb, sh("echo $FOO; pwd"), env={"FOO": "bar baz", "PATH": "/bin"}, working_dir=wd
    )
    await asyncio.wait_for(kit.driver.wait(await kit.driver.start(sb, spec)), 10)
    assert log_text(spec.log_path) == ["bar baz", wd]


async def test_env_is_exactly_the_spec(kit: Kit) -> None:
    sb = await kit.sandbox()
    spec = kit.spec(sb, ["/bin/busybox", "env"], env={"ONLY": "1"})
    await asyncio.wait_for(kit.driver.wait(await kit.driver.start(sb, spec)), 10)
    env = dict(line.split("=", 1) for line in log_text(spec.log_path))
    env.pop("HOME", None)  # runc adds HOME when the image does not set it
    env.pop("HOSTNAME", None)
    assert env == {
        "ONLY": "1",
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    }


# -- oci only ----------------------------------------------------------------------------------


def oci_only(kit: Kit) -> None:
    if kit.kind != "oci":
        pytest.skip("namespaces and pod networking are oci-only")


async def test_hostname_is_the_sandboxes(kit: Kit) -> None:
    oci_only(kit)
    sb = await kit.sandbox(hostname="my-pod-7")
    spec = kit.spec(sb, sh("hostname; cat /etc/hostname"))
    await asyncio.wait_for(kit.driver.wait(await kit.driver.start(sb, spec)), 10)
    assert log_text(spec.log_path) == ["my-pod-7", "my-pod-7"]


async def test_pod_network_is_shared_and_reachable(kit: Kit) -> None:
    oci_only(kit)
    sb = await kit.sandbox()
    assert sb.ip.startswith("10.85.0.")  # driverkit.TEST_SUBNET
    server = await kit.driver.start(
        sb, kit.spec(sb, ["/bin/busybox", "httpd", "-f", "-p", "8080", "-h", "/www"], name="web")
    )

    def fetch() -> bytes | None:
        try:
            with urllib.request.urlopen(f"http://{sb.ip}:8080/index.html", timeout=1) as r:
                body: bytes = r.read()
                return body
        except OSError:
            return None

    assert await until(fetch, what="the pod IP to answer") == b"hello from the pod\n"
    client = kit.spec(sb, ["/bin/busybox", "wget", "-q", "-O-", "http://127.0.0.1:8080/"])
    info = await asyncio.wait_for(kit.driver.wait(await kit.driver.start(sb, client)), 10)
    assert info.exit_code == 0
    assert log_text(client.log_path) == ["hello from the pod"]
    await kit.driver.stop(server, grace=1)


async def test_sandbox_removal_cleans_up(kit: Kit) -> None:
    oci_only(kit)
    sb = await kit.sandbox()
    h = await kit.driver.start(sb, kit.spec(sb, sh("exec sleep 1000")))
    netns = Path(sb.data["netns"])
    assert netns.exists()
    await kit.driver.remove_sandbox(sb)
    kit.sandboxes.remove(sb)
    assert not netns.exists()
    assert not Path(h.state_dir).exists()
    assert not Path(f"/sys/fs/cgroup/memory/corral/{sb.pod_uid}").exists()
    mounts = Path("/proc/self/mountinfo").read_text()
    assert str(kit.data_dir) not in mounts
    runc = subprocess.run(
        ["runc", "--root", str(kit.data_dir / "runc"), "list", "-q"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert runc.stdout.strip() == ""
    sandboxes, found = await kit.driver.recover()
    assert (sandboxes, found) == ([], [])
