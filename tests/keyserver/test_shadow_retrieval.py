"""Chain shadow retrievals on five key servers (t = 2): which servers answer, and retrievals that follow each other.

The common part needs n / 2 + 1 = 3 agreeing answers, so only the first three servers of the key's rotation send one;
the decryption runs while those are confirmed, and its three participants send their personal parts once the chain
asks for them. What went into the blocks is read back with substrate-interface."""

import time

import pytest
from substrateinterface import SubstrateInterface

from secretstore.client import SecretStoreClient
from secretstore.crypto import Address, Public, Secret
from secretstore.crypto import math as m
from secretstore.keyserver.sessions import PERSONAL_PART_TTL, PersonalParts
from secretstore.keyserver.service import COMMON_STANDBY
from secretstore.devnet import LocalNetwork

from .helpers import new_key_id

ALICE_SECRET = Secret(b"\x01" * 32)
N = 5


@pytest.fixture(scope="module")
def network(tmp_path_factory):
    with LocalNetwork(tmp_path_factory.mktemp("net"), key_servers=N) as net:
        yield net


@pytest.fixture(scope="module")
def alice(network):
    # far below the 5 s periodic rescan: a retrieval that waited for one would fail here
    with SecretStoreClient(network.node.ws_url, "//Alice", timeout=4) as client:
        yield client


@pytest.fixture(scope="module")
def chain(network):
    api = SubstrateInterface(url=network.node.ws_url, use_remote_preset=False)
    yield api
    api.close()


def responses_since(chain: SubstrateInterface, first_block: int, key_id) -> dict[str, list[str]]:
    """Signers of each SecretStore response call about this key in the blocks from `first_block` on."""
    found: dict[str, list[str]] = {}
    head = chain.get_block_header(finalized_only=True)["header"]["number"]
    for number in range(first_block, head + 1):
        for extrinsic in chain.get_block(block_number=number)["extrinsics"]:
            call = extrinsic.value["call"]
            args = {a["name"]: a["value"] for a in call["call_args"]}
            if call["call_module"] == "SecretStore" and args.get("id") == "0x" + bytes(key_id).hex():
                found.setdefault(call["call_function"], []).append(extrinsic.value["address"])
    return found


def stored_key(alice: SecretStoreClient):
    key_id = new_key_id()
    alice.claim_key(key_id)
    public = alice.generate_server_key(key_id, threshold=2)
    return key_id, alice.store_new_document_key(key_id, public, ALICE_SECRET).document_key


def test_a_majority_answers_the_common_part_and_the_participants_the_personal_part(network, alice, chain):
    key_id, document_key = stored_key(alice)
    first = chain.get_block_header(finalized_only=True)["header"]["number"] + 1
    assert alice.retrieve_document_key(key_id, ALICE_SECRET) == document_key
    time.sleep(COMMON_STANDBY + 1.0)  # long past the standby: the other two must not have answered after all
    calls = responses_since(chain, first, key_id)
    assert len(calls["document_key_common_retrieved"]) == N // 2 + 1
    assert len(set(calls["document_key_personal_retrieved"])) == 3  # t + 1 participants
    # the participants are among the servers that answered the common part (one round of servers does it all)
    assert set(calls["document_key_personal_retrieved"]) <= set(calls["document_key_common_retrieved"])


def test_a_stopped_server_of_the_first_majority_is_replaced(network, alice, chain):
    key_id, document_key = stored_key(alice)
    # the key's rotation starts at its master (index key mod n); the next server is also among the first three
    second = (int.from_bytes(bytes(key_id), "big") + 1) % N
    network.servers[second].stop(kill=True)
    try:
        deadline = time.monotonic() + 30
        while any(ks.connected_peers() >= N - 1 for i, ks in enumerate(network.servers) if i != second):
            assert time.monotonic() < deadline, "the others did not notice the stopped server"
            time.sleep(0.1)
        assert alice.retrieve_document_key(key_id, ALICE_SECRET) == document_key
    finally:
        network.servers[second].start()
        network.wait_connected(60)


def test_back_to_back_retrievals_of_one_key_by_one_requester(network, alice):
    """Each new request for the same key and requester starts while the servers may still be tidying up the last;
    parts prepared for one must never answer the next (that would stall it until a periodic scan)."""
    key_id, document_key = stored_key(alice)
    for _ in range(15):
        assert alice.retrieve_document_key(key_id, ALICE_SECRET) == document_key


# ------------------------------------------------------------------------------------------ prepared personal parts
KEY, REQUESTER = new_key_id(), Address(b"\x07" * 20)
SECRET_POINT = Public(m.base_mul(5))


def test_a_prepared_part_answers_only_a_request_asked_at_or_after_its_session():
    parts = PersonalParts()
    parts.computed(KEY, REQUESTER, 42)
    assert not parts.ready(KEY, REQUESTER)  # no report yet
    assert parts.reported(KEY, REQUESTER, 0b111, SECRET_POINT, block=10)
    assert not parts.ready(KEY, REQUESTER, seen_at=9)  # asked before the session: an earlier request
    assert parts.ready(KEY, REQUESTER, seen_at=10) and parts.ready(KEY, REQUESTER, seen_at=11)
    part = parts.take(KEY, REQUESTER)
    assert part is not None and (part.mask, part.coefficient, part.block) == (0b111, 42, 10)
    assert parts.take(KEY, REQUESTER) is None  # sent once


def test_a_report_without_its_shadow_step_prepares_nothing():
    parts = PersonalParts()
    assert not parts.reported(KEY, REQUESTER, 0b111, SECRET_POINT, block=1)
    assert not parts.ready(KEY, REQUESTER)


def test_an_ended_request_drops_only_the_parts_made_for_it():
    parts = PersonalParts()
    parts.computed(KEY, REQUESTER, 1)
    parts.reported(KEY, REQUESTER, 0b111, SECRET_POINT, block=20)
    parts.forget(KEY, REQUESTER, through=19)  # a request that ended before this part's session: kept
    assert parts.ready(KEY, REQUESTER)
    parts.forget(KEY, REQUESTER, through=20)
    assert not parts.ready(KEY, REQUESTER)


def test_prepared_parts_are_bounded_in_age(monkeypatch):
    parts = PersonalParts()
    now = [1000.0]
    monkeypatch.setattr("secretstore.keyserver.sessions.retrieval.time.monotonic", lambda: now[0])
    parts.computed(KEY, REQUESTER, 1)
    parts.reported(KEY, REQUESTER, 0b111, SECRET_POINT, block=1)
    now[0] += PERSONAL_PART_TTL + 1
    other = new_key_id()
    parts.computed(other, REQUESTER, 2)
    parts.reported(other, REQUESTER, 0b111, SECRET_POINT, block=2)  # its insertion prunes the expired one
    assert not parts.ready(KEY, REQUESTER) and parts.ready(other, REQUESTER)
