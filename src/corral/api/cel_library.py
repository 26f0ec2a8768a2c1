"""Kubernetes' typed CEL libraries (quantity, URL, IP, CIDR) for ``x-kubernetes-validations``.

Registered by :mod:`corral.api.cel` into every rule's activation. The Rust ``cel`` crate
accepts only plain values from Python functions, so the library types travel as tagged
maps (``{"__quantity__": "3/2"}``, ``{"__url__": ...}``, ``{"__ip__": ...}``,
``{"__cidr__": ...}``) holding a canonical form: equality between two quantities, IPs
or CIDRs then means what it means upstream (``quantity("1000m") == quantity("1")``).
Functions and error texts follow k8s.io/apiserver/pkg/cel/library (quantity.go,
urls.go, ip.go, cidr.go); ``string(ip(...))`` is not available (the crate's ``string``
cannot be extended).
"""

from __future__ import annotations

import ipaddress
from fractions import Fraction
from typing import Any
from urllib.parse import parse_qs, urlsplit

from corral.api.quantity import parse_quantity

Obj = dict[str, Any]

_Q, _URL, _IP, _CIDR = "__quantity__", "__url__", "__ip__", "__cidr__"
_INT64 = (-(2**63), 2**63 - 1)


class CELLibraryError(ValueError):
    """A library call that fails at evaluation time (its text is the CEL error)."""


# --- quantity ------------------------------------------------------------------------------


def _q(value: Fraction) -> Obj:
    return {_Q: f"{value.numerator}/{value.denominator}"}


def _qval(q: Any) -> Fraction:
    if isinstance(q, dict) and _Q in q:
        return Fraction(q[_Q])
    if isinstance(q, int) and not isinstance(q, bool):
        return Fraction(q)
    raise CELLibraryError("no such overload")


def quantity(s: str) -> Obj:
    try:
        return _q(parse_quantity(s))
    except ValueError as e:
        raise CELLibraryError(str(e)) from None


def is_quantity(s: str) -> bool:
    try:
        parse_quantity(s)
    except ValueError:
        return False
    return True


def _as_int64(v: Fraction) -> int | None:
    if v.denominator != 1 or not _INT64[0] <= v.numerator <= _INT64[1]:
        return None
    return v.numerator


def q_is_integer(q: Obj) -> bool:
    return _as_int64(_qval(q)) is not None


def q_as_integer(q: Obj) -> int:
    n = _as_int64(_qval(q))
    if n is None:
        raise CELLibraryError("cannot convert value to integer")
    return n


def q_as_approximate_float(q: Obj) -> float:
    return float(_qval(q))


def q_sign(q: Obj) -> int:
    v = _qval(q)
    return (v > 0) - (v < 0)


def q_add(q: Obj, other: Any) -> Obj:
    return _q(_qval(q) + _qval(other))


def q_sub(q: Obj, other: Any) -> Obj:
    return _q(_qval(q) - _qval(other))


def q_is_greater_than(q: Obj, other: Obj) -> bool:
    return _qval(q) > _qval(other)


def q_is_less_than(q: Obj, other: Obj) -> bool:
    return _qval(q) < _qval(other)


def q_compare_to(q: Obj, other: Obj) -> int:
    a, b = _qval(q), _qval(other)
    return (a > b) - (a < b)


# --- URL --------------------------------------------------------------------------------------


def _parse_url(s: str) -> Any:
    """Go's url.ParseRequestURI: an absolute URI or an absolute path."""
    if not s or (not s.startswith("/") and ":" not in s.split("/", 1)[0]):
        return None
    try:
        parts = urlsplit(s)
        _ = parts.port  # validates the port
    except ValueError:
        return None
    if not s.startswith("/") and not parts.scheme:
        return None
    return parts


def url(s: str) -> Obj:
    if _parse_url(s) is None:
        raise CELLibraryError(f'URL parse error during conversion from string: parse "{s}": invalid URI for request')  # fmt: skip
    return {_URL: s}


def is_url(s: str) -> bool:
    return _parse_url(s) is not None


def _url(u: Any) -> Any:
    if not (isinstance(u, dict) and _URL in u):
        raise CELLibraryError("no such overload")
    return urlsplit(u[_URL])


def get_scheme(u: Obj) -> str:
    return str(_url(u).scheme)


def get_host(u: Obj) -> str:
    return str(_url(u).netloc.rpartition("@")[2])


def get_hostname(u: Obj) -> str:
    host = get_host(u)
    if host.startswith("["):
        return host[1 : host.find("]")]
    return host.rsplit(":", 1)[0] if ":" in host else host


def get_port(u: Obj) -> str:
    host = get_host(u)
    tail = host[host.find("]") + 1 :] if host.startswith("[") else host
    return tail.rsplit(":", 1)[1] if ":" in tail else ""


def get_escaped_path(u: Obj) -> str:
    return str(_url(u).path)


