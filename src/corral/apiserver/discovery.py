"""Discovery documents, built once from the registry table.

Legacy discovery (``/api``, ``/apis``, ``/api/v1``, ``/apis/G``, ``/apis/G/V``) for the
Python client and older tools, and aggregated discovery (apidiscovery.k8s.io/v2,
``APIGroupDiscoveryList``) which kubectl 1.32 asks for first and which spares it one
request per group-version. ``/version`` reports Kubernetes 1.32 so that the installed
kubectl dispatcher runs kubectl 1.32.
"""

from __future__ import annotations

from typing import Any

import orjson

from corral.apiserver.registry.base import ResourceInfo

VERSION_INFO = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.0+corral",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2026-11-27T00:00:00Z",
    "goVersion": "go1.23.3",
    "compiler": "gc",
    "platform": "linux/amd64",
}

AGGREGATED_CT = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
_SUB_VERBS = ("get", "patch", "update")


def _subresources(info: ResourceInfo) -> list[tuple[str, str, str, str, tuple[str, ...]]]:
    """(name, group, version, kind, verbs) of each subresource."""
    out: list[tuple[str, str, str, str, tuple[str, ...]]] = []
    if info.scale is not None:
        out.append(("scale", "autoscaling", "v1", "Scale", _SUB_VERBS))
    if info.strategy.has_status:
        out.append(("status", info.group, info.version, info.kind, _SUB_VERBS))
    for name, kind, verbs, group, version in info.extra_subresources:
        out.append((name, group, version, kind, verbs))
    return out


class Discovery:
    """Pre-serialised discovery answers."""

    def __init__(self, resources: list[ResourceInfo], server_address: str) -> None:
        self.resources = resources
        groups: dict[str, list[ResourceInfo]] = {}
        for r in resources:
            groups.setdefault(r.group_version, []).append(r)
        self.group_versions = groups
        self.version = orjson.dumps(VERSION_INFO)
        self.api = orjson.dumps(
            {
                "kind": "APIVersions",
                "versions": ["v1"],
                "serverAddressByClientCIDRs": [
                    {"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}
                ],
            }
        )
        group_names = sorted({r.group for r in resources if r.group}, key=_group_order)
        self.group_docs: dict[str, bytes] = {}
        group_list = []
        for g in group_names:
            versions = sorted({r.version for r in resources if r.group == g})
            gd = {
                "name": g,
                "versions": [{"groupVersion": f"{g}/{v}", "version": v} for v in versions],
                "preferredVersion": {"groupVersion": f"{g}/{versions[0]}", "version": versions[0]},
            }
            group_list.append(gd)
            self.group_docs[g] = orjson.dumps({"kind": "APIGroup", "apiVersion": "v1", **gd})
        self.apis = orjson.dumps({"kind": "APIGroupList", "apiVersion": "v1", "groups": group_list})
        self.resource_lists = {
            gv: orjson.dumps(self._resource_list(gv, rs)) for gv, rs in groups.items()
        }
        self.aggregated_api = orjson.dumps(self._aggregated([""]))
        self.aggregated_apis = orjson.dumps(self._aggregated(group_names))

    def _resource_list(self, gv: str, rs: list[ResourceInfo]) -> dict[str, Any]:
        out: list[dict[str, Any]] = []
        for r in rs:
            d: dict[str, Any] = {
                "name": r.plural,
                "singularName": r.singular,
                "namespaced": r.namespaced,
                "kind": r.kind,
                "verbs": list(r.verbs),
            }
            if r.short_names:
                d["shortNames"] = list(r.short_names)
            if r.categories:
                d["categories"] = list(r.categories)
            out.append(d)
            for name, group, version, kind, verbs in _subresources(r):
                sd: dict[str, Any] = {
                    "name": f"{r.plural}/{name}",
                    "singularName": "",
                    "namespaced": r.namespaced,
                }
                if (group, version) != (r.group, r.version):
                    sd["group"] = group
                    sd["version"] = version
                sd["kind"] = kind
                sd["verbs"] = list(verbs)
                out.append(sd)
        return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": out}

    def _aggregated(self, group_names: list[str]) -> dict[str, Any]:
        items = []
        for g in group_names:
            versions = []
            for v in sorted({r.version for r in self.resources if r.group == g}):
                resources = []
                for r in self.resources:
                    if r.group != g or r.version != v:
                        continue
                    d: dict[str, Any] = {
                        "resource": r.plural,
                        "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
                        "scope": "Namespaced" if r.namespaced else "Cluster",
                        "singularResource": r.singular,
                        "verbs": list(r.verbs),
                    }
                    if r.short_names:
                        d["shortNames"] = list(r.short_names)
                    if r.categories:
                        d["categories"] = list(r.categories)
                    subs = [
                        {
                            "subresource": name,
                            "responseKind": {"group": group, "version": version, "kind": kind},
                            "verbs": list(verbs),
                        }
                        for name, group, version, kind, verbs in _subresources(r)
                    ]
                    if subs:
                        d["subresources"] = subs
                    resources.append(d)
                versions.append({"version": v, "resources": resources, "freshness": "Current"})
            items.append({"metadata": {"name": g, "creationTimestamp": None}, "versions": versions})
        return {
            "kind": "APIGroupDiscoveryList",
            "apiVersion": "apidiscovery.k8s.io/v2",
            "metadata": {},
            "items": items,
        }


_ORDER = [
    "apps",
    "events.k8s.io",
    "autoscaling",
    "batch",
    "policy",
    "coordination.k8s.io",
    "discovery.k8s.io",
    "scheduling.k8s.io",
]


def _group_order(g: str) -> tuple[int, str]:
    return (_ORDER.index(g) if g in _ORDER else len(_ORDER), g)


def wants_aggregated(accept: str) -> bool:
    """kubectl lists the aggregated form first; plain JSON is its fallback."""
    for item in accept.split(","):
        if (
            "as=APIGroupDiscoveryList" in item
            and "v=v2" in item.replace(" ", "")
            and "v2beta1" not in item
        ):
            return True
    return False
