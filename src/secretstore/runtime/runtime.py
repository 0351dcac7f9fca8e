"""The runtime: pallets composed into one state transition function, driven by the node.

Pure: storage in, events out. No I/O, no clock (the block number is an input), no threads.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from ..codec.primitives import AccountId32
from ..codec.scale import U32, CodecError, Field, Variant, VariantDef
from .balances import Balances
from .dispatch import Context, DispatchError, InvalidTransaction, ModuleError
from .frame import PalletDecl
from .metadata import build_metadata
from .payment import CALL_WEIGHT, TransactionPayment
from .secretstore import api as secretstore_api
from .secretstore.pallet import SecretStore, valid_network_address
from .secretstore.types import MAX_KEY_SERVERS
from .storage import MemoryStorage, Overlay, Storage
from .system import System
from .version import RuntimeVersion, api_id

log = logging.getLogger(__name__)

SPEC_NAME = "secretstore"
SPEC_VERSION = 3  # bump whenever the metadata changes: clients cache it per version
TRANSACTION_VERSION = 1

# Well-known sr25519 dev accounts (//Alice etc.); a test derives them again with substrate-interface.
DEV_ACCOUNTS = {
    "Alice": bytes.fromhex("d43593c715fdd31c61141abd04a99fd6822c8558854ccde39a5684e7a56da27d"),
    "Bob": bytes.fromhex("8eaf04151687736326c9fea17e25fc5287613693c912909cb226aa4794f26a48"),
    "Charlie": bytes.fromhex("90b5ab205c6974c9ea841be688864633dc9ca8a357843eeacf2314649965fe22"),
    "Dave": bytes.fromhex("306721211d5404bd9da88e0204360a1a9ab8b87c66c1bc2fcdd37f3c2222cc20"),
    "Alice//stash": bytes.fromhex("be5ddb1579b72e84524fc29e78609e3caf42e85aa118ebfe0b0ad404b5bdd25f"),
    "Bob//stash": bytes.fromhex("fe65717dad0447d715f660a0a58411de509b42e6efb8375f562f58a554d5860e"),
    "Charlie//stash": bytes.fromhex("1e07379407fecc4b89eb7dbd287c2c781cfb1907a96947a3eb18e4f8e7198625"),
    "Dave//stash": bytes.fromhex("e860f1b1c7227f7c22602f53f15af80747814dffd839719731ee3bba6edc126c"),
}
DEV_ENDOWMENT = 1 << 60


RUNTIME_APIS = [
    ("Core", 4), ("Metadata", 2), ("BlockBuilder", 6), ("TaggedTransactionQueue", 3), ("AccountNonceApi", 1),
    ("TransactionPaymentApi", 4),
] + [(trait, secretstore_api.TRAIT_VERSION) for trait in secretstore_api.TRAITS]


PALLETS = (System, Balances, TransactionPayment, SecretStore)


def _outer_enum(name: str, part: str, suffix: str) -> Variant:
    """An outer enum of the runtime: one variant per pallet (at the pallet's index) wrapping its own enum."""
    return Variant(("secretstore_runtime", name), [
        VariantDef(cls.NAME, cls.INDEX, (Field(None, getattr(cls, part), f"{cls.MODULE}::{suffix}<Runtime>"),))
        for cls in PALLETS if getattr(cls, part) is not None])


# The SCALE descriptors of the runtime's outer enums: `RuntimeCall` decodes an extrinsic's call, `RuntimeEvent` the
# event of a `frame_system::EventRecord`, `RuntimeError` names the module errors.
RuntimeCall = _outer_enum("RuntimeCall", "CALLS", "Call")
RuntimeEvent = _outer_enum("RuntimeEvent", "EVENTS", "Event")
RuntimeError = _outer_enum("RuntimeError", "ERRORS", "Error")
# Largest encoded transaction accepted (bytes): bigger ones could never fit in a block.
MAX_TRANSACTION_LENGTH = 4 * 1024 * 1024
# How far ahead of an account's next nonce a transaction may be: a nonce further ahead is refused ("Future") instead
# of waiting in the pool for predecessors that may never come. Generous for clients that keep many transactions of
# one account in flight (the node's pool holds at most 8192 transactions in all).
MAX_NONCE_AHEAD = 8192


@dataclass
class GenesisConfig:
    """Initial state. `key_servers` are (KeyServerId, "host:port"); `claims` map accounts to entity ids."""

    owner: bytes
    key_servers: list[tuple[bytes, bytes]]
    claims: dict[bytes, bytes]
    endowed: dict[bytes, int]
    is_initialization_completed: bool = True
    server_key_generation_fee: int = 0
    server_key_retrieval_fee: int = 0
    document_key_store_fee: int = 0
    document_key_shadow_retrieval_fee: int = 0
    max_pending_requests: int = 64
    base_fee: int = 0
    byte_fee: int = 0

    @classmethod
    def dev(cls) -> "GenesisConfig":
        """The Parity Secret Store dev chain: //Alice owns the set; key servers of secrets 0x01.., 0x02.., 0x03.."""
        servers = [
            (bytes.fromhex("1a642f0e3c3af545e7acbd38b07251b3990914f1"), b"127.0.0.1:10000"),
            (bytes.fromhex("5050a4f4b3f9338c3472dcc01a87c76a144b3c9c"), b"127.0.0.1:10001"),
            (bytes.fromhex("3325a78425f17a7e487eb5666b2bfd93abb06c70"), b"127.0.0.1:10002"),
        ]
        claims = {
            DEV_ACCOUNTS["Alice"]: servers[0][0],
            DEV_ACCOUNTS["Bob"]: servers[1][0],
            DEV_ACCOUNTS["Charlie"]: servers[2][0],
            DEV_ACCOUNTS["Dave"]: bytes.fromhex("c48b812bb43401392c037381aca934f4069c0517"),
        }
        return cls(owner=DEV_ACCOUNTS["Alice"], key_servers=servers, claims=claims,
                   endowed={account: DEV_ENDOWMENT for account in DEV_ACCOUNTS.values()})


class InvalidGenesis(ValueError):
    """A genesis configuration the runtime cannot start from (the message names the offending field)."""


def _check_genesis(config: GenesisConfig) -> None:
    def need(ok: bool, what: str) -> None:
        if not ok:
            raise InvalidGenesis(f"genesis {what}")

    def amount(value: object, what: str, bits: int = 128) -> None:
        need(isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 1 << bits,
             f"{what} must be an integer in [0, 2^{bits})")

    need(isinstance(config.owner, bytes) and len(config.owner) == 32, "owner must be a 32-byte account id")
    need(0 < len(config.key_servers) <= MAX_KEY_SERVERS, f"needs 1..{MAX_KEY_SERVERS} key servers")
    ids = [ks_id for ks_id, _ in config.key_servers]
    need(all(isinstance(i, bytes) and len(i) == 20 for i in ids), "key server ids must be 20-byte addresses")
    need(len(set(ids)) == len(ids), "key server ids must be distinct")
    need(all(valid_network_address(address) for _, address in config.key_servers),
         "key server addresses must be non-empty 'host:port' bytes of at most 256 bytes")
    need(all(isinstance(a, bytes) and len(a) == 32 and isinstance(e, bytes) and len(e) == 20
             for a, e in config.claims.items()), "claims must map 32-byte accounts to 20-byte entity ids")
    need(len(set(config.claims.values())) == len(config.claims), "claims must give each entity id to one account")
    need(all(isinstance(a, bytes) and len(a) == 32 for a in config.endowed), "endowed accounts must be 32 bytes")
    for account_balance in config.endowed.values():
        amount(account_balance, "endowment")
    need(isinstance(config.is_initialization_completed, bool), "is_initialization_completed must be a boolean")
    for name in ("server_key_generation_fee", "server_key_retrieval_fee", "document_key_store_fee",
                 "document_key_shadow_retrieval_fee", "base_fee", "byte_fee"):
        amount(getattr(config, name), name)
    amount(config.max_pending_requests, "max_pending_requests", 32)
    need(config.max_pending_requests > 0, "max_pending_requests must be positive")


@dataclass(frozen=True)
class ValidTransaction:
    priority: int
    ready: bool  # False: the nonce is in the future; hold it until the gap closes
    provides: tuple[bytes, int]
    requires: tuple[bytes, int] | None


@dataclass(frozen=True)
class ApplyOutcome:
    success: bool
    error: ModuleError | DispatchError | None = None
    fee: int = 0


class Runtime:
    spec_name = SPEC_NAME
    spec_version = SPEC_VERSION
    transaction_version = TRANSACTION_VERSION

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self.RuntimeEvent, self.RuntimeCall, self.RuntimeError = RuntimeEvent, RuntimeCall, RuntimeError
        self.system = System(self)
        self.balances = Balances(self)
        self.payment = TransactionPayment(self)
        self.secretstore = SecretStore(self)
        self.pallet_objects = [self.system, self.balances, self.payment, self.secretstore]
        self._by_name = {p.NAME: p for p in self.pallet_objects}
        self._decoded_calls: dict[bytes, tuple[str, str, dict | None]] = {}

    # -------------------------------------------------------------------------------------------- description
    @property
    def pallets(self) -> list[PalletDecl]:
        return [p.declaration() for p in self.pallet_objects]

    def version(self) -> dict:
        return {
            "spec_name": SPEC_NAME, "impl_name": "secretstore-python", "authoring_version": 1,
            "spec_version": SPEC_VERSION, "impl_version": 1,
            "apis": [(api_id(name), version) for name, version in RUNTIME_APIS],
            "transaction_version": TRANSACTION_VERSION, "state_version": 1,
        }

    def metadata(self, version: int = 14) -> bytes:
        return build_metadata(self.pallets, self.RuntimeCall, self.RuntimeEvent, self.RuntimeError,
                              self.system.EventRecord, version)

    # ----------------------------------------------------------------------------------------------- genesis
    @staticmethod
    def genesis_storage(config: GenesisConfig) -> dict[bytes, bytes]:
        """The initial state for `config`; raises InvalidGenesis if the configuration is not usable."""
        _check_genesis(config)
        storage = MemoryStorage()
        runtime = Runtime(storage)
        ss = runtime.secretstore
        for account, amount in config.endowed.items():
            runtime.balances.endow(storage, account, amount)
        ss.Owner.put(storage, config.owner)
        servers = [{"id": ks_id, "address": address} for ks_id, address in config.key_servers]
        ss.CurrentKeyServers.put(storage, servers)
        ss.NewKeyServers.put(storage, servers)
        ss.IsInitializationCompleted.put(storage, config.is_initialization_completed)
        for account, entity in config.claims.items():
            ss.ClaimedId.put(storage, entity, account)
            ss.ClaimedBy.put(storage, account, entity)
        ss.ServerKeyGenerationFee.put(storage, config.server_key_generation_fee)
        ss.ServerKeyRetrievalFee.put(storage, config.server_key_retrieval_fee)
        ss.DocumentKeyStoreFee.put(storage, config.document_key_store_fee)
        ss.DocumentKeyShadowRetrievalFee.put(storage, config.document_key_shadow_retrieval_fee)
        ss.MaxPendingRequests.put(storage, config.max_pending_requests)
        runtime.payment.BaseFee.put(storage, config.base_fee)
        runtime.payment.ByteFee.put(storage, config.byte_fee)
        # genesis leaves no events behind
        runtime.system.Events.remove(storage)
        runtime.system.EventCount.remove(storage)
        return storage.items()

    # --------------------------------------------------------------------------------------------- dispatch
    def decode_call(self, call: bytes) -> tuple[str, str, dict | None]:
        # A transaction's call is decoded when it is validated, when it is applied and when it is dispatched: the
        # same bytes, so the result is remembered (calls' argument values are immutable; the dict is copied).
        found = self._decoded_calls.get(call) if call.__class__ is bytes else None
        if found is None:
            try:
                pallet, (name, args) = self.RuntimeCall.decode(call)
            except CodecError as exc:
                raise InvalidTransaction("Call", f"cannot decode call: {exc}") from None
            if call.__class__ is not bytes or not _immutable(args):
                return pallet, name, args
            if len(self._decoded_calls) >= 4096:
                self._decoded_calls.clear()
            found = self._decoded_calls[call] = (pallet, name, args)
        pallet, name, args = found
        return pallet, name, dict(args) if args is not None else None

    def dispatch(self, origin: bytes | None, call: bytes, storage: Storage | None = None) -> None:
        """Run a call transactionally: on any error nothing it wrote remains, and the error is raised."""
        pallet, name, args = self.decode_call(call)
        overlay = Overlay(storage if storage is not None else self.storage)
        ctx = Context(overlay, origin, self.system.Number.get(overlay))
        self._by_name[pallet].dispatch(ctx, name, args)
        overlay.commit()

    # ------------------------------------------------------------------------------------------------ blocks
    def initialize_block(self, number: int, parent_hash: bytes) -> None:
        self.system.initialize(self.storage, number, parent_hash)

    def finalize_block(self) -> None:
        self.system.ExecutionPhase.put(self.storage, ("Finalization", None))
        self.system.ExecutionPhase.remove(self.storage)

    def _check(self, storage: Storage, signer: bytes, nonce: int, tip: int, call: bytes, length: int) -> tuple[int, bool]:
        if length > MAX_TRANSACTION_LENGTH:
            raise InvalidTransaction("ExhaustsResources", f"transaction of {length} bytes exceeds the block length")
        self.decode_call(call)
        expected = self.system.nonce(storage, signer)
        if nonce < expected:
            raise InvalidTransaction("Stale", f"nonce {nonce} is already used (next is {expected})")
        if nonce - expected >= MAX_NONCE_AHEAD:
            raise InvalidTransaction("Future", f"nonce {nonce} is too far ahead of the account's next nonce {expected} "
                                               f"(at most {MAX_NONCE_AHEAD - 1} ahead)")
        fee = self.payment.inclusion_fee(storage, length) + tip
        if self.balances.free(storage, signer) < fee:
            raise InvalidTransaction("Payment", f"the account cannot pay the fee of {fee}")
        return fee, nonce == expected

    def validate_transaction(self, signer: bytes, nonce: int, tip: int, call: bytes, length: int) -> ValidTransaction:
        _, ready = self._check(self.storage, signer, nonce, tip, call, length)
        return ValidTransaction(priority=tip, ready=ready, provides=(signer, nonce),
                                requires=None if ready else (signer, nonce - 1))

    def apply_extrinsic(self, index: int, signer: bytes, nonce: int, tip: int, call: bytes, length: int) -> ApplyOutcome:
        block = Overlay(self.storage)
        fee, ready = self._check(block, signer, nonce, tip, call, length)
        if not ready:
            raise InvalidTransaction("Future", f"nonce {nonce} is ahead of the account's next nonce")
        self.system.ExecutionPhase.put(block, ("ApplyExtrinsic", index))
        self.system.inc_nonce(block, signer)
        self.payment.charge(block, signer, length, tip)
        error: DispatchError | None = None
        try:
            self.dispatch(signer, call, block)
        except DispatchError as exc:
            error = exc
        self.payment.fee_paid(block, signer, fee, tip)
        info = {"weight": CALL_WEIGHT, "class": "Normal", "pays_fee": "Yes"}
        if error is None:
            self.system.deposit_event(block, ("System", ("ExtrinsicSuccess", {"dispatch_info": info})))
        else:
            self.system.deposit_event(block, ("System", ("ExtrinsicFailed", {
                "dispatch_error": error.value, "dispatch_info": info})))
        block.commit()
        if log.isEnabledFor(logging.DEBUG):
            pallet, name, _ = self.decode_call(call)
            log.debug("extrinsic applied index=%d call=%s.%s outcome=%s fee=%d", index, pallet, name,
                      "ok" if error is None else getattr(error, "name", type(error).__name__), fee)
        return ApplyOutcome(error is None, error, fee)

    def query_info(self, call: bytes, length: int) -> dict:
        self.decode_call(call)
        return {"weight": CALL_WEIGHT, "class": "Normal", "partial_fee": self.payment.inclusion_fee(self.storage, length)}

    # ------------------------------------------------------------------------------------------ runtime APIs
    def api_call(self, name: str, args: bytes) -> bytes:
        """state_call: SCALE args in, SCALE result out. Raises KeyError for unknown names, CodecError for bad args."""
        if name.partition("_")[0] in secretstore_api.TRAITS:
            return secretstore_api.call(self.secretstore, self.storage, name, args)
        if name == "AccountNonceApi_account_nonce":
            return U32.encode(self.system.nonce(self.storage, AccountId32.decode(args)))
        if name == "Core_version":
            return RuntimeVersion.encode(self.version())
        raise KeyError(f"unknown runtime API method {name}")


def _immutable(args: dict | None) -> bool:
    """Whether decoded call arguments can be shared between decodes (no list or dict inside)."""
    def ok(value: object) -> bool:
        if isinstance(value, tuple):
            return all(ok(v) for v in value)
        return value is None or isinstance(value, (bytes, int, str))
    return args is None or (isinstance(args, dict) and all(ok(v) for v in args.values()))

