"""The node IPAM controller's block arithmetic."""

from __future__ import annotations

import pytest

from corral.controllers.nodeipam import CidrSet


def test_lowest_free_block() -> None:
    cidrs = CidrSet("10.89.0.0/16", 24)
    assert cidrs.lowest_free(set()) == "10.89.0.0/24"
    assert cidrs.lowest_free({"10.89.0.0/24", "10.89.2.0/24"}) == "10.89.1.0/24"


def test_exhausted_range_gives_none() -> None:
    cidrs = CidrSet("10.89.0.0/23", 24)
    assert cidrs.lowest_free({"10.89.0.0/24", "10.89.1.0/24"}) is None


def test_mask_smaller_than_the_cluster_is_refused() -> None:
    with pytest.raises(ValueError, match="larger than"):
        CidrSet("10.89.0.0/24", 16)
