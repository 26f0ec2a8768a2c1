"""Strategy for apiregistration.k8s.io/v1 APIServices (the aggregation layer's registrations).

An APIService claims one group-version: ``spec.service`` names the Service whose
endpoints serve it (an extension API server such as metrics-server), or is null for a
group-version this API server serves itself ("local", kept by ``apiserver/aggregator.py``
as upstream's autoregister controller does). Validation is upstream's
``ValidateAPIService``: the name must be ``<version>.<group>``, priorities within range,
``caBundle`` and ``insecureSkipTLSVerify`` exclusive and absent on local services. The
``Available`` condition lives in ``status``, written by the availability controller.

Called by the generic store through the registry table (``table.py``).
"""

from __future__ import annotations

import base64
import binascii

from corral.api.errors import FieldError, invalid, not_supported, required
from corral.api.validation import (
    is_dns1035_label,
    is_dns1123_subdomain,
    is_valid_path_segment_name,
    is_valid_port_num,
    validate_object_meta,
)
from corral.apiserver.registry.base import Obj, Strategy

DEFAULT_SERVICE_PORT = 443
CONDITION_STATUSES = ["True", "False", "Unknown"]


def _ca_bundle_len(value: object) -> int:
    """Bytes in ``spec.caBundle`` (base64 on the wire, as any ``[]byte``)."""
    if not isinstance(value, str) or not value:
        return 0
    try:
        return len(base64.b64decode(value, validate=True))
    except (binascii.Error, ValueError):
        return len(value)


class APIServiceStrategy(Strategy):
    has_status = True
    name_format = "path"

    def default(self, obj: Obj) -> None:
        spec = obj.get("spec")
        if isinstance(spec, dict):
            svc = spec.get("service")
            if isinstance(svc, dict) and svc.get("port") is None:
                svc["port"] = DEFAULT_SERVICE_PORT

    def validate_metadata(self, obj: Obj, namespaced: bool) -> list[FieldError]:
        errs = validate_object_meta(obj.get("metadata", {}), False, "path")
        name = (obj.get("metadata") or {}).get("name") or ""
        spec = obj.get("spec") or {}
        want = f"{spec.get('version') or ''}.{spec.get('group') or ''}"
        if name and not is_valid_path_segment_name(name) and name != want:
            errs.append(
                invalid("metadata.name", name, f'must be `spec.version+"."+spec.group`: "{want}"')
            )
        return errs

    def validate(self, obj: Obj) -> list[FieldError]:
        spec = obj.get("spec") or {}
        errs: list[FieldError] = []
        group = spec.get("group") or ""
        version = spec.get("version") or ""
        if not group and version != "v1":
            errs.append(
                required(
                    "spec.group", "only v1 may have an empty group and it better be legacy kube"
                )
            )
        if group:
            errs += [invalid("spec.group", group, m) for m in is_dns1123_subdomain(group)]
        errs += [invalid("spec.version", version, m) for m in is_dns1035_label(version)]
        gpm = spec.get("groupPriorityMinimum") or 0
        if not isinstance(gpm, int) or gpm <= 0 or gpm > 20000:
            errs.append(
                invalid("spec.groupPriorityMinimum", gpm, "must be positive and less than 20000")
            )
        vp = spec.get("versionPriority") or 0
        if not isinstance(vp, int) or vp <= 0 or vp > 1000:
            errs.append(invalid("spec.versionPriority", vp, "must be positive and less than 1000"))
        ca_len = _ca_bundle_len(spec.get("caBundle"))
        skip = bool(spec.get("insecureSkipTLSVerify"))
        svc = spec.get("service")
        if not isinstance(svc, dict):
            svc = {} if svc else None
        if svc is None:
            if ca_len:
                errs.append(
                    invalid(
                        "spec.caBundle",
                        f"{ca_len} bytes",
                        "local APIServices may not have a caBundle",
                    )
                )
            if skip:
                errs.append(
                    invalid(
                        "spec.insecureSkipTLSVerify",
                        skip,
                        "local APIServices may not have insecureSkipTLSVerify",
                    )
                )
            return errs
        if not svc.get("namespace"):
            errs.append(required("spec.service.namespace"))
        if not svc.get("name"):
            errs.append(required("spec.service.name"))
        port = svc.get("port", DEFAULT_SERVICE_PORT)
        bad_port = is_valid_port_num(port)
        if bad_port:
            errs.append(
                invalid("spec.service.port", port, "port is not valid: " + ", ".join(bad_port))
            )
        if skip and ca_len:
            errs.append(
                invalid(
                    "spec.insecureSkipTLSVerify", skip, "may not be true if caBundle is present"
                )
            )
        return errs

    def validate_status_update(self, new: Obj, old: Obj) -> list[FieldError]:
        errs: list[FieldError] = []
        conditions = (new.get("status") or {}).get("conditions") or []
        for i, c in enumerate(conditions):
            status = (c or {}).get("status")
            if status not in CONDITION_STATUSES:
                errs.append(
                    not_supported(f"status.conditions[{i}].status", status, CONDITION_STATUSES)
                )
        return errs
