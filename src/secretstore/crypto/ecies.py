"""ECIES as parity-crypto does it, byte for byte.

Layout: 0x04 || R (64) || iv (16) || AES-128-CTR ciphertext || HMAC-SHA256 tag (32), with the concat-KDF (SHA-256) of
the X coordinate of r·P giving the AES key (first 16 bytes) and the MAC key (SHA-256 of the next 16 bytes). The shared MAC
data Parity uses for the Secret Store is two zero bytes.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from Crypto.Cipher import AES

from .keys import DecryptionError, InvalidPublic, Public, Secret
from .math import point_mul, random_scalar, base_mul

DEFAULT_SHARED_MAC = b"\x00\x00"
OVERHEAD = 1 + 64 + 16 + 32


def concat_kdf(z: bytes, length: int) -> bytes:
    out = b""
    counter = 1
    while len(out) < length:
        out += hashlib.sha256(counter.to_bytes(4, "big") + z).digest()
        counter += 1
    return out[:length]


def aes128_ctr(key: bytes, iv: bytes, data: bytes) -> bytes:
    """AES-128-CTR where the 16-byte iv is the whole initial counter block (big-endian increment)."""
    return AES.new(key, AES.MODE_CTR, nonce=b"", initial_value=iv).encrypt(data)


def _keys(shared_x: bytes) -> tuple[bytes, bytes]:
    key = concat_kdf(shared_x, 32)
    return key[:16], hashlib.sha256(key[16:32]).digest()


def encrypt(recipient: Public, plaintext: bytes, shared_mac: bytes = DEFAULT_SHARED_MAC) -> bytes:
    r = random_scalar()
    ephemeral = base_mul(r)
    ekey, mkey = _keys(bytes(point_mul(recipient, r))[:32])
    iv = secrets.token_bytes(16)
    ciphertext = aes128_ctr(ekey, iv, plaintext)
    tag = hmac.new(mkey, iv + ciphertext + shared_mac, hashlib.sha256).digest()
    return b"\x04" + bytes(ephemeral) + iv + ciphertext + tag


def decrypt(secret: Secret, data: bytes, shared_mac: bytes = DEFAULT_SHARED_MAC) -> bytes:
    if len(data) < OVERHEAD or data[0] != 0x04:
        raise DecryptionError("not an ECIES ciphertext (too short or bad prefix)")
    try:
        ephemeral = Public(data[1:65])
    except InvalidPublic:
        raise DecryptionError("ECIES ephemeral key is not a curve point") from None
    iv, ciphertext, tag = data[65:81], data[81:-32], data[-32:]
    ekey, mkey = _keys(bytes(point_mul(ephemeral, secret.to_int()))[:32])
    expected = hmac.new(mkey, iv + ciphertext + shared_mac, hashlib.sha256).digest()
    if not hmac.compare_digest(expected, tag):
        raise DecryptionError("ECIES authentication failed (wrong key or tampered ciphertext)")
    return aes128_ctr(ekey, iv, ciphertext)
