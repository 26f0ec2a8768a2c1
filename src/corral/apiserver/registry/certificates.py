"""Strategy for certificates.k8s.io/v1 CertificateSigningRequests (cluster-scoped), with
its ``status`` and ``approval`` subresources, as upstream's
``pkg/registry/certificates/certificates``.

Create clears ``spec.username/uid/groups/extra`` and the status (the requestor's identity
is filled in by the ``csr_admission.requestor`` admission plugin, which sees the request's
user); the main resource never changes spec or status after create; ``/status`` changes
the certificate and non-approval conditions (the signer's write); ``/approval`` changes
the conditions only (``kubectl certificate approve|deny``). Validation follows
``pkg/apis/certificates/validation``: the request must be a PEM ``CERTIFICATE REQUEST``
with a valid signature (``cryptography`` is imported only then), usages known and
distinct, a ``signerName`` of the form ``example.com/name``, ``expirationSeconds`` at
least 600, Approved/Denied/Failed conditions only ``True``, Approved and Denied
exclusive, no condition removed, approval conditions only through ``/approval``, the
certificate only through ``/status`` and never replaced once set.

The table row is ``kubectl get csr``'s: NAME AGE SIGNERNAME REQUESTOR REQUESTEDDURATION
CONDITION.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar

from corral.api.errors import FieldError, duplicate, forbidden, invalid, not_supported, required
from corral.api.validation import is_dns1123_label, is_dns1123_subdomain
from corral.apiserver.registry.base import Obj, Strategy

GROUP = "certificates.k8s.io"
APPROVED, DENIED, FAILED = "Approved", "Denied", "Failed"
LEGACY_UNKNOWN = "kubernetes.io/legacy-unknown"
KUBE_APISERVER_CLIENT = "kubernetes.io/kube-apiserver-client"
KUBELET_CLIENT = "kubernetes.io/kube-apiserver-client-kubelet"
KUBELET_SERVING = "kubernetes.io/kubelet-serving"

VALID_USAGES = sorted(
    [
        "signing", "digital signature", "content commitment", "key encipherment",
        "key agreement", "data encipherment", "cert sign", "crl sign", "encipher only",
        "decipher only", "any", "server auth", "client auth", "code signing",
        "email protection", "s/mime", "ipsec end system", "ipsec tunnel", "ipsec user",
        "timestamping", "ocsp signing", "microsoft sgc", "netscape sgc",
    ]
)  # fmt: skip
_TRUE_ONLY = (APPROVED, DENIED, FAILED)
_STATUSES = ["False", "True", "Unknown"]


def _request_bytes(obj: Obj) -> bytes | None:
    raw = (obj.get("spec") or {}).get("request")
    if not isinstance(raw, str):
        return None
    try:
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        return None


def parse_csr(pem: bytes) -> Any:
    """The ``x509.CertificateRequest`` in ``pem``; ``ValueError`` with upstream's words."""
    from cryptography import x509

    start = pem.find(b"-----BEGIN ")
    if start < 0 or not pem[start:].startswith(b"-----BEGIN CERTIFICATE REQUEST-----"):
        raise ValueError("PEM block type must be CERTIFICATE REQUEST")
    try:
        return x509.load_pem_x509_csr(pem[start:])
    except ValueError as e:
        raise ValueError(f"x509: malformed certificate request: {e}") from None


def _check_request(obj: Obj) -> str:
    """The problem with ``spec.request`` (upstream's ``validateCSR``), or ``""``."""
    pem = _request_bytes(obj)
    if pem is None:
        return "PEM block type must be CERTIFICATE REQUEST"
    try:
        csr = parse_csr(pem)
    except ValueError as e:
        return str(e)
    if not csr.is_signature_valid:
        return "x509: ECDSA verification failure"
    return ""


def _check_certificate(raw: Any) -> str:
    """``validateCertificate``: ``status.certificate`` holds only CERTIFICATE blocks."""
    if not raw:
        return ""
    try:
        pem = base64.b64decode(str(raw), validate=True)
    except (binascii.Error, ValueError):
        return "must contain at least one CERTIFICATE PEM block"
    from cryptography import x509

    blocks = 0
    for chunk in pem.split(b"-----BEGIN ")[1:]:
        kind = chunk.split(b"-----", 1)[0].decode(errors="replace")
        if kind != "CERTIFICATE":
            return f'only CERTIFICATE PEM blocks are allowed, found "{kind}"'
        try:
            x509.load_pem_x509_certificate(b"-----BEGIN " + chunk)
        except ValueError as e:
            return f"x509: malformed certificate: {e}"
        blocks += 1
    return "" if blocks else "must contain at least one CERTIFICATE PEM block"


