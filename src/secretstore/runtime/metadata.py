"""Runtime metadata (V14 and V15) built from the pallets' declarations and the extrinsic format.

Type paths follow Substrate's so that clients (scalecodec / substrate-interface, polkadot.js) apply their special
handling: `sp_runtime::generic::unchecked_extrinsic::UncheckedExtrinsic` with params Address / Call / Signature / Extra,
`sp_runtime::multiaddress::MultiAddress`, `sp_runtime::generic::era::Era`, `*::RuntimeCall`, `*::RuntimeEvent`,
`frame_system::EventRecord`.

V15 also describes the runtime APIs `state_call` serves (`RUNTIME_API_TRAITS`): exactly the methods the node answers,
with the types it encodes, so that typed clients (polkadot-api, dedot) call them by name.
"""

from __future__ import annotations

from ..codec.metadata import encode_prefixed
from ..codec.primitives import H256, AccountId32, DispatchClass, Weight
from ..codec.scale import (
    U8, U32, U64, U128, Array, Bool, Bytes, Compact, Composite, Field, Option, Result, ScaleType, Sequence, Tuple,
    TypeRegistry, Variant, VariantDef, newtype,
)
from ..interface import API_TRAITS, ApiMethod, ApiParam, ApiTrait
from .balances import MultiAddress
from .frame import PalletDecl
from .version import RuntimeVersion

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

# ---------------------------------------------------------------------------------------- runtime APIs (V15)
# The types of the standard runtime APIs' arguments and results, with Substrate's paths.
OpaqueMetadata = newtype(("sp_core", "OpaqueMetadata"), Bytes, "Vec<u8>")
_VALIDITY = ("sp_runtime", "transaction_validity")
TransactionSource = Variant((*_VALIDITY, "TransactionSource"),
                            [VariantDef(name, i) for i, name in enumerate(("InBlock", "Local", "External"))])
ValidTransaction = Composite((*_VALIDITY, "ValidTransaction"), [
    Field("priority", U64, "TransactionPriority"), Field("requires", Sequence(Bytes), "Vec<TransactionTag>"),
    Field("provides", Sequence(Bytes), "Vec<TransactionTag>"), Field("longevity", U64, "TransactionLongevity"),
    Field("propagate", Bool, "bool")])
InvalidTransaction = Variant((*_VALIDITY, "InvalidTransaction"), [
    VariantDef(name, i, (Field(None, U8, "u8"),) if name == "Custom" else ())
    for i, name in enumerate(("Call", "Payment", "Future", "Stale", "BadProof", "AncientBirthBlock", "ExhaustsResources",
                              "Custom", "BadMandatory", "MandatoryValidation", "BadSigner"))])
UnknownTransaction = Variant((*_VALIDITY, "UnknownTransaction"), [
    VariantDef("CannotLookup", 0), VariantDef("NoUnsignedValidator", 1), VariantDef("Custom", 2, (Field(None, U8, "u8"),))])
TransactionValidityError = Variant((*_VALIDITY, "TransactionValidityError"), [
    VariantDef("Invalid", 0, (Field(None, InvalidTransaction, "InvalidTransaction"),)),
    VariantDef("Unknown", 1, (Field(None, UnknownTransaction, "UnknownTransaction"),))])
TransactionValidity = Result(ValidTransaction, TransactionValidityError)
RuntimeDispatchInfo = Composite(("pallet_transaction_payment", "types", "RuntimeDispatchInfo"), [
    Field("weight", Weight, "Weight"), Field("class", DispatchClass, "DispatchClass"),
    Field("partial_fee", U128, "Balance")], params=(("Balance", U128), ("Weight", Weight)))
InclusionFee = Composite(("pallet_transaction_payment", "types", "InclusionFee"), [
    Field("base_fee", U128, "Balance"), Field("len_fee", U128, "Balance"),
    Field("adjusted_weight_fee", U128, "Balance")], params=(("Balance", U128),))
FeeDetails = Composite(("pallet_transaction_payment", "types", "FeeDetails"), [
    Field("inclusion_fee", Option(InclusionFee), "Option<InclusionFee<Balance>>"), Field("tip", U128, "Balance")],
    params=(("Balance", U128),))


def _api(trait: str, docs: str, version: int,
         methods: list[tuple[str, list[tuple[str, ScaleType]], ScaleType, str]]) -> ApiTrait:
    return ApiTrait(trait, tuple(ApiMethod(trait, name, tuple(ApiParam(p, t) for p, t in params), result, (doc,))
                                 for name, params, result, doc in methods), (docs,), version)


def standard_api_traits(extrinsic: ScaleType) -> tuple[ApiTrait, ...]:
    """The standard runtime APIs with the methods `state_call` answers (the runtime's `api_call` and the node's own
    Metadata, TaggedTransactionQueue and TransactionPaymentApi answers); `extrinsic` is the UncheckedExtrinsic type.
    Methods the node does not serve (Core_execute_block, the BlockBuilder API) are left out: a client that found
    them described would call them and fail."""
    uxt = [("uxt", extrinsic), ("len", U32)]
    return (
        _api("Core", "The runtime's version.", 4, [
            ("version", [], RuntimeVersion, "The version of the runtime."),
        ]),
        _api("Metadata", "The runtime's metadata.", 2, [
            ("metadata", [], OpaqueMetadata, "The metadata (V14)."),
            ("metadata_at_version", [("version", U32)], Option(OpaqueMetadata),
             "The metadata at `version`, if the runtime supports it."),
            ("metadata_versions", [], Sequence(U32), "The metadata versions the runtime supports."),
        ]),
        _api("TaggedTransactionQueue", "Transaction validity for the pool.", 3, [
            ("validate_transaction", [("source", TransactionSource), ("tx", extrinsic), ("block_hash", H256)],
             TransactionValidity, "Whether the transaction is valid at `block_hash`, with what it requires and provides."),
        ]),
        _api("AccountNonceApi", "Account nonces.", 1, [
            ("account_nonce", [("account", AccountId32)], U32, "The next nonce of the account."),
        ]),
        _api("TransactionPaymentApi", "Transaction fees.", 4, [
            ("query_info", uxt, RuntimeDispatchInfo, "The weight, class and fee (without the tip) of a transaction."),
            ("query_fee_details", uxt, FeeDetails, "The parts of a transaction's fee."),
        ]),
    )


def _runtime_apis(registry: TypeRegistry, traits: tuple[ApiTrait, ...]) -> list[dict]:
    return [{"name": trait.name, "docs": list(trait.docs), "methods": [
        {"name": method.name, "inputs": [{"name": p.name, "ty": registry.register(p.type)} for p in method.params],
         "output": registry.register(method.result), "docs": list(method.docs)} for method in trait.methods]}
        for trait in traits]


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
    extrinsic = extrinsic_type(call)
    ext_ty = registry.register(extrinsic)
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
            "ty": runtime_ty, "apis": _runtime_apis(registry, standard_api_traits(extrinsic) + API_TRAITS),
            "outer_enums": {"call_enum_ty": registry.register(call),
                            "event_enum_ty": registry.register(event),
                            "error_enum_ty": registry.register(error)},
            "custom": [],
        }
    metadata["types"] = registry.portable()
    return encode_prefixed(version, metadata)
