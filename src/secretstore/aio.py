"""The event loop this project's processes run on: uvloop (libuv) where it is installed, asyncio's own otherwise.

Every process here spends much of its time in the event loop itself (task switches, callbacks, socket reads and
writes), and several of them share a machine's cores in a local network: uvloop does that work in C. Measured on a
two-core machine at n = 5 (`./run bench sessions`, alternating runs): about 3 ms less per generation and per shadow
retrieval. Nothing depends on it: without it (e.g. on Windows, where it does not exist) asyncio's loop runs the same
code.
"""

from __future__ import annotations

import asyncio
from typing import Any, Coroutine, TypeVar

T = TypeVar("T")

try:
    import uvloop
except ImportError:  # pragma: no cover - every supported platform but Windows installs it
    uvloop = None  # type: ignore[assignment]


def new_event_loop() -> asyncio.AbstractEventLoop:
    return uvloop.new_event_loop() if uvloop is not None else asyncio.new_event_loop()


def run(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run`, on the loop `new_event_loop` makes."""
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        return runner.run(main)
