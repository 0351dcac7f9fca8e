import pytest

from secretstore.crypto import Address, Secret, ServerKeyId
from secretstore.keyserver.storage import DocumentKeyAlreadyStored, KeyAlreadyExists, KeyShare, KeyStorage

SELF = Secret(b"\x05" * 32)  # the key server secret the storage is sealed with


def share(key_id):
    return KeyShare(key_id, Address(b"\x01" * 20), 1, Secret.random().public(), b"v" * 16,
                    (Address(b"\x02" * 20), Address(b"\x03" * 20)), 12345)


def test_shares_survive_reopening_and_document_keys_are_write_once(tmp_path):
    key_id = ServerKeyId(b"\x42" * 32)
    storage = KeyStorage(tmp_path / "keys.sqlite", SELF)
    storage.insert(share(key_id))
    with pytest.raises(KeyAlreadyExists):
        storage.insert(share(key_id))
    c, e = Secret.random().public(), Secret.random().public()
    storage.store_document_key(key_id, c, e)
    with pytest.raises(DocumentKeyAlreadyStored):
        storage.store_document_key(key_id, e, c)
    storage.close()
    reopened = KeyStorage(tmp_path / "keys.sqlite", SELF)
    got = reopened.get(key_id)
    assert got.secret_share == 12345 and got.common_point == c and got.encrypted_point == e
    assert "12345" not in repr(got)
    assert reopened.key_ids() == [key_id]


def test_concurrent_durable_inserts_are_grouped_and_a_duplicate_fails_alone(tmp_path):
    import asyncio
    import secrets

    storage = KeyStorage(tmp_path / "keys.sqlite", SELF)
    existing = ServerKeyId(b"\x07" * 32)
    storage.insert(share(existing))
    keys = [ServerKeyId(secrets.token_bytes(32)) for _ in range(40)]

    async def run():
        return await asyncio.gather(*(storage.insert_durably(share(k)) for k in keys + [existing]),
                                    return_exceptions=True)

    results = asyncio.run(run())
    assert results[:-1] == [None] * len(keys)
    assert isinstance(results[-1], KeyAlreadyExists)
    storage.close()
    reopened = KeyStorage(tmp_path / "keys.sqlite", SELF)  # on disk, not only in a connection's cache
    assert sorted(reopened.key_ids()) == sorted(keys + [existing])
    assert reopened.get(existing).secret_share == 12345


def test_reads_are_kept_only_until_a_write_changes_them(tmp_path):
    """`get` answers repeated reads from memory; every kind of write is seen by the next read."""
    import asyncio
    import dataclasses

    storage = KeyStorage(tmp_path / "keys.sqlite", SELF)
    key_id, other = ServerKeyId(b"\x01" * 32), ServerKeyId(b"\x02" * 32)
    assert storage.get(key_id) is None and storage.get(key_id) is None  # a miss is kept too ...
    storage.insert(share(key_id))
    assert storage.get(key_id).secret_share == 12345  # ... and dropped by the insert
    assert storage.get(key_id) is storage.get(key_id)
    c, e = Secret.random().public(), Secret.random().public()
    storage.store_document_key(key_id, c, e)
    assert storage.get(key_id).common_point == c
    asyncio.run(storage.insert_durably(share(other)))  # the grouped writer (another connection, a worker thread)
    assert storage.get(other) is not None
    storage.stage_pending(b"m" * 32, dataclasses.replace(share(key_id), version=b"w" * 16, secret_share=777))
    assert storage.get(key_id).secret_share == 12345  # pending until promoted
    storage.promote(b"m" * 32)
    assert storage.get(key_id).secret_share == 777 and storage.get(key_id).version == b"w" * 16
    storage.delete(other)
    assert storage.get(other) is None
    storage.delete_all()
    assert storage.get(key_id) is None
