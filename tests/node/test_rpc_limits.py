"""The node's RPC limits and exposure rules over real node processes started with Substrate's flags: each limit is
hit and answered as a Substrate node answers (jsonrpsee's codes and messages), and the other clients go on."""

from __future__ import annotations

import http.client
import json
import struct
import subprocess
import sys
import threading
import time
import urllib.request

import pytest
import websocket
from substrateinterface import Keypair, SubstrateInterface

from secretstore.cli.main import main
from secretstore.node.rpc.limits import DEFAULT_CORS, CorsPolicy
from secretstore.node.testing import NodeProcess, free_port, rpc_call, stop_process_group

MB = 1024 * 1024


def start(tmp_path, *flags: str, **options) -> NodeProcess:
    return NodeProcess(tmp_path / "chain", options.pop("port", None) or free_port(), rpc_args=flags,
                       **options).start()


def request(method: str, params: list | None = None, rid: int = 1) -> str:
    return json.dumps({"jsonrpc": "2.0", "id": rid, "method": method, "params": params or []})


def call(conn: websocket.WebSocket, method: str, params: list | None = None, rid: int = 1) -> dict:
    conn.send(request(method, params, rid))
    return json.loads(conn.recv())


def post(node: NodeProcess, body: bytes | str, headers: dict | None = None, method: str = "POST"):
    """(status, headers, body) of one HTTP request to the node's RPC."""
    conn = http.client.HTTPConnection(node.host, node.port, timeout=10)
    try:
        conn.request(method, "/", body=body, headers={"Content-Type": "application/json", **(headers or {})})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def error(reply: dict) -> dict:
    assert "result" not in reply, reply
    return reply["error"]


