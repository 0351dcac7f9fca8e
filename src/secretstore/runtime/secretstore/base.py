"""What every part of the SecretStore pallet shares: its errors, the storage items more than one part reads (the
owner, identities, the current key server set, the cap on pending requests), and the steps every request takes:
resolving the caller, checking points, accepting a request into its queue and charging its fee, counting the key
servers' answers.

Each part of the pallet (`key_server_set`, `claims`, and one module per request kind) is a subclass of
`SecretStoreBase` and `pallet.SecretStore` inherits them all, as FRAME spreads one pallet's impl blocks over files.
"""

from __future__ import annotations

from typing import Any, Callable

from ...codec.primitives import AccountId32, H160
from ...codec.scale import U32, Sequence
from ...crypto import InvalidPublic, Public
from ...interface import EVENTS, PALLET
from ..dispatch import Context, Pallet, error_enum
from ..frame import StorageEntry
from ..storage import Storage
from . import responses as rs
from .responses import Outcome
from .types import MODULE, KeyServer

DEFAULT_MAX_PENDING_REQUESTS = 64

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


def storage_item(name: str, value, hashers=(), key=None, default: bytes | None = None, docs: str = "") -> StorageEntry:
    """One of the pallet's storage items: `Default` with a default value, `Optional` without."""
    return StorageEntry(PALLET, name, value, tuple(hashers), key, "Default" if default is not None else "Optional",
                        default or b"", (docs,))


def popcount(mask: int) -> int:
    return bin(mask).count("1")


class SecretStoreBase(Pallet):
    NAME, INDEX, MODULE = PALLET, 3, MODULE
    ERRORS, EVENTS = ERRORS, EVENTS

    Owner = storage_item("Owner", AccountId32, docs="Owner of the key server set.")
    ClaimedId = storage_item("ClaimedId", H160, ["Blake2_128Concat"], AccountId32,
                             docs="Entity id claimed by each account.")
    ClaimedBy = storage_item("ClaimedBy", AccountId32, ["Blake2_128Concat"], H160,
                             docs="Account that claimed each entity id.")
    CurrentKeyServers = storage_item("CurrentKeyServers", Sequence(KeyServer), default=b"\x00",
                                     docs="The current key server set; a server's index is its position.")
    CurrentSetChangeBlock = storage_item(
        "CurrentSetChangeBlock", U32, default=bytes(4),
        docs="Block of the last change of the current set; responses restart when it moves.")
    MaxPendingRequests = storage_item("MaxPendingRequests", U32, default=U32.encode(DEFAULT_MAX_PENDING_REQUESTS),
                                      docs="Cap on pending requests of each service.")

    # ---------------------------------------------------------------------------------------------- identities
    def entity_of(self, storage: Storage, account: bytes) -> bytes:
        entity = self.ClaimedId.get(storage, account)
        if entity is None:
            raise self.error("NoAssociatedId")
        return entity

    def ensure_owner(self, ctx: Context) -> None:
        if ctx.signed() != self.Owner.get(ctx.storage):
            raise self.error("NotOwner")

    def current_set(self, storage: Storage) -> list[dict]:
        return self.CurrentKeyServers.get(storage)

    def current_index(self, storage: Storage, key_server: bytes) -> int | None:
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

    def current_set_change_block(self, storage: Storage) -> int:
        """Block of the last membership change of the current set (collected responses older than it are void)."""
        return self.CurrentSetChangeBlock.get(storage)

    def restart_pending_requests(self, storage: Storage, block: int) -> None:
        """Discard the collected responses of every pending request (the current set changed at `block`): each
        request kind's part restarts its own; the composed pallet calls them all."""
        raise NotImplementedError

    # ------------------------------------------------------------------------------------------ request intake
    def _check_point(self, value: bytes, error: str) -> None:
        try:
            Public(value)
        except InvalidPublic:
            raise self.error(error) from None

    def _pending(self, storage: Storage, entry: StorageEntry) -> int:
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

    # ---------------------------------------------------------------------------------------------- responses
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

    def _restart_votes(self, storage: Storage, entry: StorageEntry, states: tuple[str, ...], block: int) -> None:
        """Start counting every pending request of `entry` over: its response states `states` emptied at `block`."""
        for key, request in list(entry.items(storage)):
            for state in states:
                request[state] = rs.new_state(block)
            entry.put(storage, request, key)

    def _vote_required(self, storage: Storage, entry: StorageEntry, state: str, key_server: bytes,
                       key: bytes) -> bool:
        """Whether `key_server` still owes its vote to the pending request `key` of `entry`, counted in `state`:
        false outside the current set and for a request that is not pending."""
        index = self.current_index(storage, key_server)
        if index is None:
            return False
        request = entry.get(storage, key)
        if request is None:
            return False
        votes = request[state]
        return votes["set_change_block"] != self.current_set_change_block(storage) or not rs.has_responded(votes, index)
