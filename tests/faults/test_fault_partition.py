"""Node loss and partition (``corral.testing.faults.partition``), short form: one
one-way drop of a test host (3 s node-monitor grace, 4 s node Leases, 1 s tolerations;
the long form alternates link-down cuts and one-way drops): Deployment pods replaced, no
StatefulSet pod, Job index or non-partition-aware Mesos task running twice, no stale
container left on return. Root only (network namespaces, runc, iptables in the hosts'
namespaces)."""

from __future__ import annotations

from pathlib import Path

import pytest

from corral.testing.faults import partition


# pymesos 0.3.15 drops sockets without closing them (its call connection after errors,
# its stream connection on failover): their ResourceWarning is not ours to fail on
@pytest.mark.timeout(240)
@pytest.mark.filterwarnings("ignore::ResourceWarning")
def test_partition_replaces_pods_and_runs_nothing_twice(tmp_path: Path) -> None:
    if reason := partition.skip_reason():
        pytest.skip(reason)
    res = partition.run(tmp_path, long=False)
    assert res["violations"] == [], "\n".join(map(str, res["violations"]))  # type: ignore[call-overload]
    assert res["ran_twice"] == 0, f"a StatefulSet pod or a Job index ran twice: {res}"
    assert res["stale_pods_left"] == 0, f"containers of deleted pods left on a returned host: {res}"
    assert res["cuts"] == 1, f"not every cut had lost pods to replace: {res}"
