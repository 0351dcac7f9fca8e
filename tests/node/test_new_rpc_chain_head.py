"""chainHead_v1 (the new Substrate JSON-RPC interface, paritytech/json-rpc-interface-spec) against a real node process:
follow events and their order, pinning, the header/body/storage/call operations, the limits and every bad input."""

from __future__ import annotations

import hashlib
import json

import pytest
from substrateinterface import Keypair

from secretstore.codec.hashing import blake2_256, twox128
from secretstore.node.chain import Header
from secretstore.node.rpc.chain_head import (FOLLOWS_PER_CONNECTION, INITIAL_FINALIZED, OPERATIONS_PER_FOLLOW,
                                             PINNED_BLOCKS, STORAGE_PAGE)
from secretstore.node.testing import rpc_call

from .new_rpc_client import Client, Signer, seal

ACCOUNTS = "0x" + (twox128(b"System") + twox128(b"Account")).hex()
BLOCK_HASHES = "0x" + (twox128(b"System") + twox128(b"BlockHash")).hex()
SECRETSTORE = "0x" + twox128(b"SecretStore").hex()
ALICE = Keypair.create_from_uri("//Alice")
ALICE_ACCOUNT = ACCOUNTS + hashlib.blake2b(ALICE.public_key, digest_size=16).hexdigest() + ALICE.public_key.hex()


@pytest.fixture(scope="module")
def enough_blocks(node):
    """More System.BlockHash entries than one storage page holds."""
    with Client(node.ws_url) as c:
        missing = STORAGE_PAGE + 6 - int(c("chain_getHeader")["number"], 16)
        if missing > 0:
            seal(c, Signer(c, ALICE), missing)


def follow(client: Client, with_runtime: bool = True) -> tuple[str, str]:
    """A new follow subscription and its current finalized block (the initial events checked)."""
    sub = client("chainHead_v1_follow", with_runtime)
    initialized, best = client.events(sub, 2)
    assert initialized["event"] == "initialized"
    assert 1 <= len(initialized["finalizedBlockHashes"]) <= INITIAL_FINALIZED
    head = initialized["finalizedBlockHashes"][-1]
    assert best == {"event": "bestBlockChanged", "bestBlockHash": head}
    return sub, head


def operation(client: Client, sub: str, method: str, *params: object) -> tuple[dict, list[dict]]:
    """Start an operation and collect its events until one that ends it (or asks to continue)."""
    started = client(method, sub, *params)
    assert started["result"] == "started", started
    op = started["operationId"]
    events = []
    while not events or events[-1]["event"] not in ("operationBodyDone", "operationCallDone", "operationStorageDone",
                                                    "operationError", "operationInaccessible",
                                                    "operationWaitingForContinue"):
        event = client.event(sub)
        assert event.get("operationId") == op, event
        events.append(event)
    return started, events


def storage_items(client: Client, sub: str, block: str, items: list[dict]) -> list[dict]:
    started, events = operation(client, sub, "chainHead_v1_storage", block, items, None)
    assert started["discardedItems"] == 0
    assert events[-1]["event"] == "operationStorageDone", events
    return [item for event in events[:-1] for item in event["items"]]


def test_follow_reports_the_finalized_head_its_runtime_then_each_block_as_new_best_and_final(client, signer):
    client.ws.send(json.dumps({"jsonrpc": "2.0", "id": "f", "method": "chainHead_v1_follow", "params": [True]}))
    reply = json.loads(client.ws.recv())  # the subscription id comes before its first event
    assert reply["id"] == "f"
    sub = reply["result"]
    initialized = client.event(sub)
    assert client.methods[sub] == "chainHead_v1_followEvent"
    head = client("chain_getFinalizedHead")
    assert initialized["finalizedBlockHashes"] == [head]
    runtime = initialized["finalizedBlockRuntime"]
    legacy = client("state_getRuntimeVersion")
    assert runtime == {"type": "valid", "spec": {
        "specName": legacy["specName"], "implName": legacy["implName"], "specVersion": legacy["specVersion"],
        "implVersion": legacy["implVersion"], "transactionVersion": legacy["transactionVersion"],
        "apis": {api: version for api, version in legacy["apis"]}}}
    assert runtime["spec"]["apis"]["0xdf6acb689907609b"] >= 1  # Core
    assert client.event(sub) == {"event": "bestBlockChanged", "bestBlockHash": head}

    for _ in range(2):
        client("author_submitExtrinsic", signer.remark(b"follow"))
        new, best, final = client.events(sub, 3)
        assert new == {"event": "newBlock", "blockHash": new["blockHash"], "parentBlockHash": head, "newRuntime": None}
        assert best == {"event": "bestBlockChanged", "bestBlockHash": new["blockHash"]}
        assert final == {"event": "finalized", "finalizedBlockHashes": [new["blockHash"]], "prunedBlockHashes": []}
        assert client("chain_getFinalizedHead") == new["blockHash"]
        head = new["blockHash"]
    assert client.quiet(sub) == []


