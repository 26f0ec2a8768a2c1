"""Certificates renewed before they expire while ``corral server`` runs.

At start the server issues, through this object (``CertRenewal.pki``, ``.identities``,
``.serving_pair``), its own serving certificate, the components' client certificates
(``client_certs.py``) and the serving pairs of the metrics server and the local agents
(``certs.ensure_serving_pair``); each is re-issued in the last fifth of its lifetime (30
days before expiry for serving pairs). ``run`` repeats that every ``interval`` (6 h) so a
server that runs for a year never serves or presents an expired certificate:

1. ``due(now)`` decides, from the records each issuance leaves (``pki/*.checked.json``,
   no ``cryptography``), which certificates need a look;
2. those are issued again in a short-lived child (``*_in_child``), which re-checks them
   and re-issues what is really due; a certificate whose file changed was renewed;
3. each renewed one reaches its user, with one INFO line: the API server's serving
   certificate, its ``kube-apiserver-kubelet-client`` and ``front-proxy-client``
   certificates are loaded again into the same ``SSLContext`` objects (new connections
   use them); a component's client certificate is written into its kubeconfig, and every
   child or in-process loop whose command line names that kubeconfig (or the metrics
   server's serving pair) is restarted through ``Children.restart_unit``, one at a time;
   an agent reloads its serving pair by itself when the files change (``agent/auth.py``
   ``ServingTLS``).

A failed pass is logged and tried again at the next interval.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from corral.apiserver.certs import (
    Pki,
    ensure_pki_in_child,
    ensure_serving_pair_in_child,
    pki_checked,
    serving_pair_checked,
)
from corral.apiserver.children import Child, Children, Loop
from corral.apiserver.client_certs import (
    ensure_identities_in_child,
    ensure_pki_with_identities_in_child,
    identity_checked,
    kubeconfig_path,
    pair_paths,
    write_component_kubeconfig,
)
from corral.apiserver.component_identities import FRONT_PROXY_CLIENT, KUBELET_CLIENT, Identity

log = logging.getLogger("corral.apiserver.cert_renewal")

#: how often the certificates are looked at (they are renewed weeks before expiry)
INTERVAL = 6 * 3600.0


class ProxyClientUser(Protocol):
    """The aggregator: reloads its front-proxy client certificate."""

    def reload_proxy_client(self) -> None: ...


@dataclass(frozen=True)
class ServingPair:
    """``pki/NAME.{crt,key}`` for ``hosts``; ``reloads``: its server watches the files."""

    name: str
    hosts: tuple[str, ...]
    reloads: bool = False


@dataclass(frozen=True)
class Due:
    """The certificates to issue again: the server's own (``server``), client identities
    and serving pairs."""

    server: bool = False
    identities: tuple[Identity, ...] = ()
    serving: tuple[ServingPair, ...] = ()

    def __bool__(self) -> bool:
        return self.server or bool(self.identities) or bool(self.serving)


#: issues what is due (blocking; run in a thread): by default each in a short-lived child
Issue = Callable[["CertRenewal", Due], None]


def issue_in_child(renewal: CertRenewal, due: Due) -> None:
    """The default ``Issue``: the ``*_in_child`` functions, as at start."""
    if due.server:
        ensure_pki_in_child(renewal.data_dir, renewal.server_hosts or [])
    if due.identities:
        ensure_identities_in_child(renewal.data_dir, due.identities)
    for pair in due.serving:
        ensure_serving_pair_in_child(renewal.data_dir, pair.name, pair.hosts)


@dataclass
class CertRenewal:
    """The certificates one server issued, renewed every ``interval`` (module docstring).
    The server sets ``server_context``, ``kubelet_client`` and ``aggregator`` when it
    builds them; what is ``None`` is not reloaded."""

    data_dir: Path
    children: Children
    interval: float = INTERVAL
    issue: Issue = issue_in_child
    server_hosts: list[str] | None = None  # None: no TLS serving certificate issued
    server_url: str = ""
    #: the other API servers of an HA cluster, written into the kubeconfigs after ours
    peer_urls: list[str] = field(default_factory=list)
    identities: dict[str, Identity] = field(default_factory=dict)
    serving: dict[str, ServingPair] = field(default_factory=dict)
    server_context: ssl.SSLContext | None = None
    kubelet_client: ssl.SSLContext | None = None
    aggregator: ProxyClientUser | None = None

    # --- issued at start (blocking: the server calls these in a thread) ------------------
    def pki(self, hosts: Sequence[str], idents: Sequence[Identity] = ()) -> Pki:
        """``ensure_pki_in_child`` for ``hosts``, remembered for the renewals; ``idents``
        (those ``issue_identities`` and ``kubelet_client_context`` are about to want) are
        issued in the same child when the PKI needs one
        (``ensure_pki_with_identities_in_child``), so a first start runs one child."""
        self.server_hosts = list(hosts)
        return ensure_pki_with_identities_in_child(self.data_dir, self.server_hosts, idents)

    def issue_identities(self, idents: Sequence[Identity], server_url: str) -> None:
        """``ensure_identities_in_child``; kubeconfigs renewed later point at ``server_url``."""
        self.server_url = server_url
        self.identities.update((i.name, i) for i in idents)
        ensure_identities_in_child(self.data_dir, idents)

    def serving_pair(
        self, name: str, hosts: Sequence[str], reloads: bool = False
    ) -> tuple[Path, Path]:
        """``ensure_serving_pair_in_child``; ``reloads``: its server reloads the files."""
        self.serving[name] = ServingPair(name, tuple(hosts), reloads)
        return ensure_serving_pair_in_child(self.data_dir, name, hosts)

    # --- the renewal ---------------------------------------------------------------------
    def watched_identities(self) -> list[Identity]:
        idents = dict(self.identities)
        if self.kubelet_client is not None:
            idents.setdefault(KUBELET_CLIENT.name, KUBELET_CLIENT)
        return list(idents.values())

    def due(self, now: dt.datetime) -> Due:
        """What is due for renewal at ``now`` (or whose record no longer holds)."""
        server = self.server_hosts is not None and not pki_checked(
            self.data_dir, self.server_hosts, now
        )
        return Due(
            server,
            tuple(
                i for i in self.watched_identities() if not identity_checked(self.data_dir, i, now)
            ),
            tuple(
                p
                for p in self.serving.values()
                if not serving_pair_checked(self.data_dir, p.name, p.hosts, now)
            ),
        )

    def _cert_files(self, due: Due) -> dict[str, Path]:
        pki = Pki.at(self.data_dir)
        files = {f"identity {i.name}": pair_paths(self.data_dir, i)[0] for i in due.identities}
        files.update({f"serving {p.name}": pki.dir / f"{p.name}.crt" for p in due.serving})
        if due.server:
            files["server"] = pki.server_cert
        return files

    async def renew_once(self, now: dt.datetime | None = None) -> list[str]:
        """One pass: issue what is due, hand each renewed certificate to its user; the
        renewed ones' labels (``server``, ``identity NAME``, ``serving NAME``)."""
        due = self.due(now or dt.datetime.now(dt.UTC))
        if not due:
            return []
        files = self._cert_files(due)
        before = {label: _digest(path) for label, path in files.items()}
        await asyncio.to_thread(self.issue, self, due)
        renewed = [label for label, path in files.items() if _digest(path) != before[label]]
        if renewed:
            await self._apply(due, set(renewed))
        return renewed

    async def _apply(self, due: Due, renewed: set[str]) -> None:
        pki = Pki.at(self.data_dir)
        restart: list[str] = []  # argv entries whose units must start again
        if "server" in renewed:
            log.info("renewed the API server's serving certificate %s", pki.server_cert)
            if self.server_context is not None:
                self.server_context.load_cert_chain(pki.server_cert, pki.server_key)
        for ident in due.identities:
            if f"identity {ident.name}" not in renewed:
                continue
            crt, key = pair_paths(self.data_dir, ident)
            log.info("renewed the client certificate of %s (%s)", ident.user, crt)
            if ident == KUBELET_CLIENT and self.kubelet_client is not None:
                self.kubelet_client.load_cert_chain(crt, key)
            elif ident == FRONT_PROXY_CLIENT and self.aggregator is not None:
                self.aggregator.reload_proxy_client()
            elif kubeconfig_path(self.data_dir, ident).exists() and self.server_url:
                path = write_component_kubeconfig(
                    self.data_dir, ident, self.server_url, self.peer_urls
                )
                restart.append(str(path))
        for pair in due.serving:
            if f"serving {pair.name}" not in renewed:
                continue
            crt = pki.dir / f"{pair.name}.crt"
            log.info("renewed the serving certificate %s", crt)
            if not pair.reloads:
                restart.append(str(crt))
        units: list[Child | Loop] = []
        for arg in restart:
            units += [u for u in self.children.using(arg) if all(u is not v for v in units)]
        for unit in units:  # one at a time
            await self.children.restart_unit(unit)

    async def run(self) -> None:
        """``renew_once`` every ``interval`` seconds until cancelled."""
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.renew_once()
            except Exception as e:
                log.warning("certificate renewal failed (retry in %.0f s): %s", self.interval, e)


def _digest(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return ""
