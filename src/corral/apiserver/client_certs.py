"""The components' client certificates and kubeconfigs, issued from the cluster CA.

``corral server`` calls ``ensure_identities_in_child`` at start (after ``ensure_pki``)
with the identities of what it runs (``apiserver/component_identities.py``); each gets
``pki/NAME.crt`` and ``pki/NAME.key`` (ECDSA P-256, client auth, CN = user, O = groups,
one year), re-issued when it expires within a fifth of its lifetime, when its subject no
longer matches or when the CA changed. ``write_component_kubeconfig`` then writes
``pki/NAME.kubeconfig`` (0600) embedding the pair, the CA and the server URL, which the
server passes to that component's process (``--kubeconfig``). Writing kubeconfigs needs
no ``cryptography``; issuing does, and runs in a short-lived child unless every
identity's record (``pki/NAME.checked.json``: the files' digest, the subject, the renewal
time) still holds, so the serving process never loads it.

An identity may name another CA (``Identity.ca``): the aggregator's
``front-proxy-client`` comes from ``pki/front-proxy-ca.{crt,key}``, a CA of its own made
here on first use (as kubeadm's), so no certificate the cluster CA signs, a CSR's
included, can ever speak as the front proxy (``api/requestheader.py``).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import socket
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from corral.apiserver.component_identities import HOLLOW_NODES, Identity, node_identity
from corral.util.pki import (
    issue_client,
    load_pair,
    run_in_child,
    subject_of,
    write_atomic,
    write_pair,
)

if TYPE_CHECKING:
    from corral.apiserver.certs import Pki

CHECKED = "checked.json"


def pair_paths(data_dir: Path, ident: Identity) -> tuple[Path, Path]:
    """``pki/NAME.crt`` and ``pki/NAME.key``."""
    d = data_dir / "pki"
    return d / f"{ident.name}.crt", d / f"{ident.name}.key"


def kubeconfig_path(data_dir: Path, ident: Identity) -> Path:
    return data_dir / "pki" / f"{ident.name}.kubeconfig"


def ca_paths(data_dir: Path, ident: Identity) -> tuple[Path, Path]:
    """``pki/CA.crt`` and ``pki/CA.key`` of the CA that issues ``ident``."""
    d = data_dir / "pki"
    return d / f"{ident.ca}.crt", d / f"{ident.ca}.key"


def _digest(data_dir: Path, ident: Identity) -> str:
    h = hashlib.sha256()
    for path in (ca_paths(data_dir, ident)[0], *pair_paths(data_dir, ident)):
        h.update(path.read_bytes())
        h.update(b"\0")
    return h.hexdigest()


def _record_path(data_dir: Path, ident: Identity) -> Path:
    return data_dir / "pki" / f"{ident.name}.{CHECKED}"


def _still_checked(data_dir: Path, ident: Identity, now: dt.datetime) -> bool:
    try:
        rec = json.loads(_record_path(data_dir, ident).read_text())
        return bool(
            rec["digest"] == _digest(data_dir, ident)
            and rec["subject"] == [ident.user, *ident.groups]
            and now < dt.datetime.fromisoformat(rec["renew_at"])
        )
    except (OSError, ValueError, KeyError, TypeError):
        return False


def identity_checked(data_dir: Path, ident: Identity, now: dt.datetime) -> bool:
    """``ident``'s record holds at ``now``: its pair needs no renewal (no ``cryptography``)."""
    return _still_checked(data_dir, ident, now)


def ensure_identity(data_dir: Path, ident: Identity, *, now: dt.datetime | None = None) -> None:
    """Issue ``ident``'s pair unless the present one is from this CA, for this subject and
    not within a fifth of its lifetime of expiry; record the check. ``ValueError`` when
    there is no cluster CA (``ensure_pki`` must have run); another CA an identity names
    (the front-proxy CA) is made when missing."""
    from cryptography.exceptions import InvalidSignature

    now = now or dt.datetime.now(dt.UTC)
    pki = data_dir / "pki"
    ca_crt, ca_key = ca_paths(data_dir, ident)
    ca = load_pair(ca_crt, ca_key)
    if ca is None and ident.ca != "ca":
        from corral.apiserver.certs import _issue_ca

        ca = _issue_ca(now, ident.ca)
        write_pair(ca_crt, ca_key, *ca)
    if ca is None:
        raise ValueError(f"no CA in {pki}")
    crt, key = pair_paths(data_dir, ident)
    pair = load_pair(crt, key)
    ok = pair is not None
    if pair is not None:
        cert = pair[0]
        try:
            cert.verify_directly_issued_by(ca[0])
        except (ValueError, TypeError, InvalidSignature):
            ok = False
        lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
        if cert.not_valid_after_utc - lifetime / 5 <= now or cert.not_valid_before_utc > now:
            ok = False
        if subject_of(cert) != (ident.user, ident.groups):
            ok = False
    if not ok:
        pair = issue_client(ident.user, ident.groups, now, ca)
        write_pair(crt, key, *pair)
    assert pair is not None
    cert = pair[0]
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    rec = {
        "digest": _digest(data_dir, ident),
        "subject": [ident.user, *ident.groups],
        "renew_at": (cert.not_valid_after_utc - lifetime / 5).isoformat(),
    }
    write_atomic(_record_path(data_dir, ident), json.dumps(rec).encode(), 0o600)


