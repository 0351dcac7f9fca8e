"""Threshold Schnorr signing by t + 1 holders of a server key (c ‖ s): one joint random sharing (the nonce), then each
signer returns λ_i(k_i − c·x_i). A partial is checked as s_i·G = λ_i·(K_i − c·P_i), so a signer whose partial fails
is named and left out of the next attempt.

Messages: those of the joint random sharing (`joint_random`); sign_verify's answer carries the partial signature.
"""

from __future__ import annotations

import logging

from ...crypto import Address, CryptoError, Public
from ...crypto import math as m
from ...crypto import signing as sg
from ..storage import KeyShare
from .core import FAILED, SessionError, parse_point, parse_scalar, public_share, scalar_hex
from .joint_random import SignersFailed, SigningKind, SigningState, Step

log = logging.getLogger(__name__)


class SchnorrSigning(SigningKind):
    KIND = "schnorr"

    @staticmethod
    def signers_needed(threshold: int) -> int:
        return threshold + 1

    @staticmethod
    def dealing_specs(threshold: int) -> list[tuple[int, bool]]:
        return [(threshold, False)]  # the nonce

    # --------------------------------------------------------------------------------------- participant side
    def contribute(self, session: str, state: SigningState, sums: list[int], nonce_public: Public) -> dict:
        # each nonce share is used for exactly one partial signature: the state goes now
        self.joint.end(session)
        x = m.id_number(self.ctx.self_id)
        xs = [m.id_number(p) for p in state.participants]
        challenge = m.schnorr_challenge(state.message_hash, nonce_public)
        partial = sg.schnorr_partial_signature(sums[0], state.share.secret_share, challenge, x, xs)
        return {"nonce_public": nonce_public.hex(), "partial": scalar_hex(self._faulty_partial(partial))}

    # -------------------------------------------------------------------------------------------- master side
    async def combine(self, share: KeyShare, signers: list[Address], message_hash: bytes, nonce_public: Public,
                      revealed: dict[Address, dict], verified: dict[Address, dict], each: Step) -> bytes:
        partials = {p: parse_scalar(r["partial"], "partial") for p, r in verified.items()}
        s = sg.schnorr_combine_weighted(partials.values())
        signature = (m.schnorr_challenge(message_hash, nonce_public), s)
        if not m.schnorr_verify(share.public, message_hash, signature):
            raise SignersFailed(self._bad_partials(share, signers, revealed, partials, signature[0]), FAILED,
                                "the combined Schnorr signature does not verify")
        return sg.schnorr_to_bytes(signature)

    def _bad_partials(self, share: KeyShare, signers: list[Address], revealed: dict[Address, dict],
                      partials: dict[Address, int], challenge: int) -> dict[Address, str]:
        """The signers whose partial fails s_i·G == λ_i·(K_i − c·P_i), with K_i the joint nonce's commitment at x_i
        (from the revealed Feldman commitments) and P_i the public share (from the key's commitments)."""
        commitments = self.ctx.storage.commitments(share)
        if commitments is None:
            return {}
        xs = [m.id_number(p) for p in signers]
        bad = {}
        for p in signers:
            x = m.id_number(p)
            try:
                nonce_at = m.point_add(*(m.commitment_at([parse_point(c, "feldman") for c in r["feldman"][0]], x)
                                         for r in revealed.values()))
                holder_public = public_share(tuple(commitments), x)
                expected = m.point_mul(m.point_sub(nonce_at, m.point_mul(holder_public, challenge)),
                                       m.lagrange_at_zero(x, xs))
                ok = m.base_mul(partials[p]) == expected
            except (SessionError, CryptoError, KeyError, IndexError, TypeError, ValueError):
                ok = False
            if not ok:
                bad[p] = "partial signature fails its check against the public share"
                log.warning("signing: faulty partial signature", extra={
                    "key": share.key_id.hex(), "signer": p.hex(), "check": "schnorr_partial"})
        return bad
