"""What the node's instant seal may wait for: per pending request, the fewest key server responses that could decide
it (three dev key servers: generation and store need all three, a shadow retrieval's common part two, its personal
part threshold + 1), and which request a response call answers."""

import pytest

from secretstore.runtime.secretstore.pallet import SERVICES

from .conftest import ALICE, BOB, CHARLIE, DAVE, DAVE_ID, DAVE_SECRET, KEY, point, ss


def awaited(chain, service, key):
    pallet = chain.runtime.secretstore
    return pallet.responses_awaited(chain.storage, pallet.requests(service).storage_key(key))


def test_a_generation_awaits_every_key_server_then_nothing(chain):
    ss(chain, ALICE, "generate_server_key", id=KEY, threshold=1)
    assert awaited(chain, "server_key_generation", KEY) == 3
    public = point()
    ss(chain, ALICE, "server_key_generated", id=KEY, server_key_public=public)
    assert awaited(chain, "server_key_generation", KEY) == 2
    ss(chain, BOB, "server_key_generated", id=KEY, server_key_public=public)
    assert awaited(chain, "server_key_generation", KEY) == 1
    ss(chain, CHARLIE, "server_key_generated", id=KEY, server_key_public=public)
    assert awaited(chain, "server_key_generation", KEY) == 0  # generated: the request is gone


def test_a_shadow_retrieval_awaits_a_majority_then_threshold_plus_one_parts(chain):
    key = (KEY, DAVE_ID)
    ss(chain, DAVE, "retrieve_document_key_shadow", id=KEY, requester_public=bytes(DAVE_SECRET.public()))
    assert awaited(chain, "document_key_shadow_retrieval", key) == 2
    common_point, other = point(), point()
    ss(chain, ALICE, "document_key_common_retrieved", id=KEY, requester=DAVE_ID, common_point=other, threshold=1)
    ss(chain, BOB, "document_key_common_retrieved", id=KEY, requester=DAVE_ID, common_point=common_point,
       threshold=1)
    assert awaited(chain, "document_key_shadow_retrieval", key) == 1  # two answers, but no two agree yet
    ss(chain, CHARLIE, "document_key_common_retrieved", id=KEY, requester=DAVE_ID, common_point=common_point,
       threshold=1)
    assert awaited(chain, "document_key_shadow_retrieval", key) == 2  # agreed (t = 1): two personal parts
    secret_point = point()
    ss(chain, ALICE, "document_key_personal_retrieved", id=KEY, requester=DAVE_ID, participants=0b011,
       decrypted_secret=secret_point, shadow=b"s")
    assert awaited(chain, "document_key_shadow_retrieval", key) == 1
    ss(chain, BOB, "document_key_personal_retrieved", id=KEY, requester=DAVE_ID, participants=0b011,
       decrypted_secret=secret_point, shadow=b"s")
    assert awaited(chain, "document_key_shadow_retrieval", key) == 0


def test_other_storage_keys_and_calls_are_not_requests_or_responses(chain):
    pallet = chain.runtime.secretstore
    assert pallet.responses_awaited(chain.storage, pallet.Owner.storage_key()) is None
    assert pallet.responses_awaited(chain.storage, chain.runtime.system.Events.storage_key()) is None
    for service in SERVICES:  # no such request: nothing awaited
        key = (KEY, DAVE_ID) if service == "document_key_shadow_retrieval" else KEY
        assert awaited(chain, service, key) == 0
    encode = chain.runtime.RuntimeCall.encode
    assert pallet.response_request_key(encode(("SecretStore", ("generate_server_key", {"id": KEY, "threshold": 1})))) \
        is None
    assert pallet.response_request_key(encode(("System", ("remark", {"remark": b""})))) is None
    assert pallet.response_request_key(b"\x03") is None
    assert pallet.response_request_key(encode(("SecretStore", ("document_key_stored", {"id": KEY})))[:20]) is None


@pytest.mark.parametrize("service, call, args", [
    ("server_key_generation", "server_key_generated", {"server_key_public": point()}),
    ("server_key_generation", "server_key_generation_error", {}),
    ("server_key_retrieval", "server_key_retrieved", {"server_key_public": point(), "threshold": 1}),
    ("server_key_retrieval", "server_key_retrieval_error", {}),
    ("document_key_store", "document_key_stored", {}),
    ("document_key_store", "document_key_store_error", {}),
    ("document_key_shadow_retrieval", "document_key_common_retrieved",
     {"requester": DAVE_ID, "common_point": point(), "threshold": 1}),
    ("document_key_shadow_retrieval", "document_key_personal_retrieved",
     {"requester": DAVE_ID, "participants": 3, "decrypted_secret": point(), "shadow": b"s"}),
    ("document_key_shadow_retrieval", "document_key_shadow_retrieval_error", {"requester": DAVE_ID}),
])
def test_a_response_call_names_the_storage_key_of_its_request(chain, service, call, args):
    pallet = chain.runtime.secretstore
    encoded = chain.runtime.RuntimeCall.encode(("SecretStore", (call, {"id": KEY, **args})))
    key = (KEY, DAVE_ID) if service == "document_key_shadow_retrieval" else KEY
    assert pallet.response_request_key(encoded) == pallet.requests(service).storage_key(key)
