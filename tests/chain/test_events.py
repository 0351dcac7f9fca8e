"""The registry-driven events decoder against substrate-interface's, on every block of a live node."""

import secrets

import pytest
from substrateinterface import Keypair, SubstrateInterface

from secretstore.chain.client import SECRETSTORE_TYPES
from secretstore.chain.connection import SYSTEM_EVENTS_KEY, _decode_events
from secretstore.chain.events import EventsDecodeError, EventsDecoder
from secretstore.crypto import Secret


@pytest.fixture(scope="module")
def chain(node):
    api = SubstrateInterface(url=node.ws_url, ss58_format=42, use_remote_preset=False, type_registry=SECRETSTORE_TYPES)
    yield api
    api.close()


def submit(api, keypair, call, params, pallet="SecretStore"):
    composed = api.compose_call(call_module=pallet, call_function=call, call_params=params)
    receipt = api.submit_extrinsic(api.create_signed_extrinsic(call=composed, keypair=keypair),
                                   wait_for_inclusion=True)
    return receipt


def test_every_event_of_a_busy_chain_decodes_as_substrate_interface_does(chain):
    dave, eve = Keypair.create_from_uri("//Dave"), Keypair.create_from_uri("//Eve")  # Dave has an id at genesis
    key = "0x" + secrets.token_hex(32)
    requester = Secret(bytes.fromhex(secrets.token_hex(32)))
    outcomes = [
        submit(chain, dave, "transfer_allow_death", {"dest": eve.ss58_address, "value": 10 ** 12}, "Balances"),
        submit(chain, eve, "claim_id", {"id": requester.public().address().hex()}),
        submit(chain, dave, "claim_key", {"id": key}),
        submit(chain, dave, "claim_key", {"id": key}),  # fails: KeyAlreadyClaimed (ExtrinsicFailed, module error)
        submit(chain, dave, "generate_server_key", {"id": key, "threshold": 1}),
        submit(chain, eve, "claim_key", {"id": "0x" + secrets.token_hex(32)}),
    ]
    assert [r.is_success for r in outcomes] == [True, True, True, False, True, True]

    decoder = EventsDecoder.from_metadata(chain.metadata)
    assert decoder is not None
    head = chain.get_block_header(finalized_only=True)["header"]["number"]
    seen = set()
    for number in range(0, head + 1):
        raw = chain.rpc_request("state_getStorage", [SYSTEM_EVENTS_KEY, chain.get_block_hash(number)])["result"]
        ours = decoder.decode(bytes.fromhex(raw[2:]) if raw else b"")
        assert ours == _decode_events(chain, raw), f"block {number}"
        seen.update((e.pallet, e.name) for e in ours)
    for expected in [("Balances", "Transfer"), ("System", "ExtrinsicFailed"), ("SecretStore", "IdClaimed"),
                     ("SecretStore", "KeyClaimed"), ("SecretStore", "ServerKeyGenerationRequested"),
                     ("TransactionPayment", "TransactionFeePaid")]:
        assert expected in seen


def test_events_that_do_not_match_the_types_are_refused(chain):
    decoder = EventsDecoder.from_metadata(chain.metadata)
    raw = bytes.fromhex(chain.rpc_request("state_getStorage", [SYSTEM_EVENTS_KEY])["result"][2:])
    assert decoder.decode(raw)
    for bad in (raw[:-1], raw + b"\x00", b"\x04\x00\x00\x00\x00\xff\xff", b"\x08" + raw[1:]):
        with pytest.raises(EventsDecodeError):
            decoder.decode(bad)


def record_requests(connection) -> list[str]:
    """The methods of the requests a ChainConnection makes from now on."""
    asked: list[str] = []
    request = connection.rpc.request

    async def recorded(method, params=None, timeout=None):
        asked.append(method)
        return await request(method, params, timeout)

    connection.rpc.request = recorded
    return asked


