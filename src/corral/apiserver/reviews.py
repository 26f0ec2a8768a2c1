"""The access-review endpoints: create-only resources that are answered, never stored.

authorization.k8s.io/v1 SelfSubjectAccessReview (``kubectl auth can-i``),
SelfSubjectRulesReview (``kubectl auth can-i --list``), SubjectAccessReview and the
namespaced LocalSubjectAccessReview, and authentication.k8s.io/v1 SelfSubjectReview
(``kubectl auth whoami``) and TokenReview (answered by ``apiserver/authn.py``), as
upstream's ``pkg/registry/authorization`` and ``pkg/registry/authentication`` REST storages: the body is validated (422 with
upstream's field errors), the decision taken by ``corral.api.rbac`` over the RBAC
objects of the watch caches, and the object returned with its ``status`` (201).

``REVIEW_ROWS`` are their rows for discovery (``apiserver/discovery.py`` lists them);
``APIApp.route`` hands a POST to one of them to ``Reviews.handle``. The requester is
named by ``apiserver/identity.py``.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from corral.api import errors, rbac, schema
from corral.api.errors import FieldError, GoValue
from corral.apiserver.authn import Authenticator, token_review
from corral.apiserver.authz import Authorizer, CachePolicy
from corral.apiserver.handlers import json_response
from corral.apiserver.identity import UserInfo, user_for
from corral.apiserver.registry.base import ResourceInfo, Strategy
from corral.apiserver.request import PathInfo, decode_body
from corral.apiserver.store import Registry

Obj = dict[str, Any]

AUTHZ = "authorization.k8s.io"
AUTHN = "authentication.k8s.io"
CREATE = ("create",)
MAX_BODY = 3 * 1024 * 1024


class ReviewStrategy(Strategy):
    """Placeholder strategy of a review row: reviews never reach the generic store."""


# fmt: off
REVIEW_ROWS: list[ResourceInfo] = [
    ResourceInfo(AUTHN, "v1", "SelfSubjectReview", "selfsubjectreviews", "selfsubjectreview", False,
                 ReviewStrategy(), verbs=CREATE),
    ResourceInfo(AUTHN, "v1", "TokenReview", "tokenreviews", "tokenreview", False,
                 ReviewStrategy(), verbs=CREATE),
    ResourceInfo(AUTHZ, "v1", "LocalSubjectAccessReview", "localsubjectaccessreviews",
                 "localsubjectaccessreview", True, ReviewStrategy(), verbs=CREATE),
    ResourceInfo(AUTHZ, "v1", "SelfSubjectAccessReview", "selfsubjectaccessreviews",
                 "selfsubjectaccessreview", False, ReviewStrategy(), verbs=CREATE),
    ResourceInfo(AUTHZ, "v1", "SelfSubjectRulesReview", "selfsubjectrulesreviews",
                 "selfsubjectrulesreview", False, ReviewStrategy(), verbs=CREATE),
    ResourceInfo(AUTHZ, "v1", "SubjectAccessReview", "subjectaccessreviews", "subjectaccessreview",
                 False, ReviewStrategy(), verbs=CREATE),
]
# fmt: on
_BY_GVR = {(r.group, r.version, r.plural): r for r in REVIEW_ROWS}


def review_row(p: PathInfo) -> ResourceInfo | None:
    """The review row a parsed path names, or None."""
    return _BY_GVR.get((p.group, p.version, p.resource))


# --- validation (pure) ----------------------------------------------------------------------


def _go_struct(kind: str, attrs: Obj, fields: tuple[tuple[str, str], ...]) -> GoValue:
    """A bad value as Go's ``%#v`` prints the internal struct."""
    inner = ", ".join(f'{go}:"{attrs.get(js, "")}"' for js, go in fields)
    return GoValue(f"authorization.{kind}{{{inner}}}")


_NON_RESOURCE_FIELDS = (("path", "Path"), ("verb", "Verb"))


def validate_spec(spec: Obj, self_review: bool) -> list[FieldError]:
    """Upstream's ``ValidateSubjectAccessReviewSpec`` (``self_review``: the
    SelfSubjectAccessReview variant, which names no user)."""
    errs: list[FieldError] = []
    ra = spec.get("resourceAttributes")
    nra = spec.get("nonResourceAttributes")
    if ra is not None and nra is not None:
        errs.append(
            errors.invalid(
                "spec.nonResourceAttributes",
                _go_struct("NonResourceAttributes", nra, _NON_RESOURCE_FIELDS),
                "cannot be specified in combination with resourceAttributes",
            )
        )
    if ra is None and nra is None:
        errs.append(
            errors.invalid(
                "spec.resourceAttributes",
                GoValue('"null"'),  # the nil pointer, as upstream prints it
                "exactly one of nonResourceAttributes or resourceAttributes must be specified",
            )
        )
    if not self_review and not spec.get("user") and not spec.get("groups"):
        errs.append(
            errors.invalid(
                "spec.user", spec.get("user", ""), "at least one of user or group must be specified"
            )
        )
    return errs


