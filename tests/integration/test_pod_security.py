"""Pod Security admission with the real kubectl on the shared server: a restricted
namespace refuses a privileged pod with upstream's message and accepts a compliant one,
warn mode prints kubectl's ``Warning:`` lines, a Deployment in an enforce namespace is
created with a warning, labelling a namespace warns about its existing pods, and a bad
label value is refused."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from conftest import Kubectl

POD = """
apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  {extra}
  containers:
  - name: c
    image: busybox
    securityContext: {sc}
"""
COMPLIANT = (
    "{runAsNonRoot: true, allowPrivilegeEscalation: false, "
    "capabilities: {drop: [ALL]}, seccompProfile: {type: RuntimeDefault}}"
)


@pytest.fixture
def namespace(kubectl: Kubectl, ns: str) -> Iterator[str]:
    yield ns
    kubectl("delete", "namespace", ns, "--wait=false", check=False)


def create_pod(
    kubectl: Kubectl, ns: str, name: str, sc: str = "{}", extra: str = ""
) -> tuple[int, str]:
    manifest = POD.format(name=name, sc=sc, extra=extra)
    res = kubectl("create", "-n", ns, "-f", "-", input=manifest, check=False)
    return res.returncode, res.stderr


def test_restricted_namespace(kubectl: Kubectl, namespace: str) -> None:
    label = kubectl(
        "label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted"
    )
    assert label.stderr == ""
    code, stderr = create_pod(kubectl, namespace, "p", "{privileged: true}")
    assert code == 1
    assert stderr == (
        'Error from server (Forbidden): error when creating "STDIN": pods "p" is forbidden: '
        'violates PodSecurity "restricted:latest": privileged (container "c" must not set '
        'securityContext.privileged=true), allowPrivilegeEscalation != false (container "c" '
        "must set securityContext.allowPrivilegeEscalation=false), unrestricted capabilities "
        '(container "c" must set securityContext.capabilities.drop=["ALL"]), runAsNonRoot != '
        'true (pod or container "c" must set securityContext.runAsNonRoot=true), seccompProfile '
        '(pod or container "c" must set securityContext.seccompProfile.type to "RuntimeDefault" '
        'or "Localhost")\n'
    )
    assert create_pod(kubectl, namespace, "ok", COMPLIANT) == (0, "")
    # a Deployment is never refused: the enforce level (warn defaults to it) warns
    res = kubectl("create", "deployment", "d", "--image=busybox", "-n", namespace)
    assert res.stderr.startswith(
        'Warning: would violate PodSecurity "restricted:latest": allowPrivilegeEscalation != '
        'false (container "busybox" must set securityContext.allowPrivilegeEscalation=false)'
    )
    assert "deployment.apps/d created" in res.stdout


def test_warn_mode_and_namespace_labels(kubectl: Kubectl, namespace: str) -> None:
    kubectl("label", "namespace", namespace, "pod-security.kubernetes.io/warn=baseline")
    code, stderr = create_pod(kubectl, namespace, "hp", extra="hostNetwork: true")
    assert code == 0
    assert stderr == (
        'Warning: would violate PodSecurity "baseline:latest": host namespaces (hostNetwork=true)\n'
    )
    res = kubectl("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=baseline")
    assert res.stderr.splitlines() == [
        f'Warning: existing pods in namespace "{namespace}" violate the new PodSecurity enforce '
        'level "baseline:latest"',
        "Warning: hp: host namespaces",
    ]
    res = kubectl(
        "label", "namespace", namespace, "--overwrite",
        "pod-security.kubernetes.io/enforce=bogus", check=False,
    )  # fmt: skip
    assert res.returncode == 1
    assert res.stderr == (
        f'The Namespace "{namespace}" is invalid: metadata.labels[pod-security.kubernetes.io/'
        'enforce]: Invalid value: "bogus": must be one of privileged, baseline, restricted\n'
    )
