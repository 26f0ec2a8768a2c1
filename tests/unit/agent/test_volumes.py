"""Pod volumes (corral.agent.volumes) on the real filesystem: hostPath type checks, the
atomic writer behind configMap/secret/downwardAPI/projected volumes, in-place refresh,
emptyDir (tmpfs when root), container mounts with subPath, and teardown."""

from __future__ import annotations

import base64
import os
import socket
import stat
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from corral.agent.drivers.base import Mount
from corral.agent.objects import ConfigError, VolumeError
from corral.agent.volumes import (
    CONFIGMAP,
    DATA_DIR,
    DOWNWARD_API,
    EMPTY_DIR,
    PROJECTED,
    SECRET,
    VolumeManager,
    check_host_path,
    unmount_pod_volumes,
    write_atomic,
)

Obj = dict[str, Any]


def _can_mount_tmpfs() -> bool:
    if os.geteuid() != 0:
        return False
    probe = Path("/tmp") / f"corral-tmpfs-probe-{os.getpid()}"
    probe.mkdir(exist_ok=True)
    try:
        ok = (
            subprocess.run(
                ["mount", "-t", "tmpfs", "tmpfs", str(probe)], capture_output=True
            ).returncode
            == 0
        )
        if ok:
            subprocess.run(["umount", str(probe)], check=True)
        return ok
    except OSError:
        return False
    finally:
        probe.rmdir()


CAN_MOUNT = _can_mount_tmpfs()
needs_root = pytest.mark.skipif(not CAN_MOUNT, reason="mounting tmpfs needs root (CAP_SYS_ADMIN)")


class DictLookup:
    def __init__(self) -> None:
        self.configmaps: dict[str, Obj] = {}
        self.secrets: dict[str, Obj] = {}

    async def configmap(self, namespace: str, name: str) -> Obj | None:
        return self.configmaps.get(f"{namespace}/{name}")

    async def secret(self, namespace: str, name: str) -> Obj | None:
        return self.secrets.get(f"{namespace}/{name}")


def b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


def pod_with(*volumes: Obj, labels: dict[str, str] | None = None) -> Obj:
    return {
        "metadata": {"name": "p", "namespace": "ns", "uid": "u1", "labels": labels or {"app": "x"}},
        "spec": {
            "volumes": list(volumes),
            "containers": [{"name": "c", "resources": {"limits": {"memory": "64Mi"}}}],
        },
    }


@pytest.fixture
def lookup() -> DictLookup:
    lk = DictLookup()
    lk.configmaps["ns/cfg"] = {
        "data": {"a.conf": "A", "b.conf": "B"},
        "binaryData": {"bin": b64("\x00\x01")},
    }
    lk.secrets["ns/sec"] = {"data": {"user": b64("admin"), "pass": b64("hunter2")}}
    return lk


@pytest.fixture
async def manager(tmp_path: Path, lookup: DictLookup) -> AsyncIterator[VolumeManager]:
    vm = VolumeManager(tmp_path / "pod", lookup, is_root=False, node_allocatable={"memory": "1Gi"})
    yield vm
    await vm.teardown()


@pytest.fixture
async def root_manager(tmp_path: Path, lookup: DictLookup) -> AsyncIterator[VolumeManager]:
    vm = VolumeManager(tmp_path / "pod", lookup, is_root=True)
    yield vm
    await vm.teardown()


def listing(d: Path) -> dict[str, str]:
    """Visible entries of a volume dir: name -> link target (or 'dir'/'file')."""
    out = {}
    for e in sorted(os.listdir(d)):
        p = d / e
        out[e] = os.readlink(p) if p.is_symlink() else ("dir" if p.is_dir() else "file")
    return out


# --- hostPath -------------------------------------------------------------------------------


@pytest.fixture
def host(tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / "host"
    root.mkdir()
    (root / "dir").mkdir()
    (root / "file").write_text("x")
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(root / "sock"))
    yield root
    s.close()


HOST_OK = [
    ("dir", ""),
    ("missing", ""),
    ("dir", "Directory"),
    ("dir", "DirectoryOrCreate"),
    ("file", "File"),
    ("file", "FileOrCreate"),
    ("sock", "Socket"),
]


