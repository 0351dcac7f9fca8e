"""chainSpec_v1, archive_v1 and rpc_methods (the new Substrate JSON-RPC interface) against a real node process."""

from __future__ import annotations

import hashlib

import pytest
from substrateinterface import Keypair

from secretstore.codec.hashing import blake2_256, twox128
from secretstore.node.chain import Header
from secretstore.node.testing import rpc_call

from .new_rpc_client import Client, Signer, seal

ACCOUNTS = "0x" + (twox128(b"System") + twox128(b"Account")).hex()
ALICE = Keypair.create_from_uri("//Alice")
ALICE_ACCOUNT = ACCOUNTS + hashlib.blake2b(ALICE.public_key, digest_size=16).hexdigest() + ALICE.public_key.hex()
UNKNOWN_BLOCK = "0x" + "44" * 32

NEW_METHODS = {
    "chainHead_v1_follow", "chainHead_v1_unfollow", "chainHead_v1_header", "chainHead_v1_body",
    "chainHead_v1_storage", "chainHead_v1_call", "chainHead_v1_continue", "chainHead_v1_stopOperation",
    "chainHead_v1_unpin", "chainSpec_v1_chainName", "chainSpec_v1_genesisHash", "chainSpec_v1_properties",
    "transaction_v1_broadcast", "transaction_v1_stop", "transactionWatch_v1_submitAndWatch",
    "transactionWatch_v1_unwatch", "archive_v1_body", "archive_v1_call", "archive_v1_finalizedHeight",
    "archive_v1_genesisHash", "archive_v1_hashByHeight", "archive_v1_header", "archive_v1_storage",
    "archive_v1_stopStorage", "archive_v1_storageDiff", "archive_v1_stopStorageDiff"}


@pytest.fixture(scope="module")
def blocks(node) -> list[str]:
    """Two blocks with a remark of Alice's each, at heights 1 and 2 of this module's fresh chain."""
    with Client(node.ws_url) as c:
        return seal(c, Signer(c, ALICE), 2)


def storage(client: Client, block: str, items: list[dict], child_trie: str | None = None) -> list[dict]:
    sub = client("archive_v1_storage", block, items, child_trie)
    events = client.until(sub, "storageDone")
    assert client.methods[sub] == "archive_v1_storageEvent"
    assert all(e["event"] == "storage" for e in events[:-1]), events
    return [{k: v for k, v in e.items() if k != "event"} for e in events[:-1]]


def test_rpc_methods_lists_the_new_interface_beside_the_legacy_one(node):
    methods = rpc_call(node.http_url, "rpc_methods")["result"]["methods"]
    assert NEW_METHODS <= set(methods)
    assert {"chain_getBlock", "state_getStorage", "author_submitAndWatchExtrinsic", "rpc_methods"} <= set(methods)
    assert methods == sorted(set(methods))


def test_chain_spec(client):
    assert client("chainSpec_v1_chainName") == client("system_chain") == "SecretStore Development"
    assert client("chainSpec_v1_genesisHash") == client("chain_getBlockHash", 0)
    assert client("chainSpec_v1_properties") == client("system_properties")
    assert client.error("chainSpec_v1_chainName", 1)["code"] == -32602


def test_heights_and_hashes(client, blocks):
    genesis = client("chain_getBlockHash", 0)
    assert client("archive_v1_genesisHash") == genesis
    height = client("archive_v1_finalizedHeight")
    assert height == int(client("chain_getHeader")["number"], 16) >= 2
    assert client("archive_v1_hashByHeight", 0) == [genesis]
    assert client("archive_v1_hashByHeight", 1) == [blocks[0]]
    assert client("archive_v1_hashByHeight", height) == [client("chain_getFinalizedHead")]
    assert client("archive_v1_hashByHeight", height + 1) == []
    assert client("archive_v1_hashByHeight", 2**40) == []
    for bad in (-1, "1", 1.5, True, None, [1]):
        assert client.error("archive_v1_hashByHeight", bad)["code"] == -32602, bad


