"""``dashboard/login.py``: the token of a kubeconfig's current context, what a login body
may hold, and the 400s that say what to use instead."""

from __future__ import annotations

import pytest

from corral.api.errors import StatusError
from corral.dashboard.login import KubeconfigError, token_from_kubeconfig, token_of

KUBECONFIG = """
apiVersion: v1
kind: Config
clusters:
- name: corral
  cluster: {server: "https://127.0.0.1:6443"}
contexts:
- name: admin@corral
  context: {cluster: corral, user: admin}
- name: dev@corral
  context: {cluster: corral, user: dev}
- name: cert@corral
  context: {cluster: corral, user: cert}
- name: exec@corral
  context: {cluster: corral, user: exec}
- name: file@corral
  context: {cluster: corral, user: file}
- name: nobody@corral
  context: {cluster: corral, user: nobody}
- name: nouser@corral
  context: {cluster: corral}
current-context: CURRENT
users:
- name: admin
  user: {token: admin-token-123}
- name: dev
  user: {token: "  dev-token-456\\n"}
- name: cert
  user: {client-certificate-data: AAAA, client-key-data: BBBB}
- name: exec
  user: {exec: {command: aws, apiVersion: client.authentication.k8s.io/v1}}
- name: file
  user: {tokenFile: /home/me/token}
- name: nobody
  user: {}
"""


def with_current(name: str) -> str:
    return KUBECONFIG.replace("CURRENT", name)


@pytest.mark.parametrize(
    ("current", "token"),
    [("admin@corral", "admin-token-123"), ("dev@corral", "dev-token-456")],
    ids=["admin", "dev-trimmed"],
)
def test_current_context_user_token(current: str, token: str) -> None:
    assert token_from_kubeconfig(with_current(current)) == token


@pytest.mark.parametrize(
    ("current", "words"),
    [
        ("cert@corral", "client certificate"),
        ("exec@corral", "credential plugin"),
        ("file@corral", "tokenFile"),
        ("nobody@corral", "no token"),
        ("nouser@corral", "names no user"),
        ("gone@corral", 'no context "gone@corral"'),
    ],
    ids=["client-cert", "exec", "token-file", "empty-user", "context-without-user", "no-context"],
)
def test_kubeconfig_without_a_token(current: str, words: str) -> None:
    with pytest.raises(KubeconfigError) as e:
        token_from_kubeconfig(with_current(current))
    assert words in str(e.value)
    if current in ("cert@corral", "exec@corral", "nobody@corral"):
        assert "kubectl create token" in str(e.value)


def test_the_only_context_without_current() -> None:
    text = """
contexts: [{name: only, context: {user: u}}]
users: [{name: u, user: {token: t-only}}]
"""
    assert token_from_kubeconfig(text) == "t-only"


@pytest.mark.parametrize(
    "text",
    ["{", "- a list", "just text", "contexts: [{name: a}, {name: b}]", "current-context: x\n"],
    ids=["bad-yaml", "list", "scalar", "no-current-of-two", "no-contexts"],
)
def test_not_a_usable_kubeconfig(text: str) -> None:
    with pytest.raises(KubeconfigError):
        token_from_kubeconfig(text)


def test_login_body() -> None:
    assert token_of(b'{"token": " abc "}') == "abc"
    kc = with_current("admin@corral").replace('"', '\\"').replace("\n", "\\n")
    assert token_of(f'{{"kubeconfig": "{kc}"}}'.encode()) == "admin-token-123"


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"not json", "must be JSON"),
        (b"[1]", '{"token": ...}'),
        (b'{"token": ""}', '{"token": ...}'),
        (b'{"token": 5}', '{"token": ...}'),
        (b'{"kubeconfig": "users: []"}', "current-context"),
    ],
    ids=["not-json", "not-object", "empty-token", "number", "kubeconfig-without-token"],
)
def test_bad_login_body(body: bytes, words: str) -> None:
    with pytest.raises(StatusError) as e:
        token_of(body)
    assert e.value.code == 400 and words in e.value.message
