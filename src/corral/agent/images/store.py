"""The node's image store: pull, import and unpack container images, shared by all pods.

The node agent builds one ``ImageStore`` (``ImageStore.from_data_dir``) and, before it
starts a container, awaits ``ensure(image, pullPolicy)``; it hands the returned
``ImageInfo`` to the driver, which overlay-mounts ``info.rootfs`` (read-only, shared by
every container of that image) and applies ``info.config`` (Entrypoint, Cmd, Env...).
``corral image import|pull|list`` (``cli/image.py``) drive the same store from a shell.

The work is done by the field's tools, not by hand: skopeo speaks the registry's
distribution v2 API (auth, retries, manifest lists, schema conversions, docker-archive and
oci-archive) and writes into one OCI image layout; umoci unpacks layers with correct
whiteout and opaque-directory handling. Layout on disk (ROOT = ``<data dir>/images``)::

    ROOT/oci/                  one OCI image layout: blobs/sha256/ content-addressed and
                               shared by all images; index.json tags = normalised refs
    ROOT/unpacked/<hex>/       one per manifest digest, made once, never changed:
        rootfs/                the unpacked layers (read-only by convention)
        image.json             the OCI image config
    ROOT/refs.json             normalised ref -> {digest, size, source}; atomic writes
    ROOT/lock                  flock: one writer (agent or CLI) at a time
    ROOT/policy.json           skopeo trust policy: accept anything (no signatures yet)
    ROOT/registries.conf       empty: the host's containers registries.conf is ignored
    ROOT/tmp/                  skopeo's temp files and unpacks in progress

Writers (pull, import, remove) hold ``ROOT/lock``: skopeo rewrites the layout's
index.json in place, and a kubelet serialises image pulls by default too. ``lookup``
reads only ``refs.json`` and the unpacked directories, so it needs no lock. Concurrent
``ensure`` calls for one reference share one pull.

``ensure`` follows the kubelet's policies::

    Never        present -> info        absent -> ErrImageNeverPull
    IfNotPresent present -> info        absent -> pull
    Always       pull (re-resolve the tag; known blobs are not fetched again)

and raises ``ImagePullError(reason, message)`` with the kubelet's reasons. Back-off
between failed pulls (``ImagePullBackOff``) is ``backoff.PullBackoff``'s, kept per pod
and image by the pod lifecycle as the kubelet keeps it.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import fcntl
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from corral.agent.drivers.base import ImageInfo
from corral.agent.images.archives import archive_sources
from corral.agent.images.errors import (
    ERR_IMAGE_NEVER_PULL,
    ERR_IMAGE_PULL,
    INVALID_IMAGE_NAME,
    ImagePullError,
)
from corral.agent.images.hosts import Endpoint, RegistryHosts
from corral.agent.images.reference import Reference, ReferenceError_, parse_reference

# imagePullPolicy values
ALWAYS = "Always"
IF_NOT_PRESENT = "IfNotPresent"
NEVER = "Never"
POLICIES = (ALWAYS, IF_NOT_PRESENT, NEVER)

_FATAL_MSG = re.compile(r'msg="((?:[^"\\]|\\.)*)"')
_NOT_FOUND = ("manifest unknown", "name unknown", "not found", "repository name not known")


@dataclass(frozen=True)
class ImageRecord:
    """One reference the store knows, as ``list`` and ``corral image list`` show it."""

    ref: str
    digest: str
    size: int  # compressed bytes of the layers
    source: str  # "docker://HOST/REPO:TAG" or the imported file


class _ToolError(Exception):
    def __init__(self, argv: list[str], code: int, stderr: str) -> None:
        self.detail = _tool_message(stderr) or f"{argv[0]} exited with {code}"
        super().__init__(self.detail)


def _tool_message(stderr: str) -> str:
    """skopeo's ``level=fatal msg="..."`` text, else the last line (umoci's error)."""
    found = _FATAL_MSG.findall(stderr)
    if found:
        return str(found[-1]).replace('\\"', '"')
    lines = [ln.strip(" \t\u2a2f\u2022") for ln in stderr.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def _tag_name(ref: Reference) -> str:
    """The layout tag of a reference: the normalised reference itself (the OCI grammar
    for ``org.opencontainers.image.ref.name`` admits ``/ : @``)."""
    return str(ref)


def _write_json_atomic(path: Path, doc: Any) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(doc, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


class ImageStore:
    """Images on this node. Create once per agent; safe for concurrent coroutines and
    for other processes (``corral image``) on the same root."""

    def __init__(
        self,
        root: Path,
        hosts: RegistryHosts | None = None,
        *,
        skopeo: str = "skopeo",
        umoci: str = "umoci",
        timeout: float = 600.0,
    ) -> None:
        self.root = root
        self.hosts = hosts or RegistryHosts()
        self.layout = root / "oci"
        self.timeout = timeout
        self._skopeo = skopeo
        self._umoci = umoci
        self._refs_path = root / "refs.json"
        self._policy = root / "policy.json"
        self._refs_cache: tuple[float, dict[str, dict[str, Any]]] | None = None
        self._configs: dict[str, dict[str, Any]] = {}
        self._inflight: dict[str, asyncio.Task[ImageInfo]] = {}
        self._local_lock: asyncio.Lock | None = None
        for d in (root, root / "unpacked", root / "tmp"):
            d.mkdir(parents=True, exist_ok=True)
        # mirrors come from RegistryHosts only: the host's registries.conf must not add
        # its own rewrites (containers/image reads this variable)
        self._registries_conf = root / "registries.conf"
        if not self._registries_conf.exists():
            self._registries_conf.write_text("# written by corral: no mirrors, no aliases\n")
        if not self._policy.exists():
            # signature verification is out of scope; say so explicitly rather than
            # depend on the host's /etc/containers/policy.json
            _write_json_atomic(self._policy, {"default": [{"type": "insecureAcceptAnything"}]})

    @classmethod
    def from_data_dir(
        cls,
        data_dir: Path,
        mirrors: dict[str, list[str]] | None = None,
        insecure: set[str] | None = None,
    ) -> ImageStore:
        """The agent's store: ``DATA_DIR/images``, mirrors from ``DATA_DIR/certs.d`` too."""
        hosts = RegistryHosts(mirrors, insecure or (), data_dir / "certs.d")
        return cls(data_dir / "images", hosts)

    # -- reading (no lock) ---------------------------------------------------------------

    def _refs(self) -> dict[str, dict[str, Any]]:
        try:
            mtime = self._refs_path.stat().st_mtime_ns
        except FileNotFoundError:
            return {}
        if self._refs_cache is None or self._refs_cache[0] != mtime:
            self._refs_cache = (mtime, json.loads(self._refs_path.read_text()))
        return self._refs_cache[1]

    def _unpacked(self, digest: str) -> Path:
        return self.root / "unpacked" / digest.removeprefix("sha256:")

    def _info(self, ref: str, digest: str) -> ImageInfo | None:
        d = self._unpacked(digest)
        config = self._configs.get(digest)
        if config is None:
            try:
                image = json.loads((d / "image.json").read_text())
            except FileNotFoundError:
                return None
            config = image.get("config") or {}
            self._configs[digest] = config
        return ImageInfo(ref=ref, digest=digest, rootfs=d / "rootfs", config=dict(config))

    def lookup(self, image: str) -> ImageInfo | None:
        """The unpacked image for ``image`` if this node has it, else None. Raises
        ``ImagePullError(InvalidImageName)`` when ``image`` is not a reference."""
        ref = _parse(image)
        rec = self._refs().get(str(ref))
        if rec is None and ref.digest is not None:
            # pinned by digest: any record of this repository with that manifest will do
            for key, r in self._refs().items():
                if r["digest"] == ref.digest and parse_reference(key).name == ref.name:
                    rec = r
                    break
        if rec is None:
            return None
        return self._info(str(ref), rec["digest"])

    def list(self) -> list[ImageRecord]:
        return [
            ImageRecord(ref, r["digest"], int(r.get("size", 0)), str(r.get("source", "")))
            for ref, r in sorted(self._refs().items())
        ]

    # -- ensure / pull ---------------------------------------------------------------------

    async def ensure(self, image: str, policy: str = IF_NOT_PRESENT) -> ImageInfo:
        """Make ``image`` present according to ``policy`` (the caller applies Kubernetes'
        default) and return it unpacked. Raises ``ImagePullError``."""
        if policy not in POLICIES:
            raise ValueError(f"unknown imagePullPolicy {policy!r}")
        ref = _parse(image)
        if policy != ALWAYS:
            info = self.lookup(image)
            if info is not None:
                return info
            if policy == NEVER:
                raise ImagePullError(
                    ERR_IMAGE_NEVER_PULL,
                    f'Container image "{image}" is not present with pull policy of Never',
                )
        return await self._shared_pull(ref)

    async def pull(self, image: str) -> ImageInfo:
        """Pull ``image`` now (``Always``)."""
        return await self.ensure(image, ALWAYS)

    async def _shared_pull(self, ref: Reference) -> ImageInfo:
        key = str(ref)
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._pull(ref), name=f"pull {key}")
            self._inflight[key] = task
            task.add_done_callback(lambda t: self._pull_done(key, t))
        return await asyncio.shield(task)

    def _pull_done(self, key: str, task: asyncio.Task[ImageInfo]) -> None:
        if self._inflight.get(key) is task:
            del self._inflight[key]
        if not task.cancelled():
            task.exception()  # retrieved by the waiters; marks it seen if all went away

    async def _pull(self, ref: Reference) -> ImageInfo:
        endpoints = self.hosts.endpoints(ref.domain, by_digest=ref.digest is not None)
        errors: list[tuple[Endpoint, str]] = []
        async with self._locked():
            for ep in endpoints:
                src = f"docker://{ep.host}/{ref.remote()}"
                argv = ["copy", "--quiet", "--retry-times", "1"]
                if ep.insecure:
                    argv.append("--src-tls-verify=false")
                try:
                    digest = await self._copy(argv, src, _tag_name(ref))
                except _ToolError as e:
                    errors.append((ep, e.detail))
                    continue
                return await self._commit(ref, digest, src)
        raise ImagePullError(ERR_IMAGE_PULL, _pull_message(ref, errors))

    async def _copy(self, argv: builtins.list[str], src: str, tag: str) -> str:
        """skopeo copy SRC into the layout as TAG; returns the stored manifest digest."""
        fd, digestfile = tempfile.mkstemp(dir=self.root / "tmp", prefix="digest-")
        os.close(fd)
        try:
            await self._run(
                self._skopeo,
                "--policy", str(self._policy), "--tmpdir", str(self.root / "tmp"),
                *argv, "--digestfile", digestfile, src, f"oci:{self.layout}:{tag}",
            )  # fmt: skip
            return Path(digestfile).read_text().strip()
        finally:
            os.unlink(digestfile)

    async def _commit(self, ref: Reference, digest: str, source: str) -> ImageInfo:
        """Unpack ``digest`` (once) and record ``ref`` -> it. Holds the lock."""
        manifest = json.loads(self._blob(digest).read_text())
        target = self._unpacked(digest)
        if not (target / "image.json").exists():
            work = Path(tempfile.mkdtemp(dir=self.root / "tmp", prefix="unpack-"))
            try:
                unpack = ["raw", "unpack"] + (["--rootless"] if os.geteuid() != 0 else [])
                await self._run(
                    self._umoci, *unpack, "--image", f"{self.layout}:{_tag_name(ref)}",
                    str(work / "rootfs"),
                )  # fmt: skip
                shutil.copyfile(self._blob(manifest["config"]["digest"]), work / "image.json")
                if target.exists():  # a partial directory from an older crash
                    shutil.rmtree(target)
                os.rename(work, target)
            finally:
                if work.exists():
                    shutil.rmtree(work)
        size = sum(int(layer.get("size", 0)) for layer in manifest.get("layers", []))
        refs = dict(self._refs())
        refs[str(ref)] = {"digest": digest, "size": size, "source": source, "at": time.time()}
        _write_json_atomic(self._refs_path, refs)
        info = self._info(str(ref), digest)
        assert info is not None
        return info

    def _blob(self, digest: str) -> Path:
        algo, _, hexpart = digest.partition(":")
        return self.layout / "blobs" / algo / hexpart

    # -- import ------------------------------------------------------------------------------

    async def import_archive(self, path: Path, name: str | None = None) -> builtins.list[ImageInfo]:
        """Import an OCI layout directory, an OCI archive (tar of a layout) or a
        docker-archive (``docker save``). Each image is named by its annotation
        (``io.containerd.image.name``, or a full ``org.opencontainers.image.ref.name``)
        or ``RepoTags``; ``name`` names a single image (and is required when an image has
        no full name). Raises ``ValueError`` for unusable input, ``ImagePullError``
        (InvalidImageName, ErrImagePull) when a name or the copy fails."""
        sources = archive_sources(path, name)
        out: builtins.list[ImageInfo] = []
        async with self._locked():
            for src, names in sources:
                refs = [_parse(n) for n in names]
                first = _tag_name(refs[0])
                try:
                    digest = await self._copy(["copy", "--quiet"], src, first)
                    for extra in refs[1:]:  # more RepoTags: more layout tags, one copy
                        await self._run(
                            self._umoci, "tag", "--image", f"{self.layout}:{first}",
                            _tag_name(extra),
                        )  # fmt: skip
                except _ToolError as e:
                    raise ImagePullError(
                        ERR_IMAGE_PULL, f"failed to import {src}: {e.detail}"
                    ) from None
                for ref in refs:
                    out.append(await self._commit(ref, digest, str(path)))
        return out

    # -- remove ------------------------------------------------------------------------------

    async def remove(self, image: str) -> bool:
        """Forget ``image``; delete its blobs and unpacked rootfs when no other reference
        uses them. The caller makes sure no container runs from it. False if unknown."""
        ref = _parse(image)
        async with self._locked():
            refs = dict(self._refs())
            rec = refs.pop(str(ref), None)
            if rec is None:
                return False
            _write_json_atomic(self._refs_path, refs)
            with contextlib.suppress(_ToolError):
                await self._run(self._umoci, "rm", "--image", f"{self.layout}:{_tag_name(ref)}")
            if all(r["digest"] != rec["digest"] for r in refs.values()):
                shutil.rmtree(self._unpacked(rec["digest"]), ignore_errors=True)
                self._configs.pop(rec["digest"], None)
                await self._run(self._umoci, "gc", "--layout", str(self.layout))
            return True

    # -- plumbing ---------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _locked(self) -> AsyncIterator[None]:
        """This process's coroutines queue on an asyncio lock; processes on ``flock``."""
        if self._local_lock is None:
            self._local_lock = asyncio.Lock()
        async with self._local_lock:
            fd = os.open(self.root / "lock", os.O_RDWR | os.O_CREAT, 0o644)
            try:
                async with asyncio.timeout(self.timeout):
                    while True:
                        try:
                            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                            break
                        except BlockingIOError:
                            await asyncio.sleep(0.05)
                self._clear_tmp()
                yield
            finally:
                os.close(fd)  # releases the flock

    def _clear_tmp(self) -> None:
        """Remove what a writer that crashed left in ROOT/tmp (only writers use it, one
        at a time, so under the lock everything there is stale)."""
        for p in (self.root / "tmp").iterdir():
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)

    async def _run(self, *argv: str) -> str:
        """Run a tool with a deadline; raise ``_ToolError`` with its stderr's gist."""
        proc = await asyncio.create_subprocess_exec(
            *argv,
            env={**os.environ, "CONTAINERS_REGISTRIES_CONF": str(self._registries_conf)},
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            async with asyncio.timeout(self.timeout):
                out, err = await proc.communicate()
        except BaseException:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            raise
        if proc.returncode != 0:
            raise _ToolError(list(argv), proc.returncode or 0, err.decode(errors="replace"))
        return out.decode(errors="replace")


def _parse(image: str) -> Reference:
    try:
        return parse_reference(image)
    except ReferenceError_ as e:
        raise ImagePullError(INVALID_IMAGE_NAME, str(e)) from None


def _pull_message(ref: Reference, errors: list[tuple[Endpoint, str]]) -> str:
    """containerd's wording: ``failed to pull and unpack image "R": ...``."""
    head = f'failed to pull and unpack image "{ref}"'
    if errors and all(any(s in msg for s in _NOT_FOUND) for _, msg in errors):
        return f'{head}: failed to resolve reference "{ref}": {ref}: not found'
    detail = "; ".join(f"{ep.host}: {msg}" for ep, msg in errors)
    return f'{head}: failed to resolve reference "{ref}": {detail}'
