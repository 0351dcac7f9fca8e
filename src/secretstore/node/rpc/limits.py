"""What the node's JSON-RPC refuses, and how: Substrate's RPC limits and exposure rules (`sc-cli`'s RpcParams, served
by `sc-rpc-server` over jsonrpsee), with their defaults and the answers a Substrate node gives past them.

- connections (`--rpc-max-connections`, 100): open WebSockets plus HTTP requests being answered; one more is refused
  before the WebSocket upgrade with HTTP 429 "Too many connections. Please try again later." (jsonrpsee).
- request size (`--rpc-max-request-size`, 15 MB): -32007 "Request is too big", id null (HTTP: status 413).
- response size (`--rpc-max-response-size`, 15 MB): the call's reply becomes -32008 "Response is too big"; a batch
  whose replies together are larger becomes one -32011 "The batch response was too large", id null.
- subscriptions per connection (`--rpc-max-subscriptions-per-connection`, 1024): -32006 "Too many subscriptions on
  the connection".
- rate limit (`--rpc-rate-limit`, calls per minute per connection, off): a call over the quota waits for it (with up
  to 50 ms of jitter) and is refused with -32999 "RPC rate limit exceeded" after its tenth wait.
- unsafe methods (`--rpc-methods`): -32601 "RPC call is unsafe to be called externally".
- `--rpc-cors`: a browser request from an origin not allowed is refused with HTTP 403.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable

from .params import RpcError

MEGABYTE = 1024 * 1024  # Substrate's "MB" in these flags is a mebibyte
DEFAULT_MAX_CONNECTIONS = 100
DEFAULT_MAX_REQUEST_MB = 15
DEFAULT_MAX_RESPONSE_MB = 15
DEFAULT_MAX_SUBSCRIPTIONS = 1024
RATE_LIMIT_WAITS = 10  # Substrate's MAX_RETRIES
RATE_LIMIT_JITTER = 0.05  # seconds, Substrate's MAX_JITTER

TOO_MANY_CONNECTIONS = "Too many connections. Please try again later."
ORIGIN_REFUSED = ("Origin of the request is not whitelisted. CORS headers would not be sent and any side-effects were "
                  "cancelled as well.\n")
# Substrate's --rpc-cors default outside --dev (with --dev every origin is allowed)
DEFAULT_CORS = ("http://localhost:*", "http://127.0.0.1:*", "https://localhost:*", "https://127.0.0.1:*",
                "https://polkadot.js.org")

# Methods a Substrate node refuses under --rpc-methods safe (those that check `DenyUnsafe` in sc-rpc). Of these the
# node serves system_peers and state_getPairs; state_getKeys is added because it lists a whole prefix in one answer
# (Substrate lets it through, but its docs name whole-state key listings among the calls not to expose).
UNSAFE_METHODS = frozenset({
    "author_insertKey", "author_rotateKeys", "author_hasSessionKeys", "author_hasKey", "author_removeExtrinsic",
    "state_getPairs", "state_getKeys", "state_queryStorage", "state_traceBlock",
    "system_peers", "system_unstable_networkState", "system_addReservedPeer", "system_removeReservedPeer",
    "system_addLogFilter", "system_resetLogFilter",
    "offchain_localStorageGet", "offchain_localStorageSet", "offchain_localStorageClear", "dev_getBlockStats",
})
# Unsafe only with these parameters: a storage subscription to every key (no key list given)
UNSAFE_WITHOUT_KEYS = frozenset({"state_subscribeStorage"})


def error_reply(rid: Any, code: int, message: str, data: Any = None) -> dict:
    error = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return {"jsonrpc": "2.0", "id": rid, "error": error}


def over_limit(limit: int) -> str:
    return f"Exceeded max limit of {limit}"


def request_too_big(limit: int) -> dict:
    return error_reply(None, -32007, "Request is too big", over_limit(limit))


def rate_limit_exceeded(rid: Any) -> dict:
    return error_reply(rid, -32999, "RPC rate limit exceeded")


class UnsafeCallError(RpcError):
    def __init__(self) -> None:
        super().__init__(-32601, "RPC call is unsafe to be called externally")


class TooManySubscriptions(RpcError):
    def __init__(self, limit: int) -> None:
        super().__init__(-32006, "Too many subscriptions on the connection", over_limit(limit))


class CorsPolicy:
    """Which browser origins may call: None allows all; otherwise a list of origins, each `scheme://host[:port]`,
    `scheme://host:*` (any port) or `null`. A request without Origin (not from a browser) or from the node's own
    address (same origin) is always served."""

    def __init__(self, origins: tuple[str, ...] | None) -> None:
        self.origins = origins
        self._exact = frozenset() if origins is None else frozenset(o for o in origins if not o.endswith(":*"))
        self._any_port = () if origins is None else tuple(o[:-1] for o in origins if o.endswith(":*"))

    @classmethod
    def parse(cls, text: str | None, dev: bool) -> CorsPolicy:
        """`--rpc-cors` as Substrate reads it: "all" or "*" anywhere in the list allows every origin; without the
        flag, --dev allows every origin and otherwise the localhost and polkadot.js origins are allowed."""
        if text is None:
            return cls(None if dev else DEFAULT_CORS)
        origins = tuple(o.strip().rstrip("/").lower() for o in text.split(",") if o.strip())
        if not origins:
            raise ValueError("--rpc-cors: give origins (scheme://host[:port]), 'all' or '*'")
        if "all" in origins or "*" in origins:
            return cls(None)
        for origin in origins:
            scheme, sep, rest = origin.partition("://")
            if origin != "null" and (not sep or scheme not in ("http", "https") or not rest or "/" in rest):
                raise ValueError(f"--rpc-cors: {origin!r} is not an origin (http[s]://host[:port], null, all or *)")
        return cls(origins)

    def allows(self, origin: str | None, host: str | None) -> bool:
        if origin is None or self.origins is None:
            return True
        origin = origin.rstrip("/").lower()
        if host is not None and origin.partition("://")[2] == host.lower():
            return True  # same origin
        if origin in self._exact:
            return True
        # "scheme://host:*": that host on any port, or on its scheme's default port (no port in the origin)
        return any(origin == prefix[:-1] or (origin.startswith(prefix) and origin[len(prefix):].isdigit())
                   for prefix in self._any_port)

    def __repr__(self) -> str:
        return f"CorsPolicy({'all' if self.origins is None else ', '.join(self.origins)})"


@dataclass(frozen=True)
class RpcLimits:
    """The node's RPC limits and exposure; the defaults are Substrate's (sizes in bytes here, MB on the command
    line). `methods` is auto, safe or unsafe; `rate_limit` is calls per minute per connection, None for no limit."""

    max_connections: int = DEFAULT_MAX_CONNECTIONS
    max_request_size: int = DEFAULT_MAX_REQUEST_MB * MEGABYTE
    max_response_size: int = DEFAULT_MAX_RESPONSE_MB * MEGABYTE
    max_subscriptions: int = DEFAULT_MAX_SUBSCRIPTIONS
    rate_limit: int | None = None
    methods: str = "auto"
    cors: CorsPolicy = field(default_factory=lambda: CorsPolicy(None))

    def __post_init__(self) -> None:
        if self.methods not in ("auto", "safe", "unsafe"):
            raise ValueError(f"--rpc-methods must be auto, safe or unsafe, not {self.methods!r}")

    def denies_unsafe(self, listen_address: str) -> bool:
        """Substrate's rule: unsafe methods are served under `unsafe`, and under `auto` only while the server
        listens on a loopback address."""
        if self.methods != "auto":
            return self.methods == "safe"
        return not is_loopback(listen_address)

    def request_too_large(self, text: str) -> bool:
        """Is `text` longer than the request limit in UTF-8 bytes? (Encoded only when its length alone cannot tell:
        a character is one to four bytes.)"""
        limit = self.max_request_size
        n = len(text)
        return n > limit or (4 * n > limit and len(text.encode("utf-8", "surrogatepass")) > limit)


def is_loopback(address: str) -> bool:
    """Is `address` (an IP address as a socket reports it, IPv6 perhaps with a %scope) a loopback one?"""
    try:
        return ipaddress.ip_address(address.split("%")[0]).is_loopback
    except ValueError:
        return False


class RateLimiter:
    """One connection's quota of `per_minute` calls: a bucket of that many, refilled evenly over the minute (the
    quota governor enforces for Substrate: a burst of the whole quota, then one call every 60/per_minute s)."""

    __slots__ = ("capacity", "rate", "tokens", "updated")

    def __init__(self, per_minute: int) -> None:
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self.tokens = self.capacity
        self.updated = time.monotonic()

    def take(self) -> float:
        """0 if a call may go now (and counts it), else the seconds until one may."""
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


def rate_limit_delay(wait: float) -> float:
    """A wait plus Substrate's jitter, so that the calls waiting on one connection do not all wake at once."""
    return wait + random.uniform(0.0, RATE_LIMIT_JITTER)


