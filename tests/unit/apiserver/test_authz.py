"""The authorizer chain, the compiled RBAC authorizer (same answers as api/rbac.py, and
fresh after any RBAC change) and upstream's 403 messages."""

from __future__ import annotations

from typing import Any

import pytest

from corral.api import rbac
from corral.apiserver.authz import (
    AuthorizerChain,
    PrivilegedGroups,
    RBACAuthorizer,
    default_chain,
    forbidden,
)
from corral.apiserver.store import DeleteOptions, Registry, WriteOptions

G = rbac.RBAC_GROUP
Obj = dict[str, Any]


@pytest.fixture
def registry_namespaces() -> tuple[str, ...]:
    return ("default", "other")


async def put(reg: Registry, plural: str, obj: Obj, ns: str = "") -> None:
    info = reg.by_gvr[(G, "v1", plural)]
    name = obj["metadata"]["name"]
    if reg.entry(info, ns, name) is None:
        await reg.create(info, ns, obj, WriteOptions())
    else:
        await reg.update(info, ns, name, obj, WriteOptions())


def attrs(user: str, verb: str, resource: str, ns: str = "", **kw: Any) -> rbac.Attributes:
    return rbac.Attributes(user, ("system:authenticated",), verb, "", resource, namespace=ns, **kw)


async def test_compiled_rbac_follows_changes(registry: Registry) -> None:
    authz = RBACAuthorizer(registry)
    read = attrs("bob", "list", "pods", "default")
    assert authz.authorize(read) == rbac.Decision(False)
    await put(
        registry,
        "roles",
        {
            "metadata": {"name": "r"},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}],
        },
        "default",
    )
    binding = {
        "metadata": {"name": "b"},
        "roleRef": {"apiGroup": G, "kind": "Role", "name": "r"},
        "subjects": [{"kind": "User", "name": "bob", "apiGroup": G}],
    }
    await put(registry, "rolebindings", binding, "default")
    assert not authz.authorize(read).allowed  # get only
    assert authz.authorize(attrs("bob", "get", "pods", "default", name="p")) == rbac.Decision(
        True, 'RBAC: allowed by RoleBinding "b/default" of Role "r" to User "bob"'
    )
    assert not authz.authorize(attrs("bob", "get", "pods", "other", name="p")).allowed
    # the role changes: the compiled rules follow
    await put(
        registry,
        "roles",
        {
            "metadata": {"name": "r"},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}],
        },
        "default",
    )
    assert authz.authorize(read).allowed
    # a binding to a missing role: no opinion, with upstream's reason
    gone = {  # (a roleRef cannot change: a second binding)
        "metadata": {"name": "b2"},
        "roleRef": {"apiGroup": G, "kind": "Role", "name": "gone"},
        "subjects": [{"kind": "User", "name": "bob", "apiGroup": G}],
    }
    await put(registry, "rolebindings", gone, "default")
    await registry.delete(registry.by_gvr[(G, "v1", "roles")], "default", "r", DeleteOptions())
    assert authz.authorize(read) == rbac.Decision(
        False, f'RBAC: [role.{G} "r" not found, role.{G} "gone" not found]'
    )


RULES = [
    {"apiGroups": [""], "resources": ["pods", "pods/log"], "verbs": ["get", "list"]},
    {"apiGroups": ["apps"], "resources": ["*/scale"], "verbs": ["update"]},
    {"apiGroups": ["*"], "resources": ["configmaps"], "verbs": ["*"], "resourceNames": ["cm1"]},
    {"nonResourceURLs": ["/healthz", "/logs/*"], "verbs": ["get"]},
]
QUESTIONS = [
    attrs("u", "get", "pods", "default", name="x"),
    attrs("u", "watch", "pods", "default"),
    attrs("u", "get", "pods", "default", subresource="log", name="x"),
    attrs("u", "get", "pods", "default", subresource="exec", name="x"),
    rbac.Attributes("u", (), "update", "apps", "deployments", "scale", "d", "default"),
    rbac.Attributes("u", (), "update", "apps", "deployments", "", "d", "default"),
    rbac.Attributes("u", (), "delete", "x.io", "configmaps", "", "cm1", "default"),
    rbac.Attributes("u", (), "create", "", "configmaps", "", "", "default"),
    rbac.Attributes("u", (), "get", path="/healthz", resource_request=False),
    rbac.Attributes("u", (), "get", path="/logs/a/b", resource_request=False),
    rbac.Attributes("u", (), "get", path="/logsx", resource_request=False),
    rbac.Attributes("u", (), "post", path="/healthz", resource_request=False),
]


