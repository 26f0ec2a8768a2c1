"""The Node authorizer: what an agent (``system:node:NAME`` in ``system:nodes``) may do.

Upstream's ``plugin/pkg/auth/authorizer/node``, first in the API server's authorizer
chain (``server.py``). Any other user gets no opinion. A node may:

- read (get; list/watch only of one named object, i.e. the ``metadata.name=`` field
  selector the request resolver turns into a name) the Secrets and ConfigMaps, and get
  the PVCs, PVs and ResourceClaims, that the pods bound to it use, and create tokens
  (``serviceaccounts/token``) of their ServiceAccounts: "reachable in the graph";
- get/list/watch only its own Node, create/update/patch Nodes and ``nodes/status``
  (NodeRestriction admission narrows writes to its own);
- get pods bound to it, list/watch pods only with ``spec.nodeName=NAME``, create and
  delete pods and update ``pods/status``, create ``pods/eviction`` (admission narrows
  all of these to its own pods);
- get/create/update/patch/delete its own Lease in ``kube-node-lease``;
- everything else by the static ``system:node`` rules (``rbac_bootstrap._node_rules``,
  upstream's ``NodeRules()``), evaluated with ``api/rbac.py``'s rule matching.

Pods and nodes are subdivided as upstream does with the ``AuthorizeNodeWithSelectors``
gate on (beta and default in 1.32). Refusals are "no opinion" with upstream's reasons
(``no relationship found between node 'n1' and this object``), so RBAC is still asked.

The graph (``NodeGraph``) is kept incrementally from the watch cache's change listener:
a pod event costs a dict lookup unless the pod was (re)bound or recreated, when its
spec is decoded once; a request costs a few dict lookups. Instead of upstream's general
DAG it keeps reference counts, which the fixed shape of the graph allows:

    node <- pod <- secret | configmap | pvc | serviceaccount | resourceclaim
                   pvc <- pv <- secret
    node <- volumeattachment
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import orjson

from corral.api.podrefs import (
    dicts,
    pod_names,
    pv_secret_refs,
    sub,
)
from corral.api.rbac import Attributes, Decision, rule_allows
from corral.api.selectors import SelectorError, try_parse_field_selector
from corral.apiserver.rbac_bootstrap import _node_rules
from corral.storage.cache import DELETED, Entry, ResourceCache

if TYPE_CHECKING:
    from corral.apiserver.store import Registry

Obj = dict[str, Any]

NODE_USER_PREFIX = "system:node:"
NODES_GROUP = "system:nodes"
NODE_LEASE_NAMESPACE = "kube-node-lease"
MIRROR_POD_ANNOTATION = "kubernetes.io/config.mirror"

# vertex types, named as upstream's graph names them
SECRET = "secret"
CONFIGMAP = "configmap"
PVC = "pvc"
PV = "pv"
SERVICE_ACCOUNT = "serviceAccount"
RESOURCE_CLAIM = "resourceclaim"
POD = "pod"
VOLUME_ATTACHMENT = "volumeattachment"

#: (type, namespace, name)
Vertex = tuple[str, str, str]


def node_identity(user: str, groups: tuple[str, ...] | list[str]) -> tuple[str, bool]:
    """Upstream's ``NodeIdentity``: (node name, is a node). A node is a user named
    ``system:node:NAME`` in the group ``system:nodes``; the name may be empty."""
    if not user.startswith(NODE_USER_PREFIX) or NODES_GROUP not in groups:
        return "", False
    return user[len(NODE_USER_PREFIX) :], True


# --- what a pod references -----------------------------------------------------------------


def pod_references(pod: Obj) -> tuple[Vertex, ...]:
    """The vertices that point at a (non-mirror) pod, deduplicated."""
    ns = str(sub(pod, "metadata").get("namespace") or "")
    refs: dict[Vertex, None] = {}
    sa = sub(pod, "spec").get("serviceAccountName")
    if sa:
        refs[(SERVICE_ACCOUNT, ns, str(sa))] = None
    named = pod_names(pod)
    for kind, names in (
        (SECRET, named.secrets),
        (CONFIGMAP, named.configmaps),
        (PVC, named.claims),
        (RESOURCE_CLAIM, named.resource_claims),
    ):
        for name in names:
            if name:
                refs[(kind, ns, name)] = None
    return tuple(refs)


# --- the graph -----------------------------------------------------------------------------


class NodeGraph:
    """Which objects each node reaches through the pods bound to it.

    Contract: ``add_pod`` only for a pod with ``spec.nodeName`` (replacing what the pod
    had before), ``delete_pod`` when it goes; ``add_pv``/``delete_pv`` and
    ``set_attachment`` likewise. ``has_path`` is the only query. Not thread-safe: the API
    server's event loop is its one user."""

    def __init__(self) -> None:
        #: (namespace, name) -> (node, vertices pointing at the pod)
        self._pods: dict[tuple[str, str], tuple[str, tuple[Vertex, ...]]] = {}
        #: vertex -> node -> how many pods on that node reference it
        self._reach: dict[Vertex, dict[str, int]] = {}
        #: pv name -> (claim namespace, claim name), secrets it names
        self._pvs: dict[str, tuple[tuple[str, str], tuple[tuple[str, str], ...]]] = {}
        #: (secret namespace, name) -> PVs naming it
        self._secret_pvs: dict[tuple[str, str], set[str]] = {}
        #: volumeattachment name -> node
        self._attachments: dict[str, str] = {}

    # --- pods ----------------------------------------------------------------------------
    def add_pod(self, pod: Obj) -> None:
        """(Re)record a pod bound to ``spec.nodeName``; a mirror pod reaches nothing
        (defence in depth: NodeRestriction refuses mirror pods naming objects)."""
        meta = sub(pod, "metadata")
        ns, name = str(meta.get("namespace") or ""), str(meta.get("name") or "")
        node = str(sub(pod, "spec").get("nodeName") or "")
        self.delete_pod(ns, name)
        if not node:
            return
        mirror = MIRROR_POD_ANNOTATION in sub(meta, "annotations")
        refs = () if mirror else pod_references(pod)
        self._pods[(ns, name)] = (node, refs)
        for v in refs:
            counts = self._reach.setdefault(v, {})
            counts[node] = counts.get(node, 0) + 1

    def delete_pod(self, namespace: str, name: str) -> None:
        old = self._pods.pop((namespace, name), None)
        if old is None:
            return
        node, refs = old
        for v in refs:
            counts = self._reach[v]
            if counts[node] == 1:
                del counts[node]
                if not counts:
                    del self._reach[v]
            else:
                counts[node] -= 1

    def pod_node(self, namespace: str, name: str) -> str:
        """The node a recorded pod is bound to ("" if none)."""
        got = self._pods.get((namespace, name))
        return got[0] if got else ""

    # --- persistent volumes and attachments ------------------------------------------------
    def add_pv(self, pv: Obj) -> None:
        """(Re)record a PV: reachable through its bound claim, and so the Secrets it names."""
        name = str(sub(pv, "metadata").get("name") or "")
        self.delete_pv(name)
        ref = sub(sub(pv, "spec"), "claimRef")
        if not ref:
            return
        claim = (str(ref.get("namespace") or ""), str(ref.get("name") or ""))
        secrets = tuple(dict.fromkeys(pv_secret_refs(pv)))
        self._pvs[name] = (claim, secrets)
        for s in secrets:
            self._secret_pvs.setdefault(s, set()).add(name)

    def delete_pv(self, name: str) -> None:
        old = self._pvs.pop(name, None)
        if old is None:
            return
        for s in old[1]:
            pvs = self._secret_pvs[s]
            pvs.discard(name)
            if not pvs:
                del self._secret_pvs[s]

    def set_attachment(self, name: str, node: str) -> None:
        """A VolumeAttachment's node ("" or a delete: forget it)."""
        if node:
            self._attachments[name] = node
        else:
            self._attachments.pop(name, None)

    # --- the query -------------------------------------------------------------------------
    def _reaches(self, node: str, v: Vertex) -> bool:
        counts = self._reach.get(v)
        return counts is not None and node in counts

    def _pv_reaches(self, node: str, pv: str) -> bool:
        got = self._pvs.get(pv)
        return got is not None and self._reaches(node, (PVC, *got[0]))

    def has_path(self, node: str, kind: str, namespace: str, name: str) -> bool:
        """Whether the object leads to ``node`` through the graph."""
        if kind == POD:
            return self.pod_node(namespace, name) == node
        if kind == PV:
            return self._pv_reaches(node, name)
        if kind == VOLUME_ATTACHMENT:
            return self._attachments.get(name) == node
        if self._reaches(node, (kind, namespace, name)):
            return True
        if kind == SECRET:
            return any(
                self._pv_reaches(node, pv) for pv in self._secret_pvs.get((namespace, name), ())
            )
        return False

    # --- following the watch cache ---------------------------------------------------------
    def follow(
        self, pods: ResourceCache, pvs: ResourceCache | None, attachments: ResourceCache | None
    ) -> Callable[[str, Entry, Entry | None, ResourceCache], None]:
        """Load what the caches hold now and return the change listener that keeps the
        graph current (append it to ``WatchCache.listeners``)."""
        for e in list(pods.entries.values()):
            if e.fields.get("spec.nodeName"):
                self.add_pod(e.obj())
        if pvs is not None:
            for e in list(pvs.entries.values()):
                self.add_pv(e.obj())
        if attachments is not None:
            for e in list(attachments.entries.values()):
                self.set_attachment(e.name, str(sub(e.obj(), "spec").get("nodeName") or ""))
        # pods whose templated resource claims may still gain names in their status
        templated: set[str] = set()

        def on_change(type_: str, e: Entry, prev: Entry | None, rc: ResourceCache) -> None:
            if rc is pods:
                if type_ == DELETED:
                    templated.discard(e.key)
                    self.delete_pod(e.namespace, e.name)
                    return
                node = e.fields.get("spec.nodeName", "")
                if (
                    prev is not None
                    and prev.uid == e.uid
                    and prev.fields.get("spec.nodeName", "") == node
                    and e.key not in templated
                ):
                    return  # everything a bound pod references is immutable
                if not node:
                    self.delete_pod(e.namespace, e.name)
                    return
                pod = orjson.loads(e.raw)
                self.add_pod(pod)
                if any(
                    "resourceClaimTemplateName" in c
                    for c in dicts(sub(pod, "spec").get("resourceClaims"))
                ):
                    templated.add(e.key)
                else:
                    templated.discard(e.key)
            elif rc is pvs:
                if type_ == DELETED:
                    self.delete_pv(e.name)
                else:
                    self.add_pv(orjson.loads(e.raw))
            elif rc is attachments:
                node = (
                    ""
                    if type_ == DELETED
                    else str(sub(orjson.loads(e.raw), "spec").get("nodeName") or "")
                )
                self.set_attachment(e.name, node)

        return on_change


