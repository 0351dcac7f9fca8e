from itertools import combinations

import pytest
from hypothesis import given, settings, strategies as st

from secretstore.crypto import CryptoError, Secret
from secretstore.crypto import math as m
from secretstore.crypto.keys import N

scalars = st.integers(min_value=1, max_value=N - 1)


@settings(max_examples=25)
@given(scalars, scalars)
def test_point_ops_are_homomorphic(a, b):
    assert m.point_add(m.base_mul(a), m.base_mul(b)) == m.base_mul(a + b) if (a + b) % N else True
    assert m.point_mul(m.base_mul(a), b) == m.base_mul(a * b % N)
    assert m.point_neg(m.base_mul(a)) == m.base_mul(N - a)


def test_infinity_is_an_error():
    g = m.base_mul(1)
    with pytest.raises(CryptoError, match="infinity"):
        m.point_add(g, m.point_neg(g))
    with pytest.raises(CryptoError):
        m.base_mul(N)


@settings(max_examples=10, deadline=None)
@given(st.integers(min_value=0, max_value=3), st.data())
def test_every_t_plus_one_subset_reconstructs_and_no_t_subset_does(t, data):
    n = t + 2
    xs = [m.id_number(Secret.random().public().address()) for _ in range(n)]
    secret = m.random_scalar()
    shares = m.make_shares(secret, t, xs)
    for subset in combinations(xs, t + 1):
        assert m.reconstruct({x: shares[x] for x in subset}) == secret
    for subset in combinations(xs, t):
        if subset:
            assert m.reconstruct({x: shares[x] for x in subset}) != secret


def test_commitments_catch_a_wrong_share():
    poly = m.random_polynomial(2)
    blind = m.random_polynomial(2)
    h = m.derived_point(b"session-1")
    x = 12345
    share, blind_share = m.poly_eval(poly, x), m.poly_eval(blind, x)
    pedersen, feldman = m.pedersen_and_feldman(poly, blind, h)
    assert feldman == m.feldman_commitments(poly)
    assert pedersen == [m.point_add(m.base_mul(a), m.point_mul(h, b)) for a, b in zip(poly, blind)]  # a·G + b·H
    assert m.verify_feldman(share, x, feldman)
    assert m.verify_pedersen(share, blind_share, x, pedersen, h)
    assert not m.verify_feldman(share + 1, x, feldman)
    assert not m.verify_pedersen(share, blind_share + 1, x, pedersen, h)
    assert m.derived_point(b"session-1") == h != m.derived_point(b"session-2")


@pytest.mark.parametrize("t", [0, 1, 2, 4])
def test_public_shares_are_checked_against_feldman_commitments_all_at_once(t):
    poly = m.random_polynomial(t)
    commitments = m.feldman_commitments(poly)
    xs = [m.id_number(Secret.random().public().address()) for _ in range(2 * t + 1)]
    public_shares = {x: m.base_mul(m.poly_eval(poly, x)) for x in xs}
    assert m.feldman_consistent(commitments, public_shares)
    for wrong in xs:  # any one share off the polynomial is caught, wherever it is
        assert not m.feldman_consistent(commitments, {**public_shares, wrong: m.point_add(public_shares[wrong],
                                                                                           m.base_mul(1))})
    other = m.feldman_commitments(m.random_polynomial(t))
    assert not m.feldman_consistent(other, public_shares)
    assert not m.feldman_consistent([m.point_add(commitments[0], m.base_mul(1)), *commitments[1:]], public_shares)


@pytest.mark.parametrize("t", [0, 1, 2, 3])
def test_plain_and_shadow_decryption_math(t):
    """Simulated retrieval: t+1 nodes' shadows recover M, in plain and shadow mode, for odd and even t."""
    xs = [m.id_number(Secret.random().public().address()) for _ in range(t + 2)]
    server_secret = m.random_scalar()
    shares = m.make_shares(server_secret, t, xs)
    server_key = m.base_mul(server_secret)
    document_key = m.base_mul(m.random_scalar())
    k = m.random_scalar()
    common, encrypted = m.base_mul(k), m.point_add(document_key, m.point_mul(server_key, k))

    participants = xs[: t + 1]
    alpha = m.random_scalar()
    shadows = {x: m.node_shadow(shares[x], x, participants) for x in participants}
    joint = m.joint_shadow_point(m.node_shadow_point(s, alpha, common) for s in shadows.values())
    assert m.decrypt_with_joint_shadow(t, alpha, encrypted, joint) == document_key

    deltas = {x: m.random_scalar() for x in participants}
    joint = m.joint_shadow_point(m.node_shadow_point(shadows[x], alpha, common, deltas[x]) for x in participants)
    decrypted_secret = m.decrypt_with_joint_shadow(t, alpha, encrypted, joint)
    coefficients = [m.decrypt_shadow_coefficient(shadows[x], deltas[x]) for x in participants]
    recovered = m.decrypt_with_shadow_coefficients(decrypted_secret, m.common_shadow_point(t, common), coefficients)
    assert recovered == document_key
    # one shadow short is not enough
    short = m.decrypt_with_shadow_coefficients(decrypted_secret, m.common_shadow_point(t, common), coefficients[1:])
    assert short != document_key


def test_schnorr_single_and_threshold():
    secret = Secret.random()
    digest = bytes(range(32))
    signature = m.schnorr_sign(secret, digest)
    assert m.schnorr_verify(secret.public(), digest, signature)
    assert not m.schnorr_verify(secret.public(), bytes(32), signature)

    t, xs = 1, [11, 22, 33]
    x_shares = m.make_shares(secret.to_int(), t, xs)
    k = m.random_scalar()
    k_shares = m.make_shares(k, t, xs)
    c = m.schnorr_challenge(digest, m.base_mul(k))
    partials = {x: m.schnorr_partial(k_shares[x], x_shares[x], c) for x in xs[: t + 1]}
    assert m.schnorr_verify(secret.public(), digest, (c, m.schnorr_combine(partials)))
