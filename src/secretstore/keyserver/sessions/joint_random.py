"""The joint random sharing both signing protocols run (`crypto/signing.py` for the math), and what they share
besides: the signers run Pedersen-committed dealings (shares dealer -> receiver directly), then reveal their Feldman
commitments, and each signer checks what it received and sums its shares. Schnorr deals one sharing (the nonce),
ECDSA four (nonce k, blind u and two degree-2t zero-sharings). What a signer does with its sums, and how the master
combines the answers, is the signing kind's (`signing_schnorr`, `signing_ecdsa`); the session table, the message
types and the master's rounds up to that point are shared and live here once.

Messages: sign_init (with the kind), sign_deal (master -> signer: deal now), sign_share (dealer -> receiver),
sign_reveal, sign_verify, sign_abort.
"""

from __future__ import annotations

import abc
import asyncio
import logging
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, ClassVar

from ...crypto import Address, CryptoError, Public, ServerKeyId
from ...crypto import math as m
from ...crypto import signing as sg
from ..net import ClusterError, PeerUnavailable
from ..storage import KeyShare
from .core import (BAD_REQUEST, CONSENSUS_UNREACHABLE, FAILED, SESSION_TIMEOUT, STEP_TIMEOUT, SessionContext,
                   SessionError, ThresholdProtocol, failure_code, failure_reason, named, parse_ids, parse_point,
                   parse_scalar, scalar_hex)

log = logging.getLogger(__name__)

Step = Callable[[dict], Awaitable[dict[Address, dict]]]  # one request to every signer of a session, their answers


def parse_hash(text: Any) -> bytes:
    if not isinstance(text, str) or not text.startswith("0x") or len(text) != 66:
        raise SessionError("message_hash: expected 32 bytes of hex", BAD_REQUEST)
    try:
        return bytes.fromhex(text[2:])
    except ValueError:
        raise SessionError("message_hash: not hex", BAD_REQUEST) from None


class SignersFailed(Exception):
    """A signing attempt failed; `culprits` are the signers to leave out of the next one."""

    def __init__(self, culprits: dict[Address, str], code: str, message: str | None = None) -> None:
        super().__init__(message or named(culprits))
        self.culprits, self.code = culprits, code


@dataclass
class SigningState:
    kind: str  # "schnorr" | "ecdsa"
    share: KeyShare
    message_hash: bytes
    participants: list[Address]
    h: Public
    dealings: list[sg.Dealing]  # Schnorr: nonce; ECDSA: nonce k, blind u, zero-sharings z, z'
    started: float = field(default_factory=time.monotonic)
    received: dict[Address, list[int]] = field(default_factory=dict)
    sums: list[int] | None = None
    nonce_public: Public | None = None

    def __repr__(self) -> str:
        return f"SigningState({self.kind}, {self.share.key_id.hex()})"


