"""Servers set changes: starting a migration when the chain's new set differs from the current one, the master's
run of it (again after MIGRATION_RETRY while it is not complete), and settling the shares once it completed."""

from __future__ import annotations

import asyncio
import json
import secrets
import time

from ...crypto import Address
from ..net import ClusterError
from ..sessions import SessionError
from .state import ServiceState, log

MIGRATION_RETRY = 20.0  # the migration master runs the set change again if it is still not complete after this


class Migrations(ServiceState):
    """Uses the response queue (`respond`, `_fresh`) and `_spawn`."""

    async def _follow_migration(self, tasks: asyncio.TaskGroup, live: set[tuple], settle: bool = True) -> bool:
        """Start, run, confirm and settle set changes. True while a migration is running. Settling needs a set just
        read (`settle`): a block that changes the set always brings a full scan."""
        snap = self.snapshot
        assert snap is not None  # refreshed before every scan
        current, new = list(snap.current_set), list(snap.new_set)
        migration = snap.migration
        if migration is None:
            if settle:
                self._settle(current, new)
            if set(current) != set(new) and self.self_id in set(current) | set(new):
                live.add(("migration-start", None, None))
                candidates = sorted(set(current) | set(new), key=bytes)
                cluster = self.core.cluster
                master = next((c for c in candidates if cluster is None or cluster.is_connected(c)), None)
                if master == self.self_id and self._fresh(("migration-start", None, None)):
                    migration_id = secrets.token_bytes(32)
                    log.info("starting migration", extra={"migration": migration_id.hex()})
                    self.respond("start_migration", {"migration_id": "0x" + migration_id.hex()},
                                 key=("migration-start", None, None))
            return False
        migration_id = migration.id
        members = list(migration.set)
        live.add(("migration-confirm", "0x" + migration_id.hex(), None))
        succeeded = self.migration_runs.get(migration_id)
        if migration.master == self.self_id and (
                succeeded is None or time.monotonic() - succeeded > MIGRATION_RETRY):
            self._spawn(tasks, ("migrate", migration_id), self._migrate(migration_id, current, members))
        return True

    async def _migrate(self, migration_id: bytes, old: list[Address], new: list[Address]) -> None:
        try:
            if migration_id in self.migration_runs:
                # the shares were moved already: only the confirmations are missing, ask for them again
                for member in new:
                    await self.core.cluster.request(member, {"type": "migration_done",  # type: ignore[union-attr]
                                                             "migration_id": "0x" + migration_id.hex()})
            else:
                moved = await self.core.migrate(migration_id, old, new)
                log.info("migration shares moved", extra={"migration": migration_id.hex(), "keys": moved})
            self.migration_runs[migration_id] = time.monotonic()
        except (SessionError, ClusterError) as exc:
            log.warning("migration attempt failed, will retry", extra={"error": str(exc)})

    def _settle(self, current: list[Address], new: list[Address]) -> None:
        """After a migration completed: activate the new versions, drop abandoned ones, forget keys if removed."""
        storage = self.core.storage
        if self.self_id in current:
            expected = {h.hex() for h in current}
            for migration_id, holder_sets in storage.pending_migrations().items():
                if all({h for h in json.loads(hs)} == expected for hs in holder_sets):
                    count = storage.promote(migration_id)
                    log.info("migration completed: new key versions active", extra={"keys": count})
                else:
                    storage.drop_pending(migration_id)
        elif self.self_id not in new and (storage.key_count() or storage.pending_migrations()):
            count = storage.delete_all()
            log.info("removed from the key server set: shares deleted", extra={"keys": count})
