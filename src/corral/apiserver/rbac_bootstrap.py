"""The bootstrap RBAC policy and its reconciliation at API server start.

``corral server`` calls ``reconcile(registry)`` once storage is up, as upstream's
``rbac/bootstrap-roles`` post-start hook does: every default ClusterRole and
ClusterRoleBinding below is created when missing, and an existing one is *added to*
(missing rules, aggregation selectors, subjects, labels and annotations; nothing is
removed) unless it carries ``rbac.authorization.kubernetes.io/autoupdate: "false"``,
which keeps a user's changes. A binding whose roleRef differs is recreated.

The facts come from upstream's ``plugin/pkg/auth/authorizer/rbac/bootstrappolicy``
(``policy.go`` and its ``testdata``): the roles the components Corral runs need
(cluster-admin, the aggregated admin/edit/view and their ``system:aggregate-to-*``
parts, discovery, basic-user, public-info-viewer, node, kube-scheduler,
kube-controller-manager). ``admin``, ``edit`` and ``view`` carry only an
aggregationRule; the ``clusterrole-aggregation`` controller fills their rules.

Rule coverage is compared structurally (a rule is missing unless an equal one exists),
not by RBAC's semantic ``Covers``. Nothing here is enforced yet: there is no authorizer.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

from corral.api import errors
from corral.api.rbac import RBAC_GROUP as GROUP
from corral.apiserver.registry.base import ResourceInfo
from corral.apiserver.store import DeleteOptions, Registry, WriteOptions

log = logging.getLogger("corral.rbac_bootstrap")

Obj = dict[str, Any]

AUTOUPDATE = "rbac.authorization.kubernetes.io/autoupdate"
BOOTSTRAP_LABELS = {"kubernetes.io/bootstrapping": "rbac-defaults"}
AGGREGATE_TO = "rbac.authorization.k8s.io/aggregate-to-"

READ = ("get", "list", "watch")
WRITE = ("create", "update", "patch", "delete", "deletecollection")
READ_WRITE = READ + WRITE
EVENT_VERBS = ("create", "update", "patch")

# --- rule and object builders ----------------------------------------------------------


def rule(
    verbs: tuple[str, ...] | str,
    groups: tuple[str, ...] | str = (),
    resources: tuple[str, ...] | str = (),
    names: tuple[str, ...] = (),
    urls: tuple[str, ...] = (),
) -> Obj:
    """A PolicyRule as upstream's ``NewRule`` builds it (every list sorted)."""

    def sort(v: tuple[str, ...] | str) -> list[str]:
        return sorted({v} if isinstance(v, str) else set(v))

    out: Obj = {"verbs": sort(verbs)}
    if urls:
        out["nonResourceURLs"] = sort(urls)
        return out
    out["apiGroups"] = sort(groups)
    out["resources"] = sort(resources)
    if names:
        out["resourceNames"] = sort(names)
    return out


def events_rule() -> Obj:
    """``eventsRule()``: write events in both the core and events.k8s.io groups."""
    return rule(EVENT_VERBS, ("", "events.k8s.io"), "events")


def _meta(name: str, labels: dict[str, str] | None = None) -> Obj:
    return {
        "name": name,
        "labels": {**BOOTSTRAP_LABELS, **(labels or {})},
        "annotations": {AUTOUPDATE: "true"},
    }


def cluster_role(
    name: str,
    rules: list[Obj] | None = None,
    labels: dict[str, str] | None = None,
    aggregate_from: str = "",
) -> Obj:
    """A bootstrap ClusterRole; ``aggregate_from`` (``"view"``) gives it the
    aggregationRule selecting ``aggregate-to-view: "true"`` and no rules of its own."""
    obj: Obj = {"metadata": _meta(name, labels)}
    if aggregate_from:
        obj["aggregationRule"] = {
            "clusterRoleSelectors": [{"matchLabels": {AGGREGATE_TO + aggregate_from: "true"}}]
        }
    else:
        obj["rules"] = rules or []
    return obj


