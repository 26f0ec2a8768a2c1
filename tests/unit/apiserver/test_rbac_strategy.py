"""RBAC strategies (``registry/rbac.py``) and the bootstrap policy's reconciliation
(``rbac_bootstrap.py``): upstream's field paths and messages, as tables."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from corral.apiserver import rbac_bootstrap as rb
from corral.apiserver.registry.rbac import (
    ClusterRoleBindingStrategy,
    ClusterRoleStrategy,
    RoleBindingStrategy,
    RoleStrategy,
)
from corral.apiserver.registry.table import RESOURCES

G = "rbac.authorization.k8s.io"
Obj = dict[str, Any]


def errors(strategy: Any, obj: Obj, namespaced: bool) -> list[str]:
    obj = copy.deepcopy(obj)
    meta = obj.setdefault("metadata", {})
    meta.setdefault("name", "x")
    if namespaced:
        meta.setdefault("namespace", "default")
    errs = strategy.validate_metadata(obj, namespaced) + strategy.validate(obj)
    return [str(e) for e in errs]


def ref(kind: str = "ClusterRole", name: str = "view", group: str = G) -> Obj:
    return {"apiGroup": group, "kind": kind, "name": name}


RULE = {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}

# (strategy, namespaced, object, expected errors)
# fmt: off
CASES: list[tuple[Any, bool, Obj, list[str]]] = [
    (RoleStrategy(), True, {"rules": [RULE]}, []),
    (RoleStrategy(), True, {"metadata": {"name": "system:a:b"}}, []),  # path-segment names
    (RoleStrategy(), True, {"metadata": {"name": "a/b"}}, ['metadata.name: Invalid value: "a/b": may not contain \'/\'']),
    (RoleStrategy(), True, {"rules": [{"apiGroups": [""], "resources": ["pods"]}]},
     ["rules[0].verbs: Required value: verbs must contain at least one value"]),
    (RoleStrategy(), True, {"rules": [{"verbs": ["get"]}]},
     ["rules[0].apiGroups: Required value: resource rules must supply at least one api group",
      "rules[0].resources: Required value: resource rules must supply at least one resource"]),
    (RoleStrategy(), True, {"rules": [{"verbs": ["get"], "nonResourceURLs": ["/healthz"]}]},
     ['rules[0].nonResourceURLs: Invalid value: []string{"/healthz"}: namespaced rules cannot apply to non-resource URLs']),
    (ClusterRoleStrategy(), False, {"rules": [{"verbs": ["get"], "nonResourceURLs": ["/healthz"]}]}, []),
    (ClusterRoleStrategy(), False, {"rules": [{"verbs": ["get"], "nonResourceURLs": ["/a"], "apiGroups": [""]}]},
     ['rules[0].nonResourceURLs: Invalid value: []string{"/a"}: rules cannot apply to both regular resources and non-resource URLs']),
    (ClusterRoleStrategy(), False, {"rules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods", "nodes"], "resourceNames": ["a"]}]},
     ["rules[0].resourceNames: Required value: resource names cannot apply to multiple resources"]),
    (ClusterRoleStrategy(), False, {"aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"a": "b"}}]}}, []),
    (ClusterRoleStrategy(), False, {"aggregationRule": {}},
     ["aggregationRule.clusterRoleSelectors: Required value: at least one clusterRoleSelector required if aggregationRule is non-nil"]),
    (ClusterRoleStrategy(), False, {"aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"a": "-"}}]}},
     ['aggregationRule.clusterRoleSelectors[0].matchLabels: Invalid value: "-": a valid label must be an empty string or consist of '
      "alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or "
      "'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"]),
    (RoleBindingStrategy(), True, {"roleRef": ref("Role", "r"), "subjects": [{"kind": "ServiceAccount", "name": "default"}]}, []),
    (RoleBindingStrategy(), True, {"roleRef": ref("Secret")},
     ['roleRef.kind: Unsupported value: "Secret": supported values: "Role", "ClusterRole"']),
    (RoleBindingStrategy(), True, {"roleRef": ref(group="")},
     ['roleRef.apiGroup: Unsupported value: "": supported values: "rbac.authorization.k8s.io"']),
    (RoleBindingStrategy(), True, {"roleRef": ref(name="")}, ["roleRef.name: Required value"]),
    (ClusterRoleBindingStrategy(), False, {"roleRef": ref("Role", "r")},
     ['roleRef.kind: Unsupported value: "Role": supported values: "ClusterRole"']),
    (ClusterRoleBindingStrategy(), False, {"roleRef": ref(), "subjects": [{"kind": "ServiceAccount", "name": "default"}]},
     ["subjects[0].namespace: Required value"]),
    (ClusterRoleBindingStrategy(), False, {"roleRef": ref(), "subjects": [{"kind": "ServiceAccount", "name": "d", "namespace": "n", "apiGroup": G}]},
     ['subjects[0].apiGroup: Unsupported value: "rbac.authorization.k8s.io": supported values: ""']),
    (ClusterRoleBindingStrategy(), False, {"roleRef": ref(), "subjects": [{"kind": "ServiceAccount", "name": "Bad_Name", "namespace": "n"}]},
     ['subjects[0].name: Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '
      "'-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
      "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"]),
    (ClusterRoleBindingStrategy(), False, {"roleRef": ref(), "subjects": [{"kind": "User", "name": "alice"}]},
     ['subjects[0].apiGroup: Unsupported value: "": supported values: "rbac.authorization.k8s.io"']),
    (ClusterRoleBindingStrategy(), False, {"roleRef": ref(), "subjects": [{"kind": "Group", "apiGroup": G}]},
     ["subjects[0].name: Required value", 'subjects[0].name: Invalid value: "": group name cannot be empty']),
    (ClusterRoleBindingStrategy(), False, {"roleRef": ref(), "subjects": [{"kind": "Robot", "name": "r"}]},
     ['subjects[0].kind: Unsupported value: "Robot": supported values: "ServiceAccount", "User", "Group"']),
]
# fmt: on


@pytest.mark.parametrize(("strategy", "namespaced", "obj", "want"), CASES)
def test_validate(strategy: Any, namespaced: bool, obj: Obj, want: list[str]) -> None:
    assert errors(strategy, obj, namespaced) == want


@pytest.mark.parametrize(
    ("strategy", "new_ref", "want"),
    [
        (RoleBindingStrategy(), ref(), []),
        (
            RoleBindingStrategy(),
            ref(name="edit"),
            [
                'roleRef: Invalid value: rbac.RoleRef{APIGroup:"rbac.authorization.k8s.io", '
                'Kind:"ClusterRole", Name:"edit"}: cannot change roleRef'
            ],
        ),
        (
            ClusterRoleBindingStrategy(),
            ref(name="admin"),
            [
                'roleRef: Invalid value: rbac.RoleRef{APIGroup:"rbac.authorization.k8s.io", '
                'Kind:"ClusterRole", Name:"admin"}: cannot change roleRef'
            ],
        ),
    ],
)
def test_role_ref_immutable(strategy: Any, new_ref: Obj, want: list[str]) -> None:
    old = {"metadata": {"name": "b"}, "roleRef": ref()}
    new = {"metadata": {"name": "b"}, "roleRef": new_ref}
    assert [str(e) for e in strategy.validate_update(new, old)] == want


def test_bootstrap_policy_validates() -> None:
    """Every bootstrap object passes its own kind's validation."""
    rows = {r.plural: r for r in RESOURCES if r.group == G}
    for plural, objs in (
        ("clusterroles", rb.cluster_roles()),
        ("clusterrolebindings", rb.cluster_role_bindings()),
    ):
        for obj in objs:
            strategy = rows[plural].strategy
            assert errors(strategy, obj, False) == [], obj["metadata"]["name"]


