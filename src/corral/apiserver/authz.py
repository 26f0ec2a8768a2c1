"""Authorization: the authorizer chain every request passes after authentication.

Upstream's API server asks, in order, the privileged-group authorizer
(``authorizerfactory.NewPrivilegedGroups(system:masters)``), then each configured mode
(``Node``, ``RBAC``); the first that allows or explicitly denies decides, and a request
nobody allows is forbidden with the reasons of those that had no opinion (upstream's
``union`` authorizer). ``server.py`` builds that chain and sets it as
``registry.authorizer``: ``AuthorizerChain([PrivilegedGroups(), NodeAuthorizer,
RBACAuthorizer])``; the middleware (``app.py``), the impersonation check
(``identity.py``), the access reviews (``reviews.py``), the escalation checks
(``rbac_escalation.py``) and admission plugins all ask it.

``RBACAuthorizer`` evaluates ``api/rbac.py``'s semantics over the watch caches. Walking
every ClusterRoleBinding per request would cost tens of microseconds per binding, so the
rules that apply to one (user, groups, namespace) are compiled once into flat matchers
and kept until any Role, ClusterRole, RoleBinding or ClusterRoleBinding changes (a
watch-cache listener clears them all: RBAC changes are rare, requests are not).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from corral.api import errors, rbac

if TYPE_CHECKING:
    from corral.apiserver.store import Registry
    from corral.storage.cache import Entry, ResourceCache

Obj = dict[str, Any]

NO_OPINION = rbac.Decision(False)
ALLOWED = rbac.Decision(True)
#: compiled-rule sets kept before the cache starts afresh (a bound on memory)
MAX_COMPILED = 65_536
#: request shapes (kind of request, verb) whose candidate rules one set remembers
MAX_SHAPES = 64
_RBAC_PLURALS = ("roles", "clusterroles", "rolebindings", "clusterrolebindings")


class Authorizer(Protocol):
    """Upstream's ``authorizer.Authorizer``: allowed, denied, or no opinion
    (``Decision(False, reason)`` with ``denied`` False)."""

    def authorize(self, attrs: rbac.Attributes) -> rbac.Decision: ...


class PrivilegedGroups:
    """Allows every request of a member of one of ``groups`` (``system:masters``)."""

    def __init__(self, *groups: str) -> None:
        self.groups = frozenset(groups or (rbac.PRIVILEGED_GROUP,))

    def authorize(self, attrs: rbac.Attributes) -> rbac.Decision:
        for g in attrs.groups:
            if g in self.groups:
                return ALLOWED
        return NO_OPINION


class AuthorizerChain:
    """Upstream's ``union.New``: the first authorizer that allows or denies decides;
    otherwise no opinion, with the others' reasons joined by newlines."""

    def __init__(self, authorizers: Sequence[Authorizer]) -> None:
        self.authorizers = list(authorizers)

    def authorize(self, attrs: rbac.Attributes) -> rbac.Decision:
        reasons: list[str] = []
        for a in self.authorizers:
            d = a.authorize(attrs)
            if d.allowed or d.denied:
                return d
            if d.reason:
                reasons.append(d.reason)
        return rbac.Decision(False, "\n".join(reasons))


class _Rule:
    """One PolicyRule compiled to sets, with the binding it came through."""

    __slots__ = (
        "all_groups",
        "all_resources",
        "all_verbs",
        "groups",
        "names",
        "resources",
        "source",
        "url_prefixes",
        "urls",
        "verbs",
    )

    def __init__(self, rule: Obj, source: str) -> None:
        self.source = source
        self.verbs = frozenset(rule.get("verbs") or ())
        self.all_verbs = "*" in self.verbs
        self.groups = frozenset(rule.get("apiGroups") or ())
        self.all_groups = "*" in self.groups
        self.resources = frozenset(rule.get("resources") or ())
        self.all_resources = "*" in self.resources
        self.names = frozenset(rule.get("resourceNames") or ())
        urls = list(rule.get("nonResourceURLs") or ())
        self.urls = frozenset(urls)
        self.url_prefixes = tuple(u.rstrip("*") for u in urls if u.endswith("*"))

    def allows(self, a: rbac.Attributes) -> bool:
        """``rbac.rule_allows`` on the compiled sets."""
        if not (self.all_verbs or a.verb in self.verbs):
            return False
        if not a.resource_request:
            return a.path in self.urls or any(a.path.startswith(p) for p in self.url_prefixes)
        if not (self.all_groups or a.api_group in self.groups):
            return False
        if not self.all_resources:
            combined = f"{a.resource}/{a.subresource}" if a.subresource else a.resource
            if combined not in self.resources and not (
                a.subresource and "*/" + a.subresource in self.resources
            ):
                return False
        return not self.names or a.name in self.names


