"""``corral scheduler`` and ``corral why``: the scheduler's two commands.

``corral scheduler --kubeconfig FILE [--config FILE] [--scheduler-name NAME]`` runs
``scheduler.Scheduler`` against any API server (``corral server`` starts one itself, in
a child process, unless ``--no-scheduler``). ``corral why pod/NAME [-n NS]`` prints why
a pod is pending: the scheduler's Kubernetes message and Corral's nearest miss, read
from the pod's condition and latest FailedScheduling Event. Called by ``cli.main``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from corral.api.errors import StatusError
from corral.client import election
from corral.client.rest import EVENTS, PODS, Client, add_server_flag
from corral.scheduler import DEFAULT_SCHEDULER, FAILED_SCHEDULING, MAX_IN_FLIGHT
from corral.util import eventloop
from corral.util.gc_tuning import settling
from corral.util.stopping import run_until_stopped

if TYPE_CHECKING:
    from corral.scheduler.framework import Profile

Obj = dict[str, Any]
log = logging.getLogger("corral.scheduler")

#: the scheduler's connections beyond its bindings: its watches (pods, nodes, priority
#: and storage classes, claims, volumes), its Events and its leader election
WATCH_CONNECTIONS = 16
#: the Mesos master's authentication realms (``mesos/auth.py``): flag suffix, what
AUTH_REALMS = (
    ("frameworks", "the scheduler API (/api/v1/scheduler)"),
    ("readwrite", "the operator API (/api/v1)"),
    ("readonly", "the read-only endpoints (/state, /metrics/snapshot, /corral/...)"),
)
#: how the scheduler appends the nearest miss to Kubernetes' text in its Event
NEAREST_OPEN = "(nearest miss: "


def default_kubeconfig() -> str:
    env = os.environ.get("KUBECONFIG", "")
    if env:
        return env.split(os.pathsep)[0]
    root = Path("/var/lib/corral") if os.geteuid() == 0 else Path.home() / ".corral"
    return str(root / "kubeconfig")


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("scheduler", help="run the scheduler against an API server")
    p.add_argument("--kubeconfig", default=None, help="how to reach the API server")
    add_server_flag(p)
    p.add_argument("--config", default=None, help="KubeSchedulerConfiguration file")
    p.add_argument("--scheduler-name", default=DEFAULT_SCHEDULER, help="pods it places")
    p.add_argument("--max-in-flight", type=int, default=MAX_IN_FLIGHT, help="concurrent bindings")
    p.add_argument("--log-level", default="INFO")
    p.add_argument("--exit-on-stdin-eof", action="store_true", help=argparse.SUPPRESS)
    p.add_argument(
        "--mesos-port",
        type=int,
        default=0,
        help="also serve the Mesos master API on this port (0: off); offers and pods "
        "share this scheduler's node table",
    )
    p.add_argument("--mesos-bind", default="127.0.0.1", help="address of the Mesos master API")
    add_mesos_flags(p)
    election.add_flags(p, "the scheduler and its Mesos master")
    m = sub.add_parser(
        "mesos-master",
        help="run the Mesos master (offers under DRF) with the scheduler it shares placement with",
        description="The Mesos master API and its allocator, in one process with the Kubernetes "
        "scheduler (they own placement together): point it at a `corral server --no-scheduler`.",
    )
    m.add_argument("--kubeconfig", default=None, help="how to reach the API server")
    add_server_flag(m)
    m.add_argument("--port", type=int, default=5050, help="Mesos master API port")
    m.add_argument("--bind", default="127.0.0.1", help="address to listen on")
    m.add_argument("--config", default=None, help="KubeSchedulerConfiguration file")
    m.add_argument("--scheduler-name", default=DEFAULT_SCHEDULER, help=argparse.SUPPRESS)
    m.add_argument("--max-in-flight", type=int, default=MAX_IN_FLIGHT, help=argparse.SUPPRESS)
    m.add_argument("--log-level", default="INFO")
    m.add_argument("--exit-on-stdin-eof", action="store_true", help=argparse.SUPPRESS)
    add_mesos_flags(m)
    election.add_flags(m, "the Mesos master and its scheduler")
    w = sub.add_parser("why", help="explain why a pod is not scheduled")
    w.add_argument("target", help="pod/NAME (or NAME)")
    w.add_argument("-n", "--namespace", default="default")
    w.add_argument("--kubeconfig", default=None)


async def _run_scheduler(args: argparse.Namespace, profile: Profile) -> None:
    await run_until_stopped(
        serve_scheduler(args, profile, settle=True),
        name="scheduler",
        exit_on_stdin_eof=args.exit_on_stdin_eof,
    )


async def serve_scheduler(
    args: argparse.Namespace, profile: Profile, *, settle: bool = False
) -> None:
    """The scheduler (and, with a Mesos port, the master) until cancelled. It installs no
    signal handlers, so ``corral up`` runs it inside the API server's process too.
    ``settle``: a process of its own, whose collector is set up once the scheduler's
    informers have synced (``util/gc_tuning.py``)."""
    client = Client.from_kubeconfig(
        args.kubeconfig or default_kubeconfig(),
        servers=getattr(args, "server", ""),
        user_agent="corral-scheduler",
        connections=args.max_in_flight + WATCH_CONNECTIONS,
    )
    try:
        from corral.scheduler.scheduler import Scheduler

        sched = Scheduler(
            client, name=args.scheduler_name, profile=profile, max_in_flight=args.max_in_flight
        )
        await _placement(sched, client, args, settle)
    finally:
        await client.close()


def allocator_config(args: argparse.Namespace) -> Any:
    """The allocator's settings from the Mesos flags (``add_mesos_flags``)."""
    from corral.offers.model import AllocatorConfig  # not allocator.py: numpy waits

    roles: dict[str, str] = {}
    for item in args.namespace_role or []:
        ns, sep, role = item.partition("=")
        if not sep or not ns or not role:
            raise ValueError(f"--namespace-role {item!r}: want NAMESPACE=ROLE")
        roles[ns] = role
    return AllocatorConfig(
        interval=args.allocation_interval,
        offer_timeout=args.offer_timeout,
        kubernetes_role=args.kubernetes_role,
        namespace_roles=roles,
    )


