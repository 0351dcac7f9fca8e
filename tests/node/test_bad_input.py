"""Bad input at the node's boundaries (issue 13's sweep): JSON-RPC envelopes, every method with wrong parameters,
SCALE extrinsics that are truncated, garbage, badly signed, stale, too far ahead or calling nothing, runtime API calls
with malformed arguments, calls with points off the curve, oversized HTTP bodies. Each gets a clear error and leaves
the chain as it was (head, state root, SecretStore storage, nonces, pool), and the node keeps serving.

tests/node/test_rpc_robustness.py and test_runtime_api_compat.py cover a first set of malformed requests; this module
adds the rest and checks the state after each."""

from __future__ import annotations

import hashlib
import json
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import websocket
from substrateinterface import Keypair

from secretstore.codec.hashing import twox128
from secretstore.codec.primitives import H160, H256
from secretstore.codec.scale import U32, Reader, decode_compact, encode_compact
from secretstore.node.extrinsic import Era, decode, encode_signed
from secretstore.node.testing import NodeProcess, free_port, rpc_call
from secretstore.runtime.secretstore import api as secretstore_api

PREFIX = "0x" + twox128(b"SecretStore").hex()


def chain_state(node, who: Keypair) -> dict:
    """What bad input must not change: the head and its state root, SecretStore's whole storage, the account's
    nonce and the pool."""
    header = rpc_call(node.http_url, "chain_getHeader")["result"]
    return {
        "head": rpc_call(node.http_url, "chain_getBlockHash")["result"],
        "state_root": header["stateRoot"],
        "secretstore": rpc_call(node.http_url, "state_getPairs", [PREFIX])["result"],
        "nonce": rpc_call(node.http_url, "system_accountNextIndex", [who.ss58_address])["result"],
        "pool": rpc_call(node.http_url, "author_pendingExtrinsics")["result"],
    }


class Socket:
    """One WebSocket connection; replies are matched by id, notifications on the way are skipped."""

    def __init__(self, url: str) -> None:
        self.ws = websocket.create_connection(url, timeout=20)

    def raw(self, frame: str) -> object:
        self.ws.send(frame)
        return json.loads(self.ws.recv())

    def call(self, method: str, params: object, rid: int = 1) -> dict:
        self.ws.send(json.dumps({"jsonrpc": "2.0", "id": rid, "method": method, "params": params}))
        while True:
            reply = json.loads(self.ws.recv())
            if reply.get("id") == rid and "method" not in reply:
                return reply

    def close(self) -> None:
        self.ws.close()


def assert_clean_log(node) -> None:
    log = node.log_path.read_text(errors="replace")
    assert "Traceback" not in log and "internal error" not in log, log[-3000:]


def assert_serving(node) -> None:
    assert rpc_call(node.http_url, "system_name")["result"] == "secretstore-node"


@pytest.fixture(scope="module")
def signer(node, substrate):
    """//Eve with one included transaction, so that nonce 0 is stale for her from here on."""
    eve = Keypair.create_from_uri("//Eve")
    call = substrate.compose_call("System", "remark", {"remark": "0x01"})
    receipt = substrate.submit_extrinsic(substrate.create_signed_extrinsic(call, eve), wait_for_inclusion=True)
    assert receipt.is_success
    return eve


def sign_raw(node, keypair: Keypair, call: bytes, nonce: int) -> bytes:
    """A well-formed, correctly signed immortal extrinsic carrying any call bytes (client libraries refuse to
    compose calls the metadata does not describe)."""
    genesis = bytes.fromhex(rpc_call(node.http_url, "chain_getBlockHash", [0])["result"][2:])
    version = rpc_call(node.http_url, "state_getRuntimeVersion")["result"]
    template = decode(encode_signed(keypair.public_key, 1, bytes(64), Era(), nonce, 0, call))
    payload = template.signing_payload(version["specVersion"], version["transactionVersion"], genesis, genesis)
    return encode_signed(keypair.public_key, 1, keypair.sign(payload), Era(), nonce, 0, call)


def remark_call(substrate) -> bytes:
    return bytes(substrate.compose_call("System", "remark", {"remark": "0x" + secrets.token_hex(4)}).data.data)


