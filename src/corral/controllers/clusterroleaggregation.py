"""ClusterRole aggregation: fills the rules of every ClusterRole with an aggregationRule.

Run by ``ControllerManager`` as ``clusterrole-aggregation`` (upstream's name;
``pkg/controller/clusterroleaggregation``). A ClusterRole with an ``aggregationRule``
gets, as its ``rules``, the union of the rules of every other ClusterRole whose labels
match one of its ``clusterRoleSelectors``: selector by selector, the matching roles in
name order, each rule once (exact equality, as upstream). So ``admin``, ``edit`` and ``view`` of the bootstrap
policy (``apiserver/rbac_bootstrap.py``) carry ``system:aggregate-to-*``'s rules, and a
CRD's ClusterRole labelled ``rbac.authorization.k8s.io/aggregate-to-view: "true"``
shows up in ``view``. Any ClusterRole change re-queues every aggregated role.
"""

from __future__ import annotations

import copy
import logging
from typing import Any, ClassVar

from corral.api.errors import StatusError
from corral.api.rbac import RBAC_GROUP
from corral.api.validation import label_selector_matches
from corral.client.rest import Client, Resource
from corral.controllers.base import Controller, InformerFactory
from corral.util.clock import Clock

log = logging.getLogger("corral.controllers.clusterroleaggregation")

Obj = dict[str, Any]

CLUSTER_ROLES = Resource(RBAC_GROUP, "v1", "clusterroles", namespaced=False)


def _name(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("name") or "")


def _selectors(role: Obj) -> list[Obj]:
    rule = role.get("aggregationRule")
    if not isinstance(rule, dict):
        return []
    return [s for s in rule.get("clusterRoleSelectors") or [] if isinstance(s, dict)]


def aggregated_rules(role: Obj, roles: list[Obj]) -> list[Obj]:
    """The rules ``role`` (which has an aggregationRule) should carry, given every
    ClusterRole: selector by selector, the rules of the other roles it matches in name
    order, each rule once (upstream's ``syncClusterRole``)."""
    me = _name(role)
    rules: list[Obj] = []
    for sel in _selectors(role):
        matching = sorted(
            (
                other
                for other in roles
                if _name(other) != me
                and label_selector_matches(sel, (other.get("metadata") or {}).get("labels") or {})
            ),
            key=_name,
        )
        for other in matching:
            for rule in other.get("rules") or []:
                if rule not in rules:
                    rules.append(copy.deepcopy(rule))
    return rules


class ClusterRoleAggregationController(Controller):
    """Keeps each aggregated ClusterRole's rules the union of its selected roles' rules."""

    name: ClassVar[str] = "clusterrole-aggregation"

    def __init__(
        self,
        client: Client,
        factory: InformerFactory,
        *,
        workers: int = 1,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(client, factory, workers=workers, clock=clock)
        self.roles = factory.informer(CLUSTER_ROLES)
        self.roles.add_handler(self._on_role)

    def _on_role(self, _type: str, obj: Obj, old: Obj | None) -> None:
        # any role may newly match (or stop matching) any selector: re-queue all aggregated
        for role in self.roles.store.values():
            if role.get("aggregationRule") is not None:
                self.queue.add(_name(role))

    async def sync(self, key: str) -> None:
        """Write the aggregated rules of the ClusterRole named ``key`` if they differ
        (a role gone or without an aggregationRule is left alone)."""
        role = self.roles.get(key)
        if role is None or not _selectors(role):
            return
        rules = aggregated_rules(role, list(self.roles.store.values()))
        if rules == (role.get("rules") or []):
            return
        meta = role["metadata"]
        body = {"rules": rules, "metadata": {"resourceVersion": meta.get("resourceVersion")}}
        try:
            await self.client.patch(CLUSTER_ROLES, key, body)
        except StatusError as e:
            if e.code != 404:
                raise
        log.debug("aggregated %d rules into clusterrole %s", len(rules), key)
