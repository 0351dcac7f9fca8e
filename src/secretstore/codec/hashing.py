"""Hashes of the Substrate storage and block formats."""

from __future__ import annotations

import hashlib

import xxhash


def blake2_256(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=32).digest()


def blake2_128(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=16).digest()


def twox64(data: bytes) -> bytes:
    return twox64_seeded(data, 0)


def twox128(data: bytes) -> bytes:
    return twox64_seeded(data, 0) + twox64_seeded(data, 1)


def twox256(data: bytes) -> bytes:
    return b"".join(twox64_seeded(data, seed) for seed in range(4))


def twox64_seeded(data: bytes, seed: int) -> bytes:
    return xxhash.xxh64(data, seed=seed).intdigest().to_bytes(8, "little")


def blake2_128_concat(data: bytes) -> bytes:
    return blake2_128(data) + data


def twox64_concat(data: bytes) -> bytes:
    return twox64(data) + data


def identity(data: bytes) -> bytes:
    return data


# Metadata name of each storage hasher -> function; "concat" hashers keep the key readable after the hash.
STORAGE_HASHERS = {
    "Blake2_128": blake2_128,
    "Blake2_256": blake2_256,
    "Blake2_128Concat": blake2_128_concat,
    "Twox128": twox128,
    "Twox256": twox256,
    "Twox64Concat": twox64_concat,
    "Identity": identity,
}

# How many hash bytes precede the raw key for the hashers that append it (None: the key cannot be recovered).
HASHER_PREFIX_LEN = {"Blake2_128Concat": 16, "Twox64Concat": 8, "Identity": 0}


def storage_prefix(pallet: str, item: str) -> bytes:
    return twox128(pallet.encode()) + twox128(item.encode())
