"""archive_v1_*: any block of the chain's history (this node keeps all of it, and every block is final when sealed):
heights and hashes, headers, bodies, runtime calls, storage and storage differences, as
paritytech/json-rpc-interface-spec describes them.

archive_v1_storage and archive_v1_storageDiff answer through notifications of an operation id; this node sends all of
them within the call, so the operation is over when its id reaches the client (stopping it has nothing to stop)."""

from __future__ import annotations

from typing import Any, Iterator

from ...codec.hashing import blake2_256
from ..chain import Header, hex0x
from .connection import Connection
from .group import MethodGroup
from .new_api import child_trie_param, hash_param, hex_param, runtime_call, str_param
from .params import RpcError
from .storage_items import StorageCursor, block_state, parse_items

STORAGE_EVENT = "archive_v1_storageEvent"
DIFF_EVENT = "archive_v1_storageDiffEvent"


class ArchiveMethods(MethodGroup):
    def rpc_archive_v1_genesisHash(self, conn):
        return hex0x(self.chain.genesis_hash)

    def rpc_archive_v1_finalizedHeight(self, conn):
        return self.chain.head_number

    def rpc_archive_v1_hashByHeight(self, conn, height):
        if not isinstance(height, int) or isinstance(height, bool) or height < 0:
            raise RpcError(-32602, "invalid params: height must be a non-negative integer")
        found = self.chain.block(height) if height <= self.chain.head_number else None
        return [hex0x(found[0])] if found else []

    def rpc_archive_v1_header(self, conn, hash):
        block_hash = hash_param(hash)
        if self._number(block_hash) is None:
            return None
        return hex0x(Header.encode(self.chain.header_of(block_hash)))

    def rpc_archive_v1_body(self, conn, hash):
        number = self._number(hash_param(hash))
        if number is None:
            return None
        _, _, extrinsics = self.chain.block(number)  # type: ignore[misc]
        return [hex0x(x) for x in extrinsics]

    def rpc_archive_v1_call(self, conn, hash, function, callParameters):
        block_hash = hash_param(hash)
        function = str_param(function, "function")
        parameters = hex_param(callParameters, "callParameters")
        if self._number(block_hash) is None:
            return None
        ok, answer = runtime_call(self.server, block_hash, function, parameters)
        return {"success": True, "value": answer} if ok else {"success": False, "error": answer}

    # ---------------------------------------------------------------------------------------------- storage
    def rpc_archive_v1_storage(self, conn, hash, items, childTrie):
        block_hash = hash_param(hash)
        queries = parse_items(items, paginated=True)
        child_trie = child_trie_param(childTrie)
        sub = self._operation(conn)
        if self._number(block_hash) is None:
            conn.notify(sub, STORAGE_EVENT, {"event": "storageError", "error": f"unknown block {hex0x(block_hash)}"})
            return sub
        # nothing is ever found in a child trie: this chain has none
        found, _ = StorageCursor(queries if child_trie is None else []).page(block_state(self.chain, block_hash))
        for item in found:
            conn.notify(sub, STORAGE_EVENT, {"event": "storage", **item})
        conn.notify(sub, STORAGE_EVENT, {"event": "storageDone"})
        return sub

    def rpc_archive_v1_stopStorage(self, conn, operationId):
        str_param(operationId, "operationId")
        return None  # every operation is over by the time its id is known

    def rpc_archive_v1_storageDiff(self, conn, hash, items=None, previousHash=None):
        block_hash = hash_param(hash)
        wanted = [(b"", "value", None)] if items is None else _diff_items(items)
        previous = None if previousHash is None else hash_param(previousHash, "previousHash")
        sub = self._operation(conn)
        number = self._number(block_hash)
        before = None if number is None else number - 1 if previous is None else self._number(previous)
        # one chain without forks: an ancestor is any earlier block
        error = ("unknown block" if number is None else "the genesis block has no parent" if before == -1
                 else "previousHash is not an earlier block of this chain" if before is None or before >= number
                 else None)
        if error is not None:
            conn.notify(sub, DIFF_EVENT, {"event": "storageDiffError", "error": error})
            return sub
        old, new = self.chain.storage_at(self.chain.block(before)[0]), self.chain.storage_at(block_hash)  # type: ignore[index]
        for prefix, return_type, child_trie in wanted:
            if child_trie is not None:
                continue  # no child tries: nothing differs in one
            for key, kind, value in storage_diff(old, new, prefix):
                answer = value if return_type == "value" else blake2_256(value)
                conn.notify(sub, DIFF_EVENT, {"event": "storageDiff", "key": hex0x(key), return_type: hex0x(answer),
                                              "type": kind})
        conn.notify(sub, DIFF_EVENT, {"event": "storageDiffDone"})
        return sub

    def rpc_archive_v1_stopStorageDiff(self, conn, operationId):
        str_param(operationId, "operationId")
        return None

    # ---------------------------------------------------------------------------------------------- helpers
    def _number(self, block_hash: bytes | None) -> int | None:
        try:
            return None if block_hash is None else self.chain.number_of(block_hash)
        except LookupError:
            return None

    def _operation(self, conn: Connection) -> str:
        """An id for an operation answered in notifications (WebSocket only), over before the call returns."""
        sub = self.server.subscribe(conn, "archive")
        del conn.subscriptions[sub]
        return sub


def _diff_items(items: Any) -> list[tuple[bytes, str, bytes | None]]:
    """archive_v1_storageDiff's items: (key prefix, "value" or "hash", child trie key or None)."""
    if not isinstance(items, list):
        raise RpcError(-32602, "invalid params: items must be an array of {key?, returnType, childTrieKey?} objects")
    wanted = []
    for item in items:
        if not isinstance(item, dict) or "returnType" not in item or not set(item) <= {"key", "returnType",
                                                                                         "childTrieKey"}:
            raise RpcError(-32602, "invalid params: each item must be an object {key?, returnType, childTrieKey?}")
        if item["returnType"] not in ("value", "hash"):
            raise RpcError(-32602, "invalid params: returnType must be value or hash")
        child_trie = item.get("childTrieKey")
        wanted.append((hex_param(item.get("key", ""), "key"), item["returnType"],
                       None if child_trie is None else hex_param(child_trie, "childTrieKey")))
    return wanted


def storage_diff(old: Any, new: Any, prefix: bytes) -> Iterator[tuple[bytes, str, bytes]]:
    """(key, "added" / "modified" / "deleted", value) for every entry under `prefix` that differs from `old` to
    `new`, in key order: a walk of both sorted states side by side. A deleted entry comes with its last value."""
    olds, news = iter(old.iter_prefix(prefix)), iter(new.iter_prefix(prefix))
    o, n = next(olds, None), next(news, None)
    while o is not None or n is not None:
        if n is None or (o is not None and o[0] < n[0]):
            yield o[0], "deleted", o[1]  # type: ignore[index]
            o = next(olds, None)
        elif o is None or n[0] < o[0]:
            yield n[0], "added", n[1]
            n = next(news, None)
        else:
            if o[1] != n[1]:
                yield n[0], "modified", n[1]
            o, n = next(olds, None), next(news, None)
