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
from corral.apiserver.reviews import REVIEW_ROWS

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
#: the versionPriority of this server's own versions, against an APIService's
#: (kube-apiserver gives most built-in group-versions 15)
LOCAL_VERSION_PRIORITY = 15


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
        #: group-version -> (APIResourceList or None, versionPriority, fresh) of the
        #: group-versions of extension API servers (``set_aggregated``)
        self._remote: dict[str, tuple[dict[str, Any] | None, int, bool]] = {}
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
        # the access reviews are served (create only) but not stored: not registry rows
        resources = list(resources) + [r for r in REVIEW_ROWS if r not in resources]
        self.resources = resources
        groups: dict[str, list[ResourceInfo]] = {}
        for r in resources:
            groups.setdefault(r.group_version, []).append(r)
        self.group_versions = groups
        custom = frozenset({r.group for r in resources if not r.strategy.typed}) - {
            r.group for r in resources if r.strategy.typed
        }
        group_names = sorted(
            {r.group for r in resources if r.group}, key=lambda g: _group_order(g, custom)
        )
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
        #: the documents of this server's own group-versions, which ``_merge_remote``
        #: combines with the extension servers' ones
        self._local = (self.apis, self.aggregated_apis, dict(self.group_docs))
        self._local_lists = dict(self.resource_lists)
        self._merge_remote()

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
    def set_aggregated(
        self,
        group_version: str,
        resource_list: dict[str, Any] | None,
        *,
        version_priority: int = 0,
        fresh: bool = True,
    ) -> None:
        """Publish a group-version served through an APIService, from the backend's
        ``APIResourceList``, in legacy ``/apis``, ``/apis/G``, ``/apis/G/V`` and the
        aggregated document; its versions are merged with this server's own versions
        of the group (ordered by ``versionPriority``, then Kubernetes version priority).
        ``fresh=False`` (the APIService is not available): still listed, as upstream,
        with ``freshness: Stale`` and the last resources seen (kubectl then warns that
        the server is unable to handle the request). ``resource_list=None`` with
        ``fresh=True`` withdraws it (the APIService is gone), restoring any local
        group-version it replaced. Called by ``apiserver/aggregator.py``."""
        group = group_version.rpartition("/")[0]
        if not group:
            return
        if resource_list is None and fresh:
            if self._remote.pop(group_version, None) is None:
                return
        else:
            old = self._remote.get(group_version)
            if resource_list is None and old is not None:
                resource_list = old[0]
            self._remote[group_version] = (resource_list, version_priority, fresh)
        self._merge_remote()

    def _merge_remote(self) -> None:
        """The documents: this server's own, with the remote group-versions merged in."""
        apis_bytes, agg_bytes, group_docs = self._local
        self.group_docs = dict(group_docs)
        self.resource_lists = dict(self._local_lists)
        if not self._remote:
            self.apis, self.aggregated_apis = apis_bytes, agg_bytes
            return
        apis, agg = orjson.loads(apis_bytes), orjson.loads(agg_bytes)
        local_groups = {g["name"]: g for g in apis["groups"]}
        local_items = {i["metadata"]["name"]: i for i in agg["items"]}
        remote_groups: dict[str, list[str]] = {}
        for gv in self._remote:
            remote_groups.setdefault(gv.rpartition("/")[0], []).append(gv.rpartition("/")[2])
        for group, remote_versions in remote_groups.items():
            entries: dict[str, tuple[int, Any]] = {}  # version -> (priority, aggregated entry)
            for v in local_groups[group]["versions"] if group in local_groups else []:
                version = v["version"]
                item = local_items[group]
                entries[version] = (
                    LOCAL_VERSION_PRIORITY,
                    next(x for x in item["versions"] if x["version"] == version),
                )
            for version in remote_versions:
                gv = f"{group}/{version}"
                resource_list, priority, fresh = self._remote[gv]
                entry = _aggregated_version(version, resource_list or {"groupVersion": gv})
                if not fresh:
                    entry["freshness"] = "Stale"
                entries[version] = (priority, entry)
                if fresh and resource_list is not None:
                    self.resource_lists[gv] = orjson.dumps(resource_list)
                else:
                    self.resource_lists.pop(gv, None)
            order = sorted(entries, key=lambda v: (-entries[v][0], version_order(v)))
            gd = {
                "name": group,
                "versions": [{"groupVersion": f"{group}/{v}", "version": v} for v in order],
                "preferredVersion": {"groupVersion": f"{group}/{order[0]}", "version": order[0]},
            }
            item = {
                "metadata": {"name": group, "creationTimestamp": None},
                "versions": [entries[v][1] for v in order],
            }
            if group in local_groups:
                apis["groups"] = [gd if g["name"] == group else g for g in apis["groups"]]
                agg["items"] = [item if i["metadata"]["name"] == group else i for i in agg["items"]]
            else:
                apis["groups"].append(gd)
                agg["items"].append(item)
            self.group_docs[group] = orjson.dumps({"kind": "APIGroup", "apiVersion": "v1", **gd})
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


#: upstream's group priorities (kube-aggregator's apiVersionPriorities), highest first;
#: ties (admissionregistration/apiextensions) by name
_ORDER = [
    "apiregistration.k8s.io",
    "apps",
    "events.k8s.io",
    "authentication.k8s.io",
    "authorization.k8s.io",
    "autoscaling",
    "batch",
    "certificates.k8s.io",
    "networking.k8s.io",
    "policy",
    "rbac.authorization.k8s.io",
    "storage.k8s.io",
    "admissionregistration.k8s.io",
    "apiextensions.k8s.io",
    "scheduling.k8s.io",
    "coordination.k8s.io",
    "node.k8s.io",
    "discovery.k8s.io",
    "flowcontrol.apiserver.k8s.io",
]


def _group_order(g: str, custom: frozenset[str] = frozenset()) -> tuple[int, int, str]:
    """Upstream's groups first in their order, then Corral's own, then the groups only
    CRDs serve (priority 1000 upstream: below every built-in), each by name."""
    if g in _ORDER:
        return (0, _ORDER.index(g), g)
    return (2 if g in custom else 1, 0, g)


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
