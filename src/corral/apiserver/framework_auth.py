"""The API server's side of the Mesos, Marathon and Chronos faces' authentication: the
secrets Marathon and Chronos authenticate to the Mesos master with, and the RBAC that
names what each face's operations need.

The faces (``mesos/auth.py``, ``marathon/auth.py``, ``chronos/auth.py``) take HTTP basic
credentials, a Corral user and one of its bearer tokens, and check them with TokenReview
and SubjectAccessReview. ``corral server`` therefore gives Marathon and Chronos a token
each (``ensure_framework_secrets``: ``DATA/pki/marathon.secret``, ``chronos.secret``,
0600, kept across restarts) that its authenticator accepts as a static token of
``corral:marathon`` / ``corral:chronos`` (beside the user's ``--token-auth-file``), and
passes them ``--mesos-authentication-principal``/``--mesos-authentication-secret-file``
(``child_args``), as one would give the real ones a Mesos credential.

The policy (``cluster_roles``/``cluster_role_bindings``, reconciled with the ``corral:*``
policy at start): one ClusterRole per face and kind of user, aggregated into upstream's
``admin``/``edit``/``view`` (so a namespace-less binding of ``view`` can read them
all), and the binding that lets Marathon and Chronos register with any role:

========================== ==================================================== =========
ClusterRole                rules (cluster-scoped)                               aggregates
========================== ==================================================== =========
corral:mesos-framework     create frameworks; use roles (mesos.corral.dev)      edit
corral:mesos-operator      update weights, quotas                               admin
corral:mesos-viewer        get/list/watch state, metrics, flags, agents,        view
                           frameworks, tasks, roles, weights, quotas
corral:marathon-user       every verb on apps, groups, deployments, tasks,      edit
                           queue; get info, leader, metrics; watch events
corral:marathon-viewer     get/list/watch of the same                           view
corral:chronos-user        every verb on jobs; get leader, metrics              edit
corral:chronos-viewer      get/list/watch jobs, leader, metrics                 view
========================== ==================================================== =========

A framework limited to some roles gets ``create frameworks`` and ``use`` on
``roles`` with ``resourceNames`` (docs/architecture.md shows one).
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from corral.apiserver.component_identities import CHRONOS, MARATHON, Identity
from corral.apiserver.identity import UserInfo
from corral.apiserver.rbac_bootstrap import (
    AGGREGATE_TO,
    READ,
    cluster_role,
    cluster_role_binding,
    reconcile_objects,
    rule,
)
from corral.apiserver.store import Registry
from corral.util.pki import write_atomic

Obj = dict[str, Any]

MESOS = "mesos.corral.dev"
MARATHON_GROUP = "marathon.corral.dev"
CHRONOS_GROUP = "chronos.corral.dev"
#: the frameworks ``corral server`` starts, by their command
FRAMEWORKS: dict[str, Identity] = {"marathon": MARATHON, "chronos": CHRONOS}
ALL = ("get", "list", "watch", "create", "update", "patch", "delete")


def secret_path(data_dir: Path, ident: Identity) -> Path:
    return data_dir / "pki" / f"{ident.name}.secret"


def ensure_framework_secrets(data_dir: Path) -> dict[str, UserInfo]:
    """Each framework's token (made on first call, 0600), as a token-file entry."""
    tokens: dict[str, UserInfo] = {}
    for ident in FRAMEWORKS.values():
        path = secret_path(data_dir, ident)
        token = path.read_text().strip() if path.exists() else ""
        if not token:
            path.parent.mkdir(parents=True, exist_ok=True)
            token = secrets.token_urlsafe(32)  # never a ':' (basic auth splits there)
            write_atomic(path, token.encode() + b"\n", 0o600)
        tokens[token] = UserInfo(ident.user, ident.groups)
    return tokens


def child_args(data_dir: Path, command: str, mesos_args: list[str]) -> list[str]:
    """The flags of ``corral marathon``/``chronos`` started by the server: its principal
    and secret towards the master; no REST authentication when the master's operator
    API is open too (``--no-authenticate-http-readwrite``: tests of the open API)."""
    ident = FRAMEWORKS[command]
    out = [
        "--mesos-authentication-principal",
        ident.user,
        "--mesos-authentication-secret-file",
        str(secret_path(data_dir, ident)),
    ]
    if "--no-authenticate-http-readwrite" in mesos_args:
        out.append("--no-authenticate-http")
    return out


# --- the policy ------------------------------------------------------------------------------

_MESOS_VIEW = ("state", "metrics", "flags", "agents", "frameworks", "tasks", "roles", "weights",
               "quotas")  # fmt: skip
_MARATHON = ("apps", "groups", "deployments", "tasks", "queue")
_MARATHON_INFO = ("info", "leader", "metrics", "events")


def cluster_roles() -> list[Obj]:
    """The faces' ClusterRoles (fresh objects; module docstring)."""

    def to(target: str) -> dict[str, str]:
        return {AGGREGATE_TO + target: "true"}

    return [
        cluster_role("corral:mesos-framework", [
            rule("create", MESOS, "frameworks"),
            rule("use", MESOS, "roles"),
        ], to("edit")),
        cluster_role("corral:mesos-operator", [
            rule(("get", "update"), MESOS, ("weights", "quotas")),
        ], to("admin")),
        cluster_role("corral:mesos-viewer", [rule(READ, MESOS, _MESOS_VIEW)], to("view")),
        cluster_role("corral:marathon-user", [
            rule(ALL, MARATHON_GROUP, _MARATHON),
            rule(READ, MARATHON_GROUP, _MARATHON_INFO),
        ], to("edit")),
        cluster_role("corral:marathon-viewer", [
            rule(READ, MARATHON_GROUP, (*_MARATHON, *_MARATHON_INFO)),
        ], to("view")),
        cluster_role("corral:chronos-user", [
            rule(ALL, CHRONOS_GROUP, "jobs"),
            rule(READ, CHRONOS_GROUP, ("leader", "metrics")),
        ], to("edit")),
        cluster_role("corral:chronos-viewer", [
            rule(READ, CHRONOS_GROUP, ("jobs", "leader", "metrics")),
        ], to("view")),
        # the faces ask TokenReviews and SubjectAccessReviews (upstream binds
        # system:auth-delegator to a delegating server)
        cluster_role("corral:framework-reviewer", [
            rule("create", "authentication.k8s.io", "tokenreviews"),
            rule("create", "authorization.k8s.io", "subjectaccessreviews"),
        ]),
    ]  # fmt: skip


def cluster_role_bindings() -> list[Obj]:
    """Marathon and Chronos register with any role; the master (the scheduler's
    identity), Marathon and Chronos review their callers."""
    from corral.apiserver.component_identities import MESOS_MASTER_USER, SCHEDULER

    fw = cluster_role_binding("corral:mesos-framework", users=(MARATHON.user, CHRONOS.user))
    fw["metadata"]["name"] = "corral:frameworks"
    reviewers = (SCHEDULER.user, MESOS_MASTER_USER, MARATHON.user, CHRONOS.user)
    return [fw, cluster_role_binding("corral:framework-reviewer", users=reviewers)]


async def reconcile(registry: Registry) -> None:
    """Create or add to the faces' ClusterRoles and bindings (never fatal)."""
    await reconcile_objects(registry, cluster_roles(), cluster_role_bindings())
