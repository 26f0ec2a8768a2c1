"""Tables for the RBAC evaluator (corral.api.rbac): rule matching, subjects, the order
of bindings, upstream's reason strings and the rules review."""

from __future__ import annotations

from typing import Any

import pytest

from corral.api.rbac import (
    Attributes,
    Decision,
    StaticPolicy,
    _aggregate,
    authorize,
    decide,
    rule_allows,
    rules_for,
    service_account_user,
)

Obj = dict[str, Any]


def rule(
    verbs: list[str], groups: list[str], resources: list[str], names: list[str] | None = None
) -> Obj:
    r: Obj = {"verbs": verbs, "apiGroups": groups, "resources": resources}
    if names:
        r["resourceNames"] = names
    return r


def url_rule(verbs: list[str], urls: list[str]) -> Obj:
    return {"verbs": verbs, "nonResourceURLs": urls}


def req(
    verb: str, resource: str, group: str = "", sub: str = "", name: str = "", ns: str = "ns1"
) -> Attributes:
    return Attributes("u", (), verb, group, resource, sub, name, ns)


def url(verb: str, path: str) -> Attributes:
    return Attributes("u", (), verb, path=path, resource_request=False)


@pytest.mark.parametrize(
    ("rule_", "attrs", "allowed"),
    [
        # verbs
        (rule(["get"], [""], ["pods"]), req("get", "pods"), True),
        (rule(["get"], [""], ["pods"]), req("list", "pods"), False),
        (rule(["*"], [""], ["pods"]), req("deletecollection", "pods"), True),
        # api groups: "" is core, "*" any
        (rule(["get"], [""], ["deployments"]), req("get", "deployments", "apps"), False),
        (rule(["get"], ["apps"], ["deployments"]), req("get", "deployments", "apps"), True),
        (rule(["get"], ["*"], ["deployments"]), req("get", "deployments", "apps"), True),
        (rule(["get"], ["apps"], ["pods"]), req("get", "pods"), False),
        # resources and subresources
        (rule(["get"], [""], ["*"]), req("get", "secrets"), True),
        (rule(["get"], [""], ["*"]), req("get", "pods", sub="log"), True),
        (rule(["get"], [""], ["pods"]), req("get", "pods", sub="log"), False),
        (rule(["get"], [""], ["pods/log"]), req("get", "pods", sub="log"), True),
        (rule(["get"], [""], ["pods/log"]), req("get", "pods"), False),
        (rule(["get"], [""], ["*/log"]), req("get", "pods", sub="log"), True),
        (rule(["get"], [""], ["*/log"]), req("get", "pods", sub="status"), False),
        (rule(["get"], [""], ["*/log"]), req("get", "pods"), False),
        (rule(["update"], ["*"], ["*/scale"]), req("update", "deployments", "apps", "scale"), True),
        # resourceNames: empty means all; a create has no name yet
        (rule(["get"], [""], ["configmaps"], ["a"]), req("get", "configmaps", name="a"), True),
        (rule(["get"], [""], ["configmaps"], ["a"]), req("get", "configmaps", name="b"), False),
        (rule(["get"], [""], ["configmaps"], ["a"]), req("list", "configmaps"), False),
        (rule(["create"], [""], ["configmaps"], ["a"]), req("create", "configmaps"), False),
        (rule(["create"], [""], ["configmaps"]), req("create", "configmaps"), True),
        # non-resource URLs: exact, "*" and a trailing "*" prefix
        (url_rule(["get"], ["/healthz"]), url("get", "/healthz"), True),
        (url_rule(["get"], ["/healthz"]), url("get", "/healthz/etcd"), False),
        (url_rule(["get"], ["/healthz*"]), url("get", "/healthz/etcd"), True),
        (url_rule(["get"], ["/apis/*"]), url("get", "/apis/apps/v1"), True),
        (url_rule(["get"], ["/apis/*"]), url("get", "/api"), False),
        (url_rule(["*"], ["*"]), url("post", "/anything"), True),
        (url_rule(["get"], ["/version"]), url("post", "/version"), False),
        # a resource rule never matches a URL, nor a URL rule a resource
        (rule(["*"], ["*"], ["*"]), url("get", "/healthz"), False),
        (url_rule(["*"], ["*"]), req("get", "pods"), False),
    ],
)
def test_rule_allows(rule_: Obj, attrs: Attributes, allowed: bool) -> None:
    assert rule_allows(attrs, rule_) is allowed


def meta(name: str, ns: str = "") -> Obj:
    m: Obj = {"name": name}
    if ns:
        m["namespace"] = ns
    return m


def cluster_role(name: str, *rules: Obj) -> Obj:
    return {"kind": "ClusterRole", "metadata": meta(name), "rules": list(rules)}


def role(ns: str, name: str, *rules: Obj) -> Obj:
    return {"kind": "Role", "metadata": meta(name, ns), "rules": list(rules)}