def test_header_and_body(client, blocks):
    for block in blocks:
        encoded = client("archive_v1_header", block)
        assert "0x" + blake2_256(bytes.fromhex(encoded[2:])).hex() == block
        header = Header.decode(bytes.fromhex(encoded[2:]))
        assert hex(header["number"]) == client("chain_getHeader", block)["number"]
        assert client("archive_v1_body", block) == client("chain_getBlock", block)["block"]["extrinsics"]
        assert len(client("archive_v1_body", block)) == 1
    assert client("archive_v1_header", UNKNOWN_BLOCK) is None
    assert client("archive_v1_body", UNKNOWN_BLOCK) is None
    for bad in ("zz", "0x12", 5, None):
        assert client.error("archive_v1_header", bad)["code"] == -32602
        assert client.error("archive_v1_body", bad)["code"] == -32602


def test_call(client, blocks):
    result = client("archive_v1_call", blocks[0], "Core_version", "0x")
    assert result == {"success": True, "value": client("state_call", "Core_version", "0x", blocks[0])}
    nonce = "0x" + ALICE.public_key.hex()
    first = client("archive_v1_call", blocks[0], "AccountNonceApi_account_nonce", nonce)
    second = client("archive_v1_call", blocks[1], "AccountNonceApi_account_nonce", nonce)
    assert int.from_bytes(bytes.fromhex(second["value"][2:]), "little") == \
        int.from_bytes(bytes.fromhex(first["value"][2:]), "little") + 1  # each at its own block's state
    failed = client("archive_v1_call", blocks[0], "Nothing_here", "0x")
    assert failed["success"] is False and "Nothing_here" in failed["error"]
    failed = client("archive_v1_call", blocks[0], "Metadata_metadata_at_version", "0x01")
    assert failed["success"] is False and failed["error"]
    assert client("archive_v1_call", UNKNOWN_BLOCK, "Core_version", "0x") is None
    for params in (("zz", "Core_version", "0x"), (blocks[0], 5, "0x"), (blocks[0], "Core_version", "zz"),
                   (blocks[0], "Core_version")):
        assert client.error("archive_v1_call", *params)["code"] == -32602, params


def test_storage_of_every_type(client, blocks):
    block = blocks[1]
    value = client("state_getStorage", ALICE_ACCOUNT, block)
    assert storage(client, block, [{"key": ALICE_ACCOUNT, "type": "value"}, {"key": ALICE_ACCOUNT, "type": "hash"},
                                   {"key": ACCOUNTS + "00", "type": "value"}]) == [
        {"key": ALICE_ACCOUNT, "value": value},
        {"key": ALICE_ACCOUNT, "hash": "0x" + blake2_256(bytes.fromhex(value[2:])).hex()}]
    pairs = client("state_getPairs", ACCOUNTS, block)
    assert storage(client, block, [{"key": ACCOUNTS, "type": "descendantsValues"}]) == [
        {"key": k, "value": v} for k, v in pairs]
    assert storage(client, block, [{"key": ACCOUNTS, "type": "descendantsHashes"}]) == [
        {"key": k, "hash": "0x" + blake2_256(bytes.fromhex(v[2:])).hex()} for k, v in pairs]
    # resuming after a key
    assert storage(client, block, [{"key": ACCOUNTS, "type": "descendantsValues",
                                    "paginationStartKey": pairs[0][0]}]) == [{"key": k, "value": v} for k, v in pairs[1:]]
    merkle = [storage(client, b, [{"key": ACCOUNTS, "type": "closestDescendantMerkleValue"}]) for b in blocks]
    assert all(len(m) == 1 and set(m[0]) == {"key", "closestDescendantMerkleValue"} for m in merkle)
    assert merkle[0] != merkle[1]  # Alice's nonce changed in between
    assert storage(client, block, [{"key": ACCOUNTS + "ff" * 40, "type": "closestDescendantMerkleValue"}]) == []
    assert storage(client, block, [{"key": ALICE_ACCOUNT, "type": "value"}], "0x" + b":child_storage:x".hex()) == []

    sub = client("archive_v1_storage", UNKNOWN_BLOCK, [{"key": ALICE_ACCOUNT, "type": "value"}], None)
    event = client.event(sub)
    assert event["event"] == "storageError" and event["error"]
    assert client("archive_v1_stopStorage", sub) is None
    assert client("archive_v1_stopStorage", "no-such-operation") is None


