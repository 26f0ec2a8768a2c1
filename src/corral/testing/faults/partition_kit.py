"""What the ``partition`` fault scenario (``partition.py``) drives and watches: the API
over plain HTTPS, the cut's workloads, and the sampler that reads ``/proc`` for the
containers' processes (by the run's marker in their argv and the pod uid in their
environment), so "ran twice" and "stale container" are seen on the machine itself.
"""

from __future__ import annotations

import contextlib
import json
import logging
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("corral.testing.faults.partition")

Obj = dict[str, Any]

IMAGE = "corral.local/busybox:1.35"
TOLERATION_S = 1  # the pods' tolerationSeconds for not-ready / unreachable
WEB_REPLICAS = 2
JOB_COMPLETIONS = 2


# --- the API, over plain HTTPS -----------------------------------------------------------------
@dataclass
class Api:
    url: str
    token: str
    ctx: ssl.SSLContext

    def call(self, method: str, path: str, body: Obj | None = None) -> Any:
        req = urllib.request.Request(
            self.url + path,
            data=json.dumps(body).encode() if body is not None else None,
            method=method,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=self.ctx)
        )
        with opener.open(req, timeout=15) as r:
            return json.loads(r.read() or b"{}")

    def get(self, path: str) -> Any:
        return self.call("GET", path)

    def items(self, path: str) -> list[Obj]:
        return list(self.get(path).get("items") or [])


def wait_for(
    what: str, pred: Callable[[], Any], timeout: float, show: Callable[[], str] | None = None
) -> Any:
    """``pred()``'s first truthy value; ``TimeoutError`` naming ``what`` (and what
    ``show()`` says of the state) after ``timeout``."""
    log.info("waiting: %s", what)
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(urllib.error.URLError, OSError):
            got = pred()
            if got:
                return got
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"{what}: not within {timeout:.0f} s" + (f"\n{show()}" if show else "")
            )
        time.sleep(0.1)


def describe(pods: list[Obj]) -> str:
    """One line per pod: name, node, phase, Ready, deleting."""
    return "\n".join(
        f"  {p['metadata']['name']} on {p['spec'].get('nodeName')}: "
        f"{(p.get('status') or {}).get('phase')} ready={ready_cond(p)}"
        f"{' deleting' if p['metadata'].get('deletionTimestamp') else ''}"
        for p in pods
    )


