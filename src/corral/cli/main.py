"""The ``corral`` command: ``corral server``, ``corral up``, ``corral scheduler``, ``corral why``.

``server`` runs the API server and, in a child process, the scheduler (unless
``--no-scheduler``); ``scheduler`` and ``why`` live in ``cli/scheduler.py``. ``up``
starts a local cluster (the API server and the scheduler; controllers and a node agent
join it as they arrive) with its data under ``~/.corral`` (``/var/lib/corral`` as root) and prints how to use kubectl.
Under ``up`` the scheduler, controller manager, Chronos and Marathon run as tasks of the
server's process (``--loops in-process``, ``cli/loops.py``); the agents are children.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from corral.util import eventloop
from corral.util.durations import duration_text
from corral.util.paths import absolute_path

if TYPE_CHECKING:
    from corral.apiserver.server import Server
    from corral.cli.ha import LocalHA
    from corral.storage.datastore import EtcdTLS

# The API server, the scheduler (numpy) and the image tools are imported by the commands
# that use them: ``corral agent`` and ``corral controller-manager`` stay light.


def default_data_dir() -> Path:
    if os.geteuid() == 0:
        return Path("/var/lib/corral")
    return Path.home() / ".corral"


def _server_args(p: argparse.ArgumentParser, data_required: bool) -> None:
    p.add_argument(
        "--data-dir",
        type=absolute_path,
        required=data_required,
        default=None if data_required else default_data_dir(),
        help="where state, certificates and the kubeconfig live",
    )
    p.add_argument("--port", type=int, default=6443, help="Kubernetes API port (HTTPS)")
    p.add_argument("--bind", default="127.0.0.1", help="address to listen on")
    p.add_argument(
        "--advertise-address",
        default="",
        metavar="IP",
        help="the IP the kubernetes Service's endpoints name (default: --bind when it is "
        "one non-loopback IP, else this host's address on its default route)",
    )
    from corral.client import election

    election.add_flags(p, "the lifecycle loops, scheduler, controllers, Marathon and Chronos")
    p.add_argument(
        "--endpoint-reconciler-interval",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="how often this server renews its lease in the kubernetes Service's endpoints",
    )
    p.add_argument(
        "--endpoint-reconciler-ttl",
        type=float,
        default=15.0,
        metavar="SECONDS",
        help="how long after its last renewal a server's address leaves those endpoints",
    )
    p.add_argument(
        "--datastore",
        default=None,
        help="sqlite:///PATH (default DATA_DIR/state.db) or etcd://HOST:PORT[,HOST:PORT...]",
    )
    for what in ("cafile", "certfile", "keyfile"):  # TLS to etcd, as k3s names them
        p.add_argument(
            f"--datastore-{what}",
            type=Path,
            default=None,
            metavar="FILE",
            help=f"etcd client TLS: the {what[:-4]} file (PEM)",
        )
    from corral.cli import ha as ha_cli

    ha_cli.add_join_flags(p, server=data_required)  # --join, --token, --token-file
    p.add_argument("--event-ttl", type=float, default=24 * 3600, help="seconds events are kept")
    p.add_argument(
        "--token-auth-file",
        type=Path,
        default=None,
        metavar="FILE",
        help='static bearer tokens, CSV lines token,user,uid,"group1,group2" (as kube-apiserver)',
    )
    p.add_argument(
        "--encryption-provider-config",
        type=absolute_path,
        default=None,
        metavar="FILE",
        help="EncryptionConfiguration for data at rest, reloaded when it changes (default "
        "DATA_DIR/pki/encryption.yaml, made on first start: Secrets under aesgcm)",
    )
    p.add_argument(
        "--history",
        type=int,
        default=10_000,
        help="revisions kept for watch resumption (older ones answer 410 Expired)",
    )
    p.add_argument(  # API Priority and Fairness (apiserver/flowcontrol.py): seats, summed;
        # upstream's defaults, as flowcontrol.DEFAULT_MAX_* (not imported here: ~0.2 s)
        "--max-requests-inflight",
        type=int,
        default=400,
        help="API Priority and Fairness: seats for non-mutating requests (summed with the next)",
    )
    p.add_argument(
        "--max-mutating-requests-inflight",
        type=int,
        default=200,
        help="API Priority and Fairness: seats for mutating requests (summed with the above)",
    )
    p.add_argument(
        "--request-timeout",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="a request waits in its flow-control queue a quarter of this, then gets 429",
    )
    p.add_argument(
        "--watch-backlog-bytes",
        type=int,
        default=64 * 1024 * 1024,
        metavar="BYTES",
        help="a watch whose client falls this far behind ends with 410 Expired (re-list)",
    )
    p.add_argument("--service-cidr", default="10.96.0.0/12", help="ClusterIP range of Services")
    p.add_argument("--service-node-port-range", default="30000-32767", help="NodePort range")
    p.add_argument("--log-level", default="INFO")
    p.add_argument(
        "--no-scheduler", action="store_true", help="do not start the scheduler beside it"
    )
    p.add_argument(
        "--mesos-port",
        type=int,
        default=0 if data_required else 5050,
        metavar="PORT",
        help="serve the Mesos master API on this port, bound like the API server (0: off)",
    )
    from corral.cli.scheduler import add_mesos_flags

    add_mesos_flags(p)
    p.add_argument(
        "--chronos-port",
        type=int,
        default=0 if data_required else 4400,
        metavar="PORT",
        help="serve the Chronos API on this port, bound like the API server (0: off; "
        "needs the Mesos master)",
    )
    p.add_argument(
        "--marathon-port",
        type=int,
        default=0 if data_required else 8080,
        metavar="PORT",
        help="serve the Marathon API on this port, bound like the API server (0: off; "
        "needs the Mesos master)",
    )
    p.add_argument(
        "--hollow-nodes",
        type=int,
        default=0,
        metavar="N",
        help="also start N simulated nodes (corral agent --runtime hollow)",
    )
    p.add_argument(
        "--no-controllers",
        action="store_true",
        help="do not start the controller manager beside it",
    )
    p.add_argument(
        "--kube-controller-manager-arg",
        action="append",
        default=[],
        metavar="FLAG=VALUE",
        help="a flag for the controller manager, as k3s takes it (repeatable), e.g. "
        "horizontal-pod-autoscaler-sync-period=1s",
    )
    p.add_argument(
        "--no-metrics-server",
        action="store_true",
        help="do not start the metrics server (metrics.k8s.io, kubectl top) beside it",
    )
    p.add_argument(
        "--metric-resolution",
        default="15s",
        type=duration_text,
        metavar="DURATION",
        help="how often the metrics server scrapes the agents (default 15s)",
    )
    p.add_argument(
        "--service-lb-pool",
        default="",
        metavar="CIDR|FIRST-LAST[,...]",
        help="LoadBalancer Services get one address each from this pool (default: the "
        "Ready nodes' addresses, as k3s' ServiceLB)",
    )
    p.add_argument(
        "--loops",
        choices=["in-process", "processes"],
        default="processes" if data_required else "in-process",
        help="run the scheduler (and Mesos master), controller manager, Chronos and "
        "Marathon as tasks of the API server's process (less memory) or as child "
        "processes (both cores); default: " + ("processes" if data_required else "in-process"),
    )
    for what in ("not-ready", "unreachable"):  # the DefaultTolerationSeconds admission
        p.add_argument(
            f"--default-{what}-toleration-seconds",
            type=int,
            default=300,
            metavar="N",
            help=f"tolerationSeconds of the {what}:NoExecute toleration added to every pod "
            "that has none",
        )


def _controller_manager_args(flags: list[str]) -> list[str]:
    """``--kube-controller-manager-arg`` values as the controller manager's own flags
    (``sync-period=1s`` and ``--sync-period=1s`` both become ``--sync-period=1s``)."""
    return ["--" + f.lstrip("-") for f in flags if f.strip("-")]


def _service_lb_args(pool: str) -> list[str]:
    """The controller manager's ``--service-lb-pool``, checked here (``ValueError``)."""
    if not pool:
        return []
    from corral.controllers.servicelb import Pool

    Pool.parse(pool)
    return ["--service-lb-pool", pool]


