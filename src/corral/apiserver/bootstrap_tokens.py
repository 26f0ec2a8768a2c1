"""Bootstrap tokens on the API server: the token authenticator, the ``cluster-info``
ConfigMap and the RBAC objects a joining node needs, as kubeadm sets them up.

``BootstrapTokenAuthenticator`` is one of the bearer-token authenticators of
``authn.py`` (``api.authn.token_authenticators``): a token ``ID.SECRET`` is accepted when
the Secret ``kube-system/bootstrap-token-ID`` (read from the watch cache, no I/O) holds
it with ``usage-bootstrap-authentication: "true"`` and is not expired; the user is
``system:bootstrap:ID`` in ``system:bootstrappers``, the token's
``auth-extra-groups`` and ``system:authenticated`` (upstream's
``plugin/pkg/auth/authenticator/token/bootstrap``). Any other token is not its business
(None), so the next authenticator may take it.

``publish`` runs at every start (``server.py``): it writes ``kube-public/cluster-info``
(a kubeconfig with the server URL and CA, no user; the controller manager's bootstrap
signer adds the ``jws-kubeconfig-ID`` signatures), the ``kubeadm:bootstrap-signer-
clusterinfo`` Role and RoleBinding that let ``system:anonymous`` read it, and the
ClusterRoles and ClusterRoleBindings kubeadm creates for joining nodes
(``system:node-bootstrapper`` and the auto-approval roles ``nodeclient`` /
``selfnodeclient`` for the default token group and ``system:nodes``), plus the
``corral:csr-controllers`` role of the controller manager's csrapproving, csrsigning,
bootstrap-signer and token-cleaner controllers.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import logging
from typing import Any

import yaml

from corral.api import bootstraptoken as bt
from corral.api.errors import StatusError
from corral.apiserver.identity import AUTHENTICATED, UserInfo
from corral.apiserver.rbac_bootstrap import (
    READ,
    cluster_role,
    cluster_role_binding,
    reconcile_objects,
    rule,
)
from corral.apiserver.store import Registry, WriteOptions
from corral.util.clock import Clock

log = logging.getLogger("corral.apiserver.bootstrap_tokens")

Obj = dict[str, Any]

CSR_GROUP = "certificates.k8s.io"
RBAC_GROUP = "rbac.authorization.k8s.io"
NODE_BOOTSTRAPPER = "system:node-bootstrapper"
NODE_CLIENT = "system:certificates.k8s.io:certificatesigningrequests:nodeclient"
SELF_NODE_CLIENT = "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient"
CLUSTER_INFO_ROLE = "kubeadm:bootstrap-signer-clusterinfo"
CSR_CONTROLLERS = "corral:csr-controllers"
KUBELET_CLIENT = "kubernetes.io/kube-apiserver-client-kubelet"
KUBELET_SERVING = "kubernetes.io/kubelet-serving"
KUBE_APISERVER_CLIENT = "kubernetes.io/kube-apiserver-client"


class BootstrapTokenAuthenticator:
    """``authenticate(token) -> UserInfo | None`` over the Secrets' watch cache."""

    def __init__(self, registry: Registry, clock: Clock | None = None) -> None:
        self.registry = registry
        self.info = registry.by_gvr[("", "v1", "secrets")]
        self.clock = clock

    def _now(self) -> dt.datetime:
        if self.clock is not None:
            return dt.datetime.fromtimestamp(self.clock.now(), dt.UTC)
        return dt.datetime.now(dt.UTC)

    def __call__(self, token: str) -> UserInfo | None:
        return self.authenticate(token)

    def authenticate(self, token: str) -> UserInfo | None:
        parsed = bt.parse_token(token)
        if parsed is None:
            return None
        entry = self.registry.entry(self.info, bt.NAMESPACE, bt.secret_name(parsed[0]))
        if entry is None:
            log.debug("no secret for bootstrap token %s", parsed[0])
            return None
        found = bt.authenticated_user(entry.obj(), token, self._now())
        if found is None:
            return None
        name, groups = found
        return UserInfo(name, (*groups, AUTHENTICATED))


# --- what kubeadm creates for joining nodes -------------------------------------------------
def cluster_roles() -> list[Obj]:
    """The ClusterRoles of node bootstrap (upstream's bootstrap policy) and Corral's
    ``corral:csr-controllers``."""
    return [
        cluster_role(
            NODE_BOOTSTRAPPER,
            [rule(("create", "get", "list", "watch"), CSR_GROUP, "certificatesigningrequests")],
        ),
        cluster_role(
            NODE_CLIENT, [rule("create", CSR_GROUP, "certificatesigningrequests/nodeclient")]
        ),
        cluster_role(
            SELF_NODE_CLIENT,
            [rule("create", CSR_GROUP, "certificatesigningrequests/selfnodeclient")],
        ),
        cluster_role(
            CSR_CONTROLLERS,
            [
                rule((*READ, "delete"), CSR_GROUP, "certificatesigningrequests"),
                rule(
                    "update",
                    CSR_GROUP,
                    ("certificatesigningrequests/approval", "certificatesigningrequests/status"),
                ),
                rule("approve", CSR_GROUP, "signers", names=(KUBELET_CLIENT, KUBELET_SERVING)),
                rule(
                    "sign",
                    CSR_GROUP,
                    "signers",
                    names=(KUBELET_CLIENT, KUBELET_SERVING, KUBE_APISERVER_CLIENT),
                ),
                rule("create", "authorization.k8s.io", "subjectaccessreviews"),
                rule((*READ, "delete"), "", "secrets"),
                rule((*READ, "create", "update", "patch"), "", "configmaps"),
            ],
        ),
    ]


