"""What a container's securityContext means on this node, as the kubelet and containerd's
CRI work it out: the effective settings, the ``runAsNonRoot`` check, the user and groups
the process runs as, and the seccomp profile.

The pod worker (``pods.py``) calls ``effective`` once per container start, then
``verify_run_as_non_root`` (a ``ConfigError``: the container waits with
``CreateContainerConfigError``, as the kubelet's does) and ``hardening`` (the
``ContainerSpec`` fields; a ``StartError``, ``CreateContainerError``, when a named user is
not in the image or a ``Localhost`` seccomp profile cannot be loaded).

Rules carried over:

- the container's ``runAsUser``, ``runAsGroup``, ``runAsNonRoot`` and ``seccompProfile``
  win over the pod's; capabilities, ``privileged``, ``readOnlyRootFilesystem``,
  ``allowPrivilegeEscalation`` and ``procMount`` are the container's alone;
- the user is ``runAsUser`` (``runAsGroup`` for the group), else the image's ``USER``
  (``uid``, ``name``, ``uid:gid``, ``name:group``, names looked up in the image's
  ``/etc/passwd`` and ``/etc/group``; a uid without a passwd entry gets gid 0), else root;
  the additional gids are the user's groups in the image's ``/etc/group``, the pod's
  ``fsGroup`` and its ``supplementalGroups``;
- seccomp: the container's profile, else the pod's, else ``RuntimeDefault`` with
  ``corral agent --seccomp-default`` (the kubelet's ``--seccomp-default``) and
  ``Unconfined`` without; ``Localhost`` profiles live under ``DATA/seccomp/``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .drivers.base import CREATE_CONTAINER_ERROR, ImageInfo, StartError
from .drivers.seccomp import load_localhost
from .objects import ConfigError

Obj = dict[str, Any]

#: fields the container's securityContext takes from the pod's when it has none
INHERITED = ("runAsUser", "runAsGroup", "runAsNonRoot", "seccompProfile")


def effective(pod: Obj, container: Obj) -> Obj:
    """The container's effective security settings (keys are the API's)."""
    psc = (pod.get("spec") or {}).get("securityContext") or {}
    csc = container.get("securityContext") or {}
    out: Obj = {k: csc.get(k, psc.get(k)) for k in INHERITED}
    out["capabilities"] = csc.get("capabilities") or {}
    out["privileged"] = bool(csc.get("privileged"))
    out["readOnlyRootFilesystem"] = bool(csc.get("readOnlyRootFilesystem"))
    out["allowPrivilegeEscalation"] = csc.get("allowPrivilegeEscalation")
    out["procMount"] = csc.get("procMount") or "Default"
    groups = [int(psc["fsGroup"])] if psc.get("fsGroup") is not None else []
    out["supplementalGroups"] = groups + [int(g) for g in psc.get("supplementalGroups") or []]
    return out


def image_user(image: ImageInfo | None) -> tuple[int | None, str]:
    """(uid, "") when the image's ``USER`` is numeric (or unset: root), else (None, name)."""
    user = str((image.config.get("User") if image is not None else "") or "")
    name = user.split(":", 1)[0]
    if not name:
        return 0, ""
    return (int(name), "") if name.isdigit() else (None, name)


def _pod_ref(pod: Obj) -> str:
    """The kubelet's ``format.Pod``, quoted as its ``%q`` does."""
    meta = pod.get("metadata") or {}
    return f'"{meta.get("name", "")}_{meta.get("namespace", "")}({meta.get("uid", "")})"'


def verify_run_as_non_root(pod: Obj, container: Obj, sec: Obj, image: ImageInfo | None) -> None:
    """``ConfigError`` with the kubelet's words when ``runAsNonRoot`` cannot hold."""
    if not sec.get("runAsNonRoot"):
        return
    where = f"(pod: {_pod_ref(pod)}, container: {container.get('name', '')})"
    if sec.get("runAsUser") is not None:
        if int(sec["runAsUser"]) == 0:
            raise ConfigError(f"container's runAsUser breaks non-root policy {where}")
        return
    uid, name = image_user(image)
    if uid is None:
        raise ConfigError(
            f"container has runAsNonRoot and image has non-numeric user ({name}), cannot "
            f"verify user is non-root {where}"
        )
    if uid == 0:
        raise ConfigError(f"container has runAsNonRoot and image will run as root {where}")


