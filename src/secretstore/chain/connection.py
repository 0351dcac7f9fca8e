"""The chain for asyncio code: one WebSocket for requests and subscriptions (`AsyncRpc`), and substrate-interface for
what needs the chain's metadata (composing and signing calls, decoding events and module errors).

substrate-interface is synchronous and not thread-safe, so it lives in one worker thread of its own; everything else
(state calls, head subscriptions, submissions) goes over the async socket, many requests in flight at once.

- `ChainConnection`: reads, signing, events of a block.
- `TransactionSubmitter`: one account's transactions with nonces kept locally, so many can be in the pool at once.
- `feed.BlockFeed` (beside this module): every finalized block once, in order, with its extrinsic hashes and events.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, TypeVar

from scalecodec.base import ScaleBytes
from substrateinterface import Keypair, SubstrateInterface
from substrateinterface.exceptions import SubstrateRequestException
from websocket import WebSocketException

from ..codec.hashing import blake2_256, storage_prefix
from .client import SECRETSTORE_TYPES, ChainEvent, event_from_record
from .errors import ChainError
from .events import EventsDecodeError, EventsDecoder
from .extrinsics import ExtrinsicSigner
from .registry import Unsupported
from .rpc import AsyncRpc, RpcError, Subscription, header_number

log = logging.getLogger(__name__)
T = TypeVar("T")
# scalecodec keeps shared registry state while it decodes metadata: connections in one process initialise one at a time
_RUNTIME_INIT = threading.Lock()


class TransactionRejected(ChainError):
    """The node refused the transaction before inclusion (JSON-RPC errors 1010 invalid, 1011 unknown, 1012 banned)."""

    def __init__(self, code: int | None, message: str) -> None:
        super().__init__(f"transaction rejected{f' ({code})' if code is not None else ''}: {message}")
        self.code = code
        self.reason = message


@dataclass(frozen=True)
class Block:
    number: int
    hash: str
    extrinsic_hashes: tuple[str, ...] | None  # None: the body was not read (nobody waited for an inclusion)
    events: tuple[ChainEvent, ...]

    def extrinsic_events(self, extrinsic_hash: str) -> tuple[ChainEvent, ...] | None:
        """The events of one extrinsic of this block, or None if it is not in this block."""
        if self.extrinsic_hashes is None:
            return None
        try:
            index = self.extrinsic_hashes.index(extrinsic_hash)
        except ValueError:
            return None
        return tuple(e for e in self.events if e.extrinsic_index == index)


SYSTEM_EVENTS_KEY = "0x" + storage_prefix("System", "Events").hex()
PUSHED_EVENTS_KEPT = 64  # blocks whose pushed events are kept (a follower more than this behind reads them)
_NOT_PUSHED = object()


def _decode_events(api: SubstrateInterface, raw: str | None) -> list[ChainEvent]:
    if raw is None:  # no events stored in this block
        return []
    storage = api.metadata.get_metadata_pallet("System").get_storage_function("Events")
    decoded = api.runtime_config.create_scale_object(type_string=storage.get_value_type_string(),
                                                     data=ScaleBytes(raw), metadata=api.metadata)
    decoded.decode()
    return [event_from_record(record) for record in decoded.elements]


class _PinnedSubstrateInterface(SubstrateInterface):
    """substrate-interface reads the chain head, its header and the runtime version again before every compose and
    sign (several blocking requests per transaction). Here the runtime read at connect stays in use until
    `repin()` (after a runtime upgrade shows as a refused signature), and the genesis hash is read once."""

    _pinned = False
    _genesis: str | None = None

    def init_runtime(self, block_hash=None, block_id=None):  # noqa: D102 - same contract as the library's
        if block_hash is None and block_id is None and self._pinned:
            return
        super().init_runtime(block_hash=block_hash, block_id=block_id)
        self._pinned = True

    def get_block_hash(self, block_id: int | None = None) -> str:
        if block_id == 0:
            if self._genesis is None:
                self._genesis = super().get_block_hash(0)
            return self._genesis
        return super().get_block_hash(block_id)

    def repin(self) -> None:
        self._pinned = False
        self.init_runtime()


class ChainConnection:
    def __init__(self, url: str, timeout: float = 30.0) -> None:
        self.url = url
        self.timeout = timeout
        self.rpc = AsyncRpc(url, timeout)
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="substrate-interface")
        self._api: _PinnedSubstrateInterface | None = None
        self._events: EventsDecoder | None = None  # V14 chains: events decoded here, not in the worker
        self._signer: ExtrinsicSigner | None = None  # V14 chains with known extensions: signed here too
        # System.Events of recent blocks as the node pushed them (block hash -> raw value), see `_push_events`
        self._pushed_events: dict[str, str | None] = {}
        self._events_feed: Subscription | None = None

    async def connect(self) -> "ChainConnection":
        await self.rpc.connect()
        if self._api is None:
            self._api = await self._in_worker(self._open_api)
            await self._in_worker(self._read_types)
        return self

    def _read_types(self) -> None:
        """The events decoder and the signer of the pinned runtime (None where substrate-interface must do it)."""
        assert self._api is not None
        self._events = EventsDecoder.from_metadata(self._api.metadata, self._api.ss58_format or 42)
        self._signer = None if self._events is None else ExtrinsicSigner.from_api(self._api, self._events.types)

    def _open_api(self) -> _PinnedSubstrateInterface:
        try:
            with _RUNTIME_INIT:
                api = _PinnedSubstrateInterface(url=self.url, ss58_format=42, use_remote_preset=False,
                                                type_registry=SECRETSTORE_TYPES)
                api.init_runtime()
            return api
        except (OSError, ConnectionError, SubstrateRequestException) as exc:
            raise ChainError(f"cannot connect to {self.url}: {exc}") from None

    async def close(self) -> None:
        await self.rpc.close()
        api, self._api = self._api, None
        if api is not None:
            await self._in_worker(api.close)
        self._worker.shutdown(wait=False)

    async def __aenter__(self) -> "ChainConnection":
        return await self.connect()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _in_worker(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(self.timeout):
            return await loop.run_in_executor(self._worker, fn, *args)

    def _with_api(self, fn: Callable[[_PinnedSubstrateInterface], T]) -> Callable[[], T]:
        def run() -> T:
            if self._api is None:
                raise ChainError("not connected")
            try:
                return fn(self._api)
            except (BrokenPipeError, ConnectionError, OSError, WebSocketException):
                # its own socket dropped (e.g. the node restarted): open it again once
                with contextlib.suppress(Exception):
                    self._api.close()
                self._api = self._open_api()  # ChainError while the node is still down
                try:
                    return fn(self._api)
                except (OSError, WebSocketException) as exc:  # lost again: the callers' error type
                    raise ChainError(f"node unavailable: {exc}") from None
        return run

    # ---------------------------------------------------------------------------------------------------- reads
    async def state_call(self, method: str, args: bytes, block_hash: str | None = None) -> bytes:
        params = [method, "0x" + args.hex()] + ([block_hash] if block_hash else [])
        result = await self.rpc.request("state_call", params)
        return bytes.fromhex(result[2:])

    async def finalized_heads(self) -> Subscription:
        """Headers of finalized blocks (the current one first); `header_hash` gives a header's hash. Their events
        come pushed (`_push_events`), so `events` and `block` need no read of them."""
        await self._push_events()
        return await self.rpc.subscribe("chain_subscribeFinalizedHeads", [], "chain_unsubscribeFinalizedHeads")

    async def _push_events(self) -> None:
        """Have the node push every block's System.Events (`state_subscribeStorage`, standard Substrate RPC), kept
        by block hash: one round trip less per block for whoever follows blocks. Subscribed before the heads, the
        events of a block arrive before its head. A block whose events did not change (so none were pushed) or that
        fell out of the last PUSHED_EVENTS_KEPT is read as before; a best block that never becomes final is only
        never asked for."""
        if self._events_feed is not None and self._events_feed.active:
            return
        self._pushed_events.clear()

        def keep(notification: Any) -> None:
            if not isinstance(notification, dict) or not isinstance(notification.get("block"), str):
                return  # the connection's end (an error) or something malformed: reads take over
            for change in notification.get("changes") or ():
                if isinstance(change, list) and len(change) == 2 and str(change[0]).lower() == SYSTEM_EVENTS_KEY \
                        and (change[1] is None or isinstance(change[1], str)):
                    self._pushed_events[notification["block"].lower()] = change[1]
                    while len(self._pushed_events) > PUSHED_EVENTS_KEPT:
                        del self._pushed_events[next(iter(self._pushed_events))]

        try:
            self._events_feed = await self.rpc.subscribe("state_subscribeStorage", [[SYSTEM_EVENTS_KEY]],
                                                         "state_unsubscribeStorage", sink=keep)
        except RpcError as exc:  # a node that refuses it (its RPC policy): every block's events are read instead
            log.info("events are read, not pushed", extra={"error": str(exc)})

    async def _raw_events(self, block_hash: str) -> str | None:
        pushed = self._pushed_events.get(block_hash.lower(), _NOT_PUSHED)
        if pushed is not _NOT_PUSHED:
            return pushed  # type: ignore[return-value]
        return await self.rpc.request("state_getStorage", [SYSTEM_EVENTS_KEY, block_hash])

    async def finalized_head(self) -> tuple[int, str]:
        block_hash = await self.rpc.request("chain_getFinalizedHead")
        header = await self.rpc.request("chain_getHeader", [block_hash])
        return header_number(header), block_hash

    async def block_hash(self, number: int) -> str | None:
        return await self.rpc.request("chain_getBlockHash", [number])

    async def _decoded_events(self, raw_events: str | None, block_number: int | None = None) -> list[ChainEvent]:
        """Events against the pinned runtime's types (as the block's parent runs it, barring a runtime upgrade):
        decoded here for V14 chains; in the worker, by substrate-interface, for older metadata or if ours fail.
        Each carries `block_number` when it is given."""
        if self._events is not None:
            try:
                return self._events.decode(bytes.fromhex(raw_events[2:]) if raw_events else b"", block_number)
            except EventsDecodeError as exc:
                log.debug("events decoded by substrate-interface instead", extra={"error": str(exc)})
        events = await self._in_worker(self._with_api(lambda api: _decode_events(api, raw_events)))
        return events if block_number is None else [dataclasses.replace(e, block_number=block_number) for e in events]

    async def events(self, block_hash: str) -> list[ChainEvent]:
        """The events of one block."""
        return await self._decoded_events(await self._raw_events(block_hash))

    async def block_events(self, block_hash: str, number: int) -> Block:
        """A block with its decoded events only (no body read)."""
        return Block(number, block_hash, None, tuple(await self._decoded_events(await self._raw_events(block_hash),
                                                                               number)))

    async def block(self, block_hash: str) -> Block:
        """A block's extrinsic hashes and decoded events: two requests at once."""
        body, raw_events = await asyncio.gather(self.rpc.request("chain_getBlock", [block_hash]),
                                                self._raw_events(block_hash))
        block = body["block"]
        number = header_number(block["header"])
        events = await self._decoded_events(raw_events, number)
        hashes = tuple("0x" + blake2_256(bytes.fromhex(x[2:])).hex() for x in block["extrinsics"])
        return Block(number, block_hash, hashes, tuple(events))

    async def account_next_index(self, address: str) -> int:
        return int(await self.rpc.request("system_accountNextIndex", [address]))

    def module_error(self, dispatch_error: Any) -> tuple[str | None, str, str]:
        """(pallet, error name, docs) of an ExtrinsicFailed's dispatch_error, named from the chain's metadata."""
        if isinstance(dispatch_error, dict) and "Module" in dispatch_error:
            module = dispatch_error["Module"]
            index, error = (module if isinstance(module, tuple) else (module["index"], module["error"]))
            if isinstance(error, str):  # [u8; 4] in newer runtimes: the first byte is the error's index
                error = int(error[2:4], 16)
            elif isinstance(error, (bytes, tuple, list)):
                error = error[0]
            assert self._api is not None
            found = self._api.metadata.get_module_error(module_index=index, error_index=error)
            pallet = next((p.name for p in self._api.metadata.pallets if p.value["index"] == index), None)
            return pallet, found.name, " ".join(found.docs or [])
        name = next(iter(dispatch_error)) if isinstance(dispatch_error, dict) else str(dispatch_error)
        return None, name, ""

    async def repin_runtime(self) -> None:
        """Read the chain's runtime (metadata, versions) again: after an upgrade old signatures are refused."""
        await self._in_worker(self._with_api(lambda api: api.repin()))
        await self._in_worker(self._read_types)

    # -------------------------------------------------------------------------------------------------- writes
    async def sign(self, pallet: str, call: str, params: dict[str, Any], keypair: Keypair, nonce: int) -> tuple[str, str]:
        """The signed extrinsic (hex) of `pallet.call(params)` with this nonce, and its hash. The call is composed by
        name from the chain's metadata."""
        if self._signer is not None:
            try:
                return self._signer.sign(self._signer.call_data(pallet, call, params), keypair, nonce)
            except Unsupported as exc:
                log.debug("signed by substrate-interface instead", extra={"call": call, "reason": str(exc)})

        def build(api: SubstrateInterface) -> tuple[str, str]:
            composed = api.compose_call(call_module=pallet, call_function=call, call_params=params)
            extrinsic = api.create_signed_extrinsic(call=composed, keypair=keypair, nonce=nonce)
            return str(extrinsic.data), "0x" + extrinsic.extrinsic_hash.hex()
        try:
            return await self._in_worker(self._with_api(build))
        except (ValueError, TypeError, KeyError) as exc:  # scalecodec's refusals of bad params
            raise ChainError(f"cannot compose {pallet}.{call}: {exc}") from None


