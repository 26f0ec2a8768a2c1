"""A pod's ``/etc/resolv.conf``, as the kubelet writes it for each ``dnsPolicy``.

``pod_resolv_conf`` is pure: the pod spec, the agent's ``--cluster-dns`` servers and
``--cluster-domain``, and the host's own resolv.conf in; the file's text out. The
``oci`` driver bind-mounts it into every container of the pod; the ``process`` driver
runs on the host's network and resolver, as a hostNetwork pod does.

- ``ClusterFirst`` (the default): the cluster DNS servers, the search path
  ``<ns>.svc.<domain> svc.<domain> <domain>`` followed by the host's search domains, and
  ``options ndots:5``; without cluster DNS configured, the host's file (the kubelet does
  the same and warns).
- ``ClusterFirstWithHostNet``: the same for hostNetwork pods; plain ``ClusterFirst`` on a
  hostNetwork pod means ``Default``.
- ``Default``: the host's resolv.conf.
- ``None``: only ``spec.dnsConfig``.
``spec.dnsConfig`` (nameservers, searches, options) is merged in for every policy, as
upstream does (at most 3 nameservers, 32 search domains).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

Obj = dict[str, Any]

MAX_NAMESERVERS = 3
MAX_SEARCHES = 32


def host_resolv_conf(path: str = "/etc/resolv.conf") -> str:
    """This host's resolv.conf text ('' when there is none)."""
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def parse_resolv_conf(text: str) -> tuple[list[str], list[str], list[str]]:
    """(nameservers, search domains, options) of a resolv.conf."""
    servers: list[str] = []
    searches: list[str] = []
    options: list[str] = []
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split()
        if not fields:
            continue
        if fields[0] == "nameserver" and len(fields) > 1:
            servers.append(fields[1])
        elif fields[0] in ("search", "domain"):
            searches = fields[1:]
        elif fields[0] == "options":
            options.extend(fields[1:])
    return servers, searches, options


def _merge_options(base: list[str], extra: Sequence[Obj]) -> list[str]:
    out = {o.split(":", 1)[0]: o for o in base}
    for opt in extra:
        name = str(opt.get("name", ""))
        if name:
            value = opt.get("value")
            out[name] = f"{name}:{value}" if value is not None else name
    return list(out.values())


def pod_resolv_conf(pod: Obj, cluster_dns: Sequence[str], domain: str, host_resolv: str) -> str:
    spec = pod.get("spec") or {}
    ns = (pod.get("metadata") or {}).get("namespace") or "default"
    policy = spec.get("dnsPolicy") or "ClusterFirst"
    host_servers, host_searches, host_options = parse_resolv_conf(host_resolv)
    if policy == "ClusterFirst" and spec.get("hostNetwork"):
        policy = "Default"
    if policy in ("ClusterFirst", "ClusterFirstWithHostNet") and not cluster_dns:
        policy = "Default"  # no cluster DNS configured: the host's, as the kubelet falls back
    if policy in ("ClusterFirst", "ClusterFirstWithHostNet"):
        servers = list(cluster_dns)
        searches = [f"{ns}.svc.{domain}", f"svc.{domain}", domain, *host_searches]
        options = ["ndots:5"]
    elif policy == "None":
        servers, searches, options = [], [], []
    else:  # Default
        servers, searches, options = host_servers, host_searches, host_options
    cfg = spec.get("dnsConfig") or {}
    servers += [str(s) for s in cfg.get("nameservers") or [] if str(s) not in servers]
    searches += [str(s) for s in cfg.get("searches") or [] if str(s) not in searches]
    options = _merge_options(options, cfg.get("options") or [])
    lines = [f"nameserver {s}" for s in servers[:MAX_NAMESERVERS]]
    if searches:
        lines.append("search " + " ".join(searches[:MAX_SEARCHES]))
    if options:
        lines.append("options " + " ".join(options))
    return "\n".join(lines) + "\n"
