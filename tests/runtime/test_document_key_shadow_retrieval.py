"""Document key shadow retrieval: a majority agrees on the common part, then each participant reports its personal
part; keyed by (key, requester entity)."""

import pytest


from .conftest import (
    ALICE, BOB, CHARLIE, DAVE, DAVE_ID, DAVE_SECRET, KEY, KS_IDS, KS_SECRETS, OFF_CURVE, make_chain, names, outsider,
    point, required, ss, tasks,
)

SERVICE = "document_key_shadow_retrieval"
REQUESTER_PUBLIC = bytes(DAVE_SECRET.public())


def pending(chain, begin=0, end=1000):
    return tasks(chain, SERVICE, begin, end)


def request(chain, key=KEY):
    events = ss(chain, DAVE, "retrieve_document_key_shadow", id=key, requester_public=REQUESTER_PUBLIC)
    assert [e for e in events if e[0] == "SecretStore"] == [
        ("SecretStore", "DocumentKeyShadowRetrievalRequested", {"id": key, "requester": DAVE_ID})]


def common(chain, who, common_point, threshold=1, key=KEY):
    return ss(chain, who, "document_key_common_retrieved", id=key, requester=DAVE_ID, common_point=common_point,
              threshold=threshold)


def personal(chain, who, participants, decrypted_secret, shadow=b"shadow", key=KEY):
    return ss(chain, who, "document_key_personal_retrieved", id=key, requester=DAVE_ID, participants=participants,
              decrypted_secret=decrypted_secret, shadow=shadow)


def agree_common(chain, common_point=None):
    common_point = common_point or point()
    common(chain, ALICE, common_point)
    common(chain, BOB, common_point)
    return common_point


def is_required(chain, index):
    return required(chain, SERVICE, KS_IDS[index], KEY, DAVE_ID)


def test_full_flow(chain):
    request(chain)
    assert pending(chain) == [("RetrieveShadowDocumentKeyCommon", (KEY, DAVE_ID))]
    assert all(is_required(chain, i) for i in range(3))
    common_point, secret_point = point(), point()
    assert common(chain, ALICE, common_point) == []
    assert not is_required(chain, 0)
    events = common(chain, BOB, common_point)
    assert events == [
        ("SecretStore", "DocumentKeyCommonRetrieved", {"id": KEY, "requester": DAVE_ID, "common_point": common_point,
                                                      "threshold": 1}),
        ("SecretStore", "DocumentKeyPersonalRetrievalRequested", {"id": KEY, "requester_public": REQUESTER_PUBLIC}),
    ]
    # now the personal part is due from everybody, with the requester's public in the task
    assert pending(chain) == [("RetrieveShadowDocumentKeyPersonal", (KEY, REQUESTER_PUBLIC))]
    assert all(is_required(chain, i) for i in range(3))
    events = personal(chain, ALICE, 0b011, secret_point, b"shadow-a")
    assert events == [("SecretStore", "DocumentKeyPersonalRetrieved", {
        "id": KEY, "requester": DAVE_ID, "decrypted_secret": secret_point, "shadow": b"shadow-a"})]
    assert not is_required(chain, 0)
    events = personal(chain, BOB, 0b011, secret_point, b"shadow-b")
    assert names(events) == ["DocumentKeyPersonalRetrieved"]
    assert pending(chain) == []  # t + 1 = 2 matching reports complete it
    assert personal(chain, CHARLIE, 0b110, secret_point) == []  # late: no-op


def test_late_common_answer_is_a_no_op(chain):
    request(chain)
    agree_common(chain)
    assert common(chain, CHARLIE, point()) == []
    assert pending(chain)[0] == ("RetrieveShadowDocumentKeyPersonal", (KEY, REQUESTER_PUBLIC))


def test_personal_reports_are_grouped_by_participants_and_secret(chain):
    request(chain)
    agree_common(chain)
    secret_a, secret_b = point(), point()
    personal(chain, ALICE, 0b011, secret_a)
    personal(chain, CHARLIE, 0b110, secret_b)  # a different group: no completion
    personal(chain, BOB, 0b110, secret_a)  # same secret, other participants: still a different group
    assert pending(chain) != []
    chain.fails(ALICE, "SecretStore", "document_key_personal_retrieved", "AlreadyResponded", id=KEY, requester=DAVE_ID,
                participants=0b011, decrypted_secret=secret_a, shadow=b"again")
    personal(chain, BOB, 0b110, secret_b)
    assert pending(chain) == []


def test_personal_report_checks(chain):
    request(chain)
    secret_point = point()
    chain.fails(ALICE, "SecretStore", "document_key_personal_retrieved", "CommonPartNotRetrieved", id=KEY,
                requester=DAVE_ID, participants=0b011, decrypted_secret=secret_point, shadow=b"s")
    agree_common(chain)
    chain.fails(CHARLIE, "SecretStore", "document_key_personal_retrieved", "NotAParticipant", id=KEY,
                requester=DAVE_ID, participants=0b011, decrypted_secret=secret_point, shadow=b"s")
    chain.fails(ALICE, "SecretStore", "document_key_personal_retrieved", "InvalidDecryptedSecret", id=KEY,
                requester=DAVE_ID, participants=0b011, decrypted_secret=OFF_CURVE, shadow=b"s")
    chain.fails(ALICE, "SecretStore", "document_key_personal_retrieved", "ShadowTooLong", id=KEY,
                requester=DAVE_ID, participants=0b011, decrypted_secret=secret_point, shadow=b"s" * 1025)
    chain.fails(DAVE, "SecretStore", "document_key_personal_retrieved", "NotAKeyServer", id=KEY,
                requester=DAVE_ID, participants=0b011, decrypted_secret=secret_point, shadow=b"s")


