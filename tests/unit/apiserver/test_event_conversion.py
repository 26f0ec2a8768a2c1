"""events.k8s.io/v1 <-> core/v1 Event conversion (``EventConverter``) and the view row."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from corral.apiserver.registry.core import EventConverter, EventStrategy, event_source
from corral.apiserver.registry.table import by_plural

META = {"name": "e1", "namespace": "default", "uid": "u-1", "resourceVersion": "7"}
REF = {"kind": "Pod", "namespace": "default", "name": "p", "uid": "pod-uid"}
SOURCE = {"component": "kubelet", "host": "node-1"}
SERIES = {"count": 3, "lastObservedTime": "2024-01-01T00:00:05.000000Z"}

# fmt: off
#: (events.k8s.io/v1 shape, core/v1 shape) pairs: each converts into the other
PAIRS: list[tuple[dict[str, Any], dict[str, Any]]] = [
    (
        {"regarding": REF, "note": "pulled", "reason": "Pulled", "type": "Normal", "action": "Pull",
         "eventTime": "2024-01-01T00:00:00.000000Z", "reportingController": "example.com/c",
         "reportingInstance": "c-1", "series": SERIES, "related": {"kind": "Node", "name": "n"}},
        {"involvedObject": REF, "message": "pulled", "reason": "Pulled", "type": "Normal", "action": "Pull",
         "eventTime": "2024-01-01T00:00:00.000000Z", "reportingComponent": "example.com/c",
         "reportingInstance": "c-1", "series": SERIES, "related": {"kind": "Node", "name": "n"}},
    ),
    (
        {"regarding": REF, "note": "m", "deprecatedSource": SOURCE, "deprecatedCount": 4,
         "deprecatedFirstTimestamp": "2024-01-01T00:00:00Z", "deprecatedLastTimestamp": "2024-01-01T00:01:00Z"},
        {"involvedObject": REF, "message": "m", "source": SOURCE, "count": 4,
         "firstTimestamp": "2024-01-01T00:00:00Z", "lastTimestamp": "2024-01-01T00:01:00Z"},
    ),
    ({"regarding": {}}, {"involvedObject": {}}),
]
# fmt: on
IDS = ["new-style", "legacy-fields", "empty"]


def v1(body: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": META, **body}


def core(body: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Event", "metadata": META, **body}


@pytest.mark.parametrize(("new", "old"), PAIRS, ids=IDS)
def test_to_storage(new: dict[str, Any], old: dict[str, Any]) -> None:
    assert EventConverter().to_storage(v1(new)) == core(old)


@pytest.mark.parametrize(("new", "old"), PAIRS, ids=IDS)
def test_from_storage(new: dict[str, Any], old: dict[str, Any]) -> None:
    assert EventConverter().from_storage(core(old)) == v1(new)


@pytest.mark.parametrize(("new", "old"), PAIRS, ids=IDS)
def test_round_trips(new: dict[str, Any], old: dict[str, Any]) -> None:
    conv = EventConverter()
    assert conv.from_storage(conv.to_storage(v1(new))) == v1(new)
    assert conv.to_storage(conv.from_storage(core(old))) == core(old)


def test_conversion_does_not_mutate_its_argument() -> None:
    obj = v1(PAIRS[0][0])
    before = copy.deepcopy(obj)
    EventConverter().to_storage(obj)
    EventConverter().from_storage(core(PAIRS[0][1]))
    assert obj == before


def test_missing_reference_becomes_an_empty_struct() -> None:
    conv = EventConverter()
    assert conv.to_storage(v1({"note": "x"}))["involvedObject"] == {}
    assert conv.from_storage(core({"message": "x"}))["regarding"] == {}


@pytest.mark.parametrize(
    ("obj", "want"),
    [
        ({"source": {"component": "kubelet"}, "reportingComponent": "ctl"}, "kubelet"),
        ({"source": {}, "reportingComponent": "ctl"}, "ctl"),
        ({}, ""),
    ],
    ids=["component", "falls-back-to-reporting", "none"],
)
def test_source_field_selector(obj: dict[str, Any], want: str) -> None:
    assert event_source(obj) == want
    assert EventStrategy.field_selectors["source"](obj) == want


def test_view_field_labels_name_stored_fields() -> None:
    """Every events.k8s.io selector maps to a field the core/v1 cache computes."""
    view = by_plural("events.k8s.io", "events")
    assert view is not None and view.converter is not None
    assert view.storage == ("", "events")
    labels = view.converter.field_labels
    assert set(labels) == set(view.strategy.field_selectors)
    assert set(labels.values()) <= set(EventStrategy.field_selectors)
    assert labels["regarding.name"] == "involvedObject.name"
    assert labels["reportingController"] == "reportingComponent"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("regarding.kind", "Pod"),
        ("regarding.name", "p"),
        ("reason", "Pulled"),
        ("reportingController", "example.com/c"),
        ("type", "Normal"),
        ("source", "example.com/c"),
    ],
    ids=["regarding-kind", "regarding-name", "reason", "reporting", "type", "source"],
)
def test_view_selector_reads_the_same_value_as_stored_field(field: str, value: str) -> None:
    view = by_plural("events.k8s.io", "events")
    assert view is not None and view.converter is not None
    new = v1(PAIRS[0][0])
    stored = EventConverter().to_storage(new)
    assert view.strategy.field_selectors[field](new) == value
    assert EventStrategy.field_selectors[view.converter.field_labels[field]](stored) == value
