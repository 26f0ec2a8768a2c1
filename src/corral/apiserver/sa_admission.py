"""The ServiceAccount admission plugin: a pod runs as a ServiceAccount that exists, and
gets its token, the cluster CA and its namespace under
``/var/run/secrets/kubernetes.io/serviceaccount``.

Upstream's ``plugin/pkg/admission/serviceaccount`` on ``("", "pods")`` CREATE (the
admission chain, ``admission_chain.py``; internal writes, ``req.user`` None, pass):

- ``spec.serviceAccountName`` defaults to ``default`` (the pod strategy already does);
- the ServiceAccount must exist, else 403 ``error looking up service account NS/SA:
  serviceaccount "SA" not found``. Upstream's plugin waits up to about a second for the
  namespace's ``default`` one, which the controller manager creates; a plugin here
  cannot wait, so while a namespace has no ``default`` ServiceAccount at all (no
  controller manager, or a namespace created an instant ago) a pod naming ``default``
  is admitted as it is, without the token volume;
- unless ``automountServiceAccountToken`` is false (the pod's, then the
  ServiceAccount's), the projected volume ``kube-api-access-<5 random>`` (a 3607 s
  token, ``ca.crt`` of the ``kube-root-ca.crt`` ConfigMap, the namespace by the
  downward API; mode 0644) and a read-only mount of it in every init container and
  container that does not already mount something there;
- the ServiceAccount's ``imagePullSecrets`` when the pod names none;
- the ``kubernetes.io/enforce-mountable-secrets`` annotation (any true value of Go's
  ``strconv.ParseBool``) limits the pod's secrets to the ServiceAccount's ``secrets``,
  at create and when ephemeral containers are added (an UPDATE of
  ``pods/ephemeralcontainers``, upstream's ``limitEphemeralContainerSecretReferences``).

Mirror pods (annotation ``kubernetes.io/config.mirror``) are not changed and may not
use secrets or ServiceAccount token projections. Idempotent: a create retried with a
new generated name sees its own volume and mounts and adds nothing.
"""

from __future__ import annotations

import copy
from typing import Any

from corral.api import errors
from corral.apiserver.admission_chain import CREATE, UPDATE, AdmissionRequest
from corral.apiserver.store import Registry, generate_name

Obj = dict[str, Any]

DEFAULT_SA = "default"
VOLUME_PREFIX = "kube-api-access-"
MOUNT_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
ROOT_CA_CONFIGMAP = "kube-root-ca.crt"
TOKEN_EXPIRATION = 3607
MIRROR_ANNOTATION = "kubernetes.io/config.mirror"
ENFORCE_MOUNTABLE = "kubernetes.io/enforce-mountable-secrets"
#: what Go's ``strconv.ParseBool`` reads as true
_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
EPHEMERAL = "ephemeralcontainers"


def token_volume(name: str) -> Obj:
    """upstream's ``TokenVolumeSource`` as a pod volume named ``name``."""
    return {
        "name": name,
        "projected": {
            "sources": [
                {"serviceAccountToken": {"expirationSeconds": TOKEN_EXPIRATION, "path": "token"}},
                {
                    "configMap": {
                        "name": ROOT_CA_CONFIGMAP,
                        "items": [{"key": "ca.crt", "path": "ca.crt"}],
                    }
                },
                {
                    "downwardAPI": {
                        "items": [
                            {
                                "path": "namespace",
                                "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"},
                            }
                        ]
                    }
                },
            ],
            "defaultMode": 420,
        },
    }


def should_automount(sa: Obj, pod: Obj) -> bool:
    """The pod's ``automountServiceAccountToken``, else the ServiceAccount's, else true."""
    pref = (pod.get("spec") or {}).get("automountServiceAccountToken")
    if isinstance(pref, bool):
        return pref
    pref = sa.get("automountServiceAccountToken")
    return pref if isinstance(pref, bool) else True


def enforce_mountable(sa: Obj) -> bool:
    """Whether ``sa`` limits its pods' secrets (upstream's ``enforceMountableSecrets``:
    the annotation read by ``strconv.ParseBool``)."""
    value = ((sa.get("metadata") or {}).get("annotations") or {}).get(ENFORCE_MOUNTABLE)
    return value in _TRUE


