"""Server key retrieval: a majority agrees on the key's threshold, then t + 1 key servers agree on its public."""

import pytest

from .conftest import (
    ALICE, BOB, CHARLIE, DAVE, KEY, KS_IDS, OFF_CURVE, make_chain, names, outsider, point, required, ss,
    tasks,
)

SERVICE = "server_key_retrieval"


def pending(chain, begin=0, end=1000):
    return tasks(chain, SERVICE, begin, end)


def test_threshold_then_public_agreed(chain):
    public = point()
    assert names(ss(chain, DAVE, "retrieve_server_key", id=KEY)) == ["ServerKeyRetrievalRequested"]
    assert pending(chain) == [("RetrieveServerKey", KEY)]
    assert ss(chain, ALICE, "server_key_retrieved", id=KEY, server_key_public=public, threshold=1) == []
    assert not required(chain, SERVICE, KS_IDS[0], KEY) and required(chain, SERVICE, KS_IDS[1], KEY)
    # threshold 1 agreed by 2 of 3 (n / 2 = 1, so 2 answers); the public needs t + 1 = 2: Bob's answer makes both
    events = ss(chain, BOB, "server_key_retrieved", id=KEY, server_key_public=public, threshold=1)
    assert events == [("SecretStore", "ServerKeyRetrieved", {"id": KEY, "public": public})]
    assert pending(chain) == []
    assert ss(chain, CHARLIE, "server_key_retrieved", id=KEY, server_key_public=public, threshold=1) == []


def test_public_needs_threshold_plus_one_agreeing_answers():
    # five key servers (the three dev ones and two more) so that t = 2 needs three agreeing publics
    chain = make_chain(is_initialization_completed=False)
    extra = [outsider(chain, entity=bytes([0x70 + i]) * 20, seed=0x80 + i) for i in range(2)]
    for i in range(2):
        ss(chain, ALICE, "add_key_server", id=bytes([0x70 + i]) * 20, network_address=b"127.0.0.1:1")
    servers = [ALICE, BOB, CHARLIE] + extra
    public = point()
    ss(chain, DAVE, "retrieve_server_key", id=KEY)
    ss(chain, servers[0], "server_key_retrieved", id=KEY, server_key_public=public, threshold=2)
    ss(chain, servers[1], "server_key_retrieved", id=KEY, server_key_public=public, threshold=2)
    # t = 2 is now agreed by 3 of 5 but only two publics match: still pending
    assert ss(chain, servers[2], "server_key_retrieved", id=KEY, server_key_public=point(), threshold=2) == []
    events = ss(chain, servers[3], "server_key_retrieved", id=KEY, server_key_public=public, threshold=2)
    assert events == [("SecretStore", "ServerKeyRetrieved", {"id": KEY, "public": public})]


def test_disagreeing_publics_fail_once_agreement_is_impossible(chain):
    ss(chain, DAVE, "retrieve_server_key", id=KEY)
    ss(chain, ALICE, "server_key_retrieval_error", id=KEY)
    ss(chain, BOB, "server_key_retrieved", id=KEY, server_key_public=point(), threshold=1)
    # thresholds {error: 1, 1: 1}; Charlie confirms t = 1, but two different publics can never reach t + 1 = 2
    events = ss(chain, CHARLIE, "server_key_retrieved", id=KEY, server_key_public=point(), threshold=1)
    assert events == [("SecretStore", "ServerKeyRetrievalError", {"id": KEY})]
    assert pending(chain) == []


def test_disagreeing_thresholds_fail(chain):
    public = point()
    ss(chain, DAVE, "retrieve_server_key", id=KEY)
    ss(chain, ALICE, "server_key_retrieved", id=KEY, server_key_public=public, threshold=0)
    ss(chain, BOB, "server_key_retrieved", id=KEY, server_key_public=public, threshold=1)
    assert names(ss(chain, CHARLIE, "server_key_retrieved", id=KEY, server_key_public=public, threshold=2)) == [
        "ServerKeyRetrievalError"]


def test_a_majority_of_errors_fails_the_request(chain):
    ss(chain, DAVE, "retrieve_server_key", id=KEY)
    assert ss(chain, ALICE, "server_key_retrieval_error", id=KEY) == []
    assert names(ss(chain, BOB, "server_key_retrieval_error", id=KEY)) == ["ServerKeyRetrievalError"]