def _positive_seconds(text: str) -> float:
    value = float(text)
    if not value > 0:  # 0 would resend every unacknowledged update once a second forever
        raise argparse.ArgumentTypeError(f"want a positive number of seconds, got {text}")
    return value


def add_mesos_flags(p: argparse.ArgumentParser) -> None:
    """Allocator flags, shared by ``corral scheduler``, ``mesos-master``, ``server``, ``up``."""
    p.add_argument(
        "--kubernetes-role",
        default="kubernetes",
        help="the DRF role Kubernetes pods count toward (default: kubernetes)",
    )
    p.add_argument(
        "--namespace-role",
        action="append",
        metavar="NAMESPACE=ROLE",
        help="pods of NAMESPACE count toward ROLE instead (repeatable)",
    )
    p.add_argument(
        "--offer-timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="rescind offers outstanding this long (default: never, as Mesos)",
    )
    p.add_argument(
        "--allocation-interval", type=float, default=1.0, metavar="SECONDS", help="DRF cycle"
    )
    p.add_argument(
        "--status-update-retry",
        type=_positive_seconds,
        default=10.0,
        metavar="SECONDS",
        help="resend an unacknowledged task status update after this long, doubling up to "
        "10 min (default: 10, as a Mesos agent's status update manager)",
    )
    for realm, what in AUTH_REALMS:
        p.add_argument(
            f"--authenticate-http-{realm}",
            action=argparse.BooleanOptionalAction,
            default=True,
            help=f"Mesos master: require HTTP basic credentials (a Corral user and its token) "
            f"and RBAC on {what} (default: on)",
        )


def mesos_flag_args(args: argparse.Namespace) -> list[str]:
    """The Mesos flags of ``args`` as a command line (``corral server`` -> its scheduler)."""
    out = ["--kubernetes-role", args.kubernetes_role]
    out += ["--allocation-interval", str(args.allocation_interval)]
    out += ["--status-update-retry", str(args.status_update_retry)]
    for item in args.namespace_role or []:
        out += ["--namespace-role", item]
    if args.offer_timeout is not None:
        out += ["--offer-timeout", str(args.offer_timeout)]
    for realm, _ in AUTH_REALMS:
        if not getattr(args, f"authenticate_http_{realm}", True):
            out.append(f"--no-authenticate-http-{realm}")
    return out


def master_auth(client: Client, args: argparse.Namespace) -> Any:
    """The Mesos master's ``MasterAuth`` (``mesos/auth.py``) from the flags; None when
    every realm is open."""
    flags = {r: getattr(args, f"authenticate_http_{r}", True) for r, _ in AUTH_REALMS}
    if not any(flags.values()):
        return None
    from corral.client.reviews import Reviewer
    from corral.mesos.auth import MasterAuth

    return MasterAuth(Reviewer(client), **flags)


