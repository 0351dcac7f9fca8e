"""Storage queries of the new JSON-RPC interface (chainHead_v1_storage, archive_v1_storage): the items a client asks
for, and the items of the answer, read from the state of one block."""

from __future__ import annotations

import hashlib
import heapq
from dataclasses import dataclass
from typing import Any, Iterator

from ...codec.hashing import blake2_256
from ...codec.scale import encode_compact
from ...runtime.version import RuntimeVersion
from ..chain import Chain, hex0x
from .new_api import hex_param
from .params import RpcError

SINGLE = ("value", "hash", "closestDescendantMerkleValue")
CODE = b":code"
DESCENDANTS = ("descendantsValues", "descendantsHashes")


@dataclass(frozen=True)
class StorageQuery:
    key: bytes
    type: str
    start_after: bytes | None = None  # descendants only: resume after this key (archive's paginationStartKey)

    def results(self, storage: Any, after: bytes | None = None) -> Iterator[tuple[bytes, dict]]:
        """(key, answer item) in key order; descendants from after `after` (or `start_after`) on."""
        if self.type in DESCENDANTS:
            field = "value" if self.type == "descendantsValues" else "hash"
            for key, value in storage.iter_prefix(self.key, self.start_after if after is None else after):
                yield key, {"key": hex0x(key), field: hex0x(value if field == "value" else blake2_256(value))}
        elif self.type == "closestDescendantMerkleValue":
            merkle = subtree_commitment(storage, self.key)
            if merkle is not None:
                yield self.key, {"key": hex0x(self.key), "closestDescendantMerkleValue": hex0x(merkle)}
        else:
            value = storage.get(self.key)
            if value is not None:
                answer = value if self.type == "value" else blake2_256(value)
                yield self.key, {"key": hex0x(self.key), self.type: hex0x(answer)}


class WithCode:
    """A block's state with the `:code` entry every Substrate chain has: polkadot-api keys the runtimes it knows by
    its hash and cannot follow a chain without it. The runtime here is Python, not Wasm, so the entry identifies the
    running one instead (its version record and the hash of its metadata): it changes exactly when what clients
    learn from the runtime does."""

    def __init__(self, storage: Any, code: bytes) -> None:
        self.storage, self.code = storage, code

    def get(self, key: bytes) -> bytes | None:
        return self.code if key == CODE else self.storage.get(key)

    def iter_prefix(self, prefix: bytes, start_after: bytes | None = None) -> Iterator[tuple[bytes, bytes]]:
        code = [(CODE, self.code)] if CODE.startswith(prefix) and (start_after is None or CODE > start_after) else []
        rest = ((k, v) for k, v in self.storage.iter_prefix(prefix, start_after) if k != CODE)
        return heapq.merge(rest, code, key=lambda item: item[0])


def block_state(chain: Chain, block_hash: bytes) -> WithCode:
    """The state of a block as the new interface reads it."""
    code = RuntimeVersion.encode(chain.runtime.version()) + blake2_256(chain.metadata(15))
    return WithCode(chain.storage_at(block_hash), code)


def subtree_commitment(storage: Any, prefix: bytes) -> bytes | None:
    """What this node answers for closestDescendantMerkleValue: it keeps no Merkle trie, so instead of a trie node's
    Merkle value it gives a hash of every entry at or below `prefix` (each key and value, length-prefixed, in key
    order). Like a Merkle value it is equal exactly when that part of the state is; None when it is empty."""
    hasher = hashlib.blake2b(digest_size=32)
    found = False
    for key, value in storage.iter_prefix(prefix):
        hasher.update(encode_compact(len(key)) + key + encode_compact(len(value)) + value)
        found = True
    return hasher.digest() if found else None


def parse_items(items: Any, *, paginated: bool = False) -> list[StorageQuery]:
    """The `items` parameter; `paginated` allows archive's paginationStartKey on descendants items."""
    if not isinstance(items, list):
        raise RpcError(-32602, "invalid params: items must be an array of {key, type} objects")
    allowed = {"key", "type", "paginationStartKey"} if paginated else {"key", "type"}
    queries = []
    for item in items:
        if not isinstance(item, dict) or not {"key", "type"} <= set(item) or not set(item) <= allowed:
            raise RpcError(-32602, f"invalid params: each item must be an object with the fields {sorted(allowed)}"
                                   " (key and type required)")
        kind = item["type"]
        if kind not in SINGLE and kind not in DESCENDANTS:
            raise RpcError(-32602, f"invalid params: item type must be one of {', '.join(SINGLE + DESCENDANTS)}")
        start = item.get("paginationStartKey")
        if start is not None and kind not in DESCENDANTS:
            raise RpcError(-32602, "invalid params: paginationStartKey applies to descendants items only")
        queries.append(StorageQuery(hex_param(item["key"], "item key"), kind,
                                    None if start is None else hex_param(start, "paginationStartKey")))
    return queries


class StorageCursor:
    """Where an answer to several queries has got to, so that it can go on in pages. Each page reads the block's
    state afresh (resuming after the last key it gave): nothing stays open between pages."""

    def __init__(self, queries: list[StorageQuery]) -> None:
        self.queries = queries
        self._index = 0
        self._after: bytes | None = None

    def page(self, storage: Any, limit: int | None = None) -> tuple[list[dict], bool]:
        """The next answer items (at most `limit`) and whether they are the last ones."""
        items: list[dict] = []
        while self._index < len(self.queries):
            for key, item in self.queries[self._index].results(storage, self._after):
                if limit is not None and len(items) == limit:
                    return items, False  # stopped before an item that exists: there is more
                items.append(item)
                self._after = key
            self._index += 1
            self._after = None
        return items, True