def get_query(u: Obj) -> dict[str, list[str]]:
    return {k: list(v) for k, v in parse_qs(_url(u).query, keep_blank_values=True).items()}


# --- IP and CIDR ---------------------------------------------------------------------------


def _parse_ip(s: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if "%" in s:
        return None  # zones are refused
    try:
        addr = ipaddress.ip_address(s)
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return None  # IPv4-mapped IPv6 is refused, as upstream
    return addr


def is_ip(s: str) -> bool:
    return _parse_ip(s) is not None


def ip(arg: Any) -> Obj:
    if isinstance(arg, dict) and _CIDR in arg:  # cidr.ip()
        return {_IP: str(ipaddress.ip_interface(arg[_CIDR]).ip)}
    addr = _parse_ip(str(arg))
    if addr is None:
        raise CELLibraryError(f'IP Address "{arg}" parse error during conversion from string: ParseAddr("{arg}"): unable to parse IP')  # fmt: skip
    return {_IP: str(addr)}


def _ip(x: Any) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    if isinstance(x, dict) and _IP in x:
        return ipaddress.ip_address(x[_IP])
    if isinstance(x, str) and (addr := _parse_ip(x)) is not None:
        return addr
    raise CELLibraryError("no such overload")


def family(x: Obj) -> int:
    return _ip(x).version


def is_unspecified(x: Obj) -> bool:
    return _ip(x).is_unspecified


def is_loopback(x: Obj) -> bool:
    return _ip(x).is_loopback


def is_link_local_multicast(x: Obj) -> bool:
    a = _ip(x)
    if a.version == 4:
        return a in ipaddress.ip_network("224.0.0.0/24")
    return a in ipaddress.ip_network("ff02::/16")


def is_link_local_unicast(x: Obj) -> bool:
    a = _ip(x)
    return a.is_link_local and not a.is_multicast


def is_global_unicast(x: Obj) -> bool:
    """Go's netip IsGlobalUnicast: not unspecified, loopback, multicast, link-local or broadcast."""
    a = _ip(x)
    if a.version == 4 and a == ipaddress.IPv4Address("255.255.255.255"):
        return False
    return not (a.is_unspecified or a.is_loopback or a.is_multicast or a.is_link_local)


def _parse_cidr(s: str) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface | None:
    addr, sep, prefix = s.partition("/")
    if not sep or _parse_ip(addr) is None or not prefix.isdigit():
        return None
    try:
        return ipaddress.ip_interface(s)
    except ValueError:
        return None


def is_cidr(s: str) -> bool:
    return _parse_cidr(s) is not None


def cidr(s: str) -> Obj:
    c = _parse_cidr(s)
    if c is None:
        raise CELLibraryError(f'network address "{s}" parse error during conversion from string: netip.ParsePrefix("{s}"): bad prefix')  # fmt: skip
    return {_CIDR: str(c)}


def _cidr(x: Any) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface:
    if isinstance(x, dict) and _CIDR in x:
        return ipaddress.ip_interface(x[_CIDR])
    if isinstance(x, str) and (c := _parse_cidr(x)) is not None:
        return c
    raise CELLibraryError("no such overload")


def contains_ip(c: Obj, x: Any) -> bool:
    addr = _ip(x)
    net = _cidr(c).network
    return addr.version == net.version and addr in net


def contains_cidr(c: Obj, other: Any) -> bool:
    net, sub = _cidr(c).network, _cidr(other).network
    return net.version == sub.version and sub.subnet_of(net)  # type: ignore[arg-type]


def masked(c: Obj) -> Obj:
    return {_CIDR: str(_cidr(c).network)}


def prefix_length(c: Obj) -> int:
    return _cidr(c).network.prefixlen


FUNCTIONS: dict[str, Any] = {
    "quantity": quantity,
    "isQuantity": is_quantity,
    "isInteger": q_is_integer,
    "asInteger": q_as_integer,
    "asApproximateFloat": q_as_approximate_float,
    "sign": q_sign,
    "add": q_add,
    "sub": q_sub,
    "isGreaterThan": q_is_greater_than,
    "isLessThan": q_is_less_than,
    "compareTo": q_compare_to,
    "url": url,
    "isURL": is_url,
    "getScheme": get_scheme,
    "getHost": get_host,
    "getHostname": get_hostname,
    "getPort": get_port,
    "getEscapedPath": get_escaped_path,
    "getQuery": get_query,
    "isIP": is_ip,
    "ip": ip,
    "family": family,
    "isUnspecified": is_unspecified,
    "isLoopback": is_loopback,
    "isLinkLocalMulticast": is_link_local_multicast,
    "isLinkLocalUnicast": is_link_local_unicast,
    "isGlobalUnicast": is_global_unicast,
    "isCIDR": is_cidr,
    "cidr": cidr,
    "containsIP": contains_ip,
    "containsCIDR": contains_cidr,
    "masked": masked,
    "prefixLength": prefix_length,
}

__all__ = ["FUNCTIONS", "CELLibraryError"]
