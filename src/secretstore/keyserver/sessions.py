"""Threshold sessions between key servers: distributed key generation, document key store and retrieval (shadow and
plain), threshold Schnorr and ECDSA signing, and servers set change.

A session is driven by a master over the cluster's request/response messaging; every key server also answers the
participant side (`KeyServerCore.handle`). Secret values travel only between the two key servers concerned, over the
encrypted cluster links (DKG shares go dealer -> receiver directly, never through the master).
Wire values: points and byte strings as 0x-hex, scalars as 0x-hex of 32 bytes.

Requests that come from a client directly (the HTTP API) carry the requester's signature of the key id; every
participant recovers the requester from it and checks the chain ACL itself, so a master cannot act for anyone else.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from ..crypto import Address, CryptoError, KeyPair, Public, ServerKeyId, Signature, ecies, keccak256
from ..crypto import math as m
from ..crypto import proofs
from ..crypto import signing as sg
from ..crypto.document import generate_document_key
from .faults import FaultPlan
from .net import Cluster, ClusterError, PeerUnavailable
from .storage import DocumentKeyAlreadyStored, KeyAlreadyExists, KeyShare, KeyStorage

log = logging.getLogger(__name__)

SESSION_TIMEOUT = 30.0
MAX_EARLY_SESSIONS = 4096  # generations whose shares came before their dkg_init, at once
MAX_EARLY_BATCHES = 64  # batched generations whose shares came before their dkgb_init, at once (each up to a frame)
MAX_PARTICIPANTS = 256
STEP_TIMEOUT = 15.0
SHARES_WAIT = 3.0  # how long a batch participant waits for every dealer's shares before it answers without them
CONNECT_GRACE = 5.0  # seconds a DKG waits for participants that are not connected yet
RESHARE_IN_FLIGHT = 4  # migration batches moving at once
MAX_BATCH = 1000  # what a key server accepts in one message
PERSONAL_PART_TTL = 120.0  # seconds a chain retrieval's shadow waits for its report, and a report for its request
MAX_PERSONAL_PARTS = 10_000  # chain retrievals prepared at once on one server


def generation_batch_size(threshold: int) -> int:
    """Keys per batched generation: as many as keep its largest message (a participant's answer to the init: its
    Pedersen and Feldman commitments and its public share, 2 (t + 1) + 1 points of 134 bytes of JSON per key) well
    below the cluster's frame limit."""
    return max(1, min(MAX_BATCH // 4, 400_000 // (268 * (threshold + 1) + 384)))


def key_rotation(key_id: ServerKeyId, ring: list[Address]) -> list[Address]:
    """`ring` (the chain's order) rotated to start at the key id's place in it: who leads a key's sessions and who
    answers first. The chain service and the sessions must agree on it, so both take it from here."""
    if not ring:
        return []
    start = int.from_bytes(bytes(key_id), "big") % len(ring)
    return ring[start:] + ring[:start]


def reshare_batch_size(threshold: int) -> int:
    """Keys per round of migration messages: as many as keep one dealer's message to a member (an entry of about
    600 bytes plus 132 per commitment, JSON) well below the cluster's 1 MiB frame limit."""
    return max(1, min(MAX_BATCH // 2, 400_000 // (600 + 132 * (threshold + 1))))

AccessChecker = Callable[[ServerKeyId, Address], Awaitable[bool]]
ResultSink = Callable[[str, dict], None]


# Error codes a session failure carries (the HTTP API maps them to status codes; they cross the cluster links).
ACCESS_DENIED = "access_denied"
UNKNOWN_KEY = "unknown_key"
UNKNOWN_DOCUMENT_KEY = "unknown_document_key"
KEY_EXISTS = "key_exists"
DOCUMENT_KEY_EXISTS = "document_key_exists"
BAD_REQUEST = "bad_request"
CONSENSUS_UNREACHABLE = "consensus_unreachable"
FAILED = "failed"
# when several participants fail differently, the most telling code wins
_CODE_PRIORITY = [ACCESS_DENIED, UNKNOWN_KEY, UNKNOWN_DOCUMENT_KEY, KEY_EXISTS, DOCUMENT_KEY_EXISTS, BAD_REQUEST,
                  CONSENSUS_UNREACHABLE]


class SessionError(Exception):
    """A session could not complete; the request gets an error response."""

    def __init__(self, message: str, code: str = FAILED) -> None:
        super().__init__(message)
        self.code = code


def scalar_hex(value: int) -> str:
    return "0x" + (value % m.N).to_bytes(32, "big").hex()


def parse_scalar(text: Any, what: str) -> int:
    if not isinstance(text, str) or not text.startswith("0x") or len(text) != 66:
        raise SessionError(f"{what}: expected a 32-byte hex scalar")
    value = int(text, 16)
    if not 0 <= value < m.N:
        raise SessionError(f"{what}: scalar out of range")
    return value


def parse_point(text: Any, what: str) -> Public:
    try:
        return Public.from_hex(text, what)
    except (ValueError, TypeError) as exc:
        raise SessionError(str(exc)) from None


def _batch(values: Any) -> list:
    """A batch of a migration message: a non-empty list of at most MAX_BATCH items."""
    if not isinstance(values, list) or not 0 < len(values) <= MAX_BATCH:
        raise SessionError(f"expected a list of 1..{MAX_BATCH} items")
    return values


def parse_ids(values: Any) -> list[Address]:
    if not isinstance(values, list) or not values or len(values) > 255:
        raise SessionError("participants: expected a non-empty list")
    ids = [Address.from_hex(v, "participant") for v in values]
    if len(set(ids)) != len(ids):
        raise SessionError("participants must be distinct")
    return ids


def requester_from(key_id: ServerKeyId, signature: Any) -> Public:
    """The requester's public key, recovered from its signature of the key id (the HTTP API's {sig})."""
    try:
        raw = bytes.fromhex(signature[2:]) if isinstance(signature, str) and signature.startswith("0x") else b""
        return sg.ecdsa_recover(raw, bytes(key_id))
    except (ValueError, CryptoError):
        raise SessionError("the requester signature is not a valid signature of the key id", BAD_REQUEST) from None


GENERATOR = m.GENERATOR


def shadow_base(common_point: Public, access_key: int, x: int, xs: list[int]) -> Public:
    """B_i = (λ'_i·α)·C: a holder's shadow point is s_i·B_i (plain) or (s_i·δ_i)·B_i (shadow mode)."""
    return m.point_mul(common_point, m.node_shadow(1, x, xs) * access_key % m.N)


@functools.lru_cache(maxsize=4096)
def public_share(commitments: tuple[Public, ...], x: int) -> Public:
    """A holder's public share s_x·G from the key's Feldman commitments: fixed per key version, and asked on every
    retrieval the holder takes part in (t multiplications), so the last few thousand are kept."""
    return m.commitment_at(commitments, x)


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


def dispute_statement(session: str, dealer: Address, view: str, complaint: str) -> bytes:
    """What a receiver signs about one dealer of a generation: the digest of the commitments it saw, its complaint."""
    return keccak256(b"secretstore/dkg/dispute" + session.encode() + bytes(dealer) + view.encode() + complaint.encode())


def _digest(points: list[Public]) -> str:
    return "0x" + keccak256(b"".join(bytes(p) for p in points)).hex()


def _hold_early(waiting_sessions: dict, max_sessions: int, session: str, dealer: Address, dealt: Any) -> None:
    """Keep what a dealer sent for a generation whose init has not reached this server yet (the dealer got its own
    first), until the init comes: bounded in sessions, and one dealing per dealer and session."""
    if session not in waiting_sessions:
        if len(waiting_sessions) >= max_sessions:
            raise SessionError("unknown generation session")
        waiting_sessions[session] = (time.monotonic(), [])
    waiting = waiting_sessions[session][1]
    if any(earlier == dealer for earlier, _ in waiting) or len(waiting) >= MAX_PARTICIPANTS:
        raise SessionError("share already received")
    waiting.append((dealer, dealt))


def _batch_session_id(body: dict) -> str:
    session = body.get("session")
    if not isinstance(session, str) or len(session) != 32:
        raise SessionError("bad session id")
    try:
        bytes.fromhex(session)
    except ValueError:
        raise SessionError("bad session id") from None
    return session


def pedersen_point(key_id: ServerKeyId, participants: list[Address]) -> Public:
    """The session's second generator H, derived from public data so nobody knows its discrete log."""
    return m.derived_point(bytes(key_id) + b"".join(bytes(p) for p in participants))


@dataclass
class DkgState:
    key_id: ServerKeyId
    author: Address
    threshold: int
    participants: list[Address]
    poly: list[int]
    blinding: list[int]
    h: Public
    master: Address | None = None
    started: float = field(default_factory=time.monotonic)
    received: dict[Address, tuple[int, int, list[Public]]] = field(default_factory=dict)
    complaints: dict[Address, str] = field(default_factory=dict)  # dealer -> which check its dealing failed
    checked: dict[Address, int] = field(default_factory=dict)  # dealer -> share that passed both checks
    share: int | None = None
    report: bool = True  # chain requests are answered on chain; HTTP requests only to the master
    pedersen: list[Public] = field(default_factory=list)
    feldman: list[Public] = field(default_factory=list)  # made with the Pedersen ones, revealed in dkg_finish

    def __post_init__(self) -> None:
        self.pedersen, self.feldman = m.pedersen_and_feldman(self.poly, self.blinding, self.h)

    def __repr__(self) -> str:
        return f"DkgState({self.key_id.hex()}, t={self.threshold})"


@dataclass
class BatchItem:
    """One key of a batched generation, at a participant."""
    key_id: ServerKeyId
    author: Address
    threshold: int
    poly: list[int]
    blinding: list[int]
    h: Public
    pedersen: list[Public]
    received: dict[Address, tuple[int, int, list[Public]]] = field(default_factory=dict)
    unreadable: bool = False  # a dealer's entry for this key could not be read: the key leaves the batch
    feldman: list[Public] = field(default_factory=list)  # made with the Pedersen ones, revealed after every dealing
    share: int | None = None  # the sum of the dealt shares, once the check passed
    share_public: Public | None = None  # share·G, shown to the master with the commitments

    def __repr__(self) -> str:
        return f"BatchItem({self.key_id.hex()}, t={self.threshold})"


@dataclass
class DkgBatch:
    master: Address
    participants: list[Address]
    items: dict[ServerKeyId, BatchItem]
    started: float = field(default_factory=time.monotonic)
    dealt_here: set[Address] = field(default_factory=set)  # dealers whose shares came
    all_dealt: asyncio.Event = field(default_factory=asyncio.Event)


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


def parse_hash(text: Any) -> bytes:
    if not isinstance(text, str) or not text.startswith("0x") or len(text) != 66:
        raise SessionError("message_hash: expected 32 bytes of hex", BAD_REQUEST)
    try:
        return bytes.fromhex(text[2:])
    except ValueError:
        raise SessionError("message_hash: not hex", BAD_REQUEST) from None


class KeyServerCore:
    """The key server's threshold logic: participant handlers plus the master side of each session."""

    def __init__(self, keypair: KeyPair, storage: KeyStorage, check_access: AccessChecker, on_result: ResultSink) -> None:
        self.keypair = keypair
        self.storage = storage
        self.check_access = check_access
        self.on_result = on_result  # (response call name, params) for the chain service to submit
        self.cluster: Cluster | None = None
        self.dkg: dict[str, DkgState] = {}
        # shares dealt for a generation whose dkg_init has not reached this server yet: session -> [(dealer, body)]
        # session -> (when the first came, [(dealer, (share, blinding, commitments))])
        self.early_shares: dict[str, tuple[float, list[tuple[Address, tuple[int, int, list[Public]]]]]] = {}
        self.batches: dict[str, DkgBatch] = {}  # batched generations (the fast path), by session
        # a batch's shares that came before its dkgb_init: session -> (when the first came, [(dealer, raw items)])
        self.early_batches: dict[str, tuple[float, list[tuple[Address, dict]]]] = {}
        self.personal_parts = PersonalParts()  # chain shadow retrievals this server takes part in
        self.personal_part_ready: Callable[[ServerKeyId, Address], None] = lambda key_id, requester: None
        # servers set change: (migration id hex, key id hex) -> dealer -> (share, commitments, key facts)
        self.reshares: dict[tuple[str, str], dict[Address, tuple[int, list[Public], dict]]] = {}
        self.signing: dict[str, SigningState] = {}
        self.faults: FaultPlan | None = None  # test-only fault injection (keyserver.faults)

    @property
    def self_id(self) -> Address:
        return self.keypair.address

    # --------------------------------------------------------------------------------------- participant side
    HANDLERS = {
        "dkg_init": "_dkg_init", "dkg_share": "_dkg_share", "dkg_finish": "_dkg_finish", "dkg_verify": "_dkg_verify",
        "dkg_abort": "_dkg_abort", "dkg_reveal": "_dkg_reveal",
        "dkgb_init": "_dkgb_init", "dkgb_share": "_dkgb_share", "dkgb_verify": "_dkgb_verify",
        "dkgb_abort": "_dkgb_abort",
        "shadow_part": "_shadow_part", "shadow_report": "_shadow_report",
        "list_keys": "_list_keys", "reshare_deal": "_reshare_deal", "reshare_share": "_reshare_share",
        "reshare_finish": "_reshare_finish", "migration_done": "_migration_done",
        "key_facts": "_key_facts", "doc_store": "_doc_store",
        "sign_init": "_sign_init", "sign_deal": "_sign_deal", "sign_share": "_sign_share",
        "sign_reveal": "_sign_reveal", "sign_verify": "_sign_verify",
        "sign_ecdsa_partial": "_sign_ecdsa_partial", "sign_abort": "_sign_abort",
    }

    async def handle(self, peer: Address, body: dict) -> dict:
        kind = body.get("type")
        name = self.HANDLERS.get(kind) if isinstance(kind, str) else None
        if name is None:
            raise SessionError(f"unknown request type {kind!r}")
        self._expire()
        if self.faults is not None:
            await self.faults.before(kind)  # type: ignore[arg-type]
        return await getattr(self, name)(peer, body)

    def _expire(self) -> None:
        """Forget sessions whose master went quiet, and shares that waited too long for their session."""
        now = time.monotonic()
        for sessions in (self.dkg, self.signing, self.batches):
            for session, state in list(sessions.items()):
                if now - state.started > SESSION_TIMEOUT * 2:
                    del sessions[session]
        for early in (self.early_shares, self.early_batches):
            for session, (since, _) in list(early.items()):
                if now - since > SESSION_TIMEOUT:
                    del early[session]

    def _session(self, body: dict) -> DkgState:
        state = self.dkg.get(body.get("session"))  # type: ignore[arg-type]
        if state is None:
            raise SessionError("unknown or expired generation session")
        return state

    async def _dkg_init(self, peer: Address, body: dict) -> dict:
        key_id = ServerKeyId.from_hex(body.get("key_id", ""), "key_id")
        participants = parse_ids(body.get("participants"))
        threshold = body.get("threshold")
        if not isinstance(threshold, int) or not 0 <= threshold < len(participants):
            raise SessionError("threshold must satisfy 0 <= t < number of participants")
        if self.self_id not in participants:
            raise SessionError("this key server is not a participant")
        if self.storage.get(key_id) is not None:
            raise SessionError(f"server key {key_id.hex()} already exists", KEY_EXISTS)
        for running, other in list(self.dkg.items()):
            if other.key_id != key_id:
                continue
            # a generation whose master is gone (crashed, disconnected) or stalled gives way to the next master's
            if other.master is None or self.cluster is None or not self.cluster.is_connected(other.master) \
                    or time.monotonic() - other.started > STEP_TIMEOUT:
                log.info("replacing an abandoned generation", extra={"key": key_id.hex(), "session": running})
                del self.dkg[running]
            else:
                raise SessionError(f"a generation of {key_id.hex()} is already running", KEY_EXISTS)
        session = body.get("session")
        if not isinstance(session, str) or not 16 <= len(session) <= 64:
            raise SessionError("bad session id")
        author = Address.from_hex(body.get("author", ""), "author")
        direct = "request_signature" in body
        if direct:  # an HTTP request: the author is the requester, who must be allowed the key on chain
            requester = await self._authorize(key_id, body)
            if requester.address() != author:
                raise SessionError("the author must be the requester", BAD_REQUEST)
            if self.storage.pending_migrations():
                raise SessionError("a key server set migration is in progress; try again when it completes",
                                   CONSENSUS_UNREACHABLE)
        state = self.dkg[session] = DkgState(key_id, author, threshold, participants,
                                             m.random_polynomial(threshold), m.random_polynomial(threshold),
                                             pedersen_point(key_id, participants), master=peer, report=not direct)
        for dealer, dealt in self.early_shares.pop(session, (0.0, []))[1]:
            try:
                self._keep_share(state, dealer, *dealt)
            except SessionError as exc:  # as if it never came: the dealer's share is missing, a complaint settles it
                log.warning("early dkg share refused", extra={"dealer": dealer.hex(), "error": str(exc)})
        return await self._deal(session, state)

    async def _authorize(self, key_id: ServerKeyId, body: dict) -> Public:
        """The requester of a direct (HTTP) request, recovered from its signature and checked against the chain ACL."""
        requester = requester_from(key_id, body.get("request_signature"))
        if not await self.check_access(key_id, requester.address()):
            raise SessionError(f"requester {requester.address().hex()} may not access key {key_id.hex()}", ACCESS_DENIED)
        return requester

    async def _deal(self, session: str, state: DkgState) -> dict:
        """Send every participant its share of this node's polynomial, directly, as part of dkg_init (one round
        less: a share that arrives before its receiver's dkg_init waits there for it). A receiver that cannot be
        reached is not this dealer's failure: it complains that the share is missing, and the dealer's reveal
        settles it."""
        commitments = [p.hex() for p in state.pedersen]
        assert self.cluster is not None

        async def deal(to: Address) -> None:
            share, blinding = self._dealt(state, to)
            await self.cluster.request(to, {  # type: ignore[union-attr]
                "type": "dkg_share", "session": session, "commitments": commitments,
                "share": scalar_hex(share), "blinding": scalar_hex(blinding)}, timeout=STEP_TIMEOUT)

        results = await asyncio.gather(*(deal(p) for p in state.participants), return_exceptions=True)
        undelivered = [p.hex() for p, r in zip(state.participants, results) if isinstance(r, BaseException)]
        return {"undelivered": undelivered}

    def _dealt(self, state: DkgState, to: Address) -> tuple[int, int]:
        x = m.id_number(to)
        share, blinding = m.poly_eval(state.poly, x), m.poly_eval(state.blinding, x)
        if self.faults is not None and self.faults.corrupts("dkg"):
            share = (share + 1) % m.N  # fault injection: a dealing (and its reveal) that fails the commitments
        return share, blinding

    async def _dkg_share(self, peer: Address, body: dict) -> dict:
        """Keep a dealer's share; one that fails its Pedersen commitments is not an error of the session but a
        complaint against the dealer, which the master settles (see generate_server_key). A share may come before
        this server's own dkg_init (the dealer got its own first): it is kept, bounded, until the init comes."""
        session = body.get("session")
        state = self.dkg.get(session)  # type: ignore[arg-type]
        if state is None:
            if not isinstance(session, str) or not 16 <= len(session) <= 64:
                raise SessionError("bad session id")
            raw = body.get("commitments")  # malformed is refused now, not when the init comes
            if not isinstance(raw, list) or len(raw) > MAX_PARTICIPANTS:
                raise SessionError("commitments: expected a list of points")
            _hold_early(self.early_shares, MAX_EARLY_SESSIONS, session, peer, self._dealt_share(body))
            return {}
        self._keep_share(state, peer, *self._dealt_share(body))
        return {}

    @staticmethod
    def _dealt_share(body: dict) -> tuple[int, int, list[Public]]:
        """(share, blinding, commitments) of a dkg_share message; commitments that are not a list are none at all
        (a complaint against the dealer, not an error)."""
        raw = body.get("commitments")
        commitments = [parse_point(c, "commitment") for c in raw] if isinstance(raw, list) else []
        return parse_scalar(body.get("share"), "share"), parse_scalar(body.get("blinding"), "blinding"), commitments

    def _keep_share(self, state: DkgState, peer: Address, share: int, blinding: int,
                    commitments: list[Public]) -> None:
        if peer not in state.participants:
            raise SessionError("dealer is not a participant")
        if len(commitments) != state.threshold + 1:
            state.complaints[peer] = "commitments"
        elif not m.verify_pedersen(share, blinding, m.id_number(self.self_id), commitments, state.h):
            state.complaints[peer] = "pedersen"
        else:
            state.complaints.pop(peer, None)
        if peer in state.complaints:
            log.warning("dkg complaint: dealt share fails its commitments", extra={
                "key": state.key_id.hex(), "dealer": peer.hex(), "check": state.complaints[peer]})
        state.received[peer] = (share, blinding, commitments)

    async def _dkg_finish(self, peer: Address, body: dict) -> dict:
        """This dealer's Pedersen and Feldman commitments, a digest of the commitments each dealer sent here (so the
        master sees a dealer that showed different commitments to different receivers) and this node's complaints."""
        state = self._session(body)
        feldman = list(state.feldman)
        if self.faults is not None and self.faults.corrupts("dkg-feldman"):
            feldman[-1] = m.point_add(feldman[-1], m.base_mul(1))  # fault injection: commitments that do not match
        complaints = dict(state.complaints)
        for dealer in state.participants:
            if dealer not in state.received:
                complaints[dealer] = "missing"
        views = {d: _digest(c) for d, (_, _, c) in state.received.items()}
        # signed: a dealer reveals a share only on its receiver's own word (a complaint or a different view), so a
        # master cannot collect everyone's shares through reveals
        signatures = {d.hex(): "0x" + bytes(self.keypair.sign(dispute_statement(
            body["session"], d, views.get(d, "none"), complaints.get(d, "")))).hex() for d in state.participants}
        return {"pedersen": [p.hex() for p in state.pedersen], "feldman": [p.hex() for p in feldman],
                "views": {d.hex(): v for d, v in views.items()},
                "complaints": {d.hex(): reason for d, reason in complaints.items()}, "signatures": signatures}

    async def _dkg_reveal(self, peer: Address, body: dict) -> dict:
        """Answer a complaint against this dealer: the disputed share in the open, for everyone to check against
        the commitments this dealer published (a share that checks refutes the complaint)."""
        state = self._session(body)
        if peer != state.master:
            raise SessionError("only the session's master settles complaints")
        receiver = Address.from_hex(body.get("receiver", ""), "receiver")
        if receiver not in state.participants or receiver == self.self_id:
            raise SessionError("the receiver is not another participant")
        view, complaint = body.get("view"), body.get("complaint")
        if not isinstance(view, str) or not isinstance(complaint, str) or len(view) > 80 or len(complaint) > 40:
            raise SessionError("malformed dispute")
        try:
            signed_by = Signature(bytes.fromhex(str(body.get("signature", ""))[2:])).recover(
                dispute_statement(body["session"], self.self_id, view, complaint)).address()
        except (ValueError, CryptoError):
            signed_by = None
        if signed_by != receiver:
            raise SessionError("the dispute is not signed by its receiver")
        if not complaint and view == _digest(state.pedersen):
            raise SessionError("the receiver neither complains nor saw other commitments")
        share, blinding = self._dealt(state, receiver)
        return {"share": scalar_hex(share), "blinding": scalar_hex(blinding)}

    async def _dkg_verify(self, peer: Address, body: dict) -> dict:
        """Two phases from the master. "check": for every qualified dealer, the share received (or revealed after
        a complaint) must match the dealer's published Pedersen and Feldman commitments; a Feldman mismatch is a
        complaint carrying the share as evidence. "commit": the share is the sum over the final qualified set, stored
        durably before the public is reported."""
        state = self._session(body)
        qualified = parse_ids(body.get("qualified"))
        if not set(qualified) <= set(state.participants) or len(qualified) < state.threshold + 1:
            raise SessionError("the qualified dealers must be at least threshold + 1 participants")
        feldman = body.get("feldman")
        if not isinstance(feldman, dict) or not {d.hex() for d in qualified} <= set(feldman):
            raise SessionError("Feldman commitments of every qualified dealer are needed")
        x = m.id_number(self.self_id)
        if body.get("phase") == "check":
            pedersen = body.get("pedersen")
            revealed = body.get("revealed") or {}
            if not isinstance(pedersen, dict) or not isinstance(revealed, dict):
                raise SessionError("malformed check request")
            complaints = {}
            for dealer in qualified:
                seen_here: list[Public] | None = None  # commitments this share was checked against on arrival
                if dealer.hex() in revealed:
                    share = parse_scalar(revealed[dealer.hex()].get("share"), "share")
                    blinding = parse_scalar(revealed[dealer.hex()].get("blinding"), "blinding")
                elif dealer in state.received:
                    share, blinding, seen_here = state.received[dealer]
                    if dealer in state.complaints:
                        seen_here = None
                else:
                    raise SessionError(f"no share of qualified dealer {dealer.hex()}")
                commitments = [parse_point(c, "pedersen commitment") for c in pedersen.get(dealer.hex(), [])]
                points = [parse_point(c, "feldman commitment") for c in feldman[dealer.hex()]]
                # the same share against the same commitments passed on arrival: not checked twice
                if len(commitments) != state.threshold + 1 or (commitments != seen_here and not m.verify_pedersen(
                        share, blinding, x, commitments, state.h)):
                    complaints[dealer.hex()] = {"check": "pedersen", "share": scalar_hex(share),
                                                "blinding": scalar_hex(blinding)}
                elif len(points) != state.threshold + 1 or not m.verify_feldman(share, x, points):
                    complaints[dealer.hex()] = {"check": "feldman", "share": scalar_hex(share),
                                                "blinding": scalar_hex(blinding)}
                else:
                    state.checked[dealer] = share
                    continue
                log.warning("dkg complaint: share fails the published commitments", extra={
                    "key": state.key_id.hex(), "dealer": dealer.hex(), "check": complaints[dealer.hex()]["check"]})
            return {"complaints": complaints}
        if body.get("phase") != "commit":
            raise SessionError("unknown verification phase")
        missing = [d.hex() for d in qualified if d not in state.checked]
        if missing:
            raise SessionError(f"shares of qualified dealers {', '.join(missing)} did not check here")
        state.share = sum(state.checked[d] for d in qualified) % m.N
        # the key polynomial is the sum of the qualified dealers' ones: so are its commitments (every public share)
        by_dealer = [[parse_point(c, "feldman commitment") for c in feldman[d.hex()]] for d in qualified]
        commitments = [m.point_add(*column) for column in zip(*by_dealer)]
        public = commitments[0]
        share = KeyShare(state.key_id, state.author, state.threshold, public, bytes.fromhex(body["session"][:32]),
                         tuple(state.participants), state.share)
        try:
            await self.storage.insert_durably(share, commitments)  # durable before anything is reported
        except KeyAlreadyExists as exc:
            raise SessionError(str(exc), KEY_EXISTS) from None
        finally:
            self.dkg.pop(body["session"], None)
        if state.report:
            self.on_result("server_key_generated", {"id": state.key_id.hex(), "server_key_public": public.hex()})
        else:
            self.storage.mark_reported(state.key_id)
        return {"public": public.hex()}

    async def _dkg_abort(self, peer: Address, body: dict) -> dict:
        self.dkg.pop(body.get("session"), None)  # type: ignore[arg-type]
        return {}

    # ------------------------------------------------------------------------- batched generation, participant
    async def _dkgb_init(self, peer: Address, body: dict) -> dict:
        """Start this server's part of a batched generation: a polynomial pair per key, dealt to every participant in
        one message each. A key this server cannot take part in (it exists here, a generation of it runs, a bad
        threshold) is refused by name; the master leaves it to the one-key protocol, which gives the precise error."""
        session = _batch_session_id(body)
        if session in self.batches:
            raise SessionError("batch session already exists")
        participants = parse_ids(body.get("participants"))
        if self.self_id not in participants:
            raise SessionError("this key server is not a participant")
        raw = body.get("items")
        if not isinstance(raw, list) or not raw or len(raw) > MAX_BATCH:
            raise SessionError(f"items: expected a list of 1 to {MAX_BATCH} keys")
        running = {state.key_id for state in self.dkg.values()} | {
            key for batch in self.batches.values() for key in batch.items}
        items: dict[ServerKeyId, BatchItem] = {}
        refused: dict[str, str] = {}
        for entry in raw:
            if not isinstance(entry, dict):
                raise SessionError("items: expected objects")
            key_id = ServerKeyId.from_hex(entry.get("key_id", ""), "key_id")
            author = Address.from_hex(entry.get("author", ""), "author")
            threshold = entry.get("threshold")
            if not isinstance(threshold, int) or isinstance(threshold, bool) or not 0 <= threshold < len(participants):
                refused[key_id.hex()] = "threshold must satisfy 0 <= t < number of participants"
            elif key_id in items or key_id in running:
                refused[key_id.hex()] = "a generation of it is already running"
            elif self.storage.get(key_id) is not None:
                refused[key_id.hex()] = "it exists already"
            else:
                poly, blinding = m.random_polynomial(threshold), m.random_polynomial(threshold)
                h = pedersen_point(key_id, participants)
                pedersen, feldman = m.pedersen_and_feldman(poly, blinding, h)
                items[key_id] = BatchItem(key_id, author, threshold, poly, blinding, h, pedersen, feldman=feldman)
        batch = self.batches[session] = DkgBatch(peer, participants, items)
        for dealer, dealt in self.early_batches.pop(session, (0.0, []))[1]:
            self._keep_batch_shares(batch, dealer, dealt)
        undelivered = await self._deal_batch(session, batch)
        # the answer waits for every dealer's shares (they are dealt at the same moment as this server's): it then
        # carries this server's commitments and checks, a round less than asking for them afterwards. Feldman
        # commitments still go out only once every dealer's Pedersen-committed polynomial is fixed here.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(SHARES_WAIT):
                await batch.all_dealt.wait()
        return {"refused": refused, "undelivered": undelivered, "items": self._batch_commitments(batch)}

    async def _deal_batch(self, session: str, batch: DkgBatch) -> list[str]:
        """Every participant's shares of all the batch's keys, one message each; the ones not reached."""
        assert self.cluster is not None
        commitments = {key_id: [p.hex() for p in item.pedersen] for key_id, item in batch.items.items()}

        async def deal(to: Address) -> None:
            x = m.id_number(to)
            dealt = {}
            for key_id, item in batch.items.items():
                share, blinding = m.poly_eval(item.poly, x), m.poly_eval(item.blinding, x)
                if self.faults is not None and self.faults.corrupts("dkg"):
                    share = (share + 1) % m.N  # fault injection: a dealing that fails the commitments
                dealt[key_id.hex()] = [scalar_hex(share), scalar_hex(blinding), commitments[key_id]]
            # one-way: a receiver that does not get it answers its dkgb_init without this dealer's shares
            await self.cluster.notify(to, {  # type: ignore[union-attr]
                "type": "dkgb_share", "session": session, "items": dealt})

        results = await asyncio.gather(*(deal(p) for p in batch.participants), return_exceptions=True)
        return [p.hex() for p, r in zip(batch.participants, results) if isinstance(r, BaseException)]

    async def _dkgb_share(self, peer: Address, body: dict) -> dict:
        """A dealer's shares of a batch's keys; checked together before dkgb_init answers. They may come before
        this server's own dkgb_init (the dealer got its own first) and then wait for it, bounded."""
        session = _batch_session_id(body)
        raw = body.get("items")
        if not isinstance(raw, dict) or len(raw) > MAX_BATCH:
            raise SessionError("items: expected an object of at most one entry per key")
        batch = self.batches.get(session)
        if batch is not None:
            self._keep_batch_shares(batch, peer, raw)
            return {}
        _hold_early(self.early_batches, MAX_EARLY_BATCHES, session, peer, raw)
        return {}

    @staticmethod
    def _keep_batch_shares(batch: DkgBatch, dealer: Address, raw: dict) -> None:
        if dealer not in batch.participants:
            raise SessionError("dealer is not a participant")
        if any(dealer in item.received for item in batch.items.values()):
            raise SessionError("shares already received")
        for key_id, item in batch.items.items():
            try:
                share, blinding, commitments = raw[key_id.hex()]
                if not isinstance(commitments, list) or len(commitments) != item.threshold + 1:
                    raise SessionError("wrong number of commitments")
                item.received[dealer] = (parse_scalar(share, "share"), parse_scalar(blinding, "blinding"),
                                         [parse_point(c, "commitment") for c in commitments])
            except (SessionError, KeyError, TypeError, ValueError):
                item.unreadable = True  # the one-key protocol settles who is at fault
        batch.dealt_here.add(dealer)
        if len(batch.dealt_here) == len(batch.participants):
            batch.all_dealt.set()

    def _batch(self, peer: Address, body: dict) -> DkgBatch:
        batch = self.batches.get(body.get("session"))  # type: ignore[arg-type]
        if batch is None:
            raise SessionError("unknown or expired generation session")
        if peer != batch.master:
            raise SessionError("only the session's master drives it")
        return batch

    def _batch_commitments(self, batch: DkgBatch) -> dict:
        """Per key: this dealer's Pedersen and Feldman commitments, a digest of all the commitments received (the
        master compares it with the published ones) and whether the sum of the dealt shares matches the sum of
        the commitments received. One check per key instead of one per dealer: the key share is that sum, so it
        is what must be consistent; when it is not, the key goes to the one-key protocol, whose per-dealer checks
        and complaints find the dealer at fault."""
        x = m.id_number(self.self_id)
        answers = {}
        for key_id, item in batch.items.items():
            if self.faults is not None and self.faults.corrupts("dkg-feldman"):
                item.feldman[-1] = m.point_add(item.feldman[-1], m.base_mul(1))  # fault injection
            answer: dict[str, Any] = {"pedersen": [p.hex() for p in item.pedersen],
                                      "feldman": [p.hex() for p in item.feldman], "ok": False}
            if not item.unreadable and len(item.received) == len(batch.participants):
                dealt = [item.received[d] for d in batch.participants]
                answer["view"] = _digest([c for _, _, commitments in dealt for c in commitments])
                share, blinding = sum(s for s, _, _ in dealt) % m.N, sum(b for _, b, _ in dealt) % m.N
                columns = [m.point_add(*column) for column in zip(*(c for _, _, c in dealt))]
                share_public = m.base_mul(share) if share else None  # a zero sum: no dealing of honest dealers
                answer["ok"] = share_public is not None and m.verify_pedersen(share, blinding, x, columns, item.h,
                                                                              share_public)
                if answer["ok"]:
                    item.share, item.share_public = share, share_public
                    answer["share_public"] = share_public.hex()
            answers[key_id.hex()] = answer
        return answers

    async def _dkgb_verify(self, peer: Address, body: dict) -> dict:
        """"commit": per key to keep, the sums of the dealers' Feldman commitments (the master checked every
        participant's public share against them); this server's share must lie on them too. The keys are then
        stored durably (one disk sync for all) and reported; the batch ends here, the keys not named are dropped."""
        batch = self._batch(peer, body)
        if body.get("phase") != "commit":
            raise SessionError("unknown verification phase")
        sums = body.get("items")
        if not isinstance(sums, dict):
            raise SessionError("items: expected an object")
        chosen: list[tuple[BatchItem, list[Public]]] = []
        for key_hex, raw in sums.items():
            item = batch.items.get(ServerKeyId.from_hex(key_hex, "key_id"))
            if item is None or not isinstance(raw, list) or len(raw) != item.threshold + 1:
                raise SessionError(f"malformed commitment sums of key {key_hex}")
            chosen.append((item, [parse_point(c, "feldman commitment") for c in raw]))
        self.batches.pop(body["session"], None)
        x = m.id_number(self.self_id)
        for item, commitments in chosen:
            if item.share_public is None or m.commitment_at(commitments, x) != item.share_public:
                raise SessionError(f"key {item.key_id.hex()} did not check here")
        shares = [KeyShare(item.key_id, item.author, item.threshold, commitments[0],
                           keccak256(bytes.fromhex(body["session"]) + bytes(item.key_id))[:16],
                           tuple(batch.participants), item.share)  # type: ignore[arg-type]
                  for item, commitments in chosen]
        stored = await asyncio.gather(*(self.storage.insert_durably(share, commitments)
                                        for share, (_, commitments) in zip(shares, chosen)), return_exceptions=True)
        answers = {}
        for share, outcome in zip(shares, stored):
            if isinstance(outcome, BaseException):
                answers[share.key_id.hex()] = {"error": str(outcome)}
                continue
            self.on_result("server_key_generated", {"id": share.key_id.hex(), "server_key_public": share.public.hex()})
            answers[share.key_id.hex()] = {"public": share.public.hex()}
        return {"items": answers}

    async def _dkgb_abort(self, peer: Address, body: dict) -> dict:
        batch = self.batches.get(body.get("session"))  # type: ignore[arg-type]
        if batch is not None and batch.master == peer:
            del self.batches[body["session"]]
        return {}

    async def _shadow_part(self, peer: Address, body: dict) -> dict:
        """A holder's part of a retrieval. Chain requests: shadow mode, the decrypt shadow kept for the on-chain
        report. Direct (HTTP) requests: the requester comes from its signature; "shadow" mode returns the decrypt
        shadow (encrypted to the requester) to the master, "plain" mode returns only the blinded point."""
        key_id = ServerKeyId.from_hex(body.get("key_id", ""), "key_id")
        direct = "request_signature" in body
        mode = body.get("mode", "shadow") if direct else "shadow"
        if mode not in ("shadow", "plain"):
            raise SessionError("unknown retrieval mode", BAD_REQUEST)
        participants = parse_ids(body.get("participants"))
        access_key = parse_scalar(body.get("access_key"), "access_key")
        share = self._negotiated_share(key_id, body.get("version"))
        if share.common_point is None or share.encrypted_point is None:
            raise SessionError(f"no document key stored for {key_id.hex()}", UNKNOWN_DOCUMENT_KEY)
        if len(participants) != share.threshold + 1 or not set(participants) <= set(share.holders) \
                or self.self_id not in participants:
            raise SessionError("participants must be threshold + 1 holders of the key, including this server")
        if direct:
            requester_public = await self._authorize(key_id, body)
            requester = requester_public.address()
        else:  # chain retrievals start before the chain names the requester's public key: its address is enough
            requester_public = None
            requester = Address.from_hex(body.get("requester", ""), "requester")
            if not await self.check_access(key_id, requester):
                raise SessionError(f"requester {requester.hex()} may not access key {key_id.hex()}", ACCESS_DENIED)
        if access_key == 0:
            raise SessionError("bad access key", BAD_REQUEST)
        xs = [m.id_number(p) for p in participants]
        secret = share.secret_share
        shadow = m.node_shadow(secret, m.id_number(self.self_id), xs)
        # proofs that the point is made with this server's share (public share s·G, from the key's commitments)
        base = shadow_base(share.common_point, access_key, m.id_number(self.self_id), xs)
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
        if self.faults is not None and self.faults.corrupts("shadow"):
            return m.point_add(point, m.base_mul(m.random_scalar()))  # fault injection: a wrong shadow point
        return point

    def _negotiated_share(self, key_id: ServerKeyId, version: object) -> KeyShare:
        """This server's share of the key version the master uses. A master can only be on a migration's new version
        once the chain completed that migration, so a pending version it names is activated here; any other mismatch
        is refused rather than mixing shares of two sharings (which would decrypt to garbage)."""
        share = self.storage.get(key_id)
        if share is None:
            raise SessionError(f"no share of {key_id.hex()}", UNKNOWN_KEY)
        if not isinstance(version, str) or share.version.hex() == version:
            return share
        for migration_id in self.storage.pending_migrations():
            if migration_id[:16].hex() == version:
                self.storage.promote(migration_id)
                promoted = self.storage.get(key_id)
                if promoted is not None and promoted.version.hex() == version:
                    return promoted
        raise SessionError(f"key version mismatch for {key_id.hex()}")

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

    # ------------------------------------------------------------------------- direct (HTTP) requests: participant
    async def _doc_store(self, peer: Address, body: dict) -> dict:
        """Store a document key for its author. Two phases from the master ("check" on every holder, then "commit"),
        so a refusal by any holder leaves nothing stored anywhere."""
        key_id = ServerKeyId.from_hex(body.get("key_id", ""), "key_id")
        share = self._negotiated_share(key_id, body.get("version"))
        requester = await self._authorize(key_id, body)
        if requester.address() != share.author:
            raise SessionError("only the key's author may store its document key", ACCESS_DENIED)
        if share.common_point is not None:
            raise SessionError(f"a document key is already stored for {key_id.hex()}", DOCUMENT_KEY_EXISTS)
        if self.storage.pending_migrations():
            raise SessionError("a key server set migration is in progress; try again when it completes",
                               CONSENSUS_UNREACHABLE)
        common_point = parse_point(body.get("common_point"), "common_point")
        encrypted_point = parse_point(body.get("encrypted_point"), "encrypted_point")
        if body.get("phase") == "commit":
            try:
                self.storage.store_document_key(key_id, common_point, encrypted_point)
            except DocumentKeyAlreadyStored as exc:
                raise SessionError(str(exc), DOCUMENT_KEY_EXISTS) from None
        return {}

    def _signing(self, body: dict) -> SigningState:
        state = self.signing.get(body.get("session"))  # type: ignore[arg-type]
        if state is None:
            raise SessionError("unknown or expired signing session")
        return state

    async def _sign_init(self, peer: Address, body: dict) -> dict:
        key_id = ServerKeyId.from_hex(body.get("key_id", ""), "key_id")
        kind = body.get("kind")
        if kind not in ("schnorr", "ecdsa"):
            raise SessionError("unknown signature kind", BAD_REQUEST)
        session = body.get("session")
        if not isinstance(session, str) or not 16 <= len(session) <= 64 or session in self.signing:
            raise SessionError("bad session id")
        message_hash = parse_hash(body.get("message_hash"))
        participants = parse_ids(body.get("participants"))
        share = self._negotiated_share(key_id, body.get("version"))
        t = share.threshold
        needed = t + 1 if kind == "schnorr" else 2 * t + 1
        if len(participants) != needed or not set(participants) <= set(share.holders) \
                or self.self_id not in participants:
            raise SessionError(f"{kind} signing needs {needed} holders of the key, including this server")
        await self._authorize(key_id, body)
        specs = [(t, False)] if kind == "schnorr" else [(t, False), (t, False), (2 * t, True), (2 * t, True)]
        h = m.derived_point(b"signing" + session.encode() + b"".join(bytes(p) for p in participants))
        self.signing[session] = SigningState(kind, share, message_hash, participants, h,
                                             [sg.Dealing.new(d, z) for d, z in specs])
        return {}

    async def _sign_deal(self, peer: Address, body: dict) -> dict:
        """Send every signer its shares of this server's dealings, with Pedersen commitments, directly."""
        state = self._signing(body)
        pedersen = [[p.hex() for p in d.pedersen(state.h)] for d in state.dealings]
        assert self.cluster is not None

        async def deal(to: Address) -> None:
            x = m.id_number(to)
            parts = []
            for d, commitments in zip(state.dealings, pedersen):
                share, blinding = d.share_for(x)
                parts.append({"share": scalar_hex(share), "blinding": scalar_hex(blinding), "pedersen": commitments})
            await self.cluster.request(to, {"type": "sign_share", "session": body["session"], "parts": parts},  # type: ignore[union-attr]
                                       timeout=STEP_TIMEOUT)

        async with asyncio.TaskGroup() as tasks:
            for participant in state.participants:
                tasks.create_task(deal(participant))
        return {}

    async def _sign_share(self, peer: Address, body: dict) -> dict:
        state = self._signing(body)
        if peer not in state.participants or peer in state.received:
            raise SessionError("dealer is not a signer of this session or dealt twice")
        parts = body.get("parts")
        if not isinstance(parts, list) or len(parts) != len(state.dealings):
            raise SessionError("wrong number of dealt shares")
        x = m.id_number(self.self_id)
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
        state = self._signing(body)
        missing = [p.hex() for p in state.participants if p not in state.received]
        if missing:
            raise SessionError(f"no shares received from {', '.join(missing)}")
        return {"feldman": [[p.hex() for p in d.feldman()] for d in state.dealings]}

    async def _sign_verify(self, peer: Address, body: dict) -> dict:
        """Check every dealer's revealed commitments against what it sent, sum the shares, and give this signer's
        public contribution: the Schnorr partial signature, or k_i·u_i + z_i for ECDSA."""
        state = self._signing(body)
        if state.sums is not None:
            raise SessionError("this signing session is past its verification step")
        feldman = body.get("feldman")
        if not isinstance(feldman, dict) or set(feldman) != {p.hex() for p in state.participants}:
            raise SessionError("Feldman commitments of every signer are needed")
        x = m.id_number(self.self_id)
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
        xs = [m.id_number(p) for p in state.participants]
        share = state.share.secret_share
        if state.kind == "schnorr":
            # each nonce share is used for exactly one partial signature: the state goes now
            self.signing.pop(body["session"], None)
            challenge = m.schnorr_challenge(state.message_hash, nonce_public)
            partial = sg.schnorr_partial_signature(sums[0], share, challenge, x, xs)
            return {"nonce_public": nonce_public.hex(), "partial": scalar_hex(self._faulty_partial(partial))}
        state.sums, state.nonce_public = sums, nonce_public
        return {"nonce_public": nonce_public.hex(),
                "blinded": scalar_hex(sg.ecdsa_inverse_blind_share(sums[0], sums[1], sums[2]))}

    async def _sign_ecdsa_partial(self, peer: Address, body: dict) -> dict:
        state = self._signing(body)
        if state.kind != "ecdsa" or state.sums is None or state.nonce_public is None:
            raise SessionError("the signing session is not at the ECDSA partial signature step")
        self.signing.pop(body["session"], None)  # one partial signature per nonce
        inverse_blind = parse_scalar(body.get("inverse_blind"), "inverse_blind")
        if inverse_blind == 0:
            raise SessionError("bad inverse blind")
        k, u, z, z2 = state.sums
        partial = sg.ecdsa_partial_signature(u, inverse_blind, sg.ecdsa_r(state.nonce_public),
                                             state.share.secret_share, sg.message_scalar(state.message_hash), z2)
        return {"partial": scalar_hex(self._faulty_partial(partial))}

    def _faulty_partial(self, partial: int) -> int:
        if self.faults is not None and self.faults.corrupts("sign"):
            return (partial + 1) % m.N  # fault injection: a wrong partial signature
        return partial

    async def _sign_abort(self, peer: Address, body: dict) -> dict:
        self.signing.pop(body.get("session"), None)  # type: ignore[arg-type]
        return {}

    # ------------------------------------------------------------------------------- servers set change (participant)
    async def _list_keys(self, peer: Address, body: dict) -> dict:
        return {"keys": [k.hex() for k in self.storage.key_ids()]}

    async def _key_facts(self, peer: Address, body: dict) -> dict:
        share = self.storage.get(ServerKeyId.from_hex(body.get("key_id", ""), "key_id"))
        if share is None:
            raise SessionError("unknown key")
        return {"threshold": share.threshold, "public": share.public.hex()}

    async def _reshare_deal(self, peer: Address, body: dict) -> dict:
        """As one of t + 1 old holders of each key of a batch: deal a fresh degree-t polynomial whose constant term is
        this server's Lagrange-weighted share, to every server of the new set (directly, one message per member for
        the whole batch)."""
        key_ids = [ServerKeyId.from_hex(k, "key_ids") for k in _batch(body.get("key_ids"))]
        dealers = parse_ids(body.get("dealers"))
        new_set = parse_ids(body.get("new_set"))
        weights = m.lagrange_at_zero(m.id_number(self.self_id), [m.id_number(d) for d in dealers]) \
            if self.self_id in dealers else None
        dealt: dict[Address, list[dict]] = {member: [] for member in new_set}
        for key_id in key_ids:
            share = self.storage.get(key_id)
            if share is None:
                raise SessionError(f"this key server holds no share of {key_id.hex()}")
            if len(dealers) != share.threshold + 1 or weights is None or not set(dealers) <= set(share.holders):
                raise SessionError("dealers must be threshold + 1 holders of the key, including this server")
            if len(new_set) < share.threshold + 1:
                raise SessionError("the new set is too small for this key's threshold")
            poly = m.random_polynomial(share.threshold, share.secret_share * weights % m.N)
            commitments = [p.hex() for p in m.feldman_commitments(poly)]
            facts = {"public": share.public.hex(), "threshold": share.threshold, "author": share.author.hex(),
                     "common_point": share.common_point.hex() if share.common_point else None,
                     "encrypted_point": share.encrypted_point.hex() if share.encrypted_point else None}
            for member in new_set:
                dealt[member].append({"key_id": key_id.hex(), "share": scalar_hex(m.poly_eval(poly, m.id_number(member))),
                                      "commitments": commitments, "facts": facts})
        assert self.cluster is not None
        async with asyncio.TaskGroup() as tasks:
            for member, entries in dealt.items():
                tasks.create_task(self.cluster.request(member, {
                    "type": "reshare_share", "migration_id": body.get("migration_id"), "entries": entries},
                    timeout=STEP_TIMEOUT))
        return {}

    async def _reshare_share(self, peer: Address, body: dict) -> dict:
        """As a new holder: keep one dealer's re-shared values of a batch of keys, each checked against its
        commitments (nothing is kept unless every entry checks)."""
        checked = []
        for entry in _batch(body.get("entries")):
            if not isinstance(entry, dict):
                raise SessionError("bad re-share entry")
            facts = entry.get("facts")
            if not isinstance(facts, dict) or not isinstance(facts.get("threshold"), int):
                raise SessionError("missing key facts")
            commitments = [parse_point(c, "commitment") for c in entry.get("commitments", [])]
            if len(commitments) != facts["threshold"] + 1:
                raise SessionError("wrong number of commitments")
            share = parse_scalar(entry.get("share"), "share")
            key_id = ServerKeyId.from_hex(entry.get("key_id", ""), "key_id")
            if not m.verify_feldman(share, m.id_number(self.self_id), commitments):
                raise SessionError(f"re-shared value of {key_id.hex()} from {peer.hex()} does not match its commitments")
            checked.append((key_id, share, commitments, facts))
        for key_id, share, commitments, facts in checked:
            self.reshares.setdefault((str(body.get("migration_id")), key_id.hex()), {})[peer] = (share, commitments, facts)
        return {}

    async def _reshare_finish(self, peer: Address, body: dict) -> dict:
        """As a new holder: combine the dealers' values of every key of the batch into its new share, check each
        against the server key public, and keep them all durably as pending versions in one transaction."""
        migration_id = bytes.fromhex(str(body.get("migration_id", ""))[2:])
        key_ids = [ServerKeyId.from_hex(k, "key_ids") for k in _batch(body.get("key_ids"))]
        dealers = parse_ids(body.get("dealers"))
        new_set = parse_ids(body.get("new_set"))
        new_shares = []
        new_commitments = {}
        for key_id in key_ids:
            received = self.reshares.pop((str(body.get("migration_id")), key_id.hex()), {})
            if set(received) != set(dealers):
                raise SessionError(f"re-shared values of {key_id.hex()} missing from some dealers")
            facts = [f for _, _, f in received.values()]
            if any(f != facts[0] for f in facts):
                raise SessionError("dealers disagree about the key")
            public = Public.from_hex(facts[0]["public"])
            # the weighted shares add up to the key: their constant-term commitments must add up to its public
            if m.point_add(*(c[0] for _, c, _ in received.values())) != public:
                raise SessionError(f"re-shared values of {key_id.hex()} do not add up to the server key")
            new_commitments[key_id] = [m.point_add(*column) for column in zip(*(c for _, c, _ in received.values()))]
            new_shares.append(KeyShare(
                key_id, Address.from_hex(facts[0]["author"]), facts[0]["threshold"], public, migration_id[:16],
                tuple(new_set), sum(s for s, _, _ in received.values()) % m.N,
                Public.from_hex(facts[0]["common_point"]) if facts[0]["common_point"] else None,
                Public.from_hex(facts[0]["encrypted_point"]) if facts[0]["encrypted_point"] else None))
        self.storage.stage_pending(migration_id, *new_shares,  # durable before the migration is confirmed
                                   commitments=new_commitments)
        return {}

    async def _migration_done(self, peer: Address, body: dict) -> dict:
        migration_id = str(body.get("migration_id", ""))
        if not migration_id.startswith("0x") or len(migration_id) != 66:
            raise SessionError("bad migration id")
        self.on_result("confirm_migration", {"migration_id": migration_id})
        return {}

    # -------------------------------------------------------------------------------------------- master side
    async def migrate(self, migration_id: bytes, old_set: list[Address], new_set: list[Address]) -> int:
        """Master of a servers set change: re-share every key held by the old set to the new set without ever
        reconstructing it, then tell every new member to confirm. Returns the number of keys moved."""
        assert self.cluster is not None
        cluster = self.cluster
        mid = "0x" + migration_id.hex()
        keys: set[str] = set()
        holders_of: dict[str, list[Address]] = {}
        for server in old_set:
            if not cluster.is_connected(server):
                continue
            try:
                listed = await cluster.request(server, {"type": "list_keys"}, timeout=STEP_TIMEOUT)
            except ClusterError:
                continue
            for key in listed.get("keys", []):
                keys.add(key)
                holders_of.setdefault(key, []).append(server)
        # a server added by this very change is dialled only now: give it a moment instead of failing the attempt
        missing = [p.hex() for p in await cluster.wait_connected(new_set, CONNECT_GRACE)]
        if missing:
            raise SessionError(f"new key servers not connected: {', '.join(missing)}")
        # keys with the same dealers move together, RESHARE_BATCH per round of messages
        batches: dict[tuple[Address, ...], list[str]] = {}
        for key in sorted(keys):
            threshold = await self._threshold_of(ServerKeyId.from_hex(key), holders_of[key])
            dealers = holders_of[key][: threshold + 1]
            if len(dealers) < threshold + 1:
                raise SessionError(f"key {key}: only {len(dealers)} holders reachable, {threshold + 1} needed")
            batches.setdefault(tuple(dealers), []).append(key)
        async def move(dealers: tuple[Address, ...], batch: list[str]) -> None:
            body = {"migration_id": mid, "key_ids": batch, "dealers": [d.hex() for d in dealers],
                    "new_set": [p.hex() for p in new_set]}
            async with in_flight:
                try:
                    async with asyncio.timeout(SESSION_TIMEOUT):
                        async with asyncio.TaskGroup() as tasks:
                            for dealer in dealers:
                                tasks.create_task(cluster.request(dealer, dict(body, type="reshare_deal"),
                                                                  timeout=STEP_TIMEOUT))
                        async with asyncio.TaskGroup() as tasks:
                            for member in new_set:
                                tasks.create_task(cluster.request(member, dict(body, type="reshare_finish"),
                                                                  timeout=STEP_TIMEOUT))
                except (ExceptionGroup, ClusterError, TimeoutError) as exc:
                    raise SessionError(f"keys {batch[0]}..: re-sharing failed: {_reason(exc)}") from None

        # several batches in flight: one batch's disk write overlaps the next one's curve math
        in_flight = asyncio.Semaphore(RESHARE_IN_FLIGHT)
        try:
            async with asyncio.TaskGroup() as tasks:
                for dealers, batch_keys in batches.items():
                    size = reshare_batch_size(len(dealers) - 1)
                    for start in range(0, len(batch_keys), size):
                        tasks.create_task(move(dealers, batch_keys[start:start + size]))
        except ExceptionGroup as group:
            raise group.exceptions[0] from None
        for member in new_set:
            try:
                await cluster.request(member, {"type": "migration_done", "migration_id": mid}, timeout=STEP_TIMEOUT)
            except ClusterError as exc:
                raise SessionError(f"could not tell {member.hex()} the migration is done: {exc}") from None
        return len(keys)

    async def _threshold_of(self, key_id: ServerKeyId, holders: list[Address]) -> int:
        share = self.storage.get(key_id)
        if share is not None:
            return share.threshold
        for holder in holders:  # the master may be a new server that holds nothing yet
            try:
                reply = await self.cluster.request(holder, {"type": "key_facts", "key_id": key_id.hex()},  # type: ignore[union-attr]
                                                   timeout=STEP_TIMEOUT)
                return int(reply["threshold"])
            except (ClusterError, KeyError, ValueError):
                continue
        raise SessionError(f"no holder of {key_id.hex()} answered")
    async def generate_server_key(self, key_id: ServerKeyId, author: Address, threshold: int,
                                  participants: list[Address], request_signature: str | None = None) -> Public:
        """One key by the one-key protocol (`_generate_one_key`): direct (HTTP) requests."""
        return await self._generate_one_key(key_id, author, threshold, participants, request_signature)

    async def _generate_one_key(self, key_id: ServerKeyId, author: Address, threshold: int,
                                participants: list[Address], request_signature: str | None = None) -> Public:
        """Run a DKG over all `participants`; every participant stores its share and reports the public itself
        (on chain, or, for a direct request carrying the requester's signature, only to this master).

        Byzantine dealers (the rule, also in docs/architecture.md): a complaint against a dealer — its share fails
        the Pedersen commitments, is missing, or the commitments it showed a receiver differ from the ones it
        published — is upheld unless the dealer refutes it by revealing the disputed share and that share checks
        against its published commitments (the complainer then uses the revealed share). A Feldman complaint carries
        the share as evidence and is upheld when the master confirms that share passes Pedersen and fails Feldman; a
        complaint the master cannot confirm names the complainer instead. Upheld dealers are disqualified and the key
        is the sum of the qualified dealers' polynomials, shared to all n participants. The generation completes only
        if at most t key servers were named (more than t faulty servers could pool t + 1 shares: such a key would not
        be secret) and at least t + 1 dealers qualified; otherwise it fails naming them all."""
        assert self.cluster is not None
        cluster = self.cluster
        session = secrets.token_hex(16)
        if not participants or not isinstance(threshold, int) or not 0 <= threshold < len(participants):
            raise SessionError(f"threshold must satisfy 0 <= t < {len(participants)} (the number of key servers)",
                               BAD_REQUEST)
        if self.storage.get(key_id) is not None:
            raise SessionError(f"server key {key_id.hex()} already exists", KEY_EXISTS)
        # a key server that has just started (or restarted) gets a moment to connect before its absence fails the key
        unreachable = [p.hex() for p in await cluster.wait_connected(participants, CONNECT_GRACE)]
        if unreachable:
            raise SessionError(f"consensus unreachable: key servers not connected: {', '.join(unreachable)}",
                               CONSENSUS_UNREACHABLE)
        init = {"type": "dkg_init", "key_id": key_id.hex(), "author": author.hex(), "threshold": threshold,
                "participants": [p.hex() for p in participants]}
        if request_signature is not None:
            init["request_signature"] = request_signature
        culprits: dict[Address, str] = {}  # key server -> which check it failed (the evidence)

        async def each(body: dict | Callable[[Address], dict], among: list[Address] = participants,
                       tolerate: Callable[[Address], bool] = lambda p: False) -> dict[Address, dict]:
            """One step on every participant; failures of the tolerated ones are left out of the answer."""
            async def one(p: Address) -> dict:
                request = body(p) if callable(body) else body
                return await cluster.request(p, dict(request, session=session), timeout=STEP_TIMEOUT)

            results = await asyncio.gather(*(one(p) for p in among), return_exceptions=True)
            failed = [r for p, r in zip(among, results) if isinstance(r, BaseException) and not tolerate(p)]
            for r in results:
                if isinstance(r, BaseException) and not isinstance(r, Exception):
                    raise r
            if failed:
                raise ExceptionGroup("generation step failed", failed)  # type: ignore[arg-type]
            return {p: r for p, r in zip(among, results) if not isinstance(r, BaseException)}

        try:
            async with asyncio.timeout(SESSION_TIMEOUT):
                await each(init)  # every participant deals its shares as part of it
                finished = await each({"type": "dkg_finish"})
                h = pedersen_point(key_id, participants)
                pedersen, feldman = self._published(finished, threshold, culprits)
                revealed = await self._settle_complaints(session, finished, pedersen, h, culprits)
                qualified = [p for p in participants if p not in culprits]
                self._enough(key_id, threshold, qualified, culprits)

                def check(p: Address) -> dict:
                    return {"type": "dkg_verify", "phase": "check", "qualified": [d.hex() for d in qualified],
                            "pedersen": {d.hex(): pedersen[d] for d in qualified},
                            "feldman": {d.hex(): feldman[d] for d in qualified},
                            "revealed": {d.hex(): v for (r, d), v in revealed.items() if r == p and d in qualified}}

                checked = await each(check)
                for accuser, reply in checked.items():
                    for dealer_hex, evidence in (reply.get("complaints") or {}).items():
                        self._judge_feldman(key_id, accuser, Address.from_hex(dealer_hex), evidence, pedersen,
                                            feldman, h, culprits)
                qualified = [p for p in qualified if p not in culprits]
                self._enough(key_id, threshold, qualified, culprits)
                verified = await each({"type": "dkg_verify", "phase": "commit",
                                       "qualified": [d.hex() for d in qualified],
                                       "feldman": {d.hex(): feldman[d] for d in qualified}},
                                      tolerate=lambda p: p in culprits)
        except (ExceptionGroup, ClusterError, TimeoutError, SessionError) as exc:
            for p in participants:
                if cluster.is_connected(p):
                    try:
                        await cluster.request(p, {"type": "dkg_abort", "session": session}, timeout=2)
                    except (ClusterError, TimeoutError):
                        pass
            raise SessionError(f"server key generation failed: {_reason(exc)}", _code(exc)) from None
        publics = {r.get("public") for p, r in verified.items() if p not in culprits}
        if len(publics) != 1:
            raise SessionError("key servers computed different server key publics")
        if culprits:
            log.warning("server key generated without faulty dealers", extra={
                "key": key_id.hex(), "qualified": len(qualified), "faulty": _named(culprits)})
        return Public.from_hex(publics.pop())

    async def generate_server_keys(self, requests: list[tuple[ServerKeyId, Address, int]],
                                   participants: list[Address]) -> dict[ServerKeyId, Public | SessionError]:
        """Generate many server keys for chain requests: batched generations (many keys per cluster message, one
        share check per key and receiver) as the fast path; a key that leaves a batch — refused by a participant,
        a share check that fails, anything unexpected — goes to the one-key protocol (`_generate_one_key`), which
        gives its precise error or finds and leaves out the faulty dealers. Participants report the keys
        themselves; the result here (a public or the error) is for the master's own answer."""
        assert self.cluster is not None
        results: dict[ServerKeyId, Public | SessionError] = {}
        retry: list[tuple[ServerKeyId, Address, int]] = []
        # a key server that has just started (or restarted) gets a moment to connect before its absence fails the keys
        unreachable = [p.hex() for p in await self.cluster.wait_connected(participants, CONNECT_GRACE)]
        if unreachable:
            error = SessionError(f"server key generation failed: consensus unreachable: key servers not connected: "
                                 f"{', '.join(unreachable)}", CONSENSUS_UNREACHABLE)
            return {key_id: error for key_id, _, _ in requests}
        chunks: list[list[tuple[ServerKeyId, Address, int]]] = []
        for threshold in sorted({t for _, _, t in requests}):
            same = [r for r in requests if r[2] == threshold]
            size = generation_batch_size(threshold)
            chunks += [same[i:i + size] for i in range(0, len(same), size)]
        for done, left in await asyncio.gather(*(self._generate_batch(c, participants) for c in chunks)):
            results.update(done)
            retry += left

        async def one(key_id: ServerKeyId, author: Address, threshold: int) -> None:
            try:
                results[key_id] = await self._generate_one_key(key_id, author, threshold, participants)
            except SessionError as exc:
                results[key_id] = exc

        await asyncio.gather(*(one(*r) for r in retry))
        return results

    async def _generate_batch(self, requests: list[tuple[ServerKeyId, Address, int]], participants: list[Address]
                              ) -> tuple[dict[ServerKeyId, Public], list[tuple[ServerKeyId, Address, int]]]:
        """One batched generation: (the keys generated, the requests left for the one-key protocol)."""
        assert self.cluster is not None
        cluster = self.cluster
        session = secrets.token_hex(16)
        by_key = {key_id: (key_id, author, threshold) for key_id, author, threshold in requests}
        if len(by_key) != len(requests):
            return {}, list(requests)
        left: set[ServerKeyId] = set()

        async def each(body: dict) -> dict[Address, dict]:
            replies = await asyncio.gather(*(cluster.request(p, dict(body, session=session), timeout=STEP_TIMEOUT)
                                             for p in participants), return_exceptions=True)
            for reply in replies:
                if isinstance(reply, BaseException):
                    raise reply
            return dict(zip(participants, replies))  # type: ignore[arg-type]

        try:
            async with asyncio.timeout(SESSION_TIMEOUT):
                inits = await each({"type": "dkgb_init", "participants": [p.hex() for p in participants],
                                    "items": [{"key_id": k.hex(), "author": a.hex(), "threshold": t}
                                              for k, a, t in requests]})
                for reply in inits.values():
                    left.update(ServerKeyId.from_hex(k) for k in (reply.get("refused") or {}))
                    if reply.get("undelivered"):
                        left.update(by_key)  # a missing dealing: only the one-key protocol's complaints settle it
                sums: dict[str, list[str]] = {}  # every participant answered once it had every dealer's shares
                for key_id in by_key:
                    if key_id in left:
                        continue
                    column_sums = self._published_sums(key_id, by_key[key_id][2], participants, inits)
                    if column_sums is None:
                        left.add(key_id)
                    else:
                        sums[key_id.hex()] = column_sums
                committed = await each({"type": "dkgb_verify", "phase": "commit", "items": sums})
        except (ClusterError, TimeoutError, SessionError, ValueError, KeyError, TypeError) as exc:
            log.info("batched generation abandoned, its keys go one by one", extra={
                "keys": len(requests), "error": _reason(exc)})
            for p in participants:
                if cluster.is_connected(p):
                    with contextlib.suppress(ClusterError, TimeoutError):
                        await cluster.request(p, {"type": "dkgb_abort", "session": session}, timeout=2)
            return {}, list(requests)
        generated: dict[ServerKeyId, Public] = {}
        for key_hex in sums:
            answers = [(reply.get("items") or {}).get(key_hex) for reply in committed.values()]
            publics = {a.get("public") for a in answers if isinstance(a, dict)}
            key_id = ServerKeyId.from_hex(key_hex)
            if len(publics) == 1 and None not in publics:
                generated[key_id] = Public.from_hex(publics.pop())  # type: ignore[arg-type]
            else:  # stored by some: the one-key protocol now answers with the reason (the key exists)
                left.add(key_id)
        if left:
            log.info("keys left a batched generation, they go one by one", extra={"keys": len(left)})
        return generated, [by_key[k] for k in by_key if k in left]

    @staticmethod
    def _published_sums(key_id: ServerKeyId, threshold: int, participants: list[Address],
                        finished: dict[Address, dict]) -> list[str] | None:
        """The sums of every dealer's Feldman commitments to a key, if every participant's answer about it is in
        order: well-formed commitments, its own share check passed, the commitments it received equal to the
        ones each dealer published (a dealer that showed different ones to different receivers is caught), and
        its public share on the polynomial those sums fix (a dealer whose Feldman commitments do not match what
        it dealt is caught; this is what a round of Feldman checks at the receivers would find)."""
        answers = [(finished[p].get("items") or {}).get(key_id.hex()) for p in participants]
        if not all(isinstance(a, dict) and a.get("ok") is True for a in answers):
            return None
        try:
            pedersen = [[parse_point(c, "commitment") for c in a["pedersen"]] for a in answers]
            feldman = [[parse_point(c, "commitment") for c in a["feldman"]] for a in answers]
            public_shares = {m.id_number(p): parse_point(a["share_public"], "public share")
                             for p, a in zip(participants, answers)}
        except (SessionError, KeyError, TypeError):
            return None
        if any(len(c) != threshold + 1 for c in pedersen + feldman):
            return None
        published = _digest([c for commitments in pedersen for c in commitments])
        if any(a.get("view") != published for a in answers):
            return None
        try:
            sums = [m.point_add(*column) for column in zip(*feldman)]
        except CryptoError:
            return None
        return [c.hex() for c in sums] if m.feldman_consistent(sums, public_shares) else None

    @staticmethod
    def _published(finished: dict[Address, dict], threshold: int,
                   culprits: dict[Address, str]) -> tuple[dict[Address, list[str]], dict[Address, list[str]]]:
        """Every dealer's published commitments; a dealer whose lists are malformed is named at once."""
        pedersen, feldman = {}, {}
        for dealer, reply in finished.items():
            try:
                p = [parse_point(c, "commitment").hex() for c in reply["pedersen"]]
                f = [parse_point(c, "commitment").hex() for c in reply["feldman"]]
                if len(p) != threshold + 1 or len(f) != threshold + 1:
                    raise SessionError("wrong number of commitments")
            except (SessionError, KeyError, TypeError):
                culprits[dealer] = "malformed commitments"
                continue
            pedersen[dealer], feldman[dealer] = p, f
        return pedersen, feldman

    async def _settle_complaints(self, session: str, finished: dict[Address, dict], pedersen: dict[Address, list[str]],
                                 h: Public, culprits: dict[Address, str]) -> dict[tuple[Address, Address], dict]:
        """Ask each accused dealer to reveal every disputed share; returns the refuting reveals by (receiver, dealer)."""
        assert self.cluster is not None
        disputes: set[tuple[Address, Address]] = set()
        for receiver, reply in finished.items():
            complaints = reply.get("complaints") if isinstance(reply.get("complaints"), dict) else {}
            views = reply.get("views") if isinstance(reply.get("views"), dict) else {}
            for dealer, commitments in pedersen.items():
                if dealer.hex() in complaints or views.get(dealer.hex()) != _digest(
                        [Public.from_hex(c) for c in commitments]):
                    disputes.add((receiver, dealer))
        revealed: dict[tuple[Address, Address], dict] = {}

        async def settle(receiver: Address, dealer: Address) -> None:
            complaint = finished[receiver].get("complaints", {}).get(dealer.hex(), "")
            why = complaint or "equivocation"
            try:
                reply = await self.cluster.request(dealer, {  # type: ignore[union-attr]
                    "type": "dkg_reveal", "session": session, "receiver": receiver.hex(), "complaint": complaint,
                    "view": finished[receiver].get("views", {}).get(dealer.hex(), "none"),
                    "signature": finished[receiver].get("signatures", {}).get(dealer.hex(), "")},
                    timeout=STEP_TIMEOUT)
                share = parse_scalar(reply.get("share"), "share")
                blinding = parse_scalar(reply.get("blinding"), "blinding")
                ok = m.verify_pedersen(share, blinding, m.id_number(receiver),
                                       [Public.from_hex(c) for c in pedersen[dealer]], h)
            except (ClusterError, TimeoutError, SessionError):
                ok = False
            if ok:
                log.warning("dkg complaint refuted: the revealed share checks", extra={
                    "dealer": dealer.hex(), "accuser": receiver.hex(), "complaint": why})
                revealed[(receiver, dealer)] = {"share": scalar_hex(share), "blinding": scalar_hex(blinding)}
            else:
                culprits.setdefault(dealer, f"{why} complaint by {receiver.hex()} upheld: the revealed share fails "
                                            f"its Pedersen commitments or was not revealed")
                log.warning("dkg complaint upheld", extra={"dealer": dealer.hex(), "accuser": receiver.hex(),
                                                           "check": why})

        await asyncio.gather(*(settle(r, d) for r, d in disputes if d not in culprits))
        return revealed

    def _judge_feldman(self, key_id: ServerKeyId, accuser: Address, dealer: Address, evidence: Any,
                       pedersen: dict[Address, list[str]], feldman: dict[Address, list[str]], h: Public,
                       culprits: dict[Address, str]) -> None:
        x = m.id_number(accuser)
        try:
            share = parse_scalar(evidence.get("share"), "share")
            blinding = parse_scalar(evidence.get("blinding"), "blinding")
            upheld = m.verify_pedersen(share, blinding, x, [Public.from_hex(c) for c in pedersen[dealer]], h) \
                and not m.verify_feldman(share, x, [Public.from_hex(c) for c in feldman[dealer]])
        except (SessionError, KeyError, AttributeError, ValueError):
            upheld = False
        if upheld:
            culprits.setdefault(dealer, f"feldman: published commitments do not match the share of {accuser.hex()}")
        else:
            culprits.setdefault(accuser, f"false complaint against {dealer.hex()}")
        log.warning("dkg feldman complaint " + ("upheld" if upheld else "rejected"), extra={
            "key": key_id.hex(), "dealer": dealer.hex(), "accuser": accuser.hex(),
            "check": "feldman" if upheld else "false_complaint"})

    @staticmethod
    def _enough(key_id: ServerKeyId, threshold: int, qualified: list[Address], culprits: dict[Address, str]) -> None:
        if len(culprits) > threshold or len(qualified) < threshold + 1:
            log.warning("generation refused: too many faulty key servers", extra={
                "key": key_id.hex(), "threshold": threshold, "qualified": len(qualified), "faulty": _named(culprits)})
            raise SessionError(f"{len(culprits)} faulty key servers, at most {threshold} (the threshold) tolerated: "
                               + _named(culprits))

    async def retrieve_document_key_shadow(self, key_id: ServerKeyId, requester: Address,
                                           indices: dict[Address, int], block: int) -> None:
        """Master of a chain shadow retrieval: picks t + 1 connected holders (the next ones after this server in the
        key's rotation, the servers that answer its common part first), collects their shadow points, computes the
        decrypted secret and reports it to every participant, which then holds its personal part until the chain
        names the requester's public key (`personal_part`) at `block` (this server's head) or later. Nothing here
        needs that key, so a retrieval can run while its common part is still being confirmed."""
        assert self.cluster is not None
        cluster = self.cluster
        share = self.storage.get(key_id)
        if share is None or share.common_point is None or share.encrypted_point is None:
            raise SessionError(f"no document key stored for {key_id.hex()}")
        ring = sorted((h for h in share.holders if h in indices), key=indices.__getitem__)
        candidates = [self.self_id] + [h for h in key_rotation(key_id, ring)
                                       if h != self.self_id and cluster.is_connected(h)]
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
            raise SessionError(f"document key shadow retrieval failed: {_reason(exc)}") from None

    # ------------------------------------------------------------------------------ direct (HTTP) requests: master
    def _own_share(self, key_id: ServerKeyId) -> KeyShare:
        share = self.storage.get(key_id)
        if share is None:
            raise SessionError(f"server key {key_id.hex()} is not known", UNKNOWN_KEY)
        return share

    async def _check_requester(self, key_id: ServerKeyId, request_signature: str) -> Public:
        """The master's own early check, so a refused request costs no session (participants check again)."""
        return await self._authorize(key_id, {"request_signature": request_signature})

    def _connected_holders(self, share: KeyShare, among: list[Address]) -> list[Address]:
        """This server first, then the connected holders of its key version that are in the current set."""
        assert self.cluster is not None
        return [self.self_id] + [h for h in share.holders
                                 if h != self.self_id and h in among and self.cluster.is_connected(h)]

    async def store_document_key(self, key_id: ServerKeyId, request_signature: str, common_point: Public,
                                 encrypted_point: Public) -> None:
        """Every holder checks, then every holder stores (all holders must be connected: one left out could never
        take part in a retrieval)."""
        assert self.cluster is not None
        cluster = self.cluster
        share = self._own_share(key_id)
        await self._check_requester(key_id, request_signature)
        if share.common_point is not None:
            raise SessionError(f"a document key is already stored for {key_id.hex()}", DOCUMENT_KEY_EXISTS)
        missing = [h.hex() for h in share.holders if not cluster.is_connected(h)]
        if missing:
            raise SessionError(f"consensus unreachable: holders not connected: {', '.join(missing)}",
                               CONSENSUS_UNREACHABLE)
        body = {"type": "doc_store", "key_id": key_id.hex(), "version": share.version.hex(),
                "request_signature": request_signature, "common_point": common_point.hex(),
                "encrypted_point": encrypted_point.hex()}
        try:
            async with asyncio.timeout(SESSION_TIMEOUT):
                for phase in ("check", "commit"):
                    async with asyncio.TaskGroup() as tasks:
                        for holder in share.holders:
                            tasks.create_task(cluster.request(holder, dict(body, phase=phase), timeout=STEP_TIMEOUT))
        except (ExceptionGroup, ClusterError, TimeoutError, SessionError) as exc:
            raise SessionError(f"document key store failed: {_reason(exc)}", _code(exc)) from None

    async def generate_document_key(self, key_id: ServerKeyId, request_signature: str, threshold: int,
                                    participants: list[Address]) -> bytes:
        """Server-side document key generation: a server key by DKG, then a random document key stored through the
        same path as a client's store. Returns the document key ECIES-encrypted to the requester."""
        requester = await self._check_requester(key_id, request_signature)
        public = await self.generate_server_key(key_id, requester.address(), threshold, participants,
                                                request_signature=request_signature)
        generated = generate_document_key(public, requester)
        await self.store_document_key(key_id, request_signature, generated.common_point, generated.encrypted_point)
        return generated.encrypted_key

    async def _retrieval_parts(self, key_id: ServerKeyId, request_signature: str, mode: str,
                               among: list[Address]) -> tuple[KeyShare, Public, int, list[dict]]:
        assert self.cluster is not None
        share = self._own_share(key_id)
        requester = await self._check_requester(key_id, request_signature)
        if share.common_point is None or share.encrypted_point is None:
            raise SessionError(f"no document key stored for {key_id.hex()}", UNKNOWN_DOCUMENT_KEY)
        candidates = self._connected_holders(share, among)
        if len(candidates) < share.threshold + 1:
            raise SessionError(f"consensus unreachable: {len(candidates)} key servers holding the key are connected, "
                               f"{share.threshold + 1} needed", CONSENSUS_UNREACHABLE)
        request = {"type": "shadow_part", "key_id": key_id.hex(), "version": share.version.hex(), "mode": mode,
                   "request_signature": request_signature}
        try:
            _, parts, access_key = await self._collect_shadow_parts(share, candidates, request, mode)
        except (ExceptionGroup, ClusterError, TimeoutError, SessionError) as exc:
            raise SessionError(f"document key retrieval failed: {_reason(exc)}", _code(exc)) from None
        return share, requester, access_key, parts

    async def _collect_shadow_parts(self, share: KeyShare, candidates: list[Address], body: dict,
                                    mode: str) -> tuple[list[Address], list[dict], int]:
        """Shadow parts of t + 1 holders, each checked against the holder's public share (from the key's Feldman
        commitments). A holder whose part fails its proof, that fails or cannot be reached is named and replaced by
        another holder while t + 1 usable ones remain; a decision (access denied, unknown key...) is the answer."""
        assert self.cluster is not None
        cluster = self.cluster
        assert share.common_point is not None
        commitments = self.storage.commitments(share)
        culprits: dict[Address, str] = {}
        while True:
            pool = [c for c in candidates if c not in culprits]
            if len(pool) < share.threshold + 1:
                raise SessionError(f"consensus unreachable: {len(pool)} usable holders, {share.threshold + 1} needed"
                                   + (f"; left out: {_named(culprits)}" if culprits else ""), CONSENSUS_UNREACHABLE)
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
            trusted = self.self_id if self.faults is None or not self.faults.corrupts("shadow") else None
            for p, r in zip(participants, results):
                if isinstance(r, BaseException):
                    if not isinstance(r, Exception):
                        raise r
                    if _code(r) != FAILED:
                        raise SessionError(_reason(r), _code(r))
                    failed[p] = _reason(r)
                elif p != trusted:
                    why = check_shadow_part(commitments, p, xs, access_key, share.common_point, mode, r)
                    if why is not None:
                        failed[p] = why
                        log.warning("retrieval: faulty shadow part", extra={
                            "key": share.key_id.hex(), "holder": p.hex(), "check": "dleq_proof"})
            if not failed:
                return participants, list(results), access_key  # type: ignore[arg-type]
            log.warning("retrieval: holders left out, retrying with others", extra={
                "key": share.key_id.hex(), "left_out": _named(failed)})
            culprits.update(failed)

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

    async def sign(self, kind: str, key_id: ServerKeyId, request_signature: str, message_hash: bytes,
                   among: list[Address]) -> bytes:
        """Threshold signing with the server key: Schnorr by t + 1 holders (c ‖ s), ECDSA by 2t + 1 (r ‖ s ‖ v).
        The result is checked against the server key public before it is returned."""
        assert self.cluster is not None
        if len(message_hash) != 32:
            raise SessionError("the message hash must be 32 bytes", BAD_REQUEST)
        share = self._own_share(key_id)
        await self._check_requester(key_id, request_signature)
        needed = share.threshold + 1 if kind == "schnorr" else 2 * share.threshold + 1
        candidates = self._connected_holders(share, among)
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
                reason = _reason(last) if last is not None else "not enough signers"
                raise SessionError(f"{kind} signing failed: {reason}"
                                   + (f"; left out: {_named(culprits)}" if culprits else ""),
                                   _code(last) if last is not None else CONSENSUS_UNREACHABLE)
            try:
                return await self._sign_attempt(kind, share, request_signature, message_hash, pool[:needed])
            except _SignersFailed as exc:
                # a decision (access denied, unknown key...) is the answer; anything else: retry without them
                if exc.code != FAILED or not exc.culprits:
                    raise SessionError(f"{kind} signing failed: {exc}", exc.code) from None
                log.warning("signing: signers left out, retrying with others", extra={
                    "key": key_id.hex(), "kind": kind, "left_out": _named(exc.culprits)})
                culprits.update(exc.culprits)
                last = exc

    async def _sign_attempt(self, kind: str, share: KeyShare, request_signature: str, message_hash: bytes,
                            signers: list[Address]) -> bytes:
        """One signing session among `signers`; _SignersFailed names the signers to leave out of the next one."""
        assert self.cluster is not None
        cluster = self.cluster
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
                gone = {p: _reason(r) for p, r in failed.items() if isinstance(r, PeerUnavailable)}
                raise _SignersFailed(gone or {p: _reason(r) for p, r in failed.items()},
                                     _code(BaseExceptionGroup("signing", list(failed.values()))))
            return {p: r for p, r in zip(signers, results)}  # type: ignore[misc]

        try:
            async with asyncio.timeout(SESSION_TIMEOUT):
                await each({"type": "sign_init", "kind": kind, "key_id": key_id.hex(), "version": share.version.hex(),
                            "participants": [p.hex() for p in signers], "message_hash": "0x" + message_hash.hex(),
                            "request_signature": request_signature})
                await each({"type": "sign_deal"})
                revealed = await each({"type": "sign_reveal"})
                verified = await each({"type": "sign_verify",
                                       "feldman": {p.hex(): r["feldman"] for p, r in revealed.items()}})
                nonces = {r["nonce_public"] for r in verified.values()}
                if len(nonces) != 1:
                    raise SessionError("signers computed different nonces")
                nonce_public = parse_point(nonces.pop(), "nonce_public")
                if kind == "schnorr":
                    partials = {p: parse_scalar(r["partial"], "partial") for p, r in verified.items()}
                    s = sg.schnorr_combine_weighted(partials.values())
                    signature = (m.schnorr_challenge(message_hash, nonce_public), s)
                    if not m.schnorr_verify(share.public, message_hash, signature):
                        raise _SignersFailed(self._bad_schnorr_partials(share, signers, revealed, partials,
                                                                        signature[0]), FAILED,
                                             "the combined Schnorr signature does not verify")
                    return sg.schnorr_to_bytes(signature)
                inverse_blind = sg.ecdsa_inverse_blind(
                    {m.id_number(p): parse_scalar(r["blinded"], "blinded") for p, r in verified.items()})
                partials_ecdsa = await each({"type": "sign_ecdsa_partial", "inverse_blind": scalar_hex(inverse_blind)})
                result = sg.ecdsa_combine(
                    {m.id_number(p): parse_scalar(r["partial"], "partial") for p, r in partials_ecdsa.items()},
                    nonce_public)
                if not sg.ecdsa_verify(share.public, message_hash, result) \
                        or sg.ecdsa_recover(result, message_hash) != share.public:
                    # masked ECDSA partials cannot be checked one by one: nobody can be named
                    raise SessionError("the combined ECDSA signature does not verify")
                return result
        except (_SignersFailed, ExceptionGroup, ClusterError, TimeoutError, SessionError, CryptoError,
                KeyError) as exc:
            for p in signers:
                if cluster.is_connected(p):
                    try:
                        await cluster.request(p, {"type": "sign_abort", "session": session}, timeout=2)
                    except (ClusterError, TimeoutError):
                        pass
            if isinstance(exc, _SignersFailed):
                raise
            raise SessionError(f"{kind} signing failed: {_reason(exc)}", _code(exc)) from None

    def _bad_schnorr_partials(self, share: KeyShare, signers: list[Address], revealed: dict[Address, dict],
                              partials: dict[Address, int], challenge: int) -> dict[Address, str]:
        """The signers whose partial fails s_i·G == λ_i·(K_i − c·P_i), with K_i the joint nonce's commitment at x_i
        (from the revealed Feldman commitments) and P_i the public share (from the key's commitments)."""
        commitments = self.storage.commitments(share)
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


class _SignersFailed(Exception):
    def __init__(self, culprits: dict[Address, str], code: str, message: str | None = None) -> None:
        super().__init__(message or _named(culprits))
        self.culprits, self.code = culprits, code


def _named(culprits: dict[Address, str]) -> str:
    return "; ".join(f"{k.hex()} ({why})" for k, why in sorted(culprits.items(), key=lambda i: bytes(i[0])))


def _code(exc: BaseException) -> str:
    """The most telling error code among the (possibly grouped) failures of a session."""
    codes: set[str] = set()

    def collect(e: BaseException) -> None:
        if isinstance(e, BaseExceptionGroup):
            for inner in e.exceptions:
                collect(inner)
        elif isinstance(getattr(e, "code", None), str):
            codes.add(e.code)  # type: ignore[attr-defined]

    collect(exc)
    return next((c for c in _CODE_PRIORITY if c in codes), FAILED)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(_reason(e) for e in exc.exceptions)
    return str(exc) or type(exc).__name__
