"""The test kit for Corral's own kinds (Framework, ChronosJob, App) through the
``kubernetes`` client, and the JSON walking of the "never 500" sweeps.

``CustomObjects`` types the ``CustomObjectsApi`` calls of one kind (namespaced when a
namespace is given, cluster-scoped otherwise, creating the namespace on first use);
``json_paths``/``with_value`` enumerate and replace every value of a seed object.
"""

from __future__ import annotations

import copy
from typing import Any, cast

from kubernetes import client
from kubernetes.client.exceptions import ApiException

Obj = dict[str, Any]


class CustomObjects:
    """``CustomObjectsApi`` for ``group/version`` ``plural`` in ``namespace`` (or none)."""

    def __init__(
        self,
        api_client: client.ApiClient,
        group: str,
        version: str,
        plural: str,
        namespace: str = "",
    ) -> None:
        self.api = client.CustomObjectsApi(api_client)
        self.gvp = (group, version, plural)
        self.ns = namespace
        if namespace:
            try:
                core = client.CoreV1Api(api_client)
                core.create_namespace(cast(Any, {"metadata": {"name": namespace}}))
            except ApiException as e:
                assert e.status == 409

    def create_body(self, body: Obj) -> Obj:
        g, v, p = self.gvp
        if self.ns:
            return cast(Obj, self.api.create_namespaced_custom_object(g, v, self.ns, p, body))
        return cast(Obj, self.api.create_cluster_custom_object(g, v, p, body))

    def list(self) -> Obj:
        g, v, p = self.gvp
        if self.ns:
            return cast(Obj, self.api.list_namespaced_custom_object(g, v, self.ns, p))
        return cast(Obj, self.api.list_cluster_custom_object(g, v, p))

    def list_all(self) -> Obj:
        g, v, p = self.gvp
        return cast(Obj, self.api.list_cluster_custom_object(g, v, p))

    def get(self, name: str) -> Obj:
        g, v, p = self.gvp
        if self.ns:
            return cast(Obj, self.api.get_namespaced_custom_object(g, v, self.ns, p, name))
        return cast(Obj, self.api.get_cluster_custom_object(g, v, p, name))

    def patch(self, name: str, body: Obj) -> Obj:
        g, v, p = self.gvp
        if self.ns:
            return cast(Obj, self.api.patch_namespaced_custom_object(g, v, self.ns, p, name, body))
        return cast(Obj, self.api.patch_cluster_custom_object(g, v, p, name, body))

    def patch_status(self, name: str, body: Obj) -> Obj:
        g, v, p = self.gvp
        api = self.api
        if self.ns:
            return cast(
                Obj, api.patch_namespaced_custom_object_status(g, v, self.ns, p, name, body)
            )
        return cast(Obj, api.patch_cluster_custom_object_status(g, v, p, name, body))

    def delete(self, name: str) -> None:
        g, v, p = self.gvp
        if self.ns:
            self.api.delete_namespaced_custom_object(g, v, self.ns, p, name)
        else:
            self.api.delete_cluster_custom_object(g, v, p, name)

    def exists(self, name: str) -> bool:
        try:
            self.get(name)
        except ApiException as e:
            assert e.status == 404
            return False
        return True


def json_paths(obj: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path (keys and list indexes) to a value inside ``obj``, parents first."""
    out = [prefix] if prefix else []
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += json_paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += json_paths(v, (*prefix, i))
    return out


def with_value(obj: Any, path: tuple[Any, ...], value: Any) -> Any:
    """A deep copy of ``obj`` with the value at ``path`` replaced by ``value``."""
    out = copy.deepcopy(obj)
    cur = out
    for p in path[:-1]:
        cur = cur[p]
    cur[path[-1]] = value
    return out
