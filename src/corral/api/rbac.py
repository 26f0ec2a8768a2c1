"""The RBAC decision: may this user do this verb on this resource (or URL)?

A pure evaluator with Kubernetes' semantics (``plugin/pkg/auth/authorizer/rbac`` and
``pkg/registry/rbac/validation``): the rules of every ClusterRoleBinding whose subjects
match the user are visited first, then, for a namespaced request, those of the
RoleBindings of that namespace; the first rule that covers the request allows it, with
upstream's reason (``RBAC: allowed by ClusterRoleBinding "x" of ClusterRole "y" to
User "z"``). Nothing matching is "no opinion" (not allowed, not denied, empty reason,
or the errors met on the way, such as a binding naming a missing role). RBAC never
denies outright.

``rules_for`` lists what a user may do in a namespace, as SelfSubjectRulesReview
answers. The objects come from a ``Policy`` (RBAC objects as JSON dicts): the API
server's review endpoints (``apiserver/reviews.py``) pass one over the watch caches,
tests pass a ``StaticPolicy``. No I/O here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

Obj = dict[str, Any]

SA_PREFIX = "system:serviceaccount:"
RBAC_GROUP = "rbac.authorization.k8s.io"
#: upstream's ``user.SystemPrivilegedGroup``: allowed everything, before RBAC
PRIVILEGED_GROUP = "system:masters"


@dataclass(frozen=True)
class Attributes:
    """One request to decide, as upstream's ``authorizer.AttributesRecord``."""

    user: str
    groups: tuple[str, ...] = ()
    verb: str = ""
    api_group: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""
    namespace: str = ""
    #: the URL path of a non-resource request (``/healthz``)
    path: str = ""
    resource_request: bool = True
    #: the list/watch ``fieldSelector`` as sent (the Node authorizer allows a node to
    #: list pods only with ``spec.nodeName=<itself>``); RBAC ignores it
    field_selector: str = ""


@dataclass(frozen=True)
class Decision:
    """The answer: ``allowed`` and upstream's reason text (``denied`` is never set by
    RBAC, which only allows or has no opinion)."""

    allowed: bool
    reason: str = ""
    denied: bool = False


class Policy(Protocol):
    """Where the RBAC objects come from (JSON dicts as the API serves them)."""

    def cluster_role_bindings(self) -> Iterable[Obj]: ...

    def role_bindings(self, namespace: str) -> Iterable[Obj]: ...

    def cluster_role(self, name: str) -> Obj | None: ...

    def role(self, namespace: str, name: str) -> Obj | None: ...


@dataclass
class StaticPolicy:
    """A ``Policy`` over a list of Role/ClusterRole/RoleBinding/ClusterRoleBinding objects."""

    objects: list[Obj] = field(default_factory=list)

    def _of(self, kind: str) -> list[Obj]:
        return [o for o in self.objects if o.get("kind") == kind]

    def cluster_role_bindings(self) -> Iterable[Obj]:
        return self._of("ClusterRoleBinding")

    def role_bindings(self, namespace: str) -> Iterable[Obj]:
        return [o for o in self._of("RoleBinding") if _ns(o) == namespace]

    def cluster_role(self, name: str) -> Obj | None:
        return next((o for o in self._of("ClusterRole") if _name(o) == name), None)

    def role(self, namespace: str, name: str) -> Obj | None:
        return next((o for o in self._of("Role") if _name(o) == name and _ns(o) == namespace), None)


def _name(o: Obj) -> str:
    return str(o.get("metadata", {}).get("name", ""))


def _ns(o: Obj) -> str:
    return str(o.get("metadata", {}).get("namespace", ""))


def service_account_user(namespace: str, name: str) -> tuple[str, tuple[str, ...]]:
    """The user name and groups a ServiceAccount authenticates as."""
    return (
        f"{SA_PREFIX}{namespace}:{name}",
        ("system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated"),
    )


# --- subjects ------------------------------------------------------------------------------


def applies_to(user: str, groups: tuple[str, ...], subject: Obj, namespace: str) -> bool:
    """Whether a binding's subject names this user (``namespace``: the RoleBinding's,
    the default namespace of a ServiceAccount subject that names none)."""
    kind = subject.get("kind", "")
    name = subject.get("name", "")
    if kind == "User":
        return bool(user == name)
    if kind == "Group":
        return name in groups
    if kind == "ServiceAccount":
        sa_ns = subject.get("namespace") or namespace
        if not sa_ns:
            return False
        return bool(user == f"{SA_PREFIX}{sa_ns}:{name}")
    return False


