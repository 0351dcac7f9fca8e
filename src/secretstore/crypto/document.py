"""Document keys and the document encryption format of the Parity Secret Store.

A document key is a curve point M; its symmetric key is the first 16 bytes of M's 64-byte form. Documents are
AES-128-CTR encrypted with a random iv *appended* to the ciphertext.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Iterable

from . import ecies
from .keys import DecryptionError, N, Public, Secret
from .math import base_mul, decrypt_with_shadow_coefficients, point_add, point_mul, random_scalar

IV_LENGTH = 16


def symmetric_key(document_key: Public) -> bytes:
    return bytes(document_key)[:16]


def encrypt_document(document_key: Public, plaintext: bytes) -> bytes:
    iv = secrets.token_bytes(IV_LENGTH)
    return ecies.aes128_ctr(symmetric_key(document_key), iv, plaintext) + iv


def decrypt_document(document_key: Public, encrypted: bytes) -> bytes:
    if len(encrypted) < IV_LENGTH:
        raise DecryptionError("encrypted document is shorter than its 16-byte iv")
    return ecies.aes128_ctr(symmetric_key(document_key), encrypted[-IV_LENGTH:], encrypted[:-IV_LENGTH])


@dataclass(frozen=True)
class GeneratedDocumentKey:
    """What `generate-document-key` produces: C and E go on chain (store_document_key), the encrypted key stays with
    the author so it can encrypt documents locally."""

    common_point: Public
    encrypted_point: Public
    encrypted_key: bytes
    document_key: Public


def generate_document_key(server_key: Public, author: Public) -> GeneratedDocumentKey:
    """M random; C = k·G; E = M + k·Y; the author's copy of M is ECIES-encrypted to the author."""
    document_key = base_mul(random_scalar())
    k = random_scalar()
    common_point = base_mul(k)
    encrypted_point = point_add(document_key, point_mul(server_key, k))
    return GeneratedDocumentKey(common_point, encrypted_point, ecies.encrypt(author, bytes(document_key)), document_key)


def decrypt_document_key(encrypted_key: bytes, secret: Secret) -> Public:
    raw = ecies.decrypt(secret, encrypted_key)
    try:
        return Public(raw)
    except ValueError:
        raise DecryptionError("the decrypted document key is not a curve point") from None


def encrypt_message(encrypted_key: bytes, author_secret: Secret, message: bytes) -> bytes:
    return encrypt_document(decrypt_document_key(encrypted_key, author_secret), message)


def decrypt_message(encrypted_key: bytes, requester_secret: Secret, encrypted_message: bytes) -> bytes:
    return decrypt_document(decrypt_document_key(encrypted_key, requester_secret), encrypted_message)


def decrypt_shadow_scalar(encrypted_shadow: bytes, requester_secret: Secret) -> int:
    raw = ecies.decrypt(requester_secret, encrypted_shadow)
    if len(raw) != 32:
        raise DecryptionError(f"a decrypt shadow is a 32-byte scalar, got {len(raw)} bytes")
    value = int.from_bytes(raw, "big")
    if value >= N:
        raise DecryptionError("decrypt shadow out of range")
    return value


def recover_document_key(common_shadow_point: Public, decrypted_secret: Public, encrypted_shadows: Iterable[bytes],
                         requester_secret: Secret) -> Public:
    """M = D + (Σ decrypted shadows)·C' from a document key shadow retrieval."""
    coefficients = [decrypt_shadow_scalar(s, requester_secret) for s in encrypted_shadows]
    if not coefficients:
        raise DecryptionError("at least one decrypt shadow is needed")
    return decrypt_with_shadow_coefficients(decrypted_secret, common_shadow_point, coefficients)


def shadow_decrypt_message(common_shadow_point: Public, decrypted_secret: Public, encrypted_shadows: Iterable[bytes],
                           requester_secret: Secret, encrypted_message: bytes) -> bytes:
    key = recover_document_key(common_shadow_point, decrypted_secret, encrypted_shadows, requester_secret)
    return decrypt_document(key, encrypted_message)
