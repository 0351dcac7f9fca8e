"""Document key shadow retrieval, in two parts keyed by (key, requester entity).

The common part: a majority of the current set agrees on the document key's common point and the key's threshold
(an error answer counts against it). Then the personal part: each participant of the decryption session reports the
decrypted secret and its decrypt shadow encrypted for the requester's public, and the request ends once threshold + 1
of one session (same participants, same decrypted secret) have reported, or a majority reported an error. A change
of the current set starts the common part over.
"""

from __future__ import annotations

from itertools import islice
from typing import Any

from ...codec.primitives import H160, H256
from ...codec.scale import U128, Tuple
from ...crypto import InvalidPublic, Public
from ..dispatch import Context
from ..storage import Storage
from . import responses as rs
from .base import SecretStoreBase, popcount, storage_item
from .responses import Outcome
from .types import ERROR_THRESHOLD, DocumentKeyShadowRetrievalRequest

MAX_SHADOW_LEN = 1024


class DocumentKeyShadowRetrieval(SecretStoreBase):
    DocumentKeyShadowRetrievalFee = storage_item("DocumentKeyShadowRetrievalFee", U128, default=bytes(16),
                                                 docs="Fee of retrieve_document_key_shadow.")
    DocumentKeyShadowRetrievalRequests = storage_item(
        "DocumentKeyShadowRetrievalRequests", DocumentKeyShadowRetrievalRequest,
        ["Blake2_128Concat", "Blake2_128Concat"], Tuple(H256, H160),
        docs="Pending document key shadow retrievals, by (key, requester).")

    def call_retrieve_document_key_shadow(self, ctx: Context, id: bytes, requester_public: bytes) -> None:
        requester = self.entity_of(ctx.storage, ctx.signed())
        try:
            public = Public(requester_public)
        except InvalidPublic:
            raise self.error("InvalidRequesterPublic") from None
        if bytes(public.address()) != requester:
            raise self.error("RequesterPublicMismatch")
        entry = self.DocumentKeyShadowRetrievalRequests
        self._accept_request(ctx, entry, (id, requester), self.DocumentKeyShadowRetrievalFee)
        block = self.current_set_change_block(ctx.storage)
        entry.put(ctx.storage, self._fresh_shadow_request(requester_public, block), (id, requester))
        self.deposit(ctx.storage, "DocumentKeyShadowRetrievalRequested", id=id, requester=requester)

    @staticmethod
    def _fresh_shadow_request(requester_public: bytes, block: int) -> dict:
        return {"requester_public": requester_public, "common_responses": rs.new_state(block), "threshold": None,
                "personal_responses": [], "personal_errors": 0}

    def shadow_retrieval_request(self, storage: Storage, id: bytes, requester: bytes) -> dict | None:
        """The pending retrieval as it counts now: after a set change, with its common part to be agreed again."""
        request = self.DocumentKeyShadowRetrievalRequests.get(storage, (id, requester))
        block = self.current_set_change_block(storage)
        if request is not None and request["common_responses"]["set_change_block"] != block:
            request = self._fresh_shadow_request(request["requester_public"], block)
        return request

    def _common_response(self, ctx: Context, id: bytes, requester: bytes, response: bytes) -> None:
        entry = self.DocumentKeyShadowRetrievalRequests
        index, n = self.key_server_caller(ctx)
        request = self.shadow_retrieval_request(ctx.storage, id, requester)
        if request is None:
            return
        state = request["common_responses"]
        if rs.has_responded(state, index):
            raise self.error("AlreadyResponded")
        outcome, agreed = rs.insert(state, index, response, n // 2, n)
        if outcome is Outcome.CONFIRMED and agreed[64] != ERROR_THRESHOLD:
            request["threshold"] = agreed[64]
            entry.put(ctx.storage, request, (id, requester))
            self.deposit(ctx.storage, "DocumentKeyCommonRetrieved", id=id, requester=requester,
                         common_point=agreed[:64], threshold=agreed[64])
            self.deposit(ctx.storage, "DocumentKeyPersonalRetrievalRequested", id=id,
                         requester_public=request["requester_public"])
        elif outcome is Outcome.PENDING:
            entry.put(ctx.storage, request, (id, requester))
        else:
            entry.remove(ctx.storage, (id, requester))
            self.deposit(ctx.storage, "DocumentKeyShadowRetrievalError", id=id, requester=requester)

    def call_document_key_common_retrieved(self, ctx: Context, id: bytes, requester: bytes, common_point: bytes,
                                           threshold: int) -> None:
        self._check_point(common_point, "InvalidCommonPoint")
        if threshold >= ERROR_THRESHOLD:
            raise self.error("InvalidThreshold")
        request = self.shadow_retrieval_request(ctx.storage, id, requester)
        if request is not None and request["threshold"] is not None:
            # the common part is already agreed: a late answer is no longer needed (a no-op, like a finished request)
            self.key_server_caller(ctx)
            return
        self._common_response(ctx, id, requester, common_point + bytes([threshold]))

    def call_document_key_personal_retrieved(self, ctx: Context, id: bytes, requester: bytes, participants: int,
                                             decrypted_secret: bytes, shadow: bytes) -> None:
        self._check_point(decrypted_secret, "InvalidDecryptedSecret")
        if len(shadow) > MAX_SHADOW_LEN:
            raise self.error("ShadowTooLong")
        entry = self.DocumentKeyShadowRetrievalRequests
        index, n = self.key_server_caller(ctx)
        request = self.shadow_retrieval_request(ctx.storage, id, requester)
        if request is None:
            return
        if request["threshold"] is None:
            raise self.error("CommonPartNotRetrieved")
        if not participants >> index & 1:
            raise self.error("NotAParticipant")
        group = next((g for g in request["personal_responses"]
                      if g["participants"] == participants and g["decrypted_secret"] == decrypted_secret), None)
        if group is None:
            group = {"participants": participants, "decrypted_secret": decrypted_secret, "reporters": 0}
            request["personal_responses"].append(group)
        if group["reporters"] >> index & 1:
            raise self.error("AlreadyResponded")
        group["reporters"] |= 1 << index
        self.deposit(ctx.storage, "DocumentKeyPersonalRetrieved", id=id, requester=requester,
                     decrypted_secret=decrypted_secret, shadow=shadow)
        if popcount(group["reporters"]) >= request["threshold"] + 1:
            entry.remove(ctx.storage, (id, requester))
        else:
            entry.put(ctx.storage, request, (id, requester))

    def call_document_key_shadow_retrieval_error(self, ctx: Context, id: bytes, requester: bytes) -> None:
        request = self.shadow_retrieval_request(ctx.storage, id, requester)
        if request is not None and request["threshold"] is None:
            self._common_response(ctx, id, requester, bytes(64) + bytes([ERROR_THRESHOLD]))
            return
        index, n = self.key_server_caller(ctx)
        if request is None:
            return
        if request["personal_errors"] >> index & 1:
            raise self.error("AlreadyResponded")
        request["personal_errors"] |= 1 << index
        entry = self.DocumentKeyShadowRetrievalRequests
        if popcount(request["personal_errors"]) >= n // 2 + 1:
            entry.remove(ctx.storage, (id, requester))
            self.deposit(ctx.storage, "DocumentKeyShadowRetrievalError", id=id, requester=requester)
        else:
            entry.put(ctx.storage, request, (id, requester))

    def restart_document_key_shadow_retrieval_requests(self, storage: Storage, block: int) -> None:
        entry = self.DocumentKeyShadowRetrievalRequests
        for key, request in list(entry.items(storage)):
            entry.put(storage, self._fresh_shadow_request(request["requester_public"], block), key)

    @staticmethod
    def document_key_shadow_retrieval_responses_awaited(request: dict, n: int, block: int) -> int:
        """A majority agreeing on one common part, then threshold + 1 personal parts of one session (see
        `SecretStore.responses_awaited`)."""
        if request["threshold"] is not None and request["common_responses"]["set_change_block"] == block:
            reported = max((popcount(g["reporters"]) for g in request["personal_responses"]), default=0)
            return max(1, request["threshold"] + 1 - reported)
        state = request["common_responses"]
        rs.refresh(state, block)  # counting starts over after a set change, as the response calls do
        return n // 2 + 1 - rs.max_support(state)[1]

    # -------------------------------------------------------------------------- read surface (SecretStoreServiceApi)
    def document_key_shadow_retrieval_tasks(self, storage: Storage, begin: int, end: int) -> list[tuple[str, Any]]:
        """A common-part task until the common part is agreed (again, after a set change), then a personal-part
        task."""
        page = islice(self.DocumentKeyShadowRetrievalRequests.items(storage), begin, max(begin, end))
        change_block = self.current_set_change_block(storage)
        return [("RetrieveShadowDocumentKeyPersonal", (id, r["requester_public"]))
                if r["threshold"] is not None and r["common_responses"]["set_change_block"] == change_block
                else ("RetrieveShadowDocumentKeyCommon", (id, requester))
                for (id, requester), r in page]

    def is_document_key_shadow_retrieval_response_required(self, storage: Storage, key_server: bytes, key: bytes,
                                                           requester: bytes) -> bool:
        """Owed until its common answer is counted, then until its personal part or error is."""
        index = self.current_index(storage, key_server)
        if index is None:
            return False
        request = self.shadow_retrieval_request(storage, key, requester)
        if request is None:
            return False
        if request["threshold"] is None:
            return not rs.has_responded(request["common_responses"], index)
        if request["personal_errors"] >> index & 1:
            return False
        return not any(g["reporters"] >> index & 1 for g in request["personal_responses"])
