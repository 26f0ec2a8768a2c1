"""``POST /ui/login``: a token, or a kubeconfig's text, in; the bearer token the page
keeps and who it belongs to out.

Called by ``Dashboard.handle`` (``dashboard/__init__.py``) before any authentication
(the request is how a user gets a credential the page can send). The body is
``{"token": "..."}`` or ``{"kubeconfig": "<YAML text>"}``; the answer is
``{"token": T, "user": NAME, "groups": [...]}``.

Shaped so:

- ``token_from_kubeconfig`` is pure (PyYAML's safe loader, nothing read from the
  server's disk: a ``tokenFile`` path names a file on the user's machine, not ours) and
  unit-tested. It follows kubectl: the ``current-context`` (or the only context), its
  user, that user's ``token``. A user with a client certificate, an exec plugin or
  basic credentials only is a 400 that says what to use instead: the browser cannot
  present the certificate and this server runs nothing on the user's behalf.
- The token is checked by the API server's own authenticator chain, passed in as
  ``check_token`` (this package sits below ``apiserver`` and imports none of it), so
  the page accepts exactly what ``kubectl`` with that token would: the admin token,
  ``--token-auth-file`` tokens, ServiceAccount and bootstrap tokens. Refused: 401.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

import orjson
import yaml
from aiohttp import web

from corral.api import errors

#: a login body larger than this is refused (a kubeconfig is a few KiB)
MAX_LOGIN_BODY = 1024 * 1024

NO_TOKEN_HINT = (
    "use `kubectl create token SERVICEACCOUNT` and log in with that token, or the "
    "kubeconfig that `corral up` writes (it holds a token)"
)


class User(Protocol):
    """Who a credential belongs to (``apiserver.identity.UserInfo`` is one)."""

    @property
    def username(self) -> str: ...

    @property
    def groups(self) -> Sequence[str]: ...


#: the API server's token check: the user a bearer token proves, None when refused
TokenCheck = Callable[[str], User | None]


class KubeconfigError(ValueError):
    """A kubeconfig this page cannot log in with; the message says why (a 400)."""


def _named(entries: Any, name: str, kind: str) -> dict[str, Any]:
    """The ``kind`` field of the entry called ``name`` in a kubeconfig list."""
    if not isinstance(entries, list):
        raise KubeconfigError(f"the kubeconfig has no {kind}s")
    for e in entries:
        if isinstance(e, dict) and e.get("name") == name:
            value = e.get(kind)
            if not isinstance(value, dict):
                raise KubeconfigError(f'the kubeconfig\'s {kind} "{name}" is empty')
            return value
    raise KubeconfigError(f'the kubeconfig has no {kind} "{name}"')


def token_from_kubeconfig(text: str) -> str:
    """The bearer token of the current context's user in a kubeconfig's text;
    ``KubeconfigError`` when there is none (module docstring)."""
    try:
        config = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise KubeconfigError(f"the kubeconfig is not YAML: {e}") from None
    if not isinstance(config, dict):
        raise KubeconfigError("the kubeconfig is not a YAML mapping")
    contexts = config.get("contexts")
    current = config.get("current-context")
    if not current:
        if isinstance(contexts, list) and len(contexts) == 1 and isinstance(contexts[0], dict):
            current = contexts[0].get("name")
        if not current:
            raise KubeconfigError("the kubeconfig has no current-context")
    context = _named(contexts, str(current), "context")
    user_name = context.get("user")
    if not user_name:
        raise KubeconfigError(f'the kubeconfig\'s context "{current}" names no user')
    user = _named(config.get("users"), str(user_name), "user")
    token = user.get("token")
    if isinstance(token, str) and token.strip():
        return token.strip()
    if user.get("client-certificate-data") or user.get("client-certificate"):
        what = "a client certificate, which a browser page cannot present"
    elif user.get("exec") or user.get("auth-provider"):
        what = "a credential plugin, which this server does not run"
    elif user.get("tokenFile"):
        what = "a tokenFile on your machine, which the server cannot read"
    else:
        what = "no token"
    raise KubeconfigError(f'the kubeconfig\'s user "{user_name}" has {what}: {NO_TOKEN_HINT}')


def token_of(body: bytes) -> str:
    """The token a login body carries (directly or in its kubeconfig); 400 Status for
    anything else."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise errors.bad_request("the login body must be JSON") from None
    if not isinstance(doc, dict):
        raise errors.bad_request('the login body must be {"token": ...} or {"kubeconfig": ...}')
    token, kubeconfig = doc.get("token"), doc.get("kubeconfig")
    if isinstance(token, str) and token.strip():
        return token.strip()
    if isinstance(kubeconfig, str) and kubeconfig.strip():
        try:
            return token_from_kubeconfig(kubeconfig)
        except KubeconfigError as e:
            raise errors.bad_request(str(e)) from None
    raise errors.bad_request('the login body must be {"token": ...} or {"kubeconfig": ...}')


async def login(request: web.Request, check_token: TokenCheck) -> web.Response:
    """``POST /ui/login`` (module docstring): 200 with the token and its user, 400 for
    a body without a usable credential, 401 for a token the server refuses."""
    if request.method != "POST":
        raise errors.method_not_allowed()
    if (request.content_length or 0) > MAX_LOGIN_BODY:
        raise errors.StatusError(
            413, errors.REQUEST_ENTITY_TOO_LARGE, f"the login body is over {MAX_LOGIN_BODY} bytes"
        )
    body = await request.read()
    if len(body) > MAX_LOGIN_BODY:  # chunked: no Content-Length to refuse it by
        raise errors.StatusError(
            413, errors.REQUEST_ENTITY_TOO_LARGE, f"the login body is over {MAX_LOGIN_BODY} bytes"
        )
    token = token_of(body)
    user = check_token(token)
    if user is None:
        raise errors.unauthorized()
    answer = {"token": token, "user": user.username, "groups": list(user.groups)}
    return web.Response(
        body=orjson.dumps(answer),
        headers={"Content-Type": "application/json", "Cache-Control": "no-store"},
    )