def binding(
    kind: str, name: str, ref_kind: str, ref: str, subjects: list[Obj], ns: str = ""
) -> Obj:
    return {
        "kind": kind,
        "metadata": meta(name, ns),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": ref_kind, "name": ref},
        "subjects": subjects,
    }


def user(name: str) -> Obj:
    return {"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": name}


def group(name: str) -> Obj:
    return {"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": name}


def sa(name: str, ns: str = "") -> Obj:
    s: Obj = {"kind": "ServiceAccount", "name": name}
    if ns:
        s["namespace"] = ns
    return s


VIEW = cluster_role("view", rule(["get", "list", "watch"], [""], ["pods", "configmaps"]))
POLICY = StaticPolicy(
    [
        cluster_role("cluster-admin", rule(["*"], ["*"], ["*"]), url_rule(["*"], ["*"])),
        VIEW,
        cluster_role("health", url_rule(["get"], ["/healthz", "/readyz*"])),
        role("ns1", "cm-writer", rule(["create", "update"], [""], ["configmaps"])),
        role("ns2", "cm-writer", rule(["delete"], [""], ["configmaps"])),
        binding(
            "ClusterRoleBinding",
            "cluster-admin",
            "ClusterRole",
            "cluster-admin",
            [group("system:masters")],
        ),
        binding(
            "ClusterRoleBinding", "health", "ClusterRole", "health", [group("system:authenticated")]
        ),
        binding("ClusterRoleBinding", "dangling", "ClusterRole", "missing", [user("bob")]),
        binding("RoleBinding", "jane-view", "ClusterRole", "view", [user("jane")], "ns1"),
        binding("RoleBinding", "jane-cm", "Role", "cm-writer", [user("jane")], "ns1"),
        binding("RoleBinding", "robot-view", "ClusterRole", "view", [sa("robot")], "ns2"),
        binding("RoleBinding", "other-sa", "Role", "cm-writer", [sa("robot", "ns1")], "ns2"),
        binding(
            "RoleBinding",
            "all-sas",
            "ClusterRole",
            "view",
            [group("system:serviceaccounts:ns3")],
            "ns3",
        ),
        binding("RoleBinding", "gone", "Role", "no-such-role", [user("bob")], "ns1"),
        binding("RoleBinding", "odd", "Widget", "x", [user("carl")], "ns1"),
    ]
)
ROBOT, ROBOT_GROUPS = service_account_user("ns2", "robot")
ROBOT1, ROBOT1_GROUPS = service_account_user("ns1", "robot")
RB_VIEW = 'RBAC: allowed by RoleBinding "jane-view/ns1" of ClusterRole "view" to User "jane"'


@pytest.mark.parametrize(
    ("attrs", "allowed", "reason"),
    [
        # cluster-admin through a Group subject of a ClusterRoleBinding
        (
            Attributes("admin", ("system:masters",), "create", "", "pods", namespace="ns1"),
            True,
            'RBAC: allowed by ClusterRoleBinding "cluster-admin" of ClusterRole "cluster-admin" '
            'to Group "system:masters"',
        ),
        (
            Attributes(
                "admin", ("system:masters",), "get", path="/metrics", resource_request=False
            ),
            True,
            'RBAC: allowed by ClusterRoleBinding "cluster-admin" of ClusterRole "cluster-admin" '
            'to Group "system:masters"',
        ),
        # a RoleBinding of a ClusterRole grants only in its namespace
        (Attributes("jane", (), "get", "", "pods", namespace="ns1"), True, RB_VIEW),
        (Attributes("jane", (), "list", "", "configmaps", namespace="ns1"), True, RB_VIEW),
        (Attributes("jane", (), "create", "", "pods", namespace="ns1"), False, ""),
        (Attributes("jane", (), "get", "", "pods", namespace="ns2"), False, ""),
        (Attributes("jane", (), "get", "", "pods"), False, ""),  # cluster-wide: no
        # a RoleBinding of a Role
        (
            Attributes("jane", (), "create", "", "configmaps", namespace="ns1"),
            True,
            'RBAC: allowed by RoleBinding "jane-cm/ns1" of Role "cm-writer" to User "jane"',
        ),
        (Attributes("jane", (), "delete", "", "configmaps", namespace="ns1"), False, ""),
        # non-resource URL through a Group ClusterRoleBinding
        (
            Attributes(
                "jane",
                ("system:authenticated",),
                "get",
                path="/readyz/ping",
                resource_request=False,
            ),
            True,
            'RBAC: allowed by ClusterRoleBinding "health" of ClusterRole "health" to Group "system:authenticated"',
        ),
        (Attributes("jane", (), "get", path="/healthz", resource_request=False), False, ""),
        # ServiceAccount subjects: the binding's namespace by default, or their own
        (
            Attributes(ROBOT, ROBOT_GROUPS, "watch", "", "pods", namespace="ns2"),
            True,
            'RBAC: allowed by RoleBinding "robot-view/ns2" of ClusterRole "view" to ServiceAccount "robot/ns2"',
        ),
        (Attributes(ROBOT1, ROBOT1_GROUPS, "watch", "", "pods", namespace="ns2"), False, ""),
        (
            Attributes(ROBOT1, ROBOT1_GROUPS, "delete", "", "configmaps", namespace="ns2"),
            True,
            'RBAC: allowed by RoleBinding "other-sa/ns2" of Role "cm-writer" to ServiceAccount "robot/ns1"',
        ),
        (Attributes("robot", (), "watch", "", "pods", namespace="ns2"), False, ""),
        # the service-account groups as Group subjects
        (
            Attributes(*service_account_user("ns3", "any"), "get", "", "pods", namespace="ns3"),
            True,
            'RBAC: allowed by RoleBinding "all-sas/ns3" of ClusterRole "view" to Group "system:serviceaccounts:ns3"',
        ),
        # missing roles and odd references are errors in the reason, never allowed
        (
            Attributes("bob", (), "get", "", "pods", namespace="ns1"),
            False,
            'RBAC: [clusterrole.rbac.authorization.k8s.io "missing" not found, '
            'role.rbac.authorization.k8s.io "no-such-role" not found]',
        ),
        (
            Attributes("bob", (), "get", "", "pods"),
            False,
            'RBAC: clusterrole.rbac.authorization.k8s.io "missing" not found',
        ),
        (
            Attributes("carl", (), "get", "", "pods", namespace="ns1"),
            False,
            'RBAC: unsupported role reference kind: "Widget"',
        ),
        (Attributes("nobody", (), "get", "", "pods", namespace="ns1"), False, ""),
    ],
)
def test_authorize(attrs: Attributes, allowed: bool, reason: str) -> None:
    d = authorize(attrs, POLICY)
    assert (d.allowed, d.reason, d.denied) == (allowed, reason, False)


