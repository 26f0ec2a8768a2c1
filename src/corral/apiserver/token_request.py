"""The TokenRequest API: ``POST .../namespaces/NS/serviceaccounts/NAME/token``.

authentication.k8s.io/v1 TokenRequest as the create-only ``token`` subresource of
ServiceAccounts (``kubectl create token``, the agent filling a pod's projected
``serviceAccountToken``), as upstream's ``pkg/registry/core/serviceaccount/storage``
``TokenREST``: the body is decoded typed (400), its name and namespace must match the
URL, the ServiceAccount must exist (404), the spec is defaulted (expirationSeconds 3600,
the API server's audiences) and validated (422, 10 minutes to 2^32 seconds), the
admission chain sees the CREATE of ``serviceaccounts/token`` (NodeRestriction), and a
``boundObjectRef`` (Pod, Secret or Node of the core group) must exist with the uid given
(404, 409). The answer (201) is the TokenRequest with ``status.token`` and
``status.expirationTimestamp``; a token asked for 3607 s by a pod (the ServiceAccount
admission's projected volume) really lives a year with a ``warnafter`` claim, as
upstream's ``--service-account-extend-token-expiration``. The token itself is never
logged. ``ResourceHandler.subresource`` hands the request here.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from corral.api import errors, schema
from corral.apiserver.admission_chain import CREATE
from corral.apiserver.handlers import json_response
from corral.apiserver.registry.base import ResourceInfo
from corral.apiserver.request import decode_body
from corral.apiserver.sa_tokens import (
    EXTENDED_EXPIRATION,
    WARN_ONLY_EXPIRATION,
    ServiceAccountTokens,
)
from corral.apiserver.store import Registry, WriteOptions
from corral.util.clock import rfc3339

Obj = dict[str, Any]

GROUP = "authentication.k8s.io"
KIND = "TokenRequest"
DEFAULT_EXPIRATION = 3600
MIN_EXPIRATION = 10 * 60
MAX_EXPIRATION = 1 << 32
MAX_BODY = 3 * 1024 * 1024
#: boundObjectRef kinds (core group) -> their resource
BOUND_KINDS = {"Pod": "pods", "Secret": "secrets", "Node": "nodes"}


def _gvk(ref: Obj) -> tuple[str, str, str]:
    """(group, version, kind) of a reference, as ``schema.FromAPIVersionAndKind``."""
    api_version = str(ref.get("apiVersion") or "")
    group, _, version = api_version.rpartition("/")
    return group, version, str(ref.get("kind") or "")


def validate(spec: Obj) -> list[errors.FieldError]:
    """upstream's ``ValidateTokenRequest``."""
    secs = spec.get("expirationSeconds")
    errs = []
    if isinstance(secs, int) and secs < MIN_EXPIRATION:
        errs.append(
            errors.invalid(
                "spec.expirationSeconds", secs, "may not specify a duration less than 10 minutes"
            )
        )
    if isinstance(secs, int) and secs > MAX_EXPIRATION:
        errs.append(
            errors.invalid(
                "spec.expirationSeconds",
                secs,
                "may not specify a duration larger than 2^32 seconds",
            )
        )
    return errs


