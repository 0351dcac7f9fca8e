"""Document key retrieval: the master picks t + 1 holders, each checks access itself and returns its shadow point
with Chaum-Pedersen (DLEQ) proofs against its public share; the master checks them and combines. Chain requests run
in shadow mode and leave each participant a personal part (its decrypt shadow coefficient) to report on chain once
the chain names the requester's public key; direct (HTTP) requests run in "shadow" mode (decrypt shadows encrypted
to the requester) or "plain" mode (the master unblinds the document key and encrypts it to the requester).

Messages: shadow_part, shadow_report (master -> participants of a chain retrieval).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Callable

from ...crypto import Address, CryptoError, Public, ServerKeyId, ecies
from ...crypto import math as m
from ...crypto import proofs
from ..net import ClusterError
from ..storage import KeyShare
from .core import (ACCESS_DENIED, BAD_REQUEST, CONSENSUS_UNREACHABLE, FAILED, SESSION_TIMEOUT, STEP_TIMEOUT,
                   UNKNOWN_DOCUMENT_KEY, SessionContext, SessionError, ThresholdProtocol, failure_code,
                   failure_reason, key_rotation, named, parse_ids, parse_point, parse_scalar, public_share, scalar_hex)

log = logging.getLogger(__name__)

PERSONAL_PART_TTL = 120.0  # seconds a chain retrieval's shadow waits for its report, and a report for its request
MAX_PERSONAL_PARTS = 10_000  # chain retrievals prepared at once on one server
GENERATOR = m.GENERATOR


def shadow_base(common_point: Public, access_key: int, x: int, xs: list[int]) -> Public:
    """B_i = (λ'_i·α)·C: a holder's shadow point is s_i·B_i (plain) or (s_i·δ_i)·B_i (shadow mode)."""
    return m.point_mul(common_point, m.node_shadow(1, x, xs) * access_key % m.N)


def check_shadow_part(commitments: list[Public] | None, holder: Address, xs: list[int], access_key: int,
                      common_point: Public, mode: str, reply: dict) -> str | None:
    """Why a holder's shadow part fails its proofs (None: it checks, or the key has no recorded commitments)."""
    try:
        point = parse_point(reply.get("shadow_point"), "shadow_point")
        if commitments is None:
            return None
        x = m.id_number(holder)
        holder_public = public_share(tuple(commitments), x)
        base = shadow_base(common_point, access_key, x, xs)
        proof = bytes.fromhex(str(reply.get("proof", ""))[2:])
        if mode == "plain":
            ok = proofs.verify_dleq(proof, GENERATOR, holder_public, base, point)
        else:
            delta_public = parse_point(reply.get("delta_public"), "delta_public")
            product_public = parse_point(reply.get("product_public"), "product_public")
            ok = proofs.verify_dleq(proof, GENERATOR, delta_public, holder_public, product_public) \
                and proofs.verify_dleq(bytes.fromhex(str(reply.get("proof2", ""))[2:]), GENERATOR, product_public,
                                       base, point)
    except (SessionError, ValueError, CryptoError):
        return "malformed shadow part"
    return None if ok else "shadow point fails its proof against the holder's public share"


@dataclass(frozen=True)
class PersonalPart:
    """This server's personal part of a chain shadow retrieval, ready but for the requester's public key: the chain
    names it only once the common part is confirmed, and the decrypt shadow is encrypted to it when it is."""
    mask: int
    decrypted_secret: Public
    coefficient: int  # the decrypt shadow coefficient; a secret, kept in memory only
    # the master's head when it ran the session: only a personal-part request pending at this block or later is the
    # one this part answers (an earlier one for the same key and requester is over, though this server may not know yet)
    block: int


class PersonalParts:
    """Chain shadow retrievals in flight on a participant, keyed by (key id, requester): the coefficient from the
    shadow step until the master's report, then the prepared part until the service submits it. Bounded in age and
    number, since a master may die between the two steps and a request may end without a personal part."""

    def __init__(self) -> None:
        self._coefficients: dict[tuple[ServerKeyId, Address], tuple[float, int]] = {}
        self._ready: dict[tuple[ServerKeyId, Address], tuple[float, PersonalPart]] = {}

    @staticmethod
    def _prune(entries: dict) -> None:
        cutoff = time.monotonic() - PERSONAL_PART_TTL
        while entries and (len(entries) >= MAX_PERSONAL_PARTS or next(iter(entries.values()))[0] < cutoff):
            del entries[next(iter(entries))]

    def computed(self, key_id: ServerKeyId, requester: Address, coefficient: int) -> None:
        self._prune(self._coefficients)
        self._coefficients.pop((key_id, requester), None)  # re-inserted: the oldest stay first
        self._coefficients[(key_id, requester)] = (time.monotonic(), coefficient)

    def reported(self, key_id: ServerKeyId, requester: Address, mask: int, decrypted_secret: Public,
                 block: int) -> bool:
        """The master's report turns the computed coefficient into a prepared part; False if none was computed."""
        entry = self._coefficients.pop((key_id, requester), None)
        if entry is None:
            return False
        self._prune(self._ready)
        self._ready.pop((key_id, requester), None)
        self._ready[(key_id, requester)] = (time.monotonic(), PersonalPart(mask, decrypted_secret, entry[1], block))
        return True

    def ready(self, key_id: ServerKeyId, requester: Address, seen_at: int | None = None) -> bool:
        """Whether a part is prepared (for a request seen pending at block `seen_at`, if given)."""
        entry = self._ready.get((key_id, requester))
        return entry is not None and (seen_at is None or seen_at >= entry[1].block)

    def take(self, key_id: ServerKeyId, requester: Address) -> PersonalPart | None:
        entry = self._ready.pop((key_id, requester), None)
        return None if entry is None else entry[1]

    def forget(self, key_id: ServerKeyId, requester: Address, through: int | None = None) -> None:
        """Drop the prepared part (of a session that failed, or, with `through`, of a request that ended in that
        block: a part made for a later request of the same key and requester is kept)."""
        entry = self._ready.get((key_id, requester))
        if entry is not None and (through is None or entry[1].block <= through):
            del self._ready[(key_id, requester)]


class DocumentKeyRetrieval(ThresholdProtocol):
    HANDLERS = {"shadow_part": "_shadow_part", "shadow_report": "_shadow_report"}

    def __init__(self, context: SessionContext) -> None:
        super().__init__(context)
        self.personal_parts = PersonalParts()  # chain shadow retrievals this server takes part in
        self.personal_part_ready: Callable[[ServerKeyId, Address], None] = lambda key_id, requester: None

    # --------------------------------------------------------------------------------------- participant side
    async def _shadow_part(self, peer: Address, body: dict) -> dict:
        """A holder's part of a retrieval. Chain requests: shadow mode, the decrypt shadow kept for the on-chain
        report. Direct (HTTP) requests: the requester comes from its signature; "shadow" mode returns the decrypt
        shadow (encrypted to the requester) to the master, "plain" mode returns only the blinded point."""
        ctx = self.ctx
        key_id = ServerKeyId.from_hex(body.get("key_id", ""), "key_id")
        direct = "request_signature" in body
        mode = body.get("mode", "shadow") if direct else "shadow"
        if mode not in ("shadow", "plain"):
            raise SessionError("unknown retrieval mode", BAD_REQUEST)
        participants = parse_ids(body.get("participants"))
        access_key = parse_scalar(body.get("access_key"), "access_key")
        share = ctx.negotiated_share(key_id, body.get("version"))
        if share.common_point is None or share.encrypted_point is None:
            raise SessionError(f"no document key stored for {key_id.hex()}", UNKNOWN_DOCUMENT_KEY)
        if len(participants) != share.threshold + 1 or not set(participants) <= set(share.holders) \
                or ctx.self_id not in participants:
            raise SessionError("participants must be threshold + 1 holders of the key, including this server")
        if direct:
            requester_public = await ctx.authorize(key_id, body)
            requester = requester_public.address()
        else:  # chain retrievals start before the chain names the requester's public key: its address is enough
            requester_public = None
            requester = Address.from_hex(body.get("requester", ""), "requester")
            if not await ctx.check_access(key_id, requester):
                raise SessionError(f"requester {requester.hex()} may not access key {key_id.hex()}", ACCESS_DENIED)
        if access_key == 0:
            raise SessionError("bad access key", BAD_REQUEST)
        xs = [m.id_number(p) for p in participants]
        secret = share.secret_share
        shadow = m.node_shadow(secret, m.id_number(ctx.self_id), xs)
        # proofs that the point is made with this server's share (public share s·G, from the key's commitments)
        base = shadow_base(share.common_point, access_key, m.id_number(ctx.self_id), xs)
        own_public = m.base_mul(secret)
        if mode == "plain":
            point = m.node_shadow_point(shadow, access_key, share.common_point)
            reply = {"shadow_point": self._faulty_point(point).hex(),
                     "proof": "0x" + proofs.prove_dleq(secret, GENERATOR, own_public, base, point).hex()}
            return reply
        delta = m.random_scalar()
        point = m.node_shadow_point(shadow, access_key, share.common_point, delta)
        delta_public, product_public = m.base_mul(delta), m.point_mul(own_public, delta)
        reply = {"shadow_point": self._faulty_point(point).hex(), "delta_public": delta_public.hex(),
                 "product_public": product_public.hex(),
                 "proof": "0x" + proofs.prove_dleq(delta, GENERATOR, delta_public, own_public, product_public).hex(),
                 "proof2": "0x" + proofs.prove_dleq(secret * delta % m.N, GENERATOR, product_public, base, point).hex()}
        coefficient = m.decrypt_shadow_coefficient(shadow, delta)
        if requester_public is not None:
            encrypted = ecies.encrypt(requester_public, coefficient.to_bytes(32, "big"))
            return dict(reply, decrypt_shadow="0x" + encrypted.hex())
        self.personal_parts.computed(key_id, requester, coefficient)
        return reply

    def _faulty_point(self, point: Public) -> Public:
        if self.ctx.faults is not None and self.ctx.faults.corrupts("shadow"):
            return m.point_add(point, m.base_mul(m.random_scalar()))  # fault injection: a wrong shadow point
        return point

    async def _shadow_report(self, peer: Address, body: dict) -> dict:
        key_id = ServerKeyId.from_hex(body.get("key_id", ""), "key_id")
        requester = Address.from_hex(body.get("requester", ""), "requester")
        decrypted_secret = parse_point(body.get("decrypted_secret"), "decrypted_secret")
        mask, block = body.get("participants"), body.get("block", 0)
        if not isinstance(mask, int) or isinstance(mask, bool) or not 0 < mask < 1 << 256 \
                or not isinstance(block, int) or isinstance(block, bool) or block < 0 \
                or not self.personal_parts.reported(key_id, requester, mask, decrypted_secret, block):
            raise SessionError("no shadow computed for this retrieval")
        self.personal_part_ready(key_id, requester)
        return {}

    def personal_part(self, key_id: ServerKeyId, requester_public: Public) -> dict | None:
        """The prepared personal part for this requester as the params of `document_key_personal_retrieved` (its
        decrypt shadow now encrypted to the requester), or None if there is none. Taken: it is submitted once."""
        part = self.personal_parts.take(key_id, requester_public.address())
        if part is None:
            return None
        encrypted = ecies.encrypt(requester_public, part.coefficient.to_bytes(32, "big"))
        return {"id": key_id.hex(), "requester": requester_public.address().hex(), "participants": part.mask,
                "decrypted_secret": part.decrypted_secret.hex(), "shadow": "0x" + encrypted.hex()}

    # -------------------------------------------------------------------------------------------- master side
    async def retrieve_document_key_shadow(self, key_id: ServerKeyId, requester: Address,
                                           indices: dict[Address, int], block: int) -> None:
        """Master of a chain shadow retrieval: picks t + 1 connected holders (the next ones after this server in the
        key's rotation, the servers that answer its common part first), collects their shadow points, computes the
        decrypted secret and reports it to every participant, which then holds its personal part until the chain
        names the requester's public key (`personal_part`) at `block` (this server's head) or later. Nothing here
        needs that key, so a retrieval can run while its common part is still being confirmed."""
        ctx = self.ctx
        cluster = ctx.cluster
        assert cluster is not None
        share = ctx.storage.get(key_id)
        if share is None or share.common_point is None or share.encrypted_point is None:
            raise SessionError(f"no document key stored for {key_id.hex()}")
        ring = sorted((h for h in share.holders if h in indices), key=indices.__getitem__)
        candidates = [ctx.self_id] + [h for h in key_rotation(key_id, ring)
                                      if h != ctx.self_id and cluster.is_connected(h)]
        request = {"type": "shadow_part", "key_id": key_id.hex(), "version": share.version.hex(),
                   "requester": requester.hex()}
        try:
            participants, parts, access_key = await self._collect_shadow_parts(share, candidates, request, "shadow")
            async with asyncio.timeout(SESSION_TIMEOUT):
                points = [parse_point(part["shadow_point"], "shadow_point") for part in parts]
                decrypted = m.decrypt_with_joint_shadow(share.threshold, access_key, share.encrypted_point,
                                                        m.joint_shadow_point(points))
                mask = sum(1 << indices[p] for p in participants)
                report = {"type": "shadow_report", "key_id": key_id.hex(), "requester": requester.hex(),
                          "decrypted_secret": decrypted.hex(), "participants": mask, "block": block}
                async with asyncio.TaskGroup() as tasks:
                    for p in participants:
                        tasks.create_task(cluster.request(p, report, timeout=STEP_TIMEOUT))
        except (ExceptionGroup, ClusterError, TimeoutError, SessionError) as exc:
            raise SessionError(f"document key shadow retrieval failed: {failure_reason(exc)}") from None

    async def retrieve_document_key(self, key_id: ServerKeyId, request_signature: str,
                                    among: list[Address]) -> bytes:
        """Parity's "retrieve document key": t + 1 holders give blinded shadow points, the master removes the blind
        and returns the document key ECIES-encrypted to the requester."""
        share, requester, access_key, parts = await self._retrieval_parts(key_id, request_signature, "plain", among)
        points = [parse_point(p.get("shadow_point"), "shadow_point") for p in parts]
        assert share.encrypted_point is not None
        document_key = m.decrypt_with_joint_shadow(share.threshold, access_key, share.encrypted_point,
                                                   m.joint_shadow_point(points))
        return ecies.encrypt(requester, bytes(document_key))

    async def retrieve_document_key_shadow_direct(self, key_id: ServerKeyId, request_signature: str,
                                                  among: list[Address]) -> dict:
        """The shadow form (nothing decryptable reaches the master): decrypted secret, common shadow point and the
        t + 1 decrypt shadows, each ECIES-encrypted to the requester."""
        share, _, access_key, parts = await self._retrieval_parts(key_id, request_signature, "shadow", among)
        points = [parse_point(p.get("shadow_point"), "shadow_point") for p in parts]
        shadows = []
        for p in parts:
            value = p.get("decrypt_shadow")
            if not isinstance(value, str) or not value.startswith("0x"):
                raise SessionError("a participant sent no decrypt shadow")
            shadows.append(value)
        assert share.encrypted_point is not None and share.common_point is not None
        decrypted = m.decrypt_with_joint_shadow(share.threshold, access_key, share.encrypted_point,
                                                m.joint_shadow_point(points))
        return {"decrypted_secret": decrypted.hex(),
                "common_point": m.common_shadow_point(share.threshold, share.common_point).hex(),
                "decrypt_shadows": shadows}

    async def _retrieval_parts(self, key_id: ServerKeyId, request_signature: str, mode: str,
                               among: list[Address]) -> tuple[KeyShare, Public, int, list[dict]]:
        assert self.ctx.cluster is not None
        share = self.ctx.own_share(key_id)
        requester = await self.ctx.check_requester(key_id, request_signature)
        if share.common_point is None or share.encrypted_point is None:
            raise SessionError(f"no document key stored for {key_id.hex()}", UNKNOWN_DOCUMENT_KEY)
        candidates = self.ctx.connected_holders(share, among)
        if len(candidates) < share.threshold + 1:
            raise SessionError(f"consensus unreachable: {len(candidates)} key servers holding the key are connected, "
                               f"{share.threshold + 1} needed", CONSENSUS_UNREACHABLE)
        request = {"type": "shadow_part", "key_id": key_id.hex(), "version": share.version.hex(), "mode": mode,
                   "request_signature": request_signature}
        try:
            _, parts, access_key = await self._collect_shadow_parts(share, candidates, request, mode)
        except (ExceptionGroup, ClusterError, TimeoutError, SessionError) as exc:
            raise SessionError(f"document key retrieval failed: {failure_reason(exc)}", failure_code(exc)) from None
        return share, requester, access_key, parts

    async def _collect_shadow_parts(self, share: KeyShare, candidates: list[Address], body: dict,
                                    mode: str) -> tuple[list[Address], list[dict], int]:
        """Shadow parts of t + 1 holders, each checked against the holder's public share (from the key's Feldman
        commitments). A holder whose part fails its proof, that fails or cannot be reached is named and replaced by
        another holder while t + 1 usable ones remain; a decision (access denied, unknown key...) is the answer."""
        ctx = self.ctx
        cluster = ctx.cluster
        assert cluster is not None
        assert share.common_point is not None
        commitments = ctx.storage.commitments(share)
        culprits: dict[Address, str] = {}
        while True:
            pool = [c for c in candidates if c not in culprits]
            if len(pool) < share.threshold + 1:
                raise SessionError(f"consensus unreachable: {len(pool)} usable holders, {share.threshold + 1} needed"
                                   + (f"; left out: {named(culprits)}" if culprits else ""), CONSENSUS_UNREACHABLE)
            participants = pool[: share.threshold + 1]
            access_key = m.random_scalar()
            request = dict(body, access_key=scalar_hex(access_key), participants=[p.hex() for p in participants])
            async with asyncio.timeout(SESSION_TIMEOUT):
                results = await asyncio.gather(*(cluster.request(p, request, timeout=STEP_TIMEOUT)
                                                 for p in participants), return_exceptions=True)
            xs = [m.id_number(p) for p in participants]
            failed: dict[Address, str] = {}
            # this server's own part was made here: its proofs need no checking (a third of the master's curve
            # work at t = 2), unless its faults are injected on purpose
            trusted = ctx.self_id if ctx.faults is None or not ctx.faults.corrupts("shadow") else None
            for p, r in zip(participants, results):
                if isinstance(r, BaseException):
                    if not isinstance(r, Exception):
                        raise r
                    if failure_code(r) != FAILED:
                        raise SessionError(failure_reason(r), failure_code(r))
                    failed[p] = failure_reason(r)
                elif p != trusted:
                    why = check_shadow_part(commitments, p, xs, access_key, share.common_point, mode, r)
                    if why is not None:
                        failed[p] = why
                        log.warning("retrieval: faulty shadow part", extra={
                            "key": share.key_id.hex(), "holder": p.hex(), "check": "dleq_proof"})
            if not failed:
                return participants, list(results), access_key  # type: ignore[arg-type]
            log.warning("retrieval: holders left out, retrying with others", extra={
                "key": share.key_id.hex(), "left_out": named(failed)})
            culprits.update(failed)
