"""The demo image: busybox from this host (Debian's busybox-static) as a one-layer OCI image.

``corral up`` imports it into each local agent's image store as
``corral.local/busybox:1.35`` so that the README's tour runs with no registry; the test
kit (``corral.testing.registry``) builds its registry images with the same function.
Built with umoci (init, new, insert, config): no hand-written tar or JSON.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

BUSYBOX = "/bin/busybox"


@functools.cache
def host_applets() -> tuple[str, ...]:
    """Every applet of the host's busybox (``busybox --list``): the image links them all
    into ``/bin`` as Docker Hub's busybox does, so ``kubectl cp`` finds ``tar``, and
    scripts their ``seq``, ``gzip``, ``uptime``... ``busybox`` itself is the binary."""
    out = run_tool(BUSYBOX, "--list")
    return tuple(a for a in out.split() if a != "busybox" and "/" not in a)


def demo_tools_missing() -> str | None:
    """Why the demo image cannot be built here, or None."""
    if shutil.which("umoci") is None:
        return "umoci is not installed (apt-get install umoci)"
    if not Path(BUSYBOX).exists():
        return f"{BUSYBOX} is missing (apt-get install busybox-static)"
    return None


def run_tool(*argv: str) -> str:
    res = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({res.returncode}): {res.stderr.strip()}")
    return res.stdout


def _busybox_tree(root: Path, applets: Sequence[str]) -> None:
    (root / "bin").mkdir(parents=True)
    shutil.copy2(BUSYBOX, root / "bin" / "busybox")
    for a in applets:
        (root / "bin" / a).symlink_to("busybox")
    for d in ("tmp", "etc", "proc", "sys", "dev", "root"):
        (root / d).mkdir()
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (root / "etc" / "group").write_text("root:x:0:\n")


def build_busybox(
    layout: Path,
    tag: str = "latest",
    *,
    applets: Sequence[str] | None = None,
    cmd: Sequence[str] = ("sh",),
    entrypoint: Sequence[str] = (),
    env: Sequence[str] = ("PATH=/bin",),
    labels: dict[str, str] | None = None,
) -> Path:
    """Add a one-layer busybox image tagged ``tag`` to the OCI layout ``layout`` (made
    if absent); different ``labels`` give a different manifest digest. ``applets``: the
    links in ``/bin``, by default every one the host's busybox has."""
    if not (layout / "oci-layout").exists():
        run_tool("umoci", "init", "--layout", str(layout))
    image = f"{layout}:{tag}"
    run_tool("umoci", "new", "--image", image)
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "rootfs"
        _busybox_tree(tree, host_applets() if applets is None else applets)
        run_tool("umoci", "insert", "--no-history", "--image", image, str(tree), "/")
    args = ["umoci", "config", "--no-history", "--image", image, "--config.workingdir", "/"]
    args += [f"--config.cmd={c}" for c in cmd] if cmd else ["--clear=config.cmd"]
    args += [f"--config.entrypoint={c}" for c in entrypoint]
    args += [f"--config.env={e}" for e in env]
    args += [f"--config.label={k}={v}" for k, v in (labels or {}).items()]
    run_tool(*args)
    return layout
