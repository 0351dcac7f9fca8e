"""Raw JSON-RPC: bad input gets errors, never a crash; subscriptions; many clients at once."""

import json
import threading

import websocket

from secretstore.node.testing import rpc_call


def ws_exchange(url, frames, replies=None):
    conn = websocket.create_connection(url, timeout=10)
    try:
        out = []
        for frame in frames:
            conn.send(frame)
            out.append(json.loads(conn.recv()))
        return out
    finally:
        conn.close()


def test_malformed_requests_get_json_rpc_errors(node):
    replies = ws_exchange(node.ws_url + "/ws", [
        "{not json",
        json.dumps({"jsonrpc": "2.0", "id": 1, "method": "no_such_method", "params": []}),
        json.dumps({"jsonrpc": "2.0", "id": 2, "method": "chain_getBlockHash", "params": ["zzz"]}),
        json.dumps({"jsonrpc": "2.0", "id": 3, "method": "state_getStorage", "params": [42]}),
        json.dumps({"jsonrpc": "2.0", "id": 4, "method": "author_submitExtrinsic", "params": ["0x1234"]}),
        json.dumps({"jsonrpc": "2.0", "id": 5, "method": "state_call", "params": ["Nope_nope", "0x"]}),
        json.dumps({"jsonrpc": "2.0", "id": 6, "method": "system_name", "params": [1, 2, 3]}),
        json.dumps([{"jsonrpc": "2.0", "id": 7, "method": "system_name"}, {"id": 8}]),
    ])
    assert replies[0]["error"]["code"] == -32700
    assert replies[1]["error"]["code"] == -32601
    assert replies[2]["error"]["code"] == -32602
    assert replies[3]["error"]["code"] == -32602
    assert replies[4]["error"]["code"] == 1010
    assert replies[5]["error"]["code"] == -32000
    assert replies[6]["error"]["code"] == -32602
    assert replies[7][0]["result"] == "secretstore-node" and replies[7][1]["error"]["code"] == -32600
    # and the node still serves
    assert rpc_call(node.http_url, "system_name")["result"] == "secretstore-node"


def test_oversized_frame_is_refused_and_node_survives(node):
    big = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "author_submitExtrinsic",
                      "params": ["0x" + "00" * (9 * 1024 * 1024)]})
    assert len(big) > 15 * 1024 * 1024  # Substrate's default --rpc-max-request-size
    reply, after = ws_exchange(node.ws_url, [big, json.dumps({"jsonrpc": "2.0", "id": 2, "method": "system_name"})])
    assert reply == {"jsonrpc": "2.0", "id": None, "error": {
        "code": -32007, "message": "Request is too big", "data": f"Exceeded max limit of {15 * 1024 * 1024}"}}
    assert after["result"] == "secretstore-node"  # the same connection goes on
    assert rpc_call(node.http_url, "system_health")["result"]["peers"] == 0


def test_new_head_subscription_reports_blocks(node, substrate, alice):
    conn = websocket.create_connection(node.ws_url, timeout=10)
    try:
        conn.send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "chain_subscribeFinalizedHeads", "params": []}))
        reply = json.loads(conn.recv())
        sub = reply["result"]
        first = json.loads(conn.recv())
        assert first["method"] == "chain_finalizedHead" and first["params"]["subscription"] == sub
        call = substrate.compose_call("System", "remark", {"remark": "0x07"})
        substrate.submit_extrinsic(substrate.create_signed_extrinsic(call, alice), wait_for_inclusion=True)
        update = json.loads(conn.recv())
        assert int(update["params"]["result"]["number"], 16) == int(first["params"]["result"]["number"], 16) + 1
    finally:
        conn.close()


def test_many_concurrent_clients(node):
    errors = []

    def client():
        try:
            for _ in range(20):
                assert rpc_call(node.http_url, "chain_getHeader")["result"]["number"].startswith("0x")
            replies = ws_exchange(node.ws_url, [json.dumps({"jsonrpc": "2.0", "id": i, "method": "system_chain"})
                                                for i in range(20)])
            assert all(r["result"] == "SecretStore Development" for r in replies)
        except Exception as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=client) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors


