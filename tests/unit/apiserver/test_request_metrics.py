"""``apiserver_request_duration_seconds``: upstream's labels for each request shape, the
Prometheus text, and what the API app observes over real HTTP (aiohttp's test server,
the real Registry): resource requests the handlers serve, whatever they answer, and
nothing for paths no route serves."""

from __future__ import annotations

import math
import re
from collections.abc import AsyncIterator

import orjson
import pytest
from aiohttp.test_utils import TestClient
from multidict import CIMultiDict, MultiDict

from corral.apiserver.app import APIApp
from corral.apiserver.discovery import Discovery
from corral.apiserver.openapi import OpenAPIDocs
from corral.apiserver.request import parse_path
from corral.apiserver.request_metrics import BUCKETS, RequestDurations
from corral.apiserver.store import Registry
from corral.testing.metrics import histogram_quantile, write_counts, write_latency

from .test_app_http import APITestServer

NS = "/api/v1/namespaces/default"

LABEL_CASES = [
    # (method, path, query, content type) -> (verb, dry_run, group, version, resource,
    # subresource, scope)
    ("POST", f"{NS}/pods", "", "", ("POST", "", "", "v1", "pods", "", "resource")),
    ("GET", f"{NS}/pods/p", "", "", ("GET", "", "", "v1", "pods", "", "resource")),
    ("HEAD", f"{NS}/pods/p", "", "", ("GET", "", "", "v1", "pods", "", "resource")),
    ("GET", f"{NS}/pods", "", "", ("LIST", "", "", "v1", "pods", "", "namespace")),
    ("GET", "/api/v1/pods", "", "", ("LIST", "", "", "v1", "pods", "", "cluster")),
    ("GET", "/api/v1/pods", "watch=1", "", ("WATCH", "", "", "v1", "pods", "", "cluster")),
    ("GET", "/api/v1/pods", "watch=false", "", ("LIST", "", "", "v1", "pods", "", "cluster")),
    ("GET", "/api/v1/nodes", "", "", ("LIST", "", "", "v1", "nodes", "", "cluster")),
    ("GET", "/api/v1/namespaces/x", "", "", ("GET", "", "", "v1", "namespaces", "", "resource")),
    ("PUT", f"{NS}/pods/p/status", "", "", ("PUT", "", "", "v1", "pods", "status", "resource")),
    (
        "PATCH", f"{NS}/pods/p", "", "application/apply-patch+yaml",
        ("APPLY", "", "", "v1", "pods", "", "resource"),
    ),
    (
        "PATCH", f"{NS}/pods/p", "", "application/merge-patch+json",
        ("PATCH", "", "", "v1", "pods", "", "resource"),
    ),
    ("POST", f"{NS}/pods/p/binding", "", "", ("POST", "", "", "v1", "pods", "binding", "resource")),
    ("GET", f"{NS}/pods/p/log", "", "", ("CONNECT", "", "", "v1", "pods", "log", "resource")),
    ("POST", f"{NS}/pods/p/exec", "", "", ("CONNECT", "", "", "v1", "pods", "exec", "resource")),
    ("DELETE", f"{NS}/pods", "", "", ("DELETE", "", "", "v1", "pods", "", "namespace")),
    ("POST", f"{NS}/pods", "dryRun=All", "", ("POST", "All", "", "v1", "pods", "", "resource")),
    ("POST", f"{NS}/pods", "dryRun=x", "", ("POST", "invalid", "", "v1", "pods", "", "resource")),
    (
        "POST", f"{NS}/pods", "dryRun=All&dryRun=y", "",
        ("POST", "invalid", "", "v1", "pods", "", "resource"),
    ),
    (
        "PATCH", "/apis/apps/v1/namespaces/default/deployments/d/scale", "", "",
        ("PATCH", "", "apps", "v1", "deployments", "scale", "resource"),
    ),
    # no route upstream: not observed
    ("GET", f"{NS}/configmaps/c/log", "", "", None),
    ("GET", f"{NS}/pods/p/nonsense", "", "", None),
    ("OPTIONS", f"{NS}/pods/p", "", "", None),
]  # fmt: skip


@pytest.mark.parametrize(
    ("method", "path", "query", "ct", "want"),
    LABEL_CASES,
    ids=[f"{c[0]} {c[1]}?{c[2]} {c[3]}" for c in LABEL_CASES],
)
async def test_labels_as_upstream(
    registry: Registry,
    method: str,
    path: str,
    query: str,
    ct: str,
    want: tuple[str, ...] | None,
) -> None:
    p = parse_path(path)
    assert p is not None
    info = registry.by_gvr[(p.group, p.version, p.resource)]
    q = MultiDict(tuple(kv.split("=", 1)) for kv in query.split("&") if kv)
    headers = CIMultiDict({"Content-Type": ct} if ct else {})
    assert RequestDurations().labels(method, q, headers, p, info) == want


