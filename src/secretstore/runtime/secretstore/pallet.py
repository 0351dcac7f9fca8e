"""The SecretStore pallet: identities, key ownership, the key server set with migration, and the four services.

Behaviour in brief (spec runtime.md is the requirement):

* Identities: `claim_id` binds one account to one EntityId (H160) and back. Calls that act for an entity resolve the
  caller's claim first (`NoAssociatedId`). Key servers answer from the account that claimed their KeyServerId.
* Key server set: three lists - current, migration, new - where a key server's index is its position in the current
  list. Before `complete_initialization` the owner's changes apply to current and new at once; afterwards only to the
  new list, and a key server of current or new starts a migration that completes when every member of the migration
  set has confirmed. `add_key_server` for a member with a different address updates the address (KeyServerUpdated)
  in the new set and, since no share moves, also in the current set without a migration. `CurrentSetChangeBlock`
  records the block of the last membership change of the current set; collected responses of a pending request are
  discarded when it moves (the request itself stays queued).
* Services: a request is validated (points on the curve, threshold range), refused if the same request is queued or
  the queue holds `MaxPendingRequests` (genesis, default 64), charged its fee (split equally among the accounts that
  claimed the current key servers' ids, the remainder to the last; burned if no key server has claimed an account),
  stored, and announced with a *Requested event.
  Responses are counted by `responses` (one vote per key server and request); the thresholds per service are in the
  spec. A response to a request that no longer exists, or is no longer needed, is a successful no-op; a key server
  answering the same request twice gets `AlreadyResponded`.
* Every refusal is a named error of `ERRORS` (DispatchError::Module{index 3, error}); nothing a failed call wrote
  remains, because the runtime dispatches each call in its own storage overlay.
"""

from __future__ import annotations

import functools
from itertools import islice
from typing import Any, Callable

from ...codec.primitives import AccountId32, H160, H256, H512
from ...codec.scale import U8, U32, U128, Bool, Bytes, Sequence, Tuple
from ...crypto import InvalidPublic, Public
from ...interface import EVENTS, PALLET, SERVICES
from ..dispatch import Context, Pallet, call_enum, error_enum
from ..frame import Constant, StorageEntry
from . import responses as rs
from .responses import Outcome
from .types import (
    ERROR_THRESHOLD, MAX_KEY_SERVERS, MODULE, DocumentKeyShadowRetrievalRequest, DocumentKeyStoreRequest, KeyServer,
    KeyServersMask, Migration, ServerKeyGenerationRequest, ServerKeyRetrievalRequest,
)

NAME = PALLET
DEFAULT_MAX_PENDING_REQUESTS = 64
MAX_NETWORK_ADDRESS_LEN = 256
MAX_SHADOW_LEN = 1024

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

ERRORS = error_enum(MODULE, [
    ("NotOwner", "Only the owner of the key server set may do this."),
    ("NoAssociatedId", "No associated id for this account."),
    ("AccountAlreadyHasId", "This account has already claimed an id."),
    ("IdAlreadyClaimed", "This id is already claimed by another account."),
    ("InitializationAlreadyCompleted", "Initialization of the key server set is already completed."),
    ("TooManyKeyServers", "The key server set cannot hold more key servers."),
    ("InvalidNetworkAddress", "A key server network address must be a non-empty 'host:port' of at most 256 bytes."),
    ("KeyServerAlreadyAdded", "This key server is already in the set with this address."),
    ("UnknownKeyServer", "This key server is not in the set."),
    ("MigrationNotRequired", "The new key server set equals the current one: there is nothing to migrate."),
    ("MigrationAlreadyStarted", "A migration is already running."),
    ("NoActiveMigration", "No migration is running."),
    ("WrongMigrationId", "The migration id does not match the running migration."),
    ("NotInMigrationSet", "The caller is not a key server of the migration set."),
    ("NotAKeyServer", "The caller is not a key server."),
    ("MigrationAlreadyConfirmed", "This key server has already confirmed the migration."),
    ("KeyAlreadyClaimed", "This server key id is already claimed."),
    ("NotKeyOwner", "The caller does not own this key."),
    ("InvalidThreshold", "Threshold must satisfy threshold + 1 <= number of key servers (and be below 255)."),
    ("DuplicateRequest", "The same request is already queued."),
    ("TooManyPendingRequests", "Too many pending requests of this kind; try again later."),
    ("InvalidServerKeyPublic", "The server key public is not a valid curve point."),
    ("InvalidCommonPoint", "The common point is not a valid curve point."),
    ("InvalidEncryptedPoint", "The encrypted point is not a valid curve point."),
    ("InvalidRequesterPublic", "The requester public is not a valid curve point."),
    ("InvalidDecryptedSecret", "The decrypted secret is not a valid curve point."),
    ("RequesterPublicMismatch", "The requester public key does not belong to the caller's entity id."),
    ("AlreadyResponded", "This key server has already responded to the request."),
    ("NotAParticipant", "Reporting key server is not a participant."),
    ("CommonPartNotRetrieved", "The common part of the retrieval is not confirmed yet."),
    ("ShadowTooLong", "The encrypted decrypt shadow is too long."),
    ("LastKeyServer", "The last key server cannot be removed: the set would never be able to migrate again."),
])