def metrics(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return response.read().decode()


# ---------------------------------------------------------------------------------------------------- connections
def test_connections_over_the_limit_are_refused_at_the_upgrade(tmp_path):
    prometheus = free_port()
    node = start(tmp_path, "--rpc-max-connections", "3", prometheus_port=prometheus)
    held = [websocket.create_connection(node.ws_url, timeout=10) for _ in range(3)]
    try:
        with pytest.raises(websocket.WebSocketBadStatusException) as refused:
            websocket.create_connection(node.ws_url, timeout=10)
        assert refused.value.status_code == 429
        assert refused.value.resp_body == b"Too many connections. Please try again later."
        # an HTTP request is a connection too while it is served (jsonrpsee's ConnectionGuard)
        status, _, body = post(node, request("system_name"))
        assert (status, body) == (429, b"Too many connections. Please try again later.")
        # the connections already open are served as before
        for i, conn in enumerate(held):
            assert call(conn, "system_name", rid=i)["result"] == "secretstore-node"
        held.pop().close()
        deadline = time.monotonic() + 10  # the node notices the close
        while True:
            try:
                held.append(websocket.create_connection(node.ws_url, timeout=10))
                break
            except websocket.WebSocketBadStatusException:
                assert time.monotonic() < deadline
                time.sleep(0.05)
        assert call(held[-1], "system_chain")["result"] == "SecretStore Development"
        assert 'secretstore_node_rpc_refused_total{reason="connections"} 2.0' in metrics(prometheus)
    finally:
        for conn in held:
            conn.close()
        node.stop()


# ----------------------------------------------------------------------------------------------- request size
def test_requests_over_the_size_limit_get_request_is_too_big(tmp_path):
    node = start(tmp_path, "--rpc-max-request-size", "1")
    too_big = {"code": -32007, "message": "Request is too big", "data": f"Exceeded max limit of {MB}"}
    other = websocket.create_connection(node.ws_url, timeout=10)
    conn = websocket.create_connection(node.ws_url, timeout=10)
    try:
        base = request("system_name")
        at_limit = base[:-1] + " " * (MB - len(base)) + "}"  # JSON whitespace: exactly the limit, in bytes
        conn.send(at_limit)
        assert json.loads(conn.recv())["result"] == "secretstore-node"
        conn.send(at_limit[:-1] + " }")  # one byte more
        assert json.loads(conn.recv()) == {"jsonrpc": "2.0", "id": None, "error": too_big}
        # the limit is in bytes: 2-byte characters count twice
        conn.send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "system_name", "params": ["é" * (MB // 2)]},
                             ensure_ascii=False))
        assert json.loads(conn.recv())["error"] == too_big
        assert call(conn, "system_name")["result"] == "secretstore-node"  # the connection goes on
        # over HTTP: status 413 with the same error (jsonrpsee's answer)
        status, headers, body = post(node, at_limit + " ")
        assert status == 413 and headers["Content-Type"].startswith("application/json")
        assert json.loads(body) == {"jsonrpc": "2.0", "id": None, "error": too_big}
        assert json.loads(post(node, at_limit)[2])["result"] == "secretstore-node"
        # a message of more than twice the limit is not read: the connection is closed with 1009 (message too big)
        conn.send("[" + " " * (2 * MB + 1) + "]")
        frame = conn.recv_frame()  # (read raw: the node does not wait for the close handshake)
        assert frame.opcode == websocket.ABNF.OPCODE_CLOSE and struct.unpack("!H", frame.data[:2])[0] == 1009
        assert call(other, "system_name")["result"] == "secretstore-node"  # the other client never noticed
    finally:
        conn.close()
        other.close()
        node.stop()


# ---------------------------------------------------------------------------------------------- response size
def test_replies_over_the_size_limit_become_response_is_too_big(tmp_path):
    node = start(tmp_path, "--rpc-max-response-size", "1")
    alice = Keypair.create_from_uri("//Alice")
    substrate = SubstrateInterface(url=node.ws_url, use_remote_preset=False)
    try:
        # a block whose body alone is over 1 MB in hex
        remark = substrate.compose_call("System", "remark", {"remark": "0x" + "ab" * (600 * 1024)})
        substrate.submit_extrinsic(substrate.create_signed_extrinsic(remark, alice))  # answered once written
    finally:
        substrate.close()
    deadline = time.monotonic() + 10
    while (big_block := rpc_call(node.http_url, "chain_getBlockHash", [1])["result"]) is None:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    too_big = {"code": -32008, "message": "Response is too big", "data": f"Exceeded max limit of {MB}"}
    conn = websocket.create_connection(node.ws_url, timeout=10)
    try:
        assert call(conn, "chain_getBlock", [big_block], rid=7) == {"jsonrpc": "2.0", "id": 7, "error": too_big}
        assert call(conn, "chain_getHeader", [big_block])["result"]["number"] == "0x1"  # the connection goes on
        assert rpc_call(node.http_url, "chain_getBlock", [big_block])["error"] == too_big
        # each of 30 metadata replies is small, together they are over the limit: one error for the batch
        metadata = rpc_call(node.http_url, "state_getMetadata")["result"]
        assert 30 * len(metadata) > MB > 2 * len(metadata)
        conn.send(json.dumps([json.loads(request("state_getMetadata", rid=i)) for i in range(30)]))
        assert json.loads(conn.recv()) == {"jsonrpc": "2.0", "id": None, "error": {
            "code": -32011, "message": "The batch response was too large", "data": f"Exceeded max limit of {MB}"}}
        conn.send(json.dumps([json.loads(request("state_getMetadata", rid=i)) for i in range(2)]))
        assert [r["result"] for r in json.loads(conn.recv())] == [metadata, metadata]
        # within a batch, each call's reply is held to the limit on its own
        conn.send(json.dumps([json.loads(request("chain_getBlock", [big_block], rid=1)),
                              json.loads(request("system_name", rid=2))]))
        assert json.loads(conn.recv()) == [{"jsonrpc": "2.0", "id": 1, "error": too_big},
                                           {"jsonrpc": "2.0", "id": 2, "result": "secretstore-node"}]
    finally:
        conn.close()
        node.stop()


# --------------------------------------------------------------------------------------------- subscriptions
def test_subscriptions_over_the_limit_get_too_many_subscriptions(tmp_path):
    node = start(tmp_path, "--rpc-max-subscriptions-per-connection", "4")
    alice = Keypair.create_from_uri("//Alice")
    substrate = SubstrateInterface(url=node.ws_url, use_remote_preset=False)
    remark = substrate.compose_call("System", "remark", {"remark": "0x01"})
    signed = substrate.create_signed_extrinsic(remark, alice).data.to_hex()
    substrate.close()
    too_many = {"code": -32006, "message": "Too many subscriptions on the connection",
                "data": "Exceeded max limit of 4"}
    conn = websocket.create_connection(node.ws_url, timeout=10)
    other = websocket.create_connection(node.ws_url, timeout=10)

    def reply(ws, rid):  # skip the notifications the subscriptions send meanwhile
        while True:
            message = json.loads(ws.recv())
            if message.get("id") == rid:
                return message

    try:
        # every group's subscriptions count: legacy and new JSON-RPC interface alike
        opened = []
        for rid, method, params in [(1, "chain_subscribeNewHeads", []), (2, "chain_subscribeNewHeads", []),
                                    (3, "state_subscribeRuntimeVersion", []), (4, "chainHead_v1_follow", [False])]:
            conn.send(request(method, params, rid))
            opened.append(reply(conn, rid)["result"])
        conn.send(request("chain_subscribeFinalizedHeads", [], 5))
        assert error(reply(conn, 5)) == too_many
        # a submission to be watched is refused before it is submitted: the transaction never reaches the pool
        for rid, method in [(6, "author_submitAndWatchExtrinsic"), (7, "transactionWatch_v1_submitAndWatch")]:
            conn.send(request(method, [signed], rid))
            assert error(reply(conn, rid)) == too_many
        assert rpc_call(node.http_url, "author_pendingExtrinsics")["result"] == []
        assert rpc_call(node.http_url, "system_accountNextIndex", [alice.ss58_address])["result"] == 0
        # another connection has a limit of its own
        for rid in range(1, 5):
            other.send(request("chain_subscribeNewHeads", [], rid))
            assert isinstance(reply(other, rid)["result"], str)
        other.send(request("state_subscribeStorage", [[]], 5))
        assert error(reply(other, 5)) == too_many
        # closing one subscription makes room for one
        conn.send(request("chain_unsubscribeNewHeads", [opened[0]], 8))
        assert reply(conn, 8)["result"] is True
        conn.send(request("author_submitAndWatchExtrinsic", [signed], 9))
        assert isinstance(reply(conn, 9)["result"], str)
        conn.send(request("chain_subscribeFinalizedHeads", [], 10))
        assert error(reply(conn, 10)) == too_many
    finally:
        conn.close()
        other.close()
        node.stop()


# ------------------------------------------------------------------------------------------------- rate limit
def test_calls_over_the_rate_limit_wait_then_get_rpc_rate_limit_exceeded(tmp_path):
    per_minute = 1200  # a burst of 1200, then one call every 50 ms
    node = start(tmp_path, "--rpc-rate-limit", str(per_minute))
    flood = websocket.create_connection(node.ws_url, timeout=30)
    calm = websocket.create_connection(node.ws_url, timeout=30)
    calm_replies: list[dict] = []

    def calm_client():  # a client within its quota, calling while the other one floods
        for rid in range(50):
            calm_replies.append(call(calm, "system_name", rid=rid))
            time.sleep(0.01)

    try:
        count = per_minute + 100
        started = time.monotonic()
        for rid in range(count):
            flood.send(request("system_name", rid=rid))
        thread = threading.Thread(target=calm_client)
        thread.start()
        replies = [json.loads(flood.recv()) for _ in range(count)]
        elapsed = time.monotonic() - started
        thread.join(30)
        assert sorted(r["id"] for r in replies) == list(range(count))
        served = [r for r in replies if "result" in r]
        refused = [r for r in replies if "result" not in r]
        assert refused and all(r["error"] == {"code": -32999, "message": "RPC rate limit exceeded"} for r in refused)
        # the burst, plus what the quota refilled (20 a second) while the others waited
        assert per_minute <= len(served) <= per_minute + 20 * elapsed + 5
        assert elapsed >= 0.45  # refused only after ten waits of at least one refill (50 ms) each
        assert [r["result"] for r in calm_replies] == ["secretstore-node"] * 50
    finally:
        flood.close()
        calm.close()
        node.stop()


def test_each_http_request_has_its_own_quota(tmp_path):
    """As in Substrate, an HTTP request gets a rate limiter of its own: only a batch can go over it."""
    node = start(tmp_path, "--rpc-rate-limit", "60")
    try:
        batch = json.dumps([json.loads(request("system_name", rid=i)) for i in range(60)])
        for _ in range(3):
            assert all("result" in r for r in json.loads(post(node, batch)[2]))
        started = time.monotonic()
        replies = json.loads(post(node, json.dumps([json.loads(request("system_name", rid=i)) for i in range(61)]))[2])
        assert all("result" in r for r in replies[:60])
        # the 61st waits for the quota (one call a second) and gets it: nothing else competes for it
        assert replies[60]["result"] == "secretstore-node" and time.monotonic() - started >= 0.9
    finally:
        node.stop()


# ----------------------------------------------------------------------------------------------- unsafe methods
UNSAFE = [("state_getPairs", ["0x"]), ("state_getKeys", ["0x"]), ("system_peers", []), ("state_subscribeStorage", [])]
UNSAFE_ERROR = {"code": -32601, "message": "RPC call is unsafe to be called externally"}


def assert_unsafe_refused(node: NodeProcess) -> None:
    conn = websocket.create_connection(node.ws_url, timeout=10)
    try:
        for method, params in UNSAFE:
            assert error(call(conn, method, params)) == UNSAFE_ERROR, method
        # the safe ones are served: a storage subscription to given keys, paged key listings
        assert isinstance(call(conn, "state_subscribeStorage", [["0x26aa394eea5630e07c48ae0c9558cef7"]])["result"], str)
        json.loads(conn.recv())  # its first notification
        assert len(call(conn, "state_getKeysPaged", ["0x", 5])["result"]) == 5
        assert rpc_call(node.http_url, "state_getPairs", ["0x"])["error"] == UNSAFE_ERROR
    finally:
        conn.close()


def test_auto_refuses_unsafe_methods_when_listening_beyond_loopback(tmp_path):
    node = start(tmp_path, "--rpc-external", port=free_port("0.0.0.0"))
    try:
        assert_unsafe_refused(node)
        assert "unsafe methods refused" in node.log_path.read_text()
    finally:
        node.stop()


def test_safe_refuses_unsafe_methods_on_loopback_too(tmp_path):
    node = start(tmp_path, "--rpc-methods", "safe")
    try:
        assert_unsafe_refused(node)
    finally:
        node.stop()


def test_unsafe_serves_everything_beyond_loopback_with_substrates_warning(tmp_path):
    node = start(tmp_path, "--rpc-external", "--rpc-methods", "Unsafe", port=free_port("0.0.0.0"))
    try:
        assert len(rpc_call(node.http_url, "state_getPairs", ["0x"])["result"]) > 5
        assert rpc_call(node.http_url, "system_peers")["result"] == []
        assert "It isn't safe to expose RPC publicly without a proxy server" in node.log_path.read_text()
    finally:
        node.stop()


def test_auto_serves_unsafe_methods_on_loopback(node):
    assert len(rpc_call(node.http_url, "state_getKeys", ["0x"])["result"]) > 5
    assert rpc_call(node.http_url, "system_peers")["result"] == []


# --------------------------------------------------------------------------------------------------------- CORS
def test_cors_refuses_origins_not_allowed(tmp_path):
    node = start(tmp_path, "--rpc-cors", "https://app.example,http://localhost:*")
    try:
        call_body = request("system_name")
        for origin in ("https://app.example", "http://localhost:3000", f"http://127.0.0.1:{node.port}"):
            status, headers, body = post(node, call_body, {"Origin": origin})
            assert status == 200 and json.loads(body)["result"] == "secretstore-node"
            assert headers["Access-Control-Allow-Origin"] == origin
        for origin in ("https://evil.example", "http://localhost.evil:3000", "null"):
            status, _, body = post(node, call_body, {"Origin": origin})
            assert status == 403 and body.startswith(b"Origin of the request is not whitelisted.")
        assert post(node, call_body)[0] == 200  # not from a browser: no Origin
        status, headers, _ = post(node, "", {"Origin": "https://app.example", "Access-Control-Request-Method": "POST",
                                             "Access-Control-Request-Headers": "content-type"}, method="OPTIONS")
        assert status == 200 and headers["Access-Control-Allow-Origin"] == "https://app.example"
        assert "POST" in headers["Access-Control-Allow-Methods"]
        assert post(node, "", {"Origin": "https://evil.example"}, method="OPTIONS")[0] == 403
        with pytest.raises(websocket.WebSocketBadStatusException) as refused:
            websocket.create_connection(node.ws_url, timeout=10, origin="https://evil.example")
        assert refused.value.status_code == 403
        allowed = websocket.create_connection(node.ws_url, timeout=10, origin="https://app.example")
        assert call(allowed, "system_name")["result"] == "secretstore-node"
        allowed.close()
    finally:
        node.stop()


def test_cors_defaults_are_substrates():
    assert CorsPolicy.parse(None, dev=True).origins is None  # --dev: every origin
    default = CorsPolicy.parse(None, dev=False)
    assert default.origins == DEFAULT_CORS
    assert default.allows("http://localhost:8000", "node:9944") and default.allows("https://127.0.0.1", "node:9944")
    assert default.allows("https://polkadot.js.org", "node:9944")
    assert not default.allows("https://polkadot.js.org.evil", "node:9944")
    assert not default.allows("http://example.org", "node:9944")
    assert CorsPolicy.parse("https://a.example,all", dev=False).origins is None
    assert CorsPolicy.parse("*", dev=False).origins is None


def test_dev_node_allows_every_origin(node):
    status, headers, _ = post(node, request("system_name"), {"Origin": "https://anywhere.example"})
    assert status == 200 and headers["Access-Control-Allow-Origin"] == "https://anywhere.example"


# --------------------------------------------------------------------------------------------- command line
@pytest.mark.parametrize("flags, message", [
    (["--rpc-external", "--rpc-host", "127.0.0.1"], "--rpc-external listens on 0.0.0.0"),
    (["--rpc-max-connections", "0"], "--rpc-max-connections must be between 1 and"),
    (["--rpc-max-request-size", "0"], "--rpc-max-request-size must be between 1 and 4095"),
    (["--rpc-max-response-size", "5000"], "--rpc-max-response-size must be between 1 and 4095"),
    (["--rpc-max-subscriptions-per-connection", "-1"], "--rpc-max-subscriptions-per-connection must be between 0"),
    (["--rpc-rate-limit", "0"], "--rpc-rate-limit must be between 1 and"),
    (["--rpc-cors", "ftp://x.example"], "--rpc-cors: 'ftp://x.example' is not an origin"),
    (["--rpc-cors", ","], "--rpc-cors: give origins"),
    (["--rpc-methods", "some"], "invalid choice: 'some'"),
])
def test_bad_limit_flags_are_refused_before_anything_starts(tmp_path, capsys, flags, message):
    try:
        code = main(["node", "--base-path", str(tmp_path / "chain"), "--rpc-port", "1", *flags])
    except SystemExit as exc:  # argparse's usage errors
        code = exc.code
    err = capsys.readouterr().err
    assert code != 0 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "chain").exists()


