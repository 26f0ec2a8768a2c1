"""The admission chain: the plugins every write passes before validation and storage.

Kubernetes runs mutating then validating admission plugins between decoding a request
and validating the object (``apiserver/pkg/admission``). Corral keeps one ordered list
of plugins per resource, ``Registry.admission[(group, plural)]`` (a
``defaultdict(list)``); the registry (``store.py``) calls ``admit`` in

    decode -> defaults / prepare -> admission plugins (registration order) -> validation -> store

for creates, updates of the resource and its subresources (patch and apply are
updates), deletes (operation DELETE, ``obj`` None, ``old`` the stored object), and the
handlers call it for the CONNECT subresources (``pods/exec``, ``attach``,
``portforward``: ``obj`` None) and for ``pods/binding`` and ``pods/eviction`` (CREATE,
``obj`` the Binding or Eviction as sent).

A plugin is a plain callable: it may change ``req.obj`` in place (mutating) and refuses
by raising ``errors.StatusError`` (usually 403 Forbidden). ``req.user`` None is the API
server's own internal write (bootstrap, garbage collection, namespace lifecycle):
plugins let it through. A plugin looks at ``req.subresource`` itself, since one key
serves the resource and all its subresources. The admin path costs one dict lookup when
no plugin is registered for a resource.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from corral.apiserver.identity import UserInfo
from corral.apiserver.registry.base import ResourceInfo

Obj = dict[str, Any]

CREATE = "CREATE"
UPDATE = "UPDATE"
DELETE = "DELETE"
CONNECT = "CONNECT"


@dataclass
class AdmissionRequest:
    """One write as admission plugins see it (upstream's ``admission.Attributes``)."""

    operation: str  # "CREATE" | "UPDATE" | "DELETE" | "CONNECT"
    info: ResourceInfo
    namespace: str
    name: str
    subresource: str  # "" | "status" | "binding" | "eviction" | "exec" | ...
    #: the incoming object (defaults applied); mutating plugins change it in place
    obj: Obj | None
    #: the stored object on UPDATE and DELETE
    old: Obj | None
    #: None: the API server's own internal write, which plugins let through
    user: UserInfo | None
    dry_run: bool = False


#: raises ``errors.StatusError`` to refuse; may mutate ``req.obj``
AdmissionPlugin = Callable[[AdmissionRequest], None]

#: (group, plural) -> plugins in registration order
Plugins = dict[tuple[str, str], list[AdmissionPlugin]]


def admit(plugins: Plugins, req: AdmissionRequest) -> None:
    """Run the plugins registered for ``req.info``'s resource, in order; the first
    refusal propagates."""
    for plugin in plugins.get((req.info.group, req.info.plural), ()):
        plugin(req)
