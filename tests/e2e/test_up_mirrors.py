"""``corral up`` behind a registry mirror: ``--registry-mirror docker.io=URL`` and the data
directory's ``registries.yaml`` reach every agent it starts, so an unmodified manifest
naming ``busybox`` (docker.io/library/busybox) pulls from a local registry on loopback
and runs; and a Deployment rollout prints nothing unusual at the default log level (the
controllers', scheduler's and agent's optimistic-concurrency retries are debug lines).

One ``corral up`` serves both forms: the flag mirrors ``docker.io``, the file mirrors
``quay.io``, both to the same local registry (which holds ``library/busybox:latest``).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import Kubectl
from corral.testing.process import free_port
from corral.testing.registry import LocalRegistry, build_busybox, missing_tools, push
from corral.testing.wait import eventually

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="corral up's agents need root here"),
    pytest.mark.skipif(missing_tools() is not None, reason=str(missing_tools())),
    pytest.mark.timeout(240),
    pytest.mark.kubectl,
]

#: what a rollout must not print at the default log level (409 retries are routine)
NOISE = ("the object has been modified", "Operation cannot be fulfilled", "Traceback")


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[LocalRegistry]:
    reg = LocalRegistry.start(tmp_path / "registry")
    layout = build_busybox(tmp_path / "layout", "latest")
    push(layout, "latest", f"{reg.host}/library/busybox:latest")
    yield reg
    reg.stop()


@pytest.fixture
def up_dir(tmp_path: Path) -> Iterator[Path]:
    data = tmp_path / "corral"
    yield data
    for agent_dir in (data / "agents").glob("*"):
        subprocess.run(
            [sys.executable, "-m", "corral", "agent", "--reset", "--data-dir", str(agent_dir),
             "--runtime", "oci" if (agent_dir / "oci").exists() else "process"],
            capture_output=True, timeout=120,
        )  # fmt: skip


def _pod(name: str, image: str) -> str:
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name},
            "spec": {
                "containers": [{"name": "c", "image": image, "command": ["sleep", "3600"]}],
                "terminationGracePeriodSeconds": 1,
            },
        }
    )


def _running(k: Kubectl, name: str) -> bool:
    pod = json.loads(k("get", "pod", name, "-o", "json").stdout)
    return (pod.get("status") or {}).get("phase") == "Running"


def _rolled_out(k: Kubectl, name: str) -> bool:
    d = json.loads(k("get", "deployment", name, "-o", "json").stdout)
    st, want = d.get("status") or {}, d["spec"]["replicas"]
    return (
        st.get("observedGeneration") == d["metadata"]["generation"]
        and st.get("updatedReplicas") == want
        and st.get("readyReplicas") == want
        and st.get("replicas") == want
    )


def test_up_pulls_busybox_through_mirrors_and_a_rollout_is_quiet(
    registry: LocalRegistry, up_dir: Path, tmp_path: Path
) -> None:
    up_dir.mkdir(parents=True)
    (up_dir / "registries.yaml").write_text(
        f'mirrors:\n  quay.io:\n    endpoint: ["http://{registry.host}"]\n'
        f'configs:\n  "{registry.host}":\n    tls: {{insecure_skip_verify: true}}\n'
    )
    port = free_port()
    argv = [sys.executable, "-m", "corral", "up", "--data-dir", str(up_dir), "--port", str(port)]
    argv += ["--runtime", "oci" if shutil.which("runc") else "process"]
    argv += ["--mesos-port", "0", "--chronos-port", "0", "--marathon-port", "0"]
    argv += ["--registry-mirror", f"docker.io=http://{registry.host}"]
    out_path = tmp_path / "up.out"
    with open(out_path, "w") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, text=True)
    try:

        def is_up() -> bool:
            text = out_path.read_text()
            if proc.poll() is not None:
                raise AssertionError(f"corral up exited with {proc.returncode}:\n{text}")
            return "Corral is up" in text

        eventually(is_up, timeout=90)
        k = Kubectl(up_dir / "kubeconfig", tmp_path / "kubecache")
        k("apply", "-f", "-", input=_pod("hub", "busybox"))
        k("apply", "-f", "-", input=_pod("quay", "quay.io/library/busybox"))
        eventually(lambda: _running(k, "hub") and _running(k, "quay"), timeout=60)
        assert registry.requests("GET /v2/library/busybox/manifests/latest") >= 2
        pulled = k("get", "events", "--field-selector", "reason=Pulled", "-o", "json").stdout
        messages = [e["message"] for e in json.loads(pulled)["items"]]
        assert any('"busybox"' in m for m in messages), messages

        # a rollout: 2 replicas, then a new template; 409 retries stay out of the output
        k("create", "deployment", "web", "--image=busybox", "--replicas=2", "--", "sleep", "3600")
        eventually(lambda: _rolled_out(k, "web"), timeout=60)
        k("set", "env", "deployment/web", "ROUND=2")
        eventually(lambda: _rolled_out(k, "web"), timeout=90)
        text = out_path.read_text()
        noisy = [ln for ln in text.splitlines() if any(n in ln for n in NOISE)]
        assert not noisy, "\n".join(noisy[:10])
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