@pytest.mark.parametrize(("name", "kind"), HOST_OK, ids=[f"{k or 'unset'}-{n}" for n, k in HOST_OK])
def test_host_path_ok(host: Path, name: str, kind: str) -> None:
    check_host_path(str(host / name), kind)


def test_host_path_char_device() -> None:
    check_host_path("/dev/null", "CharDevice")


def test_host_path_creates(host: Path) -> None:
    check_host_path(str(host / "new" / "deep"), "DirectoryOrCreate")
    assert (host / "new" / "deep").is_dir()
    check_host_path(str(host / "dir" / "f.txt"), "FileOrCreate")
    assert (host / "dir" / "f.txt").is_file()


HOST_BAD = [
    ("missing", "Directory", "is not a directory"),
    ("file", "Directory", "is not a directory"),
    ("file", "DirectoryOrCreate", "is not a directory"),
    ("dir", "File", "is not a file"),
    ("missing", "File", "is not a file"),
    ("dir", "FileOrCreate", "is not a file"),
    ("file", "Socket", "is not a socket file"),
    ("file", "CharDevice", "is not a character device"),
    ("file", "BlockDevice", "is not a block device"),
]


@pytest.mark.parametrize(
    ("name", "kind", "what"), HOST_BAD, ids=[f"{k}-{n}" for n, k, _ in HOST_BAD]
)
def test_host_path_type_check_failed(host: Path, name: str, kind: str, what: str) -> None:
    with pytest.raises(ConfigError) as err:
        check_host_path(str(host / name), kind)
    assert err.value.message == f"hostPath type check failed: {host / name} {what}"


def test_host_path_invalid_type(host: Path) -> None:
    with pytest.raises(ConfigError, match=r"^Dir is an invalid volume type$"):
        check_host_path(str(host / "dir"), "Dir")


async def test_host_path_volume(manager: VolumeManager, host: Path) -> None:
    pod = pod_with({"name": "h", "hostPath": {"path": str(host / "dir"), "type": "Directory"}})
    assert await manager.setup(pod) == {"h": host / "dir"}
    bad = pod_with({"name": "h", "hostPath": {"path": str(host / "nope"), "type": "File"}})
    with pytest.raises(VolumeError) as err:
        await manager.setup(bad)
    assert err.value.volume == "h"
    assert err.value.event_message == (
        f'MountVolume.SetUp failed for volume "h" : hostPath type check failed: {host / "nope"} is not a file'
    )


# --- the atomic writer ----------------------------------------------------------------------


def test_write_atomic_layout(tmp_path: Path) -> None:
    target = tmp_path / "v"
    assert write_atomic(target, {"a": (b"1", 0o644), "sub/b": (b"2", 0o600)})
    entries = listing(target)
    data = entries.pop(DATA_DIR)
    (stamp,) = [e for e in entries if e.startswith("..")]
    assert data == stamp and stamp.startswith("..2")  # ..2026_11_27_14_03_45.<random>
    assert {k: v for k, v in entries.items() if not k.startswith("..")} == {
        "a": "..data/a",
        "sub": "..data/sub",
    }
    assert (target / "sub" / "b").read_bytes() == b"2"
    assert stat.S_IMODE((target / "sub" / "b").stat().st_mode) == 0o600
    assert stat.S_IMODE((target / "a").stat().st_mode) == 0o644


def test_write_atomic_update_in_place(tmp_path: Path) -> None:
    target = tmp_path / "v"
    write_atomic(target, {"a": (b"1", 0o644), "gone": (b"x", 0o644)})
    old = os.readlink(target / DATA_DIR)
    assert not write_atomic(target, {"a": (b"1", 0o644), "gone": (b"x", 0o644)})
    assert os.readlink(target / DATA_DIR) == old
    assert write_atomic(target, {"a": (b"2", 0o644), "new": (b"n", 0o644)})
    assert (target / "a").read_bytes() == b"2"  # same path, new content
    assert not (target / "old").exists() and not (target / "gone").is_symlink()
    assert not (target / old).exists()  # the previous version is removed
    assert sorted(e for e in os.listdir(target) if not e.startswith("..")) == ["a", "new"]
    assert write_atomic(target, {"a": (b"2", 0o600), "new": (b"n", 0o644)})  # mode change


