"""The Python SDK: the SecretStore flows over Substrate JSON-RPC, each returning typed results or raising a named error.

    client = SecretStoreClient("ws://127.0.0.1:9944", "//Alice")
    client.claim_key(key_id)
    server_key = client.generate_server_key(key_id, threshold=1)
    generated = client.store_new_document_key(key_id, server_key, author_secret)
    encrypted = encrypt_document(generated.document_key, b"Hello, world!")
    document_key = client.retrieve_document_key(key_id, requester_secret)

`AsyncSecretStoreClient` is the implementation: it follows finalized blocks by subscription (one feed per client,
shared by all its requests), and keeps its account's nonces locally, so many requests of one account can run at once
(`asyncio.gather`). `SecretStoreClient` runs it on an event loop thread of its own for blocking code. Every request
call waits for its result event (or the matching error event) in a finalized block.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Coroutine, TypeVar

from substrateinterface import Keypair

from .. import aio
from ..chain.client import ChainError, ChainEvent, DispatchFailed, Receipt
from ..chain.connection import ChainConnection, TransactionRejected, TransactionSubmitter
from ..chain.feed import BlockFeed
from ..chain.secretstore_api import KeyServerSetSnapshot, SecretStoreRuntimeApi
from ..crypto import Address, Public, Secret, ServerKeyId
from ..crypto.document import (
    GeneratedDocumentKey, decrypt_document, encrypt_document, generate_document_key, recover_document_key,
)

DEFAULT_TIMEOUT = 60.0
PALLET = "SecretStore"
T = TypeVar("T")


class SecretStoreError(Exception):
    """Base of the SDK's errors."""


class RequestFailed(SecretStoreError):
    """The key servers answered the request with an error event (e.g. ServerKeyGenerationError)."""

    def __init__(self, event: str, key_id: ServerKeyId) -> None:
        super().__init__(f"{event} for key {key_id.hex()}")
        self.event = event
        self.key_id = key_id


class RequestTimeout(SecretStoreError):
    pass


@dataclass(frozen=True)
class DocumentKeyShadow:
    """What a shadow retrieval returns: decrypt with the requester's secret (see `decrypt`)."""

    common_point: Public  # the common shadow point C'
    threshold: int
    decrypted_secret: Public
    shadows: tuple[bytes, ...]  # ECIES-encrypted to the requester, threshold + 1 of them

    def document_key(self, requester_secret: Secret) -> Public:
        return recover_document_key(self.common_point, self.decrypted_secret, self.shadows, requester_secret)


def _bytes(value: Any) -> bytes:
    if isinstance(value, str):
        return bytes.fromhex(value[2:] if value.startswith("0x") else value)
    return bytes(value)


def shadow_retrieval_result(events: list[ChainEvent]) -> tuple[ChainEvent, bytes, tuple[bytes, ...]] | None:
    """The common part and t + 1 personal parts of one participant set (same decrypted secret) among a retrieval's
    events, or None while incomplete. Shadows only combine within one set, hence the grouping."""
    common = next((e for e in events if e.name == "DocumentKeyCommonRetrieved"), None)
    if common is None:
        return None
    needed = common.attributes["threshold"] + 1
    groups: dict[bytes, list[bytes]] = {}
    for e in events:
        if e.name == "DocumentKeyPersonalRetrieved":
            shadows = groups.setdefault(_bytes(e.attributes["decrypted_secret"]), [])
            shadows.append(_bytes(e.attributes["shadow"]))
            if len(shadows) == needed:
                return common, _bytes(e.attributes["decrypted_secret"]), tuple(shadows)
    return None


async def _holds(condition: Callable[[list[ChainEvent]], bool | Awaitable[bool]], events: list[ChainEvent]) -> bool:
    result = condition(events)
    return bool(await result) if inspect.isawaitable(result) else bool(result)


def _about(key_id: ServerKeyId) -> Callable[[ChainEvent], bool]:
    return lambda e: e.pallet == PALLET and isinstance(e.attributes, dict) and \
        _bytes(e.attributes.get("id", b"")) == bytes(key_id)