def _role(name: str, **kw: Any) -> Obj:
    return next(r for r in rb.cluster_roles() if r["metadata"]["name"] == name) | kw


EXTRA_RULE = {"apiGroups": ["example.com"], "resources": ["widgets"], "verbs": ["get"]}


@pytest.mark.parametrize(
    ("existing", "want"),
    [
        # up to date: nothing to write
        (_role("system:discovery"), None),
        # a user's extra rule is kept; nothing is missing
        (
            _role("system:discovery", rules=[*_role("system:discovery")["rules"], EXTRA_RULE]),
            None,
        ),
        # a missing rule is added after the user's
        (
            _role("system:discovery", rules=[EXTRA_RULE]),
            _role("system:discovery", rules=[EXTRA_RULE, *_role("system:discovery")["rules"]]),
        ),
        # autoupdate "false" keeps user changes
        (
            _role(
                "system:discovery",
                rules=[EXTRA_RULE],
                metadata={"name": "system:discovery", "annotations": {rb.AUTOUPDATE: "false"}},
            ),
            None,
        ),
        # a missing label is added, the user's own value of a key wins
        (
            _role(
                "view",
                metadata={"name": "view", "labels": {"kubernetes.io/bootstrapping": "mine"}},
            ),
            _role(
                "view",
                metadata={
                    "name": "view",
                    "labels": {
                        "kubernetes.io/bootstrapping": "mine",
                        "rbac.authorization.k8s.io/aggregate-to-edit": "true",
                    },
                    "annotations": {rb.AUTOUPDATE: "true"},
                },
            ),
        ),
        # an aggregated role's aggregated rules are not "missing"; its selectors are unioned
        (
            _role(
                "view",
                rules=[EXTRA_RULE],
                aggregationRule={"clusterRoleSelectors": [{"matchLabels": {"x": "y"}}]},
            ),
            _role(
                "view",
                rules=[EXTRA_RULE],
                aggregationRule={
                    "clusterRoleSelectors": [
                        {"matchLabels": {"x": "y"}},
                        {"matchLabels": {"rbac.authorization.k8s.io/aggregate-to-view": "true"}},
                    ]
                },
            ),
        ),
    ],
)
def test_reconciled_role(existing: Obj, want: Obj | None) -> None:
    name = existing["metadata"]["name"]
    assert rb.reconciled_role(existing, _role(name)) == want


