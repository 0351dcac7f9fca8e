"""When key shares are refreshed: at epochs of `--share-refresh-blocks` finalized blocks (epoch = finalized block
number // blocks), which every key server of a set agrees on without asking anyone (the handshake refuses a member
configured differently), on any chain.

At each new epoch a key server reads which of its keys are not at the epoch yet. The epoch's master — the first
connected server of the current set rotated by the epoch number — refreshes them in batches (`sessions.share_refresh`),
grouped by their holders; the next servers in that rotation take over those still due after REFRESH_PATIENCE each
(a master that died, or a holder it could not reach). Only keys due at the epoch's start are refreshed in it: a key
generated during an epoch is refreshed at the next one. Nothing is refreshed while a migration runs (it makes new
versions of every key anyway). A master also retries, on every look, the activation and erasure of batches some
holder missed.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from ...crypto import Address, ServerKeyId
from ..sessions import key_rotation
from .state import log

REFRESH_LOOK = 0.1  # seconds between looks at the finalized head (a look that finds no new epoch reads nothing)
FINISH_RETRY = 1.0  # seconds between attempts to finish batches a holder missed
REFRESH_PATIENCE = 10.0  # how long each server further down the epoch's rotation waits before it takes over
REFRESH_RETRY = 5.0  # after an attempt that left keys due


class RefreshSchedule:
    """The share refresh side of a key server's chain service (`service`: its `head_number`, `order`, `snapshot`,
    `core`)."""

    def __init__(self, service: Any, blocks: int) -> None:
        if blocks < 1:
            raise ValueError("--share-refresh-blocks must be at least 1")
        self.service, self.blocks = service, blocks
        self.core = service.core
        self.seen_epoch, self.seen_at = 0, 0.0
        self.pending: set[ServerKeyId] = set()  # keys due at the epoch's start and not known to be refreshed since
        self.retry_at = self.finish_at = 0.0
        self.core.share_refresh.current_epoch = self.epoch

    def epoch(self) -> int | None:
        head = self.service.head_number
        return head // self.blocks if head > 0 else None

    def keys_at_epoch(self) -> tuple[int, int]:
        """(keys whose active version belongs to the current epoch, all keys): for the metrics and status probes."""
        epoch = self.epoch() or 0
        counts = self.core.storage.refresh_epochs()
        return sum(c for e, c in counts.items() if e is not None and e >= epoch), sum(counts.values())

    async def run(self) -> None:
        while True:
            await asyncio.sleep(REFRESH_LOOK)
            if self.core.share_refresh.unfinished and time.monotonic() >= self.finish_at:
                self.finish_at = time.monotonic() + FINISH_RETRY
                await self.core.share_refresh.finish_unfinished()
            await self.look()

    async def look(self) -> None:
        epoch = self.epoch()
        snapshot = self.service.snapshot
        if not epoch or snapshot is None or snapshot.migration is not None or not self.service.order:
            return
        now = time.monotonic()
        if epoch != self.seen_epoch:
            self.seen_epoch, self.seen_at, self.retry_at = epoch, now, 0.0
            self.pending = {key_id for key_id, *_ in await asyncio.to_thread(self.core.storage.refresh_due, epoch)}
        if not self.pending or now < self.retry_at or now - self.seen_at < self._rank(epoch) * REFRESH_PATIENCE:
            return
        due = [d for d in await asyncio.to_thread(self.core.storage.refresh_due, epoch) if d[0] in self.pending]
        self.pending = {key_id for key_id, *_ in due}
        if due:
            await self._refresh(epoch, due)

    def _rank(self, epoch: int) -> int:
        """This server's place among the connected servers of the epoch's rotation (0: the epoch's master)."""
        cluster = self.core.cluster
        rotation = key_rotation(ServerKeyId(epoch.to_bytes(32, "big")), list(self.service.order))
        connected = [s for s in rotation if s == self.core.self_id or cluster is None or cluster.is_connected(s)]
        return connected.index(self.core.self_id) if self.core.self_id in connected else len(connected)

    async def _refresh(self, epoch: int, due: list[tuple[ServerKeyId, bytes, int, str]]) -> None:
        groups: dict[str, list[tuple[ServerKeyId, bytes, int]]] = {}
        for key_id, version, threshold, holders in due:
            groups.setdefault(holders, []).append((key_id, version, threshold))
        started, refreshed, failures = time.perf_counter(), 0, {}
        for holders, keys in groups.items():
            participants = [Address.from_hex(h) for h in json.loads(holders)]
            results = await self.core.refresh_shares(epoch, keys, participants)
            refreshed += sum(1 for why in results.values() if why is None)
            failures.update({k: why for k, why in results.items() if why is not None})
        log.info("share refresh", extra={"epoch": epoch, "refreshed": refreshed, "left": len(failures),
                                         "ms": round((time.perf_counter() - started) * 1e3, 1)})
        if failures:
            key_id, why = next(iter(failures.items()))
            log.warning("keys not refreshed, will retry", extra={"epoch": epoch, "keys": len(failures),
                                                                 "key": key_id.hex(), "error": why})
            self.retry_at = time.monotonic() + REFRESH_RETRY
        self.pending = set(failures)

    def status(self) -> dict:
        """The public figures a status probe gets."""
        at_epoch, keys = self.keys_at_epoch()
        return {"share_refresh_blocks": self.blocks, "refresh_epoch": self.epoch(), "keys": keys,
                "keys_at_epoch": at_epoch, "old_versions": self.core.storage.old_versions()}
