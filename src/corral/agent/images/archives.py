"""What is in an image archive: the skopeo sources and image names ``import`` copies.

``ImageStore.import_archive`` (``store.py``) calls ``archive_sources(path, name)`` to
tell an OCI layout directory, an OCI archive (a tar of a layout, ``oci-archive:``) and a
docker-archive (``docker save``'s tar, ``docker-archive:``) apart and to name each image
in it, reading only ``index.json`` / ``manifest.json``; skopeo does the copying. Pure
and synchronous; raises ``ValueError`` with the reason when the input is unusable.
"""

from __future__ import annotations

import json
import tarfile
from pathlib import Path
from typing import Any


def _full_name(annotations: dict[str, str]) -> str | None:
    name = annotations.get("io.containerd.image.name")
    if name:
        return name
    ref_name = annotations.get("org.opencontainers.image.ref.name", "")
    # by the OCI spec ref.name is often just a tag ("latest"): not an image name
    return ref_name if ("/" in ref_name or ":" in ref_name) else None


def archive_sources(path: Path, name: str | None) -> list[tuple[str, list[str]]]:
    """(skopeo source, [names]) for each image in the layout or archive at ``path``."""
    if path.is_dir():
        if not (path / "oci-layout").exists():
            raise ValueError(f"{path}: not an OCI image layout (no oci-layout file)")
        index = json.loads((path / "index.json").read_text())
        return _oci_sources(f"oci:{path}", index, name)
    if not tarfile.is_tarfile(path):
        raise ValueError(f"{path}: neither an OCI layout directory nor a tar archive")
    with tarfile.open(path) as tar:
        members = {m.name.removeprefix("./"): m for m in tar.getmembers()}

        def read(member: str) -> Any:
            f = tar.extractfile(members[member])
            assert f is not None
            return json.load(f)

        if "index.json" in members and "oci-layout" in members:
            return _oci_sources(f"oci-archive:{path}", read("index.json"), name)
        if "manifest.json" in members:
            return _docker_sources(path, read("manifest.json"), name)
    raise ValueError(f"{path}: neither an OCI archive nor a docker-archive")


def _oci_sources(
    transport: str, index: dict[str, Any], name: str | None
) -> list[tuple[str, list[str]]]:
    manifests = index.get("manifests", [])
    if not manifests:
        raise ValueError(f"{transport}: the index names no image")
    if name is not None and len(manifests) > 1:
        raise ValueError(f"{transport}: holds {len(manifests)} images; --name names only one")
    out = []
    for m in manifests:
        ann = m.get("annotations") or {}
        ref_name = ann.get("org.opencontainers.image.ref.name")
        if ref_name is None and len(manifests) > 1:
            raise ValueError(f"{transport}: an image without ref.name among several")
        image = name or _full_name(ann)
        if image is None:
            raise ValueError(
                f"{transport}: image {ref_name or m['digest']!r} has no name; pass --name"
            )
        out.append((f"{transport}:{ref_name}" if ref_name else transport, [image]))
    return out


def _docker_sources(
    path: Path, manifest: list[dict[str, Any]], name: str | None
) -> list[tuple[str, list[str]]]:
    if name is not None and len(manifest) > 1:
        raise ValueError(f"{path}: holds {len(manifest)} images; --name names only one")
    out = []
    for i, entry in enumerate(manifest):
        tags = [name] if name else list(entry.get("RepoTags") or [])
        if not tags:
            raise ValueError(f"{path}: image {i} has no RepoTags; pass --name")
        out.append(
            (f"docker-archive:{path}@{i}" if len(manifest) > 1 else f"docker-archive:{path}", tags)
        )
    return out
