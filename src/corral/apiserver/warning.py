"""The per-request warning recorder: admission plugins add ``Warning:`` headers.

Upstream's ``k8s.io/apiserver/pkg/warning``: the request context carries a recorder,
``warning.AddWarning(ctx, "", text)`` appends to it (dropping duplicates), and the
handler writes the collected texts as ``Warning: 299 - "text"`` headers. Here the
context is a ``ContextVar``: ``ResourceHandler.dispatch`` calls ``start()`` for every
request, plugins call ``add()`` (a no-op outside a request, e.g. for the server's own
writes), and the write handlers append ``recorded()`` to the registry's own warnings.
A write retried after a lost race may add the same text again: it is kept once.
"""

from __future__ import annotations

from contextvars import ContextVar

_recorder: ContextVar[list[str] | None] = ContextVar("corral_warnings", default=None)


def start() -> None:
    """Begin recording for the request the current task serves."""
    _recorder.set([])


def add(text: str) -> None:
    """Record ``text`` for the current request, once."""
    recorded = _recorder.get()
    if recorded is not None and text and text not in recorded:
        recorded.append(text)


def recorded() -> list[str]:
    """What the current request recorded so far, in order."""
    return list(_recorder.get() or ())
