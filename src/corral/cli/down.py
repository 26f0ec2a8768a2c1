"""``corral down [--data-dir D] [--purge]``: stop a ``corral up`` cluster and remove from this
host everything it made, as ``kind delete cluster`` or k3s' killall and uninstall scripts do.

``main`` (cli/main.py) calls ``run``. The cluster is the data dir: ``corral up`` writes
``D/up.pid`` (``pid_file``) and its agents mark the bridges they make with their data
dir (``agent/drivers/bridges.py``) and the host's KUBE-* chains with their claim
(``proxy/owner.py``), so ``down`` touches only what ``D`` made, never another cluster's
things on the same host. In order:

1. stop ``corral up`` (SIGTERM to the pid in ``D/up.pid``; its children exit when their
   stdin closes) and its agents at once, and wait for the agents;
2. every agent under ``D/agents``: stop and remove its containers and pod sandboxes in
   parallel with a short grace (``agent.teardown.clear``, as ``corral agent --reset``
   does), through the driver's own ``recover``/``stop``/``remove``/``remove_sandbox``;
   then wait for ``corral up`` and stop any process of ``D`` still left (a killed
   ``up``'s children);
3. what a crash may have left: shims of ``D``, mounts under ``D``, the network
   namespaces and cgroups of ``D``'s pods;
4. the bridges ``D``'s agents own (their veths are gone with the namespaces, the
   bridges' routes with them), the KUBE-* chains when the last proxy to claim them
   was ``D``'s and is gone, and the portmap plugin's shared CNI-HOSTPORT-* chains once
   no hostPort on the host uses them;
5. with ``--purge``, ``D`` itself.

What was removed is counted by looking before and after (one line per kind). Without
``--purge`` the data dir stays: ``corral up`` starts the same cluster again, and the
agents create the pods' containers anew. ``up_conflicts`` is ``corral up``'s check that
the host is free for ``D`` (a second cluster is refused at once, naming the other's
data dir).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from corral.agent.drivers import bridges
from corral.agent.drivers.bridges import process_alive, start_ticks
from corral.proxy import owner as chains_owner
from corral.util.paths import absolute_path

PID_FILE = "up.pid"


# -- corral up's pid file ------------------------------------------------------------------


@contextlib.contextmanager
def pid_file(data_dir: Path) -> Iterator[None]:
    """``D/up.pid`` while ``corral up`` runs (removed on the way out, if still ours)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / PID_FILE
    pid = os.getpid()
    path.write_text(json.dumps({"pid": pid, "ticks": start_ticks(pid)}))
    try:
        yield
    finally:
        if running_up(data_dir) == pid:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        if _host_claim is not None:
            with contextlib.suppress(FileNotFoundError):
                (run_dir() / "up.json").unlink()


def running_up(data_dir: Path) -> int | None:
    """The pid of the ``corral up`` running ``data_dir``, or None."""
    try:
        d = json.loads((data_dir / PID_FILE).read_text())
        pid, ticks = int(d["pid"]), d.get("ticks")
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return pid if process_alive(pid, ticks) else None


def run_dir() -> Path:
    """Where the host-wide claims live (a tmpfs: a reboot clears them)."""
    if os.geteuid() == 0:
        return Path("/run/corral")
    return Path(os.environ.get("XDG_RUNTIME_DIR") or f"/tmp/corral-{os.getuid()}") / "corral"


_host_claim: IO[str] | None = None  # held (flock) for as long as this corral up runs


