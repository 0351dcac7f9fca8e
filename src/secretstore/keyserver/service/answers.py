"""The work of each service once this key server acts on a task: the chain's ACL (one read per key, requester and
head), generation, server key retrieval, document key store, and a shadow retrieval's common and personal parts
(the master's session, the participants' prepared parts and their release)."""

from __future__ import annotations

import asyncio
import time

from ...chain.secretstore_api import GenerateServerKey, StoreDocumentKey
from ...crypto import Address, Public, ServerKeyId
from ...crypto.math import common_shadow_point
from ..sessions import SessionError
from ..storage import DocumentKeyAlreadyStored, KeyStorageError
from .decide import PERSONAL_PART_PATIENCE
from .state import ServiceState, log

MAX_ACCESS_CHECKS = 4096  # ACL answers kept for the current head


class ServiceAnswers(ServiceState):
    """Uses the response queue (`respond`, `_fresh`) and the decisions (`_spawn`, `_leads_shadow_retrieval`)."""

    async def check_access(self, key_id: ServerKeyId, requester: Address) -> bool:
        """The chain's ACL; one read per (key, requester) and head, however many steps of a retrieval ask."""
        if self.access_checks_head != self.head_number or len(self.access_checks) >= MAX_ACCESS_CHECKS:
            self.access_checks.clear()
            self.access_checks_head = self.head_number
        key = (key_id, requester)
        check = self.access_checks.get(key)
        if check is None:
            check = self.access_checks[key] = asyncio.ensure_future(self.runtime_api.check(requester, key_id))
            # a failed read is not kept: the next caller reads again (and `exception()` marks it retrieved)
            check.add_done_callback(
                lambda done: done.cancelled() or done.exception() is None or self.access_checks.pop(key, None))
        return await asyncio.shield(check)  # one caller cancelled leaves the read to the others

    async def _generate(self, requests: list[GenerateServerKey]) -> None:
        started = time.perf_counter()
        results = await self.core.generate_server_keys(
            [(task.key_id, task.author, task.threshold) for task in requests], list(self.order))
        for key_id, result in results.items():
            if isinstance(result, SessionError):
                log.warning("generation failed", extra={"key": key_id.hex(), "error": str(result)})
                self.respond("server_key_generation_error", {"id": key_id.hex()})
        log.debug("generation finished", extra={"keys": len(requests),
                                                "ms": round((time.perf_counter() - started) * 1e3, 1)})

    def _answer_retrieval(self, key_id: ServerKeyId) -> None:
        share = self.core.storage.get(key_id)
        if share is None:
            self.respond("server_key_retrieval_error", {"id": key_id.hex()})
        else:
            self.respond("server_key_retrieved", {"id": key_id.hex(), "server_key_public": share.public.hex(),
                                                  "threshold": share.threshold})

    def _store(self, task: StoreDocumentKey) -> None:
        key_id = task.key_id
        share = self.core.storage.get(key_id)
        if share is not None and share.author == task.author and share.common_point is not None \
                and bytes(share.common_point) == bytes(task.common_point) \
                and share.encrypted_point is not None and bytes(share.encrypted_point) == bytes(task.encrypted_point):
            # stored already, the answer lost on the way (node or this server died): the same answer again
            self.respond("document_key_stored", {"id": key_id.hex()})
            return
        try:
            if share is None:
                raise KeyStorageError("unknown server key")
            if share.author != task.author:
                raise KeyStorageError("only the key's author may store its document key")
            self.core.storage.store_document_key(key_id, Public(task.common_point), Public(task.encrypted_point))
        except (KeyStorageError, DocumentKeyAlreadyStored, ValueError) as exc:
            log.info("document key not stored", extra={"key": key_id.hex(), "reason": str(exc)})
            self.respond("document_key_store_error", {"id": key_id.hex()})
            return
        self.respond("document_key_stored", {"id": key_id.hex()})

    async def _answer_common(self, key_id: ServerKeyId, requester: Address) -> None:
        share = self.core.storage.get(key_id)
        if share is None or share.common_point is None or not await self.check_access(key_id, requester):
            self.respond("document_key_shadow_retrieval_error", {"id": key_id.hex(), "requester": requester.hex()})
            return
        self.respond("document_key_common_retrieved", {
            "id": key_id.hex(), "requester": requester.hex(),
            "common_point": common_shadow_point(share.threshold, share.common_point).hex(),
            "threshold": share.threshold})

    def _personal(self, tasks: asyncio.TaskGroup, key_id: ServerKeyId, requester: Address,
                  raw_requester_public: bytes, now: float) -> None:
        try:
            requester_public = Public(raw_requester_public)
        except ValueError:
            # only a chain that does not check the curve can hold this; nobody can decrypt for it: refuse it
            self.respond("document_key_shadow_retrieval_error", {"id": key_id.hex(), "requester": requester.hex()},
                         key=("personal", key_id.hex(), requester.hex()))
            return
        key = ("personal", key_id, requester)
        self.first_seen.setdefault(key, now)
        response_key = ("personal", key_id.hex(), requester.hex())
        if self._release_personal_part(key_id, requester):
            return
        if self._leads_shadow_retrieval(key_id):
            if self._fresh(response_key):  # no early session, or it failed: run it now
                self._spawn(tasks, key, self._shadow_session(key_id, requester))
        elif now - self.first_seen[key] > PERSONAL_PART_PATIENCE and self._fresh(response_key):
            # nobody picked this server and the request is still open: answer it rather than leave it hanging
            self.respond("document_key_shadow_retrieval_error", {"id": key_id.hex(), "requester": requester.hex()},
                         key=response_key)

    def personal_part_ready(self, key_id: ServerKeyId, requester: Address) -> None:
        """A master's report made this server's personal part: submit it now if the chain already asks for it."""
        self._release_personal_part(key_id, requester)

    def _release_personal_part(self, key_id: ServerKeyId, requester: Address) -> bool:
        """Submit the prepared personal part once the chain has named the requester's public key. True if sent."""
        raw, seen_at = self.requester_publics.get((key_id, requester), (None, -1))
        if raw is None or not self.core.personal_parts.ready(key_id, requester, seen_at):
            return False  # not asked for yet, or only by an earlier request for the same key and requester
        try:
            requester_public = Public(raw)
        except ValueError:
            return False  # `_personal` answers a bad public with an error
        if requester_public.address() != requester:
            return False
        params = self.core.personal_part(key_id, requester_public)
        if params is None:
            return False
        self.respond("document_key_personal_retrieved", params)
        return True

    async def _shadow_session(self, key_id: ServerKeyId, requester: Address, early: bool = False) -> None:
        """The master's shadow retrieval. An early one (started with the common part) that fails answers nothing:
        the common part decides the request, and the personal part, once asked for, runs the session again."""
        try:
            # an early part must wait for the chain to ask for it after this head (before, it could only be asked by
            # an earlier request for the same key and requester); a part asked for already goes out at once
            await self.core.retrieve_document_key_shadow(key_id, requester, dict(self.indices),
                                                         self.head_number if early else 0)
        except SessionError as exc:
            # this server's own part of a failed session is not a result: the personal part runs the session anew
            self.core.personal_parts.forget(key_id, requester)
            if early:
                log.info("early shadow retrieval failed", extra={"key": key_id.hex(), "error": str(exc)})
                return
            log.warning("shadow retrieval failed", extra={"key": key_id.hex(), "error": str(exc)})
            self.respond("document_key_shadow_retrieval_error", {"id": key_id.hex(), "requester": requester.hex()},
                         key=("personal", key_id.hex(), requester.hex()))
