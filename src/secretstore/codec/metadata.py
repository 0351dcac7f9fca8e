"""The frame-metadata structures (V14 and V15) as SCALE types, so metadata is encoded by the same codec it describes."""

from __future__ import annotations

from .scale import (
    U8, U32, Bytes, Compact, Composite, Field, Option, Sequence, Str, Tuple, Variant, VariantDef, ScaleType,
)

METADATA_MAGIC = 0x6174656D  # b"meta" little-endian

TypeId = Compact(U32)
Docs = Sequence(Str)


def _struct(name: str, *fields: tuple[str, ScaleType]) -> Composite:
    return Composite(("frame_metadata", name), [Field(n, t) for n, t in fields])


def _enum(name: str, *variants: tuple[str, tuple[ScaleType, ...] | dict]) -> Variant:
    defs = []
    for i, (vname, fields) in enumerate(variants):
        if isinstance(fields, dict):
            fs = tuple(Field(n, t) for n, t in fields.items())
        else:
            fs = tuple(Field(None, t) for t in fields)
        defs.append(VariantDef(vname, i, fs))
    return Variant(("frame_metadata", name), defs)


TypeParameter = _struct("TypeParameter", ("name", Str), ("type", Option(TypeId)))
MetaField = _struct("Field", ("name", Option(Str)), ("ty", TypeId), ("type_name", Option(Str)), ("docs", Docs))
MetaVariant = _struct("Variant", ("name", Str), ("fields", Sequence(MetaField)), ("index", U8), ("docs", Docs))
TypeDefPrimitive = _enum("TypeDefPrimitive", *[(n, ()) for n in (
    "Bool", "Char", "Str", "U8", "U16", "U32", "U64", "U128", "U256", "I8", "I16", "I32", "I64", "I128", "I256")])
TypeDef = _enum(
    "TypeDef",
    ("Composite", {"fields": Sequence(MetaField)}),
    ("Variant", {"variants": Sequence(MetaVariant)}),
    ("Sequence", {"type_param": TypeId}),
    ("Array", {"len": U32, "type_param": TypeId}),
    ("Tuple", (Sequence(TypeId),)),
    ("Primitive", (TypeDefPrimitive,)),
    ("Compact", {"type_param": TypeId}),
    ("BitSequence", {"bit_store_type": TypeId, "bit_order_type": TypeId}),
)
MetaType = _struct("Type", ("path", Sequence(Str)), ("params", Sequence(TypeParameter)), ("def", TypeDef), ("docs", Docs))
PortableType = _struct("PortableType", ("id", TypeId), ("type", MetaType))
PortableRegistry = Sequence(PortableType)

StorageHasher = _enum("StorageHasher", *[(n, ()) for n in (
    "Blake2_128", "Blake2_256", "Blake2_128Concat", "Twox128", "Twox256", "Twox64Concat", "Identity")])
StorageEntryModifier = _enum("StorageEntryModifier", ("Optional", ()), ("Default", ()))
StorageEntryType = _enum(
    "StorageEntryType",
    ("Plain", (TypeId,)),
    ("Map", {"hashers": Sequence(StorageHasher), "key": TypeId, "value": TypeId}),
)
StorageEntryMetadata = _struct("StorageEntryMetadata", ("name", Str), ("modifier", StorageEntryModifier),
                               ("ty", StorageEntryType), ("default", Bytes), ("docs", Docs))
PalletStorageMetadata = _struct("PalletStorageMetadata", ("prefix", Str), ("entries", Sequence(StorageEntryMetadata)))
TypeRef = _struct("TypeRef", ("ty", TypeId))
PalletConstantMetadata = _struct("PalletConstantMetadata", ("name", Str), ("ty", TypeId), ("value", Bytes), ("docs", Docs))

PalletMetadataV14 = _struct(
    "PalletMetadataV14", ("name", Str), ("storage", Option(PalletStorageMetadata)), ("calls", Option(TypeRef)),
    ("event", Option(TypeRef)), ("constants", Sequence(PalletConstantMetadata)), ("error", Option(TypeRef)), ("index", U8))
SignedExtensionMetadata = _struct("SignedExtensionMetadata", ("identifier", Str), ("ty", TypeId), ("additional_signed", TypeId))
ExtrinsicMetadataV14 = _struct("ExtrinsicMetadataV14", ("ty", TypeId), ("version", U8),
                               ("signed_extensions", Sequence(SignedExtensionMetadata)))
RuntimeMetadataV14 = _struct("RuntimeMetadataV14", ("types", PortableRegistry), ("pallets", Sequence(PalletMetadataV14)),
                             ("extrinsic", ExtrinsicMetadataV14), ("ty", TypeId))

PalletMetadataV15 = _struct(
    "PalletMetadataV15", ("name", Str), ("storage", Option(PalletStorageMetadata)), ("calls", Option(TypeRef)),
    ("event", Option(TypeRef)), ("constants", Sequence(PalletConstantMetadata)), ("error", Option(TypeRef)), ("index", U8),
    ("docs", Docs))
ExtrinsicMetadataV15 = _struct("ExtrinsicMetadataV15", ("version", U8), ("address_ty", TypeId), ("call_ty", TypeId),
                               ("signature_ty", TypeId), ("extra_ty", TypeId),
                               ("signed_extensions", Sequence(SignedExtensionMetadata)))
RuntimeApiMethodParam = _struct("RuntimeApiMethodParamMetadata", ("name", Str), ("ty", TypeId))
RuntimeApiMethod = _struct("RuntimeApiMethodMetadata", ("name", Str), ("inputs", Sequence(RuntimeApiMethodParam)),
                           ("output", TypeId), ("docs", Docs))
RuntimeApiMetadata = _struct("RuntimeApiMetadata", ("name", Str), ("methods", Sequence(RuntimeApiMethod)), ("docs", Docs))
OuterEnums = _struct("OuterEnums", ("call_enum_ty", TypeId), ("event_enum_ty", TypeId), ("error_enum_ty", TypeId))
CustomValueMetadata = _struct("CustomValueMetadata", ("ty", TypeId), ("value", Bytes))
CustomMetadata = Sequence(Tuple(Str, CustomValueMetadata))  # BTreeMap<String, _> encodes as a sorted Vec of pairs
RuntimeMetadataV15 = _struct(
    "RuntimeMetadataV15", ("types", PortableRegistry), ("pallets", Sequence(PalletMetadataV15)),
    ("extrinsic", ExtrinsicMetadataV15), ("ty", TypeId), ("apis", Sequence(RuntimeApiMetadata)),
    ("outer_enums", OuterEnums), ("custom", CustomMetadata))


def encode_prefixed(version: int, metadata: dict) -> bytes:
    """RuntimeMetadataPrefixed: magic, then the RuntimeMetadata enum (variant index = version)."""
    body = {14: RuntimeMetadataV14, 15: RuntimeMetadataV15}[version].encode(metadata)
    return U32.encode(METADATA_MAGIC) + bytes([version]) + body
