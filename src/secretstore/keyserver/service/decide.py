"""Deciding what this key server acts on: the cached task lists (read at a full scan, following the events
between), which master leads a key, which servers answer a common part at once and which keep a standby clock, and
the patience clock of a personal part that nobody picked this server for."""

from __future__ import annotations

import asyncio
import logging
import time

from ...chain.secretstore_api import (
    SERVICES, GenerateServerKey, RetrieveServerKey, RetrieveShadowDocumentKeyCommon, SERVICE_OF_TASK,
    RetrieveShadowDocumentKeyPersonal, ServiceTask, StoreDocumentKey, task_identity,
)
from ...crypto import Address, ServerKeyId
from ..sessions import key_rotation
from .state import ServiceState, log

PERSONAL_PART_PATIENCE = 60.0  # a key server not picked for a retrieval reports an error after this long
# A shadow retrieval's common part is confirmed by n / 2 + 1 agreeing answers: the first that many connected servers in
# the key's rotation answer at once, the others only if it is still pending this long after they saw it (one of the
# first was slow, dead or wrong). Fewer transactions per retrieval, and the same answers.
COMMON_STANDBY = 0.5
# Which piece of work a task is (the first element of its responses' keys).
WORK_OF_TASK = {GenerateServerKey: "generation", RetrieveServerKey: "retrieval", StoreDocumentKey: "store",
                RetrieveShadowDocumentKeyCommon: "common", RetrieveShadowDocumentKeyPersonal: "personal"}
MAX_KEPT_HOLDERS = 100_000


