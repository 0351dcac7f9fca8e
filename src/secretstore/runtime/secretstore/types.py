"""SCALE types of the SecretStore pallet: storage records, response counters, and the types of its runtime APIs."""

from __future__ import annotations

from ...codec.primitives import H160, H256, H512
from ...codec.scale import (
    U8, U32, U256, Bool, Bytes, Composite, Field, Option, Sequence, Tuple, Variant, VariantDef, newtype,
)

MODULE = "pallet_secretstore"

# Key server index is a u8, so a mask over the current set is 256 bits.
KeyServersMask = newtype(("secretstore_primitives", "KeyServersMask"), U256, "U256")
MAX_KEY_SERVERS = 255
# Threshold answer that stands for "this key server reported an error" in the retrieval counters.
ERROR_THRESHOLD = 0xFF


def _struct(name: str, *fields: tuple[str, object, str]) -> Composite:
    return Composite((MODULE, name), [Field(n, t, tn) for n, t, tn in fields])  # type: ignore[arg-type]


KeyServer = _struct("KeyServer", ("id", H160, "KeyServerId"), ("address", Bytes, "KeyServerNetworkAddress"))
Migration = _struct("Migration", ("id", H256, "MigrationId"), ("master", H160, "KeyServerId"))

ResponsesState = _struct(
    "ResponsesState",
    ("set_change_block", U32, "BlockNumber"),
    ("responded", KeyServersMask, "KeyServersMask"),
    ("responses", Sequence(Tuple(Bytes, U8)), "Vec<(Vec<u8>, u8)>"),
)

ServerKeyGenerationRequest = _struct(
    "ServerKeyGenerationRequest",
    ("author", H160, "EntityId"), ("threshold", U8, "u8"), ("responses", ResponsesState, "ResponsesState"))

ServerKeyRetrievalRequest = _struct(
    "ServerKeyRetrievalRequest",
    ("threshold_responses", ResponsesState, "ResponsesState"),
    ("public_responses", ResponsesState, "ResponsesState"),
)

DocumentKeyStoreRequest = _struct(
    "DocumentKeyStoreRequest",
    ("author", H160, "EntityId"), ("common_point", H512, "H512"), ("encrypted_point", H512, "H512"),
    ("responses", ResponsesState, "ResponsesState"))

PersonalResponse = _struct(
    "PersonalResponse",
    ("participants", KeyServersMask, "KeyServersMask"), ("decrypted_secret", H512, "H512"),
    ("reporters", KeyServersMask, "KeyServersMask"))

DocumentKeyShadowRetrievalRequest = _struct(
    "DocumentKeyShadowRetrievalRequest",
    ("requester_public", H512, "H512"),
    ("common_responses", ResponsesState, "ResponsesState"),
    ("threshold", Option(U8), "Option<u8>"),
    ("personal_responses", Sequence(PersonalResponse), "Vec<PersonalResponse>"),
    ("personal_errors", KeyServersMask, "KeyServersMask"),
)

# ------------------------------------------------------------------------------- runtime API types (the traits)
# As Parity's secretstore-runtime-primitives declares them (field order = SCALE order), so that key servers read
# our node and a MathChain node alike.
PRIMITIVES = "secretstore_runtime_primitives"

# (KeyServerId, KeyServerNetworkAddress): the same bytes as a `KeyServer` record.
KeyServerEntry = Tuple(H160, Bytes)

KeyServerSetMigration = Composite((PRIMITIVES, "key_server_set", "KeyServerSetMigration"), [
    Field("id", H256, "MigrationId"), Field("set", Sequence(KeyServerEntry), "Vec<(KeyServerId, KeyServerNetworkAddress)>"),
    Field("master", H160, "KeyServerId"), Field("is_confirmed", Bool, "bool")])

KeyServerSetSnapshot = Composite((PRIMITIVES, "key_server_set", "KeyServerSetSnapshot"), [
    Field("current_set", Sequence(KeyServerEntry), "Vec<(KeyServerId, KeyServerNetworkAddress)>"),
    Field("new_set", Sequence(KeyServerEntry), "Vec<(KeyServerId, KeyServerNetworkAddress)>"),
    Field("migration", Option(KeyServerSetMigration), "Option<KeyServerSetMigration>")])

# One pending request, as a key server sees it. Values are (variant name, tuple of fields) - a single field bare.
ServiceTask = Variant((PRIMITIVES, "service", "ServiceTask"), [
    VariantDef("GenerateServerKey", 0, (Field(None, H256, "ServerKeyId"), Field(None, H160, "EntityId"),
                                        Field(None, U8, "u8"))),
    VariantDef("RetrieveServerKey", 1, (Field(None, H256, "ServerKeyId"),)),
    VariantDef("StoreDocumentKey", 2, (Field(None, H256, "ServerKeyId"), Field(None, H160, "EntityId"),
                                       Field(None, H512, "H512"), Field(None, H512, "H512"))),
    # while the common part (common point, threshold) is being agreed
    VariantDef("RetrieveShadowDocumentKeyCommon", 3, (Field(None, H256, "ServerKeyId"), Field(None, H160, "EntityId"))),
    # once it is agreed: every holder computes its personal part for this requester public
    VariantDef("RetrieveShadowDocumentKeyPersonal", 4, (Field(None, H256, "ServerKeyId"), Field(None, H512, "H512"))),
])
