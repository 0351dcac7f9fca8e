"""The key server's audit log: one JSON line per request it serves, over the HTTP API or as a chain task.

A line holds the time (UTC), how the request came (`via`: "http" or "chain"), the operation, the key id, the
requester's address, whether this key server was the request's master, the outcome ("ok" or an error code), the HTTP
status answered (HTTP only) and the duration in milliseconds. Never a secret, share, signature or document key: key
ids and requester addresses are on chain anyway.

HTTP requests are written by the HTTP API (the key server that takes one is its master; the servers it asks write
nothing for it). Chain tasks are observed from outside, as `metrics.py` does: `instrument(service)` wraps the chain
service's `_would_act` (where the service first considers a pending task: its clock starts) and `respond` (where a
piece of work ends with its answer to the chain), so the service code carries no audit calls. A chain shadow
retrieval is two lines on each server that answers it: its common part and its personal part.

Writes are buffered appends, flushed FLUSH_AFTER seconds after the first unflushed line (never an fsync per line:
the event loop must not wait for the disk); closing flushes and syncs.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

from ..chain.secretstore_api import (
    GenerateServerKey, RetrieveServerKey, RetrieveShadowDocumentKeyCommon, RetrieveShadowDocumentKeyPersonal,
    StoreDocumentKey,
)
from ..crypto import Address, ServerKeyId

FLUSH_AFTER = 0.2
MAX_SEEN = 10_000  # chain tasks whose clock runs (each answered task leaves at once)
SEEN_TTL = 600.0  # a task seen but never answered by this server is forgotten after this long

# The pieces of work a chain task is, as the service keys its responses, and the operation each is logged as.
WORK_OF_TASK = {GenerateServerKey: "generation", RetrieveServerKey: "retrieval", StoreDocumentKey: "store",
                RetrieveShadowDocumentKeyCommon: "common", RetrieveShadowDocumentKeyPersonal: "personal"}
OPERATION_OF_WORK = {"generation": "server_key_generation", "retrieval": "server_key_retrieval",
                     "store": "document_key_store", "common": "document_key_shadow_retrieval_common",
                     "personal": "document_key_shadow_retrieval_personal"}
# response call -> (the piece of work it answers unless the service names another, whether it is a success)
CHAIN_RESPONSES = {
    "server_key_generated": ("generation", True), "server_key_generation_error": ("generation", False),
    "server_key_retrieved": ("retrieval", True), "server_key_retrieval_error": ("retrieval", False),
    "document_key_stored": ("store", True), "document_key_store_error": ("store", False),
    "document_key_common_retrieved": ("common", True), "document_key_shadow_retrieval_error": ("common", False),
    "document_key_personal_retrieved": ("personal", True),
}


def default_path(db_path: Path) -> Path:
    return Path(db_path) / "audit.log"


class AuditLog:
    """An append-only JSON lines file (mode 0600: it tells who used which key, if nothing secret)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._file = os.fdopen(fd, "a", encoding="utf-8", buffering=64 * 1024)
        self._flush_handle: Any = None

    def record(self, via: str, operation: str, key_id: ServerKeyId, requester: Address | None, master: bool,
               outcome: str, duration: float | None, status: int | None = None) -> None:
        entry: dict[str, Any] = {
            "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "via": via, "operation": operation, "key_id": key_id.hex(),
            "requester": requester.hex() if requester is not None else None, "master": master, "outcome": outcome}
        if status is not None:
            entry["status"] = status
        entry["duration_ms"] = round(duration * 1000, 1) if duration is not None else None
        self._write(json.dumps(entry, separators=(",", ":")))

    def _write(self, line: str) -> None:
        if self._file.closed:
            return  # a session that outlived the key server's shutdown: nothing to write to
        self._file.write(line + "\n")
        if self._flush_handle is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no event loop (a tool, a test): at once
            self._file.flush()
            return
        self._flush_handle = loop.call_later(FLUSH_AFTER, self.flush)

    def flush(self) -> None:
        self._flush_handle = None
        if not self._file.closed:
            self._file.flush()

    def close(self) -> None:
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        if not self._file.closed:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()

    # ------------------------------------------------------------------------------------------- chain tasks
    def instrument(self, service: Any) -> "AuditLog":
        """Write a line for every answer the chain service gives a request (see the module docstring)."""
        missing = [name for name in ("_would_act", "respond", "_leads_shadow_retrieval", "inflight")
                   if not hasattr(service, name)]
        if missing:  # a renamed hook point must fail here, not leave an audit log that silently stops
            raise AttributeError(f"audit log: {type(service).__name__} has no {', '.join(missing)}")
        # response key (work, key id hex, requester hex or None) -> (when first seen, the task's requester or author)
        seen: dict[tuple, tuple[float, Address | None]] = {}
        would_act: Callable[..., bool] = service._would_act
        respond: Callable[..., None] = service.respond

        def considered(task: Any, *args: Any, **kwargs: Any) -> bool:
            work = WORK_OF_TASK.get(type(task))
            if work is not None:
                requester = getattr(task, "author", None) or getattr(task, "requester", None)
                key = (work, task.key_id.hex(), requester.hex() if work in ("common", "personal") else None)
                if key not in seen:
                    if len(seen) >= MAX_SEEN:
                        _forget_old(seen)
                    seen[key] = (time.monotonic(), requester)
            return would_act(task, *args, **kwargs)

        def answered(call: str, params: dict, key: tuple | None = None) -> None:
            respond(call, params, key)
            known = CHAIN_RESPONSES.get(call)
            if known is None:  # a migration's start or confirmation: not a request
                return
            work, ok = known
            if key is not None:
                work = key[0]
            key_hex = params["id"]
            started, requester = seen.pop((work, key_hex, params.get("requester")), (None, None))
            key_id = ServerKeyId.from_hex(key_hex)
            if requester is None and params.get("requester"):
                requester = Address.from_hex(params["requester"])
            if work == "generation":
                master = ("generation", key_id) in service.inflight  # the session this server leads runs
            elif work == "personal":
                master = service._leads_shadow_retrieval(key_id)
            else:  # every key server answers these itself: nobody leads them
                master = False
            self.record("chain", OPERATION_OF_WORK[work], key_id, requester, master, "ok" if ok else "error",
                        time.monotonic() - started if started is not None else None)

        service._would_act = considered
        service.respond = answered
        return self


