"""The HorizontalPodAutoscaler's stabilisation and rate limits, sans I/O: what happens
to the largest metric proposal before it becomes the target's size.

Without a ``behavior`` (upstream's legacy path): the highest recommendation of the
``--horizontal-pod-autoscaler-downscale-stabilization`` window, at most max(2x, 4) up,
then min/max. With one: the lowest recommendation of the scale-up window and the
highest of the scale-down window bound the change, the policies (Pods / Percent per
period, ``selectPolicy`` Max / Min / Disabled) limit it by what the recent scale events
already used, then min/max. Each step returns the AbleToScale and ScalingLimited
conditions with upstream's reasons and messages.

A ``History`` per HPA holds what upstream keeps in memory per key: recent
recommendations and scale events (lost on a restart, as upstream's are). ``now`` is an
argument (unix seconds): ``controllers/hpa.py`` passes its clock's, tests a number.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from corral.api.conditions import set_condition as conditions_set

Obj = Mapping[str, Any]
MAX_INT32 = 2**31 - 1
MIN_INT32 = -(2**31)
#: the legacy scale-up limit without a behaviour: max(2 * current, 4)
SCALE_UP_LIMIT_FACTOR = 2.0
SCALE_UP_LIMIT_MINIMUM = 4.0

# --- stabilisation and rate limits ------------------------------------------------------------


@dataclass
class ScaleEvent:
    change: int  # absolute value
    at: float
    outdated: bool = False


@dataclass
class History:
    """What the controller remembers of one HPA between syncs (upstream: in memory)."""

    recommendations: list[tuple[int, float]] = field(default_factory=list)
    up_events: list[ScaleEvent] = field(default_factory=list)
    down_events: list[ScaleEvent] = field(default_factory=list)

    def record_initial(self, current: int, now: float) -> None:
        """``recordInitialRecommendation``: the current size seeds an empty history."""
        if not self.recommendations:
            self.recommendations = [(current, now)]


#: (condition type, status, reason, message)
Condition = tuple[str, str, str, str]

# the AbleToScale conditions both the plain and the behavior-driven normalisation report
READY_FOR_NEW_SCALE: Condition = (
    "AbleToScale",
    "True",
    "ReadyForNewScale",
    "recommended size matches current size",
)
SCALE_UP_STABILIZED: Condition = (
    "AbleToScale",
    "True",
    "ScaleUpStabilized",
    "recent recommendations were lower than current one, applying the lowest recent recommendation",
)
SCALE_DOWN_STABILIZED: Condition = (
    "AbleToScale",
    "True",
    "ScaleDownStabilized",
    "recent recommendations were higher than current one, applying the highest recent "
    "recommendation",
)


def _keep(history: History, desired: int, now: float, old_index: int | None) -> None:
    if old_index is not None:
        history.recommendations[old_index] = (desired, now)
    else:
        history.recommendations.append((desired, now))


def normalize_desired_replicas(
    history: History,
    now: float,
    current: int,
    desired: int,
    min_replicas: int,
    max_replicas: int,
    downscale_window: float,
) -> tuple[int, list[Condition]]:
    """``normalizeDesiredReplicas`` (no ``behavior``): the highest recommendation of the
    downscale stabilisation window, then at most max(2x, 4) up, then min/max."""
    stabilized, old_index = desired, None
    cutoff = now - downscale_window
    for i, (rec, at) in enumerate(history.recommendations):
        if at < cutoff:
            old_index = i
        elif rec > stabilized:
            stabilized = rec
    _keep(history, desired, now, old_index)
    conditions: list[Condition] = []
    if stabilized != desired:
        conditions.append(SCALE_DOWN_STABILIZED)
    else:
        conditions.append(READY_FOR_NEW_SCALE)
    scale_up_limit = int(max(SCALE_UP_LIMIT_FACTOR * current, SCALE_UP_LIMIT_MINIMUM))
    if max_replicas > scale_up_limit:
        maximum, reason = scale_up_limit, "ScaleUpLimit"
        message = "the desired replica count is increasing faster than the maximum scale rate"
    else:
        maximum, reason = max_replicas, "TooManyReplicas"
        message = "the desired replica count is more than the maximum replica count"
    if stabilized < min_replicas:
        result, reason = min_replicas, "TooFewReplicas"
        message = "the desired replica count is less than the minimum replica count"
    elif stabilized > maximum:
        result = maximum
    else:
        result, reason = stabilized, "DesiredWithinRange"
        message = "the desired count is within the acceptable range"
    conditions.append(
        ("ScalingLimited", "False" if result == stabilized else "True", reason, message)
    )
    return result, conditions


def _change_in_period(period: int, events: Iterable[ScaleEvent], now: float) -> int:
    cutoff = now - period
    return sum(e.change for e in events if e.at > cutoff)


def scale_up_limit(
    current: int, up: Sequence[ScaleEvent], down: Sequence[ScaleEvent], rules: Obj, now: float
) -> int:
    """``calculateScaleUpLimitWithScalingRules``: the most replicas the policies allow."""
    select = rules.get("selectPolicy") or "Max"
    if select == "Disabled":
        return current
    result = MAX_INT32 if select == "Min" else MIN_INT32
    for policy in rules.get("policies") or ():
        period = int(policy.get("periodSeconds") or 0)
        start = current - _change_in_period(period, up, now) + _change_in_period(period, down, now)
        value = int(policy.get("value") or 0)
        if policy.get("type") == "Pods":
            proposed = start + value
        else:  # Percent: rounded up, or a small target would never grow
            proposed = math.ceil(start * (1 + value / 100))
        result = min(result, proposed) if select == "Min" else max(result, proposed)
    return result


def scale_down_limit(
    current: int, up: Sequence[ScaleEvent], down: Sequence[ScaleEvent], rules: Obj, now: float
) -> int:
    """``calculateScaleDownLimitWithBehaviors``: the fewest replicas the policies allow."""
    select = rules.get("selectPolicy") or "Max"
    if select == "Disabled":
        return current
    result = MIN_INT32 if select == "Min" else MAX_INT32
    for policy in rules.get("policies") or ():
        period = int(policy.get("periodSeconds") or 0)
        start = current - _change_in_period(period, up, now) + _change_in_period(period, down, now)
        value = int(policy.get("value") or 0)
        # Percent: truncated toward zero, as Go's int32() conversion
        proposed = start - value if policy.get("type") == "Pods" else int(start * (1 - value / 100))
        result = max(result, proposed) if select == "Min" else min(result, proposed)
    return result


def normalize_with_behaviors(
    history: History,
    now: float,
    current: int,
    desired: int,
    min_replicas: int,
    max_replicas: int,
    behavior: Obj,
) -> tuple[int, list[Condition]]:
    """``normalizeDesiredReplicasWithBehaviors``: stabilise within the scale-up and
    scale-down windows, then apply the policies' rate limits and min/max. ``behavior``
    is defaulted, with the scale-down window filled from the controller's flag."""
    up_rules = behavior.get("scaleUp") or {}
    down_rules = behavior.get("scaleDown") or {}
    up_cutoff = now - int(up_rules.get("stabilizationWindowSeconds") or 0)
    down_cutoff = now - int(down_rules.get("stabilizationWindowSeconds") or 0)
    up_rec = down_rec = desired
    old_index = None
    for i, (rec, at) in enumerate(history.recommendations):
        if at > up_cutoff:
            up_rec = min(rec, up_rec)
        if at > down_cutoff:
            down_rec = max(rec, down_rec)
        if at < up_cutoff and at < down_cutoff:
            old_index = i
    stabilized = max(current, up_rec)
    stabilized = min(stabilized, down_rec)
    _keep(history, desired, now, old_index)
    conditions: list[Condition] = []
    if stabilized != desired:
        if desired >= current:
            conditions.append(SCALE_UP_STABILIZED)
        else:
            conditions.append(SCALE_DOWN_STABILIZED)
    else:
        conditions.append(READY_FOR_NEW_SCALE)
    result, reason = stabilized, "DesiredWithinRange"
    message = "the desired count is within the acceptable range"
    if stabilized > current:
        limit = max(
            scale_up_limit(current, history.up_events, history.down_events, up_rules, now),
            current,
        )
        if max_replicas > limit:
            maximum, r, m = (
                limit,
                "ScaleUpLimit",
                "the desired replica count is increasing faster than the maximum scale rate",
            )
        else:
            maximum, r, m = (
                max_replicas,
                "TooManyReplicas",
                "the desired replica count is more than the maximum replica count",
            )
        if stabilized > maximum:
            result, reason, message = maximum, r, m
    elif stabilized < current:
        limit = min(
            scale_down_limit(current, history.up_events, history.down_events, down_rules, now),
            current,
        )
        if min_replicas < limit:
            minimum, r, m = (
                limit,
                "ScaleDownLimit",
                "the desired replica count is decreasing faster than the maximum scale rate",
            )
        else:
            minimum, r, m = (
                min_replicas,
                "TooFewReplicas",
                "the desired replica count is less than the minimum replica count",
            )
        if stabilized < minimum:
            result, reason, message = minimum, r, m
    conditions.append(
        ("ScalingLimited", "False" if result == stabilized else "True", reason, message)
    )
    return result, conditions


