"""The Deployment controller's pure rollout arithmetic (sans-I/O), after pkg/controller/deployment.

``controllers/deployment.py`` (the I/O shell) calls these with plain dicts (Deployments and
ReplicaSets as decoded from JSON) and applies what they return; the unit tests
(tests/unit/controllers/test_deployment.py) call them with tables. Nothing here awaits,
reads a clock (``now`` is passed in) or mutates its arguments unless the docstring says so.

- fence posts: ``scaled_value`` (int or percent; maxSurge rounds up, maxUnavailable down),
  ``resolve_fenceposts``, ``max_surge``, ``max_unavailable``;
- the ``pod-template-hash``: ``compute_hash`` (FNV-32a, SafeEncodeString), ``equal_ignore_hash``;
- which ReplicaSet is new: ``find_new_rs``, revisions: ``revision``, ``max_revision``,
  ``set_new_rs_annotations``, ``set_replicas_annotations``;
- scaling decisions: ``new_rs_new_replicas``, ``old_rs_scale_down`` (cleanup of unhealthy
  replicas, then within maxUnavailable), ``proportional_scale`` (a scaling event during a
  rollout), ``find_active_or_latest``, ``is_saturated``, ``rs_to_clean_up``;
- status: ``calculate_status``, conditions (``set_condition``) and the progress predicates.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable, Sequence
from typing import Any

import orjson

Obj = dict[str, Any]

HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
ROLLBACK_TO = "deprecated.deployment.rollback.to"
#: annotations a Deployment does not copy onto its ReplicaSets
SKIPPED_ANNOTATIONS = frozenset(
    {LAST_APPLIED, REVISION, REVISION_HISTORY, DESIRED_REPLICAS, MAX_REPLICAS, ROLLBACK_TO}
)
MAX_REV_HISTORY_CHARS = 2000
MAX_INT32 = 2**31 - 1

# Condition types and reasons (pkg/controller/deployment/util).
PROGRESSING = "Progressing"
AVAILABLE = "Available"
REPLICA_FAILURE = "ReplicaFailure"
NEW_RS_REASON = "NewReplicaSetCreated"
FOUND_NEW_RS_REASON = "FoundNewReplicaSet"
RS_UPDATED_REASON = "ReplicaSetUpdated"
NEW_RS_AVAILABLE_REASON = "NewReplicaSetAvailable"
TIMED_OUT_REASON = "ProgressDeadlineExceeded"
PAUSED_REASON = "DeploymentPaused"
RESUMED_REASON = "DeploymentResumed"
FAILED_RS_CREATE_REASON = "ReplicaSetCreateError"
MIN_AVAILABLE_REASON = "MinimumReplicasAvailable"
MIN_UNAVAILABLE_REASON = "MinimumReplicasUnavailable"
MIN_AVAILABLE_MESSAGE = "Deployment has minimum availability."
MIN_UNAVAILABLE_MESSAGE = "Deployment does not have minimum availability."

_SAFE_ALPHANUMS = "bcdfghjklmnpqrstvwxz2456789"


# --- small accessors ---------------------------------------------------------------------------


def meta(obj: Obj) -> Obj:
    m = obj.get("metadata")
    return m if isinstance(m, dict) else {}


def spec(obj: Obj) -> Obj:
    s = obj.get("spec")
    return s if isinstance(s, dict) else {}


def status(obj: Obj) -> Obj:
    s = obj.get("status")
    return s if isinstance(s, dict) else {}


def replicas(obj: Obj) -> int:
    """``spec.replicas`` (defaulted to 1 by the API when absent)."""
    r = spec(obj).get("replicas")
    return 1 if r is None else int(r)


def _st(obj: Obj | None, field: str) -> int:
    return int(status(obj).get(field) or 0) if obj is not None else 0


def sum_spec(rss: Iterable[Obj | None]) -> int:
    """GetReplicaCountForReplicaSets: the sum of ``spec.replicas``."""
    return sum(replicas(rs) for rs in rss if rs is not None)


def sum_actual(rss: Iterable[Obj | None]) -> int:
    return sum(_st(rs, "replicas") for rs in rss)


def sum_ready(rss: Iterable[Obj | None]) -> int:
    return sum(_st(rs, "readyReplicas") for rs in rss)


def sum_available(rss: Iterable[Obj | None]) -> int:
    return sum(_st(rs, "availableReplicas") for rs in rss)


def active(rss: Iterable[Obj | None]) -> list[Obj]:
    """FilterActiveReplicaSets: those with ``spec.replicas > 0``."""
    return [rs for rs in rss if rs is not None and replicas(rs) > 0]


def by_creation(rs: Obj) -> tuple[str, str]:
    """ReplicaSetsByCreationTimestamp: oldest first, ties by name."""
    m = meta(rs)
    return (str(m.get("creationTimestamp") or ""), str(m.get("name") or ""))


def revision(rs: Obj) -> int:
    """The ``deployment.kubernetes.io/revision`` annotation (0 when absent or not a number)."""
    v = (meta(rs).get("annotations") or {}).get(REVISION)
    try:
        return int(v) if v is not None else 0
    except ValueError:
        return 0


def max_revision(rss: Iterable[Obj]) -> int:
    return max((revision(rs) for rs in rss), default=0)


# --- fence posts -------------------------------------------------------------------------------


def scaled_value(value: int | str | None, total: int, round_up: bool) -> int:
    """GetScaledValueFromIntOrPercent: an int as is, ``"25%"`` of ``total`` rounded."""
    if value is None:
        return 0
    if isinstance(value, int):
        return value
    if value.endswith("%"):
        pct = int(value[:-1])
        return -(-pct * total // 100) if round_up else pct * total // 100
    return int(value)


def resolve_fenceposts(
    surge: int | str | None, unavailable: int | str | None, desired: int
) -> tuple[int, int]:
    """(maxSurge, maxUnavailable) as counts; both resolving to 0 makes unavailable 1."""
    s = scaled_value(surge, desired, True)
    u = scaled_value(unavailable, desired, False)
    if s == 0 and u == 0:
        u = 1
    return s, u


def _rolling(d: Obj) -> Obj | None:
    strategy = spec(d).get("strategy") or {}
    if strategy.get("type", "RollingUpdate") != "RollingUpdate":
        return None
    ru = strategy.get("rollingUpdate")
    return ru if isinstance(ru, dict) else {"maxSurge": "25%", "maxUnavailable": "25%"}


def is_rolling_update(d: Obj) -> bool:
    return _rolling(d) is not None


def max_surge(d: Obj) -> int:
    """MaxSurge: 0 unless RollingUpdate."""
    ru = _rolling(d)
    if ru is None:
        return 0
    return resolve_fenceposts(ru.get("maxSurge"), ru.get("maxUnavailable"), replicas(d))[0]


def max_unavailable(d: Obj) -> int:
    """MaxUnavailable: 0 unless RollingUpdate with replicas > 0; never above replicas."""
    ru = _rolling(d)
    want = replicas(d)
    if ru is None or want == 0:
        return 0
    u = resolve_fenceposts(ru.get("maxSurge"), ru.get("maxUnavailable"), want)[1]
    return min(u, want)


# --- the pod-template-hash -----------------------------------------------------------------------


def _prune(v: Any) -> Any:
    """Drop nulls and empty maps/lists: Kubernetes' semantic equality treats them as absent."""
    if isinstance(v, dict):
        out = {k: p for k, x in v.items() if (p := _prune(x)) is not None}
        return out or None
    if isinstance(v, list):
        items = [_prune(x) for x in v]
        return [x if x is not None else {} for x in items] or None
    return v


