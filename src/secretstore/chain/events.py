"""Decoding a block's `System.Events` from the chain's V14 type registry, without substrate-interface.

Every finalized block is read by every key server and by every client that waits for a result, so the events decoder
is on the hot path: substrate-interface needs about a millisecond per block, this one a few tens of microseconds.
Each type of the registry is compiled once into a small decoding function; values come out the way substrate-interface
presents them (hex strings for byte arrays and hashes, SS58 for account ids, `{"Variant": value}` for enum variants
with data, the variant's name for those without), so readers of `ChainEvent` see the same thing from either.

Chains whose metadata predates V14 describe types by name only; for them the connection keeps substrate-interface.
"""

from __future__ import annotations

from typing import Any, Callable

from .client import ChainEvent, _named

Decoder = Callable[[bytes, int], tuple[Any, int]]


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

    def decode(data: bytes, pos: int) -> tuple[str, int]:
        end = pos + 32
        if end > len(data):
            raise EventsDecodeError("truncated account id")
        return ss58_encode(data[pos:end], ss58_format), end
    return decode


class TypeRegistry:
    """A V14 portable type registry (`{"types": [{"id", "type": {"path", "def"}}]}`, as substrate-interface exposes
    it), compiled lazily into one decoding function per type id."""

    def __init__(self, registry: dict, ss58_format: int = 42) -> None:
        self._types = {entry["id"]: entry["type"] for entry in registry["types"]}
        self._decoders: dict[int, Decoder] = {}
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


class EventsDecoder:
    """`System.Events` of a V14 chain as `ChainEvent`s. Built from substrate-interface's decoded metadata once per
    runtime; `decode` needs no library and no thread."""

    def __init__(self, registry: dict, pallets: list[dict], events_type: int, ss58_format: int = 42) -> None:
        self.types = TypeRegistry(registry, ss58_format)
        # pallet index -> (pallet name, that pallet's event variants by index: (name, fields decoder))
        self._pallets: dict[int, tuple[str, dict[int, tuple[str, Decoder | None, list[dict]]]]] = {}
        for pallet in pallets:
            event = pallet.get("event")
            if not event:
                continue
            variants = self.types._types[event["ty"]]["def"]["variant"]["variants"]
            self._pallets[pallet["index"]] = (pallet["name"], {
                v["index"]: (v["name"], self.types._fields(v["fields"]) if v["fields"] else None, v["fields"])
                for v in variants})
        self._phase = self.types.decoder(self._record_field(events_type, "phase"))
        self._topics = self.types.decoder(self._record_field(events_type, "topics"))

    def _record_field(self, events_type: int, name: str) -> int:
        record = self.types._types[events_type]["def"]["sequence"]["type"]
        return next(f["type"] for f in self.types._types[record]["def"]["composite"]["fields"] if f["name"] == name)

    @classmethod
    def from_metadata(cls, metadata: Any, ss58_format: int = 42) -> "EventsDecoder | None":
        """From substrate-interface's `api.metadata`; None for metadata before V14."""
        value = metadata.value
        value = value[1] if isinstance(value, tuple) else value
        v14 = value.get("V14") if isinstance(value, dict) else None
        if v14 is None:
            return None
        system = next(p for p in v14["pallets"] if p["name"] == "System")
        entry = next(e for e in system["storage"]["entries"] if e["name"] == "Events")
        return cls(metadata.portable_registry.value, v14["pallets"], entry["type"]["Plain"], ss58_format)

    def pallet_index(self, name: str) -> int | None:
        return next((index for index, (pallet, _) in self._pallets.items() if pallet == name), None)

    def decode(self, raw: bytes) -> list[ChainEvent]:
        if not raw:
            return []
        try:
            count, pos = _compact(raw, 0)
            events = []
            for _ in range(count):
                phase, pos = self._phase(raw, pos)
                pallet_name, variants = self._pallets[raw[pos]]
                name, fields, declared = variants[raw[pos + 1]]
                attributes, pos = (None, pos + 2) if fields is None else fields(raw, pos + 2)
                if declared and not all(f.get("name") for f in declared) and len(declared) == 1:
                    attributes = (attributes,)  # one unnamed field: a 1-tuple, as substrate-interface gives it
                _, pos = self._topics(raw, pos)
                index = phase.get("ApplyExtrinsic") if isinstance(phase, dict) else None
                events.append(ChainEvent(pallet_name, name, _named(pallet_name, name, attributes), index))
        except (KeyError, IndexError) as exc:
            raise EventsDecodeError(f"events do not match the runtime's types: {exc!r}") from None
        if pos != len(raw):
            raise EventsDecodeError(f"{len(raw) - pos} bytes left over after the events")
        return events
