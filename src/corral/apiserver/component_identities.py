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
``corral:mesos-master`` (for a master run with a certificate of its own).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from corral.apiserver.rbac_bootstrap import (
    EVENT_VERBS,
    READ,
    cluster_role,
    cluster_role_binding,
    events_rule,
    reconcile_objects,
    rule,
)
from corral.apiserver.store import Registry

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


def _mesos_master_rules() -> list[Obj]:
    """The Mesos master (``mesos/``): its namespace, framework objects, the task pods it
    creates, binds and kills, the executor-message events it consumes, its policy
    ConfigMap, and the framework messages it POSTs to an executor's agent (the agent
    asks ``create`` on ``nodes/proxy``, as for ``kubectl exec``)."""
    return [
        rule("create", "", "namespaces"),
        rule(ANY_WRITE, "mesos.corral.dev", "frameworks"),
        rule(("update", "patch"), "mesos.corral.dev", "frameworks/status"),
        rule(ANY_WRITE, "", ("pods", "configmaps")),
        rule("create", "", ("pods/binding", "bindings")),
        rule((*READ, "delete"), "", "events"),
        rule("create", "", "nodes/proxy"),
    ]


def _marathon_rules() -> list[Obj]:
    """Marathon (``marathon/``): its namespace, its App objects, the ConfigMaps of app
    versions and deployments, and the task pods it reads."""
    return [
        rule("create", "", "namespaces"),
        rule(ANY_WRITE, "marathon.corral.dev", "apps"),
        rule(("update", "patch"), "marathon.corral.dev", "apps/status"),
        rule(ANY_WRITE, "", "configmaps"),
        rule(READ, "", "pods"),
        events_rule(),
    ]


def _chronos_rules() -> list[Obj]:
    """Chronos (``chronos/``): its namespace, its job objects, its framework ConfigMap."""
    return [
        rule("create", "", "namespaces"),
        rule(ANY_WRITE, "chronos.corral.dev", "chronosjobs"),
        rule(("update", "patch"), "chronos.corral.dev", "chronosjobs/status"),
        rule(ANY_WRITE, "", "configmaps"),
        rule(READ, "", "pods"),
        events_rule(),
    ]


def _metrics_server_rules() -> list[Obj]:
    """metrics-server (upstream's ``system:metrics-server`` role) plus the reviews an
    extension server makes (upstream binds ``system:auth-delegator`` for those), and its
    own registration (its Service, Endpoints and APIService: upstream's manifests create
    them, Corral's metrics-server writes them at start)."""
    return [
        rule("get", "", "nodes/metrics"),
        rule(READ, "", ("pods", "nodes")),
        rule("create", "authentication.k8s.io", "tokenreviews"),
        rule("create", "authorization.k8s.io", "subjectaccessreviews"),
        rule("create", "", ("services", "endpoints")),
        rule(("get", "update"), "", "services", names=("metrics-server",)),
        rule(("get", "update"), "", "endpoints", names=("metrics-server",)),
        rule("create", "apiregistration.k8s.io", "apiservices"),
        rule(("get", "update"), "apiregistration.k8s.io", "apiservices",
             names=("v1beta1.metrics.k8s.io",)),
    ]  # fmt: skip


def _node_volumes_rules() -> list[Obj]:
    """The local-path provisioner's node half, which runs in every agent (``agent/claims.py``,
    ``agent/kubelet.py``): watch the local-path PersistentVolumes of its node (a label
    selector), read one again and drop its finalizer once its directory is gone (after
    its pod, so the Node authorizer no longer relates the PV to the node). Upstream's
    local-path-provisioner has its own ServiceAccount with more (PV create and delete)."""
    return [rule(("get", "list", "watch", "patch"), "", "persistentvolumes")]


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
    ]


def cluster_role_bindings() -> list[Obj]:
    """The ``corral:*`` ClusterRoleBindings (fresh objects)."""
    hollow = cluster_role_binding("system:node", users=(HOLLOW_NODES.user,))
    hollow["metadata"]["name"] = "corral:hollow-nodes"
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
        hollow,
        proxier,
    ]


async def reconcile(registry: Registry) -> None:
    """Create or add to every ``corral:*`` ClusterRole and ClusterRoleBinding (after the
    bootstrap policy, at start; never fatal, as the bootstrap policy's)."""
    await reconcile_objects(registry, cluster_roles(), cluster_role_bindings())