class TaskDecisions(ServiceState):
    """The scan (`process`) and what it starts. Uses the response queue (`respond`, `_fresh`), the work of each
    service (`_answer_common`, `_personal`, `_shadow_session`, `_generate`, ...) and `_follow_migration`."""

    async def process(self, tasks: asyncio.TaskGroup, at: str | None = None, changed: set[str] | None = None,
                      announced: dict[tuple, ServiceTask] | None = None, ended: set[tuple] | None = None) -> None:
        """One scan of the chain at block `at` (None: the best block): two rounds of concurrent reads (the set and
        every service's tasks; then which tasks still need this key server), then every task acted on at once.
        With `changed`, nothing is read: between full scans the task lists follow the events — the tasks they
        announce are added, those they end removed (a personal part by its last report, as `PersonalPartTally`
        counts them). A task left over (one the tally could not count) only costs an `is_*_response_required`
        that says no, until the next full scan; a task is never missing, since every request announces itself."""
        api = self.runtime_api
        started = time.perf_counter()
        full = changed is None or self.snapshot is None or not self.task_lists
        if full:
            snapshot, indices, *task_lists = await asyncio.gather(
                api.snapshot(self.self_id, at=at), api.current_set_with_indices(at=at),
                *(api.tasks(service, at=at) for service in SERVICES))
            self.refresh_set(snapshot, indices)
            self.task_lists = dict(zip(SERVICES, task_lists))
            self.holders.clear()
            for task in self.task_lists["document_key_shadow_retrieval"]:
                if isinstance(task, RetrieveShadowDocumentKeyPersonal):
                    self._asked_for_personal_part(task)
        else:
            ended, announced = ended or set(), announced or {}
            for kind, key_id, requester in ended:  # answered: a new request for the same key is new work at once
                self.submitted.pop((WORK_OF_TASK[kind], key_id.hex(), requester.hex() if requester else None), None)
            for service in SERVICES:
                if service in changed:
                    kept = [t for t in self.task_lists[service] if task_identity(t) not in ended]
                    present = {task_identity(t) for t in kept}
                    kept += [t for identity, t in announced.items()
                             if SERVICE_OF_TASK[identity[0]] == service and identity not in present]
                    self.task_lists[service] = kept
        task_lists = [self.task_lists[service] for service in SERVICES]
        self.synced.set()
        live: set[tuple] = set()  # responses to requests that are still pending
        migrating = await self._follow_migration(tasks, live, settle=full)
        pending = [(service, task) for service, service_tasks in zip(SERVICES, task_lists) for task in service_tasks]
        for _, task in pending:
            self._note_live(task, live)
        # ask the chain only about tasks this server would act on now (a busy chain has many pending tasks)
        candidates = [(service, task) for service, task in pending if self._would_act(task, migrating)]
        required = await asyncio.gather(*(
            api.is_response_required(service, self.self_id, task.key_id,
                                     task.requester if service == "document_key_shadow_retrieval" else None, at=at)
            for service, task in candidates))
        for (_, task), needed in zip(candidates, required):
            standby_key = ("common", task.key_id.hex(), task.requester.hex()) \
                if isinstance(task, RetrieveShadowDocumentKeyCommon) else None
            if not needed and standby_key in self.standby:
                self.standby[standby_key] = time.monotonic()  # asked once per standby, not on every wake-up
        # every pending personal part keeps its patience clock, asked about this time or not
        seen: set[tuple] = {("personal", t.key_id, t.requester) for _, t in pending
                            if isinstance(t, RetrieveShadowDocumentKeyPersonal)}
        commons = {("common", t.key_id.hex(), t.requester.hex()) for _, t in pending
                   if isinstance(t, RetrieveShadowDocumentKeyCommon)}
        for gone in set(self.standby) - commons:
            del self.standby[gone]
        for gone in set(self.requester_publics) - {(key_id, requester) for _, key_id, requester in seen}:
            del self.requester_publics[gone]
        await self._act_all(tasks, [task for (_, task), needed in zip(candidates, required) if needed], migrating,
                            seen)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("chain scanned", extra={"block": self.head_number, "tasks": len(pending),
                                              "asked": len(candidates), "ms": round((time.perf_counter() - started) * 1e3, 1)})
        for stale in set(self.first_seen) - seen:
            del self.first_seen[stale]
        # a finished request frees its key: an identical new request later is new work
        for key in list(self.submitted):
            if key not in live:
                del self.submitted[key]

    @staticmethod
    def _note_live(task: ServiceTask, live: set[tuple]) -> None:
        key_id = task.key_id.hex()
        if isinstance(task, GenerateServerKey):
            live.add(("generation", key_id, None))
        elif isinstance(task, RetrieveServerKey):
            live.add(("retrieval", key_id, None))
        elif isinstance(task, StoreDocumentKey):
            live.add(("store", key_id, None))
        elif isinstance(task, RetrieveShadowDocumentKeyCommon):
            live.add(("common", key_id, task.requester.hex()))
        else:  # the common part is over: an answer to it waiting here is of no more use
            live.add(("personal", key_id, task.requester.hex()))

    def _would_act(self, task: ServiceTask, migrating: bool) -> bool:
        """Whether `_act` could do anything for this task now (before asking the chain if a response is required)."""
        if self.self_id not in self.indices:
            return False  # outside the current set: the chain takes no response from it (a set change may add it)
        key_id = task.key_id.hex()
        if isinstance(task, GenerateServerKey):
            if not self._fresh(("generation", key_id, None)) or ("generation", task.key_id) in self.inflight:
                return False  # answered lately, or this server's generation session for it is running
            if self.core.storage.get(task.key_id) is not None and not self.core.storage.is_reported(task.key_id):
                return True  # every holder answers again an answer that never reached the chain
            # a new key, or a request for an existing one (its master answers it with an error)
            return not migrating and self.master_for(task.key_id, self.order) == self.self_id
        if isinstance(task, RetrieveServerKey):
            return self._fresh(("retrieval", key_id, None))
        if isinstance(task, StoreDocumentKey):
            return not migrating and self._fresh(("store", key_id, None))
        if isinstance(task, RetrieveShadowDocumentKeyCommon):
            return self._fresh(("common", key_id, task.requester.hex())) \
                and self._answers_common_now(task.key_id, task.requester)
        # personal parts: a participant whose part is ready submits it; the master starts the session (unless it
        # runs); the others only start their patience clock, and ask the chain again once it has run out
        assert isinstance(task, RetrieveShadowDocumentKeyPersonal)
        key = ("personal", task.key_id, task.requester)
        _, seen_at = self.requester_publics.get((task.key_id, task.requester), (None, -1))
        if self.core.personal_parts.ready(task.key_id, task.requester, seen_at):
            return True  # sent once (it is taken), whatever this server sent for an earlier request
        if not self._fresh(("personal", key_id, task.requester.hex())):
            return False  # this server's part was sent lately
        if key in self.inflight:
            return False  # its session runs
        if self._leads_shadow_retrieval(task.key_id):
            return True
        # the patience clock starts without asking the chain anything: only its end needs the chain's word
        first = self.first_seen.setdefault(key, time.monotonic())
        return time.monotonic() - first > PERSONAL_PART_PATIENCE

    def _act(self, tasks: asyncio.TaskGroup, task: ServiceTask, migrating: bool, now: float, seen: set[tuple],
             generations: list[GenerateServerKey]):
        """Start the work a task needs from this key server; a coroutine to await if it must ask the chain first.
        A new key this server leads is added to `generations` (the caller generates them together)."""
        key_id = task.key_id
        if isinstance(task, GenerateServerKey):
            held = self.core.storage.get(key_id)
            if held is not None and not self.core.storage.is_reported(key_id):
                # generated, but the answer never reached the chain (node or this server died): answer it again
                if self._fresh(("generation", key_id.hex(), None)):
                    self.respond("server_key_generated", {"id": key_id.hex(), "server_key_public": held.public.hex()})
            # keys made during a migration would miss the move to the new set: they wait for it to complete
            elif not migrating and self._fresh(("generation", key_id.hex(), None)) \
                    and self.master_for(key_id, self.order) == self.self_id \
                    and ("generation", key_id) not in self.inflight \
                    and all(other.key_id != key_id for other in generations):
                generations.append(task)
        elif isinstance(task, RetrieveServerKey):
            if self._fresh(("retrieval", key_id.hex(), None)):
                self._answer_retrieval(key_id)
        elif isinstance(task, StoreDocumentKey):
            if not migrating and self._fresh(("store", key_id.hex(), None)):
                self._store(task)
        elif isinstance(task, RetrieveShadowDocumentKeyCommon):
            if self._fresh(("common", key_id.hex(), task.requester.hex())):
                self.standby.pop(("common", key_id.hex(), task.requester.hex()), None)
                if self._leads_shadow_retrieval(key_id):
                    # the decryption runs while the common part is being confirmed: only the submission waits
                    self._spawn(tasks, ("personal", key_id, task.requester),
                                self._shadow_session(key_id, task.requester, early=True))
                return self._answer_common(key_id, task.requester)
        else:
            seen.add(("personal", key_id, task.requester))
            self._personal(tasks, key_id, task.requester, task.requester_public, now)
        return None

    async def _act_all(self, tasks: asyncio.TaskGroup, chosen: list[ServiceTask], migrating: bool,
                       seen: set[tuple]) -> None:
        """`_act` on every chosen task; the common parts each ask the chain's ACL first: all at once."""
        now = time.monotonic()
        commons, generations = [], []
        for task in chosen:
            work = self._act(tasks, task, migrating, now, seen, generations)
            if work is not None:
                commons.append(work)
        if generations:  # the new keys this server leads, generated together
            keys = [("generation", task.key_id) for task in generations]
            self._spawn_all(tasks, keys, self._generate(generations))
        await asyncio.gather(*commons)

    def _asked_for_personal_part(self, task: RetrieveShadowDocumentKeyPersonal) -> None:
        """The chain asks for this personal part at the current head (its event, or a task list read at it): a
        prepared part of a session run at this block or earlier answers it, and one that comes later is sent at
        once. Task lists that only follow events may keep a finished request a while, so they are no evidence."""
        self.requester_publics[(task.key_id, task.requester)] = (task.requester_public, self.head_number)

    def _spawn(self, tasks: asyncio.TaskGroup, key: tuple, work) -> None:
        self._spawn_all(tasks, [key], work)

    def _spawn_all(self, tasks: asyncio.TaskGroup, keys: list[tuple], work) -> None:
        """Run `work` as the one piece of work for all `keys` (none of which may be running already)."""
        if any(key in self.inflight for key in keys):
            work.close()  # already running: this coroutine is never started
            return
        self.inflight.update(keys)

        async def run() -> None:
            try:
                await work
            finally:
                self.inflight.difference_update(keys)

        tasks.create_task(run())

    def master_for(self, key_id: ServerKeyId, among: list[Address]) -> Address | None:
        """The first connected key server, in an order rotated by the key id (spreads load, survives a dead one)."""
        first = self._first_connected(key_id, among, 1)
        return first[0] if first else None

    def _first_connected(self, key_id: ServerKeyId, among: list[Address], count: int) -> list[Address]:
        """The first `count` connected key servers (this one counts as connected) in the order rotated by the key id."""
        cluster = self.core.cluster
        found: list[Address] = []
        for candidate in key_rotation(key_id, among):
            if candidate == self.self_id or cluster is None or cluster.is_connected(candidate):
                found.append(candidate)
                if len(found) == count:
                    break
        return found

    def _holders(self, key_id: ServerKeyId) -> frozenset[Address] | None:
        """The holders of this server's share of the key (None: no share)."""
        holders = self.holders.get(key_id)
        if holders is None:  # asked of every pending personal part on every block: read once, kept until a scan
            share = self.core.storage.get(key_id)
            if share is None:
                return None
            if len(self.holders) >= MAX_KEPT_HOLDERS:
                self.holders.clear()
            holders = self.holders[key_id] = frozenset(share.holders)
        return holders

    def _holder_ring(self, key_id: ServerKeyId) -> list[Address] | None:
        """The holders of this server's share of the key in the chain's order (None: no share)."""
        holders = self._holders(key_id)
        return None if holders is None else [h for h in self.order if h in holders]

    def _leads_shadow_retrieval(self, key_id: ServerKeyId) -> bool:
        """Whether this server holds a share of the key and is the master the rotation picks among its holders."""
        ring = self._holder_ring(key_id)
        return ring is not None and self.master_for(key_id, ring) == self.self_id

    def _answers_common_now(self, key_id: ServerKeyId, requester: Address) -> bool:
        """Whether this server answers a common part now: it is among the first n / 2 + 1 connected servers of the
        key's rotation (they alone can confirm it), or it has waited COMMON_STANDBY since it first saw it. A server
        with no share of the key answers (an error) at once."""
        ring = self._holder_ring(key_id)
        if ring is None:
            return True
        if self.self_id in self._first_connected(key_id, ring, len(self.order) // 2 + 1):
            return True
        first = self.standby.setdefault(("common", key_id.hex(), requester.hex()), time.monotonic())
        return time.monotonic() - first >= COMMON_STANDBY