class AsyncSecretStoreClient:
    """Asynchronous client. `signer` is a SURI (e.g. "//Alice") or a substrate-interface Keypair. Use as
    `async with AsyncSecretStoreClient(url, signer) as client:` (or `connect()` / `aclose()`)."""

    def __init__(self, url: str, signer: str | Keypair, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.keypair = signer if isinstance(signer, Keypair) else Keypair.create_from_uri(signer)
        self.url = url
        self.timeout = timeout
        self.chain = ChainConnection(url)
        self.runtime_api = SecretStoreRuntimeApi(self.chain.state_call)
        self.submitter = TransactionSubmitter(self.chain, self.keypair)
        self.feed = BlockFeed(self.chain)
        self._feed_task: asyncio.Task | None = None
        self._connect_lock = asyncio.Lock()

    async def connect(self) -> "AsyncSecretStoreClient":
        async with self._connect_lock:
            if self._feed_task is not None and not self._feed_task.done():
                return self
            await self.chain.connect()
            self.feed = BlockFeed(self.chain)
            self.submitter.forget_nonce()
            self._feed_task = asyncio.get_running_loop().create_task(self.feed.run(), name="block-feed")
            try:
                async with asyncio.timeout(self.timeout):
                    await asyncio.wait({self._feed_task, asyncio.ensure_future(self.feed.ready.wait())},
                                       return_when=asyncio.FIRST_COMPLETED)
            except TimeoutError:
                raise ChainError(f"no finalized head from {self.url}") from None
            if self._feed_task.done():
                self._feed_task.result()  # raises the feed's error
            return self

    async def aclose(self) -> None:
        task, self._feed_task = self._feed_task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except (asyncio.CancelledError, ChainError):
                pass
        await self.chain.close()

    async def __aenter__(self) -> "AsyncSecretStoreClient":
        return await self.connect()

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # ------------------------------------------------------------------------------------------------ plumbing
    def _receipt(self, extrinsic_hash: str, block, events: tuple[ChainEvent, ...]) -> Receipt:
        failed = next((e for e in events if e.pallet == "System" and e.name == "ExtrinsicFailed"), None)
        receipt = Receipt(extrinsic_hash, block.hash, block.number, failed is None, events,
                          None if failed is None else {"dispatch_error": failed.attributes["dispatch_error"]})
        if failed is not None:
            pallet, name, docs = self.chain.module_error(failed.attributes["dispatch_error"])
            raise DispatchFailed(pallet, name, docs, receipt)
        return receipt

    async def request(self, call: str, params: dict[str, Any], match: Callable[[ChainEvent], bool] | None = None,
                      finished: Callable[[list[ChainEvent]], bool | Awaitable[bool]] | None = None,
                      wait: str = "in_block", timeout: float | None = None,
                      pallet: str = PALLET) -> tuple[Receipt, list[ChainEvent]]:
        """Submit `pallet.call(params)` (SecretStore by default); wait for its block (`wait` "in_block" or "finalized": the same here,
        blocks are followed as they are finalized; "pool": return once the pool accepted it), then, if `match` is
        given, collect matching events of later blocks until `finished(collected)` holds (it is asked once with no
        events right after inclusion too). DispatchFailed names a module error; RequestTimeout if nothing decides in
        `timeout` seconds."""
        await self.connect()
        deadline = time.monotonic() + (timeout or self.timeout)
        async with self.feed.watch() as blocks, self.feed.expecting_inclusion() as included:
            extrinsic_hash = await self.submitter.submit(pallet, call, params)
            if wait == "pool":
                return Receipt(extrinsic_hash), []
            receipt: Receipt | None = None
            collected: list[ChainEvent] = []
            while True:
                try:
                    async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                        block = await blocks.get()
                except TimeoutError:
                    what = "inclusion" if receipt is None else "its result event"
                    raise RequestTimeout(f"{call}: no {what} within {timeout or self.timeout:.0f}s") from None
                if isinstance(block, BaseException):
                    raise block
                if receipt is None:
                    events = block.extrinsic_events(extrinsic_hash)
                    if events is None:
                        continue
                    included()  # later blocks are only needed for their events
                    receipt = self._receipt(extrinsic_hash, block, events)
                    if match is None or (finished is not None and await _holds(finished, collected)):
                        return receipt, []
                    continue  # key servers answer in later blocks
                assert match is not None
                found = [e for e in block.events if match(e)]
                if not found:
                    continue
                collected.extend(found)
                if finished is None or await _holds(finished, collected):
                    return receipt, collected

    async def submit(self, call: str, **params: Any) -> Receipt:
        """Submit any SecretStore call and wait until it is in a block; DispatchFailed names the module error."""
        receipt, _ = await self.request(call, params)
        return receipt

    async def _service(self, call: str, params: dict, key_id: ServerKeyId, done: Callable[[ChainEvent], bool],
                       failed: set[str], complete: Callable[[list[ChainEvent]], bool] | None = None
                       ) -> list[ChainEvent]:
        about = _about(key_id)
        _, events = await self.request(
            call, params, match=lambda e: about(e) and (done(e) or e.name in failed),
            finished=lambda found: any(e.name in failed for e in found) or (complete or bool)(found))
        for event in events:
            if event.name in failed:
                raise RequestFailed(event.name, key_id)
        return events

    # ----------------------------------------------------------------------------------------------- ownership
    async def claim_key(self, key_id: ServerKeyId) -> None:
        await self.submit("claim_key", id=key_id.hex())

    async def transfer_key(self, key_id: ServerKeyId, new_owner: Address) -> None:
        await self.submit("transfer_key", id=key_id.hex(), new_claimant=new_owner.hex())

    # ------------------------------------------------------------------------------------------------- services
    async def generate_server_key(self, key_id: ServerKeyId, threshold: int) -> Public:
        events = await self._service("generate_server_key", {"id": key_id.hex(), "threshold": threshold}, key_id,
                                     lambda e: e.name == "ServerKeyGenerated", {"ServerKeyGenerationError"})
        return Public(_bytes(events[0].attributes["public"]))

    async def retrieve_server_key(self, key_id: ServerKeyId) -> Public:
        events = await self._service("retrieve_server_key", {"id": key_id.hex()}, key_id,
                                     lambda e: e.name == "ServerKeyRetrieved", {"ServerKeyRetrievalError"})
        return Public(_bytes(events[0].attributes["public"]))

    async def store_document_key(self, key_id: ServerKeyId, common_point: Public, encrypted_point: Public) -> None:
        await self._service("store_document_key", {"id": key_id.hex(), "common_point": common_point.hex(),
                                                   "encrypted_point": encrypted_point.hex()}, key_id,
                            lambda e: e.name == "DocumentKeyStored", {"DocumentKeyStoreError"})

    async def store_new_document_key(self, key_id: ServerKeyId, server_key: Public,
                                     author: Secret) -> GeneratedDocumentKey:
        """Generate a document key for the server key and store it with the key servers."""
        generated = generate_document_key(server_key, author.public())
        await self.store_document_key(key_id, generated.common_point, generated.encrypted_point)
        return generated

    async def retrieve_document_key_shadow(self, key_id: ServerKeyId, requester: Secret) -> DocumentKeyShadow:
        requester_id = bytes(requester.public().address())

        def mine(e: ChainEvent) -> bool:
            return _bytes(e.attributes.get("requester", b"")) == requester_id and e.name in (
                "DocumentKeyCommonRetrieved", "DocumentKeyPersonalRetrieved", "DocumentKeyShadowRetrievalError")

        events = await self._service(
            "retrieve_document_key_shadow", {"id": key_id.hex(), "requester_public": requester.public().hex()},
            key_id, mine, {"DocumentKeyShadowRetrievalError"}, lambda found: shadow_retrieval_result(found) is not None)
        result = shadow_retrieval_result(events)
        assert result is not None  # the wait above ends only on an error event (raised) or a complete result
        common, decrypted, shadows = result
        return DocumentKeyShadow(Public(_bytes(common.attributes["common_point"])), common.attributes["threshold"],
                                 Public(decrypted), shadows)

    async def retrieve_document_key(self, key_id: ServerKeyId, requester: Secret) -> Public:
        """Shadow retrieval plus local decryption: the document key, which only the requester can compute."""
        return (await self.retrieve_document_key_shadow(key_id, requester)).document_key(requester)

    # -------------------------------------------------------------------------------------------- key server set
    async def key_server_set(self) -> KeyServerSetSnapshot:
        """The current / new sets and the running migration (SecretStoreKeyServerSetApi_snapshot), as seen by
        nobody in particular (`is_confirmed` is for the zero id)."""
        await self.connect()
        return await self.runtime_api.snapshot(Address(bytes(20)))

    async def wait_for_key_server_set(self, ids: list[Address], timeout: float | None = None) -> None:
        """Until no migration runs and the current set is exactly `ids` (e.g. after add/remove_key_server)."""
        wanted = sorted(bytes(i) for i in ids)
        try:
            async with asyncio.timeout(timeout or self.timeout):
                while True:
                    snap = await self.key_server_set()
                    if snap.migration is None and sorted(bytes(ks_id) for ks_id in snap.current_set) == wanted:
                        return
                    await asyncio.sleep(0.1)
        except TimeoutError:
            raise RequestTimeout("the key server set did not reach the expected members in time") from None

    @staticmethod
    def encrypt_document(document_key: Public, plaintext: bytes) -> bytes:
        return encrypt_document(document_key, plaintext)

    @staticmethod
    def decrypt_document(document_key: Public, encrypted: bytes) -> bytes:
        return decrypt_document(document_key, encrypted)


class _LoopThread:
    """An event loop on a daemon thread of its own, for the blocking client."""

    def __init__(self) -> None:
        self.loop = aio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="secretstore-client", daemon=True)
        self.thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float) -> T:
        future = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()
            raise RequestTimeout(f"no answer within {timeout:.0f}s") from None

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
        if not self.thread.is_alive():
            self.loop.close()