def validate_local(spec: Obj, meta: Obj) -> list[FieldError]:
    """The LocalSubjectAccessReview part of upstream's
    ``ValidateLocalSubjectAccessReview``: metadata empty but for the namespace, which
    spec.resourceAttributes.namespace must match, and no nonResourceAttributes."""
    errs: list[FieldError] = []
    if not _meta_empty(meta, ("namespace",)):
        errs.append(
            errors.invalid(
                "metadata", GoValue(_go_meta(meta)), "must be empty except for namespace"
            )
        )
    ra = spec.get("resourceAttributes")
    if ra is not None and (ra.get("namespace") or "") != (meta.get("namespace") or ""):
        errs.append(
            errors.invalid(
                "spec.resourceAttributes.namespace",
                ra.get("namespace") or "",
                "must match metadata.namespace",
            )
        )
    nra = spec.get("nonResourceAttributes")
    if nra is not None:
        errs.append(
            errors.invalid(
                "spec.nonResourceAttributes",
                _go_struct("NonResourceAttributes", nra, _NON_RESOURCE_FIELDS),
                "disallowed on this kind of request",
            )
        )
    return errs


def _meta_empty(meta: Obj, ignore: tuple[str, ...] = ()) -> bool:
    return not {
        k: v
        for k, v in meta.items()
        if k not in ("managedFields", *ignore) and v not in (None, "", {}, [])
    }


def attributes_from(spec: Obj, user: UserInfo) -> rbac.Attributes:
    """The request a review asks about (upstream's ``ResourceAttributesFrom`` /
    ``NonResourceAttributesFrom``)."""
    ra = spec.get("resourceAttributes")
    if ra is not None:
        return rbac.Attributes(
            user=user.username,
            groups=user.groups,
            verb=ra.get("verb", ""),
            api_group=ra.get("group", ""),
            resource=ra.get("resource", ""),
            subresource=ra.get("subresource", ""),
            name=ra.get("name", ""),
            namespace=ra.get("namespace", ""),
            resource_request=True,
        )
    nra = spec.get("nonResourceAttributes") or {}
    return rbac.Attributes(
        user=user.username,
        groups=user.groups,
        verb=nra.get("verb", ""),
        path=nra.get("path", ""),
        resource_request=False,
    )


def _status(decision: rbac.Decision) -> Obj:
    out: Obj = {"allowed": decision.allowed}
    if decision.denied:
        out["denied"] = True
    if decision.reason:
        out["reason"] = decision.reason
    return out


def _answer(info: ResourceInfo, body: Obj, status: Obj) -> bytes:
    meta = dict(body.get("metadata") or {})
    meta.setdefault("creationTimestamp", None)
    out: Obj = {"kind": info.kind, "apiVersion": info.group_version, "metadata": meta}
    if "spec" in body or info.kind != "SelfSubjectReview":
        out["spec"] = body.get("spec") or {}
    out["status"] = status
    return orjson.dumps(out)


def decode_typed(info: ResourceInfo, body: Obj) -> Obj:
    """``body`` decoded against the kind's 1.32 schema as Go's typed decoding does:
    values of the wrong JSON type are upstream's 400 "cannot be handled as", nulls are
    dropped."""
    node = schema.for_kind(info.group, info.version, info.kind)
    if node is None:
        return body
    try:
        typed = schema.check_types(body, node)
    except (schema.TypeMismatch, schema.BadTime) as e:
        k = info.kind
        raise errors.bad_request(
            f'{k} in version "{info.version}" cannot be handled as a {k}: {e}'
        ) from None
    assert isinstance(typed, dict)
    return typed


