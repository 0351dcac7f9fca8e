"""The SecretStore runtime API traits over `state_call` on a real `secretstore node --dev`, checked without our codec.

Arguments are encoded and results decoded with scalecodec type definitions written here from the trait declarations
(shared/spec/interop.md §1, as MathChain's runtime implements them), and compared with what the chain holds, read
through unmodified substrate-interface. Unknown methods and undecodable arguments must be JSON-RPC errors.
"""

from __future__ import annotations

import hashlib

import pytest
from scalecodec.base import RuntimeConfigurationObject, ScaleBytes
from scalecodec.type_registry import load_type_registry_preset
from substrateinterface import Keypair

from secretstore.crypto import Secret
from secretstore.node.testing import rpc_call

TYPES = {"types": {
    "ServerKeyId": "H256",
    "EntityId": "H160",
    "KeyServerId": "H160",
    "MigrationId": "H256",
    "KeyServerNetworkAddress": "Vec<u8>",
    "KeyServerSetMigration": {"type": "struct", "type_mapping": [
        ["id", "MigrationId"], ["set", "Vec<(KeyServerId, KeyServerNetworkAddress)>"], ["master", "KeyServerId"],
        ["is_confirmed", "bool"]]},
    "KeyServerSetSnapshot": {"type": "struct", "type_mapping": [
        ["current_set", "Vec<(KeyServerId, KeyServerNetworkAddress)>"],
        ["new_set", "Vec<(KeyServerId, KeyServerNetworkAddress)>"],
        ["migration", "Option<KeyServerSetMigration>"]]},
    "ServiceTask": {"type": "enum", "type_mapping": [
        ["GenerateServerKey", "(ServerKeyId, EntityId, u8)"],
        ["RetrieveServerKey", "ServerKeyId"],
        ["StoreDocumentKey", "(ServerKeyId, EntityId, H512, H512)"],
        ["RetrieveShadowDocumentKeyCommon", "(ServerKeyId, EntityId)"],
        ["RetrieveShadowDocumentKeyPersonal", "(ServerKeyId, H512)"]]},
}}
# trait -> method -> (argument types, result type), as declared by the runtime API traits
TRAITS = {
    "SecretStoreAclApi": {"check": (["EntityId", "ServerKeyId"], "bool")},
    "SecretStoreKeyServerSetApi": {
        "snapshot": (["KeyServerId"], "KeyServerSetSnapshot"),
        "current_set_with_indices": ([], "Vec<(KeyServerId, u8)>")},
    "SecretStoreServiceApi": {
        **{f"{s}_tasks": (["u32", "u32"], "Vec<ServiceTask>") for s in (
            "server_key_generation", "server_key_retrieval", "document_key_store", "document_key_shadow_retrieval")},
        **{f"is_{s}_response_required": (["KeyServerId", "ServerKeyId"], "bool") for s in (
            "server_key_generation", "server_key_retrieval", "document_key_store")},
        "is_document_key_shadow_retrieval_response_required": (["KeyServerId", "ServerKeyId", "EntityId"], "bool")},
}

KS_IDS = ["0x1a642f0e3c3af545e7acbd38b07251b3990914f1", "0x5050a4f4b3f9338c3472dcc01a87c76a144b3c9c",
          "0x3325a78425f17a7e487eb5666b2bfd93abb06c70"]
DAVE_ID = "0xc48b812bb43401392c037381aca934f4069c0517"
GEN_KEY, RET_KEY, STORE_KEY, SHADOW_KEY = ("0x" + b * 32 for b in ("a1", "a2", "a3", "a4"))
COMMON, ENCRYPTED = Secret.random().public().hex(), Secret.random().public().hex()
DAVE_SECRET = Secret(b"\x04" * 32)
MIGRATION = "0x" + "5e" * 32


@pytest.fixture(scope="module")
def types():
    config = RuntimeConfigurationObject()
    config.update_type_registry(load_type_registry_preset("legacy"))
    config.update_type_registry(TYPES)
    return config


