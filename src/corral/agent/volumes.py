"""Pod volumes on this node: made under the pod's directory, mounted into its containers.

The pod lifecycle (``agent/pods.py``) owns one :class:`VolumeManager` per pod. It calls
``setup`` before the sandbox's first container (and again after an agent restart: setup
is idempotent and keeps emptyDir contents), ``mounts`` for each container's
``ContainerSpec.mounts``, ``refresh`` periodically while the pod runs, and ``teardown``
once every container has stopped. A ``VolumeError`` from ``setup`` leaves the pod in
``ContainerCreating`` with a ``FailedMount`` event (``VolumeError.event_message``); a
``ConfigError`` from ``mounts`` is a ``CreateContainerConfigError``.

Layout, as the kubelet's (``<plugin>`` escaped with ``~``)::

    <pod_dir>/volumes/kubernetes.io~empty-dir/<name>/       plain dir, or tmpfs (Memory)
    <pod_dir>/volumes/kubernetes.io~configmap/<name>/       atomic writer, see below
    <pod_dir>/volumes/kubernetes.io~secret/<name>/          atomic writer, tmpfs when root
    <pod_dir>/volumes/kubernetes.io~downward-api/<name>/    atomic writer, tmpfs when root
    <pod_dir>/volumes/kubernetes.io~projected/<name>/       atomic writer, tmpfs when root
    hostPath                                                the host path itself

Files of configMap, secret, downwardAPI and projected volumes are written like the
kubelet's ``AtomicWriter``, so a running container sees an update all at once::

    <vol>/..2026_11_27_14_03_45.123456789/key     the payload, one dir per version
    <vol>/..data -> ..2026_11_27_14_03_45.123456789   swapped by rename(2)
    <vol>/key -> ..data/key                          what the user sees (top-level names)

A ``persistentVolumeClaim`` volume mounts the host path of the claim's bound
PersistentVolume (``hostPath`` or ``local``), resolved by ``claims.claim_path`` through the
``ClaimLookup`` the manager was given; its ``readOnly`` makes every mount of it read-only.

A projected ``serviceAccountToken`` source is the token the manager's
``sa_token.TokenManager`` has for the pod (a TokenRequest bound to it, cached and
renewed there; ``refresh`` rewrites the file when it changed), with the volume's
``defaultMode`` (the kubelet's 0600-then-``fsGroup`` ownership is not done here); without
a token manager (hollow nodes) such sources are skipped. ``clusterTrustBundle`` sources
are skipped; other volume types (CSI, NFS...) are refused.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import stat
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from corral.agent.claims import ClaimLookup, claim_path
from corral.agent.drivers.base import Mount
from corral.agent.env import expand, field_ref_value, resource_field_value
from corral.agent.objects import (
    ConfigError,
    Obj,
    ObjectLookup,
    VolumeError,
    configmap_files,
    configmap_not_found,
    secret_bytes,
    secret_not_found,
)
from corral.agent.sa_token import TokenError, TokenManager
from corral.api.quantity import parse_quantity, value

EMPTY_DIR = "kubernetes.io~empty-dir"
CONFIGMAP = "kubernetes.io~configmap"
SECRET = "kubernetes.io~secret"
DOWNWARD_API = "kubernetes.io~downward-api"
PROJECTED = "kubernetes.io~projected"

_PLUGINS = {
    "emptyDir": EMPTY_DIR,
    "configMap": CONFIGMAP,
    "secret": SECRET,
    "downwardAPI": DOWNWARD_API,
    "projected": PROJECTED,
}
_WRITTEN = ("configMap", "secret", "downwardAPI", "projected")  # atomic writer, read-only
_MEMORY_BACKED = ("secret", "downwardAPI", "projected")  # tmpfs when root, as the kubelet

DEFAULT_MODE = 0o644
DATA_DIR = "..data"
_DATA_TMP = "..data_tmp"
_MOUNT_TIMEOUT = 10.0
_OCTAL = re.compile(r"\\([0-7]{3})")

Payload = dict[str, tuple[bytes, int]]  # relative path -> (content, mode)


# --- hostPath -------------------------------------------------------------------------------


def check_host_path(path: str, kind: str) -> None:
    """The kubelet's hostPath type check; creates for ``*OrCreate``; ``ConfigError`` else."""
    p = Path(path)
    try:
        st: os.stat_result | None = p.stat()
    except OSError:
        st = None
    if kind == "":
        return
    if kind == "DirectoryOrCreate" and st is None:
        try:
            p.mkdir(mode=0o755, parents=True, exist_ok=True)
        except OSError as e:
            raise ConfigError(f"mkdir {path}: {e.strerror}") from None
        return
    if kind == "FileOrCreate" and st is None:
        try:
            fd = os.open(path, os.O_CREAT | os.O_RDONLY, 0o644)
        except OSError as e:
            raise ConfigError(f"open {path}: {e.strerror}") from None
        os.close(fd)
        return
    checks = {
        "Directory": (stat.S_ISDIR, "a directory"),
        "DirectoryOrCreate": (stat.S_ISDIR, "a directory"),
        "File": (stat.S_ISREG, "a file"),
        "FileOrCreate": (stat.S_ISREG, "a file"),
        "Socket": (stat.S_ISSOCK, "a socket file"),
        "CharDevice": (stat.S_ISCHR, "a character device"),
        "BlockDevice": (stat.S_ISBLK, "a block device"),
    }
    if kind not in checks:
        raise ConfigError(f"{kind} is an invalid volume type")
    test, what = checks[kind]
    if st is None or not test(st.st_mode):
        raise ConfigError(f"hostPath type check failed: {path} is not {what}")


