"""Runtime metadata (V14 and V15) built from the pallets' declarations and the extrinsic format.

Type paths follow Substrate's so that clients (scalecodec / substrate-interface, polkadot.js) apply their special
handling: `sp_runtime::generic::unchecked_extrinsic::UncheckedExtrinsic` with params Address / Call / Signature / Extra,
`sp_runtime::multiaddress::MultiAddress`, `sp_runtime::generic::era::Era`, `*::RuntimeCall`, `*::RuntimeEvent`,
`frame_system::EventRecord`.
"""

from __future__ import annotations

from ..codec.metadata import encode_prefixed
from ..codec.primitives import H256
from ..codec.scale import (
    U8, U32, U128, Array, Bytes, Compact, Composite, Field, Option, ScaleType, Tuple, TypeRegistry, Variant, VariantDef,
    newtype,
)
from .balances import MultiAddress
from .frame import PalletDecl

EXTRINSIC_VERSION = 4

Ed25519Signature = newtype(("sp_core", "ed25519", "Signature"), Array(U8, 64), "[u8; 64]")
Sr25519Signature = newtype(("sp_core", "sr25519", "Signature"), Array(U8, 64), "[u8; 64]")
EcdsaSignature = newtype(("sp_core", "ecdsa", "Signature"), Array(U8, 65), "[u8; 65]")
MultiSignature = Variant(("sp_runtime", "MultiSignature"), [
    VariantDef("Ed25519", 0, (Field(None, Ed25519Signature, "ed25519::Signature"),)),
    VariantDef("Sr25519", 1, (Field(None, Sr25519Signature, "sr25519::Signature"),)),
    VariantDef("Ecdsa", 2, (Field(None, EcdsaSignature, "ecdsa::Signature"),)),
])
# Era as scale-info describes it: Immortal, then MortalN(u8) for the first byte N of the two-byte mortal encoding.
Era = Variant(("sp_runtime", "generic", "era", "Era"),
              [VariantDef("Immortal", 0)] + [VariantDef(f"Mortal{i}", i, (Field(None, U8),)) for i in range(1, 256)])
MetadataHashMode = Variant(("frame_metadata_hash_extension", "Mode"), [VariantDef("Disabled", 0), VariantDef("Enabled", 1)])

Unit = Tuple()
# (identifier, extra type, additional-signed type), in the order they are encoded.
SIGNED_EXTENSIONS: list[tuple[str, ScaleType, ScaleType]] = [
    ("CheckNonZeroSender", Unit, Unit),
    ("CheckSpecVersion", Unit, U32),
    ("CheckTxVersion", Unit, U32),
    ("CheckGenesis", Unit, H256),
    ("CheckMortality", Era, H256),
    ("CheckNonce", Compact(U32), Unit),
    ("CheckWeight", Unit, Unit),
    ("ChargeTransactionPayment", Compact(U128), Unit),
    ("CheckMetadataHash", MetadataHashMode, Option(Array(U8, 32))),
]
SignedExtra = Tuple(*(extra for _, extra, _ in SIGNED_EXTENSIONS))


def extrinsic_type(call: Variant) -> Composite:
    return Composite(("sp_runtime", "generic", "unchecked_extrinsic", "UncheckedExtrinsic"),
                     [Field(None, Bytes)],
                     params=(("Address", MultiAddress), ("Call", call), ("Signature", MultiSignature),
                             ("Extra", SignedExtra)))


RuntimeType = Composite(("secretstore_runtime", "Runtime"), [])


def _storage(registry: TypeRegistry, pallet) -> dict | None:
    if not pallet.storage:
        return None
    entries = []
    for entry in pallet.storage:
        if entry.hashers:
            ty = ("Map", {"hashers": [(h, None) for h in entry.hashers], "key": registry.register(entry.key),
                          "value": registry.register(entry.value)})
        else:
            ty = ("Plain", registry.register(entry.value))
        entries.append({"name": entry.name, "modifier": (entry.modifier, None), "ty": ty,
                        "default": entry.default, "docs": list(entry.docs)})
    return {"prefix": pallet.name, "entries": entries}


def build_metadata(pallets: list[PalletDecl], call: Variant, event: Variant, error: Variant, event_record: ScaleType,
                   version: int = 14) -> bytes:
    """RuntimeMetadataPrefixed of the pallets' declarations and the runtime's outer enums (call, event, error)."""
    if version not in (14, 15):
        raise ValueError(f"metadata version {version} is not supported (14 and 15 are)")
    registry = TypeRegistry()
    ext_ty = registry.register(extrinsic_type(call))
    pallet_entries = []
    for pallet in pallets:
        entry = {
            "name": pallet.name,
            "storage": _storage(registry, pallet),
            "calls": {"ty": registry.register(pallet.calls)} if pallet.calls is not None else None,
            "event": {"ty": registry.register(pallet.events)} if pallet.events is not None else None,
            "constants": [{"name": c.name, "ty": registry.register(c.type), "value": c.value, "docs": list(c.docs)}
                          for c in pallet.constants],
            "error": {"ty": registry.register(pallet.errors)} if pallet.errors is not None else None,
            "index": pallet.index,
        }
        if version == 15:
            entry["docs"] = list(pallet.docs)
        pallet_entries.append(entry)
    registry.register(event_record)
    signed_extensions = [{"identifier": name, "ty": registry.register(extra), "additional_signed": registry.register(add)}
                         for name, extra, add in SIGNED_EXTENSIONS]
    runtime_ty = registry.register(RuntimeType)
    if version == 14:
        metadata = {"types": None, "pallets": pallet_entries,
                    "extrinsic": {"ty": ext_ty, "version": EXTRINSIC_VERSION, "signed_extensions": signed_extensions},
                    "ty": runtime_ty}
    else:
        metadata = {
            "types": None, "pallets": pallet_entries,
            "extrinsic": {"version": EXTRINSIC_VERSION, "address_ty": registry.register(MultiAddress),
                          "call_ty": registry.register(call),
                          "signature_ty": registry.register(MultiSignature),
                          "extra_ty": registry.register(SignedExtra), "signed_extensions": signed_extensions},
            "ty": runtime_ty, "apis": [],
            "outer_enums": {"call_enum_ty": registry.register(call),
                            "event_enum_ty": registry.register(event),
                            "error_enum_ty": registry.register(error)},
            "custom": [],
        }
    metadata["types"] = registry.portable()
    return encode_prefixed(version, metadata)
