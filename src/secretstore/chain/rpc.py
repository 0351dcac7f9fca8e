"""Asynchronous Substrate JSON-RPC over one WebSocket (aiohttp): requests multiplexed by id, so many can be in flight
at once, and subscriptions delivered to async iterators.

One `AsyncRpc` owns one connection and its reader task: both live from `connect()` to `close()` (or the `async with`
block). A lost connection fails every pending request and ends every subscription with `ChainError`; the owner decides
whether to connect again.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from typing import Any, Callable

import aiohttp

from ..codec.hashing import blake2_256
from ..codec.scale import encode_compact
from .errors import ChainError

log = logging.getLogger(__name__)

MAX_MESSAGE = 64 * 1024 * 1024  # metadata and whole blocks arrive in one message
_WAKE = object()  # queued by Subscription.wake: not a notification


class RpcError(ChainError):
    """The node answered a request with a JSON-RPC error (e.g. 1010 invalid transaction, -32602 bad params)."""

    def __init__(self, method: str, code: int | None, message: str, data: Any = None) -> None:
        detail = f" ({data})" if data else ""
        super().__init__(f"{method}: {message}{detail}" + (f" [{code}]" if code is not None else ""))
        self.method, self.code, self.reason, self.data = method, code, message, data


class Subscription:
    """Notifications of one subscription, in order. Iterate with `async for`, or take `latest()` to skip to the newest
    of those already queued (a slow consumer of heads only needs the last one)."""

    def __init__(self, rpc: "AsyncRpc", sub_id: str, unsubscribe: str,
                 sink: Callable[[Any], None] | None = None) -> None:
        self._rpc, self.id, self._unsubscribe = rpc, sub_id, unsubscribe
        self._queue: asyncio.Queue = asyncio.Queue()
        self._sink = sink  # takes each notification as it is read, instead of the queue

    @property
    def active(self) -> bool:
        """Still receiving (the connection it came on is up and it was not closed)."""
        return self._rpc._subscriptions.get(self.id) is self

    def _deliver(self, item: Any) -> None:
        if self._sink is not None:
            self._sink(item)
        else:
            self._queue.put_nowait(item)

    async def next(self) -> Any:
        item = await self._queue.get()
        while item is _WAKE:
            item = await self._queue.get()
        if isinstance(item, BaseException):
            self._queue.put_nowait(item)  # stays ended for later readers too
            raise item
        return item

    async def latest(self) -> Any:
        """Wait for a notification, then return the newest queued one."""
        items = await self.queued()
        while not items:
            items = await self.queued()
        return items[-1]

    async def queued(self) -> list[Any]:
        """Wait for a notification (or a `wake()`), then return every one already queued, oldest first: none if
        only woken."""
        items = [await self._queue.get()]
        while not self._queue.empty():
            items.append(self._queue.get_nowait())
        for item in items:
            if isinstance(item, BaseException):
                self._queue.put_nowait(item)  # stays ended for later readers too
                raise item
        return [item for item in items if item is not _WAKE]

    def wake(self) -> None:
        """Make a waiting `queued()` return at once (a reader that also waits for something else)."""
        self._queue.put_nowait(_WAKE)

    def __aiter__(self) -> "Subscription":
        return self

    async def __anext__(self) -> Any:
        return await self.next()

    async def close(self) -> None:
        self._rpc._subscriptions.pop(self.id, None)
        if self._rpc.connected:
            try:
                await self._rpc.request(self._unsubscribe, [self.id], timeout=5.0)
            except (ChainError, TimeoutError):
                pass  # the connection is going away anyway

    async def __aenter__(self) -> "Subscription":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class AsyncRpc:
    def __init__(self, url: str, timeout: float = 30.0) -> None:
        self.url = url
        self.timeout = timeout
        self._ids = itertools.count(1)
        self._pending: dict[int, tuple[str, asyncio.Future]] = {}
        self._subscriptions: dict[str, Subscription] = {}
        self._early: dict[str, list[Any]] = {}  # notifications that arrived before their subscription's id
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task | None = None

    @property
    def connected(self) -> bool:
        return self._ws is not None and not self._ws.closed

    async def connect(self) -> "AsyncRpc":
        if self.connected:
            return self
        if self._session is not None:  # the previous link is gone: release it before dialing again
            await self.close()
        session = aiohttp.ClientSession()
        try:
            async with asyncio.timeout(self.timeout):
                self._ws = await session.ws_connect(self.url, max_msg_size=MAX_MESSAGE, heartbeat=20.0)
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            await session.close()
            raise ChainError(f"cannot connect to {self.url}: {exc or type(exc).__name__}") from None
        except BaseException:  # cancelled while dialing: the session must not outlive us
            await asyncio.shield(session.close())
            raise
        self._session = session
        self._reader = asyncio.get_running_loop().create_task(self._read(self._ws), name="rpc-reader")
        return self

    async def close(self) -> None:
        reader, self._reader = self._reader, None
        if self._ws is not None:
            await self._ws.close()
        if reader is not None:
            reader.cancel()
            try:
                await reader
            except (asyncio.CancelledError, Exception):  # noqa: BLE001 - the reader's end is reported via _fail_all
                pass
        if self._session is not None:
            await self._session.close()
        self._ws = self._session = None
        self._fail_all(ChainError(f"connection to {self.url} closed"))

    async def __aenter__(self) -> "AsyncRpc":
        return await self.connect()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ----------------------------------------------------------------------------------------------- requests
    async def request(self, method: str, params: list | None = None, timeout: float | None = None) -> Any:
        if not self.connected:
            raise ChainError(f"not connected to {self.url}")
        assert self._ws is not None
        request_id = next(self._ids)
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        self._pending[request_id] = (method, future)
        try:
            await self._ws.send_str(json.dumps({"jsonrpc": "2.0", "id": request_id, "method": method,
                                                "params": params or []}))
            async with asyncio.timeout(timeout or self.timeout):
                return await future
        except (aiohttp.ClientError, ConnectionError) as exc:
            raise ChainError(f"{method}: connection lost: {exc}") from None
        except TimeoutError:
            raise ChainError(f"{method}: no answer within {timeout or self.timeout:.0f}s") from None
        finally:
            self._pending.pop(request_id, None)

    async def subscribe(self, method: str, params: list | None, unsubscribe: str,
                        sink: Callable[[Any], None] | None = None) -> Subscription:
        """A subscription whose notifications queue up for its reader, or go to `sink` as they are read."""
        sub_id = await self.request(method, params)
        subscription = Subscription(self, str(sub_id), unsubscribe, sink)
        self._subscriptions[subscription.id] = subscription
        for item in self._early.pop(subscription.id, []):
            subscription._deliver(item)
        return subscription

    # ---------------------------------------------------------------------------------------------- the reader
    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        try:
            async for message in ws:
                if message.type != aiohttp.WSMsgType.TEXT:
                    if message.type in (aiohttp.WSMsgType.ERROR, aiohttp.WSMsgType.CLOSED):
                        break
                    continue
                try:
                    self._dispatch(json.loads(message.data))
                except (ValueError, KeyError, TypeError) as exc:
                    log.warning("malformed message from the node", extra={"error": str(exc)})
        finally:
            self._fail_all(ChainError(f"connection to {self.url} lost"))

    def _dispatch(self, message: dict) -> None:
        if "id" in message and message["id"] is not None:
            entry = self._pending.get(message["id"])
            if entry is None or entry[1].done():
                return
            method, future = entry
            error = message.get("error")
            if error is not None:
                future.set_exception(RpcError(method, error.get("code"), str(error.get("message")), error.get("data")))
            else:
                future.set_result(message.get("result"))
            return
        params = message.get("params") or {}
        sub_id = str(params.get("subscription"))
        subscription = self._subscriptions.get(sub_id)
        if subscription is not None:
            subscription._deliver(params.get("result"))
        elif len(self._early) < 1024:
            self._early.setdefault(sub_id, []).append(params.get("result"))

    def _fail_all(self, error: ChainError) -> None:
        for _, future in list(self._pending.values()):
            if not future.done():
                future.set_exception(error)
        for subscription in list(self._subscriptions.values()):
            subscription._deliver(error)
        self._subscriptions.clear()
        self._early.clear()


def header_hash(header: dict) -> str:
    """The hash of a JSON header as Substrate computes it: blake2_256 of the SCALE-encoded header (parent hash,
    compact number, state root, extrinsics root, digest logs), so a head notification needs no second request."""
    def raw(value: str) -> bytes:
        return bytes.fromhex(value[2:] if value.startswith("0x") else value)

    number = header["number"]
    number = int(number, 16) if isinstance(number, str) else int(number)
    logs = [raw(item) for item in header["digest"]["logs"]]
    encoded = (raw(header["parentHash"]) + encode_compact(number) + raw(header["stateRoot"])
               + raw(header["extrinsicsRoot"]) + encode_compact(len(logs)) + b"".join(logs))
    return "0x" + blake2_256(encoded).hex()


def header_number(header: dict) -> int:
    number = header["number"]
    return int(number, 16) if isinstance(number, str) else int(number)
