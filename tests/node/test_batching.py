"""Block production batches: every ready transaction goes into the next block, over the real node process and socket.

Transactions are sent as one JSON-RPC batch (a list) on one WebSocket: the node handles a whole message before it
seals, so they are all in its pool when the block is made.
"""

import json
import time

import pytest
import websocket
from substrateinterface import ExtrinsicReceipt, Keypair, SubstrateInterface

from secretstore.node.extrinsic import decode, encode_signed
from secretstore.node.testing import NodeProcess, free_port, rpc_call


class Socket:
    """A raw JSON-RPC WebSocket: replies by id, notifications by subscription, in arrival order."""

    def __init__(self, url: str) -> None:
        self.ws = websocket.create_connection(url, timeout=20)
        self.next_id = 0
        self.replies: dict[int, dict] = {}
        self.notes: list[dict] = []

    def batch(self, calls: list[tuple[str, list]]) -> list[int]:
        ids = list(range(self.next_id, self.next_id + len(calls)))
        self.next_id += len(calls)
        self.ws.send(json.dumps([{"jsonrpc": "2.0", "id": i, "method": m, "params": p} for i, (m, p) in zip(ids, calls)]))
        return ids

    def call(self, method: str, params: list) -> dict:
        [rid] = self.batch([(method, params)])
        return self.reply(rid)

    def _read(self) -> None:
        message = json.loads(self.ws.recv())
        for item in message if isinstance(message, list) else [message]:
            if "id" in item and "method" not in item:
                self.replies[item["id"]] = item
            else:
                self.notes.append(item)

    def reply(self, rid: int) -> dict:
        while rid not in self.replies:
            self._read()
        return self.replies[rid]

    def updates(self, subscription: str, until, timeout: float = 20.0) -> list:
        """The results of one subscription's notifications, read until `until(results)` holds."""
        deadline = time.monotonic() + timeout
        while True:
            results = [n["params"]["result"] for n in self.notes if n["params"]["subscription"] == subscription]
            if until(results):
                return results
            assert time.monotonic() < deadline, f"subscription {subscription}: only {results}"
            self._read()

    def close(self) -> None:
        self.ws.close()


def remark(api: SubstrateInterface, signer: Keypair, nonce: int, data: str) -> str:
    call = api.compose_call("System", "remark", {"remark": data})
    return str(api.create_signed_extrinsic(call, signer, nonce=nonce).data)


def block_extrinsics(node, block_hash: str) -> list[bytes]:
    block = rpc_call(node.http_url, "chain_getBlock", [block_hash])["result"]["block"]
    return [bytes.fromhex(x[2:]) for x in block["extrinsics"]]


def head_number(node) -> int:
    return int(rpc_call(node.http_url, "chain_getHeader")["result"]["number"], 16)


def in_block(results: list) -> str | None:
    for r in results:
        if isinstance(r, dict) and "inBlock" in r:
            return r["inBlock"]
    return None


def watch_all(sock: Socket, extrinsics: list[str]) -> list[dict]:
    """Submit-and-watch every extrinsic in one batch; the replies in order."""
    ids = sock.batch([("author_submitAndWatchExtrinsic", [x]) for x in extrinsics])
    return [sock.reply(i) for i in ids]


@pytest.fixture(scope="module")
def keys():
    return {name: Keypair.create_from_uri("//" + name) for name in ("Alice", "Bob", "Charlie", "Dave", "Eve")}


