"""``agent/securitycontext.py``: effective settings, the kubelet's runAsNonRoot check and
its messages, the user and groups from the image, and the seccomp choice."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from corral.agent.drivers.base import ImageInfo, StartError
from corral.agent.objects import ConfigError
from corral.agent.securitycontext import (
    effective,
    hardening,
    resolve_user,
    verify_run_as_non_root,
)

Obj = dict[str, Any]
POD_META = {"name": "web", "namespace": "ns1", "uid": "u-1"}
WHERE = '(pod: "web_ns1(u-1)", container: main)'


def _pod(psc: Obj | None = None) -> Obj:
    return {"metadata": POD_META, "spec": {"securityContext": psc or {}}}


def _image(user: str = "", root: Path | None = None) -> ImageInfo:
    config = {"User": user} if user else {}
    return ImageInfo("busybox", "sha256:x", root or Path("/nonexistent"), config)


def test_container_wins_over_pod() -> None:
    psc = {
        "runAsUser": 1, "runAsGroup": 2, "runAsNonRoot": True, "fsGroup": 7,
        "supplementalGroups": [8, 9], "seccompProfile": {"type": "RuntimeDefault"},
    }  # fmt: skip
    csc = {"runAsUser": 5, "seccompProfile": {"type": "Unconfined"}, "procMount": "Unmasked"}
    sec = effective(_pod(psc), {"name": "main", "securityContext": csc})
    assert sec["runAsUser"] == 5 and sec["runAsGroup"] == 2 and sec["runAsNonRoot"] is True
    assert sec["seccompProfile"] == {"type": "Unconfined"}
    assert sec["supplementalGroups"] == [7, 8, 9] and sec["procMount"] == "Unmasked"


@pytest.mark.parametrize(
    ("psc", "csc", "user", "message"),
    [
        ({}, {}, "", None),  # runAsNonRoot unset
        ({"runAsNonRoot": True}, {}, "", "container has runAsNonRoot and image will run as root"),
        ({"runAsNonRoot": True}, {}, "0:0", "image will run as root"),
        ({"runAsNonRoot": True}, {}, "1000", None),
        ({"runAsNonRoot": True}, {}, "1000:1000", None),
        (
            {"runAsNonRoot": True}, {}, "nobody",
            "container has runAsNonRoot and image has non-numeric user (nobody), cannot "
            "verify user is non-root",
        ),
        ({"runAsNonRoot": True}, {"runAsUser": 0}, "1000", "container's runAsUser breaks"),
        ({"runAsNonRoot": True}, {"runAsUser": 10}, "", None),
        ({}, {"runAsNonRoot": True}, "", "image will run as root"),
        ({"runAsNonRoot": True}, {"runAsNonRoot": False}, "", None),
    ],
    ids=[
        "unset", "image-root", "image-0:0", "image-numeric", "image-uid:gid", "image-named",
        "runAsUser-0", "runAsUser-10", "container-level", "container-overrides",
    ],
)  # fmt: skip
def test_run_as_non_root(psc: Obj, csc: Obj, user: str, message: str | None) -> None:
    container = {"name": "main", "securityContext": csc}
    sec = effective(_pod(psc), container)
    if message is None:
        verify_run_as_non_root(_pod(psc), container, sec, _image(user))
        return
    with pytest.raises(ConfigError) as e:
        verify_run_as_non_root(_pod(psc), container, sec, _image(user))
    assert message in e.value.message and e.value.message.endswith(WHERE)


PASSWD = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n"
GROUP = "root:x:0:\nwheel:x:10:app,root\napp:x:1001:\nstaff:x:50:app\n"


@pytest.mark.parametrize(
    ("user", "passwd", "want"),
    [
        ("app", PASSWD, (1000, 1001, (10, 50))),
        ("1000", PASSWD, (1000, 1001, (10, 50))),
        ("1000:5", PASSWD, (1000, 5, (10, 50))),
        ("app:staff", PASSWD, (1000, 50, (10, 50))),
        ("4242", PASSWD, (4242, 0, ())),
        ("4242", None, (4242, 0, ())),
        ("0", PASSWD, (0, 0, (10,))),
    ],
    ids=["name", "uid", "uid:gid", "name:group", "unknown-uid", "no-passwd", "root"],
)
def test_resolve_user(
    user: str, passwd: str | None, want: tuple[int, int, tuple[int, ...]]
) -> None:
    assert resolve_user(user, passwd, GROUP) == want


@pytest.mark.parametrize(
    ("user", "message"),
    [("ghost", "unable to find user ghost"), ("app:ghosts", "unable to find group ghosts")],
)
def test_resolve_user_unknown_names(user: str, message: str) -> None:
    with pytest.raises(StartError) as e:
        resolve_user(user, PASSWD, GROUP)
    assert e.value.reason == "CreateContainerError" and message in e.value.message


def test_hardening_reads_the_image_and_adds_pod_groups(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_text(PASSWD)
    (tmp_path / "etc" / "group").write_text(GROUP)
    psc = {"fsGroup": 2000, "supplementalGroups": [3000, 10]}
    csc = {"allowPrivilegeEscalation": False}
    sec = effective(_pod(psc), {"name": "main", "securityContext": csc})
    got = hardening(sec, _image("app", tmp_path), seccomp_root=None, seccomp_default=False)
    assert got == {
        "run_as_user": 1000, "run_as_group": 1001, "supplemental_groups": (10, 50, 2000, 3000),
        "no_new_privileges": True, "unmasked_proc": False, "seccomp": "Unconfined",
        "seccomp_profile": None,
    }  # fmt: skip
    sec = effective(_pod({"runAsGroup": 7}), {"name": "main"})
    got = hardening(sec, _image("", tmp_path), seccomp_root=None, seccomp_default=False)
    assert (got["run_as_user"], got["run_as_group"]) == (None, 7)


@pytest.mark.parametrize(
    ("psc", "csc", "default", "want"),
    [
        ({}, {}, False, "Unconfined"),
        ({}, {}, True, "RuntimeDefault"),
        ({"seccompProfile": {"type": "RuntimeDefault"}}, {}, False, "RuntimeDefault"),
        ({}, {"seccompProfile": {"type": "Unconfined"}}, True, "Unconfined"),
        (
            {"seccompProfile": {"type": "Unconfined"}},
            {"seccompProfile": {"type": "RuntimeDefault"}}, False, "RuntimeDefault",
        ),
        ({"seccompProfile": {"type": "RuntimeDefault"}}, {"privileged": True}, True, "Unconfined"),
        ({}, {"seccompProfile": {"type": "Localhost", "localhostProfile": "p.json"}}, False,
         "Localhost"),
    ],
    ids=[
        "unset", "seccomp-default", "pod", "container-unconfined", "container-wins",
        "privileged", "localhost",
    ],
)  # fmt: skip
def test_seccomp_choice(psc: Obj, csc: Obj, default: bool, want: str, tmp_path: Path) -> None:
    (tmp_path / "p.json").write_text(json.dumps({"defaultAction": "SCMP_ACT_ALLOW"}))
    sec = effective(_pod(psc), {"name": "main", "securityContext": csc})
    got = hardening(sec, None, seccomp_root=tmp_path, seccomp_default=default)
    assert got["seccomp"] == want
    assert got["seccomp_profile"] == (
        {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": []} if want == "Localhost" else None
    )
