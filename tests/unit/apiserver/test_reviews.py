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
# system:masters is allowed by the privileged-group authorizer before RBAC: no reason
ADMIN_ALLOWED = {"allowed": True}


def run(kind: str, body: Obj, ns: str = "", who: UserInfo = ADMIN) -> Obj:
    out: Obj = orjson.loads(review(ROWS[kind], ns, body, who, POLICY))
    return out


@pytest.mark.parametrize(
    ("kind", "spec", "ns", "status"),
    [
        ("SelfSubjectAccessReview", {"resourceAttributes": {"verb": "create", "resource": "pods"}},
         "", ADMIN_ALLOWED),
        ("SelfSubjectAccessReview", {"nonResourceAttributes": {"verb": "get", "path": "/x"}},
         "", ADMIN_ALLOWED),
        ("SubjectAccessReview", {"user": "jane", "resourceAttributes": PODS_NS1}, "",
         {"allowed": True,
          "reason": 'RBAC: allowed by RoleBinding "jane-view/ns1" of ClusterRole "view" to User "jane"'}),
        ("SubjectAccessReview", {"user": "jane", "resourceAttributes": {**PODS_NS1, "verb": "create"}},
         "", {"allowed": False}),
        ("SubjectAccessReview", {"user": "jane", "resourceAttributes": {**PODS_NS1, "namespace": "ns2"}},
         "", {"allowed": False}),
        ("SubjectAccessReview", {"user": "x", "groups": ["system:masters"],
                                 "nonResourceAttributes": {"verb": "get", "path": "/healthz"}},
         "", ADMIN_ALLOWED),
        ("LocalSubjectAccessReview", {"user": "jane", "resourceAttributes": PODS_NS1}, "ns1",
         {"allowed": True,
          "reason": 'RBAC: allowed by RoleBinding "jane-view/ns1" of ClusterRole "view" to User "jane"'}),
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
         '.authorization.k8s.io "" is invalid: spec.nonResourceAttributes: Invalid value: '
         'authorization.NonResourceAttributes{Path:"/", Verb:"get"}: disallowed on this kind of request'),
        # upstream's ValidateLocalSubjectAccessReview: the spec's namespace is the object's
        ("LocalSubjectAccessReview", {"user": "u", "resourceAttributes": {**PODS_NS1, "namespace": "ns2"}},
         {}, "ns1", 422,
         '.authorization.k8s.io "" is invalid: spec.resourceAttributes.namespace: '
         'Invalid value: "ns2": must match metadata.namespace'),
        ("LocalSubjectAccessReview", {"user": "u", "resourceAttributes": PODS_NS1}, {"name": "x"}, "ns1", 422,
         '.authorization.k8s.io "" is invalid: metadata: Invalid value: '
         'v1.ObjectMeta{Name:"x", Namespace:"ns1"}: must be empty except for namespace'),
        ("SelfSubjectAccessReview", {"resourceAttributes": PODS_NS1}, {"name": "x"}, "", 422,
         '.authorization.k8s.io "" is invalid: metadata: Invalid value: '
         'v1.ObjectMeta{Name:"x"}: must be empty'),
        # typed decoding first (upstream's 400 "cannot be handled as"), never a 500
        ("SubjectAccessReview", {"user": "u", "resourceAttributes": "x"}, {}, "", 400,
         'SubjectAccessReview in version "v1" cannot be handled as a SubjectAccessReview: '
         "json: cannot unmarshal string into Go struct field SubjectAccessReviewSpec.spec.resourceAttributes "
         "of type v1.ResourceAttributes"),
        ("SubjectAccessReview", {"user": "u", "resourceAttributes": PODS_NS1, "extra": [1]}, {}, "", 400,
         'SubjectAccessReview in version "v1" cannot be handled as a SubjectAccessReview: '
         "json: cannot unmarshal array into Go struct field SubjectAccessReviewSpec.spec.extra "
         "of type map[string][]string"),
        ("SubjectAccessReview", {"groups": "abc", "resourceAttributes": PODS_NS1}, {}, "", 400,
         'SubjectAccessReview in version "v1" cannot be handled as a SubjectAccessReview: '
         "json: cannot unmarshal string into Go struct field SubjectAccessReviewSpec.spec.groups "
         "of type []string"),
        ("SelfSubjectRulesReview", {"namespace": 5}, {}, "", 400,
         'SelfSubjectRulesReview in version "v1" cannot be handled as a SelfSubjectRulesReview: '
         "json: cannot unmarshal number 5 into Go struct field SelfSubjectRulesReviewSpec.spec.namespace "
         "of type string"),
        ("LocalSubjectAccessReview", {"user": "u", "resourceAttributes": PODS_NS1}, {"namespace": "ns1"},
         "ns2", 400, "the namespace of the provided object does not match the namespace sent on the request"),
        ("LocalSubjectAccessReview", {"user": "u", "resourceAttributes": {"verb": "get"}}, {}, "", 400,
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


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ([], ADMIN),
        ([("Impersonate-User", "jane")], UserInfo("jane", ("system:authenticated",))),
        ([("Impersonate-User", "jane"), ("Impersonate-Group", "a"), ("Impersonate-Group", "b"),
          ("Impersonate-Uid", "u1"), ("Impersonate-Extra-Scopes", "x"),
          ("impersonate-extra-Scopes", "y"), ("Impersonate-Extra-Foo%2Fbar", "z")],
         UserInfo("jane", ("a", "b", "system:authenticated"), "u1",
                  {"scopes": ["x", "y"], "foo/bar": ["z"]})),
        ([("Impersonate-User", "jane"), ("Impersonate-Group", "system:unauthenticated")],
         UserInfo("jane", ("system:unauthenticated",))),
        ([("Impersonate-User", "system:anonymous")],
         UserInfo("system:anonymous", ("system:unauthenticated",))),
        ([("Impersonate-User", "system:serviceaccount:ns1:sa")],
         UserInfo("system:serviceaccount:ns1:sa",
                  ("system:serviceaccounts", "system:serviceaccounts:ns1", "system:authenticated"))),
        ([("Impersonate-User", "system:serviceaccount:ns1:sa"), ("Impersonate-Group", "g")],
         UserInfo("system:serviceaccount:ns1:sa", ("g", "system:authenticated"))),
    ],
)  # fmt: skip
def test_impersonation(headers: list[tuple[str, str]], expected: UserInfo) -> None:
    """Upstream's impersonation filter: who a request with Impersonate-* headers acts as."""
    from multidict import CIMultiDict, CIMultiDictProxy

    from corral.apiserver.identity import user_for

    assert user_for(CIMultiDictProxy(CIMultiDict(headers))) == expected


