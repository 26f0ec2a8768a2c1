"""The pure parts of leader election: the fence header, the timers' rule, the flags.

The elector's behaviour against a real server is in
``tests/integration/test_leader_election.py``.
"""

from __future__ import annotations

import argparse

import pytest

from corral.client import election
from corral.client.leaderelection import LeaderElector, format_fence, parse_fence
from corral.client.rest import Client, KubeConfig


def test_fence_round_trips_and_rejects_garbage() -> None:
    value = format_fence("kube-system", "kube-scheduler", "host_1b2c", 7)
    assert value == "kube-system/kube-scheduler;host_1b2c;7"
    assert parse_fence(value) == ("kube-system", "kube-scheduler", "host_1b2c", 7)
    for bad in ("", "a;b", "ns/name;holder;x", "name;holder;1", "ns/name;;1", "a/b;c;1;2"):
        assert parse_fence(bad) is None, bad


def test_timers_must_be_ordered() -> None:
    client = Client(KubeConfig("https://127.0.0.1:1", "", None))
    with pytest.raises(ValueError, match="retry period < renew deadline < lease duration"):
        LeaderElector(client, "x", "me", lease_duration=10, renew_deadline=10, retry_period=2)
    e = LeaderElector(client, "x", "", lease_duration=2, renew_deadline=1.5, retry_period=0.3)
    assert e.identity  # hostname_uuid4 when none is given
    assert not e.is_leader and e.leader_advertise() is None


def parse(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    election.add_flags(p, "work")
    return p.parse_args(argv)


@pytest.mark.parametrize(
    ("argv", "want"),
    [
        ((), None),
        (("--leader-elect",), True),
        (("--leader-elect=true",), True),
        (("--leader-elect=false",), False),
        (("--leader-elect", "false"), False),
    ],
)
def test_leader_elect_flag(argv: tuple[str, ...], want: bool | None) -> None:
    assert parse(*argv).leader_elect is want


def test_election_argv_is_what_the_flags_parse() -> None:
    argv = election.election_argv(True, 4.0, 3.0, 1.0)
    args = parse(*argv)
    assert args.leader_elect is True
    assert election.timers(args) == (4.0, 3.0, 1.0)
    assert parse(*election.election_argv(False, 15, 10, 2)).leader_elect is False
    assert election.check(parse("--leader-elect", "--leader-elect-renew-deadline", "20"))
    assert election.check(parse("--leader-elect")) is None
