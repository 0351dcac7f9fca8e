"""Claims: an account claims one entity id (and an id is claimed by one account), and an entity claims server key
ids, which it may transfer to another entity. Who owns a key is the ACL key servers check (`SecretStoreAclApi`).
Calls that act for an entity resolve the caller's claim first (`NoAssociatedId`); key servers answer from the
account that claimed their KeyServerId.
"""

from __future__ import annotations

from ...codec.primitives import H160, H256
from ...codec.scale import Sequence
from ..dispatch import Context
from ..storage import Storage
from .base import SecretStoreBase, storage_item


class Claims(SecretStoreBase):
    KeyOwners = storage_item("KeyOwners", Sequence(H160), ["Blake2_128Concat"], H256,
                             docs="Owners of each claimed key id.")

    def call_claim_id(self, ctx: Context, id: bytes) -> None:
        account = ctx.signed()
        if self.ClaimedId.contains(ctx.storage, account):
            raise self.error("AccountAlreadyHasId")
        if self.ClaimedBy.contains(ctx.storage, id):
            raise self.error("IdAlreadyClaimed")
        self.ClaimedId.put(ctx.storage, id, account)
        self.ClaimedBy.put(ctx.storage, account, id)
        self.deposit(ctx.storage, "IdClaimed", account=account, id=id)

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

    def check_key_access(self, storage: Storage, key: bytes, requester: bytes) -> bool:
        return requester in (self.KeyOwners.get(storage, key) or [])
