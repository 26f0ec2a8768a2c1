"""The compiled modules (``corral/native.py``): the guard's verdict on a build, the finder
that takes the sources instead, what may be compiled at all, and the real build."""

from __future__ import annotations

import ast
import importlib.machinery
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from corral import native

ROOT = Path(__file__).resolve().parents[2]
EXT = importlib.machinery.EXTENSION_SUFFIXES[0]


def _package(tmp_path: Path) -> Path:
    pkg = tmp_path / "corral"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "a.py").write_text("X = 1\n")
    (pkg / "sub" / "b.py").write_text("Y = 2\n")
    return pkg


MODS = ("corral.a", "corral.sub.b")


def _built(pkg: Path) -> None:
    """What a build leaves: an extension beside each source, and the manifest."""
    for name in MODS:
        src = native.source_path(name, pkg)
        src.with_name(src.stem + EXT).write_bytes(b"")
    manifest = {name: native.record(native.source_path(name, pkg)) for name in MODS}
    (pkg / native.MANIFEST).write_text(json.dumps(manifest))


def test_a_complete_current_build_may_run(tmp_path: Path) -> None:
    pkg = _package(tmp_path)
    assert native.build_problems(pkg, MODS) == [f"no {native.MANIFEST}"]
    _built(pkg)
    assert native.build_problems(pkg, MODS) == []


def test_an_edited_source_or_a_missing_extension_stops_the_build(tmp_path: Path) -> None:
    pkg = _package(tmp_path)
    _built(pkg)
    b = native.source_path("corral.sub.b", pkg)
    b.write_text("Y = 3\n")  # same size, new content
    assert native.build_problems(pkg, MODS) == ["corral.sub.b: source changed since the build"]
    b.write_text("Y = 2\n")
    os.utime(b, ns=(1, 1))  # touched, not changed: the digest decides
    assert native.build_problems(pkg, MODS) == []
    b.with_name("b" + EXT).unlink()
    assert native.build_problems(pkg, MODS) == ["corral.sub.b: no extension"]
    assert native.build_problems(pkg, (*MODS, "corral.c")) == [
        "corral.sub.b: no extension",
        "corral.c: not in native-manifest.json",
    ]


def test_the_finder_takes_the_listed_modules_from_their_sources(tmp_path: Path) -> None:
    pkg = _package(tmp_path)
    finder = native.SourceFinder(MODS, pkg)
    spec = finder.find_spec("corral.sub.b", None)
    assert spec is not None and spec.origin == str(pkg / "sub" / "b.py")
    assert isinstance(spec.loader, importlib.machinery.SourceFileLoader)
    assert finder.find_spec("corral.other", None) is None


def _tree(name: str) -> ast.Module:
    return ast.parse(native.source_path(name).read_text())


def test_no_compiled_module_has_a_coroutine() -> None:
    """mypyc mishandles the exception state around ``await`` (a caught error came back
    on a later call): a module with a coroutine stays interpreted."""
    for name in native.MODULES:
        for node in ast.walk(_tree(name)):
            assert not isinstance(node, ast.AsyncFunctionDef | ast.Await), (name, node.lineno)


def _allows_subclasses(cls: ast.ClassDef) -> bool:
    return any(
        isinstance(d, ast.Call)
        and any(
            k.arg == "allow_interpreted_subclasses"
            and isinstance(k.value, ast.Constant)
            and k.value.value is True
            for k in d.keywords
        )
        for d in cls.decorator_list
    )


def test_only_marked_compiled_classes_are_subclassed_outside_the_build() -> None:
    """An interpreted class cannot inherit from a compiled one unless it says so
    (``mypyc_attr(allow_interpreted_subclasses=True)``); CRD strategies are made at
    run time, so a missed one fails only there."""
    compiled = set(native.MODULES)
    closed: dict[tuple[str, str], bool] = {}
    for name in compiled:
        for node in _tree(name).body:
            if isinstance(node, ast.ClassDef):
                closed[(name, node.name)] = not _allows_subclasses(node)
    offenders = []
    files = [p for d in ("src", "tests", "bench") for p in (ROOT / d).rglob("*.py")]
    for path in files:
        module = (
            ".".join(path.relative_to(ROOT / "src").with_suffix("").parts)
            if (path.is_relative_to(ROOT / "src"))
            else ""
        )
        tree = ast.parse(path.read_text())
        imported = {
            alias.asname or alias.name: (node.module, alias.name)
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module in compiled
            for alias in node.names
        }
        for node in ast.walk(tree):
            if not isinstance(node, ast.ClassDef):
                continue
            for base in node.bases:
                origin = imported.get(base.id) if isinstance(base, ast.Name) else None
                if origin and closed.get(origin) and module not in compiled:
                    offenders.append(f"{path.relative_to(ROOT)}: {node.name}({base.id})")
    assert offenders == []


@pytest.mark.skipif(
    not (native.PACKAGE_DIR / native.MANIFEST).exists(), reason="Corral is not compiled here"
)
def test_the_build_runs_compiled_and_corral_pure_runs_the_sources() -> None:
    """The build ``make install`` made: every listed module loads from its extension;
    with ``CORRAL_PURE=1`` from its ``.py``, and the process says why."""
    probe = (
        "import importlib, json, corral.native as n; "
        "files = [importlib.import_module(m).__file__ for m in n.MODULES]; "
        "print(json.dumps({'active': n.active(), 'disabled': n.disabled, 'files': files}))"
    )
    env = {k: v for k, v in os.environ.items() if k != native.PURE_ENV}
    out = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True
    )
    got = json.loads(out.stdout)
    assert got["active"] and got["disabled"] == []
    assert all(f.endswith(".so") for f in got["files"])
    env[native.PURE_ENV] = "1"
    out = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True
    )
    got = json.loads(out.stdout)
    assert not got["active"] and got["disabled"] == ["CORRAL_PURE=1"]
    assert all(f.endswith(".py") for f in got["files"])
