"""A key server's durable store of key shares (SQLite, WAL, synchronous=FULL), its secrets sealed at rest.

A share is committed before any success is reported for it, so a crash never loses a key that the chain was told
about. Secret shares never leave this module except to the session code that uses them.

Every secret column is an AEAD box under a key derived from the key server's own secret (`share_rows.RowSealer`): a
copied file reveals no share. A row that does not open (altered, damaged, another server's) makes its key unknown
here — as if the share were lost, which the protocols already survive — with an error in the log naming the key; the
other keys are served as before. Deleted content is overwritten (secure_delete), so an erased share leaves no bytes
behind in the file, and a file from before sealing is sealed on first start, in one transaction.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import threading
from pathlib import Path

from ..crypto import Public, Secret, ServerKeyId
from ..crypto.sealing import SealError
from .share_versions import VERSIONS_SCHEMA, ShareVersions
from .share_rows import (
    SECRET_COLUMNS, DocumentKeyAlreadyStored, KeyAlreadyExists, KeyShare, KeyStorageError, RowSealer,
    ShareIntegrityError, WrongStorageSecret,
)

__all__ = ["DocumentKeyAlreadyStored", "KeyAlreadyExists", "KeyShare", "KeyStorage", "KeyStorageError",
           "ShareIntegrityError", "WrongStorageSecret"]

log = logging.getLogger(__name__)

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
-- facts about the file itself: whether its secrets are sealed, and a sealed check value that tells a wrong secret
CREATE TABLE IF NOT EXISTS storage_meta (
    name TEXT PRIMARY KEY,
    value BLOB NOT NULL
);
"""
SEAL_CHECK = b"secretstore key share database"
ROW_COLUMNS = "key_id, author, threshold, public, version, holders, secret_share, common_point, encrypted_point"


# shares kept as read: the chain service asks about the keys of pending requests (at most a few queues of 64) on
# every block; a read of every share (a migration) must not keep them all in memory (about 1.5 KB each)
MAX_CACHED_SHARES = 4096


