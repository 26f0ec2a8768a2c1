"""Summarise py-spy raw (collapsed) stacks: where a process's CPU goes.

``python -m bench.scheduler_profile FILE [FILE...] [--top 25] [--paths 15] [--out JSON]``

Reads what ``bench.scheduler_perf --profile DIR`` leaves (``py-spy record --format raw``:
one line per distinct stack, root first, frames ``function (file:line)`` joined by ``;``,
then the sample count) and prints, per file:

- the top self-time functions (the leaf frame of each sample), as % of all samples;
- the top inclusive functions (every distinct function on a stack counts once);
- the phase buckets: each sample goes to the bucket of the frame nearest its leaf that
  matches one of ``BUCKETS``, else ``other``;
- the requests: the handler method each sample serves (``create``, ``patch`` (the
  Leases' merge patches), ``subresource patch`` (pod and node status), ``binding``,
  ``watch``...) or the background task it runs in;
- the top call paths: the stack's last ``--depth`` corral frames, then its leaf.

py-spy samples only threads that are running (no ``--idle``), so the samples are CPU
time; C code (orjson, sqlite3, ssl) is charged to the Python frame that called it.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from pathlib import Path
from typing import Any

FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^():]*?)(?::(?P<line>\d+))?\)$")

#: (bucket, regex over "file:function"). A sample goes to the bucket of the frame nearest
#: its leaf that matches one (patterns tried in this order at each frame), so a
#: ``deepcopy`` called by the merge patch is "patch apply" and one called by the
#: field manager is "managedFields".
BUCKETS: list[tuple[str, str]] = [
    # the components' side (scheduler, controller manager, agent)
    (
        "client watch decode (informer events)",
        r"client/rest\.py:Client\.watch|client/informer\.py:",
    ),
    ("scheduler decide (filter, score)", r"scheduler/(decide|plugins/)"),
    ("scheduler snapshot / queue", r"scheduler/(snapshot|queue|cache)"),
    ("client requests (bind, status, events)", r"client/rest\.py:|scheduler/events\.py:"),
    # the server's side
    ("storage compaction", r"sqlite\.py:SQLiteStorage\._compact|lifecycle\.py:.*[Cc]ompact"),
    (
        "storage write / commit / checkpoint (writer thread)",
        r"sqlite\.py:(SQLiteStorage\._commit|SQLiteStorage\._checkpoint|_pack|SQLiteStorage\._seal)",
    ),
    ("storage batch (loop side: revisions, stamp, dispatch)", r"sqlite\.py:|datastore\.py:"),
    ("watch cache fan-out (filter, queue)", r"storage/cache\.py:(?!Entry\.obj)|WatchQueue"),
    ("JSON decode of cached objects (Entry.obj)", r"storage/cache\.py:Entry\.obj"),
    ("watch encode / write", r"handlers\.py:ResourceHandler\.(_event_bytes|watch)"),
    ("managedFields", r"api/apply\.py:|record_update"),
    ("patch apply (merge/strategic)", r"api/patch\.py:|store\.py:apply_patch"),
    ("schema type check (_decode_typed/check_types)", r"api/schema\.py:|_decode_typed|check_type"),
    (
        "validation (strategies)",
        r"validat|registry/podspec\.py:|api/structural|registry/fields\.py:",
    ),
    ("admission (incl. binding NodeUsage)", r"admission|node_restriction\.py:|_admit"),
    ("defaulting / prepare", r"\.default|prepare_for|_fill_status|_prepare_update"),
    (
        "auth (authn, authz, RBAC)",
        r"apiserver/(authn|authz|node_authz|identity)\.py:|api/rbac\.py:",
    ),
    ("APF (flow control)", r"apiserver/flowcontrol\.py:(?!FlowControl\.send)"),
    ("lease / node strategies", r"registry/coordination\.py:|api/nodes\.py:"),
    ("registry / handler glue", r"apiserver/(store|handlers|request|request_info|app)\.py:"),
    (
        "HTTP/TLS write (aiohttp writer, ssl)",
        r"aiohttp/http_writer|ssl\.py:SSLObject\.write|web_response",
    ),
    ("HTTP parse / TLS read (aiohttp protocol)", r"aiohttp/|ssl\.py:|multidict|yarl"),
    ("executor threads (submit, wake)", r"concurrent/futures"),
    ("event loop (asyncio, selectors)", r"asyncio/|selectors"),
]
_COMPILED = [(name, re.compile(rx)) for name, rx in BUCKETS]
#: the request a sample serves: the handler method nearest the leaf
HANDLER = re.compile(
    r"handlers\.py:ResourceHandler\.(create|update|patch|binding|watch|get|list|delete|eviction)$"
)


def parse(path: Path) -> list[tuple[list[str], int]]:
    """(frames as ``file:function``, root first; samples) per line of a raw py-spy file."""
    out: list[tuple[list[str], int]] = []
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = []
        for f in stack.split(";"):
            m = FRAME.match(f)
            if m is None:
                continue  # process / thread names
            file = m["file"]
            short = file.split("site-packages/", 1)[-1]
            if "corral/" in short:
                short = "corral/" + short.rsplit("corral/", 1)[1]
            frames.append(f"{short}:{m['func']}")
        if frames:
            out.append((frames, int(count)))
    return out


def bucket(frames: list[str]) -> str:
    for f in reversed(frames):
        for name, rx in _COMPILED:
            if rx.search(f):
                return name
    return "other"


def request_of(frames: list[str]) -> str:
    """``create``, ``patch``, ``subresource patch`` (status), ``binding``, ``watch``...;
    else the outermost corral frame below the server's main (background work)."""
    for i in range(len(frames) - 1, -1, -1):
        m = HANDLER.search(frames[i])
        if m:
            sub = any(f.endswith("ResourceHandler.subresource") for f in frames[:i])
            verb = m[1]
            return f"subresource {verb}" if sub and verb != "binding" else verb
    own = [f for f in frames if f.startswith("corral/") and "cli/" not in f and "__main__" not in f]
    return "background: " + (own[0] if own else frames[-1])


