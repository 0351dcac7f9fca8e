"""author_*: submitting transactions (answered once the chain has written them), watching them into a block, the
pool's contents, and TaggedTransactionQueue's validity as state_call answers it."""

from __future__ import annotations

import json

from ...codec.primitives import AccountId32
from ...codec.scale import U32, U64, Bytes, Reader, Sequence, decode_compact
from ...runtime import InvalidTransaction
from ..chain import BlockInfo, Chain, hex0x
from ..extrinsic import ExtrinsicError
from .connection import Connection, notification
from .group import MethodGroup
from .params import bytes_param


class AuthorMethods(MethodGroup):
    def __init__(self, server) -> None:
        super().__init__(server)
        self.production = server.production
        self.watchers: dict[bytes, list[tuple[Connection, str]]] = {}  # extrinsic hash -> its watchers

    # A submission is answered once the chain has written it (with the next block or pool flush, one disk write for
    # all submissions since the last one): an accepted transaction survives a crash.
    def rpc_author_submitExtrinsic(self, conn, extrinsic):
        ext_hash = self.chain.submit(bytes_param(extrinsic, "extrinsic"), durable=False)
        return self.production.after_write(ext_hash, hex0x(ext_hash))

    def rpc_author_submitAndWatchExtrinsic(self, conn, extrinsic):
        self.server.check_can_subscribe(conn)  # before submitting: a transaction nobody can watch is refused whole
        ext_hash = self.chain.submit(bytes_param(extrinsic, "extrinsic"), durable=False)
        sub_id = self.server.subscribe(conn, "extrinsic", ext_hash)
        self.watchers.setdefault(ext_hash, []).append((conn, sub_id))
        conn.notify(sub_id, "author_extrinsicUpdate", "ready")
        return self.production.after_write(ext_hash, sub_id)

    def rpc_author_unwatchExtrinsic(self, conn, sub_id):
        found = conn.subscriptions.pop(str(sub_id), None)
        if found is None:
            return False
        watchers = self.watchers.get(found[1], [])
        watchers[:] = [w for w in watchers if w[1] != str(sub_id)]
        return True

    def rpc_author_pendingExtrinsics(self, conn):
        return [hex0x(tx.extrinsic.encoded) for tx in self.chain.pool.values()]

    def after_block(self, block: BlockInfo) -> None:
        # after the heads and storage changes of the block: a watcher learns of its block after the block itself
        if not self.watchers:
            return
        block_hash = hex0x(block.hash)
        in_block = json.dumps({"inBlock": block_hash})
        finalized = json.dumps({"finalized": block_hash})
        for ext_hash in block.included:
            for conn, sub_id in self.watchers.pop(ext_hash, ()):
                conn.send(notification(sub_id, "author_extrinsicUpdate", in_block))
                conn.send(notification(sub_id, "author_extrinsicUpdate", finalized))
        for ext_hash, _ in block.dropped:
            for conn, sub_id in self.watchers.pop(ext_hash, ()):
                conn.notify(sub_id, "author_extrinsicUpdate", "invalid")

    def closed(self, conn: Connection) -> None:
        for watchers in self.watchers.values():
            watchers[:] = [w for w in watchers if w[0] is not conn]


def transaction_validity(chain: Chain, args: bytes) -> bytes:
    """TransactionValidity = Result<ValidTransaction, TransactionValidityError> for (source, tx, block_hash)."""
    r = Reader(args)
    r.byte()  # TransactionSource
    start = r.pos
    r.read(decode_compact(r))
    uxt = args[start:r.pos]
    try:
        ext = chain.check(uxt)
        valid = chain.runtime.validate_transaction(ext.signer, ext.nonce, ext.tip, ext.call, len(uxt))
    except (ExtrinsicError, InvalidTransaction):
        # Err(Invalid(Custom(0))): the precise reason travels in the RPC error of author_submitExtrinsic
        return b"\x01\x00\x07\x00"
    provides = [AccountId32.encode(ext.signer) + U32.encode(ext.nonce)]
    requires = [] if valid.requires is None else [AccountId32.encode(ext.signer) + U32.encode(ext.nonce - 1)]
    return (b"\x00" + U64.encode(valid.priority) + Sequence(Bytes).encode(requires) + Sequence(Bytes).encode(provides)
            + U64.encode(2**64 - 1) + b"\x01")
