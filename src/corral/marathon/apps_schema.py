"""Stage 1 of reading an app: Marathon's RAML types for an app
(``docs/docs/rest-api/public/api/v2/types/*.raml``) as a reader, with the enums, ranges
and defaults they declare.

Pure. ``apps.normalize`` calls ``read_app`` first on every body; the enums and defaults
are shared with ``apps_translate``, ``apps_rules``, ``apps.py`` (the canonical form) and
``apps_view`` (what the client accepts).

It is the RAML-generated play-json ``Reads``: types, ``minimum``, ``pattern``... each
failure is recorded at its JSON path with play-json's code (``{"path": "/cpus",
"errors": ["error.min"]}``), and ``apps.normalize`` raises them as ``Invalid JSON``.
Unknown keys are ignored and ``null`` is the same as leaving a key out. Each field group
(container, health check, port mapping...) is a table of ``(reader, default)`` built from
a few combinators, so that it reads like the RAML type it follows. A nested type's RAML
defaults are filled in here; the app's own (``DEFAULTS``) only at the end, by
``apps.py``, because a partial update must carry no more than the fields its body gives.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any, TypeVar

from corral.marathon.apps_errors import (
    E_ARR,
    E_BOOL,
    E_ENUM,
    E_INT,
    E_LONG,
    E_MAX,
    E_MAX_LEN,
    E_MIN,
    E_MIN_LEN,
    E_MISSING,
    E_NUM,
    E_OBJ,
    E_PATTERN,
    E_STR,
    Errors,
    Obj,
)
from corral.marathon.apps_ids import path_id_ok

__all__ = [
    "DEFAULTS",
    "DEFAULT_PORT_DEFINITION",
    "DEFAULT_ROLE",
    "DOCKER_NETWORKS",
    "ENGINES",
    "HEALTH_PROTOCOLS",
    "HOST_NETWORK",
    "HTTP_SCHEMES",
    "INT32",
    "INT64",
    "IP_PROTOCOLS",
    "KILL_SELECTIONS",
    "MESOS_HEALTH",
    "NETWORK_MODES",
    "PROTOCOLS",
    "READ_MODES",
    "default_mapping",
    "read_app",
    "unique_items",
]

T = TypeVar("T")

#: Marathon's defaults for a new app (RAML ``App``, ``AppDefinition``)
DEFAULTS: Mapping[str, Any] = {
    "backoffFactor": 1.15,
    "backoffSeconds": 1,
    "cpus": 1.0,
    "disk": 0.0,
    "executor": "",
    "gpus": 0,
    "instances": 1,
    "killSelection": "YOUNGEST_FIRST",
    "maxLaunchDelaySeconds": 300,
    "mem": 128.0,
    "requirePorts": False,
    "role": "*",
    "unreachableStrategy": {"inactiveAfterSeconds": 0, "expungeAfterSeconds": 0},
    "upgradeStrategy": {"minimumHealthCapacity": 1.0, "maximumOverCapacity": 1.0},
}
DEFAULT_ROLE = "*"
DEFAULT_PORT_DEFINITION: Mapping[str, Any] = {"port": 0, "protocol": "tcp", "name": "default"}
HOST_NETWORK: Mapping[str, Any] = {"mode": "host"}
INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)

ENGINES = ("DOCKER", "MESOS")
DOCKER_NETWORKS = ("BRIDGE", "HOST", "NONE", "USER")
NETWORK_MODES = ("container", "container/bridge", "host")
PROTOCOLS = ("tcp", "udp", "udp,tcp")
READ_MODES = ("RO", "RW")
HEALTH_PROTOCOLS = ("HTTP", "HTTPS", "TCP", "COMMAND", "MESOS_TCP", "MESOS_HTTP", "MESOS_HTTPS")
MESOS_HEALTH = ("MESOS_TCP", "MESOS_HTTP", "MESOS_HTTPS")
IP_PROTOCOLS = ("IPv4", "IPv6")
HTTP_SCHEMES = ("HTTP", "HTTPS")
KILL_SELECTIONS = ("YOUNGEST_FIRST", "OLDEST_FIRST")

_NAME_RE = re.compile(r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?")  # strings.Name, strings.LegacyName
_NETWORK_NAME_RE = re.compile(r"[a-z0-9](?:[-a-z0-9_]*[a-z0-9])?")
_EXECUTOR_RE = re.compile(r"//cmd|/?[^/]+(?:/[^/]+)*|")


def default_mapping(name: str | None = None) -> Obj:
    """A port mapping with the RAML defaults, as Marathon adds one where an app off the
    host network lacks it (``name`` only when given)."""
    m: Obj = {"containerPort": 0, "servicePort": 0, "protocol": "tcp", "labels": {}}
    if name is not None:
        m["name"] = name
    return m


# ---------------------------------------------------------------------------------------
# the reader

Read = Callable[["_Reader", Any, str], Any]
_ABSENT: Any = object()  # a field with no default


class _Reader:
    """play-json ``Reads`` with the RAML constraints: each method records its error and
    returns None for a bad value."""

    def __init__(self, errors: Errors) -> None:
        self.e = errors

    def bad(self, p: str, code: str) -> None:
        self.e.add(p, code)

    def string(
        self, v: Any, p: str, *, min_len: int = 0, max_len: int | None = None, pattern: Any = None
    ) -> Any:
        if not isinstance(v, str):
            return self.bad(p, E_STR)
        if len(v) < min_len:
            return self.bad(p, E_MIN_LEN)
        if max_len is not None and len(v) > max_len:
            return self.bad(p, E_MAX_LEN)
        ok = pattern is None or (
            pattern.fullmatch(v) if isinstance(pattern, re.Pattern) else pattern(v)
        )
        return v if ok else self.bad(p, E_PATTERN)

    def integer(
        self, v: Any, p: str, *, lo: int | None = None, hi: int | None = None, long: bool = False
    ) -> Any:
        code, (low, high) = (E_LONG, INT64) if long else (E_INT, INT32)
        if isinstance(v, bool) or not isinstance(v, int | float):
            return self.bad(p, E_NUM)
        if isinstance(v, float) and not (math.isfinite(v) and v.is_integer()):
            return self.bad(p, code)
        return self.bounded(int(v), p, lo, hi) if low <= v <= high else self.bad(p, code)

    def number(self, v: Any, p: str, *, lo: float | None = None, hi: float | None = None) -> Any:
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            return self.bad(p, E_NUM)
        return self.bounded(float(v), p, lo, hi)

    def bounded(self, n: float, p: str, lo: float | None, hi: float | None) -> Any:
        if lo is not None and n < lo:
            return self.bad(p, E_MIN)
        return self.bad(p, E_MAX) if hi is not None and n > hi else n

    def boolean(self, v: Any, p: str) -> Any:
        return v if isinstance(v, bool) else self.bad(p, E_BOOL)

    def enum(self, v: Any, p: str, values: Collection[str]) -> Any:
        if not isinstance(v, str):
            return self.bad(p, E_STR)
        return v if v in values else self.bad(p, E_ENUM)

    def array(self, v: Any, p: str, item: Read, *, min_items: int = 0, unique: bool = False) -> Any:
        if not isinstance(v, list):
            return self.bad(p, E_ARR)
        if len(v) < min_items:
            return self.bad(p, E_MIN_LEN)
        out = [x for x in (item(self, y, f"{p}({i})") for i, y in enumerate(v)) if x is not None]
        return unique_items(out) if unique else out

    def fields(
        self, v: Any, p: str, spec: Mapping[str, tuple[Read, Any]], required: Iterable[str] = ()
    ) -> Any:
        """An object: each ``spec`` key read when present, else its default (if any)."""
        if not isinstance(v, dict):
            return self.bad(p, E_OBJ)
        for key in required:
            if v.get(key) is None:
                self.bad(f"{p}/{key}", E_MISSING)
        out: Obj = {}
        for key, (read, default) in spec.items():
            if v.get(key) is not None:
                value = read(self, v[key], f"{p}/{key}")
                if value is not None:
                    out[key] = value
            elif default is not _ABSENT:
                out[key] = copy.deepcopy(default)
        return out

    def str_map(self, v: Any, p: str) -> Any:
        if not isinstance(v, dict):
            return self.bad(p, E_OBJ)
        return {k: x for k, x in v.items() if self.string(x, f"{p}/{k}") is not None}


def unique_items(items: Iterable[T]) -> list[T]:
    """A RAML ``uniqueItems`` array (a Scala ``Set``): duplicates dropped, order kept."""
    out: list[T] = []
    for x in items:
        if x not in out:
            out.append(x)
    return out


def _s(**kw: Any) -> Read:
    return lambda r, v, p: r.string(v, p, **kw)


def _i(**kw: Any) -> Read:
    return lambda r, v, p: r.integer(v, p, **kw)


def _n(**kw: Any) -> Read:
    return lambda r, v, p: r.number(v, p, **kw)


def _e(*values: str) -> Read:
    return lambda r, v, p: r.enum(v, p, values)


def _a(item: Read, **kw: Any) -> Read:
    return lambda r, v, p: r.array(v, p, item, **kw)


def _o(spec: Mapping[str, tuple[Read, Any]], *required: str) -> Read:
    return lambda r, v, p: r.fields(v, p, spec, required)


def _b(r: _Reader, v: Any, p: str) -> Any:
    return r.boolean(v, p)


def _m(r: _Reader, v: Any, p: str) -> Any:
    return r.str_map(v, p)


def _env(r: _Reader, v: Any, p: str) -> Any:
    """``LegacyEnvVars``: any name, a string or ``{"secret": name}``."""
    if not isinstance(v, dict):
        return r.bad(p, E_OBJ)
    out: Obj = {}
    for k, x in v.items():
        if isinstance(x, dict) and "secret" in x:
            if r.string(x["secret"], f"{p}/{k}/secret") is not None:
                out[k] = {"secret": x["secret"]}
        elif r.string(x, f"{p}/{k}") is not None:
            out[k] = x
    return out


def _unreachable(r: _Reader, v: Any, p: str) -> Any:
    """``UnreachableDisabled | UnreachableEnabled``."""
    if isinstance(v, str):
        return r.enum(v, p, ("disabled",))
    seconds = _i(lo=0, long=True)
    return r.fields(
        v, p, {"inactiveAfterSeconds": (seconds, 0), "expungeAfterSeconds": (seconds, 0)}
    )


def _volume(r: _Reader, v: Any, p: str) -> Any:
    """``AppHostVolume`` (persistent, external and secret volumes are kept as given, to
    be refused in stage 3)."""
    if isinstance(v, dict) and any(
        v.get(k) is not None for k in ("persistent", "external", "secret")
    ):
        spec = {k: (lambda _r, x, _p: x, _ABSENT) for k in ("persistent", "external", "secret")}
        return r.fields(
            v, p, {"containerPath": (_s(min_len=1), _ABSENT), **spec}, ("containerPath",)
        )
    return r.fields(v, p, _HOST_VOLUME, ("containerPath", "hostPath", "mode"))


_PORT = _i(lo=0, hi=65535)
_NAME = _s(min_len=1, pattern=_NAME_RE)
_PATH_ID = _s(min_len=1, pattern=lambda s: path_id_ok(s))
_PORT_MAPPING = _o(
    {
        "containerPort": (_PORT, 0),
        "hostPort": (_PORT, _ABSENT),
        "servicePort": (_PORT, 0),
        "protocol": (_e(*PROTOCOLS), "tcp"),
        "name": (_NAME, _ABSENT),
        "labels": (_m, {}),
        "networkNames": (_a(_s(min_len=1, max_len=63, pattern=_NAME_RE)), _ABSENT),
    }
)
_HOST_VOLUME = {
    "containerPath": (_s(min_len=1), _ABSENT),
    "hostPath": (_s(min_len=1), _ABSENT),
    "mode": (_e(*READ_MODES), _ABSENT),
}
_DOCKER = _o(
    {
        "image": (_s(min_len=1), _ABSENT),
        "network": (_e(*DOCKER_NETWORKS), _ABSENT),
        "parameters": (
            _a(_o({"key": (_s(min_len=1), _ABSENT), "value": (_s(), _ABSENT)}, "key", "value")),
            [],
        ),
        "portMappings": (_a(_PORT_MAPPING), _ABSENT),
        "privileged": (_b, False),
        "forcePullImage": (_b, False),
        "credential": (lambda _r, x, _p: x, _ABSENT),  # refused in stage 2
        "pullConfig": (lambda _r, x, _p: x, _ABSENT),  # refused in stage 3
    },
    "image",
)
_CONTAINER = _o(
    {
        "type": (_e(*ENGINES), "DOCKER"),
        "docker": (_DOCKER, _ABSENT),
        "volumes": (_a(_volume), []),
        "portMappings": (_a(_PORT_MAPPING), _ABSENT),
    }
)
_HEALTH_CHECK = _o(
    {
        "command": (_o({"value": (_s(), _ABSENT)}, "value"), _ABSENT),
        "gracePeriodSeconds": (_i(lo=0), 300),
        "intervalSeconds": (_i(lo=0), 60),
        "maxConsecutiveFailures": (_i(lo=0), 3),
        "timeoutSeconds": (_i(), 20),
        "delaySeconds": (_i(lo=0), 15),
        "ignoreHttp1xx": (_b, _ABSENT),
        "path": (_s(), _ABSENT),
        "port": (_PORT, _ABSENT),
        "portIndex": (_PORT, _ABSENT),
        "protocol": (_e(*HEALTH_PROTOCOLS), "HTTP"),
        "ipProtocol": (_e(*IP_PROTOCOLS), "IPv4"),
    }
)
_READINESS_CHECK = _o(
    {
        "name": (_s(min_len=1), "readinessCheck"),
        "protocol": (_e(*HTTP_SCHEMES), "HTTP"),
        "path": (_s(min_len=1, max_len=1024), "/"),
        "portName": (_NAME, "http-api"),
        "intervalSeconds": (_i(lo=0), 30),
        "timeoutSeconds": (_i(lo=1), 10),
        "httpStatusCodesForReady": (_a(_i(lo=100, hi=999), min_items=1, unique=True), [200]),
        "preserveLastResponse": (_b, False),
    }
)
_PORT_DEFINITION = _o(
    {
        "port": (_PORT, 0),
        "protocol": (_e(*PROTOCOLS), "tcp"),
        "name": (_NAME, _ABSENT),
        "labels": (_m, {}),
    }
)
_NETWORK = _o(
    {
        "mode": (_e(*NETWORK_MODES), "container"),
        "name": (_s(min_len=1, max_len=63, pattern=_NETWORK_NAME_RE), _ABSENT),
        "labels": (_m, _ABSENT),
    }
)
_IP_ADDRESS = _o(
    {
        "networkName": (_s(min_len=1), _ABSENT),
        "labels": (_m, {}),
        "discovery": (
            _o(
                {
                    "ports": (
                        _a(
                            _o(
                                {
                                    "number": (_PORT, 0),
                                    "name": (_NAME, _ABSENT),
                                    "protocol": (_e(*PROTOCOLS), "tcp"),
                                    "labels": (_m, {}),
                                },
                                "name",
                            )
                        ),
                        [],
                    )
                }
            ),
            _ABSENT,
        ),
    }
)
_ARTIFACT = _o(
    {
        "uri": (_s(min_len=1, max_len=1024), _ABSENT),
        "extract": (_b, True),
        "executable": (_b, False),
        "cache": (_b, False),
        "destPath": (_s(min_len=1, max_len=1024), _ABSENT),
    },
    "uri",
)
_FRACTION = _n(lo=0.0, hi=1.0)
#: the app's fields; their defaults are filled in at the end (``_finish``)
_APP: Mapping[str, tuple[Read, Any]] = {
    k: (read, _ABSENT)
    for k, read in {
        "id": _PATH_ID,
        "acceptedResourceRoles": _a(_s(), unique=True),
        "args": _a(_s()),
        "backoffFactor": _n(lo=1.0),
        "backoffSeconds": _i(lo=0),
        "cmd": _s(min_len=1),
        "constraints": _a(_a(_s()), unique=True),
        "container": _CONTAINER,
        "cpus": _n(lo=0.001),
        "dependencies": _a(_PATH_ID),
        "disk": _n(lo=0.0),
        "env": _env,
        "executor": _s(pattern=_EXECUTOR_RE),
        "fetch": _a(_ARTIFACT),
        "gpus": _i(lo=0),
        "healthChecks": _a(_HEALTH_CHECK, unique=True),
        "instances": _i(lo=0),
        "ipAddress": _IP_ADDRESS,
        "killSelection": _e(*KILL_SELECTIONS),
        "labels": _m,
        "maxLaunchDelaySeconds": _i(lo=0),
        "mem": _n(lo=0.0),
        "networks": _a(_NETWORK),
        "portDefinitions": _a(_PORT_DEFINITION),
        "ports": _a(_PORT),
        "readinessChecks": _a(_READINESS_CHECK),
        "requirePorts": _b,
        "role": _s(min_len=1),
        "secrets": lambda r, v, p: v if isinstance(v, dict) else r.bad(p, E_OBJ),
        "taskKillGracePeriodSeconds": _i(lo=0),
        "tty": _b,
        "unreachableStrategy": _unreachable,
        # RAML makes both required; Marathon's model defaults them to 1.0, and so does this
        "upgradeStrategy": _o(
            {"minimumHealthCapacity": (_FRACTION, 1.0), "maximumOverCapacity": (_FRACTION, 1.0)}
        ),
        "uris": _a(_s(min_len=1, max_len=1024)),
        "user": _s(),
    }.items()
}


def read_app(body: Any, e: Errors, *, update: bool) -> Obj:
    """Stage 1: the fields ``body`` gives, typed (``id`` required unless ``update``);
    unknown keys (``version``, what a client posts back from a read) are dropped."""
    out: Obj = _Reader(e).fields(body, "", _APP, () if update else ("id",)) or {}
    return out
