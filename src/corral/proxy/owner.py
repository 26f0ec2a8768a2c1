"""Which Service proxy owns this host's KUBE-* iptables chains.

The chains are one per network namespace (kube-proxy's names, no cluster in them), so
two clusters' proxies on one host would each replace the other's rules on every sync.
The iptables backend therefore records its claim before its first sync, in
``/run/corral/iptables-<netns inode>.json``::

    {"pid": PID, "ticks": START_TICKS, "owner": "AGENT_DATA_DIR or KUBECONFIG",
     "localnet_before": "0"}

A record whose process still runs (same pid and start time) and names another owner is a
conflict: ``claim`` raises ``ChainsConflict`` naming that owner and ``corral down``. A
record of a process that is gone means its chains are stale: the new proxy replaces
them (and inherits ``localnet_before``, so ``route_localnet`` is put back as it was
before the first proxy). ``release`` removes the record on a clean stop; ``corral down``
reads it (``read``) to tell whether the chains left on the host are its cluster's.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

RUN_DIR = Path("/run/corral")


class ChainsConflict(Exception):
    """Another live Service proxy owns the KUBE-* chains of this network namespace."""


def _start_ticks(pid: int) -> int | None:
    """The start time of a live process (None: gone, or a zombie)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return None if fields[0] == "Z" else int(fields[19])
    except (OSError, IndexError, ValueError):
        return None


@dataclass(frozen=True)
class ChainsOwner:
    pid: int
    ticks: int | None
    owner: str
    localnet_before: str | None = None

    def alive(self) -> bool:
        now = _start_ticks(self.pid) if self.pid > 0 else None
        return now is not None and (self.ticks is None or now == self.ticks)

    def mine(self) -> bool:
        return self.pid == os.getpid()


def record_path() -> Path:
    """The record of this process's network namespace."""
    try:
        ino = os.stat("/proc/self/ns/net").st_ino
    except OSError:
        ino = 0
    return RUN_DIR / f"iptables-{ino}.json"


def read() -> ChainsOwner | None:
    try:
        d = json.loads(record_path().read_text())
        return ChainsOwner(int(d["pid"]), d.get("ticks"), str(d["owner"]), d.get("localnet_before"))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def hint(owner: str) -> str:
    p = Path(owner)
    if p.parent.name == "agents":
        return f"corral down --data-dir {p.parent.parent}"
    return "stop it first"


def check(owner: str) -> None:
    """Raise ``ChainsConflict`` when a live proxy of another owner holds the chains."""
    rec = read()
    if rec is not None and rec.owner != owner and not rec.mine() and rec.alive():
        raise ChainsConflict(
            f"the iptables KUBE-* chains of this host belong to the running Service proxy of "
            f"{rec.owner} (pid {rec.pid}); {hint(rec.owner)}"
        )


def claim(owner: str, localnet_before: str | None) -> str | None:
    """Record this process as the chains' owner; return the ``route_localnet`` value to
    put back on release (a stale record's, else ``localnet_before``)."""
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    with open(RUN_DIR / "iptables.lock", "w") as lock:  # two proxies claiming at once
        fcntl.flock(lock, fcntl.LOCK_EX)
        check(owner)
        rec = read()
        if rec is not None and rec.localnet_before is not None:
            localnet_before = rec.localnet_before
        pid = os.getpid()
        new = ChainsOwner(pid, _start_ticks(pid), owner, localnet_before)
        path = record_path()
        tmp = path.with_suffix(f".{pid}.tmp")
        tmp.write_text(json.dumps(asdict(new)))
        tmp.replace(path)
    return localnet_before


def release() -> None:
    """Drop the record (only our own, or a dead process's)."""
    rec = read()
    if rec is not None and (rec.mine() or not rec.alive()):
        with contextlib.suppress(FileNotFoundError):
            record_path().unlink()
