"""Key-value storage under the runtime, and the transactional overlay that makes a failed call change nothing."""

from __future__ import annotations

import bisect
from typing import Iterator, Protocol

_DELETED = None


class Storage(Protocol):
    def get(self, key: bytes) -> bytes | None: ...
    def set(self, key: bytes, value: bytes) -> None: ...
    def delete(self, key: bytes) -> None: ...
    def iter_prefix(self, prefix: bytes, start_after: bytes | None = None) -> Iterator[tuple[bytes, bytes]]: ...


def _prefix_end(prefix: bytes) -> bytes | None:
    """The smallest key greater than every key starting with `prefix` (None if there is none)."""
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        return None
    return stripped[:-1] + bytes([stripped[-1] + 1])


class MemoryStorage:
    """A sorted in-memory store (genesis building, tests, and the node's cache)."""

    def __init__(self, items: dict[bytes, bytes] | None = None) -> None:
        self._data: dict[bytes, bytes] = dict(items or {})
        self._keys = sorted(self._data)

    def get(self, key: bytes) -> bytes | None:
        return self._data.get(key)

    def set(self, key: bytes, value: bytes) -> None:
        if key not in self._data:
            bisect.insort(self._keys, key)
        self._data[key] = value

    def delete(self, key: bytes) -> None:
        if self._data.pop(key, None) is not None:
            del self._keys[bisect.bisect_left(self._keys, key)]

    def iter_prefix(self, prefix: bytes, start_after: bytes | None = None) -> Iterator[tuple[bytes, bytes]]:
        start = max(prefix, start_after + b"\x00") if start_after is not None else prefix
        begin = bisect.bisect_left(self._keys, start)
        bound = _prefix_end(prefix)
        end = bisect.bisect_left(self._keys, bound, begin) if bound is not None else len(self._keys)
        # a copy of just the matching range: callers may write while they iterate
        for key in self._keys[begin:end]:
            value = self._data.get(key)
            if value is not None:
                yield key, value

    def items(self) -> dict[bytes, bytes]:
        return dict(self._data)


class Overlay:
    """Buffered changes over another storage; `commit()` writes them down, dropping the overlay discards them."""

    def __init__(self, backend: Storage) -> None:
        self.backend = backend
        self.changes: dict[bytes, bytes | None] = {}

    def get(self, key: bytes) -> bytes | None:
        if key in self.changes:
            return self.changes[key]
        return self.backend.get(key)

    def set(self, key: bytes, value: bytes) -> None:
        self.changes[key] = value

    def delete(self, key: bytes) -> None:
        self.changes[key] = _DELETED

    def iter_prefix(self, prefix: bytes, start_after: bytes | None = None) -> Iterator[tuple[bytes, bytes]]:
        mine = sorted((k, v) for k, v in self.changes.items()
                      if k.startswith(prefix) and (start_after is None or k > start_after))
        below = self.backend.iter_prefix(prefix, start_after)
        # merge two sorted streams; the overlay's entries (including deletions) win
        i = 0
        for key, value in below:
            while i < len(mine) and mine[i][0] < key:
                if mine[i][1] is not None:
                    yield mine[i]  # type: ignore[misc]
                i += 1
            if i < len(mine) and mine[i][0] == key:
                if mine[i][1] is not None:
                    yield mine[i]  # type: ignore[misc]
                i += 1
                continue
            yield key, value
        for key, value in mine[i:]:
            if value is not None:
                yield key, value

    def commit(self) -> None:
        for key, value in self.changes.items():
            if value is None:
                self.backend.delete(key)
            else:
                self.backend.set(key, value)
        self.changes.clear()
