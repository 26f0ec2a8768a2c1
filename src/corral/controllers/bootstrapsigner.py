"""The ``bootstrapsigner`` and ``tokencleaner`` controllers of bootstrap tokens, as
upstream's ``pkg/controller/bootstrap``.

``bootstrapsigner`` keeps ``kube-public/cluster-info`` signed: for every valid token
Secret with ``usage-bootstrap-signing: "true"`` the ConfigMap carries
``jws-kubeconfig-ID``, the detached JWS of its ``kubeconfig`` under that token
(``api/bootstraptoken.sign_detached``), and no signature of a token that is gone or
expired. A joining agent verifies it with the token it holds (``agent/bootstrap.py``),
so it trusts the CA it reads anonymously only when the server knows its token.

``tokencleaner`` deletes token Secrets whose ``expiration`` has passed (re-checked when
they would expire).
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any, ClassVar

from corral.api import bootstraptoken as bt
from corral.api.errors import StatusError
from corral.client.rest import CONFIGMAPS, SECRETS, Client
from corral.controllers.base import Controller, InformerFactory
from corral.util.clock import Clock

log = logging.getLogger("corral.controllers.bootstrapsigner")

Obj = dict[str, Any]


def signed_data(data: dict[str, str], tokens: dict[str, str]) -> dict[str, str]:
    """``cluster-info``'s data with exactly one current signature per signing token."""
    content = data.get(bt.KUBECONFIG_KEY, "")
    out = {k: v for k, v in data.items() if not k.startswith(bt.JWS_PREFIX)}
    for token_id, secret in tokens.items():
        key = bt.JWS_PREFIX + token_id
        old = data.get(key, "")
        # keep an existing valid signature (signatures are deterministic anyway)
        if old and bt.verify_detached(content, old, token_id, secret):
            out[key] = old
        else:
            out[key] = bt.sign_detached(content, token_id, secret)
    return out


class BootstrapSignerController(Controller):
    """Signs ``kube-public/cluster-info`` with every signing bootstrap token."""

    name: ClassVar[str] = "bootstrapsigner"
    KEY = f"{bt.KUBE_PUBLIC}/{bt.CLUSTER_INFO}"

    def __init__(
        self,
        client: Client,
        factory: InformerFactory,
        *,
        workers: int = 1,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(client, factory, workers=workers, clock=clock)
        self.secrets = factory.informer(SECRETS)
        self.configmaps = factory.informer(CONFIGMAPS)
        self.secrets.add_handler(self._on_secret)
        self.configmaps.add_handler(self._on_configmap)

    def _on_secret(self, _type: str, obj: Obj, old: Obj | None) -> None:
        if obj.get("type") == bt.SECRET_TYPE:
            self.queue.add(self.KEY)

    def _on_configmap(self, _type: str, obj: Obj, old: Obj | None) -> None:
        meta = obj.get("metadata") or {}
        if (meta.get("namespace"), meta.get("name")) == (bt.KUBE_PUBLIC, bt.CLUSTER_INFO):
            self.queue.add(self.KEY)

    async def sync(self, key: str) -> None:
        cm = self.configmaps.get(key)
        if cm is None:
            return
        now = dt.datetime.fromtimestamp(self.clock.now(), dt.UTC)
        secrets = [
            s
            for s in self.secrets.store.values()
            if (s.get("metadata") or {}).get("namespace") == bt.NAMESPACE
        ]
        tokens = bt.signing_tokens(secrets, now)
        data = dict(cm.get("data") or {})
        want = signed_data(data, tokens)
        if want == data:
            return
        body = {**cm, "data": want}
        try:
            await self.client.update(CONFIGMAPS, body, bt.KUBE_PUBLIC)
        except StatusError as e:
            if e.code != 404:
                raise
        log.info("cluster-info signed by %d token(s)", len(tokens))


class TokenCleanerController(Controller):
    """Deletes expired bootstrap token Secrets."""

    name: ClassVar[str] = "tokencleaner"

    def __init__(
        self,
        client: Client,
        factory: InformerFactory,
        *,
        workers: int = 1,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(client, factory, workers=workers, clock=clock)
        self.secrets = factory.informer(SECRETS)
        self.secrets.add_handler(self._on_secret)

    def _on_secret(self, _type: str, obj: Obj, old: Obj | None) -> None:
        meta = obj.get("metadata") or {}
        if obj.get("type") == bt.SECRET_TYPE and meta.get("namespace") == bt.NAMESPACE:
            self.enqueue(obj)

    async def sync(self, key: str) -> None:
        secret = self.secrets.get(key)
        if secret is None:
            return
        data = bt.secret_data(secret)
        now = dt.datetime.fromtimestamp(self.clock.now(), dt.UTC)
        if not bt.is_expired(data, now):
            when = bt.expiration(data)
            if when is not None:
                self.queue.add_after(key, (when - now).total_seconds() + 1)
            return
        name = (secret.get("metadata") or {}).get("name", "")
        try:
            await self.client.delete(SECRETS, name, bt.NAMESPACE)
            log.info("deleted expired bootstrap token %s", name)
        except StatusError as e:
            if e.code != 404:
                raise