class JointRandomSharing(ThresholdProtocol):
    """The signer's side of every signing session up to its own contribution, for the kinds registered with it."""

    HANDLERS = {"sign_init": "_sign_init", "sign_deal": "_sign_deal", "sign_share": "_sign_share",
                "sign_reveal": "_sign_reveal", "sign_verify": "_sign_verify", "sign_abort": "_sign_abort"}

    def __init__(self, context: SessionContext) -> None:
        super().__init__(context)
        self.sessions: dict[str, SigningState] = {}
        self.kinds: dict[str, SigningKind] = {}
        context.router.track_sessions(self.sessions)

    def add_kind(self, kind: SigningKind) -> None:
        self.kinds[kind.KIND] = kind

    def state(self, body: dict) -> SigningState:
        state = self.sessions.get(body.get("session"))  # type: ignore[arg-type]
        if state is None:
            raise SessionError("unknown or expired signing session")
        return state

    def end(self, session: str) -> None:
        self.sessions.pop(session, None)

    async def _sign_init(self, peer: Address, body: dict) -> dict:
        ctx = self.ctx
        key_id = ServerKeyId.from_hex(body.get("key_id", ""), "key_id")
        kind = body.get("kind")
        signing = self.kinds.get(kind) if isinstance(kind, str) else None
        if signing is None:
            raise SessionError("unknown signature kind", BAD_REQUEST)
        session = body.get("session")
        if not isinstance(session, str) or not 16 <= len(session) <= 64 or session in self.sessions:
            raise SessionError("bad session id")
        message_hash = parse_hash(body.get("message_hash"))
        participants = parse_ids(body.get("participants"))
        share = ctx.negotiated_share(key_id, body.get("version"))
        t = share.threshold
        needed = signing.signers_needed(t)
        if len(participants) != needed or not set(participants) <= set(share.holders) \
                or ctx.self_id not in participants:
            raise SessionError(f"{kind} signing needs {needed} holders of the key, including this server")
        await ctx.authorize(key_id, body)
        h = m.derived_point(b"signing" + session.encode() + b"".join(bytes(p) for p in participants))
        self.sessions[session] = SigningState(kind, share, message_hash, participants, h,
                                              [sg.Dealing.new(d, z) for d, z in signing.dealing_specs(t)])
        return {}

    async def _sign_deal(self, peer: Address, body: dict) -> dict:
        """Send every signer its shares of this server's dealings, with Pedersen commitments, directly."""
        state = self.state(body)
        pedersen = [[p.hex() for p in d.pedersen(state.h)] for d in state.dealings]
        cluster = self.ctx.cluster
        assert cluster is not None

        async def deal(to: Address) -> None:
            x = m.id_number(to)
            parts = []
            for d, commitments in zip(state.dealings, pedersen):
                share, blinding = d.share_for(x)
                parts.append({"share": scalar_hex(share), "blinding": scalar_hex(blinding), "pedersen": commitments})
            await cluster.request(to, {"type": "sign_share", "session": body["session"], "parts": parts},
                                  timeout=STEP_TIMEOUT)

        async with asyncio.TaskGroup() as tasks:
            for participant in state.participants:
                tasks.create_task(deal(participant))
        return {}

    async def _sign_share(self, peer: Address, body: dict) -> dict:
        state = self.state(body)
        if peer not in state.participants or peer in state.received:
            raise SessionError("dealer is not a signer of this session or dealt twice")
        parts = body.get("parts")
        if not isinstance(parts, list) or len(parts) != len(state.dealings):
            raise SessionError("wrong number of dealt shares")
        x = m.id_number(self.ctx.self_id)
        received = []
        for part, own in zip(parts, state.dealings):
            if not isinstance(part, dict):
                raise SessionError("malformed dealt share")
            share = parse_scalar(part.get("share"), "share")
            blinding = parse_scalar(part.get("blinding"), "blinding")
            pedersen = [parse_point(c, "commitment") for c in part.get("pedersen", [])]
            if not sg.verify_dealt_share(share, blinding, x, pedersen, state.h, own.degree):
                raise SessionError(f"share from {peer.hex()} does not match its commitments")
            received.append(share)
        state.received[peer] = received
        return {}

    async def _sign_reveal(self, peer: Address, body: dict) -> dict:
        state = self.state(body)
        missing = [p.hex() for p in state.participants if p not in state.received]
        if missing:
            raise SessionError(f"no shares received from {', '.join(missing)}")
        return {"feldman": [[p.hex() for p in d.feldman()] for d in state.dealings]}

    async def _sign_verify(self, peer: Address, body: dict) -> dict:
        """Check every dealer's revealed commitments against what it sent, sum the shares, and give this signer's
        public contribution (the kind's: the Schnorr partial signature, or k_i·u_i + z_i for ECDSA)."""
        state = self.state(body)
        if state.sums is not None:
            raise SessionError("this signing session is past its verification step")
        feldman = body.get("feldman")
        if not isinstance(feldman, dict) or set(feldman) != {p.hex() for p in state.participants}:
            raise SessionError("Feldman commitments of every signer are needed")
        x = m.id_number(self.ctx.self_id)
        sums = [0] * len(state.dealings)
        nonce_parts = []
        for dealer in state.participants:
            revealed = feldman[dealer.hex()]
            if not isinstance(revealed, list) or len(revealed) != len(state.dealings):
                raise SessionError("wrong number of Feldman commitment lists")
            for i, (own, commitments) in enumerate(zip(state.dealings, revealed)):
                points = [parse_point(c, "feldman commitment") for c in commitments]
                if not sg.verify_revealed(state.received[dealer][i], x, points, own.degree, own.zero):
                    raise SessionError(f"commitments of {dealer.hex()} do not match the share it sent")
                sums[i] = (sums[i] + state.received[dealer][i]) % m.N
                if i == 0:
                    nonce_parts.append(points)
        nonce_public = sg.joint_public(nonce_parts)
        return self.kinds[state.kind].contribute(body["session"], state, sums, nonce_public)

    async def _sign_abort(self, peer: Address, body: dict) -> dict:
        self.sessions.pop(body.get("session"), None)  # type: ignore[arg-type]
        return {}


