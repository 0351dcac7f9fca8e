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

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Sequence as Seq


class CodecError(ValueError):
    """Bytes that are not a valid encoding of the expected type, or a value that cannot be encoded."""


class Reader:
    """A cursor over bytes being decoded; every read is bounds-checked."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes | bytearray | memoryview) -> None:
        self.data = data if data.__class__ is bytes else bytes(data)
        self.pos = 0

    def read(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise CodecError(f"unexpected end of input: need {n} bytes at offset {self.pos}, have {len(self.data) - self.pos}")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def byte(self) -> int:
        pos = self.pos  # the most frequent read (enum tags, compact prefixes): without the general path
        if pos >= len(self.data):
            raise CodecError(f"unexpected end of input: need 1 bytes at offset {pos}, have 0")
        self.pos = pos + 1
        return self.data[pos]

    @property
    def remaining(self) -> int:
        return len(self.data) - self.pos

    def finish(self) -> None:
        if self.remaining:
            raise CodecError(f"{self.remaining} trailing bytes after the encoded value")


# --------------------------------------------------------------------------------------------------------- compact

def encode_compact(value: int) -> bytes:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise CodecError(f"compact integer must be a non-negative int, got {value!r}")
    if value < 1 << 6:
        return bytes([value << 2])
    if value < 1 << 14:
        return ((value << 2) | 1).to_bytes(2, "little")
    if value < 1 << 30:
        return ((value << 2) | 2).to_bytes(4, "little")
    length = (value.bit_length() + 7) // 8
    if length > 67:
        raise CodecError("compact integer too large")
    return bytes([((length - 4) << 2) | 3]) + value.to_bytes(length, "little")


def decode_compact(r: Reader) -> int:
    first = r.byte()
    mode = first & 3
    if mode == 0:
        return first >> 2
    if mode == 1:
        value = int.from_bytes(bytes([first]) + r.read(1), "little") >> 2
        if value < 1 << 6:
            raise CodecError("non-canonical compact integer")
        return value
    if mode == 2:
        value = int.from_bytes(bytes([first]) + r.read(3), "little") >> 2
        if value < 1 << 14:
            raise CodecError("non-canonical compact integer")
        return value
    length = (first >> 2) + 4
    value = int.from_bytes(r.read(length), "little")
    if value < 1 << 30 or (value.bit_length() + 7) // 8 != length:
        raise CodecError("non-canonical compact integer")
    return value


# ----------------------------------------------------------------------------------------------------------- types

class ScaleType:
    """Base of all type descriptors. Subclasses set `_key` (a hashable structural identity) in their constructor."""

    path: tuple[str, ...] = ()
    params: tuple[tuple[str, "ScaleType | None"], ...] = ()
    docs: tuple[str, ...] = ()
    _key: tuple

    def encode(self, value: Any) -> bytes:
        raise NotImplementedError

    def decode_from(self, r: Reader) -> Any:
        raise NotImplementedError

    def decode(self, data: bytes) -> Any:
        r = Reader(data)
        value = self.decode_from(r)
        r.finish()
        return value

    def type_def(self, registry: "TypeRegistry") -> tuple[str, Any]:
        """This type's `TypeDef` as a metadata variant value; child types are registered in `registry`."""
        raise NotImplementedError

    def fixed_layout(self, offset: int) -> "tuple[int, str] | None":
        """(size, Python expression decoding the value from `data` at `offset`) for a type whose values all have
        the same size and for which every byte string of that size is valid (integers, byte arrays and structs of
        them): such a struct decodes with one bounds check and one compiled expression. None for the other types."""
        return None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ScaleType) and self._key == other._key

    def __hash__(self) -> int:
        return hash(self._key)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {'::'.join(self.path) or self._key[0]}>"