class TokenRequests:
    """Answers the ``token`` subresource of ServiceAccounts with ``tokens``."""

    def __init__(self, registry: Registry, tokens: ServiceAccountTokens) -> None:
        self.registry = registry
        self.tokens = tokens

    def _get(self, plural: str, ns: str, name: str) -> Obj:
        info = self.registry.by_gvr[("", "v1", plural)]
        return self.registry.get(info, ns, name).obj()

    async def create(
        self, request: web.Request, info: ResourceInfo, ns: str, name: str
    ) -> web.Response:
        if request.content_length is not None and request.content_length > MAX_BODY:
            raise errors.too_large()
        raw = await request.content.read(MAX_BODY + 1)
        body = decode_body(raw, request.headers.get("Content-Type", "application/json"))
        opts = WriteOptions(
            dry_run=bool(request.query.getall("dryRun", [])), user=request.get("user")
        )
        out, warnings = self.answer(info, ns, name, body, opts)
        headers = {}
        if warnings:
            headers["Warning"] = ", ".join(f'299 - "{w}"' for w in warnings)
        return json_response(orjson.dumps(out), 201, headers)

    def answer(
        self, info: ResourceInfo, ns: str, name: str, body: Any, opts: WriteOptions
    ) -> tuple[Obj, list[str]]:
        """The TokenRequest answered (its status filled) and the warnings, for ``body``
        posted to ``serviceaccounts/NAME/token`` in ``ns``; raises upstream's errors."""
        if not isinstance(body, dict):
            raise errors.bad_request(f"not a {KIND}")
        node_schema = schema.for_kind(GROUP, "v1", KIND)
        if node_schema is not None:
            try:
                typed = schema.check_types(body, node_schema)
            except (schema.TypeMismatch, schema.BadTime) as e:
                raise errors.bad_request(
                    f'{KIND} in version "v1" cannot be handled as a {KIND}: {e}'
                ) from None
            assert isinstance(typed, dict)
            body = typed
        meta = body.get("metadata") if isinstance(body.get("metadata"), dict) else {}
        if meta.get("name") and meta["name"] != name:
            err = errors.invalid(
                "metadata.name", meta["name"], "must match the service account name if specified"
            )
            raise errors.invalid_object(KIND, GROUP, name, [err])
        if meta.get("namespace") and meta["namespace"] != ns:
            err = errors.invalid(
                "metadata.namespace",
                meta["namespace"],
                "must match the service account namespace if specified",
            )
            raise errors.invalid_object(KIND, GROUP, name, [err])
        sa = self._get("serviceaccounts", ns, name)
        spec = body.get("spec") if isinstance(body.get("spec"), dict) else {}
        spec.setdefault("expirationSeconds", DEFAULT_EXPIRATION)
        if not spec.get("audiences"):
            spec["audiences"] = list(self.tokens.audiences)
        now = int(self.registry.clock.now())
        out: Obj = {
            "kind": KIND,
            "apiVersion": f"{GROUP}/v1",
            "metadata": {
                "name": meta.get("name") or name,
                "namespace": meta.get("namespace") or ns,
                "creationTimestamp": rfc3339(now),
            },
            "spec": spec,
        }
        errs = validate(spec)
        if errs:
            raise errors.invalid_object(KIND, GROUP, "", errs)
        self.registry.admit(CREATE, info, ns, name, "token", out, None, opts)
        pod = secret = node = None
        ref = spec.get("boundObjectRef")
        if isinstance(ref, dict):
            group, version, kind = _gvk(ref)
            ref_name = str(ref.get("name") or "")
            if group != "" or kind not in BOUND_KINDS:
                raise errors.bad_request(
                    f"cannot bind token to object of type {group}/{version}, Kind={kind}"
                )
            bound = self._get(BOUND_KINDS[kind], "" if kind == "Node" else ns, ref_name)
            if kind == "Pod":
                pod = bound
                if (pod.get("spec") or {}).get("serviceAccountName") != name:
                    raise errors.bad_request(
                        f'cannot bind token for serviceaccount "{name}" to pod running with '
                        "different serviceaccount name."
                    )
                node_name = (pod.get("spec") or {}).get("nodeName")
                if node_name:
                    node_info = self.registry.by_gvr[("", "v1", "nodes")]
                    entry = self.registry.entry(node_info, "", node_name)
                    node = entry.obj() if entry is not None else {"metadata": {"name": node_name}}
            elif kind == "Secret":
                secret = bound
            else:
                node = bound
            uid = (bound.get("metadata") or {}).get("uid", "")
            if ref.get("uid") and ref["uid"] != uid:
                raise errors.conflict(
                    kind,
                    group,
                    ref_name,
                    f"the UID in the bound object reference ({ref['uid']}) does not match the "
                    "UID in record. The object might have been deleted and then recreated",
                )
        warnings = []
        requested = int(spec["expirationSeconds"])
        cap = self.tokens.max_expiration
        if cap > 0 and requested > cap:
            warnings.append(
                f"requested expiration of {requested} seconds shortened to {cap} seconds"
            )
            spec["expirationSeconds"] = requested = cap
        exp, warn_after = requested, 0
        if (
            self.tokens.extend_expiration
            and pod is not None
            and requested == WARN_ONLY_EXPIRATION
            and self.tokens.is_kube_audiences(spec["audiences"])
        ):
            warn_after, exp = requested, cap or EXTENDED_EXPIRATION
        issued = self.tokens.issue(
            sa,
            exp,
            spec["audiences"],
            pod=pod,
            secret=secret,
            node=node,
            warn_after=warn_after,
            now=now,
        )
        out["status"] = {"token": issued.token, "expirationTimestamp": rfc3339(now + requested)}
        return out, warnings
