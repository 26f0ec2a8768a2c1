"""``corral agent --volume-refresh-seconds``: how often the pods' configMap, secret and
projected volumes are re-read (10 s unless told); a positive number (0 would re-read
them in a busy loop)."""

from __future__ import annotations

from pathlib import Path

import pytest

from corral.agent.pods import VOLUME_REFRESH
from corral.cli import agent


def test_the_default_is_the_agents_own_period() -> None:
    args = agent.build_parser().parse_args([])
    assert args.volume_refresh_seconds == VOLUME_REFRESH == 10.0
    assert (
        agent.build_parser().parse_args(["--volume-refresh-seconds", "1.5"]).volume_refresh_seconds
        == 1.5
    )


@pytest.mark.parametrize("value", ["0", "-1"])
def test_a_refresh_period_that_is_not_positive_is_refused(
    value: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # (--pod-cidr auto without --cluster-cidr: refused a little later, should the check miss)
    argv = ["--volume-refresh-seconds", value, "--runtime", "process"]
    argv += ["--data-dir", str(tmp_path / "data"), "--pod-cidr", "auto"]
    with pytest.raises(SystemExit):
        agent.main(argv)
    assert "--volume-refresh-seconds must be greater than 0" in capsys.readouterr().err