def safe_encode(s: str) -> str:
    """rand.SafeEncodeString: each byte mapped onto a vowel-free alphabet."""
    return "".join(_SAFE_ALPHANUMS[b % len(_SAFE_ALPHANUMS)] for b in s.encode())


def fnv32a(data: bytes) -> int:
    h = 0x811C9DC5
    for b in data:
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return h


def compute_hash(template: Obj, collision_count: int | None) -> str:
    """The ``pod-template-hash`` of a template.

    Kubernetes hashes the Go struct's spew dump with FNV-32a, adds ``collisionCount`` as
    8 little-endian bytes, and renders the decimal sum with SafeEncodeString. Corral
    hashes the template's canonical JSON (sorted keys, empty values pruned) instead, so
    the names have the same shape and stability but not the same letters as upstream.
    """
    data = orjson.dumps(_prune(template) or {}, option=orjson.OPT_SORT_KEYS)
    if collision_count is not None:
        data += struct.pack("<I", collision_count & 0xFFFFFFFF) + b"\0\0\0\0"
    return safe_encode(str(fnv32a(data)))


def _without_hash(template: Obj | None) -> Any:
    t = dict(template or {})
    m = dict(t.get("metadata") or {})
    labels = dict(m.get("labels") or {})
    labels.pop(HASH_LABEL, None)
    m["labels"] = labels
    t["metadata"] = m
    return _prune(t)


