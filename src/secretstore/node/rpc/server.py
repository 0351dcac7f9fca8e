"""The node's JSON-RPC server: WebSocket (at / and /ws) and HTTP POST transport served by aiohttp, request parsing,
dispatch to the method groups' handlers, error replies, and the subscription table notified at every block. The
transport enforces the limits of `RpcLimits` (see `limits`) with the answers a Substrate node gives."""

from __future__ import annotations

import asyncio
import inspect
import itertools
import json
import logging
from collections import Counter
from typing import Any, Awaitable, Callable, Iterable

from aiohttp import WSMsgType, web

from ...codec.scale import CodecError
from ..chain import BlockInfo, Chain
from ..extrinsic import ExtrinsicError
from ..sealing import BlockProduction
from .connection import Connection, text_frame, write_frames
from .group import MethodGroup, Notifier
from .groups import GROUPS
from .limits import (ORIGIN_REFUSED, RATE_LIMIT_WAITS, TOO_MANY_CONNECTIONS, RateLimiter, RpcLimits,
                     TooManySubscriptions, encode_reply, guard_unsafe, rate_limit_delay, rate_limit_exceeded,
                     request_too_big)
from .params import RpcError

log = logging.getLogger(__name__)

_PLAIN_RESULTS = {dict, list, str, int, bool, float, type(None)}  # skip the awaitable test for the usual results
WRITE_BUFFER_LIMIT = 4 * 1024 * 1024  # bytes waiting in a connection's socket buffer before its writer waits


