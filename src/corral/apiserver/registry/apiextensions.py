"""Strategy for apiextensions.k8s.io/v1 CustomResourceDefinitions.

The CRD object itself: defaults (``singular``, ``listKind``, the ``None`` conversion
strategy), create and update preparation (status reset on create, ``storedVersions``
kept growing as upstream's ``PrepareForUpdate`` does), and validation with the words of
``apiextensions/validation`` (the name must be ``<plural>.<group>``, a group with a dot,
a known scope, exactly one storage version, DNS-1035 names, printer columns, scale
paths, selectable fields, webhook conversion settings, each version's
``openAPIV3Schema`` through ``corral.api.structural``, and the API approval annotation
of the protected ``*.k8s.io`` groups).
Deleting a CRD adds the ``customresourcecleanup.apiextensions.k8s.io`` finalizer and the
Terminating condition (``prepare_for_delete``); ``apiserver/crds.py`` then deletes the
instances and drops the finalizer. Called by the generic store via the registry table.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from corral.api.conditions import find_condition, set_condition
from corral.api.errors import (
    FieldError,
    duplicate,
    forbidden,
    invalid,
    not_supported,
    required,
)
from corral.api.validation import (
    is_dns1035_label,
    is_dns1123_subdomain,
    validate_immutable,
    validate_object_meta,
)
from corral.apiserver.registry.base import Obj, Strategy

CLEANUP_FINALIZER = "customresourcecleanup.apiextensions.k8s.io"
COLUMN_TYPES = ("boolean", "date", "integer", "number", "string")
COLUMN_FORMATS = ("byte", "date", "date-time", "double", "float", "int32", "int64", "password")


#: the annotation a CRD of a protected community group (``*.k8s.io``) must carry
APPROVAL_ANNOTATION = "api-approved.kubernetes.io"
_ENHANCEMENT = "see https://github.com/kubernetes/enhancements/pull/1111"


def as_dict(v: Any) -> dict[str, Any]:
    """``v`` if it is a mapping, else an empty one (reading objects not yet validated)."""
    return v if isinstance(v, dict) else {}


def as_list(v: Any) -> list[Any]:
    """``v`` if it is a list, else an empty one."""
    return v if isinstance(v, list) else []


_d = as_dict
_l = as_list


def storage_version(crd: Obj) -> str:
    """The name of the version marked ``storage: true`` (``""`` if none)."""
    for v in _l(_d(crd.get("spec")).get("versions")):
        if isinstance(v, dict) and v.get("storage") is True:
            return str(v.get("name", ""))
    return ""


def is_protected_group(group: str) -> bool:
    """``IsProtectedCommunityGroup``: ``k8s.io``, ``kubernetes.io`` and their subdomains."""
    return group in ("k8s.io", "kubernetes.io") or group.endswith((".k8s.io", ".kubernetes.io"))


def approval_state(annotations: Any) -> tuple[str, str]:
    """``GetAPIApprovalState``: (Missing | Bypassed | Approved | Invalid, the reason)."""
    value = _d(annotations).get(APPROVAL_ANNOTATION) or ""
    value = value if isinstance(value, str) else str(value)
    if not value:
        return (
            "Missing",
            f'protected groups must have approval annotation "{APPROVAL_ANNOTATION}", {_ENHANCEMENT}',
        )
    if value.startswith("unapproved"):
        return "Bypassed", f'not approved: "{value}"'
    url = urlsplit(value) if value.startswith("/") or "://" in value else None
    if url is not None and url.scheme and url.netloc:
        return "Approved", f"approved in {value}"
    return (
        "Invalid",
        f'protected groups must have approval annotation "{APPROVAL_ANNOTATION}" with either '
        f'a URL or a reason starting with "unapproved", {_ENHANCEMENT}',
    )


def approval_condition(crd: Obj) -> dict[str, Any] | None:
    """The apiapproval controller's ``KubernetesAPIApprovalPolicyConformant`` condition
    (None outside the protected groups)."""
    if not is_protected_group(str(_d(crd.get("spec")).get("group") or "")):
        return None
    state, reason = approval_state(_d(crd.get("metadata")).get("annotations"))
    status, why = {
        "Invalid": ("False", "InvalidAnnotation"),
        "Missing": ("False", "MissingAnnotation"),
        "Approved": ("True", "ApprovedAnnotation"),
        "Bypassed": ("False", "UnapprovedAnnotation"),
    }[state]
    return {
        "type": "KubernetesAPIApprovalPolicyConformant",
        "status": status,
        "reason": why,
        "message": reason,
    }


def _approval_errors(new: Obj, old: Obj | None) -> list[FieldError]:
    """``validateAPIApproval``: a CRD of a protected group names its API review; an
    update that leaves the approval state alone is never refused."""
    if not is_protected_group(str(_d(new.get("spec")).get("group") or "")):
        return []
    state, reason = approval_state(_d(new.get("metadata")).get("annotations"))
    if old is not None and approval_state(_d(old.get("metadata")).get("annotations"))[0] == state:
        return []
    path = f"metadata.annotations[{APPROVAL_ANNOTATION}]"
    if state == "Missing":
        return [required(path, reason)]
    if state == "Invalid":
        value = _d(_d(new.get("metadata")).get("annotations")).get(APPROVAL_ANNOTATION)
        return [invalid(path, value, reason)]
    return []


def _webhook_errors(conv: dict[str, Any]) -> list[FieldError]:
    """``validateCustomResourceConversion`` for the Webhook strategy (paths of the
    internal type, as upstream reports them)."""
    webhook = conv.get("webhook")
    errs: list[FieldError] = []
    if not isinstance(_d(webhook).get("clientConfig"), dict):
        errs.append(
            required(
                "spec.conversion.webhookClientConfig", "required when strategy is set to Webhook"
            )
        )
    versions = _l(_d(webhook).get("conversionReviewVersions"))
    path = "spec.conversion.conversionReviewVersions"
    if not versions:
        errs.append(required(path, ""))
    else:
        if len(set(map(str, versions))) != len(versions):
            errs.append(invalid(path, versions, "duplicate versions"))
        if not {"v1", "v1beta1"} & set(map(str, versions)):
            errs.append(invalid(path, versions, "must include at least one of v1, v1beta1"))
    return errs


def _names_errors(names: dict[str, Any], path: str) -> list[FieldError]:
    """``ValidateCustomResourceDefinitionNames``."""
    errs: list[FieldError] = []
    for key in ("plural", "singular"):
        value = names.get(key) or ""
        if value:
            msgs = is_dns1035_label(str(value))
            if msgs:
                errs.append(invalid(f"{path}.{key}", value, ",".join(msgs)))
    for key in ("kind", "listKind"):
        value = names.get(key) or ""
        if value:
            msgs = is_dns1035_label(str(value).lower())
            if msgs:
                errs.append(
                    invalid(
                        f"{path}.{key}",
                        value,
                        "may have mixed case, but should otherwise match: " + ",".join(msgs),
                    )
                )
    for i, short in enumerate(_l(names.get("shortNames"))):
        msgs = is_dns1035_label(str(short))
        if msgs:
            errs.append(invalid(f"{path}.shortNames[{i}]", short, ",".join(msgs)))
    if names.get("kind") and names.get("kind") == names.get("listKind"):
        errs.append(
            invalid(f"{path}.listKind", names["listKind"], "kind and listKind may not be the same")
        )
    for i, cat in enumerate(_l(names.get("categories"))):
        msgs = is_dns1035_label(str(cat))
        if msgs:
            errs.append(invalid(f"{path}.categories[{i}]", cat, ",".join(msgs)))
    return errs


def _json_path_errors(
    value: Any, path: str, under: tuple[str, ...], detail: str
) -> list[FieldError]:
    if not value:
        return [required(path, "")]
    if not isinstance(value, str) or not any(value.startswith(p) for p in under):
        return [invalid(path, value, detail)]
    return []


def _subresources_errors(subs: dict[str, Any], path: str) -> list[FieldError]:
    scale = subs.get("scale")
    if not isinstance(scale, dict):
        return []
    p = f"{path}.scale"
    errs = _json_path_errors(
        scale.get("specReplicasPath"),
        f"{p}.specReplicasPath",
        (".spec.",),
        "should be a json path under .spec",
    )
    errs += _json_path_errors(
        scale.get("statusReplicasPath"),
        f"{p}.statusReplicasPath",
        (".status.",),
        "should be a json path under .status",
    )
    selector = scale.get("labelSelectorPath")
    if selector:
        errs += _json_path_errors(
            selector,
            f"{p}.labelSelectorPath",
            (".spec.", ".status."),
            "should be a json path under either .spec or .status",
        )
    return errs


def _column_errors(col: dict[str, Any], path: str) -> list[FieldError]:
    """``ValidateCustomResourceColumnDefinition``."""
    errs: list[FieldError] = []
    if not col.get("name"):
        errs.append(required(f"{path}.name", ""))
    types = ",".join(COLUMN_TYPES)
    if not col.get("type"):
        errs.append(required(f"{path}.type", f"must be one of {types}"))
    elif col["type"] not in COLUMN_TYPES:
        errs.append(invalid(f"{path}.type", col["type"], f"must be one of {types}"))
    if col.get("format") and col["format"] not in COLUMN_FORMATS:
        errs.append(
            invalid(f"{path}.format", col["format"], f"must be one of {','.join(COLUMN_FORMATS)}")
        )
    jp = col.get("jsonPath")
    # upstream names the internal type's field: JSONPath
    if not jp:
        errs.append(required(f"{path}.JSONPath", ""))
    elif not isinstance(jp, str) or not jp.startswith("."):
        errs.append(invalid(f"{path}.JSONPath", jp, "must be a simple json path starting with ."))
    return errs


_SELECTABLE_TYPES = ("string", "boolean", "integer")


def _selectable_errors(version: dict[str, Any], path: str) -> list[FieldError]:
    """``ValidateCustomResourceSelectableFields``: each a path (no array steps) to a
    string, boolean or integer field of the schema, outside metadata, once."""
    fields = _l(version.get("selectableFields"))
    if not fields:
        return []
    schema = _d(version.get("schema")).get("openAPIV3Schema")
    if not isinstance(schema, dict):
        return [
            invalid(
                f"{path}.selectableFields",
                "",
                "selectableFields may only be set when version.schema.openAPIV3Schema is not included",
            )
        ]
    errs: list[FieldError] = []
    seen: set[str] = set()
    for i, f in enumerate(fields):
        p = f"{path}.selectableFields[{i}].jsonPath"
        jp = _d(f).get("jsonPath")
        if not jp:
            errs.append(required(p, ""))
            continue
        steps = str(jp).split(".")
        if len(steps) > 1 and steps[1] == "metadata":
            errs.append(invalid(p, jp, "must not point to fields in metadata"))
            continue
        node: dict[str, Any] | None = schema
        problem = ""
        if steps[0] != "" or len(steps) < 2 or "" in steps[1:]:
            problem = "is an invalid path: must be a valid path"
        else:
            for step in steps[1:]:
                node = _d(_d(node).get("properties")).get(step)
                if not isinstance(node, dict):
                    problem = "is an invalid path: does not refer to a valid field"
                    break
        if problem:
            errs.append(invalid(p, jp, problem))
            continue
        if _d(node).get("type") not in _SELECTABLE_TYPES:
            errs.append(
                invalid(
                    p,
                    jp,
                    "must point to a field of type string, boolean or integer. Enum string "
                    "fields and strings with formats are allowed.",
                )
            )
        if jp in seen:
            errs.append(duplicate(p, jp))
        seen.add(str(jp))
    return errs


def _schema_errors(version: dict[str, Any], path: str, status_enabled: bool) -> list[FieldError]:
    from corral.api.structural import check_schema

    schema = _d(version.get("schema")).get("openAPIV3Schema")
    p = f"{path}.schema.openAPIV3Schema"
    if not isinstance(schema, dict):
        return [required(p, "schemas are required")]
    return list(check_schema(schema, p, status_enabled))


class CustomResourceDefinitionStrategy(Strategy):
    """apiextensions.k8s.io/v1 CustomResourceDefinition: the CRD object's defaults,
    preparation and validation (serving what it defines is ``apiserver/crds.py``'s)."""

    has_status = True

    def default(self, obj: Obj) -> None:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return
        names = spec.get("names")
        if isinstance(names, dict):
            if not names.get("singular") and names.get("kind"):
                names["singular"] = str(names["kind"]).lower()
            if not names.get("listKind") and names.get("kind"):
                names["listKind"] = f"{names['kind']}List"
        conv = spec.get("conversion")
        if not isinstance(conv, dict):
            spec["conversion"] = {"strategy": "None"}
        elif conv.get("strategy") == "Webhook":
            svc = _d(_d(conv.get("webhook")).get("clientConfig")).get("service")
            if isinstance(svc, dict):
                svc.setdefault("port", 443)

    def prepare_for_create(self, obj: Obj) -> None:
        super().prepare_for_create(obj)
        stored = storage_version(obj)
        obj["status"] = {
            "acceptedNames": {"plural": "", "kind": ""},
            "storedVersions": [stored] if stored else [],
        }

    def prepare_for_update(self, new: Obj, old: Obj) -> None:
        super().prepare_for_update(new, old)
        stored = storage_version(new)
        if stored:
            status = new.setdefault("status", {})
            versions = status.setdefault("storedVersions", [])
            if stored not in versions:
                versions.append(stored)

    def prepare_for_delete(self, obj: Obj, now: str) -> None:
        meta = obj["metadata"]
        finalizers = meta.setdefault("finalizers", [])
        if CLEANUP_FINALIZER not in finalizers:
            finalizers.append(CLEANUP_FINALIZER)
        set_condition(
            obj,
            {
                "type": "Terminating",
                "status": "True",
                "reason": "InstanceDeletionPending",
                "message": "CustomResourceDefinition marked for deletion; CustomResource deletion will begin soon",
            },
            now,
        )

    def validate_metadata(self, obj: Obj, namespaced: bool) -> list[FieldError]:
        errs = validate_object_meta(obj.get("metadata", {}), namespaced, self.name_format)
        name = _d(obj.get("metadata")).get("name") or ""
        spec = _d(obj.get("spec"))
        want = f"{_d(spec.get('names')).get('plural', '')}.{spec.get('group', '')}"
        if name and name != want:
            errs.append(invalid("metadata.name", name, 'must be spec.names.plural+"."+spec.group'))
        return errs

    def validate(self, obj: Obj) -> list[FieldError]:
        return self._spec_errors(obj) + _approval_errors(obj, None)

    @staticmethod
    def _spec_errors(obj: Obj) -> list[FieldError]:
        """``validateCustomResourceDefinitionSpec``."""
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return [required("spec", "")]
        errs: list[FieldError] = []
        group = spec.get("group") or ""
        if not group:
            errs.append(required("spec.group", ""))
        elif msgs := is_dns1123_subdomain(str(group)):
            errs.append(invalid("spec.group", group, ",".join(msgs)))
        elif len(str(group).split(".")) < 2:
            errs.append(invalid("spec.group", group, "should be a domain with at least one dot"))
        scope = spec.get("scope") or ""
        if not scope:
            errs.append(required("spec.scope", ""))
        elif scope not in ("Cluster", "Namespaced"):
            errs.append(not_supported("spec.scope", scope, ["Cluster", "Namespaced"]))
        versions = [v for v in _l(spec.get("versions")) if isinstance(v, dict)]
        storage_count = 0
        seen: set[str] = set()
        unique = True
        for i, version in enumerate(versions):
            path = f"spec.versions[{i}]"
            if version.get("storage") is True:
                storage_count += 1
            vname = str(version.get("name") or "")
            if vname in seen:
                unique = False
            seen.add(vname)
            if msgs := is_dns1035_label(vname):
                errs.append(invalid(f"{path}.name", vname, ",".join(msgs)))
            subs = _d(version.get("subresources"))
            errs += _schema_errors(version, path, isinstance(subs.get("status"), dict))
            errs += _subresources_errors(subs, f"{path}.subresources")
            for j, col in enumerate(_l(version.get("additionalPrinterColumns"))):
                errs += _column_errors(_d(col), f"{path}.additionalPrinterColumns[{j}]")
            errs += _selectable_errors(version, path)
        if not versions:
            errs.append(required("spec.versions", ""))
        if not unique:
            errs.append(invalid("spec.versions", versions, "must contain unique version names"))
        if storage_count != 1:
            errs.append(
                invalid(
                    "spec.versions",
                    versions,
                    "must have exactly one version marked as storage version",
                )
            )
        names = _d(spec.get("names"))
        for key in ("plural", "singular", "kind", "listKind"):
            if not names.get(key):
                errs.append(required(f"spec.names.{key}", ""))
        errs += _names_errors(names, "spec.names")
        conv = _d(spec.get("conversion"))
        strategy = conv.get("strategy") or ""
        if not strategy:
            errs.append(required("spec.conversion.strategy", ""))
        elif strategy not in ("None", "Webhook"):
            errs.append(not_supported("spec.conversion.strategy", strategy, ["None", "Webhook"]))
        elif strategy == "None" and conv.get("webhook") is not None:
            errs.append(
                forbidden(
                    "spec.conversion.webhook",
                    "should not be set when strategy is not set to Webhook",
                )
            )
        elif strategy == "Webhook":
            errs += _webhook_errors(conv)
        return errs

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        errs = self._spec_errors(new)
        spec, old_spec = _d(new.get("spec")), _d(old.get("spec"))
        established = (find_condition(old, "Established") or {}).get("status") == "True"
        if established:
            errs += validate_immutable(spec.get("scope"), old_spec.get("scope"), "spec.scope")
            errs += validate_immutable(
                _d(spec.get("names")).get("kind"),
                _d(old_spec.get("names")).get("kind"),
                "spec.names.kind",
            )
        errs += validate_immutable(spec.get("group"), old_spec.get("group"), "spec.group")
        errs += validate_immutable(
            _d(spec.get("names")).get("plural"),
            _d(old_spec.get("names")).get("plural"),
            "spec.names.plural",
        )
        errs += self._stored_versions_errors(new)
        return errs + _approval_errors(new, old)

    def validate_status_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return _names_errors(_d(_d(new.get("status")).get("acceptedNames")), "status.acceptedNames")

    @staticmethod
    def _stored_versions_errors(crd: Obj) -> list[FieldError]:
        """``ValidateCustomResourceDefinitionStoredVersions``."""
        stored = [str(v) for v in _l(_d(crd.get("status")).get("storedVersions"))]
        path = "status.storedVersions"
        if not stored:
            return [invalid(path, stored, "must have at least one stored version")]
        errs: list[FieldError] = []
        names = set()
        for v in _l(_d(crd.get("spec")).get("versions")):
            if not isinstance(v, dict):
                continue
            names.add(v.get("name"))
            if v.get("storage") is True and v.get("name") not in stored:
                errs.append(invalid(path, v, "must have the storage version " + str(v.get("name"))))
        for i, v in enumerate(stored):
            if v not in names:
                errs.append(invalid(f"{path}[{i}]", v, "must appear in spec.versions"))
        return errs
