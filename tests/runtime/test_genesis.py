"""Genesis: the --dev preset is the Parity Secret Store dev chain; bad configurations are refused by name."""

import dataclasses

import pytest
from substrateinterface import Keypair

from secretstore.crypto import Secret
from secretstore.runtime import DEV_ACCOUNTS, GenesisConfig, InvalidGenesis, MemoryStorage, Runtime

from .conftest import make_chain


@pytest.mark.parametrize("name", list(DEV_ACCOUNTS))
def test_dev_accounts_are_the_well_known_sr25519_keys(name):
    assert Keypair.create_from_uri("//" + name).public_key == DEV_ACCOUNTS[name]


def test_dev_preset_matches_the_spec():
    config = GenesisConfig.dev()
    chain = make_chain()
    pallet, storage = chain.runtime.secretstore, chain.storage
    assert pallet.Owner.get(storage) == DEV_ACCOUNTS["Alice"]
    assert pallet.IsInitializationCompleted.get(storage) is True
    snapshot = chain.api("SecretStoreKeyServerSetApi_snapshot", bytes(20))
    expected = [(bytes(Secret(bytes([i]) * 32).public().address()), f"127.0.0.1:{9999 + i}".encode()) for i in (1, 2, 3)]
    assert [ks_id.hex() for ks_id, _ in expected] == ["1a642f0e3c3af545e7acbd38b07251b3990914f1",
                                                   "5050a4f4b3f9338c3472dcc01a87c76a144b3c9c",
                                                   "3325a78425f17a7e487eb5666b2bfd93abb06c70"]
    assert snapshot == {"current_set": expected, "new_set": expected, "migration": None}
    claims = {name: pallet.ClaimedId.get(storage, DEV_ACCOUNTS[name]) for name in ("Alice", "Bob", "Charlie", "Dave")}
    assert [claims[n] for n in ("Alice", "Bob", "Charlie")] == [ks_id for ks_id, _ in expected]
    assert claims["Dave"].hex() == "c48b812bb43401392c037381aca934f4069c0517"
    for name in ("Alice", "Bob", "Charlie"):
        assert pallet.ClaimedBy.get(storage, claims[name]) == DEV_ACCOUNTS[name]
    for entry in (pallet.ServerKeyGenerationFee, pallet.ServerKeyRetrievalFee, pallet.DocumentKeyStoreFee,
                  pallet.DocumentKeyShadowRetrievalFee):
        assert entry.get(storage) == 0
    assert pallet.MaxPendingRequests.get(storage) >= 64
    for account in DEV_ACCOUNTS.values():
        assert chain.runtime.balances.free(storage, account) == config.endowed[account] > 0


def test_genesis_leaves_no_events_and_is_deterministic():
    first = Runtime.genesis_storage(GenesisConfig.dev())
    assert first == Runtime.genesis_storage(GenesisConfig.dev())
    runtime = Runtime(MemoryStorage(first))
    assert runtime.system.events(runtime.storage) == []


def test_overrides_are_applied():
    chain = make_chain(owner=DEV_ACCOUNTS["Bob"], server_key_generation_fee=5, max_pending_requests=3,
                       is_initialization_completed=False)
    pallet = chain.runtime.secretstore
    assert pallet.Owner.get(chain.storage) == DEV_ACCOUNTS["Bob"]
    assert pallet.ServerKeyGenerationFee.get(chain.storage) == 5
    assert pallet.MaxPendingRequests.get(chain.storage) == 3
    assert pallet.IsInitializationCompleted.get(chain.storage) is False


ALICE = DEV_ACCOUNTS["Alice"]


@pytest.mark.parametrize("field, value, message", [
    ("owner", b"\x01" * 20, "owner"),
    ("key_servers", [], "key servers"),
    ("key_servers", [(b"\x01" * 19, b"h:1")], "20-byte"),
    ("key_servers", [(b"\x01" * 20, b"h:1"), (b"\x01" * 20, b"h:2")], "distinct"),
    ("key_servers", [(b"\x01" * 20, b"no-port")], "host:port"),
    ("key_servers", [(b"\x01" * 20, "h:1")], "host:port"),
    ("key_servers", [(bytes([i % 256, i // 256]) * 10, b"h:1") for i in range(256)], "key servers"),
    ("claims", {ALICE: b"\x01" * 32}, "claims"),
    ("claims", {ALICE: b"\x01" * 20, DEV_ACCOUNTS["Bob"]: b"\x01" * 20}, "one account"),
    ("endowed", {ALICE: -1}, "endowment"),
    ("endowed", {ALICE: 1 << 128}, "endowment"),
    ("is_initialization_completed", 1, "boolean"),
    ("server_key_generation_fee", -5, "server_key_generation_fee"),
    ("byte_fee", 1.5, "byte_fee"),
    ("max_pending_requests", 0, "max_pending_requests"),
    ("max_pending_requests", 1 << 32, "max_pending_requests"),
])
def test_bad_genesis_is_refused(field, value, message):
    config = dataclasses.replace(GenesisConfig.dev(), **{field: value})
    with pytest.raises(InvalidGenesis, match=message):
        Runtime.genesis_storage(config)