def _entry(name: str, value, hashers=(), key=None, default: bytes | None = None, docs: str = "") -> StorageEntry:
    return StorageEntry(NAME, name, value, tuple(hashers), key, "Default" if default is not None else "Optional",
                        default or b"", (docs,))


def valid_network_address(address: object) -> bool:
    """A key server's network address: non-empty 'host:port' bytes, bounded in size."""
    return isinstance(address, bytes) and 0 < len(address) <= MAX_NETWORK_ADDRESS_LEN and b":" in address


def _popcount(mask: int) -> int:
    return bin(mask).count("1")


class SecretStore(Pallet):
    NAME, INDEX, MODULE = NAME, 3, MODULE
    CALLS, ERRORS, EVENTS = CALLS, ERRORS, EVENTS
    DOCS = ("Access control and request queues of the SecretStore: key servers watch these and answer.",)

    Owner = _entry("Owner", AccountId32, docs="Owner of the key server set.")
    ClaimedId = _entry("ClaimedId", H160, ["Blake2_128Concat"], AccountId32, docs="Entity id claimed by each account.")
    ClaimedBy = _entry("ClaimedBy", AccountId32, ["Blake2_128Concat"], H160, docs="Account that claimed each entity id.")
    IsInitializationCompleted = _entry("IsInitializationCompleted", Bool, default=b"\x00",
                                       docs="Whether set changes need a migration.")
    CurrentKeyServers = _entry("CurrentKeyServers", Sequence(KeyServer), default=b"\x00",
                               docs="The current key server set; a server's index is its position.")
    MigrationKeyServers = _entry("MigrationKeyServers", Sequence(KeyServer), default=b"\x00",
                                 docs="The set keys are being moved to while a migration runs.")
    NewKeyServers = _entry("NewKeyServers", Sequence(KeyServer), default=b"\x00",
                           docs="The set the owner wants; differs from the current one until a migration completes.")
    MigrationInfo = _entry("MigrationInfo", Migration, docs="Id and master of the running migration.")
    MigrationConfirmations = _entry("MigrationConfirmations", Sequence(H160), default=b"\x00",
                                    docs="Key servers of the migration set that confirmed it.")
    CurrentSetChangeBlock = _entry("CurrentSetChangeBlock", U32, default=bytes(4),
                                   docs="Block of the last change of the current set; responses restart when it moves.")
    KeyOwners = _entry("KeyOwners", Sequence(H160), ["Blake2_128Concat"], H256, docs="Owners of each claimed key id.")
    ServerKeyGenerationFee = _entry("ServerKeyGenerationFee", U128, default=bytes(16), docs="Fee of generate_server_key.")
    ServerKeyRetrievalFee = _entry("ServerKeyRetrievalFee", U128, default=bytes(16), docs="Fee of retrieve_server_key.")
    DocumentKeyStoreFee = _entry("DocumentKeyStoreFee", U128, default=bytes(16), docs="Fee of store_document_key.")
    DocumentKeyShadowRetrievalFee = _entry("DocumentKeyShadowRetrievalFee", U128, default=bytes(16),
                                           docs="Fee of retrieve_document_key_shadow.")
    MaxPendingRequests = _entry("MaxPendingRequests", U32, default=U32.encode(DEFAULT_MAX_PENDING_REQUESTS),
                                docs="Cap on pending requests of each service.")
    ServerKeyGenerationRequests = _entry("ServerKeyGenerationRequests", ServerKeyGenerationRequest,
                                         ["Blake2_128Concat"], H256, docs="Pending server key generation requests.")
    ServerKeyRetrievalRequests = _entry("ServerKeyRetrievalRequests", ServerKeyRetrievalRequest,
                                        ["Blake2_128Concat"], H256, docs="Pending server key retrieval requests.")
    DocumentKeyStoreRequests = _entry("DocumentKeyStoreRequests", DocumentKeyStoreRequest,
                                      ["Blake2_128Concat"], H256, docs="Pending document key store requests.")
    DocumentKeyShadowRetrievalRequests = _entry(
        "DocumentKeyShadowRetrievalRequests", DocumentKeyShadowRetrievalRequest,
        ["Blake2_128Concat", "Blake2_128Concat"], Tuple(H256, H160),
        docs="Pending document key shadow retrievals, by (key, requester).")

    STORAGE = (Owner, ClaimedId, ClaimedBy, IsInitializationCompleted, CurrentKeyServers, MigrationKeyServers,
               NewKeyServers, MigrationInfo, MigrationConfirmations, CurrentSetChangeBlock, KeyOwners,
               ServerKeyGenerationFee, ServerKeyRetrievalFee, DocumentKeyStoreFee, DocumentKeyShadowRetrievalFee,
               MaxPendingRequests, ServerKeyGenerationRequests, ServerKeyRetrievalRequests, DocumentKeyStoreRequests,
               DocumentKeyShadowRetrievalRequests)

    def constants(self) -> tuple:
        return (Constant("MaxKeyServers", U32, U32.encode(MAX_KEY_SERVERS), ("Largest key server set.",)),)

    # ---------------------------------------------------------------------------------------------- identities
    def entity_of(self, storage, account: bytes) -> bytes:
        entity = self.ClaimedId.get(storage, account)
        if entity is None:
            raise self.error("NoAssociatedId")
        return entity

    def ensure_owner(self, ctx: Context) -> None:
        if ctx.signed() != self.Owner.get(ctx.storage):
            raise self.error("NotOwner")

    def current_set(self, storage) -> list[dict]:
        return self.CurrentKeyServers.get(storage)

    def current_index(self, storage, key_server: bytes) -> int | None:
        for i, ks in enumerate(self.current_set(storage)):
            if ks["id"] == key_server:
                return i
        return None

    def key_server_caller(self, ctx: Context) -> tuple[int, int]:
        """(index of the caller in the current set, size of the set), or NotAKeyServer."""
        entity = self.ClaimedId.get(ctx.storage, ctx.signed())
        index = self.current_index(ctx.storage, entity) if entity is not None else None
        if index is None:
            raise self.error("NotAKeyServer")
        return index, len(self.current_set(ctx.storage))

    def call_change_owner(self, ctx: Context, new_owner: bytes) -> None:
        self.ensure_owner(ctx)
        self.Owner.put(ctx.storage, new_owner)
        self.deposit(ctx.storage, "OwnerChanged", new_owner=new_owner)

    def call_claim_id(self, ctx: Context, id: bytes) -> None:
        account = ctx.signed()
        if self.ClaimedId.contains(ctx.storage, account):
            raise self.error("AccountAlreadyHasId")
        if self.ClaimedBy.contains(ctx.storage, id):
            raise self.error("IdAlreadyClaimed")
        self.ClaimedId.put(ctx.storage, id, account)
        self.ClaimedBy.put(ctx.storage, account, id)
        self.deposit(ctx.storage, "IdClaimed", account=account, id=id)

    # ------------------------------------------------------------------------------------------ key server set
    def call_complete_initialization(self, ctx: Context) -> None:
        self.ensure_owner(ctx)
        if self.IsInitializationCompleted.get(ctx.storage):
            raise self.error("InitializationAlreadyCompleted")
        self.IsInitializationCompleted.put(ctx.storage, True)

    def _set_current(self, storage, servers: list[dict], block: int) -> None:
        # Only a change of membership or order moves the change block (restarting response counting): an address
        # update leaves every key server's index, and so every collected response, valid.
        if [ks["id"] for ks in servers] != [ks["id"] for ks in self.current_set(storage)]:
            self.CurrentSetChangeBlock.put(storage, block)
            self._restart_pending_requests(storage, block)
        self.CurrentKeyServers.put(storage, servers)

    def _restart_pending_requests(self, storage, block: int) -> None:
        """Discard the collected responses of every pending request. Counting would also restart lazily when the
        change block moves, but two membership changes within one block leave the block unchanged, and the masks of
        responses collected between them would point at the wrong key servers."""
        for entry, states in ((self.ServerKeyGenerationRequests, ("responses",)),
                              (self.ServerKeyRetrievalRequests, ("threshold_responses", "public_responses")),
                              (self.DocumentKeyStoreRequests, ("responses",))):
            for key, request in list(entry.items(storage)):
                for state in states:
                    request[state] = rs.new_state(block)
                entry.put(storage, request, key)
        shadow = self.DocumentKeyShadowRetrievalRequests
        for key, request in list(shadow.items(storage)):
            shadow.put(storage, self._fresh_shadow_request(request["requester_public"], block), key)

    def call_add_key_server(self, ctx: Context, id: bytes, network_address: bytes) -> None:
        self.ensure_owner(ctx)
        if not valid_network_address(network_address):
            raise self.error("InvalidNetworkAddress")
        storage = ctx.storage
        new_set = self.NewKeyServers.get(storage)
        existing = next((ks for ks in new_set if ks["id"] == id), None)
        if existing is not None:
            if existing["address"] == network_address:
                raise self.error("KeyServerAlreadyAdded")
            existing["address"] = network_address
            event = "KeyServerUpdated"
        else:
            if len(new_set) >= MAX_KEY_SERVERS:
                raise self.error("TooManyKeyServers")
            new_set.append({"id": id, "address": network_address})
            event = "KeyServerAdded"
        self.NewKeyServers.put(storage, new_set)
        initialized = self.IsInitializationCompleted.get(storage)
        current = self.current_set(storage)
        if not initialized:
            self._set_current(storage, [dict(ks) for ks in new_set], ctx.block_number)
        elif event == "KeyServerUpdated" and any(ks["id"] == id for ks in current):
            # an address change needs no migration: keys stay where they are
            for ks in current:
                if ks["id"] == id:
                    ks["address"] = network_address
            self.CurrentKeyServers.put(storage, current)
        self.deposit(storage, event, key_server=id)

    def call_remove_key_server(self, ctx: Context, id: bytes) -> None:
        self.ensure_owner(ctx)
        storage = ctx.storage
        new_set = self.NewKeyServers.get(storage)
        remaining = [ks for ks in new_set if ks["id"] != id]
        if len(remaining) == len(new_set):
            raise self.error("UnknownKeyServer")
        if not remaining:
            raise self.error("LastKeyServer")
        self.NewKeyServers.put(storage, remaining)
        if not self.IsInitializationCompleted.get(storage):
            self._set_current(storage, [dict(ks) for ks in remaining], ctx.block_number)
        self.deposit(storage, "KeyServerRemoved", key_server=id)

    def migration_required(self, storage) -> bool:
        ids = lambda servers: sorted(ks["id"] for ks in servers)  # noqa: E731
        return ids(self.current_set(storage)) != ids(self.NewKeyServers.get(storage))

    def call_start_migration(self, ctx: Context, migration_id: bytes) -> None:
        storage = ctx.storage
        entity = self.entity_of(storage, ctx.signed())
        members = {ks["id"] for ks in self.current_set(storage)} | {ks["id"] for ks in self.NewKeyServers.get(storage)}
        if entity not in members:
            raise self.error("NotAKeyServer")
        if self.MigrationInfo.contains(storage):
            raise self.error("MigrationAlreadyStarted")
        if not self.migration_required(storage):
            raise self.error("MigrationNotRequired")
        self.MigrationKeyServers.put(storage, self.NewKeyServers.get(storage))
        self.MigrationInfo.put(storage, {"id": migration_id, "master": entity})
        self.MigrationConfirmations.put(storage, [])
        self.deposit(storage, "MigrationStarted", migration_id=migration_id, master=entity)

    def call_confirm_migration(self, ctx: Context, migration_id: bytes) -> None:
        storage = ctx.storage
        entity = self.entity_of(storage, ctx.signed())
        migration = self.MigrationInfo.get(storage)
        if migration is None:
            raise self.error("NoActiveMigration")
        if migration["id"] != migration_id:
            raise self.error("WrongMigrationId")
        migration_set = self.MigrationKeyServers.get(storage)
        if entity not in {ks["id"] for ks in migration_set}:
            raise self.error("NotInMigrationSet")
        confirmations = self.MigrationConfirmations.get(storage)
        if entity in confirmations:
            raise self.error("MigrationAlreadyConfirmed")
        confirmations.append(entity)
        if len(confirmations) < len(migration_set):
            self.MigrationConfirmations.put(storage, confirmations)
            return
        self._set_current(storage, migration_set, ctx.block_number)
        self.MigrationKeyServers.remove(storage)
        self.MigrationInfo.remove(storage)
        self.MigrationConfirmations.remove(storage)
        self.deposit(storage, "MigrationCompleted", migration_id=migration_id)

    # --------------------------------------------------------------------------------------------- ownership
    def call_claim_key(self, ctx: Context, id: bytes) -> None:
        entity = self.entity_of(ctx.storage, ctx.signed())
        if self.KeyOwners.contains(ctx.storage, id):
            raise self.error("KeyAlreadyClaimed")
        self.KeyOwners.put(ctx.storage, [entity], id)
        self.deposit(ctx.storage, "KeyClaimed", id=id, owner=entity)

    def call_transfer_key(self, ctx: Context, id: bytes, new_claimant: bytes) -> None:
        entity = self.entity_of(ctx.storage, ctx.signed())
        if entity not in (self.KeyOwners.get(ctx.storage, id) or []):
            raise self.error("NotKeyOwner")
        self.KeyOwners.put(ctx.storage, [new_claimant], id)
        self.deposit(ctx.storage, "KeyTransferred", id=id, new_owner=new_claimant)

    def check_key_access(self, storage, key: bytes, requester: bytes) -> bool:
        return requester in (self.KeyOwners.get(storage, key) or [])

    # ------------------------------------------------------------------------------------------ request intake
    def _check_point(self, value: bytes, error: str) -> None:
        try:
            Public(value)
        except InvalidPublic:
            raise self.error(error) from None

    def _pending(self, storage, entry: StorageEntry) -> int:
        return sum(1 for _ in storage.iter_prefix(entry.prefix))

    def _accept_request(self, ctx: Context, entry: StorageEntry, key: Any, fee_entry: StorageEntry) -> None:
        """Checks every request shares: not queued already, queue not full; then charges the fee."""
        if entry.contains(ctx.storage, key):
            raise self.error("DuplicateRequest")
        if self._pending(ctx.storage, entry) >= self.MaxPendingRequests.get(ctx.storage):
            raise self.error("TooManyPendingRequests")
        self._charge_fee(ctx, fee_entry.get(ctx.storage))

    def _charge_fee(self, ctx: Context, fee: int) -> None:
        """The fee is split equally among the current key servers' claimed accounts, the remainder to the last."""
        if fee == 0:
            return
        payer = ctx.signed()
        balances = self.runtime.balances
        accounts = [a for a in (self.ClaimedBy.get(ctx.storage, ks["id"]) for ks in self.current_set(ctx.storage))
                    if a is not None]
        if not accounts:
            balances.withdraw(ctx.storage, payer, fee)
            return
        if balances.free(ctx.storage, payer) < fee:
            raise balances.error("InsufficientBalance")
        share = fee // len(accounts)
        for i, account in enumerate(accounts):
            amount = share + (fee - share * len(accounts) if i == len(accounts) - 1 else 0)
            balances.transfer(ctx.storage, payer, account, amount)

    def current_set_change_block(self, storage) -> int:
        """Block of the last membership change of the current set (collected responses older than it are void)."""
        return self.CurrentSetChangeBlock.get(storage)

    # -------------------------------------------------------------------------------- server key generation
    def call_generate_server_key(self, ctx: Context, id: bytes, threshold: int) -> None:
        author = self.entity_of(ctx.storage, ctx.signed())
        if threshold >= ERROR_THRESHOLD or threshold + 1 > len(self.current_set(ctx.storage)):
            raise self.error("InvalidThreshold")
        self._accept_request(ctx, self.ServerKeyGenerationRequests, id, self.ServerKeyGenerationFee)
        self.ServerKeyGenerationRequests.put(ctx.storage, {
            "author": author, "threshold": threshold,
            "responses": rs.new_state(self.current_set_change_block(ctx.storage))}, id)
        self.deposit(ctx.storage, "ServerKeyGenerationRequested", id=id, author=author, threshold=threshold)

    def _respond(self, ctx: Context, entry: StorageEntry, key: Any,
                 on_request: Callable[[dict, int, int], None]) -> None:
        """Common shape of the response calls: caller must be a current key server; unknown request is a no-op."""
        index, n = self.key_server_caller(ctx)
        request = entry.get(ctx.storage, key)
        if request is None:
            return
        on_request(request, index, n)

    def _unanimous(self, ctx: Context, entry: StorageEntry, id: bytes, response: bytes,
                   on_confirmed: Callable[[bytes], None], error_event: str) -> None:
        """Services every current key server must agree on (T = n - 1): count the answer, settle when decided."""
        def respond(request: dict, index: int, n: int) -> None:
            state = request["responses"]
            rs.refresh(state, self.current_set_change_block(ctx.storage))
            if rs.has_responded(state, index):
                raise self.error("AlreadyResponded")
            outcome, agreed = rs.insert(state, index, response, n - 1, n)
            if outcome is Outcome.PENDING:
                entry.put(ctx.storage, request, id)
                return
            entry.remove(ctx.storage, id)
            if outcome is Outcome.CONFIRMED:
                on_confirmed(agreed)
            else:
                self.deposit(ctx.storage, error_event, id=id)

        self._respond(ctx, entry, id, respond)

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

    # --------------------------------------------------------------------------------- server key retrieval
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

    # ----------------------------------------------------------------------------------- document key store
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

    # ------------------------------------------------------------------------ document key shadow retrieval
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

    def shadow_retrieval_request(self, storage, id: bytes, requester: bytes) -> dict | None:
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
        if _popcount(group["reporters"]) >= request["threshold"] + 1:
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
        if _popcount(request["personal_errors"]) >= n // 2 + 1:
            entry.remove(ctx.storage, (id, requester))
            self.deposit(ctx.storage, "DocumentKeyShadowRetrievalError", id=id, requester=requester)
        else:
            entry.put(ctx.storage, request, (id, requester))

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
    def _request_maps(self) -> dict[bytes, tuple[str, StorageEntry]]:
        return {self.requests(service).prefix: (service, self.requests(service)) for service in SERVICES}

    def responses_awaited(self, storage, storage_key: bytes) -> int | None:
        """For the storage key of a pending request: the fewest further key server responses that could decide it
        (0 once it is gone); None for any other key. A hint for sealing blocks, never for counting: a wrong answer
        only makes a block come a little earlier or later."""
        found = self._request_maps.get(storage_key[:32])
        if found is None:
            return None
        service, entry = found
        raw = storage.get(storage_key)
        if raw is None:
            return 0
        request = entry.value.decode(raw)
        n = len(self.current_set(storage))
        block = self.current_set_change_block(storage)
        if service == "document_key_shadow_retrieval" and request["threshold"] is not None \
                and request["common_responses"]["set_change_block"] == block:  # the personal part
            reported = max((_popcount(g["reporters"]) for g in request["personal_responses"]), default=0)
            return max(1, request["threshold"] + 1 - reported)
        state = request[{"server_key_retrieval": "threshold_responses",
                         "document_key_shadow_retrieval": "common_responses"}.get(service, "responses")]
        rs.refresh(state, block)  # counting starts over after a set change, as the response calls do
        if service == "document_key_shadow_retrieval":  # a majority agreeing on one common part
            return n // 2 + 1 - rs.max_support(state)[1]
        if service == "server_key_retrieval":  # a majority on the threshold
            return n // 2 + 1 - rs.responded_count(state)
        return n - rs.responded_count(state)  # generation and store: every key server answers

    # ----------------------------------------------------------------------- read surface (the runtime APIs)
    def requests(self, service: str) -> StorageEntry:
        """The storage map of one service's pending requests (`service` is one of SERVICES)."""
        return {"server_key_generation": self.ServerKeyGenerationRequests,
                "server_key_retrieval": self.ServerKeyRetrievalRequests,
                "document_key_store": self.DocumentKeyStoreRequests,
                "document_key_shadow_retrieval": self.DocumentKeyShadowRetrievalRequests}[service]

    def key_server_set_snapshot(self, storage, key_server: bytes) -> dict:
        """Current, new and migration sets as `KeyServerSetSnapshot`; `is_confirmed` is as seen by `key_server`."""
        def entries(servers: list[dict]) -> list[tuple[bytes, bytes]]:
            return [(ks["id"], ks["address"]) for ks in servers]

        migration = self.MigrationInfo.get(storage)
        return {
            "current_set": entries(self.current_set(storage)),
            "new_set": entries(self.NewKeyServers.get(storage)),
            "migration": None if migration is None else {
                "id": migration["id"], "set": entries(self.MigrationKeyServers.get(storage)),
                "master": migration["master"], "is_confirmed": key_server in self.MigrationConfirmations.get(storage)},
        }

    def current_set_with_indices(self, storage) -> list[tuple[bytes, int]]:
        """(KeyServerId, index) of the current set: the indices that response masks and `participants` use."""
        return [(ks["id"], i) for i, ks in enumerate(self.current_set(storage))]

    def service_tasks(self, storage, service: str, begin: int, end: int) -> list[tuple[str, Any]]:
        """Pending requests of one service as `ServiceTask` values, paged in storage order: `begin` inclusive, `end`
        exclusive. A shadow retrieval is a common-part task until the common part is agreed (again, after a set
        change), then a personal-part task."""
        page = islice(self.requests(service).items(storage), begin, max(begin, end))
        if service == "server_key_generation":
            return [("GenerateServerKey", (k, r["author"], r["threshold"])) for k, r in page]
        if service == "server_key_retrieval":
            return [("RetrieveServerKey", k) for k, _ in page]
        if service == "document_key_store":
            return [("StoreDocumentKey", (k, r["author"], r["common_point"], r["encrypted_point"])) for k, r in page]
        change_block = self.current_set_change_block(storage)
        return [("RetrieveShadowDocumentKeyPersonal", (id, r["requester_public"]))
                if r["threshold"] is not None and r["common_responses"]["set_change_block"] == change_block
                else ("RetrieveShadowDocumentKeyCommon", (id, requester))
                for (id, requester), r in page]

    def is_response_required(self, storage, service: str, key_server: bytes, key: bytes,
                             requester: bytes | None = None) -> bool:
        """Whether `key_server` still owes an answer to the request: false outside the current set, for a request that
        is not pending, and once its vote (or, for a shadow retrieval, its personal part or error) is counted."""
        index = self.current_index(storage, key_server)
        if index is None:
            return False
        if service == "document_key_shadow_retrieval":
            request = self.shadow_retrieval_request(storage, key, requester)
            if request is None:
                return False
            if request["threshold"] is None:
                return not rs.has_responded(request["common_responses"], index)
            if request["personal_errors"] >> index & 1:
                return False
            return not any(g["reporters"] >> index & 1 for g in request["personal_responses"])
        request = self.requests(service).get(storage, key)
        if request is None:
            return False
        state = request["threshold_responses" if service == "server_key_retrieval" else "responses"]
        return state["set_change_block"] != self.current_set_change_block(storage) or not rs.has_responded(state, index)
