"""RBAC escalation prevention: Covers, upstream's message, and the admission plugin on
roles and bindings (escalate, bind, holding the rules, GC-only updates)."""

from __future__ import annotations

from typing import Any

import pytest

from corral.api import errors, rbac
from corral.apiserver import rbac_escalation as esc
from corral.apiserver.authz import default_chain
from corral.apiserver.identity import UserInfo
from corral.apiserver.store import MERGE_PATCH, Registry, WriteOptions

G = rbac.RBAC_GROUP
Obj = dict[str, Any]
BOB = UserInfo("bob", ("devs", "system:authenticated"))


def rule(verbs: list[str], resources: list[str], groups: list[str] | None = None, **kw: Any) -> Obj:
    return {
        "apiGroups": [""] if groups is None else groups,
        "resources": resources,
        "verbs": verbs,
        **kw,
    }


@pytest.mark.parametrize(
    ("owner", "wanted", "missing"),
    [
        ([rule(["get", "list"], ["pods"])], [rule(["get"], ["pods"])], []),
        ([rule(["get"], ["pods"])], [rule(["get", "list"], ["pods"])], [rule(["list"], ["pods"])]),
        ([rule(["*"], ["*"], ["*"])], [rule(["delete"], ["secrets"], ["x.io"])], []),
        ([rule(["get"], ["*/scale"], ["apps"])], [rule(["get"], ["deployments/scale"], ["apps"])], []),
        ([rule(["get"], ["*/scale"], ["apps"])], [rule(["get"], ["deployments"], ["apps"])],
         [rule(["get"], ["deployments"], ["apps"])]),
        ([rule(["get"], ["cm"], resourceNames=["a"])], [rule(["get"], ["cm"])], [rule(["get"], ["cm"])]),
        ([rule(["get"], ["cm"])], [rule(["get"], ["cm"], resourceNames=["a", "b"])], []),
        ([rule(["get"], ["cm"], resourceNames=["a"])], [rule(["get"], ["cm"], resourceNames=["a", "b"])],
         [rule(["get"], ["cm"], resourceNames=["b"])]),
        ([{"verbs": ["get"], "nonResourceURLs": ["/logs/*"]}],
         [{"verbs": ["get"], "nonResourceURLs": ["/logs/a", "/metrics"]}],
         [{"verbs": ["get"], "nonResourceURLs": ["/metrics"]}]),
    ],
    ids=["subset", "verb-missing", "star", "star-subresource", "star-subresource-not-parent",
         "names-do-not-cover-all", "all-cover-names", "one-name-missing", "urls"],
)  # fmt: skip
def test_covers(owner: list[Obj], wanted: list[Obj], missing: list[Obj]) -> None:
    assert esc.covers(owner, wanted) == missing


def test_message_is_upstreams() -> None:
    missing = esc.covers([], [rule(["get", "list"], ["secrets"]), rule(["create"], ["pods"])])
    assert esc.escalation_message(BOB, missing, []) == (
        'user "bob" (groups=["devs" "system:authenticated"]) is attempting to grant RBAC '
        "permissions not currently held:\n"
        '{APIGroups:[""], Resources:["pods"], Verbs:["create"]}\n'
        '{APIGroups:[""], Resources:["secrets"], Verbs:["get" "list"]}'
    )
    assert esc.escalation_message(BOB, missing[:1], [f'roles.{G} "x" not found']).endswith(
        f'Verbs:["get"]}}; resolution errors: [roles.{G} "x" not found]'
    )


@pytest.fixture
async def registry(registry: Registry) -> Registry:
    registry.authorizer = default_chain(registry)
    esc.EscalationCheck(registry).register()
    # bob may manage RBAC objects in default and read pods there
    await create(
        registry,
        "clusterroles",
        {
            "metadata": {"name": "rbac-writer"},
            "rules": [
                rule(["create", "update", "patch", "get"], ["roles", "rolebindings"], [G]),
                rule(["get", "list"], ["pods"]),
            ],
        },
    )
    await create(
        registry, "rolebindings", binding("bob-writes", "ClusterRole", "rbac-writer"), "default"
    )
    await create(
        registry,
        "clusterroles",
        {"metadata": {"name": "secret-reader"}, "rules": [rule(["get"], ["secrets"])]},
    )
    return registry


def binding(name: str, kind: str, role: str) -> Obj:
    return {
        "metadata": {"name": name},
        "roleRef": {"apiGroup": G, "kind": kind, "name": role},
        "subjects": [{"kind": "User", "name": "bob", "apiGroup": G}],
    }