ENVELOPES = [
    ('{"jsonrpc": "1.0", "id": 1, "method": "system_name", "params": []}', -32600, '"jsonrpc" must be "2.0"'),
    ('{"id": 1, "method": "system_name", "params": []}', -32600, '"jsonrpc" must be "2.0"'),
    ('{"jsonrpc": 2.0, "id": 1, "method": "system_name"}', -32600, '"jsonrpc" must be "2.0"'),
    ('{"jsonrpc": "2.0", "id": {"x": 1}, "method": "system_name"}', -32600, '"id" a string, integer or null'),
    ('{"jsonrpc": "2.0", "id": [1], "method": "system_name"}', -32600, '"id" a string, integer or null'),
    ('{"jsonrpc": "2.0", "id": true, "method": "system_name"}', -32600, '"id" a string, integer or null'),
    ('{"jsonrpc": "2.0", "id": 1, "method": "state_frobnicate", "params": []}', -32601, "Method not found"),
    ('{"jsonrpc": "2.0", "id": 1, "method": "", "params": []}', -32601, "Method not found"),
    ('{"jsonrpc": "2.0", "id": 1, "method": "__class__", "params": []}', -32601, "Method not found"),
    ('{"jsonrpc": "2.0", "id": 1, "method": 7}', -32600, "Invalid request"),
    ('{"jsonrpc": "2.0", "id": 1}', -32600, "Invalid request"),
    ('{"jsonrpc": "2.0", "id": 1, "method": "system_name", "params": {"a": 1}}', -32602, "positional params"),
    ('{"jsonrpc": "2.0", "id": 1, "method": "system_name", "params": "x"}', -32602, "positional params"),
    ("null", -32600, "Invalid request"),
    ("42", -32600, "Invalid request"),
    ('"system_name"', -32600, "Invalid request"),
    ("[]", -32600, "empty batch"),
    ("[" * 50_000 + "]" * 50_000, -32700, "Parse error"),  # nested deeper than any parser recursion limit
    ('{"jsonrpc": "2.0", "id": 1, "method": "system_name"', -32700, "Parse error"),
    ("\ufeff{}", -32700, "Parse error"),
]


@pytest.mark.parametrize("frame, code, fragment", ENVELOPES, ids=[f[:40] for f, _, _ in ENVELOPES])
def test_malformed_envelopes_are_json_rpc_errors(node, signer, frame, code, fragment):
    before = chain_state(node, signer)
    sock = Socket(node.ws_url)
    try:
        reply = sock.raw(frame)
        assert reply["jsonrpc"] == "2.0" and "result" not in reply, reply
        assert reply["error"]["code"] == code and fragment in reply["error"]["message"], reply
        # the same connection still serves
        assert sock.call("system_chain", [], rid=2)["result"] == "SecretStore Development"
    finally:
        sock.close()
    assert chain_state(node, signer) == before
    assert_clean_log(node)


def test_wrong_parameters_for_every_method_are_errors_never_internal(node, signer):
    """Every RPC method the node lists, called with parameters of wrong types and counts: each answer is a result
    or a JSON-RPC error other than an internal error, nothing is logged as a crash and nothing changes."""
    before = chain_state(node, signer)
    wrong = [[None], [1], [-1], [2**70], [1.5], [True], ["zz"], ["0x"], ["0xzz"], ["0x123"], [[]], [{}], [[None]],
             [["zz"]], ["0x" + "00" * 32, "0x" + "00" * 31], ["0x" + "00" * 32] * 7, ["-5"], ["0x-5"], [""],
             ["0x00", 2**40], ["0x00", 0, "0xzz"], ["Core_version", 5], ["5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNeh"]]
    methods = rpc_call(node.http_url, "rpc_methods")["result"]["methods"]
    assert len(methods) > 30
    sock = Socket(node.ws_url)
    errors = 0
    try:
        for i, method in enumerate(methods):
            for j, params in enumerate(wrong):
                reply = sock.call(method, params, rid=i * 100 + j)
                assert ("result" in reply) != ("error" in reply), (method, params, reply)
                if "error" in reply:
                    errors += 1
                    assert reply["error"]["code"] != -32603, (method, params, reply)
                    assert isinstance(reply["error"]["code"], int) and reply["error"]["message"], reply
    finally:
        sock.close()
    assert errors > len(methods) * len(wrong) // 2  # most of these are refused, not silently served
    assert chain_state(node, signer) == before
    assert_clean_log(node)
    assert_serving(node)


