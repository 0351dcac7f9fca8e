"""chainHead_v1_*: following the head of the chain with pinned blocks, and the operations on a pinned block (header,
body, storage, runtime call), as paritytech/json-rpc-interface-spec describes them.

Every block this node seals is final at once, so a follow subscription reports each block as newBlock, then
bestBlockChanged, then finalized (a block is reported new before it is reported final), and never prunes one.
Operations are answered within the call (their events follow the "started" reply); only a storage operation whose
answer is longer than a page outlives its call, waiting for chainHead_v1_continue."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ..chain import BlockInfo, Header, hex0x
from .connection import Connection, notification
from .group import MethodGroup, Notifier
from .new_api import (bool_param, child_trie_param, hash_param, hex_param, operation_id, runtime_call, runtime_spec,
                      str_param)
from .params import RpcError
from .storage_items import StorageCursor, block_state, parse_items

FOLLOWS_PER_CONNECTION = 2   # the spec's guaranteed minimum; one more is refused with -32800
OPERATIONS_PER_FOLLOW = 16   # ditto: a storage item counts as one operation, a body or call as one
PINNED_BLOCKS = 512          # a subscription that would pin more is stopped (the spec leaves the number to us)
INITIAL_FINALIZED = 16       # blocks the initialized event reports (Substrate's number)
STORAGE_PAGE = 64            # answer items per operationStorageItems before waiting for chainHead_v1_continue
EVENT = "chainHead_v1_followEvent"
KIND = "chainHead"           # in the server's subscription table
LIMIT_REACHED = {"result": "limitReached"}


@dataclass(eq=False)
class StorageOperation:
    block_hash: bytes
    cursor: StorageCursor
    slots: int  # the items it holds of its subscription's operations


@dataclass(eq=False)
class Follow:
    """One chainHead_v1_follow subscription: the blocks it has pinned and its storage operations that wait for
    chainHead_v1_continue (the only operations that outlive their call)."""

    with_runtime: bool
    pinned: set[bytes]
    operations: dict[str, StorageOperation] = field(default_factory=dict)

    def busy(self) -> int:
        return sum(op.slots for op in self.operations.values())


class ChainHeadMethods(MethodGroup):
    def __init__(self, server) -> None:
        super().__init__(server)
        self._spec = runtime_spec(self.chain)  # the runtime last reported: newRuntime is set when it changes

    # -------------------------------------------------------------------------------------------- following
    def rpc_chainHead_v1_follow(self, conn, withRuntime):
        with_runtime = bool_param(withRuntime, "withRuntime")
        if not conn.websocket:
            raise RpcError(-32601, "Subscriptions are only available over WebSocket")
        if sum(kind == KIND for kind, _ in conn.subscriptions.values()) >= FOLLOWS_PER_CONNECTION:
            raise RpcError(-32800, f"Maximum number of chainHead_v1_follow subscriptions ({FOLLOWS_PER_CONNECTION})"
                                   " reached for this connection")
        head = self.chain.head_hash
        # the finalized block and up to INITIAL_FINALIZED - 1 ancestors, all pinned, as Substrate reports them:
        # dedot submits a transaction only once the finalized block's parent is among the pinned blocks
        first = max(0, self.chain.head_number - INITIAL_FINALIZED + 1)
        ancestors = (self.chain.block(n) for n in range(first, self.chain.head_number))
        finalized = [found[0] for found in ancestors if found is not None] + [head]
        sub = self.server.subscribe(conn, KIND, Follow(with_runtime, set(finalized)))
        initialized: dict[str, Any] = {"event": "initialized", "finalizedBlockHashes": [hex0x(h) for h in finalized]}
        if with_runtime:
            initialized["finalizedBlockRuntime"] = {"type": "valid", "spec": self._spec}
        # queued after the reply's place: the subscription id reaches the client before its events
        conn.notify(sub, EVENT, initialized)
        conn.notify(sub, EVENT, {"event": "bestBlockChanged", "bestBlockHash": hex0x(head)})
        return sub

    def rpc_chainHead_v1_unfollow(self, conn, followSubscription):
        if self._follow(conn, followSubscription) is not None:
            del conn.subscriptions[followSubscription]
        return None

    def rpc_chainHead_v1_unpin(self, conn, followSubscription, hashOrHashes):
        if isinstance(hashOrHashes, list):
            hashes = [hash_param(h) for h in hashOrHashes]
            if len(set(hashes)) != len(hashes):
                raise RpcError(-32804, "The same block hash is given more than once")
        else:
            hashes = [hash_param(hashOrHashes, "hashOrHashes")]
        follow = self._follow(conn, followSubscription)
        if follow is None:
            return None
        if not follow.pinned.issuperset(hashes):  # all or nothing
            raise RpcError(-32801, "Invalid block hash: not reported by this subscription, or already unpinned")
        follow.pinned.difference_update(hashes)
        return None

    def notifiers(self, block: BlockInfo) -> dict[str, Notifier]:
        events: dict[bool, list[str]] = {}  # with runtime -> the block's three events, encoded once

        def encoded(with_runtime: bool) -> list[str]:
            if not events:
                spec = runtime_spec(self.chain)
                new_runtime = None if spec == self._spec else {"type": "valid", "spec": spec}
                self._spec = spec
                block_hash = hex0x(block.hash)
                new_block = {"event": "newBlock", "blockHash": block_hash,
                             "parentBlockHash": hex0x(block.header["parent_hash"])}
                rest = [json.dumps({"event": "bestBlockChanged", "bestBlockHash": block_hash}),
                        json.dumps({"event": "finalized", "finalizedBlockHashes": [block_hash],
                                    "prunedBlockHashes": []})]
                events[False] = [json.dumps(new_block)] + rest
                events[True] = [json.dumps({**new_block, "newRuntime": new_runtime})] + rest
            return events[with_runtime]

        def notify(conn: Connection, sub: str, follow: Follow) -> None:
            if len(follow.pinned) >= PINNED_BLOCKS:  # the client does not unpin: it has to follow anew
                del conn.subscriptions[sub]
                conn.send(notification(sub, EVENT, '{"event":"stop"}'))
                return
            follow.pinned.add(block.hash)
            for event in encoded(follow.with_runtime):
                conn.send(notification(sub, EVENT, event))

        return {KIND: notify}

    # ------------------------------------------------------------------------------------------- operations
    def rpc_chainHead_v1_header(self, conn, followSubscription, hash):
        block_hash = hash_param(hash)
        follow = self._follow(conn, followSubscription)
        if follow is None:
            return None
        self._check_pinned(follow, block_hash)
        return hex0x(Header.encode(self.chain.header_of(block_hash)))

    def rpc_chainHead_v1_body(self, conn, followSubscription, hash):
        block_hash = hash_param(hash)
        follow = self._operation_room(conn, followSubscription, block_hash)
        if follow is None:
            return LIMIT_REACHED
        op = operation_id()
        _, _, extrinsics = self.chain.block(self.chain.number_of(block_hash))  # type: ignore[misc]
        conn.notify(followSubscription, EVENT, {"event": "operationBodyDone", "operationId": op,
                                                "value": [hex0x(x) for x in extrinsics]})
        return {"result": "started", "operationId": op}

    def rpc_chainHead_v1_call(self, conn, followSubscription, hash, function, callParameters):
        block_hash = hash_param(hash)
        function = str_param(function, "function")
        parameters = hex_param(callParameters, "callParameters")
        follow = self._follow(conn, followSubscription)
        if follow is None:
            return LIMIT_REACHED
        if not follow.with_runtime:
            raise RpcError(-32802, "chainHead_v1_call needs a subscription that follows with withRuntime true")
        if self._operation_room(conn, followSubscription, block_hash) is None:
            return LIMIT_REACHED
        op = operation_id()
        ok, answer = runtime_call(self.server, block_hash, function, parameters)
        conn.notify(followSubscription, EVENT, {"event": "operationCallDone", "operationId": op, "output": answer}
                    if ok else {"event": "operationError", "operationId": op, "error": answer})
        return {"result": "started", "operationId": op}

    def rpc_chainHead_v1_storage(self, conn, followSubscription, hash, items, childTrie):
        block_hash = hash_param(hash)
        queries = parse_items(items)
        child_trie = child_trie_param(childTrie)
        follow = self._follow(conn, followSubscription)
        if follow is None:
            return LIMIT_REACHED
        self._check_pinned(follow, block_hash)
        room = OPERATIONS_PER_FOLLOW - follow.busy()
        if queries and room <= 0:
            return LIMIT_REACHED
        accepted = queries[:room]
        op = operation_id()
        # nothing is ever found in a child trie: this chain has none
        operation = StorageOperation(block_hash, StorageCursor(accepted if child_trie is None else []), len(accepted))
        self._next_page(conn, followSubscription, follow, op, operation)
        return {"result": "started", "operationId": op, "discardedItems": len(queries) - len(accepted)}

    def rpc_chainHead_v1_continue(self, conn, followSubscription, operationId):
        operation_id_ = str_param(operationId, "operationId")
        follow = self._follow(conn, followSubscription)
        # an operation not waiting here is over (done or stopped): continuing it has no effect
        operation = follow.operations.get(operation_id_) if follow is not None else None
        if operation is not None:
            self._next_page(conn, followSubscription, follow, operation_id_, operation)  # type: ignore[arg-type]
        return None

    def rpc_chainHead_v1_stopOperation(self, conn, followSubscription, operationId):
        operation_id_ = str_param(operationId, "operationId")
        follow = self._follow(conn, followSubscription)
        if follow is not None:
            follow.operations.pop(operation_id_, None)
        return None

    # ---------------------------------------------------------------------------------------------- helpers
    def _follow(self, conn: Connection, sub: Any) -> Follow | None:
        """The live follow subscription `sub` of `conn`; None when it is unknown, unfollowed or stopped (stale)."""
        found = conn.subscriptions.get(str_param(sub, "followSubscription"))
        return found[1] if found is not None and found[0] == KIND else None

    @staticmethod
    def _check_pinned(follow: Follow, block_hash: bytes) -> None:
        if block_hash not in follow.pinned:
            raise RpcError(-32801, "Invalid block hash: not reported by this subscription, or already unpinned")

    def _operation_room(self, conn: Connection, sub: Any, block_hash: bytes) -> Follow | None:
        """The subscription, if it is live and has room for one more operation on the pinned block."""
        follow = self._follow(conn, sub)
        if follow is None:
            return None
        self._check_pinned(follow, block_hash)
        return follow if follow.busy() < OPERATIONS_PER_FOLLOW else None

    def _next_page(self, conn: Connection, sub: str, follow: Follow, op: str, operation: StorageOperation) -> None:
        items, done = operation.cursor.page(block_state(self.chain, operation.block_hash), STORAGE_PAGE)
        if items:
            conn.notify(sub, EVENT, {"event": "operationStorageItems", "operationId": op, "items": items})
        if done:
            follow.operations.pop(op, None)
            conn.notify(sub, EVENT, {"event": "operationStorageDone", "operationId": op})
        else:
            follow.operations[op] = operation
            conn.notify(sub, EVENT, {"event": "operationWaitingForContinue", "operationId": op})
