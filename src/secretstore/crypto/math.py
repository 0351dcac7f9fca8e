"""Threshold mathematics of the Secret Store on secp256k1.

Scalars are Python ints reduced mod n (cheap); every point operation goes through libsecp256k1 via coincurve. The point at
infinity has no `Public` form: an operation whose result would be infinity raises `CryptoError` (with random inputs that
happens with negligible probability, so it signals a protocol fault or hostile input).
"""

from __future__ import annotations

import functools
import secrets
from typing import Iterable, Mapping, Sequence

import coincurve

from .keys import N, P, Address, CryptoError, InvalidPublic, Public, Secret, keccak256

# ------------------------------------------------------------------------------------------------------- scalars


def reduce(value: int) -> int:
    return value % N


def random_scalar() -> int:
    """Uniform in 1..n-1."""
    return secrets.randbelow(N - 1) + 1


def inverse(value: int) -> int:
    value %= N
    if value == 0:
        raise CryptoError("zero has no inverse mod n")
    return pow(value, -1, N)


def _scalar_bytes(k: int) -> bytes:
    k %= N
    if k == 0:
        raise CryptoError("multiplication by zero gives the point at infinity")
    return k.to_bytes(32, "big")


# -------------------------------------------------------------------------------------------------------- points


def base_mul(k: int) -> Public:
    """k·G."""
    return Public.from_coincurve(coincurve.PublicKey.from_secret(_scalar_bytes(k)))


GENERATOR = base_mul(1)


def point_mul(point: Public, k: int) -> Public:
    """k·point (for G, libsecp256k1's precomputed tables: 39 µs instead of 69 µs here)."""
    if point == GENERATOR:
        return base_mul(k)
    return Public.from_coincurve(point.to_coincurve().multiply(_scalar_bytes(k)))


def point_add(*points: Public) -> Public:
    """Sum of points."""
    if not points:
        raise CryptoError("cannot sum an empty set of points")
    if len(points) == 1:
        return points[0]
    try:
        return Public.from_coincurve(coincurve.PublicKey.combine_keys([p.to_coincurve() for p in points]))
    except ValueError:
        raise CryptoError("the sum of points is the point at infinity") from None


def column_sums(encoded: bytes, width: int) -> list[Public]:
    """Rows of `width` points, each 64 bytes X||Y, back to back in `encoded`: the sum of each column. Each point is
    parsed once straight into libsecp256k1's form, without a `Public` of its own: a batched generation sums n rows
    of t + 1 commitments per key at every receiver, and the wrapper cost more than the curve. InvalidPublic for a
    point off the curve, CryptoError for a sum at infinity."""
    if width < 1 or not encoded or len(encoded) % (64 * width):
        raise CryptoError("expected whole rows of 64-byte points")
    try:
        points = [coincurve.PublicKey(b"\x04" + encoded[i:i + 64]) for i in range(0, len(encoded), 64)]
    except ValueError:
        raise InvalidPublic("not a point on the secp256k1 curve") from None
    try:
        return [Public.from_coincurve(coincurve.PublicKey.combine_keys(points[k::width])) for k in range(width)]
    except ValueError:
        raise CryptoError("the sum of points is the point at infinity") from None


def point_neg(point: Public) -> Public:
    """-point: the same X with Y reflected (field arithmetic only, no curve operation)."""
    raw = bytes(point)
    y = (P - int.from_bytes(raw[32:], "big")) % P
    return Public(raw[:32] + y.to_bytes(32, "big"))


def point_sub(a: Public, b: Public) -> Public:
    return point_add(a, point_neg(b))


def multi_mul(terms: Iterable[tuple[Public, int]]) -> Public:
    """Σ k_i·P_i, skipping zero coefficients (and the multiplication by one)."""
    return point_add(*(p if k % N == 1 else point_mul(p, k) for p, k in terms if k % N))


def derived_point(tag: bytes) -> Public:
    """A point with no known discrete logarithm relative to G, fixed by `tag` (hash-and-increment onto the curve).

    Used as Pedersen's second generator H: nobody can know log_G(H), since H comes out of a hash.
    """
    counter = 0
    while True:
        x = keccak256(b"secretstore/derived-point" + tag + counter.to_bytes(4, "big"))
        try:
            return Public.from_coincurve(coincurve.PublicKey(b"\x02" + x))
        except ValueError:
            counter += 1


# --------------------------------------------------------------------------------------------------- polynomials


