"""Secrets encrypted at rest (one server, DEBUG logging): the SQLite rows hold
ciphertext under ``k8s:enc:aesgcm:v1:key1:``, kubectl reads the plaintext, nothing secret
reaches the log, ``corral secrets rotate`` moves every value to a new key and drops the
old one, and a restarted server still reads them."""

from __future__ import annotations

import base64
import json
import secrets
import sqlite3
import subprocess
import sys
from collections.abc import Iterator

import pytest
import yaml

from conftest import Kubectl
from corral.testing.process import ServerProcess

SECRET_VALUE = "s3cr3t-" + secrets.token_hex(12)
KEY = "/registry/core/secrets/default/at-rest"


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data = tmp_path_factory.mktemp("enc") / "data"
    extra = ["--no-scheduler", "--no-controllers", "--no-metrics-server"]
    server = ServerProcess.start(data, extra=extra, log_level="DEBUG", timeout=30.0)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def kc(srv: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    k = Kubectl(srv.kubeconfig, tmp_path_factory.mktemp("kubecache"))
    k("create", "secret", "generic", "at-rest", f"--from-literal=password={SECRET_VALUE}")
    return k


def _rows(srv: ServerProcess, key: str) -> list[bytes]:
    conn = sqlite3.connect(f"file:{srv.data_dir / 'state.db'}?mode=ro", uri=True)
    try:
        cur = conn.execute("SELECT value FROM current WHERE key=?", (key,)).fetchall()
        log = conn.execute("SELECT value FROM log WHERE key=?", (key,)).fetchall()
    finally:
        conn.close()
    return [bytes(v) for (v,) in cur + log]


def _password(kc: Kubectl) -> str:
    out = kc("get", "secret", "at-rest", "-o", "jsonpath={.data.password}").stdout
    return base64.b64decode(out).decode()


def test_secret_is_ciphertext_on_disk_and_plaintext_through_kubectl(
    srv: ServerProcess, kc: Kubectl
) -> None:
    rows = _rows(srv, KEY)
    assert rows, "the secret's row is missing"
    encoded = base64.b64encode(SECRET_VALUE.encode())
    for value in rows:
        assert value.startswith(b"k8s:enc:aesgcm:v1:key1:")
        assert SECRET_VALUE.encode() not in value and encoded not in value
    assert _password(kc) == SECRET_VALUE
    config = srv.data_dir / "pki" / "encryption.yaml"
    assert config.stat().st_mode & 0o777 == 0o600
    # a resource the configuration does not name stays plaintext (zlib-compressed)
    kc("create", "configmap", "plain", "--from-literal=k=visible-value")
    (plain,) = _rows(srv, "/registry/core/configmaps/default/plain")[:1]
    assert not plain.startswith(b"k8s:enc:")


def test_nothing_secret_in_the_debug_log(srv: ServerProcess, kc: Kubectl) -> None:
    sa_token = kc("create", "token", "default", check=False).stdout.strip()
    if sa_token:
        kc("--token", sa_token, "auth", "whoami", check=False)
    kc("get", "secrets", "-o", "json")
    log = srv.log.read_text()
    assert "DEBUG" in log  # the server did log at DEBUG
    config = yaml.safe_load((srv.data_dir / "pki" / "encryption.yaml").read_text())
    enc_key = config["resources"][0]["providers"][0]["aesgcm"]["keys"][0]["secret"]
    for value in (SECRET_VALUE, base64.b64encode(SECRET_VALUE.encode()).decode(), srv.token):
        assert value not in log
    assert enc_key not in log
    if sa_token:
        assert sa_token not in log and sa_token.split(".")[2] not in log


def test_rotate_then_restart(srv: ServerProcess, kc: Kubectl) -> None:
    res = subprocess.run(
        [sys.executable, "-m", "corral", "secrets", "rotate", "--data-dir", str(srv.data_dir)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    assert "added key key2" in res.stdout and "removed key(s) key1" in res.stdout
    doc = yaml.safe_load((srv.data_dir / "pki" / "encryption.yaml").read_text())
    keys = doc["resources"][0]["providers"][0]["aesgcm"]["keys"]
    assert [k["name"] for k in keys] == ["key2"]
    assert doc["resources"][0]["providers"][1] == {"identity": {}}
    conn = sqlite3.connect(f"file:{srv.data_dir / 'state.db'}?mode=ro", uri=True)
    try:
        values = conn.execute(
            "SELECT value FROM current WHERE key >= '/registry/core/secrets/' "
            "AND key < '/registry/core/secrets0' UNION ALL SELECT value FROM log "
            "WHERE key >= '/registry/core/secrets/' AND key < '/registry/core/secrets0'"
        ).fetchall()
    finally:
        conn.close()
    assert values
    assert all(bytes(v).startswith(b"k8s:enc:aesgcm:v1:key2:") for (v,) in values)
    assert _password(kc) == SECRET_VALUE
    status = json.loads((srv.data_dir / "pki" / "encryption.loaded").read_text())
    assert status["config"] == str(srv.data_dir / "pki" / "encryption.yaml")

    srv.stop()
    again = ServerProcess.start(
        srv.data_dir, port=srv.port, extra=srv.argv[srv.argv.index("--log-level") + 2 :]
    )
    srv.proc = again.proc  # the module fixture stops this one
    assert _password(kc) == SECRET_VALUE
    assert SECRET_VALUE not in (srv.data_dir / "state.db").read_bytes().decode("latin-1")
