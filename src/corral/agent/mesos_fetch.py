"""The Mesos fetcher: a task's ``CommandInfo.URI`` list, downloaded into its sandbox.

The pod worker (``agent/pods.py``) calls :func:`fetch_all` (in a thread: it blocks on
the network and the disk) once per Mesos task pod, after the sandbox directory exists
and before the first container starts; a :class:`FetchError` stops the task from
starting and its message is what ``kubectl describe pod`` shows. Nothing here knows
about pods: URIs in, files in a directory out.

Semantics follow Mesos' ``mesos-fetcher`` (``src/launcher/fetcher.cpp``, docs/fetcher.md):

- ``value``: ``http://`` / ``https://`` (urllib; a status other than 200 fails),
  ``file:///abs/path`` (also ``file://localhost/abs/path``) or a plain absolute path
  (copied). Relative paths need Mesos' ``--frameworks_home`` and are refused, as are
  other schemes (ftp, hdfs, s3: Mesos hands those to a Hadoop client).
- the local name is ``output_file`` (relative, inside the sandbox; parent directories are
  made) or the URI's basename (Mesos' rule: the last ``/``-separated part; the query and
  fragment of an http URL are dropped, unlike Mesos, so ``x.tgz?sig=..`` still extracts).
- ``executable``: mode 0755 and no extraction.
- ``extract`` (default true): ``.tar .tgz .tar.gz .tbz2 .tar.bz2 .txz .tar.xz .zip`` are
  unpacked into the sandbox (the archive stays beside its contents, as with Mesos); a
  bare ``.gz`` is gunzipped to its name without the suffix; anything else stays as is.
  Unpacking is safe: a member with an absolute path, a ``..`` that leaves the sandbox, a
  link pointing out of it or a device node fails the fetch (``tarfile``'s ``data``
  filter, plus the same checks for zip), so nothing lands outside the sandbox.
- ``cache``: accepted and ignored; every URI is fetched directly (Mesos' default).
"""

from __future__ import annotations

import gzip
import json
import os
import posixpath
import shutil
import stat
import tarfile as _stdlib_tarfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# The extraction filters (PEP 706) came in CPython 3.11.4; Debian 12's python3.11 (3.11.2)
# has not got them: the backport of the module has.
if hasattr(_stdlib_tarfile, "data_filter"):
    tarfile = _stdlib_tarfile
else:  # pragma: no cover - depends on the interpreter
    from backports import tarfile  # type: ignore[no-redef,import-untyped]


#: a download that receives nothing for this long fails (Mesos' --fetcher_stall_timeout)
STALL_TIMEOUT = 60.0
EXECUTABLE_MODE = 0o755
_CHUNK = 1 << 20
TAR_SUFFIXES = (".tar", ".tgz", ".tar.gz", ".tbz2", ".tar.bz2", ".txz", ".tar.xz")
ZIP_SUFFIX = ".zip"
GZIP_SUFFIX = ".gz"


class FetchError(Exception):
    """A URI could not be fetched; ``message`` says which and why."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Uri:
    """One ``CommandInfo.URI``."""

    value: str
    executable: bool = False
    extract: bool = True
    cache: bool = False
    output_file: str | None = None


def parse_uris(raw: str | None) -> list[Uri]:
    """The URIs of the ``URIS`` annotation (a JSON list of CommandInfo.URI objects; a bare
    string stands for ``{"value": it}``); ``FetchError`` if it is malformed."""
    if not raw:
        return []
    try:
        doc = json.loads(raw)
    except ValueError as e:
        raise FetchError(f"invalid URI list: {e}") from None
    if not isinstance(doc, list):
        raise FetchError("invalid URI list: not a JSON list")
    out = []
    for i, item in enumerate(doc):
        if isinstance(item, str):
            item = {"value": item}
        if not isinstance(item, dict) or not isinstance(item.get("value"), str):
            raise FetchError(f"invalid URI #{i}: needs a string 'value'")
        output = item.get("output_file")
        if output is not None and not isinstance(output, str):
            raise FetchError(f"invalid URI #{i}: 'output_file' must be a string")
        out.append(
            Uri(
                value=item["value"],
                executable=_flag(item, "executable", False),
                extract=_flag(item, "extract", True),
                cache=_flag(item, "cache", False),
                output_file=output,
            )
        )
    return out


def _flag(item: dict[str, Any], key: str, default: bool) -> bool:
    v = item.get(key)
    return default if v is None else bool(v)


# --- names ----------------------------------------------------------------------------------


def basename(value: str) -> str:
    """Mesos' ``Fetcher::basename``: the local name of a URI without ``output_file``."""
    if any(c in value for c in "\\'\0"):
        raise FetchError(f"illegal characters in URI {value!r}")
    index = value.find("://")
    if index > 1:
        rest = value[index + 3 :]
        if value.startswith(("http://", "https://")):
            rest = rest.split("?", 1)[0].split("#", 1)[0]
        slash = rest.find("/")
        if slash < 0 or len(rest) <= slash + 1:
            raise FetchError(f"malformed URI (missing path): {value}")
        name = rest[rest.rfind("/") + 1 :]
    else:
        name = posixpath.basename(value.rstrip("/"))
    if name in ("", ".", ".."):
        raise FetchError(f"URI {value!r} names no file")
    return urllib.parse.unquote(name) if index > 1 else name


