"""The SCALE types of the runtime API traits, as Parity's secretstore-runtime-primitives declares them (field order
is SCALE order), so that key servers read our node and a MathChain node alike; and the aliases the pallet's calls,
events and APIs name (`ServerKeyId = H256`, `EntityId = KeyServerId = H160`, `MigrationId = H256`,
`KeyServerNetworkAddress = Vec<u8>`)."""

from __future__ import annotations

from ..codec.primitives import H160, H256, H512
from ..codec.scale import U8, Bool, Bytes, Composite, Field, Option, Sequence, Tuple, Variant, VariantDef

PRIMITIVES = "secretstore_runtime_primitives"

# The aliases are the same descriptors under the names the Rust declarations use; metadata describes the
# underlying types, as scale-info does for type aliases.
ServerKeyId = H256
EntityId = KeyServerId = H160
MigrationId = H256
KeyServerNetworkAddress = Bytes

# (KeyServerId, KeyServerNetworkAddress): the same bytes as the pallet's `KeyServer` storage record.
KeyServerEntry = Tuple(KeyServerId, KeyServerNetworkAddress)

KeyServerSetMigration = Composite((PRIMITIVES, "key_server_set", "KeyServerSetMigration"), [
    Field("id", MigrationId, "MigrationId"),
    Field("set", Sequence(KeyServerEntry), "Vec<(KeyServerId, KeyServerNetworkAddress)>"),
    Field("master", KeyServerId, "KeyServerId"), Field("is_confirmed", Bool, "bool")])

KeyServerSetSnapshot = Composite((PRIMITIVES, "key_server_set", "KeyServerSetSnapshot"), [
    Field("current_set", Sequence(KeyServerEntry), "Vec<(KeyServerId, KeyServerNetworkAddress)>"),
    Field("new_set", Sequence(KeyServerEntry), "Vec<(KeyServerId, KeyServerNetworkAddress)>"),
    Field("migration", Option(KeyServerSetMigration), "Option<KeyServerSetMigration>")])

# One pending request, as a key server sees it. Values are (variant name, tuple of fields) - a single field bare.
ServiceTask = Variant((PRIMITIVES, "service", "ServiceTask"), [
    VariantDef("GenerateServerKey", 0, (Field(None, ServerKeyId, "ServerKeyId"), Field(None, EntityId, "EntityId"),
                                        Field(None, U8, "u8"))),
    VariantDef("RetrieveServerKey", 1, (Field(None, ServerKeyId, "ServerKeyId"),)),
    VariantDef("StoreDocumentKey", 2, (Field(None, ServerKeyId, "ServerKeyId"), Field(None, EntityId, "EntityId"),
                                       Field(None, H512, "H512"), Field(None, H512, "H512"))),
    # while the common part (common point, threshold) is being agreed
    VariantDef("RetrieveShadowDocumentKeyCommon", 3, (Field(None, ServerKeyId, "ServerKeyId"),
                                                      Field(None, EntityId, "EntityId"))),
    # once it is agreed: every holder computes its personal part for this requester public
    VariantDef("RetrieveShadowDocumentKeyPersonal", 4, (Field(None, ServerKeyId, "ServerKeyId"),
                                                        Field(None, H512, "H512"))),
])