def test_cluster_role_bindings_come_first() -> None:
    """Both a ClusterRoleBinding and a RoleBinding allow: the reason names the former."""
    policy = StaticPolicy(
        [
            VIEW,
            binding("RoleBinding", "rb", "ClusterRole", "view", [user("jane")], "ns1"),
            binding("ClusterRoleBinding", "crb", "ClusterRole", "view", [user("jane")]),
        ]
    )
    d = authorize(Attributes("jane", (), "get", "", "pods", namespace="ns1"), policy)
    assert (
        d.reason == 'RBAC: allowed by ClusterRoleBinding "crb" of ClusterRole "view" to User "jane"'
    )


def test_rules_for() -> None:
    rr = rules_for("jane", ["system:authenticated"], "ns1", POLICY)
    assert rr.status() == {
        "resourceRules": [
            {
                "verbs": ["get", "list", "watch"],
                "apiGroups": [""],
                "resources": ["pods", "configmaps"],
            },
            {"verbs": ["create", "update"], "apiGroups": [""], "resources": ["configmaps"]},
        ],
        "nonResourceRules": [{"verbs": ["get"], "nonResourceURLs": ["/healthz", "/readyz*"]}],
        "incomplete": False,
    }
    assert rules_for("jane", [], "ns2", POLICY).status() == {
        "resourceRules": [],
        "nonResourceRules": [],
        "incomplete": False,
    }


def test_rules_for_keeps_rules_and_reports_errors() -> None:
    rr = rules_for("bob", ["system:masters"], "ns1", POLICY)
    assert rr.resource_rules == [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}]
    assert rr.non_resource_rules == [{"verbs": ["*"], "nonResourceURLs": ["*"]}]
    assert rr.evaluation_error == (
        '[clusterrole.rbac.authorization.k8s.io "missing" not found, '
        'role.rbac.authorization.k8s.io "no-such-role" not found]'
    )
    assert rr.status()["incomplete"] is False


def test_resource_names_listed() -> None:
    policy = StaticPolicy(
        [
            cluster_role("one", rule(["get"], [""], ["secrets"], ["s1"])),
            binding("ClusterRoleBinding", "b", "ClusterRole", "one", [user("u")]),
        ]
    )
    assert rules_for("u", [], "default", policy).resource_rules == [
        {"verbs": ["get"], "apiGroups": [""], "resources": ["secrets"], "resourceNames": ["s1"]}
    ]


def test_privileged_group_before_rbac() -> None:
    """system:masters is allowed with an empty reason even with no RBAC object at all;
    others get RBAC's decision."""
    empty = StaticPolicy([])
    masters = Attributes("x", ("system:masters",), "delete", "", "nodes")
    assert decide(masters, empty) == Decision(True)
    assert authorize(masters, empty) == Decision(False)
    jane = Attributes("jane", (), "get", "", "pods", namespace="ns1")
    assert decide(jane, POLICY) == authorize(jane, POLICY)


@pytest.mark.parametrize(
    ("errs", "text"),
    [
        (["a"], "a"),
        (["a", "a"], "a"),
        (["a", "b", "a"], "[a, b]"),
    ],
)
def test_aggregate(errs: list[str], text: str) -> None:
    """utilerrors.NewAggregate: duplicates once, brackets only for several messages."""
    assert _aggregate(errs) == text
