"""Instant seal's gathering (waves of awaited responses, quiet windows), in process, on the event loop the node
runs (uvloop where installed)."""

import asyncio
import secrets
import time

import pytest
from substrateinterface import Keypair

from secretstore import aio
from secretstore.crypto import Secret
from secretstore.node import rpc, sealing
from secretstore.node.chain import Chain
from secretstore.node.extrinsic import Era, decode, encode_signed
from secretstore.runtime import GenesisConfig


@pytest.fixture
def server(tmp_path):
    chain = Chain(tmp_path / "chain", GenesisConfig.dev())
    yield rpc.RpcServer(chain)
    chain.close()


@pytest.mark.parametrize("last_block_size", [0, 1, 3, 100])
def test_the_quiet_window_is_waited_not_polled(server, last_block_size):
    """uvloop counts timers in whole milliseconds, so a wait of a fraction of one returns at once: a window measured
    finely and waited to its last fraction would spin the loop (hundreds of wake-ups, a core busy beside the key
    servers). It is waited in a few timer waits, and still lasts about as long as it should."""
    waits, production = [], server.production

    class CountingEvent(asyncio.Event):
        async def wait(self):
            waits.append(time.monotonic())
            return await super().wait()

    production._last_block_size = last_block_size
    window = min(sealing.SEAL_QUIET_MAX, sealing.SEAL_QUIET + sealing.SEAL_QUIET_PER_TX * last_block_size)

    async def gather_once() -> float:
        production._arrival = CountingEvent()
        production._last_arrival, production._arrival_gap = time.monotonic(), 0.0  # transactions keep coming
        started = time.monotonic()
        await production._gather()
        return time.monotonic() - started

    took = aio.run(gather_once())
    assert len(waits) <= 3, waits
    assert window - sealing.TIMER_RESOLUTION / 2 <= took < window + 0.02


def submit(server, extrinsic: str):
    """author_submitExtrinsic as the server calls it: the future of its answer."""
    return server.methods["author_submitExtrinsic"](None, extrinsic)


def signed(chain: Chain, suri: str, nonce: int, pallet: str, call: str, **args) -> str:
    """A signed immortal extrinsic of `pallet.call(args)` from the dev account `suri`, as the RPC takes it."""
    keypair = Keypair.create_from_uri(suri)
    encoded_call = chain.runtime.RuntimeCall.encode((pallet, (call, args or None)))
    template = decode(encode_signed(keypair.public_key, 1, bytes(64), Era(), nonce, 0, encoded_call))
    payload = template.signing_payload(chain.runtime.spec_version, chain.runtime.transaction_version,
                                       chain.genesis_hash, chain.genesis_hash)
    return "0x" + encode_signed(keypair.public_key, 1, keypair.sign(payload), Era(), nonce, 0, encoded_call).hex()


def generation_requested(server) -> list[str]:
    """A generation request (//Alice) sealed in a block; the three dev key servers' responses to it, signed, unsent.
    Runs on the event loop (a submission's answer is a future)."""
    chain, key = server.chain, secrets.token_bytes(32)
    public = bytes(Secret.random().public())
    submit(server, signed(chain, "//Alice", 0, "SecretStore", "generate_server_key", id=key, threshold=1))
    chain.produce_block()
    return [signed(chain, suri, nonce, "SecretStore", "server_key_generated", id=key, server_key_public=public)
            for suri, nonce in (("//Alice", 1), ("//Bob", 0), ("//Charlie", 0))]


def test_a_block_waits_for_the_responses_its_wave_awaits_and_no_longer(server):
    """A generation request awaits all three dev key servers. The block after it waits for them: not sealed on a
    quiet window while one is missing (patience runs from the last of them), sealed at once when the third is in,
    all three in it. Submitters are answered while the block gathers."""
    chain, production = server.chain, server.production

    async def scenario() -> None:
        responses = generation_requested(server)
        assert production._awaited.missing() == 3 and production._awaited.wave_missing() == 3
        acks = [submit(server, signed(chain, "//Dave", 0, "System", "remark", remark=b"not one"))]
        for response in responses[:2]:
            acks.append(submit(server, response))
        last_response = time.monotonic()
        assert production._awaited.wave_missing() == 1  # a transaction that is no response does not count
        assert not production._awaited.wave_in() and not production._awaited.all_in()
        await production._gather()
        assert time.monotonic() >= last_response + sealing.SEAL_WAVE_PATIENCE - sealing.TIMER_RESOLUTION
        assert all(ack.done() for ack in acks)  # answered while gathering, before any block
        acks.append(submit(server, responses[2]))
        assert production._awaited.wave_in() and production._awaited.all_in()
        started = time.monotonic()
        await production._gather()
        assert time.monotonic() - started < sealing.SEAL_QUIET  # no window at all
        block = chain.produce_block()
        assert len(block.included) == 4
        awaited = production._awaited
        assert awaited.missing() == 0 and awaited.wave_missing() == 0  # generated: nothing awaited
        production._release_acks()
        assert [await ack for ack in acks]

    aio.run(scenario())


def test_a_wave_holds_a_block_at_most_its_limit(server, monkeypatch):
    """However patient the wait for a wave's responses, a block waits SEAL_WAVE_MAX after the last block at most."""
    monkeypatch.setattr(sealing, "SEAL_WAVE_PATIENCE", 0.2)
    monkeypatch.setattr(sealing, "SEAL_WAVE_MAX", 0.05)
    production = server.production

    async def scenario() -> None:
        responses = generation_requested(server)
        submit(server, responses[1])
        assert production._awaited.wave_missing() == 2
        await production._gather()
        took = time.monotonic() - production._last_sealed  # since the block of the request
        assert sealing.SEAL_WAVE_MAX - sealing.TIMER_RESOLUTION <= took < sealing.SEAL_WAVE_PATIENCE
        server.chain.produce_block()
        production._release_acks()

    aio.run(scenario())


def test_a_lone_transaction_on_a_quiet_chain_is_sealed_at_once(server):
    """The first transaction after a pause, with no request awaiting answers, has nothing to be gathered with: no
    window. One that follows another closely still waits for the window (a burst goes into one block)."""
    chain, production = server.chain, server.production

    async def gather_time() -> float:
        started = time.monotonic()
        await production._gather()
        return time.monotonic() - started

    async def scenario() -> None:
        lone, burst = (signed(chain, "//Dave", nonce, "System", "remark", remark=b"%d" % nonce) for nonce in (0, 1))
        production._last_arrival = time.monotonic() - 1.0
        submit(server, lone)
        assert production._awaited.idle()
        assert await gather_time() < sealing.SEAL_QUIET
        submit(server, burst)
        assert await gather_time() >= sealing.SEAL_QUIET - sealing.TIMER_RESOLUTION / 2
        chain.produce_block()
        production._release_acks()

    aio.run(scenario())
