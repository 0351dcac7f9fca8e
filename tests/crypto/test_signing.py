"""Threshold Schnorr and ECDSA simulated in-process: t-of-n runs of the exact local computations the key servers do.

Signatures are checked by code that does not come from the module under test: ECDSA by coincurve (verify and recover),
Schnorr by the formula of interop.md §3 written out below with coincurve and pycryptodome's keccak.
"""

import secrets

import coincurve
import pytest
from Crypto.Hash import keccak

from secretstore.crypto import Public, Secret
from secretstore.crypto import math as m
from secretstore.crypto import signing as sg
from secretstore.crypto.keys import N


def independent_schnorr_verify(public: bytes, message_hash: bytes, c: int, s: int) -> bool:
    """R' = s·G + c·Y; valid iff keccak256(message_hash ‖ R'.x) mod n == c."""
    y = coincurve.PublicKey(b"\x04" + public)
    c_y = y.multiply(c.to_bytes(32, "big"))
    r = c_y if s == 0 else coincurve.PublicKey.combine_keys([coincurve.PublicKey.from_secret(s.to_bytes(32, "big")), c_y])
    rx = r.format(compressed=False)[1:33]
    return int.from_bytes(keccak.new(digest_bits=256, data=message_hash + rx).digest(), "big") % N == c


def independent_ecdsa_check(public: Public, message_hash: bytes, signature: bytes) -> bool:
    """coincurve verify of the raw hash (low s enforced) and recovery to the same public."""
    r, s, v = signature[:32], signature[32:64], signature[64]
    der = coincurve.ecdsa.cdata_to_der(coincurve.ecdsa.deserialize_compact(r + s))
    pk = coincurve.PublicKey(b"\x04" + bytes(public))
    if not pk.verify(der, message_hash, hasher=None):
        return False
    recovered = coincurve.PublicKey.from_signature_and_message(signature, message_hash, hasher=None)
    return recovered.format(compressed=False)[1:] == bytes(public) and v <= 3


class Node:
    def __init__(self) -> None:
        self.x = m.id_number(Secret.random().public().address())


def dkg_key(t: int, nodes: list[Node]) -> tuple[Public, dict[int, int]]:
    """A server key shared among the nodes (shares as the real DKG leaves them)."""
    secret = m.random_scalar()
    return m.base_mul(secret), m.make_shares(secret, t, [n.x for n in nodes])


def joint_sharings(signers: list[Node], specs: list[tuple[int, bool]], h: Public):
    """Run the two-phase joint sharing among the signers for several (degree, zero) specs at once.
    Returns (shares per spec: x -> share, publics per spec or None for zero-sharings)."""
    dealings = {n.x: [sg.Dealing.new(d, z) for d, z in specs] for n in signers}
    received = {n.x: [] for n in signers}  # receiver -> list of (dealer, spec index, share, blinding)
    for dealer, ds in dealings.items():
        for i, d in enumerate(ds):
            pedersen = d.pedersen(h)
            for n in signers:
                share, blinding = d.share_for(n.x)
                assert sg.verify_dealt_share(share, blinding, n.x, pedersen, h, d.degree)
                received[n.x].append((dealer, i, share))
    shares = [{} for _ in specs]
    for x, items in received.items():
        for dealer, i, share in items:
            d = dealings[dealer][i]
            assert sg.verify_revealed(share, x, d.feldman(), d.degree, d.zero)
            shares[i][x] = (shares[i].get(x, 0) + share) % N
    publics = [None if z else sg.joint_public(dealings[x][i].feldman() for x in dealings)
               for i, (_, z) in enumerate(specs)]
    return shares, publics


def threshold_schnorr(t, nodes, key_shares, message_hash):
    signers = nodes[: t + 1]
    h = m.derived_point(secrets.token_bytes(16))
    (nonce,), (nonce_public,) = joint_sharings(signers, [(t, False)], h)
    c = m.schnorr_challenge(message_hash, nonce_public)
    xs = [n.x for n in signers]
    s = sg.schnorr_combine_weighted(sg.schnorr_partial_signature(nonce[x], key_shares[x], c, x, xs) for x in xs)
    return c, s


def threshold_ecdsa(t, nodes, key_shares, message_hash):
    signers = nodes[: 2 * t + 1]
    h = m.derived_point(secrets.token_bytes(16))
    (k, u, z, z2), (nonce_public, _, _, _) = joint_sharings(
        signers, [(t, False), (t, False), (2 * t, True), (2 * t, True)], h)
    xs = [n.x for n in signers]
    inverse_blind = sg.ecdsa_inverse_blind({x: sg.ecdsa_inverse_blind_share(k[x], u[x], z[x]) for x in xs})
    r = sg.ecdsa_r(nonce_public)
    msg = sg.message_scalar(message_hash)
    partials = {x: sg.ecdsa_partial_signature(u[x], inverse_blind, r, key_shares[x], msg, z2[x]) for x in xs}
    return sg.ecdsa_combine(partials, nonce_public)


@pytest.mark.parametrize("t,n", [(0, 1), (1, 3), (2, 5), (3, 7)])
def test_threshold_schnorr_verifies_by_the_independent_formula(t, n):
    nodes = [Node() for _ in range(n)]
    public, shares = dkg_key(t, nodes)
    for _ in range(3):
        message_hash = secrets.token_bytes(32)
        c, s = threshold_schnorr(t, nodes, shares, message_hash)
        assert independent_schnorr_verify(bytes(public), message_hash, c, s)
        assert m.schnorr_verify(public, message_hash, (c, s))
        other = secrets.token_bytes(32)
        assert not independent_schnorr_verify(bytes(public), other, c, s)
        assert not m.schnorr_verify(public, other, (c, s))
        assert sg.schnorr_from_bytes(sg.schnorr_to_bytes((c, s))) == (c, s)
        # a different key does not verify either
        assert not independent_schnorr_verify(bytes(m.base_mul(m.random_scalar())), message_hash, c, s)