# --- the atomic writer ----------------------------------------------------------------------


def _check_payload_path(rel: str) -> None:
    parts = rel.split("/")
    if not rel or rel.startswith("/") or ".." in parts or rel.startswith(".."):
        raise ConfigError(f"invalid path {rel!r}")


def _read_current(target: Path) -> Payload | None:
    data = target / DATA_DIR
    if not data.is_symlink():
        return None
    root = target / os.readlink(data)
    out: Payload = {}
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            full = Path(dirpath) / f
            out[str(full.relative_to(root))] = (full.read_bytes(), full.stat().st_mode & 0o7777)
    return out


def write_atomic(target: Path, payload: Payload) -> bool:
    """Make ``target`` hold exactly ``payload``; False if it already did.

    Readers never see a mix of versions: the new version is written in full to a fresh
    timestamped directory, then ``..data`` is swapped to it with one ``rename``.
    """
    for rel in payload:
        _check_payload_path(rel)
    target.mkdir(parents=True, exist_ok=True)
    current = _read_current(target)
    top = {rel.split("/")[0] for rel in payload}
    if current == payload:
        _link_visible(target, top)
        return False
    stamp = time.strftime("..%Y_%m_%d_%H_%M_%S.", time.gmtime())
    # private (mkdtemp's 0700) until every file has its mode: a secret or token
    # written before its chmod is never readable to others meanwhile
    new_dir = Path(tempfile.mkdtemp(prefix=stamp, dir=target))
    for rel, (content, mode) in payload.items():
        path = new_dir / rel
        path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        path.write_bytes(content)
        path.chmod(mode & 0o7777)
    new_dir.chmod(0o755)
    old = os.readlink(target / DATA_DIR) if (target / DATA_DIR).is_symlink() else None
    tmp = target / _DATA_TMP
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    tmp.symlink_to(new_dir.name)
    os.replace(tmp, target / DATA_DIR)
    _link_visible(target, top)
    for entry in os.listdir(target):
        if not entry.startswith("..") and entry not in top and (target / entry).is_symlink():
            (target / entry).unlink()
    if old and old != new_dir.name:
        shutil.rmtree(target / old, ignore_errors=True)
    return True


def _link_visible(target: Path, top: set[str]) -> None:
    for name in top:
        link = target / name
        if not link.is_symlink():
            link.symlink_to(f"{DATA_DIR}/{name}")


# --- payloads -------------------------------------------------------------------------------


def _mode(item: Mapping[str, Any], default: int) -> int:
    m = item.get("mode")
    return int(m) if m is not None else default