def test_transactions_submitted_together_share_one_block_with_correct_phases(node, substrate, keys):
    sock = Socket(node.ws_url)
    heads = sock.call("chain_subscribeNewHeads", [])["result"]
    finalized = sock.call("chain_subscribeFinalizedHeads", [])["result"]
    account_keys = [substrate.create_storage_key("System", "Account", [keys[n].ss58_address]).to_hex()
                    for n in ("Alice", "Bob")]
    storage = sock.call("state_subscribeStorage", [account_keys])["result"]
    start = head_number(node)
    signers = [keys[n] for n in ("Alice", "Bob", "Charlie", "Dave", "Alice", "Bob")]
    nonces: dict[str, int] = {}
    extrinsics = []
    for i, kp in enumerate(signers):
        nonce = nonces.setdefault(kp.ss58_address, substrate.get_account_nonce(kp.ss58_address))
        nonces[kp.ss58_address] += 1
        extrinsics.append(remark(substrate, kp, nonce, "0x%04x" % i))
    replies = watch_all(sock, extrinsics)
    subs = [r["result"] for r in replies]
    blocks = {in_block(sock.updates(s, in_block)) for s in subs}
    assert len(blocks) == 1, "all six went into one block"
    [block_hash] = blocks
    for s in subs:  # each watcher: ready, then inBlock and finalized with that block
        assert sock.updates(s, lambda r: len(r) >= 3)[:3] == ["ready", {"inBlock": block_hash}, {"finalized": block_hash}]
    assert head_number(node) == start + 1
    included = block_extrinsics(node, block_hash)
    assert sorted(included) == sorted(bytes.fromhex(x[2:]) for x in extrinsics)

    # every extrinsic's outcome is found by its index (substrate-interface reads the phase ApplyExtrinsic(index))
    events = substrate.get_events(block_hash)
    for index, raw in enumerate(included):
        ext = decode(raw)
        mine = [e.value for e in events if e.value["extrinsic_idx"] == index]
        assert [e["event"]["event_id"] for e in mine] == ["Remarked", "TransactionFeePaid", "ExtrinsicSuccess"]
        assert all(e["phase"] == "ApplyExtrinsic" for e in mine)
        assert mine[0]["event"]["attributes"]["sender"] == substrate.ss58_encode(ext.signer)
        receipt = ExtrinsicReceipt(substrate=substrate, extrinsic_hash="0x" + ext.hash.hex(), block_hash=block_hash)
        assert receipt.is_success and receipt.extrinsic_idx == index

    # one head notification per block, the storage subscription sees both accounts change in it
    number = hex(start + 1)
    assert [h["number"] for h in sock.updates(heads, lambda r: any(h["number"] == number for h in r))][-1] == number
    assert sock.updates(finalized, lambda r: any(h["number"] == number for h in r))[-1]["number"] == number
    changes = sock.updates(storage, lambda r: any(c["block"] == block_hash for c in r))[-1]
    assert changes["block"] == block_hash and sorted(k for k, _ in changes["changes"]) == sorted(account_keys)
    sock.close()


def test_one_signers_nonces_are_ordered_within_a_block(node, substrate, keys):
    charlie = keys["Charlie"]
    nonce = substrate.get_account_nonce(charlie.ss58_address)
    # submitted last nonce first: the later ones wait in the pool for their predecessors
    extrinsics = [remark(substrate, charlie, nonce + k, "0x%02x" % k) for k in (3, 1, 2, 0)]
    sock = Socket(node.ws_url)
    subs = [r["result"] for r in watch_all(sock, extrinsics)]
    [block_hash] = {in_block(sock.updates(s, in_block)) for s in subs}
    assert [decode(x).nonce for x in block_extrinsics(node, block_hash)] == [nonce, nonce + 1, nonce + 2, nonce + 3]
    assert substrate.get_account_nonce(charlie.ss58_address) == nonce + 4
    sock.close()


def test_an_invalid_transaction_in_a_batch_leaves_the_others_alone(tmp_path, keys):
    """Eve can pay exactly one fee: her second transaction is valid when submitted (the head state can pay it) but
    not when applied after her first; it is dropped with status "invalid" and the rest of the block goes in."""
    fee = 1000
    spec = {"base_fee": fee, "endowed": {keys[n].ss58_address: 10**18 for n in ("Alice", "Bob")}}
    spec["endowed"][keys["Eve"].ss58_address] = fee
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    with NodeProcess(tmp_path / "chain", free_port(), chain_spec=path) as node:
        api = SubstrateInterface(url=node.ws_url, use_remote_preset=False)
        alice, bob, eve = keys["Alice"], keys["Bob"], keys["Eve"]
        good = [remark(api, alice, 0, "0x01"), remark(api, eve, 0, "0x02"), remark(api, bob, 0, "0x03"),
                remark(api, alice, 1, "0x04")]
        too_poor = remark(api, eve, 1, "0x05")
        # Bob's transaction with Charlie's signature, and with bytes that are no signature at all
        real = decode(bytes.fromhex(remark(api, bob, 1, "0x06")[2:]))
        charlies = decode(bytes.fromhex(remark(api, keys["Charlie"], 1, "0x06")[2:])).signature
        forged = ["0x" + encode_signed(real.signer, 1, signature, real.era, real.nonce, real.tip, real.call).hex()
                  for signature in (charlies, bytes(64))]
        sock = Socket(node.ws_url)
        replies = watch_all(sock, good[:2] + [too_poor] + forged + good[2:])
        for refused in replies[3:5]:
            assert refused["error"] == {"code": 1010, "message": "Invalid Transaction",
                                        "data": "Transaction has a bad signature"}
        subs = [r["result"] for i, r in enumerate(replies) if i not in (3, 4)]
        good_subs = subs[:2] + subs[3:]
        [block_hash] = {in_block(sock.updates(s, in_block)) for s in good_subs}
        assert sock.updates(subs[2], lambda r: "invalid" in r) == ["ready", "invalid"]
        included = block_extrinsics(node, block_hash)
        assert sorted(included) == sorted(bytes.fromhex(x[2:]) for x in good)
        for index, raw in enumerate(included):
            receipt = ExtrinsicReceipt(substrate=api, extrinsic_hash="0x" + decode(raw).hash.hex(),
                                       block_hash=block_hash)
            assert receipt.is_success and receipt.extrinsic_idx == index
        assert rpc_call(node.http_url, "author_pendingExtrinsics")["result"] == []
        assert api.get_account_nonce(eve.ss58_address) == 1
        sock.close()
        api.close()