def frame(body: bytes) -> bytes:
    return encode_compact(len(body)) + body


def unframe(extrinsic: bytes) -> bytes:
    r = Reader(extrinsic)
    length = decode_compact(r)
    assert length == r.remaining
    return extrinsic[r.pos:]


@pytest.mark.parametrize("case", ["truncated", "extended", "garbage", "empty", "unsigned", "bad_signature",
                                  "other_signer", "stale_nonce", "nonce_too_far_ahead", "nonce_over_u32",
                                  "unknown_pallet", "unknown_call", "truncated_call", "no_call", "bad_era",
                                  "bad_signature_kind", "bad_address_kind"])
def test_bad_extrinsics_are_refused_and_change_nothing(node, substrate, signer, case):
    nonce = rpc_call(node.http_url, "system_accountNextIndex", [signer.ss58_address])["result"]
    assert nonce >= 1
    call = remark_call(substrate)
    good = sign_raw(node, signer, call, nonce)
    # body: 0 version, 1 address kind, 2..33 signer, 34 signature kind, 35..98 signature, 99 era (immortal), ...
    body = unframe(good)
    assert body[:2] == b"\x84\x00" and body[2:34] == signer.public_key and body[99] == 0
    extrinsic, fragment = {
        "truncated": (good[:-3], "length prefix"),
        "extended": (good + b"\x00", "length prefix"),
        "garbage": (b"\x1d" + secrets.token_bytes(90), ""),
        "empty": (b"", "cannot decode"),
        "unsigned": (frame(b"\x04" + body[1:]), "unsigned"),
        "bad_signature": (frame(body[:40] + bytes([body[40] ^ 1]) + body[41:]), "bad signature"),
        "other_signer": (frame(body[:2] + Keypair.create_from_uri("//Ferdie").public_key + body[34:]),
                         "bad signature"),
        "stale_nonce": (sign_raw(node, signer, call, nonce - 1), "outdated"),
        "nonce_too_far_ahead": (sign_raw(node, signer, call, nonce + 100_000), "too far ahead"),
        "nonce_over_u32": (encode_signed(signer.public_key, 1, bytes(64), Era(), 2**32, 0, call), "out of range"),
        "unknown_pallet": (sign_raw(node, signer, b"\x2a\x00", nonce), "cannot decode call"),
        "unknown_call": (sign_raw(node, signer, b"\x03\xfe" + bytes(32), nonce), "cannot decode call"),
        "truncated_call": (sign_raw(node, signer, call[:-2], nonce), "cannot decode call"),
        "no_call": (encode_signed(signer.public_key, 1, bytes(64), Era(), nonce, 0, b""), "no call"),
        "bad_era": (frame(body[:99] + b"\x10\x00" + body[100:]), "invalid mortal era"),
        "bad_signature_kind": (frame(body[:34] + b"\x07" + body[35:]), "signature kind"),
        "bad_address_kind": (frame(body[:1] + b"\x01" + body[2:]), "MultiAddress"),
    }[case]
    before = chain_state(node, signer)
    for method in ("author_submitExtrinsic", "author_submitAndWatchExtrinsic"):
        sock = Socket(node.ws_url)
        try:
            reply = sock.call(method, ["0x" + extrinsic.hex()])
        finally:
            sock.close()
        assert "result" not in reply, (case, reply)
        error = reply["error"]
        assert error["code"] == 1010, (case, reply)
        text = error["message"] + " " + str(error.get("data", ""))
        assert fragment in text, (case, text)
    if case not in ("truncated", "extended"):  # in the API's arguments the extrinsic's own length delimits it
        # the runtime's validity check agrees (TaggedTransactionQueue, as another node's pool would ask it)
        args = "0x02" + extrinsic.hex() + "00" * 32
        validity = rpc_call(node.http_url, "state_call", ["TaggedTransactionQueue_validate_transaction", args])
        assert validity.get("result", "0x01").startswith("0x01"), (case, validity)  # Err(...) or an RPC error
    assert chain_state(node, signer) == before
    assert_clean_log(node)
    # and the well-formed transaction still goes in
    assert "result" in rpc_call(node.http_url, "author_submitExtrinsic", ["0x" + good.hex()])
    deadline = time.monotonic() + 30
    while rpc_call(node.http_url, "system_accountNextIndex", [signer.ss58_address])["result"] == nonce:
        assert time.monotonic() < deadline, "the good transaction was not included"
        time.sleep(0.05)


