"""The image store's pure parts: reference normalisation, default pull policy, registry
hosts (flags and containerd hosts.toml) and the pull back-off. No tools, no network."""

from __future__ import annotations

from pathlib import Path

import pytest

from corral.agent.images import (
    IMAGE_PULL_BACKOFF,
    Endpoint,
    ImagePullError,
    PullBackoff,
    ReferenceError_,
    RegistryHosts,
    default_pull_policy,
    parse_reference,
)

D = "sha256:" + "ab" * 32

NORMALISED = [
    ("busybox", "docker.io/library/busybox:latest"),
    ("busybox:1.36", "docker.io/library/busybox:1.36"),
    ("library/busybox", "docker.io/library/busybox:latest"),
    ("docker.io/busybox", "docker.io/library/busybox:latest"),
    ("index.docker.io/library/nginx:1.2", "docker.io/library/nginx:1.2"),
    ("docker.io/library/nginx", "docker.io/library/nginx:latest"),
    ("user/app:v1", "docker.io/user/app:v1"),
    ("quay.io/coreos/etcd:v3.5", "quay.io/coreos/etcd:v3.5"),
    ("reg:5000/a/b", "reg:5000/a/b:latest"),
    (f"reg:5000/a/b@{D}", f"reg:5000/a/b@{D}"),
    (f"nginx:1.2@{D}", f"docker.io/library/nginx:1.2@{D}"),
    ("localhost/app", "localhost/app:latest"),
    ("127.0.0.1:5000/x_y-z.w:tag-1.0", "127.0.0.1:5000/x_y-z.w:tag-1.0"),
    ("[::1]:5000/app", "[::1]:5000/app:latest"),
]


@pytest.mark.parametrize(("text", "want"), NORMALISED, ids=[t for t, _ in NORMALISED])
def test_parse_reference_normalises_like_docker(text: str, want: str) -> None:
    assert str(parse_reference(text)) == want


def test_reference_parts() -> None:
    ref = parse_reference(f"reg:5000/a/b:v1@{D}")
    assert (ref.domain, ref.path, ref.tag, ref.digest) == ("reg:5000", "a/b", "v1", D)
    assert ref.name == "reg:5000/a/b"
    assert ref.remote() == f"a/b@{D}"
    assert str(ref.with_domain("127.0.0.1:1")) == f"127.0.0.1:1/a/b:v1@{D}"
    assert parse_reference("busybox").remote() == "library/busybox:latest"


INVALID = ["", "UPPER", "foo/Bar", "a//b", "busybox:", ":tag", "a@sha256:12", "a:b:c", "-a", "a/b/"]


@pytest.mark.parametrize("text", INVALID, ids=[repr(t) for t in INVALID])
def test_invalid_references(text: str) -> None:
    with pytest.raises(ReferenceError_, match="couldn't parse image name"):
        parse_reference(text)


POLICIES = [
    ("busybox", "Always"),
    ("busybox:latest", "Always"),
    ("reg:5000/busybox", "Always"),
    ("busybox:1.36", "IfNotPresent"),
    ("reg:5000/a:v1", "IfNotPresent"),
    (f"busybox@{D}", "IfNotPresent"),
]


@pytest.mark.parametrize(("image", "want"), POLICIES, ids=[i for i, _ in POLICIES])
def test_default_pull_policy(image: str, want: str) -> None:
    assert default_pull_policy(image) == want


def test_hosts_without_config_go_upstream() -> None:
    hosts = RegistryHosts()
    assert hosts.endpoints("docker.io", by_digest=False) == [Endpoint("docker.io", False, False)]
    # loopback registries are insecure by default (Docker's 127.0.0.0/8 rule)
    assert hosts.endpoints("127.0.0.1:5000", False) == [Endpoint("127.0.0.1:5000", True, False)]
    assert hosts.endpoints("localhost:5000", False)[0].insecure
    assert not RegistryHosts().endpoints("quay.io", False)[0].insecure
    assert RegistryHosts(insecure={"reg:5000"}).endpoints("reg:5000", False)[0].insecure


def test_mirror_flags_come_first() -> None:
    hosts = RegistryHosts.from_flags(["docker.io=http://10.0.0.1:5000,https://m.example"])
    assert hosts.endpoints("docker.io", by_digest=False) == [
        Endpoint("10.0.0.1:5000", insecure=True, mirror=True),
        Endpoint("m.example", insecure=False, mirror=True),
        Endpoint("docker.io", insecure=False, mirror=False),
    ]
    assert hosts.endpoints("quay.io", False) == [Endpoint("quay.io", False, False)]


@pytest.mark.parametrize(
    "flag", ["docker.io", "=http://x", "docker.io=", "docker.io=ftp://x", "d=http://x/p"]
)
def test_bad_mirror_flags(flag: str) -> None:
    with pytest.raises(ValueError):
        RegistryHosts.from_flags([flag])


def test_hosts_toml_like_containerd(tmp_path: Path) -> None:
    d = tmp_path / "certs.d"
    (d / "docker.io").mkdir(parents=True)
    (d / "docker.io" / "hosts.toml").write_text(
        'server = "https://registry-1.docker.io"\n'
        '[host."http://127.0.0.1:5000"]\n  capabilities = ["pull", "resolve"]\n'
        '[host."https://pull-only.example"]\n  capabilities = ["pull"]\n  skip_verify = true\n'
    )
    (d / "_default").mkdir()
    (d / "_default" / "hosts.toml").write_text('[host."https://any.example"]\n')
    hosts = RegistryHosts(config_dir=d)
    # a tag needs "resolve": the pull-only mirror is skipped
    assert [e.host for e in hosts.endpoints("docker.io", by_digest=False)] == [
        "127.0.0.1:5000",
        "docker.io",
    ]
    assert hosts.endpoints("docker.io", by_digest=True) == [
        Endpoint("127.0.0.1:5000", True, True),
        Endpoint("pull-only.example", True, True),
        Endpoint("docker.io", False, False),
    ]
    # registries without a directory of their own use _default's mirrors
    assert [e.host for e in hosts.endpoints("quay.io", False)] == ["any.example", "quay.io"]


def test_hosts_toml_errors_name_the_file(tmp_path: Path) -> None:
    (tmp_path / "docker.io").mkdir()
    (tmp_path / "docker.io" / "hosts.toml").write_text("server = \n")
    with pytest.raises(ValueError, match=r"hosts\.toml"):
        RegistryHosts(config_dir=tmp_path)


class _Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def now(self) -> float:
        return self.t

    def monotonic(self) -> float:
        return self.t


def test_pull_backoff_doubles_to_a_cap_and_clears() -> None:
    clock = _Clock()
    b = PullBackoff(clock, initial=10, cap=40)
    b.check("pod_nope", "nope")  # no failure yet: may pull
    assert [b.failed("pod_nope") for _ in range(4)] == [10, 20, 40, 40]
    with pytest.raises(ImagePullError) as e:
        b.check("pod_nope", "nope")
    assert (e.value.reason, e.value.message) == (
        IMAGE_PULL_BACKOFF,
        'Back-off pulling image "nope"',
    )
    b.check("other_nope", "nope")  # kept per key
    clock.t += 40
    b.check("pod_nope", "nope")
    b.succeeded("pod_nope")
    assert b.failed("pod_nope") == 10