def describe_subject(subject: Obj, binding_namespace: str) -> str:
    """A subject as upstream's reasons name it: ``User "jane"``, ``ServiceAccount
    "name/namespace"`` (a RoleBinding's namespace when the subject has none)."""
    kind = subject.get("kind", "")
    name = subject.get("name", "")
    if kind == "ServiceAccount":
        return f'{kind} "{name}/{subject.get("namespace") or binding_namespace}"'
    return f'{kind} "{name}"'


# --- rules ---------------------------------------------------------------------------------


def verb_matches(rule: Obj, verb: str) -> bool:
    """``VerbMatches``: the rule lists the verb or ``*``."""
    return any(v == "*" or v == verb for v in rule.get("verbs") or ())


def api_group_matches(rule: Obj, group: str) -> bool:
    """``APIGroupMatches``: the rule lists the group (``""`` is core) or ``*``."""
    return any(g == "*" or g == group for g in rule.get("apiGroups") or ())


def resource_matches(rule: Obj, combined: str, subresource: str) -> bool:
    """``combined`` is ``resource`` or ``resource/subresource``; a rule's ``*`` matches
    everything, ``*/sub`` any resource's ``sub``."""
    for r in rule.get("resources") or ():
        if r == "*" or r == combined:
            return True
        if subresource and r == "*/" + subresource:
            return True
    return False


def resource_name_matches(rule: Obj, name: str) -> bool:
    """No resourceNames: every name. Otherwise the request's name must be one of them
    (so a create, which has no name yet, is never allowed by such a rule)."""
    names = rule.get("resourceNames") or ()
    return not names or name in names


def non_resource_url_matches(rule: Obj, path: str) -> bool:
    """``NonResourceURLMatches``: the rule lists the path, ``*``, or a prefix ending in
    ``*`` (``/healthz/*``)."""
    for url in rule.get("nonResourceURLs") or ():
        if url == "*" or url == path:
            return True
        if url.endswith("*") and path.startswith(url.rstrip("*")):
            return True
    return False


def rule_allows(attrs: Attributes, rule: Obj) -> bool:
    """``RuleAllows``: verb, group, resource (with subresource) and name match for a
    resource request; verb and URL for a non-resource one."""
    if attrs.resource_request:
        combined = attrs.resource
        if attrs.subresource:
            combined += "/" + attrs.subresource
        return (
            verb_matches(rule, attrs.verb)
            and api_group_matches(rule, attrs.api_group)
            and resource_matches(rule, combined, attrs.subresource)
            and resource_name_matches(rule, attrs.name)
        )
    return verb_matches(rule, attrs.verb) and non_resource_url_matches(rule, attrs.path)


# --- visiting ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Visit:
    """One rule reached through a binding (or an error met on the way)."""

    source: str = ""
    rule: Obj | None = None
    error: str = ""


def _role_rules(policy: Policy, role_ref: Obj, namespace: str) -> tuple[list[Obj], str]:
    kind = role_ref.get("kind", "")
    name = role_ref.get("name", "")
    if kind == "Role":
        role = policy.role(namespace, name)
        if role is None:
            return [], f'role.{RBAC_GROUP} "{name}" not found'
    elif kind == "ClusterRole":
        role = policy.cluster_role(name)
        if role is None:
            return [], f'clusterrole.{RBAC_GROUP} "{name}" not found'
    else:
        return [], f'unsupported role reference kind: "{kind}"'
    return list(role.get("rules") or ()), ""


def _visit(policy: Policy, user: str, groups: tuple[str, ...], namespace: str) -> Iterable[_Visit]:
    """Every rule that applies to the user: ClusterRoleBindings first, then the
    RoleBindings of ``namespace`` (none for a cluster-scoped request)."""
    for b in policy.cluster_role_bindings():
        subject = _matching_subject(b, user, groups, "")
        if subject is None:
            continue
        ref = b.get("roleRef") or {}
        rules, err = _role_rules(policy, ref, "")
        if err:
            yield _Visit(error=err)
            continue
        source = (
            f'ClusterRoleBinding "{_name(b)}" of {ref.get("kind", "")} "{ref.get("name", "")}"'
            f" to {describe_subject(subject, '')}"
        )
        for rule in rules:
            yield _Visit(source, rule)
    if not namespace:
        return
    for b in policy.role_bindings(namespace):
        subject = _matching_subject(b, user, groups, namespace)
        if subject is None:
            continue
        ref = b.get("roleRef") or {}
        rules, err = _role_rules(policy, ref, namespace)
        if err:
            yield _Visit(error=err)
            continue
        source = (
            f'RoleBinding "{_name(b)}/{namespace}" of {ref.get("kind", "")} '
            f'"{ref.get("name", "")}" to {describe_subject(subject, namespace)}'
        )
        for rule in rules:
            yield _Visit(source, rule)


