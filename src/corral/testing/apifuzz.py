"""Fuzz the API server with schemathesis against its own OpenAPI v3 documents.

``bench/fuzz_api.py`` (``make fuzz``: 10,000+ requests, RSS before and after) and
``tests/integration/test_fuzz_api.py`` (a few hundred) drive a running ``corral server``
through :func:`fuzz`: every operation of the served documents (``/openapi/v3/api/v1``,
``/openapi/v3/apis/apps/v1``) gets bodies, path and query parameters generated from its
schema, in schemathesis' positive mode (values the schema allows) and negative mode
(values it does not), round after round until the request budget is spent.

Generation is steered only where a random value would test nothing or break the run:
namespaced paths use the dedicated fuzz namespaces (never ``default``), half the
``{name}`` parameters and created ``metadata.name`` values come from a small pool so
that reads, updates, patches, scales and deletes meet objects that exist (valid seeds of
every kind are created there at the start of each round), the namespaces that
``/namespaces/{name}`` may touch are the pool's, and a watch gets ``timeoutSeconds=1``.

Checks on every answer (Kubernetes' spec declares only its success codes, and errors are
``Status`` objects that the spec does not describe): no 5xx (``not_a_server_error``);
a declared success answer conforms to its schema (``response_schema_conformance``, not
for watch streams); an error answer is a ``meta/v1`` Status whose ``code`` is the HTTP
status; no request waits past its timeout; no connection is refused or reset.
:func:`cleanup` deletes what the run created, finalizers and namespaces included.
"""

from __future__ import annotations

import copy
import json
import random
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

Obj = dict[str, Any]

#: the OpenAPI v3 documents fuzzed by default: the core and apps groups
DOCUMENTS = ("api/v1", "apis/apps/v1")
#: names the fuzzer gives half its ``{name}`` parameters and created objects
NAME_POOL = ("fz-0", "fz-1", "fz-2")
#: namespaces that ``/api/v1/namespaces/{name}`` operations may touch
VICTIM_NAMESPACES = ("fuzz-victim-0", "fuzz-victim-1")
PROTECTED_NAMESPACES = frozenset({"default", "kube-system", "kube-public", "kube-node-lease"})

_TEMPLATE = {
    "metadata": {"labels": {"app": "fz"}},
    "spec": {"containers": [{"name": "c", "image": "busybox"}]},
}
_SELECTOR = {"matchLabels": {"app": "fz"}}
#: one valid object per kind the fuzzed groups serve: (api prefix, plural, body)
SEEDS: tuple[tuple[str, str, Obj], ...] = (
    ("/api/v1", "pods", {"spec": {"containers": [{"name": "c", "image": "busybox"}]}}),
    ("/api/v1", "services", {"spec": {"ports": [{"port": 80}], "selector": {"app": "fz"}}}),
    ("/api/v1", "configmaps", {"data": {"k": "v"}}),
    ("/api/v1", "secrets", {"stringData": {"k": "v"}}),
    ("/api/v1", "serviceaccounts", {}),
    ("/api/v1", "endpoints", {"subsets": [{"addresses": [{"ip": "10.0.0.1"}]}]}),
    ("/api/v1", "events", {"involvedObject": {"kind": "Pod", "name": "fz-0"}, "reason": "R"}),
    ("/api/v1", "limitranges", {"spec": {"limits": [{"type": "Container"}]}}),
    ("/api/v1", "resourcequotas", {"spec": {"hard": {"pods": "10"}}}),
    (
        "/api/v1",
        "persistentvolumeclaims",
        {
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Gi"}},
            }
        },
    ),
    ("/api/v1", "podtemplates", {"template": _TEMPLATE}),
    (
        "/api/v1",
        "replicationcontrollers",
        {"spec": {"replicas": 0, "selector": {"app": "fz"}, "template": _TEMPLATE}},
    ),
    (
        "/apis/apps/v1",
        "deployments",
        {"spec": {"replicas": 0, "selector": _SELECTOR, "template": _TEMPLATE}},
    ),
    (
        "/apis/apps/v1",
        "replicasets",
        {"spec": {"replicas": 0, "selector": _SELECTOR, "template": _TEMPLATE}},
    ),
    (
        "/apis/apps/v1",
        "statefulsets",
        {
            "spec": {
                "replicas": 0,
                "serviceName": "fz",
                "selector": _SELECTOR,
                "template": _TEMPLATE,
            }
        },
    ),
    ("/apis/apps/v1", "daemonsets", {"spec": {"selector": _SELECTOR, "template": _TEMPLATE}}),
    ("/apis/apps/v1", "controllerrevisions", {"revision": 1}),
)
#: cluster-scoped kinds the fuzzer can create: everything of them is removed afterwards
CLUSTER_SEEDS: tuple[tuple[str, Obj], ...] = (
    ("nodes", {}),
    (
        "persistentvolumes",
        {
            "spec": {
                "capacity": {"storage": "1Gi"},
                "accessModes": ["ReadWriteOnce"],
                "hostPath": {"path": "/tmp/fz"},
            }
        },
    ),
)


