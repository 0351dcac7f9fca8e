"""Standard Substrate types, declared with the paths Substrate gives them so that clients recognise them in metadata."""

from __future__ import annotations

from .scale import (
    U8, U32, U64, U128, Array, Compact, Composite, Field, Variant, VariantDef, newtype,
)

AccountId32 = newtype(("sp_core", "crypto", "AccountId32"), Array(U8, 32), "[u8; 32]")
H160 = newtype(("primitive_types", "H160"), Array(U8, 20), "[u8; 20]")
H256 = newtype(("primitive_types", "H256"), Array(U8, 32), "[u8; 32]")
H512 = newtype(("primitive_types", "H512"), Array(U8, 64), "[u8; 64]")

BlockNumber = U32
Balance = U128
Nonce = U32


def _unit_enum(path: tuple[str, ...], names: list[str]) -> Variant:
    return Variant(path, [VariantDef(n, i) for i, n in enumerate(names)])


Weight = Composite(("sp_weights", "weight_v2", "Weight"), [
    Field("ref_time", Compact(U64), "u64"),
    Field("proof_size", Compact(U64), "u64"),
])
DispatchClass = _unit_enum(("frame_support", "dispatch", "DispatchClass"), ["Normal", "Operational", "Mandatory"])
Pays = _unit_enum(("frame_support", "dispatch", "Pays"), ["Yes", "No"])
DispatchInfo = Composite(("frame_support", "dispatch", "DispatchInfo"), [
    Field("weight", Weight, "Weight"),
    Field("class", DispatchClass, "DispatchClass"),
    Field("pays_fee", Pays, "Pays"),
])

ModuleError = Composite(("sp_runtime", "ModuleError"), [
    Field("index", U8, "u8"),
    Field("error", Array(U8, 4), "[u8; MAX_MODULE_ERROR_ENCODED_SIZE]"),
])
TokenError = _unit_enum(("sp_runtime", "TokenError"), [
    "FundsUnavailable", "OnlyProvider", "BelowMinimum", "CannotCreate", "UnknownAsset", "Frozen", "Unsupported",
    "CannotCreateHold", "NotExpendable", "Blocked"])
ArithmeticError = _unit_enum(("sp_arithmetic", "ArithmeticError"), ["Underflow", "Overflow", "DivisionByZero"])
TransactionalError = _unit_enum(("sp_runtime", "TransactionalError"), ["LimitReached", "NoLayer"])
DispatchError = Variant(("sp_runtime", "DispatchError"), [
    VariantDef("Other", 0),
    VariantDef("CannotLookup", 1),
    VariantDef("BadOrigin", 2),
    VariantDef("Module", 3, (Field(None, ModuleError, "ModuleError"),)),
    VariantDef("ConsumerRemaining", 4),
    VariantDef("NoProviders", 5),
    VariantDef("TooManyConsumers", 6),
    VariantDef("Token", 7, (Field(None, TokenError, "TokenError"),)),
    VariantDef("Arithmetic", 8, (Field(None, ArithmeticError, "ArithmeticError"),)),
    VariantDef("Transactional", 9, (Field(None, TransactionalError, "TransactionalError"),)),
    VariantDef("Exhausted", 10),
    VariantDef("Corruption", 11),
    VariantDef("Unavailable", 12),
    VariantDef("RootNotAllowed", 13),
])

Phase = Variant(("frame_system", "Phase"), [
    VariantDef("ApplyExtrinsic", 0, (Field(None, U32, "u32"),)),
    VariantDef("Finalization", 1),
    VariantDef("Initialization", 2),
])

AccountData = Composite(("pallet_balances", "types", "AccountData"), [
    Field("free", U128, "Balance"),
    Field("reserved", U128, "Balance"),
    Field("frozen", U128, "Balance"),
    Field("flags", newtype(("pallet_balances", "types", "ExtraFlags"), U128, "u128"), "ExtraFlags"),
])
AccountInfo = Composite(("frame_system", "AccountInfo"), [
    Field("nonce", U32, "Nonce"),
    Field("consumers", U32, "RefCount"),
    Field("providers", U32, "RefCount"),
    Field("sufficients", U32, "RefCount"),
    Field("data", AccountData, "AccountData"),
], params=(("Nonce", U32), ("AccountData", AccountData)))
