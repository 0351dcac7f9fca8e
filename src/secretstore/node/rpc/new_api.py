"""What the groups of the new JSON-RPC interface (paritytech/json-rpc-interface-spec: chainHead_v1, archive_v1,
transaction(Watch)_v1, chainSpec_v1) share: their parameter parsers, the runtime specification in their format, and
runtime calls whose failure is an answer rather than an error."""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any

from ...codec.scale import CodecError
from ..chain import Chain, hex0x
from .params import RpcError

if TYPE_CHECKING:
    from .server import RpcServer

_operation_ids = itertools.count(1)


def operation_id() -> str:
    """A new opaque id for an operation (chainHead, archive or broadcast): unique for the node's lifetime."""
    return f"op{next(_operation_ids)}"


def hex_param(value: Any, name: str) -> bytes:
    """The spec's "hexadecimal-encoded": empty, or 0x followed by an even number of hex digits."""
    if value == "":
        return b""
    if not isinstance(value, str) or not value.startswith("0x"):
        raise RpcError(-32602, f"invalid params: {name} must be a hexadecimal string (0x...)")
    try:
        return bytes.fromhex(value[2:])
    except ValueError:
        raise RpcError(-32602, f"invalid params: {name} is not valid hex") from None


def hash_param(value: Any, name: str = "hash") -> bytes:
    raw = hex_param(value, name)
    if len(raw) != 32:
        raise RpcError(-32602, f"invalid params: {name} must be a 32-byte block hash")
    return raw


def str_param(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise RpcError(-32602, f"invalid params: {name} must be a string")
    return value


def bool_param(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise RpcError(-32602, f"invalid params: {name} must be true or false")
    return value


def child_trie_param(value: Any) -> bytes | None:
    """A child trie's key, or None for the main trie. This chain has no child tries: one names an empty trie."""
    return None if value is None else hex_param(value, "childTrie")


def runtime_spec(chain: Chain) -> dict:
    """The runtime's version as the new interface reports it: a subset of Core_version, `apis` as an object."""
    v = chain.runtime.version()
    return {"specName": v["spec_name"], "implName": v["impl_name"], "specVersion": v["spec_version"],
            "implVersion": v["impl_version"], "transactionVersion": v["transaction_version"],
            "apis": {hex0x(api): version for api, version in v["apis"]}}


def runtime_call(server: RpcServer, block_hash: bytes, function: str, parameters: bytes) -> tuple[bool, str]:
    """(True, hex output) or (False, why it failed) of a runtime API call on the state of a block, made exactly as
    state_call makes it (the node answers some APIs itself: metadata, fees, transaction validity)."""
    try:
        return True, server.methods["state_call"](None, function, hex0x(parameters), hex0x(block_hash))
    except RpcError as exc:  # an unknown function
        return False, exc.message
    except (CodecError, ValueError, LookupError) as exc:  # parameters the function cannot decode
        return False, f"{function}: {exc}"
