"""The SecretStore pallet's name and events: what a chain emits and key servers and the SDK read.

The event enum is declared as FRAME's scale-info describes it (`pallet_secretstore::pallet::Event`, one variant per
event in index order, named fields with their Rust type names), so the runtime publishes exactly this in its metadata
and a client that meets an older chain (metadata before V14, unnamed fields) names the fields from here.
"""

from __future__ import annotations

from ..codec.primitives import AccountId32, H512
from ..codec.scale import U8, Bytes, Field, Variant, VariantDef
from .types import EntityId, KeyServerId, MigrationId, ServerKeyId

PALLET = "SecretStore"  # the pallet's name in the runtime (metadata, storage prefixes, RuntimeEvent variant)
MODULE = "pallet_secretstore"  # its crate: the first segment of its types' paths

_ID = ("id", ServerKeyId, "ServerKeyId")
_EVENTS = [
    ("OwnerChanged", [("new_owner", AccountId32, "T::AccountId")], "The owner of the key server set changed."),
    ("IdClaimed", [("account", AccountId32, "T::AccountId"), ("id", EntityId, "EntityId")], "An account claimed an id."),
    ("KeyServerAdded", [("key_server", KeyServerId, "KeyServerId")], "A key server was added."),
    ("KeyServerRemoved", [("key_server", KeyServerId, "KeyServerId")], "A key server was removed."),
    ("KeyServerUpdated", [("key_server", KeyServerId, "KeyServerId")], "A key server's network address changed."),
    ("MigrationStarted", [("migration_id", MigrationId, "MigrationId"), ("master", KeyServerId, "KeyServerId")],
     "Key servers started moving keys to the new set."),
    ("MigrationCompleted", [("migration_id", MigrationId, "MigrationId")], "The new key server set became current."),
    ("KeyClaimed", [_ID, ("owner", EntityId, "EntityId")], "A key id was claimed."),
    ("KeyTransferred", [_ID, ("new_owner", EntityId, "EntityId")], "A key changed owner."),
    ("ServerKeyGenerationRequested", [_ID, ("author", EntityId, "EntityId"), ("threshold", U8, "u8")],
     "Key servers: generate this server key."),
    ("ServerKeyGenerated", [_ID, ("public", H512, "H512")], "The server key was generated."),
    ("ServerKeyGenerationError", [_ID], "The server key could not be generated."),
    ("ServerKeyRetrievalRequested", [_ID], "Key servers: report this server key."),
    ("ServerKeyRetrieved", [_ID, ("public", H512, "H512")], "The server key public."),
    ("ServerKeyRetrievalError", [_ID], "The server key could not be retrieved."),
    ("DocumentKeyStoreRequested", [_ID, ("author", EntityId, "EntityId"), ("common_point", H512, "H512"),
                                   ("encrypted_point", H512, "H512")],
     "Key servers: store this document key."),
    ("DocumentKeyStored", [_ID], "The document key was stored."),
    ("DocumentKeyStoreError", [_ID], "The document key could not be stored."),
    ("DocumentKeyShadowRetrievalRequested", [_ID, ("requester", EntityId, "EntityId")],
     "Key servers: agree on the common part of this document key shadow retrieval."),
    ("DocumentKeyCommonRetrieved", [_ID, ("requester", EntityId, "EntityId"), ("common_point", H512, "H512"),
                                    ("threshold", U8, "u8")],
     "The common part of a document key shadow retrieval."),
    ("DocumentKeyPersonalRetrievalRequested", [_ID, ("requester_public", H512, "H512")],
     "Key servers: compute the personal parts for this requester."),
    ("DocumentKeyPersonalRetrieved", [_ID, ("requester", EntityId, "EntityId"), ("decrypted_secret", H512, "H512"),
                                      ("shadow", Bytes, "Vec<u8>")],
     "One key server's personal part of a document key shadow retrieval."),
    ("DocumentKeyShadowRetrievalError", [_ID, ("requester", EntityId, "EntityId")],
     "The document key shadow could not be retrieved."),
]

EVENTS = Variant((MODULE, "pallet", "Event"), [
    VariantDef(name, index, tuple(Field(*field) for field in fields), (docs,))
    for index, (name, fields, docs) in enumerate(_EVENTS)
], docs=("The `Event` enum of this pallet",))
