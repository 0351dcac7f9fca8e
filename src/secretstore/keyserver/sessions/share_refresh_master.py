"""The master's side of the proactive share refresh (`sessions.share_refresh` has the protocol, its messages and the
holders' side): batches of keys through init, the complaint rounds where a check failed, commit, then activation
and erasure, each carrying the holders' signed acknowledgements of the step before.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from typing import Callable

from ...crypto import Address, CryptoError, Public, ServerKeyId
from ...crypto import math as m
from ...crypto.zero_sharing import column_sums, on_zero_polynomial, zero_sum_consistent
from ..net import ClusterError
from .core import (CONNECT_GRACE, MAX_BATCH, SESSION_TIMEOUT, STEP_TIMEOUT, SessionContext, SessionError,
                   failure_reason, named, parse_point, parse_scalar, scalar_hex)

log = logging.getLogger("secretstore.keyserver.sessions.share_refresh")

BATCHES_IN_FLIGHT = 4  # batches a master runs at once (their rounds interleave across the key servers)
YIELD_EVERY = 25  # keys between giving the event loop to other sessions (a batch's checks take ~0.1 s in all)
Plan = dict  # per key, what a holder's commit needs: the commitment sums, and the qualified dealers if not all


def refresh_batch_size(threshold: int) -> int:
    """Keys per batch: its largest message (a holder's init answer: per key t + 1 points) well below a frame."""
    return max(1, min(MAX_BATCH // 4, 400_000 // (140 * threshold + 200)))


class RefreshMaster:
    """Mixed into `ShareRefresh`: the rounds a master drives."""

    ctx: SessionContext
    unfinished: dict[str, tuple[str, list[Address], dict[str, list]]]
    retrying: set[str]

    async def refresh_keys(self, epoch: int, keys: list[tuple[ServerKeyId, bytes, int]],
                           participants: list[Address]) -> dict[ServerKeyId, str | None]:
        """Refresh these keys (id, this server's version, threshold), all held by `participants`, at `epoch`, in
        batches run a few at once. Per key: None once its new version is staged by every holder (activation and
        erasure follow, retried by `finish_unfinished` where a holder missed them), else why it was not."""
        cluster = self.ctx.cluster
        assert cluster is not None
        missing = [p.hex() for p in await cluster.wait_connected(participants, CONNECT_GRACE)]
        if missing:
            return {key_id: f"holders not connected: {', '.join(missing)}" for key_id, _, _ in keys}
        size = refresh_batch_size(max(t for _, _, t in keys))
        gate = asyncio.Semaphore(BATCHES_IN_FLIGHT)
        results: dict[ServerKeyId, str | None] = {}

        async def run(chunk: list[tuple[ServerKeyId, bytes, int]]) -> None:
            async with gate:
                results.update(await self._refresh_batch(epoch, chunk, participants))

        await asyncio.gather(*(run(keys[i:i + size]) for i in range(0, len(keys), size)))
        return results

    async def _each(self, session: str, participants: list[Address], body: dict | Callable[[Address], dict]
                    ) -> dict[Address, dict]:
        cluster = self.ctx.cluster
        assert cluster is not None
        replies = await asyncio.gather(*(cluster.request(p, dict(body(p) if callable(body) else body,
                                                                 session=session), timeout=STEP_TIMEOUT)
                                         for p in participants), return_exceptions=True)
        for reply in replies:
            if isinstance(reply, BaseException):
                raise reply
        return dict(zip(participants, replies))  # type: ignore[arg-type]

    async def _refresh_batch(self, epoch: int, keys: list[tuple[ServerKeyId, bytes, int]],
                             participants: list[Address]) -> dict[ServerKeyId, str | None]:
        session = secrets.token_hex(16)
        begun = time.perf_counter()
        thresholds = {key_id: t for key_id, _, t in keys}
        outcome: dict[ServerKeyId, str | None] = {}
        plans: dict[ServerKeyId, Plan] = {}
        revealed: dict[tuple[ServerKeyId, Address], dict[str, str]] = {}
        try:
            async with asyncio.timeout(SESSION_TIMEOUT * 2):
                inits = await self._each(session, participants, {
                    "type": "refresh_init", "epoch": epoch, "participants": [p.hex() for p in participants],
                    "items": [{"key_id": k.hex(), "version": "0x" + v.hex()} for k, v, _ in keys]})
                for reply in inits.values():
                    for key_hex, why in (reply.get("refused") or {}).items():
                        outcome.setdefault(ServerKeyId.from_hex(key_hex), f"refused: {why}")
                undelivered = any(reply.get("undelivered") for reply in inits.values())
                published: dict[ServerKeyId, dict[Address, list[Public]]] = {}
                culprits: dict[ServerKeyId, dict[Address, str]] = {}
                for i, (key_id, t) in enumerate(thresholds.items()):
                    if i % YIELD_EVERY == YIELD_EVERY - 1:
                        await asyncio.sleep(0)
                    if key_id in outcome:
                        continue
                    answers = {p: (inits[p].get("items") or {}).get(key_id.hex()) or {} for p in participants}
                    published[key_id], culprits[key_id] = self._published(answers, t)
                    plan = None if undelivered or culprits[key_id] else self._checked(answers, published[key_id])
                    if plan is not None:
                        plans[key_id] = plan
                blamed = [k for k in published if k not in plans]
                if blamed:
                    await self._settle(session, epoch, blamed, thresholds, participants, published, culprits,
                                       outcome, plans, revealed)
                if not plans:
                    raise SessionError("no key of the batch is left to refresh")

                def commit(p: Address) -> dict:
                    return {"type": "refresh_commit", "items": {k.hex(): dict(plan, revealed=revealed[(k, p)])
                                                                if (k, p) in revealed else plan
                                                                for k, plan in plans.items()}}

                committed = await self._each(session, participants, commit)
        except (ClusterError, TimeoutError, SessionError, CryptoError, ValueError, KeyError, TypeError) as exc:
            reason = failure_reason(exc)
            log.info("share refresh batch abandoned", extra={"keys": len(keys), "error": reason})
            await self._tell_all(participants, {"type": "refresh_abort", "session": session})
            return {key_id: outcome.get(key_id) or f"refresh abandoned: {reason}" for key_id in thresholds}
        acks = {p.hex(): [reply.get("staged") or [], reply.get("signature")] for p, reply in committed.items()}
        staged = set.intersection(*(set(keys) for keys, _ in acks.values()))
        self.unfinished[session] = ("staged", participants, acks)
        staged_at = time.perf_counter()
        await self.finish(session)
        log.info("share refresh batch", extra={"keys": len(keys), "blamed": len(blamed),
                                               "staged_ms": round((staged_at - begun) * 1e3, 1),
                                               "finished_ms": round((time.perf_counter() - staged_at) * 1e3, 1)})
        for key_id in thresholds:
            outcome.setdefault(key_id, None if key_id.hex() in staged else "not staged by every holder")
        return outcome

    @staticmethod
    def _published(answers: dict[Address, dict], threshold: int
                   ) -> tuple[dict[Address, list[Public]], dict[Address, str]]:
        """Each dealer's commitments to a key, and the dealers whose commitments are malformed."""
        published, culprits = {}, {}
        for dealer, answer in answers.items():
            try:
                points = [parse_point(c, "commitment") for c in answer["feldman"]]
                if len(points) != threshold:
                    raise SessionError("wrong number of commitments")
                published[dealer] = points
            except (SessionError, KeyError, TypeError):
                culprits[dealer] = "malformed commitments"
        return published, culprits

    @staticmethod
    def _checked(answers: dict[Address, dict], published: dict[Address, list[Public]]) -> Plan | None:
        """The plan of a key whose holders' sums all lie on the sums of every dealer's commitments (one check for
        all), else None."""
        try:
            sums = column_sums(list(published.values()))
            if not sums:  # degree 0: the only zero-constant polynomial is zero itself
                return {"sums": []} if all("sum" in a and a["sum"] is None for a in answers.values()) else None
            values = {m.id_number(p): parse_point(a["sum"], "sum") for p, a in answers.items()}
        except (SessionError, CryptoError, KeyError, TypeError):
            return None
        return {"sums": [c.hex() for c in sums]} if zero_sum_consistent(sums, values) else None

    async def _settle(self, session: str, epoch: int, blamed: list[ServerKeyId], thresholds: dict[ServerKeyId, int],
                      participants: list[Address], published: dict[ServerKeyId, dict[Address, list[Public]]],
                      culprits: dict[ServerKeyId, dict[Address, str]], outcome: dict[ServerKeyId, str | None],
                      plans: dict[ServerKeyId, Plan], revealed: dict[tuple[ServerKeyId, Address], dict[str, str]]
                      ) -> None:
        """The keys whose quick check failed: each receiver's signed complaints against the published commitments,
        reveals by the accused dealers; a key keeps at least t + 1 dealers and at most t named, or is left as it is."""
        cluster = self.ctx.cluster
        assert cluster is not None
        checked = await self._each(session, participants, {"type": "refresh_check", "items": {
            k.hex(): {d.hex(): [c.hex() for c in points] for d, points in published[k].items()} for k in blamed}})

        async def settle(key_id: ServerKeyId, receiver: Address, dealer: Address, why: str, signature: str) -> None:
            try:
                reply = await cluster.request(dealer, {
                    "type": "refresh_reveal", "session": session, "key_id": key_id.hex(), "receiver": receiver.hex(),
                    "complaint": why, "signature": signature}, timeout=STEP_TIMEOUT)
                share = parse_scalar(reply.get("share"), "share")
                ok = on_zero_polynomial(share, m.id_number(receiver), published[key_id][dealer])
            except (ClusterError, TimeoutError, SessionError):
                ok = False
            if ok:
                revealed.setdefault((key_id, receiver), {})[dealer.hex()] = scalar_hex(share)
                log.warning("refresh complaint refuted: the revealed share checks", extra={
                    "key": key_id.hex(), "dealer": dealer.hex(), "accuser": receiver.hex(), "check": why})
            else:
                culprits[key_id].setdefault(dealer, f"{why} complaint by {receiver.hex()} upheld: the revealed share "
                                                    "fails its commitments or was not revealed")
                log.warning("refresh complaint upheld", extra={"key": key_id.hex(), "dealer": dealer.hex(),
                                                               "accuser": receiver.hex(), "check": why})

        disputes = []
        for receiver, reply in checked.items():
            for key_hex, by_dealer in (reply.get("complaints") or {}).items():
                key_id = ServerKeyId.from_hex(key_hex, "key_id")
                for dealer_hex, (why, signature) in by_dealer.items():
                    dealer = Address.from_hex(dealer_hex, "dealer")
                    if key_id in published and dealer in published[key_id]:
                        disputes.append(settle(key_id, receiver, dealer, str(why), str(signature)))
        await asyncio.gather(*disputes)
        for key_id in blamed:
            faulty, t = culprits[key_id], thresholds[key_id]
            dealers = [p for p in participants if p not in faulty]
            if len(faulty) > t or len(dealers) < t + 1:
                outcome[key_id] = f"{len(faulty)} faulty key servers, at most {t} tolerated: {named(faulty)}"
                log.warning("share refresh refused: too many faulty key servers", extra={
                    "key": key_id.hex(), "epoch": epoch, "faulty": named(faulty)})
                continue
            if faulty:
                log.warning("share refreshed without faulty dealers", extra={
                    "key": key_id.hex(), "epoch": epoch, "faulty": named(faulty)})
            sums = column_sums([published[key_id][d] for d in dealers])
            plans[key_id] = {"sums": [c.hex() for c in sums], "qualified": [d.hex() for d in dealers]}

    async def finish(self, session: str) -> bool:
        """Activation once every holder staged, erasure once every holder activated, each carrying the holders'
        signed acknowledgements; kept for a retry (`finish_unfinished`) while a holder misses a step."""
        step, participants, acks = self.unfinished[session]
        body = {"participants": [p.hex() for p in participants], "acks": acks}
        try:
            if step == "staged":
                activated = await self._each(session, participants, dict(body, type="refresh_activate"))
                acks = {p.hex(): [r.get("activated") or [], r.get("signature")] for p, r in activated.items()}
                self.unfinished[session] = step, participants, acks = ("activated", participants, acks)
                body["acks"] = acks
            await self._each(session, participants, dict(body, type="refresh_erase"))
        except (ClusterError, TimeoutError) as exc:
            if session not in self.retrying:  # once: it is retried every second until the holder is back
                self.retrying.add(session)
                log.info("share refresh not finished everywhere yet, will retry", extra={
                    "step": step, "error": failure_reason(exc)})
            return False
        self.retrying.discard(session)
        del self.unfinished[session]
        return True

    async def finish_unfinished(self) -> None:
        for session in list(self.unfinished):
            await self.finish(session)

    async def _tell_all(self, participants: list[Address], body: dict) -> None:
        cluster = self.ctx.cluster
        assert cluster is not None
        for p in participants:
            if cluster.is_connected(p):
                with contextlib.suppress(ClusterError, TimeoutError):
                    await cluster.request(p, body, timeout=2)