def cluster_role_binding(
    role: str, users: tuple[str, ...] = (), groups: tuple[str, ...] = ()
) -> Obj:
    """``NewClusterBinding(role).Users(...).Groups(...)``: named after its role."""
    subjects = [{"kind": "User", "apiGroup": GROUP, "name": u} for u in users]
    subjects += [{"kind": "Group", "apiGroup": GROUP, "name": g} for g in groups]
    obj: Obj = {
        "metadata": _meta(role),
        "roleRef": {"apiGroup": GROUP, "kind": "ClusterRole", "name": role},
    }
    if subjects:
        obj["subjects"] = subjects
    return obj


def _to(*targets: str) -> dict[str, str]:
    return {AGGREGATE_TO + t: "true" for t in targets}


# --- the policy --------------------------------------------------------------------------

DISCOVERY_URLS = (
    "/livez", "/readyz", "/healthz", "/version", "/version/",
    "/openapi", "/openapi/*", "/api", "/api/*", "/apis", "/apis/*",
)  # fmt: skip
PUBLIC_INFO_URLS = ("/livez", "/readyz", "/healthz", "/version", "/version/")


def _aggregate_to_edit_rules() -> list[Obj]:
    return [
        rule(READ, "", ("pods/attach", "pods/proxy", "pods/exec", "pods/portforward",
                        "secrets", "services/proxy")),
        rule("impersonate", "", "serviceaccounts"),
        rule(WRITE, "", ("pods", "pods/attach", "pods/proxy", "pods/exec", "pods/portforward")),
        rule("create", "", "pods/eviction"),
        rule(WRITE, "", ("replicationcontrollers", "replicationcontrollers/scale",
                         "serviceaccounts", "services", "services/proxy",
                         "persistentvolumeclaims", "configmaps", "secrets", "events")),
        rule("create", "", "serviceaccounts/token"),
        rule(WRITE, "apps", ("statefulsets", "statefulsets/scale", "daemonsets", "deployments",
                             "deployments/scale", "deployments/rollback", "replicasets",
                             "replicasets/scale")),
        rule(WRITE, "autoscaling", "horizontalpodautoscalers"),
        rule(WRITE, "batch", ("jobs", "cronjobs")),
        rule(WRITE, "extensions", ("daemonsets", "deployments", "deployments/scale",
                                   "deployments/rollback", "ingresses", "replicasets",
                                   "replicasets/scale", "replicationcontrollers/scale",
                                   "networkpolicies")),
        rule(WRITE, "policy", "poddisruptionbudgets"),
        rule(WRITE, "networking.k8s.io", ("networkpolicies", "ingresses")),
        rule(READ_WRITE, "coordination.k8s.io", "leases"),
    ]  # fmt: skip


def _aggregate_to_view_rules() -> list[Obj]:
    return [
        rule(READ, "", ("pods", "replicationcontrollers", "replicationcontrollers/scale",
                        "serviceaccounts", "services", "services/status", "endpoints",
                        "persistentvolumeclaims", "persistentvolumeclaims/status",
                        "configmaps")),
        rule(READ, "", ("limitranges", "resourcequotas", "bindings", "events", "pods/status",
                        "resourcequotas/status", "namespaces/status",
                        "replicationcontrollers/status", "pods/log")),
        # read access to namespaces at the namespace scope means you can read *this* one
        rule(READ, "", "namespaces"),
        rule(READ, "discovery.k8s.io", "endpointslices"),
        rule(READ, "apps", ("controllerrevisions", "statefulsets", "statefulsets/status",
                            "statefulsets/scale", "daemonsets", "daemonsets/status",
                            "deployments", "deployments/status", "deployments/scale",
                            "replicasets", "replicasets/status", "replicasets/scale")),
        rule(READ, "autoscaling", ("horizontalpodautoscalers",
                                   "horizontalpodautoscalers/status")),
        rule(READ, "batch", ("jobs", "cronjobs", "cronjobs/status", "jobs/status")),
        rule(READ, "extensions", ("daemonsets", "daemonsets/status", "deployments",
                                  "deployments/scale", "deployments/status", "ingresses",
                                  "ingresses/status", "replicasets", "replicasets/scale",
                                  "replicasets/status", "replicationcontrollers/scale",
                                  "networkpolicies")),
        rule(READ, "policy", ("poddisruptionbudgets", "poddisruptionbudgets/status")),
        rule(READ, "networking.k8s.io", ("ingresses", "ingresses/status", "networkpolicies")),
    ]  # fmt: skip


