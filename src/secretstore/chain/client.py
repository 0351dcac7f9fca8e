"""What the chain layer's clients share: decoded events and receipts, the errors of included transactions, and what
substrate-interface needs to read chains whose metadata predates V14.

Key servers and the SDK reach the chain only through `connection.ChainConnection` (standard JSON-RPC and the runtime
API traits), so the same code serves our embedded node and any Substrate chain that runs the SecretStore pallet.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..interface import EVENTS as SECRETSTORE_EVENTS
from ..interface import PALLET as SECRETSTORE_PALLET
from .errors import ChainError

# The SecretStore pallet's named types, for chains whose metadata predates V14 (such metadata names types rather than
# describing them, e.g. MathChain 0.7.0); V14 metadata describes every type itself and does not use these.
# KeyServersMask is Parity's {low: u128, high: u128}: the same 32 bytes as a little-endian U256.
SECRETSTORE_TYPES = {"types": {
    "ServerKeyId": "H256", "EntityId": "H160", "KeyServerId": "H160", "MigrationId": "H256",
    "KeyServerNetworkAddress": "Vec<u8>", "KeyServersMask": "U256",
}}


class DispatchFailed(ChainError):
    """The transaction was included but its call failed; `error` is the module error's name, e.g. 'NotAnOwner'."""

    def __init__(self, pallet: str | None, error: str, docs: str, receipt: "Receipt") -> None:
        super().__init__(f"{pallet + '.' if pallet else ''}{error}" + (f": {docs}" if docs else ""))
        self.pallet = pallet
        self.error = error
        self.docs = docs
        self.receipt = receipt


@dataclass(frozen=True)
class ChainEvent:
    pallet: str
    name: str
    attributes: Any  # dict for named fields, tuple for unnamed ones, None for none
    extrinsic_index: int | None = None
    block_number: int | None = None  # set where the block is known (BlockFeed)


@dataclass(frozen=True)
class Receipt:
    extrinsic_hash: str
    block_hash: str | None = None
    block_number: int | None = None
    success: bool | None = None
    events: tuple[ChainEvent, ...] = ()
    error: dict | None = None


def _normalise_attributes(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_normalise_attributes(v) for v in value)
    if isinstance(value, tuple):
        return tuple(_normalise_attributes(v) for v in value)
    if isinstance(value, dict):
        return {k: _normalise_attributes(v) for k, v in value.items()}
    return value


def _named(pallet: str, name: str, attributes: Any) -> Any:
    """Metadata before V14 gives event fields without names: name the SecretStore pallet's from its interface
    (Parity's field order), so that readers see the same dict on every chain."""
    if pallet != SECRETSTORE_PALLET or not isinstance(attributes, tuple):
        return attributes
    variant = SECRETSTORE_EVENTS.by_name.get(name)
    if variant is None or len(variant.fields) != len(attributes) or not all(f.name for f in variant.fields):
        return attributes
    return {f.name: value for f, value in zip(variant.fields, attributes)}


def event_from_record(record: Any) -> ChainEvent:
    """A substrate-interface EventRecord (decoded System.Events entry) as a ChainEvent."""
    value = record.value if hasattr(record, "value") else record
    event = value.get("event", value)
    idx = value.get("extrinsic_idx")
    return ChainEvent(
        pallet=event["module_id"],
        name=event["event_id"],
        attributes=_named(event["module_id"], event["event_id"], _normalise_attributes(event.get("attributes"))),
        extrinsic_index=idx,
    )