def mount_token(pod: Obj) -> None:
    """Add the token volume (unless one is there) and its mount to every init container
    and container without a mount at ``MOUNT_PATH``, as upstream's
    ``mountServiceAccountToken``."""
    spec = pod.setdefault("spec", {})
    volume_name = ""
    for v in spec.get("volumes") or []:
        if str(v.get("name", "")).startswith(VOLUME_PREFIX):
            volume_name = v["name"]
            break
    has_volume = bool(volume_name)
    if not volume_name:
        volume_name = generate_name(VOLUME_PREFIX)
    needs_volume = False
    for key in ("initContainers", "containers"):
        for c in spec.get(key) or []:
            mounts = c.get("volumeMounts") or []
            if any(m.get("mountPath") == MOUNT_PATH for m in mounts):
                continue
            c["volumeMounts"] = [
                *mounts,
                {"name": volume_name, "readOnly": True, "mountPath": MOUNT_PATH},
            ]
            needs_volume = True
    if not has_volume and needs_volume:
        spec["volumes"] = [*(spec.get("volumes") or []), token_volume(volume_name)]


def secret_names(spec: Obj) -> list[tuple[str, str]]:
    """(where, name) of every Secret the pod spec references (upstream's
    ``VisitPodSecretNames`` over all containers)."""
    found: list[tuple[str, str]] = []
    for ref in spec.get("imagePullSecrets") or []:
        if ref.get("name"):
            found.append(("pull", ref["name"]))
    for key in ("initContainers", "containers", "ephemeralContainers"):
        for c in spec.get(key) or []:
            for src in c.get("envFrom") or []:
                name = (src.get("secretRef") or {}).get("name")
                if name:
                    found.append(("envFrom", name))
            for env in c.get("env") or []:
                name = ((env.get("valueFrom") or {}).get("secretKeyRef") or {}).get("name")
                if name:
                    found.append(("env", name))
    for v in spec.get("volumes") or []:
        if v.get("secret", {}).get("secretName"):
            found.append(("volume", v["secret"]["secretName"]))
        for src in (v.get("projected") or {}).get("sources") or []:
            if (src.get("secret") or {}).get("name"):
                found.append(("volume", src["secret"]["name"]))
        for kind in ("azureFile", "cephfs", "cinder", "flexVolume", "rbd", "scaleIO",
                     "iscsi", "storageos", "csi"):  # fmt: skip
            vol = v.get(kind) or {}
            name = vol.get("secretName") or (vol.get("secretRef") or {}).get("name")
            if not name and kind == "csi":
                name = (vol.get("nodePublishSecretRef") or {}).get("name")
            if name:
                found.append(("volume", name))
    return found