def runtime_api_methods() -> list[tuple[str, int]]:
    """(name, length of well-formed arguments) of every SecretStore runtime API method."""
    sizes = {id(H160): 20, id(H256): 32, id(U32): 4}
    return [(f"{trait}_{name}", sum(sizes[id(t)] for t in spec.args.items))
            for trait, methods in secretstore_api.TRAITS.items() for name, spec in methods.items()]


def test_runtime_api_arguments_of_every_length_but_the_right_one_are_errors(node, signer):
    before = chain_state(node, signer)
    methods = runtime_api_methods()
    assert len(methods) == 11
    for name, length in methods:
        right = rpc_call(node.http_url, "state_call", [name, "0x" + "00" * length])
        assert "result" in right, (name, right)
        for wrong in {0, length - 1, length + 1, length + 32} - {length}:
            if wrong < 0:
                continue
            answer = rpc_call(node.http_url, "state_call", [name, "0x" + "00" * wrong])
            assert "error" in answer and "result" not in answer, (name, wrong, answer)
            assert answer["error"]["code"] in (-32000, -32602), (name, wrong, answer)
        # not hex, no 0x, wrong types (for a method without arguments "" and null are its empty argument list)
        for data in ["0xzz", 5, ["0x00"]] + (["00" * length, None] if length else []):
            answer = rpc_call(node.http_url, "state_call", [name, data])
            assert "error" in answer and answer["error"]["code"] == -32602, (name, data, answer)
    for name, data in [("Metadata_metadata_at_version", "0x0f"), ("Metadata_metadata_at_version", "0x0f0000000000"),
                       ("AccountNonceApi_account_nonce", "0x" + "00" * 31),
                       ("TransactionPaymentApi_query_info", "0x0000"), ("TransactionPaymentApi_query_fee_details", "0x"),
                       ("TaggedTransactionQueue_validate_transaction", "0x"), ("Nope_nope", "0x"), ("", "0x")]:
        answer = rpc_call(node.http_url, "state_call", [name, data])
        assert "error" in answer and answer["error"]["code"] in (-32000, -32602), (name, data, answer)
    # a state_call at a block that does not exist
    answer = rpc_call(node.http_url, "state_call", ["SecretStoreKeyServerSetApi_current_set_with_indices", "0x",
                                                    "0x" + "ee" * 32])
    assert "error" in answer and answer["error"]["code"] == -32602
    assert chain_state(node, signer) == before
    assert_clean_log(node)


OFF_CURVE = "0x" + "00" * 63 + "07"  # (0, 7): y^2 = x^3 + 7 has no solution y = 7 at x = 0


