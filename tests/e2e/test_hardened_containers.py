"""Hardened containers under real runc: a ``corral agent --seccomp-default`` (oci runtime)
runs a few short busybox pods and their output shows what the container can see and do.

- isolation: only its own processes in ``/proc``, only the container's mounts in
  ``/proc/mounts`` (nothing of the host's), only ``lo`` and ``eth0`` in its network;
- masking: ``/proc/kcore`` and ``/proc/timer_list`` read as empty, ``/proc/sys`` is
  read-only;
- seccomp: with the default profile (from ``--seccomp-default``) ``Seccomp: 2`` and
  ``unshare -U`` (no capability needed, so only seccomp can refuse it) fails; an
  explicitly ``Unconfined`` container has no filter and may;
- ``runAsUser`` and ``allowPrivilegeEscalation: false`` (``NoNewPrivs: 1``);
- ``runAsNonRoot`` with an image that runs as root is refused with the kubelet's message.

Needs root, runc, the CNI plugins and the local registry tools (skips otherwise). One
cluster for the module; the pods are plain users' pods (the scheduler places them);
everything is removed on the way out (``running_cluster``).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from e2ekit import Cluster, Obj, container_state, phase, pod_manifest, require, running_cluster

pytestmark = pytest.mark.timeout(180)

PROBE = r"""
for p in /proc/[0-9]*; do echo "PID ${p#/proc/}"; done
while read -r _ mnt _; do echo "MOUNT $mnt"; done < /proc/mounts
for n in /sys/class/net/*; do echo "NET ${n##*/}"; done
echo "KCORE $(head -c 64 /proc/kcore 2>/dev/null | wc -c)"
echo "TIMER_LIST $(head -c 64 /proc/timer_list | wc -c)"
(echo 1 > /proc/sys/vm/overcommit_memory) 2>/dev/null && echo "PROCSYS rw" || echo "PROCSYS ro"
grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status
echo "UID $(id -u)"
unshare -U true 2>&1 && echo "UNSHARE ok" || echo "UNSHARE refused"
"""

#: where a container's mounts may be (the standard ones and the kubelet's files, the
#: ServiceAccount token's among them when the namespace has one)
ALLOWED_MOUNTS = (
    "/", "/proc", "/dev", "/sys", "/etc/hosts", "/etc/hostname", "/etc/resolv.conf",
    "/var/run/secrets/kubernetes.io/serviceaccount",
)  # fmt: skip


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    require("oci")
    base = tmp_path_factory.mktemp("hardened")
    with running_cluster(base, "oci", "hardened", agent_args=["--seccomp-default"]) as c:
        yield c


def _output(cluster: Cluster, ns: str, name: str, **spec: Obj) -> list[str]:
    """Run PROBE in pod ``name`` to its end; its output lines."""
    manifest = pod_manifest(name, cluster.image, ["sh", "-c", PROBE], restartPolicy="Never")
    manifest["spec"]["containers"][0].update(spec.get("container", {}))
    cluster.apply(ns, manifest)
    cluster.wait_pod(ns, name, phase("Succeeded"))
    return cluster.logs(ns, name).splitlines()


def _values(lines: list[str], key: str) -> list[str]:
    return [line.split(None, 1)[1] for line in lines if line.startswith(key + " ")]


def test_a_default_container_is_isolated_masked_and_filtered(cluster: Cluster) -> None:
    ns = cluster.ns()
    sc = {"runAsUser": 1000, "allowPrivilegeEscalation": False}
    lines = _output(cluster, ns, "probe", container={"securityContext": sc})
    assert _values(lines, "PID") == ["1"], lines  # the shell alone
    mounts = _values(lines, "MOUNT")
    assert mounts and mounts[0] == "/"
    strays = [m for m in mounts if not any(m == a or m.startswith(a + "/") for a in ALLOWED_MOUNTS)]
    assert not strays, mounts
    assert sorted(_values(lines, "NET")) == ["eth0", "lo"]
    assert _values(lines, "KCORE") == ["0"]  # (masked, or not built into this kernel)
    assert _values(lines, "TIMER_LIST") == ["0"]  # masked: /dev/null over it
    assert _values(lines, "PROCSYS") == ["ro"]
    assert "Seccomp:\t2" in lines and "NoNewPrivs:\t1" in lines
    assert _values(lines, "UID") == ["1000"]
    assert _values(lines, "UNSHARE") == ["refused"]
    assert any("Operation not permitted" in line for line in lines), lines


def test_an_unconfined_container_has_no_filter(cluster: Cluster) -> None:
    ns = cluster.ns()
    sc = {"seccompProfile": {"type": "Unconfined"}}
    lines = _output(cluster, ns, "loose", container={"securityContext": sc})
    assert "Seccomp:\t0" in lines and "NoNewPrivs:\t0" in lines
    assert _values(lines, "UNSHARE") == ["ok"]
    assert _values(lines, "UID") == ["0"]


def test_run_as_non_root_with_a_root_image_is_refused(cluster: Cluster) -> None:
    ns = cluster.ns()
    manifest = pod_manifest(
        "nonroot", cluster.image, ["sleep", "3600"], securityContext={"runAsNonRoot": True}
    )
    cluster.apply(ns, manifest)

    def refused(p: Obj) -> bool:
        waiting = container_state(p).get("state", {}).get("waiting", {})
        return bool(waiting.get("reason") == "CreateContainerConfigError")

    pod = cluster.wait_pod(ns, "nonroot", refused)
    uid = pod["metadata"]["uid"]
    message = container_state(pod)["state"]["waiting"]["message"]
    assert message == (
        "container has runAsNonRoot and image will run as root "
        f'(pod: "nonroot_{ns}({uid})", container: main)'
    )
    assert pod["status"]["phase"] == "Pending"
