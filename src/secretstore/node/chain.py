"""The chain: genesis, transaction pool, block production (single authority, final when sealed) and state access."""

from __future__ import annotations

import heapq
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..codec.hashing import blake2_256
from ..codec.primitives import H256
from ..codec.scale import U32, Bytes, Compact, Composite, Field, Sequence, Tuple, encode_compact
from ..runtime import GenesisConfig, InvalidTransaction, MemoryStorage, Overlay, Runtime
from .database import ChainDatabase, HistoricalStorage
from .extrinsic import ExtrinsicError, SignedExtrinsic, decode

log = logging.getLogger(__name__)

Digest = Composite(("sp_runtime", "generic", "digest", "Digest"), [Field("logs", Sequence(Bytes))])
Header = Composite(("sp_runtime", "generic", "header", "Header"), [
    Field("parent_hash", H256), Field("number", Compact(U32)), Field("state_root", H256),
    Field("extrinsics_root", H256), Field("digest", Digest)])
StateChanges = Sequence(Tuple(Bytes, Bytes))

MAX_POOL = 8192
# Extrinsics per block at most: bounds a block's size and the time the node spends sealing it (during which it
# answers no RPC); what does not fit goes into the next block right away (with --block-time, a block time later).
# 1024 holds the answers to a full queue of 64 generations at n = 15 (960), sealed in about 0.2 s.
MAX_BLOCK_EXTRINSICS = 1024


def hex0x(data: bytes) -> str:
    return "0x" + data.hex()


@dataclass
class PooledTransaction:
    extrinsic: SignedExtrinsic
    order: int


@dataclass
class BlockInfo:
    number: int
    hash: bytes
    header: dict
    extrinsics: list[bytes]
    changes: dict[bytes, bytes | None] = field(default_factory=dict)
    included: list[bytes] = field(default_factory=list)  # extrinsic hashes
    dropped: list[tuple[bytes, str]] = field(default_factory=list)


def header_json(header: dict) -> dict:
    return {"parentHash": hex0x(header["parent_hash"]), "number": hex(header["number"]),
            "stateRoot": hex0x(header["state_root"]), "extrinsicsRoot": hex0x(header["extrinsics_root"]),
            "digest": {"logs": [hex0x(x) for x in header["digest"]["logs"]]}}


def extrinsics_root(extrinsics: list[bytes]) -> bytes:
    return blake2_256(encode_compact(len(extrinsics)) + b"".join(extrinsics))


def state_root(parent_root: bytes, changes: dict[bytes, bytes | None]) -> bytes:
    """A deterministic commitment: the parent's root chained with this block's sorted changes."""
    encoded = StateChanges.encode([(k, b"\x01" + v if v is not None else b"\x00") for k, v in sorted(changes.items())])
    return blake2_256(parent_root + encoded)


# -------------------------------------------------------------------------------------------------- chain spec

def _bytes(value: str, length: int | None, what: str) -> bytes:
    from ..crypto.keys import parse_hex

    if not isinstance(value, str):
        raise ValueError(f"chain spec {what}: expected a string, got {type(value).__name__}")
    if length == 32 and not value.startswith("0x"):
        from substrateinterface.utils.ss58 import ss58_decode  # SS58 account addresses are accepted too

        try:
            return bytes.fromhex(ss58_decode(value))
        except ValueError as exc:
            raise ValueError(f"chain spec {what}: {exc}") from None
    return parse_hex(value, f"chain spec {what}", length)


def _spec_type(spec: dict, key: str, kind: type, what: str) -> Any:
    value = spec[key]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise ValueError(f"chain spec {key}: expected {what}, got {type(value).__name__}")
    return value


