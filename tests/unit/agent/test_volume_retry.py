"""The agent's retry of a pod's volume set-up follows the kubelet's volume manager
(``goroutinemap/exponentialbackoff``): 0.5 s after the first failure, doubling, at most
2 min 2 s; not the crash-loop back-off of containers (10 s, 20 s, ...), which kept a pod
whose ConfigMap appeared a moment later waiting 10-20 s more."""

from __future__ import annotations

from corral.agent.pods import volume_retry_after


def test_volume_retries_start_at_half_a_second_and_double_up_to_122_s() -> None:
    waits, last = [], 0.0
    for _ in range(12):
        last = volume_retry_after(last)
        waits.append(last)
    assert waits == [0.5, 1, 2, 4, 8, 16, 32, 64, 122, 122, 122, 122]
