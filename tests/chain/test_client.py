"""The chain client's handling of chains whose metadata predates V14 (MathChain 0.7.0): named types, unnamed events."""

from scalecodec.base import RuntimeConfigurationObject
from scalecodec.type_registry import load_type_registry_preset

from secretstore.chain.client import SECRETSTORE_TYPES, event_from_record
from secretstore.codec.primitives import H160, H256
from secretstore.runtime.secretstore.types import KeyServersMask

KEY, REQUESTER = "0x" + "11" * 32, "0x" + "22" * 20


def test_unnamed_secretstore_event_fields_are_named_in_parity_order():
    record = {"extrinsic_idx": 2, "event": {"module_id": "SecretStore", "event_id": "DocumentKeyCommonRetrieved",
                                            "attributes": [KEY, REQUESTER, "0x" + "33" * 64, 1]}}
    event = event_from_record(record)
    assert event.attributes == {"id": KEY, "requester": REQUESTER, "common_point": "0x" + "33" * 64, "threshold": 1}
    assert event.extrinsic_index == 2


def test_other_events_and_named_fields_are_left_as_they_are():
    other = event_from_record({"event": {"module_id": "Balances", "event_id": "Transfer", "attributes": ["a", "b", 5]}})
    assert other.attributes == ("a", "b", 5)
    named = event_from_record({"event": {"module_id": "SecretStore", "event_id": "KeyClaimed",
                                         "attributes": {"id": KEY, "owner": REQUESTER}}})
    assert named.attributes == {"id": KEY, "owner": REQUESTER}
    # a field count that does not match the declaration is not guessed at
    odd = event_from_record({"event": {"module_id": "SecretStore", "event_id": "KeyClaimed", "attributes": [KEY]}})
    assert odd.attributes == (KEY,)


def test_named_types_encode_as_the_pallet_declares_them():
    config = RuntimeConfigurationObject()
    config.update_type_registry(load_type_registry_preset("legacy"))
    config.update_type_registry(SECRETSTORE_TYPES)
    assert bytes(config.create_scale_object("ServerKeyId").encode(KEY).data) == H256.encode(bytes.fromhex("11" * 32))
    assert bytes(config.create_scale_object("EntityId").encode(REQUESTER).data) == H160.encode(bytes.fromhex("22" * 20))
    mask = (1 << 200) | 5  # bits in both halves of Parity's {low: u128, high: u128}
    assert bytes(config.create_scale_object("KeyServersMask").encode(mask).data) == KeyServersMask.encode(mask)
    assert bytes(config.create_scale_object("KeyServerNetworkAddress").encode("127.0.0.1:1").data) == \
        b"\x2c" + b"127.0.0.1:1"


def test_requested_events_announce_the_tasks_the_service_api_lists():
    from secretstore.chain.secretstore_api import (
        GenerateServerKey, RetrieveShadowDocumentKeyCommon, RetrieveShadowDocumentKeyPersonal, StoreDocumentKey,
        task_from_event,
    )
    from secretstore.crypto import Address, ServerKeyId

    key, author, point = "0x" + "ab" * 32, "0x" + "cd" * 20, "0x" + "02" * 64
    assert task_from_event("ServerKeyGenerationRequested", {"id": key, "author": author, "threshold": 2}) == \
        GenerateServerKey(ServerKeyId.from_hex(key), Address.from_hex(author), 2)
    assert task_from_event("DocumentKeyStoreRequested", {"id": key, "author": author, "common_point": point,
                                                         "encrypted_point": point}) == \
        StoreDocumentKey(ServerKeyId.from_hex(key), Address.from_hex(author), bytes.fromhex(point[2:]),
                         bytes.fromhex(point[2:]))
    assert task_from_event("DocumentKeyShadowRetrievalRequested", {"id": key, "requester": author}) == \
        RetrieveShadowDocumentKeyCommon(ServerKeyId.from_hex(key), Address.from_hex(author))
    personal = task_from_event("DocumentKeyPersonalRetrievalRequested", {"id": key, "requester_public": point})
    assert personal == RetrieveShadowDocumentKeyPersonal(ServerKeyId.from_hex(key), bytes.fromhex(point[2:]))
    # not a request, or fields it cannot read: nothing is announced (the scan reads the task from the chain instead)
    for name, attributes in [("ServerKeyGenerated", {"id": key, "public": point}), ("KeyClaimed", {"id": key}),
                             ("ServerKeyGenerationRequested", {"id": key, "author": author}),
                             ("ServerKeyGenerationRequested", {"id": "ab" * 32, "author": author, "threshold": 1}),
                             ("DocumentKeyStoreRequested", {"id": key, "author": author, "common_point": "0xzz",
                                                            "encrypted_point": point}),
                             ("DocumentKeyPersonalRetrievalRequested", {"id": key, "requester_public": "0x02"}),
                             ("ServerKeyRetrievalRequested", (key,))]:
        assert task_from_event(name, attributes) is None
