"""Component client certificates (``apiserver/client_certs.py``, ``util/pki.issue_client``)
and the ``corral:*`` policy (``apiserver/component_identities.py``)."""

from __future__ import annotations

import datetime as dt
import ssl
from pathlib import Path

import pytest
import yaml

from corral.api import rbac
from corral.api.rbac import RBAC_GROUP
from corral.apiserver import client_certs, component_identities, rbac_bootstrap
from corral.apiserver.certs import ensure_pki
from corral.apiserver.component_identities import (
    CHRONOS,
    FRONT_PROXY_CLIENT,
    HOLLOW_NODES,
    MARATHON,
    METRICS_SERVER,
    RETIRED_RULES,
    SCHEDULER,
    Identity,
    cluster_role_bindings,
    cluster_roles,
    node_identity,
    role_bindings,
    roles,
    without_retired,
)
from corral.apiserver.node_authz import NodeAuthorizer, NodeGraph
from corral.apiserver.store import Registry, WriteOptions
from corral.client.rest import KubeConfig
from corral.util.pki import load_pair, subject_of


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    ensure_pki(tmp_path, [])
    return tmp_path


def test_issued_pair_names_the_user_and_groups_and_is_for_client_auth(data_dir: Path) -> None:
    from cryptography import x509
    from cryptography.x509.oid import ExtendedKeyUsageOID

    ident = node_identity("n1")
    client_certs.ensure_identity(data_dir, ident)
    pair = load_pair(*client_certs.pair_paths(data_dir, ident))
    assert pair is not None
    cert = pair[0]
    assert subject_of(cert) == ("system:node:n1", ("system:nodes",))
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert (cert.not_valid_after_utc - cert.not_valid_before_utc).days >= 365
    assert client_certs.pair_paths(data_dir, ident)[1].stat().st_mode & 0o777 == 0o600


def test_reissued_only_when_due_or_changed(data_dir: Path) -> None:
    crt, _ = client_certs.pair_paths(data_dir, SCHEDULER)
    now = dt.datetime.now(dt.UTC)
    client_certs.ensure_identity(data_dir, SCHEDULER, now=now)
    first = crt.read_bytes()
    client_certs.ensure_identity(data_dir, SCHEDULER, now=now + dt.timedelta(days=200))
    assert crt.read_bytes() == first  # 4/5 of its year not yet over
    client_certs.ensure_identity(data_dir, SCHEDULER, now=now + dt.timedelta(days=300))
    renewed = crt.read_bytes()
    assert renewed != first  # within the last fifth: renewed
    moved = Identity(SCHEDULER.name, "someone-else")
    client_certs.ensure_identity(data_dir, moved, now=now + dt.timedelta(days=300))
    assert crt.read_bytes() != renewed  # the subject changed


def test_in_child_trusts_the_record_until_the_files_change(data_dir: Path) -> None:
    client_certs.ensure_identities_in_child(data_dir, [HOLLOW_NODES])
    now = dt.datetime.now(dt.UTC)
    assert client_certs._still_checked(data_dir, HOLLOW_NODES, now)
    client_certs.pair_paths(data_dir, HOLLOW_NODES)[0].write_bytes(b"garbage")
    assert not client_certs._still_checked(data_dir, HOLLOW_NODES, now)


def test_kubeconfig_carries_the_pair_and_the_rest_client_loads_it(data_dir: Path) -> None:
    client_certs.ensure_identity(data_dir, SCHEDULER)
    path = client_certs.write_component_kubeconfig(data_dir, SCHEDULER, "https://127.0.0.1:1")
    assert path.stat().st_mode & 0o777 == 0o600
    cfg = yaml.safe_load(path.read_text())
    assert set(cfg["users"][0]["user"]) == {"client-certificate-data", "client-key-data"}
    kc = KubeConfig.load(path)
    assert kc.token == "" and kc.headers == {}
    assert kc.cert_pem == client_certs.pair_paths(data_dir, SCHEDULER)[0].read_bytes()
    assert isinstance(kc.ssl_context(), ssl.SSLContext)  # the pair loads


