"""The Mesos, Marathon and Chronos faces authenticate against Corral's identities and
authorize with RBAC (``mesos/auth.py``, ``marathon/auth.py``, ``chronos/auth.py``): one
``corral server`` with its master, Marathon and Chronos, driven by the real clients
(pymesos with principal/secret, marathon-python with username/password, chronos-python)
and plain HTTP where a client would raise in a thread."""

from __future__ import annotations

import base64
import gc
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mesoskit import Framework, MesosCluster, mesos_cluster, wait

from corral.testing.process import free_ports

marathon = pytest.importorskip("marathon")
chronos = pytest.importorskip("chronos")

DEV_TOKEN = "devtoken0123456789"
VIEWER_TOKEN = "viewertoken0123456789"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[MesosCluster, int, int]]:
    base = tmp_path_factory.mktemp("framework-auth")
    tokens = base / "tokens.csv"
    tokens.write_text(f"{DEV_TOKEN},dev-user,u1\n{VIEWER_TOKEN},viewer,u2\n")
    mport, cport = free_ports(2)
    extra = ["--token-auth-file", str(tokens), "--no-controllers", "--no-metrics-server"]
    extra += ["--marathon-port", str(mport), "--chronos-port", str(cport)]
    with mesos_cluster(base, extra=extra, auth=True) as c:
        _grant(c)
        yield c, mport, cport


def _grant(c: MesosCluster) -> None:
    """dev-user may register frameworks with role dev only; viewer reads Marathon and
    Chronos (the bootstrap's viewer roles)."""
    rbac = "/apis/rbac.authorization.k8s.io/v1"
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": "dev-frameworks"},
        "rules": [
            {"apiGroups": ["mesos.corral.dev"], "resources": ["frameworks"], "verbs": ["create"]},
            {"apiGroups": ["mesos.corral.dev"], "resources": ["roles"], "verbs": ["use"],
             "resourceNames": ["dev"]},
        ],
    }  # fmt: skip
    c.kube_post(f"{rbac}/clusterroles", role)
    for name, user in (
        ("dev-frameworks", "dev-user"),
        ("corral:marathon-viewer", "viewer"),
        ("corral:chronos-viewer", "viewer"),
    ):
        binding = {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": f"test-{name.replace(':', '-')}-{user}"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                        "name": name},
            "subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io",
                          "name": user}],
        }  # fmt: skip
        c.kube_post(f"{rbac}/clusterrolebindings", binding)


