"""The dashboard's files under ``/ui/``: the page, its ES modules and its CSS, served
from ``STATIC_DIR`` inside the package (no build step, nothing fetched from elsewhere).

Called by ``Dashboard.handle`` (``dashboard/__init__.py``) for ``GET``/``HEAD /ui/<path>``
before any authentication: the shell holds no data (every datum comes from the API with
the user's token), like upstream's public ``/version``.

Shaped so:

- ``resolve`` is the only door to the disk: a path is split into segments and refused
  (None, a 404 Status) when any segment is empty, ``.``, ``..``, a dotfile, or holds a
  backslash or NUL, and when the file it names (symlinks followed) is not a regular file
  under the root. Pure but for ``stat``, so it is unit-tested with a temp directory.
- Files are small and few: each is read once and kept with its gzip form and ETag,
  re-read when its (mtime, size) changes (editing a file in a checkout shows at once).
- ``Cache-Control: no-cache`` plus a strong ETag: the browser revalidates every load and
  gets a 304 for what it holds, so a new version of the page is never mixed with old
  modules. The gzip form has its own ETag (``Vary: Accept-Encoding``).
- Every answer carries ``SECURITY_HEADERS``: a CSP allowing only this origin (no inline
  script or style, no framing), ``nosniff`` and no referrer.
"""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from corral.api import errors
from corral.util.accept_encoding import accepts_gzip

#: the files of the page (``index.html``, ``app.css``, ``js/...``), shipped in the wheel
STATIC_DIR = Path(__file__).resolve().parent / "static"
INDEX = "index.html"

#: what each extension is served as; anything else is ``application/octet-stream``
CONTENT_TYPES: dict[str, str] = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".json": "application/json",
    ".txt": "text/plain; charset=utf-8",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".woff2": "font/woff2",
}
DEFAULT_TYPE = "application/octet-stream"
#: types worth compressing (the images and fonts above are compressed already)
COMPRESSIBLE = ("text/", "image/svg+xml", "application/json")
#: smaller bodies are sent as they are: gzip's header costs more than it saves
GZIP_MIN = 1024

CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS: dict[str, str] = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def content_type(name: str) -> str:
    """The Content-Type of a file name, by its extension (any case)."""
    dot = name.rfind(".")
    return CONTENT_TYPES.get(name[dot:].lower(), DEFAULT_TYPE) if dot >= 0 else DEFAULT_TYPE


def safe_parts(rel: str) -> list[str] | None:
    """The segments of a path below ``/ui/`` ("" is the index), or None when one of
    them could leave the root or name a hidden file (module docstring)."""
    if rel == "":
        return [INDEX]
    parts = rel.split("/")
    for p in parts:
        if not p or p.startswith(".") or "\\" in p or "\x00" in p:
            return None
    return parts


def resolve(root: Path, rel: str) -> Path | None:
    """The regular file under ``root`` that ``rel`` names, or None (refused or absent)."""
    parts = safe_parts(rel)
    if parts is None:
        return None
    try:
        base = root.resolve()
        path = base.joinpath(*parts).resolve()
    except (OSError, RuntimeError, ValueError):  # a symlink loop, a name the OS refuses
        return None
    if not path.is_relative_to(base) or not path.is_file():
        return None
    return path


def etag_matches(if_none_match: str, etag: str) -> bool:
    """RFC 9110's weak comparison of ``If-None-Match`` against ``etag``: ``*``, or any
    listed tag equal once a ``W/`` prefix is dropped."""
    if if_none_match.strip() == "*":
        return True
    bare = etag.removeprefix("W/")
    return any(t.strip().removeprefix("W/") == bare for t in if_none_match.split(","))


@dataclass(frozen=True)
class StaticFile:
    """One file as served: its bytes (and gzip form when worth it), ETags and type."""

    stamp: tuple[int, int]  # (mtime_ns, size) of what was read
    body: bytes
    etag: str
    content_type: str
    gzipped: bytes | None = None
    gzip_etag: str = ""


def load(path: Path) -> StaticFile:
    """Read ``path`` and compute what ``StaticFiles`` serves of it."""
    st = path.stat()
    body = path.read_bytes()
    ctype = content_type(path.name)
    tag = hashlib.sha256(body).hexdigest()[:24]
    gz: bytes | None = None
    if len(body) >= GZIP_MIN and ctype.startswith(COMPRESSIBLE):
        gz = gzip.compress(body, compresslevel=9, mtime=0)
        if len(gz) >= len(body):
            gz = None
    return StaticFile(
        (st.st_mtime_ns, st.st_size),
        body,
        f'"{tag}"',
        ctype,
        gz,
        f'"{tag}-gzip"' if gz is not None else "",
    )


class StaticFiles:
    """The files under one root, cached in memory; ``response`` answers a request."""

    def __init__(self, root: Path = STATIC_DIR) -> None:
        self.root = root
        self._cache: dict[Path, StaticFile] = {}

    def get(self, rel: str) -> StaticFile | None:
        """The file ``rel`` names (re-read when changed on disk), or None."""
        path = resolve(self.root, rel)
        if path is None:
            return None
        try:
            st = path.stat()
            cached = self._cache.get(path)
            if cached is not None and cached.stamp == (st.st_mtime_ns, st.st_size):
                return cached
            f = self._cache[path] = load(path)
        except OSError:  # removed between resolve and read
            self._cache.pop(path, None)
            return None
        return f

    def response(self, request: web.Request, rel: str) -> web.Response:
        """``GET``/``HEAD`` of ``/ui/<rel>``: the file, or 304 for the ETag the browser
        holds; 404 Status when there is no such file, 405 for another method."""
        if request.method not in ("GET", "HEAD"):
            raise errors.method_not_allowed()
        f = self.get(rel)
        if f is None:
            raise errors.path_not_found()
        headers = {**SECURITY_HEADERS, "Cache-Control": "no-cache"}
        body, etag = f.body, f.etag
        if f.gzipped is not None:
            headers["Vary"] = "Accept-Encoding"
            if accepts_gzip(request.headers.get("Accept-Encoding", "")):
                body, etag = f.gzipped, f.gzip_etag
                headers["Content-Encoding"] = "gzip"
        headers["ETag"] = etag
        inm = request.headers.get("If-None-Match")
        if inm is not None and etag_matches(inm, etag):
            headers.pop("Content-Encoding", None)
            return web.Response(status=304, headers=headers)
        headers["Content-Type"] = f.content_type
        return web.Response(body=body, headers=headers)