@pytest.mark.parametrize("call, params, error", [
    ("store_document_key", {"common_point": OFF_CURVE, "encrypted_point": "0x" + "11" * 64}, "InvalidCommonPoint"),
    ("retrieve_document_key_shadow", {"requester_public": OFF_CURVE}, "InvalidRequesterPublic"),
    ("generate_server_key", {"threshold": 255}, "InvalidThreshold"),
    ("server_key_generated", {"server_key_public": OFF_CURVE}, "InvalidServerKeyPublic"),
    ("server_key_generated", {"server_key_public": "0x" + "00" * 64}, "InvalidServerKeyPublic"),
])
def test_calls_with_points_off_the_curve_fail_dispatch_and_store_nothing(node, substrate, call, params, error):
    """Included (the nonce moves and the transaction fee is paid, as for any failed call), but the call's error is a
    named module error and nothing of SecretStore changes."""
    alice = Keypair.create_from_uri("//Alice")  # a key server's account: response calls get past the caller check
    key_id = "0x" + secrets.token_hex(32)
    before = chain_state(node, alice)
    composed = substrate.compose_call("SecretStore", call, {"id": key_id, **params})
    receipt = substrate.submit_extrinsic(substrate.create_signed_extrinsic(composed, alice), wait_for_inclusion=True)
    assert not receipt.is_success
    assert receipt.error_message["name"] == error, receipt.error_message
    after = chain_state(node, alice)
    assert after["secretstore"] == before["secretstore"]
    assert after["nonce"] == before["nonce"] + 1 and after["head"] != before["head"]
    assert after["pool"] == []


def test_oversized_http_body_is_refused_and_node_serves(node, signer):
    before = chain_state(node, signer)
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "author_submitExtrinsic",
                       "params": ["0x" + "00" * (9 * 1024 * 1024)]}).encode()
    request = urllib.request.Request(node.http_url, data=body, headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=30)
    assert refused.value.code == 413
    # an extrinsic just under the frame limit but over the extrinsic limit: a clear 1010
    reply = rpc_call(node.http_url, "author_submitExtrinsic", ["0x" + "00" * (5 * 1024 * 1024)], timeout=30)
    assert reply["error"]["code"] == 1010 and "exceeds the limit" in reply["error"]["message"]
    # a non-UTF-8 body
    request = urllib.request.Request(node.http_url, data=b"\xff\xfe{", headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert json.loads(response.read())["error"]["code"] == -32700
    assert chain_state(node, signer) == before
    assert_clean_log(node)
    assert_serving(node)


# ------------------------------------------------------------------------------------------------ chain spec files

NODE_SCRIPT = str(Path(sys.executable).with_name("secretstore"))
KS = {"id": "0x" + "11" * 20, "address": "10.0.0.1:7000"}
ALICE_SS58 = "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY"


def start_node(base: Path, spec: Path) -> subprocess.CompletedProcess:
    return subprocess.run([NODE_SCRIPT, "node", "--base-path", str(base), "--chain-spec", str(spec),
                           "--rpc-port", str(free_port())], capture_output=True, text=True, timeout=60)


def files_of(directory: Path) -> dict[str, str]:
    return {str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.rglob("*")) if p.is_file()}


BAD_SPECS = [
    ("{not json", "cannot read chain spec"),
    (b"\xff\xfe{}", "cannot read chain spec"),
    ("[]", "expected a JSON object, got list"),
    ('"SecretStore"', "expected a JSON object, got str"),
    ("null", "expected a JSON object, got NoneType"),
    ({"key_serverz": []}, "unknown field(s) key_serverz"),
    ({"name": 5}, "name: expected a string, got int"),
    ({"name": " "}, "name: must not be empty"),
    ({"owner": 5}, "owner: expected a string, got int"),
    ({"owner": "0x12"}, "owner: expected 32 bytes"),
    ({"owner": "5NotAnAddress"}, "owner"),
    ({"key_servers": "10.0.0.1:7000"}, "key_servers: expected a list"),
    ({"key_servers": ["0x" + "11" * 20]}, "key_servers: each entry must be"),
    ({"key_servers": [{"id": KS["id"]}]}, "key_servers: each entry must be"),
    ({"key_servers": [{**KS, "port": 1}]}, "key_servers: each entry must be"),
    ({"key_servers": [{**KS, "address": 7000}]}, "key_servers: each entry must be"),
    ({"key_servers": [{**KS, "id": "0x11"}]}, "key_servers.id: expected 20 bytes"),
    ({"key_servers": [{**KS, "id": "0x" + "zz" * 20}]}, "key_servers.id: not valid hex"),
    ({"key_servers": [{**KS, "address": "no-port"}]}, "'host:port'"),
    ({"key_servers": []}, "needs 1..255 key servers"),
    ({"key_servers": [KS, KS]}, "distinct"),
    ({"claims": [ALICE_SS58]}, "claims: expected an object"),
    ({"claims": {ALICE_SS58: 7}}, "claims: expected a string"),
    ({"claims": {ALICE_SS58: "0x12"}}, "claims: expected 20 bytes"),
    ({"endowed": {ALICE_SS58: "lots"}}, "endowed: balance of"),
    ({"endowed": {"0x01": 5}}, "endowed: expected 32 bytes"),
    ({"endowed": {ALICE_SS58: -1}}, "endowment must be an integer"),
    ({"server_key_generation_fee": "1"}, "server_key_generation_fee must be an integer"),
    ({"base_fee": 2**128}, "base_fee must be an integer"),
    ({"max_pending_requests": 0}, "max_pending_requests must be positive"),
    ({"max_pending_requests": 1.5}, "max_pending_requests must be an integer"),
    ({"is_initialization_completed": "yes"}, "is_initialization_completed must be a boolean"),
    ({"key_server_ports": [0]}, "key_server_ports"),
]


