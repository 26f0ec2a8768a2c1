"""Who uses what: the node table's pods charged to roles and frameworks.

The allocator (``offers/allocator.py``) registers ``UsageBook.on_pod`` in
``NodeTable.pod_listeners``; the table calls it with +1 when it accounts a pod and -1
when it releases one. A pod labelled ``api.mesos.FRAMEWORK_ID`` is a Mesos task of that
framework, in the role its ``api.mesos.ROLE`` label names (``"*"`` when absent). Any
other pod is a Kubernetes pod, charged to ``kubernetes_role`` or to the role its
namespace maps to. Keys starting with ``offer/`` are the allocator's own offer holds and
are skipped (offers are tracked apart).

Label values cannot hold every role or framework id (``"*"`` is not a valid label
value), so the master may write ``api.mesos.label_safe(x)``. Pods can also arrive before
their framework re-subscribes after a master restart. So the book keeps raw label values
and resolves them against the roles and frameworks known *now* each time a total is
asked for, caching the result until a pod event or a ``changed()`` call. The totals are
lists of three ints (cpu millicores, memory bytes, disk bytes).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from corral.api import mesos
from corral.scheduler.framework import PodInfo

HOLD_PREFIX = "offer/"
Vec3 = list[int]


def add3(a: Sequence[int] | None, b: Sequence[int] | None) -> Vec3:
    """a + b over the first three columns (None counts as zero)."""
    x = (0, 0, 0) if a is None else a
    y = (0, 0, 0) if b is None else b
    return [x[0] + y[0], x[1] + y[1], x[2] + y[2]]


class UsageBook:
    """Pod usage by role and by (framework id, role); see the module docstring."""

    def __init__(
        self,
        kubernetes_role: str,
        namespace_roles: dict[str, str],
        roles: Callable[[], Iterable[str]],
        frameworks: Callable[[], Iterable[str]],
    ) -> None:
        self._k8s = kubernetes_role
        self._ns_roles = namespace_roles
        self._roles = roles
        self._frameworks = frameworks
        #: (framework label or "", role key) -> [cpu, mem, disk, pod count]
        self._raw: dict[tuple[str, str], list[int]] = {}
        self._version = 0
        self._cached_version = -1
        self._cached: tuple[dict[str, Vec3], dict[tuple[str, str], Vec3]] = ({}, {})

    def on_pod(self, pod: PodInfo, node: str, sign: int) -> None:
        """The table's pod listener."""
        if pod.key.startswith(HOLD_PREFIX):
            return
        fkey = pod.labels.get(mesos.FRAMEWORK_ID, "")
        if fkey:
            rkey = pod.labels.get(mesos.ROLE) or "*"
        else:
            rkey = self._ns_roles.get(pod.namespace, self._k8s)
        entry = self._raw.get((fkey, rkey))
        if entry is None:
            entry = self._raw[(fkey, rkey)] = [0, 0, 0, 0]
        req = pod.requests
        entry[0] += sign * int(req[0])
        entry[1] += sign * int(req[1])
        entry[2] += sign * int(req[2])
        entry[3] += sign
        if entry[3] <= 0:
            del self._raw[(fkey, rkey)]
        self._version += 1

    def changed(self) -> None:
        """The known roles or frameworks changed: resolve the labels again."""
        self._version += 1

    def totals(self) -> tuple[dict[str, Vec3], dict[tuple[str, str], Vec3]]:
        """(usage by role, usage by (framework id, role)); do not mutate."""
        if self._cached_version == self._version:
            return self._cached
        role_of: dict[str, str] = {}
        for r in self._roles():
            role_of[mesos.label_safe(r)] = r
            role_of[r] = r
        fid_of = {mesos.label_safe(f): f for f in self._frameworks()}
        by_role: dict[str, Vec3] = {}
        by_fw: dict[tuple[str, str], Vec3] = {}
        for (fkey, rkey), v in self._raw.items():
            role = role_of.get(rkey, rkey)
            by_role[role] = add3(by_role.get(role), v)
            if fkey:
                k = (fid_of.get(fkey, fkey), role)
                by_fw[k] = add3(by_fw.get(k), v)
        self._cached = (by_role, by_fw)
        self._cached_version = self._version
        return self._cached
