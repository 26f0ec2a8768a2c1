"""Mesos task pods as this node runs them: their sandbox, environment and mounts.

A pod is a Mesos task when it carries the ``corral.api.mesos.TASK_ID`` annotation (the
master, ``corral.mesos``, writes it when it turns a TaskInfo into a Pod). The pod worker
(``agent/pods.py``) asks :func:`task_of` once per pod and, for a task:

- makes the sandbox, ``<agent data dir>/mesos/sandboxes/<pod uid>``, before the first
  container starts and fetches the task's URIs into it (``mesos_fetch.py``) once;
- runs every container with the sandbox as working directory and ``MESOS_SANDBOX`` /
  ``MESOS_DIRECTORY`` in its environment (:func:`task_env`) and, under the ``oci``
  driver, the mounts of :func:`task_mounts`;
- for a host-command task (annotation ``HOST_COMMAND`` = "true") pulls no image and asks
  the driver for the host's own root (``ContainerSpec.host_rootfs``);
- removes the sandbox with the pod's other resources.

Where the sandbox appears, as Mesos puts it::

                       process driver     oci driver
    host-command task  host path          host path (host root read-only, sandbox rw,
                                          TMPDIR = <sandbox>/tmp)
    image task         host path          /mnt/mesos/sandbox (bind of the host path)

``MESOS_DIRECTORY`` is always the host path (as Mesos sets it for executors). The task's
output is also appended to the sandbox's ``stdout`` and ``stderr`` files, as Mesos
writes them (``kubectl logs`` reads the CRI log as for any pod).

The fetch blocks, so it runs on a small thread pool of its own; a pod deleted while its
URIs download is reclaimed when the fetch ends (every read times out after
``mesos_fetch.STALL_TIMEOUT``), so that nothing writes into a sandbox being removed.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import stat
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from corral.api import mesos

from .drivers.base import Mount
from .mesos_fetch import FetchError, chown_tree, fetch_all, parse_uris

#: where an image task sees its sandbox (Mesos' ``--sandbox_directory`` default)
CONTAINER_SANDBOX = "/mnt/mesos/sandbox"
#: under the pod's directory once the URIs are in the sandbox (an agent restart keeps it)
FETCHED_MARKER = "mesos-fetched"
#: the sandbox subdirectory a host-command task under ``oci`` gets as its TMPDIR
#: (the host's root is read-only; Mesos' documented ``filesystem/shared`` recipe)
TMP_DIR = "tmp"

#: fetches run on their own few threads: slow downloads never hold up the loop's default
#: executor (which the agent's other blocking steps use), and at most this many run at once
FETCH_THREADS = 4

Obj = dict[str, Any]
_fetchers: ThreadPoolExecutor | None = None


@dataclass(frozen=True)
class MesosTask:
    """What the agent needs to know of one task pod."""

    task_id: str
    host_command: bool
    uris: str | None  # the raw ``URIS`` annotation (parsed by the fetcher)
    sandbox: Path  # on the host


def sandboxes_dir(data_dir: Path) -> Path:
    """Where an agent whose data directory is ``data_dir`` keeps task sandboxes."""
    return data_dir / "mesos" / "sandboxes"


def task_of(pod: Obj, sandboxes: Path) -> MesosTask | None:
    """The Mesos task ``pod`` runs, or None for any other pod."""
    meta = pod.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    task_id = annotations.get(mesos.TASK_ID)
    if task_id is None:
        return None
    return MesosTask(
        task_id=str(task_id),
        host_command=str(annotations.get(mesos.HOST_COMMAND, "")).lower() == "true",
        uris=annotations.get(mesos.URIS),
        sandbox=sandboxes / str(meta.get("uid") or ""),
    )


def container_sandbox(task: MesosTask, driver: str) -> str:
    """The sandbox's path as the task's processes see it under ``driver``."""
    if driver == "oci" and not task.host_command:
        return CONTAINER_SANDBOX
    return str(task.sandbox)


def task_env(task: MesosTask, driver: str, env: dict[str, str], own: Iterable[str]) -> None:
    """Add ``MESOS_SANDBOX`` and ``MESOS_DIRECTORY`` to ``env``; names in ``own`` (the
    container's explicit ``env``) win, as a CommandInfo's environment does in Mesos."""
    mine = set(own)
    values = {
        "MESOS_SANDBOX": container_sandbox(task, driver),
        "MESOS_DIRECTORY": str(task.sandbox),
    }
    if driver == "oci" and task.host_command:
        tmp = scratch_dir(task)  # the host's /tmp is read-only in there
        if tmp is not None:
            values["TMPDIR"] = str(tmp)
    for k, v in values.items():
        if k not in mine:
            env[k] = v


def task_mounts(task: MesosTask, driver: str) -> tuple[Mount, ...]:
    """The mounts that bring the sandbox into an ``oci`` container (nothing for other
    drivers: they have no mount namespace). Goes before the pod's volume mounts."""
    if driver != "oci":
        return ()
    if not task.host_command:
        return (Mount(str(task.sandbox), CONTAINER_SANDBOX),)
    # the host's /tmp stays visible (read-only, as the rest of the host's root: programs
    # and virtualenvs living there must still run); the task's scratch space is TMPDIR,
    # a directory of its sandbox (``task_env``)
    return (Mount(str(task.sandbox), str(task.sandbox)),)


def scratch_dir(task: MesosTask) -> Path | None:
    """``<sandbox>/tmp``, made world-writable (sticky) as a /tmp is, or None when the
    task made that name something else."""
    tmp = task.sandbox / TMP_DIR
    try:
        tmp.mkdir()
        tmp.chmod(0o1777)
    except FileExistsError:
        if not stat.S_ISDIR(tmp.lstat().st_mode):
            return None
    except OSError:
        return None
    return tmp


def prepare_sandbox(task: MesosTask, uid: int | None = None, gid: int | None = None) -> int:
    """Make the sandbox, fetch the task's URIs into it and give it all to ``uid``/``gid``
    (the task's user, when set); returns how many URIs were fetched. Blocking (the pod
    worker runs it in a thread); every failure is a ``FetchError`` saying what failed."""
    try:
        task.sandbox.mkdir(parents=True, exist_ok=True)
        task.sandbox.chmod(0o755)
        uris = parse_uris(task.uris)
        fetch_all(uris, task.sandbox)
        chown_tree(task.sandbox, uid, gid)
    except OSError as e:
        raise FetchError(f"sandbox {task.sandbox}: {e.strerror or e}") from None
    return len(uris)


async def prepare_sandbox_in_thread(
    task: MesosTask, uid: int | None = None, gid: int | None = None
) -> int:
    """:func:`prepare_sandbox` on one of the ``FETCH_THREADS`` fetcher threads."""
    global _fetchers
    if _fetchers is None:
        _fetchers = ThreadPoolExecutor(FETCH_THREADS, thread_name_prefix="mesos-fetch")
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_fetchers, prepare_sandbox, task, uid, gid)


def remove_sandbox(task: MesosTask) -> None:
    shutil.rmtree(task.sandbox, ignore_errors=True)


def orphan_sandboxes(sandboxes: Path, live_uids: set[str]) -> list[Path]:
    """Sandboxes of pods not in ``live_uids`` (left by an agent that was stopped while
    their pods were deleted)."""
    try:
        names = os.listdir(sandboxes)
    except OSError:
        return []
    return [sandboxes / n for n in sorted(names) if n not in live_uids]


__all__ = [
    "CONTAINER_SANDBOX",
    "FETCHED_MARKER",
    "TMP_DIR",
    "MesosTask",
    "container_sandbox",
    "orphan_sandboxes",
    "prepare_sandbox",
    "prepare_sandbox_in_thread",
    "remove_sandbox",
    "sandboxes_dir",
    "task_env",
    "task_mounts",
    "task_of",
]
