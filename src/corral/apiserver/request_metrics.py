"""``apiserver_request_duration_seconds``: upstream's request latency histogram.

Kubernetes' API server observes every request its REST routes serve in this STABLE
histogram (``k8s.io/apiserver/pkg/endpoints/metrics``), labelled ``verb``, ``dry_run``,
``group``, ``version``, ``resource``, ``subresource``, ``scope`` and ``component``, with
upstream's 23 buckets from 5 ms to 60 s; the API call latency SLO (p99 <= 1 s for
single-object mutating calls) and scheduler_perf's write p99 are read from it.

Who calls it: ``APIApp.route`` computes a request's labels with ``request_labels`` once
it has found the resource row (a tuple of strings that already exist: no string is
built per request) and leaves them in the request; the middleware observes the seconds
from its start to the answer written (a request holding an APF seat) or handed back to
aiohttp (exempt requests and errors: the final write of a small answer is not counted)
with ``RequestDurations.observe``: one dict lookup, one bisect, two additions. ``/metrics``
renders the text (``RequestDurations.metrics``).

What is observed, as upstream: resource requests that reach the resource handlers,
whatever they answer (a 404 for a missing object, a 409, a 422 all count). Requests
refused before (401, 403, 429), paths no route serves (an unknown resource or
subresource, an unknown method) and non-resource paths are not. As upstream, WATCH
(its whole duration) and CONNECT (``log``, ``exec``, ``attach``, ``portforward``,
``proxy``) requests are observed too: the SLO queries exclude them by label
(``verb!~"WATCH|CONNECT"``), so must readers of this histogram.

Labels, as upstream's ``MonitorRequest``: the verb is the HTTP method, GET (and HEAD) a
LIST unless the scope is ``resource``, WATCH when ``watch`` is true, APPLY for a PATCH
whose Content-Type is ``application/apply-patch+yaml``, CONNECT for the connect
subresources; ``dry_run`` is ``All`` or ``invalid`` or empty; the scope is ``resource``
for a named object or a create, ``namespace`` for a collection in a namespace,
``cluster`` otherwise; ``component`` is ``apiserver``.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Mapping

from multidict import MultiMapping

from corral.apiserver.registry.base import ResourceInfo
from corral.apiserver.request import PathInfo

NAME = "apiserver_request_duration_seconds"
HELP = (
    "[STABLE] Response latency distribution in seconds for each verb, dry run value, "
    "group, version, resource, subresource, scope and component."
)
#: upstream's buckets (seconds)
BUCKETS: tuple[float, ...] = (
    0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2, 3,
    4, 5, 6, 8, 10, 15, 20, 30, 45, 60,
)  # fmt: skip
#: the ``le`` values as Prometheus' Go client prints them, then ``+Inf``
_LE = (*(f"{b:g}" for b in BUCKETS), "+Inf")
COMPONENT = "apiserver"
APPLY_CONTENT_TYPE = "application/apply-patch+yaml"
#: upstream's ``validConnectRequests``
CONNECT_SUBRESOURCES = frozenset({"log", "exec", "portforward", "attach", "proxy"})
#: the subresources ``handlers.py`` serves beyond status, scale and a row's own
_POD_SUBRESOURCES = frozenset(
    {"binding", "eviction", "log", "exec", "attach", "ephemeralcontainers", "portforward"}
)
_FIXED_SUBRESOURCES = {("", "pods"): _POD_SUBRESOURCES, ("", "namespaces"): frozenset({"finalize"})}
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"})

#: rows whose subresources are remembered before the memo starts over
KNOWN_ROWS = 4096
#: (verb, dry_run, group, version, resource, subresource, scope)
Labels = tuple[str, str, str, str, str, str, str]


def subresources(info: ResourceInfo) -> frozenset[str]:
    """The subresources the handlers serve for ``info``'s row."""
    names = set(_FIXED_SUBRESOURCES.get((info.group, info.plural), ()))
    if info.strategy.has_status:
        names.add("status")
    if info.scale is not None:
        names.add("scale")
    names.update(info.strategy.update_subresources)
    names.update(extra[0] for extra in info.extra_subresources)
    return frozenset(names)


