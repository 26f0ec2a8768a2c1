"""Strategies for rbac.authorization.k8s.io/v1 Roles, ClusterRoles, RoleBindings and
ClusterRoleBindings.

Validation follows upstream's ``pkg/apis/rbac/validation``: names are path segments
(not DNS names: ``system:node`` is valid), every rule needs verbs and either
apiGroups+resources or nonResourceURLs (never both; never nonResourceURLs in a
namespaced Role), a binding's ``roleRef`` names a Role or ClusterRole of this group and
may not change, subjects are Users, Groups (apiGroup rbac.authorization.k8s.io) or
ServiceAccounts (no apiGroup; a namespace in cluster bindings). Escalation prevention
(a user may only grant what they hold) needs an authorizer and is not applied yet.

Called by the generic store through the registry table (``table.py``).
"""

from __future__ import annotations

from typing import Any

from corral.api.errors import FieldError, GoValue, invalid, not_supported, required
from corral.api.rbac import RBAC_GROUP as GROUP
from corral.api.validation import (
    is_dns1123_subdomain,
    is_valid_path_segment_name,
    validate_label_selector,
)
from corral.apiserver.registry.base import Obj, Strategy

SUBJECT_KINDS = ["ServiceAccount", "User", "Group"]


def _go_strings(values: list[Any]) -> GoValue:
    """A ``[]string`` as Go's ``%#v`` prints it in field errors."""
    return GoValue("[]string{" + ", ".join(f'"{v}"' for v in values) + "}")


def _go_role_ref(ref: Obj) -> GoValue:
    return GoValue(
        f'rbac.RoleRef{{APIGroup:"{ref.get("apiGroup") or ""}", '
        f'Kind:"{ref.get("kind") or ""}", Name:"{ref.get("name") or ""}"}}'
    )


def validate_policy_rule(rule: Obj, namespaced: bool, path: str) -> list[FieldError]:
    """``validatePolicyRule``: one rule of a Role (``namespaced``) or ClusterRole."""
    errs: list[FieldError] = []
    if not rule.get("verbs"):
        errs.append(required(f"{path}.verbs", "verbs must contain at least one value"))
    urls = rule.get("nonResourceURLs") or []
    if urls:
        if namespaced:
            errs.append(
                invalid(
                    f"{path}.nonResourceURLs",
                    _go_strings(urls),
                    "namespaced rules cannot apply to non-resource URLs",
                )
            )
        if rule.get("apiGroups") or rule.get("resources") or rule.get("resourceNames"):
            errs.append(
                invalid(
                    f"{path}.nonResourceURLs",
                    _go_strings(urls),
                    "rules cannot apply to both regular resources and non-resource URLs",
                )
            )
        return errs
    if not rule.get("apiGroups"):
        errs.append(
            required(f"{path}.apiGroups", "resource rules must supply at least one api group")
        )
    resources = rule.get("resources") or []
    if not resources:
        errs.append(
            required(f"{path}.resources", "resource rules must supply at least one resource")
        )
    if rule.get("resourceNames") and len(resources) > 1:
        errs.append(
            required(f"{path}.resourceNames", "resource names cannot apply to multiple resources")
        )
    return errs


def _validate_rules(obj: Obj, namespaced: bool) -> list[FieldError]:
    errs: list[FieldError] = []
    for i, rule in enumerate(obj.get("rules") or []):
        errs += validate_policy_rule(rule or {}, namespaced, f"rules[{i}]")
    return errs


def validate_subject(subject: Obj, namespaced: bool, path: str) -> list[FieldError]:
    """``validateRoleBindingSubject``: a subject of a RoleBinding (``namespaced``) or
    ClusterRoleBinding."""
    errs: list[FieldError] = []
    name = subject.get("name") or ""
    api_group = subject.get("apiGroup") or ""
    kind = subject.get("kind") or ""
    if not name:
        errs.append(required(f"{path}.name"))
    if kind == "ServiceAccount":
        if name:
            errs += [invalid(f"{path}.name", name, m) for m in is_dns1123_subdomain(name)]
        if api_group:
            errs.append(not_supported(f"{path}.apiGroup", api_group, [""]))
        if not namespaced and not subject.get("namespace"):
            errs.append(required(f"{path}.namespace"))
    elif kind in ("User", "Group"):
        if not name:
            what = "user" if kind == "User" else "group"
            errs.append(invalid(f"{path}.name", name, f"{what} name cannot be empty"))
        if api_group != GROUP:
            errs.append(not_supported(f"{path}.apiGroup", api_group, [GROUP]))
    else:
        errs.append(not_supported(f"{path}.kind", kind, SUBJECT_KINDS))
    return errs


