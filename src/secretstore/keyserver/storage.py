"""A key server's durable store of key shares (SQLite, WAL, synchronous=FULL).

A share is committed before any success is reported for it, so a crash never loses a key that the chain was told
about. Secret shares never leave this module except to the session code that uses them.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

from ..crypto import Address, Public, ServerKeyId

SCHEMA = """
CREATE TABLE IF NOT EXISTS key_shares (
    key_id BLOB PRIMARY KEY,
    author BLOB NOT NULL,
    threshold INTEGER NOT NULL,
    public BLOB NOT NULL,
    version BLOB NOT NULL,
    holders TEXT NOT NULL,          -- JSON list of hex KeyServerIds, in id-number order
    secret_share BLOB NOT NULL,
    common_point BLOB,
    encrypted_point BLOB
);
-- new versions made by a servers set change, activated only once the chain completes that migration
CREATE TABLE IF NOT EXISTS pending_shares (
    migration_id BLOB NOT NULL,
    key_id BLOB NOT NULL,
    author BLOB NOT NULL,
    threshold INTEGER NOT NULL,
    public BLOB NOT NULL,
    version BLOB NOT NULL,
    holders TEXT NOT NULL,
    secret_share BLOB NOT NULL,
    common_point BLOB,
    encrypted_point BLOB,
    PRIMARY KEY (migration_id, key_id)
);
-- Feldman commitments to the polynomial of a key version (public: they give every holder's public share, so a master
-- can check a participant's contribution); kept apart so that shares written before they existed still read
CREATE TABLE IF NOT EXISTS share_commitments (
    key_id BLOB NOT NULL,
    version BLOB NOT NULL,
    commitments TEXT NOT NULL,      -- JSON list of hex points, A_0 .. A_t
    PRIMARY KEY (key_id, version)
);
-- keys whose generation was answered (the response accepted by the node, or an HTTP generation): a pending chain
-- generation of a key held but not in here is our own request whose answer was lost, not a request for an existing key
CREATE TABLE IF NOT EXISTS reported_keys (
    key_id BLOB PRIMARY KEY
);
"""


class KeyStorageError(Exception):
    pass


class KeyAlreadyExists(KeyStorageError):
    pass


class DocumentKeyAlreadyStored(KeyStorageError):
    pass


@dataclass(frozen=True)
class KeyShare:
    key_id: ServerKeyId
    author: Address
    threshold: int
    public: Public
    version: bytes  # identifies the sharing (the generation session), for version negotiation
    holders: tuple[Address, ...]
    secret_share: int
    common_point: Public | None = None
    encrypted_point: Public | None = None

    def __repr__(self) -> str:  # the share itself stays out of logs
        return f"KeyShare({self.key_id.hex()}, t={self.threshold}, holders={len(self.holders)})"


MAX_CACHED_SHARES = 100_000


class KeyStorage:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self.conn = self._connect(path)
        self.conn.executescript(SCHEMA)
        # new shares of concurrent generations are written by a second connection, in groups and off the event loop
        self._writer = self._connect(path)
        self._writer_lock = threading.Lock()
        self._queued: list[tuple[KeyShare, list[Public] | None, asyncio.Future]] = []
        self._group_commit: asyncio.Lock | None = None
        # shares as read (None: none here), for the chain service asks on every block; every write here drops what
        # it changes, after its commit, and a read that raced a write is not kept (the write counter moved)
        self._cache: dict[bytes, KeyShare | None] = {}
        self._cache_lock = threading.Lock()
        self._writes = 0

    def _changed(self, key_id: ServerKeyId | None = None) -> None:
        """After a committed write: forget the cached share of `key_id` (None: all)."""
        with self._cache_lock:
            self._writes += 1
            if key_id is None:
                self._cache.clear()
            else:
                self._cache.pop(bytes(key_id), None)

    @staticmethod
    def _connect(path: Path) -> sqlite3.Connection:
        conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA busy_timeout=10000")  # the two connections take turns writing
        return conn

    def close(self) -> None:
        with self._lock, self._writer_lock:
            self.conn.close()
            self._writer.close()

    async def insert_durably(self, share: KeyShare, commitments: list[Public] | None = None) -> None:
        """`insert` for asyncio code: shares that arrive together are written in one transaction (one disk sync),
        in a worker thread, so the event loop keeps serving the cluster meanwhile. Returns once it is on disk."""
        future = asyncio.get_running_loop().create_future()
        self._queued.append((share, commitments, future))
        if self._group_commit is None:
            self._group_commit = asyncio.Lock()
        async with self._group_commit:  # whoever holds it writes everything queued so far
            if not future.done():
                group, self._queued = self._queued, []
                errors = await asyncio.to_thread(self._insert_group, [(s, c) for s, c, _ in group])
                for (_, _, waiting), error in zip(group, errors):
                    if error is None:
                        waiting.set_result(None)
                    else:
                        waiting.set_exception(error)
        await future

    def _insert_group(self, entries: list[tuple[KeyShare, list[Public] | None]]) -> list[Exception | None]:
        try:
            return self._insert_all(entries)
        finally:
            for share, _ in entries:
                self._changed(share.key_id)

    def _insert_all(self, entries: list[tuple[KeyShare, list[Public] | None]]) -> list[Exception | None]:
        errors: list[Exception | None] = []
        with self._writer_lock, self._writer:
            self._writer.execute("BEGIN IMMEDIATE")
            for share, commitments in entries:
                try:
                    self._writer.execute("INSERT INTO key_shares VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", self._row(share))
                except sqlite3.IntegrityError:  # only this statement is undone, the others stay in the transaction
                    errors.append(KeyAlreadyExists(f"server key {share.key_id.hex()} already exists"))
                    continue
                if commitments is not None:
                    self._writer.execute("INSERT OR REPLACE INTO share_commitments VALUES (?, ?, ?)",
                                         (bytes(share.key_id), share.version,
                                          json.dumps([c.hex() for c in commitments])))
                errors.append(None)
        return errors

    def insert(self, share: KeyShare, commitments: list[Public] | None = None) -> None:
        try:
            self._insert(share, commitments)
        finally:
            self._changed(share.key_id)

    def _insert(self, share: KeyShare, commitments: list[Public] | None) -> None:
        with self._lock, self.conn:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                self.conn.execute("INSERT INTO key_shares VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", self._row(share))
            except sqlite3.IntegrityError:
                raise KeyAlreadyExists(f"server key {share.key_id.hex()} already exists") from None
            if commitments is not None:
                self.conn.execute("INSERT OR REPLACE INTO share_commitments VALUES (?, ?, ?)",
                                  (bytes(share.key_id), share.version, json.dumps([c.hex() for c in commitments])))

    def mark_reported(self, key_id: ServerKeyId) -> None:
        """Not synced on its own (it rides on the next durable commit): losing the mark in a crash only makes this
        server answer the generation once more, which the chain ignores if it has the answer."""
        with self._lock:
            self.conn.execute("PRAGMA synchronous=OFF")
            try:
                self.conn.execute("INSERT OR IGNORE INTO reported_keys VALUES (?)", (bytes(key_id),))
            finally:
                self.conn.execute("PRAGMA synchronous=FULL")

    def is_reported(self, key_id: ServerKeyId) -> bool:
        with self._lock:
            return self.conn.execute("SELECT 1 FROM reported_keys WHERE key_id = ?", (bytes(key_id),)).fetchone() \
                is not None

    def commitments(self, share: KeyShare) -> list[Public] | None:
        """The Feldman commitments of this share's key version, if they were recorded."""
        with self._lock:
            row = self.conn.execute("SELECT commitments FROM share_commitments WHERE key_id = ? AND version = ?",
                                    (bytes(share.key_id), share.version)).fetchone()
        return [Public.from_hex(c) for c in json.loads(row[0])] if row else None

    def get(self, key_id: ServerKeyId) -> KeyShare | None:
        raw = bytes(key_id)
        with self._cache_lock:
            if raw in self._cache:
                return self._cache[raw]
            writes = self._writes
        share = self._read(raw)
        with self._cache_lock:
            if self._writes == writes:
                if len(self._cache) >= MAX_CACHED_SHARES:
                    self._cache.clear()
                self._cache[raw] = share
        return share

    def _read(self, key_id: bytes) -> KeyShare | None:
        with self._lock:
            row = self.conn.execute("SELECT * FROM key_shares WHERE key_id = ?", (key_id,)).fetchone()
        if row is None:
            return None
        return KeyShare(
            key_id=ServerKeyId(row[0]), author=Address(row[1]), threshold=row[2], public=Public(row[3]), version=row[4],
            holders=tuple(Address.from_hex(h) for h in json.loads(row[5])), secret_share=int.from_bytes(row[6], "big"),
            common_point=Public(row[7]) if row[7] else None, encrypted_point=Public(row[8]) if row[8] else None)

    def store_document_key(self, key_id: ServerKeyId, common_point: Public, encrypted_point: Public) -> KeyShare:
        """Write-once: a document key, once stored, is never replaced."""
        with self._lock:
            cursor = self.conn.execute(
                "UPDATE key_shares SET common_point = ?, encrypted_point = ? WHERE key_id = ? AND common_point IS NULL",
                (bytes(common_point), bytes(encrypted_point), bytes(key_id)))
            changed = cursor.rowcount
        self._changed(key_id)
        if not changed:
            if self.get(key_id) is None:
                raise KeyStorageError(f"server key {key_id.hex()} is not known")
            raise DocumentKeyAlreadyStored(f"a document key is already stored for {key_id.hex()}")
        share = self.get(key_id)
        assert share is not None
        return share

    @staticmethod
    def _row(share: KeyShare) -> tuple:
        return (bytes(share.key_id), bytes(share.author), share.threshold, bytes(share.public), share.version,
                json.dumps([h.hex() for h in share.holders]), share.secret_share.to_bytes(32, "big"),
                bytes(share.common_point) if share.common_point else None,
                bytes(share.encrypted_point) if share.encrypted_point else None)

    def stage_pending(self, migration_id: bytes, *shares: KeyShare,
                      commitments: dict[ServerKeyId, list[Public]] | None = None) -> None:
        """Durably keep the new versions of keys made by a migration (replacing an earlier attempt's), in one
        transaction (with their commitments, keyed by the new version)."""
        with self._lock, self.conn:
            self.conn.execute("BEGIN IMMEDIATE")  # autocommit mode: without it every row would be its own transaction
            self.conn.executemany("INSERT OR REPLACE INTO pending_shares VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                                  [(migration_id,) + self._row(share) for share in shares])
            self.conn.executemany("INSERT OR REPLACE INTO share_commitments VALUES (?, ?, ?)",
                                  [(bytes(share.key_id), share.version,
                                    json.dumps([c.hex() for c in commitments[share.key_id]]))
                                   for share in shares if commitments and share.key_id in commitments])

    def pending_migrations(self) -> dict[bytes, set[str]]:
        """migration id -> the holder sets (JSON) its pending versions were made for."""
        with self._lock:
            rows = self.conn.execute("SELECT migration_id, holders FROM pending_shares").fetchall()
        found: dict[bytes, set[str]] = {}
        for migration_id, holders in rows:
            found.setdefault(migration_id, set()).add(holders)
        return found

    def promote(self, migration_id: bytes) -> int:
        """The migration completed: its pending versions replace the active shares, all in one transaction."""
        with self._lock, self.conn:
            self.conn.execute("BEGIN IMMEDIATE")
            count = self.conn.execute(
                "INSERT OR REPLACE INTO key_shares SELECT key_id, author, threshold, public, version, holders, "
                "secret_share, common_point, encrypted_point FROM pending_shares WHERE migration_id = ?",
                (migration_id,)).rowcount
            self.conn.execute("DELETE FROM pending_shares WHERE migration_id = ?", (migration_id,))
        self._changed()
        return count

    def drop_pending(self, migration_id: bytes) -> None:
        with self._lock:
            self.conn.execute("DELETE FROM pending_shares WHERE migration_id = ?", (migration_id,))

    def delete_all(self) -> int:
        """This key server left the set: nothing it held may remain."""
        with self._lock, self.conn:
            self.conn.execute("BEGIN IMMEDIATE")
            count = self.conn.execute("DELETE FROM key_shares").rowcount
            self.conn.execute("DELETE FROM pending_shares")
            self.conn.execute("DELETE FROM share_commitments")
        self._changed()
        return count

    def delete(self, key_id: ServerKeyId) -> None:
        with self._lock:
            self.conn.execute("DELETE FROM key_shares WHERE key_id = ?", (bytes(key_id),))
            self.conn.execute("DELETE FROM share_commitments WHERE key_id = ?", (bytes(key_id),))
        self._changed(key_id)

    def key_ids(self) -> list[ServerKeyId]:
        with self._lock:
            return [ServerKeyId(r[0]) for r in self.conn.execute("SELECT key_id FROM key_shares ORDER BY key_id")]


