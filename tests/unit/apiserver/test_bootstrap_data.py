"""The cluster's bootstrap record (``apiserver/bootstrap_data``) on a real SQLite store:
the first server's record write applied but its answer lost keeps the generated token
(0600; the restart opens the record with it), and a wrong token is one clean error."""

from __future__ import annotations

from pathlib import Path

import pytest

from corral.apiserver.bootstrap_data import TOKEN_FILE, BootstrapError, exchange
from corral.storage.base import StorageUnavailable
from corral.storage.sqlite import SQLiteStorage


async def test_a_lost_answer_to_the_first_record_loses_no_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = SQLiteStorage(tmp_path / "state.db")
    await store.start()
    try:
        real_put = store.put_meta

        async def put_meta(key: str, value: bytes, *, create_only: bool) -> bool:
            await real_put(key, value, create_only=create_only)
            raise StorageUnavailable(key, "the answer was lost")

        monkeypatch.setattr(store, "put_meta", put_meta)
        data = tmp_path / "data"
        with pytest.raises(StorageUnavailable):
            await exchange(store, data, join=False, encryption_config=False)
        monkeypatch.undo()
        await exchange(store, data, join=False, encryption_config=False)  # the restart
        assert (data / TOKEN_FILE).stat().st_mode & 0o777 == 0o600
        with pytest.raises(BootstrapError, match="does not open the bootstrap data"):
            await exchange(store, tmp_path / "other", join=True, token="wrong")
    finally:
        await store.close()