def cluster_role_bindings() -> list[Obj]:
    """kubeadm's ``kubeadm:kubelet-bootstrap``, ``kubeadm:node-autoapprove-bootstrap``
    and ``kubeadm:node-autoapprove-certificate-rotation``, and the controllers' binding."""

    def named(name: str, role: str, **kw: tuple[str, ...]) -> Obj:
        obj = cluster_role_binding(role, **kw)
        obj["metadata"]["name"] = name
        return obj

    group = (bt.DEFAULT_EXTRA_GROUP,)
    return [
        named("kubeadm:kubelet-bootstrap", NODE_BOOTSTRAPPER, groups=group),
        named("kubeadm:node-autoapprove-bootstrap", NODE_CLIENT, groups=group),
        named(
            "kubeadm:node-autoapprove-certificate-rotation",
            SELF_NODE_CLIENT,
            groups=("system:nodes",),
        ),
        named(CSR_CONTROLLERS, CSR_CONTROLLERS, users=("system:kube-controller-manager",)),
    ]


def cluster_info_kubeconfig(server_url: str, ca_pem: bytes | None) -> str:
    """The kubeconfig of ``cluster-info``: one cluster named ``""``, no user."""
    cluster: Obj = {"server": server_url}
    if ca_pem is not None:
        cluster["certificate-authority-data"] = base64.b64encode(ca_pem).decode()
    cfg = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "", "cluster": cluster}],
        "contexts": [],
        "current-context": "",
        "preferences": {},
        "users": [],
    }
    return yaml.safe_dump(cfg, sort_keys=False)


async def _put(registry: Registry, plural: str, group: str, ns: str, obj: Obj) -> None:
    """Create ``obj`` or make its stored copy hold ``obj``'s data/rules/subjects."""
    info = registry.by_gvr[(group, "v1", plural)]
    opts = WriteOptions(field_manager="corral-apiserver")
    name = obj["metadata"]["name"]
    entry = registry.entry(info, ns, name)
    if entry is None:
        await registry.create(info, ns, copy.deepcopy(obj), opts)
        return
    cur = entry.obj()
    changed = False
    for key in ("data", "rules", "subjects", "roleRef"):
        if key not in obj:
            continue
        if key == "data":  # keep the signer's jws-kubeconfig-* keys
            merged = {**(cur.get("data") or {}), **obj["data"]}
            if merged != cur.get("data"):
                cur["data"], changed = merged, True
        elif cur.get(key) != obj[key]:
            cur[key], changed = obj[key], True
    if changed:
        await registry.update(info, ns, name, cur, opts)


async def publish(registry: Registry, server_url: str, ca_pem: bytes | None) -> None:
    """``cluster-info``, its anonymous read access and the node bootstrap policy; a
    failure is logged, never fatal (the next start tries again)."""
    try:
        await reconcile_objects(registry, cluster_roles(), cluster_role_bindings())
        info_cm = {
            "metadata": {"name": bt.CLUSTER_INFO, "namespace": bt.KUBE_PUBLIC},
            "data": {bt.KUBECONFIG_KEY: cluster_info_kubeconfig(server_url, ca_pem)},
        }
        await _put(registry, "configmaps", "", bt.KUBE_PUBLIC, info_cm)
        role = {
            "metadata": {"name": CLUSTER_INFO_ROLE, "namespace": bt.KUBE_PUBLIC},
            "rules": [rule("get", "", "configmaps", names=(bt.CLUSTER_INFO,))],
        }
        await _put(registry, "roles", RBAC_GROUP, bt.KUBE_PUBLIC, role)
        binding = {
            "metadata": {"name": CLUSTER_INFO_ROLE, "namespace": bt.KUBE_PUBLIC},
            "roleRef": {"apiGroup": RBAC_GROUP, "kind": "Role", "name": CLUSTER_INFO_ROLE},
            "subjects": [{"kind": "User", "apiGroup": RBAC_GROUP, "name": "system:anonymous"}],
        }
        await _put(registry, "rolebindings", RBAC_GROUP, bt.KUBE_PUBLIC, binding)
    except (StatusError, KeyError) as e:
        log.warning("node bootstrap objects not written: %s", e)