def review(
    info: ResourceInfo,
    namespace: str,
    body: Obj,
    requester: UserInfo,
    policy: rbac.Policy,
    authorizer: Authorizer | None = None,
) -> bytes:
    """The answer to one review ``body`` posted by ``requester``; raises the upstream
    StatusError (422 Invalid, 400 BadRequest) for a body it refuses. The access
    reviews ask ``authorizer`` (the API server's chain, so the Node authorizer's
    answers count), or RBAC over ``policy`` without one."""
    kind = info.kind
    if not isinstance(body, dict):
        raise errors.bad_request(f"not a {kind}")
    body = decode_typed(info, body)
    spec = body.get("spec") if isinstance(body.get("spec"), dict) else {}
    assert isinstance(spec, dict)
    meta = body.get("metadata") if isinstance(body.get("metadata"), dict) else {}
    assert isinstance(meta, dict)
    # as upstream's create handler (EnsureObjectNamespaceMatchesRequestNamespace)
    obj_ns = meta.get("namespace") or ""
    if obj_ns and namespace and obj_ns != namespace:
        raise errors.bad_request(
            "the namespace of the provided object does not match the namespace sent on the request"
        )
    if info.namespaced and namespace:
        meta["namespace"] = namespace
    else:
        meta.pop("namespace", None)
    body["metadata"] = meta
    if kind == "SelfSubjectReview":
        return _answer(info, body, {"userInfo": requester.to_json()})
    if kind == "SelfSubjectRulesReview":
        ns = spec.get("namespace", "")
        if not ns:
            raise errors.bad_request("no namespace on request")
        rr = rbac.rules_for(requester.username, requester.groups, ns, policy)
        # upstream answers a new object: the spec and metadata sent are not echoed
        return _answer(info, {"spec": {}}, rr.status())
    if kind == "SelfSubjectAccessReview":
        errs = validate_spec(spec, self_review=True)
        if not _meta_empty(meta):
            errs.append(errors.invalid("metadata", GoValue(_go_meta(meta)), "must be empty"))
        if errs:
            raise errors.invalid_object("", AUTHZ, "", errs)
        decision = _decide(attributes_from(spec, requester), policy, authorizer)
        return _answer(info, body, _status(decision))
    errs = validate_spec(spec, self_review=False)
    if kind == "LocalSubjectAccessReview":
        errs += validate_local(spec, meta)
    elif not _meta_empty(meta):
        errs.append(errors.invalid("metadata", GoValue(_go_meta(meta)), "must be empty"))
    if errs:
        raise errors.invalid_object("", AUTHZ, "", errs)
    if kind == "LocalSubjectAccessReview" and not namespace:
        raise errors.bad_request("namespace is required on this type: ")
    # a LocalSubjectAccessReview's spec.resourceAttributes.namespace equals the
    # object's namespace (validate_local), itself the request path's (defaulted above)
    subject = UserInfo(
        spec.get("user", ""),
        tuple(spec.get("groups") or ()),
        spec.get("uid", ""),
        dict(spec.get("extra") or {}),
    )
    decision = _decide(attributes_from(spec, subject), policy, authorizer)
    return _answer(info, body, _status(decision))


def _decide(
    attrs: rbac.Attributes, policy: rbac.Policy, authorizer: Authorizer | None
) -> rbac.Decision:
    return authorizer.authorize(attrs) if authorizer is not None else rbac.decide(attrs, policy)


def _go_meta(meta: Obj) -> str:
    """ObjectMeta roughly as ``%#v`` shows it (only the fields set)."""
    inner = ", ".join(
        f"{k[:1].upper()}{k[1:]}:{orjson.dumps(v).decode()}"
        for k, v in meta.items()
        if v not in (None, "", {}, [])
    )
    return f"v1.ObjectMeta{{{inner}}}"


class Reviews:
    """Serves the review rows of an ``APIApp``."""

    def __init__(self, registry: Registry) -> None:
        self.policy = CachePolicy(registry)
        self.registry = registry
        #: the chain a TokenReview asks (``APIApp`` sets it; None: nothing authenticates)
        self.authenticator: Authenticator | None = None

    async def handle(self, request: web.Request, p: PathInfo, info: ResourceInfo) -> web.Response:
        """Answer one POST to a review row (201 with the status filled in); any other
        method is 405, a namespaced path for a cluster-scoped review 404."""
        if p.name or p.subresource or request.method != "POST":
            raise errors.method_not_allowed()
        if p.namespace and not info.namespaced:
            raise errors.path_not_found()
        if request.content_length is not None and request.content_length > MAX_BODY:
            raise errors.too_large()
        raw = await request.content.read(MAX_BODY + 1)
        body = decode_body(raw, request.headers.get("Content-Type", "application/json"))
        if info.kind == "TokenReview":
            if not isinstance(body, dict):
                raise errors.bad_request("not a TokenReview")
            answer = token_review(decode_typed(info, body), self.authenticator)
            return json_response(orjson.dumps(answer), status=201)
        # the middleware's authenticated (and impersonated) user
        requester = request.get("user") or user_for(request.headers)
        out = review(info, p.namespace, body, requester, self.policy, self.registry.authorizer)
        return json_response(out, status=201)
