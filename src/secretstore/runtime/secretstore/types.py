"""SCALE types of the SecretStore pallet's storage: records and response counters (the types of its runtime APIs are
part of its interface: `secretstore.interface.types`)."""

from __future__ import annotations

from ...codec.primitives import H160, H256, H512
from ...codec.scale import U8, U32, U256, Bytes, Composite, Field, Option, Sequence, Tuple, newtype
from ...interface import MODULE

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