@pytest.mark.parametrize(
    "path",
    ["/abs", "../up", "a/../../b", "..hidden"],
    ids=["absolute", "dotdot", "nested-dotdot", "dotdot-prefix"],
)
def test_write_atomic_rejects_paths(tmp_path: Path, path: str) -> None:
    with pytest.raises(ConfigError):
        write_atomic(tmp_path / "v", {path: (b"", 0o644)})


# --- configMap / secret / downwardAPI / projected -------------------------------------------


async def test_configmap_volume(manager: VolumeManager, tmp_path: Path) -> None:
    paths = await manager.setup(pod_with({"name": "cfg", "configMap": {"name": "cfg"}}))
    vol = tmp_path / "pod" / "volumes" / CONFIGMAP / "cfg"
    assert paths == {"cfg": vol}
    assert (vol / "a.conf").read_text() == "A"
    assert (vol / "bin").read_bytes() == b"\x00\x01"
    assert os.readlink(vol / "a.conf") == "..data/a.conf"
    assert stat.S_IMODE((vol / "a.conf").stat().st_mode) == 0o644


async def test_configmap_items_and_modes(manager: VolumeManager) -> None:
    vol = {
        "name": "cfg",
        "configMap": {
            "name": "cfg",
            "defaultMode": 0o440,
            "items": [
                {"key": "a.conf", "path": "conf/app.conf"},
                {"key": "b.conf", "path": "b", "mode": 0o600},
            ],
        },
    }
    path = (await manager.setup(pod_with(vol)))["cfg"]
    assert sorted(e for e in os.listdir(path) if not e.startswith("..")) == ["b", "conf"]
    assert (path / "conf" / "app.conf").read_text() == "A"
    assert stat.S_IMODE((path / "conf" / "app.conf").stat().st_mode) == 0o440
    assert stat.S_IMODE((path / "b").stat().st_mode) == 0o600


async def test_secret_volume(manager: VolumeManager, tmp_path: Path) -> None:
    vol = {"name": "s", "secret": {"secretName": "sec", "items": [{"key": "pass", "path": "pw"}]}}
    path = (await manager.setup(pod_with(vol)))["s"]
    assert path == tmp_path / "pod" / "volumes" / SECRET / "s"
    assert (path / "pw").read_text() == "hunter2"
    assert not (path / "user").exists()


MISSING = [
    ({"name": "v", "configMap": {"name": "x"}}, 'configmap "x" not found'),
    ({"name": "v", "secret": {"secretName": "x"}}, 'secret "x" not found'),
    (
        {"name": "v", "configMap": {"name": "cfg", "items": [{"key": "k", "path": "k"}]}},
        "configmap references non-existent config key: k",
    ),
    (
        {"name": "v", "secret": {"secretName": "sec", "items": [{"key": "k", "path": "k"}]}},
        "references non-existent secret key: k",
    ),
    (
        {"name": "v", "projected": {"sources": [{"configMap": {"name": "x"}}]}},
        'configmap "x" not found',
    ),
    (
        {"name": "v", "persistentVolumeClaim": {"claimName": "c"}},
        "volume type persistentVolumeClaim is not supported by this node",
    ),
]


@pytest.mark.parametrize(
    ("vol", "message"),
    MISSING,
    ids=[
        "configmap",
        "secret",
        "configmap-key",
        "secret-key",
        "projected-configmap",
        "unsupported-type",
    ],
)
async def test_setup_errors(manager: VolumeManager, vol: Obj, message: str) -> None:
    with pytest.raises(VolumeError) as err:
        await manager.setup(pod_with(vol))
    assert err.value.volume == "v"
    assert err.value.message == message
    assert err.value.event_message == f'MountVolume.SetUp failed for volume "v" : {message}'


