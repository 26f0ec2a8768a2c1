"""The cluster's bootstrap data, shared by every server through the datastore.

Several ``corral server`` processes on one etcd must serve ONE cluster: the same CA (so
every kubeconfig and agent certificate works against every server), the same
ServiceAccount signing key (a token issued by one is valid on the others), the same
front-proxy CA, the same keys of encryption at rest (a Secret sealed by one is read by
the others), the same admin token and framework secrets. This module is how they get
them, as k3s does with its bootstrap data (``pkg/bootstrap``, ``pkg/cluster/storage.go``):

* The first server on an empty datastore makes the shared material under ``DATA/pki``
  (``SHARED``), packs it, seals it with AES-256-GCM under a key derived from the cluster
  token (scrypt, a random salt per record) and creates ``/corral/bootstrap`` with it
  (``put_meta(create_only=True)``: of two first servers starting at once, one wins and
  the other adopts the winner's data).
* Every other start (a ``--join``ed server, or any server's restart) reads the record
  and writes the files into its own ``DATA/pki`` before any PKI is made, so it issues
  only its own serving certificate and component certificates, from the shared CA.
  A token that does not open the record is a one-line error.

The cluster token is ``--token``, ``--token-file`` or ``DATA/cluster-token`` (0600); the
first server makes one when none is given and writes it there (before the record, so a
crash cannot lose it; it prints where, never the token).

Who calls it: ``Server.start`` (``exchange``) on an etcd datastore, before the encryption
configuration is loaded; ``corral migrate`` copies the record as it is. Sealing and
generating keys need ``cryptography``: they run in a short-lived child
(``python -m corral.apiserver.bootstrap_data``), so the serving process never loads it
for this (as ``certs.ensure_pki_in_child``).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import logging
import os
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any, Protocol

log = logging.getLogger("corral.bootstrap")

#: the datastore key of the sealed record (outside ``/registry/``)
BOOTSTRAP_KEY = "/corral/bootstrap"
#: where a server keeps the cluster token (0600)
TOKEN_FILE = "cluster-token"
#: the files of ``DATA/pki`` every server of a cluster shares (the rest is per server)
SHARED = (
    "ca.crt",
    "ca.key",
    "front-proxy-ca.crt",
    "front-proxy-ca.key",
    "sa.key",
    "admin.token",
    "encryption.yaml",
    "marathon.secret",
    "chronos.secret",
)
#: files that are not secret (certificates) keep 0644; the rest 0600
_PUBLIC = (".crt", ".pub")
_VERSION = 1
_AAD = b"corral-bootstrap-v1"
#: scrypt's cost (RFC 7914's interactive figures, doubled): ~0.1 s and 32 MiB per try
_SCRYPT = {"n": 2**15, "r": 8, "p": 1}


class BootstrapError(ValueError):
    """The bootstrap data cannot be made, found or opened (one line for the user)."""


class MetaStore(Protocol):
    """What this module needs of the store (``EtcdStorage``, ``SQLiteStorage``)."""

    async def get_meta(self, key: str) -> bytes | None: ...

    async def put_meta(self, key: str, value: bytes, *, create_only: bool) -> bool: ...


# --- the token -------------------------------------------------------------------------


def resolve_token(data_dir: Path, token: str, token_file: Path | None) -> str:
    """``--token``, else ``--token-file``, else ``DATA/cluster-token``; "" when none."""
    if token:
        return token.strip()
    if token_file is not None:
        try:
            found = token_file.read_text().strip()
        except OSError as e:
            raise BootstrapError(f"--token-file {token_file}: {e.strerror or e}") from None
        if not found:
            raise BootstrapError(f"--token-file {token_file} is empty")
        return found
    path = data_dir / TOKEN_FILE
    return path.read_text().strip() if path.exists() else ""


def save_token(data_dir: Path, token: str) -> None:
    """``DATA/cluster-token`` (0600) unless it already holds ``token``."""
    from corral.util.pki import write_atomic

    path = data_dir / TOKEN_FILE
    if path.exists() and path.read_text().strip() == token:
        return
    data_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(path, token.encode() + b"\n", 0o600)


def new_token() -> str:
    return secrets.token_urlsafe(32)


# --- sealing (in the child: cryptography) ------------------------------------------------


def _key(token: str, salt: bytes, params: dict[str, int]) -> bytes:
    n, r, p = params["n"], params["r"], params["p"]
    return hashlib.scrypt(token.encode(), salt=salt, n=n, r=r, p=p, dklen=32, maxmem=256 * r * n)


def seal(token: str, files: dict[str, bytes]) -> bytes:
    """The stored record: ``files`` as JSON, AES-256-GCM under the token's scrypt key."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    salt, nonce = os.urandom(16), os.urandom(12)
    plain = json.dumps({n: base64.b64encode(v).decode() for n, v in sorted(files.items())})
    sealed = AESGCM(_key(token, salt, _SCRYPT)).encrypt(nonce, plain.encode(), _AAD)
    b64 = base64.b64encode
    record = {"version": _VERSION, "kdf": "scrypt", **_SCRYPT, "salt": b64(salt).decode(),
              "nonce": b64(nonce).decode(), "data": b64(sealed).decode()}  # fmt: skip
    return json.dumps(record).encode()