def test_schnorr_from_a_different_signer_subset_also_verifies():
    t, nodes = 1, [Node() for _ in range(4)]
    public, shares = dkg_key(t, nodes)
    message_hash = secrets.token_bytes(32)
    c, s = threshold_schnorr(t, list(reversed(nodes)), shares, message_hash)
    assert independent_schnorr_verify(bytes(public), message_hash, c, s)


def test_schnorr_with_too_few_signers_does_not_verify():
    t, nodes = 2, [Node() for _ in range(5)]
    public, shares = dkg_key(t, nodes)
    message_hash = secrets.token_bytes(32)
    c, s = threshold_schnorr(t - 1, nodes, shares, message_hash)  # only t shares: the wrong secret
    assert not independent_schnorr_verify(bytes(public), message_hash, c, s)


@pytest.mark.parametrize("t,n", [(0, 1), (1, 3), (2, 5), (3, 7)])
def test_threshold_ecdsa_verifies_and_recovers_the_server_key(t, n):
    nodes = [Node() for _ in range(n)]
    public, shares = dkg_key(t, nodes)
    for _ in range(4):
        message_hash = secrets.token_bytes(32)
        signature = threshold_ecdsa(t, nodes, shares, message_hash)
        assert len(signature) == 65 and signature[64] <= 3
        assert int.from_bytes(signature[32:64], "big") <= N // 2  # low s
        assert independent_ecdsa_check(public, message_hash, signature)
        assert sg.ecdsa_verify(public, message_hash, signature)
        assert sg.ecdsa_recover(signature, message_hash) == public
        assert sg.ecdsa_recover(signature[:64] + bytes([signature[64] + 27]), message_hash) == public
        other = secrets.token_bytes(32)
        assert not independent_ecdsa_check(public, other, signature)
        assert not sg.ecdsa_verify(public, other, signature)


def test_ecdsa_with_only_t_plus_one_signers_does_not_verify():
    """The s-shares lie on a degree-2t polynomial: t + 1 of them (Schnorr's count) give the wrong s."""
    t, nodes = 2, [Node() for _ in range(5)]
    public, shares = dkg_key(t, nodes)
    message_hash = secrets.token_bytes(32)
    signers = nodes[: t + 1]
    h = m.derived_point(b"too-few")
    (k, u, z, z2), (nonce_public, _, _, _) = joint_sharings(
        signers, [(t, False), (t, False), (2 * t, True), (2 * t, True)], h)
    xs = [n.x for n in signers]
    inverse_blind = sg.ecdsa_inverse_blind({x: sg.ecdsa_inverse_blind_share(k[x], u[x], z[x]) for x in xs})
    r = sg.ecdsa_r(nonce_public)
    partials = {x: sg.ecdsa_partial_signature(u[x], inverse_blind, r, shares[x], sg.message_scalar(message_hash), z2[x])
                for x in xs}
    assert not independent_ecdsa_check(public, message_hash, sg.ecdsa_combine(partials, nonce_public))


def test_low_s_normalisation_flips_v():
    """Both the negated and the original s describe the same signature: after normalisation v still recovers Y."""
    secret = m.random_scalar()
    public = m.base_mul(secret)
    message_hash = secrets.token_bytes(32)
    seen_high = False
    for _ in range(16):
        k = m.random_scalar()
        nonce_public = m.base_mul(k)
        s = m.inverse(k) * (sg.message_scalar(message_hash) + sg.ecdsa_r(nonce_public) * secret) % N
        seen_high |= s > N // 2
        signature = sg.ecdsa_combine({1: s}, nonce_public)  # one point: the constant polynomial s
        assert independent_ecdsa_check(public, message_hash, signature)
    assert seen_high  # 16 draws: the chance of never seeing a high s is 2^-16


def test_dealt_shares_that_do_not_match_commitments_are_caught():
    h = m.derived_point(b"h")
    for zero in (False, True):
        d = sg.Dealing.new(2, zero)
        x = 777
        share, blinding = d.share_for(x)
        pedersen, feldman = d.pedersen(h), d.feldman()
        assert sg.verify_dealt_share(share, blinding, x, pedersen, h, 2)
        assert not sg.verify_dealt_share(share + 1, blinding, x, pedersen, h, 2)
        assert not sg.verify_dealt_share(share, blinding, x, pedersen, h, 3)  # wrong degree
        assert sg.verify_revealed(share, x, feldman, 2, zero)
        assert not sg.verify_revealed(share + 1, x, feldman, 2, zero)
    # a "zero-sharing" whose constant is not zero is caught by the reveal check
    cheat = sg.Dealing.new(2, zero=False)
    share, _ = cheat.share_for(5)
    assert not sg.verify_revealed(share, 5, m.feldman_commitments(cheat.poly[1:]), 2, True)


def test_signature_parsing_rejects_bad_input():
    with pytest.raises(ValueError):
        sg.schnorr_from_bytes(b"\x00" * 63)
    with pytest.raises(ValueError):
        sg.schnorr_from_bytes(b"\x00" * 64)  # c = 0
    with pytest.raises(ValueError):
        sg.ecdsa_recover(b"\x01" * 64 + b"\x05", b"\x00" * 32)
    assert not sg.ecdsa_verify(m.base_mul(1), b"\x00" * 32, b"\x00" * 65)