class Primitive(ScaleType):
    def __init__(self, name: str, size: int | None, signed: bool = False) -> None:
        self.name = name
        self.size = size
        self.signed = signed
        self._key = ("prim", name)
        if name not in ("bool", "str"):  # integers, the hot case: skip the name tests on every call
            self.encode = self._encode_int  # type: ignore[method-assign]
            self.decode_from = self._decode_int  # type: ignore[method-assign]

    def _encode_int(self, value: Any) -> bytes:
        if value.__class__ is not int:
            if not isinstance(value, int) or isinstance(value, bool):
                raise CodecError(f"{self.name} expected an int, got {value!r}")
        try:
            return value.to_bytes(self.size, "little", signed=self.signed)
        except OverflowError:
            raise CodecError(f"{value} out of range for {self.name}") from None

    def _decode_int(self, r: Reader) -> Any:
        return int.from_bytes(r.read(self.size), "little", signed=self.signed)

    def fixed_layout(self, offset: int):
        if self.name in ("bool", "str"):
            return None
        end = offset + self.size  # type: ignore[operator]
        return self.size, f"_int(data[{offset}:{end}], 'little'{', signed=True' if self.signed else ''})"

    def encode(self, value: Any) -> bytes:
        if self.name == "bool":
            if not isinstance(value, bool):
                raise CodecError(f"bool expected, got {value!r}")
            return b"\x01" if value else b"\x00"
        if self.name == "str":
            if not isinstance(value, str):
                raise CodecError(f"str expected, got {value!r}")
            raw = value.encode()
            return encode_compact(len(raw)) + raw
        return self._encode_int(value)

    def decode_from(self, r: Reader) -> Any:
        if self.name == "bool":
            b = r.byte()
            if b > 1:
                raise CodecError(f"invalid bool byte {b}")
            return b == 1
        if self.name == "str":
            n = decode_compact(r)
            try:
                return r.read(n).decode()
            except UnicodeDecodeError:
                raise CodecError("invalid UTF-8 in string") from None
        return self._decode_int(r)

    def type_def(self, registry: "TypeRegistry") -> tuple[str, Any]:
        return ("Primitive", (self.name[0].upper() + self.name[1:]) if self.name in ("bool", "str", "char") else self.name.upper())


Bool = Primitive("bool", None)
Str = Primitive("str", None)
U8 = Primitive("u8", 1)
U16 = Primitive("u16", 2)
U32 = Primitive("u32", 4)
U64 = Primitive("u64", 8)
U128 = Primitive("u128", 16)
U256 = Primitive("u256", 32)
I32 = Primitive("i32", 4, signed=True)


class Compact(ScaleType):
    def __init__(self, inner: Primitive) -> None:
        self.inner = inner
        self._key = ("compact", inner._key)

    def encode(self, value: Any) -> bytes:
        if isinstance(value, int) and self.inner.size and value >= 1 << (8 * self.inner.size):
            raise CodecError(f"{value} out of range for Compact<{self.inner.name}>")
        return encode_compact(value)

    def decode_from(self, r: Reader) -> Any:
        value = decode_compact(r)
        if self.inner.size and value >= 1 << (8 * self.inner.size):
            raise CodecError(f"compact value out of range for {self.inner.name}")
        return value

    def type_def(self, registry: "TypeRegistry") -> tuple[str, Any]:
        return ("Compact", {"type_param": registry.register(self.inner)})


def _as_bytes(value: Any, what: str) -> bytes:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if hasattr(value, "__bytes__"):  # typed values such as crypto.Public
        return bytes(value)
    raise CodecError(f"{what} expected bytes, got {type(value).__name__}")


