"""Dispatch machinery shared by the pallets: errors, the call context, and the pallet base class."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Protocol, Sequence

from ..codec.scale import Field, ScaleType, Variant, VariantDef
from .frame import PalletDecl, StorageEntry
from .storage import Storage


class PalletHost(Protocol):
    """What a pallet uses of the runtime that composes it (the Runtime, without importing it: it imports us)."""

    @property
    def system(self) -> Any: ...

    @property
    def balances(self) -> Any: ...

    def version(self) -> dict: ...


class DispatchError(Exception):
    """A call failed; `value` is its sp_runtime::DispatchError encoding value."""

    value: Any = ("Other", None)


class BadOrigin(DispatchError):
    value = ("BadOrigin", None)

    def __init__(self, message: str = "the call needs a signed origin") -> None:
        super().__init__(message)


class ModuleError(DispatchError):
    def __init__(self, pallet: str, pallet_index: int, name: str, index: int, docs: str) -> None:
        super().__init__(f"{pallet}.{name}: {docs}")
        self.pallet, self.pallet_index, self.name, self.index, self.docs = pallet, pallet_index, name, index, docs
        self.value = ("Module", {"index": pallet_index, "error": bytes([index, 0, 0, 0])})


class InvalidTransaction(Exception):
    """A transaction that cannot be included at all (nothing is written). kind: Stale, Future, Payment, Call,
    BadProof, ExhaustsResources."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.message = message


@dataclass
class Context:
    """What a call sees: the transactional storage, the signer (None for root) and the block number."""

    storage: Storage
    origin: bytes | None
    block_number: int

    def signed(self) -> bytes:
        if self.origin is None:
            raise BadOrigin()
        return self.origin


def call_enum(pallet_module: str, calls: Sequence[tuple[str, Sequence[tuple[str, ScaleType, str]], str]]) -> Variant:
    """A pallet's Call enum: one variant per call, named fields per argument (as FRAME declares them)."""
    return Variant((pallet_module, "pallet", "Call"), [
        VariantDef(name, i, tuple(Field(arg, t, tn) for arg, t, tn in args), (docs,))
        for i, (name, args, docs) in enumerate(calls)
    ], docs=("Contains a variant per dispatchable extrinsic that this pallet has.",))


def event_enum(pallet_module: str, events: Sequence[tuple[str, Sequence[tuple[str, ScaleType, str]], str]]) -> Variant:
    return Variant((pallet_module, "pallet", "Event"), [
        VariantDef(name, i, tuple(Field(f, t, tn) for f, t, tn in fields), (docs,))
        for i, (name, fields, docs) in enumerate(events)
    ], docs=("The `Event` enum of this pallet",))


def error_enum(pallet_module: str, errors: Sequence[tuple[str, str]]) -> Variant:
    return Variant((pallet_module, "pallet", "Error"), [
        VariantDef(name, i, (), (docs,)) for i, (name, docs) in enumerate(errors)
    ], docs=("The `Error` enum of this pallet.",))


class Pallet:
    """Base of the pallets: declarations, named errors, events, and dispatch of calls to `call_<name>` methods."""

    NAME: str
    INDEX: int
    MODULE: str  # Rust crate name used in type paths, e.g. "pallet_balances"
    CALLS: Variant | None = None
    EVENTS: Variant | None = None
    ERRORS: Variant | None = None
    STORAGE: tuple[StorageEntry, ...] = ()
    DOCS: tuple[str, ...] = ()

    def __init__(self, runtime: PalletHost) -> None:
        self.runtime = runtime

    def constants(self) -> tuple:
        return ()

    def declaration(self) -> PalletDecl:
        return PalletDecl(self.NAME, self.INDEX, self.CALLS, self.EVENTS, self.ERRORS, self.STORAGE,
                          self.constants(), self.DOCS)

    def error(self, name: str) -> ModuleError:
        assert self.ERRORS is not None
        variant = self.ERRORS.by_name[name]
        return ModuleError(self.NAME, self.INDEX, name, variant.index, variant.docs[0] if variant.docs else "")

    def deposit(self, storage: Storage, name: str, **fields: Any) -> None:
        assert self.EVENTS is not None
        variant = self.EVENTS.by_name[name]
        payload = {f.name: fields[f.name] for f in variant.fields} if variant.fields else None
        self.runtime.system.deposit_event(storage, (self.NAME, (name, payload)))

    def dispatch(self, ctx: Context, name: str, args: dict | None) -> None:
        getattr(self, f"call_{name}")(ctx, **(args or {}))


def entries(pallet: str, *specs: Iterable) -> tuple[StorageEntry, ...]:
    return tuple(StorageEntry(pallet, *spec) if isinstance(spec, tuple) else spec for spec in specs)
