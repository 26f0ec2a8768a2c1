"""RequestInfo resolution, with the cases of upstream's requestinfo_test.go
(TestGetAPIRequestInfo, TestGetNonAPIRequestInfo, TestFieldSelectorParsing) plus the
CONNECT subresources."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

import pytest

from corral.apiserver.request_info import RequestInfo, resolve


def info(method: str, url: str) -> RequestInfo:
    u = urlsplit(url)
    query: dict[str, str] = {}
    for k, v in parse_qsl(u.query, keep_blank_values=True):
        query.setdefault(k, v)  # the first value, as aiohttp's query.get
    return resolve(method, u.path, query)


# method, url, verb, group, version, namespace, resource, subresource, name, parts
RESOURCE_CASES = [
    ("GET", "/api/v1/namespaces", "list", "", "v1", "", "namespaces", "", "", ["namespaces"]),
    ("GET", "/api/v1/namespaces/other", "get", "", "v1", "other", "namespaces", "", "other",
     ["namespaces", "other"]),
    ("GET", "/api/v1/namespaces/other/pods", "list", "", "v1", "other", "pods", "", "", ["pods"]),
    ("GET", "/api/v1/namespaces/other/pods/foo", "get", "", "v1", "other", "pods", "", "foo",
     ["pods", "foo"]),
    ("HEAD", "/api/v1/namespaces/other/pods/foo", "get", "", "v1", "other", "pods", "", "foo",
     ["pods", "foo"]),
    ("GET", "/api/v1/pods", "list", "", "v1", "", "pods", "", "", ["pods"]),
    ("HEAD", "/api/v1/pods", "list", "", "v1", "", "pods", "", "", ["pods"]),
    ("PATCH", "/api/v1/namespaces/new-namespace", "patch", "", "v1", "", "namespaces", "",
     "new-namespace", ["namespaces", "new-namespace"]),
    # special verbs
    ("GET", "/api/v1/proxy/namespaces/other/pods/foo", "proxy", "", "v1", "other", "pods", "",
     "foo", ["pods", "foo"]),
    ("GET", "/api/v1/proxy/namespaces/other/pods/foo/subpath/not/a/subresource", "proxy", "",
     "v1", "other", "pods", "", "foo", ["pods", "foo", "subpath", "not", "a", "subresource"]),
    ("GET", "/api/v1/watch/pods", "watch", "", "v1", "", "pods", "", "", ["pods"]),
    ("GET", "/api/v1/pods?watch=true", "watch", "", "v1", "", "pods", "", "", ["pods"]),
    ("GET", "/api/v1/pods?watch=false", "list", "", "v1", "", "pods", "", "", ["pods"]),
    ("GET", "/api/v1/watch/namespaces/other/pods", "watch", "", "v1", "other", "pods", "", "",
     ["pods"]),
    ("GET", "/api/v1/namespaces/other/pods?watch=1", "watch", "", "v1", "other", "pods", "", "",
     ["pods"]),
    ("GET", "/api/v1/namespaces/other/pods?watch=0", "list", "", "v1", "other", "pods", "", "",
     ["pods"]),
    # subresource identification
    ("GET", "/api/v1/namespaces/other/pods/foo/status", "get", "", "v1", "other", "pods",
     "status", "foo", ["pods", "foo", "status"]),
    ("GET", "/api/v1/namespaces/other/pods/foo/proxy/subpath", "get", "", "v1", "other", "pods",
     "proxy", "foo", ["pods", "foo", "proxy", "subpath"]),
    ("PUT", "/api/v1/namespaces/other/finalize", "update", "", "v1", "other", "namespaces",
     "finalize", "other", ["namespaces", "other", "finalize"]),
    ("PUT", "/api/v1/namespaces/other/status", "update", "", "v1", "other", "namespaces",
     "status", "other", ["namespaces", "other", "status"]),
    # verb identification
    ("PATCH", "/api/v1/namespaces/other/pods/foo", "patch", "", "v1", "other", "pods", "", "foo",
     ["pods", "foo"]),
    ("DELETE", "/api/v1/namespaces/other/pods/foo", "delete", "", "v1", "other", "pods", "",
     "foo", ["pods", "foo"]),
    ("POST", "/api/v1/namespaces/other/pods", "create", "", "v1", "other", "pods", "", "",
     ["pods"]),
    # deletecollection verb identification
    ("DELETE", "/api/v1/nodes", "deletecollection", "", "v1", "", "nodes", "", "", ["nodes"]),
    ("DELETE", "/api/v1/namespaces", "deletecollection", "", "v1", "", "namespaces", "", "",
     ["namespaces"]),
    ("DELETE", "/api/v1/namespaces/other/pods", "deletecollection", "", "v1", "other", "pods",
     "", "", ["pods"]),
    ("DELETE", "/apis/extensions/v1/namespaces/other/pods", "deletecollection", "extensions",
     "v1", "other", "pods", "", "", ["pods"]),
    # api group and version identification
    ("POST", "/apis/extensions/v1/namespaces/other/pods", "create", "extensions", "v1", "other",
     "pods", "", "", ["pods"]),
    ("POST", "/apis/extensions/v1beta3/namespaces/other/pods", "create", "extensions",
     "v1beta3", "other", "pods", "", "", ["pods"]),
    # the CONNECT subresources (Corral's own cases): POST creates, GET gets
    ("POST", "/api/v1/namespaces/n/pods/p/exec?command=ls", "create", "", "v1", "n", "pods",
     "exec", "p", ["pods", "p", "exec"]),
    ("GET", "/api/v1/namespaces/n/pods/p/exec?command=ls", "get", "", "v1", "n", "pods", "exec",
     "p", ["pods", "p", "exec"]),
    ("POST", "/api/v1/namespaces/n/pods/p/portforward", "create", "", "v1", "n", "pods",
     "portforward", "p", ["pods", "p", "portforward"]),
    ("GET", "/api/v1/namespaces/n/pods/p/log", "get", "", "v1", "n", "pods", "log", "p",
     ["pods", "p", "log"]),
    ("POST", "/api/v1/namespaces/n/pods/p/eviction", "create", "", "v1", "n", "pods",
     "eviction", "p", ["pods", "p", "eviction"]),
    ("GET", "/apis/apps/v1/namespaces/n/deployments/d/scale", "get", "apps", "v1", "n",
     "deployments", "scale", "d", ["deployments", "d", "scale"]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("method", "url", "verb", "group", "version", "ns", "resource", "sub", "name", "parts"),
    RESOURCE_CASES,
    ids=[f"{c[0]} {c[1]}" for c in RESOURCE_CASES],
)
def test_resource_requests(
    method: str,
    url: str,
    verb: str,
    group: str,
    version: str,
    ns: str,
    resource: str,
    sub: str,
    name: str,
    parts: list[str],
) -> None:
    got = info(method, url)
    assert got.resource_request
    assert (got.verb, got.api_group, got.api_version, got.namespace) == (verb, group, version, ns)
    assert (got.resource, got.subresource, got.name, list(got.parts)) == (
        resource,
        sub,
        name,
        parts,
    )


@pytest.mark.parametrize(
    ("url", "resource_request"),
    [
        ("/api/version/resource", True),
        ("/apis/group/version/resource/name/subresource", True),
        ("/api/version/resource/name/subresource", True),
        ("/apis/batch/v1/job", True),
        ("/apis/batch/v1/job/foo", True),
        ("/apis/batch/v1/job/foo/scale", True),
        ("/not-api/version/resource", False),
        ("/apis/extensions/v1beta1", False),
        ("/apis/extensions/v1beta1/", False),
        ("/api/version", False),
        ("/api", False),
        ("/", False),
        ("", False),
        ("/api/version/", False),
        ("/apis/group/version/", False),
        ("/badprefix/version/resource", False),
        ("/apis/version/resource", False),
    ],
)
def test_resource_or_not(url: str, resource_request: bool) -> None:
    assert info("GET", url).resource_request is resource_request


@pytest.mark.parametrize(
    ("method", "path", "verb"),
    [("GET", "/healthz", "get"), ("GET", "/api", "get"), ("POST", "/version", "post"),
     ("HEAD", "/livez", "head"), ("GET", "/openapi/v2", "get"), ("GET", "/apis/apps", "get")],
)  # fmt: skip
def test_non_resource_verb_is_the_method(method: str, path: str, verb: str) -> None:
    got = info(method, path)
    assert (got.resource_request, got.verb, got.path) == (False, verb, path)


@pytest.mark.parametrize(
    ("url", "name", "verb"),
    [
        ("/apis/group/version/resource", "", "list"),
        ("/apis/group/version/resource?fieldSelector=metadata.name=name1", "name1", "list"),
        (
            "/apis/group/version/resource?watch=true&fieldSelector=metadata.name=name1",
            "name1",
            "watch",
        ),
        ("/apis/group/version/resource?fieldSelector=foo=bar", "", "list"),
        ("/apis/group/version/resource?fieldSelector=metadata.name=name1,foo", "", "list"),
        (
            "/apis/group/version/resource?fieldSelector=metadata.name=name1,foo&watch=true",
            "",
            "watch",
        ),
        (
            "/apis/group/version/resource?fieldSelector=metadata.name=name1,foo&watch=false",
            "",
            "list",
        ),
        # Corral's: == and an AND with another field still name the object
        ("/api/v1/secrets?fieldSelector=metadata.name%3D%3Ds1", "s1", "list"),
        ("/api/v1/pods?fieldSelector=spec.nodeName=n1,metadata.name=p", "p", "list"),
        ("/api/v1/pods?fieldSelector=metadata.name!=p", "", "list"),
    ],
    ids=[
        "no-selector",
        "name",
        "name-watch",
        "other-field",
        "invalid",
        "invalid-watch",
        "invalid-watch-false",
        "double-equals",
        "and",
        "not-equal",
    ],
)
def test_field_selector_names_the_object(url: str, name: str, verb: str) -> None:
    got = info("GET", url)
    assert (got.name, got.verb) == (name, verb)


def test_attributes() -> None:
    a = info("GET", "/api/v1/namespaces/n/pods/p/log").attributes("bob", ("g",))
    assert (a.user, a.groups, a.verb, a.resource, a.subresource, a.name, a.namespace) == (
        "bob",
        ("g",),
        "get",
        "pods",
        "log",
        "p",
        "n",
    )
    assert a.resource_request
    b = info("GET", "/version").attributes("system:anonymous", ())
    assert (b.resource_request, b.verb, b.path) == (False, "get", "/version")


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/namespaces/kube-system//secrets/scale",
        "/api/v1//namespaces/kube-system/secrets/scale",
        "/api//v1/namespaces/kube-system/secrets/scale",
        "/api/v1/namespaces/kube-system/secrets//scale",
    ],
    ids=["after-namespace", "after-version", "after-prefix", "before-name"],
)
def test_empty_segments_authorize_what_the_router_serves(url: str) -> None:
    """An empty segment must not shift what authorization sees away from what
    ``parse_path`` serves (``resource ""``, subresource ``scale`` would pass a
    ``*/scale`` rule for a Secret named ``scale``)."""
    from corral.apiserver.request import parse_path

    served = parse_path(url.rstrip("/"))
    assert served is not None
    got = info("GET", url)
    assert (
        (got.namespace, got.resource, got.name, got.subresource)
        == (
            served.namespace,
            served.resource,
            served.name,
            served.subresource,
        )
        == ("kube-system", "secrets", "scale", "")
    )


@pytest.mark.parametrize(
    ("selector", "name"),
    [
        ("metadata.name=s1%20", "s1 "),  # the list filters on "s1 ": not s1's name
        ("%20metadata.name=s1", ""),  # an unknown field, refused by the list
        ("metadata.name=a\\,b", "a,b"),  # the list's unescaped value
        ("metadata.name=b,metadata.name=a", "a"),  # upstream's sorted terms, first wins
    ],
    ids=["trailing-space", "leading-space", "escaped", "sorted"],
)
def test_selector_name_is_the_listed_one(selector: str, name: str) -> None:
    assert info("GET", f"/api/v1/secrets?fieldSelector={selector}").name == name
