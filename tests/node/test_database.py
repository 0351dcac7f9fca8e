"""The chain database's write-ahead log is checkpointed on a thread of its own, and does not grow without bound."""

import os
import sqlite3
import time

from secretstore.node import database
from secretstore.node.database import ChainDatabase


def write_blocks(db: ChainDatabase, first: int, count: int, pause: float = 0.0) -> None:
    for number in range(first, first + count):
        db.commit_block(number, number.to_bytes(32, "big"), b"header", b"", {
            number.to_bytes(4, "big") + bytes([i]): os.urandom(2000) for i in range(4)})
        time.sleep(pause)  # a node does a block's work between two commits


def wait_until(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_blocks_reach_the_database_file_without_the_writer_checkpointing(tmp_path):
    path = tmp_path / "chain.sqlite"
    db = ChainDatabase(path)
    try:
        assert db.conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0  # the writer never does it
        empty = path.stat().st_size
        write_blocks(db, 1, database.CHECKPOINT_EVERY_WRITES)
        # the checkpoint thread copied the log into the file while the writer's connection stays open
        wait_until(lambda: path.stat().st_size > empty + 100_000)
        reader = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            assert reader.execute("SELECT COUNT(*) FROM blocks").fetchone()[0] == database.CHECKPOINT_EVERY_WRITES
        finally:
            reader.close()
    finally:
        db.close()
    assert not (tmp_path / "chain.sqlite-wal").exists()  # closing checkpoints the rest and removes the log
    reopened = ChainDatabase(path)
    try:
        assert reopened.head() == (database.CHECKPOINT_EVERY_WRITES, database.CHECKPOINT_EVERY_WRITES.to_bytes(32, "big"))
    finally:
        reopened.close()


def test_the_log_starts_over_under_steady_writes(tmp_path, monkeypatch):
    """A passive checkpoint alone lets the log grow while blocks keep coming; past WAL_RESTART_FRAMES the
    checkpointer makes it start over."""
    monkeypatch.setattr(database, "CHECKPOINT_EVERY_WRITES", 4)
    monkeypatch.setattr(database, "WAL_RESTART_FRAMES", 64)
    db = ChainDatabase(tmp_path / "chain.sqlite")
    try:
        write_blocks(db, 1, 300, pause=0.002)  # about 1,200 pages of log if it never started over
        wal = tmp_path / "chain.sqlite-wal"
        assert wal.stat().st_size < 600 * 4096, wal.stat().st_size
        assert db.head()[0] == 300
    finally:
        db.close()