def test_text_is_a_cumulative_histogram() -> None:
    d = RequestDurations()
    labels = ("POST", "", "", "v1", "pods", "", "resource")
    for seconds in (0.001, 0.005, 0.03, 0.7, 100.0):
        d.observe(labels, seconds)
    text = d.metrics()
    assert "# TYPE apiserver_request_duration_seconds histogram" in text
    head = (
        'component="apiserver",dry_run="",group="",resource="pods",scope="resource",'
        'subresource="",verb="POST",version="v1"'
    )
    buckets = re.findall(
        r"apiserver_request_duration_seconds_bucket\{" + re.escape(head) + r',le="([^"]+)"\} (\d+)',
        text,
    )
    assert [le for le, _ in buckets] == [f"{b:g}" for b in BUCKETS] + ["+Inf"]
    got = dict(buckets)
    # le is inclusive: 0.005 falls in the first bucket
    assert (got["0.005"], got["0.025"], got["0.05"], got["0.6"], got["0.8"]) == (
        "2",
        "2",
        "3",
        "3",
        "4",
    )
    assert (got["60"], got["+Inf"]) == ("4", "5")
    assert f"apiserver_request_duration_seconds_count{{{head}}} 5" in text
    total = float(re.search(r"_sum\{" + re.escape(head) + r"\} (\S+)", text).group(1))  # type: ignore[union-attr]
    assert total == pytest.approx(100.736)


@pytest.fixture
async def client(registry: Registry) -> AsyncIterator[TestClient]:  # type: ignore[type-arg]
    app = APIApp(
        registry,
        Discovery(registry.resources, "https://127.0.0.1:6443"),
        OpenAPIDocs(registry.resources),
        tokens=set(),
    )
    async with TestClient(APITestServer(app)) as c:
        yield c


def _counts(text: str) -> dict[str, int]:
    """verb resource subresource scope dry_run -> count."""
    out = {}
    for m in re.finditer(r"apiserver_request_duration_seconds_count\{([^}]*)\} (\d+)", text):
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
        key = " ".join(labels[k] for k in ("verb", "resource", "subresource", "scope", "dry_run"))
        out[key] = int(m.group(2))
    return out


# app.py keeps its request items under string keys (aiohttp recommends RequestKey)
@pytest.mark.filterwarnings("ignore::aiohttp.web.NotAppKeyWarning")
async def test_the_app_observes_what_the_handlers_serve(client: TestClient) -> None:  # type: ignore[type-arg]
    cm = orjson.dumps({"metadata": {"name": "c"}, "data": {"k": "v"}})
    ct = {"Content-Type": "application/json"}
    assert (await client.post(f"{NS}/configmaps", data=cm, headers=ct)).status == 201
    assert (await client.post(f"{NS}/configmaps", data=cm, headers=ct)).status == 409
    dry = await client.post(
        f"{NS}/configmaps?dryRun=All", data=cm.replace(b'"c"', b'"d"'), headers=ct
    )
    assert dry.status == 201
    assert (await client.get(f"{NS}/configmaps/c")).status == 200
    assert (await client.get(f"{NS}/configmaps/missing")).status == 404
    assert (await client.get(f"{NS}/configmaps")).status == 200
    # no route: an unknown resource, an unknown subresource, a non-resource path
    assert (await client.get(f"{NS}/nonsense")).status == 404
    assert (await client.get(f"{NS}/configmaps/c/log")).status == 404
    assert (await client.get("/version")).status == 200
    resp = await client.get("/metrics")
    assert resp.status == 200
    counts = _counts(await resp.text())
    assert counts == {
        "POST configmaps  resource ": 2,
        "POST configmaps  resource All": 1,
        "GET configmaps  resource ": 2,
        "LIST configmaps  namespace ": 1,
    }


def test_the_benchmark_reads_write_p99_from_two_scrapes() -> None:
    """``testing/metrics.py``, the benchmark's reader: write verbs only, the span's difference,
    quantiles interpolated inside a bucket as Prometheus' ``histogram_quantile``."""
    d = RequestDurations()
    post = ("POST", "", "", "v1", "pods", "", "resource")
    patch = ("PATCH", "", "", "v1", "pods", "status", "resource")
    get = ("GET", "", "", "v1", "pods", "", "resource")
    for _ in range(50):
        d.observe(post, 0.5)  # before the span: not counted
    before = d.metrics()
    for _ in range(99):
        d.observe(post, 0.003)
    d.observe(patch, 0.3)
    for _ in range(1000):
        d.observe(get, 30.0)  # reads: not counted
    lease = ("PATCH", "", "coordination.k8s.io", "v1", "leases", "", "resource")
    d.observe(lease, 0.002)
    span = write_latency(before, d.metrics())
    assert span["requests"] == 101
    # the write mix: per resource, subresources in it, reads and the time before left out
    assert write_counts(before, d.metrics()) == {"leases": 1, "pods": 100}
    # rank 99.99 of 101 falls at the top of the first bucket (0, 5 ms]
    assert span["p99_ms"] == 5.0
    assert span["p50_ms"] == pytest.approx(5 * 50.5 / 100, abs=0.1)
    # rank 99.5: half way into (5 ms, 400 ms]
    assert histogram_quantile(0.995, {0.005: 99, 0.4: 100, float("inf"): 100}) == pytest.approx(
        0.005 + 0.395 * 0.5
    )
    assert histogram_quantile(0.99, {0.005: 0, 60: 0, float("inf"): 3}) == 60  # past the last
    assert math.isnan(histogram_quantile(0.99, {0.005: 0, float("inf"): 0}))  # nothing observed
    assert math.isnan(histogram_quantile(0.99, {}))
