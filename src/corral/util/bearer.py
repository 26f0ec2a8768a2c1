"""Bearer-token checks for the HTTP servers that take one shared token.

Called by the node agent's server (``agent/server.py``) and the metrics server
(``metrics/server.py``) in their authentication middleware.
"""

from __future__ import annotations

import hmac


def bearer_matches(authorization: str, token: str) -> bool:
    """Whether an ``Authorization`` header value carries ``Bearer <token>`` (compared in
    constant time); an empty or missing token never matches."""
    given = authorization[7:].strip() if authorization.startswith("Bearer ") else ""
    return bool(given) and hmac.compare_digest(given, token)
