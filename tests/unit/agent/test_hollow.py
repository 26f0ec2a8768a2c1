"""The hollow runtime's pure parts: durations, exit plans, status documents, IPs, Node and
Lease objects (corral.agent.hollow and corral.agent.node). No event loop, no server."""

from __future__ import annotations

import re
from itertools import pairwise
from typing import Any

import pytest

from corral.agent.hollow import (
    EXIT_AFTER,
    EXIT_CODE,
    IPPool,
    adoptable,
    build_parser,
    exit_plan,
    exited_status,
    host_ip,
    image_id,
    lease_workers,
    main,
    node_block,
    node_names,
    parse_duration,
    pod_ip,
    restarts_after_exit,
    running_status,
    slim,
)
from corral.agent.node import (
    DEFAULT_CAPACITY,
    NodeSpec,
    lease_object,
    node_object,
    parse_labels,
    renewal_due,
)
from corral.util.clock import parse_rfc3339

Obj = dict[str, Any]
T0 = 1_800_000_000.0  # 2027-01-15T08:00:00Z


def pod(**spec: Any) -> Obj:
    annotations = spec.pop("annotations", None)
    meta: Obj = {"name": "p", "namespace": "ns", "uid": "u-1"}
    if annotations is not None:
        meta["annotations"] = annotations
    return {
        "metadata": meta,
        "spec": {"nodeName": "n", "containers": [{"name": "c", "image": "busybox:1.36"}], **spec},
        "status": {
            "phase": "Pending",
            "conditions": [
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": "2020-01-01T00:00:00Z"}
            ],
        },
    }  # fmt: skip


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("5s", 5.0), ("0", 0.0), ("250ms", 0.25), ("1m30s", 90.0), ("1.5h", 5400.0), ("2us", 2e-6)],
    ids=["seconds", "zero", "millis", "compound", "fraction", "micros"],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "5", "s", "5x", "5s3", "-1s"], ids=lambda t: repr(t))
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize(
    ("annotations", "plan"),
    [
        (None, None),
        ({EXIT_AFTER: "5s"}, (5.0, 0)),
        ({EXIT_AFTER: "100ms", EXIT_CODE: "3"}, (0.1, 3)),
        ({EXIT_AFTER: "soon"}, None),
        ({EXIT_AFTER: "1s", EXIT_CODE: "x"}, None),
        ({EXIT_CODE: "1"}, None),
    ],
    ids=["none", "after", "after-and-code", "bad-duration", "bad-code", "code-only"],
)
def test_exit_plan(annotations: dict[str, str] | None, plan: tuple[float, int] | None) -> None:
    assert exit_plan(pod(annotations=annotations)) == plan


@pytest.mark.parametrize(
    ("policy", "code", "restarts"),
    [
        ("Never", 0, False),
        ("Never", 1, False),
        ("OnFailure", 0, False),
        ("OnFailure", 2, True),
        ("Always", 0, True),
        ("Always", 1, True),
    ],
    ids=["never-ok", "never-fail", "onfailure-ok", "onfailure-fail", "always-ok", "always-fail"],
)
def test_restarts_after_exit(policy: str, code: int, restarts: bool) -> None:
    assert restarts_after_exit(policy, code) is restarts


@pytest.mark.parametrize(
    ("image", "repo"),
    [
        ("busybox", "busybox"),
        ("busybox:1.36", "busybox"),
        ("registry:5000/team/app:v1", "registry:5000/team/app"),
        ("nginx@sha256:abc", "nginx"),
    ],
    ids=["bare", "tag", "registry-port", "digest"],
)
def test_image_id(image: str, repo: str) -> None:
    got = image_id(image)
    assert re.fullmatch(re.escape(repo) + r"@sha256:[0-9a-f]{64}", got)


def test_running_status_has_what_kubectl_shows() -> None:
    p = pod(initContainers=[{"name": "init", "image": "busybox"}])
    s = running_status(p, "127.0.0.1", "10.128.0.2", T0, T0 + 1)
    assert s["phase"] == "Running"
    assert (s["hostIP"], s["podIP"]) == ("127.0.0.1", "10.128.0.2")
    assert s["podIPs"] == [{"ip": "10.128.0.2"}]
    assert s["startTime"] == "2027-01-15T08:00:00Z"
    conds = {c["type"]: c for c in s["conditions"]}
    assert set(conds) == {
        "PodReadyToStartContainers",
        "Initialized",
        "Ready",
        "ContainersReady",
        "PodScheduled",
    }
    assert all(c["status"] == "True" for c in conds.values())
    assert conds["PodScheduled"]["lastTransitionTime"] == "2020-01-01T00:00:00Z"
    assert conds["Ready"]["lastTransitionTime"] == "2027-01-15T08:00:01Z"
    (c,) = s["containerStatuses"]
    assert c["name"] == "c" and c["image"] == "busybox:1.36"
    assert c["ready"] is True and c["started"] is True and c["restartCount"] == 0
    assert c["containerID"].startswith("hollow://")
    assert c["state"] == {"running": {"startedAt": "2027-01-15T08:00:00Z"}}
    assert c["lastState"] == {}
    (i,) = s["initContainerStatuses"]
    assert i["state"]["terminated"]["reason"] == "Completed"
    assert i["state"]["terminated"]["exitCode"] == 0