def claim_host(data_dir: Path) -> str:
    """Take the host's one ``corral up`` slot (its agents' fixed ports 10250..., bridges
    ``corral-n*`` and Service rules admit one cluster at a time): an exclusive ``flock``
    on ``RUN/up.lock`` kept until this process exits, and ``RUN/up.json`` naming
    ``data_dir``. Return "" or who holds it. Taken before anything starts, so two
    ``corral up`` started together cannot both pass the checks."""
    global _host_claim
    if _host_claim is not None:
        return ""
    d = run_dir()
    d.mkdir(parents=True, exist_ok=True)
    f = open(d / "up.lock", "a+")  # noqa: SIM115 - held until the process exits
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.close()
        try:
            other = json.loads((d / "up.json").read_text())
            return (
                f"corral up is running for the cluster in {other['data_dir']} (pid "
                f"{other['pid']}); corral down --data-dir {other['data_dir']}"
            )
        except (OSError, ValueError, KeyError, TypeError):
            return "corral up is running for another cluster here; corral down --data-dir DIR"
    _host_claim = f
    (d / "up.json").write_text(json.dumps({"pid": os.getpid(), "data_dir": str(data_dir)}))
    return ""


def forget_host_claim(data_dir: Path) -> None:
    """Drop ``RUN/up.json`` when it names ``data_dir`` and no ``corral up`` holds the slot
    (its ``corral up`` was killed)."""
    d = run_dir()
    try:
        if json.loads((d / "up.json").read_text()).get("data_dir") != str(data_dir):
            return
        with open(d / "up.lock", "a+") as f:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            (d / "up.json").unlink()
    except (OSError, ValueError, AttributeError):
        return


def release_host() -> None:
    """Give the slot back (``corral up`` refused to start after all)."""
    global _host_claim
    if _host_claim is not None:
        with contextlib.suppress(FileNotFoundError):
            (run_dir() / "up.json").unlink()
        _host_claim.close()
        _host_claim = None


def up_conflicts(data_dir: Path, agents: int, runtime: str, cluster_cidr: str) -> list[str]:
    """Why ``corral up`` in ``data_dir`` cannot start on this host now (empty: it can;
    then the host is claimed for it, ``claim_host``)."""
    found = []
    if (pid := running_up(data_dir)) is not None and pid != os.getpid():
        found.append(f"corral up is already running in {data_dir} (pid {pid})")
    if agents > 0 and (who := claim_host(data_dir.absolute())):
        found.append(who)
    if found or os.geteuid() != 0 or runtime != "oci" or agents == 0:
        if found:
            release_host()
        return found
    names = [f"corral-n{i}" for i in range(agents)]
    found += bridges.conflicts(data_dir, names, cluster_cidr)
    rec = chains_owner.read()
    if rec is not None and rec.alive() and not _under(rec.owner, data_dir):
        found.append(
            f"the Service proxy of {rec.owner} (pid {rec.pid}) owns this host's iptables "
            f"KUBE-* chains; {chains_owner.hint(rec.owner)}"
        )
    if found:
        release_host()
    return found


# -- what the cluster has on the host --------------------------------------------------------


def _under(path: str, data_dir: Path) -> bool:
    root = str(data_dir.absolute()).rstrip("/")
    return path == root or path.startswith(root + "/")


def _ancestors() -> set[int]:
    """This process and its parents (a shell running ``corral down --data-dir D`` names D)."""
    pids, pid = set(), os.getpid()
    while pid > 1 and pid not in pids:
        pids.add(pid)
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            break
    return pids


def _is_corral(argv: list[str]) -> bool:
    """A ``corral`` command, a container's shim or its conmon, or an etcd member of
    ``corral up --servers N`` (not, say, a user's ``kubectl --kubeconfig D/kubeconfig``
    or ``tail -f`` of a log in D)."""
    return any(Path(a).name in ("corral", "conmon", "shim.py", "etcd") for a in argv[:4]) or (
        argv[1:3] == ["-m", "corral"]
    )


def processes(data_dir: Path) -> dict[int, list[str]]:
    """The corral processes (``_is_corral``) whose command line names ``data_dir`` or a
    path in it."""
    mine = _ancestors()
    found = {}
    for name in filter(str.isdigit, os.listdir("/proc")):
        pid = int(name)
        if pid in mine:
            continue
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if (
            _is_corral(argv)
            and not _zombie(pid)
            and any(_under(a, data_dir) for a in argv if a.startswith("/"))
        ):
            found[pid] = argv
    return found


