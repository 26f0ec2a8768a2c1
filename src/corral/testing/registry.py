"""A local image registry and tiny busybox images, for tests of the image store.

``LocalRegistry.start(workdir)`` runs Debian's ``docker-registry`` (distribution 2.x) on a
free 127.0.0.1 port with its storage in ``workdir``; ``.host`` is ``127.0.0.1:PORT`` and
``.stop()`` ends it. ``build_busybox`` makes an OCI image layout holding one image made
from the static busybox binary (``umoci init/new/insert/config``), ``build_whiteout``
one with a whiteout and an opaque directory in its upper layer, and ``push`` copies a
layout's image to the registry with skopeo. ``missing_tools()`` says why tests must skip.

Everything here is synchronous and blocking (pytest fixtures call it); images are a
couple of MB and build in tens of milliseconds.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

from corral.agent.images.demo import BUSYBOX, build_busybox
from corral.agent.images.demo import run_tool as _run
from corral.testing.process import free_port

TOOLS = ("skopeo", "umoci", "docker-registry")


def missing_tools() -> str | None:
    """Why the image tests cannot run here, or None when they can."""
    absent = [t for t in TOOLS if shutil.which(t) is None]
    if not Path(BUSYBOX).exists():
        absent.append(f"{BUSYBOX} (busybox-static)")
    if absent:
        return (
            "image tests need "
            + ", ".join(absent)
            + " (apt-get install skopeo umoci docker-registry busybox-static)"
        )
    return None


@dataclass
class LocalRegistry:
    """A running ``docker-registry serve`` on 127.0.0.1."""

    proc: subprocess.Popen[bytes]
    host: str  # "127.0.0.1:PORT"
    storage: Path
    log: Path

    @classmethod
    def start(cls, workdir: Path, port: int | None = None, timeout: float = 15.0) -> Self:
        """Start a registry storing into ``workdir/storage``; returns once it answers.
        Its log (with the access log: one line per request) is ``.log``."""
        port = port or free_port()
        workdir.mkdir(parents=True, exist_ok=True)
        storage = workdir / "storage"
        config = workdir / f"registry-{port}.yml"
        config.write_text(
            "version: 0.1\n"
            "log:\n  level: warn\n"
            f"storage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    enabled: true\n"
            f"http:\n  addr: 127.0.0.1:{port}\n"
        )
        log = workdir / f"registry-{port}.log"
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                ["docker-registry", "serve", str(config)],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        reg = cls(proc, f"127.0.0.1:{port}", storage, log)
        try:
            reg._wait_ready(timeout)
        except BaseException:
            reg.stop()
            raise
        return reg

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"docker-registry exited: {self.log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"http://{self.host}/v2/", timeout=2) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"docker-registry on {self.host} did not answer")
            time.sleep(0.02)

    def requests(self, fragment: str) -> int:
        """How many requests so far had ``fragment`` (e.g. ``"GET /v2/a/manifests/``) in
        their access-log line."""
        lines = self.log.read_text().splitlines()
        return sum(1 for ln in lines if ln.startswith("127.0.0.1 - ") and fragment in ln)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def build_whiteout(layout: Path, tag: str = "whiteout") -> Path:
    """A busybox image plus two layers: the lower one adds ``/a/x``, ``/a/keep``,
    ``/b/y``; the upper one whites out ``/a/x`` and replaces ``/b`` by an opaque
    directory holding only ``/b/z``. Unpacked, the root has ``/a/keep`` and ``/b/z`` only."""
    build_busybox(layout, tag)
    image = f"{layout}:{tag}"
    with tempfile.TemporaryDirectory() as tmp:
        lower = Path(tmp) / "lower"
        for rel, text in (("a/x", "x"), ("a/keep", "keep"), ("b/y", "y")):
            (lower / rel).parent.mkdir(parents=True, exist_ok=True)
            (lower / rel).write_text(text)
        _run("umoci", "insert", "--no-history", "--image", image, str(lower), "/")
        _run("umoci", "insert", "--no-history", "--image", image, "--whiteout", "/a/x")
        upper_b = Path(tmp) / "upper-b"
        upper_b.mkdir()
        (upper_b / "z").write_text("z")
        _run("umoci", "insert", "--no-history", "--image", image, "--opaque", str(upper_b), "/b")
    return layout


def push(layout: Path, tag: str, dest: str) -> str:
    """Copy ``layout:tag`` to ``dest`` (``127.0.0.1:PORT/repo:tag``) over plain HTTP;
    returns the manifest digest the registry holds."""
    with tempfile.TemporaryDirectory() as tmp:
        digestfile = Path(tmp) / "digest"
        _run(
            "skopeo", "--insecure-policy", "copy", "--quiet", "--dest-tls-verify=false",
            "--digestfile", str(digestfile), f"oci:{layout}:{tag}", f"docker://{dest}",
        )  # fmt: skip
        return digestfile.read_text().strip()


def export(layout: Path, tag: str, dest: str) -> None:
    """Copy ``layout:tag`` to another skopeo destination, e.g. ``oci-archive:F.tar:REF``
    or ``docker-archive:F.tar:REF`` (what ``docker save`` makes)."""
    _run("skopeo", "--insecure-policy", "copy", "--quiet", f"oci:{layout}:{tag}", dest)
