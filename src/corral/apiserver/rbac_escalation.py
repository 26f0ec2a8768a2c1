"""RBAC escalation prevention: no one grants, through a role or a binding, more than
they hold.

Upstream puts this in the RBAC registries' ``policybased`` storages
(``pkg/registry/rbac/{role,clusterrole,rolebinding,clusterrolebinding}/policybased``);
Corral runs the same checks as an admission plugin (``admission_chain.py``) on the four
RBAC resources, CREATE and UPDATE (patch and apply included):

- a member of ``system:masters`` passes (``EscalationAllowed``);
- a Role or ClusterRole passes when the writer may ``escalate`` roles/clusterroles
  (``RoleEscalationAuthorized``), or holds every rule it lists (``ConfirmNoEscalation``:
  the writer's RBAC rules in the role's namespace must ``Covers`` them); a ClusterRole
  with an ``aggregationRule`` (before or after) needs ``*`` on everything;
- a RoleBinding or ClusterRoleBinding passes when the writer may ``bind`` the role it
  references (``BindingAuthorized``), or holds every rule of that role;
- an update that changes only the fields the garbage collector writes
  (``ownerReferences``, ``finalizers``) passes (``IsOnlyMutatingGCFields``).

A refusal is upstream's 403: ``roles.rbac.authorization.k8s.io "r" is forbidden: user
"bob" (groups=["system:authenticated"]) is attempting to grant RBAC permissions not
currently held:`` then the missing rules, one a line, compacted and sorted as upstream
prints them (``{APIGroups:[""], Resources:["secrets"], Verbs:["get"]}``).

``Covers`` breaks the granted rules into atoms (one group, resource, verb, name; or one
URL and verb) and looks for an owner rule covering each, which is exact because an atom
is covered by a single rule or not at all.
"""

from __future__ import annotations

from typing import Any

import orjson

from corral.api import errors, rbac
from corral.apiserver.admission_chain import CREATE, UPDATE, AdmissionRequest
from corral.apiserver.authz import CachePolicy
from corral.apiserver.identity import UserInfo
from corral.apiserver.store import Registry

Obj = dict[str, Any]

