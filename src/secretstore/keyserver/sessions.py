"""Threshold sessions between key servers: distributed key generation and document key shadow retrieval.

A session is driven by a master over the cluster's request/response messaging; every key server also answers the
participant side (`KeyServerCore.handle`). Secret values travel only between the two key servers concerned, over the
encrypted cluster links (DKG shares go dealer -> receiver directly, never through the master).
Wire values: points and byte strings as 0x-hex, scalars as 0x-hex of 32 bytes.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from ..crypto import Address, KeyPair, Public, ServerKeyId, ecies
from ..crypto import math as m
from .net import Cluster, ClusterError
from .storage import KeyAlreadyExists, KeyShare, KeyStorage

log = logging.getLogger(__name__)

SESSION_TIMEOUT = 30.0
STEP_TIMEOUT = 15.0
CONNECT_GRACE = 5.0  # seconds a DKG waits for participants that are not connected yet

AccessChecker = Callable[[ServerKeyId, Address], Awaitable[bool]]
ResultSink = Callable[[str, dict], None]


class SessionError(Exception):
    """A session could not complete; the request gets an error response."""


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


def parse_ids(values: Any) -> list[Address]:
    if not isinstance(values, list) or not values or len(values) > 255:
        raise SessionError("participants: expected a non-empty list")
    ids = [Address.from_hex(v, "participant") for v in values]
    if len(set(ids)) != len(ids):
        raise SessionError("participants must be distinct")
    return ids


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
    started: float = field(default_factory=time.monotonic)
    received: dict[Address, tuple[int, int, list[Public]]] = field(default_factory=dict)
    share: int | None = None

    def __repr__(self) -> str:
        return f"DkgState({self.key_id.hex()}, t={self.threshold})"


class KeyServerCore:
    """The key server's threshold logic: participant handlers plus the master side of each session."""

    def __init__(self, keypair: KeyPair, storage: KeyStorage, check_access: AccessChecker, on_result: ResultSink) -> None:
        self.keypair = keypair
        self.storage = storage
        self.check_access = check_access
        self.on_result = on_result  # (response call name, params) for the chain service to submit
        self.cluster: Cluster | None = None
        self.dkg: dict[str, DkgState] = {}
        self.shadows: dict[tuple[ServerKeyId, Address], bytes] = {}
        # servers set change: (migration id hex, key id hex) -> dealer -> (share, commitments, key facts)
        self.reshares: dict[tuple[str, str], dict[Address, tuple[int, list[Public], dict]]] = {}

    @property
    def self_id(self) -> Address:
        return self.keypair.address

    # --------------------------------------------------------------------------------------- participant side
    async def handle(self, peer: Address, body: dict) -> dict:
        kind = body.get("type")
        handler = {
            "dkg_init": self._dkg_init, "dkg_deal": self._dkg_deal, "dkg_share": self._dkg_share,
            "dkg_finish": self._dkg_finish, "dkg_verify": self._dkg_verify, "dkg_abort": self._dkg_abort,
            "shadow_part": self._shadow_part, "shadow_report": self._shadow_report,
            "list_keys": self._list_keys, "reshare_deal": self._reshare_deal, "reshare_share": self._reshare_share,
            "reshare_finish": self._reshare_finish, "migration_done": self._migration_done,
            "key_facts": self._key_facts,
        }.get(kind)  # type: ignore[arg-type]
        if handler is None:
            raise SessionError(f"unknown request type {kind!r}")
        self._expire()
        return await handler(peer, body)

    def _expire(self) -> None:
        now = time.monotonic()
        for session, state in list(self.dkg.items()):
            if now - state.started > SESSION_TIMEOUT * 2:
                del self.dkg[session]

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
            raise SessionError(f"server key {key_id.hex()} already exists")
        if any(s.key_id == key_id for s in self.dkg.values()):
            raise SessionError(f"a generation of {key_id.hex()} is already running")
        session = body.get("session")
        if not isinstance(session, str) or not 16 <= len(session) <= 64:
            raise SessionError("bad session id")
        self.dkg[session] = DkgState(key_id, Address.from_hex(body.get("author", ""), "author"), threshold, participants,
                                     m.random_polynomial(threshold), m.random_polynomial(threshold),
                                     pedersen_point(key_id, participants))
        return {}

    async def _dkg_deal(self, peer: Address, body: dict) -> dict:
        """Send every participant its share of this node's polynomial, directly."""
        state = self._session(body)
        commitments = [p.hex() for p in m.pedersen_commitments(state.poly, state.blinding, state.h)]
        assert self.cluster is not None

        async def deal(to: Address) -> None:
            x = m.id_number(to)
            await self.cluster.request(to, {  # type: ignore[union-attr]
                "type": "dkg_share", "session": body["session"], "commitments": commitments,
                "share": scalar_hex(m.poly_eval(state.poly, x)), "blinding": scalar_hex(m.poly_eval(state.blinding, x))},
                timeout=STEP_TIMEOUT)

        async with asyncio.TaskGroup() as tasks:
            for participant in state.participants:
                tasks.create_task(deal(participant))
        return {}

    async def _dkg_share(self, peer: Address, body: dict) -> dict:
        state = self._session(body)
        if peer not in state.participants:
            raise SessionError("dealer is not a participant")
        commitments = [parse_point(c, "commitment") for c in body.get("commitments", [])]
        if len(commitments) != state.threshold + 1:
            raise SessionError("wrong number of commitments")
        share = parse_scalar(body.get("share"), "share")
        blinding = parse_scalar(body.get("blinding"), "blinding")
        if not m.verify_pedersen(share, blinding, m.id_number(self.self_id), commitments, state.h):
            # a complaint: the whole generation aborts
            raise SessionError(f"share from {peer.hex()} does not match its commitments")
        state.received[peer] = (share, blinding, commitments)
        return {}

    async def _dkg_finish(self, peer: Address, body: dict) -> dict:
        state = self._session(body)
        missing = [p.hex() for p in state.participants if p not in state.received]
        if missing:
            raise SessionError(f"no share received from {', '.join(missing)}")
        state.share = sum(s for s, _, _ in state.received.values()) % m.N
        return {"feldman": [p.hex() for p in m.feldman_commitments(state.poly)]}

    async def _dkg_verify(self, peer: Address, body: dict) -> dict:
        state = self._session(body)
        feldman = body.get("feldman")
        if not isinstance(feldman, dict) or set(feldman) != {p.hex() for p in state.participants}:
            raise SessionError("Feldman commitments of every participant are needed")
        x = m.id_number(self.self_id)
        publics = []
        for dealer in state.participants:
            commitments = [parse_point(c, "feldman commitment") for c in feldman[dealer.hex()]]
            if len(commitments) != state.threshold + 1:
                raise SessionError("wrong number of Feldman commitments")
            if not m.verify_feldman(state.received[dealer][0], x, commitments):
                raise SessionError(f"public share of {dealer.hex()} does not match the share it sent")
            publics.append(commitments[0])
        public = m.point_add(*publics)
        assert state.share is not None
        share = KeyShare(state.key_id, state.author, state.threshold, public, bytes.fromhex(body["session"][:32]),
                         tuple(state.participants), state.share)
        try:
            self.storage.insert(share)  # durable before anything is reported
        except KeyAlreadyExists as exc:
            raise SessionError(str(exc)) from None
        finally:
            self.dkg.pop(body["session"], None)
        self.on_result("server_key_generated", {"id": state.key_id.hex(), "server_key_public": public.hex()})
        return {"public": public.hex()}

    async def _dkg_abort(self, peer: Address, body: dict) -> dict:
        self.dkg.pop(body.get("session"), None)  # type: ignore[arg-type]
        return {}

    async def _shadow_part(self, peer: Address, body: dict) -> dict:
        key_id = ServerKeyId.from_hex(body.get("key_id", ""), "key_id")
        requester_public = parse_point(body.get("requester_public"), "requester_public")
        requester = requester_public.address()
        participants = parse_ids(body.get("participants"))
        access_key = parse_scalar(body.get("access_key"), "access_key")
        share = self._negotiated_share(key_id, body.get("version"))
        if share.common_point is None or share.encrypted_point is None:
            raise SessionError(f"no document key stored for {key_id.hex()}")
        if len(participants) != share.threshold + 1 or not set(participants) <= set(share.holders) \
                or self.self_id not in participants:
            raise SessionError("participants must be threshold + 1 holders of the key, including this server")
        if not await self.check_access(key_id, requester):
            raise SessionError(f"requester {requester.hex()} may not access key {key_id.hex()}")
        xs = [m.id_number(p) for p in participants]
        shadow = m.node_shadow(share.secret_share, m.id_number(self.self_id), xs)
        delta = m.random_scalar()
        point = m.node_shadow_point(shadow, access_key, share.common_point, delta)
        coefficient = m.decrypt_shadow_coefficient(shadow, delta)
        encrypted = ecies.encrypt(requester_public, coefficient.to_bytes(32, "big"))
        self.shadows[(key_id, requester)] = encrypted
        return {"shadow_point": point.hex()}

    def _negotiated_share(self, key_id: ServerKeyId, version: object) -> KeyShare:
        """This server's share of the key version the master uses. A master can only be on a migration's new version
        once the chain completed that migration, so a pending version it names is activated here; any other mismatch
        is refused rather than mixing shares of two sharings (which would decrypt to garbage)."""
        share = self.storage.get(key_id)
        if share is None:
            raise SessionError(f"no share of {key_id.hex()}")
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
        mask = body.get("participants")
        encrypted = self.shadows.pop((key_id, requester), None)
        if encrypted is None or not isinstance(mask, int):
            raise SessionError("no shadow computed for this retrieval")
        self.on_result("document_key_personal_retrieved", {
            "id": key_id.hex(), "requester": requester.hex(), "participants": mask,
            "decrypted_secret": decrypted_secret.hex(), "shadow": "0x" + encrypted.hex()})
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
        """As one of t + 1 old holders: deal a fresh degree-t polynomial whose constant term is this server's
        Lagrange-weighted share, to every server of the new set (directly)."""
        key_id = ServerKeyId.from_hex(body.get("key_id", ""), "key_id")
        dealers = parse_ids(body.get("dealers"))
        new_set = parse_ids(body.get("new_set"))
        share = self.storage.get(key_id)
        if share is None:
            raise SessionError(f"this key server holds no share of {key_id.hex()}")
        if len(dealers) != share.threshold + 1 or self.self_id not in dealers or not set(dealers) <= set(share.holders):
            raise SessionError("dealers must be threshold + 1 holders of the key, including this server")
        if len(new_set) < share.threshold + 1:
            raise SessionError("the new set is too small for this key's threshold")
        weighted = share.secret_share * m.lagrange_at_zero(m.id_number(self.self_id), [m.id_number(d) for d in dealers])
        poly = m.random_polynomial(share.threshold, weighted % m.N)
        commitments = [p.hex() for p in m.feldman_commitments(poly)]
        facts = {"public": share.public.hex(), "threshold": share.threshold, "author": share.author.hex(),
                 "common_point": share.common_point.hex() if share.common_point else None,
                 "encrypted_point": share.encrypted_point.hex() if share.encrypted_point else None}
        assert self.cluster is not None

        async def deal(to: Address) -> None:
            await self.cluster.request(to, {  # type: ignore[union-attr]
                "type": "reshare_share", "migration_id": body.get("migration_id"), "key_id": key_id.hex(),
                "share": scalar_hex(m.poly_eval(poly, m.id_number(to))), "commitments": commitments, "facts": facts},
                timeout=STEP_TIMEOUT)

        async with asyncio.TaskGroup() as tasks:
            for member in new_set:
                tasks.create_task(deal(member))
        return {}

    async def _reshare_share(self, peer: Address, body: dict) -> dict:
        facts = body.get("facts")
        if not isinstance(facts, dict) or not isinstance(facts.get("threshold"), int):
            raise SessionError("missing key facts")
        commitments = [parse_point(c, "commitment") for c in body.get("commitments", [])]
        if len(commitments) != facts["threshold"] + 1:
            raise SessionError("wrong number of commitments")
        share = parse_scalar(body.get("share"), "share")
        if not m.verify_feldman(share, m.id_number(self.self_id), commitments):
            raise SessionError(f"re-shared value from {peer.hex()} does not match its commitments")
        slot = (str(body.get("migration_id")), ServerKeyId.from_hex(body.get("key_id", ""), "key_id").hex())
        self.reshares.setdefault(slot, {})[peer] = (share, commitments, facts)
        return {}

    async def _reshare_finish(self, peer: Address, body: dict) -> dict:
        migration_id = bytes.fromhex(str(body.get("migration_id", ""))[2:])
        key_id = ServerKeyId.from_hex(body.get("key_id", ""), "key_id")
        dealers = parse_ids(body.get("dealers"))
        new_set = parse_ids(body.get("new_set"))
        received = self.reshares.pop((str(body.get("migration_id")), key_id.hex()), {})
        if set(received) != set(dealers):
            raise SessionError("re-shared values missing from some dealers")
        facts = [f for _, _, f in received.values()]
        if any(f != facts[0] for f in facts):
            raise SessionError("dealers disagree about the key")
        public = Public.from_hex(facts[0]["public"])
        # the weighted shares add up to the key: their constant-term commitments must add up to its public
        if m.point_add(*(c[0] for _, c, _ in received.values())) != public:
            raise SessionError("re-shared values do not add up to the server key")
        new_share = KeyShare(
            key_id, Address.from_hex(facts[0]["author"]), facts[0]["threshold"], public, migration_id[:16],
            tuple(new_set), sum(s for s, _, _ in received.values()) % m.N,
            Public.from_hex(facts[0]["common_point"]) if facts[0]["common_point"] else None,
            Public.from_hex(facts[0]["encrypted_point"]) if facts[0]["encrypted_point"] else None)
        self.storage.stage_pending(migration_id, new_share)  # durable before the migration is confirmed
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
        missing = [p.hex() for p in new_set if not cluster.is_connected(p)]
        if missing:
            raise SessionError(f"new key servers not connected: {', '.join(missing)}")
        for key in sorted(keys):
            key_id = ServerKeyId.from_hex(key)
            threshold = await self._threshold_of(key_id, holders_of[key])
            dealers = holders_of[key][: threshold + 1]
            if len(dealers) < threshold + 1:
                raise SessionError(f"key {key}: only {len(dealers)} holders reachable, {threshold + 1} needed")
            body = {"migration_id": mid, "key_id": key, "dealers": [d.hex() for d in dealers],
                    "new_set": [p.hex() for p in new_set]}
            try:
                async with asyncio.timeout(SESSION_TIMEOUT):
                    async with asyncio.TaskGroup() as tasks:
                        for dealer in dealers:
                            tasks.create_task(cluster.request(dealer, dict(body, type="reshare_deal"), timeout=STEP_TIMEOUT))
                    async with asyncio.TaskGroup() as tasks:
                        for member in new_set:
                            tasks.create_task(cluster.request(member, dict(body, type="reshare_finish"), timeout=STEP_TIMEOUT))
            except (ExceptionGroup, ClusterError, TimeoutError) as exc:
                raise SessionError(f"key {key}: re-sharing failed: {_reason(exc)}") from None
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
                                  participants: list[Address]) -> Public:
        """Run a DKG over all `participants`; every participant stores its share and reports the public itself."""
        assert self.cluster is not None
        cluster = self.cluster
        session = secrets.token_hex(16)
        # a key server that has just started (or restarted) gets a moment to connect before its absence fails the key
        unreachable = [p.hex() for p in await cluster.wait_connected(participants, CONNECT_GRACE)]
        if unreachable:
            raise SessionError(f"key servers not connected: {', '.join(unreachable)}")

        async def each(body: dict) -> dict[Address, dict]:
            async with asyncio.TaskGroup() as tasks:
                futures = {p: tasks.create_task(cluster.request(p, dict(body, session=session), timeout=STEP_TIMEOUT))
                           for p in participants}
            return {p: f.result() for p, f in futures.items()}

        try:
            async with asyncio.timeout(SESSION_TIMEOUT):
                await each({"type": "dkg_init", "key_id": key_id.hex(), "author": author.hex(), "threshold": threshold,
                            "participants": [p.hex() for p in participants]})
                await each({"type": "dkg_deal"})
                finished = await each({"type": "dkg_finish"})
                verified = await each({"type": "dkg_verify",
                                       "feldman": {p.hex(): r["feldman"] for p, r in finished.items()}})
        except (ExceptionGroup, ClusterError, TimeoutError, SessionError) as exc:
            for p in participants:
                if cluster.is_connected(p):
                    try:
                        await cluster.request(p, {"type": "dkg_abort", "session": session}, timeout=2)
                    except (ClusterError, TimeoutError):
                        pass
            raise SessionError(f"server key generation failed: {_reason(exc)}") from None
        publics = {r["public"] for r in verified.values()}
        if len(publics) != 1:
            raise SessionError("key servers computed different server key publics")
        return Public.from_hex(publics.pop())

    async def retrieve_document_key_shadow(self, key_id: ServerKeyId, requester_public: Public,
                                           indices: dict[Address, int]) -> None:
        """Master of a shadow retrieval: picks t + 1 connected holders, collects their shadow points, computes the
        decrypted secret, and has every participant report its personal part."""
        assert self.cluster is not None
        cluster = self.cluster
        share = self.storage.get(key_id)
        if share is None or share.common_point is None or share.encrypted_point is None:
            raise SessionError(f"no document key stored for {key_id.hex()}")
        candidates = [self.self_id] + [h for h in share.holders if h != self.self_id and cluster.is_connected(h)
                                       and h in indices]
        if len(candidates) < share.threshold + 1:
            raise SessionError(f"only {len(candidates)} holders reachable, {share.threshold + 1} needed")
        participants = candidates[: share.threshold + 1]
        access_key = m.random_scalar()
        request = {"type": "shadow_part", "key_id": key_id.hex(), "version": share.version.hex(),
                   "requester_public": requester_public.hex(),
                   "access_key": scalar_hex(access_key), "participants": [p.hex() for p in participants]}
        try:
            async with asyncio.timeout(SESSION_TIMEOUT):
                async with asyncio.TaskGroup() as tasks:
                    parts = [tasks.create_task(cluster.request(p, request, timeout=STEP_TIMEOUT)) for p in participants]
                points = [parse_point(t.result()["shadow_point"], "shadow_point") for t in parts]
                decrypted = m.decrypt_with_joint_shadow(share.threshold, access_key, share.encrypted_point,
                                                        m.joint_shadow_point(points))
                mask = sum(1 << indices[p] for p in participants)
                report = {"type": "shadow_report", "key_id": key_id.hex(), "requester": requester_public.address().hex(),
                          "decrypted_secret": decrypted.hex(), "participants": mask}
                async with asyncio.TaskGroup() as tasks:
                    for p in participants:
                        tasks.create_task(cluster.request(p, report, timeout=STEP_TIMEOUT))
        except (ExceptionGroup, ClusterError, TimeoutError, SessionError) as exc:
            raise SessionError(f"document key shadow retrieval failed: {_reason(exc)}") from None


def _reason(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(_reason(e) for e in exc.exceptions)
    return str(exc) or type(exc).__name__
