"""``corral agent``'s periods are positive numbers: ``--node-lease-duration-seconds``, as
the kubelet's validation of ``nodeLeaseDurationSeconds`` wants (0 would renew the Lease in
a busy loop and let it expire at once), and ``--volume-refresh-seconds`` (0 would re-read
the pods' volumes in a busy loop)."""

from __future__ import annotations

from pathlib import Path

import pytest

from corral.cli import agent


@pytest.mark.parametrize("flag", ["--node-lease-duration-seconds", "--volume-refresh-seconds"])
@pytest.mark.parametrize("value", ["0", "-4"])
def test_a_period_that_is_not_positive_is_refused(
    flag: str, value: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # (--pod-cidr auto without --cluster-cidr: refused a little later, should the check miss)
    argv = [flag, value, "--runtime", "process"]
    argv += ["--data-dir", str(tmp_path / "data"), "--pod-cidr", "auto"]
    with pytest.raises(SystemExit):
        agent.main(argv)
    assert f"{flag} must be greater than 0" in capsys.readouterr().err