def _forget_old(seen: dict) -> None:
    cutoff = time.monotonic() - SEEN_TTL
    for key in [k for k, (when, _) in seen.items() if when < cutoff]:
        del seen[key]
    if len(seen) >= MAX_SEEN:  # all recent: durations of these few are lost, not the lines
        seen.clear()


# ------------------------------------------------------------------------------------------------ reading
def read_entries(path: Path, key_id: str | None = None, requester: str | None = None,
                 on_bad_line: Callable[[int], None] | None = None) -> Iterator[dict]:
    """The entries of an audit log, optionally only those of a key id and / or a requester address (hex, any case,
    with or without 0x). A line that is not a JSON object (one cut short by a crash) is skipped and reported to
    `on_bad_line` by its number."""
    wanted_key = _normalized(key_id)
    wanted_requester = _normalized(requester)
    with open(path, encoding="utf-8", errors="replace") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except ValueError:
                entry = None
            if not isinstance(entry, dict):
                if on_bad_line is not None:
                    on_bad_line(number)
                continue
            if wanted_key is not None and _normalized(entry.get("key_id")) != wanted_key:
                continue
            if wanted_requester is not None and _normalized(entry.get("requester")) != wanted_requester:
                continue
            yield entry


def _normalized(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    value = value.lower()
    return value if value.startswith("0x") else "0x" + value
