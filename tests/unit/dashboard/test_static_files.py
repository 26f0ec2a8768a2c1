"""``dashboard/static_files.py``: which paths reach the disk (none that leave the root or
name a hidden file), content types, ETags and the in-memory cache."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from corral.dashboard import STATIC_DIR
from corral.dashboard.static_files import (
    GZIP_MIN,
    StaticFiles,
    content_type,
    etag_matches,
    resolve,
    safe_parts,
)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "static"
    (r / "js" / "views").mkdir(parents=True)
    (r / "index.html").write_text("<!doctype html><title>t</title>")
    (r / "js" / "app.js").write_text("export const x = 1;\n")
    (r / "js" / "views" / "nodes.js").write_text("export const route = '#/nodes';\n")
    (r / ".secret").write_text("no")
    (r / "js" / ".hidden.js").write_text("no")
    (tmp_path / "outside.txt").write_text("outside the root")
    (r / "link-out.txt").symlink_to(tmp_path / "outside.txt")
    (r / "link-in.js").symlink_to(r / "js" / "app.js")
    return r


@pytest.mark.parametrize(
    ("rel", "found"),
    [
        ("", "index.html"),
        ("index.html", "index.html"),
        ("js/app.js", "js/app.js"),
        ("js/views/nodes.js", "js/views/nodes.js"),
        ("link-in.js", "js/app.js"),
        ("../outside.txt", None),
        ("js/../index.html", None),
        ("js/../../outside.txt", None),
        ("./index.html", None),
        (".secret", None),
        ("js/.hidden.js", None),
        ("js//app.js", None),
        ("js/", None),
        ("js", None),
        ("js\\app.js", None),
        ("index.html\x00.js", None),
        ("link-out.txt", None),
        ("missing.js", None),
    ],
    ids=[
        "index", "index-by-name", "module", "nested", "symlink-inside", "dotdot",
        "dotdot-inside", "dotdot-twice", "dot", "dotfile", "nested-dotfile", "empty-segment",
        "directory-slash", "directory", "backslash", "nul", "symlink-out", "missing",
    ],
)  # fmt: skip
def test_resolve(root: Path, rel: str, found: str | None) -> None:
    got = resolve(root, rel)
    if found is None:
        assert got is None
    else:
        assert got == (root / found).resolve()


def test_safe_parts_index() -> None:
    assert safe_parts("") == ["index.html"]
    assert safe_parts("a/b.js") == ["a", "b.js"]
    assert safe_parts("a/../b.js") is None


@pytest.mark.parametrize(
    ("name", "ctype"),
    [
        ("index.html", "text/html; charset=utf-8"),
        ("app.js", "text/javascript; charset=utf-8"),
        ("APP.JS", "text/javascript; charset=utf-8"),
        ("app.css", "text/css; charset=utf-8"),
        ("logo.svg", "image/svg+xml"),
        ("data.json", "application/json"),
        ("blob.bin", "application/octet-stream"),
        ("Makefile", "application/octet-stream"),
    ],
    ids=["html", "js", "upper-case", "css", "svg", "json", "unknown", "no-extension"],
)
def test_content_type(name: str, ctype: str) -> None:
    assert content_type(name) == ctype


@pytest.mark.parametrize(
    ("header", "ok"),
    [('"a"', True), ('W/"a"', True), ('"b", "a"', True), ("*", True), ('"b"', False)],
    ids=["same", "weak", "in-list", "star", "other"],
)
def test_etag_matches(header: str, ok: bool) -> None:
    assert etag_matches(header, '"a"') is ok


def test_cache_reloads_a_changed_file(root: Path) -> None:
    files = StaticFiles(root)
    first = files.get("js/app.js")
    assert first is not None and first.body == b"export const x = 1;\n"
    assert files.get("js/app.js") is first  # unchanged: the cached one
    path = root / "js" / "app.js"
    path.write_text("export const x = 22;\n")
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    second = files.get("js/app.js")
    assert second is not None and second.body == b"export const x = 22;\n"
    assert second.etag != first.etag


def test_gzip_only_when_it_pays(root: Path) -> None:
    (root / "big.js").write_text("export const a = 1;\n" * (GZIP_MIN // 10))
    files = StaticFiles(root)
    big, small = files.get("big.js"), files.get("js/app.js")
    assert big is not None and big.gzipped is not None and len(big.gzipped) < len(big.body)
    assert big.gzip_etag and big.gzip_etag != big.etag
    assert small is not None and small.gzipped is None


def test_the_package_ships_its_index() -> None:
    assert (STATIC_DIR / "index.html").is_file()