def test_runtime_apis_through_state_call(node):
    from secretstore.codec.scale import Option, Bytes, Sequence, U32

    versions = rpc_call(node.http_url, "state_call", ["Metadata_metadata_versions", "0x"])["result"]
    assert Sequence(U32).decode(bytes.fromhex(versions[2:])) == [14, 15]
    v15 = rpc_call(node.http_url, "state_call", ["Metadata_metadata_at_version", "0x0f000000"])["result"]
    assert Option(Bytes).decode(bytes.fromhex(v15[2:]))[:5] == b"meta\x0f"
    nonce = rpc_call(node.http_url, "state_call", ["AccountNonceApi_account_nonce", "0x" + "00" * 32])["result"]
    assert nonce == "0x00000000"


def test_storage_subscription_reports_changes(node, substrate, alice):
    key = substrate.create_storage_key("System", "Account", [alice.ss58_address]).to_hex()
    conn = websocket.create_connection(node.ws_url, timeout=10)
    try:
        conn.send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "state_subscribeStorage", "params": [[key]]}))
        sub = json.loads(conn.recv())["result"]
        initial = json.loads(conn.recv())["params"]
        assert initial["subscription"] == sub and initial["result"]["changes"][0][0] == key
        before = initial["result"]["changes"][0][1]
        call = substrate.compose_call("System", "remark", {"remark": "0x08"})
        substrate.submit_extrinsic(substrate.create_signed_extrinsic(call, alice), wait_for_inclusion=True)
        update = json.loads(conn.recv())["params"]["result"]
        assert update["changes"][0][0] == key and update["changes"][0][1] != before  # the nonce moved
        conn.send(json.dumps({"jsonrpc": "2.0", "id": 2, "method": "state_unsubscribeStorage", "params": [sub]}))
        assert json.loads(conn.recv())["result"] is True
    finally:
        conn.close()


def test_storage_subscribers_each_get_their_own_keys_and_id(node, substrate, alice, bob):
    """Changes are encoded once per set of watched keys: subscribers of the same keys share it, others do not."""
    alice_key = substrate.create_storage_key("System", "Account", [alice.ss58_address]).to_hex()
    bob_key = substrate.create_storage_key("System", "Account", [bob.ss58_address]).to_hex()
    watched = {"only_alice": [alice_key], "also_alice": [alice_key], "both": [alice_key, bob_key], "everything": None}
    conns, subs = {}, {}
    try:
        for name, keys in watched.items():
            conns[name] = websocket.create_connection(node.ws_url, timeout=10)
            params = [] if keys is None else [keys]
            conns[name].send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "state_subscribeStorage", "params": params}))
            subs[name] = json.loads(conns[name].recv())["result"]
            if keys is not None:
                json.loads(conns[name].recv())  # the current values
        nonce = substrate.get_account_nonce(alice.ss58_address)
        transfer = substrate.compose_call("Balances", "transfer_keep_alive", {"dest": bob.ss58_address, "value": 10**12})
        substrate.submit_extrinsic(substrate.create_signed_extrinsic(transfer, alice, nonce=nonce), wait_for_inclusion=True)
        updates = {name: json.loads(conn.recv())["params"] for name, conn in conns.items()}
    finally:
        for conn in conns.values():
            conn.close()
    assert {name: u["subscription"] for name, u in updates.items()} == subs
    assert [k for k, _ in updates["only_alice"]["result"]["changes"]] == [alice_key]
    assert updates["also_alice"]["result"] == updates["only_alice"]["result"]
    assert sorted(k for k, _ in updates["both"]["result"]["changes"]) == sorted([alice_key, bob_key])
    both = dict(updates["both"]["result"]["changes"])
    assert both[alice_key] == dict(updates["only_alice"]["result"]["changes"])[alice_key]
    everything = [k for k, _ in updates["everything"]["result"]["changes"]]
    assert everything == sorted(everything) and len(everything) > 2  # every changed key, in order
    assert {k: v for k, v in updates["everything"]["result"]["changes"] if k in both} == both
