"""Substrate JSON-RPC over WebSocket (at / and /ws) and HTTP POST, with subscriptions, served by aiohttp."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from aiohttp import WSMsgType, web

from ..codec.hashing import blake2_256
from ..codec.primitives import AccountId32, DispatchClass, Weight
from ..codec.scale import U32, U64, U128, Bytes, CodecError, Composite, Field, Option, Reader, Sequence, decode_compact
from ..runtime import InvalidTransaction
from .chain import BlockInfo, Chain, header_json, hex0x
from .extrinsic import ExtrinsicError, decode

log = logging.getLogger(__name__)

MAX_REQUEST_SIZE = 16 * 1024 * 1024
_PLAIN_RESULTS = {dict, list, str, int, bool, float, type(None)}  # skip the awaitable test for the usual results
# instant seal: a block once no transaction has arrived for a quiet window (SEAL_QUIET, plus SEAL_QUIET_PER_TX for
# every transaction of the block before, at most SEAL_QUIET_MAX) ...
SEAL_QUIET = 0.001
SEAL_QUIET_PER_TX = 0.00025
SEAL_QUIET_MAX = 0.003
SEAL_GATHER = 0.015  # ... or SEAL_GATHER after the first one
# While key server responses are still awaited the quiet window is SEAL_QUIET_AWAITING (the answers of different key
# servers arrive a few ms apart on a busy machine); the block is sealed the moment all that could decide the pending
# requests have arrived ...
SEAL_QUIET_AWAITING = 0.004
# ... and a block whose wave (the requests the last block changed) awaits responses waits for them: until the last
# arrives, or SEAL_WAVE_PATIENCE passes without one, SEAL_WAVE_MAX after the last block at most (see `_gather`)
SEAL_WAVE_PATIENCE = 0.050
SEAL_WAVE_MAX = 0.200
# submitters are answered while a block gathers, SEAL_ACK_DELAY after the first of them arrived (one write of the pool
# for a group of arrivals, not one each)
SEAL_ACK_DELAY = 0.002
# uvloop's timers and loop.time() count whole milliseconds: a sleep under half of one returns at once, so the quiet
# window is measured with time.monotonic() and ends when less than that is left (waiting on would spin the loop)
TIMER_RESOLUTION = 0.001
WRITE_BUFFER_LIMIT = 4 * 1024 * 1024  # bytes waiting in a connection's socket buffer before its writer waits
VERSION = "0.1.0"

RuntimeDispatchInfo = Composite(("pallet_transaction_payment", "types", "RuntimeDispatchInfo"), [
    Field("weight", Weight), Field("class", DispatchClass), Field("partial_fee", U128)])
InclusionFee = Composite(("pallet_transaction_payment", "types", "InclusionFee"), [
    Field("base_fee", U128), Field("len_fee", U128), Field("adjusted_weight_fee", U128)])
FeeDetails = Composite(("pallet_transaction_payment", "types", "FeeDetails"), [
    Field("inclusion_fee", Option(InclusionFee)), Field("tip", U128)])


class RpcError(Exception):
    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code, self.message, self.data = code, message, data

    def to_json(self) -> dict:
        error = {"code": self.code, "message": self.message}
        if self.data is not None:
            error["data"] = self.data
        return error


def _bytes_param(value: Any, name: str) -> bytes:
    if not isinstance(value, str) or not value.startswith("0x"):
        raise RpcError(-32602, f"invalid params: {name} must be a 0x-prefixed hex string")
    try:
        return bytes.fromhex(value[2:])
    except ValueError:
        raise RpcError(-32602, f"invalid params: {name} is not valid hex") from None


def _opt_hash(value: Any) -> bytes | None:
    if value is None:
        return None
    raw = _bytes_param(value, "block hash")
    if len(raw) != 32:
        raise RpcError(-32602, "invalid params: block hash must be 32 bytes")
    return raw


def _account(value: Any) -> bytes:
    if not isinstance(value, str):
        raise RpcError(-32602, "invalid params: account must be an SS58 address or 0x-prefixed hex string")
    if value.startswith("0x"):
        raw = _bytes_param(value, "account")
    else:
        from substrateinterface.utils.ss58 import ss58_decode

        try:
            raw = bytes.fromhex(ss58_decode(value))
        except (ValueError, TypeError) as exc:
            raise RpcError(-32602, f"invalid params: account: {exc}") from None
    if len(raw) != 32:
        raise RpcError(-32602, "invalid params: account must be 32 bytes")
    return raw


def text_frame(text: str) -> bytes:
    """An unmasked, uncompressed final text frame (RFC 6455 5.2), as a server sends it."""
    payload = text.encode()
    n = len(payload)
    if n < 126:
        header = bytes((0x81, n))
    elif n < 1 << 16:
        header = bytes((0x81, 126)) + n.to_bytes(2, "big")
    else:
        header = bytes((0x81, 127)) + n.to_bytes(8, "big")
    return header + payload


def write_frames(transport: Any, frames: list[bytes]) -> None:
    if frames and transport is not None and not transport.is_closing():
        transport.write(b"".join(frames))


def notification(subscription: str, method: str, result_json: str) -> str:
    """A subscription notification around an already JSON-encoded result: one block's head or changes are encoded
    once however many subscribers receive them."""
    return ('{"jsonrpc":"2.0","method":"' + method + '","params":{"subscription":"' + subscription
            + '","result":' + result_json + "}}")


@dataclass(eq=False)
class Connection:
    """One client. Outgoing messages go through a queue so that replies and notifications keep their order. An item
    is a message (dict or list), an already encoded message (str), or a Future of a message: the slot of a reply that
    is not ready yet (a submission waiting to be on disk), which holds back everything queued after it."""

    outbox: asyncio.Queue = field(default_factory=asyncio.Queue)
    subscriptions: dict[str, tuple[str, Any]] = field(default_factory=dict)  # id -> (kind, data)
    websocket: bool = True

    def send(self, message: Any) -> None:
        self.outbox.put_nowait(message)

    def notify(self, subscription: str, method: str, result: Any) -> None:
        self.send(notification(subscription, method, json.dumps(result)))


class AwaitedResponses:
    """What instant seal waits for. After every block, per pending request (its storage key) that the block changed:
    the fewest key server responses that could decide it; then, per request, the responses that have arrived since.
    The requests the last block changed awaiting answers are its *wave*: what the key servers answer next. Pending
    requests are bounded by the chain's queues, so all of this is too."""

    def __init__(self) -> None:
        self._by_request: dict[bytes, int] = {}
        self._arrived: dict[bytes, int] = {}
        self._wave: set[bytes] = set()
        self._missing = 0
        self._wave_missing = 0
        self.wave_last_arrival = 0.0  # time.monotonic() of the last response to the wave (0: none yet)

    def sealed(self, chain: Chain, changes: dict[bytes, bytes | None]) -> None:
        pallet = chain.runtime.secretstore
        self._arrived.clear()
        self._wave = set()
        self.wave_last_arrival = 0.0
        for key in changes:
            awaited = pallet.responses_awaited(chain.state, key)
            if awaited:
                self._by_request[key] = awaited
                self._wave.add(key)
            elif awaited == 0:
                self._by_request.pop(key, None)
        self._missing = sum(self._by_request.values())
        self._wave_missing = sum(self._by_request[key] for key in self._wave)

    def arrived(self, chain: Chain, ext_hash: bytes) -> None:
        pooled = chain.pool.get(ext_hash)
        if pooled is None:
            return
        key = chain.runtime.secretstore.response_request_key(pooled.extrinsic.call)
        awaited = self._by_request.get(key) if key is not None else None
        if awaited is None:
            return  # no response, or one to a request nothing waits for
        count = self._arrived.get(key, 0)
        self._arrived[key] = count + 1
        if count < awaited:  # a response beyond those that could decide it changes nothing here
            self._missing -= 1
            if key in self._wave:
                self._wave_missing -= 1
                self.wave_last_arrival = time.monotonic()

    def idle(self) -> bool:
        """No pending request awaits a response (that a block changed since this node started)."""
        return not self._by_request

    def missing(self) -> int:
        return self._missing

    def all_in(self) -> bool:
        return bool(self._by_request) and self._missing == 0

    def wave_missing(self) -> int:
        """Responses still awaited by the requests the last block changed."""
        return self._wave_missing

    def wave_in(self) -> bool:
        """Every response the requests of the last block's wave awaited has arrived."""
        return bool(self._wave) and self._wave_missing == 0