async def _placement(
    sched: Any, client: Client, args: argparse.Namespace, settle: bool = False
) -> None:
    """The scheduler, and with a Mesos port the allocator and master over its table."""
    run = settling(sched.run, sched.ready) if settle else sched.run
    port = getattr(args, "mesos_port", 0)
    if args.command == "mesos-master":
        port = args.port
    bind = args.bind if args.command == "mesos-master" else args.mesos_bind
    # the Lease kube-scheduler: the scheduler and the master's state and offers run only
    # while holding it; the master's HTTP listener answers at once (a standby's answers:
    # mesos/http.py)
    advertise = {"mesos": election.advertised(bind, port)} if port else None
    elected = election.elector(client, args, args.command, advertise)
    if not port:
        await election.run_elected(elected, run)
        return
    from aiohttp import web

    from corral.mesos.http import build_app
    from corral.mesos.master import Master
    from corral.offers.allocator import Allocator

    allocator = Allocator(sched.table, sched.clock, allocator_config(args))
    master = Master(
        client,
        sched,
        allocator,
        hostname=bind,
        port=port,
        interval=args.allocation_interval,
        status_update_retry=args.status_update_retry,
    )
    app = build_app(master, master_auth(client, args))
    if elected is not None:
        from corral.util.leadership import LEADERSHIP

        app[LEADERSHIP] = elected
    runner = web.AppRunner(
        app,
        handler_cancellation=True,
        access_log=None,
        shutdown_timeout=2.0,
    )
    await runner.setup()
    try:
        try:
            await web.TCPSite(runner, bind, port, backlog=1024).start()
        except OSError as e:
            # the Kubernetes side keeps working; say plainly why Mesos is not there
            log.error("Mesos master: cannot listen on %s:%d: %s (use --mesos-port)", bind, port, e)
            await election.run_elected(elected, run)
            return
        log.info("Mesos master API on http://%s:%d", bind, port)

        async def placement() -> None:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(run(), name="scheduler")
                tg.create_task(master.run(), name="mesos-master")

        await election.run_elected(elected, placement)
    finally:
        master.close_streams()
        await runner.cleanup()


def run_scheduler(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        from corral.scheduler import config

        cfg = config.load(args.config) if args.config else config.SchedulerConfig()
        profile = cfg.profile(args.scheduler_name)
    except config.ConfigError as e:
        print(f"corral scheduler: {e}", file=sys.stderr)
        return 2
    try:
        allocator_config(args)
    except ValueError as e:
        print(f"corral {args.command}: {e}", file=sys.stderr)
        return 2
    bad = election.check(args)
    if bad:
        print(f"corral {args.command}: {bad}", file=sys.stderr)
        return 2
    from corral.client.leaderelection import EXIT_LEADERSHIP_LOST, LeadershipLost

    try:
        eventloop.run(lambda: _run_scheduler(args, profile))
    except LeadershipLost as e:  # as kube-scheduler: exit, to start afresh as a standby
        log.error("%s", e)
        return EXIT_LEADERSHIP_LOST
    return 0


# --- corral why ---------------------------------------------------------------------------------
async def explain(client: Client, namespace: str, name: str) -> list[str]:
    """The lines ``corral why`` prints for one pod."""
    pod = await client.get(PODS, name, namespace)
    spec = pod.get("spec") or {}
    if spec.get("nodeName"):
        return [f"pod/{name} is scheduled on node {spec['nodeName']}"]
    conds = (pod.get("status") or {}).get("conditions") or []
    cond = next((c for c in conds if c.get("type") == "PodScheduled"), None)
    uid = pod["metadata"].get("uid", "")
    events = await client.list(
        EVENTS,
        namespace,
        field_selector=f"involvedObject.name={name},reason={FAILED_SCHEDULING}",
    )
    mine = [
        e for e in events.get("items") or [] if (e.get("involvedObject") or {}).get("uid") == uid
    ]
    mine.sort(key=lambda e: (e.get("lastTimestamp") or "", e.get("count") or 0))
    message = (cond or {}).get("message") or ""
    event_msg = (mine[-1].get("message") or "") if mine else ""
    if not message and not event_msg:
        who = spec.get("schedulerName") or DEFAULT_SCHEDULER
        return [f"pod/{name} is pending: {who} has not reported on it yet"]
    lines = [f"pod/{name}: {message or event_msg}"]
    if event_msg and message and event_msg.startswith(message):
        nearest = event_msg[len(message) :].strip()
        if nearest.startswith(NEAREST_OPEN) and nearest.endswith(")"):
            nearest = nearest[len(NEAREST_OPEN) : -1]
        if nearest:
            lines.append(f"nearest miss: {nearest}")
    nominated = (pod.get("status") or {}).get("nominatedNodeName")
    if nominated:
        lines.append(f"nominated to node {nominated} (waiting for preempted pods to go)")
    return lines


async def _why(args: argparse.Namespace, name: str) -> int:
    client = Client.from_kubeconfig(args.kubeconfig or default_kubeconfig())
    try:
        lines = await explain(client, args.namespace, name)
    except StatusError as e:
        print(f"Error from server ({e.reason}): {e.message}", file=sys.stderr)
        return 1
    finally:
        await client.close()
    print("\n".join(lines))
    return 0


def why(args: argparse.Namespace) -> int:
    from corral.cli import mesos as mesos_cli

    fkind, _, who = args.target.partition("/")
    if fkind in mesos_cli.FRAMEWORK_KINDS and who:
        return mesos_cli.why_framework(args, who)
    if fkind in ("job", "jobs", "chronosjob", "chj") and who:
        from corral.cli import chronos as chronos_cli

        return chronos_cli.why_job(args, who)
    if fkind in ("app", "apps", "mapp") and who:
        from corral.cli import marathon as marathon_cli

        return marathon_cli.why_app(args, who)
    kind, _, name = args.target.rpartition("/")
    if kind not in ("", "pod", "pods", "po") or not name:
        print(f"corral why: want pod/NAME, got {args.target!r}", file=sys.stderr)
        return 2
    return asyncio.run(_why(args, name))
