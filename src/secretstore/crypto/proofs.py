"""Chaum-Pedersen proofs of equal discrete logarithms (non-interactive, Fiat-Shamir with keccak256).

A key server proves that the point it contributes to a session was made with its key share, without revealing the
share: given its public share P = s·G (known to the master from the key's Feldman commitments), a proof that
Q = s·B for the session's base B. Used to check shadow points in document key retrieval.
"""

from __future__ import annotations

from . import math as m
from .keys import CryptoError, Public, keccak256

PROOF_LENGTH = 64  # c ‖ z


def _challenge(tag: bytes, *points: Public) -> int:
    return int.from_bytes(keccak256(tag + b"".join(bytes(p) for p in points)), "big") % m.N


def prove_dleq(secret: int, base1: Public, public1: Public, base2: Public, public2: Public,
               tag: bytes = b"secretstore/dleq") -> bytes:
    """A proof that public1 = secret·base1 and public2 = secret·base2."""
    r = m.random_scalar()
    c = _challenge(tag, base1, public1, base2, public2, m.point_mul(base1, r), m.point_mul(base2, r))
    z = (r + c * secret) % m.N
    return c.to_bytes(32, "big") + z.to_bytes(32, "big")


def verify_dleq(proof: bytes, base1: Public, public1: Public, base2: Public, public2: Public,
                tag: bytes = b"secretstore/dleq") -> bool:
    if len(proof) != PROOF_LENGTH:
        return False
    c, z = int.from_bytes(proof[:32], "big"), int.from_bytes(proof[32:], "big")
    if not (0 < c < m.N and 0 < z < m.N):
        return False
    try:
        a1 = m.point_sub(m.point_mul(base1, z), m.point_mul(public1, c))
        a2 = m.point_sub(m.point_mul(base2, z), m.point_mul(public2, c))
    except (CryptoError, ValueError):
        return False
    return c == _challenge(tag, base1, public1, base2, public2, a1, a2)
