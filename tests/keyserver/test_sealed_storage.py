"""Shares sealed at rest: a copied share database reveals no secret, a changed byte costs only its own key (named in
the log), a wrong secret is refused, and a database from before sealing is sealed on first start — atomically, so a
kill in the middle of it loses nothing."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from secretstore.crypto import Address, Secret, ServerKeyId
from secretstore.keyserver.storage import SCHEMA, KeyShare, KeyStorage, WrongStorageSecret

SELF = Secret.from_int(secrets.randbelow(2**255) + 1)  # the key server secret the storage is sealed with
HOLDERS = tuple(Address(bytes([i]) * 20) for i in range(1, 4))


def new_share(with_document: bool = True, version: bytes | None = None) -> KeyShare:
    points = (Secret.random().public(), Secret.random().public()) if with_document else (None, None)
    return KeyShare(ServerKeyId(secrets.token_bytes(32)), Address(b"\x09" * 20), 1, Secret.random().public(),
                    version or secrets.token_bytes(16), HOLDERS, secrets.randbelow(2**256 - 2**250) + 2**250, *points)


def secret_values(share: KeyShare) -> list[bytes]:
    """Every secret of a share in the forms it could leak in: raw bytes and hex text."""
    raw = [share.secret_share.to_bytes(32, "big")]
    raw += [bytes(p) for p in (share.common_point, share.encrypted_point) if p is not None]
    return raw + [r.hex().encode() for r in raw] + [r[:16] for r in raw]


def file_bytes(directory: Path) -> bytes:
    """The database and whatever SQLite keeps beside it (log, shared memory), as a copy of the directory has them."""
    return b"".join(p.read_bytes() for p in sorted(directory.glob("keys.sqlite*")))


def same(a: KeyShare | None, b: KeyShare) -> bool:
    return a is not None and (a.key_id, a.public, a.version, a.holders, a.secret_share, a.common_point,
                              a.encrypted_point) == (b.key_id, b.public, b.version, b.holders, b.secret_share,
                                                     b.common_point, b.encrypted_point)


def test_a_copied_database_reveals_no_share(tmp_path):
    path = tmp_path / "keys.sqlite"
    storage = KeyStorage(path, SELF)
    inserted = [new_share() for _ in range(5)]
    for share in inserted:
        storage.insert(share)
    grouped = [new_share(with_document=False) for _ in range(20)]

    async def insert_grouped():
        await asyncio.gather(*(storage.insert_durably(s) for s in grouped))

    asyncio.run(insert_grouped())
    later = grouped[0]  # a document key stored afterwards
    documented = storage.store_document_key(later.key_id, Secret.random().public(), Secret.random().public())
    migrated = KeyShare(inserted[0].key_id, inserted[0].author, 1, inserted[0].public, b"m" * 16, HOLDERS,
                        secrets.randbelow(2**256 - 2**250) + 2**250, inserted[0].common_point,
                        inserted[0].encrypted_point)
    storage.stage_pending(b"\x07" * 32, migrated)
    replaced = inserted[0]
    storage.promote(b"\x07" * 32)  # the migration's version replaces the first key's share
    storage.close()

    copied = file_bytes(tmp_path)
    everything = inserted + grouped + [documented, migrated]
    for share in everything:
        for value in secret_values(share):
            assert value not in copied, f"a secret of {share.key_id.hex()} is readable in the file"
    assert all(bytes(s.public) in copied for s in everything)  # public columns stay readable: the search works

    reopened = KeyStorage(path, SELF)
    assert same(reopened.get(migrated.key_id), migrated)
    assert reopened.get(replaced.key_id).secret_share != replaced.secret_share
    assert all(same(reopened.get(s.key_id), s) for s in inserted[1:] + grouped[1:] + [documented])
    reopened.close()


def test_a_database_opened_with_another_secret_is_refused(tmp_path):
    storage = KeyStorage(tmp_path / "keys.sqlite", SELF)
    storage.insert(new_share())
    storage.close()
    other = Secret.random()
    with pytest.raises(WrongStorageSecret, match="another key server secret") as info:
        KeyStorage(tmp_path / "keys.sqlite", other)
    assert other.to_int().to_bytes(32, "big").hex() not in str(info.value)


def tamper(path: Path, sql: str, *args) -> None:
    conn = sqlite3.connect(path)
    with conn:
        conn.execute(sql, args)
    conn.close()


def flip_byte(box: bytes, at: int) -> bytes:
    return box[:at] + bytes([box[at] ^ 0x01]) + box[at + 1:]


def test_a_changed_row_names_its_key_and_the_other_keys_are_served(tmp_path, caplog):
    path = tmp_path / "keys.sqlite"
    storage = KeyStorage(path, SELF)
    shares = [new_share() for _ in range(6)]
    for share in shares:
        storage.insert(share)
    storage.close()
    damaged, thresholds, swapped, moved, fine = shares[0], shares[1], shares[2:4], shares[4], shares[5]
    conn = sqlite3.connect(path)
    box = conn.execute("SELECT secret_share FROM key_shares WHERE key_id = ?", (bytes(damaged.key_id),)).fetchone()[0]
    boxes = [conn.execute("SELECT secret_share FROM key_shares WHERE key_id = ?", (bytes(s.key_id),)).fetchone()[0]
             for s in swapped]
    conn.close()
    tamper(path, "UPDATE key_shares SET secret_share = ? WHERE key_id = ?", flip_byte(box, len(box) // 2),
           bytes(damaged.key_id))
    # a public column: the threshold a master would use
    tamper(path, "UPDATE key_shares SET threshold = 2 WHERE key_id = ?", bytes(thresholds.key_id))
    for share, other_box in zip(swapped, reversed(boxes)):  # two rows' shares exchanged
        tamper(path, "UPDATE key_shares SET secret_share = ? WHERE key_id = ?", other_box, bytes(share.key_id))
    tamper(path, "UPDATE key_shares SET common_point = encrypted_point, encrypted_point = common_point "
                 "WHERE key_id = ?", bytes(moved.key_id))

    caplog.set_level(logging.ERROR, logger="secretstore.keyserver.storage")
    reopened = KeyStorage(path, SELF)
    for share in [damaged, thresholds, *swapped, moved]:
        assert reopened.get(share.key_id) is None  # never a wrong share, nor a wrong public or threshold
        assert share.key_id in reopened.damaged()
        assert any(getattr(r, "key", None) == share.key_id.hex() and "integrity" in r.error for r in caplog.records)
    assert "column common_point" in reopened.damaged()[moved.key_id]
    assert same(reopened.get(fine.key_id), fine)  # the other keys are served as before
    assert len(reopened.key_ids()) == len(shares)
    assert not any(hex(s.secret_share)[2:] in r.getMessage() + str(r.__dict__) for r in caplog.records for s in shares)
    reopened.close()


def write_plain_database(path: Path, shares: list[KeyShare], pending: list[KeyShare] = ()) -> None:
    """A share database as key servers wrote it before sealing: the secrets in the clear."""
    conn = sqlite3.connect(path)
    conn.executescript(SCHEMA)

    def row(share: KeyShare) -> tuple:
        return (bytes(share.key_id), bytes(share.author), share.threshold, bytes(share.public), share.version,
                json.dumps([h.hex() for h in share.holders]), share.secret_share.to_bytes(32, "big"),
                bytes(share.common_point) if share.common_point else None,
                bytes(share.encrypted_point) if share.encrypted_point else None)

    with conn:
        conn.executemany("INSERT INTO key_shares VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", [row(s) for s in shares])
        conn.executemany("INSERT INTO pending_shares VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                         [(b"\x05" * 32,) + row(s) for s in pending])
    conn.close()


def test_a_plain_database_is_sealed_on_first_start(tmp_path):
    path = tmp_path / "keys.sqlite"
    shares = [new_share(with_document=i % 2 == 0) for i in range(50)]
    pending = [KeyShare(shares[0].key_id, shares[0].author, 1, shares[0].public, b"p" * 16, HOLDERS, 4242 << 200,
                        shares[0].common_point, shares[0].encrypted_point)]
    write_plain_database(path, shares, pending)
    assert shares[1].secret_share.to_bytes(32, "big") in file_bytes(tmp_path)  # the test's premise

    storage = KeyStorage(path, SELF)
    assert all(same(storage.get(s.key_id), s) for s in shares)
    storage.close()
    copied = file_bytes(tmp_path)
    for share in shares + pending:
        for value in secret_values(share):
            assert value not in copied
    reopened = KeyStorage(path, SELF)  # sealed once: a second start reads the sealed rows
    assert reopened.promote(b"\x05" * 32) == 1
    assert same(reopened.get(shares[0].key_id), pending[0])
    reopened.close()


KILL_DURING_SEALING = """
import os, signal, sys
from pathlib import Path
from secretstore.crypto import Secret
from secretstore.keyserver import share_rows
from secretstore.keyserver.storage import KeyStorage