def _entries(text: str | None) -> list[list[str]]:
    """The colon-separated fields of each line of an ``/etc/passwd`` or ``/etc/group``."""
    out = []
    for line in (text or "").splitlines():
        if line.strip() and not line.startswith("#"):
            out.append(line.split(":"))
    return out


def resolve_user(
    user: str, passwd: str | None, group: str | None
) -> tuple[int, int, tuple[int, ...]]:
    """(uid, gid, the user's additional gids) for ``user`` (``uid``, ``name``, ``uid:gid``,
    ``name:group``) against the image's ``/etc/passwd`` and ``/etc/group`` texts (None:
    missing); ``StartError`` when a name is not found, as containerd's ``WithUser``."""
    users = [e for e in _entries(passwd) if len(e) >= 4 and e[2].isdigit() and e[3].isdigit()]
    groups = [e for e in _entries(group) if len(e) >= 3 and e[2].isdigit()]
    name_part, _, group_part = user.partition(":")
    if name_part.isdigit():
        uid = int(name_part)
        found = next((e for e in users if int(e[2]) == uid), None)
    else:
        found = next((e for e in users if e[0] == name_part), None)
        if found is None:
            raise StartError(
                CREATE_CONTAINER_ERROR, f"unable to find user {name_part}: no users found"
            )
        uid = int(found[2])
    gid = int(found[3]) if found is not None and not group_part else 0
    if group_part.isdigit():
        gid = int(group_part)
    elif group_part:
        g = next((e for e in groups if e[0] == group_part), None)
        if g is None:
            raise StartError(
                CREATE_CONTAINER_ERROR, f"unable to find group {group_part}: no groups found"
            )
        gid = int(g[2])
    username = found[0] if found is not None else ""
    extra = tuple(
        int(e[2])
        for e in groups
        if username and e[0] != username and len(e) >= 4 and username in e[3].split(",")
    )
    return uid, gid, extra


def _read(root: Path, rel: str) -> str | None:
    """A file of the image's root filesystem, not following links out of it."""
    path = root / rel
    try:
        if path.is_symlink() or not path.resolve().is_relative_to(root.resolve()):
            return None
        return path.read_text(errors="replace")
    except OSError:
        return None


def hardening(
    sec: Obj,
    image: ImageInfo | None,
    *,
    seccomp_root: Path | None,
    seccomp_default: bool,
) -> Obj:
    """The ``ContainerSpec`` fields for ``sec`` (from ``effective``): user, groups,
    ``noNewPrivileges``, ``/proc`` masking and seccomp. Reads the image's passwd and
    group files and a ``Localhost`` profile; raises ``StartError``."""
    run_as_user, run_as_group = sec.get("runAsUser"), sec.get("runAsGroup")
    image_spec = str((image.config.get("User") if image is not None else "") or "")
    user = str(run_as_user) if run_as_user is not None else image_spec
    uid: int | None = int(run_as_user) if run_as_user is not None else None
    gid: int | None = int(run_as_group) if run_as_group is not None else None
    extra: tuple[int, ...] = ()
    if user:
        passwd = group = None
        if image is not None and image.rootfs.is_dir():
            passwd = _read(image.rootfs, "etc/passwd")
            group = _read(image.rootfs, "etc/group")
        r_uid, r_gid, extra = resolve_user(user, passwd, group)
        uid = r_uid
        gid = gid if gid is not None else r_gid
    profile = sec.get("seccompProfile") or {}
    kind = str(profile.get("type") or ("RuntimeDefault" if seccomp_default else "Unconfined"))
    loaded: Obj | None = None
    if sec.get("privileged"):
        kind = "Unconfined"  # containerd never confines a privileged container
    elif kind == "Localhost":
        if seccomp_root is None:
            raise StartError(
                CREATE_CONTAINER_ERROR, "Localhost seccomp profiles are not set up on this node"
            )
        loaded = load_localhost(seccomp_root, str(profile.get("localhostProfile") or ""))
    return {
        "run_as_user": uid,
        "run_as_group": gid,
        "supplemental_groups": tuple(dict.fromkeys((*extra, *sec["supplementalGroups"]))),
        "no_new_privileges": sec.get("allowPrivilegeEscalation") is False,
        "unmasked_proc": sec.get("procMount") == "Unmasked",
        "seccomp": kind,
        "seccomp_profile": loaded,
    }
