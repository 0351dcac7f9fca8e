"""The node's JSON-RPC server: WebSocket (at / and /ws) and HTTP POST transport served by aiohttp, request parsing,
dispatch to the method groups' handlers, error replies, and the subscription table notified at every block."""

from __future__ import annotations

import asyncio
import inspect
import itertools
import json
import logging
from typing import Any, Awaitable, Callable, Iterable

from aiohttp import WSMsgType, web

from ...codec.scale import CodecError
from ..chain import BlockInfo, Chain
from ..extrinsic import ExtrinsicError
from ..sealing import BlockProduction
from .connection import Connection, text_frame, write_frames
from .group import MethodGroup, Notifier
from .groups import GROUPS
from .params import RpcError

log = logging.getLogger(__name__)

MAX_REQUEST_SIZE = 16 * 1024 * 1024
_PLAIN_RESULTS = {dict, list, str, int, bool, float, type(None)}  # skip the awaitable test for the usual results
WRITE_BUFFER_LIMIT = 4 * 1024 * 1024  # bytes waiting in a connection's socket buffer before its writer waits


class RpcServer:
    """Serves the methods of `groups` (each a `MethodGroup` class, the node's own by default) over one chain, whose
    blocks `production` seals (see `BlockProduction` for `block_time` and `seal_per_transaction`)."""

    def __init__(self, chain: Chain, *, block_time: float | None = None, seal_per_transaction: bool = False,
                 groups: Iterable[type[MethodGroup]] = GROUPS) -> None:
        self.chain = chain
        self.production = BlockProduction(chain, block_time=block_time, seal_per_transaction=seal_per_transaction)
        self.connections: set[Connection] = set()
        self._ids = itertools.count(1)
        self.groups = [group(self) for group in groups]
        # one table for every name, built once: a request costs one lookup
        self.methods: dict[str, Callable[..., Any]] = {}
        for group in self.groups:
            for name, handler in group.handlers().items():
                if name in self.methods:
                    raise ValueError(f"JSON-RPC method {name} is served by two method groups")
                self.methods[name] = handler
        chain.listeners.append(self._on_block)

    def run_block_production(self) -> Awaitable[None]:
        return self.production.run()

    # ------------------------------------------------------------------------------------------------ transport
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
        writer_task = asyncio.create_task(_write(conn, request.transport))
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
            for group in self.groups:
                group.closed(conn)
            # let queued replies drain before closing, bounded so a dead peer cannot hold us
            try:
                async with asyncio.timeout(2):
                    while not conn.outbox.empty() and not ws.closed:
                        await asyncio.sleep(0.01)
            except TimeoutError:
                pass
            writer_task.cancel()
        return ws

    # ------------------------------------------------------------------------------------------------- requests
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
                raise RpcError(-32602, f"invalid params: {_wrong_call(handler, exc)}") from None
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

    # -------------------------------------------------------------------------------------------- subscriptions
    def subscribe(self, conn: Connection, kind: str, data: Any = None) -> str:
        """A new subscription id of `conn`, notified as `kind` (see `MethodGroup`)."""
        if not conn.websocket:
            raise RpcError(-32601, "Subscriptions are only available over WebSocket")
        sub_id = f"{next(self._ids):016x}"
        conn.subscriptions[sub_id] = (kind, data)
        return sub_id

    def unsubscribe(self, conn: Connection, sub_id: Any) -> bool:
        return conn.subscriptions.pop(str(sub_id), None) is not None

    def _on_block(self, block: BlockInfo) -> None:
        notifiers: dict[str, Notifier] = {}
        for group in self.groups:
            notifiers.update(group.notifiers(block))
        for conn in list(self.connections):
            for sub_id, (kind, data) in list(conn.subscriptions.items()):
                notify = notifiers.get(kind)
                if notify is not None:
                    notify(conn, sub_id, data)
        for group in self.groups:
            group.after_block(block)


async def _write(conn: Connection, transport: Any) -> None:
    """`conn`'s writer. Everything already queued goes out in one write: one system call for many replies and
    notifications (each its own WebSocket frame) instead of one per message."""
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


def _wrong_call(handler: Callable[..., Any], exc: TypeError) -> str:
    """A TypeError's message, naming the handler `RpcServer.rpc_<method>` as clients have always read it, not after
    the group class that serves it (which is no part of the interface)."""
    message, own = str(exc), handler.__qualname__ + "("
    return "RpcServer." + handler.__name__ + message[len(own) - 1:] if message.startswith(own) else message


async def _gather_list(replies: list) -> list:
    return [await r if isinstance(r, asyncio.Future) else r for r in replies]