def equal_ignore_hash(a: Obj | None, b: Obj | None) -> bool:
    """EqualIgnoreHash: the templates are equal once the hash label is removed from both."""
    return bool(_without_hash(a) == _without_hash(b))


def find_new_rs(d: Obj, rss: Sequence[Obj]) -> Obj | None:
    """FindNewReplicaSet: the oldest ReplicaSet whose template equals the Deployment's."""
    template = spec(d).get("template")
    for rs in sorted(rss, key=by_creation):
        if equal_ignore_hash(spec(rs).get("template"), template):
            return rs
    return None


def new_rs_object(d: Obj, template_hash: str, owner_ref: Obj) -> Obj:
    """The new ReplicaSet for ``d`` (replicas 0, no annotations yet)."""
    template = _deep(spec(d).get("template") or {})
    tmeta = template.setdefault("metadata", {})
    labels = {**(tmeta.get("labels") or {}), HASH_LABEL: template_hash}
    tmeta["labels"] = labels
    selector = _deep(spec(d).get("selector") or {})
    selector["matchLabels"] = {**(selector.get("matchLabels") or {}), HASH_LABEL: template_hash}
    rs_spec: Obj = {"replicas": 0, "selector": selector, "template": template}
    if spec(d).get("minReadySeconds"):
        rs_spec["minReadySeconds"] = spec(d)["minReadySeconds"]
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": f"{meta(d)['name']}-{template_hash}",
            "namespace": meta(d).get("namespace"),
            "labels": dict(labels),
            "ownerReferences": [owner_ref],
        },
        "spec": rs_spec,
    }


def _deep(o: Obj) -> Obj:
    out: Obj = orjson.loads(orjson.dumps(o))
    return out


# --- annotations -------------------------------------------------------------------------------


def copy_deployment_annotations(d: Obj, rs: Obj) -> bool:
    """Copy the Deployment's annotations (but the skipped ones) onto ``rs`` (mutated)."""
    ann = rs.setdefault("metadata", {}).setdefault("annotations", {})
    changed = False
    for k, v in (meta(d).get("annotations") or {}).items():
        if k in SKIPPED_ANNOTATIONS or ann.get(k) == v:
            continue
        ann[k] = v
        changed = True
    return changed


def replicas_annotations_need_update(rs: Obj, desired: int, max_replicas: int) -> bool:
    ann = meta(rs).get("annotations") or {}
    return ann.get(DESIRED_REPLICAS) != str(desired) or ann.get(MAX_REPLICAS) != str(max_replicas)


def set_replicas_annotations(rs: Obj, desired: int, max_replicas: int) -> bool:
    """Set desired-replicas and max-replicas on ``rs`` (mutated); True when changed."""
    if not replicas_annotations_need_update(rs, desired, max_replicas):
        return False
    ann = rs.setdefault("metadata", {}).setdefault("annotations", {})
    ann[DESIRED_REPLICAS] = str(desired)
    ann[MAX_REPLICAS] = str(max_replicas)
    return True


def set_new_rs_annotations(d: Obj, rs: Obj, new_revision: int, exists: bool) -> bool:
    """SetNewReplicaSetAnnotations on ``rs`` (mutated): copied annotations, the revision
    (only ever raised; a raised one is remembered in revision-history, as after an undo),
    and for a new ReplicaSet the replicas annotations. True when anything changed."""
    changed = copy_deployment_annotations(d, rs)
    ann = rs.setdefault("metadata", {}).setdefault("annotations", {})
    old = ann.get(REVISION)
    try:
        old_int = int(old) if old else 0
    except ValueError:
        return changed
    if old_int < new_revision:
        ann[REVISION] = str(new_revision)
        changed = True
        if old:
            history = ann.get(REVISION_HISTORY) or ""
            if not history:
                ann[REVISION_HISTORY] = old
            else:
                parts = history.split(",")
                total = len(history) + len(old) + 1
                start = 0
                while total > MAX_REV_HISTORY_CHARS and start < len(parts):
                    total -= len(parts[start]) + 1
                    start += 1
                if total <= MAX_REV_HISTORY_CHARS:
                    ann[REVISION_HISTORY] = ",".join([*parts[start:], old])
    want = replicas(d)
    if not exists and set_replicas_annotations(rs, want, want + max_surge(d)):
        changed = True
    return changed


