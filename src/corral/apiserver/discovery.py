"""Discovery documents, built from the registry table and rebuilt when it changes.

``Discovery.set_resources`` rebuilds them for a new set of rows (``apiserver/crds.py``
calls it when a CRD is established, changed or deleted); ``Discovery.set_aggregated``
publishes or withdraws a group-version served by an extension API server (an
APIService). The aggregated documents carry an ETag (a hash of their bytes, 304 on
``If-None-Match``), so kubectl's HTTP cache sees every change.

Legacy discovery (``/api``, ``/apis``, ``/api/v1``, ``/apis/G``, ``/apis/G/V``) for the
Python client and older tools, and aggregated discovery (apidiscovery.k8s.io/v2,
``APIGroupDiscoveryList``) which kubectl 1.32 asks for first and which spares it one
request per group-version. ``/version`` reports Kubernetes 1.32 so that the installed
kubectl dispatcher runs kubectl 1.32.
"""

from __future__ import annotations

import hashlib
import re
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
        #: group-version -> APIResourceList of extension API servers (``set_aggregated``)
        self._remote: dict[str, dict[str, Any]] = {}
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
        self.set_resources(resources)

    def set_resources(self, resources: list[ResourceInfo]) -> None:
        """Rebuild every document for this set of rows (the registry table plus the
        custom resources of established CRDs: ``apiserver/crds.py`` calls it when a CRD
        changes); the group-versions of ``set_aggregated`` are kept. The ETags change
        with the content, so kubectl's cached discovery refreshes."""
        resources = list(resources)
        self.resources = resources
        groups: dict[str, list[ResourceInfo]] = {}
        for r in resources:
            groups.setdefault(r.group_version, []).append(r)
        self.group_versions = groups
        group_names = sorted({r.group for r in resources if r.group}, key=_group_order)
        self.group_docs: dict[str, bytes] = {}
        group_list = []
        for g in group_names:
            versions = sorted({r.version for r in resources if r.group == g}, key=version_order)
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
        for gv, resource_list in list(self._remote.items()):
            self.set_aggregated(gv, resource_list)

    @staticmethod
    def etag(body: bytes) -> str:
        """The quoted ETag of an aggregated document: a hash of its bytes, as upstream's."""
        return '"' + hashlib.sha512(body).hexdigest()[:64].upper() + '"'

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
            for v in sorted({r.version for r in self.resources if r.group == g}, key=version_order):
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

    # --- group-versions served by extension API servers (the aggregation layer) ------------
    def set_aggregated(self, group_version: str, resource_list: dict[str, Any] | None) -> None:
        """Publish (or, with None, withdraw) a group-version served through an APIService,
        from the backend's ``APIResourceList``: legacy ``/apis``, ``/apis/G``,
        ``/apis/G/V`` and the aggregated document. Called by ``apiserver/aggregator.py``
        when an APIService becomes available or stops being so."""
        group = group_version.rpartition("/")[0]
        if not group:
            return
        if resource_list is None:
            if self._remote.pop(group_version, None) is None:
                return
            self.resource_lists.pop(group_version, None)
        else:
            self._remote[group_version] = resource_list
            self.resource_lists[group_version] = orjson.dumps(resource_list)
        versions = sorted(
            gv.rpartition("/")[2] for gv in self._remote if gv.startswith(group + "/")
        )
        apis = orjson.loads(self.apis)
        agg = orjson.loads(self.aggregated_apis)
        apis["groups"] = [g for g in apis["groups"] if g["name"] != group]
        agg["items"] = [i for i in agg["items"] if i["metadata"]["name"] != group]
        self.group_docs.pop(group, None)
        if versions:
            gd = {
                "name": group,
                "versions": [{"groupVersion": f"{group}/{v}", "version": v} for v in versions],
                "preferredVersion": {
                    "groupVersion": f"{group}/{versions[0]}",
                    "version": versions[0],
                },
            }
            apis["groups"].append(gd)
            self.group_docs[group] = orjson.dumps({"kind": "APIGroup", "apiVersion": "v1", **gd})
            agg["items"].append(
                {
                    "metadata": {"name": group, "creationTimestamp": None},
                    "versions": [
                        _aggregated_version(v, self._remote[f"{group}/{v}"]) for v in versions
                    ],
                }
            )
        self.apis = orjson.dumps(apis)
        self.aggregated_apis = orjson.dumps(agg)


def _aggregated_version(version: str, resource_list: dict[str, Any]) -> dict[str, Any]:
    """One ``APIVersionDiscovery`` from a legacy ``APIResourceList`` (as the aggregator
    converts the discovery of extension servers that serve no aggregated form)."""
    group = resource_list.get("groupVersion", "").rpartition("/")[0]
    resources: list[dict[str, Any]] = []
    by_name: dict[str, dict[str, Any]] = {}
    for r in resource_list.get("resources") or []:
        name = r.get("name") or ""
        parent, _, sub = name.partition("/")
        kind = {
            "group": r.get("group", group),
            "version": r.get("version", version),
            "kind": r.get("kind", ""),
        }
        if sub:
            owner = by_name.get(parent)
            if owner is not None:
                owner.setdefault("subresources", []).append(
                    {"subresource": sub, "responseKind": kind, "verbs": list(r.get("verbs") or [])}
                )
            continue
        d: dict[str, Any] = {
            "resource": name,
            "responseKind": kind,
            "scope": "Namespaced" if r.get("namespaced") else "Cluster",
            "singularResource": r.get("singularName") or "",
            "verbs": list(r.get("verbs") or []),
        }
        if r.get("shortNames"):
            d["shortNames"] = list(r["shortNames"])
        if r.get("categories"):
            d["categories"] = list(r["categories"])
        by_name[name] = d
        resources.append(d)
    return {"version": version, "resources": resources, "freshness": "Current"}


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


_KUBE_VERSION = re.compile(r"^v(\d+)(?:(alpha|beta)(\d+))?$")


def version_order(version: str) -> tuple[int, int, int, str]:
    """Sort key of Kubernetes' version priority: GA before beta before alpha, higher
    numbers first, anything else last by name (so the first is the preferred version)."""
    m = _KUBE_VERSION.match(version)
    if m is None:
        return (3, 0, 0, version)
    stage = {None: 0, "beta": 1, "alpha": 2}[m.group(2)]
    return (stage, -int(m.group(1)), -int(m.group(3) or 0), "")


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