async def test_followed_blocks_come_with_their_events_pushed_and_older_ones_are_read(chain):
    """A follower of finalized heads gets each block's System.Events pushed ahead of the head (a standard storage
    subscription): reading them costs no request; a block from before the follower started is read as before."""
    import asyncio

    from secretstore.chain.connection import ChainConnection
    from secretstore.chain.rpc import header_hash

    submit(chain, Keypair.create_from_uri("//Dave"), "claim_key", {"id": "0x" + secrets.token_hex(32)})
    number = chain.get_block_header(finalized_only=True)["header"]["number"]
    before = chain.get_block_hash(number - 1)  # not the head: a storage subscription starts with the head's value
    async with ChainConnection(chain.url) as connection:
        asked = record_requests(connection)
        async with await connection.finalized_heads() as heads:
            await heads.next()  # the current head
            submitted = asyncio.get_running_loop().run_in_executor(None, lambda: submit(
                chain, Keypair.create_from_uri("//Dave"), "claim_key", {"id": "0x" + secrets.token_hex(32)}))
            while True:
                block_hash = header_hash(await heads.next())
                asked.clear()
                events = await connection.events(block_hash)
                if any(e.name == "KeyClaimed" for e in events):
                    break
            await submitted
        assert "state_getStorage" not in asked  # pushed, not read
        assert ("System", "ExtrinsicSuccess") in {(e.pallet, e.name) for e in events}
        asked.clear()
        assert await connection.events(before) == _decode_events(chain, chain.rpc_request(
            "state_getStorage", [SYSTEM_EVENTS_KEY, before])["result"])
        assert asked == ["state_getStorage"]


async def test_a_block_feed_reads_bodies_only_while_a_submission_waits_for_its_block(chain):
    import asyncio

    from secretstore.chain.connection import ChainConnection, TransactionSubmitter
    from secretstore.chain.feed import BlockFeed

    async with ChainConnection(chain.url) as connection:
        asked = record_requests(connection)
        feed = BlockFeed(connection)
        async with asyncio.TaskGroup() as tasks:
            following = tasks.create_task(feed.run())
            await feed.ready.wait()
            async with feed.watch() as blocks:
                # someone else's transaction: its block is followed for its events only
                await asyncio.get_running_loop().run_in_executor(None, lambda: submit(
                    chain, Keypair.create_from_uri("//Dave"), "claim_key", {"id": "0x" + secrets.token_hex(32)}))
                block = await blocks.get()
                assert block.extrinsic_hashes is None and any(e.name == "KeyClaimed" for e in block.events)
                assert "chain_getBlock" not in asked
                # our own: read whole until found
                submitter = TransactionSubmitter(connection, Keypair.create_from_uri("//Dave"))
                async with feed.expecting_inclusion() as found:
                    mine = await submitter.submit("SecretStore", "claim_key", {"id": "0x" + secrets.token_hex(32)})
                    while (events := (block := await blocks.get()).extrinsic_events(mine)) is None:
                        pass
                    found()
                    assert feed.awaiting_inclusion == 0
                assert "chain_getBlock" in asked and ("SecretStore", "KeyClaimed") in {(e.pallet, e.name) for e in events}
            following.cancel()


async def test_a_node_that_refuses_the_events_subscription_is_followed_by_reading_them(chain):
    from secretstore.chain.connection import ChainConnection
    from secretstore.chain.rpc import RpcError, header_hash

    async with ChainConnection(chain.url) as connection:
        subscribe = connection.rpc.subscribe

        async def no_storage_subscriptions(method, *args, **kwargs):
            if method == "state_subscribeStorage":
                raise RpcError(method, -32601, "Method not found")
            return await subscribe(method, *args, **kwargs)

        connection.rpc.subscribe = no_storage_subscriptions
        async with await connection.finalized_heads() as heads:
            head = header_hash(await heads.next())
            asked = record_requests(connection)
            assert await connection.events(head) == _decode_events(chain, chain.rpc_request(
                "state_getStorage", [SYSTEM_EVENTS_KEY, head])["result"])
            assert asked == ["state_getStorage"]
