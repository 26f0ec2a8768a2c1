"""The Mesos fetcher (corral.agent.mesos_fetch) against a real HTTP server on 127.0.0.1
started here, real archives and the real filesystem: names (basename, output_file),
http and file URIs, tar and zip extraction, executable, and the refusals (paths leaving
the sandbox, bad URIs, HTTP errors)."""

from __future__ import annotations

import gzip
import http.server
import io
import json
import os
import stat
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import pytest

from corral.agent.mesos_fetch import (
    FetchError,
    Uri,
    archive_kind,
    basename,
    destination,
    fetch,
    fetch_all,
    parse_uris,
)

SCRIPT = b"#!/bin/sh\necho hello from the script\n"
TarMode = Literal["w", "w:gz", "w:bz2", "w:xz"]


class Files(http.server.BaseHTTPRequestHandler):
    """Serves ``files`` (path -> bytes); anything else is a 404."""

    files: dict[str, bytes] = {}

    def do_GET(self) -> None:
        body = self.files.get(self.path.split("?", 1)[0])
        if body is None:
            self.send_error(404, "Not Found")
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[tuple[str, dict[str, bytes]]]:
    files: dict[str, bytes] = {}
    handler = type("H", (Files,), {"files": files})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", files
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


@pytest.fixture
def sandbox(tmp_path: Path) -> Path:
    d = tmp_path / "sandbox"
    d.mkdir()
    return d


def tar_bytes(
    members: dict[str, bytes], mode: TarMode = "w:gz", links: dict[str, str] | None = None
) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o755 if data.startswith(b"#!") else 0o644
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tar.addfile(info)
    return buf.getvalue()


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            info = zipfile.ZipInfo(name)
            info.create_system = 3
            info.external_attr = (0o100755 if data.startswith(b"#!") else 0o100644) << 16
            zf.writestr(info, data)
    return buf.getvalue()


def listing(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


# --- names ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "name"),
    [
        ("http://host/a/b/app.tgz", "app.tgz"),
        ("https://host/app.tar.gz?sig=abc#frag", "app.tar.gz"),
        ("http://host/with%20space.txt", "with space.txt"),
        ("file:///srv/pkg/app.zip", "app.zip"),
        ("/srv/pkg/run.sh", "run.sh"),
        ("hdfs://namenode/x/y.jar", "y.jar"),
    ],
    ids=["http", "query-dropped", "unquoted", "file", "path", "other-scheme"],
)
def test_basename_follows_mesos(value: str, name: str) -> None:
    assert basename(value) == name


@pytest.mark.parametrize(
    "value",
    ["http://host", "http://host/", "/srv/it's", "http://host/x\\y"],
    ids=["no-path", "empty-path", "quote", "backslash"],
)
def test_basename_refuses_malformed_uris(value: str) -> None:
    with pytest.raises(FetchError):
        basename(value)


@pytest.mark.parametrize(
    ("name", "name_ok"),
    [
        ("out.txt", True),
        ("sub/dir/out.txt", True),
        ("../out.txt", False),
        ("sub/../../out.txt", False),
        ("/etc/out.txt", False),
        ("..", False),
        ("sub/", False),
    ],
    ids=["plain", "subdirs", "dotdot", "nested-dotdot", "absolute", "bare-dotdot", "dir"],
)
def test_output_file_stays_in_the_sandbox(sandbox: Path, name: str, name_ok: bool) -> None:
    uri = Uri("http://host/x", output_file=name)
    if name_ok:
        target = destination(uri, sandbox)
        assert sandbox.resolve() in target.parents
        assert target.parent.is_dir()
    else:
        with pytest.raises(FetchError, match=r"within the sandbox|names no file"):
            destination(uri, sandbox)
        assert not (sandbox.parent / "out.txt").exists()


def test_output_file_through_a_symlink_out_of_the_sandbox_is_refused(
    sandbox: Path, tmp_path: Path
) -> None:
    (sandbox / "escape").symlink_to(tmp_path)
    with pytest.raises(FetchError, match="within the sandbox"):
        destination(Uri("http://host/x", output_file="escape/x"), sandbox)


def test_parse_uris_defaults_and_errors() -> None:
    raw = json.dumps(
        [
            {"value": "http://h/a.tgz"},
            {"value": "/x/run.sh", "executable": True, "extract": False, "cache": True},
            {"value": "http://h/b", "output_file": "c/d"},
            "http://h/plain",
        ]
    )
    assert parse_uris(raw) == [
        Uri("http://h/a.tgz", executable=False, extract=True, cache=False),
        Uri("/x/run.sh", executable=True, extract=False, cache=True),
        Uri("http://h/b", output_file="c/d"),
        Uri("http://h/plain"),
    ]
    assert parse_uris(None) == [] and parse_uris("") == []
    for bad in ("{", "{}", "[1]", '[{"value": 3}]', '[{"value": "x", "output_file": 1}]'):
        with pytest.raises(FetchError, match="invalid URI"):
            parse_uris(bad)


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("a.tar", "tar"),
        ("a.tgz", "tar"),
        ("a.tar.gz", "tar"),
        ("a.tbz2", "tar"),
        ("a.tar.bz2", "tar"),
        ("a.txz", "tar"),
        ("a.tar.xz", "tar"),
        ("a.zip", "zip"),
        ("a.gz", "gz"),
        ("a.jar", None),
    ],
    ids=lambda v: str(v),
)
def test_archive_kinds(name: str, kind: str | None) -> None:
    assert archive_kind(name) == kind