def visit(
    policy: Policy, user: str, groups: tuple[str, ...], namespace: str
) -> Iterable[tuple[str, Obj | None, str]]:
    """``(source, rule, error)`` for every rule that applies to the user, in the order
    ``authorize`` visits them (an error, such as a missing role, has no rule). The API
    server's authorizer compiles this once per user (``apiserver/authz.py``); the
    escalation checks (``apiserver/rbac_escalation.py``) read the rules a user holds."""
    for v in _visit(policy, user, groups, namespace):
        yield v.source, v.rule, v.error


def _matching_subject(
    binding: Obj, user: str, groups: tuple[str, ...], namespace: str
) -> Obj | None:
    for s in binding.get("subjects") or ():
        if applies_to(user, groups, s, namespace):
            return dict(s)
    return None


def _aggregate(errs: list[str]) -> str:
    """Errors joined as Go's ``utilerrors.NewAggregate`` prints them: repeated messages
    once, in brackets only when more than one distinct message is left."""
    distinct = list(dict.fromkeys(errs))
    if len(distinct) == 1:
        return distinct[0]
    return "[" + ", ".join(distinct) + "]"


def authorize(attrs: Attributes, policy: Policy) -> Decision:
    """Upstream's ``RBACAuthorizer.Authorize``: allowed by the first matching rule,
    otherwise no opinion (the reason lists the errors met, if any)."""
    errs: list[str] = []
    for v in _visit(policy, attrs.user, attrs.groups, attrs.namespace):
        if v.error:
            errs.append(v.error)
        elif v.rule is not None and rule_allows(attrs, v.rule):
            return Decision(True, f"RBAC: allowed by {v.source}")
    return Decision(False, f"RBAC: {_aggregate(errs)}" if errs else "")


def decide(attrs: Attributes, policy: Policy) -> Decision:
    """The API server's authorizer chain as upstream's ``union`` of the privileged-group
    authorizer and RBAC: a member of ``system:masters`` is allowed before RBAC is
    asked, with an empty reason; everyone else gets RBAC's decision."""
    if PRIVILEGED_GROUP in attrs.groups:
        return Decision(True)
    return authorize(attrs, policy)


@dataclass(frozen=True)
class RulesReview:
    """What SelfSubjectRulesReview's status lists."""

    resource_rules: list[Obj]
    non_resource_rules: list[Obj]
    incomplete: bool = False
    evaluation_error: str = ""

    def status(self) -> Obj:
        """The SelfSubjectRulesReview ``status`` (``evaluationError`` only when set)."""
        out: Obj = {
            "resourceRules": self.resource_rules,
            "nonResourceRules": self.non_resource_rules,
            "incomplete": self.incomplete,
        }
        if self.evaluation_error:
            out["evaluationError"] = self.evaluation_error
        return out


def rules_for(user: str, groups: Iterable[str], namespace: str, policy: Policy) -> RulesReview:
    """Every rule the user holds in ``namespace`` (cluster-wide ones included), split as
    upstream's ``RBACAuthorizer.RulesFor`` does; errors (a missing role) become the
    evaluation error, the rules found are still listed."""
    resource: list[Obj] = []
    non_resource: list[Obj] = []
    errs: list[str] = []
    for v in _visit(policy, user, tuple(groups), namespace):
        if v.error:
            errs.append(v.error)
            continue
        rule = v.rule or {}
        if rule.get("resources"):
            rr: Obj = {"verbs": list(rule.get("verbs") or ())}
            for key in ("apiGroups", "resources", "resourceNames"):
                if rule.get(key):
                    rr[key] = list(rule[key])
            resource.append(rr)
        if rule.get("nonResourceURLs"):
            non_resource.append(
                {
                    "verbs": list(rule.get("verbs") or ()),
                    "nonResourceURLs": list(rule["nonResourceURLs"]),
                }
            )
    return RulesReview(resource, non_resource, False, _aggregate(errs) if errs else "")
