"""cgroup bookkeeping for the drivers: where a container's cgroup lives, its limits, its usage.

``ProcessDriver`` creates, limits and removes per-container cgroups itself (the shim's child
joins them before exec); ``OciDriver`` lets runc create them (``linux.cgroupsPath``) and
only reads usage and OOM counters here and removes the per-pod parents. Both name a
container's cgroup by a path relative to the hierarchy roots, ``corral/<pod-uid>/<id>``,
so the same helper serves cgroup v1 (separate ``memory``, ``cpu``, ``cpuacct``, ``pids``
hierarchies, as on this project's hosts) and the unified v2 hierarchy.

All methods are synchronous and cheap (a few small file reads/writes); errors from the
kernel are raised as ``OSError`` except in the ``remove``/``stats`` paths, which are
best-effort by contract.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from corral.agent.drivers.base import Limits, Stats

V1_CONTROLLERS = ("memory", "cpu", "cpuacct", "pids")
CFS_PERIOD_US = 100_000


@dataclass(frozen=True)
class Cgroups:
    """The cgroup hierarchies of this host (``version`` 1 or 2) rooted at ``root``."""

    version: int
    root: Path = Path("/sys/fs/cgroup")

    @classmethod
    def detect(cls, root: Path = Path("/sys/fs/cgroup")) -> Cgroups | None:
        """The usable hierarchies, or None (not root, or no memory controller)."""
        if os.geteuid() != 0:
            return None
        if (root / "cgroup.controllers").exists():
            return cls(2, root)
        if (
            all((root / c).is_dir() for c in V1_CONTROLLERS)
            and (root / "memory" / "memory.limit_in_bytes").exists()
        ):
            return cls(1, root)
        return None

    # -- paths -------------------------------------------------------------------------------

    def dirs(self, rel: str) -> dict[str, Path]:
        """Controller name -> directory of the cgroup ``rel`` (``"unified"`` on v2)."""
        if self.version == 2:
            return {"unified": self.root / rel}
        return {c: self.root / c / rel for c in V1_CONTROLLERS}

    def procs_files(self, rel: str) -> list[str]:
        return [str(d / "cgroup.procs") for d in self.dirs(rel).values()]

    def oom_file(self, rel: str) -> str:
        """The file whose ``oom_kill N`` line counts OOM kills in the cgroup."""
        if self.version == 2:
            return str(self.root / rel / "memory.events")
        return str(self.root / "memory" / rel / "memory.oom_control")

    # -- lifecycle ---------------------------------------------------------------------------

    def create(self, rel: str, limits: Limits) -> None:
        """Create the cgroup ``rel`` (and parents) and write ``limits`` into it."""
        if self.version == 2:
            self._enable_v2_controllers(rel)
        for d in self.dirs(rel).values():
            d.mkdir(parents=True, exist_ok=True)
        for path, value in self._limit_files(rel, limits):
            path.write_text(value)

    def _enable_v2_controllers(self, rel: str) -> None:
        parent = self.root
        for part in Path(rel).parts[:-1]:
            try:
                (parent / "cgroup.subtree_control").write_text("+memory +cpu +pids")
            except OSError:
                pass
            parent = parent / part
            parent.mkdir(exist_ok=True)
        try:
            (parent / "cgroup.subtree_control").write_text("+memory +cpu +pids")
        except OSError:
            pass

    def _limit_files(self, rel: str, limits: Limits) -> list[tuple[Path, str]]:
        out: list[tuple[Path, str]] = []
        if self.version == 2:
            d = self.root / rel
            if limits.memory_bytes is not None:
                out.append((d / "memory.max", str(limits.memory_bytes)))
                out.append((d / "memory.swap.max", "0"))
            if limits.cpu_millis is not None:
                quota = max(1000, limits.cpu_millis * CFS_PERIOD_US // 1000)
                out.append((d / "cpu.max", f"{quota} {CFS_PERIOD_US}"))
            if limits.cpu_shares is not None:
                weight = 1 + ((max(2, limits.cpu_shares) - 2) * 9999) // 262142
                out.append((d / "cpu.weight", str(weight)))
            if limits.pids is not None:
                out.append((d / "pids.max", str(limits.pids)))
            return out
        r = self.root
        if limits.memory_bytes is not None:
            out.append((r / "memory" / rel / "memory.limit_in_bytes", str(limits.memory_bytes)))
        if limits.cpu_millis is not None:
            quota = max(1000, limits.cpu_millis * CFS_PERIOD_US // 1000)
            out.append((r / "cpu" / rel / "cpu.cfs_period_us", str(CFS_PERIOD_US)))
            out.append((r / "cpu" / rel / "cpu.cfs_quota_us", str(quota)))
        if limits.cpu_shares is not None:
            out.append((r / "cpu" / rel / "cpu.shares", str(max(2, limits.cpu_shares))))
        if limits.pids is not None:
            out.append((r / "pids" / rel / "pids.max", str(limits.pids)))
        return out

    def remove(self, rel: str, timeout: float = 2.0) -> None:
        """Kill what is left in the cgroup ``rel`` and below, and remove it all (best-effort,
        idempotent)."""
        deadline = time.monotonic() + timeout
        for d in self.dirs(rel).values():
            if not d.is_dir():
                continue
            subdirs = [p for p in d.rglob("*") if p.is_dir()]
            for sub in [*sorted(subdirs, key=lambda p: -len(p.parts)), d]:
                self._remove_dir(sub, deadline)

    def remove_everywhere(self, rel: str, timeout: float = 2.0) -> None:
        """``remove`` in every mounted v1 hierarchy, not only the four this module manages:
        runc makes a container's cgroup, and so its parents, in all of them (cpuset,
        devices, freezer, blkio, the named ``systemd`` one, ``unified``...)."""
        if self.version == 2:
            self.remove(rel, timeout)
            return
        deadline = time.monotonic() + timeout
        seen: set[Path] = set()
        for h in sorted(self.root.iterdir()):
            real = h.resolve()  # (cpu and cpuacct may be links to "cpu,cpuacct")
            d = real / rel
            if real in seen or not d.is_dir():
                continue
            seen.add(real)
            subdirs = [p for p in d.rglob("*") if p.is_dir()]
            for sub in [*sorted(subdirs, key=lambda p: -len(p.parts)), d]:
                self._remove_dir(sub, deadline)

    def _remove_dir(self, d: Path, deadline: float) -> None:
        while True:
            for pid in self.pids(d):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            try:
                d.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                if time.monotonic() > deadline:
                    return
                time.sleep(0.01)

    @staticmethod
    def pids(d: Path) -> list[int]:
        try:
            return [int(x) for x in (d / "cgroup.procs").read_text().split()]
        except (OSError, ValueError):
            return []

    # -- reading -----------------------------------------------------------------------------

    def stats(self, rel: str) -> Stats | None:
        """Current memory working set and cumulative CPU time, or None when the cgroup
        is gone."""
        try:
            if self.version == 2:
                d = self.root / rel
                mem = working_set(int((d / "memory.current").read_text()), d / "memory.stat")
                cpu = 0
                for line in (d / "cpu.stat").read_text().splitlines():
                    key, _, value = line.partition(" ")
                    if key == "usage_usec":
                        cpu = int(value) * 1000
                return Stats(memory_bytes=mem, cpu_nanos=cpu)
            m = self.root / "memory" / rel
            mem = working_set(int((m / "memory.usage_in_bytes").read_text()), m / "memory.stat")
            cpu = int((self.root / "cpuacct" / rel / "cpuacct.usage").read_text())
            return Stats(memory_bytes=mem, cpu_nanos=cpu)
        except (OSError, ValueError):
            return None


def working_set(usage: int, stat_file: Path) -> int:
    """Memory usage less the inactive page cache, as the kubelet (cAdvisor) reports it:
    ``total_inactive_file`` (v1) or ``inactive_file`` (v2) from ``memory.stat``."""
    inactive = 0
    try:
        for line in stat_file.read_text().splitlines():
            key, _, value = line.partition(" ")
            if key in ("total_inactive_file", "inactive_file"):
                inactive = int(value)
                if key == "total_inactive_file":
                    break
    except (OSError, ValueError):
        return usage
    return max(0, usage - inactive)
