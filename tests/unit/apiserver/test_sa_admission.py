"""The ServiceAccount admission plugin in the registry's chain: the default
ServiceAccount, the kube-api-access volume and mounts, automount preferences, a missing
ServiceAccount, mirror pods and mountable secrets."""

from __future__ import annotations

from typing import Any

import pytest

from corral.api import errors
from corral.apiserver.identity import UserInfo
from corral.apiserver.sa_admission import MOUNT_PATH, ServiceAccountAdmission, token_volume
from corral.apiserver.store import Registry, WriteOptions

Obj = dict[str, Any]
BOB = UserInfo("bob", ("system:authenticated",))


@pytest.fixture
def registry_namespaces() -> tuple[str, ...]:
    return ("default", "empty")


@pytest.fixture
async def registry(registry: Registry) -> Registry:
    await _sa(registry, {"metadata": {"name": "default"}})
    registry.admission[("", "pods")].append(ServiceAccountAdmission(registry).admit)
    return registry


async def _sa(reg: Registry, sa: Obj, ns: str = "default") -> None:
    await reg.create(reg.by_gvr[("", "v1", "serviceaccounts")], ns, sa, WriteOptions())


async def _create(reg: Registry, spec: Obj, ns: str = "default", **meta: Any) -> Obj:
    pods = reg.by_gvr[("", "v1", "pods")]
    body = {"metadata": {"name": "p", **meta}, "spec": spec}
    res = await reg.create(pods, ns, body, WriteOptions(dry_run=True, user=BOB))
    return res.obj


def _containers(*names: str) -> list[Obj]:
    return [{"name": n, "image": "busybox"} for n in names]


async def test_token_volume_and_mounts_as_upstream(registry: Registry) -> None:
    spec = {
        "initContainers": _containers("init"),
        "containers": [
            *_containers("a"),
            {
                "name": "b",
                "image": "busybox",
                "volumeMounts": [{"name": "mine", "mountPath": MOUNT_PATH}],
            },
        ],
        "volumes": [{"name": "mine", "emptyDir": {}}],
    }
    pod = await _create(registry, spec)
    s = pod["spec"]
    assert s["serviceAccountName"] == "default"
    vol = s["volumes"][-1]
    assert vol["name"].startswith("kube-api-access-") and len(vol["name"]) == 21
    assert vol == token_volume(vol["name"])
    assert vol["projected"]["defaultMode"] == 420
    assert vol["projected"]["sources"][0] == {
        "serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}
    }
    mount = {"name": vol["name"], "readOnly": True, "mountPath": MOUNT_PATH}
    assert s["initContainers"][0]["volumeMounts"] == [mount]
    assert s["containers"][0]["volumeMounts"] == [mount]
    # a container with its own mount at the path keeps it alone
    assert s["containers"][1]["volumeMounts"] == [{"name": "mine", "mountPath": MOUNT_PATH}]


@pytest.mark.parametrize(
    ("pod_pref", "sa_pref", "mounted"),
    [(None, None, True), (False, None, False), (None, False, False), (True, False, True)],
    ids=["default", "pod-false", "sa-false", "pod-wins"],
)
async def test_automount_preferences(
    registry: Registry, pod_pref: bool | None, sa_pref: bool | None, mounted: bool
) -> None:
    sa: Obj = {"metadata": {"name": "robot"}}
    if sa_pref is not None:
        sa["automountServiceAccountToken"] = sa_pref
    await _sa(registry, sa)
    spec: Obj = {"serviceAccountName": "robot", "containers": _containers("a")}
    if pod_pref is not None:
        spec["automountServiceAccountToken"] = pod_pref
    pod = await _create(registry, spec)
    assert bool(pod["spec"].get("volumes")) is mounted
    assert bool(pod["spec"]["containers"][0].get("volumeMounts")) is mounted


async def test_missing_service_account(registry: Registry) -> None:
    with pytest.raises(errors.StatusError) as e:
        await _create(registry, {"serviceAccountName": "ghost", "containers": _containers("a")})
    assert e.value.code == 403
    assert e.value.message == (
        'pods "p" is forbidden: error looking up service account default/ghost: '
        'serviceaccount "ghost" not found'
    )
    # a namespace without its default ServiceAccount yet (no controller): admitted as is
    pod = await _create(registry, {"containers": _containers("a")}, "empty")
    assert "volumes" not in pod["spec"]