def _port_range(text: str) -> tuple[int, int]:
    lo, _, hi = text.partition("-")
    try:
        low, high = int(lo), int(hi)
    except ValueError:
        raise ValueError(f"invalid port range {text!r}: want LOW-HIGH") from None
    if not 0 < low <= high < 65536:
        raise ValueError(f"invalid port range {text!r}")
    return low, high


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="corral", description="A lightweight cluster manager.")
    parser.add_argument("--version", action=_VersionAction)
    sub = parser.add_subparsers(dest="command", required=True)
    _server_args(sub.add_parser("server", help="run the API server"), data_required=True)
    up = sub.add_parser("up", help="start a local cluster")
    _server_args(up, data_required=False)
    up.add_argument("--agents", type=int, default=1, metavar="N", help="local node agents")
    up.add_argument(
        "--runtime",
        choices=["oci", "process"],
        default=None,
        help="the agents' runtime (default: oci as root with runc, else process)",
    )
    from corral.cli import up as up_cli

    up_cli.add_registry_flags(up)
    from corral.cli import image as image_cli
    from corral.cli import mesos as mesos_cli
    from corral.cli import scheduler as scheduler_cli

    scheduler_cli.add_parsers(sub)
    mesos_cli.add_parsers(sub)  # `corral top`, and `--master` for `corral why framework/NAME`
    from corral.cli import chronos as chronos_cli

    chronos_cli.add_parsers(sub)
    from corral.cli import marathon as marathon_cli

    marathon_cli.add_parsers(sub)
    why = sub.choices.get("why")
    if why is not None:
        why.add_argument(
            "--chronos",
            default=chronos_cli.DEFAULT_CHRONOS,
            metavar="HOST:PORT",
            help=f"for job/NAME: the Chronos API (default {chronos_cli.DEFAULT_CHRONOS})",
        )
        why.add_argument(
            "--marathon",
            default=marathon_cli.DEFAULT_MARATHON,
            metavar="HOST:PORT",
            help=f"for app/ID: the Marathon API (default {marathon_cli.DEFAULT_MARATHON})",
        )
    image_cli.add_parser(sub)
    from corral.cli import token as token_cli

    token_cli.add_parser(sub)
    from corral.cli import secrets as secrets_cli

    secrets_cli.add_parser(sub)
    from corral.cli import backup as backup_cli

    backup_cli.add_parsers(sub)  # `corral backup`, `corral restore`
    from corral.cli import etcd as etcd_cli
    from corral.cli import migrate as migrate_cli

    migrate_cli.add_parser(sub)  # `corral migrate --from URL --to URL`
    etcd_cli.add_parser(sub, default_data_dir())  # `corral etcd status|recover|add`
    from corral.cli import down as down_cli

    down = sub.add_parser("down", help="stop a corral up cluster, remove what it made here")
    down_cli.add_arguments(down, default_data_dir())
    # these two parse their own flags (``corral controller-manager --help``)
    for name, text in _DELEGATED.items():
        sub.add_parser(name, help=text, add_help=False).add_argument(
            "rest", nargs=argparse.REMAINDER
        )
    return parser