OPTIONAL = [
    {"name": "v", "configMap": {"name": "x", "optional": True}},
    {"name": "v", "secret": {"secretName": "x", "optional": True}},
    {
        "name": "v",
        "configMap": {"name": "cfg", "optional": True, "items": [{"key": "k", "path": "k"}]},
    },
]


@pytest.mark.parametrize("vol", OPTIONAL, ids=["configmap", "secret", "configmap-key"])
async def test_optional_missing_is_empty(manager: VolumeManager, vol: Obj) -> None:
    path = (await manager.setup(pod_with(vol)))["v"]
    assert [e for e in os.listdir(path) if not e.startswith("..")] == []
    assert (path / DATA_DIR).is_symlink()


async def test_refresh_updates_in_place(manager: VolumeManager, lookup: DictLookup) -> None:
    pod = pod_with({"name": "cfg", "configMap": {"name": "cfg"}}, {"name": "e", "emptyDir": {}})
    path = (await manager.setup(pod))["cfg"]
    assert not await manager.refresh(pod)
    lookup.configmaps["ns/cfg"] = {"data": {"a.conf": "A2", "c.conf": "C"}}
    assert await manager.refresh(pod)
    assert (path / "a.conf").read_text() == "A2"
    assert (path / "c.conf").read_text() == "C"
    assert not (path / "b.conf").exists() and not (path / "b.conf").is_symlink()
    assert not await manager.refresh(pod)


async def test_refresh_missing_source_keeps_content(
    manager: VolumeManager, lookup: DictLookup
) -> None:
    pod = pod_with(
        {"name": "cfg", "configMap": {"name": "cfg"}},
        {"name": "s", "secret": {"secretName": "sec"}},
    )
    paths = await manager.setup(pod)
    del lookup.configmaps["ns/cfg"]
    lookup.secrets["ns/sec"] = {"data": {"user": b64("root")}}
    with pytest.raises(VolumeError) as err:
        await manager.refresh(pod)
    assert (err.value.volume, err.value.message) == ("cfg", 'configmap "cfg" not found')
    assert (paths["cfg"] / "a.conf").read_text() == "A"
    assert (paths["s"] / "user").read_text() == "root"  # the other volume was still refreshed


