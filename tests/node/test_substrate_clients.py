"""Unmodified substrate-interface against a real node process: every SecretStore call, events, errors, storage."""

import pytest
from substrateinterface import Keypair
from substrateinterface.exceptions import SubstrateRequestException

from secretstore.crypto import Secret

KEY = "0x" + "ab" * 32
DAVE_ID = "0xc48b812bb43401392c037381aca934f4069c0517"
ALICE_ID = "0x1a642f0e3c3af545e7acbd38b07251b3990914f1"
POINT_A = Secret.random().public().hex()
POINT_B = Secret.random().public().hex()
ALICE_PUBLIC = Secret(b"\x01" * 32).public().hex()
MIGRATION = "0x" + "01" * 32

# (call, params, expected outcome: an event name on success, or the module error's name)
CALLS = [
    ("claim_id", {"id": "0x" + "99" * 20}, "error:AccountAlreadyHasId"),
    ("change_owner", {"new_owner": "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY"}, "OwnerChanged"),
    ("complete_initialization", {}, "error:InitializationAlreadyCompleted"),
    ("add_key_server", {"id": DAVE_ID, "network_address": "127.0.0.1:10003"}, "KeyServerAdded"),
    ("remove_key_server", {"id": DAVE_ID}, "KeyServerRemoved"),
    ("start_migration", {"migration_id": MIGRATION}, "error:MigrationNotRequired"),
    ("confirm_migration", {"migration_id": MIGRATION}, "error:NoActiveMigration"),
    ("claim_key", {"id": KEY}, "KeyClaimed"),
    ("transfer_key", {"id": KEY, "new_claimant": ALICE_ID}, "KeyTransferred"),
    ("generate_server_key", {"id": KEY, "threshold": 1}, "ServerKeyGenerationRequested"),
    ("server_key_generated", {"id": KEY, "server_key_public": POINT_A}, None),
    ("server_key_generation_error", {"id": KEY}, "ServerKeyGenerationError"),
    ("retrieve_server_key", {"id": KEY}, "ServerKeyRetrievalRequested"),
    ("server_key_retrieved", {"id": KEY, "server_key_public": POINT_A, "threshold": 1}, None),
    ("server_key_retrieval_error", {"id": KEY}, "error:AlreadyResponded"),
    ("store_document_key", {"id": KEY, "common_point": POINT_A, "encrypted_point": POINT_B}, "DocumentKeyStoreRequested"),
    ("document_key_stored", {"id": KEY}, None),
    ("document_key_store_error", {"id": KEY}, "DocumentKeyStoreError"),
    ("retrieve_document_key_shadow", {"id": KEY, "requester_public": ALICE_PUBLIC}, "DocumentKeyShadowRetrievalRequested"),
    ("document_key_common_retrieved", {"id": KEY, "requester": ALICE_ID, "common_point": POINT_A, "threshold": 1}, None),
    ("document_key_personal_retrieved", {"id": KEY, "requester": ALICE_ID, "participants": 3,
                                         "decrypted_secret": POINT_B, "shadow": "0x0102"}, "error:CommonPartNotRetrieved"),
    ("document_key_shadow_retrieval_error", {"id": KEY, "requester": ALICE_ID}, "error:AlreadyResponded"),
]


def test_metadata_describes_the_pallets(substrate):
    names = [m.name for m in substrate.get_metadata_modules()] if hasattr(substrate.get_metadata_modules()[0], "name") \
        else [m["name"] for m in substrate.get_metadata_modules()]
    assert names == ["System", "Balances", "TransactionPayment", "SecretStore"]
    call = substrate.get_metadata_call_function("SecretStore", "retrieve_document_key_shadow")
    assert [a["name"] for a in call.get_param_info() and call.value["fields"]] == ["id", "requester_public"]
    error = substrate.get_metadata_error("SecretStore", "DuplicateRequest")
    assert error.value["docs"] == ["The same request is already queued."]


@pytest.mark.parametrize("call, params, expected", CALLS, ids=[c[0] for c in CALLS])
def test_every_secretstore_call(substrate, alice, call, params, expected):
    composed = substrate.compose_call("SecretStore", call, params)
    receipt = substrate.submit_extrinsic(substrate.create_signed_extrinsic(composed, alice), wait_for_inclusion=True)
    if expected and expected.startswith("error:"):
        assert not receipt.is_success
        assert receipt.error_message["name"] == expected[6:]
        assert receipt.error_message["type"] == "Module"
    else:
        assert receipt.is_success, receipt.error_message
        events = [(e.value["module_id"], e.value["event_id"]) for e in receipt.triggered_events]
        assert ("System", "ExtrinsicSuccess") in events
        if expected:
            assert ("SecretStore", expected) in events


def test_finalization_and_storage_queries(substrate, alice):
    composed = substrate.compose_call("SecretStore", "claim_key", {"id": "0x" + "cd" * 32})
    receipt = substrate.submit_extrinsic(substrate.create_signed_extrinsic(composed, alice),
                                         wait_for_inclusion=True, wait_for_finalization=True)
    assert receipt.is_success
    assert substrate.get_chain_finalised_head() == receipt.block_hash or substrate.get_block_number(
        substrate.get_chain_finalised_head()) >= substrate.get_block_number(receipt.block_hash)
    assert substrate.query("SecretStore", "KeyOwners", ["0x" + "cd" * 32]).value == [ALICE_ID]
    claimed = {k.value: v.value for k, v in substrate.query_map("SecretStore", "ClaimedId")}
    assert claimed["5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY"] == ALICE_ID
    servers = substrate.query("SecretStore", "CurrentKeyServers").value
    assert [s["address"] for s in servers] == ["127.0.0.1:10000", "127.0.0.1:10001", "127.0.0.1:10002"]
    account = substrate.query("System", "Account", [alice.ss58_address]).value
    assert account["nonce"] == substrate.get_account_nonce(alice.ss58_address) > 0


