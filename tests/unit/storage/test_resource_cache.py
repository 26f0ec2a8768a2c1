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