def _stale_runtime(error: RpcError) -> bool:
    """A signature the node refuses although it was made right: signed for a runtime version it no longer runs."""
    text = f"{error.reason} {error.data or ''}".lower()
    return error.code == 1010 and ("bad signature" in text or "badproof" in text or "bad proof" in text)


def _nonce_conflict(error: RpcError) -> bool:
    text = f"{error.reason} {error.data or ''}".lower()
    return error.code in (1012, 1013, 1014) or (error.code == 1010 and ("stale" in text or "outdated" in text))


class TransactionSubmitter:
    """Signs and sends one account's transactions. Nonces are kept here (read from the chain once, then counted), so
    transactions go out back to back without waiting for blocks; when another submitter of the same account took a
    nonce, the next one is read again and the transaction re-signed. Transactions submitted while others are being
    sent wait and then go out together (group commit): signed with consecutive nonces and sent back to back over the
    one connection, their acknowledgements awaited together, so a node that acknowledges only what is on disk (ours,
    at its next block or flush) is waited for once per group, not once per transaction."""

    RETRIES = 8
    MAX_GROUP = 64

    def __init__(self, chain: ChainConnection, keypair: Keypair) -> None:
        self.chain = chain
        self.keypair = keypair
        self._nonce: int | None = None
        self._lock = asyncio.Lock()
        self._waiting: list[tuple[tuple[str, str, dict[str, Any]], asyncio.Future]] = []

    async def submit(self, pallet: str, call: str, params: dict[str, Any]) -> str:
        """Send the transaction to the pool; its extrinsic hash. TransactionRejected if the node refuses it."""
        result = (await self.submit_many([(pallet, call, params)]))[0]
        if isinstance(result, Exception):
            raise result
        return result

    async def submit_many(self, calls: list[tuple[str, str, dict[str, Any]]]) -> list[str | Exception]:
        """Send several transactions; for each, its extrinsic hash or the error (TransactionRejected, ChainError)."""
        loop = asyncio.get_running_loop()
        mine = [(call, loop.create_future()) for call in calls]
        self._waiting.extend(mine)
        try:
            while not all(future.done() for _, future in mine):
                async with self._lock:
                    if all(future.done() for _, future in mine):
                        break
                    group, self._waiting = self._waiting[:self.MAX_GROUP], self._waiting[self.MAX_GROUP:]
                    try:
                        results = await self._send_group([call for call, _ in group])
                    except BaseException as exc:  # cancelled or a bug: nobody of the group may wait forever
                        for _, future in group:
                            if not future.done():
                                future.set_result(exc if isinstance(exc, Exception) else ChainError("cancelled"))
                        raise
                    for (_, future), result in zip(group, results):
                        future.set_result(result)
        finally:  # a caller that gave up takes back what nobody has sent yet
            self._waiting = [entry for entry in self._waiting if all(entry is not m for m in mine)]
        return [future.result() for _, future in mine]

    async def _send_group(self, calls: list[tuple[str, str, dict[str, Any]]]) -> list[str | Exception]:
        """(Lock held.) A refused transaction is sent again on its own, after the nonce is read again (the node
        counts those of the group it pooled, so the gap it left is filled)."""
        if len(calls) == 1:
            try:
                return [await self._submit_one(*calls[0])]
            except (ChainError, OSError, TimeoutError) as exc:
                return [exc]
        results: list[str | Exception | None] = [None] * len(calls)
        sent: list[tuple[int, str, str]] = []  # (index in calls, extrinsic, hash)
        try:
            if self._nonce is None:
                self._nonce = await self.chain.account_next_index(self.keypair.ss58_address)
            for index, (pallet, call, params) in enumerate(calls):
                try:
                    extrinsic, extrinsic_hash = await self.chain.sign(pallet, call, params, self.keypair,
                                                                      self._nonce + len(sent))
                except ChainError as exc:  # this call cannot be composed: it takes no nonce
                    results[index] = exc
                    continue
                sent.append((index, extrinsic, extrinsic_hash))
        except (ChainError, OSError, TimeoutError) as exc:
            return [exc] * len(calls)
        replies = await asyncio.gather(*(self.chain.rpc.request("author_submitExtrinsic", [extrinsic])
                                         for _, extrinsic, _ in sent), return_exceptions=True)
        if any(isinstance(reply, BaseException) for reply in replies):
            self._nonce = None
        else:
            self._nonce += len(sent)
        for (index, _, extrinsic_hash), reply in zip(sent, replies):
            if not isinstance(reply, BaseException):
                results[index] = extrinsic_hash
            elif isinstance(reply, RpcError):
                try:
                    results[index] = await self._submit_one(*calls[index])
                except (ChainError, OSError, TimeoutError) as exc:
                    results[index] = exc
            elif isinstance(reply, Exception):
                results[index] = reply
            else:
                raise reply
        return results  # type: ignore[return-value]

    async def _submit_one(self, pallet: str, call: str, params: dict[str, Any]) -> str:
        """(Lock held.) One transaction, re-signed with a fresh nonce while another submitter took its nonce."""
        for attempt in range(self.RETRIES):
            if self._nonce is None:
                self._nonce = await self.chain.account_next_index(self.keypair.ss58_address)
            extrinsic, extrinsic_hash = await self.chain.sign(pallet, call, params, self.keypair, self._nonce)
            try:
                await self.chain.rpc.request("author_submitExtrinsic", [extrinsic])
            except RpcError as exc:
                if _nonce_conflict(exc) and attempt < self.RETRIES - 1:
                    self._nonce = None
                    await asyncio.sleep(0.01 * attempt)
                    continue
                if _stale_runtime(exc) and attempt == 0:
                    await self.chain.repin_runtime()
                    continue
                raise TransactionRejected(exc.code, exc.reason + (f" ({exc.data})" if exc.data else "")) from None
            self._nonce += 1
            return extrinsic_hash
        raise AssertionError("unreachable")

    def forget_nonce(self) -> None:
        """Read the nonce from the chain again before the next transaction (after a reconnect)."""
        self._nonce = None
