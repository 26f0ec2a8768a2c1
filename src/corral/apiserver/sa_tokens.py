"""Service-account tokens: the signing key, bound JWTs, and their authenticator.

Upstream's ``pkg/serviceaccount`` in Python. ``ServiceAccountTokens.issue`` signs the
claims of a bound token (``claims`` below: ``iss``, ``sub``
``system:serviceaccount:NS:NAME``, ``aud``, ``exp``, ``iat``, ``nbf``, ``jti`` and the
private ``kubernetes.io`` claim naming the namespace, the ServiceAccount and the Pod,
Secret or Node it is bound to, and ``warnafter`` for the extended projected tokens); the
TokenRequest handler (``token_request.py``) calls it. ``authenticate`` is the token
authenticator the authentication chain runs (``api.authn.token_authenticators``):
``None`` for a token that is not ours (not a JWT, another issuer), ``InvalidToken``
with upstream's reason for one that fails (signature, time, audience, a bound object
gone or re-created), as ``authn.py`` expects; ``check`` is the same for any audiences.

The key is ECDSA P-256 (ES256, which upstream accepts as well as RS256) in
``DATA/pki/sa.key`` with its public half in ``sa.pub``, created on first use by
whichever server process needs it first (linked into place, so two servers sharing a
data dir agree on one key). ``cryptography`` and PyJWT are imported only then: a server
that issues no token never loads them. A verified signature is remembered for a minute
(bounded), since a pod presents the same token on every call; time, audience and the
bound objects are checked on every call against the watch caches. Tokens are never
logged.
"""

from __future__ import annotations

import base64
import hashlib
import threading
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from corral.apiserver.authn import InvalidToken, accept_audiences, requested_audiences
from corral.apiserver.identity import AUTHENTICATED, SA_PREFIX, UserInfo
from corral.util.clock import Clock, parse_rfc3339
from corral.util.pki import write_atomic

if TYPE_CHECKING:
    from corral.apiserver.store import Registry


Obj = dict[str, Any]

ISSUER = "https://kubernetes.default.svc.cluster.local"
KEY_FILE = "sa.key"
PUB_FILE = "sa.pub"
ALGORITHM = "ES256"
#: the expiration the ServiceAccount admission asks for: such pod-bound tokens are
#: extended (``token.WarnOnlyBoundTokenExpirationSeconds``)
WARN_ONLY_EXPIRATION = 3607
#: how long those extended tokens really live (``token.ExpirationExtensionSeconds``)
EXTENDED_EXPIRATION = 365 * 24 * 3600
#: go-jose's ``DefaultLeeway``: clock skew allowed on exp/nbf/iat and after a deletion
LEEWAY = 60
#: how long a verified signature is remembered, and how many
_SIG_TTL = 60.0
_SIG_MAX = 4096

PRIVATE = "kubernetes.io"
POD_NAME_KEY = "authentication.kubernetes.io/pod-name"
POD_UID_KEY = "authentication.kubernetes.io/pod-uid"
NODE_NAME_KEY = "authentication.kubernetes.io/node-name"
NODE_UID_KEY = "authentication.kubernetes.io/node-uid"
CREDENTIAL_ID_KEY = "authentication.kubernetes.io/credential-id"


def username(namespace: str, name: str) -> str:
    return f"{SA_PREFIX}{namespace}:{name}"


def groups(namespace: str) -> tuple[str, ...]:
    return ("system:serviceaccounts", f"system:serviceaccounts:{namespace}", AUTHENTICATED)


def _ref(obj: Obj) -> Obj:
    meta = obj.get("metadata") or {}
    return {"name": meta.get("name", ""), "uid": meta.get("uid", "")}


def claims(
    sa: Obj,
    *,
    now: int,
    expiration: int,
    audiences: Sequence[str],
    issuer: str = ISSUER,
    pod: Obj | None = None,
    secret: Obj | None = None,
    node: Obj | None = None,
    warn_after: int = 0,
    jti: str | None = None,
) -> Obj:
    """The claims of a token for ``sa``, as upstream's ``serviceaccount.Claims``: bound to
    ``pod`` (with its ``node`` when known), ``secret`` or ``node``; ``warn_after``
    seconds marks an extended token. Pure."""
    meta = sa.get("metadata") or {}
    ns = meta.get("namespace", "")
    private: Obj = {"namespace": ns, "serviceaccount": _ref(sa)}
    if secret is not None and (pod is not None or node is not None):
        raise ValueError("internal error, token can only be bound to one object type")
    if pod is not None:
        private["pod"] = _ref(pod)
        if node is not None:
            private["node"] = _ref(node)
    elif secret is not None:
        private["secret"] = _ref(secret)
    elif node is not None:
        private["node"] = _ref(node)
    if warn_after:
        private["warnafter"] = now + warn_after
    return {
        "aud": list(audiences),
        "exp": now + expiration,
        "iat": now,
        "iss": issuer,
        PRIVATE: private,
        "jti": jti if jti is not None else str(uuid.uuid4()),
        "nbf": now,
        "sub": username(ns, meta.get("name", "")),
    }


