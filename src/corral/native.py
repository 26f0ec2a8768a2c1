"""Which of Corral's modules run compiled (mypyc), and the guard that keeps a stale or
partial build from running.

``make install`` compiles ``MODULES`` beside their sources (``scripts/compile.py``) into
one extension group, ``corral_native__mypyc``, and writes ``MANIFEST``: each module's
source digest at build time. They are the API server's per-request Python: the typed
decoding, validation, patches, managedFields, the strategies, admission, authorization
and the watch cache. A module with a coroutine stays interpreted (mypyc mishandles the
exception state around ``await`` in ``try`` blocks), as does every module not listed.

CPython's path finder prefers an extension module to its ``.py``, so after an edit the
compiled copy would still run. ``guard`` (called by ``corral/__init__.py``) therefore
checks the build: when ``CORRAL_PURE=1``, when there is no manifest, when a source no
longer matches it, or when a module's extension is missing, it puts a finder first on
``sys.meta_path`` that loads every listed module from its source. All or none: compiled
modules call each other natively, so a mix would run two copies of a module's state.
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

#: the compiled modules, by dotted name
MODULES: tuple[str, ...] = (
    "corral.api.apply",
    "corral.api.conditions",
    "corral.api.nodes",
    "corral.api.patch",
    "corral.api.pod_security",
    "corral.api.pod_security_checks",
    "corral.api.podrefs",
    "corral.api.quantity",
    "corral.api.schema",
    "corral.api.selectors",
    "corral.api.taints",
    "corral.api.validation",
    "corral.apiserver.admission",
    "corral.apiserver.admission_chain",
    "corral.apiserver.authn",
    "corral.apiserver.authz",
    "corral.apiserver.node_authz",
    "corral.apiserver.pod_security_admission",
    "corral.apiserver.request",
    "corral.apiserver.sa_admission",
    *(
        f"corral.apiserver.registry.{name}"
        for name in (
            "apiextensions",
            "apiregistration",
            "apps",
            "autoscaling",
            "autoscaling_v1",
            "base",
            "batch",
            "certificates",
            "chronos",
            "coordination",
            "core",
            "custom",
            "fields",
            "marathon",
            "mesos",
            "pods",
            "podspec",
            "policy",
            "rbac",
            "scheduling",
            "services",
            "storage",
            "table",
        )
    ),
    "corral.storage.cache",
)
#: the extension group's shared library, beside the ``corral`` package
GROUP = "corral_native"
#: written by the build into the ``corral`` package: {module: [sha256, size, mtime_ns]}
#: of each source (the digest is read only when the size or the time differ)
MANIFEST = "native-manifest.json"
#: set to "1": run every module from its source, compiled or not
PURE_ENV = "CORRAL_PURE"

PACKAGE_DIR = Path(__file__).resolve().parent


def source_path(name: str, package_dir: Path = PACKAGE_DIR) -> Path:
    """The ``.py`` of a module under the ``corral`` package."""
    return package_dir.joinpath(*name.split(".")[1:]).with_suffix(".py")


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def record(path: Path) -> list[str | int]:
    """What the manifest keeps of a source: its digest, size and modification time."""
    st = path.stat()
    return [digest(path), st.st_size, st.st_mtime_ns]


def _unchanged(path: Path, recorded: object) -> bool:
    if not isinstance(recorded, list) or len(recorded) != 3:
        return False
    try:
        st = path.stat()
    except OSError:
        return False
    if [st.st_size, st.st_mtime_ns] == recorded[1:]:
        return True
    return bool(digest(path) == recorded[0])


def _compiled(name: str, package_dir: Path) -> bool:
    src = source_path(name, package_dir)
    return any(
        src.with_name(src.stem + suffix).exists()
        for suffix in importlib.machinery.EXTENSION_SUFFIXES
    )


def build_problems(package_dir: Path = PACKAGE_DIR, modules: Sequence[str] = MODULES) -> list[str]:
    """Why the compiled modules may not run (empty: they may): no manifest, a module
    missing from it or with no extension, or a source that changed since the build."""
    try:
        manifest = json.loads((package_dir / MANIFEST).read_text())
    except (OSError, ValueError):
        return [f"no {MANIFEST}"]
    problems = []
    for name in modules:
        recorded = manifest.get(name) if isinstance(manifest, dict) else None
        if not recorded:
            problems.append(f"{name}: not in {MANIFEST}")
        elif not _compiled(name, package_dir):
            problems.append(f"{name}: no extension")
        elif not _unchanged(source_path(name, package_dir), recorded):
            problems.append(f"{name}: source changed since the build")
    return problems


class SourceFinder(importlib.abc.MetaPathFinder):
    """Finds the listed modules' sources, ahead of the path finder (which would take
    their extensions)."""

    def __init__(self, names: Sequence[str], package_dir: Path) -> None:
        self.names = frozenset(names)
        self.package_dir = package_dir

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in self.names:
            return None
        return importlib.util.spec_from_file_location(
            fullname, source_path(fullname, self.package_dir)
        )


#: why the compiled modules do not run in this process (empty when they do)
disabled: list[str] = []


def guard() -> None:
    """Run the compiled modules only from a complete build of the current sources."""
    if any(isinstance(f, SourceFinder) for f in sys.meta_path):
        return
    if not any(_compiled(name, PACKAGE_DIR) for name in MODULES):
        disabled[:] = ["not compiled"]
        return  # nothing shadows a source
    if os.environ.get(PURE_ENV) == "1":
        disabled[:] = [f"{PURE_ENV}=1"]
    else:
        disabled[:] = build_problems()
    if disabled:
        sys.meta_path.insert(0, SourceFinder(MODULES, PACKAGE_DIR))


def active() -> bool:
    """Whether this process runs the compiled modules (after ``guard``)."""
    return not disabled and all(
        getattr(sys.modules.get(name), "__file__", "").endswith(".so")
        for name in MODULES
        if name in sys.modules
    )