def test_common_answer_checks(chain):
    request(chain)
    chain.fails(ALICE, "SecretStore", "document_key_common_retrieved", "InvalidCommonPoint", id=KEY, requester=DAVE_ID,
                common_point=OFF_CURVE, threshold=1)
    chain.fails(ALICE, "SecretStore", "document_key_common_retrieved", "InvalidThreshold", id=KEY, requester=DAVE_ID,
                common_point=point(), threshold=255)
    common(chain, ALICE, point())
    chain.fails(ALICE, "SecretStore", "document_key_common_retrieved", "AlreadyResponded", id=KEY, requester=DAVE_ID,
                common_point=point(), threshold=1)
    chain.fails(ALICE, "SecretStore", "document_key_shadow_retrieval_error", "AlreadyResponded", id=KEY,
                requester=DAVE_ID)
    chain.fails(DAVE, "SecretStore", "document_key_common_retrieved", "NotAKeyServer", id=KEY, requester=DAVE_ID,
                common_point=point(), threshold=1)
    chain.fails(DAVE, "SecretStore", "document_key_shadow_retrieval_error", "NotAKeyServer", id=KEY,
                requester=DAVE_ID)


def test_disagreeing_common_parts_fail(chain):
    request(chain)
    common(chain, ALICE, point())
    common(chain, BOB, point())
    assert names(common(chain, CHARLIE, point())) == ["DocumentKeyShadowRetrievalError"]
    assert pending(chain) == []


def test_common_errors_by_majority_fail_the_request(chain):
    request(chain)
    assert ss(chain, ALICE, "document_key_shadow_retrieval_error", id=KEY, requester=DAVE_ID) == []
    events = ss(chain, BOB, "document_key_shadow_retrieval_error", id=KEY, requester=DAVE_ID)
    assert events == [("SecretStore", "DocumentKeyShadowRetrievalError", {"id": KEY, "requester": DAVE_ID})]


def test_personal_errors_need_a_majority(chain):
    request(chain)
    agree_common(chain)
    assert ss(chain, ALICE, "document_key_shadow_retrieval_error", id=KEY, requester=DAVE_ID) == []
    assert not is_required(chain, 0)
    chain.fails(ALICE, "SecretStore", "document_key_shadow_retrieval_error", "AlreadyResponded", id=KEY,
                requester=DAVE_ID)
    assert names(ss(chain, CHARLIE, "document_key_shadow_retrieval_error", id=KEY, requester=DAVE_ID)) == [
        "DocumentKeyShadowRetrievalError"]
    assert pending(chain) == []


def test_request_checks(chain):
    chain.fails(DAVE, "SecretStore", "retrieve_document_key_shadow", "RequesterPublicMismatch", id=KEY,
                requester_public=bytes(KS_SECRETS[0].public()))
    chain.fails(DAVE, "SecretStore", "retrieve_document_key_shadow", "InvalidRequesterPublic", id=KEY,
                requester_public=OFF_CURVE)
    stranger = b"\x52" * 32
    chain.call(ALICE, "Balances", "transfer_allow_death", dest=("Id", stranger), value=10**9)
    chain.fails(stranger, "SecretStore", "retrieve_document_key_shadow", "NoAssociatedId", id=KEY,
                requester_public=REQUESTER_PUBLIC)
    request(chain)
    chain.fails(DAVE, "SecretStore", "retrieve_document_key_shadow", "DuplicateRequest", id=KEY,
                requester_public=REQUESTER_PUBLIC)


def test_requests_are_per_requester(chain):
    request(chain)
    events = ss(chain, ALICE, "retrieve_document_key_shadow", id=KEY, requester_public=bytes(KS_SECRETS[0].public()))
    assert names(events) == ["DocumentKeyShadowRetrievalRequested"]
    assert sorted(fields[1] for _, fields in pending(chain)) == sorted([DAVE_ID, KS_IDS[0]])


def test_queue_cap_and_fee():
    chain = make_chain(max_pending_requests=1, document_key_shadow_retrieval_fee=3)
    balances = chain.runtime.balances
    before = [balances.free(chain.storage, who) for who in (ALICE, BOB, CHARLIE)]
    request(chain)
    assert [balances.free(chain.storage, who) - b for who, b in zip((ALICE, BOB, CHARLIE), before)] == [1, 1, 1]
    chain.fails(DAVE, "SecretStore", "retrieve_document_key_shadow", "TooManyPendingRequests", id=b"\x01" * 32,
                requester_public=REQUESTER_PUBLIC)


def test_set_change_restarts_from_the_common_part():
    chain = make_chain(is_initialization_completed=False)
    request(chain)
    agree_common(chain)
    personal(chain, ALICE, 0b011, point())
    chain.next_block()
    stranger = outsider(chain, entity=b"\x70" * 20)
    ss(chain, ALICE, "add_key_server", id=b"\x70" * 20, network_address=b"127.0.0.1:10003")
    # the request is kept, but the common part has to be agreed again by the new set
    assert pending(chain) == [("RetrieveShadowDocumentKeyCommon", (KEY, DAVE_ID))]
    assert is_required(chain, 0)
    common_point = point()
    for who in (ALICE, BOB):
        assert common(chain, who, common_point) == []
    assert names(common(chain, stranger, common_point)) == [
        "DocumentKeyCommonRetrieved", "DocumentKeyPersonalRetrievalRequested"]


@pytest.mark.parametrize("count", [3])
def test_paging(chain, count):
    for i in range(count):
        request(chain, bytes([i]) * 32)
    everything = pending(chain)
    assert len(everything) == count
    assert pending(chain, 0, 1) + pending(chain, 1, 2) + pending(chain, 2, 3) == everything