def _key_payload(
    data: dict[str, bytes],
    items: list[dict[str, Any]] | None,
    default_mode: int,
    optional: bool,
    missing_key: str,
) -> Payload:
    """``configmap.MakePayload`` / ``secret.MakePayload``."""
    if not items:
        return {k: (v, default_mode) for k, v in data.items()}
    out: Payload = {}
    for it in items:
        key = str(it.get("key", ""))
        if key not in data:
            if optional:
                continue
            raise ConfigError(f"{missing_key}: {key}")
        out[str(it.get("path", key))] = (data[key], _mode(it, default_mode))
    return out


class VolumeManager:
    """The volumes of one pod (see the module docstring for the contract)."""

    def __init__(
        self,
        pod_dir: Path,
        lookup: ObjectLookup,
        is_root: bool,
        *,
        node_allocatable: Mapping[str, str] | None = None,
        claims: ClaimLookup | None = None,
        tokens: TokenManager | None = None,
    ) -> None:
        self.pod_dir = Path(pod_dir)
        self.tokens = tokens  # None: serviceAccountToken sources are skipped
        self.claims = claims  # None: persistentVolumeClaim volumes are refused
        self.lookup = lookup
        self.is_root = is_root
        self.node_allocatable = dict(node_allocatable or {})

    def volume_dir(self, plugin: str, name: str) -> Path:
        return self.pod_dir / "volumes" / plugin / name

    # -- setup / refresh ---------------------------------------------------------------------

    async def setup(self, pod: Obj) -> dict[str, Path]:
        """Make every volume of ``pod``; returns volume name -> host path.

        Idempotent. Raises ``VolumeError`` (with ``.volume``) for the first volume that
        cannot be set up; volumes before it stay set up.
        """
        paths: dict[str, Path] = {}
        for vol in (pod.get("spec") or {}).get("volumes") or []:
            name = str(vol.get("name", ""))
            try:
                paths[name] = await self._setup_one(pod, vol)
            except VolumeError:
                raise
            except ConfigError as e:
                raise VolumeError(name, e.message) from None
            except OSError as e:
                raise VolumeError(name, str(e)) from None
        return paths

    async def refresh(self, pod: Obj) -> bool:
        """Rewrite configMap/secret/downwardAPI/projected volumes whose content changed.

        Returns True if any changed. A volume whose source is now missing keeps its old
        content; the first such error is raised (as ``VolumeError``) after the others
        were refreshed.
        """
        changed = False
        first: VolumeError | None = None
        for vol in (pod.get("spec") or {}).get("volumes") or []:
            kind = _kind(vol)
            if kind not in _WRITTEN:
                continue
            name = str(vol.get("name", ""))
            try:
                payload = await self._payload(pod, kind, vol[kind] or {})
                changed |= write_atomic(self.volume_dir(_PLUGINS[kind], name), payload)
            except ConfigError as e:
                first = first or VolumeError(name, e.message)
        if first is not None:
            raise first
        return changed

    async def _setup_one(self, pod: Obj, vol: Obj) -> Path:
        kind = _kind(vol)
        src = vol.get(kind) or {}
        if kind == "hostPath":
            path = str(src.get("path", ""))
            check_host_path(path, str(src.get("type") or ""))
            return Path(path)
        if kind == "persistentVolumeClaim" and self.claims is not None:
            ns = str((pod.get("metadata") or {}).get("namespace") or "default")
            node = str((pod.get("spec") or {}).get("nodeName") or "")
            path, host_type, local = await claim_path(
                self.claims, ns, str(vol.get("name", "")), src, node
            )
            if local and not os.path.exists(path):
                raise ConfigError(f'path "{path}" does not exist')
            check_host_path(path, host_type)
            return Path(path)
        if kind not in _PLUGINS:
            raise ConfigError(f"volume type {kind or '<none>'} is not supported by this node")
        target = self.volume_dir(_PLUGINS[kind], str(vol.get("name", "")))
        if kind == "emptyDir":
            target.mkdir(parents=True, exist_ok=True)
            if src.get("medium") == "Memory" and self.is_root:
                await self._mount_tmpfs(target, self._tmpfs_size(src))
            target.chmod(0o777)
            return target
        # configMap, secret, downwardAPI, projected
        payload = await self._payload(pod, kind, src)
        target.mkdir(parents=True, exist_ok=True)
        if kind in _MEMORY_BACKED and self.is_root:
            await self._mount_tmpfs(target, None)
        write_atomic(target, payload)
        return target

    def _tmpfs_size(self, src: Mapping[str, Any]) -> int | None:
        raw = src.get("sizeLimit") or self.node_allocatable.get("memory")
        if raw is None:
            return None
        try:
            return value(parse_quantity(raw)) or None
        except ValueError as e:
            raise ConfigError(str(e)) from None

    async def _payload(self, pod: Obj, kind: str, src: Mapping[str, Any]) -> Payload:
        ns = str((pod.get("metadata") or {}).get("namespace") or "default")
        default_mode = _mode({"mode": src.get("defaultMode")}, DEFAULT_MODE)
        if kind == "configMap":
            return await self._configmap_payload(ns, src, default_mode)
        if kind == "secret":
            return await self._secret_payload(ns, src, default_mode, "secretName")
        if kind == "downwardAPI":
            return self._downward_payload(pod, src.get("items") or [], default_mode)
        out: Payload = {}
        for source in src.get("sources") or []:
            if (s := source.get("configMap")) is not None:
                out.update(await self._configmap_payload(ns, s, default_mode))
            elif (s := source.get("secret")) is not None:
                out.update(await self._secret_payload(ns, s, default_mode, "name"))
            elif (s := source.get("downwardAPI")) is not None:
                out.update(self._downward_payload(pod, s.get("items") or [], default_mode))
            elif (s := source.get("serviceAccountToken")) is not None and self.tokens is not None:
                try:
                    token = await self.tokens.pod_token(pod, s)
                except TokenError as e:
                    raise ConfigError(str(e)) from None
                out[str(s.get("path") or "token")] = (token.encode(), default_mode)
            # clusterTrustBundle, podCertificate: not supported yet
        return out

    async def _configmap_payload(
        self, ns: str, src: Mapping[str, Any], default_mode: int
    ) -> Payload:
        name = str(src.get("name", ""))
        optional = bool(src.get("optional"))
        cm = await self.lookup.configmap(ns, name)
        if cm is None:
            if optional:
                return {}
            raise ConfigError(configmap_not_found(name))
        return _key_payload(
            configmap_files(cm),
            src.get("items"),
            default_mode,
            optional,
            "configmap references non-existent config key",
        )

    async def _secret_payload(
        self, ns: str, src: Mapping[str, Any], default_mode: int, name_field: str
    ) -> Payload:
        name = str(src.get(name_field, ""))
        optional = bool(src.get("optional"))
        secret = await self.lookup.secret(ns, name)
        if secret is None:
            if optional:
                return {}
            raise ConfigError(secret_not_found(name))
        return _key_payload(
            secret_bytes(secret),
            src.get("items"),
            default_mode,
            optional,
            "references non-existent secret key",
        )

    def _downward_payload(self, pod: Obj, items: list[Obj], default_mode: int) -> Payload:
        out: Payload = {}
        for it in items:
            path = str(it.get("path", ""))
            if (ref := it.get("fieldRef")) is not None:
                text = field_ref_value(pod, str(ref.get("fieldPath", "")))
            elif (ref := it.get("resourceFieldRef")) is not None:
                text = resource_field_value(pod, None, ref, self.node_allocatable)
            else:
                continue
            out[path] = (text.encode(), _mode(it, default_mode))
        return out

    # -- mounts ------------------------------------------------------------------------------

    def mounts(
        self,
        pod: Obj,
        container: Obj,
        paths: Mapping[str, Path],
        env: Mapping[str, str] | None = None,
    ) -> tuple[Mount, ...]:
        """``volumeMounts`` of ``container`` as driver mounts; ``ConfigError`` if invalid.

        ``subPath`` (or ``subPathExpr``, expanded with ``env``) is joined onto the volume
        and created if missing; it may not be absolute, contain ``..`` or resolve (through
        symlinks) outside the volume. configMap, secret, downwardAPI and projected volumes
        are always read-only, as the kubelet mounts them.
        """
        vols = (pod.get("spec") or {}).get("volumes") or []
        kinds = {str(v.get("name", "")): _kind(v) for v in vols}
        claims_ro = {
            str(v.get("name", ""))
            for v in vols
            if (v.get("persistentVolumeClaim") or {}).get("readOnly")
        }
        cname = str(container.get("name", ""))
        out: list[Mount] = []
        for vm in container.get("volumeMounts") or []:
            name = str(vm.get("name", ""))
            if name not in paths:
                raise ConfigError(f'cannot find volume "{name}" to mount into container "{cname}"')
            host = paths[name]
            sub = str(vm.get("subPath") or "")
            if vm.get("subPathExpr"):
                sub = expand(str(vm["subPathExpr"]), env or {})
            if sub:
                host = _sub_path(host, sub, name, cname)
            read_only = bool(vm.get("readOnly")) or kinds.get(name) in _WRITTEN
            read_only = read_only or name in claims_ro
            out.append(Mount(str(host), str(vm.get("mountPath", "")), read_only))
        return tuple(out)

    # -- teardown ----------------------------------------------------------------------------

    async def teardown(self, pod_dir: Path | None = None) -> None:
        """Unmount every tmpfs under ``<pod_dir>/volumes`` and remove that directory.

        Works from disk alone (``/proc/self/mountinfo``), so it also cleans up after an
        agent restart. Raises ``OSError`` if a mount cannot be removed; nothing under it
        is deleted then. hostPath volumes are never touched.
        """
        root = Path(pod_dir or self.pod_dir) / "volumes"
        if not root.exists():
            return
        prefix = str(root.resolve()) + "/"
        for point in sorted(_mount_points(prefix), key=len, reverse=True):
            await _run(["umount", point])
        shutil.rmtree(root)

    async def _mount_tmpfs(self, target: Path, size: int | None) -> None:
        if os.path.ismount(target):
            return
        opts = "mode=0777" if size is None else f"mode=0777,size={size}"
        await _run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(target)])


