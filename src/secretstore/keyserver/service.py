"""The key server process: cluster, share storage and the chain service, under one structured lifetime.

The chain service talks to the chain only through Substrate JSON-RPC and the three runtime API traits MathChain's
runtime implements (`SecretStoreAclApi`, `SecretStoreKeyServerSetApi`, `SecretStoreServiceApi`), so the same process
serves our node and a MathChain node. On every new finalized block it refreshes the key server set and reads the
pending tasks of each service, so a key server that was down simply catches up. A response is submitted only while
the runtime says one from this key server is still required. Responses are composed by name from the chain's metadata.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import AsyncIterator

from substrateinterface import Keypair

from ..chain.connection import ChainConnection, TransactionSubmitter
from ..chain.errors import ChainError
from ..chain.rpc import Subscription, header_hash, header_number
from ..chain.secretstore_api import (
    SERVICES, GenerateServerKey, KeyServerSetSnapshot, RetrieveServerKey, RetrieveShadowDocumentKeyCommon,
    SERVICE_OF_EVENT, SERVICE_OF_TASK, PersonalPartTally, RetrieveShadowDocumentKeyPersonal, SecretStoreRuntimeApi,
    ServiceTask, StoreDocumentKey, task_from_event, task_identity, tasks_ended_by_event,
)
from ..crypto import Address, KeyPair, Public, Secret, ServerKeyId
from ..crypto.math import common_shadow_point
from ..process import listen_socket
from .metrics import key_server_metrics_server
from .net import Cluster, ClusterError, KeyServerDirectory, parse_network_address
from .sessions import KeyServerCore, SessionError, key_rotation
from .storage import DocumentKeyAlreadyStored, KeyStorage, KeyStorageError

log = logging.getLogger(__name__)

RESUBMIT_AFTER = 10.0
RESCAN_AFTER = 5.0  # scan again at least this often (without a new block, or one that changed nothing), for retries
SECRETSTORE_PALLET = "SecretStore"
ALL = "all"  # a block's events changed the set or something unknown: read everything again
TASKLESS_EVENTS = {"IdClaimed", "KeyClaimed", "KeyTransferred", "OwnerChanged"}  # ACL reads are made when needed
PERSONAL_PART_PATIENCE = 60.0  # a key server not picked for a retrieval reports an error after this long
# A shadow retrieval's common part is confirmed by n / 2 + 1 agreeing answers: the first that many connected servers in
# the key's rotation answer at once, the others only if it is still pending this long after they saw it (one of the
# first was slow, dead or wrong). Fewer transactions per retrieval, and the same answers.
COMMON_STANDBY = 0.5
MAX_ACCESS_CHECKS = 4096  # ACL answers kept for the current head
MAX_SUBMITTED_AT_ONCE = 64  # responses signed and sent together

# Which piece of work a response call answers (responses to the same piece are not repeated).
SERVICE_OF = {
    "server_key_generated": "generation", "server_key_generation_error": "generation",
    "server_key_retrieved": "retrieval", "server_key_retrieval_error": "retrieval",
    "document_key_stored": "store", "document_key_store_error": "store",
    "document_key_common_retrieved": "common", "document_key_shadow_retrieval_error": "common",
    "document_key_personal_retrieved": "personal",
    "start_migration": "migration-start", "confirm_migration": "migration-confirm",
}
# Which piece of work a task is (the first element of its responses' keys).
WORK_OF_TASK = {GenerateServerKey: "generation", RetrieveServerKey: "retrieval", StoreDocumentKey: "store",
                RetrieveShadowDocumentKeyCommon: "common", RetrieveShadowDocumentKeyPersonal: "personal"}
MAX_KEPT_HOLDERS = 100_000
RESPONSE_GRACE = 1.0  # seconds a response in the pool is taken as on its way, however many blocks pass
MIGRATION_RETRY = 20.0  # the migration master runs the set change again if it is still not complete after this


@dataclass
class ChainService:
    chain: ChainConnection
    core: KeyServerCore
    directory: KeyServerDirectory
    runtime_api: SecretStoreRuntimeApi
    submitter: TransactionSubmitter
    submissions: asyncio.Queue = field(default_factory=asyncio.Queue)
    indices: dict[Address, int] = field(default_factory=dict)
    order: list[Address] = field(default_factory=list)
    inflight: set[tuple] = field(default_factory=set)
    # response key -> (time, head when the pool accepted it; None while it is still being sent)
    submitted: dict[tuple, tuple[float, int | None]] = field(default_factory=dict)
    head_number: int = 0
    first_seen: dict[tuple, float] = field(default_factory=dict)
    synced: asyncio.Event = field(default_factory=asyncio.Event)
    snapshot: KeyServerSetSnapshot | None = None
    migration_runs: dict[bytes, float] = field(default_factory=dict)  # migration id -> when a full run succeeded
    task_lists: dict[str, list[ServiceTask]] = field(default_factory=dict)  # service -> its tasks at the last read
    personal_parts: PersonalPartTally = field(default_factory=PersonalPartTally)
    # key -> the holders of this server's share (shares come and go only by generation and set change; this is
    # cleared on every full scan, which is also where migrations settle, and a key with no share here is not kept)
    holders: dict[ServerKeyId, frozenset[Address]] = field(default_factory=dict)
    # common parts this server only answers if still pending after COMMON_STANDBY: response key -> when first seen
    standby: dict[tuple, float] = field(default_factory=dict)
    # pending personal parts: (key, requester) -> (the requester's public key the chain named (raw 64 bytes), the
    # last head at which it was seen pending)
    requester_publics: dict[tuple[ServerKeyId, Address], tuple[bytes, int]] = field(default_factory=dict)
    # ACL answers (in flight or done) at the current head: the common part and the shadow step ask the same
    access_checks: dict[tuple[ServerKeyId, Address], asyncio.Future] = field(default_factory=dict)
    access_checks_head: int = -1

    @property
    def self_id(self) -> Address:
        return self.core.self_id

    # ------------------------------------------------------------------------------------------------ chain reads
    async def check_access(self, key_id: ServerKeyId, requester: Address) -> bool:
        """The chain's ACL; one read per (key, requester) and head, however many steps of a retrieval ask."""
        if self.access_checks_head != self.head_number or len(self.access_checks) >= MAX_ACCESS_CHECKS:
            self.access_checks.clear()
            self.access_checks_head = self.head_number
        key = (key_id, requester)
        check = self.access_checks.get(key)
        if check is None:
            check = self.access_checks[key] = asyncio.ensure_future(self.runtime_api.check(requester, key_id))
            # a failed read is not kept: the next caller reads again (and `exception()` marks it retrieved)
            check.add_done_callback(
                lambda done: done.cancelled() or done.exception() is None or self.access_checks.pop(key, None))
        return await asyncio.shield(check)  # one caller cancelled leaves the read to the others

    def refresh_set(self, snap: KeyServerSetSnapshot, indices: dict[Address, int]) -> None:
        """Current set with the chain's indices for sessions; current, new and migration sets for who may connect."""
        self.snapshot, self.indices = snap, indices
        self.order = sorted(indices, key=indices.__getitem__)
        addresses = {}
        for ks_id, address in snap.members().items():
            if ks_id != self.self_id:
                try:
                    addresses[ks_id] = parse_network_address(address)
                except ValueError as exc:
                    log.warning("skipping key server with a bad address", extra={"error": str(exc)})
        self.directory.update(addresses)

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

    # --------------------------------------------------------------------------------------------- main loops
    async def run(self) -> None:
        """Scan the chain on every finalized head (by subscription; a quiet chain is scanned every RESCAN_AFTER
        seconds for the time-based retries); reconnect after losing the node."""
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self._submit_responses())
            while True:
                try:
                    await self.chain.connect()
                    async with await self.chain.finalized_heads() as heads, self._woken_by_peer_loss(heads):
                        block_hash, checked, scanned_at = None, None, 0.0
                        while True:
                            try:
                                async with asyncio.timeout(self._quiet_wait()):
                                    # every head queued meanwhile; none if a cluster link dropped: a session whose
                                    # master died is taken over by the next connected master without a block
                                    headers = await heads.queued()
                                if headers:
                                    numbers = [header_number(h) for h in headers]
                                    hashes = [header_hash(h) for h in headers]
                                    self.head_number, block_hash = numbers[-1], hashes[-1]
                                    follows = checked is not None and numbers == list(
                                        range(checked + 1, checked + 1 + len(numbers)))
                                    checked = numbers[-1]
                                    # followed even when a periodic scan is due: what the scan cannot see (which
                                    # requests ended in these blocks, the personal parts' tally) stays right
                                    if follows and await self._follow_events(tasks, numbers, hashes) \
                                            and time.monotonic() - scanned_at < RESCAN_AFTER:
                                        continue
                            except TimeoutError:
                                pass
                            scanned_at = time.monotonic()
                            await self.process(tasks, block_hash)
                except (ChainError, OSError) as exc:
                    log.warning("chain unavailable, retrying", extra={"error": str(exc)})
                    self.submitter.forget_nonce()
                    await asyncio.sleep(1.0)

    def _quiet_wait(self) -> float:
        """How long to wait for a block before scanning anyway: RESCAN_AFTER, or less while a common part waits out
        its standby (a quiet chain must not keep it waiting)."""
        if not self.standby:
            return RESCAN_AFTER
        due = min(self.standby.values()) + COMMON_STANDBY - time.monotonic()
        return min(RESCAN_AFTER, max(0.01, due))

    async def _follow_events(self, tasks: asyncio.TaskGroup, numbers: list[int], hashes: list[str]) -> bool:
        """Keep up with these consecutive blocks from their events alone: start the requests they announce, update
        the task lists and scan without reading them. False if a full scan is needed."""
        changed: set[str] = set()
        announced: dict[tuple, ServiceTask] = {}
        ended: set[tuple] = set()
        if len(hashes) == 1:  # the usual case, its events pushed already: no task to gather
            blocks_events = [await self.chain.events(hashes[0])]
        else:
            blocks_events = await asyncio.gather(*(self.chain.events(h) for h in hashes))
        for number, events in zip(numbers, blocks_events):
            ended_here: set[tuple] = set()
            changed |= self._changed(events, announced, ended_here, self.personal_parts)
            for kind, key_id, requester in ended_here:
                if kind is RetrieveShadowDocumentKeyPersonal:  # what was prepared for it is of no use now
                    self.core.personal_parts.forget(key_id, requester, through=number)
            ended |= ended_here
        if ALL in changed:
            return False
        if changed:
            await self._act_on_announced(tasks, list(announced.values()))
            await self.process(tasks, hashes[-1], changed, announced, ended)
        return True

    @staticmethod
    def _changed(events: list, announced: dict[tuple, ServiceTask], ended: set[tuple],
                 personal_parts: PersonalPartTally | None = None) -> set[str]:
        """What a block can have changed of the key servers' work, from its events: the services whose pending
        requests came or went, or ALL (the key server set, a runtime upgrade, an event this server does not know).
        A response that only adds support emits nothing and changes no task, and claims and transfers change none
        either: a block of those is not scanned. Any block after a gap is, and every block once RESCAN_AFTER has
        passed since the last full scan. New tasks the events announce go to `announced`, the identities of those
        they end to `ended` (blocks in order: a task announced and ended within them is not announced). A shadow
        retrieval's personal part ends with its last report, which `personal_parts` counts."""
        changed: set[str] = set()
        for event in events:
            if event.pallet == SECRETSTORE_PALLET:
                if event.name not in TASKLESS_EVENTS:
                    changed.add(SERVICE_OF_EVENT.get(event.name, ALL))
                task = task_from_event(event.name, event.attributes)
                if task is not None:
                    announced[task_identity(task)] = task
                gone = tasks_ended_by_event(event.name, event.attributes)
                if gone is None:
                    changed.add(ALL)
                    continue
                last = personal_parts.observe(event.name, event.attributes) if personal_parts is not None else None
                if last is not None:
                    gone = [*gone, last]
                for identity in gone:
                    ended.add(identity)
                    announced.pop(identity, None)
            elif event.name == "CodeUpdated":
                changed.add(ALL)
        return changed

    async def _act_on_announced(self, tasks: asyncio.TaskGroup, announced: list[ServiceTask]) -> None:
        """Start the work of requests announced in the blocks just finalized, before the scan reads the tasks: a
        request made in this block has no response from this server yet, so neither its listing nor
        `is_*_response_required` needs to be asked first (two round trips less on every hop). The scan that follows
        sees the work under way and does not start it again."""
        migrating = self.snapshot is not None and self.snapshot.migration is not None
        for task in announced:
            if isinstance(task, RetrieveShadowDocumentKeyPersonal):
                self._asked_for_personal_part(task)
        await self._act_all(tasks, [t for t in announced if self._would_act(t, migrating)], migrating, set())

    def _asked_for_personal_part(self, task: RetrieveShadowDocumentKeyPersonal) -> None:
        """The chain asks for this personal part at the current head (its event, or a task list read at it): a
        prepared part of a session run at this block or earlier answers it, and one that comes later is sent at
        once. Task lists that only follow events may keep a finished request a while, so they are no evidence."""
        self.requester_publics[(task.key_id, task.requester)] = (task.requester_public, self.head_number)

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

    @contextlib.asynccontextmanager
    async def _woken_by_peer_loss(self, heads: Subscription) -> AsyncIterator[None]:
        """Meanwhile a dropped cluster link wakes the wait for heads (`heads.queued()` returns none)."""
        cluster = self.core.cluster
        if cluster is None:
            yield
            return
        cluster.peer_lost_listeners.append(heads.wake)
        try:
            yield
        finally:
            cluster.peer_lost_listeners.remove(heads.wake)

    def respond(self, call: str, params: dict, key: tuple | None = None) -> None:
        """Queue a response; until it is on chain (or RESUBMIT_AFTER passes) the same answer is not worked out again."""
        key = key or (SERVICE_OF[call], params.get("id", params.get("migration_id")), params.get("requester"))
        self.submitted[key] = (time.monotonic(), None)
        self.submissions.put_nowait((call, params, key))

    async def _submit_responses(self) -> None:
        """Sends responses as they are ready: nonces are counted locally, nothing waits for a block, and the
        responses that queued while the last ones were sent go out together (`submit_many`)."""
        while True:
            batch = [await self.submissions.get()]
            while not self.submissions.empty() and len(batch) < MAX_SUBMITTED_AT_ONCE:
                batch.append(self.submissions.get_nowait())
            results = await self.submitter.submit_many([("SecretStore", call, params) for call, params, _ in batch])
            for (call, params, key), result in zip(batch, results):
                if isinstance(result, Exception):
                    self.submitted.pop(key, None)  # retried on a later block while still required
                    log.warning("response not submitted", extra={"call": call, "error": str(result)})
                    continue
                if call == "server_key_generated":  # durable in the node's pool: a later request is a new one
                    self.core.storage.mark_reported(ServerKeyId.from_hex(params["id"]))
                if key in self.submitted:
                    self.submitted[key] = (self.submitted[key][0], self.head_number)
                log.debug("response submitted", extra={"call": call, "key": params.get("id")})

    def _fresh(self, key: tuple) -> bool:
        """True unless this response is still being sent or was accepted so recently that it cannot be on chain yet.
        Once two blocks have passed since the pool accepted it, a response the runtime still wants is new work (a new
        request for the same key) or was lost."""
        mark = self.submitted.get(key)
        if mark is None:
            return True
        when, head = mark
        waited = time.monotonic() - when
        if head is None:
            return waited > RESUBMIT_AFTER
        # blocks come every few ms under load with instant seal: a response also gets a moment to be counted
        return (self.head_number > head + 1 and waited > RESPONSE_GRACE) or waited > RESUBMIT_AFTER

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

    # ---------------------------------------------------------------------------------------- servers set change
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
        elif self.self_id not in new and (storage.key_ids() or storage.pending_migrations()):
            count = storage.delete_all()
            log.info("removed from the key server set: shares deleted", extra={"keys": count})

    # ------------------------------------------------------------------------------------------------ services
    async def _generate(self, requests: list[GenerateServerKey]) -> None:
        started = time.perf_counter()
        results = await self.core.generate_server_keys(
            [(task.key_id, task.author, task.threshold) for task in requests], list(self.order))
        for key_id, result in results.items():
            if isinstance(result, SessionError):
                log.warning("generation failed", extra={"key": key_id.hex(), "error": str(result)})
                self.respond("server_key_generation_error", {"id": key_id.hex()})
        log.debug("generation finished", extra={"keys": len(requests),
                                                "ms": round((time.perf_counter() - started) * 1e3, 1)})

    def _answer_retrieval(self, key_id: ServerKeyId) -> None:
        share = self.core.storage.get(key_id)
        if share is None:
            self.respond("server_key_retrieval_error", {"id": key_id.hex()})
        else:
            self.respond("server_key_retrieved", {"id": key_id.hex(), "server_key_public": share.public.hex(),
                                                  "threshold": share.threshold})

    def _store(self, task: StoreDocumentKey) -> None:
        key_id = task.key_id
        share = self.core.storage.get(key_id)
        if share is not None and share.author == task.author and share.common_point is not None \
                and bytes(share.common_point) == bytes(task.common_point) \
                and share.encrypted_point is not None and bytes(share.encrypted_point) == bytes(task.encrypted_point):
            # stored already, the answer lost on the way (node or this server died): the same answer again
            self.respond("document_key_stored", {"id": key_id.hex()})
            return
        try:
            if share is None:
                raise KeyStorageError("unknown server key")
            if share.author != task.author:
                raise KeyStorageError("only the key's author may store its document key")
            self.core.storage.store_document_key(key_id, Public(task.common_point), Public(task.encrypted_point))
        except (KeyStorageError, DocumentKeyAlreadyStored, ValueError) as exc:
            log.info("document key not stored", extra={"key": key_id.hex(), "reason": str(exc)})
            self.respond("document_key_store_error", {"id": key_id.hex()})
            return
        self.respond("document_key_stored", {"id": key_id.hex()})

    async def _answer_common(self, key_id: ServerKeyId, requester: Address) -> None:
        share = self.core.storage.get(key_id)
        if share is None or share.common_point is None or not await self.check_access(key_id, requester):
            self.respond("document_key_shadow_retrieval_error", {"id": key_id.hex(), "requester": requester.hex()})
            return
        self.respond("document_key_common_retrieved", {
            "id": key_id.hex(), "requester": requester.hex(),
            "common_point": common_shadow_point(share.threshold, share.common_point).hex(),
            "threshold": share.threshold})

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

    def _personal(self, tasks: asyncio.TaskGroup, key_id: ServerKeyId, requester: Address,
                  raw_requester_public: bytes, now: float) -> None:
        try:
            requester_public = Public(raw_requester_public)
        except ValueError:
            # only a chain that does not check the curve can hold this; nobody can decrypt for it: refuse it
            self.respond("document_key_shadow_retrieval_error", {"id": key_id.hex(), "requester": requester.hex()},
                         key=("personal", key_id.hex(), requester.hex()))
            return
        key = ("personal", key_id, requester)
        self.first_seen.setdefault(key, now)
        response_key = ("personal", key_id.hex(), requester.hex())
        if self._release_personal_part(key_id, requester):
            return
        if self._leads_shadow_retrieval(key_id):
            if self._fresh(response_key):  # no early session, or it failed: run it now
                self._spawn(tasks, key, self._shadow_session(key_id, requester))
        elif now - self.first_seen[key] > PERSONAL_PART_PATIENCE and self._fresh(response_key):
            # nobody picked this server and the request is still open: answer it rather than leave it hanging
            self.respond("document_key_shadow_retrieval_error", {"id": key_id.hex(), "requester": requester.hex()},
                         key=response_key)

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

    def personal_part_ready(self, key_id: ServerKeyId, requester: Address) -> None:
        """A master's report made this server's personal part: submit it now if the chain already asks for it."""
        self._release_personal_part(key_id, requester)

    def _release_personal_part(self, key_id: ServerKeyId, requester: Address) -> bool:
        """Submit the prepared personal part once the chain has named the requester's public key. True if sent."""
        raw, seen_at = self.requester_publics.get((key_id, requester), (None, -1))
        if raw is None or not self.core.personal_parts.ready(key_id, requester, seen_at):
            return False  # not asked for yet, or only by an earlier request for the same key and requester
        try:
            requester_public = Public(raw)
        except ValueError:
            return False  # `_personal` answers a bad public with an error
        if requester_public.address() != requester:
            return False
        params = self.core.personal_part(key_id, requester_public)
        if params is None:
            return False
        self.respond("document_key_personal_retrieved", params)
        return True

    async def _shadow_session(self, key_id: ServerKeyId, requester: Address, early: bool = False) -> None:
        """The master's shadow retrieval. An early one (started with the common part) that fails answers nothing:
        the common part decides the request, and the personal part, once asked for, runs the session again."""
        try:
            # an early part must wait for the chain to ask for it after this head (before, it could only be asked by
            # an earlier request for the same key and requester); a part asked for already goes out at once
            await self.core.retrieve_document_key_shadow(key_id, requester, dict(self.indices),
                                                         self.head_number if early else 0)
        except SessionError as exc:
            # this server's own part of a failed session is not a result: the personal part runs the session anew
            self.core.personal_parts.forget(key_id, requester)
            if early:
                log.info("early shadow retrieval failed", extra={"key": key_id.hex(), "error": str(exc)})
                return
            log.warning("shadow retrieval failed", extra={"key": key_id.hex(), "error": str(exc)})
            self.respond("document_key_shadow_retrieval_error", {"id": key_id.hex(), "requester": requester.hex()},
                         key=("personal", key_id.hex(), requester.hex()))


