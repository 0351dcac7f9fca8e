"""Substrate JSON-RPC over WebSocket (at / and /ws) and HTTP POST, with subscriptions, served by aiohttp: the server
and its transport in `server`, one module per method group (`system`, `chain`, `state`, `author`, `payment`),
listed in `groups`."""

from .connection import Connection, notification, text_frame
from .group import MethodGroup, Notifier
from .groups import GROUPS
from .limits import CorsPolicy, RpcLimits
from .params import RpcError
from .server import WRITE_BUFFER_LIMIT, RpcServer
from .system import VERSION

__all__ = ["GROUPS", "VERSION", "WRITE_BUFFER_LIMIT", "Connection", "CorsPolicy", "MethodGroup", "Notifier",
           "RpcError", "RpcLimits", "RpcServer", "notification", "text_frame"]
