"""Tables for the access-review answers (corral.apiserver.reviews.review): validation
errors worded as upstream's, the decision in status, the rules review and whoami."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from corral.api.errors import StatusError
from corral.api.rbac import StaticPolicy
from corral.apiserver.identity import ADMIN, UserInfo
from corral.apiserver.reviews import REVIEW_ROWS, review

Obj = dict[str, Any]
ROWS = {r.kind: r for r in REVIEW_ROWS}
GROUP = "rbac.authorization.k8s.io"
POLICY = StaticPolicy(
    [
        {"kind": "ClusterRole", "metadata": {"name": "cluster-admin"},
         "rules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]},
                   {"verbs": ["*"], "nonResourceURLs": ["*"]}]},
        {"kind": "ClusterRole", "metadata": {"name": "view"},
         "rules": [{"verbs": ["get", "list", "watch"], "apiGroups": [""], "resources": ["pods"]}]},
        {"kind": "ClusterRoleBinding", "metadata": {"name": "cluster-admin"},
         "roleRef": {"apiGroup": GROUP, "kind": "ClusterRole", "name": "cluster-admin"},
         "subjects": [{"apiGroup": GROUP, "kind": "Group", "name": "system:masters"}]},
        {"kind": "RoleBinding", "metadata": {"name": "jane-view", "namespace": "ns1"},
         "roleRef": {"apiGroup": GROUP, "kind": "ClusterRole", "name": "view"},
         "subjects": [{"apiGroup": GROUP, "kind": "User", "name": "jane"}]},
    ]
)  # fmt: skip
PODS_NS1 = {"namespace": "ns1", "verb": "get", "resource": "pods"}
ADMIN_REASON = (
    'RBAC: allowed by ClusterRoleBinding "cluster-admin" of ClusterRole "cluster-admin" '
    'to Group "system:masters"'
)


def run(kind: str, body: Obj, ns: str = "", who: UserInfo = ADMIN) -> Obj:
    out: Obj = orjson.loads(review(ROWS[kind], ns, body, who, POLICY))
    return out


@pytest.mark.parametrize(
    ("kind", "spec", "ns", "status"),
    [
        ("SelfSubjectAccessReview", {"resourceAttributes": {"verb": "create", "resource": "pods"}},
         "", {"allowed": True, "reason": ADMIN_REASON}),
        ("SelfSubjectAccessReview", {"nonResourceAttributes": {"verb": "get", "path": "/x"}},
         "", {"allowed": True, "reason": ADMIN_REASON}),
        ("SubjectAccessReview", {"user": "jane", "resourceAttributes": PODS_NS1}, "",
         {"allowed": True,
          "reason": 'RBAC: allowed by RoleBinding "jane-view/ns1" of ClusterRole "view" to User "jane"'}),
        ("SubjectAccessReview", {"user": "jane", "resourceAttributes": {**PODS_NS1, "verb": "create"}},
         "", {"allowed": False}),
        ("SubjectAccessReview", {"user": "jane", "resourceAttributes": {**PODS_NS1, "namespace": "ns2"}},
         "", {"allowed": False}),
        ("SubjectAccessReview", {"user": "x", "groups": ["system:masters"],
                                 "nonResourceAttributes": {"verb": "get", "path": "/healthz"}},
         "", {"allowed": True, "reason": ADMIN_REASON}),
        ("LocalSubjectAccessReview", {"user": "jane", "resourceAttributes": PODS_NS1}, "ns1",
         {"allowed": True,
          "reason": 'RBAC: allowed by RoleBinding "jane-view/ns1" of ClusterRole "view" to User "jane"'}),
        # the namespace the spec names is the one reviewed (as upstream: not the path's)
        ("LocalSubjectAccessReview", {"user": "jane", "resourceAttributes": {**PODS_NS1, "namespace": "ns2"}},
         "ns1", {"allowed": False}),
    ],
)  # fmt: skip
def test_decisions(kind: str, spec: Obj, ns: str, status: Obj) -> None:
    body = {"apiVersion": "authorization.k8s.io/v1", "kind": kind, "spec": spec}
    out = run(kind, body, ns)
    assert out["status"] == status
    assert out["spec"] == spec
    assert (out["kind"], out["apiVersion"]) == (kind, "authorization.k8s.io/v1")
    assert out["metadata"] == ({"namespace": ns} if ns else {}) | {"creationTimestamp": None}


@pytest.mark.parametrize(
    ("kind", "spec", "meta", "ns", "code", "message"),
    [
        ("SelfSubjectAccessReview", {}, {}, "", 422,
         '.authorization.k8s.io "" is invalid: spec.resourceAttributes: '
         'Invalid value: "null": exactly one of nonResourceAttributes or resourceAttributes must be specified'),
        ("SelfSubjectAccessReview",
         {"resourceAttributes": {"verb": "get"}, "nonResourceAttributes": {"verb": "get", "path": "/a"}},
         {}, "", 422,
         '.authorization.k8s.io "" is invalid: spec.nonResourceAttributes: '
         'Invalid value: authorization.NonResourceAttributes{Path:"/a", Verb:"get"}: '
         "cannot be specified in combination with resourceAttributes"),
        ("SubjectAccessReview", {"resourceAttributes": PODS_NS1}, {}, "", 422,
         '.authorization.k8s.io "" is invalid: spec.user: Invalid value: "": '
         "at least one of user or group must be specified"),
        ("SubjectAccessReview", {"user": "u", "resourceAttributes": PODS_NS1}, {"name": "x"}, "", 422,
         '.authorization.k8s.io "" is invalid: metadata: Invalid value: '
         'v1.ObjectMeta{Name:"x"}: must be empty'),
        ("LocalSubjectAccessReview", {"user": "u", "nonResourceAttributes": {"verb": "get", "path": "/"}},
         {}, "ns1", 422,
         '.authorization.k8s.io "" is invalid: [spec.resourceAttributes: '
         'Required value, spec.nonResourceAttributes: Invalid value: '
         'authorization.NonResourceAttributes{Path:"/", Verb:"get"}: disallowed on this kind of request]'),
        ("LocalSubjectAccessReview", {"user": "u", "resourceAttributes": PODS_NS1}, {"namespace": "ns1"},
         "ns2", 400, "the namespace of the provided object does not match the namespace sent on the request"),
        ("LocalSubjectAccessReview", {"user": "u", "resourceAttributes": PODS_NS1}, {}, "", 400,
         "namespace is required on this type: "),
        ("SelfSubjectRulesReview", {}, {}, "", 400, "no namespace on request"),
    ],
)  # fmt: skip
def test_refusals(kind: str, spec: Obj, meta: Obj, ns: str, code: int, message: str) -> None:
    with pytest.raises(StatusError) as e:
        run(kind, {"kind": kind, "metadata": meta, "spec": spec}, ns)
    assert (e.value.code, e.value.message) == (code, message)


def test_rules_review() -> None:
    out = run("SelfSubjectRulesReview", {"metadata": {"name": "x"}, "spec": {"namespace": "ns1"}},
              who=UserInfo("jane", ("system:authenticated",)))  # fmt: skip
    assert (out["metadata"], out["spec"]) == ({"creationTimestamp": None}, {})  # not echoed
    assert out["status"] == {
        "resourceRules": [
            {"verbs": ["get", "list", "watch"], "apiGroups": [""], "resources": ["pods"]}
        ],
        "nonResourceRules": [],
        "incomplete": False,
    }


def test_whoami() -> None:
    out = run(
        "SelfSubjectReview", {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
    )
    assert out == {
        "kind": "SelfSubjectReview",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"creationTimestamp": None},
        "status": {
            "userInfo": {"username": "admin", "groups": ["system:masters", "system:authenticated"]}
        },
    }