def store_scale_event(
    history: History, behavior: Obj | None, previous: int, new: int, now: float
) -> None:
    """``storeScaleEvent``: remember a rescale for the policies' periods (only with a
    ``behavior``), reusing a slot older than the direction's longest policy period."""
    if behavior is None:
        return
    up = new > previous
    rules = (behavior.get("scaleUp") if up else behavior.get("scaleDown")) or {}
    events = history.up_events if up else history.down_events
    longest = max(
        (int(p.get("periodSeconds") or 0) for p in rules.get("policies") or ()), default=0
    )
    for e in events:
        if e.at < now - longest:
            e.outdated = True
    event = ScaleEvent(abs(new - previous), now)
    old = [i for i, e in enumerate(events) if e.outdated]
    if old:
        events[old[-1]] = event
    else:
        events.append(event)


# --- defaults the controller applies -------------------------------------------------------------


def effective_behavior(behavior: Obj | None, downscale_window: float) -> dict[str, Any] | None:
    """The stored (defaulted) ``behavior`` with the scale-down stabilisation window filled
    from ``--horizontal-pod-autoscaler-downscale-stabilization`` when unset, as
    ``maybeInitScaleDownStabilizationWindow`` does; None without a behaviour."""
    if behavior is None:
        return None
    out = {k: dict(v) if isinstance(v, Mapping) else v for k, v in behavior.items()}
    down = out.get("scaleDown")
    if isinstance(down, dict) and down.get("stabilizationWindowSeconds") is None:
        down["stabilizationWindowSeconds"] = int(downscale_window)
    return out


def set_condition(
    conditions: list[dict[str, Any]], ctype: str, status: str, reason: str, message: str, now: str
) -> None:
    """``setConditionInList``: update or add; ``lastTransitionTime`` moves on a status change."""
    cond = {"type": ctype, "status": status, "reason": reason, "message": message}
    conditions_set({"status": {"conditions": conditions}}, cond, now)


__all__ = [
    "Condition",
    "History",
    "ScaleEvent",
    "effective_behavior",
    "normalize_desired_replicas",
    "normalize_with_behaviors",
    "scale_down_limit",
    "scale_up_limit",
    "set_condition",
    "store_scale_event",
]
