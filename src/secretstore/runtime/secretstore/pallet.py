"""The SecretStore pallet: identities, key ownership, the key server set with migration, and the four services.

Behaviour in brief (spec runtime.md is the requirement), each part in its module:

* `claims`: an account claims one EntityId (H160) and back; entities claim and transfer server key ids (the ACL).
* `key_server_set`: current, migration and new sets, the owner's changes and migrations; a key server's index is
  its position in the current set, and collected responses are discarded when its membership changes.
* Services, one module each (`server_key_generation`, `server_key_retrieval`, `document_key_store`,
  `document_key_shadow_retrieval`): a request is validated (points on the curve, threshold range), refused if the
  same request is queued or the queue holds `MaxPendingRequests` (genesis, default 64), charged its fee (split
  equally among the accounts that claimed the current key servers' ids, the remainder to the last; burned if no key
  server has claimed an account), stored, and announced with a *Requested event.
  Responses are counted by `responses` (one vote per key server and request); the thresholds per service are in the
  spec. A response to a request that no longer exists, or is no longer needed, is a successful no-op; a key server
  answering the same request twice gets `AlreadyResponded`.
* Every refusal is a named error of `ERRORS` (DispatchError::Module{index 3, error}); nothing a failed call wrote
  remains, because the runtime dispatches each call in its own storage overlay.

This module composes the parts: the calls table (call indices), the order of the storage items in metadata, and
what concerns every service at once (restarting their counts, the instant seal's hints, the service read surface).
"""

from __future__ import annotations

import functools
from typing import Any, Callable

from ...codec.primitives import AccountId32, H160, H256, H512
from ...codec.scale import U8, U32, Bytes
from ...interface import EVENTS, SERVICES
from ..dispatch import call_enum
from ..frame import Constant, StorageEntry
from ..storage import Storage
from .base import ERRORS, SecretStoreBase
from .claims import Claims
from .document_key_shadow_retrieval import DocumentKeyShadowRetrieval
from .document_key_store import DocumentKeyStore
from .key_server_set import KeyServerSet, valid_network_address
from .server_key_generation import ServerKeyGeneration
from .server_key_retrieval import ServerKeyRetrieval
from .types import MAX_KEY_SERVERS, MODULE, KeyServersMask

NAME = SecretStoreBase.NAME

# names the rest of the runtime and the tests import from here
__all__ = ["CALLS", "ERRORS", "EVENTS", "NAME", "SERVICES", "SecretStore", "valid_network_address"]

_A = [("id", H256, "ServerKeyId")]
CALLS = call_enum(MODULE, [
    ("change_owner", [("new_owner", AccountId32, "T::AccountId")], "Change the owner of the key server set (owner only)."),
    ("claim_id", [("id", H160, "EntityId")], "Associate the caller's account with an entity id (one each way)."),
    ("complete_initialization", [], "End the initialization period: from now on set changes need a migration."),
    ("add_key_server", [("id", H160, "KeyServerId"), ("network_address", Bytes, "KeyServerNetworkAddress")],
     "Add a key server (owner only), or update its address."),
    ("remove_key_server", [("id", H160, "KeyServerId")], "Remove a key server (owner only)."),
    ("start_migration", [("migration_id", H256, "MigrationId")], "Start moving keys to the new key server set."),
    ("confirm_migration", [("migration_id", H256, "MigrationId")], "Confirm this key server finished the migration."),
    ("claim_key", _A, "Become the owner of a server key id."),
    ("transfer_key", _A + [("new_claimant", H160, "EntityId")], "Give ownership of a key to another entity."),
    ("generate_server_key", _A + [("threshold", U8, "u8")], "Ask the key servers to generate a server key."),
    ("server_key_generated", _A + [("server_key_public", H512, "H512")], "Key server: the key was generated."),
    ("server_key_generation_error", _A, "Key server: the key could not be generated."),
    ("retrieve_server_key", _A, "Ask the key servers for a server key's public."),
    ("server_key_retrieved", _A + [("server_key_public", H512, "H512"), ("threshold", U8, "u8")],
     "Key server: the server key public and its threshold."),
    ("server_key_retrieval_error", _A, "Key server: the server key could not be retrieved."),
    ("store_document_key", _A + [("common_point", H512, "H512"), ("encrypted_point", H512, "H512")],
     "Ask the key servers to store a document key generated for the server key."),
    ("document_key_stored", _A, "Key server: the document key was stored."),
    ("document_key_store_error", _A, "Key server: the document key could not be stored."),
    ("retrieve_document_key_shadow", _A + [("requester_public", H512, "H512")],
     "Ask the key servers for the shadow of a document key, encrypted for the requester."),
    ("document_key_common_retrieved", _A + [("requester", H160, "EntityId"), ("common_point", H512, "H512"),
                                            ("threshold", U8, "u8")],
     "Key server: the common part of a document key shadow retrieval."),
    ("document_key_personal_retrieved", _A + [("requester", H160, "EntityId"),
                                              ("participants", KeyServersMask, "KeyServersMask"),
                                              ("decrypted_secret", H512, "H512"), ("shadow", Bytes, "Vec<u8>")],
     "Key server: its personal part of a document key shadow retrieval."),
    ("document_key_shadow_retrieval_error", _A + [("requester", H160, "EntityId")],
     "Key server: the document key shadow could not be retrieved."),
])