G = rbac.RBAC_GROUP
ROLE_RESOURCES = ("roles", "clusterroles")
BINDING_RESOURCES = ("rolebindings", "clusterrolebindings")
#: what an aggregationRule needs: everything
FULL_AUTHORITY: list[Obj] = [
    {"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]},
    {"verbs": ["*"], "nonResourceURLs": ["*"]},
]
AGGREGATION_MESSAGE = "must have cluster-admin privileges to use the aggregationRule"
_GC_FIELDS = ("ownerReferences", "finalizers", "selfLink", "managedFields", "resourceVersion")


# --- Covers (pure) --------------------------------------------------------------------------


def breakdown(rule: Obj) -> list[Obj]:
    """Upstream's ``BreakdownRule``: one rule per group, resource, verb (and name), and
    one per URL and verb."""
    out: list[Obj] = []
    names = rule.get("resourceNames") or []
    for g in rule.get("apiGroups") or []:
        for r in rule.get("resources") or []:
            for v in rule.get("verbs") or []:
                base = {"apiGroups": [g], "resources": [r], "verbs": [v]}
                if names:
                    out += [{**base, "resourceNames": [n]} for n in names]
                else:
                    out.append(base)
    for url in rule.get("nonResourceURLs") or []:
        for v in rule.get("verbs") or []:
            out.append({"nonResourceURLs": [url], "verbs": [v]})
    return out


def _resources_cover(owner: list[str], wanted: list[str]) -> bool:
    if "*" in owner or set(wanted) <= set(owner):
        return True
    for path in wanted:
        if path in owner:
            continue
        if "/" not in path or "*/" + path.split("/", 1)[1] not in owner:
            return False
    return True


def _urls_cover(owner: list[str], wanted: list[str]) -> bool:
    return all(
        any(o == p or (o.endswith("*") and p.startswith(o.rstrip("*"))) for o in owner)
        for p in wanted
    )


def rule_covers(owner: Obj, sub: Obj) -> bool:
    """Upstream's ``ruleCovers``: ``owner`` covers the atomic rule ``sub``."""
    verbs = owner.get("verbs") or []
    groups = owner.get("apiGroups") or []
    names = owner.get("resourceNames") or []
    sub_names = sub.get("resourceNames") or []
    if not ("*" in verbs or set(sub.get("verbs") or []) <= set(verbs)):
        return False
    if not ("*" in groups or set(sub.get("apiGroups") or []) <= set(groups)):
        return False
    if not _resources_cover(owner.get("resources") or [], sub.get("resources") or []):
        return False
    if not _urls_cover(owner.get("nonResourceURLs") or [], sub.get("nonResourceURLs") or []):
        return False
    if not sub_names:
        return not names
    return not names or set(sub_names) <= set(names)


def covers(owner_rules: list[Obj], rules: list[Obj]) -> list[Obj]:
    """Upstream's ``Covers``: the atoms of ``rules`` no owner rule covers (empty: all
    covered)."""
    return [
        sub
        for rule in rules
        for sub in breakdown(rule)
        if not any(rule_covers(o, sub) for o in owner_rules)
    ]


def compact(rules: list[Obj]) -> list[Obj]:
    """Upstream's ``CompactRules``: simple rules (one group, one resource, at most one
    name, nothing else) on the same target merge their verbs."""
    out: list[Obj] = []
    simple: dict[tuple[str, str, str | None], Obj] = {}
    for rule in rules:
        names = rule.get("resourceNames") or []
        groups = rule.get("apiGroups") or []
        resources = rule.get("resources") or []
        if (
            len(names) > 1
            or rule.get("nonResourceURLs")
            or len(groups) != 1
            or len(resources) != 1
            or set(rule) - {"apiGroups", "resources", "verbs", "resourceNames"}
        ):
            out.append(rule)
            continue
        key = (groups[0], resources[0], names[0] if names else None)
        have = simple.get(key)
        if have is None:
            simple[key] = {k: list(v) for k, v in rule.items()}
        else:
            have["verbs"] = have.get("verbs") or []
            have["verbs"] += [v for v in rule.get("verbs") or [] if v not in have["verbs"]]
    return out + list(simple.values())


def _go_strings(values: list[str]) -> str:
    """A ``[]string`` as Go's ``%q`` prints it: ``["a" "b"]``."""
    return "[" + " ".join(orjson.dumps(v).decode() for v in values) + "]"


def compact_string(rule: Obj) -> str:
    """Upstream's ``CompactString``: ``{APIGroups:[""], Resources:["pods"], Verbs:["get"]}``."""
    parts = []
    for key, label in (
        ("apiGroups", "APIGroups"),
        ("resources", "Resources"),
        ("nonResourceURLs", "NonResourceURLs"),
        ("resourceNames", "ResourceNames"),
        ("verbs", "Verbs"),
    ):
        if rule.get(key):
            parts.append(f"{label}:{_go_strings(list(rule[key]))}")
    return "{" + ", ".join(parts) + "}"


def escalation_message(user: UserInfo, missing: list[Obj], resolution_errors: list[str]) -> str:
    """``ConfirmNoEscalation``'s error text."""
    lines = sorted({compact_string(r) for r in compact(missing)})
    msg = (
        f"user {orjson.dumps(user.username).decode()} (groups={_go_strings(list(user.groups))}) "
        "is attempting to grant RBAC permissions not currently held:\n" + "\n".join(lines)
    )
    if resolution_errors:
        distinct = list(dict.fromkeys(resolution_errors))
        agg = distinct[0] if len(distinct) == 1 else "[" + ", ".join(distinct) + "]"
        msg += f"; resolution errors: [{agg}]"
    return msg


def only_gc_fields(new: Obj | None, old: Obj | None) -> bool:
    """Upstream's ``IsOnlyMutatingGCFields``: nothing but the garbage collector's
    metadata differs."""
    if new is None or old is None:
        return False

    def strip(o: Obj) -> Obj:
        meta = {k: v for k, v in (o.get("metadata") or {}).items() if k not in _GC_FIELDS}
        return {**o, "metadata": meta}

    return strip(new) == strip(old)


def _registry_error(err: str) -> str:
    """The authorizer names a missing role ``role.rbac...``; the registries that
    upstream's escalation checks read name it by resource (``roles.rbac...``)."""
    for singular in ("clusterrole.", "role."):
        if err.startswith(singular):
            return singular[:-1] + "s." + err[len(singular) :]
    return err


# --- the admission plugin -------------------------------------------------------------------


class EscalationCheck:
    """The plugin over one registry: ``register`` adds it to the four RBAC rows."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.policy = CachePolicy(registry)

    def register(self) -> None:
        for plural in ROLE_RESOURCES + BINDING_RESOURCES:
            self.registry.admission[(G, plural)].append(self)

    def _allowed(self, user: UserInfo, verb: str, resource: str, name: str, ns: str) -> bool:
        authorizer = self.registry.authorizer
        if authorizer is None:
            return False
        attrs = rbac.Attributes(user.username, user.groups, verb, G, resource, "", name, ns)
        return authorizer.authorize(attrs).allowed

    def _held(self, user: UserInfo, namespace: str) -> tuple[list[Obj], list[str]]:
        rules: list[Obj] = []
        errs: list[str] = []
        for _, rule, error in rbac.visit(self.policy, user.username, user.groups, namespace):
            if rule is None:
                errs.append(_registry_error(error))
            else:
                rules.append(rule)
        return rules, errs

    def _confirm(self, req: AdmissionRequest, user: UserInfo, rules: list[Obj]) -> None:
        held, errs = self._held(user, req.namespace)
        missing = covers(held, rules)
        if missing:
            raise _forbidden(req, escalation_message(user, missing, errs))

    def __call__(self, req: AdmissionRequest) -> None:
        user = req.user
        if user is None or req.subresource or req.operation not in (CREATE, UPDATE):
            return
        if rbac.PRIVILEGED_GROUP in user.groups:
            return
        if req.operation == UPDATE and only_gc_fields(req.obj, req.old):
            return
        obj = req.obj or {}
        plural = req.info.plural
        if plural in ROLE_RESOURCES:
            name = req.name if req.operation == UPDATE else ""
            if self._allowed(user, "escalate", plural, name, req.namespace):
                return
            self._confirm(req, user, list(obj.get("rules") or []))
            if plural == "clusterroles" and (_aggregates(obj) or _aggregates(req.old)):
                held, _ = self._held(user, "")
                if covers(held, FULL_AUTHORITY):
                    raise _forbidden(req, AGGREGATION_MESSAGE)
            return
        ref = obj.get("roleRef") or {}
        kind = ref.get("kind", "")
        role_plural = {"ClusterRole": "clusterroles", "Role": "roles"}.get(kind)
        if role_plural is not None and self._allowed(
            user, "bind", role_plural, ref.get("name", ""), req.namespace
        ):
            return
        rules = self._role_rules(req, ref)
        self._confirm(req, user, rules)

    def _role_rules(self, req: AdmissionRequest, ref: Obj) -> list[Obj]:
        """``GetRoleReferenceRules``: the referenced role's rules (403 if it is missing)."""
        kind, name = ref.get("kind", ""), ref.get("name", "")
        if kind == "Role":
            role = self.policy.role(req.namespace, name)
            missing = f'roles.{G} "{name}" not found'
        elif kind == "ClusterRole":
            role = self.policy.cluster_role(name)
            missing = f'clusterroles.{G} "{name}" not found'
        else:
            raise _forbidden(req, f'unsupported role reference kind: "{kind}"')
        if role is None:
            raise _forbidden(req, missing)
        return list(role.get("rules") or [])


def _aggregates(role: Obj | None) -> bool:
    return bool(((role or {}).get("aggregationRule") or {}).get("clusterRoleSelectors"))


def _forbidden(req: AdmissionRequest, message: str) -> errors.StatusError:
    plural = req.info.plural
    return errors.forbidden_error(
        f'{plural}.{G} "{req.name}" is forbidden: {message}', plural, G, req.name
    )
