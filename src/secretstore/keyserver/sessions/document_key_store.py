"""Document key store for a direct (HTTP) request: two phases from the master, "check" on every holder, then
"commit", so a refusal by any holder leaves nothing stored anywhere. (Chain requests store without a session: each
key server stores what the chain names, see service.py.)

Messages: doc_store (phase "check" / "commit").
"""

from __future__ import annotations

import asyncio

from ...crypto import Address, Public, ServerKeyId
from ..net import ClusterError
from ..storage import DocumentKeyAlreadyStored
from .core import (ACCESS_DENIED, CONSENSUS_UNREACHABLE, DOCUMENT_KEY_EXISTS, SESSION_TIMEOUT, STEP_TIMEOUT,
                   SessionError, ThresholdProtocol, failure_code, failure_reason, parse_point)


class DocumentKeyStore(ThresholdProtocol):
    HANDLERS = {"doc_store": "_doc_store"}

    # --------------------------------------------------------------------------------------- participant side
    async def _doc_store(self, peer: Address, body: dict) -> dict:
        """Store a document key for its author, at the master's "commit" (its "check" only checks)."""
        ctx = self.ctx
        key_id = ServerKeyId.from_hex(body.get("key_id", ""), "key_id")
        share = ctx.negotiated_share(key_id, body.get("version"))
        requester = await ctx.authorize(key_id, body)
        if requester.address() != share.author:
            raise SessionError("only the key's author may store its document key", ACCESS_DENIED)
        if share.common_point is not None:
            raise SessionError(f"a document key is already stored for {key_id.hex()}", DOCUMENT_KEY_EXISTS)
        if ctx.storage.pending_migrations():
            raise SessionError("a key server set migration is in progress; try again when it completes",
                               CONSENSUS_UNREACHABLE)
        common_point = parse_point(body.get("common_point"), "common_point")
        encrypted_point = parse_point(body.get("encrypted_point"), "encrypted_point")
        if body.get("phase") == "commit":
            try:
                ctx.storage.store_document_key(key_id, common_point, encrypted_point)
            except DocumentKeyAlreadyStored as exc:
                raise SessionError(str(exc), DOCUMENT_KEY_EXISTS) from None
        return {}

    # -------------------------------------------------------------------------------------------- master side
    async def store_document_key(self, key_id: ServerKeyId, request_signature: str, common_point: Public,
                                 encrypted_point: Public) -> None:
        """Every holder checks, then every holder stores (all holders must be connected: one left out could never
        take part in a retrieval)."""
        cluster = self.ctx.cluster
        assert cluster is not None
        share = self.ctx.own_share(key_id)
        await self.ctx.check_requester(key_id, request_signature)
        if share.common_point is not None:
            raise SessionError(f"a document key is already stored for {key_id.hex()}", DOCUMENT_KEY_EXISTS)
        missing = [h.hex() for h in share.holders if not cluster.is_connected(h)]
        if missing:
            raise SessionError(f"consensus unreachable: holders not connected: {', '.join(missing)}",
                               CONSENSUS_UNREACHABLE)
        body = {"type": "doc_store", "key_id": key_id.hex(), "version": share.version.hex(),
                "request_signature": request_signature, "common_point": common_point.hex(),
                "encrypted_point": encrypted_point.hex()}
        try:
            async with asyncio.timeout(SESSION_TIMEOUT):
                for phase in ("check", "commit"):
                    async with asyncio.TaskGroup() as tasks:
                        for holder in share.holders:
                            tasks.create_task(cluster.request(holder, dict(body, phase=phase), timeout=STEP_TIMEOUT))
        except (ExceptionGroup, ClusterError, TimeoutError, SessionError) as exc:
            raise SessionError(f"document key store failed: {failure_reason(exc)}", failure_code(exc)) from None
