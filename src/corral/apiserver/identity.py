"""Who a request comes from: the user name and groups behind its credentials.

Today every client (kubectl, the Python client, the scheduler, the controllers, the
agents) holds the one admin token, so every authenticated request is the kubeconfig's
user ``admin`` in ``system:masters`` (bound to cluster-admin by the bootstrap policy)
and ``system:authenticated``. The review endpoints (``apiserver/reviews.py``) ask
``user_for`` whom they answer for; issue 15's authentication (client certificates,
token files, ServiceAccount tokens) replaces this one function.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class UserInfo:
    """An authenticated identity, as upstream's ``user.Info``."""

    username: str
    groups: tuple[str, ...] = ()
    uid: str = ""
    extra: dict[str, list[str]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The ``userInfo`` of a SelfSubjectReview or TokenReview."""
        out: dict[str, Any] = {"username": self.username}
        if self.uid:
            out["uid"] = self.uid
        if self.groups:
            out["groups"] = list(self.groups)
        if self.extra:
            out["extra"] = {k: list(v) for k, v in self.extra.items()}
        return out


ADMIN = UserInfo("admin", ("system:masters", "system:authenticated"))


def user_for(authorization: str) -> UserInfo:
    """The identity behind an ``Authorization`` header the middleware already accepted
    (every accepted token is the admin token today)."""
    return ADMIN
