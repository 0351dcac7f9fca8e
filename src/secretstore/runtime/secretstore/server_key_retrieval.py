"""Server key retrieval: an entity asks for a server key's public; each key server reports the threshold and the
public it holds (or an error). A majority must agree on the threshold, then threshold + 1 on the public.
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
from .responses import Outcome
from .types import ERROR_THRESHOLD, ServerKeyRetrievalRequest


class ServerKeyRetrieval(SecretStoreBase):
    ServerKeyRetrievalFee = storage_item("ServerKeyRetrievalFee", U128, default=bytes(16),
                                         docs="Fee of retrieve_server_key.")
    ServerKeyRetrievalRequests = storage_item("ServerKeyRetrievalRequests", ServerKeyRetrievalRequest,
                                              ["Blake2_128Concat"], H256, docs="Pending server key retrieval requests.")

    def call_retrieve_server_key(self, ctx: Context, id: bytes) -> None:
        self.entity_of(ctx.storage, ctx.signed())
        self._accept_request(ctx, self.ServerKeyRetrievalRequests, id, self.ServerKeyRetrievalFee)
        block = self.current_set_change_block(ctx.storage)
        self.ServerKeyRetrievalRequests.put(ctx.storage, {
            "threshold_responses": rs.new_state(block), "public_responses": rs.new_state(block)}, id)
        self.deposit(ctx.storage, "ServerKeyRetrievalRequested", id=id)

    def _retrieval_response(self, ctx: Context, id: bytes, public: bytes | None, threshold: int) -> None:
        def respond(request: dict, index: int, n: int) -> None:
            block = self.current_set_change_block(ctx.storage)
            thresholds, publics = request["threshold_responses"], request["public_responses"]
            rs.refresh(thresholds, block)
            rs.refresh(publics, block)
            if rs.has_responded(thresholds, index):
                raise self.error("AlreadyResponded")
            t_outcome, t_value = rs.insert(thresholds, index, bytes([threshold]), n // 2, n)
            # an error answer still uses up this server's vote on the public
            rs.insert(publics, index, public if public is not None else b"", 0, n)
            result, event_public = Outcome.PENDING, None
            if t_outcome is Outcome.IMPOSSIBLE:
                result = Outcome.IMPOSSIBLE
            elif t_outcome is Outcome.CONFIRMED:
                agreed = t_value[0]
                if agreed == ERROR_THRESHOLD:
                    result = Outcome.IMPOSSIBLE
                else:
                    # errors (b"") never count as a public
                    publics_only = dict(publics)
                    publics_only["responses"] = [(r, s) for r, s in publics["responses"] if r]
                    p_outcome, p_value = rs.evaluate(publics_only, agreed, n)
                    result, event_public = p_outcome, p_value
            if result is Outcome.PENDING:
                self.ServerKeyRetrievalRequests.put(ctx.storage, request, id)
                return
            self.ServerKeyRetrievalRequests.remove(ctx.storage, id)
            if result is Outcome.CONFIRMED:
                self.deposit(ctx.storage, "ServerKeyRetrieved", id=id, public=event_public)
            else:
                self.deposit(ctx.storage, "ServerKeyRetrievalError", id=id)

        self._respond(ctx, self.ServerKeyRetrievalRequests, id, respond)

    def call_server_key_retrieved(self, ctx: Context, id: bytes, server_key_public: bytes, threshold: int) -> None:
        self._check_point(server_key_public, "InvalidServerKeyPublic")
        if threshold >= ERROR_THRESHOLD:
            raise self.error("InvalidThreshold")
        self._retrieval_response(ctx, id, server_key_public, threshold)

    def call_server_key_retrieval_error(self, ctx: Context, id: bytes) -> None:
        self._retrieval_response(ctx, id, None, ERROR_THRESHOLD)

    def restart_server_key_retrieval_requests(self, storage: Storage, block: int) -> None:
        self._restart_votes(storage, self.ServerKeyRetrievalRequests, ("threshold_responses", "public_responses"),
                            block)

    @staticmethod
    def server_key_retrieval_responses_awaited(request: dict, n: int, block: int) -> int:
        """A majority on the threshold (see `SecretStore.responses_awaited`)."""
        state = request["threshold_responses"]
        rs.refresh(state, block)
        return n // 2 + 1 - rs.responded_count(state)

    # -------------------------------------------------------------------------- read surface (SecretStoreServiceApi)
    def server_key_retrieval_tasks(self, storage: Storage, begin: int, end: int) -> list[tuple[str, Any]]:
        page = islice(self.ServerKeyRetrievalRequests.items(storage), begin, max(begin, end))
        return [("RetrieveServerKey", k) for k, _ in page]

    def is_server_key_retrieval_response_required(self, storage: Storage, key_server: bytes, key: bytes) -> bool:
        return self._vote_required(storage, self.ServerKeyRetrievalRequests, "threshold_responses", key_server, key)
