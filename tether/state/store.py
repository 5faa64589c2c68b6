"""``ResponseStore``: stored responses, their input items and their stream events, in SQLite
through ``aiosqlite`` (its own thread per connection, so the event loop never blocks on disk).

Schema changes are numbered migrations applied in order at open (``PRAGMA user_version``
holds the last one applied). A database that is locked, full, read-only or corrupt raises
``StoreError``; the API answers it with a 503 or 500 and a log line, and a response is only
reported as stored once its write has committed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosqlite

log = logging.getLogger(__name__)

MEMORY = ":memory:"
# Seconds a write waits for another connection's lock before it is an error (never a hang).
BUSY_TIMEOUT_S = 5.0

MIGRATIONS: tuple[str, ...] = (
    # 1: responses, their input items (in order), and the events of their streams.
    """
    CREATE TABLE responses (
        id TEXT PRIMARY KEY,
        created_at INTEGER NOT NULL,
        previous_response_id TEXT,
        body TEXT NOT NULL
    );
    CREATE TABLE input_items (
        response_id TEXT NOT NULL REFERENCES responses(id) ON DELETE CASCADE,
        position INTEGER NOT NULL,
        item TEXT NOT NULL,
        PRIMARY KEY (response_id, position)
    );
    CREATE TABLE events (
        response_id TEXT NOT NULL REFERENCES responses(id) ON DELETE CASCADE,
        sequence_number INTEGER NOT NULL,
        event TEXT NOT NULL,
        PRIMARY KEY (response_id, sequence_number)
    );
    """,
)


class StoreError(Exception):
    """The database failed. ``busy``: it was locked (retry later: 503), else broken (500)."""

    def __init__(self, message: str, *, busy: bool = False) -> None:
        super().__init__(message)
        self.busy = busy


@dataclass(frozen=True, slots=True)
class StoredResponse:
    body: dict[str, Any]
    input_items: list[dict[str, Any]]


class ResponseStore:
    """One connection, opened on first use (or by ``open``) and closed by ``close``."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._db: aiosqlite.Connection | None = None
        self._opening = asyncio.Lock()
        # One transaction at a time on the one connection: statements of two writers must
        # not interleave (one's rollback would undo the other's uncommitted writes).
        self._writing = asyncio.Lock()
        self._closed = False

    async def open(self) -> None:
        """Open (creating and migrating the database as needed); a no-op once open."""
        async with self._opening:
            if self._db is None:
                await self._open()

    async def _open(self) -> None:
        if self._closed:
            raise StoreError("the state database is closed (the server is stopping)")
        try:
            if self.path != MEMORY:
                Path(self.path).expanduser().parent.mkdir(parents=True, exist_ok=True)
            self._db = await aiosqlite.connect(
                self.path if self.path == MEMORY else str(Path(self.path).expanduser()),
                timeout=BUSY_TIMEOUT_S,
            )
            await self._db.execute("PRAGMA foreign_keys = ON")
            if self.path != MEMORY:
                await self._db.execute("PRAGMA journal_mode = WAL")
            await self._migrate()
        except (sqlite3.Error, OSError) as exc:
            if self._db is not None:
                await self._db.close()
                self._db = None
            raise _store_error(exc, f"cannot open the state database {self.path!r}") from exc

    async def close(self) -> None:
        """Close for good: later calls raise ``StoreError`` instead of reopening."""
        self._closed = True
        async with self._writing:
            if self._db is not None:
                await self._db.close()
                self._db = None

    async def _migrate(self) -> None:
        db = self._db
        assert db is not None
        async with db.execute("PRAGMA user_version") as cursor:
            row = await cursor.fetchone()
        version = int(row[0]) if row else 0
        if version > len(MIGRATIONS):
            raise StoreError(
                f"the state database {self.path!r} is from a newer Tether (schema {version})"
            )
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            await db.executescript(f"BEGIN; {script} PRAGMA user_version = {number}; COMMIT;")
            log.info("state database %s: migrated to schema %d", self.path, number)

    async def _require(self) -> aiosqlite.Connection:
        """The connection, opened on first use."""
        if self._closed:
            raise StoreError("the state database is closed (the server is stopping)")
        if self._db is None:
            await self.open()
        assert self._db is not None
        return self._db

    # -- writes ----------------------------------------------------------------------------

    async def save(
        self,
        body: dict[str, Any],
        input_items: list[dict[str, Any]] | None = None,
        events: list[dict[str, Any]] | None = None,
    ) -> None:
        """Insert or replace a response (and, when given, its input items and new events),
        in one transaction: when this returns, it is on disk."""
        rid = body["id"]
        async with self._writing:
            db = await self._require()
            try:
                await db.execute(
                    "INSERT INTO responses (id, created_at, previous_response_id, body) "
                    "VALUES (?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET body = excluded.body",
                    (rid, body["created_at"], body.get("previous_response_id"), json.dumps(body)),
                )
                if input_items is not None:
                    await db.execute("DELETE FROM input_items WHERE response_id = ?", (rid,))
                    await db.executemany(
                        "INSERT INTO input_items (response_id, position, item) VALUES (?, ?, ?)",
                        [(rid, i, json.dumps(item)) for i, item in enumerate(input_items)],
                    )
                if events:
                    await db.executemany(
                        "INSERT OR IGNORE INTO events (response_id, sequence_number, event) "
                        "VALUES (?, ?, ?)",
                        [(rid, e["sequence_number"], json.dumps(e)) for e in events],
                    )
                await db.commit()
            except sqlite3.Error as exc:
                await _rollback(db)
                raise _store_error(exc, f"cannot store response {rid}") from exc
            except BaseException:  # cancelled half-way: nothing of it may be committed later
                await asyncio.shield(_rollback(db))
                raise

    async def delete(self, response_id: str) -> bool:
        async with self._writing:
            db = await self._require()
            try:
                cursor = await db.execute("DELETE FROM responses WHERE id = ?", (response_id,))
                await db.commit()
            except sqlite3.Error as exc:
                await _rollback(db)
                raise _store_error(exc, f"cannot delete response {response_id}") from exc
            except BaseException:
                await asyncio.shield(_rollback(db))
                raise
        return cursor.rowcount > 0

    # -- reads -----------------------------------------------------------------------------

    async def get(self, response_id: str) -> StoredResponse | None:
        db = await self._require()
        try:
            async with db.execute(
                "SELECT body FROM responses WHERE id = ?", (response_id,)
            ) as cursor:
                row = await cursor.fetchone()
            if row is None:
                return None
            async with db.execute(
                "SELECT item FROM input_items WHERE response_id = ? ORDER BY position",
                (response_id,),
            ) as cursor:
                items = [json.loads(item) for (item,) in await cursor.fetchall()]
        except sqlite3.Error as exc:
            raise _store_error(exc, f"cannot read response {response_id}") from exc
        return StoredResponse(json.loads(row[0]), items)

    async def events(self, response_id: str, after: int) -> list[dict[str, Any]]:
        """The stored events with a sequence number above ``after``, in order."""
        db = await self._require()
        try:
            async with db.execute(
                "SELECT event FROM events WHERE response_id = ? AND sequence_number > ? "
                "ORDER BY sequence_number",
                (response_id, after),
            ) as cursor:
                return [json.loads(event) for (event,) in await cursor.fetchall()]
        except sqlite3.Error as exc:
            raise _store_error(exc, f"cannot read the events of {response_id}") from exc


async def _rollback(db: aiosqlite.Connection) -> None:
    try:
        await db.rollback()
    except sqlite3.Error:
        log.exception("rollback failed")


def _store_error(exc: sqlite3.Error | OSError, what: str) -> StoreError:
    busy = isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc).lower()
    log.error("%s: %s", what, exc)
    return StoreError(f"{what}: {exc}", busy=busy)
