"""Who each Corral component is, and the RBAC that lets exactly that component work.

``corral server`` / ``corral up`` give every component its own client certificate
(``apiserver/client_certs.py`` issues them from the cluster CA; the CN is the user and
each O a group, as the x509 authenticator reads them) instead of the one admin token.
``IDENTITIES`` names them; ``node_identity`` makes a node agent's.

Upstream's bootstrap policy (``apiserver/rbac_bootstrap.py``) already covers the
scheduler (``system:kube-scheduler``, ``system:volume-scheduler``) and the nodes (the
``system:node`` role, narrowed by the Node authorizer). What upstream spreads over one
ServiceAccount per controller (the ``system:controller:*`` roles) runs here under one
identity, and the Mesos master, Marathon, Chronos and the hollow-node process have no
upstream role at all: ``cluster_roles``/``cluster_role_bindings`` add a ``corral:*``
ClusterRole and ClusterRoleBinding for each, with what their code calls (grep their
``client.create/get/...`` calls when one changes). ``reconcile`` writes them at start
with the bootstrap policy's rules (added to, never narrowed; ``autoupdate: "false"``
keeps a user's edits), and never touches upstream's own objects.

The agents (group ``system:nodes``) also get upstream's ``system:node-proxier`` (they run
kube-proxy's and DNS' informers and read every Node for host-gw routes) and
``corral:node-volumes`` (the node half of local-path volumes) through ``corral:*``
bindings: the Node authorizer has no opinion on those reads, and is not widened.

The Mesos master runs inside the scheduler process with the scheduler's identity:
``corral:mesos-master`` is bound to both ``system:kube-scheduler`` and the user
``corral:mesos-master`` (for a master run with a certificate of its own). It reaches an
executor's agent (``POST /mesos/executor-message``) with ``create`` on ``nodes/mesos``, a
Corral-specific subresource the agent asks for that path only (``agent/auth.py``), so
the scheduler's identity cannot ``create nodes/proxy`` (exec, attach, port-forward).

Least privilege by namespace: what the Mesos master, Marathon, Chronos and
metrics-server write lives in one namespace each (``mesos``, ``marathon``, ``chronos``,
``kube-system``), so those rules are namespaced ``corral:*`` Roles and RoleBindings
there (``roles``/``role_bindings``); the ClusterRoles keep only cluster-scoped objects
(their namespace, Frameworks, the APIService). ``reconcile`` creates a missing namespace
first, as upstream's bootstrap policy does for its namespaced Roles
(``tryEnsureNamespace``), and strips from the ``corral:*`` ClusterRoles the cluster-wide
rules earlier versions granted (``RETIRED_RULES``), unless ``autoupdate: "false"``.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from typing import Any

from corral.api import errors
from corral.api.rbac import RBAC_GROUP
from corral.apiserver.rbac_bootstrap import (
    AUTOUPDATE,
    EVENT_VERBS,
    READ,
    cluster_role,
    cluster_role_binding,
    events_rule,
    reconcile_objects,
    reconciled_binding,
    reconciled_role,
    rule,
)
from corral.apiserver.store import Registry, WriteOptions

log = logging.getLogger("corral.apiserver.component_identities")

Obj = dict[str, Any]

NODES_GROUP = "system:nodes"
MASTERS_GROUP = "system:masters"
WRITE = ("create", "update", "patch", "delete")


@dataclass(frozen=True)
class Identity:
    """A component's user: ``name`` is its files' stem (``pki/NAME.kubeconfig``,
    ``pki/NAME.crt``, ``pki/NAME.key``), ``user`` the certificate's CN, ``groups`` its Os,
    ``ca`` the stem of the CA that issues it (``pki/CA.crt``)."""

    name: str
    user: str
    groups: tuple[str, ...] = ()
    ca: str = "ca"


SCHEDULER = Identity("scheduler", "system:kube-scheduler")
CONTROLLER_MANAGER = Identity("controller-manager", "system:kube-controller-manager")
HOLLOW_NODES = Identity("hollow-nodes", "corral:hollow-nodes", (NODES_GROUP,))
MARATHON = Identity("marathon", "corral:marathon")
CHRONOS = Identity("chronos", "corral:chronos")
#: ``metrics-server-client``: ``pki/metrics-server.{crt,key}`` is its serving pair
METRICS_SERVER = Identity("metrics-server-client", "system:metrics-server")
#: the API server's client certificate towards the agents (files only, no kubeconfig)
KUBELET_CLIENT = Identity(
    "apiserver-kubelet-client", "kube-apiserver-kubelet-client", (MASTERS_GROUP,)
)
MESOS_MASTER_USER = "corral:mesos-master"
#: the aggregator's client certificate towards extension API servers (kubeadm's
#: ``front-proxy-client`` from its own ``front-proxy-ca``; files only, no kubeconfig)
FRONT_PROXY_CA = "front-proxy-ca"
FRONT_PROXY_CLIENT = Identity("front-proxy-client", "front-proxy-client", (), FRONT_PROXY_CA)

#: the identities a server issues whatever runs (a kubeconfig each)
IDENTITIES = (SCHEDULER, CONTROLLER_MANAGER, HOLLOW_NODES, MARATHON, CHRONOS, METRICS_SERVER)
#: ``corral COMMAND`` -> its identity (an agent's depends on its ``--name``/``--count``)
COMMAND_IDENTITIES = {
    "scheduler": SCHEDULER,
    "controller-manager": CONTROLLER_MANAGER,
    "marathon": MARATHON,
    "chronos": CHRONOS,
    "metrics-server": METRICS_SERVER,
}


def node_identity(node: str) -> Identity:
    """A node agent's identity: ``system:node:NODE`` in ``system:nodes``, as a kubelet's."""
    return Identity(f"node-{node}", f"system:node:{node}", (NODES_GROUP,))


# --- the corral:* policy ------------------------------------------------------------------

ANY_WRITE = (*READ, *WRITE)


def _controller_manager_rules() -> list[Obj]:
    """The union of what Corral's controllers do (upstream gives each controller its own
    ``system:controller:*`` role; here they share the controller manager's identity)."""
    return [
        events_rule(),
        rule(EVENT_VERBS, "events.k8s.io", "events"),
        rule(("get", "list", "watch"), "*", "*"),
        rule(ANY_WRITE, "", ("pods", "endpoints", "persistentvolumes",
                             "persistentvolumeclaims", "serviceaccounts", "configmaps",
                             "secrets")),
        rule(("update", "patch"), "", ("pods/status", "nodes", "nodes/status",
                                       "services/status", "persistentvolumes/status",
                                       "persistentvolumeclaims/status")),
        rule("delete", "", "nodes"),
        rule(("update", "patch"), "", ("replicationcontrollers/status",
                                       "replicationcontrollers/finalizers")),
        rule("create", "", ("pods/eviction", "serviceaccounts/token")),
        rule(ANY_WRITE, "apps", ("replicasets", "deployments", "daemonsets", "statefulsets",
                                 "controllerrevisions")),
        rule(("update", "patch"), "apps", ("replicasets/status", "deployments/status",
                                           "daemonsets/status", "statefulsets/status",
                                           "deployments/finalizers", "replicasets/finalizers",
                                           "daemonsets/finalizers",
                                           "statefulsets/finalizers")),
        rule(ANY_WRITE, "batch", ("jobs", "cronjobs")),
        rule(("update", "patch"), "batch", ("jobs/status", "cronjobs/status",
                                            "jobs/finalizers", "cronjobs/finalizers")),
        rule(ANY_WRITE, "discovery.k8s.io", "endpointslices"),
        rule(("update", "patch"), "autoscaling", "horizontalpodautoscalers/status"),
        rule(("get", "update", "patch"), "*", "*/scale"),
        rule(("get", "list"), ("metrics.k8s.io", "custom.metrics.k8s.io",
                               "external.metrics.k8s.io"), "*"),
        rule(ANY_WRITE, "storage.k8s.io", "storageclasses"),
        rule(("escalate", "get", "list", "watch", "update", "patch"),
             "rbac.authorization.k8s.io", "clusterroles"),
        rule(("update", "patch"), "certificates.k8s.io",
             ("certificatesigningrequests/approval", "certificatesigningrequests/status")),
        rule(("approve", "sign"), "certificates.k8s.io", "signers"),
        rule(("create", "get", "update", "patch", "delete"), "coordination.k8s.io",
             "leases"),
        rule("create", "authentication.k8s.io", "tokenreviews"),
        rule("create", "authorization.k8s.io", "subjectaccessreviews"),
    ]  # fmt: skip


