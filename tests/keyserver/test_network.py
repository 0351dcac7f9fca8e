"""A real network: one node and three key server processes (threshold 1), driven through the chain."""

import pytest

from secretstore.client import RequestFailed, SecretStoreClient
from secretstore.crypto import Secret
from secretstore.crypto import math as m
from secretstore.devnet import LocalNetwork

from .helpers import new_key_id, shares_of

ALICE_SECRET = Secret(b"\x01" * 32)  # //Alice's entity is the address of this key
BOB_SECRET = Secret(b"\x02" * 32)  # //Bob's


@pytest.fixture(scope="module")
def network(tmp_path_factory):
    with LocalNetwork(tmp_path_factory.mktemp("net")) as net:
        yield net


@pytest.fixture(scope="module")
def alice(network):
    with SecretStoreClient(network.node.ws_url, "//Alice", timeout=40) as client:
        yield client


@pytest.fixture(scope="module")
def bob(network):
    with SecretStoreClient(network.node.ws_url, "//Bob", timeout=40) as client:
        yield client


def test_generation_gives_one_public_and_shares_that_reconstruct_it(network, alice):
    key_id = new_key_id()
    alice.claim_key(key_id)
    public = alice.generate_server_key(key_id, threshold=1)
    shares = shares_of(network, key_id)
    assert all(s is not None and s.public == public and s.threshold == 1 for s in shares)
    xs = {m.id_number(ks.id): s.secret_share for ks, s in zip(network.servers, shares)}
    # test-only reconstruction: any 2 shares give the secret whose public the chain reported
    items = list(xs.items())
    for pair in ((0, 1), (1, 2), (0, 2)):
        assert m.base_mul(m.reconstruct(dict(items[i] for i in pair))) == public
    assert alice.retrieve_server_key(key_id) == public


def test_document_key_flow_and_access_control(network, alice, bob):
    key_id = new_key_id()
    alice.claim_key(key_id)
    server_key = alice.generate_server_key(key_id, threshold=1)
    generated = alice.store_new_document_key(key_id, server_key, ALICE_SECRET)
    encrypted = alice.encrypt_document(generated.document_key, b"Hello, world!")

    shadow = alice.retrieve_document_key_shadow(key_id, ALICE_SECRET)
    assert len(shadow.shadows) == 2 and shadow.threshold == 1
    assert alice.decrypt_document(shadow.document_key(ALICE_SECRET), encrypted) == b"Hello, world!"
    # the shadows are for Alice only
    with pytest.raises(ValueError):
        shadow.document_key(BOB_SECRET)

    with pytest.raises(RequestFailed) as info:
        bob.retrieve_document_key(key_id, BOB_SECRET)
    assert info.value.event == "DocumentKeyShadowRetrievalError"

    alice.transfer_key(key_id, BOB_SECRET.public().address())
    assert bob.decrypt_document(bob.retrieve_document_key(key_id, BOB_SECRET), encrypted) == b"Hello, world!"
    with pytest.raises(RequestFailed):
        alice.retrieve_document_key(key_id, ALICE_SECRET)


def test_generating_an_existing_key_fails(network, alice):
    key_id = new_key_id()
    alice.claim_key(key_id)
    alice.generate_server_key(key_id, threshold=1)
    with pytest.raises(RequestFailed) as info:
        alice.generate_server_key(key_id, threshold=1)
    assert info.value.event == "ServerKeyGenerationError"


def test_storing_twice_fails_and_unknown_key_store_fails(network, alice):
    key_id = new_key_id()
    alice.claim_key(key_id)
    server_key = alice.generate_server_key(key_id, threshold=1)
    alice.store_new_document_key(key_id, server_key, ALICE_SECRET)
    with pytest.raises(RequestFailed) as info:
        alice.store_new_document_key(key_id, server_key, ALICE_SECRET)
    assert info.value.event == "DocumentKeyStoreError"
    with pytest.raises(RequestFailed):
        alice.store_new_document_key(new_key_id(), server_key, ALICE_SECRET)


def test_one_server_down_then_restarted(network, alice):
    """t = 1 of 3: with one key server dead, generation fails cleanly and retrieval still works; once restarted the
    server serves the keys it had."""
    key_id = new_key_id()
    alice.claim_key(key_id)
    server_key = alice.generate_server_key(key_id, threshold=1)
    generated = alice.store_new_document_key(key_id, server_key, ALICE_SECRET)
    encrypted = alice.encrypt_document(generated.document_key, b"still here")

    victim = network.servers[2]
    victim.stop(kill=True)
    try:
        other = new_key_id()
        alice.claim_key(other)
        with pytest.raises(RequestFailed) as info:
            alice.generate_server_key(other, threshold=1)
        assert info.value.event == "ServerKeyGenerationError"
        assert alice.decrypt_document(alice.retrieve_document_key(key_id, ALICE_SECRET), encrypted) == b"still here"
    finally:
        victim.start()
    network.wait_connected(30)
    # now stop a different server: the restarted one must take part, from its database
    second = network.servers[0]
    second.stop()
    try:
        assert alice.decrypt_document(alice.retrieve_document_key(key_id, ALICE_SECRET), encrypted) == b"still here"
    finally:
        second.start()
        network.wait_connected(30)
