"""The chain service's state: what it knows of the chain and of its own work, shared by the parts in this package."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from ...chain.connection import ChainConnection, TransactionSubmitter
from ...chain.secretstore_api import KeyServerSetSnapshot, PersonalPartTally, SecretStoreRuntimeApi, ServiceTask
from ...crypto import Address, ServerKeyId
from ..net import KeyServerDirectory, parse_network_address
from ..sessions import KeyServerCore

log = logging.getLogger(__package__)  # one logger for the whole service, named as before it was split


@dataclass
class ServiceState:
    """What the chain service knows: the base of each of its parts, which `run.ChainService` combines."""

    chain: ChainConnection
    core: KeyServerCore
    directory: KeyServerDirectory
    runtime_api: SecretStoreRuntimeApi
    submitter: TransactionSubmitter
    submissions: asyncio.Queue = field(default_factory=asyncio.Queue)
    indices: dict[Address, int] = field(default_factory=dict)
    order: list[Address] = field(default_factory=list)
    inflight: set[tuple] = field(default_factory=set)
    # response key -> (time, head when the pool accepted it; None while it is still being sent)
    submitted: dict[tuple, tuple[float, int | None]] = field(default_factory=dict)
    head_number: int = 0
    first_seen: dict[tuple, float] = field(default_factory=dict)
    synced: asyncio.Event = field(default_factory=asyncio.Event)
    snapshot: KeyServerSetSnapshot | None = None
    migration_runs: dict[bytes, float] = field(default_factory=dict)  # migration id -> when a full run succeeded
    task_lists: dict[str, list[ServiceTask]] = field(default_factory=dict)  # service -> its tasks at the last read
    personal_parts: PersonalPartTally = field(default_factory=PersonalPartTally)
    # key -> the holders of this server's share (shares come and go only by generation and set change; this is
    # cleared on every full scan, which is also where migrations settle, and a key with no share here is not kept)
    holders: dict[ServerKeyId, frozenset[Address]] = field(default_factory=dict)
    # common parts this server only answers if still pending after COMMON_STANDBY: response key -> when first seen
    standby: dict[tuple, float] = field(default_factory=dict)
    # pending personal parts: (key, requester) -> (the requester's public key the chain named (raw 64 bytes), the
    # last head at which it was seen pending)
    requester_publics: dict[tuple[ServerKeyId, Address], tuple[bytes, int]] = field(default_factory=dict)
    # ACL answers (in flight or done) at the current head: the common part and the shadow step ask the same
    access_checks: dict[tuple[ServerKeyId, Address], asyncio.Future] = field(default_factory=dict)
    access_checks_head: int = -1

    @property
    def self_id(self) -> Address:
        return self.core.self_id

    def refresh_set(self, snap: KeyServerSetSnapshot, indices: dict[Address, int]) -> None:
        """Current set with the chain's indices for sessions; current, new and migration sets for who may connect."""
        self.snapshot, self.indices = snap, indices
        self.order = sorted(indices, key=indices.__getitem__)
        addresses = {}
        for ks_id, address in snap.members().items():
            if ks_id != self.self_id:
                try:
                    addresses[ks_id] = parse_network_address(address)
                except ValueError as exc:
                    log.warning("skipping key server with a bad address", extra={"error": str(exc)})
        self.directory.update(addresses)
