"""The versions a proactive share refresh keeps beside a key's active share (`ShareVersions`, part of `KeyStorage`).

A refresh moves every holder of a key from version V to V' in steps that each leave a version t + 1 holders share:
- staged: V' is on disk beside the active V (not used yet; a later attempt replaces it);
- activated: V' is the active version, V kept as *retired* so that a session its master still runs on V finds it;
- erased: once every holder activated V', V is deleted (secure_delete overwrites it, the log is truncated).
A master names the version it uses; a holder finds it in any of the three places (`share_version`). A staged version
a master names is activated on sight: a master only uses V' once every holder had staged it.
Each key also has the refresh epoch its active version belongs to (none: never refreshed).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from typing import Callable

from ..crypto import Public, ServerKeyId
from ..crypto import math as m
from .share_rows import KeyShare, RowSealer, ShareIntegrityError, public_digest

VERSIONS_SCHEMA = """
CREATE TABLE IF NOT EXISTS refresh_staged (
    key_id BLOB PRIMARY KEY,
    version BLOB NOT NULL,
    secret_share BLOB NOT NULL,     -- sealed like key_shares.secret_share, under the new version
    epoch INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS refresh_retired (
    key_id BLOB NOT NULL,
    version BLOB NOT NULL,
    secret_share BLOB NOT NULL,     -- the box as it was in key_shares (sealed under its own version)
    PRIMARY KEY (key_id, version)
);
CREATE TABLE IF NOT EXISTS refresh_epochs (
    key_id BLOB PRIMARY KEY,
    epoch INTEGER NOT NULL
);
"""
ACTIVE_COLUMNS = "key_id, author, threshold, public, version, holders, secret_share, common_point, encrypted_point"


class ShareVersions:
    """Refresh versions over the share database. Mixed into `KeyStorage`, whose connection, lock, sealer, reader
    and cache invalidation it uses."""

    conn: sqlite3.Connection
    _lock: threading.Lock
    _rows: RowSealer
    _changed: Callable[..., None]
    _open: Callable[[tuple], KeyShare | None]
    get: Callable[[ServerKeyId], KeyShare | None]

    def refresh_due(self, epoch: int) -> list[tuple[ServerKeyId, bytes, int, str]]:
        """(key id, active version, threshold, holders as stored) of every key not yet refreshed at `epoch`."""
        with self._lock:
            rows = self.conn.execute(
                "SELECT key_id, version, threshold, holders FROM key_shares LEFT JOIN refresh_epochs USING (key_id) "
                "WHERE epoch IS NULL OR epoch < ? ORDER BY key_id", (epoch,)).fetchall()
        return [(ServerKeyId(k), v, t, h) for k, v, t, h in rows]

    def refresh_epoch_of(self, key_id: ServerKeyId) -> int | None:
        with self._lock:
            row = self.conn.execute("SELECT epoch FROM refresh_epochs WHERE key_id = ?", (bytes(key_id),)).fetchone()
        return row[0] if row else None

    def refresh_epochs(self) -> dict[int | None, int]:
        """How many keys are at each refresh epoch (None: never refreshed)."""
        with self._lock:
            rows = self.conn.execute("SELECT epoch, COUNT(*) FROM key_shares LEFT JOIN refresh_epochs USING (key_id) "
                                     "GROUP BY epoch").fetchall()
        return {epoch: count for epoch, count in rows}

    def refresh_bases(self, key_ids: list[ServerKeyId]) -> dict[ServerKeyId, tuple[bytes, int, str, int | None]]:
        """(active version, threshold, holders as stored, refresh epoch) of each of these keys held here: public
        columns only, nothing is opened."""
        found = {}
        with self._lock:
            for start in range(0, len(key_ids), 500):
                chunk = [bytes(k) for k in key_ids[start:start + 500]]
                found.update({ServerKeyId(k): (v, t, h, e) for k, v, t, h, e in self.conn.execute(
                    "SELECT key_id, version, threshold, holders, epoch FROM key_shares LEFT JOIN refresh_epochs "
                    f"USING (key_id) WHERE key_id IN ({', '.join('?' * len(chunk))})", chunk)})
        return found

    def old_versions(self) -> int:
        """Versions a refresh replaced and keeps until every holder has the new one (then they are erased)."""
        with self._lock:
            return self.conn.execute("SELECT COUNT(*) FROM refresh_retired").fetchone()[0]

    def stage_refreshed(self, epoch: int, entries: list[tuple[ServerKeyId, bytes, bytes, int, list[Public]]]
                        ) -> list[ServerKeyId]:
        """Durably keep new versions beside the active ones, all in one transaction: for each (key, the version it
        is refreshed from, the new version, the sum of the shares dealt to this holder, the sums of the dealers'
        commitments A_1..A_t), the new share (old + sum) and new commitments (C_0, C_k + A_k). An earlier attempt's
        staged version of a key is replaced. The keys staged (not: one no longer held here at that version)."""
        staged = []
        with self._lock, self.conn:
            self.conn.execute("BEGIN IMMEDIATE")
            for key_id, base, version, delta, sums in entries:
                raw = bytes(key_id)
                secret = self._secret_at(raw, base)
                if secret is None:
                    continue
                digest = self._public_digest(raw)
                assert digest is not None
                self.conn.execute("DELETE FROM share_commitments WHERE key_id = ? AND version IN "
                                  "(SELECT version FROM refresh_staged WHERE key_id = ?)", (raw, raw))
                self.conn.execute("INSERT OR REPLACE INTO refresh_staged VALUES (?, ?, ?, ?)", (
                    raw, version, self._rows.seal_secret_share(raw, version, digest, (secret + delta) % m.N), epoch))
                old = self.conn.execute("SELECT commitments FROM share_commitments WHERE key_id = ? AND version = ?",
                                        (raw, base)).fetchone()
                points = json.loads(old[0]) if old else []
                if len(points) == len(sums) + 1:  # keys from before commitments were kept have none to update
                    new = [points[0]] + [m.point_add(Public.from_hex(c), s).hex() for c, s in zip(points[1:], sums)]
                    self.conn.execute("INSERT OR REPLACE INTO share_commitments VALUES (?, ?, ?)",
                                      (raw, version, json.dumps(new)))
                staged.append(key_id)
        return staged

    def _secret_at(self, key_id: bytes, version: bytes) -> int | None:
        """Inside a transaction: this server's secret share of the key at `version`, active or retired."""
        row = self.conn.execute("SELECT version, secret_share FROM key_shares WHERE key_id = ?", (key_id,)).fetchone()
        digest = self._public_digest(key_id)
        if row is None or digest is None:
            return None
        box = row[1] if row[0] == version else next(iter(self.conn.execute(
            "SELECT secret_share FROM refresh_retired WHERE key_id = ? AND version = ?", (key_id, version))), [None])[0]
        if box is None:
            return None
        try:
            return self._rows.open_secret_share(key_id, version, digest, box)
        except ShareIntegrityError:
            return None

    def _public_digest(self, key_id: bytes) -> bytes | None:
        """The digest of the active row's public columns as stored (what the secret share's box is bound to)."""
        row = self.conn.execute("SELECT author, threshold, public, holders FROM key_shares WHERE key_id = ?",
                                (key_id,)).fetchone()
        return None if row is None else public_digest(*row)

    def activate_refreshed(self, versions: list[tuple[ServerKeyId, bytes]]) -> list[ServerKeyId]:
        """Make the staged version of each key active (the active one retired), all in one transaction; the keys
        whose active version is the given one afterwards (activated now or before)."""
        done: list[ServerKeyId] = []
        try:
            with self._lock, self.conn:
                self.conn.execute("BEGIN IMMEDIATE")
                for key_id, version in versions:
                    if self._activate(bytes(key_id), version):
                        done.append(key_id)
        finally:
            for key_id, _ in versions:
                self._changed(key_id)
        return done

    def _activate(self, key_id: bytes, version: bytes) -> bool:
        row = self.conn.execute(f"SELECT {ACTIVE_COLUMNS} FROM key_shares WHERE key_id = ?", (key_id,)).fetchone()
        if row is None:
            return False
        if row[4] == version:
            return True
        staged = self.conn.execute("SELECT secret_share, epoch FROM refresh_staged WHERE key_id = ? AND version = ?",
                                   (key_id, version)).fetchone()
        if staged is None:
            return False
        old_version = row[4]
        try:  # the document key's points move to the new version: their boxes are bound to it
            points = [self._rows.open(c, key_id, old_version, box) for c, box in
                      (("common_point", row[7]), ("encrypted_point", row[8]))]
        except ShareIntegrityError:
            return False  # the row is damaged: reading it says so (and names the key)
        self.conn.execute("INSERT OR REPLACE INTO refresh_retired VALUES (?, ?, ?)", (key_id, old_version, row[6]))
        self.conn.execute(
            "UPDATE key_shares SET version = ?, secret_share = ?, common_point = ?, encrypted_point = ? "
            "WHERE key_id = ?",
            (version, staged[0], self._rows.seal("common_point", key_id, version, points[0]),
             self._rows.seal("encrypted_point", key_id, version, points[1]), key_id))
        self.conn.execute("INSERT OR REPLACE INTO refresh_epochs VALUES (?, ?)", (key_id, staged[1]))
        self.conn.execute("DELETE FROM refresh_staged WHERE key_id = ?", (key_id,))
        return True

    def erase_retired(self, key_ids: list[ServerKeyId]) -> int:
        """Every holder has activated the new versions: the old ones go, from the file and from its log."""
        with self._lock, self.conn:
            self.conn.execute("BEGIN IMMEDIATE")
            count = 0
            for key_id in key_ids:
                self.conn.execute("DELETE FROM share_commitments WHERE key_id = ? AND version IN "
                                  "(SELECT version FROM refresh_retired WHERE key_id = ?)", (bytes(key_id),) * 2)
                count += self.conn.execute("DELETE FROM refresh_retired WHERE key_id = ?", (bytes(key_id),)).rowcount
        with self._lock:
            self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return count

    def share_version(self, key_id: ServerKeyId, version: bytes) -> KeyShare | None:
        """This server's share of a key at `version`, wherever a refresh keeps it: active, staged (activated now: a
        master uses it only once every holder had staged it) or retired (a master that has not activated yet)."""
        active = self.get(key_id)
        if active is None or active.version == version:
            return active
        with self._lock:
            staged = self.conn.execute("SELECT 1 FROM refresh_staged WHERE key_id = ? AND version = ?",
                                       (bytes(key_id), version)).fetchone()
        if staged is not None and self.activate_refreshed([(key_id, version)]):
            return self.get(key_id)
        with self._lock:
            row = self.conn.execute("SELECT secret_share FROM refresh_retired WHERE key_id = ? AND version = ?",
                                    (bytes(key_id), version)).fetchone()
            digest = self._public_digest(bytes(key_id))
        if row is None or digest is None:
            return None
        try:
            secret = self._rows.open_secret_share(bytes(key_id), version, digest, row[0])
        except ShareIntegrityError:
            return None
        return KeyShare(active.key_id, active.author, active.threshold, active.public, version, active.holders,
                        secret, active.common_point, active.encrypted_point)

    def _forget_versions(self, key_ids: list[bytes] | None, epochs: bool = False) -> None:
        """Inside a write transaction: the refresh versions of these keys (None: all) are of no more use (a
        migration gave them new holders and a new version, or they are deleted)."""
        for table in ("refresh_staged", "refresh_retired") + (("refresh_epochs",) if epochs else ()):
            if key_ids is None:
                self.conn.execute(f"DELETE FROM {table}")
            else:
                self.conn.executemany(f"DELETE FROM {table} WHERE key_id = ?", [(k,) for k in key_ids])
