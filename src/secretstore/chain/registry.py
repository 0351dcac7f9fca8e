"""The V14 portable type registry of a chain, compiled into SCALE decoding and encoding functions, one per type.

Decoded values come out the way substrate-interface presents them (hex strings for byte arrays and hashes, SS58 for
account ids, `{"Variant": value}` for enum variants with data, the variant's name for those without). Encoding takes
the same shapes, strictly: bytes go in as bytes or 0x-hex, integers as ints; anything else is `Unsupported`, and the
caller hands the work to substrate-interface, so a value is never encoded differently from the library.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

from ..codec import scale
from ..codec.scale import CodecError

Decoder = Callable[[bytes, int], tuple[Any, int]]
Encoder = Callable[[Any], bytes]


def v14_metadata(metadata: Any) -> dict | None:
    """The V14 part of substrate-interface's decoded metadata (`api.metadata`), or None for older metadata."""
    value = metadata.value
    value = value[1] if isinstance(value, tuple) else value
    return value.get("V14") if isinstance(value, dict) else None


class EventsDecodeError(ValueError):
    """The stored events do not match the type registry (a runtime upgrade the reader has not seen, or bad data)."""


def _compact(data: bytes, pos: int) -> tuple[int, int]:
    mode = data[pos] & 3
    if mode == 0:
        return data[pos] >> 2, pos + 1
    if mode == 1:
        return int.from_bytes(data[pos:pos + 2], "little") >> 2, pos + 2
    if mode == 2:
        return int.from_bytes(data[pos:pos + 4], "little") >> 2, pos + 4
    length = (data[pos] >> 2) + 4
    end = pos + 1 + length
    if end > len(data):
        raise EventsDecodeError("truncated compact integer")
    return int.from_bytes(data[pos + 1:end], "little"), end


def _integer(size: int, signed: bool = False) -> Decoder:
    def decode(data: bytes, pos: int) -> tuple[int, int]:
        end = pos + size
        if end > len(data):
            raise EventsDecodeError("truncated integer")
        return int.from_bytes(data[pos:end], "little", signed=signed), end
    return decode


def _bool(data: bytes, pos: int) -> tuple[bool, int]:
    if pos >= len(data) or data[pos] > 1:
        raise EventsDecodeError("bad boolean")
    return data[pos] == 1, pos + 1


def _str(data: bytes, pos: int) -> tuple[str, int]:
    length, pos = _compact(data, pos)
    end = pos + length
    if end > len(data):
        raise EventsDecodeError("truncated string")
    return data[pos:end].decode("utf-8", errors="replace"), end


def _hex_bytes(length: int) -> Decoder:
    def decode(data: bytes, pos: int) -> tuple[str, int]:
        end = pos + length
        if end > len(data):
            raise EventsDecodeError("truncated byte array")
        return "0x" + data[pos:end].hex(), end
    return decode


def _byte_vec(data: bytes, pos: int) -> tuple[str, int]:
    length, pos = _compact(data, pos)
    end = pos + length
    if end > len(data):
        raise EventsDecodeError("truncated bytes")
    return "0x" + data[pos:end].hex(), end


_PRIMITIVES: dict[str, Decoder] = {
    "bool": _bool, "str": _str,
    "u8": _integer(1), "u16": _integer(2), "u32": _integer(4), "u64": _integer(8), "u128": _integer(16),
    "u256": _integer(32), "i8": _integer(1, True), "i16": _integer(2, True), "i32": _integer(4, True),
    "i64": _integer(8, True), "i128": _integer(16, True), "i256": _integer(32, True),
}


def _ss58(ss58_format: int) -> Decoder:
    from substrateinterface.utils.ss58 import ss58_encode  # the library's address format, not re-implemented

    @functools.lru_cache(maxsize=4096)  # events name the same few accounts over and over; base58 is big-int math
    def encode(account: bytes) -> str:
        return ss58_encode(account, ss58_format)

    def decode(data: bytes, pos: int) -> tuple[str, int]:
        end = pos + 32
        if end > len(data):
            raise EventsDecodeError("truncated account id")
        return encode(data[pos:end]), end
    return decode


