"""Bulk seeding for `./run bench scale`: many server keys made by the key servers' own batched generation, written
into the share databases of a stopped network.

Why: through the chain a generation at n = 5 costs every process its share of the request, five response
transactions, the node's block and each key server's reading of it. On this 2-core machine that is 200-250 keys/s
with the pallet's queue of 64 (measured by the benchmark itself at the smaller sizes), so 100,000 keys would take
7-8 minutes alone, and with the rest of the run (the migration of 100,000 keys, the n sweep) past the benchmark's
15-minute budget. The chain path is used for every size it can reach in time (10,000 keys by default); the rest is
seeded here, about three times as fast.

How: each worker process opens the five key servers' own share databases (`KeyStorage`, under each server's own
secret, so the rows are sealed exactly as a running key server seals them) and builds the five servers'
`KeyServerCore`s around them, linked by an in-memory transport that hands each cluster message to the addressed
core after a JSON round trip (the wire's encoding; the links' encryption is left out). Then the cores run the real
batched generation: `generate_server_keys` of a master (rotating over the five), `generation_batch_size(t)` keys a
batch, every participant dealing, checking and storing its shares with `insert_durably` as it does for chain
requests. Nothing is dealt by the benchmark, and every key is a fresh joint sharing of all five servers with its
Feldman commitments. Two things differ from chain-made keys: the chain has never heard of these keys (no claim, no
request, no generation event: they are background load, never requested), and no key server reports them. Every
figure of a size is measured on keys made through the chain (the probes) with the seeded keys beside them; the
migration of a size moves the seeded keys too, and checks each against its server key public as it does any other.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path

from secretstore import aio
from secretstore.crypto import Address, KeyPair, Public, Secret, ServerKeyId
from secretstore.keyserver.sessions import KeyServerCore, SessionError, generation_batch_size
from secretstore.keyserver.storage import KeyStorage


class MemoryLinks:
    """One core's view of the others: what `Cluster` offers the batched generation (request, notify, connection
    state), delivered in this process. Each message and answer goes through JSON as on the wire, so a handler
    sees the types it would see from a socket and nothing is shared between cores by reference."""

    def __init__(self, cores: dict[Address, KeyServerCore], me: Address) -> None:
        self.cores, self.me = cores, me

    def is_connected(self, peer: Address) -> bool:
        return peer in self.cores

    async def wait_connected(self, peers: list[Address], timeout: float) -> list[Address]:
        return [p for p in peers if p not in self.cores]

    async def request(self, peer: Address, body: dict, timeout: float = 15.0) -> dict:
        async with asyncio.timeout(timeout):
            reply = await self.cores[peer].handle(self.me, json.loads(json.dumps(body)))
        return json.loads(json.dumps(reply))

    async def notify(self, peer: Address, body: dict) -> None:
        await self.cores[peer].handle(self.me, json.loads(json.dumps(body)))


@dataclass(frozen=True)
class SeedJob:
    databases: list[str]  # each key server's keys.sqlite, in the order of `secrets`
    secrets: list[bytes] = field(repr=False)  # each key server's own secret (the databases are sealed under it)
    author: bytes  # the entity id the keys are generated for
    threshold: int
    count: int


async def _no_chain_access(key_id: ServerKeyId, requester: Address) -> bool:
    raise AssertionError("a batched generation asks no access check")


async def _generate(job: SeedJob) -> int:
    cores: dict[Address, KeyServerCore] = {}
    storages = []
    reported: dict[str, int] = {}

    def on_result(call: str, params: dict) -> None:  # what each participant would report to the chain
        if call == "server_key_generated":
            reported[params["id"]] = reported.get(params["id"], 0) + 1

    try:
        for database, raw in zip(job.databases, job.secrets):
            secret = Secret(raw)
            storage = KeyStorage(Path(database), secret)
            storages.append(storage)
            core = KeyServerCore(KeyPair(secret), storage, _no_chain_access, on_result)
            cores[core.self_id] = core
        for address, core in cores.items():
            core.cluster = MemoryLinks(cores, address)  # type: ignore[assignment]
        participants = sorted(cores, key=bytes)  # every core gets the same list, as from the chain's set
        author, size, made = Address(job.author), generation_batch_size(job.threshold), 0
        while made < job.count:
            requests = [(ServerKeyId(secrets.token_bytes(32)), author, job.threshold)
                        for _ in range(min(size, job.count - made))]
            master = cores[participants[(made // size) % len(participants)]]
            results = await master.generate_server_keys(requests, participants)
            failed = [k.hex() for k, r in results.items() if not isinstance(r, Public)]
            if failed:
                raise SessionError(f"seeding: {len(failed)} keys not generated, e.g. {failed[0]}: {results}")
            made += len(requests)
        incomplete = sum(1 for times in reported.values() if times != len(cores))
        if len(reported) != job.count or incomplete:
            raise SessionError(f"seeding: {len(reported)} keys reported, {incomplete} not by every participant")
        return made
    finally:
        for storage in storages:
            storage.close()


def _worker(job: SeedJob) -> int:
    return aio.run(_generate(job))


def seed_keys(databases: list[Path], server_secrets: list[Secret], author: Address, threshold: int, count: int,
              workers: int) -> float:
    """Generate `count` keys into the given share databases (their key servers stopped) with `workers` processes
    at once; returns the seconds it took. The databases take turns writing (SQLite's lock; each batch is one
    transaction per server)."""
    if count <= 0:
        return 0.0
    workers = max(1, min(workers, count))
    jobs = [SeedJob([str(d) for d in databases], [s.to_int().to_bytes(32, "big") for s in server_secrets],
                    bytes(author), threshold, count // workers + (1 if i < count % workers else 0))
            for i in range(workers)]
    started = time.perf_counter()
    # fresh interpreters: nothing of the benchmark's own event loop or connections is inherited
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        made = sum(pool.map(_worker, jobs))
    assert made == count, (made, count)
    return time.perf_counter() - started
