"""The demo and test images carry every applet of the host's busybox (``images/demo.py``)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from corral.agent.images.demo import BUSYBOX, _busybox_tree, host_applets

pytestmark = pytest.mark.skipif(not Path(BUSYBOX).exists(), reason=f"needs {BUSYBOX}")


def test_every_host_applet_is_linked(tmp_path: Path) -> None:
    listed = subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True, check=True)
    wanted = set(listed.stdout.split()) - {"busybox"}
    assert {"tar", "sh", "seq", "gzip", "uptime", "sha256sum"} <= wanted
    root = tmp_path / "rootfs"
    _busybox_tree(root, host_applets())
    linked = {p.name for p in (root / "bin").iterdir() if p.is_symlink()}
    assert linked == wanted
    assert all((root / "bin" / a).resolve() == (root / "bin" / "busybox") for a in linked)