_DELEGATED = {
    "controller-manager": "run the workload controllers against an API server",
    "metrics-server": "serve the resource metrics API (kubectl top) from the agents",
    "agent": "run a node agent (runtime process, oci or hollow)",
    "proxy": "run a node's Service proxy (iptables or userspace)",
    "dns": "serve cluster DNS (<service>.<namespace>.svc.cluster.local)",
}


def _delegate(command: str, argv: list[str]) -> int:
    if command == "controller-manager":
        from corral.controllers.manager import main as manager_main

        return manager_main(argv)
    if command == "metrics-server":
        from corral.metrics.command import main as metrics_main

        return metrics_main(argv)
    if command == "dns":
        from corral.dns.server import main as dns_main

        return dns_main(argv)
    if command == "proxy":
        from corral.proxy.cmd import main as proxy_main

        return proxy_main(argv)
    from corral.cli.agent import main as agent_main

    return agent_main(argv)


async def _run(
    server: Server, announce: bool, nodes: list[str] | None = None, ha: LocalHA | None = None
) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    t0 = time.monotonic()
    await (server.start() if ha is None else ha.start(server))  # ha: etcd first, cli/ha.py
    if announce:
        print(f"  API server on {server.url} ({time.monotonic() - t0:.1f} s)", flush=True)
        if ha is not None:
            await ha.start_servers(t0)
        from corral.cli import up as up_cli

        await up_cli.report_progress(server, nodes or [], t0, timeout=60.0)
        if server.mesos_port:
            await up_cli.report_service(
                "Mesos master", server.bind, server.mesos_port, "/version",
                "pymesos frameworks, `corral top`", t0,
            )  # fmt: skip
        if server.chronos_port:
            await up_cli.report_service(
                "Chronos", server.bind, server.chronos_port, "/ping",
                "chronos-python, `kubectl get chronosjobs -n chronos`", t0,
            )  # fmt: skip
        if server.marathon_port:
            await up_cli.report_service(
                "Marathon", server.bind, server.marathon_port, "/ping",
                "the marathon client, `kubectl get apps.marathon.corral.dev -n marathon`", t0,
            )  # fmt: skip
        print(f"Corral is up: {server.url}", flush=True)
        print(f"  export KUBECONFIG={server.kubeconfig}", flush=True)
        print("  kubectl get namespaces", flush=True)
        print(f"  dashboard: {server.url}/ui/ (sign in with the kubeconfig's token)", flush=True)
    else:
        print(f"serving on {server.url}; kubeconfig {server.kubeconfig}", flush=True)
    try:
        await stop.wait()
    finally:
        await (server.stop() if ha is None else ha.stop(server))


