"""Instant seal's quiet window, in process, on the event loop the node runs (uvloop where installed)."""

import asyncio
import time

import pytest

from secretstore import aio
from secretstore.node import rpc
from secretstore.node.chain import Chain
from secretstore.runtime import GenesisConfig


@pytest.fixture
def server(tmp_path):
    chain = Chain(tmp_path / "chain", GenesisConfig.dev())
    yield rpc.RpcServer(chain)
    chain.close()


@pytest.mark.parametrize("last_block_size", [0, 1, 3, 100])
def test_the_quiet_window_is_slept_not_polled(server, monkeypatch, last_block_size):
    """uvloop counts timers in whole milliseconds, so a sleep of a fraction of one returns at once: a window measured
    finely and slept to its last fraction would spin the loop (hundreds of wake-ups, a core busy beside the key
    servers). It is slept in a few timer waits, and still lasts about as long as it should."""
    sleeps = []
    real_sleep = asyncio.sleep

    async def counting_sleep(delay, *args):
        sleeps.append(delay)
        return await real_sleep(delay, *args)

    monkeypatch.setattr(asyncio, "sleep", counting_sleep)
    server._last_block_size = last_block_size
    window = min(rpc.SEAL_QUIET_MAX, rpc.SEAL_QUIET + rpc.SEAL_QUIET_PER_TX * last_block_size)

    async def gather_once() -> float:
        server._last_arrival = time.monotonic()
        started = time.monotonic()
        await server._gather()
        return time.monotonic() - started

    took = aio.run(gather_once())
    assert len(sleeps) <= 3, sleeps
    assert window - rpc.TIMER_RESOLUTION / 2 <= took < window + 0.02
