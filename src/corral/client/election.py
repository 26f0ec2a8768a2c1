"""The leader election flags of Corral's elected commands, and running work under them.

(In ``client/`` beside the elector, not in ``cli/``: ``controllers/manager.py`` parses its
own flags and sits below ``cli`` in the layers.)

``corral scheduler`` (with its Mesos master), ``controller-manager``, ``marathon``,
``chronos`` and ``corral server`` (its lifecycle loops) take kube-scheduler's flags:
``--leader-elect[=true|false]``, ``--leader-elect-lease-duration 15``,
``--leader-elect-renew-deadline 10``, ``--leader-elect-retry-period 2``. A component
started alone has election off unless ``--leader-elect`` is given; ``corral server``
turns it on for the components it starts when its datastore is etcd (several servers)
and passes its timers down (``election_argv``).

``run_elected`` runs a component's work while it holds its Lease. When the leadership
is lost the work is cancelled and ``LeadershipLost`` raised: the command exits, as
kube-scheduler and kube-controller-manager do, and its supervisor (``apiserver/children.py``,
systemd) starts it again with fresh state, to campaign as a standby.
"""

from __future__ import annotations

import argparse
import socket
from collections.abc import Awaitable, Callable
from typing import Any

from corral.client.leaderelection import LeaderElector, new_identity
from corral.client.rest import Client

#: the Lease of each elected command (kube-system namespace)
LEASE_NAMES = {
    "scheduler": "kube-scheduler",
    "mesos-master": "kube-scheduler",
    "controller-manager": "kube-controller-manager",
    "marathon": "marathon",
    "chronos": "chronos",
    "server": "corral-apiserver-lifecycle",
}


def _bool(text: str) -> bool:
    low = text.lower()
    if low in ("true", "1", "yes", "on"):
        return True
    if low in ("false", "0", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"want true or false, got {text!r}")


def _seconds(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"want a positive number of seconds, got {text}")
    return value


def add_flags(p: argparse.ArgumentParser, what: str) -> None:
    """kube-scheduler's leader election flags on ``p``; ``what`` says what is elected."""
    p.add_argument(
        "--leader-elect",
        type=_bool,
        nargs="?",
        const=True,
        default=None,
        metavar="true|false",
        help=f"campaign for a Lease and run {what} only while holding it (default: off "
        "alone; corral server turns it on with an etcd datastore)",
    )
    p.add_argument(
        "--leader-elect-lease-duration",
        type=_seconds,
        default=15.0,
        metavar="SECONDS",
        help="how long a standby waits after the last renewal it saw before taking over",
    )
    p.add_argument(
        "--leader-elect-renew-deadline",
        type=_seconds,
        default=10.0,
        metavar="SECONDS",
        help="the leader stops acting when it could not renew for this long (< lease)",
    )
    p.add_argument(
        "--leader-elect-retry-period",
        type=_seconds,
        default=2.0,
        metavar="SECONDS",
        help="how often to renew, and to try to acquire",
    )


def timers(args: argparse.Namespace) -> tuple[float, float, float]:
    return (
        args.leader_elect_lease_duration,
        args.leader_elect_renew_deadline,
        args.leader_elect_retry_period,
    )


def check(args: argparse.Namespace) -> str | None:
    """A one-line complaint about the timers, None when they are usable."""
    lease, renew, retry = timers(args)
    if getattr(args, "leader_elect", None) and not retry < renew < lease:
        return (
            "--leader-elect-retry-period < --leader-elect-renew-deadline < "
            f"--leader-elect-lease-duration is required (got {retry}, {renew}, {lease})"
        )
    return None


def election_argv(enabled: bool, lease: float, renew: float, retry: float) -> list[str]:
    """The flags ``corral server`` passes to an elected child."""
    out = [f"--leader-elect={'true' if enabled else 'false'}"]
    if enabled:
        out += ["--leader-elect-lease-duration", str(lease)]
        out += ["--leader-elect-renew-deadline", str(renew)]
        out += ["--leader-elect-retry-period", str(retry)]
    return out


def advertised(bind: str, port: int) -> str:
    """``host:port`` others reach a listener at (the host's name for a wildcard bind)."""
    host = socket.gethostname() if bind in ("", "0.0.0.0", "::") else bind
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def elector(
    client: Client, args: argparse.Namespace, command: str, advertise: dict[str, str] | None = None
) -> LeaderElector | None:
    """The elector of ``command`` from its flags; None when election is off."""
    if not getattr(args, "leader_elect", None):
        return None
    lease, renew, retry = timers(args)
    return LeaderElector(
        client,
        LEASE_NAMES[command],
        new_identity(),
        lease_duration=lease,
        renew_deadline=renew,
        retry_period=retry,
        advertise=advertise,
    )


async def run_elected(elected: LeaderElector | None, work: Callable[[], Awaitable[Any]]) -> None:
    """``work()`` at once when ``elected`` is None; else only while holding the Lease,
    raising ``LeadershipLost`` when it is lost (the command exits)."""
    if elected is None:
        await work()
        return

    async def lead() -> None:
        await work()

    await elected.run(lead, once=True)
