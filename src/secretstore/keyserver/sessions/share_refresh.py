"""Proactive share refresh: at each refresh epoch every key's holders re-randomise their shares, so that shares stolen
in different epochs no longer combine; the server key public and every document key stay the same.

Each holder deals, per key, a random polynomial of the key's degree with a zero constant term to every holder
(directly, one notice per holder for the whole batch) and publishes Feldman commitments to its other coefficients
(A_k = a_k·G, k ≥ 1) to the master; each holder adds what it received to its share. Feldman commitments suffice: the
constant is fixed at zero, so there is nothing to hide or bias, and a dealer cannot cancel the others' polynomials
without knowing their coefficients. Master rounds, many keys per message (a batch's holders are all its keys'):
- `refresh_init`: each holder deals, waits for every dealer's shares and answers with its commitments and, per key,
  the sum of what it received times G. The master adds up the commitments and checks every holder's sum against
  them at once (random weights, `crypto.zero_sharing.zero_sum_consistent`).
- keys that fail (`refresh_check`, `refresh_reveal`, as a DKG's complaints): every receiver checks each dealer's
  share against the commitments that dealer published and signs its complaints; an accused dealer reveals the
  disputed share (only on its receiver's signed word, so no master collects shares); one that checks refutes the
  complaint (and is used), one that does not names the dealer, who is left out. At most t named and at least t + 1
  dealers left, or the key keeps its version this time.
- `refresh_commit`: each holder checks its sum against the commitment sums it is sent and stages the new version
  durably beside the active one (new commitments C'_0 = C_0, C'_k = C_k + ΣA_k).
- `refresh_activate` once every holder staged (their signed acknowledgements go with it), `refresh_erase` of the old
  version once every holder activated (signed as well): one faulty master cannot make holders drop a version that
  others still need. Sessions name the version they use; `storage.share_version` finds it at every step.
Master side: `share_refresh_master`. Fault injection reuses `corrupt=dkg` (a dealing that fails its commitments).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from ...crypto import Address, CryptoError, Public, ServerKeyId, Signature, keccak256
from ...crypto import math as m
from ...crypto.zero_sharing import (on_zero_polynomial, zero_commitment_at, zero_commitments, zero_polynomial,
                                    zero_share)
from .core import (CONSENSUS_UNREACHABLE, MAX_BATCH, SessionContext, SessionError, ThresholdProtocol, hold_early,
                   parse_ids, parse_point, parse_scalar, parse_session_id, scalar_hex)
from .share_refresh_master import YIELD_EVERY, RefreshMaster

log = logging.getLogger(__name__)

SHARES_WAIT = 3.0  # how long a holder waits for every dealer's shares before it answers without them
MAX_EARLY_REFRESHES = 64


def refresh_version(session: str, key_id: ServerKeyId) -> bytes:
    return hashlib.blake2b(bytes.fromhex(session) + bytes(key_id), digest_size=16,
                           person=b"ss-refresh-ver").digest()


def complaint_statement(session: str, key_id: ServerKeyId, dealer: Address, complaint: str) -> bytes:
    return keccak256(b"secretstore/refresh/complaint" + session.encode() + bytes(key_id) + bytes(dealer)
                     + complaint.encode())


def ack_statement(session: str, step: str, key_ids: Sequence[str]) -> bytes:
    """What a holder signs when it has staged (or activated) these keys of a refresh session."""
    return keccak256(b"secretstore/refresh/" + step.encode() + session.encode() + "".join(sorted(key_ids)).encode())


@dataclass
class RefreshItem:
    """One key of a refresh batch, at a holder."""
    base: bytes  # the version refreshed from
    threshold: int
    poly: list[int]  # a_1..a_t (a_0 = 0)
    received: dict[Address, int] = field(default_factory=dict)
    unreadable: bool = False
    total: tuple[int, Public] | None = None  # every dealer's shares added up, and that times G (answered at init)


@dataclass
class RefreshBatch:
    master: Address
    participants: list[Address]
    epoch: int
    items: dict[ServerKeyId, RefreshItem]
    started: float = field(default_factory=time.monotonic)
    dealt_here: set[Address] = field(default_factory=set)
    all_dealt: asyncio.Event = field(default_factory=asyncio.Event)


class ShareRefresh(RefreshMaster, ThresholdProtocol):
    HANDLERS = {"refresh_init": "_init", "refresh_share": "_share", "refresh_check": "_check",
                "refresh_reveal": "_reveal", "refresh_commit": "_commit", "refresh_activate": "_activate",
                "refresh_erase": "_erase", "refresh_abort": "_abort"}

    def __init__(self, context: SessionContext) -> None:
        super().__init__(context)
        self.batches: dict[str, RefreshBatch] = {}
        self.early: dict[str, tuple[float, list[tuple[Address, dict]]]] = {}
        context.router.track_sessions(self.batches)
        context.router.track_early(self.early)
        self.current_epoch: Callable[[], int | None] = lambda: None  # the chain service's view of the epoch
        # sessions this master staged everywhere but could not activate or erase everywhere yet: retried
        self.unfinished: dict[str, tuple[str, list[Address], dict[str, list]]] = {}
        self.retrying: set[str] = set()  # unfinished sessions whose first retry was logged

    # --------------------------------------------------------------------------------------- participant side
    def _batch(self, peer: Address, body: dict) -> RefreshBatch:
        batch = self.batches.get(body.get("session"))  # type: ignore[arg-type]
        if batch is None or batch.master != peer:
            raise SessionError("unknown or expired refresh session")
        return batch

    async def _init(self, peer: Address, body: dict) -> dict:
        """Deal this holder's zero-sharings of every key it accepts, then answer with its commitments and sums once
        every dealer's shares are here. A key it cannot take part in is refused by name (the master leaves it out)."""
        session, epoch = parse_session_id(body), body.get("epoch")
        if session in self.batches:
            raise SessionError("refresh session already exists")
        participants = parse_ids(body.get("participants"))
        if self.ctx.self_id not in participants:
            raise SessionError("this key server is not a participant")
        current = self.current_epoch()
        if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 1 \
                or (current is not None and epoch > current + 1):
            raise SessionError(f"refresh epoch {epoch!r} is not due here (epoch {current})")
        if self.ctx.storage.pending_migrations():
            raise SessionError("a key server set migration is in progress", CONSENSUS_UNREACHABLE)
        raw = body.get("items")
        if not isinstance(raw, list) or not raw or len(raw) > MAX_BATCH:
            raise SessionError(f"items: expected a list of 1 to {MAX_BATCH} keys")
        named = {ServerKeyId.from_hex(e.get("key_id", "") if isinstance(e, dict) else "", "key_id"): e.get("version")
                 for e in raw}
        items, refused = self._accept(named, participants, epoch)
        batch = self.batches[session] = RefreshBatch(peer, participants, epoch, items)
        for dealer, dealt in self.early.pop(session, (0.0, []))[1]:
            try:
                self._keep(batch, dealer, dealt)
            except SessionError as exc:  # as if it never came: a missing share, which a complaint settles
                log.warning("early refresh shares refused", extra={"dealer": dealer.hex(), "error": str(exc)})
        undelivered = await self._deal(session, batch)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(SHARES_WAIT):
                await batch.all_dealt.wait()
        return {"refused": refused, "undelivered": undelivered, "items": await self._sums(batch)}

    def _accept(self, named: dict[ServerKeyId, Any], participants: list[Address], epoch: int
                ) -> tuple[dict[ServerKeyId, RefreshItem], dict[str, str]]:
        """The keys this holder refreshes from the versions the master named (read without opening anything, unless
        the master is on a version other than the active one here), and the others with the reason."""
        storage = self.ctx.storage
        bases = storage.refresh_bases(list(named))
        members = {p.hex() for p in participants}
        running = {key for batch in self.batches.values() for key in batch.items}
        items: dict[ServerKeyId, RefreshItem] = {}
        refused: dict[str, str] = {}
        for key_id, version in named.items():
            base = bases.get(key_id)
            wanted = _version(version)
            if base is not None and wanted is not None and base[0] != wanted:  # a refresh's staged or retired one
                other = storage.share_version(key_id, wanted)
                base = None if other is None else (wanted, other.threshold, base[2], storage.refresh_epoch_of(key_id))
            if base is None or wanted is None:
                refused[key_id.hex()] = "no share of that version here"
            elif set(json.loads(base[2])) != members or len(json.loads(base[2])) != len(members):
                refused[key_id.hex()] = "the participants are not the key's holders"
            elif key_id in running:
                refused[key_id.hex()] = "a refresh of it is already running"
            elif base[3] is not None and base[3] >= epoch:
                refused[key_id.hex()] = f"refreshed at epoch {base[3]} already"
            else:
                items[key_id] = RefreshItem(wanted, base[1], zero_polynomial(base[1]))
        return items, refused

    def _dealt(self, item: RefreshItem, x: int) -> int:
        share = zero_share(item.poly, x)
        if self.ctx.faults is not None and self.ctx.faults.corrupts("dkg"):
            share = (share + 1) % m.N  # fault injection: a dealing (and its reveal) that fails the commitments
        return share

    async def _deal(self, session: str, batch: RefreshBatch) -> list[str]:
        cluster = self.ctx.cluster
        assert cluster is not None

        async def deal(to: Address) -> None:
            x = m.id_number(to)
            dealt = {key_id.hex(): scalar_hex(self._dealt(item, x)) for key_id, item in batch.items.items()}
            await cluster.notify(to, {"type": "refresh_share", "session": session, "items": dealt})

        results = await asyncio.gather(*(deal(p) for p in batch.participants), return_exceptions=True)
        return [p.hex() for p, r in zip(batch.participants, results) if isinstance(r, BaseException)]

    async def _share(self, peer: Address, body: dict) -> dict:
        session = parse_session_id(body)
        raw = body.get("items")
        if not isinstance(raw, dict) or len(raw) > MAX_BATCH:
            raise SessionError("items: expected an object of at most one entry per key")
        batch = self.batches.get(session)
        if batch is None:
            hold_early(self.early, MAX_EARLY_REFRESHES, session, peer, raw)
        else:
            self._keep(batch, peer, raw)
        return {}

    @staticmethod
    def _keep(batch: RefreshBatch, dealer: Address, raw: dict) -> None:
        if dealer not in batch.participants:
            raise SessionError("dealer is not a participant")
        if dealer in batch.dealt_here:
            raise SessionError("shares already received")
        for key_id, item in batch.items.items():
            try:
                item.received[dealer] = parse_scalar(raw[key_id.hex()], "share")
            except (SessionError, KeyError, TypeError):
                item.unreadable = True  # the complaints settle who is at fault
        batch.dealt_here.add(dealer)
        if len(batch.dealt_here) == len(batch.participants):
            batch.all_dealt.set()

    async def _sums(self, batch: RefreshBatch) -> dict:
        """Per key: this dealer's commitments, and the sum of the shares it received (every dealer's) times G, for the
        master to check against the sums of the commitments; none when a dealer's share is missing or unreadable."""
        answers = {}
        for i, (key_id, item) in enumerate(batch.items.items()):
            if i % YIELD_EVERY == YIELD_EVERY - 1:
                await asyncio.sleep(0)  # other sessions go on meanwhile
            answer: dict[str, Any] = {"feldman": [p.hex() for p in zero_commitments(item.poly)]}
            if not item.unreadable and len(item.received) == len(batch.participants):
                total = sum(item.received.values()) % m.N
                if total:
                    item.total = (total, m.base_mul(total))
                    answer["sum"] = item.total[1].hex()
                elif not item.threshold:
                    answer["sum"] = None
            answers[key_id.hex()] = answer
        return answers

    async def _check(self, peer: Address, body: dict) -> dict:
        """Check each dealer's share of the named keys against the commitments it published; signed complaints."""
        batch = self._batch(peer, body)
        raw = body.get("items")
        if not isinstance(raw, dict):
            raise SessionError("items: expected an object")
        x = m.id_number(self.ctx.self_id)
        complaints: dict[str, dict[str, list[str]]] = {}
        for key_hex, by_dealer in raw.items():
            key_id = ServerKeyId.from_hex(key_hex, "key_id")
            item = batch.items.get(key_id)
            if item is None or not isinstance(by_dealer, dict):
                raise SessionError(f"key {key_hex} is not in this refresh")
            for dealer in batch.participants:
                if dealer.hex() not in by_dealer:
                    continue  # named already by the master: it takes no part
                commitments = [parse_point(c, "commitment") for c in by_dealer[dealer.hex()]]
                received = item.received.get(dealer)
                why = "missing" if received is None else \
                    None if on_zero_polynomial(received, x, commitments) else "feldman"
                if why is not None:
                    signature = self.ctx.keypair.sign(complaint_statement(body["session"], key_id, dealer, why))
                    complaints.setdefault(key_hex, {})[dealer.hex()] = [why, "0x" + bytes(signature).hex()]
                    log.warning("refresh complaint: dealt share fails the published commitments", extra={
                        "key": key_id.hex(), "dealer": dealer.hex(), "check": why})
        return {"complaints": complaints}

    async def _reveal(self, peer: Address, body: dict) -> dict:
        """The disputed share in the open, on its receiver's signed complaint only."""
        batch = self._batch(peer, body)
        key_id = ServerKeyId.from_hex(body.get("key_id", ""), "key_id")
        receiver = Address.from_hex(body.get("receiver", ""), "receiver")
        complaint = body.get("complaint")
        item = batch.items.get(key_id)
        if item is None or receiver not in batch.participants or not isinstance(complaint, str) or len(complaint) > 20:
            raise SessionError("malformed dispute")
        try:
            signed_by = Signature(bytes.fromhex(str(body.get("signature", ""))[2:])).recover(
                complaint_statement(body["session"], key_id, self.ctx.self_id, complaint)).address()
        except (ValueError, CryptoError):
            signed_by = None
        if signed_by != receiver:
            raise SessionError("the complaint is not signed by its receiver")
        return {"share": scalar_hex(self._dealt(item, m.id_number(receiver)))}

    async def _commit(self, peer: Address, body: dict) -> dict:
        """Stage the new version of every named key (one disk sync): the old share plus the qualified dealers'
        shares, checked first against the sums of their commitments; signed acknowledgement of what was staged."""
        batch = self._batch(peer, body)
        session = body["session"]
        raw = body.get("items")
        if not isinstance(raw, dict):
            raise SessionError("items: expected an object")
        x = m.id_number(self.ctx.self_id)
        entries, failed = [], {}
        for i, (key_hex, plan) in enumerate(raw.items()):
            if i % YIELD_EVERY == YIELD_EVERY - 1:
                await asyncio.sleep(0)
            key_id = ServerKeyId.from_hex(key_hex, "key_id")
            item = batch.items.get(key_id)
            if item is None or not isinstance(plan, dict):
                raise SessionError(f"key {key_hex} is not in this refresh")
            try:
                delta, sums = self._planned(batch, item, plan, x)
            except (SessionError, KeyError, TypeError, ValueError) as exc:
                failed[key_hex] = str(exc) or type(exc).__name__
                continue
            entries.append((key_id, item.base, refresh_version(session, key_id), delta, sums))
        self.batches.pop(session, None)
        staged = [k.hex() for k in await asyncio.to_thread(self.ctx.storage.stage_refreshed, batch.epoch, entries)]
        return {"staged": staged, "failed": failed, "signature": self._sign_ack(session, "staged", staged)}

    @staticmethod
    def _planned(batch: RefreshBatch, item: RefreshItem, plan: dict, x: int) -> tuple[int, list[Public]]:
        """(Σ of the qualified dealers' shares here, sums of their commitments) for this key: every dealer's unless
        the plan names the qualified ones, revealed shares replacing disputed ones; checked against the sums."""
        sums = [parse_point(c, "commitment sum") for c in plan.get("sums") or []]
        if len(sums) != item.threshold:
            raise SessionError("malformed commitment sums")
        if "qualified" not in plan and item.total is not None:  # every dealer: the sum answered at init
            if zero_commitment_at(sums, x) != item.total[1]:
                raise SessionError("the dealt shares do not lie on the commitment sums")
            return item.total[0], sums
        dealers = parse_ids(plan["qualified"]) if "qualified" in plan else batch.participants
        revealed = plan.get("revealed") or {}
        delta = 0
        for dealer in dealers:
            share = parse_scalar(revealed[dealer.hex()], "share") if dealer.hex() in revealed \
                else item.received[dealer]
            delta = (delta + share) % m.N
        if not on_zero_polynomial(delta, x, sums):
            raise SessionError("the dealt shares do not lie on the commitment sums")
        return delta, sums

    def _sign_ack(self, session: str, step: str, key_ids: list[str]) -> str:
        return "0x" + bytes(self.ctx.keypair.sign(ack_statement(session, step, key_ids))).hex()

    def _acknowledged(self, body: dict, step: str) -> list[ServerKeyId]:
        """The keys every holder acknowledged `step` for, each acknowledgement checked against its signer."""
        session, acks = parse_session_id(body), body.get("acks")
        participants = parse_ids(body.get("participants"))
        if self.ctx.self_id not in participants or not isinstance(acks, dict):
            raise SessionError("malformed acknowledgements")
        common: set[str] | None = None
        for holder in participants:
            try:
                keys, signature = acks[holder.hex()]
                signer = Signature(bytes.fromhex(signature[2:])).recover(ack_statement(session, step, keys)).address()
            except (KeyError, TypeError, ValueError, CryptoError):
                signer = None
            if signer != holder:
                raise SessionError(f"no valid acknowledgement of {holder.hex()}")
            common = set(keys) if common is None else common & set(keys)
        return [ServerKeyId.from_hex(k, "key_id") for k in sorted(common or ())]

    async def _activate(self, peer: Address, body: dict) -> dict:
        """Every holder staged these keys (their signatures say so): the staged versions become the active ones."""
        session = parse_session_id(body)
        keys = self._acknowledged(body, "staged")
        done = await asyncio.to_thread(self.ctx.storage.activate_refreshed,
                                       [(k, refresh_version(session, k)) for k in keys])
        activated = [k.hex() for k in done]
        return {"activated": activated, "signature": self._sign_ack(session, "activated", activated)}

    async def _erase(self, peer: Address, body: dict) -> dict:
        """Every holder activated these keys' new versions (signed): the old ones go."""
        keys = self._acknowledged(body, "activated")
        return {"erased": await asyncio.to_thread(self.ctx.storage.erase_retired, keys)}

    async def _abort(self, peer: Address, body: dict) -> dict:
        batch = self.batches.get(body.get("session"))  # type: ignore[arg-type]
        if batch is not None and batch.master == peer:
            del self.batches[body["session"]]
        return {}


def _version(text: Any) -> bytes | None:
    """A key version named on the wire (0x + 16 bytes), or None."""
    try:
        return bytes.fromhex(text[2:]) if isinstance(text, str) and text.startswith("0x") and len(text) == 34 else None
    except ValueError:
        return None