def _validate_binding(obj: Obj, namespaced: bool) -> list[FieldError]:
    errs: list[FieldError] = []
    ref = obj.get("roleRef") or {}
    if (ref.get("apiGroup") or "") != GROUP:
        errs.append(not_supported("roleRef.apiGroup", ref.get("apiGroup") or "", [GROUP]))
    kinds = ["Role", "ClusterRole"] if namespaced else ["ClusterRole"]
    if (ref.get("kind") or "") not in kinds:
        errs.append(not_supported("roleRef.kind", ref.get("kind") or "", kinds))
    name = ref.get("name") or ""
    if not name:
        errs.append(required("roleRef.name"))
    else:
        errs += [invalid("roleRef.name", name, m) for m in is_valid_path_segment_name(name)]
    for i, subject in enumerate(obj.get("subjects") or []):
        errs += validate_subject(subject or {}, namespaced, f"subjects[{i}]")
    return errs


def _validate_role_ref_update(new: Obj, old: Obj) -> list[FieldError]:
    new_ref, old_ref = new.get("roleRef") or {}, old.get("roleRef") or {}
    keys = ("apiGroup", "kind", "name")
    if any((new_ref.get(k) or "") != (old_ref.get(k) or "") for k in keys):
        return [invalid("roleRef", _go_role_ref(new_ref), "cannot change roleRef")]
    return []


class _RBACStrategy(Strategy):
    """What the four RBAC kinds share: no spec, path-segment names."""

    spec_fields = ()
    name_format = "path"  # upstream's minimalNameRequirements


class RoleStrategy(_RBACStrategy):
    """A namespaced Role: rules, never on non-resource URLs."""

    def validate(self, obj: Obj) -> list[FieldError]:
        """``ValidateRole``: every rule (namespaced)."""
        return _validate_rules(obj, namespaced=True)


class ClusterRoleStrategy(_RBACStrategy):
    """A ClusterRole: rules, or an aggregationRule whose selectors fill them in."""

    def validate(self, obj: Obj) -> list[FieldError]:
        """``ValidateClusterRole``: every rule, and a non-nil aggregationRule needs
        valid selectors."""
        errs = _validate_rules(obj, namespaced=False)
        rule = obj.get("aggregationRule")
        if rule is not None:
            path = "aggregationRule.clusterRoleSelectors"
            selectors = (rule or {}).get("clusterRoleSelectors") or []
            if not selectors:
                errs.append(
                    required(
                        path,
                        "at least one clusterRoleSelector required if aggregationRule is non-nil",
                    )
                )
            for i, sel in enumerate(selectors):
                errs += validate_label_selector(sel, f"{path}[{i}]")
        return errs


def default_binding(obj: Obj) -> None:
    """Upstream's rbac/v1 ``SetDefaults_RoleBinding`` / ``SetDefaults_ClusterRoleBinding``
    and ``SetDefaults_Subject``: an empty ``roleRef.apiGroup`` and the empty apiGroup of a
    User or Group subject become rbac.authorization.k8s.io."""
    ref = obj.get("roleRef")
    if isinstance(ref, dict) and not ref.get("apiGroup"):
        ref["apiGroup"] = GROUP
    for subject in obj.get("subjects") or []:
        if (
            isinstance(subject, dict)
            and not subject.get("apiGroup")
            and subject.get("kind") in ("User", "Group")
        ):
            subject["apiGroup"] = GROUP


class _BindingStrategy(_RBACStrategy):
    def default(self, obj: Obj) -> None:
        """Fill in the rbac/v1 defaults of roleRef and subjects."""
        default_binding(obj)


class RoleBindingStrategy(_BindingStrategy):
    """A namespaced RoleBinding: subjects bound to a Role or ClusterRole."""

    def validate(self, obj: Obj) -> list[FieldError]:
        """``ValidateRoleBinding``: the roleRef (Role or ClusterRole) and subjects."""
        return _validate_binding(obj, namespaced=True)

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        """As on create, and the roleRef may not change."""
        return self.validate(new) + _validate_role_ref_update(new, old)


class ClusterRoleBindingStrategy(_BindingStrategy):
    """A ClusterRoleBinding: subjects bound to a ClusterRole in every namespace."""

    def validate(self, obj: Obj) -> list[FieldError]:
        """``ValidateClusterRoleBinding``: the roleRef (ClusterRole) and subjects
        (ServiceAccounts with a namespace)."""
        return _validate_binding(obj, namespaced=False)

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        """As on create, and the roleRef may not change."""
        return self.validate(new) + _validate_role_ref_update(new, old)