MESOS_NAMESPACE = "mesos"  # corral.api.mesos.NAMESPACE
MARATHON_NAMESPACE = "marathon"  # corral.marathon.store.NAMESPACE
CHRONOS_NAMESPACE = "chronos"  # corral.chronos.service.NAMESPACE
METRICS_NAMESPACE = "kube-system"  # corral.metrics.server.NAMESPACE


def _mesos_master_rules() -> list[Obj]:
    """The Mesos master (``mesos/``), cluster-wide: its namespace, framework objects, and
    the framework messages it POSTs to an executor's agent (the agent asks ``create`` on
    ``nodes/mesos`` for that path alone: not ``nodes/proxy``, which runs commands)."""
    return [
        rule("create", "", "namespaces"),
        rule(ANY_WRITE, "mesos.corral.dev", "frameworks"),
        rule(("update", "patch"), "mesos.corral.dev", "frameworks/status"),
        rule("create", "", "nodes/mesos"),
    ]


def _mesos_master_namespace_rules() -> list[Obj]:
    """In ``mesos``: the task pods it creates, binds and kills, its policy ConfigMap, the
    executor-message events it consumes (``mesos/calls.py``, ``master.py``)."""
    return [
        rule(ANY_WRITE, "", ("pods", "configmaps")),
        rule("create", "", ("pods/binding", "bindings")),
        rule((*READ, "delete"), "", "events"),
    ]


