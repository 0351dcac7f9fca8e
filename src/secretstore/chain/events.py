"""Decoding a block's `System.Events` from the chain's V14 type registry, without substrate-interface.

Every finalized block is read by every key server and by every client that waits for a result, so the events decoder
is on the hot path: substrate-interface needs about a millisecond per block, this one a few tens of microseconds.
Each type of the registry is compiled once into a small decoding function; values come out the way substrate-interface
presents them (hex strings for byte arrays and hashes, SS58 for account ids, `{"Variant": value}` for enum variants
with data, the variant's name for those without), so readers of `ChainEvent` see the same thing from either.

Chains whose metadata predates V14 describe types by name only; for them the connection keeps substrate-interface.
"""

from __future__ import annotations

from typing import Any

from .client import ChainEvent, _named
from .registry import Decoder, EventsDecodeError, TypeRegistry, _compact, v14_metadata

__all__ = ["EventsDecodeError", "EventsDecoder"]


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
        v14 = v14_metadata(metadata)
        if v14 is None:
            return None
        system = next(p for p in v14["pallets"] if p["name"] == "System")
        entry = next(e for e in system["storage"]["entries"] if e["name"] == "Events")
        return cls(metadata.portable_registry.value, v14["pallets"], entry["type"]["Plain"], ss58_format)

    def pallet_index(self, name: str) -> int | None:
        return next((index for index, (pallet, _) in self._pallets.items() if pallet == name), None)

    def decode(self, raw: bytes, block_number: int | None = None) -> list[ChainEvent]:
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
                events.append(ChainEvent(pallet_name, name, _named(pallet_name, name, attributes), index, block_number))
        except (KeyError, IndexError) as exc:
            raise EventsDecodeError(f"events do not match the runtime's types: {exc!r}") from None
        if pos != len(raw):
            raise EventsDecodeError(f"{len(raw) - pos} bytes left over after the events")
        return events
