"""chainSpec_v1_*: the chain's name, genesis hash and properties, which never change while the node runs."""

from __future__ import annotations

from ..chain import hex0x
from .group import MethodGroup


class ChainSpecMethods(MethodGroup):
    def rpc_chainSpec_v1_chainName(self, conn):
        return self.chain.chain_name

    def rpc_chainSpec_v1_genesisHash(self, conn):
        return hex0x(self.chain.genesis_hash)

    def rpc_chainSpec_v1_properties(self, conn):
        return self.server.methods["system_properties"](conn)  # the same properties the legacy call reports
