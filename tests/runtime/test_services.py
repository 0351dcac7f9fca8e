"""The four request services: intake checks, response counting by the key servers, events, and the read API."""

import pytest

from secretstore.codec.primitives import H160, H256
from secretstore.codec.scale import Bool, Sequence, Tuple, U32
from secretstore.crypto import Secret
from secretstore.runtime.secretstore.types import (
    DocumentKeyShadowRetrievalTask, DocumentKeyStoreTask, ServerKeyGenerationTask,
)

from .conftest import ALICE, BOB, CHARLIE, DAVE, DAVE_ID, DAVE_SECRET, KEY, KS_IDS, KS_SECRETS, make_chain, names, ss

SERVERS = (ALICE, BOB, CHARLIE)  # accounts that claimed the three key server ids
PUBLIC = bytes(Secret.random().public())
OTHER_PUBLIC = bytes(Secret.random().public())
OFF_CURVE = b"\x00" * 64


def required(chain, service, ks, *key):
    args_type = Tuple(H160, H256, H160) if len(key) == 2 else Tuple(H160, H256)
    return chain.api(f"is_{service}_response_required", args_type, (ks, *key), Bool)


# ------------------------------------------------------------------------------------------- generation
def test_generation_needs_every_server_to_agree(chain):
    events = ss(chain, DAVE, "generate_server_key", id=KEY, threshold=1)
    assert events == [("SecretStore", "ServerKeyGenerationRequested", {"id": KEY, "author": DAVE_ID, "threshold": 1})]
    tasks = chain.api("server_key_generation_tasks", Tuple(U32, U32), (0, 10), Sequence(ServerKeyGenerationTask))
    assert tasks == [{"id": KEY, "author": DAVE_ID, "threshold": 1}]
    assert ss(chain, ALICE, "server_key_generated", id=KEY, server_key_public=PUBLIC) == []
    assert not required(chain, "server_key_generation", KS_IDS[0], KEY)
    assert required(chain, "server_key_generation", KS_IDS[1], KEY)
    chain.fails(ALICE, "SecretStore", "server_key_generated", "AlreadyResponded", id=KEY, server_key_public=PUBLIC)
    assert ss(chain, BOB, "server_key_generated", id=KEY, server_key_public=PUBLIC) == []
    events = ss(chain, CHARLIE, "server_key_generated", id=KEY, server_key_public=PUBLIC)
    assert events == [("SecretStore", "ServerKeyGenerated", {"id": KEY, "public": PUBLIC})]
    assert chain.api("server_key_generation_tasks", Tuple(U32, U32), (0, 10), Sequence(ServerKeyGenerationTask)) == []
    # a late answer to a finished request is a harmless no-op
    assert ss(chain, CHARLIE, "server_key_generated", id=KEY, server_key_public=PUBLIC) == []


def test_generation_disagreement_fails(chain):
    ss(chain, DAVE, "generate_server_key", id=KEY, threshold=1)
    ss(chain, ALICE, "server_key_generated", id=KEY, server_key_public=PUBLIC)
    events = ss(chain, BOB, "server_key_generated", id=KEY, server_key_public=OTHER_PUBLIC)
    assert names(events) == ["ServerKeyGenerationError"]


def test_generation_error_report_ends_request(chain):
    ss(chain, DAVE, "generate_server_key", id=KEY, threshold=0)
    assert names(ss(chain, BOB, "server_key_generation_error", id=KEY)) == ["ServerKeyGenerationError"]
    assert not chain.runtime.secretstore.ServerKeyGenerationRequests.contains(chain.storage, KEY)


