"""The short form of ``make fuzz``: schemathesis against the server's own OpenAPI for the
core and apps groups (every operation, positive and negative generation), then the
findings of the long runs replayed as exact requests so each stays fixed.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Iterator

import pytest

from conftest import Raw, RunningServer, start_server
from corral.testing.apifuzz import Target, cleanup, fuzz
from corral.testing.wait import eventually

KEEP = ("default", "kube-system", "kube-public", "kube-node-lease")


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    s = start_server(tmp_path_factory.mktemp("fuzz") / "data", extra=["--no-scheduler"])
    yield s
    s.stop()


def test_generated_requests_find_nothing(srv: RunningServer) -> None:
    target = Target(srv.url, srv.token, str(srv.ca_file))
    namespaces = ["fuzz-t-a", "fuzz-t-b"]
    try:
        result = fuzz(target, requests=200, namespaces=namespaces, seed=15)
    finally:
        cleanup(target, namespaces, KEEP)
    assert result.sent >= 200
    assert result.operations > 200  # core and apps, every verb and subresource
    assert not result.failures, json.dumps(list(result.failures.values()), indent=1)[:6000]
    raw = Raw(srv)
    assert srv.proc.poll() is None
    assert raw("GET", "/healthz")[2] == b"ok"
    # cleanup leaves nothing behind (the server's namespace loop ends the deletion)
    eventually(lambda: raw("GET", "/api/v1/namespaces/fuzz-t-a")[0] == 404, timeout=20)


def _status(body: bytes) -> dict[str, object]:
    doc = json.loads(body)
    assert doc["kind"] == "Status", doc
    return dict(doc)


def test_found_create_without_a_name_is_invalid(srv: RunningServer) -> None:
    status, _, body = Raw(srv)("POST", "/api/v1/namespaces/default/configmaps", {})
    assert status == 422, body
    assert _status(body)["message"] == (
        'ConfigMap "" is invalid: metadata.name: Required value: name or generateName is required'
    )


def test_found_bad_grace_period_is_a_bad_request(srv: RunningServer) -> None:
    path = "/api/v1/namespaces/default/configmaps/x?gracePeriodSeconds=Y"
    status, _, body = Raw(srv)("DELETE", path)
    assert status == 400, body
    assert _status(body)["message"] == 'strconv.ParseInt: parsing "Y": invalid syntax'


def test_found_name_with_a_newline_is_not_found_as_a_status(srv: RunningServer) -> None:
    name = urllib.parse.quote("a\nb")
    status, _, body = Raw(srv)("GET", f"/api/v1/namespaces/default/configmaps/{name}")
    assert status == 404, body
    assert _status(body)["message"] == 'configmaps "a\nb" not found'


def test_found_control_characters_in_a_field_name_do_not_break_the_warning(
    srv: RunningServer,
) -> None:
    raw = Raw(srv)
    raw("POST", "/api/v1/namespaces/default/configmaps", {"metadata": {"name": "fz-warn"}})
    patch = json.dumps({"a\x0b\nb": 1, 'q"\\': 2}).encode()
    headers = {"Content-Type": "application/merge-patch+json"}
    try:
        status, hdrs, body = raw(
            "PATCH", "/api/v1/namespaces/default/configmaps/fz-warn", patch, headers
        )
    finally:
        raw("DELETE", "/api/v1/namespaces/default/configmaps/fz-warn")
    assert status == 200, body
    # the field names a\x0b\nb and q"\ : controls as spaces, quotes and backslashes escaped
    assert hdrs["Warning"] == (r'299 - "unknown field \"a  b\"", 299 - "unknown field \"q\"\\\""')


def test_found_delete_options_of_the_wrong_type_are_a_bad_request(srv: RunningServer) -> None:
    body = {"preconditions": [], "gracePeriodSeconds": 0}
    status, _, out = Raw(srv)("DELETE", "/api/v1/namespaces/default/configmaps", body)
    assert status == 400, out
    assert _status(out)["message"] == (
        "json: cannot unmarshal array into Go struct field DeleteOptions.preconditions"
        " of type v1.Preconditions"
    )


def test_found_binding_to_something_else_than_a_node_is_invalid(srv: RunningServer) -> None:
    raw = Raw(srv)
    path = "/api/v1/namespaces/default/pods/fz-b/binding"
    status, _, out = raw("POST", path, {"target": {"kind": "Pod", "name": "n1"}})
    assert status == 422, out
    assert _status(out)["message"] == (
        'Binding "fz-b" is invalid: target.kind: Unsupported value: "Pod": '
        'supported values: "Node", "<empty>"'
    )
    status, _, out = raw("POST", path, {"target": {"name": 5}})
    assert status == 400, out
    assert "cannot be handled as a Binding: json: cannot unmarshal number" in str(
        _status(out)["message"]
    )


def test_found_eviction_with_delete_options_of_the_wrong_type_is_a_bad_request(
    srv: RunningServer,
) -> None:
    body = {"deleteOptions": {"preconditions": True}}
    path = "/api/v1/namespaces/default/pods/fz-e/eviction"
    status, _, out = Raw(srv)("POST", path, body)
    assert status == 400, out
    assert _status(out)["message"] == (
        'Eviction in version "v1" cannot be handled as a Eviction: json: cannot unmarshal bool'
        " into Go struct field DeleteOptions.deleteOptions.preconditions of type v1.Preconditions"
    )
