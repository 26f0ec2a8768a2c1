"""The watch cache's per-resource parts the CRD machinery leans on: field functions
replaced while objects are cached (selectableFields added to a CRD), and every watch
of a resource ended at once (its CRD deleted)."""

from __future__ import annotations

import orjson

from corral.storage.cache import ResourceCache, Watcher


def _cache() -> ResourceCache:
    rc = ResourceCache("/registry/g.example.com/foos/", {})
    for name, hue in (("red", "warm"), ("blue", "cold")):
        obj = {"metadata": {"name": name, "namespace": "default"}, "spec": {"hue": hue}}
        key = f"{rc.prefix}default/{name}"
        rc.entries[key] = rc.make_entry(key, obj, orjson.dumps(obj), 1)
    return rc


def test_new_field_functions_apply_to_cached_entries() -> None:
    rc = _cache()
    rc.set_field_funcs({"spec.hue": lambda o: o["spec"]["hue"]})
    assert {e.name: e.fields.get("spec.hue") for e in rc.entries.values()} == {
        "red": "warm",
        "blue": "cold",
    }
    assert all(e.fields["metadata.namespace"] == "default" for e in rc.entries.values())


def test_close_watchers_ends_every_watch() -> None:
    rc = _cache()
    watchers = [Watcher(None, None, None), Watcher("default", None, None)]
    for w in watchers:
        rc.add_watcher(w, None, 1)
    rc.close_watchers()
    assert rc.watcher_count() == 0
    for w in watchers:
        items = [w.queue.get_nowait() for _ in range(w.queue.qsize())]
        assert w.closed and items[-1] is None


def _put(rc: ResourceCache, name: str, rev: int, size: int) -> None:
    from corral.storage.base import KV, PUT, Event

    obj = {"metadata": {"name": name, "namespace": "default"}, "data": {"x": "a" * size}}
    key = f"{rc.prefix}default/{name}"
    rc.apply(Event(PUT, KV(key, obj, orjson.dumps(obj), rev, rev), None, rev))


def test_a_watcher_that_falls_behind_is_expired_with_410() -> None:
    """Past its byte bound a watcher's queue is dropped (its memory with it) and it ends
    with upstream's 410 Expired ERROR event; its initial list is not counted, and a
    watcher that keeps up is untouched."""
    from corral.storage.cache import BacklogBudget

    rc = ResourceCache("/registry/g.example.com/foos/", {}, budget=BacklogBudget(10_000))
    _put(rc, "seed", 1, 20_000)  # bigger than the bound: the initial list is free
    slow, fast = Watcher(None, None, None), Watcher(None, None, None)
    expired: list[bool] = []
    slow.on_expire = lambda: expired.append(True)
    for w in (slow, fast):
        rc.add_watcher(w, None, 1)
    for rev in range(2, 40):
        _put(rc, f"o{rev}", rev, 1_000)
        while not fast.queue.empty():
            fast.queue.get_nowait()
    items = [slow.queue.get_nowait() for _ in range(slow.queue.qsize())]
    assert expired == [True] and slow.closed and items[-1] is None
    error = items[-2]
    assert error is not None and error.type == "ERROR"
    status = orjson.loads(error.line())["object"]
    assert (status["code"], status["reason"]) == (410, "Expired")
    assert status["message"].startswith("too old resource version: ")
    assert len(items) == 2  # nothing else kept: the client lists again
    assert rc.budget.queued == 0 and rc.budget.expired == 1
    assert not fast.closed and rc.watcher_count() == 1


def test_a_watch_from_a_version_ahead_of_the_cache_skips_changes_up_to_it() -> None:
    """A watch resumed on a server whose cache is still behind its resourceVersion (it
    saw R on another server): the changes up to R reach this cache later and must not be
    sent again (upstream's cacheWatcher sends only events newer than the watch's RV)."""
    rc = _cache()
    w = Watcher(None, None, None)
    rc.add_watcher(w, 5, 1)  # cache at 1, client already saw up to 5
    for rev in (2, 5, 6):
        _put(rc, f"p{rev}", rev, 1)
    got = [w.queue.get_nowait() for _ in range(w.queue.qsize())]
    assert [ev.entry.revision for ev in got if ev is not None] == [6]


def test_the_owner_and_uid_indexes_follow_updates() -> None:
    """``WatchCache``'s garbage-collector indexes through creates, updates that keep
    their owners (a Lease renewal: nothing taken out, the same pairs go back), updates
    that change them, a uid change and a delete."""
    from corral.storage.base import DELETE, KV, PUT, Event
    from corral.storage.cache import WatchCache

    wc = WatchCache()
    rc = wc.register("/registry/coordination.k8s.io/leases/", {})
    key = f"{rc.prefix}kube-node-lease/n1"
    other = f"{rc.prefix}kube-node-lease/n2"

    def put(k: str, rev: int, uid: str, owners: list[str]) -> None:
        meta = {"name": k.rsplit("/", 1)[1], "namespace": "kube-node-lease", "uid": uid}
        meta["ownerReferences"] = [{"uid": o} for o in owners]  # type: ignore[assignment]
        obj = {"metadata": meta}
        wc.apply(Event(PUT, KV(k, obj, orjson.dumps(obj), rev, 1), None, rev))

    def dependents() -> dict[str, set[str]]:
        return {o: {k for _, k in deps} for o, deps in wc.dependents.items()}

    put(key, 1, "u1", ["a"])
    put(other, 2, "u2", ["a"])
    assert dependents() == {"a": {key, other}}
    for rev in (3, 4):  # renewals
        put(key, rev, "u1", ["a"])
        assert dependents() == {"a": {key, other}}
        assert wc.by_uid["u1"] == (rc, key)
    put(key, 5, "u1", ["b", "a"])
    assert dependents() == {"a": {key, other}, "b": {key}}
    put(key, 6, "u1", ["b"])
    assert dependents() == {"a": {other}, "b": {key}}
    put(key, 7, "u3", ["b"])
    assert "u1" not in wc.by_uid and wc.by_uid["u3"] == (rc, key)
    last = rc.entries[key]
    wc.apply(Event(DELETE, KV(key, {}, last.raw, 8, 1), None, 8))
    assert dependents() == {"a": {other}}
    assert "u3" not in wc.by_uid
