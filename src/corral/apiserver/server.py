"""``corral server``: storage, watch cache, registry, HTTPS listener and lifecycle loops.

Start-up order: open the store, seed the watch cache from it (objects and recent
history, so watches resume across a restart), make sure the PKI, admin token and
kubeconfig exist, create the built-in objects a cluster always has (namespaces default,
kube-system, kube-public, kube-node-lease; the ``default/kubernetes`` Service), then
serve. ``Server`` is also what the tests and benchmarks start in-process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import sys
from collections.abc import Awaitable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from corral.api import errors
from corral.apiserver import (
    bootstrap_data,
    bootstrap_tokens,
    csr_admission,
    framework_auth,
    front_proxy,
)
from corral.apiserver.admission import (
    DEFAULT_TOLERATION_SECONDS,
    DefaultTolerationSeconds,
    DisruptionBudgets,
    NodeUsage,
    PriorityAdmission,
)
from corral.apiserver.aggregator import Aggregator
from corral.apiserver.allocation import ServiceAllocator
from corral.apiserver.app import APIApp
from corral.apiserver.authn import load_token_file
from corral.apiserver.authz import default_chain
from corral.apiserver.cert_renewal import CertRenewal
from corral.apiserver.certs import ensure_admin_token, write_kubeconfig
from corral.apiserver.children import Children, LoopMain
from corral.apiserver.client_certs import agent_identity, write_component_kubeconfig
from corral.apiserver.component_identities import (
    COMMAND_IDENTITIES,
    FRONT_PROXY_CLIENT,
    IDENTITIES,
    KUBELET_CLIENT,
    Identity,
)
from corral.apiserver.component_identities import reconcile as reconcile_component_policy
from corral.apiserver.crds import CustomResources
from corral.apiserver.discovery import Discovery
from corral.apiserver.encryption import EncryptionReloader
from corral.apiserver.encryption_config import ensure_default as ensure_encryption_config
from corral.apiserver.endpoint_reconciler import INTERVAL as ENDPOINTS_INTERVAL
from corral.apiserver.endpoint_reconciler import TTL as ENDPOINTS_TTL
from corral.apiserver.endpoint_reconciler import (
    EndpointReconciler,
    advertise_address_for,
    is_ipv4,
    is_loopback,
)
from corral.apiserver.fencing import FENCE_HEADER, Fencing
from corral.apiserver.flowcontrol import (
    DEFAULT_MAX_INFLIGHT,
    DEFAULT_MAX_MUTATING_INFLIGHT,
    DEFAULT_REQUEST_TIMEOUT,
    FlowControl,
)
from corral.apiserver.lifecycle import Lifecycle
from corral.apiserver.node_authz import NodeAuthorizer
from corral.apiserver.node_restriction import NodeRestriction
from corral.apiserver.openapi import OpenAPIDocs
from corral.apiserver.pod_security_admission import WORKLOADS, PodSecurityAdmission
from corral.apiserver.pod_security_admission import Config as PodSecurityConfig
from corral.apiserver.proxy import kubelet_client_context
from corral.apiserver.rbac_bootstrap import reconcile as reconcile_rbac_policy
from corral.apiserver.rbac_escalation import EscalationCheck
from corral.apiserver.registry.table import RESOURCES
from corral.apiserver.sa_admission import ServiceAccountAdmission
from corral.apiserver.sa_tokens import ServiceAccountTokens
from corral.apiserver.store import Registry, WriteOptions
from corral.apiserver.token_request import TokenRequests
from corral.apiserver.volume_admission import (
    ClaimResize,
    DefaultStorageClass,
    StorageObjectInUseProtection,
)
from corral.client import election
from corral.client.leaderelection import LeaderElector, new_identity
from corral.client.rest import Client, KubeConfig
from corral.storage.base import StorageCorrupt
from corral.storage.cache import MAX_BACKLOG_BYTES, WatchCache
from corral.storage.datastore import is_etcd, open_store
from corral.util.clock import Clock, SystemClock
from corral.util.gc_tuning import settle_heap
from corral.util.ports import free_port

if TYPE_CHECKING:
    from corral.storage.datastore import EtcdTLS

log = logging.getLogger("corral.server")

#: the children that campaign for a Lease (``client/election.py``) when election is on
ELECTED = frozenset({"scheduler", "controller-manager", "marathon", "chronos"})

#: how long shutdown waits to take this server out of the ``kubernetes`` Endpoints
#: (upstream bounds it at two reconcile intervals: "don't block server shutdown forever
#: if we can't reach etcd"; shorter here: its lease expires by itself after the TTL)
ENDPOINTS_STOP_WAIT = 3.0
SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
SYSTEM_PRIORITY_CLASSES = (
    (
        "system-node-critical",
        2000001000,
        "Used for system critical pods that must not be moved from their current node.",
    ),
    (
        "system-cluster-critical",
        2000000000,
        "Used for system critical pods that must run in the cluster, but can be moved to another node if necessary.",
    ),
)


def parse_datastore(url: str | None, data_dir: Path) -> Path:
    """``sqlite:///PATH`` (absolute) or ``sqlite://PATH`` (relative); default DIR/state.db."""
    if not url:
        return data_dir / "state.db"
    if not url.startswith("sqlite://"):
        raise ValueError(f"unsupported datastore {url!r}: only sqlite:///PATH is available")
    path = url[len("sqlite://") :]
    if not path:
        raise ValueError("sqlite datastore needs a path: sqlite:///PATH")
    return Path(path)