class Sequence(ScaleType):
    """Vec<T>. A `Vec<u8>` takes and returns `bytes`. `max_len` bounds decoding of untrusted input."""

    def __init__(self, inner: ScaleType, max_len: int | None = None) -> None:
        self.inner = inner
        self.max_len = max_len
        self._key = ("seq", inner._key)
        self._bytes = inner == U8

    def encode(self, value: Any) -> bytes:
        if self._bytes:
            raw = _as_bytes(value, "Vec<u8>")
            return encode_compact(len(raw)) + raw
        items = list(value)
        return encode_compact(len(items)) + b"".join([self.inner.encode(v) for v in items])

    def decode_from(self, r: Reader) -> Any:
        n = decode_compact(r)
        if self.max_len is not None and n > self.max_len:
            raise CodecError(f"sequence of {n} items exceeds the limit of {self.max_len}")
        if self._bytes:
            return r.read(n)
        if n > r.remaining:  # every item takes at least one byte except zero-sized ones, which we never declare
            raise CodecError(f"sequence length {n} exceeds the remaining input")
        return [self.inner.decode_from(r) for _ in range(n)]

    def type_def(self, registry: "TypeRegistry") -> tuple[str, Any]:
        return ("Sequence", {"type_param": registry.register(self.inner)})


class Array(ScaleType):
    """[T; n]. `[u8; n]` takes and returns `bytes`."""

    def __init__(self, inner: ScaleType, length: int) -> None:
        self.inner = inner
        self.length = length
        self._key = ("array", inner._key, length)
        self._bytes = inner == U8

    def encode(self, value: Any) -> bytes:
        if self._bytes:
            raw = value if value.__class__ is bytes else _as_bytes(value, f"[u8; {self.length}]")
            if len(raw) != self.length:
                raise CodecError(f"[u8; {self.length}] expected {self.length} bytes, got {len(raw)}")
            return raw
        items = list(value)
        if len(items) != self.length:
            raise CodecError(f"array of {self.length} expected, got {len(items)}")
        return b"".join(self.inner.encode(v) for v in items)

    def decode_from(self, r: Reader) -> Any:
        if self._bytes:
            return r.read(self.length)
        return [self.inner.decode_from(r) for _ in range(self.length)]

    def fixed_layout(self, offset: int):
        if self.inner != U8:
            return None
        return self.length, f"data[{offset}:{offset + self.length}]"

    def type_def(self, registry: "TypeRegistry") -> tuple[str, Any]:
        return ("Array", {"len": self.length, "type_param": registry.register(self.inner)})


class Tuple(ScaleType):
    def __init__(self, *items: ScaleType) -> None:
        self.items = items
        self._key = ("tuple",) + tuple(t._key for t in items)

    def encode(self, value: Any) -> bytes:
        values = tuple(value) if value is not None else ()
        if len(values) != len(self.items):
            raise CodecError(f"tuple of {len(self.items)} expected, got {len(values)}")
        return b"".join(t.encode(v) for t, v in zip(self.items, values))

    def decode_from(self, r: Reader) -> Any:
        return tuple(t.decode_from(r) for t in self.items)

    def type_def(self, registry: "TypeRegistry") -> tuple[str, Any]:
        return ("Tuple", [registry.register(t) for t in self.items])


Unit = Tuple()


@dataclass(frozen=True)
class Field:
    name: str | None
    type: ScaleType
    type_name: str | None = None
    docs: tuple[str, ...] = ()


def _fields_key(fields: Seq[Field]) -> tuple:
    return tuple((f.name, f.type._key, f.type_name) for f in fields)


def _encode_fields(fields: Seq[Field], value: Any, what: Any) -> bytes:
    """`what` names the type in error messages: a string, or a callable making it (built only on an error)."""
    if not fields:
        if value not in (None, (), {}):
            raise CodecError(f"{_what(what)} takes no fields, got {value!r}")
        return b""
    if fields[0].name is not None:
        if not isinstance(value, dict):
            raise CodecError(f"{_what(what)} expected a dict of fields, got {type(value).__name__}")
        try:
            return b"".join([f.type.encode(value[f.name]) for f in fields])
        except KeyError:
            missing = [f.name for f in fields if f.name not in value]
            if not missing:
                raise
            raise CodecError(f"{_what(what)} is missing field(s) {', '.join(missing)}") from None
    if len(fields) == 1:
        return fields[0].type.encode(value)
    values = tuple(value)
    if len(values) != len(fields):
        raise CodecError(f"{_what(what)} expected {len(fields)} values, got {len(values)}")
    return b"".join([f.type.encode(v) for f, v in zip(fields, values)])


