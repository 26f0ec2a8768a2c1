"""A cluster's registries file (``registries.toml`` / ``registries.yaml``) as the agents'
``RegistryHosts`` read it: the endpoints tried for each registry, and the refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from corral.agent.images import Endpoint, RegistryHosts
from corral.agent.images.registries import cluster_file, load_registries, parse_yaml
from corral.cli.up import agent_commands, registry_args

TOML = """
["docker.io"]
server = "https://registry-1.docker.io"
["docker.io".host."http://10.0.0.5:5000"]
  capabilities = ["pull", "resolve"]
["docker.io".host."https://m.example"]
  capabilities = ["pull"]
  skip_verify = true

["_default".host."https://all.example"]
"""

YAML = """
mirrors:
  docker.io:
    endpoint:
      - "https://m1.example"
      - "http://10.0.0.5:5000"
  "*":
    endpoint: ["https://all.example"]
configs:
  "m1.example":
    tls:
      insecure_skip_verify: true
  "plain.example:5000":
    tls: {insecure_skip_verify: false}
"""

up = Endpoint("docker.io", False, mirror=False)


@pytest.mark.parametrize(
    ("name", "text", "registry", "by_digest", "want"),
    [
        (
            "registries.toml", TOML, "docker.io", False,
            [Endpoint("10.0.0.5:5000", True, True), up],
        ),
        (
            "registries.toml", TOML, "docker.io", True,
            [Endpoint("10.0.0.5:5000", True, True), Endpoint("m.example", True, True), up],
        ),
        (
            "registries.toml", TOML, "quay.io", False,
            [Endpoint("all.example", False, True), Endpoint("quay.io", False, False)],
        ),
        (
            "registries.yaml", YAML, "docker.io", False,
            [Endpoint("m1.example", True, True), Endpoint("10.0.0.5:5000", True, True), up],
        ),
        (
            "registries.yml", YAML, "ghcr.io", True,
            [Endpoint("all.example", False, True), Endpoint("ghcr.io", False, False)],
        ),
        ("registries.yaml", "", "docker.io", False, [up]),
    ],
    ids=["toml-resolve", "toml-pull", "toml-default", "yaml-ordered", "yaml-star", "yaml-empty"],
)  # fmt: skip
def test_cluster_file_routes_pulls(
    tmp_path: Path, name: str, text: str, registry: str, by_digest: bool, want: list[Endpoint]
) -> None:
    path = tmp_path / name
    path.write_text(text)
    hosts = RegistryHosts.from_flags([], (), None, path)
    assert hosts.endpoints(registry, by_digest) == want


def test_flags_come_before_the_file_and_certs_d_after(tmp_path: Path) -> None:
    path = tmp_path / "registries.yaml"
    path.write_text('mirrors: {docker.io: {endpoint: ["https://file.example"]}}\n')
    certs = tmp_path / "certs.d" / "docker.io"
    certs.mkdir(parents=True)
    (certs / "hosts.toml").write_text('[host."https://node.example"]\n')
    hosts = RegistryHosts.from_flags(
        ["docker.io=https://flag.example"], ["node.example"], tmp_path / "certs.d", path
    )
    assert [e.host for e in hosts.endpoints("docker.io", False)] == [
        "flag.example", "file.example", "node.example", "docker.io",
    ]  # fmt: skip
    assert [e.insecure for e in hosts.endpoints("docker.io", False)] == [
        False, False, True, False,
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "text", "error"),
    [
        ("registries.yaml", "mirrors: [\n", "registries.yaml: line 2: expected the node content"),
        ("registries.yaml", "- a\n", "want a mapping with mirrors: and configs:"),
        ("registries.yaml", "mirror: {}\n", "unknown key 'mirror' (want mirrors, configs)"),
        ("registries.yaml", "mirrors: {docker.io: {endpoint: http://x}}\n",
         "mirrors.docker.io.endpoint must be a list of URLs"),
        ("registries.yaml", "mirrors: {docker.io: {endpoint: [ftp://x]}}\n",
         "registry host 'ftp://x': want http(s)://HOST[:PORT]"),
        ("registries.yaml", "mirrors: {docker.io: {endpoint: ['https://x'], rewrite: {a: b}}}\n",
         "mirrors.docker.io.rewrite is not supported"),
        ("registries.yaml", "configs: {x: {auth: {username: u}}}\n",
         "configs.x.auth is not supported (use skopeo login)"),
        ("registries.yaml", "configs: {x: {tls: {ca_file: /ca.pem}}}\n",
         "configs.x.tls.ca_file is not supported"),
        ("registries.toml", "[docker.io\n", "registries.toml: "),
        ("registries.toml", 'server = "https://x"\n', '"server" must be a table'),
        ("registries.toml", '["docker.io".host."https://x/prefix"]\n',
         "a path prefix (containerd's override_path) is not supported"),
        ("registries.json", "{}", "want a .toml (containerd hosts.toml) or .yaml (k3s) file"),
    ],
    ids=["yaml-syntax", "yaml-list", "yaml-unknown-key", "yaml-endpoint-string",
         "yaml-scheme", "yaml-rewrite", "yaml-auth", "yaml-ca-file", "toml-syntax",
         "toml-top-level-key", "toml-override-path", "other-suffix"],
)  # fmt: skip
def test_bad_files_are_refused_in_one_line(
    tmp_path: Path, name: str, text: str, error: str
) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ValueError) as e:
        RegistryHosts.from_flags([], (), None, path)
    assert error in str(e.value)
    assert "\n" not in str(e.value)


def test_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="No such file or directory"):
        load_registries(tmp_path / "registries.yaml")


def test_yaml_insecure_hosts_lose_their_scheme() -> None:
    cfg = parse_yaml("configs: {'https://a.example:5000/': {tls: {insecure_skip_verify: true}}}")
    assert cfg.insecure == {"a.example:5000"}


def test_up_passes_flags_and_the_data_dir_file_to_every_agent(tmp_path: Path) -> None:
    assert cluster_file(tmp_path) is None
    assert registry_args(tmp_path, [], []) == []
    (tmp_path / "registries.yaml").write_text("mirrors: {}\n")
    args = registry_args(tmp_path, ["docker.io=http://127.0.0.1:5000"], ["reg:5000"])
    assert args == [
        "--registry-mirror", "docker.io=http://127.0.0.1:5000",
        "--insecure-registry", "reg:5000",
        "--registry-config", str((tmp_path / "registries.yaml").resolve()),
    ]  # fmt: skip
    for argv in agent_commands(tmp_path, 2, "process", args):
        assert argv[-len(args) :] == args
    with pytest.raises(ValueError, match="want REGISTRY=URL"):
        registry_args(tmp_path, ["docker.io"], [])


def test_two_cluster_files_are_refused(tmp_path: Path) -> None:
    (tmp_path / "registries.toml").write_text("")
    (tmp_path / "registries.yaml").write_text("")
    with pytest.raises(ValueError, match=r"has registries\.toml and registries\.yaml: keep one"):
        registry_args(tmp_path, [], [])