class RpcServer:
    """`block_time` None is instant seal: a block as soon as transactions are ready, holding every ready transaction
    (`seal_per_transaction` restores one block per transaction). With a block time, each block holds every
    transaction ready when it is sealed."""

    def __init__(self, chain: Chain, *, block_time: float | None = None, seal_per_transaction: bool = False) -> None:
        self.chain = chain
        self.block_time = block_time
        self.seal_per_transaction = seal_per_transaction
        self._gathers = block_time is None and not seal_per_transaction  # instant seal's `_gather` runs
        self.connections: set[Connection] = set()
        self._ids = itertools.count(1)
        self._wake = asyncio.Event()
        self._last_arrival = 0.0  # time.monotonic() of the last accepted transaction (instant seal's quiet window)
        self._arrival_gap = float("inf")  # seconds between the last two accepted transactions
        self._last_block_size = 0  # transactions in the last block sealed (instant seal's quiet window)
        self._awaited = AwaitedResponses()
        self._last_sealed = 0.0  # time.monotonic() of the last block
        self._first_unanswered = 0.0  # time.monotonic() of the oldest submission not yet answered
        self._arrival = asyncio.Event()  # a transaction was accepted (instant seal's gathering waits on it)
        # replies to submissions that wait until the chain has written the transaction (pool row or block)
        self._acks: list[tuple[asyncio.Future, Any]] = []
        self.watchers: dict[bytes, list[tuple[Connection, str]]] = {}
        chain.listeners.append(self._on_block)
        self.methods: dict[str, Callable[..., Any]] = {
            name[4:]: getattr(self, name) for name in dir(self) if name.startswith("rpc_") and name != "rpc_"}
        self.methods.update({
            "chain_getHead": self.rpc_chain_getBlockHash,
            "chain_getFinalisedHead": self.rpc_chain_getFinalizedHead,
            "chain_getRuntimeVersion": self.rpc_state_getRuntimeVersion,
            "state_getStorageAt": self.rpc_state_getStorage,
            "chain_subscribeNewHead": self.rpc_chain_subscribeNewHeads,
            "chain_unsubscribeNewHead": self.rpc_chain_unsubscribeNewHeads,
            "chain_subscribeFinalisedHeads": self.rpc_chain_subscribeFinalizedHeads,
            "chain_unsubscribeFinalisedHeads": self.rpc_chain_unsubscribeFinalizedHeads,
        })

    # --------------------------------------------------------------------------------------------- plumbing
    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_REQUEST_SIZE)
        app.router.add_get("/", self._websocket)
        app.router.add_get("/ws", self._websocket)
        app.router.add_post("/", self._http)
        return app

    async def _http(self, request: web.Request) -> web.Response:
        conn = Connection(websocket=False)
        try:
            body = await request.text()
        except UnicodeDecodeError:  # aiohttp would answer 500
            body = "\ufffd"  # not JSON: a Parse error
        reply = self.handle_text(body, conn)
        if isinstance(reply, asyncio.Future):
            reply = await reply
        return web.Response(text=json.dumps(reply), content_type="application/json")

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Upgrade", "").lower() != "websocket":
            return web.Response(text="SecretStore node: JSON-RPC over WebSocket here, or HTTP POST\n")
        ws = web.WebSocketResponse(max_msg_size=2 * MAX_REQUEST_SIZE, heartbeat=30)
        await ws.prepare(request)
        conn = Connection()
        self.connections.add(conn)

        async def writer() -> None:
            # Everything already queued goes out in one write: one system call for many replies and notifications
            # (each its own WebSocket frame) instead of one per message.
            transport = request.transport
            while True:
                frames: list[bytes] = []
                message = await conn.outbox.get()
                while True:
                    if isinstance(message, asyncio.Future):
                        if not message.done():
                            if frames:
                                write_frames(transport, frames)
                                frames = []
                            await message
                        message = message.result()
                    if message is not None:
                        frames.append(text_frame(message if isinstance(message, str) else json.dumps(message)))
                    if conn.outbox.empty():
                        break
                    message = conn.outbox.get_nowait()
                if transport is None or transport.is_closing():
                    return
                write_frames(transport, frames)
                while transport.get_write_buffer_size() > WRITE_BUFFER_LIMIT and not transport.is_closing():
                    await asyncio.sleep(0.005)  # a slow reader: let the socket drain before queueing more

        writer_task = asyncio.create_task(writer())
        loop = asyncio.get_running_loop()
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    # the reply's place in the outbox is taken first: notifications the call queues (a new
                    # subscription's first one) follow it. Handling is synchronous, so requests keep their order,
                    # and a reply that must wait (a submission) does not stop the next request from being read.
                    slot = loop.create_future()
                    conn.send(slot)
                    reply = self.handle_text(msg.data, conn)
                    if isinstance(reply, asyncio.Future):
                        reply.add_done_callback(lambda done, slot=slot: done.cancelled() or slot.set_result(done.result()))
                    else:
                        slot.set_result(reply)
                elif msg.type == WSMsgType.BINARY:
                    conn.send({"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": "Parse error: binary frame"}})
                elif msg.type == WSMsgType.ERROR:
                    break
        finally:
            self.connections.discard(conn)
            for watchers in self.watchers.values():
                watchers[:] = [w for w in watchers if w[0] is not conn]
            # let queued replies drain before closing, bounded so a dead peer cannot hold us
            try:
                async with asyncio.timeout(2):
                    while not conn.outbox.empty() and not ws.closed:
                        await asyncio.sleep(0.01)
            except TimeoutError:
                pass
            writer_task.cancel()
        return ws

    def handle_text(self, text: str, conn: Connection) -> Any:
        """The reply to a request or batch: a message, or a Future of one when some call must wait."""
        if len(text) > MAX_REQUEST_SIZE:
            return {"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": "Request too large (limit 16 MiB)"}}
        try:
            request = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):  # RecursionError: nested too deeply
            return {"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": "Parse error"}}
        if isinstance(request, list):
            if not request:
                return {"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": "Invalid request: empty batch"}}
            replies = [self.handle_request(r, conn) for r in request]
            if any(isinstance(r, asyncio.Future) for r in replies):
                return asyncio.ensure_future(_gather_list(replies))
            return replies
        return self.handle_request(request, conn)

    def handle_request(self, request: Any, conn: Connection) -> Any:
        """The reply to one call: a message, or a Future of one (for a call whose result must wait)."""
        if not isinstance(request, dict) or not isinstance(request.get("method"), str):
            return {"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": "Invalid request"}}
        rid = request.get("id")
        if request.get("jsonrpc") != "2.0" or not (rid is None or rid.__class__ in (int, str)):
            # JSON-RPC 2.0: "jsonrpc" must be exactly "2.0"; an id is a string, an integer or null
            return {"jsonrpc": "2.0", "id": rid if rid.__class__ in (int, str) else None, "error": {
                "code": -32600, "message": 'Invalid request: "jsonrpc" must be "2.0" and "id" a string, integer or null'}}
        params = request.get("params", [])
        if params is None:
            params = []
        handler = self.methods.get(request["method"])
        try:
            if handler is None:
                raise RpcError(-32601, f"Method not found: {request['method']}")
            if not isinstance(params, list):
                raise RpcError(-32602, "invalid params: positional params (a list) expected")
            try:
                result = handler(conn, *params)
            except TypeError as exc:
                raise RpcError(-32602, f"invalid params: {exc}") from None
            if isinstance(result, asyncio.Future):  # resolved by the chain's next write; it never fails
                reply = asyncio.get_running_loop().create_future()
                result.add_done_callback(lambda done: done.cancelled() or reply.set_result(
                    {"jsonrpc": "2.0", "id": rid, "result": done.result()}))
                return reply
            if result.__class__ not in _PLAIN_RESULTS and inspect.isawaitable(result):
                return asyncio.ensure_future(self._complete(request["method"], rid, result))
            return {"jsonrpc": "2.0", "id": rid, "result": result}
        except Exception as exc:
            return self._error_reply(request["method"], rid, exc)

    async def _complete(self, method: str, rid: Any, result: Awaitable) -> dict:
        try:
            return {"jsonrpc": "2.0", "id": rid, "result": await result}
        except Exception as exc:
            return self._error_reply(method, rid, exc)

    def _error_reply(self, method: str, rid: Any, exc: Exception) -> dict:
        if isinstance(exc, RpcError):
            return {"jsonrpc": "2.0", "id": rid, "error": exc.to_json()}
        if isinstance(exc, ExtrinsicError):
            message, _, data = str(exc).partition(": ")
            return {"jsonrpc": "2.0", "id": rid,
                    "error": {"code": exc.code, "message": message, **({"data": data} if data else {})}}
        if isinstance(exc, (CodecError, LookupError, ValueError)):
            return {"jsonrpc": "2.0", "id": rid, "error": {"code": -32602, "message": f"invalid params: {exc}"}}
        # a bug must not take the node down; the client gets an error, the log the details
        log.error("internal error in %s", method, exc_info=exc)
        return {"jsonrpc": "2.0", "id": rid, "error": {"code": -32603, "message": "Internal error"}}

    def _subscribe(self, conn: Connection, kind: str, data: Any = None) -> str:
        if not conn.websocket:
            raise RpcError(-32601, "Subscriptions are only available over WebSocket")
        sub_id = f"{next(self._ids):016x}"
        conn.subscriptions[sub_id] = (kind, data)
        return sub_id

    def _unsubscribe(self, conn: Connection, sub_id: Any) -> bool:
        return conn.subscriptions.pop(str(sub_id), None) is not None

    # ----------------------------------------------------------------------------------------- production
    async def run_block_production(self) -> None:
        """Instant seal (a block whenever transactions are ready) or a fixed block time. Either way, every wake-up
        ends with the accepted transactions on disk and their submitters answered."""
        loop = asyncio.get_running_loop()
        next_block = loop.time() + self.block_time if self.block_time else None
        while True:
            if not self._wake.is_set():
                try:
                    async with asyncio.timeout(None if next_block is None else max(0.0, next_block - loop.time())):
                        await self._wake.wait()
                except TimeoutError:
                    pass
            self._wake.clear()
            if next_block is not None:
                if loop.time() >= next_block:
                    self.chain.produce_block()
                    self._release_acks()
                    next_block = max(next_block + self.block_time, loop.time())
            else:
                if self._gathers:
                    await self._gather()
                while self.chain.has_ready():
                    self.chain.produce_block(1 if self.seal_per_transaction else None)
                    self._release_acks()
                    await asyncio.sleep(0)  # what does not fit goes in the next block, after pending requests
            self.chain.flush_pool()
            self._release_acks()

    async def _gather(self) -> None:
        """Instant seal gathers what belongs together into one block; every block costs each follower of the chain
        a wake-up, and a request as many hops as blocks it takes.

        - A lone transaction (the first after a pause, while no request awaits answers) waits for nothing.
        - While the requests the last block changed (its wave) await key server responses, the block waits for
          them and is sealed the moment the last one arrives, or once SEAL_WAVE_PATIENCE has passed without one
          of them (since the block or the last of its responses, at most SEAL_WAVE_MAX in all): a response that
          is not coming (a stopped key server) holds a block only that long. Under load the block interval then
          follows how fast the key servers answer, and each request takes the fewest blocks its protocol needs.
        - Otherwise it waits while transactions keep arriving (a quiet window since the last one, SEAL_GATHER at
          most): 1 ms when traffic is light, growing with the last block's size up to SEAL_QUIET_MAX, and
          SEAL_QUIET_AWAITING while older requests still await responses; sealed at once if they are all in.

        Submitters are answered while the block gathers (SEAL_ACK_DELAY after the first of them), not when it is
        sealed: a key server sends its next responses once the last ones are accepted, and they belong in this
        block too."""
        awaited = self._awaited
        usual = min(SEAL_QUIET_MAX, SEAL_QUIET + SEAL_QUIET_PER_TX * self._last_block_size)
        if awaited.idle() and self._arrival_gap >= usual:
            return  # a lone transaction after a pause, and no request waits for answers: nothing to gather it with
        waves = awaited.wave_missing() > 0
        deadline = time.monotonic() + SEAL_GATHER
        while not (awaited.wave_in() if waves else awaited.all_in()):
            if waves:
                wait = min(max(self._last_sealed, awaited.wave_last_arrival) + SEAL_WAVE_PATIENCE,
                           self._last_sealed + SEAL_WAVE_MAX) - time.monotonic()
            else:
                quiet = SEAL_QUIET_AWAITING if awaited.missing() else usual
                wait = min(self._last_arrival + quiet, deadline) - time.monotonic()
            if wait < TIMER_RESOLUTION / 2:  # a shorter wait would not wait at all (see TIMER_RESOLUTION)
                return
            if self._acks:
                ack_at = self._first_unanswered + SEAL_ACK_DELAY
                if ack_at - time.monotonic() < TIMER_RESOLUTION / 2:
                    self.chain.flush_pool()
                    self._release_acks()
                else:  # the answers to one request come close together: wake to acknowledge them all at once
                    wait = min(wait, ack_at - time.monotonic())
            self._arrival.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._arrival.wait()

    def _release_acks(self) -> None:
        """Every transaction accepted so far is written (the chain writes all buffered ones at each block or flush):
        answer their submitters."""
        acks, self._acks = self._acks, []
        for future, result in acks:
            if not future.done():
                future.set_result(result)

    def _after_write(self, ext_hash: bytes, result: Any) -> asyncio.Future:
        loop = asyncio.get_running_loop()
        now = time.monotonic()
        self._arrival_gap, self._last_arrival = now - self._last_arrival, now
        if self._gathers:  # what it waits for is kept only where blocks are gathered
            self._awaited.arrived(self.chain, ext_hash)
        self._arrival.set()
        future = loop.create_future()
        if not self._acks:
            self._first_unanswered = now
        self._acks.append((future, result))
        self._wake.set()
        return future

    def _on_block(self, block: BlockInfo) -> None:
        self._last_block_size = len(block.included)
        self._last_sealed = time.monotonic()
        if self._gathers:
            self._awaited.sealed(self.chain, block.changes)
        head_json = json.dumps(header_json(block.header))
        block_hash = hex0x(block.hash)
        methods = {"newHead": "chain_newHead", "allHead": "chain_allHead", "finalizedHead": "chain_finalizedHead"}
        all_keys = tuple(sorted(block.changes))
        by_keys: dict[tuple, str] = {}  # one encoding per set of changed keys (followers watch the same ones)
        for conn in list(self.connections):
            for sub_id, (kind, keys) in list(conn.subscriptions.items()):
                if kind in methods:
                    conn.send(notification(sub_id, methods[kind], head_json))
                elif kind == "storage":  # `keys` None: every key
                    changed = all_keys if keys is None else tuple(k for k in all_keys if k in keys)
                    if changed:
                        encoded = by_keys.get(changed)
                        if encoded is None:
                            encoded = by_keys[changed] = json.dumps(_storage_changes(block_hash, block.changes, changed))
                        conn.send(notification(sub_id, "state_storage", encoded))
        if self.watchers:
            in_block = json.dumps({"inBlock": block_hash})
            finalized = json.dumps({"finalized": block_hash})
            for ext_hash in block.included:
                for conn, sub_id in self.watchers.pop(ext_hash, ()):
                    conn.send(notification(sub_id, "author_extrinsicUpdate", in_block))
                    conn.send(notification(sub_id, "author_extrinsicUpdate", finalized))
            for ext_hash, _ in block.dropped:
                for conn, sub_id in self.watchers.pop(ext_hash, ()):
                    conn.notify(sub_id, "author_extrinsicUpdate", "invalid")

    # --------------------------------------------------------------------------------------------- system
    def rpc_system_name(self, conn): return "secretstore-node"
    def rpc_system_version(self, conn): return VERSION
    def rpc_system_chain(self, conn): return self.chain.chain_name
    def rpc_system_chainType(self, conn): return "Development"
    def rpc_system_properties(self, conn): return {"ss58Format": 42, "tokenDecimals": 12, "tokenSymbol": "UNIT"}
    def rpc_system_health(self, conn): return {"peers": 0, "isSyncing": False, "shouldHavePeers": False}
    def rpc_system_peers(self, conn): return []

    def rpc_system_accountNextIndex(self, conn, account):
        return self.chain.next_nonce(_account(account))

    def rpc_rpc_methods(self, conn):
        return {"version": 1, "methods": sorted(self.methods)}

    # ---------------------------------------------------------------------------------------------- chain
    def rpc_chain_getBlockHash(self, conn, number=None):
        if isinstance(number, list):
            return [self.rpc_chain_getBlockHash(conn, n) for n in number]
        if number is None:
            return hex0x(self.chain.head_hash)
        if isinstance(number, str):
            number = int(number, 16) if number.startswith("0x") else int(number)
        if not isinstance(number, int) or isinstance(number, bool) or not 0 <= number < 1 << 32:
            raise RpcError(-32602, "invalid params: block number must be an integer in [0, 2^32)")
        found = self.chain.block(number)
        return hex0x(found[0]) if found else None

    def _block_at(self, block_hash):
        number = self.chain.number_of(_opt_hash(block_hash))
        return self.chain.block(number)

    def rpc_chain_getHeader(self, conn, block_hash=None):
        try:
            found = self._block_at(block_hash)
        except LookupError:
            return None
        return header_json(found[1]) if found else None

    def rpc_chain_getBlock(self, conn, block_hash=None):
        try:
            found = self._block_at(block_hash)
        except LookupError:
            return None
        if not found:
            return None
        return {"block": {"header": header_json(found[1]), "extrinsics": [hex0x(x) for x in found[2]]},
                "justifications": None}

    def rpc_chain_getFinalizedHead(self, conn):
        return hex0x(self.chain.head_hash)

    def _head_subscription(self, conn, kind):
        sub_id = self._subscribe(conn, kind)
        conn.notify(sub_id, {"newHead": "chain_newHead", "allHead": "chain_allHead",
                             "finalizedHead": "chain_finalizedHead"}[kind], header_json(self.chain.head_header))
        return sub_id

    # A subscription's first notification is queued during the call, after the reply's place in the outbox.
    def rpc_chain_subscribeNewHeads(self, conn):
        return self._head_subscription(conn, "newHead")

    def rpc_chain_subscribeAllHeads(self, conn):
        return self._head_subscription(conn, "allHead")

    def rpc_chain_subscribeFinalizedHeads(self, conn):
        return self._head_subscription(conn, "finalizedHead")

    def rpc_chain_unsubscribeNewHeads(self, conn, sub_id): return self._unsubscribe(conn, sub_id)
    def rpc_chain_unsubscribeAllHeads(self, conn, sub_id): return self._unsubscribe(conn, sub_id)
    def rpc_chain_unsubscribeFinalizedHeads(self, conn, sub_id): return self._unsubscribe(conn, sub_id)

    # ---------------------------------------------------------------------------------------------- state
    def _version_json(self):
        v = self.chain.runtime.version()
        return {"specName": v["spec_name"], "implName": v["impl_name"], "authoringVersion": v["authoring_version"],
                "specVersion": v["spec_version"], "implVersion": v["impl_version"],
                "apis": [[hex0x(i), ver] for i, ver in v["apis"]], "transactionVersion": v["transaction_version"],
                "stateVersion": v["state_version"]}

    def rpc_state_getRuntimeVersion(self, conn, block_hash=None):
        self.chain.number_of(_opt_hash(block_hash))
        return self._version_json()

    def rpc_state_subscribeRuntimeVersion(self, conn):
        sub_id = self._subscribe(conn, "runtimeVersion")
        conn.notify(sub_id, "state_runtimeVersion", self._version_json())
        return sub_id

    def rpc_state_unsubscribeRuntimeVersion(self, conn, sub_id): return self._unsubscribe(conn, sub_id)

    def rpc_state_getMetadata(self, conn, block_hash=None):
        self.chain.number_of(_opt_hash(block_hash))
        return hex0x(self.chain.metadata(14))

    def rpc_state_getStorage(self, conn, key, block_hash=None):
        value = self.chain.storage_at(_opt_hash(block_hash)).get(_bytes_param(key, "key"))
        return hex0x(value) if value is not None else None

    def rpc_state_getStorageHash(self, conn, key, block_hash=None):
        value = self.chain.storage_at(_opt_hash(block_hash)).get(_bytes_param(key, "key"))
        return hex0x(blake2_256(value)) if value is not None else None

    def rpc_state_getStorageSize(self, conn, key, block_hash=None):
        value = self.chain.storage_at(_opt_hash(block_hash)).get(_bytes_param(key, "key"))
        return len(value) if value is not None else None

    def rpc_state_queryStorageAt(self, conn, keys, block_hash=None):
        at = _opt_hash(block_hash)
        storage = self.chain.storage_at(at)
        changes = []
        for key in keys:
            value = storage.get(_bytes_param(key, "key"))
            changes.append([key, hex0x(value) if value is not None else None])
        return [{"block": hex0x(at or self.chain.head_hash), "changes": changes}]

    def rpc_state_getKeysPaged(self, conn, prefix, count, start_key=None, block_hash=None):
        if not isinstance(count, int) or not 0 < count <= 1000:
            raise RpcError(-32602, "invalid params: count must be between 1 and 1000")
        storage = self.chain.storage_at(_opt_hash(block_hash))
        start = _bytes_param(start_key, "start_key") if start_key else None
        keys = []
        for key, _ in storage.iter_prefix(_bytes_param(prefix or "0x", "prefix"), start):
            keys.append(hex0x(key))
            if len(keys) >= count:
                break
        return keys

    def rpc_state_getKeys(self, conn, prefix, block_hash=None):
        storage = self.chain.storage_at(_opt_hash(block_hash))
        return [hex0x(k) for k, _ in storage.iter_prefix(_bytes_param(prefix or "0x", "prefix"))]

    def rpc_state_getPairs(self, conn, prefix, block_hash=None):
        storage = self.chain.storage_at(_opt_hash(block_hash))
        return [[hex0x(k), hex0x(v)] for k, v in storage.iter_prefix(_bytes_param(prefix or "0x", "prefix"))]

    def rpc_state_subscribeStorage(self, conn, keys=None):
        wanted = None if keys is None else {_bytes_param(k, "key") for k in keys}
        sub_id = self._subscribe(conn, "storage", wanted)
        if wanted is not None:
            conn.notify(sub_id, "state_storage", {"block": hex0x(self.chain.head_hash), "changes": [
                [hex0x(k), hex0x(v) if (v := self.chain.state.get(k)) is not None else None] for k in sorted(wanted)]})
        return sub_id

    def rpc_state_unsubscribeStorage(self, conn, sub_id): return self._unsubscribe(conn, sub_id)

    def rpc_state_call(self, conn, method, data, block_hash=None):
        if not isinstance(method, str):
            raise RpcError(-32602, "invalid params: method must be a string")
        args = _bytes_param(data or "0x", "data")
        try:
            result = self.chain.with_state(_opt_hash(block_hash), lambda runtime: self._runtime_api(runtime, method, args))
        except KeyError as exc:
            raise RpcError(-32000, f"Client error: Execution failed: {exc.args[0]}") from None
        return hex0x(result)

    def _runtime_api(self, runtime, method: str, args: bytes) -> bytes:
        if method == "Metadata_metadata":
            return Bytes.encode(self.chain.metadata(14))
        if method == "Metadata_metadata_at_version":
            version = U32.decode(args)
            return Option(Bytes).encode(self.chain.metadata(version) if version in (14, 15) else None)
        if method == "Metadata_metadata_versions":
            return Sequence(U32).encode([14, 15])
        if method in ("TransactionPaymentApi_query_info", "TransactionPaymentApi_query_fee_details"):
            uxt, length = _split_len(args)
            ext = decode(uxt)
            info = runtime.query_info(ext.call, length)
            if method.endswith("query_info"):
                return RuntimeDispatchInfo.encode(info)
            base = runtime.payment.BaseFee.get(runtime.storage)
            return FeeDetails.encode({"inclusion_fee": {"base_fee": base, "len_fee": info["partial_fee"] - base,
                                                        "adjusted_weight_fee": 0}, "tip": ext.tip})
        if method == "TaggedTransactionQueue_validate_transaction":
            return _validity(self.chain, args)
        return runtime.api_call(method, args)

    # --------------------------------------------------------------------------------------------- author
    # A submission is answered once the chain has written it (with the next block or pool flush, one disk write for
    # all submissions since the last one): an accepted transaction survives a crash.
    def rpc_author_submitExtrinsic(self, conn, extrinsic):
        ext_hash = self.chain.submit(_bytes_param(extrinsic, "extrinsic"), durable=False)
        return self._after_write(ext_hash, hex0x(ext_hash))

    def rpc_author_submitAndWatchExtrinsic(self, conn, extrinsic):
        if not conn.websocket:
            raise RpcError(-32601, "Subscriptions are only available over WebSocket")
        ext_hash = self.chain.submit(_bytes_param(extrinsic, "extrinsic"), durable=False)
        sub_id = self._subscribe(conn, "extrinsic", ext_hash)
        self.watchers.setdefault(ext_hash, []).append((conn, sub_id))
        conn.notify(sub_id, "author_extrinsicUpdate", "ready")
        return self._after_write(ext_hash, sub_id)

    def rpc_author_unwatchExtrinsic(self, conn, sub_id):
        found = conn.subscriptions.pop(str(sub_id), None)
        if found is None:
            return False
        watchers = self.watchers.get(found[1], [])
        watchers[:] = [w for w in watchers if w[1] != str(sub_id)]
        return True

    def rpc_author_pendingExtrinsics(self, conn):
        return [hex0x(tx.extrinsic.encoded) for tx in self.chain.pool.values()]

    def rpc_payment_queryInfo(self, conn, extrinsic, block_hash=None):
        raw = _bytes_param(extrinsic, "extrinsic")
        ext = decode(raw)
        info = self.chain.with_state(_opt_hash(block_hash), lambda runtime: runtime.query_info(ext.call, len(raw)))
        return {"weight": {"refTime": info["weight"]["ref_time"], "proofSize": info["weight"]["proof_size"]},
                "class": "normal", "partialFee": str(info["partial_fee"])}