def desired_replicas_annotation(rs: Obj) -> int | None:
    v = (meta(rs).get("annotations") or {}).get(DESIRED_REPLICAS)
    try:
        return int(v) if v is not None else None
    except ValueError:
        return None


def _max_replicas_annotation(rs: Obj) -> int | None:
    v = (meta(rs).get("annotations") or {}).get(MAX_REPLICAS)
    try:
        return int(v) if v is not None else None
    except ValueError:
        return None


# --- scaling decisions ---------------------------------------------------------------------------


def new_rs_new_replicas(d: Obj, all_rss: Iterable[Obj | None], new_rs: Obj) -> int:
    """NewRSNewReplicas: the new ReplicaSet's size allowed now.

    RollingUpdate: grow toward ``replicas`` while all ReplicaSets together stay within
    ``replicas + maxSurge``; Recreate: ``replicas`` at once.
    """
    want = replicas(d)
    if not is_rolling_update(d):
        return want
    max_total = want + max_surge(d)
    current = sum_spec(all_rss)
    if current >= max_total:
        return replicas(new_rs)
    up = min(max_total - current, want - replicas(new_rs))
    return replicas(new_rs) + up


def new_rs_target(d: Obj, all_rss: Iterable[Obj | None], new_rs: Obj) -> int:
    """reconcileNewReplicaSet: the new ReplicaSet's next size (never above ``replicas``)."""
    want = replicas(d)
    if replicas(new_rs) >= want:
        return want
    return new_rs_new_replicas(d, all_rss, new_rs)


def old_rs_scale_down(d: Obj, old_rss: Sequence[Obj], new_rs: Obj | None) -> list[tuple[str, int]]:
    """reconcileOldReplicaSets: ``(name, new size)`` for old ReplicaSets to shrink.

    First old replicas that are not available are removed (oldest ReplicaSet first; they
    add no availability), then available ones while the available count over all
    ReplicaSets stays at least ``replicas - maxUnavailable``. ``old_rss`` are the active
    old ReplicaSets. Unlike Kubernetes, a ReplicaSet counts at most ``spec.replicas``
    available pods: right after a scale-down its status still shows the pods being
    deleted, and counting those could take availability below the floor.
    """
    sizes = {meta(rs)["name"]: replicas(rs) for rs in old_rss}
    if sum(sizes.values()) == 0:
        return []
    all_rss: list[Obj | None] = [*old_rss, new_rs]
    min_available = replicas(d) - max_unavailable(d)
    new_unavailable = (replicas(new_rs) - _st(new_rs, "availableReplicas")) if new_rs else 0
    max_scaled_down = sum_spec(all_rss) - min_available - new_unavailable
    if max_scaled_down <= 0:
        return []
    ordered = sorted(old_rss, key=by_creation)
    changes: dict[str, int] = {}
    cleaned = 0
    for rs in ordered:
        if cleaned >= max_scaled_down:
            break
        name = meta(rs)["name"]
        size, avail = sizes[name], _st(rs, "availableReplicas")
        if size == 0 or size <= avail:  # no unhealthy replicas (or a stale status)
            continue
        n = min(max_scaled_down - cleaned, size - avail)
        sizes[name] = changes[name] = size - n
        cleaned += n
    # Kubernetes sums status.availableReplicas; a ReplicaSet just scaled down still reports
    # the pods it is deleting, so count at most spec.replicas of each (never over-count).
    available = sum(min(replicas(rs), _st(rs, "availableReplicas")) for rs in all_rss if rs)
    if available > min_available:
        budget = available - min_available
        done = 0
        for rs in ordered:
            if done >= budget:
                break
            name = meta(rs)["name"]
            if sizes[name] == 0:
                continue
            n = min(sizes[name], budget - done)
            sizes[name] = changes[name] = sizes[name] - n
            done += n
    return [
        (meta(rs)["name"], changes[meta(rs)["name"]])
        for rs in ordered
        if meta(rs)["name"] in changes
    ]


