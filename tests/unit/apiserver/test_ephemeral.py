"""``pods/ephemeralcontainers`` validation and merging (``apiserver/ephemeral.py``), as
upstream's ``ValidatePodEphemeralContainersUpdate``: one table of changes."""

from __future__ import annotations

from typing import Any

import pytest

from corral.apiserver.ephemeral import default_ephemeral, validate_ephemeral_update, with_ephemeral

Obj = dict[str, Any]


def _pod(*ecs: Obj, volumes: list[Obj] | None = None) -> Obj:
    spec: Obj = {
        "containers": [{"name": "main", "image": "busybox"}],
        "initContainers": [{"name": "init", "image": "busybox"}],
    }
    if volumes:
        spec["volumes"] = volumes
    if ecs:
        spec["ephemeralContainers"] = list(ecs)
    return {"metadata": {"name": "p"}, "spec": spec}


def _ec(name: str = "debugger", **extra: Any) -> Obj:
    return {"name": name, "image": "busybox", **extra}


CASES = [
    ("add one", _pod(), _pod(_ec()), []),
    ("add with a target", _pod(), _pod(_ec(targetContainerName="main")), []),
    ("add a second", _pod(_ec("a")), _pod(_ec("a"), _ec("b")), []),
    ("no change", _pod(_ec("a")), _pod(_ec("a")), []),
    (
        "name of a container",
        _pod(),
        _pod(_ec("main")),
        [("FieldValueDuplicate", "spec.ephemeralContainers[0].name")],
    ),
    (
        "name of an init container",
        _pod(),
        _pod(_ec("init")),
        [("FieldValueDuplicate", "spec.ephemeralContainers[0].name")],
    ),
    (
        "twice the same name",
        _pod(),
        _pod(_ec("x"), _ec("x")),
        [("FieldValueDuplicate", "spec.ephemeralContainers[1].name")],
    ),
    (
        "bad name",
        _pod(),
        _pod(_ec("Bad_Name")),
        [("FieldValueInvalid", "spec.ephemeralContainers[0].name")],
    ),
    (
        "no image",
        _pod(),
        _pod({"name": "d"}),
        [("FieldValueRequired", "spec.ephemeralContainers[0].image")],
    ),
    (
        "ports",
        _pod(),
        _pod(_ec(ports=[{"containerPort": 80}])),
        [("FieldValueForbidden", "spec.ephemeralContainers[0].ports")],
    ),
    (
        "probes and resources",
        _pod(),
        _pod(
            _ec(
                readinessProbe={"exec": {"command": ["true"]}},
                resources={"limits": {"cpu": "1"}},
            )
        ),
        [
            ("FieldValueForbidden", "spec.ephemeralContainers[0].readinessProbe"),
            ("FieldValueForbidden", "spec.ephemeralContainers[0].resources"),
        ],
    ),
    ("empty resources are the default", _pod(), _pod(_ec(resources={})), []),
    (
        "unknown target",
        _pod(),
        _pod(_ec(targetContainerName="nope")),
        [("FieldValueNotFound", "spec.ephemeralContainers[0].targetContainerName")],
    ),
    ("an init container as the target", _pod(), _pod(_ec(targetContainerName="init")), []),
    (
        "an existing name added again",
        _pod(_ec("e")),
        _pod(_ec("e"), _ec("e")),
        [("FieldValueDuplicate", "spec.ephemeralContainers[1].name")],
    ),
    (
        "a mount of no volume",
        _pod(),
        _pod(_ec(volumeMounts=[{"name": "nope", "mountPath": "/x"}])),
        [("FieldValueNotFound", "spec.ephemeralContainers[0].volumeMounts[0].name")],
    ),
    (
        "a bad env name",
        _pod(),
        _pod(_ec(env=[{"name": "1=bad", "value": "v"}])),
        [("FieldValueInvalid", "spec.ephemeralContainers[0].env[0].name")],
    ),
    (
        "a bad pull policy",
        _pod(),
        _pod(_ec(imagePullPolicy="Sometimes")),
        [("FieldValueNotSupported", "spec.ephemeralContainers[0].imagePullPolicy")],
    ),
    (
        "subPath and subPathExpr",
        _pod(),
        _pod(
            _ec(
                volumeMounts=[
                    {"name": "data", "mountPath": "/a", "subPath": "s"},
                    {"name": "data", "mountPath": "/b", "subPathExpr": "$(X)"},
                ]
            ),
            volumes=[{"name": "data", "emptyDir": {}}],
        ),
        [
            ("FieldValueForbidden", "spec.ephemeralContainers[0].volumeMounts[0].subPath"),
            ("FieldValueForbidden", "spec.ephemeralContainers[0].volumeMounts[1].subPathExpr"),
        ],
    ),
    (
        "removed",
        _pod(_ec("a")),
        _pod(),
        [("FieldValueForbidden", "spec.ephemeralContainers")],
    ),
    (
        "changed",
        _pod(_ec("a")),
        _pod(_ec("a", image="other")),
        [("FieldValueForbidden", "spec.ephemeralContainers[a]")],
    ),
]


@pytest.mark.parametrize(("old", "new", "want"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_validate_ephemeral_update(old: Obj, new: Obj, want: list[tuple[str, str]]) -> None:
    got = [(e.type, e.field) for e in validate_ephemeral_update(new, old)]
    assert got == want


def test_only_ephemeral_containers_are_taken_and_defaulted() -> None:
    cur = _pod()
    source = _pod(_ec())
    source["spec"]["containers"][0]["image"] = "changed"  # ignored: not ephemeral
    source["metadata"]["labels"] = {"ignored": "yes"}
    out = with_ephemeral(cur, source)
    assert out["spec"]["containers"] == cur["spec"]["containers"]
    assert "labels" not in out["metadata"]
    [ec] = out["spec"]["ephemeralContainers"]
    assert ec["terminationMessagePolicy"] == "File"
    assert ec["imagePullPolicy"] == "Always"  # (an untagged image)
    assert cur["spec"].get("ephemeralContainers") is None  # the input is not changed


def test_default_ephemeral_keeps_what_is_set() -> None:
    spec: Obj = {"ephemeralContainers": [_ec(image="busybox:1.35", imagePullPolicy="Never")]}
    default_ephemeral(spec)
    assert spec["ephemeralContainers"][0]["imagePullPolicy"] == "Never"