def load_chain_spec(path: Path | None) -> tuple[GenesisConfig, str]:
    """The dev genesis, with any value overridden by the JSON chain spec file. Every field is checked here, and the
    genesis built once, so that a spec the node cannot start from is refused (ValueError, one line) before any
    database is opened."""
    config = GenesisConfig.dev()
    name = "SecretStore Development"
    if path is None:
        return config, name
    try:
        spec = json.loads(Path(path).read_text())
    except (OSError, ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ValueError(f"cannot read chain spec {path}: {exc}") from None
    if not isinstance(spec, dict):
        raise ValueError(f"chain spec {path}: expected a JSON object, got {type(spec).__name__}")
    known = {"name", "owner", "key_servers", "claims", "endowed", "is_initialization_completed",
             "server_key_generation_fee", "server_key_retrieval_fee", "document_key_store_fee",
             "document_key_shadow_retrieval_fee", "max_pending_requests", "base_fee", "byte_fee", "key_server_ports"}
    unknown = set(spec) - known
    if unknown:
        raise ValueError(f"chain spec {path}: unknown field(s) {', '.join(sorted(unknown))}")
    if "name" in spec:
        name = _spec_type(spec, "name", str, "a string")
        if not name.strip():
            raise ValueError("chain spec name: must not be empty")
    if "owner" in spec:
        config.owner = _bytes(spec["owner"], 32, "owner")
    if "key_servers" in spec:
        config.key_servers = []
        for ks in _spec_type(spec, "key_servers", list, "a list of {\"id\", \"address\"} objects"):
            if not isinstance(ks, dict) or set(ks) != {"id", "address"} or not isinstance(ks["address"], str):
                raise ValueError('chain spec key_servers: each entry must be {"id": "0x<20 bytes>", '
                                 '"address": "host:port"} and nothing else')
            config.key_servers.append((_bytes(ks["id"], 20, "key_servers.id"), ks["address"].encode()))
    if "claims" in spec:
        claims = _spec_type(spec, "claims", dict, "an object of account -> entity id")
        config.claims = {_bytes(a, 32, "claims"): _bytes(e, 20, "claims") for a, e in claims.items()}
    if "endowed" in spec:
        endowed = _spec_type(spec, "endowed", dict, "an object of account -> balance")
        config.endowed = {}
        for account, balance in endowed.items():
            if not isinstance(balance, int) or isinstance(balance, bool):
                raise ValueError(f"chain spec endowed: balance of {account} must be an integer")
            config.endowed[_bytes(account, 32, "endowed")] = balance
    if "key_server_ports" in spec:  # not genesis: where a LocalNetwork's key servers listen, kept for restarts
        ports = _spec_type(spec, "key_server_ports", list, "a list of TCP ports")
        if not all(isinstance(p, int) and not isinstance(p, bool) and 0 < p < 65536 for p in ports):
            raise ValueError("chain spec key_server_ports: expected a list of TCP ports (1..65535)")
    for key in ("is_initialization_completed", "server_key_generation_fee", "server_key_retrieval_fee",
                "document_key_store_fee", "document_key_shadow_retrieval_fee", "max_pending_requests",
                "base_fee", "byte_fee"):
        if key in spec:
            setattr(config, key, spec[key])
    try:
        Runtime.genesis_storage(config)  # checks the values' types and ranges (InvalidGenesis names the field)
    except ValueError as exc:
        raise ValueError(f"chain spec {path}: {exc}") from None
    return config, name


# -------------------------------------------------------------------------------------------------------- chain

class Chain:
    """The chain and its transaction pool.

    Pool additions are buffered in memory until `flush_pool()` or the next `produce_block()` writes them (one SQLite
    transaction for many submissions); the RPC layer answers a submitter only after that, so an accepted
    transaction is always on disk. `submit(..., durable=True)` (the default) flushes at once.
    """

    def __init__(self, base_path: Path, genesis: GenesisConfig, chain_name: str = "SecretStore Development") -> None:
        self.chain_name = chain_name
        self.db = ChainDatabase(Path(base_path) / "chain.sqlite")
        self.pool: dict[bytes, PooledTransaction] = {}                   # by extrinsic hash, in arrival order
        self.by_sender: dict[bytes, dict[int, PooledTransaction]] = {}   # signer -> nonce -> transaction
        self._unsynced: dict[bytes, PooledTransaction] = {}              # accepted, not yet written to the pool table
        self._order = 0
        self.listeners: list[Callable[[BlockInfo], None]] = []
        if self.db.head() is None:
            self._write_genesis(genesis)
        self.state = MemoryStorage(self.db.latest_state())
        self.runtime = Runtime(self.state)
        self.head_number, self.head_hash = self.db.head()  # type: ignore[misc]
        self.head_header = Header.decode(self.db.block_by_number(self.head_number)[1])  # type: ignore[index]
        self.genesis_hash = self.db.block_by_number(0)[0]  # type: ignore[index]
        self._metadata_cache: dict[int, bytes] = {}
        self._restore_pool()
        log.info("chain opened", extra={"head": self.head_number, "pooled": len(self.pool)})

    def _restore_pool(self) -> None:
        """Transactions accepted before a stop or crash are validated again; the ones still valid wait again."""
        for encoded in self.db.pool_entries():
            try:
                ext = self.check(encoded)
                if ext.hash in self.pool or ext.nonce in self.by_sender.get(ext.signer, {}):
                    raise ExtrinsicError("a transaction with this nonce is already pending")
            except ExtrinsicError as exc:
                log.info("pooled transaction no longer valid", extra={"reason": str(exc)})
                self.db.pool_remove(blake2_256(encoded))  # the extrinsic hash
                continue
            self._order += 1
            self._pool_insert(PooledTransaction(ext, self._order))

    def close(self) -> None:
        self.flush_pool()
        self.db.close()

    def _write_genesis(self, genesis: GenesisConfig) -> None:
        storage = Runtime.genesis_storage(genesis)
        root = state_root(b"\x00" * 32, dict(storage))
        header = {"parent_hash": bytes(32), "number": 0, "state_root": root,
                  "extrinsics_root": extrinsics_root([]), "digest": {"logs": []}}
        encoded = Header.encode(header)
        self.db.commit_block(0, blake2_256(encoded), encoded, Sequence(Bytes).encode([]), dict(storage))

    # ------------------------------------------------------------------------------------------------ queries
    def number_of(self, block_hash: bytes | None) -> int:
        if block_hash is None or block_hash == self.head_hash:
            return self.head_number
        number = self.db.number_of(block_hash)
        if number is None:
            raise LookupError(f"unknown block {hex0x(block_hash)}")
        return number

    def storage_at(self, block_hash: bytes | None):
        number = self.number_of(block_hash)
        return self.state if number == self.head_number else HistoricalStorage(self.db, number)

    def block(self, number: int) -> tuple[bytes, dict, list[bytes]] | None:
        row = self.db.block_by_number(number)
        if row is None:
            return None
        block_hash, header, extrinsics = row
        return block_hash, Header.decode(header), Sequence(Bytes).decode(extrinsics)

    def header_of(self, block_hash: bytes) -> dict:
        if block_hash == self.head_hash:
            return self.head_header
        found = self.block(self.number_of(block_hash))
        assert found is not None
        return found[1]

    def with_state(self, block_hash: bytes | None, fn: Callable[[Runtime], Any]) -> Any:
        """Run `fn` on a runtime reading the state at a block (read-only use)."""
        saved = self.runtime.storage
        self.runtime.storage = self.storage_at(block_hash)
        try:
            return fn(self.runtime)
        finally:
            self.runtime.storage = saved

    def metadata(self, version: int = 14) -> bytes:
        if version not in self._metadata_cache:
            self._metadata_cache[version] = self.runtime.metadata(version)
        return self._metadata_cache[version]

    def next_nonce(self, account: bytes) -> int:
        nonce = self.runtime.system.nonce(self.state, account)
        pending = self.by_sender.get(account, {})
        while nonce in pending:
            nonce += 1
        return nonce

    # ----------------------------------------------------------------------------------------------- the pool
    def check(self, encoded: bytes) -> SignedExtrinsic:
        """Decode and fully validate an extrinsic against the head state; raises ExtrinsicError with its RPC code."""
        ext = decode(encoded)
        current = self.head_number + 1
        if not ext.era.immortal:
            if current >= ext.era.death(current):
                raise ExtrinsicError("Invalid Transaction: Transaction is outdated")
            birth = ext.era.birth(current)
            if birth > self.head_number:
                raise ExtrinsicError("Invalid Transaction: Transaction has an ancient birth block")
            birth_hash = self.db.block_by_number(birth)[0]  # type: ignore[index]
        else:
            birth_hash = self.genesis_hash
        payload = ext.signing_payload(self.runtime.spec_version, self.runtime.transaction_version, self.genesis_hash,
                                      birth_hash)
        if not ext.verify(payload):
            raise ExtrinsicError("Invalid Transaction: Transaction has a bad signature")
        try:
            self.runtime.validate_transaction(ext.signer, ext.nonce, ext.tip, ext.call, len(encoded))
        except InvalidTransaction as exc:
            message = {"Stale": "Transaction is outdated", "Payment": "Inability to pay some fees (e.g. account balance too low)",
                       "Call": "Transaction call is not expected"}.get(exc.kind, exc.kind)
            raise ExtrinsicError(f"Invalid Transaction: {message} ({exc.message})") from None
        return ext

    def submit(self, encoded: bytes, *, durable: bool = True) -> bytes:
        """Validate and pool a transaction. With durable=False it is only in memory until the next flush_pool() or
        produce_block(): the caller must not report it as accepted before then."""
        ext = self.check(encoded)
        if ext.hash in self.pool:
            raise ExtrinsicError("Transaction Already Imported", 1012)
        if ext.nonce in self.by_sender.get(ext.signer, ()):
            raise ExtrinsicError("Priority is too low: a transaction with this nonce is already pending", 1012)
        if len(self.pool) >= MAX_POOL:
            raise ExtrinsicError("Transaction pool is full", 1012)
        self._order += 1
        tx = PooledTransaction(ext, self._order)
        self._pool_insert(tx)
        self._unsynced[ext.hash] = tx
        if durable:
            self.flush_pool()
        return ext.hash

    def _pool_insert(self, tx: PooledTransaction) -> None:
        self.pool[tx.extrinsic.hash] = tx
        self.by_sender.setdefault(tx.extrinsic.signer, {})[tx.extrinsic.nonce] = tx

    def _pool_remove(self, ext: SignedExtrinsic) -> None:
        self.pool.pop(ext.hash, None)
        self._unsynced.pop(ext.hash, None)
        pending = self.by_sender.get(ext.signer)
        if pending is not None:
            pending.pop(ext.nonce, None)
            if not pending:
                del self.by_sender[ext.signer]

    def flush_pool(self) -> None:
        """Write the buffered pool additions in one transaction (one write however many there are)."""
        if self._unsynced:
            self.db.pool_add_many([(h, tx.order, tx.extrinsic.encoded) for h, tx in self._unsynced.items()])
            self._unsynced.clear()

    def has_ready(self) -> bool:
        """Whether some pooled transaction could go into a block now (stale ones count: the block drops them)."""
        nonce = self.runtime.system.nonce
        return any(min(pending) <= nonce(self.state, signer) for signer, pending in self.by_sender.items())

    # ------------------------------------------------------------------------------------------ block authoring
    def produce_block(self, max_extrinsics: int | None = MAX_BLOCK_EXTRINSICS) -> BlockInfo:
        """Seal one block with every ready transaction (at most `max_extrinsics`), highest tip first, then arrival
        order; each signer's transactions go in nonce order, a later nonce only after its predecessor was applied.
        A transaction that cannot be applied (it became stale or can no longer pay) leaves the pool as dropped."""
        number = self.head_number + 1
        block_state = Overlay(self.state)
        runtime = self.runtime
        runtime.storage = block_state
        included: list[SignedExtrinsic] = []
        dropped: list[tuple[SignedExtrinsic, str]] = []
        limit = MAX_BLOCK_EXTRINSICS if max_extrinsics is None else max_extrinsics
        try:
            runtime.initialize_block(number, self.head_hash)
            # per signer, its pending nonces in order; a heap of each signer's next candidate
            queues = {signer: sorted(pending) for signer, pending in self.by_sender.items()}
            heap: list[tuple[int, int, bytes, int]] = []  # (-tip, order, signer, position in its queue)

            def offer(signer: bytes, position: int, expected: int) -> None:
                nonces = queues[signer]
                if position < len(nonces) and nonces[position] <= expected:  # above `expected`: it must wait
                    tx = self.by_sender[signer][nonces[position]]
                    heapq.heappush(heap, (-tx.extrinsic.tip, tx.order, signer, position))

            for signer in queues:
                offer(signer, 0, runtime.system.nonce(block_state, signer))
            while heap and len(included) < limit:
                _, _, signer, position = heapq.heappop(heap)
                ext = self.by_sender[signer][queues[signer][position]].extrinsic
                try:
                    runtime.apply_extrinsic(len(included), ext.signer, ext.nonce, ext.tip, ext.call, len(ext.encoded))
                except InvalidTransaction as exc:
                    if exc.kind != "Future":  # cannot happen for an offered transaction, but must not be dropped
                        dropped.append((ext, exc.message))
                        offer(signer, position + 1, runtime.system.nonce(block_state, signer))
                    continue
                included.append(ext)
                offer(signer, position + 1, ext.nonce + 1)
            runtime.finalize_block()
        finally:
            runtime.storage = self.state
        changes = dict(block_state.changes)
        extrinsics = [ext.encoded for ext in included]
        header = {"parent_hash": self.head_hash, "number": number,
                  "state_root": state_root(self.head_header["state_root"], changes),
                  "extrinsics_root": extrinsics_root(extrinsics), "digest": {"logs": []}}
        encoded_header = Header.encode(header)
        block_hash = blake2_256(encoded_header)
        leaving = {ext.hash for ext in included} | {ext.hash for ext, _ in dropped}
        # the block, the pool rows it removes and the pool rows accepted since the last flush: one transaction
        self.db.commit_block(number, block_hash, encoded_header, Sequence(Bytes).encode(extrinsics), changes,
                             leaving_pool=[h for h in leaving if h not in self._unsynced],
                             entering_pool=[(h, tx.order, tx.extrinsic.encoded) for h, tx in self._unsynced.items()
                                            if h not in leaving])
        self._unsynced.clear()
        block_state.commit()
        self.head_number, self.head_hash, self.head_header = number, block_hash, header
        for ext in included:
            self._pool_remove(ext)
        for ext, _ in dropped:
            self._pool_remove(ext)
        info = BlockInfo(number, block_hash, header, extrinsics, changes, [e.hash for e in included],
                         [(e.hash, reason) for e, reason in dropped])
        log.info("block sealed", extra={"number": number, "extrinsics": len(included), "dropped": len(dropped)})
        for listener in list(self.listeners):
            listener(info)
        return info