def id_number(key_server: Address) -> int:
    """The x coordinate of a key server in polynomial math: its 20-byte id as a big-endian integer mod n."""
    value = int.from_bytes(bytes(key_server), "big") % N
    if value == 0:
        raise CryptoError("key server id maps to zero")
    return value


def random_polynomial(degree: int, constant: int | None = None) -> list[int]:
    """Coefficients a_0..a_degree; a_0 = constant when given."""
    if degree < 0:
        raise CryptoError("polynomial degree must be non-negative")
    coefficients = [random_scalar() for _ in range(degree + 1)]
    if constant is not None:
        coefficients[0] = constant % N
    return coefficients


def poly_eval(coefficients: Sequence[int], x: int) -> int:
    result = 0
    for a in reversed(coefficients):
        result = (result * x + a) % N
    return result


def feldman_commitments(coefficients: Sequence[int]) -> list[Public]:
    """A_k = a_k·G."""
    return [base_mul(a) for a in coefficients]


def commitment_at(commitments: Sequence[Public], x: int) -> Public:
    """Σ_k C_k·x^k: the commitment to the polynomial's value at x."""
    terms = []
    power = 1
    for c in commitments:
        terms.append((c, power))
        power = power * x % N
    return multi_mul(terms)


def verify_feldman(share: int, x: int, commitments: Sequence[Public]) -> bool:
    """share·G == Σ A_k·x^k."""
    return share % N != 0 and base_mul(share) == commitment_at(commitments, x)


def feldman_consistent(commitments: Sequence[Public], public_shares: Mapping[int, Public]) -> bool:
    """Whether every public share X_j = s_j·G (at x_j) lies on the polynomial the Feldman commitments fix, in one
    check for all: Σ r_j·X_j == Σ_k (Σ_j r_j·x_j^k)·A_k with random 128-bit weights r_j, so n + t + 1 multiplications
    instead of n·t. A wrong share passes only if its weight is guessed: probability 2^-128."""
    weights = {x: secrets.randbits(128) | 1 for x in public_shares}
    columns = []
    for k in range(len(commitments)):
        columns.append(sum(r * pow(x, k, N) for x, r in weights.items()) % N)
    try:
        return multi_mul((public_shares[x], r) for x, r in weights.items()) == multi_mul(zip(commitments, columns))
    except CryptoError:  # a sum at infinity: a coincidence no honest sharing produces
        return False


def pedersen_and_feldman(a: Sequence[int], b: Sequence[int], h: Public) -> tuple[list[Public], list[Public]]:
    """Both commitments to a polynomial a (blinded by b): C_k = A_k + b_k·H over A_k = a_k·G, so the Feldman
    commitments cost no multiplication of their own. A dealer still reveals the A_k only after every Pedersen
    commitment is fixed."""
    feldman = feldman_commitments(a)
    return [point_add(ak, point_mul(h, bk)) for ak, bk in zip(feldman, b, strict=True)], feldman


def verify_pedersen(share: int, blinding_share: int, x: int, commitments: Sequence[Public], h: Public,
                    share_point: Public | None = None) -> bool:
    """s·G + s'·H == Σ C_k·x^k (`share_point`: s·G, when the caller has it already)."""
    try:
        opened = point_add(base_mul(share) if share_point is None else share_point, point_mul(h, blinding_share))
        return opened == commitment_at(commitments, x)
    except CryptoError:
        return False


# ------------------------------------------------------------------------------------------------------ sharing


def lagrange_at_zero(x_i: int, xs: Iterable[int]) -> int:
    """The Lagrange coefficient of node x_i at 0 over the set xs: Π_{j≠i} x_j / (x_j − x_i)."""
    return _lagrange_at_zero(x_i, tuple(xs))


@functools.lru_cache(maxsize=4096)  # public values of the key server ids; the same few sets of them come back
def _lagrange_at_zero(x_i: int, xs: tuple[int, ...]) -> int:
    numerator, denominator = 1, 1
    for x_j in xs:
        if x_j == x_i:
            continue
        numerator = numerator * x_j % N
        denominator = denominator * (x_j - x_i) % N
    return numerator * inverse(denominator) % N


def make_shares(secret: int, threshold: int, xs: Sequence[int]) -> dict[int, int]:
    """Shamir shares of `secret` for the nodes xs; any threshold + 1 of them reconstruct it."""
    if len(set(xs)) != len(xs) or any(x % N == 0 for x in xs):
        raise CryptoError("node id numbers must be distinct and non-zero")
    if not 0 <= threshold < len(xs):
        raise CryptoError("threshold must satisfy 0 <= t < number of nodes")
    poly = random_polynomial(threshold, secret)
    return {x: poly_eval(poly, x) for x in xs}


