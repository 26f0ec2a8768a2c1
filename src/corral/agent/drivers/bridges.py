"""Who owns a CNI bridge on this host, and making one ours (``corral agent``, ``up``, ``down``).

Bridges outlive the agents that made them, and ``corral up`` names its bridges the same
way in every data dir (``corral-n0``, ``corral-n1``, ...), so a new cluster on a used host
finds bridges with another cluster's subnet on them. An ``oci`` agent therefore claims
its bridge before any pod is attached (``claim_bridge``): it creates the bridge with the
gateway address of its own pod CIDR, or brings a bridge it finds to that address, and
marks it as its own in the interface alias (``/sys/class/net/BR/ifalias``)::

    corral pid=PID.START_TICKS dir=AGENT_DATA_DIR

The mark names the agent process (pid and start time, so a reused pid is not taken for
it) and its data dir. A bridge is another cluster's while its marking agent runs, or
while pod network namespaces of another data dir are attached to it (veths die with
their namespace, so any port is a live sandbox); then the claim raises
``BridgeConflict`` naming that data dir and ``corral down``. A bridge that is nobody's
any more (its agent gone, no ports) is taken over, and a stale address of another
corral bridge that overlaps our pod CIDR is removed (two connected routes for one
subnet would send our pods' replies to the wrong bridge). Claims on one host are
serialised by a lock file (``/run/corral/network.lock``).

``corral up`` asks ``conflicts`` before it starts anything, so a second cluster is
refused at once; ``corral down`` and ``corral agent --reset`` remove the bridges a data
dir owns (``owned_by``, ``delete_bridge``) once no pod is attached.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

LOCK_DIR = Path("/run/corral")
ALIAS_PREFIX = "corral "
SYS_NET = Path("/sys/class/net")


class BridgeConflict(Exception):
    """The bridge (or an address overlapping our pod CIDR) is another live cluster's;
    the message says whose and how to stop it."""


def start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (``/proc/PID/stat`` field 22),
    or None when there is no such process (or only its zombie)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return None if fields[0] == "Z" else int(fields[19])
    except (OSError, IndexError, ValueError):
        return None


def process_alive(pid: int, ticks: int | None) -> bool:
    """``pid`` runs and is the process that started at ``ticks`` (when given)."""
    if pid <= 0:
        return False
    now = start_ticks(pid)
    return now is not None and (ticks is None or now == ticks)


@dataclass(frozen=True)
class Owner:
    """The agent that marked a bridge: its pid and start time, and its data dir."""

    pid: int
    ticks: int | None
    dir: str

    @classmethod
    def me(cls, data_dir: Path) -> Owner:
        pid = os.getpid()
        return cls(pid, start_ticks(pid), str(Path(data_dir).absolute()))

    @classmethod
    def parse(cls, alias: str) -> Owner | None:
        if not alias.startswith(ALIAS_PREFIX):
            return None
        fields = dict(
            part.split("=", 1) for part in alias[len(ALIAS_PREFIX) :].split(" ", 1) if "=" in part
        )
        pid, _, ticks = fields.get("pid", "").partition(".")
        try:
            return cls(int(pid), int(ticks) if ticks else None, fields.get("dir", ""))
        except ValueError:
            return None

    def alias(self) -> str:
        ticks = "" if self.ticks is None else f".{self.ticks}"
        return f"{ALIAS_PREFIX}pid={self.pid}{ticks} dir={self.dir}"[:255]

    def alive(self) -> bool:
        return process_alive(self.pid, self.ticks)

    def under(self, data_dir: Path) -> bool:
        """Made by ``data_dir`` (an agent's data dir, or a cluster's holding it)."""
        root = str(Path(data_dir).absolute())
        return self.dir == root or self.dir.startswith(root.rstrip("/") + "/")


def stop_hint(owner_dir: str) -> str:
    """How to stop what made a bridge: ``corral down`` for a ``corral up`` cluster's agent
    (``CLUSTER/agents/NAME``), ``corral agent --reset`` for a stand-alone one."""
    p = Path(owner_dir)
    if p.parent.name == "agents":
        return f"corral down --data-dir {p.parent.parent}"
    return f"stop that agent, then corral agent --reset --data-dir {p}"


@dataclass(frozen=True)
class Interface:
    name: str
    addresses: tuple[str, ...]  # IPv4, "10.89.0.1/24"
    bridge: bool
    ports: tuple[str, ...]
    owner: Owner | None

    def why_busy(self, mine: Path) -> str:
        """Why this bridge is another cluster's (empty: it is free to take)."""
        if self.owner is not None and self.owner.under(mine):
            return ""
        if self.owner is not None and self.owner.alive():
            return (
                f"bridge {self.name} belongs to the running agent of {self.owner.dir} "
                f"(pid {self.owner.pid}); {stop_hint(self.owner.dir)}"
            )
        if self.ports:
            whose = self.owner.dir if self.owner is not None else _owner_from_ports(self)
            hint = stop_hint(whose) if whose else "corral down --data-dir DIR of that cluster"
            return (
                f"bridge {self.name} ({', '.join(self.addresses) or 'no address'}) has "
                f"{len(self.ports)} running pod(s) of {whose or 'another cluster'} attached; "
                f"{hint}"
            )
        return ""


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def interfaces() -> list[Interface]:
    """Every interface of this network namespace with its IPv4 addresses; bridges with
    their ports and owner."""
    out = subprocess.run(
        ["ip", "-j", "-4", "addr", "show"], capture_output=True, text=True, check=False
    ).stdout
    addrs: dict[str, list[str]] = {}
    for link in json.loads(out or "[]"):
        addrs[link["ifname"]] = [
            f"{a['local']}/{a['prefixlen']}"
            for a in link.get("addr_info", [])
            if a.get("family") == "inet"
        ]
    found = []
    for name in sorted(os.listdir(SYS_NET)) if SYS_NET.is_dir() else []:
        d = SYS_NET / name
        is_bridge = (d / "bridge").is_dir()
        ports = tuple(sorted(os.listdir(d / "brif"))) if is_bridge else ()
        owner = Owner.parse(_read(d / "ifalias")) if is_bridge else None
        found.append(Interface(name, tuple(addrs.get(name, [])), is_bridge, ports, owner))
    return found