sealed = 0
original = share_rows.RowSealer.seal_plain_row

def seal_then_die(self, row):
    global sealed
    sealed += 1
    if sealed == int(sys.argv[3]):
        print("killed after", sealed - 1, "rows", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    return original(self, row)

share_rows.RowSealer.seal_plain_row = seal_then_die
KeyStorage(Path(sys.argv[1]), Secret.from_hex(sys.argv[2]))
"""


def test_a_kill_while_sealing_a_plain_database_loses_nothing(tmp_path):
    path = tmp_path / "keys.sqlite"
    shares = [new_share() for _ in range(600)]
    write_plain_database(path, shares)
    done = subprocess.run([sys.executable, "-c", KILL_DURING_SEALING, str(path), SELF.to_int().to_bytes(32, "big").hex(),
                           "400"], capture_output=True, text=True, timeout=120, env=dict(os.environ))
    assert done.returncode == -signal.SIGKILL, done.stderr
    assert "killed after 399 rows" in done.stdout
    conn = sqlite3.connect(path)  # nothing of the interrupted transaction remains: still the plain rows, no check
    assert conn.execute("SELECT COUNT(*) FROM storage_meta").fetchone()[0] == 0
    plain = dict(conn.execute("SELECT key_id, secret_share FROM key_shares").fetchall())
    conn.close()
    assert plain == {bytes(s.key_id): s.secret_share.to_bytes(32, "big") for s in shares}

    storage = KeyStorage(path, SELF)  # the next start seals it all
    assert all(same(storage.get(s.key_id), s) for s in shares)
    storage.close()
    copied = file_bytes(tmp_path)
    assert not any(s.secret_share.to_bytes(32, "big") in copied for s in shares)
