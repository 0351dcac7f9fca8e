"""One client of the node's JSON-RPC, and the WebSocket frames and notifications written to it."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .limits import RateLimiter


@dataclass(eq=False)
class Connection:
    """One client. Outgoing messages go through a queue so that replies and notifications keep their order. An item
    is a message (dict or list), an already encoded message (str), or a Future of a message: the slot of a reply that
    is not ready yet (a submission waiting to be on disk), which holds back everything queued after it.
    `subscriptions` maps a subscription id to (kind, data): the kind names what notifies it (see `MethodGroup`).
    `limiter` is its rate limit, None when the node has none."""

    outbox: asyncio.Queue = field(default_factory=asyncio.Queue)
    subscriptions: dict[str, tuple[str, Any]] = field(default_factory=dict)
    websocket: bool = True
    limiter: RateLimiter | None = None

    def send(self, message: Any) -> None:
        self.outbox.put_nowait(message)

    def notify(self, subscription: str, method: str, result: Any) -> None:
        self.send(notification(subscription, method, json.dumps(result)))


def notification(subscription: str, method: str, result_json: str) -> str:
    """A subscription notification around an already JSON-encoded result: one block's head or changes are encoded
    once however many subscribers receive them."""
    return ('{"jsonrpc":"2.0","method":"' + method + '","params":{"subscription":"' + subscription
            + '","result":' + result_json + "}}")


def text_frame(text: str) -> bytes:
    """An unmasked, uncompressed final text frame (RFC 6455 5.2), as a server sends it."""
    payload = text.encode()
    n = len(payload)
    if n < 126:
        header = bytes((0x81, n))
    elif n < 1 << 16:
        header = bytes((0x81, 126)) + n.to_bytes(2, "big")
    else:
        header = bytes((0x81, 127)) + n.to_bytes(8, "big")
    return header + payload


def write_frames(transport: Any, frames: list[bytes]) -> None:
    if frames and transport is not None and not transport.is_closing():
        transport.write(b"".join(frames))
