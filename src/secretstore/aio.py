"""The event loop this project's processes run on: uvloop (libuv) where it is installed, asyncio's own otherwise.

Every process here spends much of its time in the event loop itself (task switches, callbacks, socket reads and
writes), and several of them share a machine's cores in a local network: uvloop does that work in C. Measured on a
two-core machine at n = 5 (`./run bench sessions`, alternating runs): about 3 ms less per generation and per shadow
retrieval. Nothing depends on it: without it (e.g. on Windows, where it does not exist) asyncio's loop runs the same
code.

`run` also tunes the garbage collector for these long-running processes: what is loaded before the main coroutine
starts (modules, the runtime, tables) is frozen out of the collector's scans, and the youngest generation is collected
every 20,000 container allocations instead of 700. The event loop makes many short-lived cycles (tasks, futures,
timeouts), and at the default a collection ran every few cluster messages. Measured at n = 5 (CPU per generation over
all processes, two pairs of alternating runs of 80): 1.4 and 4.1 ms less, out of about 47.
"""

from __future__ import annotations

import asyncio
import gc
from typing import Any, Coroutine, TypeVar

T = TypeVar("T")

try:
    import uvloop
except ImportError:  # pragma: no cover - every supported platform but Windows installs it
    uvloop = None  # type: ignore[assignment]


def new_event_loop() -> asyncio.AbstractEventLoop:
    return uvloop.new_event_loop() if uvloop is not None else asyncio.new_event_loop()


# the youngest generation's threshold; the older two are collected every 20 of the next younger one's collections
YOUNG_COLLECTION_EVERY = 20_000


def run(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run`, on the loop `new_event_loop` makes, with the collector tuned for a long-running process."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_COLLECTION_EVERY, 20, 20)
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        return runner.run(main)
