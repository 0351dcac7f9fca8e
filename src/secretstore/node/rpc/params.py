"""The error a call is answered with, and parsers of call parameters that raise it (-32602) on bad input."""

from __future__ import annotations

from typing import Any


class RpcError(Exception):
    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code, self.message, self.data = code, message, data

    def to_json(self) -> dict:
        error = {"code": self.code, "message": self.message}
        if self.data is not None:
            error["data"] = self.data
        return error


def bytes_param(value: Any, name: str) -> bytes:
    if not isinstance(value, str) or not value.startswith("0x"):
        raise RpcError(-32602, f"invalid params: {name} must be a 0x-prefixed hex string")
    try:
        return bytes.fromhex(value[2:])
    except ValueError:
        raise RpcError(-32602, f"invalid params: {name} is not valid hex") from None


def opt_hash(value: Any) -> bytes | None:
    """An optional block hash (None: the head)."""
    if value is None:
        return None
    raw = bytes_param(value, "block hash")
    if len(raw) != 32:
        raise RpcError(-32602, "invalid params: block hash must be 32 bytes")
    return raw


def account_id(value: Any) -> bytes:
    """An account id, as an SS58 address or 32 bytes of hex."""
    if not isinstance(value, str):
        raise RpcError(-32602, "invalid params: account must be an SS58 address or 0x-prefixed hex string")
    if value.startswith("0x"):
        raw = bytes_param(value, "account")
    else:
        from substrateinterface.utils.ss58 import ss58_decode  # slow to import, and only this call needs it

        try:
            raw = bytes.fromhex(ss58_decode(value))
        except (ValueError, TypeError) as exc:
            raise RpcError(-32602, f"invalid params: account: {exc}") from None
    if len(raw) != 32:
        raise RpcError(-32602, "invalid params: account must be 32 bytes")
    return raw