@pytest.mark.parametrize(
    ("argv", "user"),
    [
        (["--name", "n1", "--runtime", "process"], "system:node:n1"),
        (["--name=n2"], "system:node:n2"),
        (["--name", "hollow", "--runtime", "hollow", "--count", "3"], "corral:hollow-nodes"),
    ],
    ids=["name", "name-equals", "hollow-count"],
)
def test_agent_identity(argv: list[str], user: str) -> None:
    assert client_certs.agent_identity(argv).user == user


def test_corral_policy_binds_only_corral_names() -> None:
    names = [b["metadata"]["name"] for b in cluster_role_bindings()]
    assert all(n.startswith("corral:") for n in names)
    assert all(r["metadata"]["name"].startswith("corral:") for r in cluster_roles())
    mesos = next(
        b for b in cluster_role_bindings() if b["metadata"]["name"] == "corral:mesos-master"
    )
    assert {s["name"] for s in mesos["subjects"]} == {
        "system:kube-scheduler",
        "corral:mesos-master",
    }
    hollow = next(
        b for b in cluster_role_bindings() if b["metadata"]["name"] == "corral:hollow-nodes"
    )
    assert hollow["roleRef"]["name"] == "corral:hollow-nodes"


@pytest.mark.parametrize(
    ("verb", "resource", "subresource", "allowed"),
    [
        ("create", "nodes", "", True),
        ("patch", "nodes", "status", True),
        ("watch", "pods", "", True),
        ("patch", "pods", "status", True),
        ("delete", "pods", "", True),
        ("list", "secrets", "", False),  # system:node's, for the Node authorizer to narrow
        ("get", "secrets", "", False),
        ("create", "pods", "", False),  # NodeRestriction does not know this user
        ("create", "serviceaccounts", "token", False),
    ],
    ids=str,
)
def test_the_hollow_nodes_hold_only_what_they_call(
    verb: str, resource: str, subresource: str, allowed: bool
) -> None:
    attrs = rbac.Attributes(
        HOLLOW_NODES.user,
        (*HOLLOW_NODES.groups, "system:authenticated"),
        verb,
        "",
        resource,
        subresource,
        name="x",
        namespace="kube-system" if resource != "nodes" else "",
    )
    assert _node_chain_allows(attrs) is allowed


def _node_chain_allows(attrs: rbac.Attributes) -> bool:
    """The Node authorizer, then RBAC over the bootstrap and ``corral:*`` policy."""
    objects = [
        {**o, "kind": "ClusterRole"} for o in [*rbac_bootstrap.cluster_roles(), *cluster_roles()]
    ]
    objects += [
        {**o, "kind": "ClusterRoleBinding"}
        for o in [*rbac_bootstrap.cluster_role_bindings(), *cluster_role_bindings()]
    ]
    objects += [{**o, "kind": "Role"} for o in roles()]
    objects += [{**o, "kind": "RoleBinding"} for o in role_bindings()]
    if NodeAuthorizer(graph=NodeGraph()).authorize(attrs).allowed:
        return True
    return rbac.authorize(attrs, rbac.StaticPolicy(objects)).allowed


@pytest.mark.parametrize(
    ("verb", "group", "resource", "name", "allowed"),
    [
        ("list", "", "nodes", "", True),  # host-gw routes (agent/routes.py)
        ("watch", "", "services", "", True),  # proxy and DNS
        ("list", "discovery.k8s.io", "endpointslices", "", True),
        ("watch", "", "persistentvolumes", "", True),  # local-path volumes of its node
        ("get", "", "persistentvolumes", "pv1", True),
        ("patch", "", "persistentvolumes", "pv1", True),  # drop the cleanup finalizer
        ("create", "", "persistentvolumes", "", False),
        ("delete", "", "persistentvolumes", "pv1", False),
        ("list", "", "secrets", "", False),
        ("patch", "", "services", "s", False),
        ("create", "discovery.k8s.io", "endpointslices", "", False),
    ],
    ids=lambda v: str(v),
)
def test_what_an_agent_may_do_beyond_the_node_authorizer(
    verb: str, group: str, resource: str, name: str, allowed: bool
) -> None:
    """An agent runs kube-proxy's, cluster DNS' and local-path's node half: upstream's
    ``system:node-proxier`` and ``corral:node-volumes`` for ``system:nodes``, nothing more."""
    ident = node_identity("n1")
    attrs = rbac.Attributes(
        ident.user, (*ident.groups, "system:authenticated"), verb, group, resource, name=name
    )
    assert _node_chain_allows(attrs) is allowed


