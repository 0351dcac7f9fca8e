"""Block production: instant seal (a block as soon as transactions are ready, gathered into waves) or a fixed block
time, and the acknowledgements of submissions once the chain has written them."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from .chain import BlockInfo, Chain

# instant seal: a block once no transaction has arrived for a quiet window (SEAL_QUIET, plus SEAL_QUIET_PER_TX for
# every transaction of the block before, at most SEAL_QUIET_MAX) ...
SEAL_QUIET = 0.001
SEAL_QUIET_PER_TX = 0.00025
SEAL_QUIET_MAX = 0.003
SEAL_GATHER = 0.015  # ... or SEAL_GATHER after the first one
# While key server responses are still awaited the quiet window is SEAL_QUIET_AWAITING (the answers of different key
# servers arrive a few ms apart on a busy machine); the block is sealed the moment all that could decide the pending
# requests have arrived ...
SEAL_QUIET_AWAITING = 0.004
# ... and a block whose wave (the requests the last block changed) awaits responses waits for them: until the last
# arrives, or SEAL_WAVE_PATIENCE passes without one, SEAL_WAVE_MAX after the last block at most (see `_gather`)
SEAL_WAVE_PATIENCE = 0.050
SEAL_WAVE_MAX = 0.200
# submitters are answered while a block gathers, SEAL_ACK_DELAY after the first of them arrived (one write of the pool
# for a group of arrivals, not one each)
SEAL_ACK_DELAY = 0.002
# uvloop's timers and loop.time() count whole milliseconds: a sleep under half of one returns at once, so the quiet
# window is measured with time.monotonic() and ends when less than that is left (waiting on would spin the loop)
TIMER_RESOLUTION = 0.001


class AwaitedResponses:
    """What instant seal waits for. After every block, per pending request (its storage key) that the block changed:
    the fewest key server responses that could decide it; then, per request, the responses that have arrived since.
    The requests the last block changed awaiting answers are its *wave*: what the key servers answer next. Pending
    requests are bounded by the chain's queues, so all of this is too."""

    def __init__(self) -> None:
        self._by_request: dict[bytes, int] = {}
        self._arrived: dict[bytes, int] = {}
        self._wave: set[bytes] = set()
        self._missing = 0
        self._wave_missing = 0
        self.wave_last_arrival = 0.0  # time.monotonic() of the last response to the wave (0: none yet)

    def sealed(self, chain: Chain, changes: dict[bytes, bytes | None]) -> None:
        pallet = chain.runtime.secretstore
        self._arrived.clear()
        self._wave = set()
        self.wave_last_arrival = 0.0
        for key in changes:
            awaited = pallet.responses_awaited(chain.state, key)
            if awaited:
                self._by_request[key] = awaited
                self._wave.add(key)
            elif awaited == 0:
                self._by_request.pop(key, None)
        self._missing = sum(self._by_request.values())
        self._wave_missing = sum(self._by_request[key] for key in self._wave)

    def arrived(self, chain: Chain, ext_hash: bytes) -> None:
        pooled = chain.pool.get(ext_hash)
        if pooled is None:
            return
        key = chain.runtime.secretstore.response_request_key(pooled.extrinsic.call)
        awaited = self._by_request.get(key) if key is not None else None
        if awaited is None:
            return  # no response, or one to a request nothing waits for
        count = self._arrived.get(key, 0)
        self._arrived[key] = count + 1
        if count < awaited:  # a response beyond those that could decide it changes nothing here
            self._missing -= 1
            if key in self._wave:
                self._wave_missing -= 1
                self.wave_last_arrival = time.monotonic()

    def idle(self) -> bool:
        """No pending request awaits a response (that a block changed since this node started)."""
        return not self._by_request

    def missing(self) -> int:
        return self._missing

    def all_in(self) -> bool:
        return bool(self._by_request) and self._missing == 0

    def wave_missing(self) -> int:
        """Responses still awaited by the requests the last block changed."""
        return self._wave_missing

    def wave_in(self) -> bool:
        """Every response the requests of the last block's wave awaited has arrived."""
        return bool(self._wave) and self._wave_missing == 0


