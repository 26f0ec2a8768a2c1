"""The scheduler configuration file: a subset of Kubernetes' KubeSchedulerConfiguration.

``corral scheduler --config FILE`` reads it; each profile becomes a
``framework.Profile``. Understood::

    apiVersion: kubescheduler.config.k8s.io/v1
    kind: KubeSchedulerConfiguration
    percentageOfNodesToScore: 50            # the default of every profile
    profiles:
    - schedulerName: default-scheduler
      percentageOfNodesToScore: 20          # this profile only
      plugins:
        multiPoint: {enabled: [...], disabled: [...]}   # both filter and score
        filter: {enabled: [{name: X}], disabled: [{name: Y} | {name: "*"}]}
        score:  {enabled: [{name: X, weight: 5}], disabled: [...]}
      pluginConfig:
      - name: NodeResourcesFit
        args: {scoringStrategy: {type: MostAllocated}}    # or LeastAllocated

Plugin lists merge with the defaults as Kubernetes merges them: defaults not disabled
keep their order (``"*"`` disables them all), a default named again under ``enabled``
is re-configured in place (its weight), and other enabled plugins are appended. A
weight left out keeps the default plugin's weight, or 1. Other fields of the file are
ignored; unknown plugin names and strategies are errors (``ConfigError``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from corral.scheduler import framework
from corral.scheduler import plugins as _plugins  # noqa: F401  (fills framework.REGISTRY)
from corral.scheduler.framework import Profile

DEFAULT_SCHEDULER = "default-scheduler"
STRATEGIES = ("LeastAllocated", "MostAllocated")
API_VERSIONS = ("kubescheduler.config.k8s.io/v1", "kubescheduler.config.k8s.io/v1beta3", "")


class ConfigError(ValueError):
    """The configuration file is not valid; the message says where."""


@dataclass
class SchedulerConfig:
    """Profiles by scheduler name (in file order)."""

    profiles: dict[str, Profile] = field(default_factory=lambda: {DEFAULT_SCHEDULER: Profile()})

    def profile(self, scheduler_name: str) -> Profile:
        """The profile of ``scheduler_name``; a file with a single profile serves any name."""
        if scheduler_name in self.profiles:
            return self.profiles[scheduler_name]
        if len(self.profiles) == 1:
            return next(iter(self.profiles.values()))
        raise ConfigError(
            f"no profile for scheduler {scheduler_name!r} (have {', '.join(self.profiles)})"
        )


def load(path: str | Path) -> SchedulerConfig:
    try:
        doc = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as e:
        raise ConfigError(f"{path}: {e}") from None
    return parse(doc)


def parse(doc: Any) -> SchedulerConfig:
    if doc is None:
        return SchedulerConfig()
    if not isinstance(doc, dict):
        raise ConfigError("the configuration must be a mapping")
    if doc.get("apiVersion", "") not in API_VERSIONS:
        raise ConfigError(f"unsupported apiVersion {doc['apiVersion']!r}")
    if doc.get("kind", "KubeSchedulerConfiguration") != "KubeSchedulerConfiguration":
        raise ConfigError(f"unsupported kind {doc['kind']!r}")
    pct = _percentage(doc.get("percentageOfNodesToScore"), "percentageOfNodesToScore", 0)
    profiles = doc.get("profiles") or [{}]
    if not isinstance(profiles, list):
        raise ConfigError("profiles must be a list")
    out: dict[str, Profile] = {}
    for i, p in enumerate(profiles):
        where = f"profiles[{i}]"
        if not isinstance(p, dict):
            raise ConfigError(f"{where} must be a mapping")
        name = p.get("schedulerName") or DEFAULT_SCHEDULER
        if name in out:
            raise ConfigError(f"{where}.schedulerName: duplicate {name!r}")
        out[name] = _profile(p, pct, where)
    return SchedulerConfig(out)


def _percentage(v: Any, where: str, default: int) -> int:
    if v is None:
        return default
    if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= 100:
        raise ConfigError(f"{where}: must be an integer from 0 to 100, got {v!r}")
    return v


def _known(name: str, where: str) -> None:
    if framework.REGISTRY and name not in framework.REGISTRY:
        raise ConfigError(f"{where}: unknown plugin {name!r}")


def _plugin_list(node: Any, where: str) -> tuple[list[tuple[str, int]], set[str]]:
    """(enabled (name, weight 0 = unset), disabled names) of one extension point."""
    if node is None:
        return [], set()
    if not isinstance(node, dict):
        raise ConfigError(f"{where} must be a mapping")
    enabled: list[tuple[str, int]] = []
    for j, e in enumerate(node.get("enabled") or []):
        if not isinstance(e, dict) or not isinstance(e.get("name"), str):
            raise ConfigError(f"{where}.enabled[{j}]: needs a name")
        _known(e["name"], f"{where}.enabled[{j}]")
        w = e.get("weight", 0) or 0
        if not isinstance(w, int) or w < 0:
            raise ConfigError(f"{where}.enabled[{j}].weight: must be a positive integer")
        enabled.append((e["name"], w))
    disabled: set[str] = set()
    for j, d in enumerate(node.get("disabled") or []):
        if not isinstance(d, dict) or not isinstance(d.get("name"), str):
            raise ConfigError(f"{where}.disabled[{j}]: needs a name")
        if d["name"] != "*":
            _known(d["name"], f"{where}.disabled[{j}]")
        disabled.add(d["name"])
    return enabled, disabled


def merge(
    defaults: tuple[tuple[str, int], ...], enabled: list[tuple[str, int]], disabled: set[str]
) -> tuple[tuple[str, int], ...]:
    """Kubernetes' merge of a default plugin set with a custom one."""
    custom = {name: (i, w) for i, (name, w) in enumerate(enabled)}
    out: list[tuple[str, int]] = []
    replaced: set[int] = set()
    if "*" not in disabled:
        for name, w in defaults:
            if name in disabled:
                continue
            if name in custom:
                i, cw = custom[name]
                replaced.add(i)
                w = cw or w
            out.append((name, w))
    out += [(name, w or 1) for i, (name, w) in enumerate(enabled) if i not in replaced]
    unique: dict[str, int] = {}
    for name, w in out:
        unique.setdefault(name, w)
    return tuple(unique.items())


