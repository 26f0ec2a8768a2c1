"""``--datastore URL`` -> a store: ``sqlite:///PATH`` (the default, ``DATA/state.db``) or
``etcd://h1:p1,h2:p2`` (plain HTTP, or TLS with ``EtcdTLS``, as etcd's clients and k3s
take them). The API server, ``corral migrate`` and the backup commands build their
store here, so both backends are chosen in one place.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from corral.storage.sqlite import SQLiteStorage

if TYPE_CHECKING:
    from corral.storage.etcd import EtcdStorage
    from corral.storage.etcd_conn import EtcdTLS

    #: what ``open_store`` returns: the Storage protocol plus what the server uses of it
    #: (``listeners``/``attach_listener``, ``transformer``, ``history``, ``sync``, ...)
    AnyStorage = SQLiteStorage | EtcdStorage

__all__ = ["AnyStorage", "EtcdTLS", "is_etcd", "open_store", "sqlite_path"]


def __getattr__(name: str) -> Any:
    """``EtcdTLS`` and ``AnyStorage`` at run time: the etcd client (grpc, aetcd, ~40 ms)
    loads when an etcd store is named, not with every SQLite server."""
    if name == "EtcdTLS":
        from corral.storage.etcd_conn import EtcdTLS

        return EtcdTLS
    if name == "AnyStorage":
        from corral.storage.etcd import EtcdStorage

        return SQLiteStorage | EtcdStorage
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def is_etcd(url: str | None) -> bool:
    return bool(url) and str(url).startswith("etcd://")


def sqlite_path(url: str | None, data_dir: Path) -> Path:
    """``sqlite:///PATH`` (absolute) or ``sqlite://PATH`` (relative); default DIR/state.db."""
    if not url:
        return data_dir / "state.db"
    if not url.startswith("sqlite://"):
        raise ValueError(
            f"unsupported datastore {url!r}: use sqlite:///PATH or etcd://HOST:PORT[,HOST:PORT...]"
        )
    path = url[len("sqlite://") :]
    if not path:
        raise ValueError("sqlite datastore needs a path: sqlite:///PATH")
    return Path(path)


def open_store(
    url: str | None, data_dir: Path, *, min_history: int, tls: EtcdTLS | None = None
) -> AnyStorage:
    """The store ``url`` names (not started: the caller awaits ``start()``)."""
    if is_etcd(url):
        assert url is not None
        from corral.storage.etcd import EtcdStorage
        from corral.storage.etcd_conn import parse_endpoints

        return EtcdStorage(parse_endpoints(url), tls=tls, min_history=min_history)
    if tls is not None:
        raise ValueError("--datastore-cafile/certfile/keyfile apply to an etcd datastore only")
    return SQLiteStorage(sqlite_path(url, data_dir), min_history=min_history)
