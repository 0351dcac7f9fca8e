"""chain_*: block hashes, headers and bodies, and subscriptions to new, all and finalized heads (every sealed block
is final, so the three see the same blocks)."""

from __future__ import annotations

import json
from functools import partial

from ..chain import BlockInfo, header_json, hex0x
from .connection import Connection, notification
from .group import MethodGroup, Notifier
from .params import RpcError, opt_hash

HEAD_METHODS = {"newHead": "chain_newHead", "allHead": "chain_allHead", "finalizedHead": "chain_finalizedHead"}


class ChainMethods(MethodGroup):
    aliases = {
        "chain_getHead": "chain_getBlockHash",
        "chain_getFinalisedHead": "chain_getFinalizedHead",
        "chain_subscribeNewHead": "chain_subscribeNewHeads",
        "chain_unsubscribeNewHead": "chain_unsubscribeNewHeads",
        "chain_subscribeFinalisedHeads": "chain_subscribeFinalizedHeads",
        "chain_unsubscribeFinalisedHeads": "chain_unsubscribeFinalizedHeads",
    }

    def rpc_chain_getBlockHash(self, conn, number=None):
        if isinstance(number, list):
            return [self.rpc_chain_getBlockHash(conn, n) for n in number]
        if number is None:
            return hex0x(self.chain.head_hash)
        if isinstance(number, str):
            number = int(number, 16) if number.startswith("0x") else int(number)
        if not isinstance(number, int) or isinstance(number, bool) or not 0 <= number < 1 << 32:
            raise RpcError(-32602, "invalid params: block number must be an integer in [0, 2^32)")
        found = self.chain.block(number)
        return hex0x(found[0]) if found else None

    def _block_at(self, block_hash):
        number = self.chain.number_of(opt_hash(block_hash))
        return self.chain.block(number)

    def rpc_chain_getHeader(self, conn, block_hash=None):
        try:
            found = self._block_at(block_hash)
        except LookupError:
            return None
        return header_json(found[1]) if found else None

    def rpc_chain_getBlock(self, conn, block_hash=None):
        try:
            found = self._block_at(block_hash)
        except LookupError:
            return None
        if not found:
            return None
        return {"block": {"header": header_json(found[1]), "extrinsics": [hex0x(x) for x in found[2]]},
                "justifications": None}

    def rpc_chain_getFinalizedHead(self, conn):
        return hex0x(self.chain.head_hash)

    def _head_subscription(self, conn, kind):
        sub_id = self.server.subscribe(conn, kind)
        conn.notify(sub_id, HEAD_METHODS[kind], header_json(self.chain.head_header))
        return sub_id

    # A subscription's first notification is queued during the call, after the reply's place in the outbox.
    def rpc_chain_subscribeNewHeads(self, conn):
        return self._head_subscription(conn, "newHead")

    def rpc_chain_subscribeAllHeads(self, conn):
        return self._head_subscription(conn, "allHead")

    def rpc_chain_subscribeFinalizedHeads(self, conn):
        return self._head_subscription(conn, "finalizedHead")

    def rpc_chain_unsubscribeNewHeads(self, conn, sub_id): return self.server.unsubscribe(conn, sub_id)
    def rpc_chain_unsubscribeAllHeads(self, conn, sub_id): return self.server.unsubscribe(conn, sub_id)
    def rpc_chain_unsubscribeFinalizedHeads(self, conn, sub_id): return self.server.unsubscribe(conn, sub_id)

    def notifiers(self, block: BlockInfo) -> dict[str, Notifier]:
        head_json = json.dumps(header_json(block.header))  # once per block, however many subscribers
        return {kind: partial(_send_head, method, head_json) for kind, method in HEAD_METHODS.items()}


def _send_head(method: str, head_json: str, conn: Connection, sub_id: str, _data: None) -> None:
    conn.send(notification(sub_id, method, head_json))
