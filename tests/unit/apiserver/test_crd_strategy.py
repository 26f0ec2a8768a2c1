"""The apiextensions.k8s.io/v1 CustomResourceDefinition strategy: defaults and validation.

Each row is one broken CRD and the field errors upstream's validation gives it (paths and
words); the 422 Status they make is checked once.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from corral.api import errors
from corral.apiserver.registry.apiextensions import (
    CLEANUP_FINALIZER,
    CustomResourceDefinitionStrategy,
    approval_condition,
)

Obj = dict[str, Any]
S = CustomResourceDefinitionStrategy()

BASE: Obj = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "crontabs.stable.example.com"},
    "spec": {
        "group": "stable.example.com",
        "scope": "Namespaced",
        "names": {"plural": "crontabs", "kind": "CronTab"},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {"openAPIV3Schema": {"type": "object"}},
            }
        ],
    },
}


def crd(change: Callable[[Obj], None] | None = None) -> Obj:
    obj = copy.deepcopy(BASE)
    if change is not None:
        change(obj)
    S.default(obj)
    return obj


def errs(obj: Obj) -> list[str]:
    return [str(e) for e in S.validate_metadata(obj, False) + S.validate(obj)]


def _set(path: str, value: Any) -> Callable[[Obj], None]:
    def change(obj: Obj) -> None:
        *parents, last = path.split(".")
        cur: Any = obj
        for p in parents:
            cur = cur[int(p)] if isinstance(cur, list) else cur[p]
        if value is None:
            del cur[last]
        elif isinstance(cur, list):
            cur[int(last)] = value
        else:
            cur[last] = value

    return change


def _two_storage(obj: Obj) -> None:
    obj["spec"]["versions"].append({**obj["spec"]["versions"][0], "name": "v2"})


def _versions(**fields: Any) -> Callable[[Obj], None]:
    def change(obj: Obj) -> None:
        obj["spec"]["versions"][0].update(fields)

    return change


SELECTABLE_SCHEMA = {
    "openAPIV3Schema": {
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "properties": {"color": {"type": "string"}, "size": {"type": "number"}},
            }
        },
    }
}

DNS1035 = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with "
    "an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or "
    "'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
)

CASES = [
    ("valid", None, []),
    (
        "name-not-plural-dot-group",
        _set("metadata.name", "crontab.stable.example.com"),
        [
            'metadata.name: Invalid value: "crontab.stable.example.com": must be spec.names.plural+"."+spec.group'
        ],
    ),
    (
        "group-without-dot",
        _set("spec.group", "stable"),
        [
            'metadata.name: Invalid value: "crontabs.stable.example.com": must be spec.names.plural+"."+spec.group',
            'spec.group: Invalid value: "stable": should be a domain with at least one dot',
        ],
    ),
    (
        "bad-scope",
        _set("spec.scope", "Global"),
        ['spec.scope: Unsupported value: "Global": supported values: "Cluster", "Namespaced"'],
    ),
    ("no-scope", _set("spec.scope", None), ["spec.scope: Required value"]),
    (
        "no-storage-version",
        _set("spec.versions.0.storage", False),
        [
            'spec.versions: Invalid value: [{"name":"v1","served":true,"storage":false,'
            '"schema":{"openAPIV3Schema":{"type":"object"}}}]: '
            "must have exactly one version marked as storage version"
        ],
    ),
    (
        "two-storage-versions",
        _two_storage,
        [
            'spec.versions: Invalid value: [{"name":"v1","served":true,"storage":true,'
            '"schema":{"openAPIV3Schema":{"type":"object"}}},{"name":"v2","served":true,'
            '"storage":true,"schema":{"openAPIV3Schema":{"type":"object"}}}]: '
            "must have exactly one version marked as storage version"
        ],
    ),
    (
        "bad-version-name",
        _set("spec.versions.0.name", "V1"),
        [f'spec.versions[0].name: Invalid value: "V1": {DNS1035}'],
    ),
    (
        "no-schema",
        _set("spec.versions.0.schema", None),
        ["spec.versions[0].schema.openAPIV3Schema: Required value: schemas are required"],
    ),
    (
        "schema-without-root-type",
        _set("spec.versions.0.schema", {"openAPIV3Schema": {"properties": {}}}),
        [
            "spec.versions[0].schema.openAPIV3Schema.type: Required value: must not be empty at the root"
        ],
    ),
    (
        "schema-field-without-type",
        _set(
            "spec.versions.0.schema",
            {"openAPIV3Schema": {"type": "object", "properties": {"spec": {"properties": {}}}}},
        ),
        [
            "spec.versions[0].schema.openAPIV3Schema.properties[spec].type: "
            "Required value: must not be empty for specified object fields"
        ],
    ),
    (
        "bad-plural",
        _set("spec.names.plural", "CronTabs"),
        [
            'metadata.name: Invalid value: "crontabs.stable.example.com": must be spec.names.plural+"."+spec.group',
            f'spec.names.plural: Invalid value: "CronTabs": {DNS1035}',
        ],
    ),
    (
        "kind-equals-listkind",
        _set("spec.names.listKind", "CronTab"),
        ['spec.names.listKind: Invalid value: "CronTab": kind and listKind may not be the same'],
    ),
    (
        "no-kind",
        _set("spec.names.kind", None),
        [
            "spec.names.singular: Required value",
            "spec.names.kind: Required value",
            "spec.names.listKind: Required value",
        ],
    ),
    (
        "column-bad-type",
        _set(
            "spec.versions.0.additionalPrinterColumns",
            [{"name": "X", "type": "float", "jsonPath": ".spec.x"}],
        ),
        [
            'spec.versions[0].additionalPrinterColumns[0].type: Invalid value: "float": '
            "must be one of boolean,date,integer,number,string"
        ],
    ),
    (
        "scale-path-outside-spec",
        _set(
            "spec.versions.0.subresources",
            {"scale": {"specReplicasPath": ".status.n", "statusReplicasPath": ".status.n"}},
        ),
        [
            'spec.versions[0].subresources.scale.specReplicasPath: Invalid value: ".status.n": '
            "should be a json path under .spec"
        ],
    ),
    (
        "column-path-not-dotted",
        _set(
            "spec.versions.0.additionalPrinterColumns",
            [{"name": "X", "type": "string", "jsonPath": "spec.x"}],
        ),
        [
            'spec.versions[0].additionalPrinterColumns[0].JSONPath: Invalid value: "spec.x": '
            "must be a simple json path starting with ."
        ],
    ),
    (
        "status-root-restricted",
        _versions(
            subresources={"status": {}},
            schema={"openAPIV3Schema": {"type": "object", "minProperties": 1}},
        ),
        [
            "spec.versions[0].schema.openAPIV3Schema: Invalid value: "
            "apiextensions.JSONSchemaProps{...}: only [Description Type Format Title Maximum "
            "ExclusiveMaximum Minimum ExclusiveMinimum MaxLength MinLength Pattern MaxItems "
            "MinItems UniqueItems MultipleOf Required Items Properties ExternalDocs Example "
            "XPreserveUnknownFields XValidations] fields are allowed at the root of the schema "
            "if the status subresource is enabled"
        ],
    ),
    (
        "webhook-without-webhook",
        _set("spec.conversion", {"strategy": "Webhook"}),
        [
            "spec.conversion.webhookClientConfig: Required value: "
            "required when strategy is set to Webhook",
            "spec.conversion.conversionReviewVersions: Required value",
        ],
    ),
    (
        "webhook-unknown-review-version",
        _set(
            "spec.conversion",
            {
                "strategy": "Webhook",
                "webhook": {
                    "clientConfig": {"url": "https://x.example.com"},
                    "conversionReviewVersions": ["v2"],
                },
            },
        ),
        [
            'spec.conversion.conversionReviewVersions: Invalid value: ["v2"]: '
            "must include at least one of v1, v1beta1"
        ],
    ),
    (
        "selectable-fields",
        _versions(
            schema=SELECTABLE_SCHEMA,
            selectableFields=[
                {"jsonPath": ".spec.color"},
                {"jsonPath": ".spec.size"},
                {"jsonPath": ".spec.nope"},
                {"jsonPath": ".metadata.name"},
                {"jsonPath": ".spec.color"},
                {"jsonPath": "spec.color"},
                {},
            ],
        ),
        [
            'spec.versions[0].selectableFields[1].jsonPath: Invalid value: ".spec.size": must '
            "point to a field of type string, boolean or integer. Enum string fields and "
            "strings with formats are allowed.",
            'spec.versions[0].selectableFields[2].jsonPath: Invalid value: ".spec.nope": '
            "is an invalid path: does not refer to a valid field",
            'spec.versions[0].selectableFields[3].jsonPath: Invalid value: ".metadata.name": '
            "must not point to fields in metadata",
            'spec.versions[0].selectableFields[4].jsonPath: Duplicate value: ".spec.color"',
            'spec.versions[0].selectableFields[5].jsonPath: Invalid value: "spec.color": '
            "is an invalid path: must be a valid path",
            "spec.versions[0].selectableFields[6].jsonPath: Required value",
        ],
    ),
]


@pytest.mark.parametrize(("change", "want"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_validate(change: Callable[[Obj], None] | None, want: list[str]) -> None:
    assert errs(crd(change)) == want


def test_defaults() -> None:
    obj = crd()
    assert obj["spec"]["names"]["singular"] == "crontab"
    assert obj["spec"]["names"]["listKind"] == "CronTabList"
    assert obj["spec"]["conversion"] == {"strategy": "None"}


def test_invalid_status_text() -> None:
    obj = crd(_set("spec.scope", "Global"))
    e = errors.invalid_object(
        "CustomResourceDefinition",
        "apiextensions.k8s.io",
        "crontabs.stable.example.com",
        S.validate(obj),
    )
    assert e.code == 422
    assert e.message == (
        'CustomResourceDefinition.apiextensions.k8s.io "crontabs.stable.example.com" is invalid: '
        'spec.scope: Unsupported value: "Global": supported values: "Cluster", "Namespaced"'
    )


@pytest.mark.parametrize(
    ("change", "want"),
    [
        (
            _set("spec.group", "other.example.com"),
            'spec.group: Invalid value: "other.example.com": field is immutable',
        ),
        (_set("spec.scope", "Cluster"), 'spec.scope: Invalid value: "Cluster": field is immutable'),
    ],
    ids=["group", "scope-once-established"],
)
def test_validate_update(change: Callable[[Obj], None], want: str) -> None:
    old = crd()
    S.prepare_for_create(old)
    old["status"]["conditions"] = [{"type": "Established", "status": "True"}]
    new = copy.deepcopy(old)
    change(new)
    S.prepare_for_update(new, old)
    assert want in [str(e) for e in S.validate_update(new, old)]


def test_lifecycle_preparation() -> None:
    obj = crd()
    S.prepare_for_create(obj)
    assert obj["status"]["storedVersions"] == ["v1"]
    new = copy.deepcopy(obj)
    new["spec"]["versions"][0]["storage"] = False
    new["spec"]["versions"].append({**new["spec"]["versions"][0], "name": "v2", "storage": True})
    S.prepare_for_update(new, obj)
    assert new["status"]["storedVersions"] == ["v1", "v2"]
    S.prepare_for_delete(new, "2026-01-01T00:00:00Z")
    assert new["metadata"]["finalizers"] == [CLEANUP_FINALIZER]
    assert new["status"]["conditions"][0]["reason"] == "InstanceDeletionPending"


APPROVAL = "api-approved.kubernetes.io"
ENHANCEMENT = "see https://github.com/kubernetes/enhancements/pull/1111"


def _protected(annotation: str | None, group: str = "x.k8s.io") -> Obj:
    def change(obj: Obj) -> None:
        obj["spec"]["group"] = group
        obj["metadata"]["name"] = f"crontabs.{group}"
        if annotation is not None:
            obj["metadata"]["annotations"] = {APPROVAL: annotation}

    return crd(change)


@pytest.mark.parametrize(
    ("annotation", "group", "want"),
    [
        ("", "other.io", []),
        (
            "",
            "x.k8s.io",
            [
                f"metadata.annotations[{APPROVAL}]: Required value: protected groups must have "
                f'approval annotation "{APPROVAL}", {ENHANCEMENT}'
            ],
        ),
        (
            "",
            "kubernetes.io",
            [
                f"metadata.annotations[{APPROVAL}]: Required value: protected groups must have "
                f'approval annotation "{APPROVAL}", {ENHANCEMENT}'
            ],
        ),
        (
            "maybe",
            "sigs.k8s.io",
            [
                f'metadata.annotations[{APPROVAL}]: Invalid value: "maybe": protected groups must '
                f'have approval annotation "{APPROVAL}" with either a URL or a reason starting '
                f'with "unapproved", {ENHANCEMENT}'
            ],
        ),
        ("unapproved, experimental", "x.k8s.io", []),
        ("https://github.com/kubernetes/kubernetes/pull/1", "x.k8s.io", []),
        ("", "notk8s.io", []),
    ],
)
def test_api_approval(annotation: str, group: str, want: list[str]) -> None:
    assert errs(_protected(annotation or None, group)) == want


def test_api_approval_update_keeps_state() -> None:
    old = _protected("maybe")
    S.prepare_for_create(old)
    new = copy.deepcopy(old)
    new["spec"]["names"]["shortNames"] = ["ct"]
    assert [str(e) for e in S.validate_update(new, old)] == []  # same (invalid) state
    new["metadata"]["annotations"] = {}
    assert [str(e) for e in S.validate_update(new, old)] == [
        f"metadata.annotations[{APPROVAL}]: Required value: protected groups must have "
        f'approval annotation "{APPROVAL}", {ENHANCEMENT}'
    ]


@pytest.mark.parametrize(
    ("annotation", "status", "reason"),
    [
        (None, "False", "MissingAnnotation"),
        ("bad", "False", "InvalidAnnotation"),
        ("unapproved", "False", "UnapprovedAnnotation"),
        ("https://example.com/review", "True", "ApprovedAnnotation"),
    ],
)
def test_approval_condition(annotation: str | None, status: str, reason: str) -> None:
    cond = approval_condition(_protected(annotation))
    assert cond is not None
    assert (cond["type"], cond["status"], cond["reason"]) == (
        "KubernetesAPIApprovalPolicyConformant",
        status,
        reason,
    )
    assert approval_condition(crd()) is None
