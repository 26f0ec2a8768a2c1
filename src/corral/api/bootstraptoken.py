"""Bootstrap tokens: their format, their Secrets and the detached JWS signatures of
``cluster-info`` (pure; no I/O).

A bootstrap token is ``ID.SECRET`` (``[a-z0-9]{6}.[a-z0-9]{16}``), kept as upstream in a
Secret of type ``bootstrap.kubernetes.io/token`` named ``bootstrap-token-ID`` in
``kube-system`` (keys ``token-id``, ``token-secret``, ``expiration`` RFC 3339,
``usage-bootstrap-authentication``, ``usage-bootstrap-signing``, ``auth-extra-groups``,
``description``). Three parties read this module and never import each other: the API
server's authenticator (``apiserver/bootstrap_tokens.py``), the controller manager's
bootstrap signer (``controllers/bootstrapsigner.py``), which signs the ``cluster-info``
ConfigMap's kubeconfig with every signing token as kubeadm's discovery expects
(``jws-kubeconfig-ID``: a compact HS256 JWS with the payload left out, keyed by the
token secret, ``kid`` the token id), and the joining agent (``agent/bootstrap.py``),
which verifies that signature with the token it was given.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import re
import secrets
from typing import Any

Obj = dict[str, Any]

SECRET_TYPE = "bootstrap.kubernetes.io/token"
SECRET_PREFIX = "bootstrap-token-"
NAMESPACE = "kube-system"
USER_PREFIX = "system:bootstrap:"
GROUP = "system:bootstrappers"
#: the group ``corral token create`` (as ``kubeadm token create``) adds by default
DEFAULT_EXTRA_GROUP = "system:bootstrappers:kubeadm:default-node-token"
KUBE_PUBLIC = "kube-public"
CLUSTER_INFO = "cluster-info"
KUBECONFIG_KEY = "kubeconfig"
JWS_PREFIX = "jws-kubeconfig-"

ID_KEY = "token-id"
SECRET_KEY = "token-secret"
EXPIRATION_KEY = "expiration"
DESCRIPTION_KEY = "description"
EXTRA_GROUPS_KEY = "auth-extra-groups"
USAGE_AUTH = "usage-bootstrap-authentication"
USAGE_SIGNING = "usage-bootstrap-signing"

TOKEN_RE = re.compile(r"^([a-z0-9]{6})\.([a-z0-9]{16})$")
ID_RE = re.compile(r"^[a-z0-9]{6}$")
GROUP_RE = re.compile(r"^system:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]$")
_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"


def parse_token(token: str) -> tuple[str, str] | None:
    """``(id, secret)`` of a well-formed token, else None."""
    m = TOKEN_RE.match(token)
    return (m.group(1), m.group(2)) if m else None


def generate_token() -> str:
    """A fresh random token ``ID.SECRET``."""
    pick = secrets.choice
    return (
        "".join(pick(_ALPHABET) for _ in range(6))
        + "."
        + "".join(pick(_ALPHABET) for _ in range(16))
    )


def secret_name(token_id: str) -> str:
    return SECRET_PREFIX + token_id


def rfc3339(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def validate_groups(groups: list[str]) -> str:
    """The first problem with ``auth-extra-groups`` (upstream's wording), or ``""``."""
    for g in groups:
        if not GROUP_RE.match(g):
            return f"{g!r} is not a valid bootstrap group name (must match {GROUP_RE.pattern})"
    return ""


def token_secret(
    token: str,
    *,
    ttl: dt.timedelta | None,
    now: dt.datetime,
    groups: list[str] | None = None,
    usages: tuple[str, ...] = ("authentication", "signing"),
    description: str = "",
) -> Obj:
    """The Secret that holds ``token`` (``ttl`` None or zero: never expires)."""
    parsed = parse_token(token)
    if parsed is None:
        raise ValueError(
            f'the bootstrap token "{token}" was not of the form "^([a-z0-9]{{6}}).([a-z0-9]{{16}})$"'
        )
    groups = [DEFAULT_EXTRA_GROUP] if groups is None else groups
    problem = validate_groups(groups)
    if problem:
        raise ValueError(problem)
    data = {ID_KEY: parsed[0], SECRET_KEY: parsed[1]}
    if ttl:
        data[EXPIRATION_KEY] = rfc3339(now + ttl)
    if description:
        data[DESCRIPTION_KEY] = description
    for usage in usages:
        data[f"usage-bootstrap-{usage}"] = "true"
    if groups:
        data[EXTRA_GROUPS_KEY] = ",".join(groups)
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": secret_name(parsed[0]), "namespace": NAMESPACE},
        "type": SECRET_TYPE,
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
    }


