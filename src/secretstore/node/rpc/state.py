"""state_*: storage reads at any kept block, runtime version and metadata, runtime API calls (state_call), and
subscriptions to storage changes and the runtime version."""

from __future__ import annotations

import json

from ...codec.hashing import blake2_256
from ...codec.scale import U32, Bytes, Option, Sequence
from ..chain import BlockInfo, hex0x
from .author import transaction_validity
from .connection import Connection, notification
from .group import MethodGroup, Notifier
from .params import RpcError, bytes_param, opt_hash
from .payment import payment_api_call


class StateMethods(MethodGroup):
    aliases = {"chain_getRuntimeVersion": "state_getRuntimeVersion", "state_getStorageAt": "state_getStorage"}

    def _version_json(self):
        v = self.chain.runtime.version()
        return {"specName": v["spec_name"], "implName": v["impl_name"], "authoringVersion": v["authoring_version"],
                "specVersion": v["spec_version"], "implVersion": v["impl_version"],
                "apis": [[hex0x(i), ver] for i, ver in v["apis"]], "transactionVersion": v["transaction_version"],
                "stateVersion": v["state_version"]}

    def rpc_state_getRuntimeVersion(self, conn, block_hash=None):
        self.chain.number_of(opt_hash(block_hash))
        return self._version_json()

    def rpc_state_subscribeRuntimeVersion(self, conn):
        sub_id = self.server.subscribe(conn, "runtimeVersion")
        conn.notify(sub_id, "state_runtimeVersion", self._version_json())
        return sub_id

    def rpc_state_unsubscribeRuntimeVersion(self, conn, sub_id): return self.server.unsubscribe(conn, sub_id)

    def rpc_state_getMetadata(self, conn, block_hash=None):
        self.chain.number_of(opt_hash(block_hash))
        return hex0x(self.chain.metadata(14))

    def rpc_state_getStorage(self, conn, key, block_hash=None):
        value = self.chain.storage_at(opt_hash(block_hash)).get(bytes_param(key, "key"))
        return hex0x(value) if value is not None else None

    def rpc_state_getStorageHash(self, conn, key, block_hash=None):
        value = self.chain.storage_at(opt_hash(block_hash)).get(bytes_param(key, "key"))
        return hex0x(blake2_256(value)) if value is not None else None

    def rpc_state_getStorageSize(self, conn, key, block_hash=None):
        value = self.chain.storage_at(opt_hash(block_hash)).get(bytes_param(key, "key"))
        return len(value) if value is not None else None

    def rpc_state_queryStorageAt(self, conn, keys, block_hash=None):
        at = opt_hash(block_hash)
        storage = self.chain.storage_at(at)
        changes = []
        for key in keys:
            value = storage.get(bytes_param(key, "key"))
            changes.append([key, hex0x(value) if value is not None else None])
        return [{"block": hex0x(at or self.chain.head_hash), "changes": changes}]

    def rpc_state_getKeysPaged(self, conn, prefix, count, start_key=None, block_hash=None):
        if not isinstance(count, int) or not 0 < count <= 1000:
            raise RpcError(-32602, "invalid params: count must be between 1 and 1000")
        storage = self.chain.storage_at(opt_hash(block_hash))
        start = bytes_param(start_key, "start_key") if start_key else None
        keys = []
        for key, _ in storage.iter_prefix(bytes_param(prefix or "0x", "prefix"), start):
            keys.append(hex0x(key))
            if len(keys) >= count:
                break
        return keys

    def rpc_state_getKeys(self, conn, prefix, block_hash=None):
        storage = self.chain.storage_at(opt_hash(block_hash))
        return [hex0x(k) for k, _ in storage.iter_prefix(bytes_param(prefix or "0x", "prefix"))]

    def rpc_state_getPairs(self, conn, prefix, block_hash=None):
        storage = self.chain.storage_at(opt_hash(block_hash))
        return [[hex0x(k), hex0x(v)] for k, v in storage.iter_prefix(bytes_param(prefix or "0x", "prefix"))]

    def rpc_state_subscribeStorage(self, conn, keys=None):
        wanted = None if keys is None else {bytes_param(k, "key") for k in keys}
        sub_id = self.server.subscribe(conn, "storage", wanted)
        if wanted is not None:
            conn.notify(sub_id, "state_storage", {"block": hex0x(self.chain.head_hash), "changes": [
                [hex0x(k), hex0x(v) if (v := self.chain.state.get(k)) is not None else None] for k in sorted(wanted)]})
        return sub_id

    def rpc_state_unsubscribeStorage(self, conn, sub_id): return self.server.unsubscribe(conn, sub_id)

    def notifiers(self, block: BlockInfo) -> dict[str, Notifier]:
        block_hash = hex0x(block.hash)
        all_keys = tuple(sorted(block.changes))
        by_keys: dict[tuple, str] = {}  # one encoding per set of changed keys (followers watch the same ones)

        def storage(conn: Connection, sub_id: str, keys: set[bytes] | None) -> None:  # `keys` None: every key
            changed = all_keys if keys is None else tuple(k for k in all_keys if k in keys)
            if changed:
                encoded = by_keys.get(changed)
                if encoded is None:
                    encoded = by_keys[changed] = json.dumps(_storage_changes(block_hash, block.changes, changed))
                conn.send(notification(sub_id, "state_storage", encoded))

        return {"storage": storage}

    def rpc_state_call(self, conn, method, data, block_hash=None):
        if not isinstance(method, str):
            raise RpcError(-32602, "invalid params: method must be a string")
        args = bytes_param(data or "0x", "data")
        try:
            result = self.chain.with_state(opt_hash(block_hash), lambda runtime: self._runtime_api(runtime, method, args))
        except KeyError as exc:
            raise RpcError(-32000, f"Client error: Execution failed: {exc.args[0]}") from None
        return hex0x(result)

    def _runtime_api(self, runtime, method: str, args: bytes) -> bytes:
        """The runtime APIs the node answers itself (metadata, fees, transaction validity); the runtime the rest."""
        if method == "Metadata_metadata":
            return Bytes.encode(self.chain.metadata(14))
        if method == "Metadata_metadata_at_version":
            version = U32.decode(args)
            return Option(Bytes).encode(self.chain.metadata(version) if version in (14, 15) else None)
        if method == "Metadata_metadata_versions":
            return Sequence(U32).encode([14, 15])
        if method in ("TransactionPaymentApi_query_info", "TransactionPaymentApi_query_fee_details"):
            return payment_api_call(runtime, method, args)
        if method == "TaggedTransactionQueue_validate_transaction":
            return transaction_validity(self.chain, args)
        return runtime.api_call(method, args)


def _storage_changes(block_hash: str, changes: dict[bytes, bytes | None], keys: tuple[bytes, ...]) -> dict:
    """A state_storage notification's result: `keys` (sorted) with their new values."""
    return {"block": block_hash, "changes": [[hex0x(k), hex0x(changes[k]) if changes[k] is not None else None]
                                             for k in keys]}