def bridge(name: str) -> Interface | None:
    return next((i for i in interfaces() if i.name == name and i.bridge), None)


def _owner_from_ports(br: Interface) -> str:
    """The agent data dir of the pods attached to an unmarked bridge (through their pause
    shims' command lines), or ""."""
    out = subprocess.run(
        ["ip", "-j", "link", "show", "master", br.name], capture_output=True, text=True
    ).stdout
    ids = {str(link.get("link_netnsid")) for link in json.loads(out or "[]")}
    listed = subprocess.run(["ip", "-j", "netns", "list"], capture_output=True, text=True).stdout
    uids = [
        str(ns["name"]).removeprefix("corral-")
        for ns in json.loads(listed or "[]")
        if str(ns.get("id")) in ids and str(ns["name"]).startswith("corral-")
    ]
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        for arg in (a.decode(errors="replace") for a in argv):
            if "/oci/sandboxes/" in arg and arg.rsplit("/", 1)[-1].replace("-", "")[:16] in uids:
                return arg.split("/oci/sandboxes/")[0]
    return ""


def _ip(*argv: str) -> None:
    res = subprocess.run(["ip", *argv], capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise OSError(f"ip {' '.join(argv)}: {res.stderr.strip()}")


@contextlib.contextmanager
def host_lock() -> Iterator[None]:
    """Serialise bridge claims of the agents on this host."""
    LOCK_DIR.mkdir(parents=True, exist_ok=True)
    with open(LOCK_DIR / "network.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _overlaps(address: str, subnet: ipaddress.IPv4Network) -> bool:
    return ipaddress.ip_interface(address).network.overlaps(subnet)


def claim_bridge(name: str, subnet: str, data_dir: Path) -> list[str]:
    """Make ``name`` this agent's bridge with the gateway address of ``subnet`` (see the
    module docstring); return what was changed, for the log. Raises ``BridgeConflict``."""
    net = ipaddress.IPv4Network(subnet, strict=False)
    gateway = f"{net[1]}/{net.prefixlen}"
    me = Owner.me(data_dir)
    done: list[str] = []
    with host_lock():
        found = interfaces()
        for itf in found:
            clash = [a for a in itf.addresses if _overlaps(a, net)]
            if itf.name == name:
                if not itf.bridge:
                    raise BridgeConflict(
                        f"{name} exists and is not a bridge; pick another --bridge"
                    )
                if why := itf.why_busy(data_dir):
                    raise BridgeConflict(why)
                continue
            if not clash or (itf.owner is not None and itf.owner.under(data_dir) and not itf.ports):
                if clash:  # our own old bridge under another name
                    for a in clash:
                        _ip("addr", "del", a, "dev", itf.name)
                        done.append(f"removed {a} from our old bridge {itf.name}")
                continue
            if not itf.bridge or (itf.owner is None and not itf.name.startswith("corral")):
                raise BridgeConflict(
                    f"{itf.name} has {', '.join(clash)}, which overlaps this node's pod CIDR "
                    f"{net}; pick another pod CIDR"
                )
            if why := itf.why_busy(data_dir):
                raise BridgeConflict(f"{why} (its {', '.join(clash)} overlaps {net})")
            for a in clash:  # a stale corral bridge: its address would shadow ours
                _ip("addr", "del", a, "dev", itf.name)
                done.append(f"removed stale {a} from {itf.name}")
        own = next((i for i in found if i.name == name), None)
        if own is None:
            _ip("link", "add", name, "type", "bridge")
            done.append(f"created {name}")
            have: tuple[str, ...] = ()
        else:
            have = own.addresses
            if own.owner is None or not own.owner.under(data_dir):
                done.append(f"took over {name} (was {own.owner.dir if own.owner else 'unmarked'})")
        for a in have:
            if a != gateway:
                _ip("addr", "del", a, "dev", name)
                done.append(f"removed {a} from {name}")
        if gateway not in have:
            _ip("addr", "add", gateway, "dev", name)
            done.append(f"{name} has {gateway}")
        _ip("link", "set", "dev", name, "alias", me.alias())
        _ip("link", "set", name, "up")
    return done


def conflicts(data_dir: Path, names: list[str], cluster_cidr: str) -> list[str]:
    """What keeps a cluster in ``data_dir`` from using bridges ``names`` and pod IPs in
    ``cluster_cidr`` here: live bridges of other data dirs (``corral up``'s check)."""
    net = ipaddress.IPv4Network(cluster_cidr, strict=False)
    found = []
    for itf in interfaces():
        clash = [a for a in itf.addresses if _overlaps(a, net)]
        if itf.name not in names and not clash:
            continue
        if itf.bridge and (why := itf.why_busy(data_dir)):
            found.append(why)
        elif not itf.bridge and clash:
            found.append(f"{itf.name} has {', '.join(clash)}, inside the pod range {net}")
    return found


def owned_by(data_dir: Path) -> list[Interface]:
    """The bridges marked by agents of ``data_dir`` (an agent's, or a cluster's)."""
    return [i for i in interfaces() if i.bridge and i.owner and i.owner.under(data_dir)]


def delete_bridge(name: str) -> None:
    _ip("link", "delete", name, "type", "bridge")