def _truthy(value: str) -> bool:
    """Upstream's bool query parameter: all but "0" and "false" (any case)."""
    return value.lower() not in ("false", "0")


def dry_run_label(query: MultiMapping[str]) -> str:
    """Upstream's ``cleanDryRun``: "" without ``dryRun``, "All" when every value is
    ``All``, "invalid" otherwise."""
    values = query.getall("dryRun", ())
    if not values:
        return ""
    return "All" if all(v == "All" for v in values) else "invalid"


def request_labels(
    method: str,
    query: MultiMapping[str],
    headers: Mapping[str, str],
    p: PathInfo,
    info: ResourceInfo,
    known: frozenset[str],
) -> Labels | None:
    """The labels of a request for ``info``'s row at ``p`` (``known``: the row's
    ``subresources``); None for what upstream has no route for (an unknown method or
    subresource): not observed."""
    if method not in _METHODS or (p.subresource and p.subresource not in known):
        return None
    sub = p.subresource
    if p.name or method == "POST":
        scope = "resource"
    elif p.namespaced_path:
        scope = "namespace"
    else:
        scope = "cluster"
    if method in ("GET", "HEAD"):
        watch = query.get("watch")
        if watch is not None and _truthy(watch):
            verb = "WATCH"
        else:
            verb = "GET" if scope == "resource" else "LIST"
    elif method == "PATCH" and headers.get("Content-Type") == APPLY_CONTENT_TYPE:
        verb = "APPLY"
    else:
        verb = method
    if sub in CONNECT_SUBRESOURCES:
        verb = "CONNECT"
    dry = dry_run_label(query) if "dryRun" in query else ""
    return (verb, dry, info.group, info.version, info.plural, sub, scope)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class RequestDurations:
    """The histogram: per label set, counts per bucket (not cumulative; the last one
    past 60 s) and the sum of the seconds observed."""

    def __init__(self) -> None:
        self._series: dict[Labels, list[float]] = {}
        #: id(row) -> (the row, its ``subresources``); a CRD's row is replaced when its
        #: subresources change, so it is told apart by identity, not by name
        self._known: dict[int, tuple[ResourceInfo, frozenset[str]]] = {}

    def labels(
        self,
        method: str,
        query: MultiMapping[str],
        headers: Mapping[str, str],
        p: PathInfo,
        info: ResourceInfo,
    ) -> Labels | None:
        """``request_labels`` with the row's subresources remembered."""
        known = self._known.get(id(info))
        if known is None or known[0] is not info:
            if len(self._known) >= KNOWN_ROWS:
                self._known.clear()
            known = self._known[id(info)] = (info, subresources(info))
        return request_labels(method, query, headers, p, info, known[1])

    def observe(self, labels: Labels, seconds: float) -> None:
        series = self._series.get(labels)
        if series is None:
            series = self._series[labels] = [0.0] * (len(BUCKETS) + 2)
        series[bisect_left(BUCKETS, seconds)] += 1
        series[-1] += seconds

    def metrics(self) -> str:
        """Prometheus text: HELP, TYPE, then per label set its cumulative buckets, sum
        and count (labels in the Go client's order, by name)."""
        lines = [f"# HELP {NAME} {HELP}", f"# TYPE {NAME} histogram"]
        for labels in sorted(self._series):
            verb, dry, group, version, resource, sub, scope = map(_escape, labels)
            head = (
                f'component="{COMPONENT}",dry_run="{dry}",group="{group}",'
                f'resource="{resource}",scope="{scope}",subresource="{sub}",'
                f'verb="{verb}",version="{version}"'
            )
            series = self._series[labels]
            total = 0
            for le, count in zip(_LE, series[:-1], strict=True):
                total += int(count)
                lines.append(f'{NAME}_bucket{{{head},le="{le}"}} {total}')
            lines.append(f"{NAME}_sum{{{head}}} {series[-1]!r}")
            lines.append(f"{NAME}_count{{{head}}} {total}")
        return "\n".join(lines) + "\n"
