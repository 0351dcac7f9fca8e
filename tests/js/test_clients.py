"""Today's JavaScript Substrate clients, unmodified, against a live local network (a node and three key servers).

Each script (polkadot-api and dedot over the new JSON-RPC interface, @polkadot/api over the legacy one) follows
finalized blocks, reads System.Account of //Alice, calls SecretStore runtime APIs by name as metadata V15 describes
them, signs claim_key and generate_server_key as //Alice and watches both to finalization with their events, and
sees the key servers' ServerKeyGenerated through its own event API. What a script reports is checked here against
the chain as the Python side reads it.
"""

from __future__ import annotations

import secrets

import pytest
from substrateinterface import Keypair, SubstrateInterface

from secretstore.client import SecretStoreClient
from secretstore.crypto import ServerKeyId
from secretstore.devnet import LocalNetwork

from .npm import npm_clients, run_script

ALICE = Keypair.create_from_uri("//Alice")


@pytest.fixture(scope="module")
def clients():
    return npm_clients()


@pytest.fixture(scope="module")
def network(clients, tmp_path_factory):
    with LocalNetwork(tmp_path_factory.mktemp("js-clients")) as net:
        yield net


@pytest.fixture(scope="module")
def chain(network):
    substrate = SubstrateInterface(url=network.node.ws_url, use_remote_preset=False)
    # One block past genesis: dedot submits only once the finalized block's parent is pinned, and genesis has none
    # (under instant seal the next block would only come with a transaction: dedot would wait for ever)
    remark = substrate.compose_call("System", "remark", {"remark": "0x00"})
    substrate.submit_extrinsic(substrate.create_signed_extrinsic(remark, Keypair.create_from_uri("//Dave")),
                               wait_for_inclusion=True)
    yield substrate
    substrate.close()


def drive(clients, network, chain, script: str) -> None:
    key_id = "0x" + secrets.token_hex(32)
    before = chain.query("System", "Account", [ALICE.ss58_address]).value
    result = run_script(clients, script, network.node.ws_url, key_id)

    finalized = result["finalized"]
    assert len(finalized) >= 2 and finalized == sorted(set(finalized)), finalized
    assert result["account"] == {"nonce": before["nonce"], "free": str(before["data"]["free"])}
    # //Alice also signs key server 1's answers, so the generation's answer may have moved it once more
    assert result["nonceAfter"] >= before["nonce"] + 2
    # the SecretStore runtime APIs as the client decoded them from their V15 description
    assert result["tasks"] == []
    current = chain.query("SecretStore", "CurrentKeyServers").value
    assert [(ks_id, index) for ks_id, index in result["set"]] == [(ks["id"], i) for i, ks in enumerate(current)]

    alice_entity = chain.query("SecretStore", "ClaimedId", ["0x" + ALICE.public_key.hex()]).value
    for name, event in (("claim", "SecretStore.KeyClaimed"), ("generate", "SecretStore.ServerKeyGenerationRequested")):
        watched = result[name]
        assert watched["failed"] is None, watched
        assert event in watched["events"] and watched["events"][-1] == "System.ExtrinsicSuccess", watched
        # the block it was finalized in is on the chain and holds it
        number = chain.get_block_number(watched["block"])
        assert chain.get_block_hash(number) == watched["block"]
    assert chain.query("SecretStore", "KeyOwners", [key_id]).value == [alice_entity]

    # the server key the client saw in ServerKeyGenerated is the one the key servers hold
    with SecretStoreClient(network.node.ws_url, "//Bob", timeout=40) as bob:
        public = bob.retrieve_server_key(ServerKeyId.from_hex(key_id))
    assert result["serverKey"] == public.hex()


def test_polkadot_api_unsafe_api_new_rpc(clients, network, chain):
    drive(clients, network, chain, "papi.mjs")


def test_dedot_new_rpc(clients, network, chain):
    drive(clients, network, chain, "dedot.mjs")


def test_polkadot_js_api_legacy_rpc(clients, network, chain):
    drive(clients, network, chain, "polkadot_api.mjs")