def test_the_public_node_of_deployment_md(tmp_path):
    """docs/deployment.md's command for a node open to the public (without --dev, as it says), from the outside."""
    port, prometheus = free_port("0.0.0.0"), free_port()
    log = open(tmp_path / "node.log", "wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "secretstore.cli.main", "node", "--base-path", str(tmp_path / "chain"),
         "--rpc-external", "--rpc-port", str(port), "--rpc-methods", "safe", "--rpc-cors", "https://app.example.org",
         "--rpc-max-request-size", "1", "--rpc-max-connections", "200", "--rpc-max-subscriptions-per-connection",
         "64", "--rpc-rate-limit", "600", "--prometheus-port", str(prometheus)],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    node = NodeProcess(tmp_path / "chain", port)  # only for its URLs: the process is started above
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                assert rpc_call(node.http_url, "system_name")["result"] == "secretstore-node"
                break
            except OSError:
                assert process.poll() is None and time.monotonic() < deadline, (tmp_path / "node.log").read_text()
                time.sleep(0.1)
        assert rpc_call(node.http_url, "state_getPairs", ["0x"])["error"] == UNSAFE_ERROR
        assert post(node, request("system_name"), {"Origin": "https://app.example.org"})[0] == 200
        assert post(node, request("system_name"), {"Origin": "https://elsewhere.example"})[0] == 403
        assert post(node, request("system_name"), {"Origin": "https://polkadot.js.org"})[0] == 403  # not the default
        scraped = metrics(prometheus)
        assert 'reason="unsafe"} 1.0' in scraped and 'reason="origin"} 2.0' in scraped
    finally:
        stop_process_group(process)