class SecretStore(KeyServerSet, Claims, ServerKeyGeneration, ServerKeyRetrieval, DocumentKeyStore,
                  DocumentKeyShadowRetrieval):
    CALLS = CALLS
    DOCS = ("Access control and request queues of the SecretStore: key servers watch these and answer.",)

    STORAGE = (SecretStoreBase.Owner, SecretStoreBase.ClaimedId, SecretStoreBase.ClaimedBy,
               KeyServerSet.IsInitializationCompleted, SecretStoreBase.CurrentKeyServers,
               KeyServerSet.MigrationKeyServers, KeyServerSet.NewKeyServers, KeyServerSet.MigrationInfo,
               KeyServerSet.MigrationConfirmations, SecretStoreBase.CurrentSetChangeBlock, Claims.KeyOwners,
               ServerKeyGeneration.ServerKeyGenerationFee, ServerKeyRetrieval.ServerKeyRetrievalFee,
               DocumentKeyStore.DocumentKeyStoreFee, DocumentKeyShadowRetrieval.DocumentKeyShadowRetrievalFee,
               SecretStoreBase.MaxPendingRequests, ServerKeyGeneration.ServerKeyGenerationRequests,
               ServerKeyRetrieval.ServerKeyRetrievalRequests, DocumentKeyStore.DocumentKeyStoreRequests,
               DocumentKeyShadowRetrieval.DocumentKeyShadowRetrievalRequests)

    def constants(self) -> tuple:
        return (Constant("MaxKeyServers", U32, U32.encode(MAX_KEY_SERVERS), ("Largest key server set.",)),)

    def requests(self, service: str) -> StorageEntry:
        """The storage map of one service's pending requests (`service` is one of SERVICES)."""
        return {"server_key_generation": self.ServerKeyGenerationRequests,
                "server_key_retrieval": self.ServerKeyRetrievalRequests,
                "document_key_store": self.DocumentKeyStoreRequests,
                "document_key_shadow_retrieval": self.DocumentKeyShadowRetrievalRequests}[service]

    def restart_pending_requests(self, storage: Storage, block: int) -> None:
        self.restart_server_key_generation_requests(storage, block)
        self.restart_server_key_retrieval_requests(storage, block)
        self.restart_document_key_store_requests(storage, block)
        self.restart_document_key_shadow_retrieval_requests(storage, block)

    # ------------------------------------------------------------- what the node's instant seal may wait for
    # each response call names its request by its leading arguments: the key id (H256), then, for shadow
    # retrievals, the requester (H160); fixed-size types, so they are plain byte ranges of the encoded call
    RESPONSE_CALLS = {CALLS.by_name[name].index: service for service, names in (
        ("server_key_generation", ("server_key_generated", "server_key_generation_error")),
        ("server_key_retrieval", ("server_key_retrieved", "server_key_retrieval_error")),
        ("document_key_store", ("document_key_stored", "document_key_store_error")),
        ("document_key_shadow_retrieval", ("document_key_common_retrieved", "document_key_personal_retrieved",
                                           "document_key_shadow_retrieval_error"))) for name in names}

    def response_request_key(self, call: bytes) -> bytes | None:
        """For an encoded response call of a key server: the storage key of the request it answers (whether or not
        that request exists); None for any other call, or one too short to name a request."""
        if len(call) < 2 or call[0] != self.INDEX:
            return None
        entry = self._response_entries.get(call[1])
        if entry is None:
            return None
        if entry is self.DocumentKeyShadowRetrievalRequests:
            return entry.storage_key((call[2:34], call[34:54])) if len(call) >= 54 else None
        return entry.storage_key(call[2:34]) if len(call) >= 34 else None

    @functools.cached_property
    def _response_entries(self) -> dict[int, StorageEntry]:
        """Response call index -> the storage map of the requests it answers (asked for every arriving call)."""
        return {index: self.requests(service) for index, service in self.RESPONSE_CALLS.items()}

    @functools.cached_property
    def _request_maps(self) -> dict[bytes, tuple[StorageEntry, Callable[[dict, int, int], int]]]:
        awaited = {"server_key_generation": self.server_key_generation_responses_awaited,
                   "server_key_retrieval": self.server_key_retrieval_responses_awaited,
                   "document_key_store": self.document_key_store_responses_awaited,
                   "document_key_shadow_retrieval": self.document_key_shadow_retrieval_responses_awaited}
        return {self.requests(service).prefix: (self.requests(service), awaited[service]) for service in SERVICES}

    def responses_awaited(self, storage: Storage, storage_key: bytes) -> int | None:
        """For the storage key of a pending request: the fewest further key server responses that could decide it
        (0 once it is gone); None for any other key. A hint for sealing blocks, never for counting: a wrong answer
        only makes a block come a little earlier or later."""
        found = self._request_maps.get(storage_key[:32])
        if found is None:
            return None
        entry, awaited = found
        raw = storage.get(storage_key)
        if raw is None:
            return 0
        return awaited(entry.value.decode(raw), len(self.current_set(storage)), self.current_set_change_block(storage))

    # ----------------------------------------------------------------------- read surface (the runtime APIs)
    def service_tasks(self, storage: Storage, service: str, begin: int, end: int) -> list[tuple[str, Any]]:
        """Pending requests of one service as `ServiceTask` values, paged in storage order: `begin` inclusive, `end`
        exclusive."""
        return self._tasks[service](storage, begin, end)

    def is_response_required(self, storage: Storage, service: str, key_server: bytes, key: bytes,
                             requester: bytes | None = None) -> bool:
        """Whether `key_server` still owes an answer to the request: false outside the current set, for a request that
        is not pending, and once its vote (or, for a shadow retrieval, its personal part or error) is counted."""
        if service == "document_key_shadow_retrieval":
            return self.is_document_key_shadow_retrieval_response_required(storage, key_server, key, requester)
        return self._response_required[service](storage, key_server, key)

    @functools.cached_property
    def _tasks(self) -> dict[str, Callable[[Storage, int, int], list]]:
        return {"server_key_generation": self.server_key_generation_tasks,
                "server_key_retrieval": self.server_key_retrieval_tasks,
                "document_key_store": self.document_key_store_tasks,
                "document_key_shadow_retrieval": self.document_key_shadow_retrieval_tasks}

    @functools.cached_property
    def _response_required(self) -> dict[str, Callable[[Storage, bytes, bytes], bool]]:
        return {"server_key_generation": self.is_server_key_generation_response_required,
                "server_key_retrieval": self.is_server_key_retrieval_response_required,
                "document_key_store": self.is_document_key_store_response_required}