async def test_downward_api_volume(manager: VolumeManager, tmp_path: Path) -> None:
    vol = {
        "name": "info",
        "downwardAPI": {
            "items": [
                {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
                {
                    "path": "mem",
                    "resourceFieldRef": {
                        "containerName": "c",
                        "resource": "limits.memory",
                        "divisor": "1Mi",
                    },
                },
            ]
        },
    }
    pod = pod_with(vol, labels={"b": "2", "a": "1"})
    path = (await manager.setup(pod))["info"]
    assert path == tmp_path / "pod" / "volumes" / DOWNWARD_API / "info"
    assert (path / "labels").read_text() == 'a="1"\nb="2"'
    assert (path / "name").read_text() == "p"
    assert (path / "mem").read_text() == "64"
    assert await manager.refresh(pod_with(vol, labels={"a": "9"}))
    assert (path / "labels").read_text() == 'a="9"'


async def test_projected_volume(manager: VolumeManager, tmp_path: Path) -> None:
    vol = {
        "name": "all",
        "projected": {
            "defaultMode": 0o400,
            "sources": [
                {"configMap": {"name": "cfg", "items": [{"key": "a.conf", "path": "a"}]}},
                {"secret": {"name": "sec", "items": [{"key": "user", "path": "u", "mode": 0o440}]}},
                {
                    "downwardAPI": {
                        "items": [{"path": "ns", "fieldRef": {"fieldPath": "metadata.namespace"}}]
                    }
                },
                {"serviceAccountToken": {"path": "token"}},
                {"secret": {"name": "missing", "optional": True}},
            ],
        },
    }
    path = (await manager.setup(pod_with(vol)))["all"]
    assert path == tmp_path / "pod" / "volumes" / PROJECTED / "all"
    assert {e: (path / e).read_text() for e in os.listdir(path) if not e.startswith("..")} == {
        "a": "A",
        "u": "admin",
        "ns": "ns",
    }
    assert stat.S_IMODE((path / "a").stat().st_mode) == 0o400
    assert stat.S_IMODE((path / "u").stat().st_mode) == 0o440


# --- emptyDir -------------------------------------------------------------------------------


async def test_empty_dir_plain_and_idempotent(manager: VolumeManager, tmp_path: Path) -> None:
    pod = pod_with(
        {"name": "scratch", "emptyDir": {}}, {"name": "mem", "emptyDir": {"medium": "Memory"}}
    )
    paths = await manager.setup(pod)
    assert paths["scratch"] == tmp_path / "pod" / "volumes" / EMPTY_DIR / "scratch"
    assert stat.S_IMODE(paths["scratch"].stat().st_mode) == 0o777
    assert not os.path.ismount(paths["mem"])  # not root: a plain directory
    (paths["scratch"] / "keep").write_text("k")
    assert await manager.setup(pod) == paths
    assert (paths["scratch"] / "keep").read_text() == "k"


@needs_root
async def test_empty_dir_memory_is_tmpfs(root_manager: VolumeManager) -> None:
    pod = pod_with({"name": "mem", "emptyDir": {"medium": "Memory", "sizeLimit": "4Mi"}})
    path = (await root_manager.setup(pod))["mem"]
    assert os.path.ismount(path)
    st = os.statvfs(path)
    assert st.f_blocks * st.f_frsize == 4 * 2**20
    (path / "f").write_text("x")
    await root_manager.setup(pod)  # idempotent: not mounted twice, content kept
    assert (path / "f").read_text() == "x"
    await root_manager.teardown()
    assert not path.exists()
    assert not os.path.ismount(path)


@needs_root
async def test_secret_volume_is_tmpfs_when_root(root_manager: VolumeManager) -> None:
    path = (await root_manager.setup(pod_with({"name": "s", "secret": {"secretName": "sec"}})))["s"]
    assert os.path.ismount(path)
    assert (path / "user").read_text() == "admin"


# --- mounts ---------------------------------------------------------------------------------


@pytest.fixture
async def mounted(manager: VolumeManager, host: Path) -> tuple[Obj, dict[str, Path]]:
    pod = pod_with(
        {"name": "cfg", "configMap": {"name": "cfg"}},
        {"name": "data", "emptyDir": {}},
        {"name": "h", "hostPath": {"path": str(host)}},
    )
    return pod, await manager.setup(pod)


MOUNT_CASES = [
    ({"name": "data", "mountPath": "/data"}, ("data", "", "/data", False)),
    ({"name": "data", "mountPath": "/data", "readOnly": True}, ("data", "", "/data", True)),
    ({"name": "cfg", "mountPath": "/etc/cfg"}, ("cfg", "", "/etc/cfg", True)),
    (
        {"name": "data", "mountPath": "/logs", "subPath": "logs/app"},
        ("data", "logs/app", "/logs", False),
    ),
    ({"name": "data", "mountPath": "/x", "subPathExpr": "$(POD)/x"}, ("data", "p/x", "/x", False)),
    ({"name": "h", "mountPath": "/h", "subPath": "dir"}, ("h", "dir", "/h", False)),
]


@pytest.mark.parametrize(
    ("vm", "want"),
    MOUNT_CASES,
    ids=[
        "rw",
        "read-only",
        "configmap-forced-ro",
        "subpath-created",
        "subpath-expr",
        "hostpath-subpath",
    ],
)
def test_mounts(
    manager: VolumeManager,
    mounted: tuple[Obj, dict[str, Path]],
    vm: Obj,
    want: tuple[str, str, str, bool],
) -> None:
    pod, paths = mounted
    name, sub, container_path, ro = want
    (m,) = manager.mounts(pod, {"name": "c", "volumeMounts": [vm]}, paths, env={"POD": "p"})
    host = paths[name] / sub if sub else paths[name]
    assert m == Mount(str(host.resolve()), container_path, ro)
    assert Path(m.host_path).is_dir()


def test_subpath_into_configmap_resolves_file(
    manager: VolumeManager, mounted: tuple[Obj, dict[str, Path]]
) -> None:
    pod, paths = mounted
    vm = {"name": "cfg", "mountPath": "/etc/a.conf", "subPath": "a.conf"}
    (m,) = manager.mounts(pod, {"name": "c", "volumeMounts": [vm]}, paths)
    assert m.read_only and Path(m.host_path).read_text() == "A"
    assert f"/{DATA_DIR}/" not in m.host_path and Path(m.host_path).parent.name.startswith("..2")


BAD_MOUNTS = [
    ({"name": "nope", "mountPath": "/x"}, 'cannot find volume "nope" to mount into container "c"'),
    (
        {"name": "data", "mountPath": "/x", "subPath": "/etc"},
        "error SubPath `/etc` must not be an absolute path",
    ),
    (
        {"name": "data", "mountPath": "/x", "subPath": "a/../../b"},
        "unable to provision SubPath `a/../../b`: must not contain '..'",
    ),
    (
        {"name": "data", "mountPath": "/x", "subPathExpr": "$(UP)/b"},
        "unable to provision SubPath `../b`: must not contain '..'",
    ),
]


@pytest.mark.parametrize(
    ("vm", "message"), BAD_MOUNTS, ids=["missing-volume", "absolute", "dotdot", "dotdot-expr"]
)
def test_mount_errors(
    manager: VolumeManager, mounted: tuple[Obj, dict[str, Path]], vm: Obj, message: str
) -> None:
    pod, paths = mounted
    with pytest.raises(ConfigError) as err:
        manager.mounts(pod, {"name": "c", "volumeMounts": [vm]}, paths, env={"UP": ".."})
    assert err.value.message == message


def test_subpath_symlink_escape_rejected(
    manager: VolumeManager, mounted: tuple[Obj, dict[str, Path]], tmp_path: Path
) -> None:
    pod, paths = mounted
    (paths["data"] / "evil").symlink_to(tmp_path)
    with pytest.raises(ConfigError, match="not within volume path"):
        manager.mounts(
            pod,
            {"name": "c", "volumeMounts": [{"name": "data", "mountPath": "/x", "subPath": "evil"}]},
            paths,
        )


# --- teardown -------------------------------------------------------------------------------


async def test_teardown_removes_volumes_only(
    manager: VolumeManager, host: Path, tmp_path: Path
) -> None:
    pod = pod_with(
        {"name": "cfg", "configMap": {"name": "cfg"}},
        {"name": "h", "hostPath": {"path": str(host / "dir")}},
    )
    await manager.setup(pod)
    (tmp_path / "pod" / "logs").mkdir()
    await manager.teardown(tmp_path / "pod")
    assert not (tmp_path / "pod" / "volumes").exists()
    assert (tmp_path / "pod" / "logs").is_dir() and (host / "dir").is_dir()
    await manager.teardown()  # idempotent


@needs_root
async def test_unmount_pod_volumes_after_the_agent_left_them(
    tmp_path: Path, lookup: DictLookup
) -> None:
    # what ``corral agent --reset`` does for pods an agent stopped before tearing down
    pods = tmp_path / "pods"
    vm = VolumeManager(pods / "uid-1", lookup, is_root=True)
    path = (await vm.setup(pod_with({"name": "s", "secret": {"secretName": "sec"}})))["s"]
    assert os.path.ismount(path)
    assert await unmount_pod_volumes(pods) == 1
    assert not os.path.ismount(path)
    assert await unmount_pod_volumes(pods) == 0


def test_write_atomic_files_are_private_until_their_mode_is_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A secret or token file is created with the umask's mode before its chmod: its
    directory stays 0700 until then, so no other user can read it in between."""
    seen: list[int] = []
    real = Path.write_bytes

    def write_bytes(self: Path, data: bytes) -> int:
        seen.append(self.parent.stat().st_mode & 0o777)
        return real(self, data)

    monkeypatch.setattr(Path, "write_bytes", write_bytes)
    target = tmp_path / "v"
    assert write_atomic(target, {"token": (b"secret", 0o600)})
    assert seen == [0o700]
    data = target / os.readlink(target / "..data")
    assert data.stat().st_mode & 0o777 == 0o755
    assert (target / "token").stat().st_mode & 0o777 == 0o600