@dataclass(frozen=True)
class Target:
    """A running API server: its URL, a token allowed everything, its CA bundle."""

    url: str
    token: str
    ca_file: str


@dataclass
class FuzzResult:
    """What a run sent and found; ``failures`` groups identical findings."""

    sent: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    operations: int = 0
    failures: dict[tuple[str, str, str], Obj] = field(default_factory=dict)
    duration_s: float = 0.0

    def fail(self, operation: str, check: str, message: str, status: int, curl: str) -> None:
        key = (operation, check, message.splitlines()[0][:160] if message else "")
        found = self.failures.setdefault(
            key,
            {"operation": operation, "check": check, "status": status, "count": 0},
        )
        found["count"] += 1
        found.setdefault("message", message[:600])
        found.setdefault("reproduce", curl[:1500])

    def report(self) -> Obj:
        return {
            "requests_sent": self.sent,
            "operations": self.operations,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "failures": sum(f["count"] for f in self.failures.values()),
            "distinct_failures": list(self.failures.values()),
            "duration_s": round(self.duration_s, 1),
        }


class Client:
    """A keep-alive ``requests`` session with the target's token and CA."""

    def __init__(self, target: Target, timeout: float = 10.0) -> None:
        import requests

        self.target = target
        self.timeout = timeout
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {target.token}"

    def __call__(
        self, method: str, path: str, body: Any = None, ctype: str = "application/json"
    ) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body)
        resp = self.session.request(
            method,
            self.target.url + path,
            data=data,
            headers={"Content-Type": ctype},
            timeout=self.timeout,
            verify=self.target.ca_file,  # per request: REQUESTS_CA_BUNDLE would beat the session's
        )
        try:
            return resp.status_code, resp.json()
        except ValueError:
            return resp.status_code, resp.text

    def close(self) -> None:
        self.session.close()


def load_documents(client: Client, documents: Iterable[str] = DOCUMENTS) -> list[Obj]:
    """The server's own OpenAPI v3 documents, fetched as the fuzzer's client."""
    docs = []
    for doc in documents:
        status, body = client("GET", f"/openapi/v3/{doc}")
        if status != 200 or not isinstance(body, dict):
            raise RuntimeError(f"GET /openapi/v3/{doc}: {status}")
        docs.append(body)
    return docs


def seed_objects(client: Client, namespaces: Iterable[str]) -> None:
    """Create the namespaces, the victim namespaces and a valid object of every kind
    named ``fz-0`` in each namespace (an existing one is left as it is)."""
    for ns in (*namespaces, *VICTIM_NAMESPACES):
        client("POST", "/api/v1/namespaces", {"metadata": {"name": ns}})
    for ns in namespaces:
        for prefix, plural, body in SEEDS:
            obj = {
                **copy.deepcopy(body),
                "metadata": {"name": NAME_POOL[0], "labels": {"app": "fz"}},
            }
            client("POST", f"{prefix}/namespaces/{ns}/{plural}", obj)
    for plural, body in CLUSTER_SEEDS:
        client(
            "POST", f"/api/v1/{plural}", {**copy.deepcopy(body), "metadata": {"name": NAME_POOL[0]}}
        )