class BlockProduction:
    """`block_time` None is instant seal: a block as soon as transactions are ready, holding every ready transaction
    (`seal_per_transaction` restores one block per transaction). With a block time, each block holds every
    transaction ready when it is sealed. Submissions are reported with `after_write`, whose future resolves once
    the chain has written them."""

    def __init__(self, chain: Chain, *, block_time: float | None = None, seal_per_transaction: bool = False) -> None:
        self.chain = chain
        self.block_time = block_time
        self.seal_per_transaction = seal_per_transaction
        self._gathers = block_time is None and not seal_per_transaction  # instant seal's `_gather` runs
        self._wake = asyncio.Event()
        self._last_arrival = 0.0  # time.monotonic() of the last accepted transaction (instant seal's quiet window)
        self._arrival_gap = float("inf")  # seconds between the last two accepted transactions
        self._last_block_size = 0  # transactions in the last block sealed (instant seal's quiet window)
        self._awaited = AwaitedResponses()
        self._last_sealed = 0.0  # time.monotonic() of the last block
        self._first_unanswered = 0.0  # time.monotonic() of the oldest submission not yet answered
        self._arrival = asyncio.Event()  # a transaction was accepted (instant seal's gathering waits on it)
        # replies to submissions that wait until the chain has written the transaction (pool row or block)
        self._acks: list[tuple[asyncio.Future, Any]] = []
        chain.listeners.append(self._on_block)

    async def run(self) -> None:
        """Instant seal (a block whenever transactions are ready) or a fixed block time. Either way, every wake-up
        ends with the accepted transactions on disk and their submitters answered."""
        loop = asyncio.get_running_loop()
        next_block = loop.time() + self.block_time if self.block_time else None
        while True:
            if not self._wake.is_set():
                try:
                    async with asyncio.timeout(None if next_block is None else max(0.0, next_block - loop.time())):
                        await self._wake.wait()
                except TimeoutError:
                    pass
            self._wake.clear()
            if next_block is not None:
                if loop.time() >= next_block:
                    self.chain.produce_block()
                    self._release_acks()
                    next_block = max(next_block + self.block_time, loop.time())
            else:
                if self._gathers:
                    await self._gather()
                while self.chain.has_ready():
                    self.chain.produce_block(1 if self.seal_per_transaction else None)
                    self._release_acks()
                    await asyncio.sleep(0)  # what does not fit goes in the next block, after pending requests
            self.chain.flush_pool()
            self._release_acks()

    async def _gather(self) -> None:
        """Instant seal gathers what belongs together into one block; every block costs each follower of the chain
        a wake-up, and a request as many hops as blocks it takes.

        - A lone transaction (the first after a pause, while no request awaits answers) waits for nothing.
        - While the requests the last block changed (its wave) await key server responses, the block waits for
          them and is sealed the moment the last one arrives, or once SEAL_WAVE_PATIENCE has passed without one
          of them (since the block or the last of its responses, at most SEAL_WAVE_MAX in all): a response that
          is not coming (a stopped key server) holds a block only that long. Under load the block interval then
          follows how fast the key servers answer, and each request takes the fewest blocks its protocol needs.
        - Otherwise it waits while transactions keep arriving (a quiet window since the last one, SEAL_GATHER at
          most): 1 ms when traffic is light, growing with the last block's size up to SEAL_QUIET_MAX, and
          SEAL_QUIET_AWAITING while older requests still await responses; sealed at once if they are all in.

        Submitters are answered while the block gathers (SEAL_ACK_DELAY after the first of them), not when it is
        sealed: a key server sends its next responses once the last ones are accepted, and they belong in this
        block too."""
        awaited = self._awaited
        usual = min(SEAL_QUIET_MAX, SEAL_QUIET + SEAL_QUIET_PER_TX * self._last_block_size)
        if awaited.idle() and self._arrival_gap >= usual:
            return  # a lone transaction after a pause, and no request waits for answers: nothing to gather it with
        waves = awaited.wave_missing() > 0
        deadline = time.monotonic() + SEAL_GATHER
        while not (awaited.wave_in() if waves else awaited.all_in()):
            if waves:
                wait = min(max(self._last_sealed, awaited.wave_last_arrival) + SEAL_WAVE_PATIENCE,
                           self._last_sealed + SEAL_WAVE_MAX) - time.monotonic()
            else:
                quiet = SEAL_QUIET_AWAITING if awaited.missing() else usual
                wait = min(self._last_arrival + quiet, deadline) - time.monotonic()
            if wait < TIMER_RESOLUTION / 2:  # a shorter wait would not wait at all (see TIMER_RESOLUTION)
                return
            if self._acks:
                ack_at = self._first_unanswered + SEAL_ACK_DELAY
                if ack_at - time.monotonic() < TIMER_RESOLUTION / 2:
                    self.chain.flush_pool()
                    self._release_acks()
                else:  # the answers to one request come close together: wake to acknowledge them all at once
                    wait = min(wait, ack_at - time.monotonic())
            self._arrival.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._arrival.wait()

    def _release_acks(self) -> None:
        """Every transaction accepted so far is written (the chain writes all buffered ones at each block or flush):
        answer their submitters."""
        acks, self._acks = self._acks, []
        for future, result in acks:
            if not future.done():
                future.set_result(result)

    def after_write(self, ext_hash: bytes, result: Any) -> asyncio.Future:
        """A future of `result`, resolved once the transaction `ext_hash` just accepted is written; the submission
        also wakes block production."""
        loop = asyncio.get_running_loop()
        now = time.monotonic()
        self._arrival_gap, self._last_arrival = now - self._last_arrival, now
        if self._gathers:  # what it waits for is kept only where blocks are gathered
            self._awaited.arrived(self.chain, ext_hash)
        self._arrival.set()
        future = loop.create_future()
        if not self._acks:
            self._first_unanswered = now
        self._acks.append((future, result))
        self._wake.set()
        return future

    def _on_block(self, block: BlockInfo) -> None:
        self._last_block_size = len(block.included)
        self._last_sealed = time.monotonic()
        if self._gathers:
            self._awaited.sealed(self.chain, block.changes)