class KeyStorage(ShareVersions):
    def __init__(self, path: Path, secret: Secret) -> None:
        """`secret`: the key server's own secret, from which the sealing key is derived (once, here)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._rows = RowSealer(secret)
        self._damaged: dict[bytes, str] = {}  # key id -> why its row did not open (logged once)
        self._lock = threading.Lock()
        self.conn = self._connect(path)
        try:
            self.conn.executescript(SCHEMA + VERSIONS_SCHEMA)
            self._open_or_seal()
        except BaseException:
            self.conn.close()
            raise
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

    def _open_or_seal(self) -> None:
        """Check that the file was sealed with this secret; a file from before sealing is sealed now, every row in
        one transaction, so a crash midway leaves it as it was (and the next start seals it again)."""
        with self._lock, self.conn:
            self.conn.execute("BEGIN IMMEDIATE")
            check = self.conn.execute("SELECT value FROM storage_meta WHERE name = 'seal_check'").fetchone()
            if check is not None:
                try:
                    self._rows.sealer.open(check[0], b"seal_check")
                except SealError:
                    raise WrongStorageSecret(
                        f"{self.path} was sealed under another key server secret: start the key server with the "
                        "secret it was created with") from None
                return
            converted = sum(self._seal_rows(table) for table in ("key_shares", "pending_shares"))
            self.conn.execute("INSERT INTO storage_meta VALUES ('seal_check', ?)",
                              (self._rows.sealer.seal(SEAL_CHECK, b"seal_check"),))
        if converted:  # the log held the plain pages until now
            self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def _seal_rows(self, table: str) -> int:
        rows = self.conn.execute(f"SELECT rowid, {ROW_COLUMNS} FROM {table}").fetchall()
        for rowid, *row in rows:
            self.conn.execute(f"UPDATE {table} SET {', '.join(c + ' = ?' for c in SECRET_COLUMNS)} WHERE rowid = ?",
                              (*self._rows.seal_plain_row(tuple(row)), rowid))
        return len(rows)

    def _changed(self, key_id: ServerKeyId | None = None) -> None:
        """After a committed write: forget the cached share of `key_id` (None: all)."""
        with self._cache_lock:
            self._writes += 1
            if key_id is None:
                self._cache.clear()
                self._damaged.clear()
            else:
                self._cache.pop(bytes(key_id), None)
                self._damaged.pop(bytes(key_id), None)

    @staticmethod
    def _connect(path: Path) -> sqlite3.Connection:
        conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        # first: switching a new file to WAL takes its lock, and another connection (this storage's writer, or another
        # process opening the same new file) may hold it; with the timeout set the switch waits for it too
        conn.execute("PRAGMA busy_timeout=10000")  # the connections take turns writing
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA secure_delete=ON")  # a replaced or deleted share leaves no bytes behind in the file
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
                    self._writer.execute("INSERT INTO key_shares VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                                         self._rows.row(share))
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
                self.conn.execute("INSERT INTO key_shares VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", self._rows.row(share))
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
                    del self._cache[next(iter(self._cache))]  # the oldest read goes first
                self._cache[raw] = share
        return share

    def _read(self, key_id: bytes) -> KeyShare | None:
        with self._lock:
            row = self.conn.execute(f"SELECT {ROW_COLUMNS} FROM key_shares WHERE key_id = ?", (key_id,)).fetchone()
        return None if row is None else self._open(row)

    def _open(self, row: tuple) -> KeyShare | None:
        """The share in a row, or None if the row does not open: this server then serves the key as one whose share
        it lost, and says so once in the log (naming the key, never a value)."""
        try:
            share = self._rows.share(row)
        except ShareIntegrityError as exc:
            if self._damaged.get(row[0]) != str(exc):
                self._damaged[row[0]] = str(exc)
                log.error("key share unreadable: not served by this key server until its row is restored",
                          extra={"key": "0x" + row[0].hex(), "error": str(exc)})
            return None
        self._damaged.pop(row[0], None)
        return share

    def damaged(self) -> dict[ServerKeyId, str]:
        """The keys whose rows did not open when last read, with the reason."""
        return {ServerKeyId(k): why for k, why in self._damaged.items()}

    def store_document_key(self, key_id: ServerKeyId, common_point: Public, encrypted_point: Public) -> KeyShare:
        """Write-once: a document key, once stored, is never replaced."""
        raw = bytes(key_id)
        if self.get(key_id) is None:
            raise KeyStorageError(f"server key {key_id.hex()} is not known")
        with self._lock, self.conn:
            self.conn.execute("BEGIN IMMEDIATE")  # the points are sealed with the row's version as it is now
            row = self.conn.execute("SELECT version, common_point IS NULL FROM key_shares WHERE key_id = ?",
                                    (raw,)).fetchone()
            if row is not None and row[1]:
                self.conn.execute(
                    "UPDATE key_shares SET common_point = ?, encrypted_point = ? WHERE key_id = ?",
                    (self._rows.seal("common_point", raw, row[0], bytes(common_point)),
                     self._rows.seal("encrypted_point", raw, row[0], bytes(encrypted_point)), raw))
        self._changed(key_id)
        if row is None:
            raise KeyStorageError(f"server key {key_id.hex()} is not known")
        if not row[1]:
            raise DocumentKeyAlreadyStored(f"a document key is already stored for {key_id.hex()}")
        share = self.get(key_id)
        assert share is not None
        return share

    def stage_pending(self, migration_id: bytes, *shares: KeyShare,
                      commitments: dict[ServerKeyId, list[Public]] | None = None) -> None:
        """Durably keep the new versions of keys made by a migration (replacing an earlier attempt's), in one
        transaction (with their commitments, keyed by the new version)."""
        with self._lock, self.conn:
            self.conn.execute("BEGIN IMMEDIATE")  # autocommit mode: without it every row would be its own transaction
            self.conn.executemany("INSERT OR REPLACE INTO pending_shares VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                                  [(migration_id,) + self._rows.row(share) for share in shares])
            self.conn.executemany("INSERT OR REPLACE INTO share_commitments VALUES (?, ?, ?)",
                                  [(bytes(share.key_id), share.version,
                                    json.dumps([c.hex() for c in commitments[share.key_id]]))
                                   for share in shares if commitments and share.key_id in commitments])

    def pending_migrations(self) -> dict[bytes, set[str]]:
        """migration id -> the holder sets (JSON) its pending versions were made for."""
        with self._lock:  # distinct in SQL: a migration of 100,000 keys stages as many rows with one holder set
            rows = self.conn.execute("SELECT DISTINCT migration_id, holders FROM pending_shares").fetchall()
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
            self._forget_versions([r[0] for r in self.conn.execute(
                "SELECT key_id FROM pending_shares WHERE migration_id = ?", (migration_id,))])
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
            self._forget_versions(None, epochs=True)
        self._changed()
        return count

    def delete(self, key_id: ServerKeyId) -> None:
        with self._lock, self.conn:
            self.conn.execute("BEGIN IMMEDIATE")
            self.conn.execute("DELETE FROM key_shares WHERE key_id = ?", (bytes(key_id),))
            self.conn.execute("DELETE FROM share_commitments WHERE key_id = ?", (bytes(key_id),))
            self._forget_versions([bytes(key_id)], epochs=True)
        self._changed(key_id)

    def key_ids(self) -> list[ServerKeyId]:
        with self._lock:
            return [ServerKeyId(r[0]) for r in self.conn.execute("SELECT key_id FROM key_shares ORDER BY key_id")]

    def key_count(self) -> int:
        with self._lock:
            return self.conn.execute("SELECT COUNT(*) FROM key_shares").fetchone()[0]

    def key_page(self, after: ServerKeyId | None, limit: int) -> list[tuple[ServerKeyId, int]]:
        """Up to `limit` keys held, in key id order after `after`, with their thresholds (the primary key's index
        finds the start: a listing in pages costs no more than one in a piece)."""
        with self._lock:
            rows = self.conn.execute("SELECT key_id, threshold FROM key_shares WHERE key_id > ? ORDER BY key_id "
                                     "LIMIT ?", (bytes(after) if after is not None else b"", limit)).fetchall()
        return [(ServerKeyId(k), t) for k, t in rows]