async def _gather_list(replies: list) -> list:
    return [await r if isinstance(r, asyncio.Future) else r for r in replies]


def _storage_changes(block_hash: str, changes: dict[bytes, bytes | None], keys: tuple[bytes, ...]) -> dict:
    """A state_storage notification's result: `keys` (sorted) with their new values."""
    return {"block": block_hash, "changes": [[hex0x(k), hex0x(changes[k]) if changes[k] is not None else None]
                                             for k in keys]}


def _split_len(args: bytes) -> tuple[bytes, int]:
    """(extrinsic, u32 length) as TransactionPaymentApi takes them: the extrinsic is self-delimiting."""
    r = Reader(args)
    r.read(decode_compact(r))
    if r.remaining != 4:
        raise CodecError("expected the extrinsic followed by a u32 length")
    return args[:r.pos], U32.decode(args[r.pos:])


def _validity(chain: Chain, args: bytes) -> bytes:
    """TransactionValidity = Result<ValidTransaction, TransactionValidityError> for (source, tx, block_hash)."""
    r = Reader(args)
    r.byte()  # TransactionSource
    start = r.pos
    r.read(decode_compact(r))
    uxt = args[start:r.pos]
    try:
        ext = chain.check(uxt)
        valid = chain.runtime.validate_transaction(ext.signer, ext.nonce, ext.tip, ext.call, len(uxt))
    except (ExtrinsicError, InvalidTransaction):
        # Err(Invalid(Custom(0))): the precise reason travels in the RPC error of author_submitExtrinsic
        return b"\x01\x00\x08\x00"
    provides = [AccountId32.encode(ext.signer) + U32.encode(ext.nonce)]
    requires = [] if valid.requires is None else [AccountId32.encode(ext.signer) + U32.encode(ext.nonce - 1)]
    return (b"\x00" + U64.encode(valid.priority) + Sequence(Bytes).encode(requires) + Sequence(Bytes).encode(provides)
            + U64.encode(2**64 - 1) + b"\x01")
