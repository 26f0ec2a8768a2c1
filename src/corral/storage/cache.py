"""The in-memory watch cache: serves every list, get and watch so the database sees writes only.

It holds, per resource prefix, the live entries (serialised bytes plus the labels and
selectable fields pulled out once at write time; the decoded object is not kept, which
keeps 150,000 pods affordable), a ring of recent events to resume watches from, and the
registered watchers.

Fan-out is designed for thousands of watchers (one per node agent): each watcher sits in
one bucket — by the exact ``spec.nodeName`` it selects, else by namespace, else "all" —
so an event costs a few dictionary look-ups, not a filter call per watcher. Each watch
event is serialised once per type and the same bytes go to every watcher that wants it.
An object entering or leaving a watcher's selection is sent as ADDED or DELETED.

The cache follows the store synchronously (``SQLiteStorage`` calls ``apply`` before it
acknowledges a write), so a client reads its own writes.
"""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import orjson

from corral.api import errors
from corral.api.selectors import FieldSelector, LabelSelector
from corral.storage.base import DELETE, KV, PUT, Compacted, Event, Obj
from corral.storage.watch_queue import WatchQueue

FieldFuncs = dict[str, Callable[[Obj], str]]

ADDED = "ADDED"
MODIFIED = "MODIFIED"
DELETED = "DELETED"

#: how many events per resource the ring keeps for watch resumption
HISTORY = 10_000
#: a watcher whose client falls this many live events behind (its HTTP stream's writes
#: stall, its queue fills) is expired: its queue is dropped and it ends with a 410 ERROR
#: event, after which the client lists again (the initial list or replay is not counted:
#: those entries are the cache's own)
MAX_BACKLOG = 50_000
#: ... or this many bytes of queued objects (``WatchCache(backlog_bytes=...)``, flag
#: ``--watch-backlog-bytes``)
MAX_BACKLOG_BYTES = 64 * 1024 * 1024
#: past this many queued bytes over all watchers (BacklogBudget), any watcher further
#: behind than LAGGING_EVENTS or a 64th of its bound is expired too: a few stuck clients
#: cannot together hold more than about this, whatever their number
BUDGET_FACTOR = 8
LAGGING_EVENTS = 1_000


@dataclass(slots=True)
class Entry:
    """One live object as the cache keeps it."""

    key: str
    namespace: str
    name: str
    raw: bytes
    revision: int
    labels: dict[str, str]
    fields: dict[str, str]
    uid: str = ""
    #: uids of the owners named in ownerReferences (for the garbage collector)
    owners: tuple[str, ...] = ()
    #: metadata.finalizers, and whether deletionTimestamp is set
    finalizers: tuple[str, ...] = ()
    deleting: bool = False

    def obj(self) -> Obj:
        """A fresh decoded copy: the caller may mutate it."""
        d: Obj = orjson.loads(self.raw)
        return d


@dataclass(slots=True)
class WatchEvent:
    """One event as sent to watchers; its JSON line is built once and shared."""

    type: str
    entry: Entry
    _line: bytes | None = None
    #: part of a new watcher's initial list or history replay (not backlog)
    initial: bool = False

    def line(self) -> bytes:
        if self._line is None:
            self._line = (
                b'{"type":"' + self.type.encode() + b'","object":' + self.entry.raw + b"}\n"
            )
        return self._line


@dataclass
class BacklogBudget:
    """Live bytes queued over every watcher of one WatchCache, and the bounds."""

    per_watcher: int = MAX_BACKLOG_BYTES
    queued: int = 0
    #: watchers expired because their clients fell behind (since start)
    expired: int = 0

    @property
    def total(self) -> int:
        return self.per_watcher * BUDGET_FACTOR

    def metrics(self) -> str:
        """Prometheus text: bytes queued for watchers now, watchers expired so far."""
        return (
            "# TYPE corral_watch_backlog_bytes gauge\n"
            f"corral_watch_backlog_bytes {self.queued}\n"
            "# TYPE corral_watch_expired_total counter\n"
            f"corral_watch_expired_total {self.expired}\n"
        )


