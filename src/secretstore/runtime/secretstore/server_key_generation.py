"""Server key generation: an entity asks for a new server key with a threshold; every key server of the current set
takes part in the generation and reports the public, and the request settles once all n agree on it (or once they
no longer can, or on any key server's error report).
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
from .types import ERROR_THRESHOLD, ServerKeyGenerationRequest


class ServerKeyGeneration(SecretStoreBase):
    ServerKeyGenerationFee = storage_item("ServerKeyGenerationFee", U128, default=bytes(16),
                                          docs="Fee of generate_server_key.")
    ServerKeyGenerationRequests = storage_item("ServerKeyGenerationRequests", ServerKeyGenerationRequest,
                                               ["Blake2_128Concat"], H256,
                                               docs="Pending server key generation requests.")

    def call_generate_server_key(self, ctx: Context, id: bytes, threshold: int) -> None:
        author = self.entity_of(ctx.storage, ctx.signed())
        if threshold >= ERROR_THRESHOLD or threshold + 1 > len(self.current_set(ctx.storage)):
            raise self.error("InvalidThreshold")
        self._accept_request(ctx, self.ServerKeyGenerationRequests, id, self.ServerKeyGenerationFee)
        self.ServerKeyGenerationRequests.put(ctx.storage, {
            "author": author, "threshold": threshold,
            "responses": rs.new_state(self.current_set_change_block(ctx.storage))}, id)
        self.deposit(ctx.storage, "ServerKeyGenerationRequested", id=id, author=author, threshold=threshold)

    def call_server_key_generated(self, ctx: Context, id: bytes, server_key_public: bytes) -> None:
        self._check_point(server_key_public, "InvalidServerKeyPublic")
        self._unanimous(ctx, self.ServerKeyGenerationRequests, id, server_key_public,
                        lambda public: self.deposit(ctx.storage, "ServerKeyGenerated", id=id, public=public),
                        "ServerKeyGenerationError")

    def call_server_key_generation_error(self, ctx: Context, id: bytes) -> None:
        def respond(request: dict, index: int, n: int) -> None:
            self.ServerKeyGenerationRequests.remove(ctx.storage, id)
            self.deposit(ctx.storage, "ServerKeyGenerationError", id=id)

        self._respond(ctx, self.ServerKeyGenerationRequests, id, respond)

    def restart_server_key_generation_requests(self, storage: Storage, block: int) -> None:
        self._restart_votes(storage, self.ServerKeyGenerationRequests, ("responses",), block)

    @staticmethod
    def server_key_generation_responses_awaited(request: dict, n: int, block: int) -> int:
        """Every key server answers a generation (see `SecretStore.responses_awaited`)."""
        state = request["responses"]
        rs.refresh(state, block)
        return n - rs.responded_count(state)

    # -------------------------------------------------------------------------- read surface (SecretStoreServiceApi)
    def server_key_generation_tasks(self, storage: Storage, begin: int, end: int) -> list[tuple[str, Any]]:
        page = islice(self.ServerKeyGenerationRequests.items(storage), begin, max(begin, end))
        return [("GenerateServerKey", (k, r["author"], r["threshold"])) for k, r in page]

    def is_server_key_generation_response_required(self, storage: Storage, key_server: bytes, key: bytes) -> bool:
        return self._vote_required(storage, self.ServerKeyGenerationRequests, "responses", key_server, key)
