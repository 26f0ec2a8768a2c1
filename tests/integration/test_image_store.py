"""The image store against a real registry: Debian's docker-registry on 127.0.0.1,
images built from busybox-static with umoci, pulled and unpacked with skopeo and umoci.

One registry serves the module (images pushed once); tests that stop a registry start
their own. Each test has its own store (``tmp_path``). No mocks, no other network.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from corral.agent.images import (
    ERR_IMAGE_NEVER_PULL,
    ERR_IMAGE_PULL,
    INVALID_IMAGE_NAME,
    ImagePullError,
    ImageStore,
    RegistryHosts,
)
from corral.cli import image as image_cli
from corral.testing.registry import (
    LocalRegistry,
    build_busybox,
    build_whiteout,
    export,
    missing_tools,
    push,
)

pytestmark = pytest.mark.skipif(missing_tools() is not None, reason=missing_tools() or "")


@dataclass
class Images:
    registry: LocalRegistry
    layout: Path  # tags: latest (busybox), whiteout, v2 (busybox with another label)
    busybox: str  # digest of the busybox image
    v2: str
    whiteout: str


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Images]:
    work = tmp_path_factory.mktemp("registry")
    layout = work / "layout"
    build_busybox(layout, "latest")
    build_busybox(layout, "v2", labels={"version": "2"})
    build_whiteout(layout, "whiteout")
    with LocalRegistry.start(work) as reg:
        busybox = push(layout, "latest", f"{reg.host}/library/busybox:latest")
        assert push(layout, "latest", f"{reg.host}/test/busybox:v1") == busybox
        v2 = push(layout, "v2", f"{reg.host}/test/busybox:v2")
        whiteout = push(layout, "whiteout", f"{reg.host}/test/whiteout:1")
        yield Images(reg, layout, busybox, v2, whiteout)


def store_for(tmp_path: Path, **mirrors: str) -> ImageStore:
    hosts = RegistryHosts({k.replace("_", "."): [v] for k, v in mirrors.items()})
    return ImageStore(tmp_path / "images", hosts)


def assert_busybox(rootfs: Path) -> None:
    assert (rootfs / "bin" / "busybox").is_file()
    assert os.readlink(rootfs / "bin" / "sh") == "busybox"
    assert (rootfs / "etc" / "passwd").is_file()


async def test_pull_by_tag(images: Images, tmp_path: Path) -> None:
    store = store_for(tmp_path)
    ref = f"{images.registry.host}/test/busybox:v1"
    info = await store.ensure(ref, "IfNotPresent")
    assert (info.ref, info.digest) == (ref, images.busybox)
    assert_busybox(info.rootfs)
    assert info.config == {"Cmd": ["sh"], "Env": ["PATH=/bin"], "WorkingDir": "/"}
    assert store.lookup(ref) == info
    # another store on the same root (the CLI beside the agent) sees it too
    assert ImageStore(tmp_path / "images").lookup(ref) == info
    # content-addressed: the manifest is a blob named by its digest
    assert (tmp_path / "images/oci/blobs/sha256" / images.busybox.removeprefix("sha256:")).exists()


async def test_pull_by_digest_shares_the_unpacked_rootfs(images: Images, tmp_path: Path) -> None:
    store = store_for(tmp_path)
    host = images.registry.host
    by_digest = await store.ensure(f"{host}/test/busybox@{images.busybox}")
    by_tag = await store.ensure(f"{host}/test/busybox:v1")
    assert by_digest.ref == f"{host}/test/busybox@{images.busybox}"
    assert by_digest.digest == images.busybox
    assert by_digest.rootfs == by_tag.rootfs  # one unpack per manifest, shared by pods
    assert len(os.listdir(tmp_path / "images" / "unpacked")) == 1
    assert [r.ref for r in store.list()] == sorted([by_tag.ref, by_digest.ref])
    # a digest this node has under another reference of the repository is present
    assert store.lookup(f"{host}/test/busybox:v1@{images.busybox}") is not None
    assert store.lookup(f"{host}/other/busybox@{images.busybox}") is None


async def test_if_not_present_does_not_contact_the_registry(tmp_path: Path) -> None:
    layout = build_busybox(tmp_path / "layout")
    store = store_for(tmp_path)
    with LocalRegistry.start(tmp_path / "reg") as reg:
        ref = f"{reg.host}/solo/busybox:1"
        digest = push(layout, "latest", ref)
        assert (await store.ensure(ref, "IfNotPresent")).digest == digest
    # registry gone: present images still resolve, Never too; Always must fail
    assert (await store.ensure(ref, "IfNotPresent")).digest == digest
    assert (await store.ensure(ref, "Never")).digest == digest
    with pytest.raises(ImagePullError) as e:
        await store.ensure(ref, "Always")
    assert e.value.reason == ERR_IMAGE_PULL
    assert "connection refused" in e.value.message


async def test_always_re_resolves_the_tag(images: Images, tmp_path: Path) -> None:
    store = store_for(tmp_path)
    ref = f"{images.registry.host}/test/moving:latest"
    push(images.layout, "latest", ref)
    assert (await store.ensure(ref, "IfNotPresent")).digest == images.busybox
    push(images.layout, "v2", ref)  # the tag moves
    assert (await store.ensure(ref, "IfNotPresent")).digest == images.busybox
    moved = await store.ensure(ref, "Always")
    assert moved.digest == images.v2
    assert moved.config["Labels"] == {"version": "2"}
    assert store.lookup(ref) == moved


async def test_never_without_the_image(tmp_path: Path) -> None:
    with pytest.raises(ImagePullError) as e:
        await store_for(tmp_path).ensure("busybox:1.36", "Never")
    assert e.value.reason == ERR_IMAGE_NEVER_PULL
    assert (
        e.value.message == 'Container image "busybox:1.36" is not present with pull policy of Never'
    )


@pytest.mark.parametrize("what", ["repository", "tag"])
async def test_missing_image_is_err_image_pull(images: Images, tmp_path: Path, what: str) -> None:
    host = images.registry.host
    ref = f"{host}/nope/nope:latest" if what == "repository" else f"{host}/test/busybox:nope"
    with pytest.raises(ImagePullError) as e:
        await store_for(tmp_path).ensure(ref, "IfNotPresent")
    assert e.value.reason == ERR_IMAGE_PULL
    assert e.value.message == (
        f'failed to pull and unpack image "{ref}": failed to resolve reference "{ref}": {ref}: not found'
    )
    assert store_for(tmp_path).lookup(ref) is None


async def test_invalid_image_name(tmp_path: Path) -> None:
    with pytest.raises(ImagePullError) as e:
        await store_for(tmp_path).ensure("Not/Valid:", "IfNotPresent")
    assert e.value.reason == INVALID_IMAGE_NAME


async def test_mirror_serves_unmodified_docker_hub_names(images: Images, tmp_path: Path) -> None:
    store = store_for(tmp_path, docker_io=f"http://{images.registry.host}")
    for name in ("busybox", "docker.io/library/busybox", "library/busybox:latest"):
        info = await store.ensure(name, "Always")
        assert (info.ref, info.digest) == ("docker.io/library/busybox:latest", images.busybox)
        assert_busybox(info.rootfs)
    pinned = await store.ensure(f"busybox@{images.busybox}", "Always")
    assert pinned.digest == images.busybox
    sources = {r.source for r in store.list()}
    assert sources == {
        f"docker://{images.registry.host}/library/busybox:latest",
        f"docker://{images.registry.host}/library/busybox@{images.busybox}",
    }


async def test_mirror_from_containerd_hosts_toml(images: Images, tmp_path: Path) -> None:
    certs = tmp_path / "agent" / "certs.d" / "docker.io"
    certs.mkdir(parents=True)
    (certs / "hosts.toml").write_text(
        'server = "https://registry-1.docker.io"\n\n'
        f'[host."http://{images.registry.host}"]\n  capabilities = ["pull", "resolve"]\n'
    )
    store = ImageStore.from_data_dir(tmp_path / "agent")
    info = await store.ensure("docker.io/library/busybox", "IfNotPresent")
    assert info.digest == images.busybox
    assert info.rootfs.is_relative_to(tmp_path / "agent" / "images")


async def test_concurrent_ensure_pulls_once(images: Images, tmp_path: Path) -> None:
    reg = images.registry
    ref = f"{reg.host}/test/concurrent:1"
    push(images.layout, "latest", ref)
    manifests = '"GET /v2/test/concurrent/manifests/'
    before = reg.requests(manifests)
    one = await store_for(tmp_path / "one").ensure(ref)
    single = reg.requests(manifests) - before
    assert single >= 1
    store = store_for(tmp_path / "many")
    infos = await asyncio.gather(*(store.ensure(ref, "Always") for _ in range(6)))
    assert {i.digest for i in infos} == {one.digest}
    assert reg.requests(manifests) - before == 2 * single  # the six shared one pull


async def test_whiteouts_and_opaque_directories(images: Images, tmp_path: Path) -> None:
    info = await store_for(tmp_path).ensure(f"{images.registry.host}/test/whiteout:1")
    assert info.digest == images.whiteout
    assert sorted(os.listdir(info.rootfs / "a")) == ["keep"]  # /a/x whited out
    assert sorted(os.listdir(info.rootfs / "b")) == ["z"]  # /b opaque: /b/y gone
    leftovers = [f for _, _, files in os.walk(info.rootfs) for f in files if f.startswith(".wh.")]
    assert leftovers == []
    assert_busybox(info.rootfs)


async def test_import_oci_archive_named_by_its_annotation(images: Images, tmp_path: Path) -> None:
    tar = tmp_path / "img.tar"
    export(images.layout, "latest", f"oci-archive:{tar}:docker.io/example/imported:v1")
    store = store_for(tmp_path)
    [info] = await store.import_archive(tar)
    assert (info.ref, info.digest) == ("docker.io/example/imported:v1", images.busybox)
    assert_busybox(info.rootfs)
    assert (await store.ensure("example/imported:v1", "Never")) == info


async def test_import_oci_layout_and_docker_archive(images: Images, tmp_path: Path) -> None:
    store = store_for(tmp_path)
    # an OCI layout whose ref.name is only a tag needs --name
    with pytest.raises(ValueError, match="--name"):
        await store.import_archive(images.layout)  # three images, "latest"...: no names
    single = tmp_path / "single"
    export(images.layout, "whiteout", f"oci:{single}:latest")
    [info] = await store.import_archive(single, name="local/whiteout:dev")
    assert (info.ref, info.digest) == ("docker.io/local/whiteout:dev", images.whiteout)
    # docker save's format: the manifest is converted to OCI, so the digest is new
    tar = tmp_path / "docker.tar"
    export(images.layout, "v2", f"docker-archive:{tar}:example.com/team/app:2.0")
    [app] = await store.import_archive(tar)
    assert app.ref == "example.com/team/app:2.0"
    assert app.config["Labels"] == {"version": "2"}
    assert_busybox(app.rootfs)
    assert {r.ref for r in store.list()} == {info.ref, app.ref}


async def test_remove_drops_unused_content(images: Images, tmp_path: Path) -> None:
    store = store_for(tmp_path)
    host = images.registry.host
    a = await store.ensure(f"{host}/test/busybox:v1")
    await store.ensure(f"{host}/test/busybox:v2")
    assert await store.remove(f"{host}/test/busybox:v2")
    assert not await store.remove(f"{host}/test/busybox:v2")
    assert store.lookup(f"{host}/test/busybox:v2") is None
    assert store.lookup(a.ref) == a and a.rootfs.is_dir()
    assert len(os.listdir(tmp_path / "images" / "unpacked")) == 1


def test_cli_import_pull_list(
    images: Images, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tar = tmp_path / "img.tar"
    export(images.layout, "latest", f"docker-archive:{tar}:imported:v1")
    data = ["--data-dir", str(tmp_path / "agent")]
    assert image_cli.main([*data, "import", str(tar)]) == 0
    mirror = ["--registry-mirror", f"docker.io=http://{images.registry.host}"]
    assert image_cli.main([*data, *mirror, "pull", "busybox"]) == 0
    assert image_cli.main([*data, "list"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("imported docker.io/library/imported:v1 sha256:")
    assert out[1] == f"docker.io/library/busybox:latest {images.busybox}"
    assert out[2].split() == ["IMAGE", "DIGEST", "SIZE"]
    assert [line.split()[0] for line in out[3:]] == [
        "docker.io/library/busybox:latest",
        "docker.io/library/imported:v1",
    ]
    assert image_cli.main([*data, "pull", f"{images.registry.host}/nope/nope"]) == 1
    assert "ErrImagePull: failed to pull and unpack image" in capsys.readouterr().err