def _mixed() -> tuple[dict[str, Any], dict[str, Any]]:
    """The ClusterRole holding RULES and its binding to user u."""
    role = {"kind": "ClusterRole", "metadata": {"name": "mixed"}, "rules": RULES}
    crb = {
        "kind": "ClusterRoleBinding",
        "metadata": {"name": "mixed"},
        "roleRef": {"apiGroup": G, "kind": "ClusterRole", "name": "mixed"},
        "subjects": [{"kind": "User", "name": "u", "apiGroup": G}],
    }
    return role, crb


async def test_compiled_rules_answer_as_the_evaluator(registry: Registry) -> None:
    role, crb = _mixed()
    await put(registry, "clusterroles", dict(role))
    await put(registry, "clusterrolebindings", dict(crb))
    authz = RBACAuthorizer(registry)
    policy = rbac.StaticPolicy([role, crb])
    answers = [authz.authorize(q) for q in QUESTIONS]
    assert answers == [rbac.authorize(q, policy) for q in QUESTIONS]
    assert [a.allowed for a in answers] == [
        True, False, True, False, True, False, True, False, True, True, False, False
    ]  # fmt: skip


async def test_narrowed_rules_answer_as_the_evaluator_in_any_order(registry: Registry) -> None:
    # the rules tried per (kind of request, verb) are remembered: asking in another
    # order, twice over, with a binding to a missing role (the reason names it), and after
    # a change of a role, still gives the evaluator's answers
    role, crb = _mixed()
    missing = {
        "kind": "ClusterRoleBinding",
        "metadata": {"name": "a-missing"},
        "roleRef": {"apiGroup": G, "kind": "ClusterRole", "name": "gone"},
        "subjects": [{"kind": "User", "name": "u", "apiGroup": G}],
    }
    for plural, obj in (("clusterroles", role), ("clusterrolebindings", crb),
                        ("clusterrolebindings", missing)):  # fmt: skip
        await put(registry, plural, dict(obj))
    authz = RBACAuthorizer(registry)
    policy = rbac.StaticPolicy([role, crb, missing])
    questions = [*reversed(QUESTIONS), *QUESTIONS]
    answers = [authz.authorize(q) for q in questions]
    assert answers == [rbac.authorize(q, policy) for q in questions]
    assert any(not a.allowed and "gone" in a.reason for a in answers)
    narrowed = {**role, "rules": RULES[1:]}
    await put(registry, "clusterroles", dict(narrowed))
    policy = rbac.StaticPolicy([narrowed, crb, missing])
    assert [authz.authorize(q) for q in questions] == [rbac.authorize(q, policy) for q in questions]


class Fixed:
    def __init__(self, d: rbac.Decision) -> None:
        self.d = d
        self.asked = 0

    def authorize(self, attrs: rbac.Attributes) -> rbac.Decision:
        self.asked += 1
        return self.d


def test_chain_first_allow_or_deny_wins_and_joins_reasons() -> None:
    a = attrs("bob", "get", "pods", "default")
    quiet, deny, allow = (
        Fixed(rbac.Decision(False, "no")),
        Fixed(rbac.Decision(False, "denied", True)),
        Fixed(rbac.Decision(True, "yes")),
    )
    assert AuthorizerChain([quiet, allow, deny]).authorize(a) == rbac.Decision(True, "yes")
    assert AuthorizerChain([quiet, deny, allow]).authorize(a).denied
    assert allow.asked == 1
    assert AuthorizerChain([quiet, Fixed(rbac.Decision(False, "also"))]).authorize(
        a
    ) == rbac.Decision(False, "no\nalso")
    masters = rbac.Attributes("admin", ("system:masters",), "delete", resource="nodes")
    assert PrivilegedGroups().authorize(masters) == rbac.Decision(True)
    assert AuthorizerChain([PrivilegedGroups(), deny]).authorize(masters).allowed


async def test_default_chain_puts_extra_between(registry: Registry) -> None:
    extra = Fixed(rbac.Decision(False))
    chain = default_chain(registry, extra)
    assert isinstance(chain.authorizers[0], PrivilegedGroups)
    assert chain.authorizers[1] is extra
    assert isinstance(chain.authorizers[2], RBACAuthorizer)


