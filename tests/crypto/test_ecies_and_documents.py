import pytest
from hypothesis import given, settings, strategies as st

from secretstore.crypto import DecryptionError, Secret
from secretstore.crypto import document, ecies

SPEC_SECRET = Secret.from_hex("0x" + "01" * 32)
SPEC_ENCRYPTED_KEY = bytes.fromhex(
    "0417cabe0bd7df0a8f1034d5fe99e8ce7ef81e5802acdb33ef977b2812a9f0cac5d8fd9cc534d75bb6079f56d6b6392ef8b73abfaf636eec"
    "54bebd5ac1ae6ae2457cff98454326d6ec711da12fc08c4dbf9f3565d8254aa9f89c8f94685d322cc1babca189cebe624ba3e8b3cc8bc2b4"
    "6a979fcf5b2995a2de148d9e4cf15ff79b7eb2ed1e7d7aa1ccc4929676c114f4df39687c9a4bd44bc3c6f4e1a23a718113ccc4d1a2fde29e"
    "5a625322db642f573c")
SPEC_MESSAGE = bytes.fromhex("61a0328d8735d1fd0b2230d78b07a7f364a361c5bd11ecb8d485771af2")


def test_spec_worked_example_decrypts_exactly():
    assert document.decrypt_message(SPEC_ENCRYPTED_KEY, SPEC_SECRET, SPEC_MESSAGE) == b"Hello, world!"


def test_spec_key_refuses_other_secret_and_tampering():
    with pytest.raises(DecryptionError, match="authentication"):
        document.decrypt_message(SPEC_ENCRYPTED_KEY, Secret.from_hex("02" * 32), SPEC_MESSAGE)
    tampered = bytearray(SPEC_ENCRYPTED_KEY)
    tampered[100] ^= 0x40
    with pytest.raises(DecryptionError):
        document.decrypt_message(bytes(tampered), SPEC_SECRET, SPEC_MESSAGE)
    with pytest.raises(DecryptionError, match="too short"):
        ecies.decrypt(SPEC_SECRET, SPEC_ENCRYPTED_KEY[:100])
    with pytest.raises(DecryptionError, match="shorter"):
        document.decrypt_document(SPEC_SECRET.public(), b"short")


@settings(max_examples=30)
@given(st.binary(max_size=300))
def test_ecies_round_trip_and_length(plaintext):
    secret = Secret.random()
    ciphertext = ecies.encrypt(secret.public(), plaintext)
    assert len(ciphertext) == 113 + len(plaintext)
    assert ecies.decrypt(secret, ciphertext) == plaintext


@settings(max_examples=15)
@given(st.binary(max_size=200))
def test_document_key_generate_encrypt_decrypt(message):
    server_key = Secret.random().public()
    author = Secret.random()
    generated = document.generate_document_key(server_key, author.public())
    encrypted = document.encrypt_message(generated.encrypted_key, author, message)
    assert len(encrypted) == len(message) + 16
    assert document.decrypt_message(generated.encrypted_key, author, encrypted) == message


def test_concat_kdf_counter_blocks():
    import hashlib
    z = bytes(range(32))
    assert ecies.concat_kdf(z, 40) == (hashlib.sha256(b"\0\0\0\1" + z).digest() +
                                       hashlib.sha256(b"\0\0\0\2" + z).digest())[:40]
