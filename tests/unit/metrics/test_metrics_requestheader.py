"""metrics-server's trust in the front proxy (``metrics/auth.py`` over
``api/requestheader.py``): X-Remote-* headers count only on a verified certificate from
the front-proxy CA with an allowed CN; a cluster-CA certificate names its own CN; the
header escaping and the ConfigMap round trip are client-go's and kube-apiserver's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from corral.api.requestheader import (
    RequestHeaderConfig,
    auth_proxy_headers,
    configmap_data,
    header_key_escape,
)
from corral.apiserver import client_certs
from corral.apiserver.certs import ensure_pki
from corral.apiserver.component_identities import FRONT_PROXY_CLIENT
from corral.client.reviews import Reviewer
from corral.metrics.auth import Caller, MetricsAuth


class NoAPIServer:
    """Certificates need no review: any call is a test failure."""

    async def request(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("no TokenReview or SubjectAccessReview expected")


def _cert(cn: str, issuer: str, *orgs: str) -> dict[str, Any]:
    subject = (*((("organizationName", o),) for o in orgs), (("commonName", cn),))
    return {"subject": subject, "issuer": ((("commonName", issuer),),)}


@pytest.fixture(scope="module")
def auth(tmp_path_factory: pytest.TempPathFactory) -> MetricsAuth:
    d: Path = tmp_path_factory.mktemp("pki")
    ensure_pki(d, [])
    client_certs.ensure_identity(d, FRONT_PROXY_CLIENT)
    data = configmap_data(
        (d / "pki" / "ca.crt").read_text(), (d / "pki" / "front-proxy-ca.crt").read_text()
    )
    return MetricsAuth(Reviewer(NoAPIServer()), RequestHeaderConfig.from_configmap(data))


HEADERS = [
    ("X-Remote-User", "alice"),
    ("X-Remote-Group", "dev"),
    ("X-Remote-Group", "system:authenticated"),
    ("X-Remote-Extra-Scopes.example%2Fa%20b", "x"),
    ("x-remote-extra-scopes.example%2Fa%20b", "y"),
]


@pytest.mark.parametrize(
    ("peercert", "want"),
    [
        (_cert("front-proxy-client", "front-proxy-ca"),
         Caller("alice", ("dev", "system:authenticated"), "", {"scopes.example/a b": ["x", "y"]})),
        # a cluster-CA certificate with the front proxy's CN: its own user, headers ignored
        (_cert("front-proxy-client", "corral-ca"), Caller("front-proxy-client", ("system:authenticated",))),
        (_cert("system:node:n1", "corral-ca", "system:nodes"),
         Caller("system:node:n1", ("system:nodes", "system:authenticated"))),
        # the front-proxy CA, another CN: not an allowed name, and no user of the cluster CA
        (_cert("someone", "front-proxy-ca"), None),
        (None, None),  # headers alone are nothing
    ],
    ids=["front-proxy", "cluster-ca-same-cn", "x509-user", "not-allowed-name", "no-cert"],
)  # fmt: skip
async def test_headers_count_only_from_the_front_proxy(
    auth: MetricsAuth, peercert: dict[str, Any] | None, want: Caller | None
) -> None:
    assert await auth.authenticate(peercert, HEADERS, "") == want


def test_front_proxy_without_user_header_is_nobody() -> None:
    config = RequestHeaderConfig.from_configmap(configmap_data("", "CA"))
    assert config.user_from_headers([("X-Remote-Group", "system:masters")]) is None


@pytest.mark.parametrize(
    ("key", "escaped"),
    [("scopes", "scopes"), ("example.com/x", "example.com%2Fx"), ("a b%", "a%20b%25"),
     ("ü", "%C3%BC")],
)  # fmt: skip
def test_header_key_escape(key: str, escaped: str) -> None:
    assert header_key_escape(key) == escaped
    config = RequestHeaderConfig()
    found = config.user_from_headers(auth_proxy_headers("u", [], {key: ["v"]}))
    assert found == ("u", [], {key.lower(): ["v"]})


def test_configmap_as_kube_apiserver_publishes_it() -> None:
    data = configmap_data("C", "F")
    assert data == {
        "client-ca-file": "C",
        "requestheader-client-ca-file": "F",
        "requestheader-allowed-names": '["front-proxy-client"]',
        "requestheader-username-headers": '["X-Remote-User"]',
        "requestheader-group-headers": '["X-Remote-Group"]',
        "requestheader-extra-headers-prefix": '["X-Remote-Extra-"]',
    }
    config = RequestHeaderConfig.from_configmap(data)
    assert (config.client_ca, config.user_client_ca, config.allowed_names) == (
        "F", "C", ("front-proxy-client",),
    )  # fmt: skip