@dataclass(frozen=True)
class HttpSettings:
    host: str
    port: int
    cors: str | None = None  # --http-cors: None/"none", "*", or comma-separated origins


async def run_key_server(self_secret: Secret, db_path: Path, net_host: str, net_port: int, sub_url: str,
                         signer: Keypair, stop: asyncio.Event | None = None, http: HttpSettings | None = None,
                         metrics: tuple[str, int] | None = None, faults=None) -> None:
    keypair = KeyPair(self_secret)
    listener = listen_socket(net_host, net_port)  # a taken port fails here, before the database is made
    try:
        storage = KeyStorage(Path(db_path) / "keys.sqlite")
    except BaseException:
        listener.close()
        raise
    chain = ChainConnection(sub_url)
    directory = KeyServerDirectory()
    service: ChainService
    core = KeyServerCore(keypair, storage, lambda k, r: service.check_access(k, r), lambda c, p: service.respond(c, p))
    service = ChainService(chain, core, directory, SecretStoreRuntimeApi(chain.state_call),
                           TransactionSubmitter(chain, signer))
    core.personal_part_ready = service.personal_part_ready
    cluster = Cluster(keypair, net_host, net_port, directory, core.handle, listener)
    core.cluster = cluster
    metrics_server = key_server_metrics_server(core, cluster, service, storage, metrics)  # None unless --metrics-port
    if faults is not None:  # test-only (keyserver.faults; refused without SECRETSTORE_FAULTS=1)
        core.faults = faults
        log.warning("FAULT INJECTION ACTIVE", extra={"faults": faults})
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    http_runner = None
    try:
        if metrics_server is not None:
            await metrics_server.start()
        if http is not None:  # Parity's HTTP API; it gets the session core, the ACL check and the current set
            from .http import Cors, HttpApi, start_http_api
            api = HttpApi(core, service.check_access, lambda: list(service.order), Cors.parse(http.cors),
                          migrating=lambda: service.snapshot is not None and service.snapshot.migration is not None)
            http_runner = await start_http_api(api, http.host, http.port)
        print(f"SecretStore key server {keypair.address.hex()}: cluster on {net_host}:{net_port}, chain {sub_url}"
              + (f", HTTP on http://{http.host}:{http.port}" if http is not None else ""), flush=True)
        async with asyncio.TaskGroup() as tasks:
            workers = [tasks.create_task(cluster.run()), tasks.create_task(service.run())]
            await stop.wait()
            for worker in workers:
                worker.cancel()
    finally:
        if metrics_server is not None:
            await metrics_server.stop()
        if http_runner is not None:
            await http_runner.cleanup()
        await chain.close()
        storage.close()
