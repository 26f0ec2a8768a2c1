"""The test kit for Corral's own kinds (Framework, ChronosJob, App) through the
``kubernetes`` client, and the JSON walking of the "never 500" sweeps.

``CustomObjects`` types the ``CustomObjectsApi`` calls of one kind (namespaced when a
namespace is given, cluster-scoped otherwise, creating the namespace on first use);
``json_paths``/``with_value`` enumerate and replace every value of a seed object.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Callable
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


#: values of every JSON type (and none) a sweep puts in place of each field
WRONG_VALUES: list[Any] = [1, -1, 2.5, "x", True, None, [], ["x"], {}, {"x": 1}, ""]


def never_500(
    raw: Callable[..., tuple[int, Any, str]],
    url: str,
    seed: Obj,
    rnd: random.Random,
    per_path: int,
    name: Callable[[Obj, str], None] | None = None,
) -> list[str]:
    """Replace every field of ``seed`` (a full object, ``status`` included) in turn by
    ``per_path`` of ``WRONG_VALUES``; POST each body to the collection ``url`` (named by
    ``name(body, new_name)``, default ``metadata.name``), and when it is created PATCH
    the replaced ``status`` too, then DELETE it. Returns what answered 5xx."""
    bad: list[str] = []
    for i, path in enumerate(json_paths(seed)):
        if path[:2] in (("metadata", "name"), ("metadata", "namespace")) or path in (
            ("apiVersion",),
            ("kind",),
        ):
            continue
        for value in rnd.sample(WRONG_VALUES, per_path):
            body = with_value(seed, path, value)
            obj_name = f"fz-{i}-{rnd.randrange(10**6)}"
            if isinstance(body.get("metadata"), dict):
                body["metadata"]["name"] = obj_name
            if name is not None:
                name(body, obj_name)
            status, _, out = raw("POST", url, body)
            if status >= 500:
                bad.append(f"POST {path}={value!r}: {out[:300]!r}")
            if status == 201:
                s2, _, o2 = raw(
                    "PATCH",
                    f"{url}/{obj_name}/status",
                    {"status": with_value(seed, path, value).get("status")},
                    {"Content-Type": "application/merge-patch+json"},
                )
                if s2 >= 500:
                    bad.append(f"PATCH status {path}={value!r}: {o2[:300]!r}")
                raw("DELETE", f"{url}/{obj_name}")
    return bad