# --- fetching -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("suffix", "mode"),
    [(".tar", "w"), (".tgz", "w:gz"), (".tar.gz", "w:gz"), (".tbz2", "w:bz2"), (".txz", "w:xz")],
    ids=["tar", "tgz", "tar.gz", "tbz2", "txz"],
)
def test_http_tarball_is_extracted_into_the_sandbox(
    server: tuple[str, dict[str, bytes]], sandbox: Path, suffix: str, mode: TarMode
) -> None:
    url, files = server
    files[f"/pkg/app{suffix}"] = tar_bytes(
        {"app/run.sh": SCRIPT, "app/conf/settings": b"x=1\n"}, mode
    )
    fetch(Uri(f"{url}/pkg/app{suffix}"), sandbox)
    assert listing(sandbox) == {
        f"app{suffix}", "app", "app/run.sh", "app/conf", "app/conf/settings",
    }  # fmt: skip
    assert (sandbox / "app/conf/settings").read_bytes() == b"x=1\n"
    assert os.access(sandbox / "app/run.sh", os.X_OK)  # modes survive


def test_zip_is_extracted_with_its_modes(
    server: tuple[str, dict[str, bytes]], sandbox: Path
) -> None:
    url, files = server
    files["/app.zip"] = zip_bytes({"bin/run.sh": SCRIPT, "data.txt": b"d"})
    fetch(Uri(f"{url}/app.zip"), sandbox)
    assert listing(sandbox) == {"app.zip", "bin", "bin/run.sh", "data.txt"}
    assert os.access(sandbox / "bin/run.sh", os.X_OK)
    assert not os.access(sandbox / "data.txt", os.X_OK)


def test_bare_gz_is_gunzipped(server: tuple[str, dict[str, bytes]], sandbox: Path) -> None:
    url, files = server
    files["/notes.txt.gz"] = gzip.compress(b"notes\n")
    fetch(Uri(f"{url}/notes.txt.gz"), sandbox)
    assert (sandbox / "notes.txt").read_bytes() == b"notes\n"


def test_extract_false_keeps_the_archive_packed(
    server: tuple[str, dict[str, bytes]], sandbox: Path
) -> None:
    url, files = server
    files["/app.tgz"] = tar_bytes({"inner": b"i"})
    fetch(Uri(f"{url}/app.tgz", extract=False), sandbox)
    assert listing(sandbox) == {"app.tgz"}


def test_executable_sets_0755_and_never_extracts(
    server: tuple[str, dict[str, bytes]], sandbox: Path
) -> None:
    url, files = server
    files["/tool.tgz"] = tar_bytes({"inner": b"i"})
    files["/run"] = SCRIPT
    fetch(Uri(f"{url}/tool.tgz", executable=True), sandbox)
    fetch(Uri(f"{url}/run", executable=True), sandbox)
    assert listing(sandbox) == {"tool.tgz", "run"}
    for name in ("tool.tgz", "run"):
        assert stat.S_IMODE((sandbox / name).stat().st_mode) == 0o755


def test_output_file_names_the_result_and_extracts_by_that_name(
    server: tuple[str, dict[str, bytes]], sandbox: Path
) -> None:
    url, files = server
    files["/download"] = tar_bytes({"payload": b"p"})
    fetch(Uri(f"{url}/download?id=7", output_file="pkgs/app.tgz"), sandbox)
    assert listing(sandbox) == {"pkgs", "pkgs/app.tgz", "payload"}


def test_non_archive_with_extract_is_just_kept(
    server: tuple[str, dict[str, bytes]], sandbox: Path
) -> None:
    url, files = server
    files["/app.jar"] = b"PK-not-really"
    (path,) = fetch_all([Uri(f"{url}/app.jar")], sandbox)
    assert path == sandbox.resolve() / "app.jar" and path.read_bytes() == b"PK-not-really"


@pytest.mark.parametrize("form", ["file", "file-localhost", "path"])
def test_local_files_are_copied(tmp_path: Path, sandbox: Path, form: str) -> None:
    src = tmp_path / "src" / "bundle.tar"
    src.parent.mkdir()
    src.write_bytes(tar_bytes({"from-local": b"l"}, "w"))
    value = {
        "file": f"file://{src}",
        "file-localhost": f"file://localhost{src}",
        "path": str(src),
    }[form]
    fetch(Uri(value), sandbox)
    assert listing(sandbox) == {"bundle.tar", "from-local"}
    assert src.exists()  # copied, not moved