def _binding(name: str, **kw: Any) -> Obj:
    return next(b for b in rb.cluster_role_bindings() if b["metadata"]["name"] == name) | kw


ALICE = {"kind": "User", "apiGroup": G, "name": "alice"}


@pytest.mark.parametrize(
    ("existing", "want"),
    [
        (_binding("cluster-admin"), (None, False)),
        # a user's extra subject is kept, the missing default one appended
        (
            _binding("cluster-admin", subjects=[ALICE]),
            (
                _binding("cluster-admin", subjects=[ALICE, *_binding("cluster-admin")["subjects"]]),
                False,
            ),
        ),
        (
            _binding("cluster-admin", roleRef=ref(name="view")),
            (_binding("cluster-admin"), True),
        ),
        (
            _binding(
                "cluster-admin",
                subjects=[ALICE],
                metadata={"name": "cluster-admin", "annotations": {rb.AUTOUPDATE: "false"}},
            ),
            (None, False),
        ),
    ],
)
def test_reconciled_binding(existing: Obj, want: tuple[Obj | None, bool]) -> None:
    name = existing["metadata"]["name"]
    assert rb.reconciled_binding(existing, _binding(name)) == want


def test_policy_shape() -> None:
    """The roles and bindings the brief names, with upstream's aggregation wiring."""
    roles = {r["metadata"]["name"]: r for r in rb.cluster_roles()}
    for name in ("cluster-admin", "admin", "edit", "view", "system:discovery",
                 "system:basic-user", "system:public-info-viewer", "system:node",
                 "system:kube-scheduler", "system:kube-controller-manager"):  # fmt: skip
        assert roles[name]["metadata"]["annotations"] == {rb.AUTOUPDATE: "true"}
    assert "rules" not in roles["view"]
    assert roles["edit"]["metadata"]["labels"][rb.AGGREGATE_TO + "admin"] == "true"
    subjects = {
        b["metadata"]["name"]: [(s["kind"], s["name"]) for s in b.get("subjects", [])]
        for b in rb.cluster_role_bindings()
    }
    assert subjects["cluster-admin"] == [("Group", "system:masters")]
    assert subjects["system:public-info-viewer"] == [
        ("Group", "system:authenticated"),
        ("Group", "system:unauthenticated"),
    ]
    assert subjects["system:kube-scheduler"] == [("User", "system:kube-scheduler")]


