"""Credentials as the HTTP servers read them: bearer tokens and client certificates.

``bearer_token`` and ``peer_subject`` are how the API server (``apiserver/authn.py``),
the node agent (``agent/auth.py``) and metrics-server (``metrics/auth.py``) read a
request's credentials, so all three read them alike. ``bearer_matches`` is the check of
the servers that take one shared token (a plain-HTTP agent, hollow nodes, metrics-server
without a CA).

``node_token`` is what a caller sends a plain-HTTP agent instead of its own token: the
scheme (``agent.corral.dev/scheme``) and the address of an agent are written by the node
itself, so a node could point the API server at a listener of its own and read whatever
it sends in clear. A token bound to the node's name (an HMAC keyed by the shared token)
lets the agent, which holds the shared token, check the caller, and is worth nothing to
the node anywhere else (not at the API server, not at another node's agent).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any


def bearer_token(authorization: str) -> str:
    """The token of an ``Authorization`` header, "" when it carries none (upstream's
    bearertoken authenticator: the scheme is case-insensitive, the token the second
    space-separated part)."""
    parts = authorization.strip().split(" ", 2)
    if len(parts) < 2 or parts[0].lower() != "bearer":
        return ""
    return parts[1]


def peer_subject(peercert: Mapping[str, Any] | None) -> tuple[str, list[str]]:
    """The user name and groups of a verified client certificate
    (``SSLObject.getpeercert()``'s dict): the subject's CN (the last one, as Go's x509
    authenticator reads it) and its Os in order; ("", []) without a certificate."""
    cn, orgs = "", []
    for rdn in (peercert or {}).get("subject") or ():
        for key, value in rdn:
            if key == "commonName":
                cn = str(value)
            elif key == "organizationName":
                orgs.append(str(value))
    return cn, orgs


def bearer_matches(authorization: str, token: str) -> bool:
    """Whether an ``Authorization`` header value carries ``Bearer <token>`` (compared in
    constant time); an empty or missing token never matches."""
    given = authorization[7:].strip() if authorization.startswith("Bearer ") else ""
    # as bytes: ``compare_digest`` raises TypeError on a str with non-ASCII characters
    # (a header is whatever the client sent; aiohttp decodes it with surrogateescape)
    return bool(given) and hmac.compare_digest(
        given.encode("utf-8", "surrogateescape"), token.encode("utf-8", "surrogateescape")
    )


def node_token(token: str, node: str) -> str:
    """The bearer token for node ``node``'s plain-HTTP agent API, derived from ``token``
    (the shared secret both ends hold); '' without a token or a node."""
    if not token or not node:
        return ""
    mac = hmac.new(token.encode(), b"corral-agent-api\x00" + node.encode(), hashlib.sha256)
    return "corral-node." + mac.hexdigest()