def _datastore_tls(args: argparse.Namespace) -> EtcdTLS | None:
    """``--datastore-cafile/certfile/keyfile``: TLS to etcd (None: plain HTTP)."""
    files = [getattr(args, f"datastore_{w}", None) for w in ("cafile", "certfile", "keyfile")]
    if not any(files):
        return None
    from corral.storage.datastore import EtcdTLS

    return EtcdTLS(*files)


def main(argv: list[str] | None = None) -> int:
    """``corral ...``; every failure is one line on stderr (``cli/errors.py``)."""
    from corral.cli import errors

    argv = sys.argv[1:] if argv is None else argv
    errors.one_line_usage_errors()
    command = argv[0] if argv and not argv[0].startswith("-") else ""
    return errors.guarded(command, lambda: _main(argv))


class _VersionAction(argparse._VersionAction):
    """``--version``: the installed version is read (``importlib.metadata``, ~15 ms) only
    when asked, not on every command's start."""

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        self.version = f"corral {_version()}"
        super().__call__(*args, **kwargs)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("corral")
    except PackageNotFoundError:
        return "unknown (not installed)"


def _main(argv: list[str]) -> int:
    from corral.cli import errors

    if argv and argv[0] in _DELEGATED:
        errors.preflight(argv[0], errors.parse_delegated(argv[0], argv[1:]))
        return _delegate(argv[0], argv[1:])
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # named by the subcommand's parser, not the top one
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        sub.choices[args.command].error(f"unrecognized arguments: {' '.join(extra)}")
    errors.preflight(args.command, args)
    if args.command == "top":
        from corral.cli import mesos as mesos_cli

        return mesos_cli.top(args)
    if args.command == "down":
        from corral.cli import down as down_cli

        return down_cli.run(args)
    if args.command in ("backup", "restore"):
        from corral.cli import backup as backup_cli

        return backup_cli.run(args)
    if args.command == "migrate":
        from corral.cli import migrate as migrate_cli

        return migrate_cli.run(args)
    if args.command == "etcd":
        from corral.cli import etcd as etcd_cli

        return etcd_cli.run(args)
    from corral.apiserver.server import Server
    from corral.cli import image as image_cli
    from corral.cli import scheduler as scheduler_cli
    from corral.cli import up as up_cli

    if args.command == "chronos":
        from corral.cli import chronos as chronos_cli

        return chronos_cli.run(args)
    if args.command == "marathon":
        from corral.cli import marathon as marathon_cli

        return marathon_cli.run(args)
    if args.command in ("scheduler", "mesos-master"):
        return scheduler_cli.run_scheduler(args)
    if args.command == "why":
        return scheduler_cli.why(args)
    if args.command == "image":
        return image_cli.run(args)
    if args.command == "token":
        from corral.cli import token as token_cli

        return token_cli.run(args)
    if args.command == "secrets":
        from corral.cli import secrets as secrets_cli

        return secrets_cli.run(args)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    agents: list[list[str]] = []
    nodes: list[str] = []
    if args.command == "up" and args.agents > 0:
        from corral.cli.agent import pick_runtime

        runtime, why = pick_runtime()
        if args.runtime == "oci" and runtime != "oci":
            print(f"corral: --runtime oci: {why}", file=sys.stderr)
            return 2
        if args.runtime is None and runtime == "process":
            print(f"  runtime process: {why}", flush=True)
        runtime = args.runtime or runtime
        print(f"Starting Corral in {args.data_dir} ({args.agents} {runtime} agent(s))", flush=True)
        try:
            registry = up_cli.registry_args(
                args.data_dir, args.registry_mirror, args.insecure_registry
            )
        except ValueError as e:
            print(f"corral up: {e}", file=sys.stderr)
            return 2
        agents = up_cli.agent_commands(args.data_dir, args.agents, runtime, registry)
        nodes = up_cli.node_names(args.agents)
        up_cli.prepare_agents(args.data_dir, nodes)
    ha = None
    try:
        if args.command == "up":  # --servers N / --datastore etcd: cli/ha.py
            from corral.cli import ha as ha_cli

            ha = ha_cli.local_cluster(args)
        scheduler_cli.allocator_config(args)
        if args.chronos_port and not args.mesos_port:
            raise ValueError("--chronos-port needs the Mesos master (--mesos-port)")
        if args.marathon_port and not args.mesos_port:
            raise ValueError("--marathon-port needs the Mesos master (--mesos-port)")
        from corral.cli import loops as loops_cli

        server = Server(
            args.data_dir,
            port=args.port,
            bind=args.bind,
            advertise_address=args.advertise_address,
            endpoint_reconciler=(args.endpoint_reconciler_interval, args.endpoint_reconciler_ttl),
            datastore=args.datastore,
            datastore_tls=_datastore_tls(args),
            join=getattr(args, "join", False),
            cluster_token=getattr(args, "token", ""),
            cluster_token_file=getattr(args, "token_file", None),
            peer_urls=ha.urls if ha is not None else getattr(args, "peer_urls", []),
            leader_elect=args.leader_elect,
            leader_election=(
                args.leader_elect_lease_duration,
                args.leader_elect_renew_deadline,
                args.leader_elect_retry_period,
            ),
            event_ttl=args.event_ttl,
            token_auth_file=args.token_auth_file,
            encryption_provider_config=args.encryption_provider_config,
            history=args.history,
            max_inflight=(args.max_requests_inflight, args.max_mutating_requests_inflight),
            request_timeout=args.request_timeout,
            watch_backlog_bytes=args.watch_backlog_bytes,
            service_cidr=args.service_cidr,
            node_port_range=_port_range(args.service_node_port_range),
            scheduler=not args.no_scheduler,
            mesos_port=args.mesos_port,
            mesos_args=scheduler_cli.mesos_flag_args(args),
            chronos_port=args.chronos_port,
            marathon_port=args.marathon_port,
            controllers=not args.no_controllers,
            metrics_server=not args.no_metrics_server,
            metrics_args=["--metric-resolution", args.metric_resolution],
            hollow_nodes=args.hollow_nodes,
            in_process=loops_cli.IN_PROCESS if args.loops == "in-process" else None,
            agents=agents,
            controller_args=[
                *(up_cli.controller_args() if agents else []),
                *_service_lb_args(args.service_lb_pool),
                *_controller_manager_args(args.kube_controller_manager_arg),
            ],
            default_not_ready_toleration_seconds=args.default_not_ready_toleration_seconds,
            default_unreachable_toleration_seconds=args.default_unreachable_toleration_seconds,
        )
    except ValueError as e:
        print(f"corral: {e}", file=sys.stderr)
        return 2
    if agents:  # after every flag is checked: another cluster holds this host?
        from corral.cli import down as down_cli

        busy = down_cli.up_conflicts(args.data_dir, len(agents), runtime, up_cli.CLUSTER_CIDR)
        if busy:
            print(f"corral up: not starting: {'; '.join(busy)}", file=sys.stderr)
            return 1
    if args.command == "up":  # D/up.pid: what ``corral down`` stops
        from corral.cli import down as down_cli

        with down_cli.pid_file(args.data_dir):
            eventloop.run(lambda: _run(server, True, nodes, ha))
        return 0
    eventloop.run(lambda: _run(server, False, nodes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
