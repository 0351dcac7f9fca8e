"""Composite and variant types (structs, enums, Option, Result) and the fields they are made of."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable, Sequence as Seq

from .core import CodecError, Reader, ScaleType

if TYPE_CHECKING:
    from .registry import TypeRegistry


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
