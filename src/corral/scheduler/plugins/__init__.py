"""The built-in scheduler plugins; importing this package registers them all in
``framework.REGISTRY`` (``scheduler.decide`` imports it)."""

from corral.scheduler.plugins import (
    interpodaffinity,
    nodeaffinity,
    nodename,
    nodeports,
    noderesources,
    nodeunschedulable,
    podtopologyspread,
    tainttoleration,
    volumebinding,
)

__all__ = [
    "interpodaffinity",
    "nodeaffinity",
    "nodename",
    "nodeports",
    "noderesources",
    "nodeunschedulable",
    "podtopologyspread",
    "tainttoleration",
    "volumebinding",
]
