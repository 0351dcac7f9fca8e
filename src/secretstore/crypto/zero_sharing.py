"""Sharings of zero with Feldman commitments: what a proactive share refresh deals.

A dealer picks a polynomial f of degree t with f(0) = 0 and publishes A_k = a_k·G for k = 1..t (A_0 would be the
point at infinity, which has no `Public` form: it is left out, and with it any way to commit to another constant).
Adding f(x_j) to every holder's share re-randomises the sharing and keeps the secret.
"""

from __future__ import annotations

import secrets
from typing import Mapping, Sequence

from . import math as m
from .keys import CryptoError, Public


def zero_polynomial(degree: int) -> list[int]:
    """a_1..a_degree, random (a_0 = 0 is implied)."""
    return [m.random_scalar() for _ in range(degree)]


def zero_share(coefficients: Sequence[int], x: int) -> int:
    """f(x) for f(0) = 0 and the other coefficients given."""
    return m.poly_eval([0, *coefficients], x)


def zero_commitments(coefficients: Sequence[int]) -> list[Public]:
    return m.feldman_commitments(coefficients)


def zero_commitment_at(commitments: Sequence[Public], x: int) -> Public:
    """Σ_{k≥1} A_k·x^k: the committed value at x (A_1..A_t given)."""
    terms, power = [], x % m.N
    for c in commitments:
        terms.append((c, power))
        power = power * x % m.N
    return m.multi_mul(terms)


def on_zero_polynomial(value: int, x: int, commitments: Sequence[Public]) -> bool:
    """value·G == Σ_{k≥1} A_k·x^k: the share at x of the committed zero-constant polynomial. With no commitments
    (degree 0) the only such polynomial is zero itself."""
    if not commitments:
        return value % m.N == 0
    try:
        return value % m.N != 0 and m.base_mul(value) == zero_commitment_at(commitments, x)
    except CryptoError:  # a sum at infinity: no honest dealing gives one
        return False


def column_sums(dealings: Sequence[Sequence[Public]]) -> list[Public]:
    """The commitments of the sum of several dealers' polynomials: Σ_i A_{i,k} for each k."""
    return [m.point_add(*column) for column in zip(*dealings, strict=True)]


def zero_sum_consistent(sums: Sequence[Public], values: Mapping[int, Public]) -> bool:
    """Whether every public value V_j = v_j·G (at x_j) lies on the zero-constant polynomial the commitments A_1..A_t
    fix, in one check for all: Σ r_j·V_j == Σ_k (Σ_j r_j·x_j^k)·A_k with random 128-bit weights (n + t
    multiplications instead of n·(t + 1)); a wrong value passes only if its weight is guessed: probability 2^-128."""
    weights = {x: secrets.randbits(128) | 1 for x in values}
    columns = [sum(r * pow(x, k, m.N) for x, r in weights.items()) % m.N for k in range(1, len(sums) + 1)]
    try:
        return m.multi_mul((values[x], r) for x, r in weights.items()) == m.multi_mul(zip(sums, columns))
    except CryptoError:  # a sum at infinity: no honest sharing gives one
        return False
