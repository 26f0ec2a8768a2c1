"""``corral agent --volume-refresh-seconds``: how often the pods' configMap, secret and
projected volumes are re-read (10 s unless told). That it must be positive is checked
beside the Lease duration, in ``test_node_lease_flag.py``."""

from __future__ import annotations

from corral.agent.pods import VOLUME_REFRESH
from corral.cli import agent


def test_the_default_is_the_agents_own_period() -> None:
    args = agent.build_parser().parse_args([])
    assert args.volume_refresh_seconds == VOLUME_REFRESH == 10.0
    assert (
        agent.build_parser().parse_args(["--volume-refresh-seconds", "1.5"]).volume_refresh_seconds
        == 1.5
    )