# --- the authorizer ------------------------------------------------------------------------


def _field_equals(attrs: Attributes, field: str, value: str) -> bool:
    """Whether the request's field selector requires ``field`` to equal ``value``."""
    raw = attrs.field_selector
    if not raw:
        return False
    try:
        sel = try_parse_field_selector(raw)
    except SelectorError:
        return False
    return any(
        r.field == field and r.operator == "=" and r.value == value for r in sel.requirements
    )


def _no(reason: str = "") -> Decision:
    return Decision(False, reason)


_ALLOW = Decision(True)


class NodeAuthorizer:
    """``authorize(attrs) -> Decision`` for nodes; no opinion for everyone else."""

    def __init__(
        self,
        registry: Registry | None = None,
        *,
        graph: NodeGraph | None = None,
        rules: list[Obj] | None = None,
    ) -> None:
        """Over ``registry``'s watch caches (the graph follows them from now on), or a
        given ``graph`` (tests)."""
        self.graph = graph or NodeGraph()
        self.rules = rules if rules is not None else _node_rules()
        if registry is not None:
            caches = _caches(registry)
            listener = self.graph.follow(caches["pods"], caches.get("pvs"), caches.get("vas"))
            registry.cache.listeners.append(listener)

    def authorize(self, attrs: Attributes) -> Decision:
        node, is_node = node_identity(attrs.user, attrs.groups)
        if not is_node:
            return _no()
        if not node:
            return _no(f'unknown node for user "{attrs.user}"')
        if attrs.resource_request:
            handler = _HANDLERS.get((attrs.api_group, attrs.resource))
            if handler is not None:
                return handler(self, node, attrs)
        if any(rule_allows(attrs, r) for r in self.rules):
            return _ALLOW
        return _no()

    # --- subdivided resources --------------------------------------------------------------
    def _related(self, node: str, kind: str, attrs: Attributes) -> Decision:
        if not attrs.name:
            return _no("No Object name found")
        if self.graph.has_path(node, kind, attrs.namespace, attrs.name):
            return _ALLOW
        return _no(f"no relationship found between node '{node}' and this object")

    def _get(self, node: str, kind: str, attrs: Attributes) -> Decision:
        if attrs.verb != "get":
            return _no("can only get individual resources of this type")
        if attrs.subresource:
            return _no("cannot get subresource")
        return self._related(node, kind, attrs)

    def _read_namespaced(self, node: str, kind: str, attrs: Attributes) -> Decision:
        if attrs.verb not in ("get", "list", "watch"):
            return _no("can only read resources of this type")
        if attrs.subresource:
            return _no("cannot read subresource")
        if not attrs.namespace:
            return _no("can only read namespaced object of this type")
        return self._related(node, kind, attrs)

    def secrets(self, node: str, attrs: Attributes) -> Decision:
        return self._read_namespaced(node, SECRET, attrs)

    def configmaps(self, node: str, attrs: Attributes) -> Decision:
        return self._read_namespaced(node, CONFIGMAP, attrs)

    def pvcs(self, node: str, attrs: Attributes) -> Decision:
        if attrs.subresource == "status":
            if attrs.verb not in ("update", "patch"):
                return _no("can only get/update/patch this type")
            return self._related(node, PVC, attrs)
        return self._get(node, PVC, attrs)

    def pvs(self, node: str, attrs: Attributes) -> Decision:
        return self._get(node, PV, attrs)

    def resource_claims(self, node: str, attrs: Attributes) -> Decision:
        return self._get(node, RESOURCE_CLAIM, attrs)

    def volume_attachments(self, node: str, attrs: Attributes) -> Decision:
        return self._get(node, VOLUME_ATTACHMENT, attrs)

    def service_accounts(self, node: str, attrs: Attributes) -> Decision:
        if attrs.verb != "create" or not attrs.name:
            return _no("can only create tokens for individual service accounts")
        if attrs.subresource != "token":
            return _no("can only create token subresource of serviceaccount")
        return self._related(node, SERVICE_ACCOUNT, attrs)

    def leases(self, node: str, attrs: Attributes) -> Decision:
        if attrs.verb not in ("get", "create", "update", "patch", "delete"):
            return _no("can only get, create, update, patch, or delete a node lease")
        if attrs.namespace != NODE_LEASE_NAMESPACE:
            return _no(f'can only access leases in the "{NODE_LEASE_NAMESPACE}" system namespace')
        # a create carries no name: NodeRestriction checks the object's
        if attrs.verb != "create" and attrs.name != node:
            return _no("can only access node lease with the same name as the requesting node")
        return _ALLOW

    def csinodes(self, node: str, attrs: Attributes) -> Decision:
        if attrs.verb not in ("get", "create", "update", "patch", "delete"):
            return _no("can only get, create, update, patch, or delete a CSINode")
        if attrs.subresource:
            return _no("cannot authorize CSINode subresources")
        if attrs.verb != "create" and attrs.name != node:
            return _no("can only access CSINode with the same name as the requesting node")
        return _ALLOW

    def nodes(self, node: str, attrs: Attributes) -> Decision:
        if attrs.subresource == "":
            if attrs.verb in ("create", "update", "patch"):
                return _ALLOW  # NodeRestriction: only its own
            if attrs.verb in ("get", "list", "watch"):
                if attrs.name == node:
                    return _ALLOW
                if not attrs.name:
                    return _no(f"node '{node}' cannot read all nodes, only its own Node object")
                return _no(f"node '{node}' cannot read '{attrs.name}', only its own Node object")
        elif attrs.subresource == "status" and attrs.verb in ("update", "patch"):
            return _ALLOW  # NodeRestriction: only its own
        return _no()

    def pods(self, node: str, attrs: Attributes) -> Decision:
        sub, verb = attrs.subresource, attrs.verb
        if sub == "":
            if verb == "get":
                return self._get(node, POD, attrs)
            if verb in ("list", "watch"):
                if _field_equals(attrs, "spec.nodeName", node):
                    return _ALLOW
                if attrs.name:
                    return self._related(node, POD, attrs)
                return _no("can only list/watch pods with spec.nodeName field selector")
            if verb in ("create", "delete"):
                return _ALLOW  # mirror pods; NodeRestriction: bound to itself
        elif (sub == "status" and verb in ("update", "patch")) or (
            sub == "eviction" and verb == "create"
        ):
            return _ALLOW  # NodeRestriction: its own pods
        return _no()


