import pytest

from secretstore.crypto import (
    Address, InvalidHex, InvalidPublic, InvalidSecret, InvalidSignature, KeyPair, Public, Secret, ServerKeyId, Signature,
    keccak256,
)
from secretstore.crypto.keys import N

SPEC_PUBLIC_01 = ("0x1b84c5567b126440995d3ed5aaba0565d71e1834604819ff9c17f5e9d5dd078f"
                  "70beaf8f588b541507fed6a642c5ab42dfdf8120a7f639de5122d47a69a8e8d1")


@pytest.mark.parametrize("byte, address", [
    (1, "0x1a642f0e3c3af545e7acbd38b07251b3990914f1"),
    (2, "0x5050a4f4b3f9338c3472dcc01a87c76a144b3c9c"),
    (3, "0x3325a78425f17a7e487eb5666b2bfd93abb06c70"),
    (4, "0xc48b812bb43401392c037381aca934f4069c0517"),
])
def test_spec_addresses(byte, address):
    assert Secret(bytes([byte]) * 32).public().address() == Address.from_hex(address)


def test_spec_public_and_hex_forms():
    public = Secret.from_hex("01" * 32).public()
    assert public.hex() == SPEC_PUBLIC_01
    assert Public.from_hex(SPEC_PUBLIC_01[2:]) == public


def test_keccak_is_not_sha3():
    assert keccak256(b"").hex() == "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"


def test_secret_never_shows_its_value():
    secret = Secret.from_hex("01" * 32)
    assert "0101" not in repr(secret) and "0101" not in str(secret)
    assert "0101" not in repr(KeyPair(secret))


@pytest.mark.parametrize("text, error, fragment", [
    ("0x" + "00" * 32, InvalidSecret, "range"),
    ("0x" + format(N, "064x"), InvalidSecret, "range"),
    ("0x" + "01" * 31, InvalidHex, "expected 32 bytes, got 31"),
    ("zz" * 32, InvalidHex, "not valid hex"),
    ("0x123", InvalidHex, "odd"),
])
def test_bad_secrets_are_named(text, error, fragment):
    with pytest.raises(error, match=fragment) as info:
        Secret.from_hex(text, name="--author-secret")
    assert "--author-secret" in str(info.value)


def test_off_curve_public_is_refused():
    raw = bytearray(bytes(Secret.random().public()))
    raw[-1] ^= 1
    with pytest.raises(InvalidPublic, match="curve"):
        Public(bytes(raw))
    with pytest.raises(InvalidPublic, match="--server-key"):
        Public.from_hex("00" * 64, name="--server-key")


def test_signature_recovers_signer_and_rejects_garbage():
    pair = KeyPair.generate()
    digest = keccak256(b"challenge")
    signature = pair.sign(digest)
    assert signature.recover(digest) == pair.public
    assert signature.verify(pair.public, digest)
    assert not signature.verify(pair.public, keccak256(b"other"))
    with pytest.raises(InvalidSignature):
        Signature(bytes(signature)[:64] + b"\x05")
    assert ServerKeyId(b"\x00" * 32).hex() == "0x" + "00" * 32
