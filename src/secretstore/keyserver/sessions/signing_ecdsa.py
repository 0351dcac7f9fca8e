"""Threshold ECDSA signing by 2t + 1 holders of a server key (r ‖ s ‖ v): four joint random sharings (nonce k, blind
u, two degree-2t zero-sharings z and z'). Signers publish k_i·u_i + z_i, the master interpolates k·u, each returns
u_i(k·u)⁻¹(m + r·x_i) + z'_i and the master interpolates s (low s, v flipped). z' is ours: without it the unmasked
product shares would let the collector factor the key out of two signatures. Masked partials cannot be checked one
by one, so a bad signature is an error naming nobody.

Messages: those of the joint random sharing (`joint_random`; sign_verify's answer carries the blinded product),
then sign_ecdsa_partial.
"""

from __future__ import annotations

from ...crypto import Address, Public
from ...crypto import math as m
from ...crypto import signing as sg
from ..storage import KeyShare
from .core import SessionError, parse_scalar, scalar_hex
from .joint_random import SigningKind, SigningState, Step


class EcdsaSigning(SigningKind):
    KIND = "ecdsa"
    HANDLERS = {"sign_ecdsa_partial": "_sign_ecdsa_partial"}

    @staticmethod
    def signers_needed(threshold: int) -> int:
        return 2 * threshold + 1

    @staticmethod
    def dealing_specs(threshold: int) -> list[tuple[int, bool]]:
        return [(threshold, False), (threshold, False), (2 * threshold, True), (2 * threshold, True)]  # k, u, z, z'

    # --------------------------------------------------------------------------------------- participant side
    def contribute(self, session: str, state: SigningState, sums: list[int], nonce_public: Public) -> dict:
        state.sums, state.nonce_public = sums, nonce_public
        return {"nonce_public": nonce_public.hex(),
                "blinded": scalar_hex(sg.ecdsa_inverse_blind_share(sums[0], sums[1], sums[2]))}

    async def _sign_ecdsa_partial(self, peer: Address, body: dict) -> dict:
        state = self.joint.state(body)
        if state.kind != self.KIND or state.sums is None or state.nonce_public is None:
            raise SessionError("the signing session is not at the ECDSA partial signature step")
        self.joint.end(body["session"])  # one partial signature per nonce
        inverse_blind = parse_scalar(body.get("inverse_blind"), "inverse_blind")
        if inverse_blind == 0:
            raise SessionError("bad inverse blind")
        k, u, z, z2 = state.sums
        partial = sg.ecdsa_partial_signature(u, inverse_blind, sg.ecdsa_r(state.nonce_public),
                                             state.share.secret_share, sg.message_scalar(state.message_hash), z2)
        return {"partial": scalar_hex(self._faulty_partial(partial))}

    # -------------------------------------------------------------------------------------------- master side
    async def combine(self, share: KeyShare, signers: list[Address], message_hash: bytes, nonce_public: Public,
                      revealed: dict[Address, dict], verified: dict[Address, dict], each: Step) -> bytes:
        inverse_blind = sg.ecdsa_inverse_blind(
            {m.id_number(p): parse_scalar(r["blinded"], "blinded") for p, r in verified.items()})
        partials = await each({"type": "sign_ecdsa_partial", "inverse_blind": scalar_hex(inverse_blind)})
        result = sg.ecdsa_combine(
            {m.id_number(p): parse_scalar(r["partial"], "partial") for p, r in partials.items()}, nonce_public)
        if not sg.ecdsa_verify(share.public, message_hash, result) \
                or sg.ecdsa_recover(result, message_hash) != share.public:
            # masked ECDSA partials cannot be checked one by one: nobody can be named
            raise SessionError("the combined ECDSA signature does not verify")
        return result
