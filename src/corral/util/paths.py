"""Paths given on the command line, made absolute once: the agent hands its data
directory's paths to processes that run elsewhere (conmon runs in a container's state
directory, ``corral down`` finds a cluster's processes by their absolute paths)."""

from __future__ import annotations

from pathlib import Path


def absolute_path(text: str) -> Path:
    """An argparse ``type``: ``text`` as an absolute path (symlinks kept)."""
    return Path(text).absolute()
