"""The load of the ``crash`` fault scenario (``crash.py``): writers, watchers, the ledger.

``Writer`` threads each own a few names of one resource (ConfigMaps or Secrets, so the
encrypted-at-rest path is written too) and create, update (on the resourceVersion they
last saw) and delete (with a resourceVersion precondition) them over their own HTTPS
connection. Every object carries a payload unique to the attempt that wrote it and its
SHA-256: a half-written object is recognisable, and so is the attempt behind any state
seen. An attempt left without an answer (the server was killed) is resolved by a GET:
the name then holds the state before it or the state it writes, anything else is a lost
write. ``Watcher`` threads hold real watch streams (``allowWatchBookmarks``) and resume
from the last resourceVersion they saw whenever a stream ends. Both record into one
``Ledger``, which ``crash.py`` checks.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import http.client
import json
import random
import socket
import ssl
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from corral.testing.faults.https import connection

NS = "default"
PREFIX = "crash-"
KINDS = {"configmaps": "ConfigMap", "secrets": "Secret"}
EXPECTED_TYPE = {"create": "ADDED", "update": "MODIFIED", "delete": "DELETED"}
#: a name's state: the payload of its live object, or None when it does not exist
State = str | None


def _sum(payload: str) -> str:
    return hashlib.sha256(payload.encode()).hexdigest()


def body(resource: str, name: str, payload: str, rv: int = 0) -> bytes:
    meta: dict[str, Any] = {"name": name, "namespace": NS}
    if rv:
        meta["resourceVersion"] = str(rv)
    data = {"payload": payload, "sum": _sum(payload)}
    if resource == "secrets":
        data = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
    obj = {"apiVersion": "v1", "kind": KINDS[resource], "metadata": meta, "data": data}
    return json.dumps(obj).encode()


def payload_of(resource: str, obj: dict[str, Any]) -> tuple[str, bool]:
    """The object's payload, and whether its checksum matches (it is whole)."""
    data = obj.get("data") or {}
    try:
        if resource == "secrets":
            data = {k: base64.b64decode(v).decode() for k, v in data.items()}
        payload, checksum = str(data["payload"]), str(data["sum"])
    except (KeyError, ValueError, TypeError, binascii.Error):
        return "", False
    return payload, _sum(payload) == checksum


def rv_of(obj: dict[str, Any]) -> int:
    return int((obj.get("metadata") or {}).get("resourceVersion") or 0)