def reconstruct(shares: Mapping[int, int]) -> int:
    """The secret from t + 1 or more shares (only tests and offline tools ever do this)."""
    xs = list(shares)
    return sum(s * lagrange_at_zero(x, xs) for x, s in shares.items()) % N


# ---------------------------------------------------------------------------------------------- decryption (§6)


def node_shadow(share: int, x_i: int, participants: Iterable[int]) -> int:
    """λ_i·s_i with the sign-flipped coefficient Π_{j≠i} x_j / (x_i − x_j), so Σ over t+1 nodes = (−1)^t·secret."""
    xs = list(participants)
    flips = sum(1 for x_j in xs if x_j != x_i)  # one sign change per factor (x_i − x_j) = −(x_j − x_i)
    coefficient = lagrange_at_zero(x_i, xs)
    return share * (N - coefficient if flips % 2 else coefficient) % N


def node_shadow_point(shadow: int, access_key: int, common_point: Public, decrypt_shadow: int | None = None) -> Public:
    """Q_i = (λ_i s_i · α)·C, or (λ_i s_i · δ_i · α)·C in shadow mode."""
    k = shadow * access_key % N
    if decrypt_shadow is not None:
        k = k * decrypt_shadow % N
    return point_mul(common_point, k)


def joint_shadow_point(points: Iterable[Public]) -> Public:
    return point_add(*points)


def decrypt_with_joint_shadow(threshold: int, access_key: int, encrypted_point: Public, joint_shadow: Public) -> Public:
    """M = E + α⁻¹·Q when t is odd, E − α⁻¹·Q when t is even (plain mode) — in shadow mode the result is D."""
    unblinded = point_mul(joint_shadow, inverse(access_key))
    if threshold % 2:
        return point_add(encrypted_point, unblinded)
    return point_sub(encrypted_point, unblinded)


def common_shadow_point(threshold: int, common_point: Public) -> Public:
    """C' = −C when t is odd, C when t is even."""
    return point_neg(common_point) if threshold % 2 else common_point


def decrypt_shadow_coefficient(shadow: int, delta: int) -> int:
    """What node i sends (encrypted) to the requester: (δ_i − 1)·λ_i·s_i."""
    return (delta - 1) * shadow % N


def decrypt_with_shadow_coefficients(decrypted_secret: Public, common_shadow: Public,
                                     coefficients: Iterable[int]) -> Public:
    """The requester's last step: M = D + (Σ coefficients)·C'."""
    total = sum(coefficients) % N
    if total == 0:
        return decrypted_secret
    return point_add(decrypted_secret, point_mul(common_shadow, total))


# ---------------------------------------------------------------------------------------------------- Schnorr (§7)


def schnorr_challenge(message_hash: bytes, nonce_public: Public) -> int:
    """c = keccak256(message_hash || R.x) mod n."""
    if len(message_hash) != 32:
        raise CryptoError("message hash must be 32 bytes")
    c = int.from_bytes(keccak256(message_hash + bytes(nonce_public)[:32]), "big") % N
    if c == 0:
        raise CryptoError("degenerate Schnorr challenge")
    return c


def schnorr_partial(nonce_share: int, secret_share: int, challenge: int) -> int:
    """One node's part s_i = k_i − c·x_i (combined with Lagrange weights over the signers)."""
    return (nonce_share - challenge * secret_share) % N


def schnorr_combine(partials: Mapping[int, int]) -> int:
    """s = Σ L_i·s_i over the signing nodes' id numbers."""
    return reconstruct(partials)


def schnorr_sign(secret: Secret, message_hash: bytes, nonce: int | None = None) -> tuple[int, int]:
    """(c, s) with s = k − c·x."""
    k = nonce if nonce is not None else random_scalar()
    c = schnorr_challenge(message_hash, base_mul(k))
    return c, schnorr_partial(k, secret.to_int(), c)


def schnorr_verify(public: Public, message_hash: bytes, signature: tuple[int, int]) -> bool:
    """R = s·G + c·Y, accepted when keccak256(m || R.x) == c."""
    c, s = signature
    if not (0 < c < N and 0 <= s < N):
        return False
    try:
        nonce_public = point_mul(public, c) if s == 0 else point_add(base_mul(s), point_mul(public, c))
        return schnorr_challenge(message_hash, nonce_public) == c
    except CryptoError:
        return False