def test_generation_intake_checks(chain):
    chain.fails(DAVE, "SecretStore", "generate_server_key", "InvalidThreshold", id=KEY, threshold=3)
    chain.fails(DAVE, "SecretStore", "generate_server_key", "InvalidThreshold", id=KEY, threshold=255)
    ss(chain, DAVE, "generate_server_key", id=KEY, threshold=2)
    chain.fails(DAVE, "SecretStore", "generate_server_key", "DuplicateRequest", id=KEY, threshold=2)
    chain.fails(DAVE, "SecretStore", "server_key_generated", "NotAKeyServer", id=KEY, server_key_public=PUBLIC)
    chain.fails(ALICE, "SecretStore", "server_key_generated", "InvalidServerKeyPublic", id=KEY,
                server_key_public=OFF_CURVE)


def test_queue_cap():
    chain = make_chain(max_pending_requests=2)
    ss(chain, DAVE, "generate_server_key", id=b"\x01" * 32, threshold=0)
    ss(chain, DAVE, "generate_server_key", id=b"\x02" * 32, threshold=0)
    chain.fails(DAVE, "SecretStore", "generate_server_key", "TooManyPendingRequests", id=b"\x03" * 32, threshold=0)


def test_fee_is_split_among_key_servers():
    chain = make_chain(server_key_generation_fee=100)
    balances = chain.runtime.balances
    before = {who: balances.free(chain.storage, who) for who in SERVERS + (DAVE,)}
    ss(chain, DAVE, "generate_server_key", id=KEY, threshold=1)
    after = {who: balances.free(chain.storage, who) for who in SERVERS + (DAVE,)}
    assert before[DAVE] - after[DAVE] == 100
    assert [after[w] - before[w] for w in SERVERS] == [33, 33, 34]


def test_set_change_restarts_counting():
    chain = make_chain(is_initialization_completed=False)
    ss(chain, DAVE, "generate_server_key", id=KEY, threshold=1)
    ss(chain, ALICE, "server_key_generated", id=KEY, server_key_public=PUBLIC)
    ss(chain, BOB, "server_key_generated", id=KEY, server_key_public=PUBLIC)
    chain.next_block()
    ss(chain, ALICE, "add_key_server", id=DAVE_ID, network_address=b"127.0.0.1:10003")
    # collected answers were discarded: Charlie's answer alone no longer completes it, and Alice must answer again
    assert required(chain, "server_key_generation", KS_IDS[0], KEY)
    assert ss(chain, CHARLIE, "server_key_generated", id=KEY, server_key_public=PUBLIC) == []
    for who in (ALICE, BOB):
        assert ss(chain, who, "server_key_generated", id=KEY, server_key_public=PUBLIC) == []
    assert names(ss(chain, DAVE, "server_key_generated", id=KEY, server_key_public=PUBLIC)) == ["ServerKeyGenerated"]


# -------------------------------------------------------------------------------------------- retrieval
def test_retrieval_agrees_threshold_then_public(chain):
    assert names(ss(chain, DAVE, "retrieve_server_key", id=KEY)) == ["ServerKeyRetrievalRequested"]
    assert ss(chain, ALICE, "server_key_retrieved", id=KEY, server_key_public=PUBLIC, threshold=1) == []
    # threshold 1 agreed by 2 of 3 (majority); the public needs t + 1 = 2 matching answers: Bob's makes both
    events = ss(chain, BOB, "server_key_retrieved", id=KEY, server_key_public=PUBLIC, threshold=1)
    assert events == [("SecretStore", "ServerKeyRetrieved", {"id": KEY, "public": PUBLIC})]


def test_retrieval_with_an_error_and_disagreeing_public(chain):
    ss(chain, DAVE, "retrieve_server_key", id=KEY)
    ss(chain, ALICE, "server_key_retrieval_error", id=KEY)
    ss(chain, BOB, "server_key_retrieved", id=KEY, server_key_public=PUBLIC, threshold=1)
    # thresholds: {255: 1, 1: 1}; Charlie confirms t = 1 but publics {PUBLIC, OTHER} never reach 2
    assert names(ss(chain, CHARLIE, "server_key_retrieved", id=KEY, server_key_public=OTHER_PUBLIC, threshold=1)) == [
        "ServerKeyRetrievalError"]


