"""NodeRestriction admission: a node writes only what is its own.

Upstream's ``plugin/pkg/admission/noderestriction``, one plugin of the admission chain
(``admission_chain.py``) registered by ``server.py`` for pods, nodes, PVCs,
serviceaccounts (``token``), leases and csinodes. It acts on CREATE, UPDATE and DELETE
of users the Node authorizer calls nodes (``node_authz.node_identity``) and lets
everyone else, and the API server's own writes (``req.user`` None), through. The Node
authorizer lets a node create/update Nodes, create/delete pods, update ``pods/status``
and create evictions, tokens and Leases at all; this plugin narrows each to the node's
own objects:

- pods: create only mirror pods (``kubernetes.io/config.mirror``) bound to itself,
  controller-owned by its own Node (uid checked), naming no ServiceAccount, Secret,
  ConfigMap, PVC or ClusterTrustBundle; delete, evict and update the status (labels
  and resource claim statuses unchanged) only of pods bound to it;
- nodes: only its own; not create it with a ``configSource``; never change its taints,
  nor set ``node-restriction.kubernetes.io/`` labels or ``kubernetes.io``/``k8s.io``
  labels other than the kubelet's own (hostname, zone, region, instance type, os,
  arch, ``kubelet.kubernetes.io/``, ``node.kubernetes.io/``);
- PVCs: only ``status`` (capacity, conditions and the allocated resources);
- ``serviceaccounts/token``: only bound to a pod (with its uid) running on it;
- leases and csinodes: only the one named after it (leases in ``kube-node-lease``).

Refusals are 403 as upstream's ``admission.NewForbidden``: ``pods "x" is forbidden:
node "n1" can only delete pods with spec.nodeName set to itself``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from corral.api import errors
from corral.api.podrefs import pod_names, sub
from corral.apiserver.admission_chain import CREATE, DELETE, UPDATE, AdmissionRequest
from corral.apiserver.node_authz import MIRROR_POD_ANNOTATION, NODE_LEASE_NAMESPACE, node_identity
from corral.storage.cache import ResourceCache

if TYPE_CHECKING:
    from corral.apiserver.store import Registry

Obj = dict[str, Any]

LABEL_NAMESPACE_NODE_RESTRICTION = "node-restriction.kubernetes.io"
#: ``kubeletapis.IsKubeletLabel``: the labels a kubelet may set on its own Node
KUBELET_LABELS = frozenset(
    {
        "kubernetes.io/hostname",
        "topology.kubernetes.io/zone",
        "topology.kubernetes.io/region",
        "failure-domain.beta.kubernetes.io/zone",
        "failure-domain.beta.kubernetes.io/region",
        "beta.kubernetes.io/instance-type",
        "node.kubernetes.io/instance-type",
        "kubernetes.io/os",
        "kubernetes.io/arch",
        "beta.kubernetes.io/os",
        "beta.kubernetes.io/arch",
    }
)
KUBELET_LABEL_NAMESPACES = ("kubelet.kubernetes.io", "node.kubernetes.io")

#: (group, plural) the plugin is registered for
RESOURCES = (
    ("", "pods"),
    ("", "nodes"),
    ("", "persistentvolumeclaims"),
    ("", "serviceaccounts"),
    ("coordination.k8s.io", "leases"),
    ("storage.k8s.io", "csinodes"),
)


def _label_namespace(key: str) -> str:
    return key.split("/", 1)[0] if "/" in key else ""


def _in_namespace(ns: str, domain: str) -> bool:
    return ns == domain or ns.endswith("." + domain)


def is_kubelet_label(key: str) -> bool:
    ns = _label_namespace(key)
    return key in KUBELET_LABELS or any(_in_namespace(ns, a) for a in KUBELET_LABEL_NAMESPACES)


def forbidden_labels(new: dict[str, str], old: dict[str, str]) -> list[str]:
    """The added, removed or changed label keys a node may not touch, sorted."""
    modified = {
        k for k in new.keys() | old.keys() if new.get(k) != old.get(k) or (k in new) != (k in old)
    }
    out = set()
    for key in modified:
        ns = _label_namespace(key)
        if _in_namespace(ns, LABEL_NAMESPACE_NODE_RESTRICTION):
            out.add(key)
        if (
            _in_namespace(ns, "kubernetes.io") or _in_namespace(ns, "k8s.io")
        ) and not is_kubelet_label(key):
            out.add(key)
    return sorted(out)


def _go_quote(s: str) -> str:
    """Go's ``%q`` for the plain names met here."""
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


