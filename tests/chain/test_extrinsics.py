"""The metadata-driven signer against substrate-interface: the same call bytes, extrinsics the library decodes to the
same fields, and a live node that accepts and executes them."""

import asyncio
import secrets
import time

import pytest
from scalecodec.base import ScaleBytes
from substrateinterface import Keypair, SubstrateInterface

from secretstore.chain.client import SECRETSTORE_TYPES
from secretstore.chain.connection import ChainConnection, TransactionSubmitter
from secretstore.chain.events import EventsDecoder
from secretstore.chain.extrinsics import ExtrinsicSigner
from secretstore.chain.registry import Unsupported
from secretstore.crypto import Secret

ALICE = Keypair.create_from_uri("//Alice")


def random_hex(n: int) -> str:
    return "0x" + secrets.token_hex(n)


POINT = Secret(bytes.fromhex(secrets.token_hex(32))).public().hex()
CALLS = [
    ("SecretStore", "claim_key", {"id": random_hex(32)}),
    ("SecretStore", "generate_server_key", {"id": random_hex(32), "threshold": 2}),
    ("SecretStore", "store_document_key", {"id": random_hex(32), "common_point": POINT, "encrypted_point": POINT}),
    ("SecretStore", "retrieve_document_key_shadow", {"id": random_hex(32), "requester_public": POINT}),
    ("SecretStore", "server_key_generated", {"id": random_hex(32), "server_key_public": POINT}),
    ("SecretStore", "document_key_personal_retrieved", {
        "id": random_hex(32), "requester": random_hex(20), "participants": 0b10110,
        "decrypted_secret": POINT, "shadow": random_hex(97)}),
    ("SecretStore", "add_key_server", {"id": random_hex(20), "network_address": "0x" + b"127.0.0.1:9".hex()}),
    ("SecretStore", "change_owner", {"new_owner": Keypair.create_from_uri("//Bob").ss58_address}),
    ("Balances", "transfer_allow_death", {"dest": Keypair.create_from_uri("//Eve").ss58_address, "value": 10 ** 15}),
]


@pytest.fixture(scope="module")
def api(node):
    api = SubstrateInterface(url=node.ws_url, ss58_format=42, use_remote_preset=False, type_registry=SECRETSTORE_TYPES)
    api.init_runtime()
    yield api
    api.close()


@pytest.fixture(scope="module")
def signer(api):
    signer = ExtrinsicSigner.from_api(api, EventsDecoder.from_metadata(api.metadata).types)
    assert signer is not None
    return signer


@pytest.mark.parametrize("pallet,call,params", CALLS, ids=[c[1] for c in CALLS])
def test_calls_encode_as_substrate_interface_composes_them(api, signer, pallet, call, params):
    composed = api.compose_call(call_module=pallet, call_function=call, call_params=params)
    assert signer.call_data(pallet, call, params) == bytes.fromhex(str(composed.data)[2:])

    def decode(data: str):
        decoded = api.create_scale_object("Extrinsic", data=ScaleBytes(data), metadata=api.metadata)
        decoded.decode()
        return decoded

    extrinsic, extrinsic_hash = signer.sign(signer.call_data(pallet, call, params), ALICE, nonce=77)
    ours = decode(extrinsic)
    theirs = decode(str(api.create_signed_extrinsic(call=composed, keypair=ALICE, nonce=77).data))
    fields = {k: v for k, v in ours.value.items() if k not in ("signature", "extrinsic_hash")}
    assert fields == {k: v for k, v in theirs.value.items() if k not in ("signature", "extrinsic_hash")}
    assert fields["nonce"] == 77 and fields["call"]["call_function"] == call
    assert extrinsic_hash == "0x" + ours.extrinsic_hash.hex()
    assert len(extrinsic) == len(str(theirs.data))  # the same layout: only the (randomised) signature differs


