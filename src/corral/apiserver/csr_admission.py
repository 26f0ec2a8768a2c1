"""Admission plugins of CertificateSigningRequests, as upstream's.

- ``requestor`` (the strategy's ``PrepareForCreate`` upstream, which sees the request's
  user): a new CSR's ``spec.username``, ``uid``, ``groups`` and ``extra`` are who created
  it; an internal write (no user) leaves them empty.
- ``CertificateSubjectRestriction``: the ``kubernetes.io/kube-apiserver-client`` signer
  may not be asked for a certificate in ``system:masters``.
- ``CertificateApproval``: writing Approved/Denied through ``/approval`` needs the
  ``approve`` verb on ``signers`` named the CSR's signerName (or ``DOMAIN/*``).
- ``CertificateSigning``: setting ``status.certificate`` through ``/status`` needs
  ``sign`` on the signer likewise.

Refusals are 403 in admission's shape (``certificatesigningrequests.certificates.k8s.io
"NAME" is forbidden: ...``). The authorizer is ``registry.authorizer`` (None: no check).
``register`` adds them to a registry (``server.py``).
"""

from __future__ import annotations

import base64
from typing import Any

from corral.api import errors, rbac
from corral.apiserver.admission_chain import CREATE, UPDATE, AdmissionRequest
from corral.apiserver.registry.certificates import GROUP, KUBE_APISERVER_CLIENT, parse_csr
from corral.apiserver.store import Registry

Obj = dict[str, Any]
PLURAL = "certificatesigningrequests"


def _forbidden(req: AdmissionRequest, why: str) -> errors.StatusError:
    return errors.forbidden_error(
        f'{PLURAL}.{GROUP} "{req.name}" is forbidden: {why}', PLURAL, GROUP, req.name
    )


def requestor(req: AdmissionRequest) -> None:
    if req.operation != CREATE or req.subresource or req.obj is None or req.user is None:
        return
    spec = req.obj.setdefault("spec", {})
    user = req.user
    spec["username"] = user.username
    if user.uid:
        spec["uid"] = user.uid
    if user.groups:
        spec["groups"] = list(user.groups)
    if user.extra:
        spec["extra"] = {k: list(v) for k, v in user.extra.items()}


def _organizations(obj: Obj) -> list[str]:
    from cryptography.x509.oid import NameOID

    try:
        pem = base64.b64decode(str((obj.get("spec") or {}).get("request") or ""))
        csr = parse_csr(pem)
    except ValueError:
        return []  # validation refuses it
    return [str(a.value) for a in csr.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]


def subject_restriction(req: AdmissionRequest) -> None:
    if req.operation != CREATE or req.subresource or req.obj is None:
        return
    if (req.obj.get("spec") or {}).get("signerName") != KUBE_APISERVER_CLIENT:
        return
    if rbac.PRIVILEGED_GROUP in _organizations(req.obj):
        raise _forbidden(
            req, f"use of {KUBE_APISERVER_CLIENT} signer with system:masters group is not allowed"
        )


def authorized_for_signer(authorizer: Any, req: AdmissionRequest, verb: str, signer: str) -> bool:
    """``IsAuthorizedForSignerName``: ``verb`` on ``signers/SIGNER`` or ``signers/DOMAIN/*``."""
    if authorizer is None or req.user is None:
        return True
    for name in (signer, signer.split("/", 1)[0] + "/*"):
        attrs = rbac.Attributes(
            req.user.username, tuple(req.user.groups), verb, GROUP, "signers", name=name
        )
        if authorizer.authorize(attrs).allowed:
            return True
    return False


class SignerChecks:
    """CertificateApproval and CertificateSigning over ``registry.authorizer``."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def __call__(self, req: AdmissionRequest) -> None:
        if req.operation != UPDATE or req.user is None or req.obj is None or req.old is None:
            return
        signer = str((req.old.get("spec") or {}).get("signerName") or "")
        authorizer = self.registry.authorizer
        if req.subresource == "approval":
            if not authorized_for_signer(authorizer, req, "approve", signer):
                raise _forbidden(
                    req, f'user not permitted to approve requests with signerName "{signer}"'
                )
        elif req.subresource == "status":
            new, old = req.obj.get("status") or {}, req.old.get("status") or {}
            if new.get("certificate") == old.get("certificate") and new.get(
                "conditions"
            ) == old.get("conditions"):
                return
            if not authorized_for_signer(authorizer, req, "sign", signer):
                raise _forbidden(
                    req, f'user not permitted to sign requests with signerName "{signer}"'
                )


def register(registry: Registry) -> None:
    """Add the CSR plugins to ``registry.admission``."""
    plugins = registry.admission[(GROUP, PLURAL)]
    plugins += [requestor, subject_restriction, SignerChecks(registry)]