def _has(name: str, method: str) -> bool:
    cls = framework.REGISTRY.get(name)
    return cls is None or hasattr(cls, method)


def _profile(p: dict[str, Any], pct_default: int, where: str) -> Profile:
    base = Profile()
    plugins = p.get("plugins") or {}
    if not isinstance(plugins, dict):
        raise ConfigError(f"{where}.plugins must be a mapping")
    mp_on, mp_off = _plugin_list(plugins.get("multiPoint"), f"{where}.plugins.multiPoint")
    f_on, f_off = _plugin_list(plugins.get("filter"), f"{where}.plugins.filter")
    s_on, s_off = _plugin_list(plugins.get("score"), f"{where}.plugins.score")
    f_on = [(n, 0) for n, _ in mp_on if _has(n, "filter")] + f_on
    s_on = [(n, w) for n, w in mp_on if _has(n, "score")] + s_on
    filters = merge(tuple((n, 0) for n in base.filters), f_on, f_off | mp_off)
    scores = merge(base.scores, s_on, s_off | mp_off)
    strategy = base.scoring_strategy
    for j, pc in enumerate(p.get("pluginConfig") or []):
        if not isinstance(pc, dict):
            raise ConfigError(f"{where}.pluginConfig[{j}] must be a mapping")
        if pc.get("name") != "NodeResourcesFit":
            continue
        args = pc.get("args") or {}
        s = (args.get("scoringStrategy") or {}).get("type")
        if s is not None:
            if s not in STRATEGIES:
                raise ConfigError(
                    f"{where}.pluginConfig[{j}].args.scoringStrategy.type: "
                    f"unsupported value {s!r}: supported values: {', '.join(STRATEGIES)}"
                )
            strategy = s
    return Profile(
        filters=tuple(n for n, _ in filters),
        scores=scores,
        scoring_strategy=strategy,
        percentage_of_nodes_to_score=_percentage(
            p.get("percentageOfNodesToScore"), f"{where}.percentageOfNodesToScore", pct_default
        ),
    )