def test_impersonation_needs_a_user() -> None:
    from multidict import CIMultiDict, CIMultiDictProxy

    from corral.apiserver.identity import user_for

    with pytest.raises(StatusError) as e:
        user_for(CIMultiDictProxy(CIMultiDict([("Impersonate-Group", "g")])))
    assert (e.value.code, e.value.message) == (
        500,
        "Internal error occurred: requested [{Group  g    }] without impersonating a user",
    )


def test_reviews_in_openapi() -> None:
    """The review kinds are in the OpenAPI v3 and v2 documents as in discovery (what
    ``kubectl explain selfsubjectaccessreviews`` reads)."""
    from corral.apiserver.openapi import OpenAPIDocs
    from corral.apiserver.openapi_v2 import build_document
    from corral.apiserver.registry.table import RESOURCES

    docs = OpenAPIDocs(RESOURCES)
    doc = orjson.loads(docs.document("apis/authorization.k8s.io/v1") or b"{}")
    assert "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews" in doc["paths"]
    assert "io.k8s.api.authorization.v1.SelfSubjectAccessReview" in doc["components"]["schemas"]
    doc = orjson.loads(docs.document("apis/authentication.k8s.io/v1") or b"{}")
    assert "/apis/authentication.k8s.io/v1/selfsubjectreviews" in doc["paths"]
    v2 = build_document(docs)
    assert "/apis/authorization.k8s.io/v1/subjectaccessreviews" in v2["paths"]
    assert "io.k8s.api.authorization.v1.SubjectAccessReview" in v2["definitions"]
