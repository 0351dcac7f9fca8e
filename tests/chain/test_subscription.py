"""A subscription's queue: notifications in order, a wake-up that is not a notification, the end of the connection."""

import asyncio

import pytest

from secretstore.chain.errors import ChainError
from secretstore.chain.rpc import AsyncRpc, Subscription


def subscription() -> Subscription:
    return Subscription(AsyncRpc("ws://127.0.0.1:1"), "1", "chain_unsubscribeFinalizedHeads")


def test_queued_returns_everything_waiting_in_order():
    async def run():
        heads = subscription()
        for n in (1, 2, 3):
            heads._deliver({"number": n})
        assert await heads.queued() == [{"number": 1}, {"number": 2}, {"number": 3}]
        waiting = asyncio.ensure_future(heads.queued())
        await asyncio.sleep(0.01)
        assert not waiting.done()  # nothing queued: it waits
        heads._deliver({"number": 4})
        assert await asyncio.wait_for(waiting, 1) == [{"number": 4}]

    asyncio.run(run())


def test_a_wake_returns_a_waiting_queued_with_nothing_and_is_no_notification():
    async def run():
        heads = subscription()
        waiting = asyncio.ensure_future(heads.queued())
        await asyncio.sleep(0.01)
        heads.wake()
        assert await asyncio.wait_for(waiting, 1) == []
        heads._deliver({"number": 1})
        heads.wake()
        heads._deliver({"number": 2})
        assert await heads.queued() == [{"number": 1}, {"number": 2}]
        # the other readers skip it
        heads.wake()
        heads._deliver({"number": 3})
        assert await asyncio.wait_for(heads.next(), 1) == {"number": 3}
        heads._deliver({"number": 4})
        heads.wake()
        assert await asyncio.wait_for(heads.latest(), 1) == {"number": 4}
        heads.wake()
        latest = asyncio.ensure_future(heads.latest())
        await asyncio.sleep(0.01)
        assert not latest.done()  # a wake alone is not a notification to return
        heads._deliver({"number": 5})
        assert await asyncio.wait_for(latest, 1) == {"number": 5}

    asyncio.run(run())


def test_the_end_of_the_connection_ends_every_reader_and_stays():
    async def run():
        heads = subscription()
        heads._deliver({"number": 1})
        heads._deliver(ChainError("connection lost"))
        with pytest.raises(ChainError):
            await heads.queued()
        with pytest.raises(ChainError):
            await heads.next()
        heads.wake()
        with pytest.raises(ChainError):
            await heads.queued()

    asyncio.run(run())