def _what(what: Any) -> str:
    return what() if callable(what) else what


def _decode_fields(fields: Seq[Field], r: Reader) -> Any:
    if not fields:
        return None
    if fields[0].name is not None:
        return {f.name: f.type.decode_from(r) for f in fields}
    if len(fields) == 1:
        return fields[0].type.decode_from(r)
    return tuple(f.type.decode_from(r) for f in fields)


def _fields_meta(fields: Seq[Field], registry: "TypeRegistry") -> list[dict]:
    return [
        {"name": f.name, "ty": registry.register(f.type), "type_name": f.type_name, "docs": list(f.docs)}
        for f in fields
    ]


class Composite(ScaleType):
    """A struct (named fields) or tuple struct / newtype (unnamed fields)."""

    def __init__(self, path: Iterable[str], fields: Seq[Field], docs: Iterable[str] = (),
                 params: Iterable[tuple[str, ScaleType | None]] = ()) -> None:
        self.path = tuple(path)
        self.fields = tuple(fields)
        self.docs = tuple(docs)
        self.params = tuple(params)
        names = {f.name is None for f in self.fields}
        if len(names) > 1:
            raise ValueError("a composite's fields are either all named or all unnamed")
        self._key = ("composite", self.path, _fields_key(self.fields),
                     tuple((n, t._key if t else None) for n, t in self.params))
        self._what = "::".join(self.path) or "struct"
        layout = self.fixed_layout(0)
        if layout is not None:
            # e.g. AccountInfo, read several times per transaction: one compiled expression instead of a call per field
            self._fixed_size = layout[0]
            self._fixed_decode = eval(f"lambda data: {layout[1]}", {"_int": int.from_bytes})
            self.decode_from = self._decode_fixed  # type: ignore[method-assign]

    def encode(self, value: Any) -> bytes:
        return _encode_fields(self.fields, value, self._what)

    def decode_from(self, r: Reader) -> Any:
        return _decode_fields(self.fields, r)

    def _decode_fixed(self, r: Reader) -> Any:
        return self._fixed_decode(r.read(self._fixed_size))

    def fixed_layout(self, offset: int):
        if not self.fields:
            return None
        parts, start = [], offset
        for f in self.fields:
            part = f.type.fixed_layout(offset)
            if part is None:
                return None
            parts.append(part[1])
            offset += part[0]
        if self.fields[0].name is not None:
            expr = "{" + ", ".join(f"{f.name!r}: {e}" for f, e in zip(self.fields, parts)) + "}"
        elif len(parts) == 1:
            expr = parts[0]
        else:
            expr = "(" + ", ".join(parts) + ",)"
        return offset - start, expr

    def type_def(self, registry: "TypeRegistry") -> tuple[str, Any]:
        return ("Composite", {"fields": _fields_meta(self.fields, registry)})


@dataclass(frozen=True)
class VariantDef:
    name: str
    index: int
    fields: tuple[Field, ...] = ()
    docs: tuple[str, ...] = ()


_INDEX_BYTE = [bytes([i]) for i in range(256)]