def _kind(vol: Mapping[str, Any]) -> str:
    for k in vol:
        if k != "name":
            return str(k)
    return ""


def _sub_path(volume: Path, sub: str, name: str, cname: str) -> Path:
    if sub.startswith("/"):
        raise ConfigError(f"error SubPath `{sub}` must not be an absolute path")
    if ".." in sub.split("/"):
        raise ConfigError(f"unable to provision SubPath `{sub}`: must not contain '..'")
    host = volume / sub
    base = volume.resolve()
    if not host.exists() and not host.is_symlink():
        try:
            host.mkdir(mode=base.stat().st_mode & 0o7777, parents=True)
        except OSError:
            raise ConfigError(
                f'failed to create subPath directory for volumeMount "{name}" '
                f'of container "{cname}"'
            ) from None
    real = host.resolve()
    if real != base and base not in real.parents:
        raise ConfigError(f"subpath {str(host)!r} not within volume path {str(base)!r}")
    return real


async def unmount_pod_volumes(pods_dir: Path) -> int:
    """Unmount every volume mount under ``pods_dir`` (``DATA/pods``, after ``clear``):
    ``corral agent --reset`` for the pods an agent left behind (stopped while it was still
    tearing one down), as the kubelet cleans up orphaned pods' volumes. A mount still
    busy is detached lazily. The directories stay. Returns how many were unmounted."""
    prefix = str(pods_dir.resolve()) + "/"
    points = sorted(_mount_points(prefix), key=len, reverse=True)
    for point in points:
        try:
            await _run(["umount", point])
        except OSError:
            await _run(["umount", "-l", point])
    return len(points)


def _mount_points(prefix: str) -> list[str]:
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return []
    out = []
    for line in lines:
        fields = line.split(" ")
        if len(fields) > 4:
            point = _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), fields[4])  # \040: space
            if point.startswith(prefix):
                out.append(point)
    return out


async def _run(argv: list[str]) -> None:
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    try:
        async with asyncio.timeout(_MOUNT_TIMEOUT):
            _, err = await proc.communicate()
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise OSError(f"{' '.join(argv)}: timed out") from None
    if proc.returncode != 0:
        raise OSError(f"{' '.join(argv)}: {err.decode(errors='replace').strip()}")


__all__ = [
    "CONFIGMAP",
    "DATA_DIR",
    "DEFAULT_MODE",
    "DOWNWARD_API",
    "EMPTY_DIR",
    "PROJECTED",
    "SECRET",
    "VolumeManager",
    "check_host_path",
    "unmount_pod_volumes",
    "write_atomic",
]