@pytest.mark.parametrize(
    ("a", "reason", "message", "details"),
    [
        (
            attrs("bob", "list", "pods", "default"),
            "",
            'pods is forbidden: User "bob" cannot list resource "pods" in API group "" in the '
            'namespace "default"',
            {"kind": "pods"},
        ),
        (
            rbac.Attributes("bob", (), "get", "apps", "deployments", "scale", "d", "ns"),
            "",
            'deployments.apps "d" is forbidden: User "bob" cannot get resource '
            '"deployments/scale" in API group "apps" in the namespace "ns"',
            {"name": "d", "group": "apps", "kind": "deployments"},
        ),
        (
            rbac.Attributes("bob", (), "create", G, "clusterroles"),
            f'RBAC: clusterrole.{G} "x" not found',
            f'clusterroles.{G} is forbidden: User "bob" cannot create resource "clusterroles" '
            f'in API group "{G}" at the cluster scope: RBAC: clusterrole.{G} "x" not found',
            {"group": G, "kind": "clusterroles"},
        ),
        (
            rbac.Attributes("system:anonymous", (), "get", path="/api", resource_request=False),
            "",
            'forbidden: User "system:anonymous" cannot get path "/api"',
            {},
        ),
        (
            rbac.Attributes("<b>", (), "get", path="/a&b", resource_request=False),
            "",
            'forbidden: User "&lt;b&gt;" cannot get path "/a&amp;b"',
            {},
        ),
    ],
    ids=["list", "subresource-named", "with-reason", "path", "html-escaped"],
)
def test_forbidden_shape(a: rbac.Attributes, reason: str, message: str, details: Obj) -> None:
    e = forbidden(a, reason)
    s = e.status()
    assert (e.code, s["reason"], s["message"], s["details"]) == (403, "Forbidden", message, details)


class OnlyResources:
    """Allows ``impersonate`` on the resources listed, nothing else."""

    def __init__(self, *resources: str) -> None:
        self.resources = resources
        self.asked: list[tuple[str, str, str, str, str]] = []

    def authorize(self, a: rbac.Attributes) -> rbac.Decision:
        self.asked.append((a.api_group, a.resource, a.subresource, a.namespace, a.name))
        return rbac.Decision(a.verb == "impersonate" and a.resource in self.resources)


def test_impersonation_asks_one_question_per_thing() -> None:
    from multidict import CIMultiDict

    from corral.api import errors
    from corral.apiserver.identity import UserInfo, impersonated

    bob = UserInfo("bob", ("system:authenticated",))
    headers = CIMultiDict(
        [
            ("Impersonate-User", "system:serviceaccount:ns1:robot"),
            ("Impersonate-Group", "g1"),
            ("Impersonate-Extra-Scopes", "view"),
            ("Impersonate-Uid", "u-1"),
        ]
    )
    authz = OnlyResources("serviceaccounts", "groups", "userextras", "uids")
    user = impersonated(bob, headers, authz)
    assert (user.username, user.groups, user.uid, user.extra) == (
        "system:serviceaccount:ns1:robot",
        ("g1", "system:authenticated"),
        "u-1",
        {"scopes": ["view"]},
    )
    assert authz.asked == [
        ("", "serviceaccounts", "", "ns1", "robot"),
        ("", "groups", "", "", "g1"),
        ("authentication.k8s.io", "userextras", "scopes", "", "view"),
        ("authentication.k8s.io", "uids", "", "", "u-1"),
    ]
    with pytest.raises(errors.StatusError) as e:
        impersonated(bob, headers, OnlyResources("serviceaccounts", "groups", "userextras"))
    assert e.value.code == 403
    assert e.value.message == (
        'uids.authentication.k8s.io "u-1" is forbidden: User "bob" cannot impersonate '
        'resource "uids" in API group "authentication.k8s.io" at the cluster scope'
    )
    with pytest.raises(errors.StatusError) as e:
        impersonated(bob, headers, OnlyResources())
    assert e.value.message == (
        'serviceaccounts "robot" is forbidden: User "bob" cannot impersonate resource '
        '"serviceaccounts" in API group "" in the namespace "ns1"'
    )
    # without an authorizer only system:masters may
    with pytest.raises(errors.StatusError):
        impersonated(bob, headers)
    admin = UserInfo("admin", ("system:masters",))
    assert impersonated(admin, headers).username == "system:serviceaccount:ns1:robot"
