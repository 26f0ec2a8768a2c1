"""Disk full and corruption, backup and restore (issue 16, item 6): scenario ``disk``.

``run(work, long=...)`` mounts a small tmpfs under ``work`` and runs a real ``corral
server`` (no scheduler, controllers or metrics server: only the store matters) with its
whole data directory there: database, WAL, log, PKI, encryption configuration. Then:

1. **Backup while writing**: ``corral backup`` while a client creates ConfigMaps;
   ``corral restore`` is refused while the server runs.
2. **Disk full.** A filler file takes every free byte; writes (the ``kubernetes``
   client: creates of incompressible ConfigMaps, an update, a delete; ``kubectl create
   -f``) must fail with a Status that is not a 500 (Corral answers 507
   InsufficientStorage), reads keep working, the server stays up (its log is on that
   disk too). Deleting the filler brings writes back; a watch from before the fault
   sees every acknowledged write and no phantom of a refused one; a namespace deletion
   completes (the server's loops outlived the fault: the long form holds the disk full
   through a round of them). After a clean stop the file passes ``integrity_check``,
   every plaintext value decodes, no refused write took a revision (no hole in the
   log), every acknowledged write is in it and no refused one. Before the fault, one
   create whose body arrives in two parts (``split_body_create``).
3. **Corruption**: bytes overwritten in b-tree pages, a truncated file, a random file
   (each on a copy of the data dir, started in parallel): each start must fail with one
   line naming the file and ``corral restore``, exit non-zero, no traceback.
4. **Restore** the backup over the corrupt file, restart: every object acknowledged
   before the backup began is there and resourceVersions did not go back.
5. ``start_check_ms``: ``PRAGMA quick_check`` (what every start runs) on a store of N
   objects, beside ``integrity_check_ms``, the store built in-process.

``corral backup`` and ``corral restore`` run as commands (their exit status and one-line
errors are part of what is checked), the refused restore beside the backup and the
three corrupt starts beside the restore, to keep the short form short.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from corral.testing.faults.disk_store import (
    NS,
    SERVER_FLAGS,
    Starts,
    check_file,
    configmap,
    corrupt,
    corrupt_starts,
    judge,
    noise,
    start_check_cost,
)
from corral.testing.process import ServerProcess


@contextlib.contextmanager
def tmpfs(path: Path, size_mb: int) -> Iterator[Path]:
    """A tmpfs of ``size_mb`` at ``path``, unmounted (lazily if busy) on exit."""
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(path)],
                   check=True)  # fmt: skip
    try:
        yield path
    finally:
        if subprocess.run(["umount", str(path)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(path)], capture_output=True)


def fill(path: Path) -> int:
    """Write ``path`` until the file system says ENOSPC; the bytes written."""
    written = 0
    with open(path, "wb", buffering=0) as f:
        for chunk in (1 << 20, 4096, 512, 1):
            block = b"\0" * chunk
            while True:
                try:
                    written += f.write(block) or 0
                except OSError:
                    break
    return written


def _core(kubeconfig: Path) -> Any:
    from kubernetes import client, config

    cfg = client.Configuration()
    config.load_kube_config(config_file=str(kubeconfig), client_configuration=cfg)  # type: ignore[no-untyped-call]
    return client.CoreV1Api(client.ApiClient(cfg))


def corral(*argv: str) -> subprocess.Popen[str]:
    """``corral ARGV`` started (``communicate`` for its exit status and output)."""
    return subprocess.Popen([sys.executable, "-m", "corral", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip


def finish(proc: subprocess.Popen[str], timeout: float = 120) -> tuple[int, str, str]:
    """Wait for a ``corral`` command: exit status, stdout, stderr (killed past ``timeout``)."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    return proc.returncode, out, err


def _writer(v1: Any, stop: threading.Event, acked: list[tuple[float, str]]) -> None:
    i = 0
    while not stop.is_set():
        name = f"bk-{i}"
        with contextlib.suppress(Exception):
            v1.create_namespaced_config_map(NS, configmap(name))
            acked.append((time.monotonic(), name))
        i += 1


def backup_while_writing(srv: ServerProcess, backup: Path, seed: int) -> dict[str, Any]:
    """Phase 1 (``seed`` objects first): the names that must be in the backup, and what
    went wrong."""
    violations: list[str] = []
    v1 = _core(srv.kubeconfig)
    for i in range(seed):
        v1.create_namespaced_config_map(NS, configmap(f"seed-{i}", noise(512)))
    stop, acked = threading.Event(), list[tuple[float, str]]()
    t = threading.Thread(target=_writer, args=(v1, stop, acked), daemon=True)
    t.start()
    while len(acked) < 10 and t.is_alive():
        time.sleep(0.02)
    began = time.monotonic()
    data = str(srv.data_dir)
    try:  # the refused restore (another file: the backup is not there yet) beside it
        refused = corral("restore", "--data-dir", data, str(srv.data_dir / "state.db"))
        rc, _, err = finish(corral("backup", "--data-dir", data, str(backup)))
        during = len(acked)
    finally:
        stop.set()
        t.join(30)
    if rc != 0:
        violations.append(f"corral backup failed: {err.strip()}")
    rc, _, err = finish(refused)
    if rc == 0 or "in use" not in err:
        violations.append(f"restore while the server runs was not refused: {err.strip()!r}")
    before = {n for at, n in acked if at < began}
    must = before | {f"seed-{i}" for i in range(seed)}
    return {"must": must, "writes_during_backup": during - len(before), "violations": violations}