def test_retrieval_errors_by_majority(chain):
    ss(chain, DAVE, "retrieve_server_key", id=KEY)
    ss(chain, ALICE, "server_key_retrieval_error", id=KEY)
    assert names(ss(chain, BOB, "server_key_retrieval_error", id=KEY)) == ["ServerKeyRetrievalError"]


# ---------------------------------------------------------------------------------------- document store
def test_document_key_store(chain):
    common, encrypted = bytes(Secret.random().public()), bytes(Secret.random().public())
    chain.fails(DAVE, "SecretStore", "store_document_key", "InvalidCommonPoint", id=KEY, common_point=OFF_CURVE,
                encrypted_point=encrypted)
    chain.fails(DAVE, "SecretStore", "store_document_key", "InvalidEncryptedPoint", id=KEY, common_point=common,
                encrypted_point=OFF_CURVE)
    events = ss(chain, DAVE, "store_document_key", id=KEY, common_point=common, encrypted_point=encrypted)
    assert events == [("SecretStore", "DocumentKeyStoreRequested", {
        "id": KEY, "author": DAVE_ID, "common_point": common, "encrypted_point": encrypted})]
    tasks = chain.api("document_key_store_tasks", Tuple(U32, U32), (0, 5), Sequence(DocumentKeyStoreTask))
    assert tasks[0]["common_point"] == common
    ss(chain, ALICE, "document_key_stored", id=KEY)
    ss(chain, BOB, "document_key_stored", id=KEY)
    assert names(ss(chain, CHARLIE, "document_key_stored", id=KEY)) == ["DocumentKeyStored"]


def test_document_key_store_error(chain):
    p = bytes(Secret.random().public())
    ss(chain, DAVE, "store_document_key", id=KEY, common_point=p, encrypted_point=p)
    ss(chain, ALICE, "document_key_stored", id=KEY)
    assert names(ss(chain, BOB, "document_key_store_error", id=KEY)) == ["DocumentKeyStoreError"]


# -------------------------------------------------------------------------------- shadow retrieval
def shadow_tasks(chain):
    return chain.api("document_key_shadow_retrieval_tasks", Tuple(U32, U32), (0, 10),
                     Sequence(DocumentKeyShadowRetrievalTask))


def start_shadow(chain):
    requester_public = bytes(DAVE_SECRET.public())
    events = ss(chain, DAVE, "retrieve_document_key_shadow", id=KEY, requester_public=requester_public)
    assert events == [("SecretStore", "DocumentKeyShadowRetrievalRequested", {"id": KEY, "requester": DAVE_ID})]
    return requester_public


