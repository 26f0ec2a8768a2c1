"""The PodSecurity admission plugin (pod_security_admission.py) over real watch caches:
enforce, warn, audit, workloads, updates, exemptions, namespace labels and the existing
pods' warnings."""

from __future__ import annotations

import logging
from typing import Any

import orjson
import pytest

from corral.api.errors import StatusError
from corral.api.pod_security import LevelVersion, Policy
from corral.apiserver import warning
from corral.apiserver.admission_chain import CREATE, UPDATE, AdmissionRequest
from corral.apiserver.identity import UserInfo
from corral.apiserver.pod_security_admission import Config, PodSecurityAdmission
from corral.apiserver.registry.table import RESOURCES
from corral.storage.base import KV, PUT, Event
from corral.storage.cache import WatchCache

Obj = dict[str, Any]
BOB = UserInfo("bob", ("system:authenticated",))
INFO = {(r.group, r.plural): r for r in RESOURCES if r.version in ("v1",)}
ENFORCE = "pod-security.kubernetes.io/enforce"
WARN = "pod-security.kubernetes.io/warn"
AUDIT = "pod-security.kubernetes.io/audit"
SECURE = {
    "runAsNonRoot": True,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


class Cluster:
    def __init__(self, config: Config | None = None) -> None:
        self.cache = WatchCache()
        self.namespaces = self.cache.register("/registry/core/namespaces/", {})
        self.pods = self.cache.register("/registry/core/pods/", {})
        self.rev = 0
        self.psa = PodSecurityAdmission(self.namespaces, self.pods, config)
        warning.start()

    def put(self, key: str, obj: Obj) -> None:
        self.rev += 1
        kv = KV(key, obj, orjson.dumps(obj), self.rev, self.rev)
        self.cache.apply(Event(PUT, kv, None, self.rev))

    def namespace(self, name: str, **labels: str) -> None:
        self.put(f"/registry/core/namespaces/{name}", ns_obj(name, labels))

    def pod(self, ns: str, obj: Obj) -> None:
        self.put(f"/registry/core/pods/{ns}/{obj['metadata']['name']}", obj)


def ns_obj(name: str, labels: dict[str, str]) -> Obj:
    return {"metadata": {"name": name, "labels": labels}}


def pod(name: str = "p", sc: Obj | None = None, image: str = "busybox", **spec: Any) -> Obj:
    c: Obj = {"name": "c", "image": image}
    if sc is not None:
        c["securityContext"] = sc
    return {"metadata": {"name": name, "namespace": "ns"}, "spec": {"containers": [c], **spec}}


def request(
    op: str,
    resource: tuple[str, str],
    obj: Obj | None,
    old: Obj | None = None,
    sub: str = "",
    user: UserInfo | None = BOB,
) -> AdmissionRequest:
    name = ((obj or old or {}).get("metadata") or {}).get("name", "")
    ns = "" if resource == ("", "namespaces") else "ns"
    return AdmissionRequest(op, INFO[resource], ns, name, sub, obj, old, user)


def admit_pod(c: Cluster, obj: Obj, op: str = CREATE, **kw: Any) -> None:
    c.psa.admit_pod(request(op, ("", "pods"), obj, **kw))


RESTRICTED_MESSAGE = (
    'pods "p" is forbidden: violates PodSecurity "restricted:latest": '
    'allowPrivilegeEscalation != false (container "c" must set '
    "securityContext.allowPrivilegeEscalation=false), unrestricted capabilities "
    '(container "c" must set securityContext.capabilities.drop=["ALL"]), runAsNonRoot != '
    'true (pod or container "c" must set securityContext.runAsNonRoot=true), seccompProfile '
    '(pod or container "c" must set securityContext.seccompProfile.type to "RuntimeDefault" '
    'or "Localhost")'
)


def test_enforce_refuses_with_upstreams_message() -> None:
    c = Cluster()
    c.namespace("ns", **{ENFORCE: "restricted"})
    with pytest.raises(StatusError) as e:
        admit_pod(c, pod())
    assert e.value.code == 403
    assert e.value.message == RESTRICTED_MESSAGE
    assert e.value.status()["details"] == {"name": "p", "kind": "pods"}
    admit_pod(c, pod(sc=SECURE))  # compliant
    assert warning.recorded() == []


def test_unlabelled_namespace_and_internal_writes_pass() -> None:
    c = Cluster()
    c.namespace("ns")
    admit_pod(c, pod(sc={"privileged": True}))
    c.namespace("ns", **{ENFORCE: "baseline"})
    admit_pod(c, pod(sc={"privileged": True}), user=None)  # the API server's own write
    for sub in ("status", "binding", "eviction", "exec"):
        admit_pod(c, pod(sc={"privileged": True}), op=UPDATE, old=pod(), sub=sub)


def test_warn_and_audit(caplog: pytest.LogCaptureFixture) -> None:
    c = Cluster()
    c.namespace("ns", **{WARN: "baseline", AUDIT: "restricted"})
    with caplog.at_level(logging.INFO, "corral.apiserver.audit"):
        admit_pod(c, pod(hostNetwork=True))
    assert warning.recorded() == [
        'would violate PodSecurity "baseline:latest": host namespaces (hostNetwork=true)'
    ]
    assert 'would violate PodSecurity "restricted:latest": host namespaces' in caplog.text


def test_no_warning_when_refused_and_enforce_implies_warn() -> None:
    c = Cluster()
    c.namespace("ns", **{ENFORCE: "baseline", WARN: "restricted"})
    with pytest.raises(StatusError):
        admit_pod(c, pod(sc={"privileged": True}))
    assert warning.recorded() == []
    # a workload in an enforce namespace: never refused, the enforce level warns
    c.namespace("ns", **{ENFORCE: "baseline"})
    deploy = {"metadata": {"name": "d"}, "spec": {"template": pod(sc={"privileged": True})}}
    c.psa.admit_workload(request(CREATE, ("apps", "deployments"), deploy))
    assert warning.recorded() == [
        'would violate PodSecurity "baseline:latest": privileged '
        '(container "c" must not set securityContext.privileged=true)'
    ]


@pytest.mark.parametrize(
    ("resource", "obj"),
    [
        (("batch", "cronjobs"), {"spec": {"jobTemplate": {"spec": {"template": pod(hostPID=True)}}}}),
        (("", "podtemplates"), {"template": pod(hostPID=True)}),
        (("apps", "daemonsets"), {"spec": {"template": pod(hostPID=True)}}),
        (("", "replicationcontrollers"), {"spec": {"template": pod(hostPID=True)}}),
    ],
    ids=["cronjob", "podtemplate", "daemonset", "rc"],
)  # fmt: skip
def test_workload_templates(resource: tuple[str, str], obj: Obj) -> None:
    c = Cluster()
    c.namespace("ns", **{ENFORCE: "baseline"})
    c.psa.admit_workload(request(CREATE, resource, {"metadata": {"name": "w"}, **obj}))
    assert warning.recorded() == [
        'would violate PodSecurity "baseline:latest": host namespaces (hostPID=true)'
    ]


def test_updates_are_evaluated_only_when_significant() -> None:
    c = Cluster()
    c.namespace("ns", **{ENFORCE: "baseline"})
    old = pod(sc={"privileged": True})
    relabelled = pod(sc={"privileged": True})
    relabelled["metadata"]["labels"] = {"a": "b"}
    relabelled["spec"]["activeDeadlineSeconds"] = 5
    admit_pod(c, relabelled, op=UPDATE, old=old)  # allowed: nothing significant changed
    with pytest.raises(StatusError):
        admit_pod(c, pod(sc={"privileged": True}, image="nginx"), op=UPDATE, old=old)
    added = pod(sc={"privileged": True})
    added["spec"]["ephemeralContainers"] = [{"name": "dbg", "image": "busybox"}]
    with pytest.raises(StatusError):
        admit_pod(c, added, op=UPDATE, old=old, sub="ephemeralcontainers")


def test_exemptions() -> None:
    config = Config(
        usernames=frozenset({"bob"}),
        namespaces=frozenset({"kube-system"}),
        runtime_classes=frozenset({"kata"}),
    )
    c = Cluster(config)
    c.namespace("ns", **{ENFORCE: "restricted"})
    admit_pod(c, pod())  # bob is exempt
    alice = UserInfo("alice")
    with pytest.raises(StatusError):
        admit_pod(c, pod(), user=alice)
    admit_pod(c, pod(runtimeClassName="kata"), user=alice)
    c.psa.admit_namespace(
        request(CREATE, ("", "namespaces"), ns_obj("kube-system", {ENFORCE: "baseline"}))
    )
    assert warning.recorded() == [
        'namespace "kube-system" is exempt from Pod Security, and the policy '
        "(enforce=baseline:latest) will be ignored"
    ]


def test_configured_defaults_apply_to_unlabelled_namespaces() -> None:
    restricted = LevelVersion("restricted", "latest")
    privileged = LevelVersion("privileged", "latest")
    c = Cluster(Config(defaults=Policy(restricted, privileged, privileged)))
    c.namespace("ns")
    with pytest.raises(StatusError):
        admit_pod(c, pod())


def test_invalid_labels_are_refused() -> None:
    c = Cluster()
    bad = ns_obj("ns", {ENFORCE: "strict"})
    with pytest.raises(StatusError) as e:
        c.psa.admit_namespace(request(CREATE, ("", "namespaces"), bad))
    assert e.value.code == 422
    assert e.value.message == (
        'Namespace "ns" is invalid: metadata.labels[pod-security.kubernetes.io/enforce]: '
        'Invalid value: "strict": must be one of privileged, baseline, restricted'
    )
    # an update keeping the same bad labels passes; a new bad value does not
    c.psa.admit_namespace(request(UPDATE, ("", "namespaces"), bad, old=bad))
    worse = ns_obj("ns", {ENFORCE: "strict", WARN: "x"})
    with pytest.raises(StatusError):
        c.psa.admit_namespace(request(UPDATE, ("", "namespaces"), worse, old=bad))


def test_stricter_enforce_label_warns_about_existing_pods() -> None:
    c = Cluster()
    c.namespace("ns")
    owner = [{"uid": "rs1", "controller": True, "kind": "ReplicaSet", "name": "r"}]
    for name in ("web-2", "web-1", "web-3"):
        p = pod(name, sc={"privileged": True})
        p["metadata"]["ownerReferences"] = owner
        c.pod("ns", p)
    c.pod("ns", pod("host", hostNetwork=True))
    c.pod("ns", pod("fine"))
    old = ns_obj("ns", {})
    c.psa.admit_namespace(
        request(UPDATE, ("", "namespaces"), ns_obj("ns", {ENFORCE: "baseline"}), old)
    )
    assert warning.recorded() == [
        'existing pods in namespace "ns" violate the new PodSecurity enforce level "baseline:latest"',
        "host: host namespaces",
        "web-1 (and 2 other pods): privileged",
    ]


def test_relaxing_or_keeping_enforce_does_not_check_pods() -> None:
    c = Cluster()
    c.namespace("ns")
    c.pod("ns", pod("x", sc={"privileged": True}))
    base = ns_obj("ns", {ENFORCE: "baseline"})
    for new in (
        ns_obj("ns", {ENFORCE: "baseline", "x": "y"}),
        ns_obj("ns", {ENFORCE: "privileged"}),
    ):
        c.psa.admit_namespace(request(UPDATE, ("", "namespaces"), new, base))
    assert warning.recorded() == []
