"""``ResponseStore``: SQLite through aiosqlite, numbered migrations, and clear errors for a
database that cannot be used."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from tether.state import store as store_module
from tether.state.store import MEMORY, MIGRATIONS, ResponseStore, StoreError


def body(response_id: str, status: str = "completed", previous: str | None = None) -> dict:
    return {"id": response_id, "created_at": 1, "status": status, "previous_response_id": previous}


async def test_a_response_its_items_and_events_round_trip(tmp_path: Path) -> None:
    store = ResponseStore(str(tmp_path / "state.db"))
    try:
        items = [{"id": "msg_1", "type": "message"}, {"id": "msg_2", "type": "message"}]
        events = [{"type": "x", "sequence_number": n} for n in range(5)]
        await store.save(body("resp_1", "in_progress"), items, events[:3])
        await store.save(body("resp_1"), events=events[2:])  # overlapping events: kept once
        stored = await store.get("resp_1")
        assert stored is not None
        assert stored.body["status"] == "completed"
        assert stored.input_items == items
        assert [e["sequence_number"] for e in await store.events("resp_1", after=1)] == [2, 3, 4]
        assert await store.get("resp_2") is None
    finally:
        await store.close()


async def test_delete_removes_items_and_events_too() -> None:
    store = ResponseStore(MEMORY)
    try:
        await store.save(body("resp_1"), [{"id": "a"}], [{"sequence_number": 0}])
        assert await store.delete("resp_1")
        assert not await store.delete("resp_1")
        assert await store.get("resp_1") is None
        assert await store.events("resp_1", after=-1) == []
    finally:
        await store.close()


async def test_the_schema_is_migrated_once_and_versioned(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    for _ in range(2):  # the second open finds it migrated
        store = ResponseStore(str(path))
        await store.save(body("resp_1"))
        await store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)


async def test_a_database_from_a_newer_tether_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    store = ResponseStore(str(path))
    with pytest.raises(StoreError, match="newer Tether"):
        await store.get("resp_1")
    await store.close()


async def test_a_corrupt_database_is_a_store_error_not_a_hang(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    path.write_bytes(b"this is not a database" * 100)
    store = ResponseStore(str(path))
    with pytest.raises(StoreError) as caught:
        await store.save(body("resp_1"))
    assert not caught.value.busy
    await store.close()


async def test_a_locked_database_is_a_busy_store_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_module, "BUSY_TIMEOUT_S", 0.2)
    path = tmp_path / "state.db"
    store = ResponseStore(str(path))
    await store.open()
    holder = sqlite3.connect(path, timeout=0)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StoreError) as caught:
            await store.save(body("resp_1"))
        assert caught.value.busy
    finally:
        holder.rollback()
        holder.close()
        await store.close()


async def test_a_closed_store_stays_closed() -> None:
    store = ResponseStore(MEMORY)
    await store.save(body("resp_1"))
    await store.close()
    with pytest.raises(StoreError, match="closed"):
        await store.save(body("resp_2"))
    with pytest.raises(StoreError, match="closed"):
        await store.get("resp_1")


async def test_concurrent_saves_do_not_share_a_transaction(tmp_path: Path) -> None:
    store = ResponseStore(str(tmp_path / "state.db"))
    try:
        bodies = [body(f"resp_{n}") for n in range(20)]
        await asyncio.gather(
            *(store.save(b, [{"id": "i"}], [{"sequence_number": 0}]) for b in bodies)
        )
        for b in bodies:
            stored = await store.get(b["id"])
            assert stored is not None and stored.input_items == [{"id": "i"}]
    finally:
        await store.close()


async def test_an_unwritable_directory_is_a_store_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    store = ResponseStore(str(blocker / "sub" / "state.db"))
    with pytest.raises(StoreError):
        await store.save(body("resp_1"))
    await store.close()