def validate_signer_name(path: str, name: str) -> list[FieldError]:
    """``ValidateSignerName``: ``domain.example/path`` within upstream's limits."""
    if not name:
        return [required(path)]
    parts = name.split("/")
    if len(parts) != 2:
        return [
            invalid(
                path,
                name,
                "must be a fully qualified domain and path of the form 'example.com/signer-name'",
            )
        ]
    errs: list[FieldError] = []
    domain, rest = parts
    if len(domain) > 253:
        errs.append(FieldError("FieldValueTooLong", path, "", "must have at most 253 bytes"))
    labels = domain.split(".")
    for lbl in labels:
        problems = is_dns1123_label(lbl)
        if problems:
            errs += [invalid(path, domain, f'validating label "{lbl}": {p}') for p in problems]
            break
    if len(labels) < 2:
        errs.append(
            invalid(path, domain, "should be a domain with at least two segments separated by dots")
        )
    for lbl in rest.split("."):
        problems = is_dns1123_subdomain(lbl)
        if problems:
            errs += [invalid(path, rest, f'validating label "{lbl}": {p}') for p in problems]
            break
    if len(rest) > 253 + 63 + 1:
        errs.append(FieldError("FieldValueTooLong", path, "", "must have at most 317 bytes"))
    return errs


def conditions(obj: Mapping[str, Any]) -> list[Obj]:
    return [c for c in (obj.get("status") or {}).get("conditions") or [] if isinstance(c, dict)]


def has_condition(obj: Obj, kind: str) -> bool:
    return any(c.get("type") == kind for c in conditions(obj))


def _find(obj: Obj, kind: str) -> list[Obj]:
    return [c for c in conditions(obj) if c.get("type") == kind]


def validate_csr(obj: Obj, old: Obj | None = None) -> list[FieldError]:
    """``validateCertificateSigningRequest`` with the options ``getValidationOptions``
    derives from the stored object (what it already holds is tolerated)."""
    spec = obj.get("spec") or {}
    errs: list[FieldError] = []
    problem = _check_request(obj)
    if problem:
        errs.append(invalid("spec.request", spec.get("request") or "", problem))
    usages = spec.get("usages") or []
    old_usages = ((old or {}).get("spec") or {}).get("usages") or []
    if not usages:
        errs.append(required("spec.usages"))
    if not any(u not in VALID_USAGES for u in old_usages):
        for i, u in enumerate(usages):
            if u not in VALID_USAGES:
                errs.append(not_supported(f"spec.usages[{i}]", u, VALID_USAGES))
    if len(set(old_usages)) == len(old_usages):
        seen: set[str] = set()
        for i, u in enumerate(usages):
            if u in seen:
                errs.append(duplicate(f"spec.usages[{i}]", u))
            seen.add(u)
    signer = str(spec.get("signerName") or "")
    old_signer = ((old or {}).get("spec") or {}).get("signerName")
    if signer == LEGACY_UNKNOWN and old_signer != LEGACY_UNKNOWN:
        errs.append(
            invalid(
                "spec.signerName",
                signer,
                "the legacy signerName is not allowed via this API version",
            )
        )
    elif signer != LEGACY_UNKNOWN:
        errs += validate_signer_name("spec.signerName", signer)
    seconds = spec.get("expirationSeconds")
    if isinstance(seconds, int) and seconds < 600:
        errs.append(
            invalid(
                "spec.expirationSeconds",
                seconds,
                "may not specify a duration less than 600 seconds (10 minutes)",
            )
        )
    errs += _validate_conditions(obj, old)
    cert = (obj.get("status") or {}).get("certificate")
    old_cert = ((old or {}).get("status") or {}).get("certificate")
    tolerate = old is not None and (cert == old_cert or bool(_check_certificate(old_cert)))
    if not tolerate:
        problem = _check_certificate(cert)
        if problem:
            errs.append(invalid("status.certificate", "<certificate data>", problem))
    return errs


def _validate_conditions(obj: Obj, old: Obj | None) -> list[FieldError]:
    old_types = [c.get("type") for c in conditions(old or {})]
    allow_both = APPROVED in old_types and DENIED in old_types
    allow_dup = len(set(old_types)) != len(old_types)
    allow_empty = "" in old_types or None in old_types
    errs: list[FieldError] = []
    seen: set[str] = set()
    approved = denied = False
    for i, c in enumerate(conditions(obj)):
        path = f"status.conditions[{i}]"
        kind = str(c.get("type") or "")
        if not kind and not allow_empty:
            errs.append(required(f"{path}.type"))
        status = c.get("status") or ""
        allowed = ["True"] if kind in _TRUE_ONLY else _STATUSES
        if not status:
            errs.append(required(f"{path}.status"))
        elif status not in allowed:
            errs.append(not_supported(f"{path}.status", status, allowed))
        if not allow_both:
            exclusive = "Approved and Denied conditions are mutually exclusive"
            if kind == APPROVED:
                approved = True
                if denied:
                    errs.append(invalid(f"{path}.type", kind, exclusive))
            elif kind == DENIED:
                denied = True
                if approved:
                    errs.append(invalid(f"{path}.type", kind, exclusive))
        if not allow_dup:
            if kind in seen:
                errs.append(duplicate(f"{path}.type", kind))
            seen.add(kind)
    return errs