def test_binding_printer() -> None:
    """``kubectl get rolebindings -o wide``: ROLE is kind/name, ServiceAccounts print as
    namespace:name, each kind's subjects joined by ", "."""
    from datetime import UTC, datetime

    from corral.apiserver import tables

    names = [c["name"] for c in tables.columns("clusterrolebindings", G)]
    assert names == ["Name", "Role", "Age", "Users", "Groups", "ServiceAccounts"]
    binding = {
        "metadata": {"name": "b", "creationTimestamp": "2026-01-01T00:00:00Z"},
        "roleRef": ref("Role", "r"),
        "subjects": [
            {"kind": "User", "apiGroup": G, "name": "alice"},
            {"kind": "ServiceAccount", "name": "default", "namespace": "ns"},
            {"kind": "User", "apiGroup": G, "name": "bob"},
        ],
    }
    now = datetime(2026, 1, 1, 0, 5, tzinfo=UTC)
    assert tables.row("rolebindings", G, binding, now) == [
        "b", "Role/r", "5m", "alice, bob", "", "ns:default"
    ]  # fmt: skip
    assert not tables.has_table("roles", G)  # roles print the default NAME / CREATED AT


def test_binding_printer_service_account_without_namespace() -> None:
    """SubjectsStrings prints a ServiceAccount without a namespace as its bare name."""
    from datetime import UTC, datetime

    from corral.apiserver import tables

    binding = {
        "metadata": {"name": "b", "creationTimestamp": "2026-01-01T00:00:00Z"},
        "roleRef": ref("Role", "r"),
        "subjects": [{"kind": "ServiceAccount", "name": "builder"}],
    }
    now = datetime(2026, 1, 1, 0, 5, tzinfo=UTC)
    assert tables.row("rolebindings", G, binding, now)[-1] == "builder"


@pytest.mark.parametrize(
    ("strategy", "namespaced"),
    [(RoleBindingStrategy(), True), (ClusterRoleBindingStrategy(), False)],
)
def test_binding_defaults(strategy: Any, namespaced: bool) -> None:
    """rbac/v1 defaults: roleRef.apiGroup and User/Group subjects' apiGroup are filled
    in (a ServiceAccount's stays empty), so the short form validates."""
    obj: Obj = {
        "roleRef": {"kind": "ClusterRole", "name": "view"},
        "subjects": [
            {"kind": "User", "name": "jane"},
            {"kind": "Group", "name": "devs"},
            {"kind": "ServiceAccount", "name": "sa", "namespace": "ns"},
        ],
    }
    strategy.default(obj)
    assert obj["roleRef"]["apiGroup"] == G
    assert [s.get("apiGroup") for s in obj["subjects"]] == [G, G, None]
    assert errors(strategy, obj, namespaced) == []
    other = {"roleRef": {"apiGroup": "x", "kind": "ClusterRole", "name": "v"}}
    strategy.default(other)
    assert other["roleRef"]["apiGroup"] == "x"


async def test_reconcile_idempotent_and_never_fatal(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A second reconcile writes nothing; an unexpected error on one object is logged
    with its traceback and the others still go through."""
    from corral.apiserver.store import Registry
    from corral.storage.cache import WatchCache
    from corral.storage.sqlite import SQLiteStorage
    from corral.util.clock import SystemClock

    storage = SQLiteStorage(tmp_path / "state.db")
    await storage.start()
    try:
        cache = WatchCache()
        registry = Registry(storage, cache, RESOURCES, SystemClock())
        kvs, rev = await storage.list("/registry/")
        cache.load(kvs, rev, [], rev)
        storage.listeners.append(cache.apply)

        real_create = registry.create

        async def create(info: Any, ns: str, obj: Obj, opts: Any) -> Any:
            if obj["metadata"]["name"] == "view":
                raise RuntimeError("boom")
            return await real_create(info, ns, obj, opts)

        monkeypatch.setattr(registry, "create", create)
        await rb.reconcile(registry)
        roles = registry.by_gvr[(G, "v1", "clusterroles")]
        assert registry.entry(roles, "", "view") is None
        assert registry.entry(roles, "", "edit") is not None
        assert "bootstrap ClusterRole view failed" in caplog.text
        assert "RuntimeError: boom" in caplog.text

        monkeypatch.setattr(registry, "create", real_create)
        await rb.reconcile(registry)
        assert registry.entry(roles, "", "view") is not None
        _, before = await storage.list("/registry/")
        await rb.reconcile(registry)
        _, after = await storage.list("/registry/")
        assert after == before
    finally:
        await storage.close()