def test_follow_without_runtime_leaves_the_runtime_out(client, signer):
    sub = client("chainHead_v1_follow", False)
    initialized = client.event(sub)
    assert set(initialized) == {"event", "finalizedBlockHashes"}
    client.event(sub)
    client("author_submitExtrinsic", signer.remark())
    new = client.event(sub)
    assert set(new) == {"event", "blockHash", "parentBlockHash"}
    assert [e["event"] for e in client.events(sub, 2)] == ["bestBlockChanged", "finalized"]
    assert client.error("chainHead_v1_call", sub, new["blockHash"], "Core_version", "0x")["code"] == -32802


def test_header_and_body_of_a_pinned_block(client, signer):
    sub, _ = follow(client)
    remark = signer.remark(b"body")
    client("author_submitExtrinsic", remark)
    block = client.event(sub)["blockHash"]
    client.events(sub, 2)

    encoded = client("chainHead_v1_header", sub, block)
    header = Header.decode(bytes.fromhex(encoded[2:]))
    legacy = client("chain_getHeader", block)
    assert "0x" + header["parent_hash"].hex() == legacy["parentHash"] and hex(header["number"]) == legacy["number"]
    assert "0x" + header["state_root"].hex() == legacy["stateRoot"]
    assert "0x" + blake2_256(bytes.fromhex(encoded[2:])).hex() == block

    started, events = operation(client, sub, "chainHead_v1_body", block)
    assert events == [{"event": "operationBodyDone", "operationId": started["operationId"], "value": [remark]}]
    assert client("chain_getBlock", block)["block"]["extrinsics"] == [remark]


def test_storage_items_of_every_type(client, signer):
    sub, head = follow(client)
    value = client("state_getStorage", ALICE_ACCOUNT, head)
    missing = ACCOUNTS + "00" * 48
    items = storage_items(client, sub, head, [
        {"key": ALICE_ACCOUNT, "type": "value"}, {"key": ALICE_ACCOUNT, "type": "hash"},
        {"key": missing, "type": "value"}, {"key": missing, "type": "hash"}])
    assert items == [{"key": ALICE_ACCOUNT, "value": value},
                     {"key": ALICE_ACCOUNT, "hash": "0x" + blake2_256(bytes.fromhex(value[2:])).hex()}]

    pairs = client("state_getPairs", ACCOUNTS, head)
    assert len(pairs) > 1
    assert storage_items(client, sub, head, [{"key": ACCOUNTS, "type": "descendantsValues"}]) == [
        {"key": k, "value": v} for k, v in pairs]
    assert storage_items(client, sub, head, [{"key": ACCOUNTS, "type": "descendantsHashes"}]) == [
        {"key": k, "hash": "0x" + blake2_256(bytes.fromhex(v[2:])).hex()} for k, v in pairs]

    def merkle(block: str, key: str) -> str | None:
        found = storage_items(client, sub, block, [{"key": key, "type": "closestDescendantMerkleValue"}])
        assert len(found) <= 1 and all(set(item) == {"key", "closestDescendantMerkleValue"} for item in found)
        return found[0]["closestDescendantMerkleValue"] if found else None

    before = {key: merkle(head, key) for key in (ACCOUNTS, ALICE_ACCOUNT, SECRETSTORE, ACCOUNTS + "ff" * 40)}
    assert before[ACCOUNTS + "ff" * 40] is None  # nothing below this key
    assert all(before[key] for key in (ACCOUNTS, ALICE_ACCOUNT, SECRETSTORE))
    assert len({before[ACCOUNTS], before[ALICE_ACCOUNT], before[SECRETSTORE]}) == 3
    client("author_submitExtrinsic", signer.remark(b"merkle"))  # Alice's nonce changes, SecretStore does not
    after_block = client.event(sub)["blockHash"]
    client.events(sub, 2)
    assert merkle(after_block, ACCOUNTS) != before[ACCOUNTS]
    assert merkle(after_block, ALICE_ACCOUNT) != before[ALICE_ACCOUNT]
    assert merkle(after_block, SECRETSTORE) == before[SECRETSTORE]
    assert merkle(head, ACCOUNTS) == before[ACCOUNTS]  # still the same at the older pinned block

    # a child trie: this chain has none, so nothing is found in it
    started, events = operation(client, sub, "chainHead_v1_storage", head,
                                [{"key": ALICE_ACCOUNT, "type": "value"}], "0x" + b":child_storage:default:x".hex())
    assert [e["event"] for e in events] == ["operationStorageDone"]