class SecretStoreClient:
    """Blocking client: the asynchronous one, run on an event loop thread of its own. Same methods, same errors."""

    def __init__(self, url: str, signer: str | Keypair, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.timeout = timeout
        self._thread = _LoopThread()
        self.aio = AsyncSecretStoreClient(url, signer, timeout)
        self.keypair = self.aio.keypair

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return self._thread.run(coroutine, self.timeout + 10)

    def connect(self) -> "SecretStoreClient":
        self._run(self.aio.connect())
        return self

    def close(self) -> None:
        try:
            self._run(self.aio.aclose())
        finally:
            self._thread.stop()

    def __enter__(self) -> "SecretStoreClient":
        return self.connect()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, call: str, params: dict[str, Any], match: Callable[[ChainEvent], bool] | None = None,
                finished: Callable[[list[ChainEvent]], bool] | None = None, wait: str = "in_block",
                timeout: float | None = None, pallet: str = PALLET) -> tuple[Receipt, list[ChainEvent]]:
        return self._thread.run(self.aio.request(call, params, match, finished, wait, timeout, pallet),
                                (timeout or self.timeout) + 10)

    def submit(self, call: str, **params: Any) -> Receipt:
        return self._run(self.aio.submit(call, **params))

    def claim_key(self, key_id: ServerKeyId) -> None:
        self._run(self.aio.claim_key(key_id))

    def transfer_key(self, key_id: ServerKeyId, new_owner: Address) -> None:
        self._run(self.aio.transfer_key(key_id, new_owner))

    def generate_server_key(self, key_id: ServerKeyId, threshold: int) -> Public:
        return self._run(self.aio.generate_server_key(key_id, threshold))

    def retrieve_server_key(self, key_id: ServerKeyId) -> Public:
        return self._run(self.aio.retrieve_server_key(key_id))

    def store_document_key(self, key_id: ServerKeyId, common_point: Public, encrypted_point: Public) -> None:
        self._run(self.aio.store_document_key(key_id, common_point, encrypted_point))

    def store_new_document_key(self, key_id: ServerKeyId, server_key: Public, author: Secret) -> GeneratedDocumentKey:
        return self._run(self.aio.store_new_document_key(key_id, server_key, author))

    def retrieve_document_key_shadow(self, key_id: ServerKeyId, requester: Secret) -> DocumentKeyShadow:
        return self._run(self.aio.retrieve_document_key_shadow(key_id, requester))

    def retrieve_document_key(self, key_id: ServerKeyId, requester: Secret) -> Public:
        return self._run(self.aio.retrieve_document_key(key_id, requester))

    def key_server_set(self) -> KeyServerSetSnapshot:
        return self._run(self.aio.key_server_set())

    def wait_for_key_server_set(self, ids: list[Address], timeout: float | None = None) -> None:
        self._thread.run(self.aio.wait_for_key_server_set(ids, timeout), (timeout or self.timeout) + 10)

    encrypt_document = staticmethod(encrypt_document)
    decrypt_document = staticmethod(decrypt_document)


__all__ = ["SecretStoreClient", "AsyncSecretStoreClient", "DocumentKeyShadow", "SecretStoreError", "RequestFailed",
           "RequestTimeout", "ChainError", "DispatchFailed", "TransactionRejected"]
