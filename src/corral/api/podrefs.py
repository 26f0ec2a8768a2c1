"""Which other objects a Pod or PersistentVolume names: Secrets, ConfigMaps, claims.

Upstream's ``VisitPodSecretNames`` / ``VisitPodConfigmapNames`` (all containers: init,
regular, ephemeral; ``pod_names``) and ``VisitPVSecretNames`` (the references the
kubelet reads), over JSON objects. The Node authorizer's graph
(``apiserver/node_authz.py``) is built from them, and NodeRestriction
(``apiserver/node_restriction.py``) refuses mirror pods that name any. Pure, no I/O;
empty names are kept as upstream visits them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NamedTuple

Obj = dict[str, Any]


def dicts(v: Any) -> Iterator[Obj]:
    """The dict items of a JSON list (nothing for anything else)."""
    if isinstance(v, list):
        for x in v:
            if isinstance(x, dict):
                yield x


def sub(o: Any, key: str) -> Obj:
    """``o[key]`` when both are dicts, else an empty dict."""
    v = o.get(key) if isinstance(o, dict) else None
    return v if isinstance(v, dict) else {}


#: the lists of containers a pod has, in upstream's visiting order
_CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")

#: volume sources naming a secret in ``secretRef.name`` (``VisitPodSecretNames``)
_SECRET_REF_VOLUMES = ("cephfs", "cinder", "flexVolume", "rbd", "scaleIO", "iscsi", "storageos")


class PodNames(NamedTuple):
    """What a pod names, by kind, each list in upstream's visiting order."""

    secrets: list[str]
    configmaps: list[str]
    claims: list[str]
    resource_claims: list[str]


def pod_names(pod: Obj) -> PodNames:
    """Every Secret, ConfigMap, PersistentVolumeClaim and ResourceClaim a pod names, in
    one walk of its containers and one of its volumes: the secrets as upstream's
    ``VisitPodSecretNames`` (imagePullSecrets, env/envFrom of every container, secret,
    projected and the plugins' secret references of its volumes), the ConfigMaps as
    ``VisitPodConfigmapNames`` (all containers), the claims named ones and ``POD-VOLUME``
    for each generic ephemeral volume, the ResourceClaims as ``_resource_claim_names``."""
    secrets: list[str] = []
    configmaps: list[str] = []
    claims: list[str] = []
    spec = sub(pod, "spec")
    for ref in dicts(spec.get("imagePullSecrets")):
        secrets.append(str(ref.get("name") or ""))
    for key in _CONTAINER_LISTS:
        for c in dicts(spec.get(key)):
            for ef in dicts(c.get("envFrom")):
                if "secretRef" in ef:
                    secrets.append(str(sub(ef, "secretRef").get("name") or ""))
                if "configMapRef" in ef:
                    configmaps.append(str(sub(ef, "configMapRef").get("name") or ""))
            for env in dicts(c.get("env")):
                vf = env.get("valueFrom")
                if not isinstance(vf, dict):
                    continue
                if "secretKeyRef" in vf:
                    secrets.append(str(sub(vf, "secretKeyRef").get("name") or ""))
                if "configMapKeyRef" in vf:
                    configmaps.append(str(sub(vf, "configMapKeyRef").get("name") or ""))
    pod_name = str(sub(pod, "metadata").get("name") or "")
    for v in dicts(spec.get("volumes")):
        if "secret" in v:
            secrets.append(str(sub(v, "secret").get("secretName") or ""))
        if "azureFile" in v:
            secrets.append(str(sub(v, "azureFile").get("secretName") or ""))
        if "csi" in v:
            secrets.append(str(sub(sub(v, "csi"), "nodePublishSecretRef").get("name") or ""))
        for kind in _SECRET_REF_VOLUMES:
            if kind in v:
                secrets.append(str(sub(sub(v, kind), "secretRef").get("name") or ""))
        if "configMap" in v:
            configmaps.append(str(sub(v, "configMap").get("name") or ""))
        for src in dicts(sub(v, "projected").get("sources")):
            if "secret" in src:
                secrets.append(str(sub(src, "secret").get("name") or ""))
            if "configMap" in src:
                configmaps.append(str(sub(src, "configMap").get("name") or ""))
        if "persistentVolumeClaim" in v:
            claims.append(str(sub(v, "persistentVolumeClaim").get("claimName") or ""))
        elif "ephemeral" in v:
            claims.append(f"{pod_name}-{v.get('name', '')}")
    return PodNames(secrets, configmaps, claims, list(_resource_claim_names(pod)))


def _resource_claim_names(pod: Obj) -> Iterator[str]:
    """ResourceClaims a pod uses: ``resourceClaimName``, or for a template the name
    recorded in ``status.resourceClaimStatuses`` (none yet: nothing)."""
    statuses = {
        str(s.get("name")): s.get("resourceClaimName")
        for s in dicts(sub(pod, "status").get("resourceClaimStatuses"))
    }
    for rc in dicts(sub(pod, "spec").get("resourceClaims")):
        if rc.get("resourceClaimName"):
            yield str(rc["resourceClaimName"])
        elif rc.get("resourceClaimTemplateName"):
            name = statuses.get(str(rc.get("name")))
            if name:
                yield str(name)


#: PV sources whose ``secretRef`` the kubelet reads (``VisitPVSecretNames``, kubeletVisible)
_PV_SECRET_REF = ("cephfs", "cinder", "flexVolume", "rbd", "scaleIO", "iscsi", "storageos")
_PV_CSI_REFS = ("nodePublishSecretRef", "nodeStageSecretRef", "nodeExpandSecretRef")


def pv_secret_refs(pv: Obj) -> Iterator[tuple[str, str]]:
    """(namespace, name) of the Secrets a PV hands to the kubelet; a reference without
    a namespace means the claim's."""
    spec = sub(pv, "spec")
    claim_ns = str(sub(spec, "claimRef").get("namespace") or "")
    refs: list[Obj] = [sub(sub(spec, kind), "secretRef") for kind in _PV_SECRET_REF if kind in spec]
    refs += [sub(sub(spec, "csi"), key) for key in _PV_CSI_REFS]
    if "azureFile" in spec:
        af = sub(spec, "azureFile")
        refs.append({"name": af.get("secretName"), "namespace": af.get("secretNamespace")})
    for ref in refs:
        if ref.get("name"):
            yield str(ref.get("namespace") or claim_ns), str(ref["name"])
