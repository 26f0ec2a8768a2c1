"""What the API server publishes so extension API servers can trust its front proxy.

``corral server`` calls ``publish`` at start (TLS only, after the components' identities
are issued, ``client_certs.py``): it writes the ConfigMap
``kube-system/extension-apiserver-authentication`` as kube-apiserver's
``ClientCARegistrationHook`` does (``client-ca-file``: the cluster CA;
``requestheader-client-ca-file``: the front-proxy CA; allowed names
``["front-proxy-client"]``; the ``X-Remote-*`` header names; ``api/requestheader.py``),
and upstream's bootstrap Role ``extension-apiserver-authentication-reader`` in
kube-system that lets an extension server read it, bound (RoleBinding
``corral:metrics-server-auth-reader``) to Corral's metrics-server, as its upstream
manifest binds ``metrics-server-auth-reader``. Each object is created, or brought back to
that content when it differs; a failure is logged, never fatal (as the bootstrap policy).

``proxy_client_files`` names the aggregator's client certificate
(``pki/front-proxy-client.{crt,key}``); ``apiserver/aggregator.py`` presents it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from corral.api import errors
from corral.api.requestheader import (
    CONFIGMAP_NAME,
    CONFIGMAP_NAMESPACE,
    READER_ROLE,
    configmap_data,
)
from corral.apiserver.client_certs import ca_paths, pair_paths
from corral.apiserver.component_identities import FRONT_PROXY_CLIENT, METRICS_SERVER
from corral.apiserver.rbac_bootstrap import READ, rule
from corral.apiserver.store import Registry, WriteOptions

log = logging.getLogger("corral.apiserver.front_proxy")

Obj = dict[str, Any]
READER_BINDING = "corral:metrics-server-auth-reader"
RBAC_GROUP = "rbac.authorization.k8s.io"


def proxy_client_files(data_dir: Path) -> tuple[Path, Path]:
    """The aggregator's front-proxy client certificate and key."""
    return pair_paths(data_dir, FRONT_PROXY_CLIENT)


def authentication_configmap(data_dir: Path) -> Obj:
    """``extension-apiserver-authentication`` for the CAs under ``data_dir/pki``."""
    client_ca = (data_dir / "pki" / "ca.crt").read_text()
    front_proxy_ca = ca_paths(data_dir, FRONT_PROXY_CLIENT)[0].read_text()
    return {
        "metadata": {"name": CONFIGMAP_NAME, "namespace": CONFIGMAP_NAMESPACE},
        "data": configmap_data(client_ca, front_proxy_ca),
    }


def reader_role() -> Obj:
    """Upstream's bootstrap Role ``extension-apiserver-authentication-reader``."""
    return {
        "metadata": {
            "name": READER_ROLE,
            "namespace": CONFIGMAP_NAMESPACE,
            "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
            "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"},
        },
        "rules": [rule(READ, "", "configmaps", names=(CONFIGMAP_NAME,))],
    }


def reader_binding() -> Obj:
    return {
        "metadata": {"name": READER_BINDING, "namespace": CONFIGMAP_NAMESPACE},
        "roleRef": {"apiGroup": RBAC_GROUP, "kind": "Role", "name": READER_ROLE},
        "subjects": [{"kind": "User", "apiGroup": RBAC_GROUP, "name": METRICS_SERVER.user}],
    }


async def _ensure(registry: Registry, gvr: tuple[str, str, str], want: Obj, key: str) -> None:
    """Create ``want`` or set its ``key`` field back to ``want``'s."""
    info = registry.by_gvr[gvr]
    ns, name = want["metadata"]["namespace"], want["metadata"]["name"]
    opts = WriteOptions(field_manager="corral-apiserver")
    entry = registry.entry(info, ns, name)
    if entry is None:
        await registry.create(info, ns, want, opts)
        return
    cur = registry.decode(info, entry)
    if cur.get(key) == want[key]:
        return
    await registry.update(info, ns, name, {**cur, key: want[key]}, opts)


async def publish(registry: Registry, data_dir: Path) -> None:
    """Write the ConfigMap, the reader Role and its binding (never raises)."""
    todo: list[tuple[tuple[str, str, str], Obj, str]] = [
        (("", "v1", "configmaps"), authentication_configmap(data_dir), "data"),
        ((RBAC_GROUP, "v1", "roles"), reader_role(), "rules"),
        ((RBAC_GROUP, "v1", "rolebindings"), reader_binding(), "subjects"),
    ]
    for gvr, want, key in todo:
        try:
            await _ensure(registry, gvr, want, key)
        except (errors.StatusError, OSError) as e:
            log.warning("publishing %s %s: %s", gvr[2], want["metadata"]["name"], e)