_HANDLERS: Mapping[tuple[str, str], Callable[[NodeAuthorizer, str, Attributes], Decision]] = {
    ("", "secrets"): NodeAuthorizer.secrets,
    ("", "configmaps"): NodeAuthorizer.configmaps,
    ("", "persistentvolumeclaims"): NodeAuthorizer.pvcs,
    ("", "persistentvolumes"): NodeAuthorizer.pvs,
    ("resource.k8s.io", "resourceclaims"): NodeAuthorizer.resource_claims,
    ("storage.k8s.io", "volumeattachments"): NodeAuthorizer.volume_attachments,
    ("", "serviceaccounts"): NodeAuthorizer.service_accounts,
    ("coordination.k8s.io", "leases"): NodeAuthorizer.leases,
    ("storage.k8s.io", "csinodes"): NodeAuthorizer.csinodes,
    ("", "nodes"): NodeAuthorizer.nodes,
    ("", "pods"): NodeAuthorizer.pods,
}


def _caches(registry: Registry) -> dict[str, ResourceCache]:
    """The watch caches the graph follows (pods always; PVs and VolumeAttachments when
    served)."""
    out: dict[str, ResourceCache] = {}
    for key, gvr in (
        ("pods", ("", "v1", "pods")),
        ("pvs", ("", "v1", "persistentvolumes")),
        ("vas", ("storage.k8s.io", "v1", "volumeattachments")),
    ):
        info = registry.by_gvr.get(gvr)
        if info is not None:
            out[key] = registry.rcache(info)
    return out
