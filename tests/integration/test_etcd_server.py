"""``corral server --datastore etcd://...`` as a process on a real etcd, driven by kubectl:
create, get, watch; objects written to etcd by another server's store are served; the
server restarts on the same etcd and finds everything again. The etcd here serves its
clients over TLS with client certificates (``--datastore-cafile/certfile/keyfile``); the
other multi-server tests use plain HTTP."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import Kubectl, start_server
from corral.storage.etcd import EtcdStorage
from corral.storage.etcd_conn import EtcdTLS
from corral.testing.process import ServerProcess
from corral.util.etcd_process import EtcdCluster

pytestmark = pytest.mark.kubectl


@pytest.fixture(scope="module")
def etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdCluster]:
    cluster = EtcdCluster(tmp_path_factory.mktemp("etcd"), tls=True)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


def _start(data: Path, etcd: EtcdCluster) -> ServerProcess:
    return start_server(data, extra=[*etcd.datastore_args(), "--no-scheduler"])


def test_kubectl_create_get_watch_on_etcd(etcd: EtcdCluster, tmp_path: Path) -> None:
    srv = _start(tmp_path / "data", etcd)
    watch = None
    try:
        kubectl = Kubectl(srv.kubeconfig, tmp_path / "cache")
        kubectl("create", "configmap", "one", "--from-literal=a=b")
        cm = json.loads(kubectl("get", "configmap", "one", "-o", "json").stdout)
        assert cm["data"] == {"a": "b"}
        cmd = ["kubectl", "--kubeconfig", str(srv.kubeconfig), "--cache-dir", str(tmp_path / "c2")]
        cmd += ["get", "configmaps", "-w", "--output-watch-events"]
        cmd += ["--field-selector", "metadata.name=two"]
        watch = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy()
        )
        kubectl("create", "configmap", "two", "--from-literal=x=y")
        kubectl("delete", "configmap", "two")
        assert watch.stdout is not None
        lines = [watch.stdout.readline().split()[0] for _ in range(3)]
        assert lines == ["EVENT", "ADDED", "DELETED"]  # the header, then the events

        # resourceVersion is etcd's revision: the object's mod_revision in etcd
        async def in_etcd() -> int:
            assert etcd.client_tls is not None
            st = EtcdStorage(etcd.endpoints, tls=EtcdTLS(*etcd.client_tls))
            await st.start()
            try:
                kv = await st.get("/registry/core/configmaps/default/one")
                assert kv is not None
                return kv.mod_revision
            finally:
                await st.close()

        assert asyncio.run(in_etcd()) == int(cm["metadata"]["resourceVersion"])

        srv.stop()  # the same etcd after a restart: the same objects, same versions
        srv = _start(tmp_path / "data", etcd)
        again = json.loads(kubectl("get", "configmap", "one", "-o", "json").stdout)
        assert again["metadata"]["resourceVersion"] == cm["metadata"]["resourceVersion"]
    finally:
        if watch is not None:
            watch.kill()
            watch.communicate()
        srv.stop()