def guard_unsafe(methods: dict[str, Callable[..., Any]], refused: Counter) -> None:
    """Replace the unsafe methods of `methods` by refusals (counted in `refused["unsafe"]`). Only these handlers
    change: the other calls pay nothing for the check."""
    for name in UNSAFE_METHODS & methods.keys():
        methods[name] = _refusing(methods[name], refused)
    for name in UNSAFE_WITHOUT_KEYS & methods.keys():
        methods[name] = _refusing_all_keys(methods[name], refused)


def _refusing(handler: Callable[..., Any], refused: Counter) -> Callable[..., Any]:
    @functools.wraps(handler)  # keeps the name a wrong call's message shows
    def refuse(conn: Any, *params: Any) -> Any:
        refused["unsafe"] += 1
        raise UnsafeCallError()
    return refuse


def _refusing_all_keys(handler: Callable[..., Any], refused: Counter) -> Callable[..., Any]:
    @functools.wraps(handler)
    def keys_required(conn: Any, keys: Any = None, *rest: Any) -> Any:
        if keys is None:
            refused["unsafe"] += 1
            raise UnsafeCallError()
        return handler(conn, keys, *rest)
    return keys_required


def encode_reply(reply: dict | list, limit: int, refused: Counter) -> str:
    """A reply's JSON, or the error that replaces it when it is longer than `limit` bytes (json.dumps writes ASCII
    only, so its length is its size). In a batch, each call's reply is held to the limit, then the whole."""
    if isinstance(reply, dict):
        text = json.dumps(reply)
        if len(text) <= limit:
            return text
        refused["response_size"] += 1
        return json.dumps(error_reply(reply.get("id"), -32008, "Response is too big", over_limit(limit)))
    text = "[" + ",".join(encode_reply(r, limit, refused) for r in reply) + "]"
    if len(text) <= limit:
        return text
    refused["response_size"] += 1
    return json.dumps(error_reply(None, -32011, "The batch response was too large", over_limit(limit)))
