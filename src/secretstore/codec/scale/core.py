"""The SCALE building blocks: errors, the reader, compact integers, `ScaleType` and its primitive, compact,
sequence, array and tuple types."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .registry import TypeRegistry


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
Bytes = Sequence(U8)
