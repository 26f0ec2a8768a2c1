"""``corral etcd status|recover|add``: the local etcd cluster of ``corral up --servers N``.

``corral up --servers N --datastore etcd`` records its etcd members in
``DATA/etcd/cluster.json`` (``write_layout``: name, client and peer port of each, the
host). These commands work from that record, so nobody edits peer lists by hand:

* ``status``: each member, whether its process runs and whether it answers ``/health``.
* ``recover [--member NAME]``: after losing quorum (two of three members gone), etcd
  accepts no writes. This restarts one surviving member (``--member``, else a running
  one, else the first with data) alone with ``--force-new-cluster``
  (``EtcdCluster.recover``: etcd's documented disaster recovery, keeping that member's
  data and dropping the others from the membership). The other members' processes are
  stopped and their data dirs moved aside (``NAME.removed-TIME``) so they can never rejoin
  the old cluster; the record then names one member. The API servers keep their
  ``--datastore`` list and reconnect to it by themselves.
* ``add``: puts the record's missing members back, one at a time: etcd's
  ``MemberAdd`` (the gateway's ``/v3/cluster/member/add``) on the live cluster, then the
  member started on an empty data dir with ``--initial-cluster-state existing``, as
  etcd's runtime reconfiguration documents.

Members started here outlive the command (their own session); ``corral down`` stops them
(they name ``DATA`` on their command line) as it does ``corral up``'s own.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from corral.cli.errors import CommandError
from corral.util.paths import absolute_path

LAYOUT = "cluster.json"


def add_parser(sub: argparse._SubParsersAction, default_data_dir: Path) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("etcd", help="status, quorum recovery and re-adding members of the "
                       "local etcd cluster of corral up --servers N")  # fmt: skip
    verbs = p.add_subparsers(dest="etcd_command", required=True)
    for name, text in (
        ("status", "each member: running, healthy"),
        ("recover", "after quorum loss: restart one surviving member as a one-member cluster"),
        ("add", "start the members the cluster lost again, as new members"),
    ):
        v = verbs.add_parser(name, help=text)
        v.add_argument("--data-dir", type=absolute_path, default=default_data_dir,
                       help=f"the cluster's data dir (default {default_data_dir})")  # fmt: skip
        if name == "recover":
            v.add_argument("--member", default="", metavar="NAME",
                           help="the member whose data to keep (default: a running one)")  # fmt: skip


# --- the record ----------------------------------------------------------------------------


def write_layout(base_dir: Path, host: str, members: list[tuple[str, int, int]]) -> None:
    """``base_dir/cluster.json``: ``members`` as (name, client port, peer port)."""
    base_dir.mkdir(parents=True, exist_ok=True)
    doc = {"host": host, "members": [{"name": n, "client_port": c, "peer_port": p}
                                     for n, c, p in members]}  # fmt: skip
    tmp = base_dir / f".{LAYOUT}.tmp"
    tmp.write_text(json.dumps(doc, indent=1) + "\n")
    os.replace(tmp, base_dir / LAYOUT)


def read_layout(base_dir: Path) -> tuple[str, list[dict[str, Any]]]:
    path = base_dir / LAYOUT
    try:
        doc = json.loads(path.read_text())
        return str(doc["host"]), list(doc["members"])
    except FileNotFoundError:
        raise CommandError(f"{path}: no etcd cluster of corral up --servers here") from None
    except (ValueError, KeyError, TypeError) as e:
        raise CommandError(f"{path}: unreadable ({e})") from None


def cluster_from_layout(base_dir: Path, host: str, members: list[dict[str, Any]], **kw: Any) -> Any:
    from corral.util.etcd_process import EtcdCluster

    ports = [(int(m["client_port"]), int(m["peer_port"])) for m in members]
    cluster = EtcdCluster(base_dir, len(members), host=host, ports=ports, **kw)
    for m, name in zip(cluster.members, (m["name"] for m in members), strict=True):
        m.name = name  # the record's names (m0, m1, ...), kept across recoveries
    return cluster


def member_pids(base_dir: Path) -> dict[str, int]:
    """The running etcd processes whose ``--data-dir`` is under ``base_dir``, by member
    directory name (``corral down``'s scan of live processes naming ``base_dir``)."""
    from corral.cli.down import processes

    found: dict[str, int] = {}
    root = str(base_dir.absolute()).rstrip("/") + "/"
    for pid, argv in processes(base_dir).items():
        if Path(argv[0]).name != "etcd" or "--data-dir" not in argv[:-1]:
            continue
        data = argv[argv.index("--data-dir") + 1]
        if data.startswith(root):
            found[Path(data).name] = pid
    return found


def _healthy(host: str, port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/health", timeout=2) as r:
            return str(json.loads(r.read()).get("health")) == "true"
    except (OSError, ValueError, urllib.error.URLError):
        return False


def _alive(pid: int) -> bool:
    """``pid`` exists and is not a zombie (an exited process its parent, another process
    than this one, has not reaped yet: waiting for it to go would wait for nothing)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def stop_pids(pids: list[int], timeout: float = 10.0) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            continue
    deadline = time.monotonic() + timeout
    for pid in pids:
        while time.monotonic() < deadline:
            try:  # a child of ours (rare): reap it
                if os.waitpid(pid, os.WNOHANG)[0] == pid:
                    break
            except ChildProcessError:
                pass
            if not _alive(pid):
                break
            time.sleep(0.05)
        if _alive(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


# --- the commands --------------------------------------------------------------------------


def status(base_dir: Path) -> int:
    host, members = read_layout(base_dir)
    pids = member_pids(base_dir)
    healthy = 0
    for m in members:
        ok = _healthy(host, int(m["client_port"]))
        healthy += ok
        pid = pids.get(m["name"])
        run = f"pid {pid}" if pid else "not running"
        print(
            f"  {m['name']}  {host}:{m['client_port']}  {run}  {'healthy' if ok else 'unhealthy'}"
        )
    quorum = len(members) // 2 + 1
    print(f"{healthy}/{len(members)} healthy (quorum {quorum})")
    return 0 if healthy >= quorum else 1


def recover(base_dir: Path, member: str) -> int:
    host, members = read_layout(base_dir)
    names = [m["name"] for m in members]
    pids = member_pids(base_dir)
    if member:
        if member not in names:
            raise CommandError(f"no member {member!r} (members: {', '.join(names)})")
        keep = member
    else:
        alive = [n for n in names if n in pids]
        with_data = [n for n in names if (base_dir / n / "member").is_dir()]
        if not (alive or with_data):
            raise CommandError(f"no member of {base_dir} has data to recover from")
        keep = (alive or with_data)[0]
    if not (base_dir / keep / "member").is_dir():
        raise CommandError(f"member {keep} has no data in {base_dir / keep}")
    i = names.index(keep)
    # a member without quorum may not finish a graceful stop: SIGKILL after 2 s (etcd's
    # WAL is fsynced on every commit, so a kill loses nothing acknowledged)
    stop_pids(list(pids.values()), timeout=2.0)
    cluster = cluster_from_layout(base_dir, host, members)
    cluster.recover(i)  # --force-new-cluster on its data; waits until healthy
    stamp = time.strftime("%Y%m%dT%H%M%S")
    for n in names:
        if n != keep and (base_dir / n).exists():
            os.replace(base_dir / n, base_dir / f"{n}.removed-{stamp}")
    lost = [n for n in names if n != keep]
    # a recover run again (or after one cut short) adds to the members lost before; the
    # lost ones are written before the record names one member, so none is forgotten
    before = [m for m in _lost(base_dir) if m["name"] not in names]
    lost_path = base_dir / "lost-members.json"
    lost_path.write_text(json.dumps(before + [m for m in members if m["name"] in lost]))
    write_layout(base_dir, host, [(keep, int(members[i]["client_port"]),
                                   int(members[i]["peer_port"]))])  # fmt: skip
    print(f"etcd member {keep} ({host}:{members[i]['client_port']}) runs as a one-member "
          "cluster: writes work again")  # fmt: skip
    lost += [m["name"] for m in before]
    if lost:
        print(f"  {', '.join(lost)} dropped (data kept aside as NAME.removed-{stamp}); "
              f"corral etcd add --data-dir {base_dir.parent} starts them again as new members")  # fmt: skip
    return 0


#: etcd refuses a member change until every member has been connected this long
#: (``HealthInterval``, 5 s, in its ``mayAddMember``): ``add`` retries for this long
ADD_RETRY_FOR = 30.0


def _member_add(host: str, client_port: int, peer_url: str) -> None:
    """etcd's MemberAdd; retried while etcd answers "unhealthy cluster" (a member that
    has just joined is not yet counted as connected: the strict reconfiguration check)."""
    body = json.dumps({"peerURLs": [peer_url]}).encode()
    url = f"http://{host}:{client_port}/v3/cluster/member/add"
    deadline = time.monotonic() + ADD_RETRY_FOR
    while True:
        req = urllib.request.Request(url, body, {"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                json.loads(r.read())
                return
        except urllib.error.HTTPError as e:
            detail = e.read().decode(errors="replace")[:300]
            if "unhealthy cluster" in detail and time.monotonic() < deadline:
                time.sleep(0.5)
                continue
            raise CommandError(f"etcd refused to add {peer_url}: {e.code} {detail}") from None
        except (OSError, urllib.error.URLError) as e:
            raise CommandError(f"cannot reach etcd on {host}:{client_port}: {e}") from None


def _lost(base_dir: Path) -> list[dict[str, Any]]:
    path = base_dir / "lost-members.json"
    return list(json.loads(path.read_text())) if path.exists() else []


def add(base_dir: Path) -> int:
    host, members = read_layout(base_dir)
    lost_path = base_dir / "lost-members.json"
    lost = _lost(base_dir)
    if not lost:
        print("no member to add: the cluster has every member it had")
        return 0
    live = next((m for m in members if _healthy(host, int(m["client_port"]))), None)
    if live is None:
        raise CommandError("no healthy member to add to (corral etcd recover first)")
    for m in list(lost):
        old = base_dir / m["name"]
        if old.exists():  # data of the old cluster (a recover cut short): never rejoin with it
            os.replace(old, base_dir / f"{m['name']}.removed-{time.strftime('%Y%m%dT%H%M%S')}")
        _member_add(host, int(live["client_port"]), f"http://{host}:{m['peer_port']}")
        members.append(m)
        cluster = cluster_from_layout(base_dir, host, members,
                           extra_args=["--initial-cluster-state", "existing"])  # fmt: skip
        cluster.restart(len(members) - 1)  # an empty data dir: joins as the new member
        lost.remove(m)
        write_layout(base_dir, host, [(x["name"], int(x["client_port"]), int(x["peer_port"]))
                                      for x in members])  # fmt: skip
        lost_path.write_text(json.dumps(lost))
        print(f"etcd member {m['name']} ({host}:{m['client_port']}) added")
    lost_path.unlink(missing_ok=True)
    return 0


def run(args: argparse.Namespace) -> int:
    base_dir = Path(args.data_dir) / "etcd"
    if args.etcd_command == "status":
        return status(base_dir)
    if args.etcd_command == "recover":
        return recover(base_dir, args.member)
    return add(base_dir)