def _inside(root: Path, path: Path) -> bool:
    return path == root or root in path.parents


def destination(uri: Uri, sandbox: Path) -> Path:
    """Where ``uri`` is written: ``output_file`` or its basename, inside ``sandbox``
    (missing parent directories are made); ``FetchError`` for a name that leaves it."""
    name = uri.output_file if uri.output_file is not None else basename(uri.value)
    if not name or Path(name).name in ("", ".", "..") or name.endswith("/"):
        raise FetchError(f"URI {uri.value}: output file name {name!r} names no file")
    root = sandbox.resolve()
    parent = (root / name).parent.resolve()  # through links made by earlier URIs, too
    if name.startswith("/") or not _inside(root, parent):
        raise FetchError(f"URI {uri.value}: output file {name!r} must be within the sandbox")
    parent.mkdir(parents=True, exist_ok=True)
    return parent / Path(name).name


# --- downloading ----------------------------------------------------------------------------


def _local_path(value: str) -> str | None:
    """The file a local URI names, None for a network URI; ``FetchError`` if unsupported."""
    v = value.lstrip()
    if v.startswith("file://"):
        path = urllib.parse.unquote(v[len("file://") :])
        if path.startswith("localhost/"):
            path = path[len("localhost") :]
        if not path.startswith("/"):
            raise FetchError(f"file URI {value!r}: only absolute paths are supported")
        return path
    if "://" in v:
        if v.startswith(("http://", "https://")):
            return None
        scheme = v.split("://", 1)[0]
        raise FetchError(f"URI {value!r}: scheme {scheme!r} is not supported by this agent")
    if not v.startswith("/"):
        raise FetchError(
            f"URI {value!r}: a relative path needs the Mesos frameworks home, "
            "which this agent does not have; give an absolute path"
        )
    return v


def download(value: str, target: Path, timeout: float = STALL_TIMEOUT) -> None:
    """Copy or download ``value`` to ``target``; ``FetchError`` on any failure."""
    path = _local_path(value)
    try:
        if path is not None:
            if not stat.S_ISREG(os.stat(path).st_mode):
                what = "a directory" if os.path.isdir(path) else "not a regular file"
                raise FetchError(f"failed to fetch {value!r}: {path} is {what}")
            shutil.copy(path, target)  # (with its mode, as Mesos' cp)
            return
        req = urllib.request.Request(value.strip(), headers={"User-Agent": "corral-fetcher"})
        with urllib.request.urlopen(req, timeout=timeout) as resp, open(target, "wb") as out:
            if resp.status != 200:
                raise FetchError(f"failed to fetch {value!r}: HTTP {resp.status} {resp.reason}")
            while chunk := resp.read(_CHUNK):
                out.write(chunk)
    except urllib.error.HTTPError as e:
        e.close()  # (it holds the connection)
        raise FetchError(f"failed to fetch {value!r}: HTTP {e.code} {e.reason}") from None
    except urllib.error.URLError as e:
        raise FetchError(f"failed to fetch {value!r}: {e.reason}") from None
    except TimeoutError:
        raise FetchError(f"failed to fetch {value!r}: timed out") from None
    except OSError as e:
        raise FetchError(f"failed to fetch {value!r}: {e.strerror or e}") from None


# --- extracting -----------------------------------------------------------------------------