def test_running_status_after_restart_keeps_start_time_and_last_state() -> None:
    p = pod()
    s = running_status(
        p, "h", "ip", T0 + 10, T0 + 10, restarts=2, last_exit=(1, T0 + 5, T0 + 10), pod_started=T0
    )
    (c,) = s["containerStatuses"]
    assert c["restartCount"] == 2
    assert s["startTime"] == "2027-01-15T08:00:00Z"
    last = c["lastState"]["terminated"]
    assert (last["exitCode"], last["reason"]) == (1, "Error")
    assert last["startedAt"] == "2027-01-15T08:00:05Z"
    assert last["containerID"] != c["containerID"]


@pytest.mark.parametrize(
    ("code", "phase", "reason"),
    [(0, "Succeeded", "Completed"), (3, "Failed", "Error")],
    ids=["success", "failure"],
)
def test_exited_status(code: int, phase: str, reason: str) -> None:
    s = exited_status(pod(), code, T0, T0 + 5)
    assert s["phase"] == phase
    (c,) = s["containerStatuses"]
    term = c["state"]["terminated"]
    assert (term["exitCode"], term["reason"]) == (code, reason)
    assert term["finishedAt"] == "2027-01-15T08:00:05Z"
    assert c["ready"] is False
    conds = {c["type"]: c for c in s["conditions"]}
    assert (conds["Ready"]["status"], conds["Ready"]["reason"]) == ("False", "PodCompleted")


@pytest.mark.parametrize(
    ("status", "ok"),
    [
        ({"phase": "Pending"}, False),
        (
            {
                "phase": "Running",
                "podIP": "10.128.0.2",
                "containerStatuses": [{"containerID": "hollow://ab"}],
            },
            True,
        ),
        (
            {
                "phase": "Running",
                "podIP": "10.1.0.2",
                "containerStatuses": [{"containerID": "containerd://ab"}],
            },
            False,
        ),
        ({"phase": "Running", "containerStatuses": [{"containerID": "hollow://ab"}]}, False),
    ],
    ids=["pending", "hollow-running", "other-runtime", "no-ip"],
)
def test_adoptable(status: Obj, ok: bool) -> None:
    assert adoptable({"status": status}) is ok


def test_ip_pool_reuses_released_addresses() -> None:
    pool = IPPool(node_block(3, 255))
    a, b = pool.take(), pool.take()
    assert (a, b) == ("10.129.2.2", "10.129.2.3")
    pool.release(a)
    assert pool.take() == a
    pool.claim("10.129.2.9")
    assert "10.129.2.9" not in {pool.take() for _ in range(5)}


def test_blocks_wrap_and_stay_in_range() -> None:
    assert node_block(5, (1 << 15) - 1) == 4
    assert host_ip(0x1234) == "127.18.52.1"
    assert pod_ip(0x7FFF, 254) == "10.255.255.254"


@pytest.mark.parametrize(
    ("count", "names"),
    [(None, ["n"]), (1, ["n-0"]), (3, ["n-0", "n-1", "n-2"])],
    ids=["single", "count-1", "count-3"],
)
def test_node_names(count: int | None, names: list[str]) -> None:
    assert node_names("n", count) == names


def test_parser_flags() -> None:
    args = build_parser().parse_args(
        [
            "--server",
            "https://x:1",
            "--kubeconfig",
            "k",
            "--name",
            "n",
            "--runtime",
            "hollow",
            "--count",
            "5",
            "--data-dir",
            "d",
            "--labels",
            "a=b,c=",
        ]
    )
    assert (args.server, args.kubeconfig, args.name, args.count) == ("https://x:1", "k", "n", 5)
    assert (args.runtime, args.data_dir, args.labels) == ("hollow", "d", "a=b,c=")


@pytest.mark.parametrize(
    ("text", "labels"),
    [("", {}), ("a=b", {"a": "b"}), ("a=b, c=d", {"a": "b", "c": "d"}), ("x", {"x": ""})],
    ids=["empty", "one", "two", "bare-key"],
)
def test_parse_labels(text: str, labels: dict[str, str]) -> None:
    assert parse_labels(text) == labels