def summarise(path: Path, top: int, paths: int, depth: int) -> dict[str, Any]:
    stacks = parse(path)
    total = sum(c for _, c in stacks) or 1
    self_t: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    phases: Counter[str] = Counter()
    requests: Counter[str] = Counter()
    call_paths: Counter[str] = Counter()
    for frames, c in stacks:
        self_t[frames[-1]] += c
        for f in set(frames):
            incl[f] += c
        phases[bucket(frames)] += c
        requests[request_of(frames)] += c
        own = [f.removeprefix("corral/") for f in frames if f.startswith("corral/")]
        tail = own[-depth:] if own else []
        if frames[-1].removeprefix("corral/") not in tail[-1:]:
            tail.append(frames[-1])
        call_paths[" > ".join(tail)] += c

    def pct(counter: Counter[str], n: int) -> list[tuple[str, float]]:
        return [(k, round(100 * v / total, 2)) for k, v in counter.most_common(n)]

    return {
        "file": str(path),
        "samples": total,
        "self": pct(self_t, top),
        "inclusive": pct(incl, top),
        "phases": pct(phases, len(BUCKETS) + 1),
        "requests": pct(requests, 15),
        "paths": pct(call_paths, paths),
    }


def render(s: dict[str, Any]) -> str:
    lines = [f"== {s['file']}: {s['samples']} samples"]
    for title in ("phases", "requests", "self", "inclusive", "paths"):
        lines.append(f"-- {title} (% of samples)")
        lines += [f"{p:6.2f}  {k}" for k, p in s[title]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.scheduler_profile")
    p.add_argument("files", nargs="+", type=Path)
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--paths", type=int, default=15)
    p.add_argument("--depth", type=int, default=6, help="corral frames kept per call path")
    p.add_argument("--out", default="", help="also write the summaries as JSON here")
    args = p.parse_args(argv)
    sums = [summarise(f, args.top, args.paths, args.depth) for f in args.files]
    for s in sums:
        print(render(s), flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(sums, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
