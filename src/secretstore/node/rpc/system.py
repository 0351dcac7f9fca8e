"""system_* and rpc_methods: the node's identity, health and account nonces."""

from __future__ import annotations

from .group import MethodGroup
from .params import account_id

VERSION = "0.1.0"


class SystemMethods(MethodGroup):
    def rpc_system_name(self, conn): return "secretstore-node"
    def rpc_system_version(self, conn): return VERSION
    def rpc_system_chain(self, conn): return self.chain.chain_name
    def rpc_system_chainType(self, conn): return "Development"
    def rpc_system_properties(self, conn): return {"ss58Format": 42, "tokenDecimals": 12, "tokenSymbol": "UNIT"}
    def rpc_system_health(self, conn): return {"peers": 0, "isSyncing": False, "shouldHavePeers": False}
    def rpc_system_peers(self, conn): return []

    def rpc_system_accountNextIndex(self, conn, account):
        return self.chain.next_nonce(account_id(account))

    def rpc_rpc_methods(self, conn):
        return {"version": 1, "methods": sorted(self.server.methods)}
