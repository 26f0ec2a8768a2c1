"""``corral agent --node-lease-duration-seconds``: a positive number, as the kubelet's
validation of ``nodeLeaseDurationSeconds`` wants (0 would renew the Lease in a busy loop
and let it expire at once)."""

from __future__ import annotations

from pathlib import Path

import pytest

from corral.cli import agent


@pytest.mark.parametrize("value", ["0", "-4"])
def test_a_lease_duration_that_is_not_positive_is_refused(
    value: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # (--pod-cidr auto without --cluster-cidr: refused a little later, should the check miss)
    argv = ["--node-lease-duration-seconds", value, "--runtime", "process"]
    argv += ["--data-dir", str(tmp_path / "data"), "--pod-cidr", "auto"]
    with pytest.raises(SystemExit):
        agent.main(argv)
    assert "--node-lease-duration-seconds must be greater than 0" in capsys.readouterr().err