def test_transfer_and_payment_info(substrate, alice, bob):
    before = substrate.query("System", "Account", [bob.ss58_address]).value["data"]["free"]
    call = substrate.compose_call("Balances", "transfer_keep_alive", {"dest": bob.ss58_address, "value": 12345})
    info = substrate.get_payment_info(call, alice)
    assert int(info["partialFee"]) >= 0
    receipt = substrate.submit_extrinsic(substrate.create_signed_extrinsic(call, alice), wait_for_inclusion=True)
    assert receipt.is_success
    assert substrate.query("System", "Account", [bob.ss58_address]).value["data"]["free"] == before + 12345


def test_mortal_extrinsic(substrate, alice):
    call = substrate.compose_call("System", "remark", {"remark": "0x01"})
    ext = substrate.create_signed_extrinsic(call, alice, era={"period": 64})
    assert substrate.submit_extrinsic(ext, wait_for_inclusion=True).is_success


def test_nonce_reuse_is_rejected(substrate, alice):
    call = substrate.compose_call("System", "remark", {"remark": "0x02"})
    with pytest.raises(SubstrateRequestException) as info:
        substrate.submit_extrinsic(substrate.create_signed_extrinsic(call, alice, nonce=0), wait_for_inclusion=True)
    assert info.value.args[0]["code"] == 1010
    assert "outdated" in info.value.args[0]["data"]


def test_duplicate_in_pool_is_rejected(node, substrate, alice):
    from secretstore.node.testing import rpc_call

    call = substrate.compose_call("System", "remark", {"remark": "0x03"})
    nonce = substrate.get_account_nonce(alice.ss58_address)
    future = substrate.create_signed_extrinsic(call, alice, nonce=nonce + 5)  # held in the pool: nonce gap
    first = rpc_call(node.http_url, "author_submitExtrinsic", [str(future.data)])
    assert "result" in first
    again = rpc_call(node.http_url, "author_submitExtrinsic", [str(future.data)])
    assert again["error"]["code"] == 1012
    assert str(future.data) in rpc_call(node.http_url, "author_pendingExtrinsics")["result"]


def test_bad_signature_is_rejected(substrate, alice):
    call = substrate.compose_call("System", "remark", {"remark": "0x04"})
    ext = substrate.create_signed_extrinsic(call, alice)
    raw = bytearray(ext.data.data)
    raw[40] ^= 0xFF  # inside the sr25519 signature
    from secretstore.node.testing import rpc_call

    reply = rpc_call(substrate.url.replace("ws://", "http://") + "/", "author_submitExtrinsic", ["0x" + raw.hex()])
    assert reply["error"]["code"] == 1010
    assert "bad signature" in reply["error"]["data"]


def test_ed25519_signer(substrate, alice):
    from substrateinterface import KeypairType

    pair = Keypair.create_from_mnemonic(Keypair.generate_mnemonic(), crypto_type=KeypairType.ED25519)
    fund = substrate.compose_call("Balances", "transfer_allow_death", {"dest": pair.ss58_address, "value": 10**12})
    assert substrate.submit_extrinsic(substrate.create_signed_extrinsic(fund, alice), wait_for_inclusion=True).is_success
    remark = substrate.compose_call("System", "remark", {"remark": "0x05"})
    assert substrate.submit_extrinsic(substrate.create_signed_extrinsic(remark, pair), wait_for_inclusion=True).is_success


def test_ecdsa_signer(node, substrate, alice):
    """Substrate's ecdsa accounts: AccountId = blake2_256(compressed public key), signature over blake2_256(payload).
    (substrate-interface's ECDSA keypairs are Ethereum-style, so this extrinsic is built by hand.)"""
    import coincurve

    from secretstore.codec.hashing import blake2_256
    from secretstore.node.extrinsic import Era, decode, encode_signed
    from secretstore.node.testing import rpc_call

    key = coincurve.PrivateKey()
    account = blake2_256(key.public_key.format(compressed=True))
    fund = substrate.compose_call("Balances", "transfer_allow_death", {"dest": "0x" + account.hex(), "value": 10**12})
    assert substrate.submit_extrinsic(substrate.create_signed_extrinsic(fund, alice), wait_for_inclusion=True).is_success
    call = bytes(substrate.compose_call("System", "remark", {"remark": "0x06"}).data.data)
    genesis = bytes.fromhex(substrate.get_block_hash(0)[2:])
    unsigned = decode(encode_signed(account, 2, b"\0" * 65, Era(), 0, 0, call))
    payload = unsigned.signing_payload(substrate.runtime_version, substrate.transaction_version, genesis, genesis)
    signature = key.sign_recoverable(blake2_256(payload), hasher=None)
    good = encode_signed(account, 2, signature, Era(), 0, 0, call)
    assert "result" in rpc_call(node.http_url, "author_submitExtrinsic", ["0x" + good.hex()])
    forged = encode_signed(account, 2, coincurve.PrivateKey().sign_recoverable(blake2_256(payload), hasher=None),
                           Era(), 1, 0, call)
    assert rpc_call(node.http_url, "author_submitExtrinsic", ["0x" + forged.hex()])["error"]["code"] == 1010
