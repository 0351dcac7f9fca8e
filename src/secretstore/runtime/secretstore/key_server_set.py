"""The key server set and its migration.

Three lists - current, migration, new - where a key server's index is its position in the current list. Before
`complete_initialization` the owner's changes apply to current and new at once; afterwards only to the new list, and
a key server of current or new starts a migration that completes when every member of the migration set has
confirmed. `add_key_server` for a member with a different address updates the address (KeyServerUpdated) in the new
set and, since no share moves, also in the current set without a migration. `CurrentSetChangeBlock` records the
block of the last membership change of the current set; collected responses of a pending request are discarded
when it moves (the request itself stays queued).
"""

from __future__ import annotations

from ...codec.primitives import H160
from ...codec.scale import Bool, Sequence
from ..dispatch import Context
from ..storage import Storage
from .base import SecretStoreBase, storage_item
from .types import MAX_KEY_SERVERS, KeyServer, Migration

MAX_NETWORK_ADDRESS_LEN = 256


def valid_network_address(address: object) -> bool:
    """A key server's network address: non-empty 'host:port' bytes, bounded in size."""
    return isinstance(address, bytes) and 0 < len(address) <= MAX_NETWORK_ADDRESS_LEN and b":" in address


class KeyServerSet(SecretStoreBase):
    IsInitializationCompleted = storage_item("IsInitializationCompleted", Bool, default=b"\x00",
                                             docs="Whether set changes need a migration.")
    MigrationKeyServers = storage_item("MigrationKeyServers", Sequence(KeyServer), default=b"\x00",
                                       docs="The set keys are being moved to while a migration runs.")
    NewKeyServers = storage_item(
        "NewKeyServers", Sequence(KeyServer), default=b"\x00",
        docs="The set the owner wants; differs from the current one until a migration completes.")
    MigrationInfo = storage_item("MigrationInfo", Migration, docs="Id and master of the running migration.")
    MigrationConfirmations = storage_item("MigrationConfirmations", Sequence(H160), default=b"\x00",
                                          docs="Key servers of the migration set that confirmed it.")

    def call_change_owner(self, ctx: Context, new_owner: bytes) -> None:
        self.ensure_owner(ctx)
        self.Owner.put(ctx.storage, new_owner)
        self.deposit(ctx.storage, "OwnerChanged", new_owner=new_owner)

    def call_complete_initialization(self, ctx: Context) -> None:
        self.ensure_owner(ctx)
        if self.IsInitializationCompleted.get(ctx.storage):
            raise self.error("InitializationAlreadyCompleted")
        self.IsInitializationCompleted.put(ctx.storage, True)

    def _set_current(self, storage: Storage, servers: list[dict], block: int) -> None:
        # Only a change of membership or order moves the change block (restarting response counting): an address
        # update leaves every key server's index, and so every collected response, valid.
        if [ks["id"] for ks in servers] != [ks["id"] for ks in self.current_set(storage)]:
            self.CurrentSetChangeBlock.put(storage, block)
            # Counting would also restart lazily when the change block moves, but two membership changes within one
            # block leave the block unchanged, and the masks of responses collected between them would point at the
            # wrong key servers.
            self.restart_pending_requests(storage, block)
        self.CurrentKeyServers.put(storage, servers)

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

    def migration_required(self, storage: Storage) -> bool:
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

    # ---------------------------------------------------------------------- read surface (SecretStoreKeyServerSetApi)
    def key_server_set_snapshot(self, storage: Storage, key_server: bytes) -> dict:
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

    def current_set_with_indices(self, storage: Storage) -> list[tuple[bytes, int]]:
        """(KeyServerId, index) of the current set: the indices that response masks and `participants` use."""
        return [(ks["id"], i) for i, ks in enumerate(self.current_set(storage))]