class _Compiled:
    """The rules that apply to one (user, groups, namespace), in upstream's visiting
    order, and the answer when none allows: no opinion, with the errors met on the way.

    ``candidates`` narrows the walk for one request shape: the rules that list its verb
    (or ``*``) and can match its kind of request (resource rules for a resource request,
    ``nonResourceURLs`` rules otherwise), still in visiting order, so the first that
    allows is the one the full walk would find. Built on first use per shape; the whole
    object is dropped with the compiled-rule cache when any RBAC object changes."""

    __slots__ = ("_by_shape", "denial", "rules")

    def __init__(self, visited: Iterable[_Rule | str]) -> None:
        rules: list[_Rule] = []
        errs: list[str] = []
        for r in visited:
            if isinstance(r, str):
                errs.append(r)
            else:
                rules.append(r)
        self.rules = tuple(rules)
        if not errs:
            self.denial = NO_OPINION
        else:
            distinct = list(dict.fromkeys(errs))
            joined = distinct[0] if len(distinct) == 1 else "[" + ", ".join(distinct) + "]"
            self.denial = rbac.Decision(False, f"RBAC: {joined}")
        self._by_shape: dict[tuple[bool, str], tuple[_Rule, ...]] = {}

    def candidates(self, resource_request: bool, verb: str) -> tuple[_Rule, ...]:
        key = (resource_request, verb)
        found = self._by_shape.get(key)
        if found is None:
            found = tuple(
                r
                for r in self.rules
                if (r.all_verbs or verb in r.verbs)
                and ((r.all_resources or bool(r.resources)) if resource_request else bool(r.urls))
            )
            if len(self._by_shape) < MAX_SHAPES:  # verbs are few; a bound all the same
                self._by_shape[key] = found
        return found


class CachePolicy:
    """``rbac.Policy`` over the registry's RBAC watch caches (nothing while no row
    serves them), objects in key order so that reasons are stable."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def _cache(self, plural: str) -> ResourceCache | None:
        info = self.registry.by_gvr.get((rbac.RBAC_GROUP, "v1", plural))
        return self.registry.rcache(info) if info is not None else None

    def _objs(self, plural: str, namespace: str | None = None) -> list[Obj]:
        rc = self._cache(plural)
        if rc is None:
            return []
        out = []
        for key in rc.sorted_keys():
            entry = rc.entries[key]
            if namespace is None or entry.namespace == namespace:
                out.append(entry.obj())
        return out

    def _one(self, plural: str, namespace: str, name: str) -> Obj | None:
        info = self.registry.by_gvr.get((rbac.RBAC_GROUP, "v1", plural))
        if info is None:
            return None
        e = self.registry.entry(info, namespace, name)
        return e.obj() if e is not None else None

    def cluster_role_bindings(self) -> Iterable[Obj]:
        return self._objs("clusterrolebindings")

    def role_bindings(self, namespace: str) -> Iterable[Obj]:
        return self._objs("rolebindings", namespace)

    def cluster_role(self, name: str) -> Obj | None:
        return self._one("clusterroles", "", name)

    def role(self, namespace: str, name: str) -> Obj | None:
        return self._one("roles", namespace, name)


class RBACAuthorizer:
    """RBAC over the watch caches with a compiled-rule cache per (user, groups,
    namespace), cleared on any change of an RBAC object."""

    def __init__(self, registry: Registry) -> None:
        self.policy = CachePolicy(registry)
        self._compiled: dict[tuple[str, tuple[str, ...], str], _Compiled] = {}
        self._prefixes = frozenset(
            f"/registry/{rbac.RBAC_GROUP}/{plural}/" for plural in _RBAC_PLURALS
        )
        registry.cache.listeners.append(self._on_change)

    def _on_change(self, type_: str, entry: Entry, prev: Entry | None, rc: ResourceCache) -> None:
        if rc.prefix in self._prefixes and self._compiled:
            self._compiled.clear()

    def invalidate(self) -> None:
        """Forget every compiled rule set (the listener does this on RBAC changes)."""
        self._compiled.clear()

    def _rules(self, user: str, groups: tuple[str, ...], namespace: str) -> _Compiled:
        key = (user, groups, namespace)
        compiled = self._compiled.get(key)
        if compiled is None:
            compiled = _Compiled(
                [
                    error if rule is None else _Rule(rule, source)
                    for source, rule, error in rbac.visit(self.policy, user, groups, namespace)
                ]
            )
            if len(self._compiled) >= MAX_COMPILED:
                self._compiled.clear()
            self._compiled[key] = compiled
        return compiled

    def authorize(self, attrs: rbac.Attributes) -> rbac.Decision:
        """``rbac.authorize``: the first rule that allows, with its reason; otherwise no
        opinion, the reason listing the errors met (a binding to a missing role). Only
        the rules that could allow a request of this verb and kind are tried
        (``_Compiled.candidates``), in the same order."""
        compiled = self._rules(attrs.user, attrs.groups, attrs.namespace)
        for r in compiled.candidates(attrs.resource_request, attrs.verb):
            if r.allows(attrs):
                return rbac.Decision(True, f"RBAC: allowed by {r.source}")
        return compiled.denial

    def rules(
        self, user: str, groups: tuple[str, ...], namespace: str
    ) -> tuple[list[Obj], list[str]]:
        """The PolicyRules ``user`` holds in ``namespace`` (cluster-wide ones included)
        and the errors met, as upstream's ``DefaultRuleResolver.RulesFor`` gives them to
        the escalation checks."""
        rules: list[Obj] = []
        errs: list[str] = []
        for _, rule, error in rbac.visit(self.policy, user, groups, namespace):
            if rule is None:
                errs.append(error)
            else:
                rules.append(rule)
        return rules, errs


def go_quote(s: str) -> str:
    """A string as Go's ``%q`` prints it (close enough for names and paths)."""
    return orjson.dumps(s).decode()