def find_active_or_latest(new_rs: Obj | None, old_rss: Sequence[Obj]) -> Obj | None:
    """FindActiveOrLatest: the only active ReplicaSet, or the newest when none is active."""
    if new_rs is None and not old_rss:
        return None
    newest_first = sorted(old_rss, key=by_creation, reverse=True)
    act = active([*newest_first, new_rs])
    if len(act) == 1:
        return act[0]
    if not act:
        return new_rs if new_rs is not None else newest_first[0]
    return None


def is_saturated(d: Obj, rs: Obj | None) -> bool:
    """The ReplicaSet has ``replicas`` desired and available pods."""
    if rs is None:
        return False
    want = replicas(d)
    return (
        replicas(rs) == want
        and desired_replicas_annotation(rs) == want
        and _st(rs, "availableReplicas") == want
    )


def _round_half_away(x: float) -> int:
    return math.floor(x + 0.5) if x >= 0 else -math.floor(-x + 0.5)


def _rs_fraction(rs: Obj, d: Obj) -> int:
    want = replicas(d)
    if want == 0:
        return -replicas(rs)
    max_now = want + max_surge(d)
    before = _max_replicas_annotation(rs)
    if not before:
        before = _st(d, "replicas") or replicas(rs)
    return _round_half_away(replicas(rs) * max_now / before) - replicas(rs)


def _proportion(rs: Obj, d: Obj, to_add: int, added: int) -> int:
    if replicas(rs) == 0 or to_add == 0 or to_add == added:
        return 0
    fraction = _rs_fraction(rs, d)
    allowed = to_add - added
    return min(fraction, allowed) if to_add > 0 else max(fraction, allowed)


def proportional_scale(
    d: Obj, new_rs: Obj | None, old_rss: Sequence[Obj]
) -> list[tuple[str, int, str]]:
    """The scale step (a ``replicas`` change, or a paused Deployment).

    Returns ``(name, new size, "up"|"down"|"")`` for every ReplicaSet to write (a write
    also refreshes the replicas annotations): one active (or the latest) ReplicaSet takes
    ``replicas``; a saturated new ReplicaSet zeroes the old ones; otherwise, for
    RollingUpdate, the difference to ``replicas + maxSurge`` is shared in proportion,
    larger ReplicaSets first, leftovers to the first.
    """
    want = replicas(d)
    one = find_active_or_latest(new_rs, old_rss)
    if one is not None:
        if replicas(one) == want:
            return []
        return [(meta(one)["name"], want, "up" if replicas(one) < want else "down")]
    if is_saturated(d, new_rs):
        return [(meta(rs)["name"], 0, "down") for rs in active(old_rss)]
    if not is_rolling_update(d):
        return []
    all_rss = active([*old_rss, new_rs])
    allowed = want + max_surge(d) if want > 0 else 0
    to_add = allowed - sum_spec(all_rss)
    op = ""
    if to_add > 0:  # larger first; same size: newer first
        all_rss.sort(key=by_creation, reverse=True)
        all_rss.sort(key=replicas, reverse=True)
        op = "up"
    elif to_add < 0:  # larger first; same size: older first
        all_rss.sort(key=by_creation)
        all_rss.sort(key=replicas, reverse=True)
        op = "down"
    sizes: dict[str, int] = {}
    added = 0
    for rs in all_rss:
        name = meta(rs)["name"]
        if to_add != 0:
            p = _proportion(rs, d, to_add, added)
            sizes[name] = replicas(rs) + p
            added += p
        else:
            sizes[name] = replicas(rs)
    out = []
    for i, rs in enumerate(all_rss):
        name = meta(rs)["name"]
        if i == 0 and to_add != 0:
            sizes[name] = max(0, sizes[name] + to_add - added)
        out.append((name, sizes[name], op))
    return out