def test_large_storage_results_wait_for_continue(client, enough_blocks):
    sub, head = follow(client)
    pairs = client("state_getPairs", BLOCK_HASHES, head)
    assert len(pairs) > STORAGE_PAGE
    started, events = operation(client, sub, "chainHead_v1_storage", head,
                                [{"key": BLOCK_HASHES, "type": "descendantsValues"}], None)
    op = started["operationId"]
    assert [e["event"] for e in events] == ["operationStorageItems", "operationWaitingForContinue"]
    assert len(events[0]["items"]) == STORAGE_PAGE
    assert client.quiet(sub) == []  # nothing more until asked
    assert client("chainHead_v1_continue", sub, op) is None
    rest = client.until(sub, "operationStorageDone")
    assert [e["event"] for e in rest] == ["operationStorageItems", "operationStorageDone"]
    items = events[0]["items"] + rest[0]["items"]
    assert items == [{"key": k, "value": v} for k, v in pairs]
    # the operation is over: continuing it has no effect
    assert client("chainHead_v1_continue", sub, op) is None
    assert client.quiet(sub) == []


def test_call_runs_runtime_apis_at_a_pinned_block(client):
    sub, head = follow(client)
    _, events = operation(client, sub, "chainHead_v1_call", head, "Core_version", "0x")
    assert events[-1]["event"] == "operationCallDone"
    assert events[-1]["output"] == client("state_call", "Core_version", "0x", head)
    _, events = operation(client, sub, "chainHead_v1_call", head, "Metadata_metadata_at_version", "0x0f000000")
    assert events[-1]["output"] == client("state_call", "Metadata_metadata_at_version", "0x0f000000", head)
    assert len(events[-1]["output"]) > 10_000
    _, events = operation(client, sub, "chainHead_v1_call", head, "Nothing_here", "0x")
    assert events[-1]["event"] == "operationError" and "Nothing_here" in events[-1]["error"]
    _, events = operation(client, sub, "chainHead_v1_call", head, "Metadata_metadata_at_version", "0x01")
    assert events[-1]["event"] == "operationError" and events[-1]["error"]


def test_unpin_one_or_many_and_errors_that_unpin_nothing(client, signer):
    sub, first = follow(client)
    client("author_submitExtrinsic", signer.remark())
    second = client.until(sub, "finalized")[0]["blockHash"]
    client("author_submitExtrinsic", signer.remark())
    third = client.until(sub, "finalized")[0]["blockHash"]
    unknown = "0x" + "11" * 32

    assert client.error("chainHead_v1_unpin", sub, [first, first])["code"] == -32804
    assert client.error("chainHead_v1_unpin", sub, [first, unknown])["code"] == -32801
    assert client.error("chainHead_v1_unpin", sub, unknown)["code"] == -32801
    for bad in ("zz", "0x12", 5, None, [5], ["0xzz"], {"hash": first}):
        assert client.error("chainHead_v1_unpin", sub, bad)["code"] == -32602, bad
    assert client("chainHead_v1_header", sub, first)  # all of that unpinned nothing

    assert client("chainHead_v1_unpin", sub, first) is None
    assert client.error("chainHead_v1_header", sub, first)["code"] == -32801
    assert client.error("chainHead_v1_unpin", sub, first)["code"] == -32801
    assert client("chainHead_v1_unpin", sub, [second, third]) is None
    for block in (second, third):
        assert client.error("chainHead_v1_header", sub, block)["code"] == -32801
        assert client.error("chainHead_v1_body", sub, block)["code"] == -32801
        assert client.error("chainHead_v1_call", sub, block, "Core_version", "0x")["code"] == -32801
        assert client.error("chainHead_v1_storage", sub, block, [{"key": "0x", "type": "value"}], None)["code"] == -32801
    assert client("chainHead_v1_unpin", "no-such-subscription", first) is None
    assert client("chainHead_v1_unpin", sub, []) is None