@pytest.mark.parametrize(
    ("verb", "subresource", "allowed"),
    [
        ("create", "mesos", True),
        ("get", "mesos", False),
        ("create", "proxy", False),  # exec, attach, portForward, run in any pod
        ("get", "proxy", False),
    ],
    ids=str,
)
def test_the_mesos_master_may_post_to_an_agent_and_no_more(
    verb: str, subresource: str, allowed: bool
) -> None:
    """The master (the scheduler's identity) relays framework messages to an executor's
    agent, ``POST /mesos/executor-message``: ``create`` on ``nodes/mesos``, which the
    agent asks for that path alone; ``nodes/proxy`` (exec and the rest) is not granted."""
    attrs = rbac.Attributes(
        SCHEDULER.user, ("system:authenticated",), verb, "", "nodes", subresource, name="n1"
    )
    assert _node_chain_allows(attrs) is allowed


_MASTER = (SCHEDULER.user, ())


@pytest.mark.parametrize(
    ("who", "verb", "group", "resource", "namespace", "name", "allowed"),
    [
        (_MASTER, "create", "", "pods", "mesos", "", True),
        (_MASTER, "create", "", "pods/binding", "mesos", "p", True),
        (_MASTER, "update", "", "configmaps", "mesos", "policy", True),
        (_MASTER, "delete", "", "events", "mesos", "e", True),
        (_MASTER, "update", "", "configmaps", "kube-system", "extension-apiserver-"
         "authentication", False),
        (_MASTER, "create", "", "pods", "default", "", False),  # (upstream: delete, preemption)
        (_MASTER, "create", "", "namespaces", "", "", True),
        (_MASTER, "create", "mesos.corral.dev", "frameworks", "", "", True),
        ((MARATHON.user, ()), "update", "", "configmaps", "marathon", "v", True),
        ((MARATHON.user, ()), "create", "marathon.corral.dev", "apps", "marathon", "", True),
        ((MARATHON.user, ()), "list", "", "pods", "mesos", "", True),
        ((MARATHON.user, ()), "update", "", "configmaps", "default", "kube-root-ca.crt",
         False),
        ((MARATHON.user, ()), "list", "", "pods", "default", "", False),
        ((CHRONOS.user, ()), "update", "", "configmaps", "chronos", "fw", True),
        ((CHRONOS.user, ()), "create", "chronos.corral.dev", "chronosjobs", "chronos", "",
         True),
        ((CHRONOS.user, ()), "update", "", "configmaps", "kube-system", "x", False),
        ((CHRONOS.user, ()), "create", "chronos.corral.dev", "chronosjobs", "default", "",
         False),
        ((METRICS_SERVER.user, ()), "create", "", "services", "kube-system", "", True),
        ((METRICS_SERVER.user, ()), "update", "", "endpoints", "kube-system",
         "metrics-server", True),
        ((METRICS_SERVER.user, ()), "update", "", "endpoints", "kube-system", "kube-dns",
         False),
        ((METRICS_SERVER.user, ()), "create", "", "services", "default", "", False),
        ((METRICS_SERVER.user, ()), "create", "", "endpoints", "default", "", False),
        ((METRICS_SERVER.user, ()), "update", "apiregistration.k8s.io", "apiservices", "",
         "v1.apps", False),
        ((METRICS_SERVER.user, ()), "update", "apiregistration.k8s.io", "apiservices", "",
         "v1beta1.metrics.k8s.io", True),
    ],
    ids=str,
)  # fmt: skip
def test_the_components_write_only_in_their_namespaces(
    who: tuple[str, tuple[str, ...]],
    verb: str,
    group: str,
    resource: str,
    namespace: str,
    name: str,
    allowed: bool,
) -> None:
    """The Mesos master, Marathon, Chronos and metrics-server write in their own
    namespace (``mesos``, ``marathon``, ``chronos``, ``kube-system``) and nowhere else."""
    res, _, sub = resource.partition("/")
    attrs = rbac.Attributes(
        who[0], (*who[1], "system:authenticated"), verb, group, res, sub, name, namespace
    )
    assert _node_chain_allows(attrs) is allowed