async def create(
    reg: Registry, plural: str, obj: Obj, ns: str = "", user: UserInfo | None = None
) -> Obj:
    info = reg.by_gvr[(G, "v1", plural)]
    return (await reg.create(info, ns, obj, WriteOptions(user=user))).obj


async def refused(reg: Registry, plural: str, obj: Obj, ns: str = "") -> str:
    with pytest.raises(errors.StatusError) as e:
        await create(reg, plural, obj, ns, BOB)
    assert e.value.code == 403
    return e.value.message


async def test_a_role_within_what_one_holds(registry: Registry) -> None:
    await create(registry, "roles", {"metadata": {"name": "ok"}, "rules": [rule(["get"], ["pods"])]},
                 "default", BOB)  # fmt: skip
    msg = await refused(
        registry,
        "roles",
        {"metadata": {"name": "more"}, "rules": [rule(["get"], ["secrets"])]},
        "default",
    )
    assert msg == (
        f'roles.{G} "more" is forbidden: user "bob" (groups=["devs" "system:authenticated"]) is '
        "attempting to grant RBAC permissions not currently held:\n"
        '{APIGroups:[""], Resources:["secrets"], Verbs:["get"]}'
    )


async def test_escalate_and_bind_verbs(registry: Registry) -> None:
    more = {"metadata": {"name": "more"}, "rules": [rule(["get"], ["secrets"])]}
    await refused(registry, "rolebindings", binding("b", "ClusterRole", "secret-reader"), "default")
    await create(registry, "clusterroles", {"metadata": {"name": "delegate"}, "rules": [
        rule(["escalate"], ["roles"], [G]),
        rule(["bind"], ["clusterroles"], [G], resourceNames=["secret-reader"]),
    ]})  # fmt: skip
    await create(
        registry, "rolebindings", binding("delegate", "ClusterRole", "delegate"), "default"
    )
    await create(registry, "roles", dict(more), "default", BOB)
    await create(
        registry, "rolebindings", binding("b", "ClusterRole", "secret-reader"), "default", BOB
    )
    # bind is per role name: another role still needs its rules held
    await create(registry, "clusterroles", {"metadata": {"name": "node-reader"},
                                           "rules": [rule(["get"], ["nodes"])]})  # fmt: skip
    msg = await refused(
        registry, "rolebindings", binding("c", "ClusterRole", "node-reader"), "default"
    )
    assert 'Resources:["nodes"]' in msg


async def test_binding_a_missing_role(registry: Registry) -> None:
    msg = await refused(registry, "rolebindings", binding("m", "Role", "nope"), "default")
    assert msg == f'rolebindings.{G} "m" is forbidden: roles.{G} "nope" not found'


async def test_cluster_scope_and_aggregation(registry: Registry) -> None:
    """bob's role binding is namespaced: cluster-wide he holds nothing; an aggregated
    ClusterRole needs everything."""
    await create(registry, "clusterroles", {"metadata": {"name": "cr-writer"}, "rules": [
        rule(["create", "update", "patch"], ["clusterroles"], [G])]})  # fmt: skip
    await create(registry, "clusterrolebindings", binding("bob-cr", "ClusterRole", "cr-writer"))
    await create(registry, "clusterroles", {"metadata": {"name": "empty"}}, "", BOB)
    agg = {
        "metadata": {"name": "agg"},
        "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"a": "b"}}]},
    }
    msg = await refused(registry, "clusterroles", agg)
    assert msg == f'clusterroles.{G} "agg" is forbidden: {esc.AGGREGATION_MESSAGE}'


async def test_gc_only_updates_and_internal_writes_pass(registry: Registry) -> None:
    await create(registry, "roles", {"metadata": {"name": "big"}, "rules": [rule(["*"], ["*"], ["*"])]},
                 "default")  # fmt: skip
    info = registry.by_gvr[(G, "v1", "roles")]
    opts = WriteOptions(field_manager="t", user=BOB)
    await registry.patch(
        info, "default", "big", MERGE_PATCH, {"metadata": {"finalizers": ["x/y"]}}, opts
    )
    with pytest.raises(errors.StatusError) as e:
        await registry.patch(
            info, "default", "big", MERGE_PATCH, {"metadata": {"labels": {"a": "b"}}}, opts
        )
    assert e.value.code == 403
    admin = UserInfo("admin", ("system:masters",))
    await registry.patch(info, "default", "big", MERGE_PATCH, {"metadata": {"labels": {"a": "b"}}},
                         WriteOptions(field_manager="t", user=admin))  # fmt: skip
