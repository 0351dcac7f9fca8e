"""Following the chain: the finalized heads subscription (heads that queued during a scan taken together, a dropped
cluster link waking the same wait), each block's events (what they announce is acted on at once, what they end
leaves the cached task lists), and when a full scan is due."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import AsyncIterator

from ...chain.errors import ChainError
from ...chain.rpc import Subscription, header_hash, header_number
from ...chain.secretstore_api import (
    SERVICE_OF_EVENT, PersonalPartTally, RetrieveShadowDocumentKeyPersonal, ServiceTask, task_from_event,
    task_identity, tasks_ended_by_event,
)
from .decide import COMMON_STANDBY
from .state import ServiceState, log

RESCAN_AFTER = 5.0  # scan again at least this often (without a new block, or one that changed nothing), for retries
SECRETSTORE_PALLET = "SecretStore"
ALL = "all"  # a block's events changed the set or something unknown: read everything again
TASKLESS_EVENTS = {"IdClaimed", "KeyClaimed", "KeyTransferred", "OwnerChanged"}  # ACL reads are made when needed


class ChainFollower(ServiceState):
    """The service's main loop. Uses the response queue (`_submit_responses`) and the decisions (`process`,
    `_act_all`, `_would_act`, `_asked_for_personal_part`)."""

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