def forbidden_message(attrs: rbac.Attributes) -> str:
    """Upstream's ``forbiddenMessage``: who cannot do what, where."""
    if not attrs.resource_request:
        return f"User {go_quote(attrs.user)} cannot {attrs.verb} path {go_quote(attrs.path)}"
    resource = f"{attrs.resource}/{attrs.subresource}" if attrs.subresource else attrs.resource
    head = (
        f"User {go_quote(attrs.user)} cannot {attrs.verb} resource {go_quote(resource)} "
        f"in API group {go_quote(attrs.api_group)}"
    )
    if attrs.namespace:
        return f"{head} in the namespace {go_quote(attrs.namespace)}"
    return f"{head} at the cluster scope"


_HTML = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})


def forbidden(attrs: rbac.Attributes, reason: str = "") -> errors.StatusError:
    """The 403 upstream's ``responsewriters.Forbidden`` writes: ``pods is forbidden:
    User "bob" cannot list resource "pods" in API group "" in the namespace "default"``,
    the authorizers' reason appended after ``: `` when there is one; ``details`` name,
    group and kind (the resource), each only when set."""
    msg = forbidden_message(attrs).translate(_HTML)
    if reason:
        msg = f"{msg}: {reason}"
    details: dict[str, Any] = {}
    if attrs.resource_request and attrs.name:
        details["name"] = attrs.name
    if attrs.resource_request and attrs.api_group:
        details["group"] = attrs.api_group
    if attrs.resource_request and attrs.resource:
        details["kind"] = attrs.resource
    if not attrs.resource_request or not attrs.resource:
        message = f"forbidden: {msg}"
    else:
        qualified = errors.qualified(attrs.resource, attrs.api_group)
        if attrs.name:
            message = f"{qualified} {go_quote(attrs.name)} is forbidden: {msg}"
        else:
            message = f"{qualified} is forbidden: {msg}"
    return errors.StatusError(403, errors.FORBIDDEN, message, details)


def default_chain(registry: Registry, *extra: Authorizer) -> AuthorizerChain:
    """Upstream's order: the privileged group, then ``extra`` (the Node authorizer),
    then RBAC."""
    return AuthorizerChain([PrivilegedGroups(), *extra, RBACAuthorizer(registry)])
