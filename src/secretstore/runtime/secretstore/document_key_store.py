"""Document key store: the author of a server key asks the key servers to store a document key it generated for
that key (its common and encrypted points); every key server of the current set must report it stored.
"""

from __future__ import annotations

from itertools import islice
from typing import Any

from ...codec.primitives import H256
from ...codec.scale import U128
from ..dispatch import Context
from ..storage import Storage
from . import responses as rs
from .base import SecretStoreBase, storage_item
from .types import DocumentKeyStoreRequest


class DocumentKeyStore(SecretStoreBase):
    DocumentKeyStoreFee = storage_item("DocumentKeyStoreFee", U128, default=bytes(16),
                                       docs="Fee of store_document_key.")
    DocumentKeyStoreRequests = storage_item("DocumentKeyStoreRequests", DocumentKeyStoreRequest,
                                            ["Blake2_128Concat"], H256, docs="Pending document key store requests.")

    def call_store_document_key(self, ctx: Context, id: bytes, common_point: bytes, encrypted_point: bytes) -> None:
        author = self.entity_of(ctx.storage, ctx.signed())
        self._check_point(common_point, "InvalidCommonPoint")
        self._check_point(encrypted_point, "InvalidEncryptedPoint")
        self._accept_request(ctx, self.DocumentKeyStoreRequests, id, self.DocumentKeyStoreFee)
        self.DocumentKeyStoreRequests.put(ctx.storage, {
            "author": author, "common_point": common_point, "encrypted_point": encrypted_point,
            "responses": rs.new_state(self.current_set_change_block(ctx.storage))}, id)
        self.deposit(ctx.storage, "DocumentKeyStoreRequested", id=id, author=author, common_point=common_point,
                     encrypted_point=encrypted_point)

    def call_document_key_stored(self, ctx: Context, id: bytes) -> None:
        self._unanimous(ctx, self.DocumentKeyStoreRequests, id, b"stored",
                        lambda _: self.deposit(ctx.storage, "DocumentKeyStored", id=id), "DocumentKeyStoreError")

    def call_document_key_store_error(self, ctx: Context, id: bytes) -> None:
        def respond(request: dict, index: int, n: int) -> None:
            self.DocumentKeyStoreRequests.remove(ctx.storage, id)
            self.deposit(ctx.storage, "DocumentKeyStoreError", id=id)

        self._respond(ctx, self.DocumentKeyStoreRequests, id, respond)

    def restart_document_key_store_requests(self, storage: Storage, block: int) -> None:
        self._restart_votes(storage, self.DocumentKeyStoreRequests, ("responses",), block)

    @staticmethod
    def document_key_store_responses_awaited(request: dict, n: int, block: int) -> int:
        """Every key server answers a store (see `SecretStore.responses_awaited`)."""
        state = request["responses"]
        rs.refresh(state, block)
        return n - rs.responded_count(state)

    # -------------------------------------------------------------------------- read surface (SecretStoreServiceApi)
    def document_key_store_tasks(self, storage: Storage, begin: int, end: int) -> list[tuple[str, Any]]:
        page = islice(self.DocumentKeyStoreRequests.items(storage), begin, max(begin, end))
        return [("StoreDocumentKey", (k, r["author"], r["common_point"], r["encrypted_point"])) for k, r in page]

    def is_document_key_store_response_required(self, storage: Storage, key_server: bytes, key: bytes) -> bool:
        return self._vote_required(storage, self.DocumentKeyStoreRequests, "responses", key_server, key)
