"""Server key generation: intake checks, fee, and all key servers having to agree on the public."""

import pytest

from .conftest import (
    ALICE, BOB, CHARLIE, DAVE, DAVE_ID, KEY, KS_IDS, OFF_CURVE, SERVERS, make_chain, names, outsider, point, required,
    ss, tasks,
)

SERVICE = "server_key_generation"


def pending(chain):
    return tasks(chain, SERVICE)


def test_all_key_servers_must_agree(chain):
    public = point()
    events = ss(chain, DAVE, "generate_server_key", id=KEY, threshold=1)
    assert events == [("SecretStore", "ServerKeyGenerationRequested", {"id": KEY, "author": DAVE_ID, "threshold": 1})]
    assert pending(chain) == [("GenerateServerKey", (KEY, DAVE_ID, 1))]
    assert all(required(chain, SERVICE, ks, KEY) for ks in KS_IDS)
    assert ss(chain, ALICE, "server_key_generated", id=KEY, server_key_public=public) == []
    assert not required(chain, SERVICE, KS_IDS[0], KEY)
    assert required(chain, SERVICE, KS_IDS[1], KEY)
    assert ss(chain, BOB, "server_key_generated", id=KEY, server_key_public=public) == []
    events = ss(chain, CHARLIE, "server_key_generated", id=KEY, server_key_public=public)
    assert events == [("SecretStore", "ServerKeyGenerated", {"id": KEY, "public": public})]
    assert pending(chain) == []
    assert not any(required(chain, SERVICE, ks, KEY) for ks in KS_IDS)
    # a late answer to a finished request is a harmless no-op
    assert ss(chain, CHARLIE, "server_key_generated", id=KEY, server_key_public=public) == []


def test_answering_twice_is_refused(chain):
    public = point()
    ss(chain, DAVE, "generate_server_key", id=KEY, threshold=1)
    ss(chain, ALICE, "server_key_generated", id=KEY, server_key_public=public)
    chain.fails(ALICE, "SecretStore", "server_key_generated", "AlreadyResponded", id=KEY, server_key_public=public)
    chain.fails(ALICE, "SecretStore", "server_key_generated", "AlreadyResponded", id=KEY, server_key_public=point())


def test_disagreeing_answers_fail_the_request(chain):
    ss(chain, DAVE, "generate_server_key", id=KEY, threshold=1)
    ss(chain, ALICE, "server_key_generated", id=KEY, server_key_public=point())
    events = ss(chain, BOB, "server_key_generated", id=KEY, server_key_public=point())
    assert events == [("SecretStore", "ServerKeyGenerationError", {"id": KEY})]
    assert pending(chain) == []


def test_one_error_report_ends_the_request(chain):
    ss(chain, DAVE, "generate_server_key", id=KEY, threshold=0)
    ss(chain, ALICE, "server_key_generated", id=KEY, server_key_public=point())
    assert names(ss(chain, BOB, "server_key_generation_error", id=KEY)) == ["ServerKeyGenerationError"]
    assert pending(chain) == []
    assert ss(chain, CHARLIE, "server_key_generation_error", id=KEY) == []  # nothing left to fail


@pytest.mark.parametrize("call, args", [
    ("server_key_generated", {"server_key_public": point()}),
    ("server_key_generation_error", {}),
])
def test_outsiders_cannot_answer(chain, call, args):
    ss(chain, DAVE, "generate_server_key", id=KEY, threshold=1)
    chain.fails(DAVE, "SecretStore", call, "NotAKeyServer", id=KEY, **args)  # claimed id, not a key server
    stranger = outsider(chain)
    chain.fails(stranger, "SecretStore", call, "NotAKeyServer", id=KEY, **args)


def test_intake_checks(chain):
    chain.fails(DAVE, "SecretStore", "generate_server_key", "InvalidThreshold", id=KEY, threshold=3)
    chain.fails(DAVE, "SecretStore", "generate_server_key", "InvalidThreshold", id=KEY, threshold=255)
    ss(chain, DAVE, "generate_server_key", id=KEY, threshold=2)  # threshold + 1 == number of key servers
    chain.fails(DAVE, "SecretStore", "generate_server_key", "DuplicateRequest", id=KEY, threshold=2)
    chain.fails(BOB, "SecretStore", "generate_server_key", "DuplicateRequest", id=KEY, threshold=1)
    chain.fails(ALICE, "SecretStore", "server_key_generated", "InvalidServerKeyPublic", id=KEY,
                server_key_public=OFF_CURVE)