def secret_data(secret: Obj) -> dict[str, str]:
    """A Secret's ``data`` decoded (values that do not decode are left out)."""
    out: dict[str, str] = {}
    for k, v in (secret.get("data") or {}).items():
        try:
            out[k] = base64.b64decode(str(v), validate=True).decode()
        except (ValueError, UnicodeDecodeError):
            continue
    return out


def expiration(data: dict[str, str]) -> dt.datetime | None:
    """The ``expiration`` of a token's data; None for none or one that does not parse."""
    raw = data.get(EXPIRATION_KEY, "")
    if not raw:
        return None
    try:
        when = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return None
    # RFC 3339 carries an offset; a naive time would not compare with ``now`` (a 500)
    return when if when.tzinfo is not None else None


def is_expired(data: dict[str, str], now: dt.datetime) -> bool:
    """Whether a token's data has expired; an ``expiration`` that does not parse counts
    as expired (upstream: "unparseable expiration time")."""
    if not data.get(EXPIRATION_KEY):
        return False
    when = expiration(data)
    return when is None or now >= when


def extra_groups(data: dict[str, str]) -> list[str] | None:
    """``auth-extra-groups`` as a list; None when one of them is not a bootstrap group."""
    groups = [g.strip() for g in data.get(EXTRA_GROUPS_KEY, "").split(",") if g.strip()]
    return None if validate_groups(groups) else groups


def authenticated_user(secret: Obj, token: str, now: dt.datetime) -> tuple[str, list[str]] | None:
    """``(username, groups)`` when ``secret`` accepts ``token`` for authentication, as
    upstream's bootstrap token authenticator: the right type, the same id and secret
    (constant-time), not being deleted, not expired, authentication usage, valid extra
    groups. None otherwise."""
    parsed = parse_token(token)
    if parsed is None or secret.get("type") != SECRET_TYPE:
        return None
    if (secret.get("metadata") or {}).get("deletionTimestamp"):
        return None
    data = secret_data(secret)
    if not hmac.compare_digest(data.get(SECRET_KEY, "").encode(), parsed[1].encode()):
        return None
    if data.get(ID_KEY) != parsed[0] or is_expired(data, now):
        return None
    if data.get(USAGE_AUTH) != "true":
        return None
    groups = extra_groups(data)
    if groups is None:
        return None
    return USER_PREFIX + parsed[0], [GROUP, *(g for g in groups if g != GROUP)]


# --- detached JWS (cluster-info) -----------------------------------------------------------
def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign_detached(content: str, token_id: str, token_secret: str) -> str:
    """``content`` signed with HS256 under ``token_secret`` as a compact JWS whose
    payload is left out (``HEADER..SIGNATURE``), ``kid`` the token id."""
    header = _b64url(json.dumps({"alg": "HS256", "kid": token_id}, separators=(",", ":")).encode())
    signing_input = f"{header}.{_b64url(content.encode())}".encode()
    mac = hmac.new(token_secret.encode(), signing_input, hashlib.sha256).digest()
    return f"{header}..{_b64url(mac)}"


def verify_detached(content: str, jws: str, token_id: str, token_secret: str) -> bool:
    """Whether ``jws`` (``HEADER..SIGNATURE``) signs ``content`` with this token (HS256,
    ``kid`` the token id when present)."""
    parts = jws.split(".")
    if len(parts) != 3 or parts[1]:
        return False
    try:
        header = json.loads(_unb64url(parts[0]))
        sig = _unb64url(parts[2])
    except ValueError:
        return False
    if not isinstance(header, dict) or header.get("alg") != "HS256":
        return False
    if header.get("kid", token_id) != token_id:
        return False
    signing_input = f"{parts[0]}.{_b64url(content.encode())}".encode()
    mac = hmac.new(token_secret.encode(), signing_input, hashlib.sha256).digest()
    return hmac.compare_digest(mac, sig)


def signing_tokens(secrets_: list[Obj], now: dt.datetime) -> dict[str, str]:
    """token id -> token secret of every valid token Secret with the signing usage."""
    out: dict[str, str] = {}
    for s in secrets_:
        if s.get("type") != SECRET_TYPE or (s.get("metadata") or {}).get("deletionTimestamp"):
            continue
        data = secret_data(s)
        token_id, secret = data.get(ID_KEY, ""), data.get(SECRET_KEY, "")
        name = (s.get("metadata") or {}).get("name", "")
        if name != secret_name(token_id) or not ID_RE.match(token_id) or len(secret) != 16:
            continue
        if data.get(USAGE_SIGNING) != "true" or is_expired(data, now):
            continue
        out[token_id] = secret
    return out


def ca_cert_hash(ca_der_spki: bytes) -> str:
    """kubeadm's ``--discovery-token-ca-cert-hash``: ``sha256:`` and the hex SHA-256 of
    the CA certificate's DER SubjectPublicKeyInfo."""
    return "sha256:" + hashlib.sha256(ca_der_spki).hexdigest()
