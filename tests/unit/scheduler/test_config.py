"""The scheduler configuration file -> framework.Profile."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from corral.scheduler import config
from corral.scheduler.framework import Profile

DEFAULT = Profile()
DEFAULT_SCORES = dict(DEFAULT.scores)


def doc(**profile: Any) -> dict[str, Any]:
    return {
        "apiVersion": "kubescheduler.config.k8s.io/v1",
        "kind": "KubeSchedulerConfiguration",
        "profiles": [profile],
    }


@pytest.mark.parametrize(
    ("profile", "check"),
    [
        ({}, lambda p: p == DEFAULT),
        (
            {"plugins": {"filter": {"disabled": [{"name": "NodePorts"}]}}},
            lambda p: "NodePorts" not in p.filters and len(p.filters) == len(DEFAULT.filters) - 1,
        ),
        (
            {"plugins": {"score": {"enabled": [{"name": "NodeResourcesFit", "weight": 7}]}}},
            lambda p: (
                dict(p.scores)["NodeResourcesFit"] == 7
                and [n for n, _ in p.scores] == [n for n, _ in DEFAULT.scores]
            ),
        ),
        (
            {
                "plugins": {
                    "score": {
                        "disabled": [{"name": "*"}],
                        "enabled": [{"name": "NodeResourcesFit", "weight": 2}],
                    }
                }
            },
            lambda p: p.scores == (("NodeResourcesFit", 2),),
        ),
        (
            {"plugins": {"score": {"enabled": [{"name": "TaintToleration"}]}}},
            lambda p: dict(p.scores)["TaintToleration"] == DEFAULT_SCORES["TaintToleration"],
        ),
        (
            {
                "pluginConfig": [
                    {
                        "name": "NodeResourcesFit",
                        "args": {"scoringStrategy": {"type": "MostAllocated"}},
                    }
                ]
            },
            lambda p: p.scoring_strategy == "MostAllocated",
        ),
        ({"percentageOfNodesToScore": 30}, lambda p: p.percentage_of_nodes_to_score == 30),
        (
            {"plugins": {"multiPoint": {"disabled": [{"name": "TaintToleration"}]}}},
            lambda p: (
                "TaintToleration" not in p.filters and "TaintToleration" not in dict(p.scores)
            ),
        ),
    ],
    ids=[
        "empty-is-default",
        "filter-disabled",
        "weight-in-place",
        "star-then-enable",
        "weight-kept",
        "most-allocated",
        "percentage",
        "multipoint-disabled",
    ],
)
def test_profile(profile: dict[str, Any], check: Any) -> None:
    p = config.parse(doc(**profile)).profile("default-scheduler")
    assert check(p), p


def test_top_level_percentage_and_named_profiles() -> None:
    d = doc(schedulerName="a")
    d["profiles"].append({"schedulerName": "b", "percentageOfNodesToScore": 10})
    d["percentageOfNodesToScore"] = 40
    cfg = config.parse(d)
    assert cfg.profile("a").percentage_of_nodes_to_score == 40
    assert cfg.profile("b").percentage_of_nodes_to_score == 10
    with pytest.raises(config.ConfigError, match="no profile"):
        cfg.profile("c")


@pytest.mark.parametrize(
    ("d", "match"),
    [
        ({"apiVersion": "v9"}, "apiVersion"),
        ({"kind": "Pod"}, "kind"),
        (doc(percentageOfNodesToScore=101), "percentageOfNodesToScore"),
        (
            doc(
                pluginConfig=[
                    {"name": "NodeResourcesFit", "args": {"scoringStrategy": {"type": "X"}}}
                ]
            ),
            "scoringStrategy.type",
        ),
        (doc(plugins={"score": {"enabled": [{"weight": 1}]}}), "needs a name"),
        ({"profiles": [{}, {}]}, "duplicate"),
    ],
    ids=["api-version", "kind", "percentage", "strategy", "no-name", "duplicate-profile"],
)
def test_errors(d: dict[str, Any], match: str) -> None:
    with pytest.raises(config.ConfigError, match=match):
        config.parse(d)


def test_unknown_plugin_is_an_error_once_plugins_registered() -> None:
    from corral.scheduler import framework

    if not framework.REGISTRY:
        pytest.skip("no plugins registered yet")
    with pytest.raises(config.ConfigError, match="unknown plugin"):
        config.parse(doc(plugins={"filter": {"enabled": [{"name": "NoSuchPlugin"}]}}))


def test_load_file(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text(yaml.safe_dump(doc(percentageOfNodesToScore=5)))
    assert config.load(f).profile("default-scheduler").percentage_of_nodes_to_score == 5
    with pytest.raises(config.ConfigError):
        config.load(tmp_path / "missing.yaml")
