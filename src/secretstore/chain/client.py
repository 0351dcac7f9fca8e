"""A Substrate JSON-RPC client for SecretStore chains, built on the unmodified substrate-interface package.

Key servers and the SDK reach the chain only through this: the same code serves our embedded node and any Substrate chain
that runs the SecretStore module. substrate-interface is synchronous and its websocket is not thread-safe, so every
request holds a lock; `AsyncChain` runs requests in worker threads with a timeout each.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, TypeVar

from substrateinterface import Keypair, SubstrateInterface
from substrateinterface.exceptions import SubstrateRequestException
from websocket import WebSocketBadStatusException, WebSocketConnectionClosedException, WebSocketException

from ..runtime.secretstore.pallet import EVENTS as SECRETSTORE_EVENTS
from ..runtime.secretstore.pallet import NAME as SECRETSTORE_EVENTS_PALLET

log = logging.getLogger(__name__)

# The SecretStore pallet's named types, for chains whose metadata predates V14 (such metadata names types rather than
# describing them, e.g. MathChain 0.7.0); V14 metadata describes every type itself and does not use these.
# KeyServersMask is Parity's {low: u128, high: u128}: the same 32 bytes as a little-endian U256.
SECRETSTORE_TYPES = {"types": {
    "ServerKeyId": "H256", "EntityId": "H160", "KeyServerId": "H160", "MigrationId": "H256",
    "KeyServerNetworkAddress": "Vec<u8>", "KeyServersMask": "U256",
}}

WaitFor = Literal["pool", "in_block", "finalized"]
# scalecodec keeps shared registry state while it decodes metadata: connections in one process initialise one at a time
_RUNTIME_INIT = threading.Lock()
T = TypeVar("T")


class ChainError(Exception):
    """The chain could not be reached, or answered something unexpected."""


class TransactionRejected(ChainError):
    """The node refused the transaction before inclusion (JSON-RPC errors 1010 invalid, 1011 unknown, 1012 banned)."""

    def __init__(self, code: int | None, message: str) -> None:
        super().__init__(f"transaction rejected{f' ({code})' if code is not None else ''}: {message}")
        self.code = code
        self.reason = message


class DispatchFailed(ChainError):
    """The transaction was included but its call failed; `error` is the module error's name, e.g. 'NotAnOwner'."""

    def __init__(self, pallet: str | None, error: str, docs: str, receipt: "Receipt") -> None:
        super().__init__(f"{pallet + '.' if pallet else ''}{error}" + (f": {docs}" if docs else ""))
        self.pallet = pallet
        self.error = error
        self.docs = docs
        self.receipt = receipt


@dataclass(frozen=True)
class ChainEvent:
    pallet: str
    name: str
    attributes: Any  # dict for named fields, tuple for unnamed ones, None for none
    extrinsic_index: int | None = None


@dataclass(frozen=True)
class Receipt:
    extrinsic_hash: str
    block_hash: str | None = None
    block_number: int | None = None
    success: bool | None = None
    events: tuple[ChainEvent, ...] = ()
    error: dict | None = None


def _normalise_attributes(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_normalise_attributes(v) for v in value)
    if isinstance(value, tuple):
        return tuple(_normalise_attributes(v) for v in value)
    if isinstance(value, dict):
        return {k: _normalise_attributes(v) for k, v in value.items()}
    return value


def _named(pallet: str, name: str, attributes: Any) -> Any:
    """Metadata before V14 gives event fields without names: name the SecretStore pallet's from its declaration
    (Parity's field order), so that readers see the same dict on every chain."""
    if pallet != SECRETSTORE_EVENTS_PALLET or not isinstance(attributes, tuple):
        return attributes
    variant = SECRETSTORE_EVENTS.by_name.get(name)
    if variant is None or len(variant.fields) != len(attributes) or not all(f.name for f in variant.fields):
        return attributes
    return {f.name: value for f, value in zip(variant.fields, attributes)}


def event_from_record(record: Any) -> ChainEvent:
    """A substrate-interface EventRecord (decoded System.Events entry) as a ChainEvent."""
    value = record.value if hasattr(record, "value") else record
    event = value.get("event", value)
    idx = value.get("extrinsic_idx")
    return ChainEvent(
        pallet=event["module_id"],
        name=event["event_id"],
        attributes=_named(event["module_id"], event["event_id"], _normalise_attributes(event.get("attributes"))),
        extrinsic_index=idx,
    )