def test_shadow_retrieval_full_flow(chain):
    requester_public = start_shadow(chain)
    assert shadow_tasks(chain) == [{"id": KEY, "requester": DAVE_ID, "requester_public": None}]
    common = bytes(Secret.random().public())
    secret_point = bytes(Secret.random().public())
    chain.fails(ALICE, "SecretStore", "document_key_personal_retrieved", "CommonPartNotRetrieved", id=KEY,
                requester=DAVE_ID, participants=0b011, decrypted_secret=secret_point, shadow=b"s")
    assert ss(chain, ALICE, "document_key_common_retrieved", id=KEY, requester=DAVE_ID, common_point=common,
              threshold=1) == []
    events = ss(chain, BOB, "document_key_common_retrieved", id=KEY, requester=DAVE_ID, common_point=common,
                threshold=1)
    assert events == [
        ("SecretStore", "DocumentKeyCommonRetrieved", {"id": KEY, "requester": DAVE_ID, "common_point": common,
                                                      "threshold": 1}),
        ("SecretStore", "DocumentKeyPersonalRetrievalRequested", {"id": KEY, "requester_public": requester_public}),
    ]
    assert shadow_tasks(chain) == [{"id": KEY, "requester": DAVE_ID, "requester_public": requester_public}]
    assert required(chain, "document_key_shadow_retrieval", KS_IDS[2], KEY, DAVE_ID)
    chain.fails(CHARLIE, "SecretStore", "document_key_personal_retrieved", "NotAParticipant", id=KEY,
                requester=DAVE_ID, participants=0b011, decrypted_secret=secret_point, shadow=b"s")
    events = ss(chain, ALICE, "document_key_personal_retrieved", id=KEY, requester=DAVE_ID, participants=0b011,
                decrypted_secret=secret_point, shadow=b"shadow-a")
    assert events == [("SecretStore", "DocumentKeyPersonalRetrieved", {
        "id": KEY, "requester": DAVE_ID, "decrypted_secret": secret_point, "shadow": b"shadow-a"})]
    assert not required(chain, "document_key_shadow_retrieval", KS_IDS[0], KEY, DAVE_ID)
    chain.fails(ALICE, "SecretStore", "document_key_personal_retrieved", "AlreadyResponded", id=KEY,
                requester=DAVE_ID, participants=0b011, decrypted_secret=secret_point, shadow=b"shadow-a")
    ss(chain, BOB, "document_key_personal_retrieved", id=KEY, requester=DAVE_ID, participants=0b011,
       decrypted_secret=secret_point, shadow=b"shadow-b")
    assert shadow_tasks(chain) == []  # t + 1 = 2 matching reports complete it


def test_shadow_request_checks(chain):
    chain.fails(DAVE, "SecretStore", "retrieve_document_key_shadow", "RequesterPublicMismatch", id=KEY,
                requester_public=bytes(KS_SECRETS[0].public()))
    chain.fails(DAVE, "SecretStore", "retrieve_document_key_shadow", "InvalidRequesterPublic", id=KEY,
                requester_public=OFF_CURVE)
    start_shadow(chain)
    chain.fails(DAVE, "SecretStore", "retrieve_document_key_shadow", "DuplicateRequest", id=KEY,
                requester_public=bytes(DAVE_SECRET.public()))


def test_shadow_common_errors_fail_the_request(chain):
    start_shadow(chain)
    ss(chain, ALICE, "document_key_shadow_retrieval_error", id=KEY, requester=DAVE_ID)
    events = ss(chain, BOB, "document_key_shadow_retrieval_error", id=KEY, requester=DAVE_ID)
    assert events == [("SecretStore", "DocumentKeyShadowRetrievalError", {"id": KEY, "requester": DAVE_ID})]


def test_shadow_personal_errors_need_a_majority(chain):
    start_shadow(chain)
    common = bytes(Secret.random().public())
    for who in (ALICE, BOB):
        ss(chain, who, "document_key_common_retrieved", id=KEY, requester=DAVE_ID, common_point=common, threshold=1)
    assert ss(chain, ALICE, "document_key_shadow_retrieval_error", id=KEY, requester=DAVE_ID) == []
    chain.fails(ALICE, "SecretStore", "document_key_shadow_retrieval_error", "AlreadyResponded", id=KEY,
                requester=DAVE_ID)
    assert names(ss(chain, CHARLIE, "document_key_shadow_retrieval_error", id=KEY, requester=DAVE_ID)) == [
        "DocumentKeyShadowRetrievalError"]


def test_paging(chain):
    for i in range(5):
        ss(chain, DAVE, "retrieve_server_key", id=bytes([i]) * 32)
    page = lambda b, e: chain.api("server_key_retrieval_tasks", Tuple(U32, U32), (b, e), Sequence(H256))  # noqa: E731
    everything = page(0, 100)
    assert sorted(everything) == sorted(bytes([i]) * 32 for i in range(5))
    assert page(0, 2) + page(2, 4) + page(4, 9) == everything
    assert page(3, 1) == []


def test_unknown_api_method(chain):
    with pytest.raises(KeyError):
        chain.runtime.api_call("SecretStoreRuntimeApi_nope", b"")
