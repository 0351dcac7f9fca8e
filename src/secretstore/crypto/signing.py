"""Threshold signing mathematics: joint random sharings, Parity's Schnorr variant and threshold ECDSA.

Everything a key server computes locally during a signing session lives here, so the protocol can be checked in-process
(tests/crypto/test_signing.py) before it runs over the network. Scalars are ints mod n; points go through libsecp256k1.

Joint random sharing (the nonce "generation" of a signing session): every participant deals a random polynomial of the
requested degree (constant term zero for a zero-sharing) with Pedersen commitments first (hiding, so nobody can adapt
its polynomial to the others'), and only once every share is in reveals its Feldman commitments (see `Dealing`). A
participant's share is the sum of what it received; the joint public of a random sharing is the sum of the dealers' A_0.

Threshold ECDSA (Parity's scheme, 2t + 1 signers): shared nonce k and inverse-nonce blind u (degree t), zero-sharings
z, z' (degree 2t). Each signer publishes k_i·u_i + z_i, which lie on a degree-2t polynomial with constant k·u; the
master interpolates k·u (uniformly random, reveals nothing about k) and every signer gets a share of k⁻¹ as
w_i = u_i·(k·u)⁻¹. The s-shares w_i·(m + r·x_i) + z'_i lie on a degree-2t polynomial with constant
s = k⁻¹·(m + r·x). The second zero-sharing z' is our addition: without it the 2t + 1 unmasked product shares form a
polynomial that factors into w(X)·(m + r·x(X)), and two signatures would reveal the key to whoever collects them.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

import coincurve

from .keys import N, CryptoError, InvalidSignature, Public
from . import math as m

HALF_N = N // 2
GENERATOR = m.GENERATOR
SCHNORR_LENGTH = 64
ECDSA_LENGTH = 65


# ------------------------------------------------------------------------------------------- joint random sharing


@dataclass
class Dealing:
    """One dealer's contribution to a joint sharing: a polynomial and the blinding polynomial of its Pedersen
    commitments. A zero-sharing has constant term 0, so its Feldman commitments leave out A_0 (the point at infinity has
    no `Public` form) and receivers check their share against the remaining terms only, which proves the constant is 0."""

    degree: int
    zero: bool
    poly: list[int] = field(repr=False)
    blinding: list[int] = field(repr=False)

    @classmethod
    def new(cls, degree: int, zero: bool = False) -> "Dealing":
        return cls(degree, zero, m.random_polynomial(degree, 0 if zero else None), m.random_polynomial(degree))

    def share_for(self, x: int) -> tuple[int, int]:
        return m.poly_eval(self.poly, x), m.poly_eval(self.blinding, x)

    @functools.cached_property
    def _coefficient_points(self) -> list[Public | None]:
        """a_k·G (None for a zero-sharing's constant term): the Feldman commitments, and the Pedersen ones are made
        of them, so each is multiplied once."""
        return [None if a == 0 and k == 0 else m.base_mul(a) for k, a in enumerate(self.poly)]

    def pedersen(self, h: Public) -> list[Public]:
        """C_k = a_k·G + b_k·H (for a zero-sharing C_0 = b_0·H)."""
        return [m.point_mul(h, b) if a is None else m.point_add(a, m.point_mul(h, b))
                for a, b in zip(self._coefficient_points, self.blinding, strict=True)]

    def feldman(self) -> list[Public]:
        """A_k = a_k·G, from k = 1 for a zero-sharing."""
        points = self._coefficient_points[1:] if self.zero else self._coefficient_points
        return list(points)  # type: ignore[arg-type]


def verify_dealt_share(share: int, blinding: int, x: int, pedersen: Sequence[Public], h: Public, degree: int) -> bool:
    """Phase 1 check of what a dealer sent: s·G + s'·H == Σ C_k·x^k (s is 0 in a degree-0 zero-sharing)."""
    if len(pedersen) != degree + 1 or blinding % N == 0:
        return False
    try:
        left = m.multi_mul([(GENERATOR, share), (h, blinding)])
        return left == m.commitment_at(pedersen, x)
    except CryptoError:
        return False


def verify_revealed(share: int, x: int, feldman: Sequence[Public], degree: int, zero: bool) -> bool:
    """Phase 2 check: the dealer's revealed Feldman commitments match the share it sent."""
    if zero:
        if degree == 0:  # the zero polynomial: nothing to commit to
            return share % N == 0 and not feldman
        if len(feldman) != degree:
            return False
        return share % N != 0 and m.base_mul(share) == m.point_mul(m.commitment_at(feldman, x), x)
    return len(feldman) == degree + 1 and m.verify_feldman(share, x, feldman)


def joint_public(feldman_by_dealer: Iterable[Sequence[Public]]) -> Public:
    """The public of a joint random sharing: Σ over dealers of A_0."""
    return m.point_add(*(commitments[0] for commitments in feldman_by_dealer))


def interpolate_at_zero(points: Mapping[int, int]) -> int:
    """The constant term of the polynomial through the given points (degree < number of points)."""
    return m.reconstruct(points)


# ---------------------------------------------------------------------------------------------------- Schnorr


def schnorr_partial_signature(nonce_share: int, secret_share: int, challenge: int, x_i: int,
                              signers: Iterable[int]) -> int:
    """A signer's Lagrange-weighted part of s = k − c·x: λ_i·(k_i − c·x_i) over the signers' id numbers."""
    return m.lagrange_at_zero(x_i, signers) * m.schnorr_partial(nonce_share, secret_share, challenge) % N


def schnorr_combine_weighted(parts: Iterable[int]) -> int:
    return sum(parts) % N


def schnorr_to_bytes(signature: tuple[int, int]) -> bytes:
    """c ‖ s, 32 bytes each (Parity's serialization)."""
    c, s = signature
    return (c % N).to_bytes(32, "big") + (s % N).to_bytes(32, "big")


def schnorr_from_bytes(raw: bytes) -> tuple[int, int]:
    if len(raw) != SCHNORR_LENGTH:
        raise InvalidSignature(f"a Schnorr signature is {SCHNORR_LENGTH} bytes (c ‖ s), got {len(raw)}")
    c, s = int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
    if not (0 < c < N and 0 <= s < N):
        raise InvalidSignature("Schnorr signature values out of range")
    return c, s


# ------------------------------------------------------------------------------------------------------ ECDSA


def message_scalar(message_hash: bytes) -> int:
    """The message hash as ECDSA uses it (32 bytes, no extra hashing) reduced mod n."""
    if len(message_hash) != 32:
        raise CryptoError("message hash must be 32 bytes")
    return int.from_bytes(message_hash, "big") % N


def ecdsa_r(nonce_public: Public) -> int:
    r = nonce_public.x % N
    if r == 0:
        raise CryptoError("degenerate ECDSA nonce")
    return r


def ecdsa_inverse_blind_share(nonce_share: int, blind_share: int, zero_share: int) -> int:
    """k_i·u_i + z_i: a point of a degree-2t polynomial whose constant term is k·u."""
    return (nonce_share * blind_share + zero_share) % N


def ecdsa_inverse_blind(shares: Mapping[int, int]) -> int:
    """(k·u)⁻¹ from 2t + 1 published points."""
    return m.inverse(interpolate_at_zero(shares))


def ecdsa_partial_signature(blind_share: int, inverse_blind: int, r: int, secret_share: int, message: int,
                            zero_share: int) -> int:
    """w_i·(m + r·x_i) + z'_i with w_i = u_i·(k·u)⁻¹, a share of k⁻¹."""
    w = blind_share * inverse_blind % N
    return (w * (message + r * secret_share) + zero_share) % N


def ecdsa_combine(partials: Mapping[int, int], nonce_public: Public) -> bytes:
    """r ‖ s ‖ v from 2t + 1 s-shares: low s, v the recovery id (bit 0: R.y odd, bit 1: R.x ≥ n), flipped with s."""
    s = interpolate_at_zero(partials)
    if s == 0:
        raise CryptoError("degenerate ECDSA signature")
    r = ecdsa_r(nonce_public)
    v = (nonce_public.y & 1) | (2 if nonce_public.x >= N else 0)
    if s > HALF_N:
        s, v = N - s, v ^ 1
    return r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes([v])


def ecdsa_recover(signature: bytes, message_hash: bytes) -> Public:
    """The public key a 65-byte r ‖ s ‖ v signature of a raw 32-byte hash recovers to (v in 0..3 or 27..30)."""
    if len(signature) != ECDSA_LENGTH or len(message_hash) != 32:
        raise InvalidSignature("expected a 65-byte signature of a 32-byte hash")
    v = signature[64] - 27 if signature[64] >= 27 else signature[64]
    if not 0 <= v <= 3:
        raise InvalidSignature("recovery id out of range")
    try:
        point = coincurve.PublicKey.from_signature_and_message(signature[:64] + bytes([v]), message_hash, hasher=None)
    except ValueError:
        raise InvalidSignature("signature does not recover to a public key") from None
    return Public.from_coincurve(point)


def ecdsa_verify(public: Public, message_hash: bytes, signature: bytes) -> bool:
    """libsecp256k1 verification of r ‖ s (low s required, as libsecp256k1 does), raw hash."""
    if len(signature) != ECDSA_LENGTH or len(message_hash) != 32:
        return False
    try:
        der = coincurve.ecdsa.cdata_to_der(coincurve.ecdsa.deserialize_compact(signature[:64]))
        return public.to_coincurve().verify(der, message_hash, hasher=None)
    except (ValueError, TypeError):
        return False