def unseal(token: str, record: bytes) -> dict[str, bytes]:
    """The files of a record; ``BootstrapError`` for a wrong token or a foreign record."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    try:
        rec: dict[str, Any] = json.loads(record)
        if rec.get("version") != _VERSION or rec.get("kdf") != "scrypt":
            raise BootstrapError(f"{BOOTSTRAP_KEY}: unknown format (version {rec.get('version')})")
        params = {k: int(rec[k]) for k in ("n", "r", "p")}
        salt, nonce, data = (base64.b64decode(rec[k]) for k in ("salt", "nonce", "data"))
    except (ValueError, KeyError, TypeError) as e:
        if isinstance(e, BootstrapError):
            raise
        raise BootstrapError(f"{BOOTSTRAP_KEY}: not a Corral bootstrap record") from None
    try:
        plain = AESGCM(_key(token, salt, params)).decrypt(nonce, data, _AAD)
    except InvalidTag:
        raise BootstrapError(
            "the cluster token does not open the bootstrap data in the datastore "
            "(wrong --token or --token-file?)"
        ) from None
    return {n: base64.b64decode(v) for n, v in json.loads(plain).items()}


def make_shared(data_dir: Path, *, encryption_config: bool) -> None:
    """Create whatever of ``SHARED`` is missing under ``DATA/pki`` (the first server)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from corral.apiserver import framework_auth
    from corral.apiserver.certs import _issue_ca, ensure_admin_token
    from corral.apiserver.component_identities import FRONT_PROXY_CA
    from corral.apiserver.encryption_config import ensure_default
    from corral.util.pki import load_pair, write_atomic, write_pair

    pki = data_dir / "pki"
    pki.mkdir(parents=True, exist_ok=True)
    os.chmod(pki, 0o700)
    now = dt.datetime.now(dt.UTC)
    for stem, cn in (("ca", None), (FRONT_PROXY_CA, FRONT_PROXY_CA)):
        crt, key = pki / f"{stem}.crt", pki / f"{stem}.key"
        if load_pair(crt, key) is None:
            write_pair(crt, key, *(_issue_ca(now) if cn is None else _issue_ca(now, cn)))
    sa = pki / "sa.key"
    if not sa.exists():  # the format of sa_tokens.SigningKey: PKCS#8 P-256, 0600
        pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        write_atomic(sa, pem, 0o600, exclusive=True)
    ensure_admin_token(data_dir)
    framework_auth.ensure_framework_secrets(data_dir)
    if encryption_config:
        ensure_default(pki / "encryption.yaml")


def read_shared(data_dir: Path, *, encryption_config: bool) -> dict[str, bytes]:
    pki = data_dir / "pki"
    names = [n for n in SHARED if encryption_config or n != "encryption.yaml"]
    return {n: (pki / n).read_bytes() for n in names if (pki / n).exists()}


def write_shared(data_dir: Path, files: dict[str, bytes]) -> list[str]:
    """Write the record's files into ``DATA/pki`` (only those that differ); their names."""
    from corral.util.pki import write_atomic

    pki = data_dir / "pki"
    pki.mkdir(parents=True, exist_ok=True)
    os.chmod(pki, 0o700)
    changed = []
    for name, data in sorted(files.items()):
        if name not in SHARED:  # a record from a newer Corral: skip what we do not know
            continue
        path = pki / name
        if path.exists() and path.read_bytes() == data:
            continue
        write_atomic(path, data, 0o644 if name.endswith(_PUBLIC) else 0o600)
        changed.append(name)
    return changed


# --- the child process -----------------------------------------------------------------