class Unsupported(ValueError):
    """A value (or type) this encoder does not take; the caller encodes it with substrate-interface instead."""


def encode_compact(value: int) -> bytes:
    try:
        return scale.encode_compact(value)
    except CodecError as exc:
        raise Unsupported(str(exc)) from None


def _raw_bytes(value: Any) -> bytes:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, str) and value[:2] in ("0x", "0X"):
        try:
            return bytes.fromhex(value[2:])
        except ValueError:
            raise Unsupported("bad hex") from None
    if hasattr(value, "__bytes__") and not isinstance(value, (int, str)):
        return bytes(value)
    raise Unsupported(f"bytes expected, got {type(value).__name__}")


def _int_encoder(size: int, signed: bool = False) -> Encoder:
    def encode(value: Any) -> bytes:
        if not isinstance(value, int) or isinstance(value, bool):
            raise Unsupported(f"integer expected, got {type(value).__name__}")
        try:
            return value.to_bytes(size, "little", signed=signed)
        except OverflowError:
            raise Unsupported("integer out of range") from None
    return encode


def _bool_encoder(value: Any) -> bytes:
    if not isinstance(value, bool):
        raise Unsupported("bool expected")
    return b"\x01" if value else b"\x00"


def _str_encoder(value: Any) -> bytes:
    if not isinstance(value, str):
        raise Unsupported("str expected")
    raw = value.encode()
    return encode_compact(len(raw)) + raw


def _compact_encoder(value: Any) -> bytes:
    if not isinstance(value, int) or isinstance(value, bool):
        raise Unsupported("integer expected")
    return encode_compact(value)


def _fixed_bytes_encoder(length: int) -> Encoder:
    def encode(value: Any) -> bytes:
        raw = _raw_bytes(value)
        if len(raw) != length:
            raise Unsupported(f"{length} bytes expected, got {len(raw)}")
        return raw
    return encode


def _byte_vec_encoder(value: Any) -> bytes:
    raw = _raw_bytes(value)
    return encode_compact(len(raw)) + raw


_PRIMITIVE_ENCODERS: dict[str, Encoder] = {
    "bool": _bool_encoder, "str": _str_encoder,
    "u8": _int_encoder(1), "u16": _int_encoder(2), "u32": _int_encoder(4), "u64": _int_encoder(8),
    "u128": _int_encoder(16), "u256": _int_encoder(32), "i8": _int_encoder(1, True), "i16": _int_encoder(2, True),
    "i32": _int_encoder(4, True), "i64": _int_encoder(8, True), "i128": _int_encoder(16, True),
    "i256": _int_encoder(32, True),
}


def _account_id_encoder(value: Any) -> bytes:
    if isinstance(value, str) and not value.startswith("0x"):
        from substrateinterface.utils.ss58 import ss58_decode
        try:
            return bytes.fromhex(ss58_decode(value))
        except ValueError:
            raise Unsupported("bad SS58 address") from None
    return _fixed_bytes_encoder(32)(value)