@dataclass
class SubstrateChain:
    """A blocking connection to a Substrate node. Safe to share between threads."""

    url: str
    signer: Keypair | None = None
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    _api: SubstrateInterface | None = field(default=None, repr=False)

    # ------------------------------------------------------------------------------------------------- connection
    def connect(self) -> "SubstrateChain":
        with self._lock:
            if self._api is None:
                try:
                    with _RUNTIME_INIT:
                        api = SubstrateInterface(url=self.url, ss58_format=42, use_remote_preset=False,
                                                 type_registry=SECRETSTORE_TYPES)
                        api.init_runtime()
                    self._api = api
                except WebSocketBadStatusException as exc:  # its text carries the whole HTTP answer: keep one line
                    raise ChainError(f"cannot connect to {self.url}: not a WebSocket endpoint "
                                     f"(HTTP {exc.status_code})") from None
                except (OSError, ConnectionError, SubstrateRequestException, WebSocketException) as exc:
                    raise ChainError(f"cannot connect to {self.url}: {exc}") from exc
            return self

    def close(self) -> None:
        with self._lock:
            if self._api is not None:
                try:
                    self._api.close()
                finally:
                    self._api = None

    def __enter__(self) -> "SubstrateChain":
        return self.connect()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, fn: Callable[[SubstrateInterface], T]) -> T:
        """Run `fn` on the connection; a dropped connection is re-opened once."""
        with self._lock:
            self.connect()
            assert self._api is not None
            try:
                return fn(self._api)
            except (OSError, WebSocketConnectionClosedException) as exc:  # e.g. the node restarted
                log.info("chain connection lost, reconnecting", extra={"url": self.url, "error": str(exc)})
                self.close()
                self.connect()
                try:
                    return fn(self._api)
                except (OSError, WebSocketConnectionClosedException) as again:
                    self.close()
                    raise ChainError(f"connection to {self.url} lost: {again}") from None

    # ----------------------------------------------------------------------------------------------------- reads
    def finalized_head(self) -> tuple[int, str]:
        def read(api: SubstrateInterface) -> tuple[int, str]:
            block_hash = api.get_chain_finalised_head()
            return api.get_block_number(block_hash), block_hash
        return self._call(read)

    def best_head(self) -> tuple[int, str]:
        def read(api: SubstrateInterface) -> tuple[int, str]:
            block_hash = api.get_chain_head()
            return api.get_block_number(block_hash), block_hash
        return self._call(read)

    def block_hash(self, number: int) -> str | None:
        return self._call(lambda api: api.get_block_hash(number))

    def events(self, block_hash: str) -> list[ChainEvent]:
        return self._call(lambda api: [event_from_record(r) for r in api.get_events(block_hash)])

    def query(self, pallet: str, item: str, params: list | None = None, block_hash: str | None = None) -> Any:
        return self._call(lambda api: api.query(pallet, item, params or [], block_hash=block_hash).value)

    def query_map(self, pallet: str, item: str, params: list | None = None,
                  block_hash: str | None = None) -> list[tuple[Any, Any]]:
        def read(api: SubstrateInterface) -> list[tuple[Any, Any]]:
            return [(k.value, v.value) for k, v in api.query_map(pallet, item, params or [], block_hash=block_hash)]
        return self._call(read)

    def state_call(self, method: str, args: bytes, block_hash: str | None = None) -> bytes:
        """A runtime API call (e.g. 'SecretStoreRuntimeApi_check_key_access') with SCALE args; SCALE result bytes."""
        def call(api: SubstrateInterface) -> bytes:
            params = [method, "0x" + args.hex()] + ([block_hash] if block_hash else [])
            try:
                result = api.rpc_request("state_call", params)
            except SubstrateRequestException as exc:
                raise ChainError(f"{method} failed: {exc}") from exc
            return bytes.fromhex(result["result"][2:])
        return self._call(call)

    def account_nonce(self, ss58_or_hex: str) -> int:
        return self._call(lambda api: api.get_account_nonce(ss58_or_hex))

    # ---------------------------------------------------------------------------------------------------- writes
    def submit(self, pallet: str, call: str, params: dict[str, Any], *, wait_for: WaitFor = "in_block",
               signer: Keypair | None = None, raise_on_failure: bool = True) -> Receipt:
        """Sign `pallet.call(params)` and submit it.

        With wait_for "in_block" or "finalized" the receipt carries the block, the events the extrinsic triggered and its
        success; a failed dispatch raises `DispatchFailed` unless `raise_on_failure` is false.
        """
        keypair = signer or self.signer
        if keypair is None:
            raise ChainError("no signer configured for submitting transactions")

        def send(api: SubstrateInterface) -> Receipt:
            composed = api.compose_call(call_module=pallet, call_function=call, call_params=params)
            extrinsic = api.create_signed_extrinsic(call=composed, keypair=keypair)
            try:
                result = api.submit_extrinsic(extrinsic, wait_for_inclusion=wait_for != "pool",
                                              wait_for_finalization=wait_for == "finalized")
            except SubstrateRequestException as exc:
                info = exc.args[0] if exc.args and isinstance(exc.args[0], dict) else {}
                raise TransactionRejected(info.get("code"), str(info.get("message", exc)) +
                                          (f" ({info['data']})" if info.get("data") else "")) from None
            if wait_for == "pool":
                return Receipt(extrinsic_hash=result.extrinsic_hash)
            events = tuple(event_from_record(r) for r in result.triggered_events)
            receipt = Receipt(
                extrinsic_hash=result.extrinsic_hash,
                block_hash=result.block_hash,
                block_number=api.get_block_number(result.block_hash),
                success=result.is_success,
                events=events,
                error=result.error_message,
            )
            return receipt

        receipt = None
        for attempt in range(NONCE_RETRIES):
            try:
                receipt = self._call(send)
                break
            except TransactionRejected as exc:
                # another submitter of the same account took this nonce: sign again with a fresh one
                if attempt == NONCE_RETRIES - 1 or not _nonce_conflict(exc):
                    raise
                time.sleep(0.05 * (attempt + 1))
        assert receipt is not None
        if raise_on_failure and receipt.success is False:
            err = receipt.error or {}
            raise DispatchFailed(err.get("module") if isinstance(err.get("module"), str) else None,
                                 str(err.get("name", "unknown error")), " ".join(err.get("docs") or []), receipt)
        return receipt

    def wait_for_events(self, match: Callable[[ChainEvent], bool], *, from_block: int, timeout: float,
                        poll_interval: float = 0.1, stop_when: Callable[[list[ChainEvent]], bool] | None = None
                        ) -> list[ChainEvent]:
        """Scan finalized blocks from `from_block` on, collecting matching events until `stop_when(collected)` (default:
        the first match) holds or `timeout` seconds pass (then ChainError)."""
        deadline = time.monotonic() + timeout
        collected: list[ChainEvent] = []
        done = stop_when or (lambda found: bool(found))
        next_block = from_block
        while True:
            head, _ = self.finalized_head()
            while next_block <= head:
                block_hash = self.block_hash(next_block)
                collected.extend(e for e in self.events(block_hash) if match(e))
                next_block += 1
                if done(collected):
                    return collected
            if time.monotonic() > deadline:
                raise ChainError(f"timed out after {timeout:.0f}s waiting for events (scanned to block {next_block - 1})")
            time.sleep(poll_interval)


NONCE_RETRIES = 5


def _nonce_conflict(exc: TransactionRejected) -> bool:
    return exc.code == 1012 or (exc.code == 1010 and "outdated" in exc.reason)


class AsyncChain:
    """The same client for asyncio code: each request runs in a worker thread and has a timeout."""

    def __init__(self, chain: SubstrateChain, timeout: float = 30.0) -> None:
        self.chain = chain
        self.timeout = timeout

    async def run(self, fn: Callable[..., T], *args: Any, timeout: float | None = None, **kwargs: Any) -> T:
        async with asyncio.timeout(timeout or self.timeout):
            return await asyncio.to_thread(fn, *args, **kwargs)

    async def finalized_head(self) -> tuple[int, str]:
        return await self.run(self.chain.finalized_head)

    async def state_call(self, method: str, args: bytes, block_hash: str | None = None) -> bytes:
        return await self.run(self.chain.state_call, method, args, block_hash)

    async def submit(self, pallet: str, call: str, params: dict[str, Any], **kwargs: Any) -> Receipt:
        return await self.run(self.chain.submit, pallet, call, params, **kwargs)

    async def aclose(self) -> None:
        await asyncio.to_thread(self.chain.close)