async def test_pull_secrets_and_mountable_secrets(registry: Registry) -> None:
    await _sa(
        registry,
        {
            "metadata": {
                "name": "strict",
                "annotations": {"kubernetes.io/enforce-mountable-secrets": "true"},
            },
            "secrets": [{"name": "ok"}],
            "imagePullSecrets": [{"name": "pull"}],
        },
    )
    spec: Obj = {"serviceAccountName": "strict", "containers": _containers("a")}
    pod = await _create(registry, spec)
    assert pod["spec"]["imagePullSecrets"] == [{"name": "pull"}]
    env = [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "k"}}}]
    spec["containers"] = [{"name": "a", "image": "busybox", "env": env}]
    with pytest.raises(errors.StatusError) as e:
        await _create(registry, spec)
    assert e.value.message == (
        'pods "p" is forbidden: container a with envVar X referencing secret.secretName="nope" '
        "is not allowed because service account strict does not reference that secret"
    )


async def test_mirror_pods_are_left_alone(registry: Registry) -> None:
    mirror = {"kubernetes.io/config.mirror": "x"}
    pod = await _create(registry, {"containers": _containers("a")}, annotations=mirror)
    assert "volumes" not in pod["spec"]
    vol = {"name": "s", "secret": {"secretName": "s"}}
    with pytest.raises(errors.StatusError, match="a mirror pod may not reference secrets"):
        await _create(
            registry, {"containers": _containers("a"), "volumes": [vol]}, annotations=mirror
        )


async def test_internal_writes_pass(registry: Registry) -> None:
    pods = registry.by_gvr[("", "v1", "pods")]
    body = {"metadata": {"name": "p"}, "spec": {"containers": _containers("a")}}
    res = await registry.create(pods, "default", body, WriteOptions(dry_run=True))
    assert "volumes" not in res.obj["spec"]


async def test_mountable_secrets_bind_ephemeral_containers(registry: Registry) -> None:
    """An enforcing ServiceAccount (any ``strconv.ParseBool`` true) also limits the
    secrets of ephemeral containers added later (CVE-2024-3177's class of bypass)."""
    annotations = {"kubernetes.io/enforce-mountable-secrets": "True"}
    strict = {"metadata": {"name": "strict", "annotations": annotations}}
    await _sa(registry, {**strict, "secrets": [{"name": "ok"}]})
    env = [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "k"}}}]
    bad = {"serviceAccountName": "strict", "containers": [{"name": "a", "image": "b", "env": env}]}
    with pytest.raises(errors.StatusError, match="service account strict does not reference"):
        await _create(registry, bad)
    pods = registry.by_gvr[("", "v1", "pods")]
    body = {"metadata": {"name": "q"}, "spec": {"serviceAccountName": "strict",
                                                "containers": _containers("a")}}  # fmt: skip
    await registry.create(pods, "default", body, WriteOptions(user=BOB))

    def add(ecs: list[Obj]) -> Any:
        def transform(cur: Obj) -> Obj:
            cur["spec"]["ephemeralContainers"] = ecs
            return cur

        return registry._guaranteed_update(
            pods, "default", "q", transform, WriteOptions(user=BOB), "ephemeralcontainers"
        )

    debug = {"name": "debug", "image": "b", "targetContainerName": "a"}
    with pytest.raises(errors.StatusError) as e:
        await add([{**debug, "envFrom": [{"secretRef": {"name": "nope"}}]}])
    assert e.value.code == 403 and e.value.message == (
        'pods "q" is forbidden: ephemeral container debug with envFrom referencing '
        'secret.secretName="nope" is not allowed because service account strict does not '
        "reference that secret"
    )
    with pytest.raises(errors.StatusError, match="ephemeral container debug with envVar X"):
        await add([{**debug, "env": env}])
    ok = [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "ok", "key": "k"}}}]
    res = await add([{**debug, "env": ok}])
    assert res.obj["spec"]["ephemeralContainers"][0]["name"] == "debug"


async def test_ephemeral_containers_of_a_pod_admitted_without_its_default_sa(
    registry: Registry,
) -> None:
    """A pod admitted while its namespace had no ``default`` ServiceAccount yet (see the
    module's departure from upstream) takes ephemeral containers: no ServiceAccount,
    nothing to enforce; a pod naming another, missing one is still refused."""
    pods = registry.by_gvr[("", "v1", "pods")]
    spec = {"containers": _containers("a")}
    await registry.create(pods, "empty", {"metadata": {"name": "q"}, "spec": spec},
                          WriteOptions(user=BOB))  # fmt: skip

    def add(name: str) -> Any:
        def transform(cur: Obj) -> Obj:
            cur["spec"]["ephemeralContainers"] = [
                {"name": "debug", "image": "b", "targetContainerName": "a"}
            ]
            return cur

        return registry._guaranteed_update(
            pods, "empty", name, transform, WriteOptions(user=BOB), "ephemeralcontainers"
        )

    res = await add("q")
    assert res.obj["spec"]["ephemeralContainers"][0]["name"] == "debug"
    other = {"serviceAccountName": "gone", "containers": _containers("a")}
    await registry.create(pods, "empty", {"metadata": {"name": "r"}, "spec": other}, WriteOptions())
    with pytest.raises(errors.StatusError, match='serviceaccount "gone" not found'):
        await add("r")