class TypeRegistry:
    """A V14 portable type registry (`{"types": [{"id", "type": {"path", "def"}}]}`, as substrate-interface exposes
    it), compiled lazily into one decoding function per type id."""

    def __init__(self, registry: dict, ss58_format: int = 42) -> None:
        self._types = {entry["id"]: entry["type"] for entry in registry["types"]}
        self._decoders: dict[int, Decoder] = {}
        self._encoders: dict[int, Encoder] = {}
        self._ss58_format = ss58_format

    def decoder(self, type_id: int) -> Decoder:
        found = self._decoders.get(type_id)
        if found is None:
            # a placeholder first, so recursive types resolve to the finished decoder when they run
            self._decoders[type_id] = lambda data, pos: self._decoders[type_id](data, pos)
            found = self._decoders[type_id] = self._compile(type_id)
        return found

    def _is_u8(self, type_id: int) -> bool:
        return self._types[type_id]["def"].get("primitive") == "u8"

    def _compile(self, type_id: int) -> Decoder:
        ty = self._types[type_id]
        kind, body = next(iter(ty["def"].items()))
        if kind == "primitive":
            return _PRIMITIVES[body]
        if kind == "compact":
            return _compact
        if kind == "array":
            if self._is_u8(body["type"]):
                return _hex_bytes(body["len"])
            return self._sequence_of(self.decoder(body["type"]), fixed=body["len"])
        if kind == "sequence":
            if self._is_u8(body["type"]):
                return _byte_vec
            return self._sequence_of(self.decoder(body["type"]))
        if kind == "tuple":
            return self._tuple_of([self.decoder(t) for t in body]) if body else (lambda data, pos: ((), pos))
        if kind == "composite":
            if ty["path"] and ty["path"][-1] == "AccountId32":
                return _ss58(self._ss58_format)
            return self._fields(body["fields"])
        if kind == "variant":
            if ty["path"] == ["Option"]:
                inner = self.decoder(body["variants"][1]["fields"][0]["type"]) if len(body["variants"]) > 1 else None
                return self._option(inner)
            return self._variant(body["variants"])
        raise EventsDecodeError(f"type {type_id}: unsupported kind {kind}")

    @staticmethod
    def _sequence_of(item: Decoder, fixed: int | None = None) -> Decoder:
        def decode(data: bytes, pos: int) -> tuple[tuple, int]:
            if fixed is None:
                length, pos = _compact(data, pos)
            else:
                length = fixed
            values = []
            for _ in range(length):
                value, pos = item(data, pos)
                values.append(value)
            return tuple(values), pos
        return decode

    @staticmethod
    def _tuple_of(items: list[Decoder]) -> Decoder:
        def decode(data: bytes, pos: int) -> tuple[tuple, int]:
            values = []
            for item in items:
                value, pos = item(data, pos)
                values.append(value)
            return tuple(values), pos
        return decode

    def _fields(self, fields: list[dict]) -> Decoder:
        """Named fields: a dict; one unnamed field: its value (a newtype); several unnamed: a tuple."""
        decoders = [self.decoder(f["type"]) for f in fields]
        if not fields:
            return lambda data, pos: (None, pos)
        if all(f.get("name") for f in fields):
            names = [f["name"] for f in fields]

            def named(data: bytes, pos: int) -> tuple[dict, int]:
                values = {}
                for name, item in zip(names, decoders):
                    values[name], pos = item(data, pos)
                return values, pos
            return named
        if len(decoders) == 1:
            return decoders[0]
        return self._tuple_of(decoders)

    def _variant(self, variants: list[dict]) -> Decoder:
        by_index = {v["index"]: (v["name"], self._fields(v["fields"]) if v["fields"] else None) for v in variants}

        def decode(data: bytes, pos: int) -> tuple[Any, int]:
            if pos >= len(data):
                raise EventsDecodeError("truncated enum")
            found = by_index.get(data[pos])
            if found is None:
                raise EventsDecodeError(f"unknown enum variant {data[pos]}")
            name, fields = found
            if fields is None:
                return name, pos + 1
            value, pos = fields(data, pos + 1)
            return {name: value}, pos
        return decode

    @staticmethod
    def _option(inner: Decoder | None) -> Decoder:
        def decode(data: bytes, pos: int) -> tuple[Any, int]:
            if pos >= len(data) or data[pos] > 1:
                raise EventsDecodeError("bad option")
            if data[pos] == 0 or inner is None:
                return None, pos + 1
            return inner(data, pos + 1)
        return decode

    # ------------------------------------------------------------------------------------------------- encoding
    def encoder(self, type_id: int) -> Encoder:
        found = self._encoders.get(type_id)
        if found is None:
            self._encoders[type_id] = lambda value: self._encoders[type_id](value)
            found = self._encoders[type_id] = self._compile_encoder(type_id)
        return found

    def _compile_encoder(self, type_id: int) -> Encoder:
        ty = self._types[type_id]
        kind, body = next(iter(ty["def"].items()))
        if kind == "primitive":
            if body not in _PRIMITIVE_ENCODERS:
                raise Unsupported(f"primitive {body}")
            return _PRIMITIVE_ENCODERS[body]
        if kind == "compact":
            return _compact_encoder
        if kind == "array":
            if self._is_u8(body["type"]):
                return _fixed_bytes_encoder(body["len"])
            return self._items_encoder(self.encoder(body["type"]), fixed=body["len"])
        if kind == "sequence":
            if self._is_u8(body["type"]):
                return _byte_vec_encoder
            return self._items_encoder(self.encoder(body["type"]))
        if kind == "tuple":
            items = [self.encoder(t) for t in body]
            return self._tuple_encoder(items)
        if kind == "composite":
            if ty["path"] and ty["path"][-1] == "AccountId32":
                return _account_id_encoder
            return self._fields_encoder(body["fields"])
        if kind == "variant":
            if ty["path"] == ["Option"]:
                inner = self.encoder(body["variants"][1]["fields"][0]["type"])
                return lambda value: b"\x00" if value is None else b"\x01" + inner(value)
            if ty["path"] and ty["path"][-1] == "MultiAddress":
                return self._multi_address_encoder(body["variants"])
            return self._variant_encoder(body["variants"])
        raise Unsupported(f"type {type_id}: kind {kind}")

    @staticmethod
    def _items_encoder(item: Encoder, fixed: int | None = None) -> Encoder:
        def encode(value: Any) -> bytes:
            if not isinstance(value, (list, tuple)) or (fixed is not None and len(value) != fixed):
                raise Unsupported("a list of the right length expected")
            return (b"" if fixed is not None else encode_compact(len(value))) + b"".join(item(v) for v in value)
        return encode

    @staticmethod
    def _tuple_encoder(items: list[Encoder]) -> Encoder:
        def encode(value: Any) -> bytes:
            if not isinstance(value, (list, tuple)) or len(value) != len(items):
                raise Unsupported("a tuple of the right length expected")
            return b"".join(item(v) for item, v in zip(items, value))
        return encode

    def _fields_encoder(self, fields: list[dict]) -> Encoder:
        """Named fields from a dict with exactly those keys; one unnamed field from its value; several from a list."""
        encoders = [self.encoder(f["type"]) for f in fields]
        if not fields:
            return lambda value: b""
        if all(f.get("name") for f in fields):
            names = [f["name"] for f in fields]

            def named(value: Any) -> bytes:
                if not isinstance(value, dict) or set(value) != set(names):
                    raise Unsupported(f"fields {names} expected")
                return b"".join(item(value[name]) for name, item in zip(names, encoders))
            return named
        if len(encoders) == 1:
            return encoders[0]
        return self._tuple_encoder(encoders)

    def _variant_encoder(self, variants: list[dict]) -> Encoder:
        by_name = {v["name"]: (v["index"], self._fields_encoder(v["fields"]) if v["fields"] else None)
                   for v in variants}

        def encode(value: Any) -> bytes:
            if isinstance(value, str) and value in by_name and by_name[value][1] is None:
                return bytes([by_name[value][0]])
            if isinstance(value, dict) and len(value) == 1:
                (name, inner), = value.items()
                if name in by_name and by_name[name][1] is not None:
                    index, fields = by_name[name]
                    return bytes([index]) + fields(inner)  # type: ignore[misc]
            raise Unsupported("enum value expected as a variant name or {name: value}")
        return encode

    def _multi_address_encoder(self, variants: list[dict]) -> Encoder:
        """An SS58 string or 32 raw bytes is `Id`; other variants as {name: value}."""
        general = self._variant_encoder(variants)
        index = next(v["index"] for v in variants if v["name"] == "Id")

        def encode(value: Any) -> bytes:
            if isinstance(value, dict):
                return general(value)
            return bytes([index]) + _account_id_encoder(value)
        return encode