def _child(command: str, data_dir: Path, stdin: dict[str, Any]) -> bytes:
    """``python -m corral.apiserver.bootstrap_data COMMAND DATA_DIR`` with ``stdin`` as
    JSON (the token never appears on a command line); its stdout, or the child's last
    error line as ``BootstrapError``."""
    run = subprocess.run(
        [sys.executable, "-m", __name__, command, str(data_dir)],
        input=json.dumps(stdin).encode(),
        capture_output=True,
    )
    if run.returncode != 0:
        lines = run.stderr.decode(errors="replace").strip().splitlines()
        raise BootstrapError(lines[-1] if lines else f"bootstrap {command}: exit {run.returncode}")
    return run.stdout


def main(argv: list[str]) -> int:
    """``pack DATA_DIR`` (stdin ``{"token", "encryption_config"}``: make the shared
    material, print the sealed record) or ``unpack DATA_DIR`` (stdin ``{"token",
    "record"}``: write the files; print their names, one a line)."""
    if len(argv) != 2 or argv[0] not in ("pack", "unpack"):
        print("usage: python -m corral.apiserver.bootstrap_data pack|unpack DATA_DIR",
              file=sys.stderr)  # fmt: skip
        return 2
    data_dir = Path(argv[1])
    req = json.loads(sys.stdin.buffer.read())
    try:
        if argv[0] == "pack":
            enc = bool(req["encryption_config"])
            make_shared(data_dir, encryption_config=enc)
            out = seal(req["token"], read_shared(data_dir, encryption_config=enc))
        else:
            files = unseal(req["token"], base64.b64decode(req["record"]))
            out = "\n".join(write_shared(data_dir, files)).encode()
    except (BootstrapError, OSError) as e:
        print(str(e), file=sys.stderr)
        return 1
    sys.stdout.buffer.write(out)
    return 0


def unpack(data_dir: Path, token: str, record: bytes) -> list[str]:
    """Write a record's files into ``DATA/pki`` (``corral restore`` on a fresh host);
    the names written. ``BootstrapError`` for a wrong token. Runs in a child."""
    req = {"token": token, "record": base64.b64encode(record).decode()}
    return _child("unpack", data_dir, req).decode().split()


# --- the server's side -------------------------------------------------------------------


async def exchange(
    store: MetaStore,
    data_dir: Path,
    *,
    join: bool,
    token: str = "",
    token_file: Path | None = None,
    encryption_config: bool = True,
) -> None:
    """Make ``DATA/pki`` hold the cluster's shared material (module docstring). ``join``:
    the data must already be in the datastore (never make a new cluster).
    ``encryption_config``: the default ``DATA/pki/encryption.yaml`` travels too (not
    when ``--encryption-provider-config`` names a file of the operator's)."""
    import asyncio

    tok = resolve_token(data_dir, token, token_file)
    for _ in range(3):
        record = await store.get_meta(BOOTSTRAP_KEY)
        if record is not None:
            if not tok:
                raise BootstrapError(
                    "the datastore holds a cluster: give its token (--token or --token-file; "
                    f"the first server's DATA/{TOKEN_FILE})"
                )
            written = await asyncio.to_thread(unpack, data_dir, tok, record)
            if written:
                log.info("bootstrap data from the datastore: %s", written)
            save_token(data_dir, tok)
            return
        if join:
            raise BootstrapError(
                f"--join: the datastore has no cluster yet ({BOOTSTRAP_KEY} missing); "
                "start the first server without --join"
            )
        made = not tok
        tok = tok or new_token()
        if made:  # kept before the record exists: a put whose answer is lost loses nothing
            save_token(data_dir, tok)
        req2 = {"token": tok, "encryption_config": encryption_config}
        sealed = await asyncio.to_thread(_child, "pack", data_dir, req2)
        if await store.put_meta(BOOTSTRAP_KEY, sealed, create_only=True):
            save_token(data_dir, tok)
            if made:  # the token itself stays in the file (0600), out of any log
                print(
                    f"cluster token made: {data_dir / TOKEN_FILE} (other servers join "
                    "with --token-file of a copy of it)",
                    flush=True,
                )
            return
        # another first server won the race: adopt its record on the next round
        if made:
            (data_dir / TOKEN_FILE).unlink(missing_ok=True)
            tok = ""
    raise BootstrapError(f"{BOOTSTRAP_KEY}: could not be created or read")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
