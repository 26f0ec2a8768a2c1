"""What a request asks to do, in authorization's terms: upstream's RequestInfoResolver.

``resolve(method, path, query)`` derives, as ``apiserver/pkg/endpoints/request``'s
``RequestInfoFactory.NewRequestInfo`` does, whether the request names a resource and,
if so, its verb (``get``, ``list``, ``watch``, ``create``, ``update``, ``patch``,
``delete``, ``deletecollection``, or the special path verbs ``proxy`` and ``watch``),
API group, version, namespace, resource, subresource and name. A path outside
``/api/VERSION/...`` and ``/apis/GROUP/VERSION/...`` (``/healthz``, ``/version``,
``/apis/GROUP``...) is a non-resource request whose verb is the lowercased HTTP method.

The CONNECT subresources come out as upstream's do: ``POST .../pods/x/exec`` is
``create`` on ``pods/exec``, ``GET`` is ``get``. A list or watch whose field selector
requires ``metadata.name=X`` carries X as its name (upstream fills ``Name`` from it, so
a rule limited to ``resourceNames`` can allow the single-object watch clients make).

The middleware (``app.py``) calls this once per request not made by ``system:masters``,
and turns the result into ``rbac.Attributes`` with ``attributes``. Pure, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from corral.api import rbac
from corral.api.selectors import SelectorError, try_parse_field_selector

#: path verbs: /api/v1/watch/..., /api/v1/proxy/...
_SPECIAL_VERBS = frozenset(("proxy", "watch"))
#: namespace subresources: /api/v1/namespaces/NAME/status is the namespace's status
_NAMESPACE_SUBRESOURCES = frozenset(("status", "finalize"))
_METHOD_VERBS = {
    "POST": "create",
    "GET": "get",
    "HEAD": "get",
    "PUT": "update",
    "PATCH": "patch",
    "DELETE": "delete",
}


@dataclass(frozen=True, slots=True)
class RequestInfo:
    """Upstream's ``request.RequestInfo`` (``parts`` as upstream keeps them)."""

    resource_request: bool
    path: str
    verb: str
    api_prefix: str = ""
    api_group: str = ""
    api_version: str = ""
    namespace: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""
    parts: tuple[str, ...] = ()
    #: a list/watch's ``fieldSelector`` as sent (the Node authorizer reads it)
    field_selector: str = ""

    def attributes(self, user: str, groups: tuple[str, ...]) -> rbac.Attributes:
        """The authorization question this request asks for ``user``."""
        if not self.resource_request:
            return rbac.Attributes(
                user=user, groups=groups, verb=self.verb, path=self.path, resource_request=False
            )
        return rbac.Attributes(
            user=user,
            groups=groups,
            verb=self.verb,
            api_group=self.api_group,
            resource=self.resource,
            subresource=self.subresource,
            name=self.name,
            namespace=self.namespace,
            path=self.path,
            resource_request=True,
            field_selector=self.field_selector,
        )


def resolve(method: str, path: str, query: Mapping[str, str]) -> RequestInfo:
    """The RequestInfo of one request (``query``: its decoded query parameters, the
    first value of each)."""
    # the segments ``request.parse_path`` routes by (empty ones dropped): authorizing any
    # other split of ``/api/v1/namespaces/ns//secrets/x`` would ask about one object and
    # serve another
    parts = [p for p in path.split("/") if p]
    if len(parts) < 3 or parts[0] not in ("api", "apis"):
        return RequestInfo(False, path, method.lower())
    prefix = parts[0]
    rest = parts[1:]
    group = ""
    if prefix == "apis":
        if len(rest) < 3:
            return RequestInfo(False, path, method.lower())
        group = rest[0]
        rest = rest[1:]
    version = rest[0]
    rest = rest[1:]
    if rest[0] in _SPECIAL_VERBS:
        if len(rest) < 2:
            # upstream: "unable to determine kind and namespace from url"; the request
            # stays a resource request without a resource
            return RequestInfo(True, path, rest[0], prefix, group, version)
        verb = rest[0]
        rest = rest[1:]
    else:
        verb = _METHOD_VERBS.get(method, "")
    namespace = ""
    if rest[0] == "namespaces" and len(rest) == 2 and verb == "patch":
        pass  # a server-side apply creating a namespace: not a request in that namespace
    elif rest[0] == "namespaces" and len(rest) > 1:
        namespace = rest[1]
        if len(rest) > 2 and rest[2] not in _NAMESPACE_SUBRESOURCES:
            rest = rest[2:]
    resource = rest[0]
    name = rest[1] if len(rest) >= 2 else ""
    subresource = rest[2] if len(rest) >= 3 and verb != "proxy" else ""
    if not name and verb == "get":
        watch = query.get("watch")
        verb = "watch" if watch is not None and watch.lower() not in ("false", "0") else "list"
        selector = query.get("fieldSelector")
        if selector:
            name = _exact_name(selector)
    if not name and verb == "delete":
        verb = "deletecollection"
    return RequestInfo(
        True, path, verb, prefix, group, version, namespace, resource, subresource, name, tuple(rest),
        query.get("fieldSelector") or "" if verb in ("list", "watch") else "",
    )  # fmt: skip


def _exact_name(selector: str) -> str:
    """The X of a field selector that requires ``metadata.name=X`` (upstream's
    ``RequiresExactMatch``), when X is a valid path segment; "" otherwise, and for a
    selector that does not parse. Parsed by the list handler's own parser, so that the
    name authorized is the one the list is filtered by (escapes, spaces and all)."""
    try:
        found = try_parse_field_selector(selector).exact_values().get("metadata.name", "")
    except SelectorError:
        return ""  # upstream's parse error leaves the name empty
    if found in (".", "..") or "/" in found or "%" in found:
        return ""
    return found
