import pytest

from secretstore.crypto import Address, Secret, ServerKeyId
from secretstore.keyserver.storage import DocumentKeyAlreadyStored, KeyAlreadyExists, KeyShare, KeyStorage


def share(key_id):
    return KeyShare(key_id, Address(b"\x01" * 20), 1, Secret.random().public(), b"v" * 16,
                    (Address(b"\x02" * 20), Address(b"\x03" * 20)), 12345)


def test_shares_survive_reopening_and_document_keys_are_write_once(tmp_path):
    key_id = ServerKeyId(b"\x42" * 32)
    storage = KeyStorage(tmp_path / "keys.sqlite")
    storage.insert(share(key_id))
    with pytest.raises(KeyAlreadyExists):
        storage.insert(share(key_id))
    c, e = Secret.random().public(), Secret.random().public()
    storage.store_document_key(key_id, c, e)
    with pytest.raises(DocumentKeyAlreadyStored):
        storage.store_document_key(key_id, e, c)
    storage.close()
    reopened = KeyStorage(tmp_path / "keys.sqlite")
    got = reopened.get(key_id)
    assert got.secret_share == 12345 and got.common_point == c and got.encrypted_point == e
    assert "12345" not in repr(got)
    assert reopened.key_ids() == [key_id]
