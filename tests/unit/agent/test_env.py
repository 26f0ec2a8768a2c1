"""Container environment and argv (corral.agent.env): expansion, envFrom, valueFrom,
downward API selectors, image env merging and the command/args rules."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from corral.agent.env import (
    ConfigError,
    container_env,
    expand,
    field_ref_value,
    format_map,
    kubelet_env,
    merge_env,
    parse_image_env,
    resolve_argv,
    resource_field_value,
)

Obj = dict[str, Any]


class DictLookup:
    """An in-memory ObjectLookup."""

    def __init__(
        self, configmaps: dict[str, Obj] | None = None, secrets: dict[str, Obj] | None = None
    ):
        self.configmaps = configmaps or {}
        self.secrets = secrets or {}
        self.calls: list[tuple[str, str, str]] = []

    async def configmap(self, namespace: str, name: str) -> Obj | None:
        self.calls.append(("configmap", namespace, name))
        return self.configmaps.get(f"{namespace}/{name}")

    async def secret(self, namespace: str, name: str) -> Obj | None:
        self.calls.append(("secret", namespace, name))
        return self.secrets.get(f"{namespace}/{name}")


def b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


LOOKUP = DictLookup(
    configmaps={
        "ns/cfg": {"data": {"A": "1", "B": "two", "1bad": "x", "with.dot": "d"}},
        "ns/other": {"data": {"A": "other"}},
    },
    secrets={"ns/sec": {"data": {"PASSWORD": b64("hunter2"), "TOKEN": b64("t")}}},
)

POD: Obj = {
    "metadata": {
        "name": "web-0",
        "namespace": "ns",
        "uid": "uid-1",
        "labels": {"app": "web", "tier": "front"},
        "annotations": {"note": 'say "hi"'},
    },
    "spec": {
        "nodeName": "node-a",
        "serviceAccountName": "builder",
        "containers": [
            {
                "name": "app",
                "resources": {
                    "limits": {"cpu": "500m", "memory": "128Mi"},
                    "requests": {"cpu": "250m", "memory": "64Mi"},
                },
            },
            {"name": "sidecar"},
        ],
    },
}


async def env_of(container: Obj, lookup: DictLookup = LOOKUP, **kw: Any) -> dict[str, str]:
    args: dict[str, Any] = {
        "pod_ip": "10.0.0.5",
        "host_ip": "192.168.1.2",
        "node_name": "node-a",
        "image_env": None,
        "node_allocatable": {"cpu": "4", "memory": "8Gi"},
    }
    args.update(kw)
    return await container_env(POD, container, lookup, **args)


# --- expansion (cases from upstream expand_test.go) ---------------------------------------

EXPAND = {"VAR_A": "A", "VAR_B": "B", "VAR_C": "C", "VAR_EMPTY": ""}


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("$(VAR_A)", "A"),
        ("___$(VAR_B)___", "___B___"),
        ("$(VAR_A)-$(VAR_A)", "A-A"),
        ("$(VAR_A)$(VAR_B)$(VAR_C)", "ABC"),
        ("f000-$$VAR_A", "f000-$VAR_A"),
        ("$$(VAR_A)", "$(VAR_A)"),
        ("$$$(VAR_A)", "$A"),
        ("$(VAR_DNE)", "$(VAR_DNE)"),
        ("$(VAR_EMPTY)", ""),
        ("$(VAR_A", "$(VAR_A"),
        ("$VAR_A", "$VAR_A"),
        ("$", "$"),
        ("foo$", "foo$"),
        ("$()", "$()"),
        ("$(VAR_A)$", "A$"),
        ("no refs", "no refs"),
        ("$(VAR_A)${VAR_B}", "A${VAR_B}"),
    ],
    ids=[
        "whole",
        "middle",
        "twice",
        "three",
        "escaped-dollar",
        "escaped-ref",
        "escape-then-ref",
        "undefined-kept",
        "empty-value",
        "unclosed",
        "bare-dollar-name",
        "lone-dollar",
        "trailing-dollar",
        "empty-name",
        "ref-then-dollar",
        "plain",
        "braces-not-syntax",
    ],
)
def test_expand(text: str, want: str) -> None:
    assert expand(text, EXPAND) == want


# --- env ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("container", "want"),
    [
        ({"env": [{"name": "X", "value": "1"}]}, {"X": "1"}),
        ({"env": [{"name": "X", "value": ""}]}, {"X": ""}),
        (
            {"env": [{"name": "A", "value": "a"}, {"name": "B", "value": "$(A)-$(Z)-$$(A)"}]},
            {"A": "a", "B": "a-$(Z)-$(A)"},
        ),
        (
            {"env": [{"name": "B", "value": "$(A)"}, {"name": "A", "value": "a"}]},
            {"B": "$(A)", "A": "a"},
        ),
        (
            {"envFrom": [{"configMapRef": {"name": "cfg"}}]},
            {"A": "1", "B": "two", "with.dot": "d"},
        ),
        (
            {"envFrom": [{"configMapRef": {"name": "cfg"}, "prefix": "CFG_"}]},
            {"CFG_A": "1", "CFG_B": "two", "CFG_1bad": "x", "CFG_with.dot": "d"},
        ),
        (
            {
                "envFrom": [{"configMapRef": {"name": "cfg"}}, {"configMapRef": {"name": "other"}}],
                "env": [{"name": "B", "value": "from-env-$(A)"}],
            },
            {"A": "other", "B": "from-env-other", "with.dot": "d"},
        ),
        (
            {"envFrom": [{"secretRef": {"name": "sec"}, "prefix": "S_"}]},
            {"S_PASSWORD": "hunter2", "S_TOKEN": "t"},
        ),
        ({"envFrom": [{"configMapRef": {"name": "gone", "optional": True}}]}, {}),
        ({"envFrom": [{"secretRef": {"name": "gone", "optional": True}}]}, {}),
        (
            {"env": [{"name": "V", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "B"}}}]},
            {"V": "two"},
        ),
        (
            {
                "env": [
                    {"name": "V", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "PASSWORD"}}}
                ]
            },
            {"V": "hunter2"},
        ),
        (
            {
                "env": [
                    {
                        "name": "V",
                        "valueFrom": {
                            "configMapKeyRef": {"name": "cfg", "key": "nope", "optional": True}
                        },
                    },
                    {
                        "name": "W",
                        "valueFrom": {
                            "configMapKeyRef": {"name": "gone", "key": "k", "optional": True}
                        },
                    },
                    {
                        "name": "X",
                        "valueFrom": {
                            "secretKeyRef": {"name": "sec", "key": "nope", "optional": True}
                        },
                    },
                    {
                        "name": "Y",
                        "valueFrom": {
                            "secretKeyRef": {"name": "gone", "key": "k", "optional": True}
                        },
                    },
                ]
            },
            {},
        ),
        (
            {
                "env": [
                    {
                        "name": "SECRET",
                        "valueFrom": {"secretKeyRef": {"name": "sec", "key": "TOKEN"}},
                    },
                    {"name": "NOT_EXPANDED", "value": "$(SECRET)"},
                ]
            },
            {"SECRET": "t", "NOT_EXPANDED": "t"},
        ),
    ],
    ids=[
        "value",
        "empty-value",
        "expand-earlier-and-escape",
        "no-forward-reference",
        "envFrom-configmap-invalid-keys-skipped",
        "envFrom-prefix",
        "env-overrides-envFrom-later-envFrom-wins",
        "envFrom-secret",
        "envFrom-optional-configmap-missing",
        "envFrom-optional-secret-missing",
        "configMapKeyRef",
        "secretKeyRef",
        "optional-refs-missing-are-unset",
        "valueFrom-usable-in-later-expansion",
    ],
)
async def test_env(container: Obj, want: dict[str, str]) -> None:
    assert await env_of(container) == want


FIELD_ENV = [
    ("metadata.name", "web-0"),
    ("metadata.namespace", "ns"),
    ("metadata.uid", "uid-1"),
    ("metadata.labels['app']", "web"),
    ("metadata.labels['missing']", ""),
    ("metadata.annotations['note']", 'say "hi"'),
    ("spec.nodeName", "node-a"),
    ("spec.serviceAccountName", "builder"),
    ("status.hostIP", "192.168.1.2"),
    ("status.podIP", "10.0.0.5"),
    ("status.podIPs", "10.0.0.5"),
]


@pytest.mark.parametrize(("path", "want"), FIELD_ENV, ids=[p for p, _ in FIELD_ENV])
async def test_field_ref_env(path: str, want: str) -> None:
    env = await env_of({"env": [{"name": "F", "valueFrom": {"fieldRef": {"fieldPath": path}}}]})
    assert env == {"F": want}


def test_field_ref_maps_and_dual_stack() -> None:
    assert field_ref_value(POD, "metadata.labels") == 'app="web"\ntier="front"'
    assert field_ref_value(POD, "metadata.annotations") == 'note="say \\"hi\\""'
    assert (
        field_ref_value(POD, "status.podIPs", pod_ips=["10.0.0.5", "fd00::5"]) == "10.0.0.5,fd00::5"
    )
    assert field_ref_value(POD, "status.podIP", pod_ips=["10.0.0.5", "fd00::5"]) == "10.0.0.5"
    assert format_map({}) == ""
    assert format_map({"b": "x\ny", "a": "\t"}) == 'a="\\t"\nb="x\\ny"'


RESOURCE_ENV = [
    ({"resource": "limits.cpu"}, "1"),
    ({"resource": "limits.cpu", "divisor": "1m"}, "500"),
    ({"resource": "requests.cpu", "divisor": "1m"}, "250"),
    ({"resource": "requests.cpu"}, "1"),
    ({"resource": "limits.memory"}, str(128 * 2**20)),
    ({"resource": "limits.memory", "divisor": "1Mi"}, "128"),
    ({"resource": "requests.memory", "divisor": "1Mi"}, "64"),
    ({"resource": "requests.memory", "divisor": "1G"}, "1"),
    ({"resource": "limits.cpu", "containerName": "sidecar"}, "4"),
    ({"resource": "limits.memory", "containerName": "sidecar", "divisor": "1Gi"}, "8"),
    ({"resource": "requests.memory", "containerName": "sidecar"}, "0"),
]


@pytest.mark.parametrize(
    ("selector", "want"),
    RESOURCE_ENV,
    ids=[
        "limits-cpu-rounds-up",
        "limits-cpu-millis",
        "requests-cpu-millis",
        "requests-cpu-rounds-up",
        "limits-memory-bytes",
        "limits-memory-Mi",
        "requests-memory-Mi",
        "requests-memory-G-rounds-up",
        "unset-limit-is-node-allocatable",
        "unset-memory-limit-allocatable",
        "unset-request-is-zero",
    ],
)
async def test_resource_field_env(selector: Obj, want: str) -> None:
    container = POD["spec"]["containers"][0]
    c = {**container, "env": [{"name": "R", "valueFrom": {"resourceFieldRef": selector}}]}
    assert (await env_of(c)) == {"R": want}


@pytest.mark.parametrize(
    ("container", "message"),
    [
        ({"envFrom": [{"configMapRef": {"name": "cfg2"}}]}, 'configmap "cfg2" not found'),
        ({"envFrom": [{"secretRef": {"name": "s"}}]}, 'secret "s" not found'),
        (
            {
                "env": [
                    {"name": "V", "valueFrom": {"configMapKeyRef": {"name": "nope", "key": "k"}}}
                ]
            },
            'configmap "nope" not found',
        ),
        (
            {"env": [{"name": "V", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "k"}}}]},
            "couldn't find key k in ConfigMap ns/cfg",
        ),
        (
            {"env": [{"name": "V", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]},
            'secret "s" not found',
        ),
        (
            {"env": [{"name": "V", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "k"}}}]},
            "couldn't find key k in Secret ns/sec",
        ),
        (
            {"env": [{"name": "V", "valueFrom": {"fieldRef": {"fieldPath": "status.phase"}}}]},
            "unsupported fieldPath: status.phase",
        ),
        (
            {
                "env": [
                    {"name": "V", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name['x']"}}}
                ]
            },
            "fieldPath \"metadata.name['x']\" does not support subscript",
        ),
        (
            {"env": [{"name": "V", "valueFrom": {"resourceFieldRef": {"resource": "limits.gpu"}}}]},
            "unsupported container resource : limits.gpu",
        ),
    ],
    ids=[
        "envFrom-configmap-missing",
        "envFrom-secret-missing",
        "configMapKeyRef-configmap-missing",
        "configMapKeyRef-key-missing",
        "secretKeyRef-secret-missing",
        "secretKeyRef-key-missing",
        "fieldRef-unsupported",
        "fieldRef-bad-subscript",
        "resourceFieldRef-unsupported",
    ],
)
async def test_env_errors(container: Obj, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        await env_of(container)
    assert err.value.message == message
    assert str(err.value) == message


async def test_invalid_envfrom_keys_are_reported() -> None:
    warnings: list[str] = []
    env = await env_of({"envFrom": [{"configMapRef": {"name": "cfg"}}]}, warnings=warnings)
    assert "1bad" not in env
    assert warnings == [
        "Keys [1bad] from the EnvFrom configMap ns/cfg were skipped since they are considered "
        "invalid environment variable names."
    ]


async def test_each_object_read_once() -> None:
    lookup = DictLookup(configmaps=LOOKUP.configmaps)
    container = {
        "envFrom": [{"configMapRef": {"name": "cfg"}}],
        "env": [
            {"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "A"}}},
            {"name": "Y", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "B"}}},
        ],
    }
    await env_of(container, lookup)
    assert lookup.calls == [("configmap", "ns", "cfg")]


async def test_image_env_and_hostname_order() -> None:
    env = await env_of(
        {"env": [{"name": "PATH", "value": "/app/bin:$(PATH)"}, {"name": "X", "value": "x"}]},
        image_env=["PATH=/usr/bin", "LANG=C.UTF-8", "MALFORMED", "EMPTY="],
        hostname="web-0",
    )
    # Image variables are not visible to $(VAR) expansion; pod env overrides the image's.
    assert env == {
        "HOSTNAME": "web-0",
        "PATH": "/app/bin:$(PATH)",
        "LANG": "C.UTF-8",
        "EMPTY": "",
        "X": "x",
    }
    assert list(env) == ["HOSTNAME", "PATH", "LANG", "EMPTY", "X"]


def test_merge_env_image_can_override_hostname() -> None:
    assert merge_env({}, ["HOSTNAME=img"], "pod") == {"HOSTNAME": "img"}
    assert merge_env({"HOSTNAME": "mine"}, None, "pod") == {"HOSTNAME": "mine"}
    assert parse_image_env(["A=b=c", "=x"]) == {"A": "b=c"}


async def test_kubelet_env_excludes_image_env() -> None:
    env = await kubelet_env(
        POD, {"env": [{"name": "A", "value": "1"}]}, LOOKUP, pod_ip="", host_ip=""
    )
    assert env == {"A": "1"}


def test_resource_field_needs_container() -> None:
    with pytest.raises(ConfigError, match="container nope not found"):
        resource_field_value(POD, None, {"containerName": "nope", "resource": "limits.cpu"})


# --- argv -----------------------------------------------------------------------------------

IMAGE = {"Entrypoint": ["/entry"], "Cmd": ["--default"]}
ARGV_ENV = {"NAME": "world", "PORT": "80"}


@pytest.mark.parametrize(
    ("container", "image", "want"),
    [
        ({}, IMAGE, ["/entry", "--default"]),
        ({"command": ["/bin/sh"]}, IMAGE, ["/bin/sh"]),
        ({"command": ["/bin/sh"], "args": ["-c", "echo"]}, IMAGE, ["/bin/sh", "-c", "echo"]),
        ({"args": ["--port=$(PORT)"]}, IMAGE, ["/entry", "--port=80"]),
        (
            {"command": ["echo", "hello $(NAME)", "$$(NAME)", "$(NOPE)"]},
            None,
            ["echo", "hello world", "$(NAME)", "$(NOPE)"],
        ),
        ({}, {"Cmd": ["sh"]}, ["sh"]),
        ({}, {"Entrypoint": [""], "Cmd": ["sh"]}, ["sh"]),
        ({"args": ["x"]}, {"Cmd": ["sh"]}, ["x"]),
        ({"command": [], "args": []}, IMAGE, ["/entry", "--default"]),
    ],
    ids=[
        "image-entrypoint-and-cmd",
        "command-drops-cmd",
        "command-and-args",
        "args-replace-cmd-expanded",
        "expansion",
        "cmd-only",
        "empty-string-entrypoint-ignored",
        "args-without-entrypoint",
        "empty-lists-mean-unset",
    ],
)
def test_resolve_argv(container: Obj, image: Obj | None, want: list[str]) -> None:
    assert resolve_argv(container, image, ARGV_ENV) == want


@pytest.mark.parametrize(
    "image", [None, {}, {"Entrypoint": [""]}], ids=["no-image", "empty-config", "blank-entrypoint"]
)
def test_resolve_argv_nothing(image: Obj | None) -> None:
    with pytest.raises(ConfigError, match=r"^no command specified$"):
        resolve_argv({}, image, {})


# --- service variables ------------------------------------------------------------------------
def _svc(name: str, ns: str, ip: str, ports: list[dict]) -> dict:  # type: ignore[type-arg]
    return {"metadata": {"name": name, "namespace": ns}, "spec": {"clusterIP": ip, "ports": ports}}


def test_service_env_as_the_kubelet_writes_it() -> None:
    from corral.agent.env import service_env

    web = _svc(
        "web-app",
        "ns",
        "10.96.0.7",
        [{"name": "http", "port": 80, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}],
    )
    env = service_env([web, _svc("headless", "ns", "None", [{"port": 1}])])
    assert env == {
        "WEB_APP_SERVICE_HOST": "10.96.0.7",
        "WEB_APP_SERVICE_PORT": "80",
        "WEB_APP_SERVICE_PORT_HTTP": "80",
        "WEB_APP_PORT": "tcp://10.96.0.7:80",
        "WEB_APP_PORT_80_TCP": "tcp://10.96.0.7:80",
        "WEB_APP_PORT_80_TCP_PROTO": "tcp",
        "WEB_APP_PORT_80_TCP_PORT": "80",
        "WEB_APP_PORT_80_TCP_ADDR": "10.96.0.7",
        "WEB_APP_PORT_53_UDP": "udp://10.96.0.7:53",
        "WEB_APP_PORT_53_UDP_PROTO": "udp",
        "WEB_APP_PORT_53_UDP_PORT": "53",
        "WEB_APP_PORT_53_UDP_ADDR": "10.96.0.7",
    }


async def test_service_links_env_overridden_by_env_and_off_by_flag() -> None:
    from corral.agent.env import kubelet_env

    class NoObjects:
        async def configmap(self, ns: str, name: str) -> None:
            return None

        async def secret(self, ns: str, name: str) -> None:
            return None

    services = [
        _svc("web", "ns", "10.96.0.7", [{"port": 80}]),
        _svc("other", "elsewhere", "10.96.0.8", [{"port": 81}]),
        _svc("kubernetes", "default", "10.96.0.1", [{"name": "https", "port": 443}]),
    ]
    pod = {"metadata": {"name": "p", "namespace": "ns"}, "spec": {}}
    container = {
        "name": "c",
        "env": [
            {"name": "WEB_SERVICE_PORT", "value": "8080"},
            {"name": "URL", "value": "http://$(WEB_SERVICE_HOST)"},
        ],
    }
    env = await kubelet_env(
        pod, container, NoObjects(), pod_ip="10.88.0.2", host_ip="h", services=services
    )
    assert env["WEB_SERVICE_HOST"] == "10.96.0.7"
    assert env["WEB_SERVICE_PORT"] == "8080"  # the container's own env wins
    assert env["URL"] == "http://10.96.0.7"  # and may refer to service variables
    assert env["KUBERNETES_SERVICE_HOST"] == "10.96.0.1"
    assert "OTHER_SERVICE_HOST" not in env
    pod["spec"]["enableServiceLinks"] = False
    env = await kubelet_env(
        pod, {"name": "c"}, NoObjects(), pod_ip="x", host_ip="h", services=services
    )
    assert "WEB_SERVICE_HOST" not in env and env["KUBERNETES_SERVICE_HOST"] == "10.96.0.1"