def _marathon_rules() -> list[Obj]:
    """Marathon (``marathon/``), cluster-wide: its namespace."""
    return [rule("create", "", "namespaces")]


def _marathon_namespace_rules() -> list[Obj]:
    """In ``marathon``: its App objects, the ConfigMaps of app versions and deployments."""
    return [
        rule(ANY_WRITE, "marathon.corral.dev", "apps"),
        rule(("update", "patch"), "marathon.corral.dev", "apps/status"),
        rule(ANY_WRITE, "", "configmaps"),
        events_rule(),
    ]


def _chronos_rules() -> list[Obj]:
    """Chronos (``chronos/``), cluster-wide: its namespace."""
    return [rule("create", "", "namespaces")]


def _chronos_namespace_rules() -> list[Obj]:
    """In ``chronos``: its job objects, its framework ConfigMap."""
    return [
        rule(ANY_WRITE, "chronos.corral.dev", "chronosjobs"),
        rule(("update", "patch"), "chronos.corral.dev", "chronosjobs/status"),
        rule(ANY_WRITE, "", "configmaps"),
        events_rule(),
    ]


def _metrics_server_rules() -> list[Obj]:
    """metrics-server (upstream's ``system:metrics-server`` role) plus the reviews an
    extension server makes (upstream binds ``system:auth-delegator`` for those), and its
    APIService (upstream's manifests create it, Corral's metrics-server writes it at
    start). RBAC cannot limit ``create`` by name (the name is not in a create's request
    attributes), so ``create apiservices`` stays cluster-wide; reading and updating one
    is limited to metrics-server's own."""
    return [
        rule("get", "", "nodes/metrics"),
        rule(READ, "", ("pods", "nodes")),
        rule("create", "authentication.k8s.io", "tokenreviews"),
        rule("create", "authorization.k8s.io", "subjectaccessreviews"),
        rule("create", "apiregistration.k8s.io", "apiservices"),
        rule(("get", "update"), "apiregistration.k8s.io", "apiservices",
             names=("v1beta1.metrics.k8s.io",)),
    ]  # fmt: skip


def _metrics_server_namespace_rules() -> list[Obj]:
    """In ``kube-system``: its Service and Endpoints (created, then only its own read and
    updated)."""
    return [
        rule("create", "", ("services", "endpoints")),
        rule(("get", "update"), "", "services", names=("metrics-server",)),
        rule(("get", "update"), "", "endpoints", names=("metrics-server",)),
    ]


#: rules earlier versions of the ``corral:*`` ClusterRoles held, now namespaced Roles or
#: gone: ``reconcile`` takes them out of an existing ClusterRole
RETIRED_RULES: dict[str, list[Obj]] = {
    "corral:mesos-master": [
        rule(ANY_WRITE, "", ("pods", "configmaps")),
        rule("create", "", ("pods/binding", "bindings")),
        rule((*READ, "delete"), "", "events"),
        rule("create", "", "nodes/proxy"),
    ],
    "corral:marathon": [
        rule(ANY_WRITE, "marathon.corral.dev", "apps"),
        rule(("update", "patch"), "marathon.corral.dev", "apps/status"),
        rule(ANY_WRITE, "", "configmaps"),
        rule(READ, "", "pods"),
        events_rule(),
    ],
    "corral:chronos": [
        rule(ANY_WRITE, "chronos.corral.dev", "chronosjobs"),
        rule(("update", "patch"), "chronos.corral.dev", "chronosjobs/status"),
        rule(ANY_WRITE, "", "configmaps"),
        rule(READ, "", "pods"),
        events_rule(),
    ],
    "corral:metrics-server": [
        rule("create", "", ("services", "endpoints")),
        rule(("get", "update"), "", "services", names=("metrics-server",)),
        rule(("get", "update"), "", "endpoints", names=("metrics-server",)),
    ],
}


