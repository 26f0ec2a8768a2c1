"""The front proxy's request headers, as upstream's aggregator sends and extension API
servers read them (pure: no I/O).

The aggregation layer (``apiserver/aggregator.py``) authenticates a caller itself and
then talks to an extension API server (metrics-server, ``metrics/auth.py``) with its
front-proxy *client certificate*, naming the caller in ``X-Remote-User``,
``X-Remote-Group`` (one header per group) and ``X-Remote-Extra-<key>`` (one header per
value; the key %-escaped as client-go's ``headerKeyEscape``); the caller's own
credentials never leave the API server. The backend believes those headers only on a
connection whose client certificate chains to the *request-header CA* and whose CN is
one of the allowed names (upstream's ``--requestheader-*`` flags).

Where a backend learns that configuration: the ConfigMap
``kube-system/extension-apiserver-authentication`` the API server publishes
(``configmap_data``; keys and JSON-list values as kube-apiserver writes them), which
``RequestHeaderConfig.from_configmap`` reads back.
"""

from __future__ import annotations

import json
import string
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import unquote

CONFIGMAP_NAMESPACE = "kube-system"
CONFIGMAP_NAME = "extension-apiserver-authentication"
#: the Role (kube-system) that lets an extension server read that ConfigMap
READER_ROLE = "extension-apiserver-authentication-reader"

USER_HEADER = "X-Remote-User"
UID_HEADER = "X-Remote-Uid"
GROUP_HEADER = "X-Remote-Group"
EXTRA_PREFIX = "X-Remote-Extra-"
#: the CN of the aggregator's client certificate (kubeadm's ``front-proxy-client``)
FRONT_PROXY_CLIENT_CN = "front-proxy-client"

#: RFC 7230 ``tchar``: what a header name may hold unescaped (``%`` is escaped anyway)
_TCHAR = frozenset(string.ascii_letters + string.digits + "!#$&'*+-.^_`|~")


def header_key_escape(key: str) -> str:
    """client-go's ``headerKeyEscape``: %XX for every byte not legal in a header name."""
    out = []
    for b in key.encode():
        c = chr(b)
        out.append(c if c in _TCHAR else f"%{b:02X}")
    return "".join(out)


def auth_proxy_headers(
    username: str,
    groups: Sequence[str],
    extra: Mapping[str, Sequence[str]] | None = None,
) -> list[tuple[str, str]]:
    """The headers naming a user to a backend (client-go's ``SetAuthProxyHeaders``), in
    order; a header repeats for each group and each extra value."""
    out = [(USER_HEADER, username)]
    out += [(GROUP_HEADER, g) for g in groups]
    for key, values in (extra or {}).items():
        out += [(EXTRA_PREFIX + header_key_escape(key), v) for v in values]
    return out


def is_auth_proxy_header(name: str) -> bool:
    """A header a caller must never smuggle through the proxy (stripped before relay)."""
    low = name.lower()
    return low in (USER_HEADER.lower(), UID_HEADER.lower(), GROUP_HEADER.lower()) or (
        low.startswith(EXTRA_PREFIX.lower())
    )


@dataclass(frozen=True)
class RequestHeaderConfig:
    """What a backend trusts: the CA of the front proxy's certificate, the CNs allowed
    (empty: any it signed), and the header names."""

    client_ca: str = ""
    allowed_names: tuple[str, ...] = ()
    username_headers: tuple[str, ...] = (USER_HEADER,)
    group_headers: tuple[str, ...] = (GROUP_HEADER,)
    extra_prefixes: tuple[str, ...] = (EXTRA_PREFIX,)
    #: the CA of ordinary client certificates (``client-ca-file``)
    user_client_ca: str = ""

    @classmethod
    def from_configmap(cls, data: Mapping[str, str]) -> RequestHeaderConfig:
        """Read ``extension-apiserver-authentication``'s data (missing keys: defaults
        off, i.e. no request-header CA means no header is ever believed)."""

        def names(key: str, default: tuple[str, ...]) -> tuple[str, ...]:
            raw = data.get(key)
            if raw is None:
                return default
            try:
                val = json.loads(raw)
            except ValueError:
                return default
            return tuple(str(v) for v in val) if isinstance(val, list) else default

        return cls(
            client_ca=data.get("requestheader-client-ca-file", ""),
            allowed_names=names("requestheader-allowed-names", ()),
            username_headers=names("requestheader-username-headers", (USER_HEADER,)),
            group_headers=names("requestheader-group-headers", (GROUP_HEADER,)),
            extra_prefixes=names("requestheader-extra-headers-prefix", (EXTRA_PREFIX,)),
            user_client_ca=data.get("client-ca-file", ""),
        )

    def user_from_headers(
        self, headers: Iterable[tuple[str, str]]
    ) -> tuple[str, list[str], dict[str, list[str]]] | None:
        """(user, groups, extra) named by ``headers`` (name, value pairs, repeats kept), as
        upstream's requestheader authenticator reads them; None without a user."""
        items = list(headers)
        user = ""
        for want in self.username_headers:
            for name, value in items:
                if name.lower() == want.lower() and value:
                    user = value
                    break
            if user:
                break
        if not user:
            return None
        group_names = {g.lower() for g in self.group_headers}
        groups = [v for n, v in items if n.lower() in group_names]
        extra: dict[str, list[str]] = {}
        prefixes = [p.lower() for p in self.extra_prefixes]
        for name, value in items:
            low = name.lower()
            for p in prefixes:
                if low.startswith(p):
                    extra.setdefault(unquote(low[len(p) :], errors="strict"), []).append(value)
                    break
        return user, groups, extra


def configmap_data(
    client_ca: str, requestheader_ca: str, allowed_names: Sequence[str] = (FRONT_PROXY_CLIENT_CN,)
) -> dict[str, str]:
    """The data of ``kube-system/extension-apiserver-authentication`` as kube-apiserver
    publishes it (lists as compact JSON, e.g. ``["X-Remote-User"]``)."""

    def js(v: Sequence[str]) -> str:
        return json.dumps(list(v), separators=(",", ":"))

    data = {"client-ca-file": client_ca} if client_ca else {}
    if requestheader_ca:
        data |= {
            "requestheader-client-ca-file": requestheader_ca,
            "requestheader-allowed-names": js(allowed_names),
            "requestheader-username-headers": js([USER_HEADER]),
            "requestheader-group-headers": js([GROUP_HEADER]),
            "requestheader-extra-headers-prefix": js([EXTRA_PREFIX]),
        }
    return data