def check_time(c: Obj, now: float) -> None:
    """go-jose's ``ValidateWithLeeway`` on ``nbf``, ``exp`` and ``iat``, with upstream's
    reasons."""
    if isinstance(c.get("nbf"), int | float) and now + LEEWAY < c["nbf"]:
        raise InvalidToken("service account token is not valid yet")
    if isinstance(c.get("exp"), int | float) and now - LEEWAY > c["exp"]:
        raise InvalidToken("service account token has expired")
    if isinstance(c.get("iat"), int | float) and now + LEEWAY < c["iat"]:
        raise InvalidToken("service account token is issued in the future")


def user_info(private: Obj, jti: str) -> UserInfo:
    """``ServiceAccountInfo.UserInfo()``: the name, groups (with
    ``system:authenticated``), the ServiceAccount's uid, and the pod, node and credential
    extras."""
    ns = private.get("namespace", "")
    sa = private.get("serviceaccount") or {}
    extra: dict[str, list[str]] = {}
    pod = private.get("pod")
    if pod and pod.get("name") and pod.get("uid"):
        extra[POD_NAME_KEY] = [pod["name"]]
        extra[POD_UID_KEY] = [pod["uid"]]
    if jti:
        extra[CREDENTIAL_ID_KEY] = [f"JTI={jti}"]
    node = private.get("node")
    if node and node.get("name"):
        extra[NODE_NAME_KEY] = [node["name"]]
        if node.get("uid"):
            extra[NODE_UID_KEY] = [node["uid"]]
    return UserInfo(username(ns, sa.get("name", "")), groups(ns), sa.get("uid", ""), extra)


