"""SCALE codec with self-describing types.

Each `ScaleType` both encodes/decodes values and describes itself the way `scale-info` does, so that the runtime's
storage, calls and events and the metadata that clients read come from one declaration.

Value conventions (what `decode` returns and `encode` accepts):
- integers: `int`; `Bool`: `bool`; `Str`: `str`;
- `Bytes` / byte arrays (and composites wrapping them, such as H256): `bytes`;
- `Sequence`: `list`; `Tuple`: `tuple` (the empty tuple is the unit type);
- `Composite` with named fields: `dict`; with one unnamed field: the inner value (transparent newtype);
  with several unnamed fields: `tuple`;
- `Variant`: `(variant_name, payload)` where payload is `None` (no fields), a `dict` (named fields), the value of a single
  unnamed field, or a `tuple` of several unnamed fields. `Option` is special-cased: `None` or the inner value.
"""

from .composite import Composite, Field, Option, Result, Variant, VariantDef, newtype
from .core import (
    I32, U8, U16, U32, U64, U128, U256, Array, Bool, Bytes, CodecError, Compact, Primitive, Reader, ScaleType, Sequence,
    Str, Tuple, Unit, decode_compact, encode_compact,
)
from .registry import TypeRegistry

__all__ = [
    "I32", "U8", "U16", "U32", "U64", "U128", "U256", "Array", "Bool", "Bytes", "CodecError", "Compact", "Composite",
    "Field", "Option", "Primitive", "Reader", "Result", "ScaleType", "Sequence", "Str", "Tuple", "TypeRegistry", "Unit",
    "Variant", "VariantDef", "decode_compact", "encode_compact", "newtype",
]
