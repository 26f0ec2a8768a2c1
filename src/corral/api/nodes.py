"""Where a Node's agent answers: the one lookup of the API server's node proxy (logs,
exec, ``nodes/proxy``; ``apiserver/proxy.py``) and of the metrics server's scrapes
(``metrics/server.py``); and the Binding that assigns a pod to a node (the scheduler's,
the Mesos master's)."""

from __future__ import annotations

from typing import Any

from corral.api import errors

#: how a Node's agent is reached: ``https`` (verified against the cluster CA) for an
#: agent with a serving certificate, ``http`` for one without (a stand-alone test agent,
#: hollow nodes); every Corral agent sets it, a Node without it (made by hand, as tests
#: do) is taken as ``http``, as before agents had certificates
AGENT_SCHEME = "agent.corral.dev/scheme"


def binding(name: str, namespace: str, uid: str, node: str) -> dict[str, Any]:
    """The ``pods/binding`` body that assigns pod ``namespace/name`` (of ``uid``) to
    ``node``: what a scheduler posts."""
    return {
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": {"name": name, "namespace": namespace, "uid": uid},
        "target": {"apiVersion": "v1", "kind": "Node", "name": node},
    }


def agent_scheme(node: dict[str, Any]) -> str:
    """``http`` or ``https``: the scheme of the node's agent API (``AGENT_SCHEME``)."""
    annotations = (node.get("metadata") or {}).get("annotations") or {}
    return "https" if annotations.get(AGENT_SCHEME) == "https" else "http"


def agent_endpoint(node: dict[str, Any]) -> tuple[str, int]:
    """(address, port) of the node's agent: its InternalIP, else Hostname, else ExternalIP,
    and ``status.daemonEndpoints.kubeletEndpoint.Port``; a 500 that says what is missing."""
    name = node["metadata"]["name"]
    st = node.get("status") or {}
    port = ((st.get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}).get("Port") or 0
    if not port:
        raise errors.internal(
            f'node "{name}" has no agent endpoint (status.daemonEndpoints.kubeletEndpoint.Port '
            "is not set): no Corral agent serves logs and exec there"
        )
    addrs: dict[str, str] = {}
    for a in st.get("addresses") or []:
        if isinstance(a, dict) and a.get("address"):
            addrs.setdefault(str(a.get("type")), str(a["address"]))
    host = addrs.get("InternalIP") or addrs.get("Hostname") or addrs.get("ExternalIP")
    if not host:
        raise errors.internal(f"no preferred addresses found; known addresses: {list(addrs)}")
    return host, int(port)
