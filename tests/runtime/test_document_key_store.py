"""Document key store: the author's common and encrypted points, confirmed by every key server."""

import pytest

from .conftest import (
    ALICE, BOB, CHARLIE, DAVE, DAVE_ID, KEY, KS_IDS, NOT_ON_CURVE, OFF_CURVE, make_chain, names, point, required, ss,
    tasks,
)

SERVICE = "document_key_store"


def pending(chain, begin=0, end=1000):
    return tasks(chain, SERVICE, begin, end)


def request(chain, key=KEY):
    common, encrypted = point(), point()
    events = ss(chain, DAVE, "store_document_key", id=key, common_point=common, encrypted_point=encrypted)
    assert [e for e in events if e[0] == "SecretStore"] == [("SecretStore", "DocumentKeyStoreRequested", {
        "id": key, "author": DAVE_ID, "common_point": common, "encrypted_point": encrypted})]
    return common, encrypted


def test_every_key_server_confirms(chain):
    common, encrypted = request(chain)
    assert pending(chain) == [("StoreDocumentKey", (KEY, DAVE_ID, common, encrypted))]
    assert ss(chain, ALICE, "document_key_stored", id=KEY) == []
    assert not required(chain, SERVICE, KS_IDS[0], KEY) and required(chain, SERVICE, KS_IDS[2], KEY)
    assert ss(chain, BOB, "document_key_stored", id=KEY) == []
    assert ss(chain, CHARLIE, "document_key_stored", id=KEY) == [("SecretStore", "DocumentKeyStored", {"id": KEY})]
    assert pending(chain) == []
    assert ss(chain, CHARLIE, "document_key_stored", id=KEY) == []  # late: no-op


def test_an_error_report_ends_the_request(chain):
    request(chain)
    ss(chain, ALICE, "document_key_stored", id=KEY)
    assert ss(chain, BOB, "document_key_store_error", id=KEY) == [("SecretStore", "DocumentKeyStoreError", {"id": KEY})]
    assert pending(chain) == []


def test_answering_twice_is_refused(chain):
    request(chain)
    ss(chain, ALICE, "document_key_stored", id=KEY)
    chain.fails(ALICE, "SecretStore", "document_key_stored", "AlreadyResponded", id=KEY)


@pytest.mark.parametrize("call", ["document_key_stored", "document_key_store_error"])
def test_outsiders_cannot_answer(chain, call):
    request(chain)
    chain.fails(DAVE, "SecretStore", call, "NotAKeyServer", id=KEY)


@pytest.mark.parametrize("bad", [OFF_CURVE, NOT_ON_CURVE])
def test_points_must_be_on_the_curve(chain, bad):
    chain.fails(DAVE, "SecretStore", "store_document_key", "InvalidCommonPoint", id=KEY, common_point=bad,
                encrypted_point=point())
    chain.fails(DAVE, "SecretStore", "store_document_key", "InvalidEncryptedPoint", id=KEY, common_point=point(),
                encrypted_point=bad)


def test_duplicates_queue_cap_and_fee():
    chain = make_chain(max_pending_requests=1, document_key_store_fee=7)
    balances = chain.runtime.balances
    before = balances.free(chain.storage, CHARLIE)
    request(chain)
    assert balances.free(chain.storage, CHARLIE) - before == 3  # 2 + 2 + remainder 3
    chain.fails(DAVE, "SecretStore", "store_document_key", "DuplicateRequest", id=KEY, common_point=point(),
                encrypted_point=point())
    chain.fails(DAVE, "SecretStore", "store_document_key", "TooManyPendingRequests", id=b"\x01" * 32,
                common_point=point(), encrypted_point=point())


def test_set_change_mid_request_restarts_counting():
    chain = make_chain(is_initialization_completed=False)
    request(chain)
    ss(chain, ALICE, "document_key_stored", id=KEY)
    ss(chain, BOB, "document_key_stored", id=KEY)
    chain.next_block()
    ss(chain, ALICE, "add_key_server", id=KS_IDS[0], network_address=b"10.0.0.1:10000")  # address only: same set
    assert names(ss(chain, CHARLIE, "document_key_stored", id=KEY)) == ["DocumentKeyStored"]

    chain.next_block()
    request(chain, b"\x01" * 32)
    ss(chain, ALICE, "document_key_stored", id=b"\x01" * 32)
    chain.next_block()
    ss(chain, ALICE, "remove_key_server", id=KS_IDS[2])
    assert required(chain, SERVICE, KS_IDS[0], b"\x01" * 32)
    assert ss(chain, BOB, "document_key_stored", id=b"\x01" * 32) == []
    assert names(ss(chain, ALICE, "document_key_stored", id=b"\x01" * 32)) == ["DocumentKeyStored"]


def test_paging(chain):
    for i in range(4):
        request(chain, bytes([i]) * 32)
    everything = pending(chain)
    assert len(everything) == 4
    assert pending(chain, 0, 1) + pending(chain, 1, 3) + pending(chain, 3, 4) == everything