def test_storage_refuses_malformed_items(client, blocks, node):
    head = rpc_call(node.http_url, "chain_getFinalizedHead")["result"]
    for items in (None, "x", [None], [{"key": "0x"}], [{"key": "zz", "type": "value"}],
                  [{"key": "0x", "type": "everything"}], [{"key": "0x", "type": "value", "extra": 1}],
                  [{"key": "0x", "type": "value", "paginationStartKey": "0x00"}],
                  [{"key": "0x", "type": "descendantsValues", "paginationStartKey": "zz"}]):
        assert client.error("archive_v1_storage", blocks[0], items, None)["code"] == -32602, items
    assert client.error("archive_v1_storage", "zz", [], None)["code"] == -32602
    assert client.error("archive_v1_storage", blocks[0], [], "zz")["code"] == -32602
    assert rpc_call(node.http_url, "archive_v1_storage", [blocks[0], [], None])["error"]["code"] == -32601
    assert rpc_call(node.http_url, "chain_getFinalizedHead")["result"] == head


def test_storage_diff_against_the_parent_or_an_earlier_block(client, blocks):
    def pairs(block: str) -> dict[str, str]:
        return dict(client("state_getPairs", "0x", block))

    def expected(old: dict, new: dict, prefix: str = "0x") -> list[dict]:
        changes = []
        for key in sorted(set(old) | set(new)):
            if not key.startswith(prefix) or old.get(key) == new.get(key):
                continue
            kind = "added" if key not in old else "deleted" if key not in new else "modified"
            changes.append({"key": key, "value": new.get(key, old.get(key)), "type": kind})
        return changes

    def diff(*params: object) -> list[dict]:
        sub = client("archive_v1_storageDiff", *params)
        events = client.until(sub, "storageDiffDone")
        assert client.methods[sub] == "archive_v1_storageDiffEvent"
        return [{k: v for k, v in e.items() if k != "event"} for e in events[:-1]]

    genesis = client("chain_getBlockHash", 0)
    first, second = blocks
    assert diff(second, [{"returnType": "value"}], None) == expected(pairs(first), pairs(second))
    assert diff(second, [{"returnType": "value"}], genesis) == expected(pairs(genesis), pairs(second))
    accounts = expected(pairs(first), pairs(second), ACCOUNTS)
    assert accounts and diff(second, [{"key": ACCOUNTS, "returnType": "value"}], first) == accounts
    hashed = diff(second, [{"key": ACCOUNTS, "returnType": "hash"}])
    assert hashed == [{"key": a["key"], "hash": "0x" + blake2_256(bytes.fromhex(a["value"][2:])).hex(),
                       "type": a["type"]} for a in accounts]

    for params in ((UNKNOWN_BLOCK, [{"returnType": "value"}], None), (first, [{"returnType": "value"}], second)):
        sub = client("archive_v1_storageDiff", *params)
        event = client.event(sub)
        assert event["event"] == "storageDiffError" and event["error"], params
    for params in ((second, [{"returnType": "all"}], None), (second, [{"key": "zz", "returnType": "value"}], None),
                   (second, "x", None), (second, [{"returnType": "value"}], "zz"), ("zz", [], None)):
        assert client.error("archive_v1_storageDiff", *params)["code"] == -32602, params
    assert client("archive_v1_stopStorageDiff", "no-such-operation") is None