def test_one_error_does_not_prevent_success(chain):
    public = point()
    ss(chain, DAVE, "retrieve_server_key", id=KEY)
    ss(chain, ALICE, "server_key_retrieval_error", id=KEY)
    ss(chain, BOB, "server_key_retrieved", id=KEY, server_key_public=public, threshold=1)
    assert names(ss(chain, CHARLIE, "server_key_retrieved", id=KEY, server_key_public=public, threshold=1)) == [
        "ServerKeyRetrieved"]


def test_answering_twice_is_refused(chain):
    public = point()
    ss(chain, DAVE, "retrieve_server_key", id=KEY)
    ss(chain, ALICE, "server_key_retrieved", id=KEY, server_key_public=public, threshold=1)
    chain.fails(ALICE, "SecretStore", "server_key_retrieved", "AlreadyResponded", id=KEY, server_key_public=public,
                threshold=1)
    chain.fails(ALICE, "SecretStore", "server_key_retrieval_error", "AlreadyResponded", id=KEY)


@pytest.mark.parametrize("call, args", [
    ("server_key_retrieved", {"server_key_public": point(), "threshold": 1}),
    ("server_key_retrieval_error", {}),
])
def test_outsiders_cannot_answer(chain, call, args):
    ss(chain, DAVE, "retrieve_server_key", id=KEY)
    chain.fails(DAVE, "SecretStore", call, "NotAKeyServer", id=KEY, **args)


def test_intake_and_answer_validation(chain):
    ss(chain, DAVE, "retrieve_server_key", id=KEY)
    chain.fails(BOB, "SecretStore", "retrieve_server_key", "DuplicateRequest", id=KEY)
    chain.fails(ALICE, "SecretStore", "server_key_retrieved", "InvalidServerKeyPublic", id=KEY,
                server_key_public=OFF_CURVE, threshold=1)
    chain.fails(ALICE, "SecretStore", "server_key_retrieved", "InvalidThreshold", id=KEY,
                server_key_public=point(), threshold=255)
    stranger = b"\x51" * 32
    chain.call(ALICE, "Balances", "transfer_allow_death", dest=("Id", stranger), value=10**9)
    chain.fails(stranger, "SecretStore", "retrieve_server_key", "NoAssociatedId", id=b"\x01" * 32)


def test_queue_cap_and_fee():
    chain = make_chain(max_pending_requests=1, server_key_retrieval_fee=30)
    balances = chain.runtime.balances
    alice_before = balances.free(chain.storage, ALICE)
    ss(chain, DAVE, "retrieve_server_key", id=KEY)
    assert balances.free(chain.storage, ALICE) - alice_before == 10
    chain.fails(DAVE, "SecretStore", "retrieve_server_key", "TooManyPendingRequests", id=b"\x01" * 32)


def test_set_change_mid_request_restarts_counting():
    chain = make_chain(is_initialization_completed=False)
    public = point()
    ss(chain, DAVE, "retrieve_server_key", id=KEY)
    ss(chain, ALICE, "server_key_retrieved", id=KEY, server_key_public=public, threshold=1)
    chain.next_block()
    ss(chain, ALICE, "remove_key_server", id=KS_IDS[2])  # two key servers left: n / 2 = 1, so two must agree
    assert required(chain, SERVICE, KS_IDS[0], KEY)
    assert not required(chain, SERVICE, KS_IDS[2], KEY)
    chain.fails(CHARLIE, "SecretStore", "server_key_retrieved", "NotAKeyServer", id=KEY, server_key_public=public,
                threshold=1)
    assert ss(chain, BOB, "server_key_retrieved", id=KEY, server_key_public=public, threshold=1) == []
    assert names(ss(chain, ALICE, "server_key_retrieved", id=KEY, server_key_public=public, threshold=1)) == [
        "ServerKeyRetrieved"]


def test_paging(chain):
    for i in range(5):
        ss(chain, DAVE, "retrieve_server_key", id=bytes([i]) * 32)
    everything = pending(chain)
    assert sorted(everything) == [("RetrieveServerKey", bytes([i]) * 32) for i in range(5)]
    assert pending(chain, 0, 2) + pending(chain, 2, 4) + pending(chain, 4, 9) == everything
    assert pending(chain, 3, 1) == []
