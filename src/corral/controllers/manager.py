"""The controller manager: runs the registered workload controllers on shared informers.

``ControllerManager(client, controllers=[...])`` builds one ``InformerFactory``, creates
every named controller on it (so each resource is listed and watched once per process,
whatever the number of controllers; no controller reads ``managedFields``, so the caches
keep none, as kube-controller-manager's), then ``run`` starts the informers and all the
controllers' workers until cancelled. ``main`` is ``corral controller-manager
--kubeconfig FILE [--controllers a,b]``, wired by the CLI; ``corral server`` / ``corral
up`` start it beside the API server.

``CONTROLLERS`` maps the names of ``--controllers`` (kube-controller-manager's, e.g.
``replicaset``) to controller classes; a new controller is one entry here. A controller
with settings of its own (the node lifecycle controller's periods) gets them as keyword
arguments through ``ControllerManager(options={name: {...}})``, which ``main`` fills
from its flags. As a process of its own (``main``), it sets up the garbage collector once
its informers have synced (``util/gc_tuning.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Iterable, Mapping
from typing import Any

from corral.client import election
from corral.client.informer import strip_managed_fields
from corral.client.leaderelection import EXIT_LEADERSHIP_LOST, LeaderElector, LeadershipLost
from corral.client.rest import Client, add_server_flag
from corral.controllers.base import Controller, InformerFactory
from corral.controllers.bootstrapsigner import BootstrapSignerController, TokenCleanerController
from corral.controllers.clusterroleaggregation import ClusterRoleAggregationController
from corral.controllers.cronjob import CronJobController
from corral.controllers.csrapproving import CSRApprovingController
from corral.controllers.csrsigning import CSRSigningController
from corral.controllers.daemonset import DaemonSetController
from corral.controllers.deployment import DeploymentController
from corral.controllers.endpoints import EndpointsController
from corral.controllers.endpointslice import EndpointSliceController
from corral.controllers.hpa import (
    CPU_INITIALIZATION_PERIOD,
    DOWNSCALE_STABILIZATION,
    INITIAL_READINESS_DELAY,
    SYNC_PERIOD,
    TOLERANCE,
    HorizontalPodAutoscalerController,
)
from corral.controllers.job import JobController, TTLAfterFinishedController
from corral.controllers.localpath import LocalPathProvisioner
from corral.controllers.nodeipam import NodeIpamController
from corral.controllers.nodelifecycle import (
    NODE_MONITOR_GRACE_PERIOD,
    NODE_MONITOR_PERIOD,
    NODE_STARTUP_GRACE_PERIOD,
    NodeLifecycleController,
    parse_duration,
)
from corral.controllers.persistentvolume import PersistentVolumeBinderController
from corral.controllers.podgc import (
    GC_CHECK_PERIOD,
    QUARANTINE_TIME,
    TERMINATED_POD_GC_THRESHOLD,
    PodGCController,
)
from corral.controllers.replicaset import ReplicaSetController, ReplicationControllerController
from corral.controllers.rootca import RootCACertPublisher
from corral.controllers.serviceaccount import ServiceAccountsController
from corral.controllers.servicelb import Pool, ServiceLBController
from corral.controllers.statefulset import StatefulSetController
from corral.controllers.taint_eviction import TaintEvictionController
from corral.controllers.volumeprotection import PVCProtectionController, PVProtectionController
from corral.util import eventloop
from corral.util.clock import Clock
from corral.util.gc_tuning import settling
from corral.util.stopping import run_until_stopped

log = logging.getLogger("corral.controllers.manager")

#: ``--controllers`` name -> controller class (constructed as ``cls(client, factory, clock=)``)
CONTROLLERS: dict[str, type[Controller]] = {
    "deployment": DeploymentController,
    "replicaset": ReplicaSetController,
    "replicationcontroller": ReplicationControllerController,
    "job": JobController,
    "ttl-after-finished": TTLAfterFinishedController,
    "cronjob": CronJobController,
    "statefulset": StatefulSetController,
    "daemonset": DaemonSetController,
    "nodelifecycle": NodeLifecycleController,
    "taint-eviction-controller": TaintEvictionController,
    "podgc": PodGCController,
    "endpoints": EndpointsController,
    "endpointslice": EndpointSliceController,
    "nodeipam": NodeIpamController,
    "horizontalpodautoscaling": HorizontalPodAutoscalerController,
    "persistentvolume-binder": PersistentVolumeBinderController,
    "persistentvolume-protection": PVProtectionController,
    "pvc-protection": PVCProtectionController,
    "local-path-provisioner": LocalPathProvisioner,
    "service-lb-controller": ServiceLBController,
    "clusterrole-aggregation": ClusterRoleAggregationController,
    "serviceaccount": ServiceAccountsController,
    "root-ca-cert-publisher": RootCACertPublisher,
    "csrapproving": CSRApprovingController,
    "csrsigning": CSRSigningController,
    "bootstrapsigner": BootstrapSignerController,
    "tokencleaner": TokenCleanerController,
}


#: controllers that run only when asked for by name or flag (upstream's defaults)
OFF_BY_DEFAULT = frozenset({"nodeipam"})


def select_controllers(spec: str, known: Iterable[str] | None = None) -> list[str]:
    """Names enabled by a ``--controllers`` value: ``*`` (all), ``name``, ``-name`` (off).

    Raises ``ValueError`` on a name that is not registered.
    """
    known_list = sorted(CONTROLLERS if known is None else known)
    chosen: list[str] = []
    off: set[str] = set()
    for item in (s.strip() for s in spec.split(",")):
        if not item:
            continue
        if item == "*":
            chosen.extend(known_list)
            continue
        name = item[1:] if item.startswith("-") else item
        if name not in known_list:
            raise ValueError(f'unknown controller "{name}" (known: {", ".join(known_list)})')
        if item.startswith("-"):
            off.add(name)
        else:
            chosen.append(name)
    return [n for n in dict.fromkeys(chosen) if n not in off]


class ControllerManager:
    """Every named controller on one informer factory; ``run`` until cancelled."""

    def __init__(
        self,
        client: Client,
        controllers: Iterable[str] | None = None,
        *,
        clock: Clock | None = None,
        workers: int = 4,
        options: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        self.client = client
        # an update without managedFields keeps the stored ones (store.py, as upstream)
        self.factory = InformerFactory(client, transform=strip_managed_fields)
        names = (
            [n for n in CONTROLLERS if n not in OFF_BY_DEFAULT]
            if controllers is None
            else list(controllers)
        )
        self.controllers: dict[str, Controller] = {}
        for name in names:
            cls = CONTROLLERS.get(name)
            if cls is None:
                raise ValueError(f'unknown controller "{name}"')
            extra = dict((options or {}).get(name) or {})
            self.controllers[name] = cls(
                client, self.factory, workers=workers, clock=clock, **extra
            )
        self.ready = asyncio.Event()

    async def run(self) -> None:
        """Start the shared informers, wait for their first lists, run every controller."""
        self.factory.start()
        try:
            await self.factory.wait_for_sync(timeout=120)
            log.info("controllers running: %s", ", ".join(self.controllers) or "none")
            self.ready.set()
            async with asyncio.TaskGroup() as tg:
                for name, c in self.controllers.items():
                    tg.create_task(c.run(), name=f"controller-{name}")
        finally:
            for c in self.controllers.values():
                c.queue.close()
            await self.factory.stop()


async def _serve(
    client: Client,
    names: list[str],
    exit_on_stdin_eof: bool = False,
    options: Mapping[str, Mapping[str, Any]] | None = None,
    elected: LeaderElector | None = None,
) -> None:
    manager = ControllerManager(client, names, options=options)
    try:
        await run_until_stopped(  # a process of its own: its collector is set up once synced
            election.run_elected(elected, settling(manager.run, manager.ready)),
            name="controller-manager",
            exit_on_stdin_eof=exit_on_stdin_eof,
        )
    finally:
        await client.close()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="corral controller-manager", description="Run the workload controllers."
    )
    p.add_argument("--kubeconfig", required=True, help="how to reach the API server")
    add_server_flag(p)
    p.add_argument("--exit-on-stdin-eof", action="store_true", help=argparse.SUPPRESS)
    election.add_flags(p, "the controllers")
    p.add_argument(
        "--controllers",
        default="*",
        help="comma-separated names to run; '*' is all, '-name' turns one off "
        f"(known: {', '.join(sorted(CONTROLLERS))})",
    )
    p.add_argument(
        "--node-monitor-grace-period",
        type=parse_duration,
        default=NODE_MONITOR_GRACE_PERIOD,
        metavar="DURATION",
        help="how long a node's Lease may go unrenewed before it is Ready=Unknown and "
        "tainted unreachable (default 40s)",
    )
    p.add_argument(
        "--node-monitor-period",
        type=parse_duration,
        default=NODE_MONITOR_PERIOD,
        metavar="DURATION",
        help="how often every node's health is checked (default 5s)",
    )
    p.add_argument(
        "--node-startup-grace-period",
        type=parse_duration,
        default=NODE_STARTUP_GRACE_PERIOD,
        metavar="DURATION",
        help="how long a new node may go without posting Ready (default 1m)",
    )
    p.add_argument(
        "--terminated-pod-gc-threshold",
        type=int,
        default=TERMINATED_POD_GC_THRESHOLD,
        metavar="N",
        help="terminated pods kept before podgc deletes the oldest; 0 never (default 12500)",
    )
    p.add_argument(  # not upstream flags (NewPodGCInternal's arguments): short in tests
        "--pod-gc-period", type=parse_duration, default=GC_CHECK_PERIOD, help=argparse.SUPPRESS
    )
    p.add_argument(
        "--pod-gc-quarantine", type=parse_duration, default=QUARANTINE_TIME, help=argparse.SUPPRESS
    )
    p.add_argument(
        "--allocate-node-cidrs",
        action="store_true",
        help="give each Node a pod CIDR from --cluster-cidr (the nodeipam controller)",
    )
    p.add_argument("--cluster-cidr", default="10.88.0.0/16", help="pod IPs of the cluster")
    p.add_argument("--node-cidr-mask-size", type=int, default=24, help="size of a node's block")
    for flag, default, what in (  # kube-controller-manager's HPA flags
        ("sync-period", SYNC_PERIOD, "how often each HPA is reconciled (default 15s)"),
        ("downscale-stabilization", DOWNSCALE_STABILIZATION,
         "the window of recommendations a scale-down takes the highest of (default 5m0s)"),
        ("cpu-initialization-period", CPU_INITIALIZATION_PERIOD,
         "after a pod starts, how long its CPU samples may be skipped (default 5m0s)"),
        ("initial-readiness-delay", INITIAL_READINESS_DELAY,
         "after a pod starts, how long a readiness change is taken as initial (default 30s)"),
    ):  # fmt: skip
        p.add_argument(f"--horizontal-pod-autoscaler-{flag}", type=parse_duration,
                       default=default, metavar="DURATION", help=what)  # fmt: skip
    p.add_argument(
        "--horizontal-pod-autoscaler-tolerance",
        type=float,
        default=TOLERANCE,
        metavar="RATIO",
        help="the least usage ratio change away from 1.0 that rescales (default 0.1)",
    )
    p.add_argument(
        "--service-lb-pool",
        default="",
        metavar="CIDR|FIRST-LAST[,...]",
        help="LoadBalancer Services get one address each from here (service-lb-controller); "
        "default: the Ready nodes' addresses, as k3s' ServiceLB",
    )
    p.add_argument(
        "--cluster-signing-cert-file",
        default="",
        metavar="FILE",
        help="the CA certificate csrsigning issues kubernetes.io certificates with",
    )
    p.add_argument(
        "--cluster-signing-key-file", default="", metavar="FILE", help="that CA's private key"
    )
    p.add_argument(
        "--log-level", default="info", type=str.lower, choices=["debug", "info", "warning", "error"]
    )
    return p


def main(argv: list[str]) -> int:
    """``corral controller-manager --kubeconfig FILE [--controllers a,b]``; exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        names = select_controllers(args.controllers)
    except ValueError as e:
        print(f"corral controller-manager: {e}", file=sys.stderr)
        return 2
    if not args.allocate_node_cidrs:  # off unless asked for, as upstream
        names = [n for n in names if n != "nodeipam"]
    if args.service_lb_pool:
        try:
            Pool.parse(args.service_lb_pool)
        except ValueError as e:
            print(f"corral controller-manager: {e}", file=sys.stderr)
            return 2
    try:
        client = Client.from_kubeconfig(
            args.kubeconfig, servers=args.server, user_agent="corral-controller-manager"
        )
    except (OSError, KeyError, StopIteration, TypeError) as e:
        print(f"corral controller-manager: cannot read {args.kubeconfig}: {e}", file=sys.stderr)
        return 2
    options = _options(args)
    bad = election.check(args)
    if bad:
        print(f"corral controller-manager: {bad}", file=sys.stderr)
        return 2
    elected = election.elector(client, args, "controller-manager")
    try:
        eventloop.run(lambda: _serve(client, names, args.exit_on_stdin_eof, options, elected))
    except LeadershipLost as e:  # as kube-controller-manager: exit, to start afresh
        log.error("%s", e)
        return EXIT_LEADERSHIP_LOST
    return 0