def _steer(case: Any, rnd: random.Random) -> bool:
    """Point a generated case at the pool (see the module docstring); True for a watch."""
    params = case.path_parameters
    if params is not None and "name" in params:
        if case.operation.path.startswith("/api/v1/namespaces/{name}"):
            if rnd.random() < 0.6 or params["name"] in PROTECTED_NAMESPACES:
                params["name"] = rnd.choice(VICTIM_NAMESPACES)
        elif rnd.random() < 0.5:
            params["name"] = rnd.choice(NAME_POOL)
    body = case.body
    if case.method.upper() == "POST" and isinstance(body, dict) and rnd.random() < 0.5:
        if case.operation.path == "/api/v1/namespaces":
            name = rnd.choice(VICTIM_NAMESPACES)
        else:
            name = rnd.choice(NAME_POOL)
        meta = body.get("metadata")
        body["metadata"] = {**meta, "name": name} if isinstance(meta, dict) else {"name": name}
    query = case.query
    if query and "watch" in query:
        query["timeoutSeconds"] = 1
        return True
    return False


def _is_status(body: Any, code: int) -> bool:
    return (
        isinstance(body, dict)
        and body.get("kind") == "Status"
        and body.get("apiVersion") == "v1"
        and body.get("code") == code
    )


def _run_case(
    case: Any, client: Client, result: FuzzResult, rnd: random.Random, checks: list[Any]
) -> None:
    import requests
    from schemathesis.core.failures import FailureGroup

    watch = _steer(case, rnd)
    target = client.target
    label = case.operation.label
    try:
        resp = case.call(
            base_url=target.url,
            session=client.session,
            headers={"Authorization": f"Bearer {target.token}"},
            verify=target.ca_file,
            timeout=client.timeout,
        )
    except requests.Timeout:
        result.sent += 1
        result.fail(label, "timeout", f"no answer within {client.timeout}s", 0, _curl(case, target))
        return
    except requests.ConnectionError as e:
        result.sent += 1
        result.fail(label, "connection", str(e), 0, _curl(case, target))
        return
    result.sent += 1
    code = resp.status_code
    result.statuses[code] += 1
    body = _json(resp.content)
    kind = body.get("kind") if isinstance(body, dict) else None
    # upstream's spec says a DELETE answers a Status, but a deletion that waits (grace,
    # finalizers, orphaning) answers the object and a collection's the deleted list, as
    # upstream's server does: that body is checked to be of the operation's kind instead
    gvk = case.operation.definition.raw.get("x-kubernetes-group-version-kind") or {}
    pending = case.method.upper() == "DELETE" and code < 300 and kind != "Status"
    if pending and kind not in (gvk.get("kind"), f"{gvk.get('kind')}List"):
        msg = f"DELETE answered a {kind}, neither a Status nor a {gvk.get('kind')}(List)"
        result.fail(label, "delete_body_kind", msg, code, _curl(case, target))
    # pods/binding and pods/eviction answer a Status Success, as upstream's server does,
    # where upstream's spec names the Binding and the Eviction
    success = code < 300 and kind == "Status" and body.get("status") == "Success"
    loose = watch or pending or success
    try:
        case.validate_response(resp, checks=checks[:1] if loose else checks)
    except FailureGroup as group:
        for failure in group.exceptions:
            result.fail(label, failure.title, failure.message, code, _curl(case, target))
    if code >= 400 and not _is_status(body, code):
        msg = f"{code} answer is not a Status with code {code}: {resp.content[:200]!r}"
        result.fail(label, "error_is_status", msg, code, _curl(case, target))


def _nullable_times(doc: Obj) -> Obj:
    """``doc`` with ``meta/v1`` Time and MicroTime nullable: upstream's server writes a
    zero time as ``null`` (a condition's ``lastProbeTime``), which its spec omits."""
    for name, node in (doc.get("components") or {}).get("schemas", {}).items():
        if name.endswith((".meta.v1.Time", ".meta.v1.MicroTime")):
            node["nullable"] = True
    return doc


def _json(content: bytes) -> Any:
    try:
        return json.loads(content)
    except ValueError:
        return None


def _curl(case: Any, target: Target) -> str:
    try:
        return str(case.as_curl_command(base_url=target.url))
    except Exception as e:
        return f"(no curl: {e})"


