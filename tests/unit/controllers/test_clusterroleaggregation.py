"""ClusterRole aggregation (``controllers/clusterroleaggregation.py``): which rules an
aggregated role ends up with, as a table over sets of ClusterRoles."""

from __future__ import annotations

from typing import Any

import pytest

from corral.apiserver import rbac_bootstrap as rb
from corral.controllers.clusterroleaggregation import aggregated_rules

Obj = dict[str, Any]

VIEW = "rbac.authorization.k8s.io/aggregate-to-view"


def role(name: str, labels: dict[str, str] | None = None, *rules: Obj, sel: Any = None) -> Obj:
    out: Obj = {"metadata": {"name": name, "labels": labels or {}}, "rules": list(rules)}
    if sel is not None:
        out["aggregationRule"] = {"clusterRoleSelectors": sel}
    return out


def r(resource: str, verb: str = "get") -> Obj:
    return {"apiGroups": [""], "resources": [resource], "verbs": [verb]}


AGG = role("agg", {}, sel=[{"matchLabels": {VIEW: "true"}}])

# (the aggregated role, every ClusterRole, the rules it should carry)
# fmt: off
CASES: list[tuple[Obj, list[Obj], list[Obj]]] = [
    # nothing matches: no rules
    (AGG, [AGG, role("b", {"x": "y"}, r("pods"))], []),
    # matching roles in name order, whatever the list order
    (AGG, [role("z", {VIEW: "true"}, r("secrets")), AGG, role("a", {VIEW: "true"}, r("pods"))],
     [r("pods"), r("secrets")]),
    # a rule two roles share appears once
    (AGG, [AGG, role("a", {VIEW: "true"}, r("pods")), role("b", {VIEW: "true"}, r("pods"), r("nodes"))],
     [r("pods"), r("nodes")]),
    # the label value must match
    (AGG, [AGG, role("a", {VIEW: "false"}, r("pods"))], []),
    # several selectors: union of their matches
    (role("agg", {}, sel=[{"matchLabels": {"a": "1"}}, {"matchLabels": {"b": "1"}}]),
     [role("x", {"a": "1"}, r("pods")), role("y", {"b": "1"}, r("nodes"))], [r("pods"), r("nodes")]),
    # selector by selector: the first selector's roles come first, whatever their names
    (role("agg", {}, sel=[{"matchLabels": {"b": "1"}}, {"matchLabels": {"a": "1"}}]),
     [role("x", {"a": "1"}, r("pods")), role("y", {"b": "1"}, r("nodes"))], [r("nodes"), r("pods")]),
    # matchExpressions work too
    (role("agg", {}, sel=[{"matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]}]}]),
     [role("x", {"tier": "b"}, r("pods")), role("y", {"tier": "c"}, r("nodes"))], [r("pods")]),
    # a role never aggregates itself, even when its labels match its own selector
    (role("self", {VIEW: "true"}, r("old"), sel=[{"matchLabels": {VIEW: "true"}}]),
     [role("self", {VIEW: "true"}, r("old"), sel=[{"matchLabels": {VIEW: "true"}}])], []),
]
# fmt: on


@pytest.mark.parametrize(("agg", "roles", "want"), CASES)
def test_aggregated_rules(agg: Obj, roles: list[Obj], want: list[Obj]) -> None:
    assert aggregated_rules(agg, roles) == want


def test_bootstrap_chain() -> None:
    """view ⊂ edit ⊂ admin through the bootstrap labels, a CRD's role included in view."""
    crd_role = role("widgets-view", {VIEW: "true"}, r("widgets"))
    roles = [*rb.cluster_roles(), crd_role]
    by_name = {x["metadata"]["name"]: x for x in roles}
    # the controller converges: run to a fixed point, as its re-queues do
    for _ in range(4):
        for name in ("view", "edit", "admin"):
            by_name[name]["rules"] = aggregated_rules(by_name[name], list(by_name.values()))
    view, edit, admin = (by_name[n]["rules"] for n in ("view", "edit", "admin"))
    assert r("widgets") in view
    assert all(rule in edit for rule in view)
    assert all(rule in admin for rule in edit)
    assert by_name["system:aggregate-to-admin"]["rules"][1] in admin
    assert by_name["system:aggregate-to-admin"]["rules"][1] not in edit
