"""The response queue: responses go out as soon as each is ready, and an answer is not worked out again while it is
on its way to the chain."""

from __future__ import annotations

import time

from ...crypto import ServerKeyId
from .state import ServiceState, log

RESUBMIT_AFTER = 10.0
RESPONSE_GRACE = 1.0  # seconds a response in the pool is taken as on its way, however many blocks pass
MAX_SUBMITTED_AT_ONCE = 64  # responses signed and sent together

# Which piece of work a response call answers (responses to the same piece are not repeated).
SERVICE_OF = {
    "server_key_generated": "generation", "server_key_generation_error": "generation",
    "server_key_retrieved": "retrieval", "server_key_retrieval_error": "retrieval",
    "document_key_stored": "store", "document_key_store_error": "store",
    "document_key_common_retrieved": "common", "document_key_shadow_retrieval_error": "common",
    "document_key_personal_retrieved": "personal",
    "start_migration": "migration-start", "confirm_migration": "migration-confirm",
}


class ResponseQueue(ServiceState):
    """Queues responses, sends them through the `TransactionSubmitter` and tells which answers are due again."""

    def respond(self, call: str, params: dict, key: tuple | None = None) -> None:
        """Queue a response; until it is on chain (or RESUBMIT_AFTER passes) the same answer is not worked out again."""
        key = key or (SERVICE_OF[call], params.get("id", params.get("migration_id")), params.get("requester"))
        self.submitted[key] = (time.monotonic(), None)
        self.submissions.put_nowait((call, params, key))

    async def _submit_responses(self) -> None:
        """Sends responses as they are ready: nonces are counted locally, nothing waits for a block, and the
        responses that queued while the last ones were sent go out together (`submit_many`)."""
        while True:
            batch = [await self.submissions.get()]
            while not self.submissions.empty() and len(batch) < MAX_SUBMITTED_AT_ONCE:
                batch.append(self.submissions.get_nowait())
            results = await self.submitter.submit_many([("SecretStore", call, params) for call, params, _ in batch])
            for (call, params, key), result in zip(batch, results):
                if isinstance(result, Exception):
                    self.submitted.pop(key, None)  # retried on a later block while still required
                    log.warning("response not submitted", extra={"call": call, "error": str(result)})
                    continue
                if call == "server_key_generated":  # durable in the node's pool: a later request is a new one
                    self.core.storage.mark_reported(ServerKeyId.from_hex(params["id"]))
                if key in self.submitted:
                    self.submitted[key] = (self.submitted[key][0], self.head_number)
                log.debug("response submitted", extra={"call": call, "key": params.get("id")})

    def _fresh(self, key: tuple) -> bool:
        """True unless this response is still being sent or was accepted so recently that it cannot be on chain yet.
        Once two blocks have passed since the pool accepted it, a response the runtime still wants is new work (a new
        request for the same key) or was lost."""
        mark = self.submitted.get(key)
        if mark is None:
            return True
        when, head = mark
        waited = time.monotonic() - when
        if head is None:
            return waited > RESUBMIT_AFTER
        # blocks come every few ms under load with instant seal: a response also gets a moment to be counted
        return (self.head_number > head + 1 and waited > RESPONSE_GRACE) or waited > RESUBMIT_AFTER