def test_bad_input_is_refused_with_the_specs_errors_and_changes_nothing(client, node):
    before = (rpc_call(node.http_url, "chain_getFinalizedHead")["result"],
              rpc_call(node.http_url, "author_pendingExtrinsics")["result"])
    sub, head = follow(client)
    other_sub, other_head = follow(client)
    never_reported = "0x" + "22" * 32
    assert client.error("chainHead_v1_header", sub, never_reported)["code"] == -32801
    assert client.error("chainHead_v1_body", sub, never_reported)["code"] == -32801
    for bad_hash in ("zz", "0x1234", 7, None, ["0x"]):
        for method, extra in (("chainHead_v1_header", ()), ("chainHead_v1_body", ()),
                              ("chainHead_v1_call", ("Core_version", "0x")),
                              ("chainHead_v1_storage", ([{"key": "0x", "type": "value"}], None))):
            assert client.error(method, sub, bad_hash, *extra)["code"] == -32602, (method, bad_hash)
    bad_items = [None, "x", {"key": "0x", "type": "value"}, [None], [{"key": "0x"}], [{"type": "value"}],
                 [{"key": "zz", "type": "value"}], [{"key": "0x123", "type": "value"}],
                 [{"key": "0x", "type": "everything"}], [{"key": "0x", "type": "value", "extra": 1}],
                 [{"key": 5, "type": "hash"}]]
    for items in bad_items:
        assert client.error("chainHead_v1_storage", sub, head, items, None)["code"] == -32602, items
    assert client.error("chainHead_v1_storage", sub, head, [{"key": "0x", "type": "value"}], "zz")["code"] == -32602
    for function, params in ((5, "0x"), ("Core_version", "zz"), ("Core_version", None)):
        assert client.error("chainHead_v1_call", sub, head, function, params)["code"] == -32602
    for with_runtime in (None, "yes", 1, []):
        assert client.error("chainHead_v1_follow", with_runtime)["code"] == -32602
    assert client.error("chainHead_v1_follow")["code"] == -32602
    assert client.error("chainHead_v1_header", sub)["code"] == -32602
    for bad_sub in (17, None, [sub]):  # not a subscription id at all (an unknown one is merely stale)
        assert client.error("chainHead_v1_header", bad_sub, head)["code"] == -32602
        assert client.error("chainHead_v1_unpin", bad_sub, head)["code"] == -32602
    # every refusal above left both subscriptions working and the chain as it was
    assert client("chainHead_v1_header", sub, head) and client("chainHead_v1_header", other_sub, other_head)
    assert client.quiet(sub) == [] and client.quiet(other_sub) == []
    assert before == (rpc_call(node.http_url, "chain_getFinalizedHead")["result"],
                      rpc_call(node.http_url, "author_pendingExtrinsics")["result"])


def test_unknown_and_stopped_subscriptions_answer_as_stale(client, signer):
    for sub in ("no-such-subscription", ""):
        assert client("chainHead_v1_header", sub, "0x" + "33" * 32) is None
        assert client("chainHead_v1_body", sub, "0x" + "33" * 32) == {"result": "limitReached"}
        assert client("chainHead_v1_call", sub, "0x" + "33" * 32, "Core_version", "0x") == {"result": "limitReached"}
        assert client("chainHead_v1_storage", sub, "0x" + "33" * 32, [{"key": "0x", "type": "value"}], None) == {
            "result": "limitReached"}
        for method in ("chainHead_v1_continue", "chainHead_v1_stopOperation"):
            assert client(method, sub, "op") is None
        assert client("chainHead_v1_unfollow", sub) is None

    sub, head = follow(client)
    assert client("chainHead_v1_unfollow", sub) is None
    assert client("chainHead_v1_header", sub, head) is None
    assert client("chainHead_v1_body", sub, head) == {"result": "limitReached"}
    watcher, _ = follow(client)
    client("author_submitExtrinsic", signer.remark())
    client.until(watcher, "finalized")
    assert client.quiet(sub) == []  # nothing more on the unfollowed subscription


