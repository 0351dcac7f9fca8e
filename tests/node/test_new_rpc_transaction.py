"""transactionWatch_v1 and transaction_v1 (the new Substrate JSON-RPC interface) against a real node process: a
watched transaction's events, the invalid ones, unwatching, and broadcasting with its per-connection limit."""

from __future__ import annotations

import pytest
from substrateinterface import Keypair

from secretstore.node.rpc.transaction import BROADCASTS_PER_CONNECTION
from secretstore.node.testing import rpc_call

from .new_rpc_client import Client, Signer

ALICE = Keypair.create_from_uri("//Alice")


def pool(node) -> list[str]:
    return rpc_call(node.http_url, "author_pendingExtrinsics")["result"]


def test_a_watched_transaction_is_validated_included_and_finalized(client, signer):
    transaction = signer.remark(b"watched")
    sub = client("transactionWatch_v1_submitAndWatch", transaction)
    validated, included, finalized = client.events(sub, 3)
    assert client.methods[sub] == "transactionWatch_v1_watchEvent"
    assert validated == {"event": "validated"}
    assert included["event"] == "bestChainBlockIncluded"
    assert finalized == {"event": "finalized", "block": included["block"]}
    block = finalized["block"]
    assert set(block) == {"hash", "index"}
    body = client("chain_getBlock", block["hash"])["block"]["extrinsics"]
    assert body[block["index"]] == transaction
    assert client.quiet(sub) == []
    # over: unwatching it now is an error (no such subscription)
    assert client.error("transactionWatch_v1_unwatch", sub)["code"] == -32602


@pytest.mark.parametrize("case", ["bad_signature", "stale_nonce", "undecodable", "empty"])
def test_invalid_transactions_get_an_invalid_event_and_change_nothing(client, signer, node, case):
    before = (client("chain_getFinalizedHead"), pool(node), client("system_accountNextIndex", ALICE.ss58_address))
    transaction = {"bad_signature": lambda: signer.remark(b"x", tamper=True),
                   "stale_nonce": lambda: signer.remark(b"x", nonce=0),
                   "undecodable": lambda: "0x1d0102",
                   "empty": lambda: "0x"}[case]()
    sub = client("transactionWatch_v1_submitAndWatch", transaction)
    event = client.event(sub)
    assert event["event"] == "invalid" and set(event) == {"event", "error"} and event["error"], event
    if case == "bad_signature":
        assert "bad signature" in event["error"].lower()
    assert client.quiet(sub) == []
    assert before == (client("chain_getFinalizedHead"), pool(node),
                      client("system_accountNextIndex", ALICE.ss58_address))


def test_malformed_parameters_are_json_rpc_errors(client, node):
    before = pool(node)
    for bad in ("zz", "0xzz", "0x123", 5, None, ["0x00"], {"transaction": "0x"}):
        assert client.error("transactionWatch_v1_submitAndWatch", bad)["code"] == -32602, bad
        assert client.error("transaction_v1_broadcast", bad)["code"] == -32602, bad
    assert client.error("transactionWatch_v1_submitAndWatch")["code"] == -32602
    for bad in (5, None, "no-such-subscription"):
        assert client.error("transactionWatch_v1_unwatch", bad)["code"] == -32602
        assert client.error("transaction_v1_stop", bad)["code"] == -32602
    assert pool(node) == before


def test_unwatching_stops_the_events_but_not_the_transaction(client, signer, node):
    later = signer.remark(b"second", nonce=signer.nonce + 1)  # waits in the pool for its predecessor
    sub = client("transactionWatch_v1_submitAndWatch", later)
    assert client.event(sub) == {"event": "validated"}
    assert later in pool(node)
    assert client("transactionWatch_v1_unwatch", sub) is None
    assert client.error("transactionWatch_v1_unwatch", sub)["code"] == -32602
    first = client("transactionWatch_v1_submitAndWatch", signer.remark(b"first"))
    signer.nonce += 1
    block = client.until(first, "finalized")[-1]["block"]["hash"]
    assert later in client("chain_getBlock", block)["block"]["extrinsics"]
    assert client.quiet(sub) == []


def test_a_transaction_already_in_the_pool_is_watched_where_it_is(client, signer, node):
    later = signer.remark(b"twice", nonce=signer.nonce + 1)
    first_watch = client("transactionWatch_v1_submitAndWatch", later)
    second_watch = client("transactionWatch_v1_submitAndWatch", later)
    assert client.event(first_watch) == client.event(second_watch) == {"event": "validated"}
    client("author_submitExtrinsic", signer.remark(b"predecessor"))
    signer.nonce += 1
    for sub in (first_watch, second_watch):
        assert [e["event"] for e in client.until(sub, "finalized")] == ["bestChainBlockIncluded", "finalized"]


def test_watching_needs_a_websocket(node, signer):
    reply = rpc_call(node.http_url, "transactionWatch_v1_submitAndWatch", [signer.remark(b"http")])
    assert reply["error"]["code"] == -32601


def test_broadcast_puts_the_transaction_in_a_block_and_stop_ends_the_operation(client, signer):
    follow = client("chainHead_v1_follow", False)
    transaction = signer.remark(b"broadcast")
    operation = client("transaction_v1_broadcast", transaction)
    assert isinstance(operation, str) and operation
    block = client.until(follow, "newBlock")[-1]["blockHash"]
    assert client("chain_getBlock", block)["block"]["extrinsics"] == [transaction]
    assert client("transaction_v1_stop", operation) is None
    assert client.error("transaction_v1_stop", operation)["code"] == -32602


def test_broadcasts_are_limited_per_connection_invalid_ones_included(client, signer, node):
    before = pool(node)
    operations = [client("transaction_v1_broadcast", signer.remark(bytes([i]), nonce=0, tamper=True))
                  for i in range(BROADCASTS_PER_CONNECTION)]
    assert len(set(operations)) == BROADCASTS_PER_CONNECTION and None not in operations
    assert client("transaction_v1_broadcast", signer.remark(b"one more", nonce=0)) is None
    with Client(node.ws_url) as other:  # another connection has its own
        assert isinstance(other("transaction_v1_broadcast", "0x00"), str)
    assert other_stop_is_refused(client, node, operations[0])
    assert client("transaction_v1_stop", operations[0]) is None
    assert isinstance(client("transaction_v1_broadcast", "0x00"), str)
    assert pool(node) == before  # none of them was valid


def other_stop_is_refused(client: Client, node, operation: str) -> bool:
    """A broadcast belongs to its connection: another cannot stop it."""
    with Client(node.ws_url) as other:
        return other.error("transaction_v1_stop", operation)["code"] == -32602


def test_broadcast_over_http(node, client):
    signer = Signer(client, Keypair.create_from_uri("//Bob"))
    transaction = signer.remark(b"over http")
    follow = client("chainHead_v1_follow", False)
    reply = rpc_call(node.http_url, "transaction_v1_broadcast", [transaction])
    assert isinstance(reply["result"], str)
    block = client.until(follow, "newBlock")[-1]["blockHash"]
    assert transaction in client("chain_getBlock", block)["block"]["extrinsics"]