def fuzz(
    target: Target,
    *,
    requests: int,
    namespaces: list[str],
    seed: int = 0,
    timeout: float = 10.0,
    documents: Iterable[str] = DOCUMENTS,
    progress: Callable[[FuzzResult], None] | None = None,
) -> FuzzResult:
    """Send at least ``requests`` generated requests to every operation of ``documents``
    in turn (positive and negative rounds alternating) and check every answer."""
    import schemathesis
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as hseed
    from hypothesis.errors import Unsatisfiable
    from schemathesis import GenerationMode
    from schemathesis.checks import not_a_server_error
    from schemathesis.core.result import Err
    from schemathesis.specs.openapi.checks import response_schema_conformance

    client = Client(target, timeout)
    result = FuzzResult()
    rnd = random.Random(seed)
    started = time.monotonic()
    try:
        operations: list[Any] = []
        for raw in load_documents(client, documents):
            schema = schemathesis.openapi.from_dict(_nullable_times(raw))
            for res in schema.get_all_operations():
                if isinstance(res, Err):  # an operation schemathesis cannot read: say so
                    raise RuntimeError(f"unusable operation in /openapi/v3: {res.err()}")
                operations.append(res.ok())
        result.operations = len(operations)
        checks = [not_a_server_error, response_schema_conformance]
        per_op = max(1, requests // (len(operations) * 4))  # ~4 rounds, both modes twice
        round_no = 0
        while result.sent < requests:
            seed_objects(client, namespaces)
            mode = GenerationMode.POSITIVE if round_no % 2 == 0 else GenerationMode.NEGATIVE
            for op in operations:
                if result.sent >= requests:
                    break
                fixed = {"namespace": rnd.choice(namespaces)} if "{namespace}" in op.path else None
                strategy = op.as_strategy(generation_mode=mode, path_parameters=fixed)

                @hseed(seed * 100_003 + round_no * 1009 + result.sent)
                @settings(
                    max_examples=per_op,
                    deadline=None,
                    database=None,
                    phases=[Phase.generate],
                    suppress_health_check=list(HealthCheck),
                )
                @given(case=strategy)
                def run(case: Any) -> None:
                    _run_case(case, client, result, rnd, checks)

                try:
                    run()
                except Unsatisfiable:  # nothing negative to say about a parameterless GET
                    pass
            round_no += 1
            if progress is not None:
                progress(result)
    finally:
        result.duration_s = time.monotonic() - started
        client.close()
    return result


def cleanup(target: Target, namespaces: Iterable[str], keep_namespaces: Iterable[str]) -> None:
    """Delete everything the fuzzer may have created: the objects in ``namespaces``
    (finalizers removed first), every namespace not in ``keep_namespaces`` (finalized,
    as the namespace controller that this server does not run would), every Node and
    PersistentVolume."""
    client = Client(target, 30.0)
    keep = set(keep_namespaces)
    try:
        status, body = client("GET", "/api/v1/namespaces")
        names = [i["metadata"]["name"] for i in body.get("items", [])] if status == 200 else []
        doomed = [n for n in {*names, *namespaces} if n not in keep]
        for ns in doomed:
            for prefix, plural, _ in SEEDS:
                _delete_all(client, f"{prefix}/namespaces/{ns}/{plural}")
        for plural, _ in CLUSTER_SEEDS:
            _delete_all(client, f"/api/v1/{plural}")
        for ns in doomed:
            client("DELETE", f"/api/v1/namespaces/{ns}")
            status, obj = client("GET", f"/api/v1/namespaces/{ns}")
            if status == 200:
                obj["spec"] = {"finalizers": []}
                client("PUT", f"/api/v1/namespaces/{ns}/finalize", obj)
            status, obj = client("GET", f"/api/v1/namespaces/{ns}")
            if status == 200 and obj["metadata"].get("finalizers"):
                patch = {"metadata": {"finalizers": None}}
                client("PATCH", f"/api/v1/namespaces/{ns}", patch, "application/merge-patch+json")
    finally:
        client.close()


def _delete_all(client: Client, path: str) -> None:
    """Delete every object at a collection path, clearing finalizers that hold any."""
    client("DELETE", path + "?gracePeriodSeconds=0")
    status, body = client("GET", path)
    if status != 200:
        return
    for item in body.get("items", []):
        name = item["metadata"]["name"]
        if item["metadata"].get("finalizers"):
            patch = {"metadata": {"finalizers": None}}
            client("PATCH", f"{path}/{name}", patch, "application/merge-patch+json")
        client("DELETE", f"{path}/{name}?gracePeriodSeconds=0")
