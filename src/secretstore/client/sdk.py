"""The Python SDK: the SecretStore flows over Substrate JSON-RPC, each returning typed results or raising a named error.

    client = SecretStoreClient("ws://127.0.0.1:9944", "//Alice")
    client.claim_key(key_id)
    server_key = client.generate_server_key(key_id, threshold=1)
    generated = client.store_new_document_key(key_id, server_key, author_secret)
    encrypted = encrypt_document(generated.document_key, b"Hello, world!")
    document_key = client.retrieve_document_key(key_id, requester_secret)

Every request call waits for its result event on a finalized block (or the matching error event).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any, Callable

from substrateinterface import Keypair

from ..chain.client import ChainError, ChainEvent, DispatchFailed, Receipt, SubstrateChain, TransactionRejected
from ..chain.secretstore_api import KeyServerSetSnapshot, decode_result, encode_call, snapshot_from
from ..crypto import Address, Public, Secret, ServerKeyId
from ..crypto.document import (
    GeneratedDocumentKey, decrypt_document, encrypt_document, generate_document_key, recover_document_key,
)

DEFAULT_TIMEOUT = 60.0


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


class SecretStoreClient:
    """Synchronous client. `signer` is a SURI (e.g. "//Alice") or a substrate-interface Keypair."""

    def __init__(self, url: str, signer: str | Keypair, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.keypair = signer if isinstance(signer, Keypair) else Keypair.create_from_uri(signer)
        self.chain = SubstrateChain(url, signer=self.keypair)
        self.timeout = timeout

    def close(self) -> None:
        self.chain.close()

    def __enter__(self) -> "SecretStoreClient":
        self.chain.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------------------------------------ plumbing
    def submit(self, call: str, **params: Any) -> Receipt:
        """Submit any SecretStore call and wait until it is in a block; DispatchFailed names the module error."""
        return self.chain.submit("SecretStore", call, params, wait_for="in_block")

    def _request(self, call: str, params: dict, key_id: ServerKeyId, done: Callable[[ChainEvent], bool],
                 failed: set[str], collect: Callable[[list[ChainEvent]], bool] | None = None) -> list[ChainEvent]:
        receipt = self.submit(call, **params)
        try:
            events = self.chain.wait_for_events(
                lambda e: e.pallet == "SecretStore" and _bytes(e.attributes.get("id", b"")) == bytes(key_id) and (
                    done(e) or e.name in failed),
                from_block=receipt.block_number or 0, timeout=self.timeout,
                stop_when=lambda found: any(e.name in failed for e in found) or (collect or bool)(found))
        except ChainError as exc:
            if "timed out" in str(exc):
                raise RequestTimeout(f"{call} for key {key_id.hex()}: no result event: {exc}") from None
            raise
        for event in events:
            if event.name in failed:
                raise RequestFailed(event.name, key_id)
        return events

    # ----------------------------------------------------------------------------------------------- ownership
    def claim_key(self, key_id: ServerKeyId) -> None:
        self.submit("claim_key", id=key_id.hex())

    def transfer_key(self, key_id: ServerKeyId, new_owner: Address) -> None:
        self.submit("transfer_key", id=key_id.hex(), new_claimant=new_owner.hex())

    # ------------------------------------------------------------------------------------------------- services
    def generate_server_key(self, key_id: ServerKeyId, threshold: int) -> Public:
        events = self._request("generate_server_key", {"id": key_id.hex(), "threshold": threshold}, key_id,
                               lambda e: e.name == "ServerKeyGenerated", {"ServerKeyGenerationError"})
        return Public(_bytes(events[0].attributes["public"]))

    def retrieve_server_key(self, key_id: ServerKeyId) -> Public:
        events = self._request("retrieve_server_key", {"id": key_id.hex()}, key_id,
                               lambda e: e.name == "ServerKeyRetrieved", {"ServerKeyRetrievalError"})
        return Public(_bytes(events[0].attributes["public"]))

    def store_document_key(self, key_id: ServerKeyId, common_point: Public, encrypted_point: Public) -> None:
        self._request("store_document_key", {"id": key_id.hex(), "common_point": common_point.hex(),
                                             "encrypted_point": encrypted_point.hex()}, key_id,
                      lambda e: e.name == "DocumentKeyStored", {"DocumentKeyStoreError"})

    def store_new_document_key(self, key_id: ServerKeyId, server_key: Public, author: Secret) -> GeneratedDocumentKey:
        """Generate a document key for the server key and store it with the key servers."""
        generated = generate_document_key(server_key, author.public())
        self.store_document_key(key_id, generated.common_point, generated.encrypted_point)
        return generated

    def retrieve_document_key_shadow(self, key_id: ServerKeyId, requester: Secret) -> DocumentKeyShadow:
        requester_id = bytes(requester.public().address())

        def mine(e: ChainEvent) -> bool:
            return _bytes(e.attributes.get("requester", b"")) == requester_id and e.name in (
                "DocumentKeyCommonRetrieved", "DocumentKeyPersonalRetrieved")

        events = self._request("retrieve_document_key_shadow", {"id": key_id.hex(),
                                                                 "requester_public": requester.public().hex()},
                               key_id, mine, {"DocumentKeyShadowRetrievalError"},
                               lambda found: shadow_retrieval_result(found) is not None)
        result = shadow_retrieval_result(events)
        assert result is not None  # the wait above ends only on an error event (raised) or a complete result
        common, decrypted, shadows = result
        return DocumentKeyShadow(Public(_bytes(common.attributes["common_point"])), common.attributes["threshold"],
                                 Public(decrypted), shadows)

    def retrieve_document_key(self, key_id: ServerKeyId, requester: Secret) -> Public:
        """Shadow retrieval plus local decryption: the document key, which only the requester can compute."""
        return self.retrieve_document_key_shadow(key_id, requester).document_key(requester)

    # -------------------------------------------------------------------------------------------- key server set
    def key_server_set(self) -> KeyServerSetSnapshot:
        """The current / new sets and the running migration (SecretStoreKeyServerSetApi_snapshot)."""
        name = "SecretStoreKeyServerSetApi_snapshot"
        # asked for the zero id: the sets do not depend on who asks, only `is_confirmed` does
        return snapshot_from(decode_result(name, self.chain.state_call(name, encode_call(name, bytes(20)))))

    def wait_for_key_server_set(self, ids: list[Address], timeout: float | None = None) -> None:
        """Until no migration runs and the current set is exactly `ids` (e.g. after add/remove_key_server)."""
        deadline = time.monotonic() + (timeout or self.timeout)
        wanted = sorted(bytes(i) for i in ids)
        while True:
            snap = self.key_server_set()
            if snap.migration is None and sorted(bytes(ks_id) for ks_id in snap.current_set) == wanted:
                return
            if time.monotonic() > deadline:
                raise RequestTimeout("the key server set did not reach the expected members in time")
            time.sleep(0.2)

    @staticmethod
    def encrypt_document(document_key: Public, plaintext: bytes) -> bytes:
        return encrypt_document(document_key, plaintext)

    @staticmethod
    def decrypt_document(document_key: Public, encrypted: bytes) -> bytes:
        return decrypt_document(document_key, encrypted)


class AsyncSecretStoreClient:
    """The same flows for asyncio code; each call runs the blocking client in a worker thread with a timeout."""

    def __init__(self, url: str, signer: str | Keypair, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.sync = SecretStoreClient(url, signer, timeout)
        self.timeout = timeout

    async def _run(self, fn: Callable, *args: Any) -> Any:
        async with asyncio.timeout(self.timeout + 10):
            return await asyncio.to_thread(fn, *args)

    async def claim_key(self, key_id: ServerKeyId) -> None:
        await self._run(self.sync.claim_key, key_id)

    async def transfer_key(self, key_id: ServerKeyId, new_owner: Address) -> None:
        await self._run(self.sync.transfer_key, key_id, new_owner)

    async def generate_server_key(self, key_id: ServerKeyId, threshold: int) -> Public:
        return await self._run(self.sync.generate_server_key, key_id, threshold)

    async def retrieve_server_key(self, key_id: ServerKeyId) -> Public:
        return await self._run(self.sync.retrieve_server_key, key_id)

    async def store_new_document_key(self, key_id: ServerKeyId, server_key: Public, author: Secret) -> GeneratedDocumentKey:
        return await self._run(self.sync.store_new_document_key, key_id, server_key, author)

    async def retrieve_document_key_shadow(self, key_id: ServerKeyId, requester: Secret) -> DocumentKeyShadow:
        return await self._run(self.sync.retrieve_document_key_shadow, key_id, requester)

    async def retrieve_document_key(self, key_id: ServerKeyId, requester: Secret) -> Public:
        return await self._run(self.sync.retrieve_document_key, key_id, requester)

    async def aclose(self) -> None:
        await asyncio.to_thread(self.sync.close)


__all__ = ["SecretStoreClient", "AsyncSecretStoreClient", "DocumentKeyShadow", "SecretStoreError", "RequestFailed",
           "RequestTimeout", "ChainError", "DispatchFailed", "TransactionRejected"]
