"""Bounds that keep a key server serving under abuse.

HTTP API: a request is admitted only after it has been parsed (a malformed path or a bad signature costs no more
than that) and only while its requester has fewer than `per_requester` requests in progress (2: a flooding requester
gets two sessions' share of the cluster, not all of it; measured by `./run bench flood`) and the key server fewer
than `max_sessions` in all; past either bound the answer is 429 at once, nothing waits. An admitted request that
takes longer than `timeout` is answered with a deadline error; its session runs on to its own end (a half-run
generation must not be cut off at the master) and keeps its place in the bounds until then.

Cluster: the session router bounds the sessions one peer has open at this key server (`PeerSessions`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..crypto import Address

DEFAULT_MAX_SESSIONS = 64
DEFAULT_PER_REQUESTER = 2
DEFAULT_TIMEOUT = 30.0


class TooManyRequests(Exception):
    """A bound is reached; answered 429 with this message."""


@dataclass(frozen=True)
class HttpLimits:
    max_sessions: int = DEFAULT_MAX_SESSIONS  # requests in progress at once, every requester together
    per_requester: int = DEFAULT_PER_REQUESTER  # requests in progress at once of one requester address
    timeout: float = DEFAULT_TIMEOUT  # seconds until an admitted request is answered with a deadline error

    def __post_init__(self) -> None:
        if self.max_sessions < 1 or self.per_requester < 1:
            raise ValueError("--http-max-sessions and --http-max-sessions-per-requester must be at least 1")
        if not 0 < self.timeout <= 3600:
            raise ValueError("--http-request-timeout must be more than 0 and at most 3600 seconds")


class Admission:
    """Counts the HTTP requests in progress, in all and per requester address (the one its {sig} recovers)."""

    def __init__(self, limits: HttpLimits) -> None:
        self.limits = limits
        self.total = 0
        self.by_requester: dict[Address, int] = {}  # only requesters with a request in progress: bounded by total

    def admit(self, requester: Address) -> None:
        """Count one more request of `requester`, or raise TooManyRequests (counting nothing)."""
        held = self.by_requester.get(requester, 0)
        if held >= self.limits.per_requester:
            raise TooManyRequests(f"too many requests: requester {requester.hex()} has {held} in progress (the limit "
                                  "per requester); try again when one completes")
        if self.total >= self.limits.max_sessions:
            raise TooManyRequests(f"too many requests: this key server has {self.total} in progress (its limit); "
                                  "try again shortly")
        self.total += 1
        self.by_requester[requester] = held + 1

    def release(self, requester: Address) -> None:
        held = self.by_requester.get(requester, 0)
        if held <= 0:
            raise RuntimeError("released a request that was never admitted")
        if held == 1:
            del self.by_requester[requester]
        else:
            self.by_requester[requester] = held - 1
        self.total -= 1


# ------------------------------------------------------------------------------------------------ cluster side
MAX_PEER_SESSIONS = 256  # sessions one peer may have open at this key server at once


class PeerSessions:
    """The sessions each cluster peer has open at this key server: its messages being handled that do not continue
    a session already here, and the sessions they left behind (counted until the protocol's table no longer holds
    them). Steps of a live session are not counted, so a session once admitted is never cut off by the bound.
    `is_live(session id)` says whether a session table still holds that session."""

    def __init__(self, is_live: Callable[[str], bool], limit: int = MAX_PEER_SESSIONS) -> None:
        self.is_live = is_live
        self.limit = limit
        self._handling: dict[Address, int] = {}
        self._left: dict[Address, set[str]] = {}

    def open(self, peer: Address) -> bool:
        """Count one more message of `peer` being handled; False (nothing counted) if the peer is at the bound."""
        handling = self._handling.get(peer, 0)
        left = self._left.get(peer)
        if left is not None and handling + len(left) >= self.limit:
            # only at the bound are the sessions left behind looked up again (most have ended by then)
            left.difference_update([session for session in left if not self.is_live(session)])
        if handling + (len(left) if left is not None else 0) >= self.limit:
            return False
        self._handling[peer] = handling + 1
        return True

    def close(self, peer: Address, session: str | None) -> None:
        """The message is handled; `session` is the session it left open here, if any."""
        handling = self._handling[peer] - 1
        if handling:
            self._handling[peer] = handling
        else:
            del self._handling[peer]
        if session is not None:
            self._left.setdefault(peer, set()).add(session)

    def open_count(self, peer: Address) -> int:
        left = self._left.get(peer, ())
        return self._handling.get(peer, 0) + sum(1 for session in left if self.is_live(session))