class RpcServer:
    """Serves the methods of `groups` (each a `MethodGroup` class, the node's own by default) over one chain, whose
    blocks `production` seals (see `BlockProduction` for `block_time` and `seal_per_transaction`), within `limits`;
    `deny_unsafe` refuses the unsafe methods (`RpcLimits.denies_unsafe` decides it from the listening address).
    `refused` counts what the limits turned away, by reason."""

    def __init__(self, chain: Chain, *, block_time: float | None = None, seal_per_transaction: bool = False,
                 groups: Iterable[type[MethodGroup]] = GROUPS, limits: RpcLimits = RpcLimits(),
                 deny_unsafe: bool = False) -> None:
        self.chain = chain
        self.limits = limits
        self.refused: Counter[str] = Counter()
        self.open = 0  # WebSocket connections and HTTP requests being served: what --rpc-max-connections bounds
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
        if deny_unsafe:
            guard_unsafe(self.methods, self.refused)
        chain.listeners.append(self._on_block)

    def run_block_production(self) -> Awaitable[None]:
        return self.production.run()

    # ------------------------------------------------------------------------------------------------ transport
    def app(self) -> web.Application:
        app = web.Application(client_max_size=self.limits.max_request_size)
        app.router.add_get("/", self._websocket)
        app.router.add_get("/ws", self._websocket)
        app.router.add_post("/", self._http)
        app.router.add_route("OPTIONS", "/", self._preflight)
        return app

    def _refusal(self, request: web.Request) -> web.Response | None:
        """The answer that turns `request` away before it is served: over the connection limit, or from a browser
        origin --rpc-cors does not allow. None when it may go on."""
        if self.open >= self.limits.max_connections:
            self.refused["connections"] += 1
            return web.Response(status=429, text=TOO_MANY_CONNECTIONS)
        if not self.limits.cors.allows(request.headers.get("Origin"), request.host):
            self.refused["origin"] += 1
            return web.Response(status=403, text=ORIGIN_REFUSED)
        return None

    async def _preflight(self, request: web.Request) -> web.Response:
        """A browser's CORS preflight of an HTTP call: allowed origins may POST JSON."""
        origin = request.headers.get("Origin")
        if origin is None or not self.limits.cors.allows(origin, request.host):
            return web.Response(status=403, text=ORIGIN_REFUSED)
        return web.Response(headers={
            "Access-Control-Allow-Origin": origin, "Access-Control-Allow-Methods": "POST",
            "Access-Control-Allow-Headers": request.headers.get("Access-Control-Request-Headers", "content-type"),
            "Vary": "Origin"})

    async def _http(self, request: web.Request) -> web.Response:
        refusal = self._refusal(request)
        if refusal is not None:
            return refusal
        self.open += 1
        try:
            conn = Connection(websocket=False)
            if self.limits.rate_limit is not None:  # as in Substrate, each HTTP request has a quota of its own
                conn.limiter = RateLimiter(self.limits.rate_limit)
            try:
                body = await request.text()
            except web.HTTPRequestEntityTooLarge:
                self.refused["request_size"] += 1
                return web.Response(status=413, text=json.dumps(request_too_big(self.limits.max_request_size)),
                                    content_type="application/json")
            except UnicodeDecodeError:  # aiohttp would answer 500
                body = "\ufffd"  # not JSON: a Parse error
            reply = self.handle_text(body, conn)
            if isinstance(reply, asyncio.Future):
                reply = await reply
        finally:
            self.open -= 1
        response = web.Response(text=encode_reply(reply, self.limits.max_response_size, self.refused),
                                content_type="application/json")
        origin = request.headers.get("Origin")
        if origin is not None:  # allowed, or _refusal would have answered: let the browser read the reply
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Vary"] = "Origin"
        return response

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Upgrade", "").lower() != "websocket":
            return web.Response(text="SecretStore node: JSON-RPC over WebSocket here, or HTTP POST\n")
        refusal = self._refusal(request)
        if refusal is not None:
            return refusal
        self.open += 1
        try:
            return await self._serve_websocket(request)
        finally:
            self.open -= 1

    async def _serve_websocket(self, request: web.Request) -> web.WebSocketResponse:
        limits = self.limits
        # a message up to twice the limit is read and answered "Request is too big"; a longer one is not read at
        # all: aiohttp closes the connection with 1009 (message too big), which bounds the memory a client can hold
        ws = web.WebSocketResponse(max_msg_size=2 * limits.max_request_size, heartbeat=30)
        await ws.prepare(request)
        conn = Connection()
        if limits.rate_limit is not None:
            conn.limiter = RateLimiter(limits.rate_limit)
        self.connections.add(conn)
        writer_task = asyncio.create_task(_write(conn, request.transport, limits.max_response_size, self.refused))
        loop = asyncio.get_running_loop()
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    # the reply's place in the outbox is taken first: notifications the call queues (a new
                    # subscription's first one) follow it. Handling is synchronous, so requests keep their order,
                    # and a reply that must wait (a submission) does not stop the next request from being read.
                    slot = loop.create_future()
                    conn.send(slot)
                    if limits.request_too_large(msg.data):
                        self.refused["request_size"] += 1
                        reply = request_too_big(limits.max_request_size)
                    else:
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
        """The reply to a request or batch (within the request size limit, which the transport checks): a message,
        or a Future of one when some call must wait."""
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
        """The reply to one call: a message, or a Future of one (for a call whose result must wait, or that waits for
        its connection's rate limit)."""
        if conn.limiter is not None:
            wait = conn.limiter.take()
            if wait:
                return asyncio.ensure_future(self._when_allowed(request, conn, wait))
        return self._dispatch(request, conn)

    async def _when_allowed(self, request: Any, conn: Connection, wait: float) -> Any:
        """Substrate's rate limit: a call over the quota waits until the quota allows one (a wait it may lose to
        another call of the connection, then it waits again); after the tenth wait it is refused. Calls of one
        connection that wait may be answered in another order than they were sent."""
        for attempt in range(1, RATE_LIMIT_WAITS + 1):
            await asyncio.sleep(rate_limit_delay(wait))
            if conn.websocket and conn not in self.connections:
                return None  # closed meanwhile: nobody to answer
            if attempt < RATE_LIMIT_WAITS:
                wait = conn.limiter.take()
                if not wait:
                    reply = self._dispatch(request, conn)
                    return await reply if isinstance(reply, asyncio.Future) else reply
        self.refused["rate_limit"] += 1
        rid = request.get("id") if isinstance(request, dict) else None
        return rate_limit_exceeded(rid if rid.__class__ in (int, str) else None)

    def _dispatch(self, request: Any, conn: Connection) -> Any:
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
    def check_can_subscribe(self, conn: Connection) -> None:
        """Raise the error a new subscription of `conn` would get: for a method that must refuse before acting (a
        submission that would be watched)."""
        if not conn.websocket:
            raise RpcError(-32601, "Subscriptions are only available over WebSocket")
        if len(conn.subscriptions) >= self.limits.max_subscriptions:
            self.refused["subscriptions"] += 1
            raise TooManySubscriptions(self.limits.max_subscriptions)

    def subscribe(self, conn: Connection, kind: str, data: Any = None) -> str:
        """A new subscription id of `conn`, notified as `kind` (see `MethodGroup`); every group's subscriptions
        count toward the connection's limit."""
        self.check_can_subscribe(conn)
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


async def _write(conn: Connection, transport: Any, max_response: int, refused: Counter) -> None:
    """`conn`'s writer. Everything already queued goes out in one write: one system call for many replies and
    notifications (each its own WebSocket frame) instead of one per message. Replies (not yet encoded, unlike
    notifications) are held to the response size limit as they are encoded."""
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
                frames.append(text_frame(message if isinstance(message, str)
                                         else encode_reply(message, max_response, refused)))
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