def pod_uids(data_dir: Path) -> set[str]:
    """The pods the agents of ``data_dir`` ever had here (their dirs and sandbox records)."""
    uids = {p.name for p in data_dir.glob("agents/*/pods/*")}
    uids |= {p.stem for p in data_dir.glob("agents/*/oci/sandboxes/*.json")}
    return uids


def netns_names(uids: set[str]) -> set[str]:
    want = {"corral-" + u.replace("-", "")[:16] for u in uids}
    try:
        have = set(os.listdir("/run/netns"))
    except OSError:
        return set()
    return have & want


def _unescape(field: str) -> str:
    """A mountinfo path field as the path it names (``\\040`` and the like decoded)."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), field)


def mounts(data_dir: Path) -> list[str]:
    with open("/proc/self/mountinfo") as f:  # octal escapes: "\\040" is a space
        targets = [_unescape(line.split()[4]) for line in f]
    return [t for t in targets if _under(t, data_dir) and t != str(data_dir.absolute())]


def cgroup_dirs(uids: set[str]) -> list[Path]:
    """Every cgroup directory of the pods (``corral/<uid>`` and below, every hierarchy)."""
    root = Path("/sys/fs/cgroup")
    tops = [root / "corral"] + [h / "corral" for h in root.iterdir() if h.is_dir()]
    found: list[Path] = []
    seen: set[Path] = set()
    for top in tops:
        real = top.resolve()
        if real in seen or not real.is_dir():
            continue
        seen.add(real)
        for uid in uids:
            d = real / uid
            if d.is_dir():
                found += [d, *(p for p in d.rglob("*") if p.is_dir())]
    return found


def kube_chains() -> int:
    out = subprocess.run(["iptables-save"], capture_output=True, text=True, check=False).stdout
    return sum(1 for line in out.splitlines() if line.startswith(":KUBE-"))


def routes_on(devices: set[str]) -> int:
    out = subprocess.run(["ip", "-j", "route", "show"], capture_output=True, text=True).stdout
    return sum(1 for r in json.loads(out or "[]") if r.get("dev") in devices)


@dataclass
class Snapshot:
    processes: int = 0
    netns: int = 0
    mounts: int = 0
    cgroups: int = 0
    bridges: list[str] = field(default_factory=list)
    veths: int = 0
    routes: int = 0
    chains: int = 0

    @classmethod
    def take(cls, data_dir: Path, chains: bool) -> Snapshot:
        uids = pod_uids(data_dir)
        s = cls(len(processes(data_dir)), len(netns_names(uids)), len(mounts(data_dir)))
        if os.geteuid() != 0:
            return s
        s.cgroups = len(cgroup_dirs(uids))
        owned = bridges.owned_by(data_dir)
        s.bridges = sorted(b.name for b in owned)
        s.veths = sum(len(b.ports) for b in owned)
        s.routes = routes_on(set(s.bridges))
        s.chains = kube_chains() if chains else 0
        return s


# -- the steps --------------------------------------------------------------------------------


def _signal_all(pids: list[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def _wait_gone(pids: list[int], timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    left = pids
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = [p for p in left if Path(f"/proc/{p}").exists() and not _zombie(p)]
    return left


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


def stop_agents(data_dir: Path) -> int | None:
    """SIGTERM to ``corral up`` and, at once, to the agents of ``data_dir`` (they leave
    their pods, as on ``corral up``'s own stop); return once the agents are gone, so the
    pods' removal need not wait for the API server's orderly shutdown. Returns the pid
    of ``corral up``, if one ran."""
    up = running_up(data_dir)
    agents = [p for p, argv in processes(data_dir).items() if "agent" in argv[1:4]]
    _signal_all([*([up] if up is not None else []), *agents], signal.SIGTERM)
    left = _wait_gone(agents, 15.0)
    _signal_all(left, signal.SIGKILL)
    _wait_gone(left, 5.0)
    return up


def stop_rest(data_dir: Path, up: int | None) -> list[str]:
    """Wait for ``corral up`` to finish stopping, then stop any other process of
    ``data_dir`` but the shims (a killed ``up``'s children that have not seen their
    stdin close yet); return what was stopped, for the report."""
    said = []
    if up is not None:
        if _wait_gone([up], 30.0):
            _signal_all([up], signal.SIGKILL)
            _wait_gone([up], 5.0)
        said.append(f"corral up (pid {up})")
    rest = [p for p, argv in processes(data_dir).items() if not _is_shim(argv)]
    if rest:
        _signal_all(rest, signal.SIGTERM)
        left = _wait_gone(rest, 15.0)
        _signal_all(left, signal.SIGKILL)
        _wait_gone(left, 5.0)
        said.append(f"{len(rest)} other processes")
    return said


def _is_shim(argv: list[str]) -> bool:
    return any(Path(a).name in ("shim.py", "conmon") for a in argv[:4])


async def clear_agents(data_dir: Path, failures: list[str]) -> tuple[int, int, int]:
    """Containers and pod sandboxes of every agent of ``data_dir``, all at once;
    (containers, sandboxes, Mesos task sandboxes)."""
    from corral.agent.drivers.base import Driver
    from corral.agent.teardown import clear

    def drivers(agent_dir: Path) -> list[Driver]:
        """The agent's drivers, as ``corral agent`` makes them (the kubelet stays out)."""
        found: list[Driver] = []
        if (agent_dir / "oci").is_dir() and os.geteuid() == 0:
            from corral.agent.drivers.cni import PodNetwork
            from corral.agent.drivers.oci import OciDriver

            network = PodNetwork(ipam_dir=agent_dir / "oci" / "cni")
            found.append(OciDriver(agent_dir / "oci", network=network))
        if (agent_dir / "process").is_dir():
            from corral.agent.drivers.process import ProcessDriver

            found.append(ProcessDriver(agent_dir / "process"))
        return found

    async def one(agent_dir: Path) -> tuple[int, int, int]:
        c = s = 0
        for driver in drivers(agent_dir):
            dc, ds = await clear(driver)
            c, s = c + dc, s + ds
        tasks = agent_dir / "mesos" / "sandboxes"  # (agent.mesos_task.sandboxes_dir)
        n = len(list(tasks.iterdir())) if tasks.is_dir() else 0
        shutil.rmtree(tasks, ignore_errors=True)
        return c, s, n

    dirs = sorted(d for d in data_dir.glob("agents/*") if d.is_dir())
    got = await asyncio.gather(*(one(d) for d in dirs), return_exceptions=True)
    results = []
    for d, r in zip(dirs, got, strict=True):
        if isinstance(r, BaseException):  # the rest of ``down`` still runs (leftovers)
            failures.append(f"agent {d.name}: {r}")
        else:
            results.append(r)
    return (
        sum(r[0] for r in results),
        sum(r[1] for r in results),
        sum(r[2] for r in results),
    )


def remove_leftovers(data_dir: Path) -> None:
    """What a crash left that the drivers no longer know of."""
    shims = [p for p, argv in processes(data_dir).items() if _is_shim(argv)]
    _signal_all(shims, signal.SIGKILL)
    _wait_gone(shims, 5.0)
    for target in reversed(mounts(data_dir)):
        subprocess.run(["umount", "-l", target], capture_output=True, check=False)
    uids = pod_uids(data_dir)
    for name in netns_names(uids):
        subprocess.run(["ip", "netns", "delete", name], capture_output=True, check=False)
    if os.geteuid() == 0:
        from corral.agent.drivers.cgroups import Cgroups

        cgroups = Cgroups.detect()
        if cgroups is not None:
            for uid in uids:
                cgroups.remove_everywhere(f"corral/{uid}")
        from corral.agent.teardown import remove_empty_cgroup_parents

        remove_empty_cgroup_parents()


async def remove_network(data_dir: Path) -> tuple[list[str], int]:
    """The bridges of ``data_dir`` (once no pod is attached), its proxy's KUBE-* chains,
    and the portmap plugin's shared chains once no hostPort uses them; return warnings
    about what had to stay, and how many portmap chains went."""
    from corral.agent.drivers.cni import remove_idle_portmap_chains
    from corral.proxy.proxier import IptablesBackend

    warnings = []
    for br in bridges.owned_by(data_dir):
        if br.ports:
            warnings.append(f"bridge {br.name} kept: {len(br.ports)} interfaces still attached")
            continue
        bridges.delete_bridge(br.name)
    rec = chains_owner.read()
    if rec is not None and _under(rec.owner, data_dir):
        if rec.alive():
            warnings.append(f"KUBE-* chains kept: their proxy (pid {rec.pid}) still runs")
        elif shutil.which("iptables-save"):
            await IptablesBackend.left_by(rec).cleanup()
    portmap = remove_idle_portmap_chains() if shutil.which("iptables-save") else 0
    return warnings, portmap


# -- the command ------------------------------------------------------------------------------


def add_arguments(p: argparse.ArgumentParser, default_data_dir: Path) -> None:
    p.add_argument(
        "--data-dir",
        type=absolute_path,
        default=default_data_dir,
        help=f"the cluster's data dir, as given to corral up (default {default_data_dir})",
    )
    p.add_argument(
        "--purge", action="store_true", help="also delete the data dir (the cluster is gone)"
    )


def run(args: argparse.Namespace) -> int:
    data_dir: Path = args.data_dir.absolute()
    if not data_dir.is_dir():
        print(f"corral down: no cluster in {data_dir}")
        return 0
    rec = chains_owner.read()
    ours = rec is not None and _under(rec.owner, data_dir)
    t0 = time.monotonic()
    before = Snapshot.take(data_dir, ours)
    up = stop_agents(data_dir)
    failures: list[str] = []
    containers, sandboxes, tasks = asyncio.run(clear_agents(data_dir, failures))
    stopped = stop_rest(data_dir, up)
    remove_leftovers(data_dir)
    warnings, portmap = asyncio.run(remove_network(data_dir)) if os.geteuid() == 0 else ([], 0)
    forget_host_claim(data_dir)
    after = Snapshot.take(data_dir, ours)
    gone_bridges = sorted(set(before.bridges) - set(after.bridges))
    print(f"corral down: {data_dir} ({time.monotonic() - t0:.1f} s)")
    print(f"  stopped {', '.join(stopped) if stopped else 'no running processes'}")
    lines = [
        ("processes", before.processes - after.processes, ""),
        ("containers", containers, ""),
        ("pod sandboxes", sandboxes, ""),
        ("Mesos task sandboxes", tasks, ""),
        ("network namespaces", before.netns - after.netns, ""),
        ("mounts", before.mounts - after.mounts, ""),
        ("veths", before.veths - after.veths, ""),
        ("bridges", len(gone_bridges), " ".join(gone_bridges)),
        ("routes", before.routes - after.routes, ""),
        ("iptables chains", max(0, before.chains - after.chains) + portmap, ""),
        ("cgroups", before.cgroups - after.cgroups, ""),
    ]
    for what, n, detail in lines:
        print(f"  removed {n} {what}" + (f" ({detail})" if detail else ""))
    warnings = failures + warnings
    for w in warnings:
        print(f"  warning: {w}")
    if args.purge:
        shutil.rmtree(data_dir, ignore_errors=True)
        if data_dir.exists() or data_dir.is_symlink():
            left = mounts(data_dir)
            why = f"{len(left)} mounts under it remain" if left else "it could not be removed"
            print(f"  warning: the data dir {data_dir} is still there: {why}")
            return 1
        print(f"  removed the data dir {data_dir}")
    else:
        print(f"  kept the data dir {data_dir} (corral up resumes it; --purge deletes it)")
    return 1 if warnings else 0