class Server:
    """One API server over one data directory."""

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int = 6443,
        bind: str = "127.0.0.1",
        datastore: str | None = None,
        datastore_tls: EtcdTLS | None = None,
        tls: bool = True,
        clock: Clock | None = None,
        event_ttl: float = 24 * 3600,
        history: int = 10_000,
        max_inflight: tuple[int, int] = (DEFAULT_MAX_INFLIGHT, DEFAULT_MAX_MUTATING_INFLIGHT),
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
        watch_backlog_bytes: int = MAX_BACKLOG_BYTES,
        service_cidr: str = "10.96.0.0/12",
        node_port_range: tuple[int, int] = (30000, 32767),
        scheduler: bool = False,
        mesos_port: int = 0,
        mesos_args: Sequence[str] = (),
        chronos_port: int = 0,
        marathon_port: int = 0,
        controllers: bool = False,
        metrics_server: bool = False,
        metrics_args: Sequence[str] = (),
        hollow_nodes: int = 0,
        agents: Sequence[Sequence[str]] = (),
        controller_args: Sequence[str] = (),
        default_not_ready_toleration_seconds: int = DEFAULT_TOLERATION_SECONDS,
        default_unreachable_toleration_seconds: int = DEFAULT_TOLERATION_SECONDS,
        in_process: Mapping[str, LoopMain] | None = None,
        token_auth_file: Path | None = None,
        encryption_provider_config: Path | None = None,
        advertise_address: str = "",
        endpoint_reconciler: tuple[float, float] = (ENDPOINTS_INTERVAL, ENDPOINTS_TTL),
        join: bool = False,
        cluster_token: str = "",
        cluster_token_file: Path | None = None,
        peer_urls: Sequence[str] = (),
        leader_elect: bool | None = None,
        leader_election: tuple[float, float, float] = (15.0, 10.0, 2.0),
    ) -> None:
        self.data_dir = Path(data_dir)
        #: ``--leader-elect``: the lifecycle loops and the elected children (scheduler,
        #: controller manager, Marathon, Chronos) act only while holding their Lease;
        #: default on with an etcd datastore (several servers), off on SQLite (one server)
        self.leader_elect = (
            bool(datastore and datastore.startswith("etcd://")) if leader_elect is None
            else leader_elect
        )  # fmt: skip
        #: ``--leader-elect-lease-duration``, ``-renew-deadline``, ``-retry-period``
        self.leader_election = leader_election
        lease, renew, retry = leader_election
        if self.leader_elect and not 0 < retry < renew < lease:
            raise ValueError(
                "--leader-elect-retry-period < --leader-elect-renew-deadline < "
                f"--leader-elect-lease-duration is required (got {retry}, {renew}, {lease})"
            )
        #: an etcd datastore: the cluster's PKI and keys are shared through it
        #: (``bootstrap_data``); ``--join``: they must be there already; ``--token``/
        #: ``--token-file`` (default ``DATA/cluster-token``) opens them
        self.shared_bootstrap = bool(datastore and datastore.startswith("etcd://"))
        if join and not self.shared_bootstrap:
            raise ValueError("--join needs an etcd datastore (--datastore etcd://HOST:PORT)")
        self.join = join
        self.cluster_token = cluster_token
        self.cluster_token_file = cluster_token_file
        #: ``--peer-urls``: every API server of the cluster (this one too), for the
        #: kubeconfigs it writes; empty: this server alone
        self.peer_urls = list(peer_urls)
        #: ``--advertise-address``: the IP the ``kubernetes`` Service's endpoints name
        #: (default: ``bind`` when it is one non-loopback IP, else the host's own)
        if advertise_address and not is_ipv4(advertise_address):
            raise ValueError(f"--advertise-address {advertise_address}: not an IPv4 address")
        self.advertise_address = advertise_address
        self.endpoints: EndpointReconciler | None = None
        #: the endpoint reconciler's (renewal interval, lease TTL) in seconds
        if min(endpoint_reconciler) <= 0:
            raise ValueError("--endpoint-reconciler-interval and -ttl must be positive")
        self.endpoint_reconciler = endpoint_reconciler
        #: ``--token-auth-file``: static bearer tokens (read at start; a bad file stops it)
        self.token_auth_file = token_auth_file
        #: each component's own kubeconfig (its client certificate), by identity name
        self.component_kubeconfigs: dict[str, Path] = {}
        self.port = port
        self.bind = bind
        #: ``--datastore``: the SQLite file (``db_path``) or an etcd cluster
        self.datastore = datastore
        self.db_path = self.data_dir / "state.db"
        if not is_etcd(datastore):
            self.db_path = parse_datastore(datastore, self.data_dir)
        self.tls = tls
        self.clock = clock or SystemClock()
        self.event_ttl = event_ttl
        self.history = history
        #: API Priority and Fairness: (--max-requests-inflight, --max-mutating-...), and
        #: --request-timeout (a quarter of it: the longest wait in a queue)
        self.max_inflight = max_inflight
        self.request_timeout = request_timeout
        self.service_cidr = service_cidr
        self.node_port_range = node_port_range
        self.storage = open_store(datastore, self.data_dir, min_history=history, tls=datastore_tls)
        #: ``--encryption-provider-config`` (default ``DATA/pki/encryption.yaml``, made on
        #: first start: Secrets under aesgcm), reloaded when the file changes
        self.encryption = EncryptionReloader(
            encryption_provider_config or self.data_dir / "pki" / "encryption.yaml",
            self.storage,
            self.data_dir,
        )
        self._default_encryption = encryption_provider_config is None
        self.cache = WatchCache(history, watch_backlog_bytes)  # slow watchers: 410 past it
        self.registry: Registry | None = None
        self.runner: web.ServerRunner | None = None
        self.api: APIApp | None = None
        self.token = ""
        self.kubeconfig = self.data_dir / "kubeconfig"
        self._tasks: list[asyncio.Task[Any]] = []
        #: run ``corral scheduler`` / ``corral controller-manager`` beside the API
        #: server: each in its own process (the loops use the second core), or as a
        #: task of this one when named in ``in_process``
        self.scheduler = scheduler
        #: the scheduler process also serves the Mesos master API on this port (0: off)
        self.mesos_port = mesos_port
        #: allocator flags for that scheduler process (roles, offer timeout, interval)
        self.mesos_args = list(mesos_args)
        #: ``corral chronos`` on this port, a framework on that master (0: off)
        self.chronos_port = chronos_port
        #: ``corral marathon`` on this port, a framework on that master (0: off)
        self.marathon_port = marathon_port
        self.controllers = controllers
        #: ``corral metrics-server`` beside it (its flags: ``--metric-resolution``), on a
        #: free port, bound like the API server
        self.metrics_server = metrics_server
        self.metrics_args = list(metrics_args)
        #: simulated nodes (``corral agent --runtime hollow``) to start beside it
        self.hollow_nodes = hollow_nodes
        #: node agents (``corral agent ARGS...``) to start beside it, one per entry
        self.agents = [list(a) for a in agents]
        #: extra flags of the controller manager (``corral up``: node CIDR allocation)
        self.controller_args = list(controller_args)
        #: tolerationSeconds of the DefaultTolerationSeconds admission (not-ready, unreachable)
        self.default_toleration_seconds = (
            default_not_ready_toleration_seconds,
            default_unreachable_toleration_seconds,
        )
        #: commands run as supervised tasks of this process instead of child processes
        #: (``corral up``: scheduler, controller-manager, chronos, marathon), by name; the
        #: CLI supplies them, since the API server imports none of those packages
        self.in_process = dict(in_process or {})
        #: PodSecurity admission defaults and exemptions (none: privileged, nothing exempt)
        self.pod_security = PodSecurityConfig()
        self.children = Children()
        #: the certificates issued at start, renewed while the server runs (6-hourly)
        self.cert_renewal = CertRenewal(self.data_dir, self.children)

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.bind in ("0.0.0.0", "") else self.bind
        if ":" in host:
            host = f"[{host}]"
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}"

    def face_urls(self) -> dict[str, str]:
        """The Mesos master, Marathon and Chronos this server starts, by name -> base
        URL (plain HTTP, bound like the API server): the dashboard's proxy targets."""
        if not (self.scheduler and self.mesos_port):
            return {}
        host = "127.0.0.1" if self.bind in ("0.0.0.0", "::", "") else self.bind
        host = f"[{host}]" if ":" in host else host
        ports = {"mesos": self.mesos_port, "marathon": self.marathon_port,
                 "chronos": self.chronos_port}  # fmt: skip
        return {name: f"http://{host}:{port}" for name, port in ports.items() if port}

    async def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.shared_bootstrap:  # the cluster's PKI and keys, before any is made here
            await self.storage.start()
            await bootstrap_data.exchange(
                self.storage, self.data_dir, join=self.join, token=self.cluster_token,
                token_file=self.cluster_token_file, encryption_config=self._default_encryption,
            )  # fmt: skip
        if self._default_encryption:
            ensure_encryption_config(self.encryption.path)
        self.encryption.start()  # the store reads and writes through it from the start
        try:  # every live object (and the recent history) decodes, or a clear stop
            if not self.shared_bootstrap:
                await self.storage.start()
            kvs, rev = await self.storage.list("/registry/")
            start = max(self.storage.compacted_revision, rev - self.history)
            history = await self.storage.history("/registry/", start, rev)
            start = max(start, self.storage.compacted_revision)  # etcd: compacted by others
        except StorageCorrupt as e:  # one line naming the file and the way back
            raise StorageCorrupt(e.key, corrupt_message(e, self.data_dir)) from None
        registry = Registry(self.storage, self.cache, RESOURCES, self.clock)
        self.registry = registry
        # the stored CRDs' resources are registered first, so their objects are cached
        crds = CustomResources(registry)
        crds.load(kvs)
        self.cache.load(kvs, rev, history, start)
        del kvs, history
        # Everything loaded so far lives as long as the server: keep it out of the
        # collector's scans, and collect the young generation less often, so that a
        # full collection never stalls requests for tens of milliseconds.
        settle_heap()
        # etcd: its watch starts at rev; past compaction it relists into cache.replace
        self.storage.attach_listener(self.cache.apply, rev, relist=self.cache.replace)
        svc_info = registry.by_gvr[("", "v1", "services")]
        allocator = ServiceAllocator(  # claims in the store: several servers
            registry.rcache(svc_info), self.storage, self.service_cidr, self.node_port_range
        )
        registry.async_write_hooks[("", "services")] = [allocator.allocate]
        self.cache.listeners.append(allocator.on_change)
        self._tasks.append(asyncio.create_task(allocator.run(), name="service-allocation"))
        self.kubernetes_ip = allocator.first_ip
        pod_info = registry.by_gvr[("", "v1", "pods")]
        pods = registry.rcache(pod_info)
        classes = registry.rcache(registry.by_gvr[("scheduling.k8s.io", "v1", "priorityclasses")])
        tolerations = DefaultTolerationSeconds(pods, *self.default_toleration_seconds)
        registry.write_hooks[("", "pods")] = [
            tolerations.admit,
            PriorityAdmission(pods, classes).admit,
        ]
        usage = NodeUsage(pods, registry.rcache(registry.by_gvr[("", "v1", "nodes")]))
        self.cache.listeners.append(usage.on_change)
        registry.write_hooks[("", "pods/binding")] = [usage.reserve]
        pdbs = registry.rcache(registry.by_gvr[("policy", "v1", "poddisruptionbudgets")])
        budgets = DisruptionBudgets(pods, pdbs, registry)  # evictions on several servers
        registry.write_hooks[("", "pods/eviction")] = [budgets.admit]
        registry.async_write_hooks[("", "pods/eviction")] = [budgets.commit]
        pvcs = registry.rcache(registry.by_gvr[("", "v1", "persistentvolumeclaims")])
        pvs = registry.rcache(registry.by_gvr[("", "v1", "persistentvolumes")])
        storage_classes = registry.rcache(
            registry.by_gvr[("storage.k8s.io", "v1", "storageclasses")]
        )
        registry.write_hooks[("", "persistentvolumeclaims")] = [
            DefaultStorageClass(pvcs, storage_classes).admit,
            StorageObjectInUseProtection.for_claims(pvcs).admit,
            ClaimResize(pvcs, storage_classes).admit,
        ]
        registry.write_hooks[("", "persistentvolumes")] = [
            StorageObjectInUseProtection.for_volumes(pvs).admit
        ]
        # the ServiceAccount admission mutates pods (token volume): before PodSecurity
        registry.admission[("", "pods")].append(ServiceAccountAdmission(registry).admit)
        # NodeRestriction: an agent writes only its own Node, Lease and pods (upstream's order)
        NodeRestriction.register(registry)
        # the authorizer chain: system:masters, the Node authorizer, RBAC (upstream's order)
        registry.authorizer = default_chain(registry, NodeAuthorizer(registry))
        # RBAC escalation prevention: no role or binding grants more than its writer holds
        EscalationCheck(registry).register()
        # PodSecurity validates: keep it after the admission plugins that mutate pods
        pod_security = PodSecurityAdmission(
            registry.rcache(registry.by_gvr[("", "v1", "namespaces")]), pods, self.pod_security
        )
        registry.admission[("", "pods")].append(pod_security.admit_pod)
        registry.admission[("", "namespaces")].append(pod_security.admit_namespace)
        for workload in WORKLOADS:
            registry.admission[workload].append(pod_security.admit_workload)
        if self.port == 0:  # before the ``kubernetes`` Service names it as its targetPort
            self.port = free_port(self.bind)
        self.advertise_address = self.advertise_address or advertise_address_for(self.bind)
        await self._bootstrap(registry)
        self.token = ensure_admin_token(self.data_dir)
        ssl_ctx = None
        ca_pem: bytes | None = None
        if self.tls:
            hosts = [self.bind] if self.bind not in ("0.0.0.0", "") else []
            hosts += [self.advertise_address, self.kubernetes_ip]  # what pods dial
            # what _issue_identities and kubelet_client_context issue next rides along
            # in the PKI's child on a first start (one cryptography child, not three)
            early = [*self._identities()[1], KUBELET_CLIENT]
            pki = await asyncio.to_thread(self.cert_renewal.pki, hosts, early)
            ssl_ctx = self.cert_renewal.server_context = pki.ssl_context()
            ca_pem = pki.ca_pem
        write_kubeconfig(self.kubeconfig, self.url, ca_pem, self.token, servers=self.peer_urls)
        if self.tls:  # every component its own client certificate (component_identities)
            await self._issue_identities()
        token_file = load_token_file(self.token_auth_file) if self.token_auth_file else None
        if self.mesos_port and (self.chronos_port or self.marathon_port):
            # Marathon's and Chronos' secrets towards the Mesos master (framework_auth)
            token_file = {**framework_auth.ensure_framework_secrets(self.data_dir),
                          **(token_file or {})}  # fmt: skip

        discovery = Discovery(registry.resources, f"{self.bind}:{self.port}")
        api = APIApp(registry, discovery, OpenAPIDocs(registry.resources), {self.token}, token_file,
                     faces=self.face_urls())  # fmt: skip
        self.api = api
        # the dashboard's /ui/watch opens the page's watches against this server itself
        client_ssl = ssl.create_default_context(cadata=ca_pem.decode()) if ca_pem else None
        api.dashboard.watches.target(self.url, client_ssl)
        api.flowcontrol = FlowControl(*self.max_inflight, request_timeout=self.request_timeout,
                                      object_count=registry.object_count)  # fmt: skip
        if self.tls:  # logs/exec/...: HTTPS to agents, with the kubelet-client certificate
            api.handler.agent_ssl = await asyncio.to_thread(kubelet_client_context, self.data_dir)
            self.cert_renewal.kubelet_client = api.handler.agent_ssl
        crds.attach(discovery, api.openapi)
        # bootstrap tokens (``corral token create``) and the CSRs of joining nodes
        csr_admission.register(registry)
        authn = getattr(api, "authn", None)  # authn.py's chain
        if authn is not None:
            authn.token_authenticators.append(
                bootstrap_tokens.BootstrapTokenAuthenticator(registry)
            )
        # ServiceAccount tokens: TokenRequest issues them, the chain authenticates them
        sa_tokens = ServiceAccountTokens(registry, self.data_dir / "pki", self.clock)
        api.handler.token_requests = TokenRequests(registry, sa_tokens)
        if authn is not None:
            authn.token_authenticators.append(sa_tokens.authenticate)
        await bootstrap_tokens.publish(registry, self.url, ca_pem)
        proxy_client = None
        if self.tls:  # extension servers learn to trust the front proxy (and its CA)
            await front_proxy.publish(registry, self.data_dir)
            proxy_client = front_proxy.proxy_client_files(self.data_dir)
        aggregator = api.aggregator = Aggregator(registry, discovery, proxy_client)
        self.cert_renewal.aggregator = aggregator
        self.runner = web.ServerRunner(api.build(), shutdown_timeout=3.0)
        await self.runner.setup()
        site = web.TCPSite(self.runner, self.bind, self.port, ssl_context=ssl_ctx, backlog=1024)
        await site.start()
        if is_loopback(self.bind) and not is_loopback(self.advertise_address):
            # pods reach the API through the kubernetes Service: DNAT to this address
            await web.TCPSite(
                self.runner, self.advertise_address, self.port, ssl_context=ssl_ctx, backlog=1024
            ).start()
        interval, ttl = self.endpoint_reconciler
        self.endpoints = EndpointReconciler(
            registry, self.storage, self.clock, self.advertise_address, self.port,
            interval=interval, ttl=ttl,
        )  # fmt: skip
        self._tasks.append(asyncio.create_task(self.endpoints.run(), name="endpoints"))
        root_ca = ca_pem.decode() if ca_pem else None
        lifecycle = Lifecycle(registry, self.event_ttl, root_ca)
        elected = self._lifecycle(lifecycle, ca_pem)  # once per cluster
        self._tasks.append(asyncio.create_task(elected, name="lifecycle"))
        self._tasks.append(asyncio.create_task(self.encryption.run(), name="encryption"))
        self._tasks.append(asyncio.create_task(crds.run(), name="crds"))
        self._tasks.append(asyncio.create_task(aggregator.run(), name="aggregator"))
        if self.scheduler:
            mesos = (
                ["--mesos-port", str(self.mesos_port), "--mesos-bind", self.bind, *self.mesos_args]
                if self.mesos_port
                else []
            )
            self._start_child("scheduler", mesos)
            if self.chronos_port and self.mesos_port:
                master = "127.0.0.1" if self.bind in ("0.0.0.0", "::") else self.bind
                self._start_child(
                    "chronos",
                    [
                        "--port",
                        str(self.chronos_port),
                        "--bind",
                        self.bind,
                        "--master",
                        f"{master}:{self.mesos_port}",
                        *framework_auth.child_args(self.data_dir, "chronos", self.mesos_args),
                    ],
                )
            if self.marathon_port and self.mesos_port:
                master = "127.0.0.1" if self.bind in ("0.0.0.0", "::") else self.bind
                self._start_child(
                    "marathon",
                    [
                        "--port",
                        str(self.marathon_port),
                        "--bind",
                        self.bind,
                        "--master",
                        f"{master}:{self.mesos_port}",
                        *framework_auth.child_args(self.data_dir, "marathon", self.mesos_args),
                    ],
                )
        if self.controllers:
            signing = (  # the csrsigning controller signs with the cluster CA
                ["--cluster-signing-cert-file", str(self.data_dir / "pki" / "ca.crt"),
                 "--cluster-signing-key-file", str(self.data_dir / "pki" / "ca.key")]
                if self.tls
                else []
            )  # fmt: skip
            self._start_child("controller-manager", [*signing, *self.controller_args])
        if self.metrics_server:
            bind = "127.0.0.1" if self.bind in ("", "::") else self.bind
            tls: list[str] = []
            if self.tls:  # a serving certificate from the cluster CA, its APIService's caBundle
                crt, key = await asyncio.to_thread(
                    self.cert_renewal.serving_pair,
                    "metrics-server",
                    ["metrics-server.kube-system.svc", "localhost", "127.0.0.1"],
                )
                tls = ["--tls-cert-file", str(crt), "--tls-private-key-file", str(key)]
            args = ["--port", "0", "--bind", bind, *tls, *self.metrics_args]
            self._start_child("metrics-server", args)
        if self.hollow_nodes:
            self._start_child(
                "agent",
                ["--name", "hollow", "--runtime", "hollow", "--count", str(self.hollow_nodes)],
            )
        for extra in self.agents:
            self._start_child("agent", [*extra, *await self._agent_tls(extra)])
        if self.tls:
            renewal = asyncio.create_task(self.cert_renewal.run(), name="cert-renewal")
            self._tasks.append(renewal)
        log.info("serving on %s (kubeconfig %s)", self.url, self.kubeconfig)

    async def _lifecycle(self, lifecycle: Lifecycle, ca_pem: bytes | None) -> None:
        """The lifecycle loops (GC, namespaces, pod GC, event TTL, compaction): once per
        cluster. With leader election they run only while this server holds the Lease
        ``corral-apiserver-lifecycle``, taken through a loopback client of this very
        server: its renewals travel the same path to the store as the loops' writes, so
        a server cut off from the store stops its loops before another takes over, and
        one elector implementation serves every elected loop."""
        if not self.leader_elect:
            await lifecycle.run()
            return
        lease, renew, retry = self.leader_election
        client = Client(KubeConfig(self.url, self.token, ca_pem), user_agent="corral-apiserver")
        elector = LeaderElector(
            client,
            election.LEASE_NAMES["server"],
            new_identity(),
            lease_duration=lease,
            renew_deadline=renew,
            retry_period=retry,
        )
        fencing = Fencing(lifecycle.registry)

        async def fence() -> None:  # the loops write to the store directly: fence them
            value = client.write_headers.get(FENCE_HEADER, "")
            await fencing.check(value, "", "lifecycle", "", "")

        lifecycle.fence = fence
        try:
            await elector.run(lifecycle.run)
        finally:
            await client.close()

    async def _agent_tls(self, args: Sequence[str]) -> list[str]:
        """A local agent's serving certificate flags (``pki/agent-NAME.{crt,key}`` for its
        ``--name`` and ``--node-ip``, from the cluster CA); none without TLS or a name."""
        flag = {a: b for a, b in zip(args, [*args[1:], ""], strict=True)}
        name = flag.get("--name", "")
        if not self.tls or not name or "--tls-cert-file" in flag:
            return []
        hosts = [name, flag.get("--node-ip") or "127.0.0.1"]
        crt, key = await asyncio.to_thread(  # True: the agent reloads them (renewals)
            self.cert_renewal.serving_pair, f"agent-{name}", hosts, True
        )
        return ["--tls-cert-file", str(crt), "--tls-private-key-file", str(key)]

    async def _issue_identities(self) -> None:
        """Client certificates (issued in a child when due) and kubeconfigs for the
        components this server may start and the local agents (``--name``)."""
        idents, issued = self._identities()
        self.cert_renewal.peer_urls = self.peer_urls
        await asyncio.to_thread(self.cert_renewal.issue_identities, issued, self.url)
        for ident in idents.values():
            path = write_component_kubeconfig(self.data_dir, ident, self.url, self.peer_urls)
            self.component_kubeconfigs[ident.name] = path

    def _identities(self) -> tuple[dict[str, Identity], list[Identity]]:
        """The components' and local agents' identities by name (each gets a kubeconfig),
        and all that are issued: those plus the aggregator's front-proxy client
        certificate (files only, from its own CA)."""
        idents = {i.name: i for i in IDENTITIES}
        for argv in self.agents:
            ident = agent_identity(argv)
            idents[ident.name] = ident
        return idents, [*idents.values(), FRONT_PROXY_CLIENT]

    def _kubeconfig_for(self, command: str, extra: Sequence[str]) -> Path:
        """``corral COMMAND``'s own kubeconfig, or the admin's (no TLS, or no identity)."""
        ident = agent_identity(extra) if command == "agent" else COMMAND_IDENTITIES.get(command)
        found = self.component_kubeconfigs.get(ident.name) if ident is not None else None
        return found or self.kubeconfig

    def _start_child(self, command: str, extra: list[str] | None = None) -> None:
        """``corral COMMAND --kubeconfig ...`` as a child process; it exits when its stdin
        closes, so it never outlives this process (even after a SIGKILL). A command in
        ``in_process`` runs as a supervised task here instead, with the same arguments.
        Each gets its own kubeconfig (``_kubeconfig_for``)."""
        kubeconfig = self._kubeconfig_for(command, extra or [])
        args = ["--kubeconfig", str(kubeconfig), *(extra or [])]
        if command in ELECTED:  # one of them acts per cluster (client/election.py)
            args += election.election_argv(self.leader_elect, *self.leader_election)
        level = ["--log-level", logging.getLevelName(log.getEffectiveLevel())]
        main = self.in_process.get(command)
        if main is not None:
            self.children.start_loop(command, main, [*args, *level])
            return
        argv = [sys.executable, "-m", "corral", command, *args, "--exit-on-stdin-eof", *level]
        self.children.start(command, argv)

    async def _bootstrap(self, registry: Registry) -> None:
        ns_info = registry.by_gvr[("", "v1", "namespaces")]
        opts = WriteOptions(field_manager="corral-apiserver")
        for ns in SYSTEM_NAMESPACES:  # another server starting at once may make them too
            if registry.entry(ns_info, "", ns) is None:
                await _create_once(registry.create(ns_info, "", {"metadata": {"name": ns}}, opts))
        svc_info = registry.by_gvr[("", "v1", "services")]
        if registry.entry(svc_info, "default", "kubernetes") is None:
            svc = {
                "metadata": {
                    "name": "kubernetes",
                    "labels": {"component": "apiserver", "provider": "kubernetes"},
                },
                "spec": {
                    "type": "ClusterIP",
                    "clusterIP": self.kubernetes_ip,
                    "clusterIPs": [self.kubernetes_ip],
                    "ports": [
                        {
                            "name": "https",
                            "port": 443,
                            "protocol": "TCP",
                            "targetPort": self.port or 6443,
                        }
                    ],
                    "sessionAffinity": "None",
                },
            }
            with contextlib.suppress(errors.StatusError):
                await registry.create(svc_info, "default", svc, opts)
        pc_info = registry.by_gvr[("scheduling.k8s.io", "v1", "priorityclasses")]
        for name, value, desc in SYSTEM_PRIORITY_CLASSES:
            if registry.entry(pc_info, "", name) is None:
                pc = {"metadata": {"name": name}, "value": value, "description": desc}
                await _create_once(registry.create(pc_info, "", pc, opts))
        # upstream's rbac/bootstrap-roles post-start hook: default roles and bindings
        await reconcile_rbac_policy(registry)
        await reconcile_component_policy(registry)  # the corral:* roles of our components
        await framework_auth.reconcile(registry)  # the Mesos/Marathon/Chronos faces' roles

    async def stop(self) -> None:
        self.storage.fail_fast()  # an unreachable datastore is not waited for now
        if self.endpoints is not None:  # first: pods stop being sent here
            try:
                async with asyncio.timeout(ENDPOINTS_STOP_WAIT):
                    await self.endpoints.stop()
            except Exception as e:
                log.warning("removing this server from the kubernetes service: %r", e)
        await self.children.stop()
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        if self.runner is not None:
            await self.runner.cleanup()
        if self.api is not None:  # the dashboard's client to the faces
            await self.api.close()
        await self.storage.close()

    async def serve_forever(self) -> None:
        await self.start()
        try:
            await asyncio.Event().wait()
        finally:
            await self.stop()


async def _create_once(create: Awaitable[Any]) -> None:
    """A built-in object's create: AlreadyExists means another server made it."""
    try:
        await create
    except errors.StatusError as e:
        if e.code != 409:
            raise


def corrupt_message(e: StorageCorrupt, data_dir: Path) -> str:
    """What ``corral server`` says about a corrupt database: the file, SQLite's finding,
    and the documented recovery (README "Backup and restore")."""
    detail = str(e).removeprefix(f"{e.key}: ")
    return (
        f"the database {e.key} is corrupt ({detail}); not starting. Recover from a backup: "
        f"corral restore --data-dir {data_dir} BACKUP (README: Backup and restore)"
    )