def rs_to_clean_up(d: Obj, old_rss: Sequence[Obj]) -> list[str]:
    """cleanupDeployment: names of old, empty ReplicaSets beyond revisionHistoryLimit,
    lowest revision first (ties: oldest)."""
    limit = spec(d).get("revisionHistoryLimit")
    if limit is None:
        return []
    alive = [rs for rs in old_rss if not meta(rs).get("deletionTimestamp")]
    diff = len(alive) - int(limit)
    if diff <= 0:
        return []
    alive.sort(key=lambda rs: (revision(rs), *by_creation(rs)))
    out = []
    for rs in alive[:diff]:
        if _st(rs, "replicas") != 0 or replicas(rs) != 0:
            continue
        if int(meta(rs).get("generation") or 0) > _st(rs, "observedGeneration"):
            continue
        out.append(str(meta(rs)["name"]))
    return out


# --- status and conditions -----------------------------------------------------------------------


def get_condition(st: Obj, type_: str) -> Obj | None:
    for c in st.get("conditions") or ():
        if c.get("type") == type_:
            return dict(c)
    return None


def new_condition(type_: str, status_: str, reason: str, message: str, now: str) -> Obj:
    return {
        "type": type_,
        "status": status_,
        "lastUpdateTime": now,
        "lastTransitionTime": now,
        "reason": reason,
        "message": message,
    }


def set_condition(st: Obj, cond: Obj) -> None:
    """SetDeploymentCondition on ``st`` (mutated): same status and reason: no change;
    same status: keep lastTransitionTime; the condition goes last."""
    cur = get_condition(st, cond["type"])
    if cur is not None and cur.get("status") == cond["status"]:
        if cur.get("reason") == cond["reason"]:
            return
        cond = {**cond, "lastTransitionTime": cur.get("lastTransitionTime")}
    remove_condition(st, cond["type"])
    st.setdefault("conditions", []).append(cond)


def remove_condition(st: Obj, type_: str) -> None:
    conds = [c for c in st.get("conditions") or () if c.get("type") != type_]
    if conds:
        st["conditions"] = conds
    else:
        st.pop("conditions", None)


def has_progress_deadline(d: Obj) -> bool:
    pds = spec(d).get("progressDeadlineSeconds")
    return pds is not None and int(pds) != MAX_INT32


def _omit_zero(st: Obj) -> Obj:
    return {k: v for k, v in st.items() if v not in (0, None, [], {})}


def calculate_status(all_rss: Sequence[Obj | None], new_rs: Obj | None, d: Obj, now: str) -> Obj:
    """calculateStatus: counts from the ReplicaSets, the Available condition, the other
    conditions carried over. Zero counts are omitted, as Go's ``omitempty`` does."""
    available = sum_available(all_rss)
    unavailable = max(0, sum_spec(all_rss) - available)
    st: Obj = {
        "observedGeneration": int(meta(d).get("generation") or 0),
        "replicas": sum_actual(all_rss),
        "updatedReplicas": sum_actual([new_rs]),
        "readyReplicas": sum_ready(all_rss),
        "availableReplicas": available,
        "unavailableReplicas": unavailable,
    }
    if status(d).get("collisionCount") is not None:
        st["collisionCount"] = status(d)["collisionCount"]
    st = _omit_zero(st)
    conds = [dict(c) for c in status(d).get("conditions") or ()]
    if conds:
        st["conditions"] = conds
    if available >= replicas(d) - max_unavailable(d):
        cond = new_condition(AVAILABLE, "True", MIN_AVAILABLE_REASON, MIN_AVAILABLE_MESSAGE, now)
    else:
        cond = new_condition(
            AVAILABLE, "False", MIN_UNAVAILABLE_REASON, MIN_UNAVAILABLE_MESSAGE, now
        )
    set_condition(st, cond)
    return st


def deployment_complete(d: Obj, st: Obj) -> bool:
    """Every replica updated and available, and the latest spec observed."""
    want = replicas(d)
    return (
        int(st.get("updatedReplicas") or 0) == want
        and int(st.get("replicas") or 0) == want
        and int(st.get("availableReplicas") or 0) == want
        and int(st.get("observedGeneration") or 0) >= int(meta(d).get("generation") or 0)
    )


def deployment_progressing(d: Obj, st: Obj) -> bool:
    """Progress since the last recorded status: more updated, fewer old, more ready or
    more available replicas."""
    old = status(d)

    def g(s: Obj, f: str) -> int:
        return int(s.get(f) or 0)

    old_old = g(old, "replicas") - g(old, "updatedReplicas")
    new_old = g(st, "replicas") - g(st, "updatedReplicas")
    return (
        g(st, "updatedReplicas") > g(old, "updatedReplicas")
        or new_old < old_old
        or g(st, "readyReplicas") > g(old, "readyReplicas")
        or g(st, "availableReplicas") > g(old, "availableReplicas")
    )


