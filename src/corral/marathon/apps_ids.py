"""Marathon's path ids (``PathId``): the canonical form (``canonicalPath``), the parent
group, and the id rules (the RAML ``strings.PathId`` pattern, ``pathIdValidator``'s
messages).

Pure. ``apps.normalize`` resolves an app's id and dependencies against its group with
``canonical_id``; ``apps_schema`` reads ids with ``path_id_ok`` and ``apps_rules`` reports
``path_errors``; ``groups.py`` resolves and checks group ids and dependencies with the
same functions (imported from ``apps``). The rules return messages instead of raising so
that each caller files them at its own path (``/id``, ``/dependencies(0)``,
``/groups(1)/id``).
"""

from __future__ import annotations

import re

__all__ = [
    "ID_PATTERN_MESSAGE",
    "RESERVED_IDS",
    "RESERVED_MESSAGE",
    "canonical_id",
    "parent_id",
    "path_errors",
    "path_id_ok",
    "split_id",
]

RESERVED_IDS = ("restart", "tasks", "versions", ".", "..")

# ``PathId.ID_PATH_SEGMENT_PATTERN`` without "." and "..", written without nested stars
_DNS_RE = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*")

ID_PATTERN_MESSAGE = (
    "must fully match regular expression "
    "'^(([a-z0-9]|[a-z0-9][a-z0-9\\-]*[a-z0-9])\\.)*([a-z0-9]|[a-z0-9][a-z0-9\\-]*[a-z0-9])|(\\.|\\.\\.)$'"
)
RESERVED_MESSAGE = "must not end with any of the following reserved keywords: " + ", ".join(
    RESERVED_IDS
)


def split_id(path: str) -> list[str]:
    """The names in ``path``, empty ones (``//``, leading and trailing ``/``) dropped."""
    return [s for s in path.split("/") if s]


def canonical_id(path: str, base: str = "/") -> str:
    """``PathId(path).canonicalPath(base)``: ``//`` collapsed, ``.`` dropped, ``..`` up
    one (never above the root), relative ids under ``base``."""
    segments = split_id(path) if path.startswith("/") else split_id(base) + split_id(path)
    out: list[str] = []
    for s in segments:
        if s == "..":
            if out:
                out.pop()
        elif s != ".":
            out.append(s)
    return "/" + "/".join(out)


def parent_id(path: str) -> str:
    """The group an (absolute, canonical) id is in."""
    return "/" + "/".join(split_id(path)[:-1])


def path_id_ok(value: str) -> bool:
    """The RAML ``strings.PathId`` pattern, piece by piece (each piece between slashes is
    empty, ``..`` or a lowercase DNS-like name; a lone ``.`` is not allowed there)."""
    return all(p == "" or p == ".." or _DNS_RE.fullmatch(p) for p in value.split("/"))


def path_errors(path: str) -> list[str]:
    """``PathId.pathIdValidator``'s messages for a canonical id (none: valid)."""
    segments = split_id(path)
    out = []
    if not all(s in (".", "..") or _DNS_RE.fullmatch(s) for s in segments):
        out.append(ID_PATTERN_MESSAGE)
    if segments and segments[-1] in RESERVED_IDS:
        out.append(RESERVED_MESSAGE)
    return out
