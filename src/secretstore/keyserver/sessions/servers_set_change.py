"""Servers set change (migration): t + 1 old holders of each key deal Lagrange-weighted shares of it to every server
of the new set, Feldman-checked, and each new holder checks the sums against the server key public; the key is never
reconstructed. New shares are kept as pending versions until the chain completes the migration (`migration_done`
makes every new member confirm it).

Messages: list_keys, key_facts, reshare_deal (master -> old holder), reshare_share (old holder -> new member),
reshare_finish (master -> new member), migration_done.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from ...crypto import Address, Public, ServerKeyId
from ...crypto import math as m
from ..net import ClusterError
from ..storage import KeyShare
from .core import (CONNECT_GRACE, MAX_BATCH, SESSION_TIMEOUT, STEP_TIMEOUT, SessionContext, SessionError,
                   ThresholdProtocol, failure_reason, parse_ids, parse_point, parse_scalar, scalar_hex)

RESHARE_IN_FLIGHT = 4  # migration batches moving at once
LIST_PAGE = 4096  # keys per list_keys answer: about 300 KB of JSON, well within a frame


def reshare_batch_size(threshold: int) -> int:
    """Keys per round of migration messages: as many as keep one dealer's message to a member (an entry of about
    600 bytes plus 132 per commitment, JSON) well below the cluster's 1 MiB frame limit."""
    return max(1, min(MAX_BATCH // 2, 400_000 // (600 + 132 * (threshold + 1))))


def _batch(values: Any) -> list:
    """A batch of a migration message: a non-empty list of at most MAX_BATCH items."""
    if not isinstance(values, list) or not 0 < len(values) <= MAX_BATCH:
        raise SessionError(f"expected a list of 1..{MAX_BATCH} items")
    return values


@dataclass
class _Listing:
    """One old server's keys as a migration master reads them: a page at a time, in key id order."""
    server: Address
    keys: deque[tuple[str, int | None]] = field(default_factory=deque)  # listed, not yet taken: (key, threshold)
    last: str | None = None  # the last key listed so far
    done: bool = False
    failed: bool = False


def _listed_through(listings: list[_Listing], frontier: str | None) -> dict[str, tuple[list[Address], int | None]]:
    """The keys listed up to `frontier` (None: all), taken off the listings, in key order: each with the servers
    that listed it (in the old set's order) and the first threshold one of them said."""
    taken: dict[str, tuple[list[Address], int | None]] = {}
    for listing in listings:
        while listing.keys and (frontier is None or listing.keys[0][0] <= frontier):
            key, threshold = listing.keys.popleft()
            holders, known = taken.get(key, ([], None))
            holders.append(listing.server)
            taken[key] = (holders, known if known is not None else threshold)
    return dict(sorted(taken.items()))


class ServersSetChange(ThresholdProtocol):
    HANDLERS = {"list_keys": "_list_keys", "key_facts": "_key_facts", "reshare_deal": "_reshare_deal",
                "reshare_share": "_reshare_share", "reshare_finish": "_reshare_finish",
                "migration_done": "_migration_done"}

    def __init__(self, context: SessionContext) -> None:
        super().__init__(context)
        # (migration id hex, key id hex) -> dealer -> (share, commitments, key facts)
        self.reshares: dict[tuple[str, str], dict[Address, tuple[int, list[Public], dict]]] = {}

    # --------------------------------------------------------------------------------------- participant side
    async def _list_keys(self, peer: Address, body: dict) -> dict:
        """One page of the keys held here, in key id order after `after`, with their thresholds: a whole listing
        of a large set would not fit in a cluster frame (100,000 ids are about 7 MB of JSON)."""
        after = body.get("after")
        page = self.ctx.storage.key_page(None if after is None else ServerKeyId.from_hex(after, "after"),
                                         LIST_PAGE)
        return {"keys": [k.hex() for k, _ in page], "thresholds": [t for _, t in page],
                "more": len(page) == LIST_PAGE}

    async def _key_facts(self, peer: Address, body: dict) -> dict:
        share = self.ctx.storage.get(ServerKeyId.from_hex(body.get("key_id", ""), "key_id"))
        if share is None:
            raise SessionError("unknown key")
        return {"threshold": share.threshold, "public": share.public.hex()}

    async def _reshare_deal(self, peer: Address, body: dict) -> dict:
        """As one of t + 1 old holders of each key of a batch: deal a fresh degree-t polynomial whose constant term is
        this server's Lagrange-weighted share, to every server of the new set (directly, one message per member for
        the whole batch)."""
        ctx = self.ctx
        key_ids = [ServerKeyId.from_hex(k, "key_ids") for k in _batch(body.get("key_ids"))]
        dealers = parse_ids(body.get("dealers"))
        new_set = parse_ids(body.get("new_set"))
        weights = m.lagrange_at_zero(m.id_number(ctx.self_id), [m.id_number(d) for d in dealers]) \
            if ctx.self_id in dealers else None
        dealt: dict[Address, list[dict]] = {member: [] for member in new_set}
        for key_id in key_ids:
            share = ctx.storage.get(key_id)
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
        cluster = ctx.cluster
        assert cluster is not None
        async with asyncio.TaskGroup() as tasks:
            for member, entries in dealt.items():
                tasks.create_task(cluster.request(member, {
                    "type": "reshare_share", "migration_id": body.get("migration_id"), "entries": entries},
                    timeout=STEP_TIMEOUT))
        return {}

    async def _reshare_share(self, peer: Address, body: dict) -> dict:
        """As a new holder: keep one dealer's re-shared values of a batch of keys with their commitments (nothing is
        kept unless every entry reads); they are checked once all dealers' have come (`_reshare_finish`)."""
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
            checked.append((key_id, share, commitments, facts))
        for key_id, share, commitments, facts in checked:
            self.reshares.setdefault((str(body.get("migration_id")), key_id.hex()), {})[peer] = (share, commitments, facts)
        return {}

    async def _reshare_finish(self, peer: Address, body: dict) -> dict:
        """As a new holder: combine the dealers' values of every key of the batch into its new share, check it
        against the summed commitments and those against the server key public, and keep them all durably as
        pending versions in one transaction."""
        migration_id = bytes.fromhex(str(body.get("migration_id", ""))[2:])
        key_ids = [ServerKeyId.from_hex(k, "key_ids") for k in _batch(body.get("key_ids"))]
        dealers = parse_ids(body.get("dealers"))
        new_set = parse_ids(body.get("new_set"))
        new_shares = []
        new_commitments = {}
        x = m.id_number(self.ctx.self_id)
        for key_id in key_ids:
            received = self.reshares.pop((str(body.get("migration_id")), key_id.hex()), {})
            if set(received) != set(dealers):
                raise SessionError(f"re-shared values of {key_id.hex()} missing from some dealers")
            facts = [f for _, _, f in received.values()]
            if any(f != facts[0] for f in facts):
                raise SessionError("dealers disagree about the key")
            public = Public.from_hex(facts[0]["public"])
            columns = [m.point_add(*column) for column in zip(*(c for _, c, _ in received.values()))]
            # the weighted shares add up to the key: their constant-term commitments must add up to its public
            if columns[0] != public:
                raise SessionError(f"re-shared values of {key_id.hex()} do not add up to the server key")
            share = sum(s for s, _, _ in received.values()) % m.N
            # one Feldman check of the sum instead of one per dealer: the new share is that sum and the new
            # commitments are those sums, so they are what must agree (values whose errors cancel still give a
            # share on the polynomial stored); only a failure checks each dealer, to name the one at fault
            if not m.verify_feldman(share, x, columns):
                culprits = [d.hex() for d, (s, c, _) in received.items() if not m.verify_feldman(s, x, c)]
                raise SessionError(f"re-shared values of {key_id.hex()} from {', '.join(culprits) or 'the dealers'} "
                                   "do not match their commitments")
            new_commitments[key_id] = columns
            new_shares.append(KeyShare(
                key_id, Address.from_hex(facts[0]["author"]), facts[0]["threshold"], public, migration_id[:16],
                tuple(new_set), share,
                Public.from_hex(facts[0]["common_point"]) if facts[0]["common_point"] else None,
                Public.from_hex(facts[0]["encrypted_point"]) if facts[0]["encrypted_point"] else None))
        self.ctx.storage.stage_pending(migration_id, *new_shares,  # durable before the migration is confirmed
                                       commitments=new_commitments)
        return {}

    async def _migration_done(self, peer: Address, body: dict) -> dict:
        migration_id = str(body.get("migration_id", ""))
        if not migration_id.startswith("0x") or len(migration_id) != 66:
            raise SessionError("bad migration id")
        self.ctx.on_result("confirm_migration", {"migration_id": migration_id})
        return {}

    # -------------------------------------------------------------------------------------------- master side
    async def migrate(self, migration_id: bytes, old_set: list[Address], new_set: list[Address]) -> int:
        """Master of a servers set change: re-share every key held by the old set to the new set without ever
        reconstructing it, then tell every new member to confirm. Returns the number of keys moved."""
        cluster = self.ctx.cluster
        assert cluster is not None
        mid = "0x" + migration_id.hex()
        # a master that joins with this very change is linked to nobody yet: give the links a moment, so that an
        # old server is not taken for one that holds nothing (the attempt would then move no key at all)
        await cluster.wait_connected(list(dict.fromkeys(old_set + new_set)), CONNECT_GRACE)
        missing = [p.hex() for p in new_set if not cluster.is_connected(p)]
        if missing:
            raise SessionError(f"new key servers not connected: {', '.join(missing)}")
        listings = [_Listing(server) for server in old_set if cluster.is_connected(server)]
        new_set_hex = [p.hex() for p in new_set]

        async def move(dealers: tuple[Address, ...], batch: list[str]) -> None:
            body = {"migration_id": mid, "key_ids": batch, "dealers": [d.hex() for d in dealers], "new_set": new_set_hex}
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
                raise SessionError(f"keys {batch[0]}..: re-sharing failed: {failure_reason(exc)}") from None
            finally:
                in_flight.release()

        # several batches in flight: one batch's disk write overlaps the next one's curve math; the listing goes on
        # only as batches finish, so the master holds a page per old server and the batches in flight, whatever
        # the number of keys
        in_flight = asyncio.Semaphore(RESHARE_IN_FLIGHT)
        moved = 0
        try:
            async with asyncio.TaskGroup() as tasks:
                async def start(dealers: tuple[Address, ...], batch: list[str]) -> None:
                    await in_flight.acquire()
                    tasks.create_task(move(dealers, batch))

                # keys with the same dealers move together, reshare_batch_size(t) per round of messages
                forming: dict[tuple[Address, ...], list[str]] = {}
                while True:
                    await asyncio.gather(*(self._next_page(l) for l in listings if not l.keys and not l.done))
                    listings = [l for l in listings if not l.failed]
                    if old_set and not listings:
                        raise SessionError("no key server of the old set listed its keys")
                    # every listing is in key order: the keys up to the least one listed last are all known
                    frontier = min((l.last for l in listings if not l.done and l.last is not None), default=None)
                    for key, (holders, threshold) in _listed_through(listings, frontier).items():
                        if threshold is None:
                            threshold = await self._threshold_of(ServerKeyId.from_hex(key), holders)
                        dealers = tuple(holders[: threshold + 1])
                        if len(dealers) < threshold + 1:
                            raise SessionError(f"key {key}: only {len(dealers)} holders reachable, "
                                               f"{threshold + 1} needed")
                        batch = forming.setdefault(dealers, [])
                        batch.append(key)
                        moved += 1
                        if len(batch) >= reshare_batch_size(threshold):
                            await start(dealers, forming.pop(dealers))
                    if frontier is None:
                        break
                for dealers, batch in forming.items():
                    await start(dealers, batch)
        except ExceptionGroup as group:
            raise group.exceptions[0] from None
        for member in new_set:
            try:
                await cluster.request(member, {"type": "migration_done", "migration_id": mid}, timeout=STEP_TIMEOUT)
            except ClusterError as exc:
                raise SessionError(f"could not tell {member.hex()} the migration is done: {exc}") from None
        return moved

    async def _next_page(self, listing: "_Listing") -> None:
        """The next page of an old server's keys (with their thresholds, when it says them); a server that does not
        answer is left out of this attempt, as one that was not connected."""
        cluster = self.ctx.cluster
        assert cluster is not None
        try:
            listed = await cluster.request(listing.server, {"type": "list_keys", "after": listing.last},
                                           timeout=STEP_TIMEOUT)
        except ClusterError:
            listing.failed = True
            return
        keys, known = listed.get("keys"), listed.get("thresholds")
        keys = keys if isinstance(keys, list) else []
        known = known if isinstance(known, list) and len(known) == len(keys) else [None] * len(keys)
        # in key order and past what came before (a page that does not move on ends the listing)
        page = sorted((k, t if isinstance(t, int) and not isinstance(t, bool) else None) for k, t in zip(keys, known)
                      if isinstance(k, str) and (listing.last is None or k > listing.last))
        listing.keys.extend(page)
        if page:
            listing.last = page[-1][0]
        listing.done = not page or not listed.get("more")

    async def _threshold_of(self, key_id: ServerKeyId, holders: list[Address]) -> int:
        share = self.ctx.storage.get(key_id)
        if share is not None:
            return share.threshold
        cluster = self.ctx.cluster
        assert cluster is not None
        for holder in holders:  # the master may be a new server that holds nothing yet
            try:
                reply = await cluster.request(holder, {"type": "key_facts", "key_id": key_id.hex()},
                                              timeout=STEP_TIMEOUT)
                return int(reply["threshold"])
            except (ClusterError, KeyError, ValueError):
                continue
        raise SessionError(f"no holder of {key_id.hex()} answered")