@dataclass(frozen=True)
class Endpoint:
    """Where the API server answers (the same across restarts: port, token, CA)."""

    port: int
    token: str
    ctx: ssl.SSLContext

    def connect(self, timeout: float = 30.0) -> http.client.HTTPSConnection:
        return connection(self.port, self.ctx, timeout)

    def call(
        self, conn: http.client.HTTPSConnection, method: str, path: str, data: bytes | None = None
    ) -> tuple[int, bytes]:
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}
        conn.request(method, path, body=data, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read()

    def once(self, method: str, path: str, data: bytes | None = None) -> tuple[int, bytes] | None:
        conn = self.connect(5.0)
        try:
            return self.call(conn, method, path, data)
        except (OSError, http.client.HTTPException):
            return None
        finally:
            conn.close()


@dataclass
class Attempt:
    """One write tried on one name; ``committed`` is known once answered or resolved."""

    kind: str  # create, update, delete
    payload: str  # what it writes (create, update) or what it deletes (delete)
    before: State
    acked: bool = False
    rv: int = 0  # the acknowledged resourceVersion of a create or update
    committed: bool | None = None


@dataclass
class Ledger:
    """What every thread records, under one lock."""

    target: int
    lock: threading.Lock = field(default_factory=threading.Lock)
    acked: int = 0
    attempted: int = 0
    max_acked_rv: int = 0
    done: threading.Event = field(default_factory=threading.Event)
    #: set when the phase ends (also on failure): writers stop even with attempts unresolved
    stop: threading.Event = field(default_factory=threading.Event)
    counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    violations: list[str] = field(default_factory=list)
    attempts: dict[tuple[str, str], list[Attempt]] = field(default_factory=dict)

    def violation(self, figure: str, text: str) -> None:
        with self.lock:
            if figure:
                self.counts[figure] += 1
            if len(self.violations) < 50:
                self.violations.append(text)

    def ack(self, rv: int) -> None:
        with self.lock:
            self.acked += 1
            self.max_acked_rv = max(self.max_acked_rv, rv)
            if self.acked >= self.target:
                self.done.set()


class Writer(threading.Thread):
    """Writes to its own names of one resource until the ledger is done, then resolves
    every attempt left without an answer."""

    def __init__(self, ep: Endpoint, ledger: Ledger, resource: str, names: list[str], seed: int):
        super().__init__(name=f"crash-writer-{names[0]}", daemon=True)
        self.ep, self.ledger, self.resource, self.names = ep, ledger, resource, names
        self.rng = random.Random(seed)
        self.state: dict[str, State] = dict.fromkeys(names)
        self.rvs: dict[str, int] = {}
        self.unresolved: dict[str, Attempt] = {}
        self.conn: http.client.HTTPSConnection | None = None
        for n in names:
            ledger.attempts[(resource, n)] = []

    def request(
        self, method: str, path: str, data: bytes | None = None
    ) -> tuple[int, bytes] | None:
        try:
            if self.conn is None:
                self.conn = self.ep.connect()
            ans = self.ep.call(self.conn, method, path, data)
        except (OSError, http.client.HTTPException):
            if self.conn is not None:
                self.conn.close()
            self.conn = None
            time.sleep(0.02)
            return None
        if ans[0] >= 500 or ans[0] == 429:
            # this server cannot serve now (its etcd member away, say): as a client with
            # several servers, the next request goes on a new connection (to the next
            # server, ``ha.FailoverEndpoint``) after a pause, not again at once
            self.conn.close()
            self.conn = None
            time.sleep(0.05)
        return ans

    def run(self) -> None:
        seq = 0
        while not self.ledger.stop.is_set() and (not self.ledger.done.is_set() or self.unresolved):
            if self.unresolved:
                self.resolve(next(iter(self.unresolved)))
                continue
            name = self.rng.choice(self.names)
            cur = self.state[name]
            kind = "create" if cur is None else self.rng.choice(["update"] * 3 + ["delete"])
            seq += 1
            payload = f"{name}:{seq}:{self.rng.getrandbits(32):08x}"
            att = Attempt(kind, cur if kind == "delete" and cur else payload, cur)
            self.ledger.attempts[(self.resource, name)].append(att)
            with self.ledger.lock:
                self.ledger.attempted += 1
            self.attempt(name, att)
        if self.conn is not None:
            self.conn.close()

    def attempt(self, name: str, att: Attempt) -> None:
        coll = f"/api/v1/namespaces/{NS}/{self.resource}"
        rv = self.rvs.get(name, 0)
        if att.kind == "create":
            ans = self.request("POST", coll, body(self.resource, name, att.payload))
        elif att.kind == "update":
            ans = self.request("PUT", f"{coll}/{name}", body(self.resource, name, att.payload, rv))
        else:
            pre = json.dumps({"preconditions": {"resourceVersion": str(rv)}}).encode()
            ans = self.request("DELETE", f"{coll}/{name}", pre)
        if ans is None or ans[0] >= 500 or ans[0] == 429:
            self.unresolved[name] = att  # maybe committed: a GET tells
            return
        status, raw = ans
        if status in (200, 201):
            att.acked = att.committed = True
            if att.kind == "delete":
                self.state[name] = None
                self.ledger.ack(0)
                return
            obj = json.loads(raw)
            att.rv = rv_of(obj)
            self.state[name], self.rvs[name] = att.payload, att.rv
            self.ledger.ack(att.rv)
            return
        att.committed = False
        figure = "acknowledged_writes_lost" if status in (404, 409) else ""
        self.ledger.violation(
            figure,
            f"{self.resource}/{name}: {att.kind} on the state acknowledged writes left "
            f"answered {status}: {raw[:200]!r}",
        )
        self.unresolved[name] = Attempt("resync", "", None, committed=False)

    def resolve(self, name: str) -> None:
        """GET the name: the unanswered attempt committed or not; anything else is loss."""
        ans = self.request("GET", f"/api/v1/namespaces/{NS}/{self.resource}/{name}")
        if ans is None or ans[0] not in (200, 404):
            return
        att = self.unresolved.pop(name)
        now: State = None
        if ans[0] == 200:
            obj = json.loads(ans[1])
            now, whole = payload_of(self.resource, obj)
            if not whole:
                self.ledger.violation("half_written", f"{self.resource}/{name}: bad checksum")
            self.rvs[name] = rv_of(obj)
        self.state[name] = now
        if att.committed is not None:
            return
        after: State = None if att.kind == "delete" else att.payload
        att.committed = now == after
        if now not in (after, att.before):
            att.committed = False
            self.ledger.violation(
                "acknowledged_writes_lost",
                f"{self.resource}/{name}: after an unanswered {att.kind} it holds {now!r}, "
                f"neither {att.before!r} nor {after!r}",
            )


@dataclass
class Seen:
    type: str
    name: str
    rv: int
    payload: str


class Watcher(threading.Thread):
    """One watch of a resource in NS, resumed from the last resourceVersion it saw
    whenever the stream ends (the server was killed)."""

    def __init__(self, ep: Endpoint, ledger: Ledger, resource: str, start_rv: int):
        super().__init__(name=f"crash-watch-{resource}", daemon=True)
        self.ep, self.ledger, self.resource, self.last_rv = ep, ledger, resource, start_rv
        self.events: list[Seen] = []
        self.seen: set[int] = set()
        self.stop = threading.Event()
        self.conn: http.client.HTTPSConnection | None = None
        self.streams = 0

    def run(self) -> None:
        while not self.stop.is_set():
            path = (
                f"/api/v1/namespaces/{NS}/{self.resource}?watch=1&allowWatchBookmarks=true"
                f"&resourceVersion={self.last_rv}"
            )
            self.conn = conn = self.ep.connect(120.0)
            try:
                conn.request("GET", path, headers={"Authorization": f"Bearer {self.ep.token}"})
                resp = conn.getresponse()
                if resp.status != 200:
                    resp.read()
                    time.sleep(0.05)
                    continue
                self.streams += 1
                while line := resp.readline():
                    if not self.event(json.loads(line)):
                        return
            except (OSError, http.client.HTTPException, ValueError):
                time.sleep(0.02)
            finally:
                conn.close()

    def event(self, ev: dict[str, Any]) -> bool:
        obj, type_ = ev.get("object") or {}, ev.get("type")
        if type_ == "ERROR":
            self.ledger.violation(
                "watch_expired" if obj.get("code") == 410 else "",
                f"watch {self.resource} from {self.last_rv}: {obj.get('message')}",
            )
            return False
        rv = rv_of(obj)
        if type_ == "BOOKMARK":
            if rv < self.last_rv:
                self.ledger.violation("rv_regressions", f"bookmark {rv} after {self.last_rv}")
            self.last_rv = max(self.last_rv, rv)
            return True
        if rv in self.seen:
            self.ledger.violation("watch_repeated", f"watch {self.resource}: {rv} twice")
            return True
        if rv <= self.last_rv:
            self.ledger.violation(
                "rv_regressions", f"watch {self.resource}: {rv} after {self.last_rv}"
            )
        self.seen.add(rv)
        self.last_rv = max(self.last_rv, rv)
        name = str((obj.get("metadata") or {}).get("name", ""))
        if name.startswith(PREFIX):
            payload, whole = payload_of(self.resource, obj)
            if not whole:
                self.ledger.violation("half_written", f"watch {self.resource}/{name} at {rv}")
            self.events.append(Seen(str(type_), name, rv, payload))
        return True

    def close(self) -> None:
        """Stop: end the current stream now (``join`` afterwards)."""
        self.stop.set()
        conn = self.conn
        if conn is not None and conn.sock is not None:
            try:
                conn.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