def test_parse_labels_rejects_empty_key() -> None:
    with pytest.raises(ValueError):
        parse_labels("=v")


def test_node_object() -> None:
    n = node_object(NodeSpec("n1", "127.0.0.1", {"zone": "a"}), T0)
    labels = n["metadata"]["labels"]
    assert labels["kubernetes.io/hostname"] == "n1"
    assert (labels["kubernetes.io/os"], labels["kubernetes.io/arch"]) == ("linux", "amd64")
    assert labels["zone"] == "a"
    st = n["status"]
    assert st["capacity"] == DEFAULT_CAPACITY == st["allocatable"]
    assert st["addresses"] == [
        {"type": "InternalIP", "address": "127.0.0.1"},
        {"type": "Hostname", "address": "n1"},
    ]
    conds = {c["type"]: (c["status"], c["reason"]) for c in st["conditions"]}
    assert conds == {
        "MemoryPressure": ("False", "KubeletHasSufficientMemory"),
        "DiskPressure": ("False", "KubeletHasNoDiskPressure"),
        "PIDPressure": ("False", "KubeletHasSufficientPID"),
        "Ready": ("True", "KubeletReady"),
    }
    info = st["nodeInfo"]
    assert (info["kubeletVersion"], info["containerRuntimeVersion"]) == ("v1.32.0", "hollow://1.0")


def test_lease_object() -> None:
    lease = lease_object("n1", T0 + 0.25, node_uid="uid-9")
    assert lease["metadata"]["namespace"] == "kube-node-lease"
    assert lease["metadata"]["ownerReferences"][0]["uid"] == "uid-9"
    spec = lease["spec"]
    assert (spec["holderIdentity"], spec["leaseDurationSeconds"]) == ("n1", 40)
    assert spec["renewTime"] == "2027-01-15T08:00:00.250000Z"
    assert parse_rfc3339(spec["renewTime"]) == pytest.approx(T0 + 0.25)


@pytest.mark.parametrize("u", [0.0, 0.5, 0.999])
def test_renewals_are_spread_over_the_interval(u: float) -> None:
    # 5,000 nodes every 10 s: one renewal per 2 ms, each node once per interval
    n, interval = 5000, 10.0
    dues = [renewal_due(j, n, interval, u) for j in range(3 * n)]
    assert dues == sorted(dues)  # the slots stay in order, whatever the jitter
    per_second = [0] * 31
    for d in dues:
        per_second[int(d)] += 1
    assert all(c == 500 for c in per_second[1:29])  # a steady stream, no burst
    for i in (0, 1, 2500, n - 1):
        mine = dues[i::n]
        assert 0 < mine[0] <= interval + 0.002  # the first after the first round
        assert all(b - a == pytest.approx(interval) for a, b in pairwise(mine))


def test_one_node_renews_every_interval_within_the_kubelets_jitter() -> None:
    # as the kubelet's JitterUntil(renewInterval, 0.04): up to 4% late
    assert renewal_due(0, 1, 10.0, 0.0) == 10.0
    assert renewal_due(0, 1, 10.0, 0.5) == pytest.approx(10.2)
    assert renewal_due(3, 1, 10.0, 0.999) == pytest.approx(40.0 + 0.3996)


def test_slim_keeps_what_the_agent_reads() -> None:
    full = pod(annotations={EXIT_AFTER: "1s"}, restartPolicy="Never", volumes=[{"name": "v"}])
    full["metadata"].update(
        labels={"a": "b"}, managedFields=[{"manager": "kubectl"}], deletionTimestamp="x"
    )
    full["spec"]["containers"][0]["env"] = [{"name": "E", "value": "1"}]
    got = slim(full)
    assert got["metadata"] == {
        "name": "p",
        "namespace": "ns",
        "uid": "u-1",
        "annotations": {EXIT_AFTER: "1s"},
        "deletionTimestamp": "x",
    }
    assert got["spec"] == {
        "nodeName": "n",
        "restartPolicy": "Never",
        "containers": [{"name": "c", "image": "busybox:1.36"}],
    }
    assert got["status"] is full["status"]


def test_main_refuses_other_runtimes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["--kubeconfig", "k", "--name", "n", "--runtime", "oci"])
    assert e.value.code == 2
    assert "only the hollow runtime" in capsys.readouterr().err


def test_lease_workers_keep_the_renewal_rate_at_a_quarter_second_each() -> None:
    # 5,000 nodes every 10 s: 500 renewals/s, each may take 250 ms
    assert lease_workers(5000, 10.0) == 125
    assert lease_workers(50_000, 10.0) == 1250
    assert lease_workers(100, 10.0) == 32  # a small agent keeps its floor
    assert lease_workers(100, 10.0, floor=4) == 4