class NodeRestriction:
    """The admission plugin: ``plugin(req)`` raises 403 (or 404 for a missing pod/node)."""

    #: it only reads the objects it admits (``Registry._admission_reads_only``)
    mutating = False

    def __init__(self, pods: ResourceCache, nodes: ResourceCache) -> None:
        self.pods = pods
        self.nodes = nodes

    @classmethod
    def register(cls, registry: Registry) -> NodeRestriction:
        """Add the plugin to ``registry.admission`` for every resource it restricts."""
        plugin = cls(
            registry.rcache(registry.by_gvr[("", "v1", "pods")]),
            registry.rcache(registry.by_gvr[("", "v1", "nodes")]),
        )
        for group, plural in RESOURCES:
            registry.admission[(group, plural)].append(plugin)
        return plugin

    # --- helpers ---------------------------------------------------------------------------
    @staticmethod
    def _forbidden(req: AdmissionRequest, why: str) -> errors.StatusError:
        """``admission.NewForbidden``: the request's name, else the object's, else
        ``Unknown``; the resource as ``plural[.group]``."""
        name = req.name or str(sub(req.obj, "metadata").get("name") or "") or "Unknown"
        info = req.info
        resource = f"{info.plural}.{info.group}" if info.group else info.plural
        return errors.forbidden_error(
            f'{resource} "{name}" is forbidden: {why}', info.plural, info.group, name
        )

    def _pod(self, namespace: str, name: str) -> Obj:
        entry = self.pods.entries.get(f"{self.pods.prefix}{namespace}/{name}")
        if entry is None:
            raise errors.not_found("pods", "", name)
        return entry.obj()

    # --- the plugin ------------------------------------------------------------------------
    def __call__(self, req: AdmissionRequest) -> None:
        if req.user is None or req.operation not in (CREATE, UPDATE, DELETE):
            return
        node, is_node = node_identity(req.user.username, req.user.groups)
        if not is_node:
            return
        if not node:
            raise self._forbidden(
                req, f"could not determine node from user {_go_quote(req.user.username)}"
            )
        key = (req.info.group, req.info.plural)
        if key == ("", "pods"):
            if req.subresource == "":
                self._admit_pod(node, req)
            elif req.subresource == "status":
                self._admit_pod_status(node, req)
            elif req.subresource == "eviction":
                self._admit_eviction(node, req)
            else:
                raise self._forbidden(
                    req,
                    f"unexpected pod subresource {_go_quote(req.subresource)}, "
                    "only 'status' and 'eviction' are allowed",
                )
        elif key == ("", "nodes"):
            self._admit_node(node, req)
        elif key == ("", "persistentvolumeclaims"):
            if req.subresource != "status":
                raise self._forbidden(req, "may only update PVC status")
            self._admit_pvc_status(node, req)
        elif key == ("", "serviceaccounts"):
            self._admit_token(node, req)
        elif key == ("coordination.k8s.io", "leases"):
            self._admit_lease(node, req)
        elif key == ("storage.k8s.io", "csinodes"):
            self._admit_csinode(node, req)

    # --- pods ------------------------------------------------------------------------------
    def _admit_pod(self, node: str, req: AdmissionRequest) -> None:
        q = _go_quote(node)
        if req.operation == CREATE:
            self._admit_mirror_pod(node, req)
        elif req.operation == DELETE:
            pod = req.old if req.old is not None else self._pod(req.namespace, req.name)
            if sub(pod, "spec").get("nodeName") != node:
                raise self._forbidden(
                    req, f"node {q} can only delete pods with spec.nodeName set to itself"
                )
        else:
            raise self._forbidden(
                req,
                f"unexpected operation {_go_quote(req.operation)}, "
                f"node {q} can only create and delete mirror pods",
            )

    def _admit_mirror_pod(self, node: str, req: AdmissionRequest) -> None:
        pod = req.obj or {}
        q = _go_quote(node)
        meta, spec = sub(pod, "metadata"), sub(pod, "spec")
        if MIRROR_POD_ANNOTATION not in sub(meta, "annotations"):
            raise self._forbidden(
                req,
                f"pod does not have {_go_quote(MIRROR_POD_ANNOTATION)} annotation, "
                f"node {q} can only create mirror pods",
            )
        if spec.get("nodeName") != node:
            raise self._forbidden(
                req, f"node {q} can only create pods with spec.nodeName set to itself"
            )
        owners = [o for o in meta.get("ownerReferences") or () if isinstance(o, dict)]
        if len(owners) > 1:
            raise self._forbidden(
                req, f"node {q} can only create pods with a single owner reference set to itself"
            )
        if not owners:
            raise self._forbidden(
                req, f"node {q} can only create pods with an owner reference set to itself"
            )
        owner = owners[0]
        if (
            owner.get("apiVersion") != "v1"
            or owner.get("kind") != "Node"
            or owner.get("name") != node
        ):
            raise self._forbidden(
                req, f"node {q} can only create pods with an owner reference set to itself"
            )
        if owner.get("controller") is not True:
            raise self._forbidden(
                req,
                f"node {q} can only create pods with a controller owner reference set to itself",
            )
        if owner.get("blockOwnerDeletion") is True:
            raise self._forbidden(
                req, f"node {q} must not set blockOwnerDeletion on an owner reference"
            )
        entry = self.nodes.entries.get(self.nodes.prefix + node)
        if entry is None:
            raise errors.not_found("nodes", "", node)
        if owner.get("uid") != entry.uid:
            raise self._forbidden(
                req, f"node {node} UID mismatch: expected {owner.get('uid', '')} got {entry.uid}"
            )
        if spec.get("serviceAccountName"):
            raise self._forbidden(
                req, f"node {q} can not create pods that reference a service account"
            )
        named = pod_names(pod)
        if named.secrets:
            raise self._forbidden(req, f"node {q} can not create pods that reference secrets")
        if named.configmaps:
            raise self._forbidden(req, f"node {q} can not create pods that reference configmaps")
        volumes = [v for v in spec.get("volumes") or () if isinstance(v, dict)]
        for v in volumes:
            for src in sub(v, "projected").get("sources") or ():
                if isinstance(src, dict) and "clusterTrustBundle" in src:
                    raise self._forbidden(
                        req, f"node {q} can not create pods that reference clustertrustbundles"
                    )
        if any("persistentVolumeClaim" in v for v in volumes):
            raise self._forbidden(
                req, f"node {q} can not create pods that reference persistentvolumeclaims"
            )

    def _admit_pod_status(self, node: str, req: AdmissionRequest) -> None:
        q = _go_quote(node)
        if req.operation != UPDATE:
            raise self._forbidden(req, f"unexpected operation {_go_quote(req.operation)}")
        old, new = req.old or {}, req.obj or {}
        if sub(old, "spec").get("nodeName") != node:
            raise self._forbidden(
                req,
                f"node {q} can only update pod status for pods with spec.nodeName set to itself",
            )
        if (sub(old, "metadata").get("labels") or {}) != (sub(new, "metadata").get("labels") or {}):
            raise self._forbidden(req, f"node {q} cannot update labels through pod status")
        if _claim_statuses(old) != _claim_statuses(new):
            raise self._forbidden(req, f"node {q} cannot update resource claim statues")

    def _admit_eviction(self, node: str, req: AdmissionRequest) -> None:
        if req.operation != CREATE:
            raise self._forbidden(req, f"unexpected operation {req.operation}")
        name = req.name or str(sub(req.obj, "metadata").get("name") or "")
        if not name:
            raise self._forbidden(req, "could not determine pod from request data")
        pod = self._pod(req.namespace, name)
        if sub(pod, "spec").get("nodeName") != node:
            raise self._forbidden(
                req, f"node {node} can only evict pods with spec.nodeName set to itself"
            )

    # --- nodes -----------------------------------------------------------------------------
    def _admit_node(self, node: str, req: AdmissionRequest) -> None:
        q = _go_quote(node)
        requested = req.name or (
            str(sub(req.obj, "metadata").get("name") or "") if req.operation == CREATE else ""
        )
        if requested != node:
            raise self._forbidden(
                req, f"node {q} is not allowed to modify node {_go_quote(requested)}"
            )
        new = req.obj or {}
        labels = sub(new, "metadata").get("labels") or {}
        if req.operation == CREATE:
            if sub(new, "spec").get("configSource") is not None:
                raise self._forbidden(
                    req, f"node {q} is not allowed to create pods with a non-nil configSource"
                )
            bad = forbidden_labels(labels, {})
            if bad:
                raise self._forbidden(
                    req, f"node {q} is not allowed to set the following labels: {', '.join(bad)}"
                )
        elif req.operation == UPDATE:
            old = req.old or {}
            source = sub(new, "spec").get("configSource")
            if source is not None and source != sub(old, "spec").get("configSource"):
                raise self._forbidden(
                    req,
                    f"node {q} is not allowed to update configSource to a new non-nil configSource",
                )
            if (sub(new, "spec").get("taints") or []) != (sub(old, "spec").get("taints") or []):
                raise self._forbidden(req, f"node {q} is not allowed to modify taints")
            bad = forbidden_labels(labels, sub(old, "metadata").get("labels") or {})
            if bad:
                raise self._forbidden(req, f"is not allowed to modify labels: {', '.join(bad)}")

    # --- claims, tokens, leases, csinodes --------------------------------------------------
    def _admit_pvc_status(self, node: str, req: AdmissionRequest) -> None:
        if req.operation != UPDATE:
            raise self._forbidden(req, f"unexpected operation {_go_quote(req.operation)}")
        old, new = _pvc_for_comparison(req.old or {}), _pvc_for_comparison(req.obj or {})
        if old != new:
            diff = ", ".join(_diff_paths(old, new))
            raise self._forbidden(
                req,
                f"node {_go_quote(node)} is not allowed to update fields other than "
                f"status.capacity and status.conditions: {diff}",
            )

    def _admit_token(self, node: str, req: AdmissionRequest) -> None:
        if req.operation != CREATE or req.subresource != "token":
            return
        ref = sub(sub(req.obj, "spec"), "boundObjectRef")
        if (
            not ref
            or ref.get("apiVersion") != "v1"
            or ref.get("kind") != "Pod"
            or not ref.get("name")
        ):
            raise self._forbidden(req, "node requested token not bound to a pod")
        if not ref.get("uid"):
            raise self._forbidden(req, "node requested token with a pod binding without a uid")
        pod = self._pod(req.namespace, str(ref["name"]))
        if ref["uid"] != sub(pod, "metadata").get("uid"):
            raise self._forbidden(
                req,
                f"the UID in the bound object reference ({ref['uid']}) does not match the UID "
                "in record. The object might have been deleted and then recreated",
            )
        if sub(pod, "spec").get("nodeName") != node:
            raise self._forbidden(
                req, "node requested token bound to a pod scheduled on a different node"
            )

    def _admit_lease(self, node: str, req: AdmissionRequest) -> None:
        if req.namespace != NODE_LEASE_NAMESPACE:
            raise self._forbidden(
                req,
                f"can only access leases in the {_go_quote(NODE_LEASE_NAMESPACE)} system namespace",
            )
        self._same_name(
            node, req, "can only access node lease with the same name as the requesting node"
        )

    def _admit_csinode(self, node: str, req: AdmissionRequest) -> None:
        self._same_name(
            node, req, "can only access CSINode with the same name as the requesting node"
        )

    def _same_name(self, node: str, req: AdmissionRequest, why: str) -> None:
        name = (
            str(sub(req.obj, "metadata").get("name") or "") if req.operation == CREATE else req.name
        )
        if name != node:
            raise self._forbidden(req, why)


def _claim_statuses(pod: Obj) -> list[tuple[str, Any]]:
    return [
        (str(s.get("name")), s.get("resourceClaimName"))
        for s in sub(pod, "status").get("resourceClaimStatuses") or ()
        if isinstance(s, dict)
    ]


_PVC_STATUS_FIELDS = ("capacity", "conditions", "allocatedResourceStatuses", "allocatedResources")


def _pvc_for_comparison(pvc: Obj) -> Obj:
    """The claim without what a node may change (and resourceVersion, managedFields)."""
    out = dict(pvc)
    meta = dict(sub(pvc, "metadata"))
    meta.pop("resourceVersion", None)
    meta.pop("managedFields", None)
    out["metadata"] = meta
    status = {k: v for k, v in sub(pvc, "status").items() if k not in _PVC_STATUS_FIELDS}
    out["status"] = status
    return out


def _diff_paths(a: Any, b: Any, path: str = "") -> list[str]:
    """The paths where two JSON values differ (the refusal names them)."""
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[str] = []
        for k in sorted(a.keys() | b.keys()):
            out += _diff_paths(a.get(k), b.get(k), f"{path}.{k}" if path else k)
        return out
    return [] if a == b else [path or "."]