def test_queue_cap_is_configurable():
    chain = make_chain(max_pending_requests=2)
    ss(chain, DAVE, "generate_server_key", id=b"\x01" * 32, threshold=0)
    ss(chain, DAVE, "generate_server_key", id=b"\x02" * 32, threshold=0)
    chain.fails(DAVE, "SecretStore", "generate_server_key", "TooManyPendingRequests", id=b"\x03" * 32, threshold=0)
    ss(chain, ALICE, "server_key_generation_error", id=b"\x01" * 32)  # frees a slot
    ss(chain, DAVE, "generate_server_key", id=b"\x03" * 32, threshold=0)


def test_default_queue_cap_is_at_least_64(chain):
    for i in range(64):
        ss(chain, DAVE, "generate_server_key", id=i.to_bytes(32, "big"), threshold=0)
    assert len(pending(chain)) == 64


def test_fee_is_split_among_key_servers_remainder_to_the_last():
    chain = make_chain(server_key_generation_fee=100)
    balances = chain.runtime.balances
    before = {who: balances.free(chain.storage, who) for who in SERVERS + (DAVE,)}
    ss(chain, DAVE, "generate_server_key", id=KEY, threshold=1)
    after = {who: balances.free(chain.storage, who) for who in SERVERS + (DAVE,)}
    assert before[DAVE] - after[DAVE] == 100
    assert [after[w] - before[w] for w in SERVERS] == [33, 33, 34]


def test_fee_the_caller_cannot_pay_is_refused():
    chain = make_chain(server_key_generation_fee=10**12)
    poor = outsider(chain)  # funded with 10**9 only
    chain.fails(poor, "SecretStore", "generate_server_key", "InsufficientBalance", id=KEY, threshold=1)
    assert pending(chain) == []


def test_set_change_mid_request_restarts_counting():
    chain = make_chain(is_initialization_completed=False)
    public = point()
    ss(chain, DAVE, "generate_server_key", id=KEY, threshold=1)
    ss(chain, ALICE, "server_key_generated", id=KEY, server_key_public=public)
    ss(chain, BOB, "server_key_generated", id=KEY, server_key_public=public)
    chain.next_block()
    ss(chain, ALICE, "add_key_server", id=DAVE_ID, network_address=b"127.0.0.1:10003")
    # the collected answers were discarded: Alice must answer again and Charlie's answer no longer completes it
    assert required(chain, SERVICE, KS_IDS[0], KEY)
    assert ss(chain, CHARLIE, "server_key_generated", id=KEY, server_key_public=public) == []
    for who in (ALICE, BOB):
        assert ss(chain, who, "server_key_generated", id=KEY, server_key_public=public) == []
    assert pending(chain) != []  # the request was never lost
    assert names(ss(chain, DAVE, "server_key_generated", id=KEY, server_key_public=public)) == ["ServerKeyGenerated"]


def test_tasks_page_through_pending_requests(chain):
    keys = [bytes([i]) * 32 for i in range(1, 6)]
    for key in keys:
        ss(chain, DAVE, "generate_server_key", id=key, threshold=0)
    everything = pending(chain)
    assert sorted(fields[0] for _, fields in everything) == keys
    pages = tasks(chain, SERVICE, 0, 2) + tasks(chain, SERVICE, 2, 3) + tasks(chain, SERVICE, 3, 99)
    assert pages == everything
    assert tasks(chain, SERVICE, 4, 1) == []
    assert tasks(chain, SERVICE, 5, 10) == []


def test_response_required_is_false_for_outsiders_and_unknown_requests(chain):
    assert not required(chain, SERVICE, KS_IDS[0], KEY)
    ss(chain, DAVE, "generate_server_key", id=KEY, threshold=1)
    assert not required(chain, SERVICE, DAVE_ID, KEY)