def call(node, types, name: str, *args):
    trait, _, method = name.partition("_")
    arg_types, result_type = TRAITS[trait][method]
    encoded = "0x" + "".join(types.create_scale_object(t).encode(a).to_hex()[2:] for t, a in zip(arg_types, args))
    answer = rpc_call(node.http_url, "state_call", [name, encoded])
    assert "result" in answer, answer
    result = types.create_scale_object(result_type, ScaleBytes(answer["result"]))
    value = result.decode()
    assert result.data.offset == len(result.data.data), f"{name}: trailing bytes in the answer"
    return value


def submit(substrate, who: str, call_name: str, **params):
    keypair = Keypair.create_from_uri(who)
    composed = substrate.compose_call("SecretStore", call_name, params)
    receipt = substrate.submit_extrinsic(substrate.create_signed_extrinsic(composed, keypair), wait_for_inclusion=True)
    assert receipt.is_success, (call_name, receipt.error_message)


@pytest.fixture(scope="module")
def pending(substrate):
    """One pending request of every service (no key servers run here, so they stay pending), and a migration."""
    for key in (GEN_KEY, STORE_KEY, SHADOW_KEY):
        submit(substrate, "//Dave", "claim_key", id=key)
    submit(substrate, "//Dave", "generate_server_key", id=GEN_KEY, threshold=1)
    submit(substrate, "//Dave", "retrieve_server_key", id=RET_KEY)
    submit(substrate, "//Dave", "store_document_key", id=STORE_KEY, common_point=COMMON, encrypted_point=ENCRYPTED)
    submit(substrate, "//Dave", "retrieve_document_key_shadow", id=SHADOW_KEY,
           requester_public=DAVE_SECRET.public().hex())
    submit(substrate, "//Dave", "retrieve_document_key_shadow", id=GEN_KEY, requester_public=DAVE_SECRET.public().hex())
    # two of three key servers agree on the common part of the second retrieval: its personal part is due
    for who in ("//Alice", "//Bob"):
        submit(substrate, who, "document_key_common_retrieved", id=GEN_KEY, requester=DAVE_ID, common_point=COMMON,
               threshold=1)
    submit(substrate, "//Alice", "server_key_generated", id=GEN_KEY, server_key_public=COMMON)


def test_every_method_answers_and_decodes_independently(node, substrate, types, pending):
    version = substrate.rpc_request("state_getRuntimeVersion", [])["result"]
    published = {api_id: v for api_id, v in version["apis"]}
    for trait in TRAITS:
        assert published["0x" + hashlib.blake2b(trait.encode(), digest_size=8).hexdigest()] == 1

    owners = substrate.query("SecretStore", "KeyOwners", [GEN_KEY]).value
    assert call(node, types, "SecretStoreAclApi_check", DAVE_ID, GEN_KEY) is (DAVE_ID in owners)
    assert call(node, types, "SecretStoreAclApi_check", KS_IDS[0], GEN_KEY) is False

    current = substrate.query("SecretStore", "CurrentKeyServers").value
    assert call(node, types, "SecretStoreKeyServerSetApi_current_set_with_indices") == [
        (ks["id"], i) for i, ks in enumerate(current)]
    snapshot = call(node, types, "SecretStoreKeyServerSetApi_snapshot", KS_IDS[0])
    assert [ks_id for ks_id, _ in snapshot["current_set"]] == [ks["id"] for ks in current] == KS_IDS
    assert [address for _, address in snapshot["current_set"]] == [f"127.0.0.1:{p}" for p in (10000, 10001, 10002)]
    assert snapshot["new_set"] == snapshot["current_set"] and snapshot["migration"] is None

    assert call(node, types, "SecretStoreServiceApi_server_key_generation_tasks", 0, 10) == [
        {"GenerateServerKey": (GEN_KEY, DAVE_ID, 1)}]
    assert call(node, types, "SecretStoreServiceApi_server_key_retrieval_tasks", 0, 10) == [
        {"RetrieveServerKey": RET_KEY}]
    assert call(node, types, "SecretStoreServiceApi_document_key_store_tasks", 0, 10) == [
        {"StoreDocumentKey": (STORE_KEY, DAVE_ID, COMMON, ENCRYPTED)}]
    shadow_tasks = call(node, types, "SecretStoreServiceApi_document_key_shadow_retrieval_tasks", 0, 10)
    assert sorted(shadow_tasks, key=str) == sorted([
        {"RetrieveShadowDocumentKeyCommon": (SHADOW_KEY, DAVE_ID)},
        {"RetrieveShadowDocumentKeyPersonal": (GEN_KEY, DAVE_SECRET.public().hex())}], key=str)
    # paging: [begin, end) over the same list
    assert call(node, types, "SecretStoreServiceApi_document_key_shadow_retrieval_tasks", 0, 1) + call(
        node, types, "SecretStoreServiceApi_document_key_shadow_retrieval_tasks", 1, 5) == shadow_tasks
    assert call(node, types, "SecretStoreServiceApi_document_key_shadow_retrieval_tasks", 2, 1) == []

    # Alice answered the generation, Bob did not; nobody answered the others yet
    assert call(node, types, "SecretStoreServiceApi_is_server_key_generation_response_required", KS_IDS[0], GEN_KEY) \
        is False
    assert call(node, types, "SecretStoreServiceApi_is_server_key_generation_response_required", KS_IDS[1], GEN_KEY)
    assert call(node, types, "SecretStoreServiceApi_is_server_key_retrieval_response_required", KS_IDS[2], RET_KEY)
    assert call(node, types, "SecretStoreServiceApi_is_document_key_store_response_required", KS_IDS[2], STORE_KEY)
    assert call(node, types, "SecretStoreServiceApi_is_document_key_store_response_required", DAVE_ID, STORE_KEY) \
        is False  # not a key server
    assert call(node, types, "SecretStoreServiceApi_is_server_key_retrieval_response_required", KS_IDS[0], GEN_KEY) \
        is False  # no such request
    assert call(node, types, "SecretStoreServiceApi_is_document_key_shadow_retrieval_response_required",
                KS_IDS[0], SHADOW_KEY, DAVE_ID)
    assert call(node, types, "SecretStoreServiceApi_is_document_key_shadow_retrieval_response_required",
                KS_IDS[0], SHADOW_KEY, KS_IDS[1]) is False