def test_seal_per_transaction_makes_one_block_each(tmp_path, keys):
    with NodeProcess(tmp_path, free_port(), seal_per_transaction=True) as node:
        api = SubstrateInterface(url=node.ws_url, use_remote_preset=False)
        start = head_number(node)
        extrinsics = [remark(api, keys["Alice"], k, "0x%02x" % k) for k in range(3)]
        extrinsics.append(remark(api, keys["Bob"], 0, "0x10"))
        sock = Socket(node.ws_url)
        subs = [r["result"] for r in watch_all(sock, extrinsics)]
        blocks = [in_block(sock.updates(s, in_block)) for s in subs]
        assert len(set(blocks)) == 4 and head_number(node) == start + 4
        for block_hash in blocks:
            [raw] = block_extrinsics(node, block_hash)
            receipt = ExtrinsicReceipt(substrate=api, extrinsic_hash="0x" + decode(raw).hash.hex(),
                                       block_hash=block_hash)
            assert receipt.is_success and receipt.extrinsic_idx == 0
        sock.close()
        api.close()


def test_a_timed_block_takes_every_ready_transaction(tmp_path, keys):
    with NodeProcess(tmp_path, free_port(), block_time=0.5) as node:
        api = SubstrateInterface(url=node.ws_url, use_remote_preset=False)
        extrinsics = [remark(api, keys[n], 0, "0x01") for n in ("Alice", "Bob", "Charlie")]
        sock = Socket(node.ws_url)
        subs = [r["result"] for r in watch_all(sock, extrinsics)]
        [block_hash] = {in_block(sock.updates(s, in_block)) for s in subs}
        assert sorted(block_extrinsics(node, block_hash)) == sorted(bytes.fromhex(x[2:]) for x in extrinsics)
        sock.close()
        api.close()


def test_kill_9_right_after_acceptance_loses_nothing(tmp_path, keys):
    """Accepted (answered) transactions are on disk: after kill -9 each is in a block or back in the pool."""
    node = NodeProcess(tmp_path, free_port()).start()
    api = SubstrateInterface(url=node.ws_url, use_remote_preset=False)
    extrinsics = [remark(api, keys[n], k, "0x%02x" % k) for k in range(40) for n in ("Alice", "Bob")]
    api.close()
    sock = Socket(node.ws_url)
    ids = sock.batch([("author_submitExtrinsic", [x]) for x in extrinsics])
    accepted = [sock.reply(i)["result"] for i in ids]
    node.stop(kill=True)
    sock.ws.close()
    node = NodeProcess(tmp_path, free_port()).start()
    try:
        pending = rpc_call(node.http_url, "author_pendingExtrinsics")["result"]
        hashes = {decode(bytes.fromhex(x[2:])).hash for x in pending}
        for n in range(1, head_number(node) + 1):
            block_hash = rpc_call(node.http_url, "chain_getBlockHash", [n])["result"]
            hashes |= {decode(x).hash for x in block_extrinsics(node, block_hash)}
        assert {bytes.fromhex(h[2:]) for h in accepted} <= hashes
    finally:
        node.stop()