def _node_rules() -> list[Obj]:
    """``NodeRules()``: what a kubelet needs (the Node authorizer narrows it later)."""
    return [
        rule("create", "authentication.k8s.io", "tokenreviews"),
        rule("create", "authorization.k8s.io", ("subjectaccessreviews",
                                                "localsubjectaccessreviews")),
        rule(READ, "", "services"),
        rule(("create", "get", "list", "watch"), "", "nodes"),
        rule(("update", "patch"), "", "nodes/status"),
        rule(("update", "patch"), "", "nodes"),
        rule(EVENT_VERBS, "", "events"),
        rule(READ, "", "pods"),
        rule(("create", "delete"), "", "pods"),
        rule(("update", "patch"), "", "pods/status"),
        rule("create", "", "pods/eviction"),
        rule(READ, "", ("secrets", "configmaps")),
        rule("get", "", ("persistentvolumeclaims", "persistentvolumes")),
        rule("get", "", "endpoints"),
        rule(("create", "get", "list", "watch"), "certificates.k8s.io",
             "certificatesigningrequests"),
        rule(("get", "create", "update", "patch", "delete"), "coordination.k8s.io", "leases"),
        rule("get", "storage.k8s.io", "volumeattachments"),
        rule("create", "", "serviceaccounts/token"),
        rule(("get", "update", "patch"), "", "persistentvolumeclaims/status"),
        rule(READ, "storage.k8s.io", "csidrivers"),
        rule(("get", "create", "update", "patch", "delete"), "storage.k8s.io", "csinodes"),
        rule(READ, "node.k8s.io", "runtimeclasses"),
    ]  # fmt: skip


def _scheduler_rules() -> list[Obj]:
    return [
        events_rule(),
        rule("create", "coordination.k8s.io", "leases"),
        rule(("get", "update"), "coordination.k8s.io", "leases", names=("kube-scheduler",)),
        rule(READ, "", "nodes"),
        rule((*READ, "delete"), "", "pods"),
        rule("create", "", ("bindings", "pods/binding")),
        rule(("patch", "update"), "", "pods/status"),
        rule(READ, "", ("replicationcontrollers", "services")),
        rule(READ, ("apps", "extensions"), "replicasets"),
        rule(READ, "apps", "statefulsets"),
        rule(READ, "policy", "poddisruptionbudgets"),
        rule(READ, "", ("persistentvolumeclaims", "persistentvolumes")),
        rule("create", "authentication.k8s.io", "tokenreviews"),
        rule("create", "authorization.k8s.io", "subjectaccessreviews"),
        rule(READ, "storage.k8s.io", "csinodes"),
        rule(READ, "", "namespaces"),
        rule(READ, "storage.k8s.io", "csidrivers"),
        rule(READ, "storage.k8s.io", "csistoragecapacities"),
    ]


def _controller_manager_rules() -> list[Obj]:
    return [
        events_rule(),
        rule("create", "coordination.k8s.io", "leases"),
        rule(("get", "update"), "coordination.k8s.io", "leases",
             names=("kube-controller-manager",)),
        rule("create", "", ("secrets", "serviceaccounts")),
        rule("delete", "", "secrets"),
        rule("get", "", ("namespaces", "secrets", "serviceaccounts", "configmaps")),
        rule("update", "", ("secrets", "serviceaccounts")),
        rule("create", "authentication.k8s.io", "tokenreviews"),
        rule("create", "authorization.k8s.io", "subjectaccessreviews"),
        rule(("list", "watch"), "*", "*"),
        rule("create", "", "serviceaccounts/token"),
    ]  # fmt: skip


