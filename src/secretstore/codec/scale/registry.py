"""The portable type registry of scale-info that metadata carries."""

from __future__ import annotations

from .core import ScaleType


class TypeRegistry:
    """Interns types into the portable registry of scale-info (ids in first-registration order)."""

    def __init__(self) -> None:
        self._ids: dict[ScaleType, int] = {}
        self._entries: list[dict | None] = []

    def register(self, t: ScaleType) -> int:
        found = self._ids.get(t)
        if found is not None:
            return found
        type_id = len(self._entries)
        self._ids[t] = type_id
        self._entries.append(None)  # reserved first so that recursive types terminate
        params = [{"name": name, "type": self.register(p) if p is not None else None} for name, p in t.params]
        self._entries[type_id] = {
            "id": type_id,
            "type": {"path": list(t.path), "params": params, "def": t.type_def(self), "docs": list(t.docs)},
        }
        return type_id

    def portable(self) -> list[dict]:
        return [e for e in self._entries if e is not None]

    def __len__(self) -> int:
        return len(self._entries)