def test_at_most_two_follows_per_connection(client, node):
    assert FOLLOWS_PER_CONNECTION == 2  # the spec's guaranteed minimum
    first, _ = follow(client)
    second, _ = follow(client)
    assert client.error("chainHead_v1_follow", True)["code"] == -32800
    with Client(node.ws_url) as other:  # the limit is per connection
        follow(other)
    client("chainHead_v1_unfollow", first)
    third, _ = follow(client)
    assert client.error("chainHead_v1_follow", False)["code"] == -32800
    assert len({first, second, third}) == 3


def test_operations_beyond_the_limit_are_refused_until_one_stops(client, enough_blocks):
    assert OPERATIONS_PER_FOLLOW == 16  # the spec's guaranteed minimum
    sub, head = follow(client)
    waiting = {"key": BLOCK_HASHES, "type": "descendantsValues"}
    started, events = operation(client, sub, "chainHead_v1_storage", head, [waiting] * 10, None)
    assert started["discardedItems"] == 0 and events[-1]["event"] == "operationWaitingForContinue"
    big = started["operationId"]
    started, events = operation(client, sub, "chainHead_v1_storage", head, [waiting] * 9, None)
    assert started["discardedItems"] == 3  # 6 of the 16 were left
    small = started["operationId"]
    assert events[-1]["event"] == "operationWaitingForContinue"
    assert client("chainHead_v1_body", sub, head) == {"result": "limitReached"}
    assert client("chainHead_v1_call", sub, head, "Core_version", "0x") == {"result": "limitReached"}
    assert client("chainHead_v1_storage", sub, head, [{"key": "0x", "type": "value"}], None) == {
        "result": "limitReached"}
    assert client("chainHead_v1_header", sub, head)  # not an operation

    assert client("chainHead_v1_stopOperation", sub, small) is None
    assert client("chainHead_v1_stopOperation", sub, small) is None  # a second stop changes nothing
    assert client("chainHead_v1_continue", sub, small) is None  # a stopped operation does not resume
    assert client.quiet(sub) == []
    _, events = operation(client, sub, "chainHead_v1_body", head)
    assert events[-1]["event"] == "operationBodyDone"
    started, _ = operation(client, sub, "chainHead_v1_storage", head, [{"key": "0x", "type": "value"}] * 8, None)
    assert started["discardedItems"] == 2
    client("chainHead_v1_stopOperation", sub, big)
    started, _ = operation(client, sub, "chainHead_v1_storage", head, [{"key": "0x", "type": "value"}] * 16, None)
    assert started["discardedItems"] == 0
    # a second follow subscription of the same connection has operations of its own
    other, other_head = follow(client)
    _, events = operation(client, other, "chainHead_v1_body", other_head)
    assert events[-1]["event"] == "operationBodyDone"


def test_too_many_pinned_blocks_stop_the_subscription(client, signer):
    """The subscription that never unpins is stopped once it would hold more than PINNED_BLOCKS; one that unpins as
    it goes follows on."""
    hoarder, _ = follow(client)
    tidy, current = follow(client)
    for n in range(PINNED_BLOCKS):
        client("author_submitExtrinsic", signer.remark(n.to_bytes(4, "little")))
        final = client.until(tidy, "finalized")
        client("chainHead_v1_unpin", tidy, current)
        current = final[-1]["finalizedBlockHashes"][-1]
    events = client.quiet(hoarder, 0.5)
    # the initial blocks (the chain is longer than INITIAL_FINALIZED here) and the new ones up to PINNED_BLOCKS fill
    # it; the next new block stops it, and nothing follows
    expected = ["newBlock", "bestBlockChanged", "finalized"] * (PINNED_BLOCKS - INITIAL_FINALIZED) + ["stop"]
    assert [e["event"] for e in events] == expected
    assert client("chainHead_v1_header", hoarder, current) is None
    assert client("chainHead_v1_body", hoarder, current) == {"result": "limitReached"}
    assert client("chainHead_v1_unpin", hoarder, current) is None
    assert client("chainHead_v1_header", tidy, current)
    follow(client)  # the stopped subscription no longer counts towards the connection's limit


def test_following_needs_a_websocket_and_http_calls_find_no_subscription(node):
    assert rpc_call(node.http_url, "chainHead_v1_follow", [True])["error"]["code"] == -32601
    head = rpc_call(node.http_url, "chain_getFinalizedHead")["result"]
    assert rpc_call(node.http_url, "chainHead_v1_header", ["0000000000000001", head])["result"] is None
    assert rpc_call(node.http_url, "chainHead_v1_body", ["0000000000000001", head])["result"] == {
        "result": "limitReached"}
