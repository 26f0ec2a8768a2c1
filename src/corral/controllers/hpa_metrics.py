"""Where the HPA controller's numbers come from: the scale target's resource (a
RESTMapper look-up through discovery) and pods' usage from the resource metrics API.

``ScaleTargets.resolve`` maps a ``scaleTargetRef`` (apiVersion, kind) to the resource
whose ``/scale`` is read and written, as upstream's RESTMapper does: any kind the API
serves with a scale subresource (Deployments, ReplicaSets, StatefulSets,
ReplicationControllers, custom resources), found in the ref's group-version or the
group's preferred one; found kinds are kept, misses for ``MAPPING_MISS_TTL`` (a CRD may
come). ``fetch_pod_metrics`` is the REST metrics client's ``GetResourceMetric``: ``GET
/apis/metrics.k8s.io/v1beta1/namespaces/NS/pods?labelSelector=SEL`` summed per pod (or
one container), with upstream's error texts. Called by ``controllers/hpa.py``.
"""

from __future__ import annotations

import aiohttp

from corral.api.errors import StatusError
from corral.api.quantity import milli_value
from corral.client.rest import Client, Resource
from corral.controllers.hpa_algorithm import PodMetric, ReplicaCalcError
from corral.controllers.nodelifecycle import parse_duration
from corral.util.clock import Clock, parse_rfc3339

METRICS_PATH = "/apis/metrics.k8s.io/v1beta1/namespaces/{ns}/pods"
NOT_FOUND_TEXT = "the server could not find the requested resource"
#: how long a failed kind look-up is remembered (a CRD may be created meanwhile)
MAPPING_MISS_TTL = 10.0


class MappingError(Exception):
    """The scale target's kind cannot be resolved to a resource (text as upstream's)."""


class ScaleTargets:
    """Kinds to resources, through discovery, cached."""

    def __init__(self, client: Client, clock: Clock) -> None:
        self.client = client
        self.clock = clock
        #: (apiVersion, kind) -> (resource or None, until when a miss is believed)
        self._mappings: dict[tuple[str, str], tuple[Resource | None, float]] = {}

    async def resolve(self, api_version: str, kind: str) -> Resource:
        """The resource of ``kind`` in ``api_version``'s group (a RESTMapper look-up)."""
        group, _, version = api_version.rpartition("/")
        if api_version.count("/") > 1 or not version:
            raise MappingError(f"unexpected GroupVersion string: {api_version}")
        cache_key = (api_version, kind)
        hit = self._mappings.get(cache_key)
        if hit is not None and (hit[0] is not None or hit[1] > self.clock.monotonic()):
            if hit[0] is None:
                raise MappingError(f'no matches for kind "{kind}" in group "{group}"')
            return hit[0]
        found: Resource | None = None
        versions = [version]
        if group:
            try:
                doc = await self.client.request("GET", f"/apis/{group}")
                preferred = ((doc or {}).get("preferredVersion") or {}).get("version")
                if preferred and preferred != version:
                    versions.append(preferred)
            except StatusError:
                pass
        for v in versions:
            path = f"/apis/{group}/{v}" if group else f"/api/{v}"
            try:
                doc = await self.client.request("GET", path)
            except StatusError as e:
                if e.code == 404:
                    continue
                raise
            for r in (doc or {}).get("resources") or ():
                if r.get("kind") == kind and "/" not in str(r.get("name", "")):
                    found = Resource(group, v, str(r["name"]), bool(r.get("namespaced", True)))
                    break
            if found is not None:
                break
        self._mappings[cache_key] = (found, self.clock.monotonic() + MAPPING_MISS_TTL)
        if found is None:
            raise MappingError(f'no matches for kind "{kind}" in group "{group}"')
        return found


async def fetch_pod_metrics(
    client: Client, namespace: str, selector: str, resource: str, container: str
) -> dict[str, PodMetric]:
    """The REST metrics client's ``GetResourceMetric``: usage by pod name (milli)."""
    params = {"labelSelector": selector} if selector else None
    try:
        body = await client.request(
            "GET", METRICS_PATH.format(ns=namespace), params=params, timeout=30
        )
    except StatusError as e:
        text = e.message
        if e.code == 404 and text == NOT_FOUND_TEXT:
            text += " (get pods.metrics.k8s.io)"
        raise ReplicaCalcError(
            f"unable to fetch metrics from resource metrics API: {text}"
        ) from None
    except (aiohttp.ClientError, TimeoutError) as e:
        raise ReplicaCalcError(f"unable to fetch metrics from resource metrics API: {e}") from None
    items = [i for i in (body or {}).get("items") or () if isinstance(i, dict)]
    if not items:
        raise ReplicaCalcError("no metrics returned from resource metrics API")
    out: dict[str, PodMetric] = {}
    for m in items:
        meta = m.get("metadata") or {}
        name = str(meta.get("name", ""))
        try:
            ts = parse_rfc3339(str(m.get("timestamp") or ""))
        except ValueError:
            ts = 0.0
        try:
            window = parse_duration(str(m.get("window") or "0"))
        except ValueError:
            window = 0.0
        containers = [c for c in m.get("containers") or () if isinstance(c, dict)]
        if container:
            match = next((c for c in containers if c.get("name") == container), None)
            if match is None:
                raise ReplicaCalcError(
                    f"failed to get container metrics: container {container} not present "
                    f"in metrics for pod {meta.get('namespace', namespace)}/{name}"
                )
            usage = (match.get("usage") or {}).get(resource)
            if usage is not None:
                out[name] = PodMetric(milli_value(str(usage)), ts, window)
            continue
        total, missing = 0, not containers
        for c in containers:
            usage = (c.get("usage") or {}).get(resource)
            if usage is None:
                missing = True
                break
            total += milli_value(str(usage))
        if not missing:
            out[name] = PodMetric(total, ts, window)
    return out


__all__ = ["MappingError", "ScaleTargets", "fetch_pod_metrics"]