def _unverified_claims(token: str) -> Obj | None:
    """The payload of a compact JWS without checking it, or None if ``token`` is not one."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = orjson.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, orjson.JSONDecodeError):
        return None
    return payload if isinstance(payload, dict) else None


# --- the key ----------------------------------------------------------------------------


class SigningKey:
    """The ES256 key pair under ``pki_dir``: loaded, or created once, on first use."""

    def __init__(self, pki_dir: Path) -> None:
        self.dir = pki_dir
        self._lock = threading.Lock()
        self._private: Any = None
        self._public: Any = None
        self.kid = ""

    def _load(self) -> None:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec

        with self._lock:
            if self._private is not None:
                return
            path = self.dir / KEY_FILE
            if not path.exists():
                key = ec.generate_private_key(ec.SECP256R1())
                pem = key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
                self.dir.mkdir(parents=True, exist_ok=True)
                write_atomic(path, pem, 0o600, exclusive=True)
            loaded = serialization.load_pem_private_key(path.read_bytes(), None)
            if not isinstance(loaded, ec.EllipticCurvePrivateKey):
                raise ValueError(f"{path}: not an ECDSA key")
            public = loaded.public_key()
            der = public.public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            pub_path = self.dir / PUB_FILE
            pub_pem = public.public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            if not pub_path.exists() or pub_path.read_bytes() != pub_pem:
                write_atomic(pub_path, pub_pem, 0o644)
            self.kid = base64.urlsafe_b64encode(hashlib.sha256(der).digest()).decode().rstrip("=")
            self._private, self._public = loaded, public

    def sign(self, payload: Obj) -> str:
        import jwt

        self._load()
        return jwt.encode(payload, self._private, algorithm=ALGORITHM, headers={"kid": self.kid})

    def verify(self, token: str) -> bytes:
        """The payload of ``token`` if our key signed it; raises ``InvalidToken``."""
        import jwt

        self._load()
        try:
            payload: bytes = jwt.PyJWS().decode(token, self._public, algorithms=[ALGORITHM])
        except jwt.InvalidTokenError:
            raise InvalidToken("invalid signature") from None
        return payload


# --- issuing and authenticating -----------------------------------------------------------


@dataclass(frozen=True)
class Issued:
    token: str
    #: seconds since the epoch, as the TokenRequest's status reports it
    expires: int


class ServiceAccountTokens:
    """Issues and authenticates the service-account tokens of one API server.

    ``audiences`` are the API server's own (``--api-audiences``, default the issuer);
    ``max_expiration`` (seconds, 0: none) caps what a TokenRequest asks for;
    ``extend_expiration`` is ``--service-account-extend-token-expiration`` (default on).
    """

    def __init__(
        self,
        registry: Registry,
        pki_dir: Path,
        clock: Clock,
        *,
        issuer: str = ISSUER,
        audiences: Sequence[str] = (),
        max_expiration: int = 0,
        extend_expiration: bool = True,
    ) -> None:
        self.registry = registry
        self.key = SigningKey(pki_dir)
        self.clock = clock
        self.issuer = issuer
        self.audiences = tuple(audiences) or (issuer,)
        self.max_expiration = max_expiration
        self.extend_expiration = extend_expiration
        self._verified: OrderedDict[str, tuple[float, Obj]] = OrderedDict()

    def is_kube_audiences(self, audiences: Sequence[str]) -> bool:
        """Whether every one of ``audiences`` is the API server's (upstream's
        ``isKubeAudiences``)."""
        return all(a in self.audiences for a in audiences)

    def issue(
        self,
        sa: Obj,
        expiration: int,
        audiences: Sequence[str],
        *,
        pod: Obj | None = None,
        secret: Obj | None = None,
        node: Obj | None = None,
        warn_after: int = 0,
        now: int | None = None,
    ) -> Issued:
        """Sign a token for ``sa`` valid ``expiration`` seconds from ``now``."""
        t = int(self.clock.now()) if now is None else now
        c = claims(
            sa,
            now=t,
            expiration=expiration,
            audiences=audiences,
            issuer=self.issuer,
            pod=pod,
            secret=secret,
            node=node,
            warn_after=warn_after,
        )
        return Issued(self.key.sign(c), t + expiration)

    # --- authentication ---------------------------------------------------------------------
    def authenticate(self, token: str) -> UserInfo | None:
        """The chain's token authenticator (``authn.py``'s protocol): the user for the
        audiences the chain asks for, reported with ``accept_audiences``; None when the
        token is not ours; ``InvalidToken`` when it is ours and refused."""
        found = self.check(token, requested_audiences())
        if found is None:
            return None
        accept_audiences(found[1])
        return found[0]

    def check(
        self, token: str, audiences: Sequence[str] | None = None
    ) -> tuple[UserInfo, list[str]] | None:
        """Authenticate ``token`` for ``audiences`` (default: the API server's), as
        upstream's ``jwtTokenAuthenticator``: None when it is not ours; the user and the
        audiences matched; ``InvalidToken`` with upstream's reason otherwise."""
        unverified = _unverified_claims(token)
        if unverified is None or unverified.get("iss") != self.issuer:
            return None
        c = self._verified_claims(token)
        private = c.get(PRIVATE)
        if not isinstance(private, dict):
            return None  # a legacy secret-based token: not issued here
        now = self.clock.now()
        check_time(c, now)
        aud = c.get("aud")
        token_auds = [aud] if isinstance(aud, str) else list(aud or ()) or list(self.audiences)
        wanted = list(audiences) if audiences else list(self.audiences)
        matched = [a for a in token_auds if a in wanted]
        if not matched:
            raise InvalidToken(
                f"token audiences {_go_quoted(token_auds)} is invalid for the target "
                f"audiences {_go_quoted(wanted)}"
            )
        self._validate_bound(private, now)
        return user_info(private, str(c.get("jti") or "")), matched

    def _verified_claims(self, token: str) -> Obj:
        now = self.clock.monotonic()
        hit = self._verified.get(token)
        if hit is not None and hit[0] > now:
            return hit[1]
        c = orjson.loads(self.key.verify(token))
        if not isinstance(c, dict):
            raise InvalidToken("invalid claims")
        self._verified[token] = (now + _SIG_TTL, c)
        self._verified.move_to_end(token)
        while len(self._verified) > _SIG_MAX:
            self._verified.popitem(last=False)
        return c

    def _validate_bound(self, private: Obj, now: float) -> None:
        """upstream's ``validator.Validate``: the ServiceAccount and the bound Secret, Pod
        or Node (a pod-bound token's node is only named, not checked) still exist with
        the uid of the claim and were not deleted more than the leeway before ``now``."""
        ns = private.get("namespace", "")
        sa = private.get("serviceaccount") or {}
        self._still_there("serviceaccounts", ns, sa, "service account", "claim", now)
        secret = private.get("secret")
        if secret:
            claim = "service account secret ref claim"
            self._still_there("secrets", ns, secret, "secret", claim, now)
        pod = private.get("pod")
        if pod:
            self._still_there("pods", ns, pod, "pod", "service account pod ref claim", now)
        elif private.get("node"):
            claim = "service account node ref claim"
            self._still_there("nodes", "", private["node"], "node", claim, now)

    def _still_there(
        self, plural: str, ns: str, ref: Obj, what: str, claim: str, now: float
    ) -> None:
        info = self.registry.by_gvr.get(("", "v1", plural))
        name = ref.get("name", "")
        entry = self.registry.entry(info, ns, name) if info is not None else None
        if entry is None:
            raise InvalidToken(f'{plural} "{name}" not found')
        if entry.deleting:
            ts = (entry.obj().get("metadata") or {}).get("deletionTimestamp")
            if ts and parse_rfc3339(ts) < now - LEEWAY:
                where = f"{ns}/{name}" if ns else name
                raise InvalidToken(f"{what} {where} has been deleted")
        if entry.uid != ref.get("uid"):
            raise InvalidToken(
                f"{what} UID ({entry.uid}) does not match {claim} ({ref.get('uid')})"
            )


def _go_quoted(items: Sequence[str]) -> str:
    """A string slice as Go's ``%q`` prints it."""
    return "[" + " ".join(orjson.dumps(i).decode() for i in items) + "]"