def ensure_identities(data_dir: Path, idents: Iterable[Identity]) -> None:
    for ident in idents:
        ensure_identity(data_dir, ident)


#: what a child issuing identities imports, and how it reads ``_identities_spec``'s
#: JSON from its argument number ``arg``
_IDENTITIES_IMPORTS = (
    "from corral.apiserver.client_certs import ensure_identities; "
    "from corral.apiserver.component_identities import Identity"
)
_IDENTITIES_FROM = "[Identity(n, u, tuple(g), c) for n, u, c, *g in json.loads(sys.argv[{arg}])]"


def _identities_spec(idents: Iterable[Identity]) -> str:
    """``idents`` as the JSON argument ``_IDENTITIES_FROM`` reads back in a child."""
    return json.dumps([[i.name, i.user, i.ca, *i.groups] for i in idents])


def ensure_identities_in_child(data_dir: Path, idents: Sequence[Identity]) -> None:
    """``ensure_identity`` for each of ``idents``, in a short-lived child unless every
    record still holds (the serving process never loads ``cryptography``). Raises
    ``ValueError`` with the child's message when issuing fails."""
    now = dt.datetime.now(dt.UTC)
    stale = [i for i in idents if not _still_checked(data_dir, i, now)]
    if not stale:
        return
    code = (
        "import sys, json; from pathlib import Path; "
        f"{_IDENTITIES_IMPORTS}; "
        f"ensure_identities(Path(sys.argv[1]), {_IDENTITIES_FROM.format(arg=2)})"
    )
    run_in_child(
        [str(data_dir), _identities_spec(stale)], "the components' client certificates", code
    )


def ensure_pki_with_identities_in_child(
    data_dir: Path, hosts: Sequence[str], idents: Sequence[Identity]
) -> Pki:
    """``ensure_pki_in_child``; when the PKI needs its child (a first start, new SANs,
    near expiry), ``ensure_identities`` for ``idents`` runs in that same child after it,
    so a first start pays one ``cryptography`` child, not one per step (~0.2 s each).
    Otherwise the identities are left to ``ensure_identities_in_child``, as before; when
    they were issued here, its records hold and it starts no child."""
    from corral.apiserver.certs import Pki, ensure_pki_in_child, pki_checked

    pki = Pki.at(data_dir)
    if not idents or (pki.dir.is_dir() and pki_checked(data_dir, hosts, dt.datetime.now(dt.UTC))):
        return ensure_pki_in_child(data_dir, hosts)
    code = (
        "import sys, json; from pathlib import Path; "
        f"from corral.apiserver.certs import ensure_pki; {_IDENTITIES_IMPORTS}; "
        "d = Path(sys.argv[1]); ensure_pki(d, json.loads(sys.argv[2])); "
        f"ensure_identities(d, {_IDENTITIES_FROM.format(arg=3)})"
    )
    argv = [str(data_dir), json.dumps(list(hosts)), _identities_spec(idents)]
    run_in_child(argv, f"the PKI in {pki.dir}", code)
    return pki


def client_kubeconfig(
    server_url: str,
    ca_pem: bytes,
    cert_pem: bytes,
    key_pem: bytes,
    user: str,
    servers: Sequence[str] = (),
) -> bytes:
    """A kubeconfig for a client-certificate user at ``server_url`` (then ``servers``,
    the other API servers of an HA cluster: the ``corral.dev/servers`` extension)."""
    from corral.client.rest import servers_extension

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    cluster: dict[str, object] = {"server": server_url, "certificate-authority-data": b64(ca_pem)}
    if extensions := servers_extension([server_url, *servers]):
        cluster["extensions"] = extensions
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "corral", "cluster": cluster}],
        "users": [
            {
                "name": user,
                "user": {
                    "client-certificate-data": b64(cert_pem),
                    "client-key-data": b64(key_pem),
                },
            }
        ],
        "contexts": [{"name": "corral", "context": {"cluster": "corral", "user": user}}],
        "current-context": "corral",
        "preferences": {},
    }
    return yaml.safe_dump(config, sort_keys=False).encode()


def write_component_kubeconfig(
    data_dir: Path, ident: Identity, server_url: str, servers: Sequence[str] = ()
) -> Path:
    """``pki/NAME.kubeconfig`` (0600) for ``ident`` at ``server_url``, then ``servers``
    (its pair must exist); returns its path."""
    crt, key = pair_paths(data_dir, ident)
    path = kubeconfig_path(data_dir, ident)
    body = client_kubeconfig(
        server_url,
        (data_dir / "pki" / "ca.crt").read_bytes(),
        crt.read_bytes(),
        key.read_bytes(),
        ident.user,
        servers,
    )
    write_atomic(path, body, 0o600)
    return path


def agent_identity(argv: Sequence[str]) -> Identity:
    """The identity of ``corral agent ARGV``: one node's (``--name``, default the host
    name, as the agent's), or the hollow-node process's when it runs ``--count`` nodes."""
    name = socket.gethostname()
    count = False
    for i, arg in enumerate(argv):
        if arg == "--name" and i + 1 < len(argv):
            name = argv[i + 1]
        elif arg.startswith("--name="):
            name = arg.split("=", 1)[1]
        elif arg == "--count" or arg.startswith("--count="):
            count = True
    return HOLLOW_NODES if count else node_identity(name)
