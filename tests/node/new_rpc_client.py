"""Helpers for the tests of the new Substrate JSON-RPC interface (chainHead_v1, transaction(Watch)_v1, chainSpec_v1,
archive_v1): a blocking WebSocket client that matches replies by id and keeps notifications per subscription, and
signed remarks built with the node's own extrinsic encoder (quick enough to seal hundreds of blocks)."""

from __future__ import annotations

import itertools
import json
import time
from collections import defaultdict, deque

import websocket
from substrateinterface import Keypair

from secretstore.codec.scale import encode_compact
from secretstore.node.extrinsic import Era, decode, encode_signed


class Client:
    """One WebSocket connection. `client(method, *params)` returns the result (failing the test on an error),
    `client.error(...)` the error object (failing on a result); `event(sub)` the next notification's result."""

    def __init__(self, url: str, timeout: float = 20) -> None:
        self.ws = websocket.create_connection(url, timeout=timeout)
        self._ids = itertools.count(1)
        self._events: dict[str, deque] = defaultdict(deque)
        self.methods: dict[str, str] = {}  # subscription -> the notification method seen for it

    def reply(self, method: str, *params: object) -> dict:
        rid = next(self._ids)
        self.ws.send(json.dumps({"jsonrpc": "2.0", "id": rid, "method": method, "params": list(params)}))
        while True:
            message = self._receive()
            if message is not None and message.get("id") == rid:
                return message

    def __call__(self, method: str, *params: object) -> object:
        reply = self.reply(method, *params)
        assert "result" in reply, (method, params, reply)
        return reply["result"]

    def error(self, method: str, *params: object) -> dict:
        reply = self.reply(method, *params)
        assert "error" in reply and "result" not in reply, (method, params, reply)
        return reply["error"]

    def _receive(self, timeout: float | None = None) -> dict | None:
        """The next reply; a notification is queued under its subscription (and None returned)."""
        if timeout is not None:
            self.ws.settimeout(timeout)
        try:
            message = json.loads(self.ws.recv())
        finally:
            if timeout is not None:
                self.ws.settimeout(20)
        if "method" in message and "id" not in message:
            sub = message["params"]["subscription"]
            self.methods[sub] = message["method"]
            self._events[sub].append(message["params"]["result"])
            return None
        return message

    def event(self, subscription: str, timeout: float = 10) -> dict:
        deadline = time.monotonic() + timeout
        queue = self._events[subscription]
        while not queue:
            left = deadline - time.monotonic()
            assert left > 0, f"no notification on {subscription} within {timeout}s"
            try:
                reply = self._receive(left)
            except websocket.WebSocketTimeoutException:
                continue
            assert reply is None, f"unexpected reply {reply}"
        return queue.popleft()

    def events(self, subscription: str, count: int) -> list[dict]:
        return [self.event(subscription) for _ in range(count)]

    def until(self, subscription: str, event: str, timeout: float = 10) -> list[dict]:
        """Every notification up to and including the first whose "event" is `event`."""
        seen = []
        while not seen or seen[-1].get("event") != event:
            seen.append(self.event(subscription, timeout))
        return seen

    def quiet(self, subscription: str, wait: float = 0.3) -> list[dict]:
        """The notifications that arrive on `subscription` within `wait` seconds (for asserting there are none)."""
        deadline = time.monotonic() + wait
        while (left := deadline - time.monotonic()) > 0:
            try:
                assert self._receive(left) is None
            except websocket.WebSocketTimeoutException:
                break
        found = list(self._events[subscription])
        self._events[subscription].clear()
        return found

    def close(self) -> None:
        self.ws.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def remark_call(payload: bytes) -> bytes:
    """System.remark (pallet 0, call 0)."""
    return b"\x00\x00" + encode_compact(len(payload)) + payload


class Signer:
    """Signs immortal System.remark extrinsics for one account, tracking its nonce locally."""

    def __init__(self, client: Client, keypair: Keypair) -> None:
        self.keypair = keypair
        self.genesis = bytes.fromhex(client("chainSpec_v1_genesisHash")[2:])
        version = client("state_getRuntimeVersion")
        self.spec_version, self.tx_version = version["specVersion"], version["transactionVersion"]
        self.nonce = client("system_accountNextIndex", keypair.ss58_address)

    def sign(self, call: bytes, nonce: int | None = None, tamper: bool = False) -> str:
        if nonce is None:
            nonce, self.nonce = self.nonce, self.nonce + 1
        template = decode(encode_signed(self.keypair.public_key, 1, bytes(64), Era(), nonce, 0, call))
        payload = template.signing_payload(self.spec_version, self.tx_version, self.genesis, self.genesis)
        signature = self.keypair.sign(payload)
        if tamper:
            signature = bytes([signature[0] ^ 1]) + signature[1:]
        return "0x" + encode_signed(self.keypair.public_key, 1, signature, Era(), nonce, 0, call).hex()

    def remark(self, payload: bytes = b"", **kwargs: object) -> str:
        return self.sign(remark_call(payload), **kwargs)


def seal(client: Client, signer: Signer, count: int = 1) -> list[str]:
    """Seal `count` blocks, one remark each, waiting for each to be final; the hashes of the blocks."""
    hashes = []
    for i in range(count):
        sub = client("transactionWatch_v1_submitAndWatch", signer.remark(i.to_bytes(4, "little")))
        final = client.until(sub, "finalized")[-1]
        hashes.append(final["block"]["hash"])
    return hashes
