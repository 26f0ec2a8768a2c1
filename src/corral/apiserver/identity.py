"""Who a request comes from: the user name and groups behind its credentials.

Today every client (kubectl, the Python client, the scheduler, the controllers, the
agents) holds the one admin token, so every authenticated request is the kubeconfig's
user ``admin`` in ``system:masters`` (bound to cluster-admin by the bootstrap policy)
and ``system:authenticated``. The review endpoints (``apiserver/reviews.py``) ask
``user_for`` whom they answer for; issue 15's authentication (client certificates,
token files, ServiceAccount tokens) replaces this one function.

The ``Impersonate-*`` headers (``kubectl --as``, ``--as-group``, ``--as-uid``) are
honoured as upstream's impersonation filter does: each user, service account, group,
extra value and uid asked for is one ``impersonate`` check (``may_impersonate``) by the
authorizer chain (``authz.py``) on ``users``, ``serviceaccounts``, ``groups``,
``authentication.k8s.io`` ``userextras/<key>`` or ``uids``; without an authorizer only
``system:masters`` may impersonate.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from multidict import MultiMapping

from corral.api import errors, rbac
from corral.apiserver.authz import forbidden


@dataclass(frozen=True)
class UserInfo:
    """An authenticated identity, as upstream's ``user.Info``."""

    username: str
    groups: tuple[str, ...] = ()
    uid: str = ""
    extra: dict[str, list[str]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The ``userInfo`` of a SelfSubjectReview or TokenReview."""
        out: dict[str, Any] = {"username": self.username}
        if self.uid:
            out["uid"] = self.uid
        if self.groups:
            out["groups"] = list(self.groups)
        if self.extra:
            out["extra"] = {k: list(v) for k, v in self.extra.items()}
        return out


ADMIN = UserInfo("admin", ("system:masters", "system:authenticated"))

IMPERSONATE_USER = "Impersonate-User"
IMPERSONATE_GROUP = "Impersonate-Group"
IMPERSONATE_UID = "Impersonate-Uid"
IMPERSONATE_EXTRA = "impersonate-extra-"
ANONYMOUS = "system:anonymous"
AUTHENTICATED = "system:authenticated"
UNAUTHENTICATED = "system:unauthenticated"
SA_PREFIX = "system:serviceaccount:"
AUTHN_GROUP = "authentication.k8s.io"
#: who sends no credentials at all (upstream's anonymous authenticator)
ANONYMOUS_USER = UserInfo(ANONYMOUS, (UNAUTHENTICATED,))


#: the request headers ``user_for`` reads (aiohttp's ``CIMultiDictProxy``)
Headers = MultiMapping[str]


def may_impersonate(
    requester: UserInfo, attrs: rbac.Attributes, authorizer: Any = None
) -> str | None:
    """None when ``requester`` may ``impersonate`` what ``attrs`` names, else the
    reason it may not (possibly empty). ``authorizer`` (an ``authz.Authorizer``) decides;
    without one only the privileged group may."""
    if rbac.PRIVILEGED_GROUP in requester.groups:
        return None
    if authorizer is None:
        return ""
    d = authorizer.authorize(attrs)
    return None if d.allowed else d.reason


def _impersonation_checks(
    requester: UserInfo,
    user: str,
    groups: list[str],
    extra: list[tuple[str, str]],
    uid: str,
) -> list[rbac.Attributes]:
    """One ``impersonate`` question per thing asked for, in upstream's order (the user
    or service account, the groups, each extra value, the uid)."""

    def ask(
        resource: str, name: str, ns: str = "", group: str = "", sub: str = ""
    ) -> rbac.Attributes:
        return rbac.Attributes(
            requester.username, requester.groups, "impersonate", group, resource, sub, name, ns
        )

    parts = user.split(":")
    if user.startswith(SA_PREFIX) and len(parts) == 4 and parts[2] and parts[3]:
        out = [ask("serviceaccounts", parts[3], parts[2])]
    else:
        out = [ask("users", user)]
    out += [ask("groups", g) for g in groups]
    out += [ask("userextras", v, group=AUTHN_GROUP, sub=k) for k, v in extra]
    if uid:
        out.append(ask("uids", uid, group=AUTHN_GROUP))
    return out


def _go_refs(refs: list[tuple[str, str, str, str, str]]) -> str:
    """The requested ObjectReferences as Go's ``%v`` prints them (kind, namespace,
    name, uid, apiVersion, resourceVersion, fieldPath)."""
    return "[" + " ".join(f"{{{k} {ns} {n}  {av}  {fp}}}" for k, ns, n, av, fp in refs) + "]"


def impersonated(requester: UserInfo, headers: Headers, authorizer: Any = None) -> UserInfo:
    """The identity the ``Impersonate-*`` headers ask for, or ``requester`` without
    them, as upstream's ``WithImpersonation``: a ServiceAccount user name gets its
    groups (unless groups were given), a non-anonymous user ``system:authenticated``
    (unless it or ``system:unauthenticated`` is listed), ``system:anonymous``
    ``system:unauthenticated``. Raises 500 for groups, extra or uid without a user (as
    upstream) and upstream's 403 for the first thing ``requester`` may not impersonate
    (``authorizer``: ``may_impersonate``)."""
    user = headers.get(IMPERSONATE_USER, "")
    groups = list(headers.getall(IMPERSONATE_GROUP, []))
    uid = headers.get(IMPERSONATE_UID, "")
    extra: dict[str, list[str]] = {}
    refs: list[tuple[str, str, str, str, str]] = []
    for name, value in headers.items():
        if name.lower().startswith(IMPERSONATE_EXTRA):
            key = unquote(name[len(IMPERSONATE_EXTRA) :].lower())
            extra.setdefault(key, []).append(value)
            refs.append(("UserExtra", "", value, "authentication.k8s.io/v1", key))
    if not user:
        if groups or extra or uid:
            group_refs = [("Group", "", g, "", "") for g in groups]
            uid_refs = [("UID", "", uid, "authentication.k8s.io/v1", "")] if uid else []
            raise errors.internal(
                f"requested {_go_refs(group_refs + refs + uid_refs)} without impersonating a user"
            )
        return requester
    pairs = [(key, value) for _, _, value, _, key in refs]
    for attrs in _impersonation_checks(requester, user, groups, pairs, uid):
        reason = may_impersonate(requester, attrs, authorizer)
        if reason is not None:
            raise forbidden(attrs, reason)
    all_groups: list[str] = []
    parts = user.split(":")
    if user.startswith(SA_PREFIX) and len(parts) == 4 and parts[2] and parts[3] and not groups:
        all_groups = ["system:serviceaccounts", f"system:serviceaccounts:{parts[2]}"]
    all_groups += groups
    if user != ANONYMOUS:
        if AUTHENTICATED not in all_groups and UNAUTHENTICATED not in all_groups:
            all_groups.append(AUTHENTICATED)
    elif UNAUTHENTICATED not in all_groups:
        all_groups.append(UNAUTHENTICATED)
    return UserInfo(user, tuple(all_groups), uid, extra)


def user_for(headers: Headers) -> UserInfo:
    """The identity a request acts as: the one behind its ``Authorization`` header the
    middleware already accepted (every accepted token is the admin token today), or
    the one it impersonates."""
    return impersonated(ADMIN, headers)