def test_an_earlier_clusterrole_loses_its_cluster_wide_rules() -> None:
    """An upgraded cluster's ``corral:mesos-master`` (created by an earlier version with
    pods, configmaps and ``nodes/proxy`` everywhere) is narrowed at start."""
    old = next(r for r in cluster_roles() if r["metadata"]["name"] == "corral:mesos-master")
    now = list(old["rules"])
    old["rules"] = [
        *now,
        rbac_bootstrap.rule("create", "", "nodes/proxy"),
        rbac_bootstrap.rule(
            ("get", "list", "watch", "create", "update", "patch", "delete"),
            "",
            ("pods", "configmaps"),
        ),
    ]
    narrowed = without_retired(old)
    assert narrowed is not None and narrowed["rules"] == now
    assert without_retired(narrowed) is None
    old["metadata"]["annotations"][rbac_bootstrap.AUTOUPDATE] = "false"
    assert without_retired(old) is None  # the user's edits are kept


def test_front_proxy_client_comes_from_its_own_ca(data_dir: Path) -> None:
    client_certs.ensure_identity(data_dir, FRONT_PROXY_CLIENT)
    pki = data_dir / "pki"
    pair = load_pair(pki / "front-proxy-client.crt", pki / "front-proxy-client.key")
    ca = load_pair(pki / "front-proxy-ca.crt", pki / "front-proxy-ca.key")
    cluster_ca = load_pair(pki / "ca.crt", pki / "ca.key")
    assert pair is not None and ca is not None and cluster_ca is not None
    assert subject_of(pair[0]) == ("front-proxy-client", ())
    pair[0].verify_directly_issued_by(ca[0])
    assert ca[0].subject != cluster_ca[0].subject  # metrics/auth.py tells them apart by name
    # a second call keeps the pair (and the CA)
    before = (pki / "front-proxy-client.crt").read_bytes()
    client_certs.ensure_identity(data_dir, FRONT_PROXY_CLIENT)
    assert (pki / "front-proxy-client.crt").read_bytes() == before


async def test_reconcile_writes_the_namespaced_roles_and_narrows_old_ones(
    registry: Registry,
) -> None:
    """At start: the components' namespaces (created when missing), a valid Role and
    RoleBinding in each, and an earlier version's cluster-wide ``corral:marathon`` rules
    taken out; a second start changes nothing."""
    crs = registry.by_gvr[(RBAC_GROUP, "v1", "clusterroles")]
    old = rbac_bootstrap.cluster_role("corral:marathon", RETIRED_RULES["corral:marathon"])
    await registry.create(crs, "", old, WriteOptions())
    await component_identities.reconcile(registry)
    assert registry.entry(crs, "", "corral:marathon") is not None
    marathon = registry.decode(crs, registry.get(crs, "", "corral:marathon"))
    assert marathon["rules"] == [rbac_bootstrap.rule("create", "", "namespaces")]
    for plural, objs in (("roles", roles()), ("rolebindings", role_bindings())):
        info = registry.by_gvr[(RBAC_GROUP, "v1", plural)]
        for want in objs:
            meta = want["metadata"]
            got = registry.decode(info, registry.get(info, meta["namespace"], meta["name"]))
            assert got.get("rules") == want.get("rules")
            assert got.get("subjects") == want.get("subjects")
    ns = registry.by_gvr[("", "v1", "namespaces")]
    assert all(registry.entry(ns, "", n) for n in ("mesos", "marathon", "chronos"))
    rv = registry.get(crs, "", "corral:marathon").obj()["metadata"]["resourceVersion"]
    await component_identities.reconcile(registry)
    assert registry.get(crs, "", "corral:marathon").obj()["metadata"]["resourceVersion"] == rv