@pytest.mark.parametrize("pallet,call,params", [
    ("SecretStore", "claim_key", {"id": "11" * 32}),              # hex without 0x: the library's business
    ("SecretStore", "claim_key", {"id": random_hex(31)}),         # wrong length
    ("SecretStore", "claim_key", {"id": random_hex(32), "x": 1}),  # unknown parameter
    ("SecretStore", "generate_server_key", {"id": random_hex(32), "threshold": "2"}),  # an int as text
    ("SecretStore", "generate_server_key", {"id": random_hex(32), "threshold": 256}),  # out of range for u8
    ("SecretStore", "no_such_call", {}),
    ("NoSuchPallet", "claim_key", {"id": random_hex(32)}),
])
def test_values_it_does_not_take_strictly_are_left_to_the_library(signer, pallet, call, params):
    with pytest.raises(Unsupported):
        signer.call_data(pallet, call, params)


def test_the_node_accepts_and_executes_what_it_signs(node):
    async def run():
        async with ChainConnection(node.ws_url) as chain:
            assert chain._signer is not None
            submitter = TransactionSubmitter(chain, Keypair.create_from_uri("//Dave"))
            keys = [random_hex(32) for _ in range(5)]
            found = {}
            async with await chain.finalized_heads() as heads:
                hashes = await asyncio.gather(*(submitter.submit("SecretStore", "claim_key", {"id": k}) for k in keys))
                assert len(set(hashes)) == 5
                async with asyncio.timeout(30):
                    while len(found) < 5:
                        header = await heads.next()
                        block = await chain.block(await chain.block_hash(int(header["number"], 16)))
                        for h in hashes:
                            events = block.extrinsic_events(h)
                            if events is not None:
                                found[h] = [e.name for e in events]
            for names in found.values():
                assert "KeyClaimed" in names and "ExtrinsicSuccess" in names
    asyncio.run(run())


def test_concurrent_submissions_go_out_together_and_a_bad_one_leaves_no_nonce_gap(node):
    """Submissions made while others are being sent form one group (consecutive nonces, sent back to back, acks
    awaited together): our node acknowledges only what is on disk, so without groups every transaction of an account
    would wait for the one before it. A call that cannot be composed takes no nonce: the rest still execute."""
    async def run():
        async with ChainConnection(node.ws_url) as chain:
            submitter = TransactionSubmitter(chain, Keypair.create_from_uri("//Charlie"))
            first = await chain.account_next_index(submitter.keypair.ss58_address)
            keys = [random_hex(32) for _ in range(12)]
            sent = 0
            real_request = chain.rpc.request

            async def counted(method, params=None, timeout=None):
                nonlocal sent
                if method == "author_submitExtrinsic":
                    sent += 1
                return await real_request(method, params, timeout)

            chain.rpc.request = counted
            calls = [("SecretStore", "claim_key", {"id": k}) for k in keys[:6]]
            calls.insert(3, ("SecretStore", "no_such_call", {}))
            results = await asyncio.gather(
                submitter.submit_many(calls),
                *(submitter.submit("SecretStore", "claim_key", {"id": k}) for k in keys[6:]))
            grouped, singles = results[0], results[1:]
            assert isinstance(grouped[3], Exception) and "no_such_call" in str(grouped[3])
            hashes = [h for i, h in enumerate(grouped) if i != 3] + list(singles)
            assert all(isinstance(h, str) for h in hashes) and len(set(hashes)) == 12
            assert sent == 12  # one request per transaction, none sent again
            deadline = asyncio.get_running_loop().time() + 30
            while await chain.account_next_index(submitter.keypair.ss58_address) < first + 12:
                assert asyncio.get_running_loop().time() < deadline
                await asyncio.sleep(0.05)
            assert await chain.account_next_index(submitter.keypair.ss58_address) == first + 12
        return submitter.keypair.ss58_address, keys, first

    account, keys, first = asyncio.run(run())
    # all twelve executed on consecutive nonces (a gap would hold every later one in the pool for good)
    api = SubstrateInterface(url=node.ws_url, use_remote_preset=False)
    try:
        deadline = time.monotonic() + 30
        while api.query("System", "Account", [account]).value["nonce"] < first + 12:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert api.query("System", "Account", [account]).value["nonce"] == first + 12
        for key in keys:
            assert api.query("SecretStore", "KeyOwners", [key]).value
    finally:
        api.close()