def _options(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """The controllers' own settings from the flags (``ControllerManager(options=)``)."""
    return {
        "nodelifecycle": {
            "node_monitor_grace_period": args.node_monitor_grace_period,
            "node_monitor_period": args.node_monitor_period,
            "node_startup_grace_period": args.node_startup_grace_period,
        },
        "podgc": {
            "terminated_pod_gc_threshold": args.terminated_pod_gc_threshold,
            "gc_check_period": args.pod_gc_period,
            "quarantine_time": args.pod_gc_quarantine,
        },
        "service-lb-controller": {"pool": args.service_lb_pool},
        "csrsigning": {
            "cert_file": args.cluster_signing_cert_file,
            "key_file": args.cluster_signing_key_file,
        },
        "horizontalpodautoscaling": {
            "sync_period": args.horizontal_pod_autoscaler_sync_period,
            "tolerance": args.horizontal_pod_autoscaler_tolerance,
            "downscale_stabilization": args.horizontal_pod_autoscaler_downscale_stabilization,
            "cpu_initialization_period": args.horizontal_pod_autoscaler_cpu_initialization_period,
            "initial_readiness_delay": args.horizontal_pod_autoscaler_initial_readiness_delay,
        },
        "nodeipam": {
            "cluster_cidr": args.cluster_cidr,
            "node_cidr_mask_size": args.node_cidr_mask_size,
        },
    }


async def serve(argv: list[str]) -> None:
    """``corral controller-manager ARGS`` inside another process (``corral up`` runs it in
    the API server's): the same controllers until cancelled, no signal handlers, no
    logging set-up. Bad arguments raise ``ValueError``."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit:
        raise ValueError(f"corral controller-manager: bad arguments {argv}") from None
    names = select_controllers(args.controllers)
    if not args.allocate_node_cidrs:
        names = [n for n in names if n != "nodeipam"]
    client = Client.from_kubeconfig(
        args.kubeconfig, servers=args.server, user_agent="corral-controller-manager"
    )
    try:
        manager = ControllerManager(client, names, options=_options(args))
        elected = election.elector(client, args, "controller-manager")
        await election.run_elected(elected, manager.run)
    finally:
        await client.close()