def deadline_left(d: Obj, st: Obj, now: float, parse: Any) -> float | None:
    """Seconds until the Progressing condition in ``st`` passes the deadline, or None when
    there is no running deadline (none set, no condition, complete or timed out).
    ``parse`` turns an RFC 3339 string into epoch seconds."""
    if not has_progress_deadline(d):
        return None
    cond = get_condition(st, PROGRESSING)
    if cond is None or cond.get("reason") in (NEW_RS_AVAILABLE_REASON, TIMED_OUT_REASON):
        return None
    since = float(parse(cond.get("lastUpdateTime") or "1970-01-01T00:00:00Z"))
    return since + int(spec(d)["progressDeadlineSeconds"]) - now


def deployment_timed_out(d: Obj, st: Obj, now: float, parse: Any) -> bool:
    """DeploymentTimedOut: the Progressing condition was last updated over the deadline ago."""
    cond = get_condition(st, PROGRESSING)
    if cond is not None and cond.get("reason") == TIMED_OUT_REASON and has_progress_deadline(d):
        return True
    left = deadline_left(d, st, now, parse)
    return left is not None and left < 0


def rollout_status(
    all_rss: Sequence[Obj | None], new_rs: Obj | None, d: Obj, now: float, now_str: str, parse: Any
) -> Obj:
    """syncRolloutStatus's new status: ``calculate_status`` plus the Progressing condition
    (NewReplicaSetAvailable when complete, ReplicaSetUpdated on progress,
    ProgressDeadlineExceeded past the deadline), with Kubernetes' messages."""
    st = calculate_status(all_rss, new_rs, d, now_str)
    if has_progress_deadline(d):
        _progressing(st, new_rs, d, now, now_str, parse)
    else:
        remove_condition(st, PROGRESSING)
    failure = replica_failure(new_rs, [rs for rs in all_rss if rs is not new_rs])
    if failure is not None:
        set_condition(st, failure)
    else:
        remove_condition(st, REPLICA_FAILURE)
    return st


def _progressing(st: Obj, new_rs: Obj | None, d: Obj, now: float, now_str: str, parse: Any) -> None:
    name = meta(d).get("name")
    cur = get_condition(status(d), PROGRESSING)
    complete_before = (
        int(st.get("replicas") or 0) == int(st.get("updatedReplicas") or 0)
        and cur is not None
        and cur.get("reason") == NEW_RS_AVAILABLE_REASON
    )
    if complete_before:
        return
    subject = f'ReplicaSet "{meta(new_rs)["name"]}"' if new_rs else f'Deployment "{name}"'
    if deployment_complete(d, st):
        msg = f"{subject} has successfully progressed."
        set_condition(st, new_condition(PROGRESSING, "True", NEW_RS_AVAILABLE_REASON, msg, now_str))
    elif deployment_progressing(d, st):
        cond = new_condition(
            PROGRESSING, "True", RS_UPDATED_REASON, f"{subject} is progressing.", now_str
        )
        if cur is not None:
            if cur.get("status") == "True":
                cond["lastTransitionTime"] = cur.get("lastTransitionTime")
            remove_condition(st, PROGRESSING)
        set_condition(st, cond)
    elif deployment_timed_out(d, st, now, parse):
        msg = f"{subject} has timed out progressing."
        set_condition(st, new_condition(PROGRESSING, "False", TIMED_OUT_REASON, msg, now_str))


def replica_failure(new_rs: Obj | None, old_rss: Sequence[Obj | None]) -> Obj | None:
    """getReplicaFailures: a ReplicaSet's ReplicaFailure condition (the new one's first)
    as the Deployment's."""
    for rs in [new_rs, *old_rss]:
        if rs is None:
            continue
        c = get_condition(status(rs), REPLICA_FAILURE)
        if c is not None:
            when = c.get("lastTransitionTime")
            return {
                "type": REPLICA_FAILURE,
                "status": c.get("status"),
                "lastUpdateTime": when,
                "lastTransitionTime": when,
                "reason": c.get("reason"),
                "message": c.get("message"),
            }
    return None
