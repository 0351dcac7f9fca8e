"""Declarations a pallet publishes about itself: what metadata is built from and what clients decode with.

Calls, events and errors are `Variant` types exactly as scale-info describes them in Substrate (one variant per call,
named fields per argument), so the same descriptor decodes an incoming call and describes it in metadata.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Iterator, Literal

from ..codec.hashing import HASHER_PREFIX_LEN, STORAGE_HASHERS, storage_prefix
from ..codec.scale import ScaleType, Tuple, Variant

if TYPE_CHECKING:
    from .storage import Storage

Hasher = Literal["Blake2_128", "Blake2_256", "Blake2_128Concat", "Twox128", "Twox256", "Twox64Concat", "Identity"]


_MISSING = object()
_SCALARS = frozenset({int, bool, bytes, str, type(None)})


def _copy(value: object) -> object:
    """A decoded value's own copy: new lists and dicts all the way down (the other decoded types are immutable)."""
    cls = value.__class__
    if cls is dict:
        return {k: v if v.__class__ in _SCALARS else _copy(v) for k, v in value.items()}  # type: ignore[attr-defined]
    if cls is list:
        return [v if v.__class__ in _SCALARS else _copy(v) for v in value]  # type: ignore[attr-defined]
    if cls is tuple and not all(v.__class__ in _SCALARS for v in value):  # type: ignore[attr-defined]
        return tuple(_copy(v) for v in value)  # type: ignore[attr-defined]
    return value


@dataclass(frozen=True)
class StorageEntry:
    """One storage item. `hashers` is empty for a plain value, one hasher for a map, several for an n-map
    (then `key` is a `Tuple` of the key types, in order)."""

    pallet: str
    name: str
    value: ScaleType
    hashers: tuple[Hasher, ...] = ()
    key: ScaleType | None = None
    modifier: Literal["Optional", "Default"] = "Optional"
    default: bytes = b""
    docs: tuple[str, ...] = ()

    @cached_property  # two twox128 hashes; every storage access needs it (cached_property works on frozen dataclasses)
    def prefix(self) -> bytes:
        return storage_prefix(self.pallet, self.name)

    @cached_property
    def _key_cache(self) -> dict[bytes, bytes]:
        return {}

    @cached_property
    def _decoded(self) -> dict[bytes, object]:  # encoded value -> its decoding (see `get`)
        return {}

    def key_parts(self, key: object) -> list[tuple[ScaleType, object]]:
        if not self.hashers:
            return []
        if len(self.hashers) == 1:
            return [(self.key, key)]
        assert isinstance(self.key, Tuple)
        return list(zip(self.key.items, key))  # type: ignore[arg-type]

    def storage_key(self, key: object = None) -> bytes:
        """The full storage key: twox128(pallet) ++ twox128(item) ++ hasher_i(encode(key_i))..."""
        if not self.hashers:
            return self.prefix
        if len(self.hashers) == 1:  # the common map: no per-call zip of key parts
            if key.__class__ is bytes:  # accounts and ids, looked up many times per block: remember their keys
                found = self._key_cache.get(key)
                if found is None:
                    if len(self._key_cache) >= 4096:
                        self._key_cache.clear()
                    found = self._key_cache[key] = self.prefix + STORAGE_HASHERS[self.hashers[0]](
                        self.key.encode(key))  # type: ignore[union-attr]
                return found
            return self.prefix + STORAGE_HASHERS[self.hashers[0]](self.key.encode(key))  # type: ignore[union-attr]
        out = self.prefix
        for hasher, (ktype, kvalue) in zip(self.hashers, self.key_parts(key)):
            out += STORAGE_HASHERS[hasher](ktype.encode(kvalue))
        return out

    def decode_key(self, storage_key: bytes) -> object:
        """Recover the map key from a full storage key (only for the concat / identity hashers)."""
        from ..codec.scale import Reader

        r = Reader(storage_key[len(self.prefix):])
        values = []
        for hasher, (ktype, _) in zip(self.hashers, self.key_parts((None,) * len(self.hashers))):
            skip = HASHER_PREFIX_LEN.get(hasher)
            if skip is None:
                raise ValueError(f"{self.pallet}.{self.name}: hasher {hasher} does not keep the key")
            r.read(skip)
            values.append(ktype.decode_from(r))
        r.finish()
        return values[0] if len(values) == 1 else tuple(values)

    # ---- typed access (the runtime's only way to touch storage)
    def get(self, storage: "Storage", key: object = None) -> object:
        raw = storage.get(self.storage_key(key))
        if raw is None:
            if self.modifier != "Default":
                return None
            raw = self.default
        # the same encoded values are read many times per block (accounts, the key server set, fee parameters):
        # each is decoded once and handed out as a copy, since callers may change what they get before writing it
        decoded = self._decoded.get(raw, _MISSING)
        if decoded is _MISSING:
            decoded = self.value.decode(raw)
            if len(self._decoded) >= 1024:
                self._decoded.clear()
            self._decoded[raw] = decoded
        return decoded if decoded.__class__ in _SCALARS else _copy(decoded)

    def put(self, storage: "Storage", value: object, key: object = None) -> None:
        storage.set(self.storage_key(key), self.value.encode(value))

    def remove(self, storage: "Storage", key: object = None) -> None:
        storage.delete(self.storage_key(key))

    def contains(self, storage: "Storage", key: object = None) -> bool:
        return storage.get(self.storage_key(key)) is not None

    def items(self, storage: "Storage", partial: bytes = b"") -> Iterator[tuple[object, object]]:
        """(key, value) pairs in storage-key order; `partial` narrows to a prefix of hashed keys."""
        for full_key, raw in storage.iter_prefix(self.prefix + partial):
            yield self.decode_key(full_key), self.value.decode(raw)


@dataclass(frozen=True)
class Constant:
    name: str
    type: ScaleType
    value: bytes  # SCALE-encoded
    docs: tuple[str, ...] = ()


@dataclass(frozen=True)
class PalletDecl:
    name: str
    index: int
    calls: Variant | None = None
    events: Variant | None = None
    errors: Variant | None = None
    storage: tuple[StorageEntry, ...] = ()
    constants: tuple[Constant, ...] = ()
    docs: tuple[str, ...] = field(default=())
