"""Server key generation, one key (DKG): Pedersen-committed dealings sent dealer -> receiver directly, Feldman
public shares, all n take part; four master rounds (`dkg_init`, during which every participant deals, then
`dkg_finish`, `dkg_verify` check and commit), with complaints against dealers and their settlement (`dkg_reveal`).
Serves direct (HTTP) requests and every key that leaves a batched generation.

Messages: dkg_init, dkg_share (dealer -> receiver), dkg_finish, dkg_reveal (master -> accused dealer), dkg_verify
(phase "check" / "commit"), dkg_abort.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from ...crypto import Address, CryptoError, Public, ServerKeyId, Signature, keccak256
from ...crypto import math as m
from ..net import ClusterError
from ..storage import KeyAlreadyExists, KeyShare
from .core import (BAD_REQUEST, CONNECT_GRACE, CONSENSUS_UNREACHABLE, KEY_EXISTS, MAX_PARTICIPANTS, SESSION_TIMEOUT,
                   STEP_TIMEOUT, SessionContext, SessionError, ThresholdProtocol, commitments_digest, failure_code,
                   failure_reason, hold_early, named, parse_ids, parse_point, parse_scalar, pedersen_point,
                   scalar_hex)

log = logging.getLogger(__name__)

MAX_EARLY_SESSIONS = 4096  # generations whose shares came before their dkg_init, at once


def dispute_statement(session: str, dealer: Address, view: str, complaint: str) -> bytes:
    """What a receiver signs about one dealer of a generation: the digest of the commitments it saw, its complaint."""
    return keccak256(b"secretstore/dkg/dispute" + session.encode() + bytes(dealer) + view.encode() + complaint.encode())


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


class ServerKeyGeneration(ThresholdProtocol):
    HANDLERS = {"dkg_init": "_dkg_init", "dkg_share": "_dkg_share", "dkg_finish": "_dkg_finish",
                "dkg_verify": "_dkg_verify", "dkg_abort": "_dkg_abort", "dkg_reveal": "_dkg_reveal"}

    def __init__(self, context: SessionContext) -> None:
        super().__init__(context)
        self.sessions: dict[str, DkgState] = {}
        # shares dealt for a generation whose dkg_init has not reached this server yet:
        # session -> (when the first came, [(dealer, (share, blinding, commitments))])
        self.early_shares: dict[str, tuple[float, list[tuple[Address, tuple[int, int, list[Public]]]]]] = {}
        context.router.track_sessions(self.sessions)
        context.router.track_early(self.early_shares)

    def running_keys(self) -> set[ServerKeyId]:
        return {state.key_id for state in self.sessions.values()}

    # --------------------------------------------------------------------------------------- participant side
    def _session(self, body: dict) -> DkgState:
        state = self.sessions.get(body.get("session"))  # type: ignore[arg-type]
        if state is None:
            raise SessionError("unknown or expired generation session")
        return state

    async def _dkg_init(self, peer: Address, body: dict) -> dict:
        ctx = self.ctx
        key_id = ServerKeyId.from_hex(body.get("key_id", ""), "key_id")
        participants = parse_ids(body.get("participants"))
        threshold = body.get("threshold")
        if not isinstance(threshold, int) or not 0 <= threshold < len(participants):
            raise SessionError("threshold must satisfy 0 <= t < number of participants")
        if ctx.self_id not in participants:
            raise SessionError("this key server is not a participant")
        if ctx.storage.get(key_id) is not None:
            raise SessionError(f"server key {key_id.hex()} already exists", KEY_EXISTS)
        for running, other in list(self.sessions.items()):
            if other.key_id != key_id:
                continue
            # a generation whose master is gone (crashed, disconnected) or stalled gives way to the next master's
            if other.master is None or ctx.cluster is None or not ctx.cluster.is_connected(other.master) \
                    or time.monotonic() - other.started > STEP_TIMEOUT:
                log.info("replacing an abandoned generation", extra={"key": key_id.hex(), "session": running})
                del self.sessions[running]
            else:
                raise SessionError(f"a generation of {key_id.hex()} is already running", KEY_EXISTS)
        session = body.get("session")
        if not isinstance(session, str) or not 16 <= len(session) <= 64:
            raise SessionError("bad session id")
        author = Address.from_hex(body.get("author", ""), "author")
        direct = "request_signature" in body
        if direct:  # an HTTP request: the author is the requester, who must be allowed the key on chain
            requester = await ctx.authorize(key_id, body)
            if requester.address() != author:
                raise SessionError("the author must be the requester", BAD_REQUEST)
            if ctx.storage.pending_migrations():
                raise SessionError("a key server set migration is in progress; try again when it completes",
                                   CONSENSUS_UNREACHABLE)
        state = self.sessions[session] = DkgState(key_id, author, threshold, participants,
                                                  m.random_polynomial(threshold), m.random_polynomial(threshold),
                                                  pedersen_point(key_id, participants), master=peer,
                                                  report=not direct)
        for dealer, dealt in self.early_shares.pop(session, (0.0, []))[1]:
            try:
                self._keep_share(state, dealer, *dealt)
            except SessionError as exc:  # as if it never came: the dealer's share is missing, a complaint settles it
                log.warning("early dkg share refused", extra={"dealer": dealer.hex(), "error": str(exc)})
        return await self._deal(session, state)

    async def _deal(self, session: str, state: DkgState) -> dict:
        """Send every participant its share of this node's polynomial, directly, as part of dkg_init (one round
        less: a share that arrives before its receiver's dkg_init waits there for it). A receiver that cannot be
        reached is not this dealer's failure: it complains that the share is missing, and the dealer's reveal
        settles it."""
        commitments = [p.hex() for p in state.pedersen]
        cluster = self.ctx.cluster
        assert cluster is not None

        async def deal(to: Address) -> None:
            share, blinding = self._dealt(state, to)
            await cluster.request(to, {
                "type": "dkg_share", "session": session, "commitments": commitments,
                "share": scalar_hex(share), "blinding": scalar_hex(blinding)}, timeout=STEP_TIMEOUT)

        results = await asyncio.gather(*(deal(p) for p in state.participants), return_exceptions=True)
        undelivered = [p.hex() for p, r in zip(state.participants, results) if isinstance(r, BaseException)]
        return {"undelivered": undelivered}

    def _dealt(self, state: DkgState, to: Address) -> tuple[int, int]:
        x = m.id_number(to)
        share, blinding = m.poly_eval(state.poly, x), m.poly_eval(state.blinding, x)
        if self.ctx.faults is not None and self.ctx.faults.corrupts("dkg"):
            share = (share + 1) % m.N  # fault injection: a dealing (and its reveal) that fails the commitments
        return share, blinding

    async def _dkg_share(self, peer: Address, body: dict) -> dict:
        """Keep a dealer's share; one that fails its Pedersen commitments is not an error of the session but a
        complaint against the dealer, which the master settles (see generate_server_key). A share may come before
        this server's own dkg_init (the dealer got its own first): it is kept, bounded, until the init comes."""
        session = body.get("session")
        state = self.sessions.get(session)  # type: ignore[arg-type]
        if state is None:
            if not isinstance(session, str) or not 16 <= len(session) <= 64:
                raise SessionError("bad session id")
            raw = body.get("commitments")  # malformed is refused now, not when the init comes
            if not isinstance(raw, list) or len(raw) > MAX_PARTICIPANTS:
                raise SessionError("commitments: expected a list of points")
            hold_early(self.early_shares, MAX_EARLY_SESSIONS, session, peer, self._dealt_share(body))
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
        elif not m.verify_pedersen(share, blinding, m.id_number(self.ctx.self_id), commitments, state.h):
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
        if self.ctx.faults is not None and self.ctx.faults.corrupts("dkg-feldman"):
            feldman[-1] = m.point_add(feldman[-1], m.base_mul(1))  # fault injection: commitments that do not match
        complaints = dict(state.complaints)
        for dealer in state.participants:
            if dealer not in state.received:
                complaints[dealer] = "missing"
        views = {d: commitments_digest(c) for d, (_, _, c) in state.received.items()}
        # signed: a dealer reveals a share only on its receiver's own word (a complaint or a different view), so a
        # master cannot collect everyone's shares through reveals
        signatures = {d.hex(): "0x" + bytes(self.ctx.keypair.sign(dispute_statement(
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
        if receiver not in state.participants or receiver == self.ctx.self_id:
            raise SessionError("the receiver is not another participant")
        view, complaint = body.get("view"), body.get("complaint")
        if not isinstance(view, str) or not isinstance(complaint, str) or len(view) > 80 or len(complaint) > 40:
            raise SessionError("malformed dispute")
        try:
            signed_by = Signature(bytes.fromhex(str(body.get("signature", ""))[2:])).recover(
                dispute_statement(body["session"], self.ctx.self_id, view, complaint)).address()
        except (ValueError, CryptoError):
            signed_by = None
        if signed_by != receiver:
            raise SessionError("the dispute is not signed by its receiver")
        if not complaint and view == commitments_digest(state.pedersen):
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
        if body.get("phase") == "check":
            return self._check(state, qualified, feldman, body)
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
            await self.ctx.storage.insert_durably(share, commitments)  # durable before anything is reported
        except KeyAlreadyExists as exc:
            raise SessionError(str(exc), KEY_EXISTS) from None
        finally:
            self.sessions.pop(body["session"], None)
        if state.report:
            self.ctx.on_result("server_key_generated", {"id": state.key_id.hex(), "server_key_public": public.hex()})
        else:
            self.ctx.storage.mark_reported(state.key_id)
        return {"public": public.hex()}

    def _check(self, state: DkgState, qualified: list[Address], feldman: dict, body: dict) -> dict:
        """dkg_verify's "check" phase: complaints (with the share as evidence) against the dealers whose share here
        fails their published commitments; the others' shares are kept as checked."""
        x = m.id_number(self.ctx.self_id)
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

    async def _dkg_abort(self, peer: Address, body: dict) -> dict:
        self.sessions.pop(body.get("session"), None)  # type: ignore[arg-type]
        return {}

    # -------------------------------------------------------------------------------------------- master side
    async def generate_server_key(self, key_id: ServerKeyId, author: Address, threshold: int,
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
        cluster = self.ctx.cluster
        assert cluster is not None
        session = secrets.token_hex(16)
        if not participants or not isinstance(threshold, int) or not 0 <= threshold < len(participants):
            raise SessionError(f"threshold must satisfy 0 <= t < {len(participants)} (the number of key servers)",
                               BAD_REQUEST)
        if self.ctx.storage.get(key_id) is not None:
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
            raise SessionError(f"server key generation failed: {failure_reason(exc)}", failure_code(exc)) from None
        publics = {r.get("public") for p, r in verified.items() if p not in culprits}
        if len(publics) != 1:
            raise SessionError("key servers computed different server key publics")
        if culprits:
            log.warning("server key generated without faulty dealers", extra={
                "key": key_id.hex(), "qualified": len(qualified), "faulty": named(culprits)})
        return Public.from_hex(publics.pop())

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
        cluster = self.ctx.cluster
        assert cluster is not None
        disputes: set[tuple[Address, Address]] = set()
        for receiver, reply in finished.items():
            complaints = reply.get("complaints") if isinstance(reply.get("complaints"), dict) else {}
            views = reply.get("views") if isinstance(reply.get("views"), dict) else {}
            for dealer, commitments in pedersen.items():
                if dealer.hex() in complaints or views.get(dealer.hex()) != commitments_digest(
                        [Public.from_hex(c) for c in commitments]):
                    disputes.add((receiver, dealer))
        revealed: dict[tuple[Address, Address], dict] = {}

        async def settle(receiver: Address, dealer: Address) -> None:
            complaint = finished[receiver].get("complaints", {}).get(dealer.hex(), "")
            why = complaint or "equivocation"
            try:
                reply = await cluster.request(dealer, {
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

    @staticmethod
    def _judge_feldman(key_id: ServerKeyId, accuser: Address, dealer: Address, evidence: Any,
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
                "key": key_id.hex(), "threshold": threshold, "qualified": len(qualified), "faulty": named(culprits)})
            raise SessionError(f"{len(culprits)} faulty key servers, at most {threshold} (the threshold) tolerated: "
                               + named(culprits))
