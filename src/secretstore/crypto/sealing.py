"""Sealing secrets at rest: XChaCha20-Poly1305 (libsodium through PyNaCl) under a key derived from a key server's
own secret with HKDF-SHA256 and a purpose label of its own, so the sealing key is neither the secret itself nor any
key the cluster transport derives from it.

A sealed value is `version ‖ 24-byte nonce ‖ ciphertext ‖ 16-byte tag`. Nonces are random: 192 bits never collide in
practice, so nothing about past seals has to be kept. The caller's associated data binds a sealed value to where it
belongs (for shares: key id, key version and column), so a value moved to another place fails to open.
"""

from __future__ import annotations

import secrets

from Crypto.Hash import SHA256
from Crypto.Protocol.KDF import HKDF
from nacl.bindings import (
    crypto_aead_xchacha20poly1305_ietf_decrypt, crypto_aead_xchacha20poly1305_ietf_encrypt,
)
from nacl.exceptions import CryptoError as AeadError

from .keys import CryptoError, Secret

SEAL_FORMAT = 1
NONCE_BYTES = 24
TAG_BYTES = 16
OVERHEAD = 1 + NONCE_BYTES + TAG_BYTES
KEY_SERVER_STORAGE = b"secretstore/keyserver/storage-seal/v1"


class SealError(CryptoError):
    """A sealed value did not open: altered, damaged, moved, or sealed under another key."""


class Sealer:
    """Seals and opens values under one derived key. The key is derived once, here: per-value work is one AEAD."""

    __slots__ = ("_key",)

    def __init__(self, secret: Secret, purpose: bytes = KEY_SERVER_STORAGE) -> None:
        if not purpose:
            raise ValueError("a sealing key needs a purpose label")
        self._key = HKDF(secret.to_int().to_bytes(32, "big"), 32, b"", SHA256, context=purpose)

    def seal(self, plaintext: bytes, associated: bytes) -> bytes:
        nonce = secrets.token_bytes(NONCE_BYTES)
        return bytes([SEAL_FORMAT]) + nonce + crypto_aead_xchacha20poly1305_ietf_encrypt(
            plaintext, associated, nonce, self._key)

    def open(self, sealed: bytes, associated: bytes) -> bytes:
        if len(sealed) < OVERHEAD or sealed[0] != SEAL_FORMAT:
            raise SealError("not a sealed value of a known format")
        nonce = sealed[1:1 + NONCE_BYTES]
        try:
            return crypto_aead_xchacha20poly1305_ietf_decrypt(sealed[1 + NONCE_BYTES:], associated, nonce, self._key)
        except AeadError:
            raise SealError("sealed value failed its integrity check") from None

    def __repr__(self) -> str:
        return "Sealer(<hidden>)"

    __str__ = __repr__