@dataclass(eq=False)
class Watcher:
    """A registered watch: its selection and the queue its HTTP stream drains."""

    namespace: str | None
    labels: LabelSelector | None
    fields: FieldSelector | None
    queue: WatchQueue = field(default_factory=WatchQueue)
    node: str | None = None
    closed: bool = False
    #: called once when the watcher is expired for falling behind (the HTTP stream
    #: gives the client a grace to read its 410, then drops the connection)
    on_expire: Callable[[], None] | None = None
    #: the resourceVersion the watch started from: changes at or below it are not sent
    #: (upstream's cacheWatcher sends only newer events; a watch resumed on a server
    #: whose cache is still behind that version must not get them twice)
    after: int = 0

    def matches(self, e: Entry) -> bool:
        if self.namespace is not None and e.namespace != self.namespace:
            return False
        if self.labels is not None and not self.labels.matches(e.labels):
            return False
        return self.fields is None or self.fields.matches(e.fields)


class ResourceCache:
    """Entries, history and watchers of one resource (one key prefix)."""

    def __init__(
        self,
        prefix: str,
        field_funcs: FieldFuncs,
        history: int = HISTORY,
        budget: BacklogBudget | None = None,
    ) -> None:
        self.prefix = prefix
        self.budget = budget or BacklogBudget()
        self.field_funcs = field_funcs
        self.entries: dict[str, Entry] = {}
        self.by_namespace: dict[str, dict[str, Entry]] = {}
        self._sorted: list[str] | None = None
        self.history: deque[tuple[int, str, Entry, Entry | None]] = deque(maxlen=history)
        self.history_start = 0  # watches from a revision below this get 410
        self.all_watchers: set[Watcher] = set()
        self.ns_watchers: dict[str, set[Watcher]] = {}
        self.node_watchers: dict[str, set[Watcher]] = {}

    def set_field_funcs(self, field_funcs: FieldFuncs) -> None:
        """Select by these fields from now on; when the set of fields changes (a CRD's
        ``selectableFields``), the entries already cached get them computed too."""
        same = field_funcs.keys() == self.field_funcs.keys()
        self.field_funcs = field_funcs
        if same:
            return
        for e in self.entries.values():
            fresh = self.make_entry(e.key, e.obj(), e.raw, e.revision).fields
            e.fields.clear()
            e.fields.update(fresh)

    # --- building entries -------------------------------------------------------------
    def make_entry(self, key: str, obj: Obj, raw: bytes, revision: int) -> Entry:
        meta = obj.get("metadata") or {}
        fields = {
            "metadata.name": meta.get("name", ""),
            "metadata.namespace": meta.get("namespace", ""),
        }
        for name, fn in self.field_funcs.items():
            try:
                fields[name] = fn(obj)
            except (KeyError, TypeError, AttributeError):
                fields[name] = ""
        return Entry(
            key,
            meta.get("namespace", ""),
            meta.get("name", ""),
            raw,
            revision,
            labels if isinstance(labels := meta.get("labels"), dict) else {},
            fields,
            str(meta.get("uid", "")),
            tuple(
                str(r.get("uid", ""))
                for r in _list(meta.get("ownerReferences"))
                if isinstance(r, dict)
            ),
            tuple(str(f) for f in _list(meta.get("finalizers"))),
            bool(meta.get("deletionTimestamp")),
        )

    def sorted_keys(self) -> list[str]:
        if self._sorted is None:
            self._sorted = sorted(self.entries)
        return self._sorted

    # --- applying store events ------------------------------------------------------------
    def apply(self, ev: Event) -> None:
        key = ev.kv.key
        prev = self.entries.get(key)
        entry = self.make_entry(key, ev.kv.obj, ev.kv.raw, ev.revision)
        if ev.type == DELETE:
            if prev is None:
                return
            del self.entries[key]
            ns_map = self.by_namespace.get(entry.namespace)
            if ns_map is not None:
                ns_map.pop(key, None)
                if not ns_map:
                    del self.by_namespace[entry.namespace]
            self._sorted = None
            self._record(ev.revision, DELETED, entry, prev)
        else:
            self.entries[key] = entry
            self.by_namespace.setdefault(entry.namespace, {})[key] = entry
            if prev is None:
                self._sorted = None
            self._record(ev.revision, MODIFIED if prev else ADDED, entry, prev)

    def _record(self, revision: int, type_: str, entry: Entry, prev: Entry | None) -> None:
        if len(self.history) == self.history.maxlen:
            self.history_start = self.history[0][0]
        self.history.append((revision, type_, entry, prev))
        self._fan_out(type_, entry, prev)

    def _candidates(self, entry: Entry, prev: Entry | None) -> Iterator[Watcher]:
        yield from self.all_watchers
        ns_set = self.ns_watchers.get(entry.namespace)
        if ns_set:
            yield from ns_set
        if self.node_watchers:
            node = entry.fields.get("spec.nodeName", "")
            seen = self.node_watchers.get(node)
            if seen:
                yield from seen
            if prev is not None:
                old_node = prev.fields.get("spec.nodeName", "")
                if old_node != node:
                    old = self.node_watchers.get(old_node)
                    if old:
                        yield from old

    def _fan_out(self, type_: str, entry: Entry, prev: Entry | None) -> None:
        shared: dict[str, WatchEvent] = {}
        for w in list(self._candidates(entry, prev)):
            t = transition(w, type_, entry, prev)
            if t is None:
                continue
            ev = shared.get(t)
            if ev is None:
                ev = shared[t] = WatchEvent(t, entry)
            self._send(w, ev)

    def _send(self, w: Watcher, ev: WatchEvent) -> None:
        if w.closed or ev.entry.revision <= w.after:
            return
        q, b = w.queue, self.budget
        if (
            q.live >= MAX_BACKLOG
            # (one event past the bound, to a watcher that keeps up, is delivered)
            or (q.live > 0 and q.live_bytes + len(ev.entry.raw) > b.per_watcher)
            or (
                b.queued > b.total
                and (q.live >= LAGGING_EVENTS or q.live_bytes > b.per_watcher // 64)
            )
        ):
            self.expire_watcher(w, ev.entry.revision)
            return
        q.put_nowait(ev)

    def expire_watcher(self, w: Watcher, revision: int) -> None:
        """``w``'s client fell behind: drop what it has queued (the memory goes now),
        queue upstream's 410 Expired ERROR event and the end of the stream."""
        if w.closed:
            return
        oldest = revision
        while not w.queue.empty():
            item = w.queue.get_nowait()
            if item is not None and not item.initial and item.entry.revision:
                oldest = min(oldest, item.entry.revision)
        status = errors.expired(f"too old resource version: {oldest - 1} ({revision})")
        raw = orjson.dumps(status.status())
        w.queue.put_nowait(WatchEvent("ERROR", Entry("", "", "", raw, revision, {}, {})))
        self.budget.expired += 1
        self.remove_watcher(w)
        if w.on_expire is not None:
            w.on_expire()

    # --- watchers ------------------------------------------------------------------------
    def add_watcher(self, w: Watcher, from_revision: int | None, current: int) -> None:
        """Register ``w``; replay history after ``from_revision`` or, if None, send every
        matching object as ADDED. Raises Compacted when the history is gone."""
        w.queue.budget = self.budget
        if from_revision is None:
            for key in self.sorted_keys():
                e = self.entries[key]
                if w.matches(e):
                    w.queue.put_nowait(WatchEvent(ADDED, e, initial=True))
        else:
            w.after = from_revision
            if from_revision < self.history_start and from_revision < current:
                raise Compacted(self.prefix, from_revision, self.history_start)
            start = bisect.bisect_right([h[0] for h in self.history], from_revision)
            for i in range(start, len(self.history)):
                _rev, type_, entry, prev = self.history[i]
                t = transition(w, type_, entry, prev)
                if t is not None:
                    w.queue.put_nowait(WatchEvent(t, entry, initial=True))
        if w.fields is not None:
            node = w.fields.exact_values().get("spec.nodeName")
            if node is not None:
                w.node = node
                self.node_watchers.setdefault(node, set()).add(w)
                return
        if w.namespace is not None:
            self.ns_watchers.setdefault(w.namespace, set()).add(w)
        else:
            self.all_watchers.add(w)

    def remove_watcher(self, w: Watcher) -> None:
        if w.closed:
            return
        w.closed = True
        if w.node is not None:
            s = self.node_watchers.get(w.node)
            if s is not None:
                s.discard(w)
                if not s:
                    del self.node_watchers[w.node]
        elif w.namespace is not None:
            s = self.ns_watchers.get(w.namespace)
            if s is not None:
                s.discard(w)
                if not s:
                    del self.ns_watchers[w.namespace]
        else:
            self.all_watchers.discard(w)
        w.queue.put_nowait(None)

    def watchers(self) -> list[Watcher]:
        """Every registered watcher of this resource."""
        every = list(self.all_watchers)
        for group in (*self.ns_watchers.values(), *self.node_watchers.values()):
            every.extend(group)
        return every

    def close_watchers(self) -> None:
        """End every watch of this resource (what it serves changed: a CRD deleted or
        its served versions changed); clients watch again."""
        for w in self.watchers():
            self.remove_watcher(w)

    def watcher_count(self) -> int:
        n = len(self.all_watchers)
        n += sum(len(s) for s in self.ns_watchers.values())
        n += sum(len(s) for s in self.node_watchers.values())
        return n

    # --- reads ----------------------------------------------------------------------------
    #: field holding a custom list order (events list in time order); "" = key order
    ORDER_FIELD: ClassVar[str] = "__order"

    @property
    def ordered(self) -> bool:
        return self.ORDER_FIELD in self.field_funcs

    def position(self, e: Entry) -> str:
        """Where ``e`` sits in list order (what continue tokens record)."""
        if self.ordered:
            return e.fields.get(self.ORDER_FIELD, "") + "\x00" + e.key
        return e.key

    def select(
        self,
        namespace: str | None,
        labels: LabelSelector | None,
        fields: FieldSelector | None,
        start_after: str = "",
    ) -> Iterator[Entry]:
        """Matching entries in list order, those after position ``start_after``."""
        if self.ordered:
            pool = (
                self.by_namespace.get(namespace, {}).values()
                if namespace is not None
                else self.entries.values()
            )
            ranked = sorted((self.position(e), e) for e in pool)
            i = bisect.bisect_right([r[0] for r in ranked], start_after) if start_after else 0
            candidates: Iterable[Entry] = [e for _, e in ranked[i:]]
        else:
            candidates = self._in_key_order(namespace, start_after)
        for e in candidates:
            if labels is not None and not labels.matches(e.labels):
                continue
            if fields is not None and not fields.matches(e.fields):
                continue
            yield e

    def _in_key_order(self, namespace: str | None, start_after: str) -> Iterator[Entry]:
        keys = self.sorted_keys()
        i = bisect.bisect_right(keys, start_after) if start_after else 0
        prefix = f"{self.prefix}{namespace}/" if namespace is not None else self.prefix
        if namespace is not None:
            i = max(i, bisect.bisect_left(keys, prefix))
        entries = self.entries
        for j in range(i, len(keys)):
            k = keys[j]
            if not k.startswith(prefix):
                break
            yield entries[k]


def _list(v: Any) -> list[Any]:
    return v if isinstance(v, list) else []


def transition(w: Watcher, type_: str, entry: Entry, prev: Entry | None) -> str | None:
    """What ``w`` sees of a change: ADDED/MODIFIED/DELETED, or None (not its business)."""
    if type_ == DELETED:
        return DELETED if w.matches(prev or entry) else None
    now = w.matches(entry)
    before = prev is not None and w.matches(prev)
    if now and before:
        return MODIFIED
    if now:
        return ADDED
    if before:
        return DELETED
    return None


ChangeListener = Callable[[str, Entry, "Entry | None", ResourceCache], None]


class WatchCache:
    """All resource caches, fed synchronously from the store's commit path.

    Besides the per-resource caches it keeps two global indexes the garbage collector
    needs: live objects by uid, and dependents by owner uid.
    """

    def __init__(self, history: int = HISTORY, backlog_bytes: int = MAX_BACKLOG_BYTES) -> None:
        self.history = history
        #: the slow-watcher bounds, shared by every resource's watchers
        self.backlog = BacklogBudget(backlog_bytes)
        self.resources: dict[str, ResourceCache] = {}
        self.revision = 0
        self.by_uid: dict[str, tuple[ResourceCache, str]] = {}
        self.dependents: dict[str, set[tuple[ResourceCache, str]]] = {}
        #: called after each applied change: (type, entry, prev, resource cache)
        self.listeners: list[ChangeListener] = []

    def _index(self, rc: ResourceCache, entry: Entry | None, prev: Entry | None) -> None:
        if prev is not None:
            if prev.uid and (entry is None or entry.uid != prev.uid):
                self.by_uid.pop(prev.uid, None)
            # an update that keeps its owners (a Lease renewal, a status write) takes no
            # pair out: the same ones go back in just below
            kept = entry is not None and entry.owners == prev.owners and entry.key == prev.key
            for o in () if kept else prev.owners:
                deps = self.dependents.get(o)
                if deps is not None:
                    deps.discard((rc, prev.key))
                    if not deps:
                        del self.dependents[o]
        if entry is not None:
            if entry.uid:
                self.by_uid[entry.uid] = (rc, entry.key)
            for o in entry.owners:
                self.dependents.setdefault(o, set()).add((rc, entry.key))

    def register(self, prefix: str, field_funcs: FieldFuncs) -> ResourceCache:
        rc = self.resources.get(prefix)
        if rc is None:
            rc = self.resources[prefix] = ResourceCache(
                prefix, field_funcs, self.history, self.backlog
            )
        return rc

    def resource_for(self, key: str) -> ResourceCache | None:
        # keys: /registry/<group>/<plural>/... ; prefix is the first three segments.
        parts = key.split("/", 4)
        if len(parts) < 4:
            return None
        return self.resources.get("/".join(parts[:4]) + "/")

    def load(self, kvs: list[Any], revision: int, history: list[Event], history_start: int) -> None:
        """Seed from a list at ``revision`` and the store's recent history."""
        for kv in kvs:
            rc = self.resource_for(kv.key)
            if rc is None:
                continue
            e = rc.make_entry(kv.key, kv.obj, kv.raw, kv.mod_revision)
            rc.entries[kv.key] = e
            rc.by_namespace.setdefault(e.namespace, {})[kv.key] = e
            rc._sorted = None
            self._index(rc, e, None)
        for rc in self.resources.values():
            rc.history_start = history_start
        # Each replayed change needs the value before it (``transition``: without it an
        # update replays as ADDED): the key's previous event in this history, or, for
        # its first one, the value itself (a DELETE's is the last value; an update's
        # earlier value is past the window: its selection is taken as unchanged).
        last: dict[str, Entry] = {}
        for ev in history:
            rc = self.resource_for(ev.kv.key)
            if rc is None:
                continue
            entry = rc.make_entry(ev.kv.key, ev.kv.obj, ev.kv.raw, ev.revision)
            type_ = DELETED if ev.type == DELETE else MODIFIED
            if ev.kv.create_revision == ev.revision:
                type_ = ADDED
            prev = None if type_ == ADDED else last.get(ev.kv.key, entry)
            last[ev.kv.key] = entry
            if len(rc.history) == rc.history.maxlen:
                rc.history_start = rc.history[0][0]
            rc.history.append((ev.revision, type_, entry, prev))
        self.revision = revision

    def replace(self, kvs: list[KV], revision: int) -> None:
        """Take a fresh list at ``revision`` instead of the changes this cache missed:
        the store's watch could not resume because its history was compacted past this
        cache (a long partition from etcd). As upstream's cacher when its reflector
        relists: every watcher ends with a 410 Expired ERROR event (its client lists
        again: the events of the gap are gone for good), and the history restarts,
        empty, at ``revision`` (a watch from an older resourceVersion gets 410). The
        listeners (allocator, garbage collector indexes, ...) see the difference as
        changes: a PUT for each new or changed object (in revision order, so a CRD
        comes before its objects), then a DELETE at ``revision`` for each one gone."""
        for rc in list(self.resources.values()):
            for w in rc.watchers():
                rc.expire_watcher(w, revision)
        fresh: dict[str, KV] = {}
        for kv in sorted(kvs, key=lambda kv: kv.mod_revision):
            fresh[kv.key] = kv
            found = self.resource_for(kv.key)
            cur = found.entries.get(kv.key) if found is not None else None
            if cur is None or cur.revision != kv.mod_revision:
                self.apply(Event(PUT, kv, None, kv.mod_revision))
        for rc in list(self.resources.values()):
            for key in [k for k in rc.entries if k not in fresh]:
                e = rc.entries[key]
                last = KV(key, e.obj(), e.raw, e.revision, 0)
                self.apply(Event(DELETE, last, last, revision))
        for rc in self.resources.values():
            rc.history.clear()
            rc.history_start = revision
        self.revision = revision

    def apply(self, ev: Event) -> None:
        rc = self.resource_for(ev.kv.key)
        self.revision = ev.revision
        if rc is None:
            return
        prev = rc.entries.get(ev.kv.key)
        rc.apply(ev)
        entry = rc.entries.get(ev.kv.key)
        self._index(rc, entry, prev)
        if rc.history and rc.history[-1][0] == ev.revision:
            _, type_, e, p = rc.history[-1]
            for cb in self.listeners:
                cb(type_, e, p, rc)