def write_spec(path: Path, spec: object) -> Path:
    path.write_bytes(spec if isinstance(spec, bytes) else (spec if isinstance(spec, str) else json.dumps(spec)).encode())
    return path


def node_in_process(base: Path, spec: Path, capsys) -> tuple[int, str]:
    """`secretstore node` through the command's own entry point, in this process (a spec that was wrongly accepted
    would serve until the test's timeout)."""
    from secretstore.cli.main import main

    code = main(["node", "--base-path", str(base), "--chain-spec", str(spec), "--rpc-port", str(free_port())])
    captured = capsys.readouterr()
    assert captured.out == ""
    return code, captured.err


@pytest.mark.timeout(60)
@pytest.mark.parametrize("spec, fragment", BAD_SPECS, ids=[str(i) for i in range(len(BAD_SPECS))])
def test_bad_chain_spec_is_one_line_and_creates_no_database(tmp_path, capsys, spec, fragment):
    code, err = node_in_process(tmp_path / "chain", write_spec(tmp_path / "spec.json", spec), capsys)
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], err
    assert not (tmp_path / "chain").exists()


def test_bad_chain_spec_in_a_real_process_is_one_line(tmp_path):
    picked = [BAD_SPECS[2], BAD_SPECS[13], BAD_SPECS[-4]]  # not an object, a bad entry, a bad value

    def start(index: int) -> subprocess.CompletedProcess:
        directory = tmp_path / str(index)
        directory.mkdir()
        return start_node(directory / "chain", write_spec(directory / "spec.json", picked[index][0]))

    with ThreadPoolExecutor(len(picked)) as pool:
        results = list(pool.map(start, range(len(picked))))
    for index, (result, (_, fragment)) in enumerate(zip(results, picked)):
        assert result.returncode == 1, result.stdout + result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], result.stderr
        assert "Traceback" not in result.stderr and result.stdout == ""
        assert not (tmp_path / str(index) / "chain").exists()


@pytest.mark.timeout(120)
def test_bad_chain_spec_leaves_an_existing_database_untouched(tmp_path, capsys):
    """A node that ran once refuses a broken spec at its next start without touching its database, and starts
    again from the same head with the good spec."""
    good = write_spec(tmp_path / "good.json", {"name": "Kept", "key_servers": [KS]})
    with NodeProcess(tmp_path / "chain", free_port(), chain_spec=good) as node:
        head = rpc_call(node.http_url, "chain_getBlockHash")["result"]
    (tmp_path / "chain" / "node.log").unlink()
    before = files_of(tmp_path / "chain")
    assert "chain.sqlite" in before
    for spec, fragment in BAD_SPECS:
        code, err = node_in_process(tmp_path / "chain", write_spec(tmp_path / "bad.json", spec), capsys)
        assert code == 1 and fragment in err, err
        assert files_of(tmp_path / "chain") == before
    with NodeProcess(tmp_path / "chain", free_port(), chain_spec=good) as node:
        assert rpc_call(node.http_url, "chain_getBlockHash")["result"] == head
        assert rpc_call(node.http_url, "system_chain")["result"] == "Kept"
