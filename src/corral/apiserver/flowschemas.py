"""The default FlowSchemas and PriorityLevelConfigurations of API Priority and Fairness.

Upstream's bootstrap configuration (k8s.io/apiserver/pkg/apis/flowcontrol/bootstrap),
as data: ``flowcontrol.py`` classifies requests with ``matches`` over ``FLOW_SCHEMAS``
(sorted by matchingPrecedence, then name) and sizes each level's seats from its
nominal concurrency shares. Corral serves no FlowSchema objects; these are fixed.
"""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass

from corral.apiserver.identity import SA_PREFIX, UserInfo
from corral.apiserver.request_info import RequestInfo

ALL = "*"
NODES = "system:nodes"
MASTERS = "system:masters"
KCM = "system:kube-controller-manager"
SCHEDULER = "system:kube-scheduler"
AUTHENTICATED = "system:authenticated"
UNAUTHENTICATED = "system:unauthenticated"
SERVICE_ACCOUNTS = "system:serviceaccounts"


@functools.cache
def _uid(kind: str, name: str) -> str:
    """A stable uid per object (what the PF headers carry)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"corral/flowcontrol/{kind}/{name}"))


@dataclass(frozen=True)
class PriorityLevel:
    """A PriorityLevelConfiguration: exempt, or limited with shares and queuing (no
    queues: LimitResponse Reject)."""

    name: str
    shares: int = 0
    queues: int = 0
    hand_size: int = 0
    queue_length_limit: int = 0
    exempt: bool = False

    @property
    def uid(self) -> str:
        return _uid("prioritylevelconfigurations", self.name)


@dataclass(frozen=True)
class ResourceRule:
    verbs: tuple[str, ...]
    groups: tuple[str, ...]
    resources: tuple[str, ...]
    namespaces: tuple[str, ...]
    cluster_scope: bool


@dataclass(frozen=True)
class NonResourceRule:
    verbs: tuple[str, ...]
    urls: tuple[str, ...]


@dataclass(frozen=True)
class FlowSchema:
    """A FlowSchema with one PolicyRulesWithSubjects (all the defaults need)."""

    name: str
    level: str
    precedence: int
    distinguisher: str  # "ByUser", "ByNamespace" or ""
    users: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    #: (namespace, name) of ServiceAccount subjects; name "*": any in the namespace
    service_accounts: tuple[tuple[str, str], ...] = ()
    resource_rules: tuple[ResourceRule, ...] = ()
    nonresource_rules: tuple[NonResourceRule, ...] = ()

    @property
    def uid(self) -> str:
        return _uid("flowschemas", self.name)


PRIORITY_LEVELS = (
    PriorityLevel("exempt", exempt=True),
    PriorityLevel("system", 30, 64, 6, 50),
    PriorityLevel("node-high", 40, 64, 6, 50),
    PriorityLevel("leader-election", 10, 16, 4, 50),
    PriorityLevel("workload-high", 40, 128, 6, 50),
    PriorityLevel("workload-low", 100, 128, 6, 50),
    PriorityLevel("global-default", 20, 128, 6, 50),
    PriorityLevel("catch-all", 5),
)

_EVERYTHING = (ResourceRule((ALL,), (ALL,), (ALL,), (ALL,), True),)
_ALL_URLS = (NonResourceRule((ALL,), (ALL,)),)
_GET_CREATE_UPDATE = ("get", "create", "update")
_KUBE_SYSTEM_SAS = (("kube-system", ALL),)


def _all(name: str, level: str, precedence: int, dm: str, **subjects: object) -> FlowSchema:
    return FlowSchema(
        name, level, precedence, dm, resource_rules=_EVERYTHING, nonresource_rules=_ALL_URLS,
        **subjects,  # type: ignore[arg-type]
    )  # fmt: skip


FLOW_SCHEMAS = tuple(
    sorted(
        (
            _all("exempt", "exempt", 1, "", groups=(MASTERS,)),
            FlowSchema(
                "probes",
                "exempt",
                2,
                "",
                groups=(UNAUTHENTICATED, AUTHENTICATED),
                nonresource_rules=(NonResourceRule(("get",), ("/healthz", "/readyz", "/livez")),),
            ),
            FlowSchema(
                "system-leader-election",
                "leader-election",
                100,
                "ByUser",
                users=(KCM, SCHEDULER),
                service_accounts=_KUBE_SYSTEM_SAS,
                resource_rules=(
                    ResourceRule(
                        _GET_CREATE_UPDATE, ("coordination.k8s.io",), ("leases",), (ALL,), False
                    ),
                ),
            ),
            FlowSchema(
                "endpoint-controller",
                "workload-high",
                150,
                "ByUser",
                users=(KCM,),
                service_accounts=(
                    ("kube-system", "endpoint-controller"),
                    ("kube-system", "endpointslicemirroring-controller"),
                ),
                resource_rules=(
                    ResourceRule(_GET_CREATE_UPDATE, ("",), ("endpoints",), (ALL,), False),
                ),
            ),
            FlowSchema(
                "workload-leader-election",
                "leader-election",
                200,
                "ByUser",
                service_accounts=_KUBE_SYSTEM_SAS,
                resource_rules=(
                    ResourceRule(
                        _GET_CREATE_UPDATE, ("",), ("endpoints", "configmaps"), (ALL,), False
                    ),
                    ResourceRule(
                        _GET_CREATE_UPDATE, ("coordination.k8s.io",), ("leases",), (ALL,), False
                    ),
                ),
            ),
            FlowSchema(
                "system-node-high",
                "node-high",
                400,
                "ByUser",
                groups=(NODES,),
                resource_rules=(
                    ResourceRule((ALL,), ("",), ("nodes", "nodes/status"), (ALL,), True),
                    ResourceRule((ALL,), ("coordination.k8s.io",), ("leases",), (ALL,), False),
                ),
            ),
            _all("system-nodes", "system", 500, "ByUser", groups=(NODES,)),
            _all("kube-controller-manager", "workload-high", 800, "ByNamespace", users=(KCM,)),
            _all("kube-scheduler", "workload-high", 800, "ByNamespace", users=(SCHEDULER,)),
            _all(
                "kube-system-service-accounts",
                "workload-high",
                900,
                "ByNamespace",
                service_accounts=_KUBE_SYSTEM_SAS,
            ),
            _all("service-accounts", "workload-low", 9000, "ByUser", groups=(SERVICE_ACCOUNTS,)),
            _all(
                "global-default",
                "global-default",
                9900,
                "ByUser",
                groups=(UNAUTHENTICATED, AUTHENTICATED),
            ),
            _all(
                "catch-all", "catch-all", 10000, "ByUser", groups=(UNAUTHENTICATED, AUTHENTICATED)
            ),
        ),
        key=lambda fs: (fs.precedence, fs.name),
    )
)


def _subject_matches(fs: FlowSchema, user: UserInfo) -> bool:
    if any(u in (ALL, user.username) for u in fs.users):
        return True
    if any(g == ALL or g in user.groups for g in fs.groups):
        return True
    if fs.service_accounts and user.username.startswith(SA_PREFIX):
        ns, _, name = user.username[len(SA_PREFIX) :].partition(":")
        return any(n == ns and m in (ALL, name) for n, m in fs.service_accounts)
    return False


def _has(values: tuple[str, ...], value: str) -> bool:
    return ALL in values or value in values


def _rule_matches(fs: FlowSchema, info: RequestInfo) -> bool:
    if not info.resource_request:
        return any(
            _has(r.verbs, info.verb)
            and any(
                u in (ALL, info.path) or (u.endswith("/*") and info.path.startswith(u[:-1]))
                for u in r.urls
            )
            for r in fs.nonresource_rules
        )
    resource = f"{info.resource}/{info.subresource}" if info.subresource else info.resource
    for r in fs.resource_rules:
        if not (_has(r.verbs, info.verb) and _has(r.groups, info.api_group)):
            continue
        if not _has(r.resources, resource):
            continue
        if info.namespace:
            if _has(r.namespaces, info.namespace):
                return True
        elif r.cluster_scope:
            return True
    return False


def matches(fs: FlowSchema, user: UserInfo, info: RequestInfo) -> bool:
    """Whether ``fs`` takes the request ``info`` of ``user`` (subjects and rules)."""
    return _subject_matches(fs, user) and _rule_matches(fs, info)
