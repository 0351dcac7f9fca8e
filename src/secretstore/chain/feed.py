"""`BlockFeed`: every finalized block once, in order, with its extrinsic hashes and events, fanned out to watchers
(what a client waiting for its requests' result events follows)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import AsyncIterator, Callable

from .connection import ChainConnection
from .errors import ChainError
from .rpc import header_hash, header_number


class BlockFeed:
    """Finalized blocks, each once and in order (gaps in the head subscription are filled by number), with their
    extrinsic hashes and events, delivered to every watcher registered at the time. Owned by whoever runs `run()`."""

    def __init__(self, chain: ChainConnection) -> None:
        self.chain = chain
        self._watchers: set[asyncio.Queue] = set()
        self.last: int | None = None
        self.ready = asyncio.Event()
        self.awaiting_inclusion = 0  # submissions not yet found in a block: while there are any, bodies are read

    @contextlib.asynccontextmanager
    async def expecting_inclusion(self) -> AsyncIterator[Callable[[], None]]:
        """Around a submission: blocks whose head comes meanwhile are read with their bodies (extrinsic hashes),
        until the returned `found()` is called (or the block ends); other blocks only with their events."""
        waiting = True
        self.awaiting_inclusion += 1

        def found() -> None:
            nonlocal waiting
            if waiting:
                waiting = False
                self.awaiting_inclusion -= 1

        try:
            yield found
        finally:
            found()

    @contextlib.asynccontextmanager
    async def watch(self) -> AsyncIterator[asyncio.Queue]:
        """A queue of every `Block` (or ChainError, if the feed stops) finalized from now on."""
        queue: asyncio.Queue = asyncio.Queue()
        self._watchers.add(queue)
        try:
            yield queue
        finally:
            self._watchers.discard(queue)

    async def run(self) -> None:
        try:
            async with await self.chain.finalized_heads() as heads:
                while True:
                    header = await heads.latest()
                    # a submission made before this head was read may be in it: such a block is read whole
                    with_bodies = self.awaiting_inclusion > 0
                    number = header_number(header)
                    if self.last is not None and number <= self.last:
                        continue
                    if self.last is None:
                        self.last = number  # blocks before the feed started are nobody's business
                        self.ready.set()
                        continue
                    hashes = {number: header_hash(header)}
                    missing = [n for n in range(self.last + 1, number)]
                    if missing:
                        found = await asyncio.gather(*(self.chain.block_hash(n) for n in missing))
                        hashes.update(zip(missing, found))
                    blocks = await asyncio.gather(*(self.chain.block(hashes[n]) if with_bodies
                                                    else self.chain.block_events(hashes[n], n) for n in sorted(hashes)))
                    for block in blocks:
                        for queue in list(self._watchers):
                            queue.put_nowait(block)
                    self.last = number
        except ChainError as exc:
            for queue in list(self._watchers):
                queue.put_nowait(exc)
            raise