def validate_csr_update(new: Obj, old: Obj, subresource: str = "") -> list[FieldError]:
    """``validateCertificateSigningRequestUpdate`` for the main resource, ``status``
    (may set the certificate) or ``approval`` (may set Approved/Denied)."""
    errs = validate_csr(new, old)
    for kind in (APPROVED, DENIED, FAILED):
        if len(_find(new, kind)) < len(_find(old, kind)):
            errs.append(
                forbidden(
                    "status.conditions", f'updates may not remove a condition of type "{kind}"'
                )
            )
    if subresource != "approval":
        for kind in (APPROVED, DENIED):
            before, after = _find(old, kind), _find(new, kind)
            if len(after) > len(before):
                errs.append(
                    forbidden(
                        "status.conditions", f'updates may not add a condition of type "{kind}"'
                    )
                )
            elif len(after) == len(before) and after != before:
                errs.append(
                    forbidden(
                        "status.conditions", f'updates may not modify a condition of type "{kind}"'
                    )
                )
    cert = (new.get("status") or {}).get("certificate") or ""
    old_cert = (old.get("status") or {}).get("certificate") or ""
    if cert != old_cert:
        if subresource != "status":
            errs.append(forbidden("status.certificate", "updates may not set certificate content"))
        elif old_cert:
            errs.append(
                forbidden(
                    "status.certificate", "updates may not modify existing certificate content"
                )
            )
    return errs


def _stamp_conditions(new: Obj, old: Obj, now: str) -> None:
    """``populateConditionTimestamps``: lastUpdateTime now when unset; lastTransitionTime
    kept from the old condition of the same type and status, else now."""
    before = {c.get("type"): c for c in conditions(old)}
    for c in conditions(new):
        if not c.get("lastUpdateTime"):
            c["lastUpdateTime"] = now
        if not c.get("lastTransitionTime"):
            prev = before.get(c.get("type"))
            if prev is not None and prev.get("status") == c.get("status"):
                c["lastTransitionTime"] = prev.get("lastTransitionTime") or now
            else:
                c["lastTransitionTime"] = now
    if "conditions" in (new.get("status") or {}) and not new["status"]["conditions"]:
        new["status"].pop("conditions")


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class CertificateSigningRequestStrategy(Strategy):
    has_status = True
    spec_fields = ()
    name_format = "path"  # "We don't care what you call your certificate requests."
    field_selectors = {
        "spec.signerName": lambda o: str((o.get("spec") or {}).get("signerName", ""))
    }
    #: subresources that update the object besides status (``approval``)
    update_subresources: ClassVar[tuple[str, ...]] = ("approval",)

    def prepare_for_create(self, obj: Obj) -> None:
        spec = obj.setdefault("spec", {})
        for k in ("username", "uid", "groups", "extra"):
            spec.pop(k, None)
        obj.pop("status", None)
        obj["status"] = {}

    def prepare_for_update(self, new: Obj, old: Obj) -> None:
        new["spec"] = old.get("spec")
        if "status" in old:
            new["status"] = old["status"]
        else:
            new.pop("status", None)

    def prepare_for_status_update(self, new: Obj, old: Obj) -> None:
        new["spec"] = old.get("spec")
        status = new.setdefault("status", {})
        if not isinstance(status, dict):
            new["status"] = status = {}
        # Approved/Denied stay as stored; the signer may add Failed
        kept = [c for c in conditions(new) if c.get("type") not in (APPROVED, DENIED)]
        status["conditions"] = _find(old, APPROVED) + _find(old, DENIED) + kept
        _stamp_conditions(new, old, _now())

    def prepare_for_subresource_update(self, subresource: str, new: Obj, old: Obj) -> None:
        """``/approval``: only the conditions change."""
        new["spec"] = old.get("spec")
        status = dict(old.get("status") or {})
        status["conditions"] = conditions(new)
        new["status"] = status
        _stamp_conditions(new, old, _now())
        if not new["status"]:
            new.pop("status")

    def validate(self, obj: Obj) -> list[FieldError]:
        return validate_csr(obj)

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return validate_csr_update(new, old)

    def validate_status_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return validate_csr_update(new, old, "status")

    def validate_subresource_update(self, subresource: str, new: Obj, old: Obj) -> list[FieldError]:
        return validate_csr_update(new, old, subresource)


# --- kubectl get csr -----------------------------------------------------------------------------
def condition_summary(obj: Mapping[str, Any]) -> str:
    """``extractCSRStatus``: Denied|Approved|Pending, then ``,Failed`` and ``,Issued``."""
    kinds = {c.get("type") for c in conditions(obj)}
    out = DENIED if DENIED in kinds else APPROVED if APPROVED in kinds else "Pending"
    if FAILED in kinds:
        out += ",Failed"
    if (obj.get("status") or {}).get("certificate"):
        out += ",Issued"
    return out


def csr_cells(obj: Mapping[str, Any], now: datetime, human_duration: Any, age: str) -> list[Any]:
    """NAME AGE SIGNERNAME REQUESTOR REQUESTEDDURATION CONDITION."""
    spec = obj.get("spec") or {}
    seconds = spec.get("expirationSeconds")
    duration = human_duration(float(seconds)) if isinstance(seconds, int) else "<none>"
    return [
        (obj.get("metadata") or {}).get("name", ""),
        age,
        spec.get("signerName", ""),
        spec.get("username", ""),
        duration,
        condition_summary(obj),
    ]