class SigningKind(ThresholdProtocol, abc.ABC):
    """A threshold signature over the joint random sharing: how many signers, which dealings, what a signer
    contributes with its sums, and how the master combines the contributions. The master's retries and the shared
    rounds are here."""

    KIND: ClassVar[str]

    def __init__(self, context: SessionContext, joint: JointRandomSharing) -> None:
        super().__init__(context)
        self.joint = joint
        joint.add_kind(self)

    @staticmethod
    @abc.abstractmethod
    def signers_needed(threshold: int) -> int:
        """How many holders sign together, for a key of this threshold."""

    @staticmethod
    @abc.abstractmethod
    def dealing_specs(threshold: int) -> list[tuple[int, bool]]:
        """(degree, zero-sharing) of each dealing, in the order the signer's sums come in."""

    @abc.abstractmethod
    def contribute(self, session: str, state: SigningState, sums: list[int], nonce_public: Public) -> dict:
        """The signer's answer to sign_verify, from its sums of the checked dealings."""

    @abc.abstractmethod
    async def combine(self, share: KeyShare, signers: list[Address], message_hash: bytes, nonce_public: Public,
                      revealed: dict[Address, dict], verified: dict[Address, dict], each: Step) -> bytes:
        """The master's signature from the signers' sign_verify answers (more rounds through `each` if needed),
        checked against the server key public."""

    def _faulty_partial(self, partial: int) -> int:
        if self.ctx.faults is not None and self.ctx.faults.corrupts("sign"):
            return (partial + 1) % m.N  # fault injection: a wrong partial signature
        return partial

    # -------------------------------------------------------------------------------------------- master side
    async def sign(self, key_id: ServerKeyId, request_signature: str, message_hash: bytes,
                   among: list[Address]) -> bytes:
        """Threshold signing with the server key; the result is checked against the server key public before it is
        returned. Signers that fail are left out and the session runs again while enough remain."""
        kind = self.KIND
        assert self.ctx.cluster is not None
        if len(message_hash) != 32:
            raise SessionError("the message hash must be 32 bytes", BAD_REQUEST)
        share = self.ctx.own_share(key_id)
        await self.ctx.check_requester(key_id, request_signature)
        needed = self.signers_needed(share.threshold)
        candidates = self.ctx.connected_holders(share, among)
        if len(candidates) < needed:
            raise SessionError(
                f"consensus unreachable: {kind} signing with threshold {share.threshold} needs {needed} key servers "
                f"holding the key, {len(candidates)} connected (of {len(share.holders)} holders)",
                CONSENSUS_UNREACHABLE)
        culprits: dict[Address, str] = {}
        last: BaseException | None = None
        while True:
            pool = [c for c in candidates if c not in culprits]
            if len(pool) < needed:
                reason = failure_reason(last) if last is not None else "not enough signers"
                raise SessionError(f"{kind} signing failed: {reason}"
                                   + (f"; left out: {named(culprits)}" if culprits else ""),
                                   failure_code(last) if last is not None else CONSENSUS_UNREACHABLE)
            try:
                return await self._sign_attempt(share, request_signature, message_hash, pool[:needed])
            except SignersFailed as exc:
                # a decision (access denied, unknown key...) is the answer; anything else: retry without them
                if exc.code != FAILED or not exc.culprits:
                    raise SessionError(f"{kind} signing failed: {exc}", exc.code) from None
                log.warning("signing: signers left out, retrying with others", extra={
                    "key": key_id.hex(), "kind": kind, "left_out": named(exc.culprits)})
                culprits.update(exc.culprits)
                last = exc

    async def _sign_attempt(self, share: KeyShare, request_signature: str, message_hash: bytes,
                            signers: list[Address]) -> bytes:
        """One signing session among `signers`; SignersFailed names the signers to leave out of the next one."""
        cluster = self.ctx.cluster
        assert cluster is not None
        key_id = share.key_id
        session = secrets.token_hex(16)

        async def each(body: dict) -> dict[Address, dict]:
            results = await asyncio.gather(*(cluster.request(p, dict(body, session=session), timeout=STEP_TIMEOUT)
                                             for p in signers), return_exceptions=True)
            failed = {p: r for p, r in zip(signers, results) if isinstance(r, BaseException)}
            for r in failed.values():
                if not isinstance(r, Exception):
                    raise r
            if failed:
                # the unreachable ones first: a dealer whose deal to a dead signer failed is not to blame
                gone = {p: failure_reason(r) for p, r in failed.items() if isinstance(r, PeerUnavailable)}
                raise SignersFailed(gone or {p: failure_reason(r) for p, r in failed.items()},
                                    failure_code(BaseExceptionGroup("signing", list(failed.values()))))
            return {p: r for p, r in zip(signers, results)}  # type: ignore[misc]

        try:
            async with asyncio.timeout(SESSION_TIMEOUT):
                await each({"type": "sign_init", "kind": self.KIND, "key_id": key_id.hex(),
                            "version": share.version.hex(), "participants": [p.hex() for p in signers],
                            "message_hash": "0x" + message_hash.hex(), "request_signature": request_signature})
                await each({"type": "sign_deal"})
                revealed = await each({"type": "sign_reveal"})
                verified = await each({"type": "sign_verify",
                                       "feldman": {p.hex(): r["feldman"] for p, r in revealed.items()}})
                nonces = {r["nonce_public"] for r in verified.values()}
                if len(nonces) != 1:
                    raise SessionError("signers computed different nonces")
                nonce_public = parse_point(nonces.pop(), "nonce_public")
                return await self.combine(share, signers, message_hash, nonce_public, revealed, verified, each)
        except (SignersFailed, ExceptionGroup, ClusterError, TimeoutError, SessionError, CryptoError,
                KeyError) as exc:
            for p in signers:
                if cluster.is_connected(p):
                    try:
                        await cluster.request(p, {"type": "sign_abort", "session": session}, timeout=2)
                    except (ClusterError, TimeoutError):
                        pass
            if isinstance(exc, SignersFailed):
                raise
            raise SessionError(f"{self.KIND} signing failed: {failure_reason(exc)}", failure_code(exc)) from None