class ServiceAccountAdmission:
    """The plugin, reading ServiceAccounts from the registry's watch cache."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def _service_account(self, namespace: str, name: str) -> Obj | None:
        info = self.registry.by_gvr[("", "v1", "serviceaccounts")]
        entry = self.registry.entry(info, namespace, name)
        return entry.obj() if entry is not None else None

    def admit(self, req: AdmissionRequest) -> None:
        """Mutate and validate one pod create, or check an ephemeral containers update
        (module docstring)."""
        if req.obj is None or req.user is None:
            return
        if req.operation == UPDATE and req.subresource == EPHEMERAL:
            self._limit_ephemeral(req)
            return
        if req.operation != CREATE or req.subresource:
            return
        pod = req.obj
        meta = pod.get("metadata") or {}
        spec = pod.setdefault("spec", {})
        if MIRROR_ANNOTATION in (meta.get("annotations") or {}):
            self._validate_mirror(req, spec)
            return
        if not spec.get("serviceAccountName"):
            spec["serviceAccountName"] = DEFAULT_SA
        sa_name = spec["serviceAccountName"]
        sa = self._service_account(req.namespace, sa_name)
        if sa is None:
            if sa_name == DEFAULT_SA and self._service_account(req.namespace, DEFAULT_SA) is None:
                return  # no default ServiceAccount yet: see the module docstring
            raise self._forbidden(
                req,
                f"error looking up service account {req.namespace}/{sa_name}: "
                f'serviceaccount "{sa_name}" not found',
            )
        if should_automount(sa, pod):
            mount_token(pod)
        if not spec.get("imagePullSecrets") and sa.get("imagePullSecrets"):
            spec["imagePullSecrets"] = [
                {"name": s.get("name", "")} for s in copy.deepcopy(sa["imagePullSecrets"])
            ]
        if enforce_mountable(sa):
            self._limit_secrets(req, sa, spec)

    def _validate_mirror(self, req: AdmissionRequest, spec: Obj) -> None:
        # the pod strategy defaults serviceAccountName, so a mirror pod's name is not
        # refused here as upstream's would be
        if secret_names(spec):
            raise self._forbidden(req, "a mirror pod may not reference secrets")
        for v in spec.get("volumes") or []:
            for src in (v.get("projected") or {}).get("sources") or []:
                if src.get("serviceAccountToken") is not None:
                    raise self._forbidden(
                        req, "a mirror pod may not use ServiceAccountToken volume projections"
                    )

    def _limit_ephemeral(self, req: AdmissionRequest) -> None:
        """upstream's ``limitEphemeralContainerSecretReferences``: the env and envFrom
        secrets of the pod's ephemeral containers, when its ServiceAccount enforces."""
        pod = req.obj or {}
        spec = pod.get("spec") or {}
        sa_name = spec.get("serviceAccountName") or ""
        if not sa_name:
            pod_name = (pod.get("metadata") or {}).get("name") or req.name
            raise self._forbidden(
                req, f"no service account specified for pod {req.namespace}/{pod_name}"
            )
        sa = self._service_account(req.namespace, sa_name)
        if sa is None and sa_name == DEFAULT_SA:
            return  # admitted before its namespace had one (see above): nothing enforces
        if sa is None:
            raise self._forbidden(
                req,
                f"error looking up service account {req.namespace}/{sa_name}: "
                f'serviceaccount "{sa_name}" not found',
            )
        if enforce_mountable(sa):
            self._limit_containers(req, sa, spec, (("ephemeralContainers", "ephemeral container"),))

    def _limit_secrets(self, req: AdmissionRequest, sa: Obj, spec: Obj) -> None:
        """upstream's ``limitSecretReferences``: secret volumes, env and envFrom of init
        containers and containers, then imagePullSecrets, in that order."""
        mountable = {s.get("name") for s in sa.get("secrets") or []}
        sa_name = (sa.get("metadata") or {}).get("name", "")
        tail = f"is not allowed because service account {sa_name} does not reference that"
        for v in spec.get("volumes") or []:
            name = (v.get("secret") or {}).get("secretName")
            if v.get("secret") is not None and name not in mountable:
                raise self._forbidden(req, f'volume with secret.secretName="{name}" {tail} secret')
        self._limit_containers(
            req, sa, spec, (("initContainers", "init container"), ("containers", "container"))
        )
        pull = {s.get("name") for s in sa.get("imagePullSecrets") or []}
        for i, ref in enumerate(spec.get("imagePullSecrets") or []):
            if ref.get("name") not in pull:
                raise self._forbidden(
                    req,
                    f'imagePullSecrets[{i}].name="{ref.get("name", "")}" {tail} imagePullSecret',
                )

    def _limit_containers(
        self, req: AdmissionRequest, sa: Obj, spec: Obj, kinds: tuple[tuple[str, str], ...]
    ) -> None:
        """The env and envFrom secrets of the ``kinds`` of containers must be mountable."""
        mountable = {s.get("name") for s in sa.get("secrets") or []}
        sa_name = (sa.get("metadata") or {}).get("name", "")
        tail = f"is not allowed because service account {sa_name} does not reference that"
        for key, what in kinds:
            for c in spec.get(key) or []:
                cname = c.get("name", "")
                for env in c.get("env") or []:
                    ref = (env.get("valueFrom") or {}).get("secretKeyRef")
                    if ref is not None and ref.get("name") not in mountable:
                        raise self._forbidden(
                            req,
                            f"{what} {cname} with envVar {env.get('name', '')} referencing "
                            f'secret.secretName="{ref.get("name", "")}" {tail} secret',
                        )
                for src in c.get("envFrom") or []:
                    ref = src.get("secretRef")
                    if ref is not None and ref.get("name") not in mountable:
                        raise self._forbidden(
                            req,
                            f"{what} {cname} with envFrom referencing "
                            f'secret.secretName="{ref.get("name", "")}" {tail} secret',
                        )

    @staticmethod
    def _forbidden(req: AdmissionRequest, why: str) -> errors.StatusError:
        """upstream's ``admission.NewForbidden``: ``pods "NAME" is forbidden: WHY``."""
        name = (req.obj or {}).get("metadata", {}).get("name") or req.name
        return errors.forbidden_error(f'pods "{name}" is forbidden: {why}', "pods", "", name)