class Variant(ScaleType):
    """An enum. Values are `(name, payload)`; see the module docs for payload shapes."""

    def __init__(self, path: Iterable[str], variants: Seq[VariantDef], docs: Iterable[str] = (),
                 params: Iterable[tuple[str, ScaleType | None]] = ()) -> None:
        self.path = tuple(path)
        self.variants = tuple(variants)
        self.docs = tuple(docs)
        self.params = tuple(params)
        self.by_name = {v.name: v for v in self.variants}
        self.by_index = {v.index: v for v in self.variants}
        if len(self.by_name) != len(self.variants) or len(self.by_index) != len(self.variants):
            raise ValueError(f"duplicate variant names or indices in {'::'.join(self.path)}")
        self._key = ("variant", self.path,
                     tuple((v.name, v.index, _fields_key(v.fields)) for v in self.variants),
                     tuple((n, t._key if t else None) for n, t in self.params))

    def encode(self, value: Any) -> bytes:
        if isinstance(value, str):
            name, payload = value, None
        else:
            try:
                name, payload = value
            except (TypeError, ValueError):
                raise CodecError(f"{'::'.join(self.path)} expected (variant, payload), got {value!r}") from None
        v = self.by_name.get(name)
        if v is None:
            raise CodecError(f"{'::'.join(self.path)} has no variant {name!r}")
        if not v.fields:
            if payload not in (None, (), {}):
                raise CodecError(f"{'::'.join(self.path)}::{name} takes no fields, got {payload!r}")
            return _INDEX_BYTE[v.index]
        return _INDEX_BYTE[v.index] + _encode_fields(v.fields, payload, lambda: f"{'::'.join(self.path)}::{name}")

    def decode_from(self, r: Reader) -> Any:
        index = r.byte()
        v = self.by_index.get(index)
        if v is None:
            raise CodecError(f"{'::'.join(self.path)} has no variant with index {index}")
        return (v.name, _decode_fields(v.fields, r))

    def type_def(self, registry: "TypeRegistry") -> tuple[str, Any]:
        return ("Variant", {"variants": [
            {"name": v.name, "fields": _fields_meta(v.fields, registry), "index": v.index, "docs": list(v.docs)}
            for v in self.variants
        ]})


class Option(Variant):
    """Option<T>: values are `None` or the inner value."""

    def __init__(self, inner: ScaleType) -> None:
        self.inner = inner
        super().__init__(("Option",), (VariantDef("None", 0), VariantDef("Some", 1, (Field(None, inner),))),
                         params=(("T", inner),))

    def encode(self, value: Any) -> bytes:
        return b"\x00" if value is None else b"\x01" + self.inner.encode(value)

    def decode_from(self, r: Reader) -> Any:
        tag = r.byte()
        if tag == 0:
            return None
        if tag == 1:
            return self.inner.decode_from(r)
        raise CodecError(f"invalid Option tag {tag}")


class Result(Variant):
    """Result<T, E>: values are `("Ok", value)` or `("Err", error)`."""

    def __init__(self, ok: ScaleType, err: ScaleType) -> None:
        super().__init__(("Result",), (VariantDef("Ok", 0, (Field(None, ok),)), VariantDef("Err", 1, (Field(None, err),))),
                         params=(("T", ok), ("E", err)))


def newtype(path: Iterable[str], inner: ScaleType, type_name: str | None = None, docs: Iterable[str] = ()) -> Composite:
    """A tuple struct with a single field, transparent in values (e.g. H256([u8; 32]))."""
    return Composite(path, (Field(None, inner, type_name),), docs=docs)


Bytes = Sequence(U8)


# -------------------------------------------------------------------------------------------------------- registry

class TypeRegistry:
    """Interns types into the portable registry of scale-info (ids in first-registration order)."""

    def __init__(self) -> None:
        self._ids: dict[ScaleType, int] = {}
        self._entries: list[dict | None] = []

    def register(self, t: ScaleType) -> int:
        found = self._ids.get(t)
        if found is not None:
            return found
        type_id = len(self._entries)
        self._ids[t] = type_id
        self._entries.append(None)  # reserved first so that recursive types terminate
        params = [{"name": name, "type": self.register(p) if p is not None else None} for name, p in t.params]
        self._entries[type_id] = {
            "id": type_id,
            "type": {"path": list(t.path), "params": params, "def": t.type_def(self), "docs": list(t.docs)},
        }
        return type_id

    def portable(self) -> list[dict]:
        return [e for e in self._entries if e is not None]

    def __len__(self) -> int:
        return len(self._entries)
