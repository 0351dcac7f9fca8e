"""SQLite persistence of the chain: blocks, and state with history (every block's changes), one transaction per block.

A kill at any moment leaves either the whole block (header, extrinsics, state changes, new head) or none of it.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Iterator

# Writes (blocks, pool additions) between two checkpoints. SQLite's automatic checkpoint would copy the write-ahead
# log into the database file inside a block's commit: a 15-20 ms stall of block production every few dozen blocks
# (measured). A thread of the database's own does it instead, beside block production (WAL lets both go on).
CHECKPOINT_EVERY_WRITES = 32
# A passive checkpoint never makes the log start over while blocks keep coming: past this many frames (16 MiB of
# log), the checkpoint waits for the writer's current commit and holds the next one until the log restarts.
WAL_RESTART_FRAMES = 4096

SCHEMA = """
CREATE TABLE IF NOT EXISTS blocks (
    number INTEGER PRIMARY KEY,
    hash BLOB NOT NULL UNIQUE,
    header BLOB NOT NULL,
    extrinsics BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS state (
    key BLOB NOT NULL,
    block INTEGER NOT NULL,
    value BLOB,            -- NULL: deleted at this block
    PRIMARY KEY (key, block)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS pool (   -- accepted transactions not yet in a block: they survive a restart
    hash BLOB PRIMARY KEY,
    seq INTEGER NOT NULL,
    extrinsic BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    name TEXT PRIMARY KEY,
    value BLOB NOT NULL
);
"""


class ChainDatabase:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode=WAL")
        # WAL with NORMAL: a commit is in the operating system once it returns, so it survives a crash or kill of
        # the node, and a block is still all or nothing; only a power loss can roll back the last blocks. That is
        # what a Substrate node promises too (its RocksDB writes are not synced one by one), and it saves a disk sync
        # on every block.
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute("PRAGMA wal_autocheckpoint=0")  # see CHECKPOINT_EVERY_WRITES
        self.conn.executescript(SCHEMA)
        self._checkpointer = Checkpointer(path)

    def close(self) -> None:
        self._checkpointer.close()
        self.conn.close()  # the last connection to close checkpoints what is left

    # ------------------------------------------------------------------------------------------------------ meta
    def get_meta(self, name: str) -> bytes | None:
        row = self.conn.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return row[0] if row else None

    # ---------------------------------------------------------------------------------------------------- blocks
    def commit_block(self, number: int, block_hash: bytes, header: bytes, extrinsics: bytes,
                     changes: dict[bytes, bytes | None], meta: dict[str, bytes] | None = None,
                     leaving_pool: list[bytes] = (), entering_pool: list[tuple[bytes, int, bytes]] = ()) -> None:
        """The block, its state changes, the pool transactions it included or dropped and the ones accepted since
        the last pool write: all or nothing."""
        with self.conn:
            self.conn.execute("BEGIN IMMEDIATE")
            self.conn.executemany("DELETE FROM pool WHERE hash = ?", [(h,) for h in leaving_pool])
            self.conn.executemany("INSERT OR REPLACE INTO pool VALUES (?, ?, ?)", entering_pool)
            self.conn.execute("INSERT INTO blocks VALUES (?, ?, ?, ?)", (number, block_hash, header, extrinsics))
            self.conn.executemany("INSERT OR REPLACE INTO state VALUES (?, ?, ?)",
                                  [(k, number, v) for k, v in changes.items()])
            for name, value in (meta or {}).items():
                self.conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (name, value))
        self._checkpointer.wrote()

    def pool_add_many(self, rows: list[tuple[bytes, int, bytes]]) -> None:
        """(hash, seq, extrinsic) rows in one transaction: one write for a whole group of submissions."""
        with self.conn:
            self.conn.execute("BEGIN IMMEDIATE")
            self.conn.executemany("INSERT OR REPLACE INTO pool VALUES (?, ?, ?)", rows)
        self._checkpointer.wrote()

    def pool_remove(self, ext_hash: bytes) -> None:
        self.conn.execute("DELETE FROM pool WHERE hash = ?", (ext_hash,))

    def pool_entries(self) -> list[bytes]:
        return [row[0] for row in self.conn.execute("SELECT extrinsic FROM pool ORDER BY seq")]

    def head(self) -> tuple[int, bytes] | None:
        row = self.conn.execute("SELECT number, hash FROM blocks ORDER BY number DESC LIMIT 1").fetchone()
        return (row[0], row[1]) if row else None

    def block_by_number(self, number: int) -> tuple[bytes, bytes, bytes] | None:
        row = self.conn.execute("SELECT hash, header, extrinsics FROM blocks WHERE number = ?", (number,)).fetchone()
        return tuple(row) if row else None  # type: ignore[return-value]

    def number_of(self, block_hash: bytes) -> int | None:
        row = self.conn.execute("SELECT number FROM blocks WHERE hash = ?", (block_hash,)).fetchone()
        return row[0] if row else None

    # ----------------------------------------------------------------------------------------------------- state
    def get(self, key: bytes, at: int) -> bytes | None:
        row = self.conn.execute(
            "SELECT value FROM state WHERE key = ? AND block <= ? ORDER BY block DESC LIMIT 1", (key, at)).fetchone()
        return row[0] if row else None

    def iter_prefix(self, prefix: bytes, at: int, start_after: bytes | None = None) -> Iterator[tuple[bytes, bytes]]:
        """Live (key, value) pairs under `prefix` as of block `at`, in key order."""
        low = max(prefix, start_after + b"\x00") if start_after is not None else prefix
        upper = _upper(prefix)
        # SQLite returns the bare column `value` from the row holding MAX(block) of each group
        query = ("SELECT key, value, MAX(block) FROM state WHERE key >= ? AND block <= ? "
                 + ("AND key < ? " if upper else "") + "GROUP BY key ORDER BY key")
        params: tuple = (low, at) + ((upper,) if upper else ())
        for key, value, _ in self.conn.execute(query, params):
            if not key.startswith(prefix):
                break
            if value is not None:
                yield key, value

    def latest_state(self) -> dict[bytes, bytes]:
        head = self.head()
        if head is None:
            return {}
        return dict(self.iter_prefix(b"", head[0]))


class Checkpointer:
    """Checkpoints a WAL database from a thread with its own connection, every CHECKPOINT_EVERY_WRITES writes.
    Passive, so the writer goes on appending to the log meanwhile, unless the log has grown past WAL_RESTART_FRAMES."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._writes = 0
        self._due = threading.Event()
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="sqlite-checkpoint", daemon=True)
        self._thread.start()

    def wrote(self) -> None:
        self._writes += 1
        if self._writes >= CHECKPOINT_EVERY_WRITES:
            self._writes = 0
            self._due.set()

    def close(self) -> None:
        self._closing = True
        self._due.set()
        self._thread.join()

    def _run(self) -> None:
        conn: sqlite3.Connection | None = None  # opened at the first checkpoint: an idle database holds no second file
        try:
            while True:
                self._due.wait()
                self._due.clear()
                if self._closing:
                    return
                try:
                    conn = conn or sqlite3.connect(str(self._path), isolation_level=None)
                    _, log_frames, _ = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                    if log_frames > WAL_RESTART_FRAMES:
                        conn.execute("PRAGMA wal_checkpoint(RESTART)")
                except sqlite3.Error:  # busy or a failing disk: the next one tries again, the writer is unaffected
                    pass
        finally:
            if conn is not None:
                conn.close()


def _upper(prefix: bytes) -> bytes | None:
    """The smallest key greater than every key starting with prefix (None if there is none)."""
    trimmed = prefix.rstrip(b"\xff")
    if not trimmed:
        return None
    return trimmed[:-1] + bytes([trimmed[-1] + 1])


class HistoricalStorage:
    """Read-only state as of one block, for queries at a block hash."""

    def __init__(self, db: ChainDatabase, at: int) -> None:
        self.db, self.at = db, at

    def get(self, key: bytes) -> bytes | None:
        return self.db.get(key, self.at)

    def set(self, key: bytes, value: bytes) -> None:
        raise PermissionError("historical state is read-only")

    def delete(self, key: bytes) -> None:
        raise PermissionError("historical state is read-only")

    def iter_prefix(self, prefix: bytes, start_after: bytes | None = None) -> Iterator[tuple[bytes, bytes]]:
        return self.db.iter_prefix(prefix, self.at, start_after)