def test_snapshot_during_a_migration(node, substrate, types, pending):
    submit(substrate, "//Alice", "add_key_server", id=DAVE_ID, network_address="127.0.0.1:10003")
    submit(substrate, "//Alice", "start_migration", migration_id=MIGRATION)
    submit(substrate, "//Alice", "confirm_migration", migration_id=MIGRATION)
    expected_set = [(ks, f"127.0.0.1:{10000 + i}") for i, ks in enumerate(KS_IDS + [DAVE_ID])]
    for who, confirmed in ((KS_IDS[0], True), (KS_IDS[1], False)):
        snapshot = call(node, types, "SecretStoreKeyServerSetApi_snapshot", who)
        assert [ks for ks, _ in snapshot["current_set"]] == KS_IDS
        assert snapshot["new_set"] == expected_set
        assert snapshot["migration"] == {"id": MIGRATION, "set": expected_set, "master": KS_IDS[0],
                                         "is_confirmed": confirmed}


@pytest.mark.parametrize("name, data", [
    ("SecretStoreAclApi_nope", "0x"),
    ("SecretStoreRuntimeApi_check_key_access", "0x" + "00" * 52),  # the old private API is gone
    ("SecretStoreAclApi_check", "0x" + "00" * 51),  # one byte short
    ("SecretStoreAclApi_check", "0x" + "00" * 53),  # one byte too many
    ("SecretStoreKeyServerSetApi_snapshot", "0x"),
    ("SecretStoreServiceApi_server_key_generation_tasks", "0x000000"),
    ("SecretStoreServiceApi_is_document_key_shadow_retrieval_response_required", "0x" + "00" * 52),
    ("SecretStoreServiceApi_server_key_generation_tasks", "0xzz"),
])
def test_unknown_methods_and_bad_arguments_are_rpc_errors(node, name, data):
    answer = rpc_call(node.http_url, "state_call", [name, data])
    assert "error" in answer and "result" not in answer, answer
    assert isinstance(answer["error"]["code"], int) and answer["error"]["message"]
    # the node is still serving
    assert rpc_call(node.http_url, "state_call", ["SecretStoreKeyServerSetApi_current_set_with_indices", "0x"])["result"]