def archive_kind(name: str) -> str | None:
    """``"tar"``, ``"zip"``, ``"gz"`` (a bare gzipped file) or None, by the name's suffix."""
    if name.endswith(TAR_SUFFIXES):
        return "tar"
    if name.endswith(ZIP_SUFFIX):
        return "zip"
    if name.endswith(GZIP_SUFFIX):
        return "gz"
    return None


def _check_member(name: str, archive: str) -> None:
    """Refuse a member path that is absolute or climbs out of the extraction root."""
    norm = posixpath.normpath(name)
    if name.startswith("/") or norm == ".." or norm.startswith("../"):
        raise FetchError(f"archive {archive}: member {name!r} would land outside the sandbox")


def _extract_tar(archive: Path, dest: Path) -> None:
    with tarfile.open(archive, "r:*") as tar:
        members = tar.getmembers()
        for m in members:
            _check_member(m.name, archive.name)
        # the data filter refuses links leaving ``dest``, absolute link targets, device
        # nodes, and clears setuid/setgid and group/other write bits
        tar.extractall(dest, members=members, filter="data")


def _extract_zip(archive: Path, dest: Path) -> None:
    root = dest.resolve()
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        for info in infos:
            _check_member(info.filename, archive.name)
        for info in infos:
            target = (root / info.filename).resolve()
            if not _inside(root, target):  # through a symlink made by an earlier fetch
                raise FetchError(
                    f"archive {archive.name}: member {info.filename!r} would land outside "
                    "the sandbox"
                )
            zf.extract(info, root)
            mode = (info.external_attr >> 16) & 0o777
            if info.create_system == 3 and mode and not info.is_dir():  # made on Unix
                os.chmod(target, mode & ~0o022)


def _gunzip(archive: Path, dest: Path) -> None:
    out = dest / archive.name[: -len(GZIP_SUFFIX)]
    if not out.name:
        raise FetchError(f"cannot gunzip {archive.name}: no name left")
    with gzip.open(archive, "rb") as src, open(out, "wb") as dst:
        shutil.copyfileobj(src, dst, _CHUNK)


def extract(archive: Path, dest: Path) -> bool:
    """Unpack ``archive`` into ``dest`` if its name says it is one; False if it is not."""
    kind = archive_kind(archive.name)
    if kind is None:
        return False
    try:
        if kind == "tar":
            _extract_tar(archive, dest)
        elif kind == "zip":
            _extract_zip(archive, dest)
        else:
            _gunzip(archive, dest)
    except FetchError:
        raise
    except tarfile.FilterError as e:
        raise FetchError(f"archive {archive.name}: unsafe member refused: {e}") from None
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, gzip.BadGzipFile) as e:
        raise FetchError(f"failed to extract {archive.name}: {e}") from None
    except OSError as e:
        raise FetchError(f"failed to extract {archive.name}: {e.strerror or e}") from None
    return True


# --- the whole fetch ------------------------------------------------------------------------


def fetch(uri: Uri, sandbox: Path, timeout: float = STALL_TIMEOUT) -> Path:
    """Fetch one URI into ``sandbox`` as ``mesos-fetcher`` does; returns the local file."""
    target = destination(uri, sandbox)
    download(uri.value, target, timeout)
    if uri.executable:
        os.chmod(target, EXECUTABLE_MODE)
    elif uri.extract:
        extract(target, sandbox)
    return target


def fetch_all(uris: list[Uri], sandbox: Path, timeout: float = STALL_TIMEOUT) -> list[Path]:
    """Fetch every URI in order; the first failure raises ``FetchError`` (the rest are not
    fetched: the task will not start anyway)."""
    return [fetch(u, sandbox, timeout) for u in uris]


def chown_tree(root: Path, uid: int | None, gid: int | None) -> None:
    """Give ``root`` and everything under it to ``uid``/``gid`` (the task's user, as Mesos
    chowns the sandbox); None keeps that id."""
    if uid is None and gid is None:
        return
    u, g = -1 if uid is None else uid, -1 if gid is None else gid
    os.lchown(root, u, g)
    for dirpath, dirs, files in os.walk(root):
        for name in [*dirs, *files]:
            os.lchown(os.path.join(dirpath, name), u, g)


__all__ = [
    "EXECUTABLE_MODE",
    "STALL_TIMEOUT",
    "FetchError",
    "Uri",
    "archive_kind",
    "basename",
    "chown_tree",
    "destination",
    "download",
    "extract",
    "fetch",
    "fetch_all",
    "parse_uris",
]
