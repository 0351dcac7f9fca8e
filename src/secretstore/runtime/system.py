"""System: accounts and nonces, block number and hashes, and the events of the block."""

from __future__ import annotations

from typing import Any

from ..codec.hashing import blake2_256
from ..codec.primitives import AccountId32, AccountInfo, DispatchError, DispatchInfo, H256, Phase
from ..codec.scale import U16, U32, Bytes, Composite, Field, Reader, Sequence, decode_compact, encode_compact
from .dispatch import Context, Pallet, call_enum, error_enum, event_enum
from .frame import Constant, StorageEntry
from .version import RuntimeVersion

PALLET = "System"
BLOCK_HASH_COUNT = 4096


def empty_account() -> dict:
    return {"nonce": 0, "consumers": 0, "providers": 0, "sufficients": 0,
            "data": {"free": 0, "reserved": 0, "frozen": 0, "flags": 1 << 127}}


class System(Pallet):
    NAME, INDEX, MODULE = PALLET, 0, "frame_system"
    CALLS = call_enum(MODULE, [("remark", [("remark", Bytes, "Vec<u8>")], "Make some on-chain remark.")])
    ERRORS = error_enum(MODULE, [
        ("InvalidSpecName", "The name of specification does not match between the current runtime and the new runtime."),
        ("CallFiltered", "The origin filter prevents the call from being dispatched."),
    ])
    EVENTS = event_enum(MODULE, [
        ("ExtrinsicSuccess", [("dispatch_info", DispatchInfo, "DispatchInfo")], "An extrinsic completed successfully."),
        ("ExtrinsicFailed", [("dispatch_error", DispatchError, "DispatchError"),
                             ("dispatch_info", DispatchInfo, "DispatchInfo")], "An extrinsic failed."),
        ("NewAccount", [("account", AccountId32, "T::AccountId")], "A new account was created."),
        ("KilledAccount", [("account", AccountId32, "T::AccountId")], "An account was reaped."),
        ("Remarked", [("sender", AccountId32, "T::AccountId"), ("hash", H256, "T::Hash")], "On on-chain remark happened."),
    ])
    # Set by Runtime once the outer event type exists.
    EventRecord: Composite

    def __init__(self, runtime: Any) -> None:
        super().__init__(runtime)
        self.EventRecord = Composite(("frame_system", "EventRecord"), [
            Field("phase", Phase, "Phase"),
            Field("event", runtime.RuntimeEvent, "E"),
            Field("topics", Sequence(H256), "Vec<T>"),
        ], params=(("E", runtime.RuntimeEvent), ("T", H256)))
        self.Account = StorageEntry(PALLET, "Account", AccountInfo, ("Blake2_128Concat",), AccountId32, "Default",
                                    AccountInfo.encode(empty_account()), ("The full account information for a particular account ID.",))
        self.Number = StorageEntry(PALLET, "Number", U32, modifier="Default", default=bytes(4),
                                   docs=("The current block number being processed.",))
        self.ParentHash = StorageEntry(PALLET, "ParentHash", H256, modifier="Default", default=bytes(32),
                                       docs=("Hash of the previous block.",))
        self.BlockHash = StorageEntry(PALLET, "BlockHash", H256, ("Twox64Concat",), U32, "Default", bytes(32),
                                      ("Map of block numbers to block hashes.",))
        self.Events = StorageEntry(PALLET, "Events", Sequence(self.EventRecord), modifier="Default", default=b"\x00",
                                   docs=("Events deposited for the current block.",))
        self.EventCount = StorageEntry(PALLET, "EventCount", U32, modifier="Default", default=bytes(4),
                                       docs=("The number of events in the `Events<T>` list.",))
        self.ExecutionPhase = StorageEntry(PALLET, "ExecutionPhase", Phase, docs=("The execution phase of the block.",))
        self.STORAGE = (self.Account, self.Number, self.ParentHash, self.BlockHash, self.Events, self.EventCount,
                        self.ExecutionPhase)

    def constants(self) -> tuple:
        return (
            Constant("BlockHashCount", U32, U32.encode(BLOCK_HASH_COUNT), ("Maximum number of block number to block hash mappings to keep.",)),
            Constant("Version", RuntimeVersion, RuntimeVersion.encode(self.runtime.version()),
                     ("Get the chain's in-code version.",)),
            Constant("SS58Prefix", U16, U16.encode(42), ("The designated SS58 prefix of this chain.",)),
        )

    # ------------------------------------------------------------------------------------------------- accounts
    def account(self, storage, who: bytes) -> dict:
        return self.Account.get(storage, who)

    def set_account(self, storage, who: bytes, info: dict) -> None:
        self.Account.put(storage, info, who)

    def nonce(self, storage, who: bytes) -> int:
        return self.account(storage, who)["nonce"]

    def inc_nonce(self, storage, who: bytes) -> None:
        info = self.account(storage, who)
        info["nonce"] += 1
        self.set_account(storage, who, info)

    # --------------------------------------------------------------------------------------------------- events
    def deposit_event(self, storage, event: Any) -> None:
        phase = self.ExecutionPhase.get(storage) or ("Initialization", None)
        record = self.EventRecord.encode({"phase": phase, "event": event, "topics": []})
        # Append to the encoded Vec (as Substrate's storage append does): decoding and re-encoding every earlier
        # record made a block's events cost O(n^2). The bytes are the same as encoding the extended list.
        key = self.Events.storage_key()
        raw = storage.get(key)
        count, start = 0, 0
        if raw is not None:
            r = Reader(raw)
            count = decode_compact(r)
            start = r.pos
        count += 1
        storage.set(key, b"".join((encode_compact(count), memoryview(raw)[start:] if raw else b"", record)))
        self.EventCount.put(storage, count)

    def events(self, storage) -> list[dict]:
        return self.Events.get(storage)

    # ---------------------------------------------------------------------------------------------------- block
    def initialize(self, storage, number: int, parent_hash: bytes) -> None:
        self.Number.put(storage, number)
        self.ParentHash.put(storage, parent_hash)
        if number > 0:
            self.BlockHash.put(storage, parent_hash, number - 1)
            # keep only the last BlockHashCount hashes (the genesis hash stays, as in Substrate)
            if number - 1 > BLOCK_HASH_COUNT:
                self.BlockHash.remove(storage, number - 1 - BLOCK_HASH_COUNT)
        self.Events.remove(storage)
        self.EventCount.remove(storage)
        self.ExecutionPhase.put(storage, ("Initialization", None))

    def call_remark(self, ctx: Context, remark: bytes) -> None:
        self.deposit(ctx.storage, "Remarked", sender=ctx.signed(), hash=blake2_256(remark))