def _node_volumes_rules() -> list[Obj]:
    """The local-path provisioner's node half, which runs in every agent (``agent/claims.py``,
    ``agent/kubelet.py``): watch the local-path PersistentVolumes of its node (a label
    selector), read one again and drop its finalizer once its directory is gone (after
    its pod, so the Node authorizer no longer relates the PV to the node). Upstream's
    local-path-provisioner has its own ServiceAccount with more (PV create and delete)."""
    return [rule(("get", "list", "watch", "patch"), "", "persistentvolumes")]


def _hollow_nodes_rules() -> list[Obj]:
    """The hollow-node process (``agent/hollow.py``, ``agent/node.py``): register and
    heartbeat its Nodes and their Leases, watch the pods bound to them, write their
    status and finish their deletion. Not upstream's ``system:node``: that role is meant
    to be narrowed by the Node authorizer and NodeRestriction, which do not know this
    user (it is no ``system:node:NAME``), so bound directly it would read every Secret,
    mint any ServiceAccount's token and create any pod."""
    return [
        rule(("create", "get", "list", "watch", "update", "patch"), "", "nodes"),
        rule(("update", "patch"), "", "nodes/status"),
        rule((*READ, "delete"), "", "pods"),
        rule(("update", "patch"), "", "pods/status"),
        rule(("get", "create", "update", "patch"), "coordination.k8s.io", "leases"),
        events_rule(),
    ]


def _scheduler_rules() -> list[Obj]:
    """What Corral's scheduler reads beyond upstream's ``system:kube-scheduler`` and
    ``system:volume-scheduler`` (its PriorityClass informer)."""
    return [rule(READ, "scheduling.k8s.io", "priorityclasses")]


def cluster_roles() -> list[Obj]:
    """The ``corral:*`` ClusterRoles (fresh objects)."""
    return [
        cluster_role("corral:kube-scheduler", _scheduler_rules()),
        cluster_role("corral:controller-manager", _controller_manager_rules()),
        cluster_role("corral:mesos-master", _mesos_master_rules()),
        cluster_role("corral:marathon", _marathon_rules()),
        cluster_role("corral:chronos", _chronos_rules()),
        cluster_role("corral:metrics-server", _metrics_server_rules()),
        cluster_role("corral:node-volumes", _node_volumes_rules()),
        cluster_role("corral:hollow-nodes", _hollow_nodes_rules()),
    ]


def cluster_role_bindings() -> list[Obj]:
    """The ``corral:*`` ClusterRoleBindings (fresh objects)."""
    # every agent runs kube-proxy's and cluster DNS' informers (Services, EndpointSlices,
    # all Nodes for its host-gw routes): upstream's kube-proxy role, for the nodes' group
    proxier = cluster_role_binding("system:node-proxier", groups=(NODES_GROUP,))
    proxier["metadata"]["name"] = "corral:node-proxier"
    return [
        cluster_role_binding("corral:kube-scheduler", users=(SCHEDULER.user,)),
        cluster_role_binding("corral:controller-manager", users=(CONTROLLER_MANAGER.user,)),
        cluster_role_binding("corral:mesos-master", users=(SCHEDULER.user, MESOS_MASTER_USER)),
        cluster_role_binding("corral:marathon", users=(MARATHON.user,)),
        cluster_role_binding("corral:chronos", users=(CHRONOS.user,)),
        cluster_role_binding("corral:metrics-server", users=(METRICS_SERVER.user,)),
        cluster_role_binding("corral:node-volumes", groups=(NODES_GROUP,)),
        cluster_role_binding("corral:hollow-nodes", users=(HOLLOW_NODES.user,)),
        proxier,
    ]


def _namespaced(kind: str, namespace: str, obj: Obj) -> Obj:
    obj["metadata"]["namespace"] = namespace
    if kind == "RoleBinding":
        obj["roleRef"]["kind"] = "Role"
    return obj