def cluster_roles() -> list[Obj]:
    """The bootstrap ClusterRoles (fresh objects: callers may mutate them)."""
    return [
        cluster_role("cluster-admin", [rule("*", "*", "*"), rule("*", urls=("*",))]),
        cluster_role("system:discovery", [rule("get", urls=DISCOVERY_URLS)]),
        cluster_role(
            "system:basic-user",
            [
                rule(
                    "create",
                    "authorization.k8s.io",
                    ("selfsubjectaccessreviews", "selfsubjectrulesreviews"),
                ),
                rule("create", "authentication.k8s.io", "selfsubjectreviews"),
            ],
        ),
        cluster_role("system:public-info-viewer", [rule("get", urls=PUBLIC_INFO_URLS)]),
        cluster_role("admin", aggregate_from="admin"),
        cluster_role("edit", labels=_to("admin"), aggregate_from="edit"),
        cluster_role("view", labels=_to("edit"), aggregate_from="view"),
        cluster_role(
            "system:aggregate-to-admin",
            [
                rule("create", "authorization.k8s.io", "localsubjectaccessreviews"),
                rule(READ_WRITE, GROUP, ("roles", "rolebindings")),
            ],
            labels=_to("admin"),
        ),
        cluster_role("system:aggregate-to-edit", _aggregate_to_edit_rules(), _to("edit")),
        cluster_role("system:aggregate-to-view", _aggregate_to_view_rules(), _to("view")),
        cluster_role("system:node", _node_rules()),
        cluster_role("system:kube-scheduler", _scheduler_rules()),
        cluster_role(
            "system:volume-scheduler",
            [
                rule((*READ, "update", "patch"), "", ("persistentvolumes",)),
                rule(READ, "storage.k8s.io", "storageclasses"),
                rule((*READ, "update", "patch"), "", ("persistentvolumeclaims",)),
            ],
        ),
        cluster_role("system:kube-controller-manager", _controller_manager_rules()),
        cluster_role(
            "system:node-proxier",
            [
                rule(("list", "watch"), "", ("services", "endpoints")),
                rule(READ, "", "nodes"),
                events_rule(),
                rule(("list", "watch"), "discovery.k8s.io", "endpointslices"),
            ],
        ),
        cluster_role(
            "system:auth-delegator",
            [
                rule("create", "authentication.k8s.io", "tokenreviews"),
                rule("create", "authorization.k8s.io", "subjectaccessreviews"),
            ],
        ),
    ]


def cluster_role_bindings() -> list[Obj]:
    """The bootstrap ClusterRoleBindings, each named after its ClusterRole."""
    return [
        cluster_role_binding("cluster-admin", groups=("system:masters",)),
        cluster_role_binding("system:discovery", groups=("system:authenticated",)),
        cluster_role_binding("system:basic-user", groups=("system:authenticated",)),
        cluster_role_binding(
            "system:public-info-viewer",
            groups=("system:authenticated", "system:unauthenticated"),
        ),
        # no subjects: nodes are authorised by the Node authorizer (upstream since 1.8)
        cluster_role_binding("system:node"),
        cluster_role_binding("system:kube-scheduler", users=("system:kube-scheduler",)),
        cluster_role_binding("system:volume-scheduler", users=("system:kube-scheduler",)),
        cluster_role_binding(
            "system:kube-controller-manager", users=("system:kube-controller-manager",)
        ),
        cluster_role_binding("system:node-proxier", users=("system:kube-proxy",)),
    ]


# --- reconciliation (pure) ---------------------------------------------------------------


def _merge_meta(existing: Obj, expected: Obj) -> None:
    """Add expected labels and annotations the existing object lacks (its values win)."""
    meta, want = existing.setdefault("metadata", {}), expected["metadata"]
    for key in ("labels", "annotations"):
        merged = {**want.get(key, {}), **(meta.get(key) or {})}
        if merged:
            meta[key] = merged