def _http(
    url: str, body: Any = None, auth: tuple[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if auth is not None:
        headers["Authorization"] = "Basic " + base64.b64encode(":".join(auth).encode()).decode()
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, dict(r.headers), r.read(200)
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def _subscribe(name: str, **info: Any) -> dict[str, Any]:
    return {"type": "SUBSCRIBE",
            "subscribe": {"framework_info": {"user": "root", "name": name, **info}}}  # fmt: skip


def test_mesos_refuses_missing_and_wrong_credentials(cluster: Any) -> None:
    c, _, _ = cluster
    url = f"http://{c.master}/api/v1/scheduler"
    status, headers, _ = _http(url, _subscribe("anon"))
    assert status == 401
    assert headers["WWW-Authenticate"] == 'Basic realm="mesos-master-scheduler"'
    assert _http(url, _subscribe("x"), ("dev-user", "not-the-token"))[0] == 401
    assert _http(url, _subscribe("x"), ("viewer", DEV_TOKEN))[0] == 401  # not viewer's token
    status, headers, _ = _http(f"http://{c.master}/master/state")
    assert (status, headers["WWW-Authenticate"]) == (401, 'Basic realm="mesos-master-readonly"')
    assert _http(f"http://{c.master}/version")[0] == 200  # open, as in Mesos


def test_mesos_principal_must_be_the_authenticated_one(cluster: Any) -> None:
    c, _, _ = cluster
    url = f"http://{c.master}/api/v1/scheduler"
    status, _, body = _http(url, _subscribe("x", principal="root"), ("dev-user", DEV_TOKEN))
    assert status == 400
    assert body.decode() == (
        "Failed to validate scheduler::Call: Authenticated principal 'dev-user' does not "
        "match principal 'root' set in `FrameworkInfo`"
    )


def test_a_framework_may_use_only_its_allowed_roles(cluster: Any) -> None:
    c, _, _ = cluster
    ok = Framework.start(c.master, "dev-fw", principal="dev-user", secret=DEV_TOKEN, roles=["dev"])
    try:
        state = c.get_as("/master/state", ("admin", c.server.token))
        fw = next(f for f in state["frameworks"] if f["id"] == ok.recorder.framework_id)
        assert fw["principal"] == "dev-user"  # set from the authenticated principal
    finally:
        ok.stop()
    prod = Framework.start(
        c.master, "prod-fw", principal="dev-user", secret=DEV_TOKEN, roles=["prod"],
        registered=False,
    )  # fmt: skip
    try:
        wait(lambda: prod.recorder.errors, "the master's refusal", 20)
        assert prod.recorder.errors[0] == (
            "Not authorized to register framework  with roles { prod }"
        )
        assert prod.recorder.framework_id == ""
    finally:
        prod.stop()


def test_mesos_operator_calls_need_their_rights(cluster: Any) -> None:
    c, _, _ = cluster
    url = f"http://{c.master}/api/v1"
    status, _, body = _http(url, {"type": "GET_STATE"}, ("dev-user", DEV_TOKEN))
    assert (status, body) == (403, b"403 Forbidden.")
    assert _http(url, {"type": "GET_HEALTH"}, ("dev-user", DEV_TOKEN))[0] == 200
    assert _http(url, {"type": "GET_STATE"}, ("admin", c.server.token))[0] == 200


def test_marathon_and_chronos_register_as_their_own_principals(cluster: Any) -> None:
    c, _, _ = cluster

    def principals() -> dict[str, str]:
        state = c.get_as("/master/state", ("admin", c.server.token))
        return {f["name"]: f.get("principal", "") for f in state["frameworks"]}

    got = wait(
        lambda: (p := principals()).get("marathon") and p.get("chronos") and p,
        "Marathon and Chronos registered",
        30,
    )
    assert got["marathon"] == "corral:marathon"
    assert got["chronos"] == "corral:chronos"


def test_a_read_only_user_lists_marathon_apps_but_cannot_create_one(cluster: Any) -> None:
    _, mport, _ = cluster
    url = f"http://127.0.0.1:{mport}"
    clients = [
        marathon.MarathonClient(url, username="viewer", password=VIEWER_TOKEN),
        marathon.MarathonClient(url),
        marathon.MarathonClient(url, username="viewer", password="wrong"),
    ]
    try:
        viewer = clients[0]
        assert viewer.list_apps() == []
        with pytest.raises(marathon.exceptions.MarathonHttpError) as e:
            viewer.create_app("web", marathon.MarathonApp(cmd="sleep 100", cpus=0.1, mem=16))
        assert e.value.status_code == 403
        assert e.value.error_message == "Not Authorized to perform this action!"
        for bad in clients[1:]:
            with pytest.raises(marathon.exceptions.MarathonHttpError) as e:
                bad.list_apps()
            assert e.value.status_code == 401
            assert e.value.error_message == "Invalid username or password."
    finally:
        for c in clients:
            c.session.close()
            c.sse_session.close()
    assert _http(f"{url}/ping")[0] == 200


# chronos-python's httplib2 clients drop their sockets unclosed (as test_chronos_client)
@pytest.mark.filterwarnings("ignore::ResourceWarning")
def test_chronos_needs_credentials_and_rights(cluster: Any) -> None:
    _, _, cport = cluster
    where = f"127.0.0.1:{cport}"
    viewer = chronos.connect(where, username="viewer", password=VIEWER_TOKEN)
    assert viewer.list() == []
    job = {"name": "j1", "command": "true", "owner": "o@x", "disabled": False,
           "schedule": "R/2030-01-01T00:00:00Z/PT1H"}  # fmt: skip
    # refusals by plain HTTP: chronos-python retries them and leaks httplib2's sockets
    status, _, body = _http(f"http://{where}/v1/scheduler/iso8601", job, ("viewer", VIEWER_TOKEN))
    assert status == 403
    assert json.loads(body) == {
        "message": "Not authorized to create jobs 'j1'",
        "status": "Forbidden",
    }
    for creds in (None, ("viewer", "wrong")):
        status, headers, body = _http(f"http://{where}/v1/scheduler/jobs", auth=creds)
        assert (status, headers["WWW-Authenticate"]) == (401, 'Basic realm="Chronos"')
        assert json.loads(body)["message"] == "Invalid username or password."
    admin_token = Path(_server_token_file(cluster)).read_text().strip()
    chronos.connect(where, username="admin", password=admin_token).add(job)
    assert [j["name"] for j in viewer.list()] == ["j1"]
    del viewer
    gc.collect()  # the dropped sockets' warnings, while this test ignores them


def _server_token_file(cluster: Any) -> str:
    c: MesosCluster = cluster[0]
    return str(c.server.data_dir / "pki" / "admin.token")