def roles() -> list[Obj]:
    """The namespaced ``corral:*`` Roles (fresh objects, ``metadata.namespace`` set)."""
    return [
        _namespaced("Role", ns, cluster_role(name, rules))
        for ns, name, rules in (
            (MESOS_NAMESPACE, "corral:mesos-master", _mesos_master_namespace_rules()),
            (MARATHON_NAMESPACE, "corral:marathon", _marathon_namespace_rules()),
            # Marathon lists its apps' task pods (``marathon/store.py``)
            (MESOS_NAMESPACE, "corral:marathon", [rule(READ, "", "pods")]),
            (CHRONOS_NAMESPACE, "corral:chronos", _chronos_namespace_rules()),
            (METRICS_NAMESPACE, "corral:metrics-server", _metrics_server_namespace_rules()),
        )
    ]


def role_bindings() -> list[Obj]:
    """A RoleBinding of each of ``roles`` (same name and namespace) to its users."""
    users = {
        "corral:mesos-master": (SCHEDULER.user, MESOS_MASTER_USER),
        "corral:marathon": (MARATHON.user,),
        "corral:chronos": (CHRONOS.user,),
        "corral:metrics-server": (METRICS_SERVER.user,),
    }
    out = []
    for role in roles():
        name, ns = role["metadata"]["name"], role["metadata"]["namespace"]
        out.append(_namespaced("RoleBinding", ns, cluster_role_binding(name, users=users[name])))
    return out


def without_retired(existing: Obj) -> Obj | None:
    """``existing`` (a ``corral:*`` ClusterRole) without its ``RETIRED_RULES``, or None
    when it holds none of them or opts out (autoupdate "false")."""
    meta = existing.get("metadata") or {}
    retired = RETIRED_RULES.get(meta.get("name", ""), [])
    if (meta.get("annotations") or {}).get(AUTOUPDATE) == "false" or not retired:
        return None
    rules = existing.get("rules") or []
    kept = [r for r in rules if r not in retired]
    if len(kept) == len(rules):
        return None
    return {**copy.deepcopy(existing), "rules": kept}


async def _retire(registry: Registry, opts: WriteOptions) -> None:
    info = registry.by_gvr[(RBAC_GROUP, "v1", "clusterroles")]
    for name in RETIRED_RULES:
        entry = registry.entry(info, "", name)
        out = without_retired(registry.decode(info, entry)) if entry is not None else None
        if out is not None:
            await registry.update(info, "", name, out, opts)
            log.info("corral policy: cluster-wide rules of %s narrowed", name)


async def _reconcile_namespaced(registry: Registry, opts: WriteOptions) -> None:
    """Each namespace (created when missing), then each Role and RoleBinding."""
    ns_info = registry.by_gvr[("", "v1", "namespaces")]
    for ns in sorted({r["metadata"]["namespace"] for r in roles()}):
        if registry.entry(ns_info, "", ns) is None:
            try:
                await registry.create(ns_info, "", {"metadata": {"name": ns}}, opts)
            except errors.StatusError as e:
                if e.code != 409:  # a component made it meanwhile
                    raise
    for plural, objs in (("roles", roles()), ("rolebindings", role_bindings())):
        info = registry.by_gvr[(RBAC_GROUP, "v1", plural)]
        for expected in objs:
            name, ns = expected["metadata"]["name"], expected["metadata"]["namespace"]
            try:
                entry = registry.entry(info, ns, name)
                if entry is None:
                    await registry.create(info, ns, copy.deepcopy(expected), opts)
                    continue
                existing = registry.decode(info, entry)
                if plural == "roles":
                    out, recreate = reconciled_role(existing, expected), False
                else:
                    out, recreate = reconciled_binding(existing, expected)
                if recreate:  # someone else's binding of that name: left alone
                    log.warning("corral policy: RoleBinding %s/%s binds another role", ns, name)
                elif out is not None:
                    await registry.update(info, ns, name, out, opts)
            except errors.StatusError as e:  # the others still go through
                log.warning("corral policy: %s %s/%s: %s", info.kind, ns, name, e.message)


async def reconcile(registry: Registry) -> None:
    """Create or add to every ``corral:*`` ClusterRole and ClusterRoleBinding, narrow
    the ClusterRoles of earlier versions, then the namespaced Roles and RoleBindings in
    their namespaces (after the bootstrap policy, at start; never fatal, as the
    bootstrap policy's)."""
    await reconcile_objects(registry, cluster_roles(), cluster_role_bindings())
    opts = WriteOptions(field_manager="corral-apiserver")
    for step in (_retire, _reconcile_namespaced):
        try:
            await step(registry, opts)
        except Exception:  # the server must start regardless; the next start retries
            log.exception("corral policy: %s failed", step.__name__)
