"""``pods/attach``: checked here against the Pod, then proxied to the node's agent.

``ResourceHandler.subresource`` calls ``attach`` for ``GET``/``POST .../pods/P/attach``.
As upstream's ``AttachLocation`` (the container chosen by ``streamLocation``, the same
rules and words as ``pods/exec``: ``proxy.choose_container``, ``proxy.node_of``) and the
kubelet's ``GetAttach``:

- neither stdin, stdout nor stderr → 400 ``you must specify at least 1 of stdin, stdout,
  stderr``;
- a container that is not running → 400 ``container not found ("c1")``;
- stdin is not passed on to a container started without ``stdin: true``.

Then the WebSocket (``v5.channel.k8s.io`` / ``v4.channel.k8s.io``, as kubectl 1.32 and the
Python client use for exec and attach) is accepted with the subprotocol the agent chose
and the frames are pumped both ways (``proxy.pump``) to the agent's ``/attach``
(``agent/attach.py``). kubectl's SPDY fallback (a POST with ``Upgrade: SPDY/3.1``) gets
the agent's answer to a plain GET, as exec's does.

Kept apart from ``proxy.py`` (exec and logs, another engineer's) so that each stream
endpoint is one small module; it reuses that module's validation and plumbing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from corral.api import errors
from corral.apiserver.proxy import (
    AgentProxy,
    choose_container,
    container_status,
    node_of,
)

_TRUE = ("1", "t", "T", "true", "TRUE", "True")
_FLAGS = ("stdin", "stdout", "stderr", "tty")


def attach_query(q: Mapping[str, str]) -> dict[str, str]:
    """The agent's query: the ``PodAttachOptions`` flags that are set (400 if none of
    stdin, stdout, stderr is)."""
    flags = {k: "true" for k in _FLAGS if q.get(k, "") in _TRUE}
    if not ({"stdin", "stdout", "stderr"} & set(flags)):
        raise errors.bad_request("you must specify at least 1 of stdin, stdout, stderr")
    return flags


def _container_spec(pod: dict[str, Any], name: str) -> dict[str, Any]:
    spec = pod.get("spec") or {}
    for key in ("containers", "initContainers", "ephemeralContainers"):
        for c in spec.get(key) or []:
            if isinstance(c, dict) and c.get("name") == name:
                return c
    return {}


async def attach(proxy: AgentProxy, request: web.Request, ns: str, name: str) -> web.StreamResponse:
    """Validate a ``pods/attach`` request and pump its WebSocket to the pod's agent."""
    pod = proxy._pod(ns, name)
    q = request.query
    container = choose_container(pod, q.get("container", ""))
    node = node_of(pod)
    query = attach_query(q)
    # as the kubelet: a container started without stdin takes none (output only)
    no_stdin = not _container_spec(pod, container).get("stdin")
    if "stdin" in query and no_stdin and ("stdout" in query or "stderr" in query):
        del query["stdin"]
    cs = container_status(pod, container) or {}
    if (cs.get("state") or {}).get("running") is None:
        raise errors.bad_request(f'container not found ("{container}")')
    url = proxy.agent_url(node, f"/attach/{ns}/{name}/{container}").with_query(query)
    return await proxy.stream_channels(request, url, node)
