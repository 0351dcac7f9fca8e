"""What every session protocol shares: the context (this key server's key pair, cluster, share storage, ACL check,
result sink and test-only fault plan), the router that hands each cluster message to the protocol that registered
its type, the session tables it expires, `SessionError` with its codes, the wire-value parsers and the helpers
several protocols use. Protocol modules import this one; it imports none of them.

Wire values: points and byte strings as 0x-hex, scalars as 0x-hex of 32 bytes.
"""

from __future__ import annotations

import contextlib
import functools
import time
from typing import Any, Awaitable, Callable, ClassVar

from ...crypto import Address, CryptoError, KeyPair, Public, ServerKeyId, keccak256
from ...crypto import math as m
from ...crypto import signing as sg
from ..faults import FaultPlan
from ..limits import PeerSessions
from ..net import Cluster
from ..storage import KeyShare, KeyStorage

SESSION_TIMEOUT = 30.0
STEP_TIMEOUT = 15.0
MAX_PARTICIPANTS = 256
CONNECT_GRACE = 5.0  # seconds a session waits for participants that are not connected yet
MAX_BATCH = 1000  # what a key server accepts in one message

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


def failure_code(exc: BaseException) -> str:
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


def failure_reason(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(failure_reason(e) for e in exc.exceptions)
    return str(exc) or type(exc).__name__


def named(culprits: dict[Address, str]) -> str:
    return "; ".join(f"{k.hex()} ({why})" for k, why in sorted(culprits.items(), key=lambda i: bytes(i[0])))


# ------------------------------------------------------------------------------------------------ wire values
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


def parse_session_id(body: dict) -> str:
    """A batch's session id: 16 random bytes as 32 hex digits (the batched protocols name sessions so)."""
    session = body.get("session")
    if not isinstance(session, str) or len(session) != 32:
        raise SessionError("bad session id")
    try:
        bytes.fromhex(session)
    except ValueError:
        raise SessionError("bad session id") from None
    return session


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


# ------------------------------------------------------------------------------------- shared by several protocols
def key_rotation(key_id: ServerKeyId, ring: list[Address]) -> list[Address]:
    """`ring` (the chain's order) rotated to start at the key id's place in it: who leads a key's sessions and who
    answers first. The chain service and the sessions must agree on it, so both take it from here."""
    if not ring:
        return []
    start = int.from_bytes(bytes(key_id), "big") % len(ring)
    return ring[start:] + ring[:start]


def pedersen_point(key_id: ServerKeyId, participants: list[Address]) -> Public:
    """The session's second generator H, derived from public data so nobody knows its discrete log."""
    return m.derived_point(bytes(key_id) + b"".join(bytes(p) for p in participants))


def commitments_digest(points: list[Public]) -> str:
    return "0x" + keccak256(b"".join(bytes(p) for p in points)).hex()


@functools.lru_cache(maxsize=4096)
def public_share(commitments: tuple[Public, ...], x: int) -> Public:
    """A holder's public share s_x·G from the key's Feldman commitments: fixed per key version, and asked on every
    retrieval the holder takes part in (t multiplications), so the last few thousand are kept."""
    return m.commitment_at(commitments, x)


def hold_early(waiting_sessions: dict, max_sessions: int, session: str, dealer: Address, dealt: Any) -> None:
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


# ------------------------------------------------------------------------------------------ router and context
class Router:
    """Hands each cluster message to the handler its protocol registered for the message type, after forgetting
    sessions whose master went quiet and early dealings that waited too long for their session."""

    def __init__(self, context: SessionContext) -> None:
        self._context = context
        # message type -> (protocol, handler name), looked up by name per message as a class's own table would be
        # (a handler replaced on a protocol object, as tests do, is the one called)
        self._routes: dict[str, tuple[ThresholdProtocol, str]] = {}
        self._sessions: list[dict] = []  # session -> state with a `started` time
        self._early: list[dict] = []  # session -> (when the first came, what waits)
        self.peer_sessions = PeerSessions(self._is_live)  # the bound on sessions one peer opens here

    def register(self, protocol: ThresholdProtocol) -> None:
        for kind, name in protocol.HANDLERS.items():
            if kind in self._routes:
                raise ValueError(f"message type {kind} registered twice")
            if not callable(getattr(protocol, name, None)):  # a misspelt handler fails at start, not per message
                raise ValueError(f"{type(protocol).__name__} has no handler {name}")
            self._routes[kind] = (protocol, name)

    def track_sessions(self, sessions: dict) -> None:
        """Track a table of running sessions (values with a `started` time) for expiry."""
        self._sessions.append(sessions)

    def track_early(self, early: dict) -> None:
        """Track a table of dealings waiting for their session ((first arrival, items) values) for expiry."""
        self._early.append(early)

    async def handle(self, peer: Address, body: dict) -> dict:
        kind = body.get("type")
        route = self._routes.get(kind) if isinstance(kind, str) else None
        if route is None:
            raise SessionError(f"unknown request type {kind!r}")
        self._expire()
        faults = self._context.faults
        if faults is not None:
            await faults.before(kind)  # type: ignore[arg-type]
        protocol, name = route
        session = body.get("session")
        if peer == self._context.self_id or (isinstance(session, str) and self._is_live(session)):
            return await getattr(protocol, name)(peer, body)  # this server's own sessions, and steps of live ones
        if not self.peer_sessions.open(peer):
            raise SessionError(f"busy: {self.peer_sessions.limit} sessions of key server {peer.hex()} are open here")
        try:
            return await getattr(protocol, name)(peer, body)
        finally:
            self.peer_sessions.close(peer, session if isinstance(session, str) and self._is_live(session) else None)

    def _is_live(self, session: str) -> bool:
        return any(session in sessions for sessions in self._sessions)

    def _expire(self) -> None:
        now = time.monotonic()
        for sessions in self._sessions:
            for session, state in list(sessions.items()):
                if now - state.started > SESSION_TIMEOUT * 2:
                    del sessions[session]
        for early in self._early:
            for session, (since, _) in list(early.items()):
                if now - since > SESSION_TIMEOUT:
                    del early[session]


class SessionContext:
    """This key server as the protocols see it. `cluster` and `faults` are set after construction (the cluster
    needs the router's handler first); protocols read them through the context at use, never keep copies."""

    def __init__(self, keypair: KeyPair, storage: KeyStorage, check_access: AccessChecker,
                 on_result: ResultSink) -> None:
        self.keypair = keypair
        self.storage = storage
        self.check_access = check_access
        self.on_result = on_result  # (response call name, params) for the chain service to submit
        self.cluster: Cluster | None = None
        self.faults: FaultPlan | None = None  # test-only fault injection (keyserver.faults)
        self.router = Router(self)

    @property
    def self_id(self) -> Address:
        return self.keypair.address

    async def authorize(self, key_id: ServerKeyId, body: dict) -> Public:
        """The requester of a direct (HTTP) request, recovered from its signature and checked against the chain ACL."""
        requester = requester_from(key_id, body.get("request_signature"))
        if not await self.check_access(key_id, requester.address()):
            raise SessionError(f"requester {requester.address().hex()} may not access key {key_id.hex()}", ACCESS_DENIED)
        return requester

    async def check_requester(self, key_id: ServerKeyId, request_signature: str) -> Public:
        """The master's own early check, so a refused request costs no session (participants check again)."""
        return await self.authorize(key_id, {"request_signature": request_signature})

    def own_share(self, key_id: ServerKeyId) -> KeyShare:
        share = self.storage.get(key_id)
        if share is None:
            raise SessionError(f"server key {key_id.hex()} is not known", UNKNOWN_KEY)
        return share

    def negotiated_share(self, key_id: ServerKeyId, version: object) -> KeyShare:
        """This server's share of the key version the master uses. A master can only be on a migration's new version
        once the chain completed that migration, so a pending version it names is activated here; any other mismatch
        is refused rather than mixing shares of two sharings (which would decrypt to garbage)."""
        share = self.storage.get(key_id)
        if share is None:
            raise SessionError(f"no share of {key_id.hex()}", UNKNOWN_KEY)
        if not isinstance(version, str) or share.version.hex() == version:
            return share
        with contextlib.suppress(ValueError):  # a proactive refresh's staged or retired version (share_versions.py)
            refreshed = self.storage.share_version(key_id, bytes.fromhex(version))
            if refreshed is not None:
                return refreshed
        for migration_id in self.storage.pending_migrations():
            if migration_id[:16].hex() == version:
                self.storage.promote(migration_id)
                promoted = self.storage.get(key_id)
                if promoted is not None and promoted.version.hex() == version:
                    return promoted
        raise SessionError(f"key version mismatch for {key_id.hex()}")

    def connected_holders(self, share: KeyShare, among: list[Address]) -> list[Address]:
        """This server first, then the connected holders of its key version that are in the current set."""
        assert self.cluster is not None
        return [self.self_id] + [h for h in share.holders
                                 if h != self.self_id and h in among and self.cluster.is_connected(h)]


class ThresholdProtocol:
    """One session protocol: its state, its participant handlers (HANDLERS: message type -> method name, registered
    with the router on construction) and its master side, over the shared context."""

    HANDLERS: ClassVar[dict[str, str]] = {}

    def __init__(self, context: SessionContext) -> None:
        self.ctx = context
        context.router.register(self)