def reconciled_role(existing: Obj, expected: Obj) -> Obj | None:
    """The ClusterRole to write so ``existing`` holds everything ``expected`` does, or
    None when it already does or opts out (autoupdate "false")."""
    annotations = (existing.get("metadata") or {}).get("annotations") or {}
    if annotations.get(AUTOUPDATE) == "false":
        return None
    out = copy.deepcopy(existing)
    _merge_meta(out, expected)
    if "aggregationRule" in expected:
        have = (out.get("aggregationRule") or {}).get("clusterRoleSelectors") or []
        want = expected["aggregationRule"]["clusterRoleSelectors"]
        missing = [s for s in want if s not in have]
        if missing or out.get("aggregationRule") is None:
            out["aggregationRule"] = {"clusterRoleSelectors": have + missing}
    rules = out.get("rules") or []
    missing_rules = [r for r in expected.get("rules") or [] if r not in rules]
    if missing_rules:
        out["rules"] = rules + missing_rules
    return None if out == existing else out


def reconciled_binding(existing: Obj, expected: Obj) -> tuple[Obj | None, bool]:
    """(binding to write or None, whether it must be deleted and recreated: its roleRef
    differs, which an update may not change)."""
    annotations = (existing.get("metadata") or {}).get("annotations") or {}
    if annotations.get(AUTOUPDATE) == "false":
        return None, False
    out = copy.deepcopy(existing)
    _merge_meta(out, expected)
    recreate = out.get("roleRef") != expected["roleRef"]
    out["roleRef"] = expected["roleRef"]
    subjects = out.get("subjects") or []
    missing = [s for s in expected.get("subjects") or [] if s not in subjects]
    if missing:
        out["subjects"] = subjects + missing
    return (None if out == existing else out), recreate


# --- reconciliation against the store ------------------------------------------------------


async def _write(
    registry: Registry, info: ResourceInfo, expected: Obj, existing: Obj | None
) -> None:
    opts = WriteOptions(field_manager="corral-apiserver")
    name = expected["metadata"]["name"]
    if existing is None:
        await registry.create(info, "", copy.deepcopy(expected), opts)
        log.debug("created %s %s", info.kind, name)
        return
    if info.plural == "clusterroles":
        out, recreate = reconciled_role(existing, expected), False
    else:
        out, recreate = reconciled_binding(existing, expected)
    if out is None:
        return
    if recreate:
        await registry.delete(info, "", name, DeleteOptions())
        meta = out["metadata"]
        for key in ("uid", "resourceVersion", "creationTimestamp", "managedFields"):
            meta.pop(key, None)
        await registry.create(info, "", out, opts)
    else:
        await registry.update(info, "", name, out, opts)
    log.debug("reconciled %s %s", info.kind, name)


async def reconcile(registry: Registry) -> None:
    """Create or add to every bootstrap ClusterRole and ClusterRoleBinding; a failure on
    one object is logged and the others still go through (the hook retries next start)."""
    await reconcile_objects(registry, cluster_roles(), cluster_role_bindings())


async def reconcile_objects(
    registry: Registry, role_objs: list[Obj], binding_objs: list[Obj]
) -> None:
    """``reconcile`` for the given ClusterRoles and ClusterRoleBindings (Corral's own
    ``corral:*`` policy, ``apiserver/component_identities.py``, uses it too)."""
    roles = registry.by_gvr[(GROUP, "v1", "clusterroles")]
    bindings = registry.by_gvr[(GROUP, "v1", "clusterrolebindings")]
    for info, objs in ((roles, role_objs), (bindings, binding_objs)):
        for expected in objs:
            name = expected["metadata"]["name"]
            for _ in range(3):  # a concurrent writer (the aggregation controller): retry
                entry = registry.entry(info, "", name)
                existing = registry.decode(info, entry) if entry is not None else None
                try:
                    await _write(registry, info, expected, existing)
                    break
                except errors.StatusError as e:
                    if e.code != 409:
                        log.warning("bootstrap %s %s: %s", info.kind, name, e.message)
                        break
                except Exception:  # never fatal: the server must start regardless
                    log.exception("bootstrap %s %s failed", info.kind, name)
                    break
            else:
                log.warning("bootstrap %s %s: gave up after conflicts", info.kind, name)
