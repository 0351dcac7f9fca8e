"""transactionWatch_v1_* (submit a transaction and watch it into a final block) and transaction_v1_* (broadcast one
until told to stop), as paritytech/json-rpc-interface-spec describes them, over the node's own pool.

Like author_submitAndWatchExtrinsic, an accepted transaction is answered once the chain has written it. A block is
final when sealed, so an included transaction's bestChainBlockIncluded is followed at once by its finalized. This
node has no peers: "broadcasting" is keeping the transaction in its pool until a block takes it."""

from __future__ import annotations

import json
from weakref import WeakKeyDictionary

from ...codec.hashing import blake2_256
from ..chain import MAX_POOL, BlockInfo, hex0x
from .connection import Connection, notification
from .group import MethodGroup
from .new_api import hex_param, operation_id, str_param
from .params import RpcError

BROADCASTS_PER_CONNECTION = 16  # the spec guarantees 4; one more than the limit is answered with null
EVENT = "transactionWatch_v1_watchEvent"
KIND = "transactionWatch"        # in the server's subscription table, with the watched extrinsic's hash


class TransactionMethods(MethodGroup):
    def __init__(self, server) -> None:
        super().__init__(server)
        self.production = server.production
        self.watchers: dict[bytes, list[tuple[Connection, str]]] = {}  # extrinsic hash -> its watchers
        # a connection's active broadcasts; an HTTP request's go with its Connection object
        self.broadcasts: WeakKeyDictionary[Connection, set[str]] = WeakKeyDictionary()

    # ------------------------------------------------------------------------------------------------ watch
    def rpc_transactionWatch_v1_submitAndWatch(self, conn, transaction):
        self.server.check_can_subscribe(conn)  # before submitting: a transaction nobody can watch is refused whole
        raw = hex_param(transaction, "transaction")
        already = blake2_256(raw)
        if already in self.chain.pool:  # accepted (and answered) before: watch it where it is
            return self._watch(conn, already)
        try:
            ext_hash = self.chain.submit(raw, durable=False)
        except ValueError as exc:  # ExtrinsicError or CodecError: bytes that are not a valid transaction
            sub = self.server.subscribe(conn, KIND)
            del conn.subscriptions[sub]  # over before it starts
            dropped = len(self.chain.pool) >= MAX_POOL
            conn.notify(sub, EVENT, {"event": "dropped" if dropped else "invalid", "error": str(exc)})
            return sub
        return self.production.after_write(ext_hash, self._watch(conn, ext_hash))

    def _watch(self, conn: Connection, ext_hash: bytes) -> str:
        sub = self.server.subscribe(conn, KIND, ext_hash)
        self.watchers.setdefault(ext_hash, []).append((conn, sub))
        conn.notify(sub, EVENT, {"event": "validated"})
        return sub

    def rpc_transactionWatch_v1_unwatch(self, conn, subscription):
        sub = str_param(subscription, "subscription")
        found = conn.subscriptions.get(sub)
        if found is None or found[0] != KIND:
            raise RpcError(-32602, "invalid params: no such transactionWatch subscription")
        del conn.subscriptions[sub]
        self._forget(found[1], lambda watcher: watcher[1] == sub and watcher[0] is conn)
        return None  # the transaction stays in the pool: submitting cannot be undone

    def after_block(self, block: BlockInfo) -> None:
        # after the block's own notifications (heads, follow events): a watcher learns of its block after the block
        if not self.watchers:
            return
        block_hash = hex0x(block.hash)
        for index, ext_hash in enumerate(block.included):
            watchers = self.watchers.pop(ext_hash, None)
            if watchers:
                where = {"hash": block_hash, "index": index}
                events = (json.dumps({"event": "bestChainBlockIncluded", "block": where}),
                          json.dumps({"event": "finalized", "block": where}))
                for conn, sub in watchers:
                    if conn.subscriptions.pop(sub, None) is not None:
                        for event in events:
                            conn.send(notification(sub, EVENT, event))
        for ext_hash, reason in block.dropped:  # refused when applied (stale, or no longer able to pay)
            for conn, sub in self.watchers.pop(ext_hash, ()):
                if conn.subscriptions.pop(sub, None) is not None:
                    conn.notify(sub, EVENT, {"event": "invalid", "error": reason})

    # -------------------------------------------------------------------------------------------- broadcast
    def rpc_transaction_v1_broadcast(self, conn, transaction):
        raw = hex_param(transaction, "transaction")
        active = self.broadcasts.setdefault(conn, set())
        if len(active) >= BROADCASTS_PER_CONNECTION:
            return None
        op = operation_id()
        active.add(op)  # an invalid transaction's broadcast counts too, until stopped
        try:
            ext_hash = self.chain.submit(raw, durable=False)
        except ValueError:
            return op  # the spec: an invalid transaction is silently not broadcast
        return self.production.after_write(ext_hash, op)

    def rpc_transaction_v1_stop(self, conn, operationId):
        op = str_param(operationId, "operationId")
        active = self.broadcasts.get(conn)
        if active is None or op not in active:
            raise RpcError(-32602, "invalid params: no active broadcast with this operation id on this connection")
        active.discard(op)
        return None

    # --------------------------------------------------------------------------------------------- plumbing
    def _forget(self, ext_hash: bytes, which) -> None:
        watchers = self.watchers.get(ext_hash)
        if watchers is not None:
            watchers[:] = [w for w in watchers if not which(w)]
            if not watchers:
                del self.watchers[ext_hash]

    def closed(self, conn: Connection) -> None:
        self.broadcasts.pop(conn, None)
        for ext_hash in [h for h, watchers in self.watchers.items() if any(w[0] is conn for w in watchers)]:
            self._forget(ext_hash, lambda watcher: watcher[0] is conn)