# --- refusals ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("members", "links"),
    [
        ({"../escaped": b"x"}, None),
        ({"ok/../../escaped": b"x"}, None),
        ({"/tmp/corral-fetch-absolute-escape": b"x"}, None),
        ({}, {"link": "/etc"}),
        ({}, {"link": "../.."}),
        ({"link/escaped": b"x"}, {"link": ".."}),
    ],
    ids=["dotdot", "nested-dotdot", "absolute", "abs-symlink", "rel-symlink-out", "through-link"],
)
def test_tar_members_leaving_the_sandbox_are_refused(
    server: tuple[str, dict[str, bytes]],
    sandbox: Path,
    members: dict[str, bytes],
    links: dict[str, str] | None,
) -> None:
    url, files = server
    files["/evil.tar"] = tar_bytes(members, "w", links)
    with pytest.raises(FetchError, match=r"outside the sandbox|unsafe member"):
        fetch(Uri(f"{url}/evil.tar"), sandbox)
    assert not (sandbox.parent / "escaped").exists()
    assert not Path("/tmp/corral-fetch-absolute-escape").exists()
    assert not (sandbox / "link").is_symlink() or (sandbox / "link").resolve().is_relative_to(
        sandbox.resolve()
    )


@pytest.mark.parametrize(
    "name", ["../escaped", "/tmp/corral-fetch-zip-escape"], ids=["dotdot", "absolute"]
)
def test_zip_members_leaving_the_sandbox_are_refused(
    server: tuple[str, dict[str, bytes]], sandbox: Path, name: str
) -> None:
    url, files = server
    files["/evil.zip"] = zip_bytes({name: b"x", "fine": b"y"})
    with pytest.raises(FetchError, match="outside the sandbox"):
        fetch(Uri(f"{url}/evil.zip"), sandbox)
    assert not (sandbox.parent / "escaped").exists()
    assert not Path("/tmp/corral-fetch-zip-escape").exists()
    assert not (sandbox / "fine").exists()  # checked before anything is written


def test_http_error_says_which_uri_and_status(
    server: tuple[str, dict[str, bytes]], sandbox: Path
) -> None:
    url, _ = server
    with pytest.raises(FetchError) as err:
        fetch(Uri(f"{url}/missing.tgz"), sandbox)
    assert f"{url}/missing.tgz" in err.value.message and "HTTP 404" in err.value.message


def test_connection_refused_and_corrupt_archive_fail_cleanly(
    server: tuple[str, dict[str, bytes]], sandbox: Path
) -> None:
    url, files = server
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(FetchError, match="failed to fetch"):
        fetch(Uri(f"http://127.0.0.1:{port}/x.tgz"), sandbox, timeout=5)
    files["/broken.tgz"] = b"this is no gzip"
    with pytest.raises(FetchError, match=r"failed to extract broken\.tgz"):
        fetch(Uri(f"{url}/broken.tgz"), sandbox)


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ("relative/path.tgz", "frameworks home"),
        ("file://relative/x.tgz", "absolute"),
        ("ftp://host/x.tgz", "not supported"),
        ("s3://bucket/x.tgz", "not supported"),
        ("/does/not/exist.tgz", "No such file"),
    ],
    ids=["relative", "file-relative", "ftp", "s3", "missing-local"],
)
def test_unsupported_or_missing_sources_fail(sandbox: Path, value: str, match: str) -> None:
    with pytest.raises(FetchError, match=match):
        fetch(Uri(value), sandbox)


def test_only_regular_local_files_are_copied(tmp_path: Path, sandbox: Path) -> None:
    with pytest.raises(FetchError, match="is a directory"):
        fetch(Uri(str(tmp_path)), sandbox)
    with pytest.raises(FetchError, match="not a regular file"):
        fetch(Uri("/dev/zero"), sandbox)
    script = tmp_path / "run.sh"
    script.write_bytes(SCRIPT)
    script.chmod(0o750)
    fetch(Uri(str(script)), sandbox)
    assert stat.S_IMODE((sandbox / "run.sh").stat().st_mode) == 0o750  # its mode kept


def test_fetch_all_stops_at_the_first_failure(
    server: tuple[str, dict[str, bytes]], sandbox: Path
) -> None:
    url, files = server
    files["/a"] = b"a"
    files["/c"] = b"c"
    with pytest.raises(FetchError, match="/b"):
        fetch_all([Uri(f"{url}/a"), Uri(f"{url}/b"), Uri(f"{url}/c")], sandbox)
    assert listing(sandbox) == {"a"}
