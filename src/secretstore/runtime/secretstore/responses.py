"""Counting key servers' responses to a request: one mechanism for every service.

Each key server counts once per request (a bit in `responded`); identical responses accumulate support. With required
threshold T a response is confirmed at support >= T + 1, and the request is impossible once even the best-supported
response could not get there with every remaining key server: max_support + not_answered - 1 < T.
"""

from __future__ import annotations

import enum


class Outcome(enum.Enum):
    PENDING = "pending"
    CONFIRMED = "confirmed"
    IMPOSSIBLE = "impossible"


def new_state(set_change_block: int) -> dict:
    return {"set_change_block": set_change_block, "responded": 0, "responses": []}


def refresh(state: dict, set_change_block: int) -> bool:
    """Discard collected responses if the current key server set changed since counting started. True if reset."""
    if state["set_change_block"] != set_change_block:
        state.update(new_state(set_change_block))
        return True
    return False


def has_responded(state: dict, index: int) -> bool:
    return bool(state["responded"] >> index & 1)


def responded_count(state: dict) -> int:
    return bin(state["responded"]).count("1")


def max_support(state: dict) -> tuple[bytes | None, int]:
    best: tuple[bytes | None, int] = (None, 0)
    for response, support in state["responses"]:
        if support > best[1]:
            best = (response, support)
    return best


def insert(state: dict, index: int, response: bytes, threshold: int, key_servers: int) -> tuple[Outcome, bytes | None]:
    """Record `response` from key server `index` (the caller checks it has not answered yet)."""
    state["responded"] |= 1 << index
    for i, (existing, support) in enumerate(state["responses"]):
        if existing == response:
            state["responses"][i] = (existing, support + 1)
            break
    else:
        state["responses"].append((response, 1))
    return evaluate(state, threshold, key_servers)


def evaluate(state: dict, threshold: int, key_servers: int) -> tuple[Outcome, bytes | None]:
    best, support = max_support(state)
    if support >= threshold + 1:
        return Outcome.CONFIRMED, best
    not_answered = key_servers - responded_count(state)
    if support + not_answered - 1 < threshold:
        return Outcome.IMPOSSIBLE, None
    return Outcome.PENDING, None
