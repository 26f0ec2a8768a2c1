"""``corral up``'s demo image: an image left by an older Corral (fewer applets, no
``tar`` for ``kubectl cp``) is built and imported again; a current one is kept."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

from corral.agent.images.demo import build_busybox, demo_tools_missing, host_applets
from corral.agent.images.store import ImageStore
from corral.cli.up import DEMO_IMAGE, DEMO_LABEL, prepare_agents

pytestmark = pytest.mark.skipif(
    demo_tools_missing() is not None or shutil.which("skopeo") is None,
    reason="needs umoci, skopeo and busybox-static",
)


def test_an_old_demo_image_is_replaced_and_a_current_one_kept(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    build_busybox(tmp_path / "demo-image", "1.35", applets=["sh", "echo", "sleep"])
    old = ImageStore(tmp_path / "agents" / "n1" / "images")
    asyncio.run(old.import_archive(tmp_path / "demo-image", name=DEMO_IMAGE))
    before = old.lookup(DEMO_IMAGE)
    assert before is not None and not (before.rootfs / "bin" / "tar").exists()

    prepare_agents(tmp_path, ["n1"])
    info = ImageStore(tmp_path / "agents" / "n1" / "images").lookup(DEMO_IMAGE)
    assert info is not None and info.digest != before.digest
    assert (info.rootfs / "bin" / "tar").exists()
    assert info.config["Labels"][DEMO_LABEL] == str(len(host_applets()))
    assert "imported for n1" in capsys.readouterr().out

    prepare_agents(tmp_path, ["n1"])  # current: nothing to do
    assert capsys.readouterr().out == ""