# --- workloads ---------------------------------------------------------------------------------
def _container(marker: str, script: str, extra_env: list[Obj] | None = None) -> Obj:
    env = [{"name": "POD_UID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}}]
    return {
        "name": "main",
        "image": IMAGE,
        "command": ["sh", "-c", script, marker],  # $0 = marker: visible in /proc cmdline
        "env": env + (extra_env or []),
    }


def _pod_spec(host: str, container: Obj, **more: Any) -> Obj:
    pref = [
        {
            "weight": 100,
            "preference": {
                "matchExpressions": [
                    {"key": "kubernetes.io/hostname", "operator": "In", "values": [host]}
                ]
            },
        }
    ]
    tolerations = [
        {"key": k, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": TOLERATION_S}
        for k in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable")
    ]
    return {
        "containers": [container],
        "affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": pref}},
        "tolerations": tolerations,
        "terminationGracePeriodSeconds": 1,
        **more,
    }


LOOP = "while true; do sleep 1; done"


def workloads(marker: str, host: str, release: Path) -> list[tuple[str, Obj]]:
    """(collection path under the namespace, manifest) of the cut's three workloads."""
    web = {"app": "web"}
    db = {"app": "db"}
    job_script = "until [ -f /release/go ]; do sleep 0.2; done; echo done"
    job_spec = _pod_spec(
        host,
        {**_container(f"{marker}-job", job_script), "volumeMounts": [
            {"name": "release", "mountPath": "/release"}]},
        restartPolicy="Never",
        volumes=[{"name": "release", "hostPath": {"path": str(release), "type": "Directory"}}],
    )  # fmt: skip
    return [
        (
            "apis/apps/v1/namespaces/{ns}/deployments",
            {
                "metadata": {"name": "web"},
                "spec": {
                    "replicas": WEB_REPLICAS,
                    "selector": {"matchLabels": web},
                    "template": {
                        "metadata": {"labels": web},
                        "spec": _pod_spec(host, _container(f"{marker}-web", LOOP)),
                    },
                },
            },
        ),
        (
            "apis/apps/v1/namespaces/{ns}/statefulsets",
            {
                "metadata": {"name": "db"},
                "spec": {
                    "replicas": 1,
                    "serviceName": "db",
                    "selector": {"matchLabels": db},
                    "template": {
                        "metadata": {"labels": db},
                        "spec": _pod_spec(host, _container(f"{marker}-db", LOOP)),
                    },
                },
            },
        ),
        (
            "apis/batch/v1/namespaces/{ns}/jobs",
            {
                "metadata": {"name": "idx"},
                "spec": {
                    "completionMode": "Indexed",
                    "completions": JOB_COMPLETIONS,
                    "parallelism": JOB_COMPLETIONS,
                    "backoffLimit": 6,
                    "podReplacementPolicy": "Failed",
                    # a pod the taint manager evicts is not a failure of the work: replaced
                    # without back-off, but only once it is Failed (upstream's advice)
                    "podFailurePolicy": {
                        "rules": [
                            {
                                "action": "Ignore",
                                "onPodConditions": [{"type": "DisruptionTarget"}],
                            }
                        ]
                    },
                    "template": {"spec": job_spec},
                },
            },
        ),
    ]


# --- what runs on the machine --------------------------------------------------------------------
@dataclass(frozen=True)
class Proc:
    pid: int
    kind: str  # web, db, job
    uid: str  # the pod's uid
    index: str  # JOB_COMPLETION_INDEX, or ""


def scan(marker: str) -> list[Proc]:
    """The containers' main processes of this run (by the marker in their argv)."""
    out: list[Proc] = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            argv = (d / "cmdline").read_bytes().split(b"\0")
            if len(argv) < 4 or not argv[3].startswith(marker.encode() + b"-"):
                continue
            env = dict(
                kv.split(b"=", 1) for kv in (d / "environ").read_bytes().split(b"\0") if b"=" in kv
            )
        except OSError:
            continue
        kind = argv[3].decode()[len(marker) + 1 :]
        uid = env.get(b"POD_UID", b"").decode()
        out.append(Proc(int(d.name), kind, uid, env.get(b"JOB_COMPLETION_INDEX", b"").decode()))
    return out


@dataclass
class Sampler:
    """Reads ``/proc`` every 100 ms in a thread; keeps the most processes seen at once per
    identity that must not run twice (``db``, ``job-<index>``)."""

    marker: str
    peak: dict[str, int] = field(default_factory=dict)
    evidence: dict[str, list[str]] = field(default_factory=dict)  # identity -> pod uids
    kinds: set[str] = field(default_factory=set)  # what was seen at all (web, db, job, mesos)
    _stop: threading.Event = field(default_factory=threading.Event)

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            seen: dict[str, list[Proc]] = {}
            for p in scan(self.marker):
                self.kinds.add(p.kind)
                if p.kind in ("db", "job"):
                    seen.setdefault(f"{p.kind}-{p.index}".rstrip("-"), []).append(p)
            for k, ps in seen.items():
                # by pod uid: a shell's child between fork and exec shows the same argv
                uids = sorted({p.uid for p in ps})
                if len(uids) > self.peak.get(k, 0):
                    self.peak[k] = len(uids)
                    if len(uids) > 1:
                        self.evidence[k] = uids
                        log.info("%s runs %d times: pods %s", k, len(uids), uids)

    @contextlib.contextmanager
    def running(self) -> Iterator[Sampler]:
        t = threading.Thread(target=self._run, daemon=True)
        t.start()
        try:
            yield self
        finally:
            self._stop.set()
            t.join(5)

    def twice(self) -> list[str]:
        return sorted(k for k, n in self.peak.items() if n > 1)


def live(p: Obj) -> bool:
    return not p["metadata"].get("deletionTimestamp")


def running(p: Obj) -> bool:
    return (p.get("status") or {}).get("phase") == "Running"


def ready_cond(obj: Obj) -> str:
    for c in (obj.get("status") or {}).get("conditions") or ():
        if c.get("type") == "Ready":
            return str(c.get("status"))
    return ""