def split_body_create(srv: ServerProcess, name: str) -> str:
    """POST a ConfigMap whose body arrives in two parts 0.2 s apart (a slow client, or a
    large body over TCP): the HTTP status line's code (was 400: the server read only the
    first part)."""
    body = orjson.dumps(configmap(name, noise(48 * 1024)))
    head = (
        f"POST /api/v1/namespaces/{NS}/configmaps HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {srv.token}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    with (
        socket.create_connection(("127.0.0.1", srv.port), timeout=30) as raw,
        srv.ssl_context().wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        tls.sendall(head + body[:1000])
        time.sleep(0.2)
        tls.sendall(body[1000:])
        answer = tls.recv(64).decode("latin-1")
    return answer.split(" ")[1] if answer.startswith("HTTP/") else answer[:40]


def disk_full(srv: ServerProcess, mnt: Path, long: bool) -> dict[str, Any]:
    """Phase 2 (see the module docstring); leaves the server running with space back."""
    from kubernetes import watch
    from kubernetes.client.exceptions import ApiException

    v1 = _core(srv.kubeconfig)
    violations: list[str] = []
    acked = {f"pre-{i}" for i in range(20 if long else 5)}
    for name in sorted(acked):
        v1.create_namespaced_config_map(NS, configmap(name))
    code = split_body_create(srv, "pre-split")
    if code == "201":
        acked.add("pre-split")
    else:
        violations.append(f"a body sent in two parts was answered {code}, not 201")
    rv0 = v1.list_namespaced_config_map(NS).metadata.resource_version
    filler = mnt / "filler"
    fill(filler)
    failed: set[str] = set()
    codes: dict[int, int] = {}
    payload = 64 * 1024
    for i in range(2000 if long else 400):
        name = f"full-{i}"
        try:
            v1.create_namespaced_config_map(NS, configmap(name, noise(payload)))
            acked.add(name)
        except ApiException as e:
            codes[e.status] = codes.get(e.status, 0) + 1
            failed.add(name)
            if len(failed) >= (20 if long else 3):
                break
    if not failed:
        violations.append("the disk never filled: no write failed")
    # an update and a delete on the full disk: refused the same way (or done: acked)
    for what, name in (("update", "pre-0"), ("delete", "pre-1")):
        try:
            if what == "update":
                v1.patch_namespaced_config_map(name, NS, {"data": {"v": noise(payload)}})
            else:
                v1.delete_namespaced_config_map(name, NS)
                acked.discard(name)
        except ApiException as e:
            codes[e.status] = codes.get(e.status, 0) + 1
    manifest = orjson.dumps(configmap("full-kubectl", noise(payload))).decode()
    out = subprocess.run(["kubectl", "--kubeconfig", str(srv.kubeconfig), "create", "-f", "-"],
                         input=manifest, capture_output=True, text=True, timeout=30)  # fmt: skip
    kubectl_line = ""
    if out.returncode == 0:
        acked.add("full-kubectl")
    else:
        failed.add("full-kubectl")
        kubectl_line = (out.stderr.strip().splitlines() or [""])[-1]
        if "Error from server (InsufficientStorage)" not in kubectl_line:
            violations.append(f"kubectl's error line does not say why: {kubectl_line!r}")
    # reads keep working; refused commits did not move the revision
    listed = v1.list_namespaced_config_map(NS)
    # (the revision may move: a small write can fit where a large one failed; that no
    # refused write took a revision is checked at rest, ``revision_holes``)
    get = subprocess.run(["kubectl", "--kubeconfig", str(srv.kubeconfig), "get", "configmaps",
                          "-o", "name"], capture_output=True, text=True, timeout=30)  # fmt: skip
    if get.returncode != 0:
        violations.append(f"kubectl get failed on a full disk: {get.stderr.strip()}")
    listed_failed = {c.metadata.name for c in listed.items} & failed
    if listed_failed:
        violations.append(f"refused writes listed: {sorted(listed_failed)[:5]}")
    if long:  # a full disk through a round of the server's periodic loops (5 s)
        time.sleep(6)
    if srv.proc.poll() is not None:
        violations.append(f"the server died on a full disk (exit {srv.proc.returncode})")
        return {"violations": violations, "acked": acked, "failed": failed}
    filler.unlink()  # space returns
    recovered = False
    try:
        v1.create_namespaced_config_map(NS, configmap("after-space"))
        acked.add("after-space")
        recovered = True
    except ApiException as e:
        violations.append(f"a write after space returned failed: {e.status} {e.reason}")
    # a watch from before the fault: every acknowledged write, no phantom
    seen: set[str] = set()
    w = watch.Watch()  # type: ignore[no-untyped-call]
    if recovered:
        events = w.stream(  # type: ignore[no-untyped-call]
            v1.list_namespaced_config_map, NS, resource_version=rv0, timeout_seconds=10
        )
        for ev in events:
            seen.add(ev["object"].metadata.name)
            if ev["object"].metadata.name == "after-space":
                w.stop()  # type: ignore[no-untyped-call]
    # the server's loops outlived the full disk: a namespace deletion completes
    if recovered:
        v1.create_namespace({"metadata": {"name": "after-space"}})
        v1.delete_namespace("after-space")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                v1.read_namespace("after-space")
            except ApiException as e:
                if e.status == 404:
                    break
                raise
            time.sleep(0.1)
        else:
            violations.append("a namespace deleted after the full disk was never removed")
    if seen & failed:
        violations.append(f"the watch saw refused writes: {sorted(seen & failed)[:5]}")
    missing = {n for n in acked if not n.startswith("pre-")} - seen
    if recovered and missing:
        violations.append(f"the watch missed acknowledged writes: {sorted(missing)[:5]}")
    writes_500 = codes.get(500, 0)
    if writes_500:
        violations.append(f"{writes_500} writes answered 500 on a full disk")
    refused = sorted(c for c in codes if c != 500)
    odd = [c for c in refused if c != 507]
    if odd:
        violations.append(f"writes refused with other codes than 507: {odd}")
    return {
        "disk_full_status": refused[0] if refused else (500 if writes_500 else 0),
        "status_counts": {str(k): v for k, v in sorted(codes.items())},
        "kubectl_error": kubectl_line,
        "writes_500": writes_500,
        "writes_acked_while_filling": len([n for n in acked if n.startswith("full-")]),
        "writes_refused": len(failed),
        "recovered_after_space": recovered,
        "acked": acked,
        "failed": failed,
        "violations": violations,
    }


def run(work: Path, *, long: bool = False) -> dict[str, object]:
    figures: dict[str, Any] = {}
    violations: list[str] = []
    backup = work / "backup.db"
    with tmpfs(work / "mnt", 64 if long else 24) as mnt:
        data = mnt / "data"
        srv = ServerProcess.start(data, extra=SERVER_FLAGS)
        starts: Starts = {}
        try:
            bk = backup_while_writing(srv, backup, 1000 if long else 0)
            violations += bk["violations"]
            figures["writes_during_backup"] = bk["writes_during_backup"]
            full = disk_full(srv, mnt, long)
            violations += full.pop("violations")
            acked, failed = full.pop("acked"), full.pop("failed")
            figures.update(full)
            v1 = _core(srv.kubeconfig)
            top_rv = int(v1.list_namespaced_config_map(NS).metadata.resource_version)
            srv.stop()
            # phase 2, at rest: whole, decodable, every acknowledged write, no refused one
            problems, names = check_file(data / "state.db")
            figures["corrupt_after_full"] = len(problems)
            violations += [f"after the full disk: {p}" for p in problems]
            figures["acknowledged_writes_lost"] = len(acked - names)
            if acked - names:
                violations.append(f"acknowledged writes lost: {sorted(acked - names)[:5]}")
            if names & failed:
                violations.append(f"refused writes stored: {sorted(names & failed)[:5]}")
            # phase 3
            starts = corrupt_starts(data, work)  # judged after phase 4, which overlaps
            # phase 4: corrupt the real one, restore, restart
            corrupt(data / "state.db", "overwritten")
            rc, _, err = finish(corral("restore", "--data-dir", str(data), str(backup)))
            if rc != 0:
                violations.append(f"corral restore failed: {err.strip()}")
            if not list(data.glob("state.db.corrupt-*")):
                violations.append("restore did not keep the corrupt database aside")
            srv = ServerProcess.start(data, port=srv.port, extra=SERVER_FLAGS)
            listed = _core(srv.kubeconfig).list_namespaced_config_map(NS)
            lost = bk["must"] - {c.metadata.name for c in listed.items}
            figures["backup_objects"] = len(bk["must"])
            figures["backup_objects_lost"] = len(lost)
            if lost:
                violations.append(f"{len(lost)} objects acknowledged before the backup lost "
                                  f"in the restore: {sorted(lost)[:5]}")  # fmt: skip
            if int(listed.metadata.resource_version) <= top_rv:
                violations.append(f"resourceVersion went back after the restore: {top_rv} -> "
                                  f"{listed.metadata.resource_version}")  # fmt: skip
            bad = judge(starts)
            violations += bad
            figures["corruption_detected"] = not bad
        finally:
            srv.stop()
            for _, proc in starts.values():  # none outlives the run, whatever happened
                if proc.poll() is None:
                    proc.kill()
                    proc.communicate()
    figures.update(start_check_cost(work, 20_000 if long else 1_000))
    figures["violations"] = violations
    return figures
