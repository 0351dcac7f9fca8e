"""The keys sweep of `./run bench scale`: one network of n = 5 key servers (t = 2, instant seal) and a sixth one
outside the set, growing through the sizes asked for, with at each size:

- keys: made through the chain by four requesters with 60 generations pending at once (the pallet queues at most
  64 per service) up to `chain_keys`, beyond that seeded in bulk by the key servers' own batched generation into
  their stopped databases (`scale_seed`, which says why and how);
- restart-to-ready of each key server in turn: from starting its process until its HTTP API answers a server key
  retrieval of a probe key (its share database read, the chain's ACL asked) and it has scanned the chain's head as
  it was at the restart (its `chain_processed_block` metric); the moment its cluster links are all up again is
  shown beside it (`linked_s`: the peers that dial it redial on a back-off of up to 2 s, whatever it holds);
- latency, median of `rounds` after one warm-up each, taken in turns: document key shadow retrieval through the
  chain (request to the requester's decrypted key) and threshold Schnorr signing over the HTTP API, both on the same
  20 probe keys (made through the chain first) at every size, so that only the keys beside them change; in two
  windows, before and after the restarts, the lower median of each counting (both are shown: on a shared machine
  other work comes and goes, and a window it falls on says more about it than about the keys);
- each key server's RSS (/proc/<pid>/status VmRSS) after that work, and the share database's bytes per key;
- the node: `state_getStorage` (System.Account of //Alice), `chain_getBlock` of block 1 and of the head, median of
  `rounds` over one WebSocket, with the chain's height;
- a migration to the sixth key server end to end (from the add_key_server submission until the chain's
  MigrationCompleted; then until the sixth holds every key as its active version), and at every size but the last
  its removal again (the same, back to the five), so that the next size is measured at n = 5 again.

At the first and the last size a key server is stopped for `catchup_blocks` blocks (one System.remark each) and its
catch-up measured like a restart.
"""

from __future__ import annotations

import asyncio
import secrets
import sqlite3
import statistics
import sys
import time
from pathlib import Path

import aiohttp

from scale_seed import seed_keys
from sessions import make_requesters, requester, retrieve
from secretstore.chain.rpc import AsyncRpc
from secretstore.client import AsyncSecretStoreClient, AsyncSecretStoreHttpClient
from secretstore.client.http import HttpApiError, verify_schnorr
from secretstore.codec.hashing import blake2_128_concat, storage_prefix
from secretstore.crypto import Public, ServerKeyId
from secretstore.devnet import LocalNetwork
from secretstore.keyserver.testing import KeyServerProcess
from substrateinterface import Keypair

SERVERS, THRESHOLD = 5, 2
PROBES = 20
IN_FLIGHT = 60  # generations pending at once: below the pallet's queue of 64
REQUESTERS = 4
READY_TIMEOUT = 60.0


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def database_bytes(ks: KeyServerProcess) -> int:
    """The share database on disk: the file and its write-ahead log."""
    return sum(p.stat().st_size for p in ks.db_path.glob("keys.sqlite*") if not p.name.endswith("-shm"))


def active_shares(ks: KeyServerProcess) -> int:
    with sqlite3.connect(f"file:{ks.db_path / 'keys.sqlite'}?mode=ro", uri=True, timeout=30) as conn:
        return conn.execute("SELECT COUNT(*) FROM key_shares").fetchone()[0]


def median_ms(times: list[float]) -> float:
    return round(statistics.median(times) * 1000, 2)


async def metric(session: aiohttp.ClientSession, port: int, name: str) -> float | None:
    """One value of a key server's Prometheus metrics (None while it does not answer)."""
    try:
        async with session.get(f"http://127.0.0.1:{port}/metrics") as response:
            text = await response.text()
    except (aiohttp.ClientError, OSError, asyncio.TimeoutError):
        return None
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def peers_linked(ks: KeyServerProcess, since: int) -> int:
    """Peers connected now, from the log this process wrote after byte `since`."""
    with open(ks.log_path, "rb") as log:
        log.seek(since)
        text = log.read().decode(errors="replace")
    peers: dict[str, bool] = {}
    for line in text.splitlines():
        if "peer connected" in line or "peer disconnected" in line:
            peers[line.rsplit("peer=", 1)[-1].split()[0]] = "peer connected" in line
    return sum(peers.values())


class KeysSweep:
    def __init__(self, base: Path, sizes: list[int], chain_keys: int, rounds: int, catchup_blocks: int,
                 workers: int) -> None:
        self.base, self.sizes, self.chain_keys = base, sizes, chain_keys
        self.rounds, self.catchup_blocks, self.workers = rounds, catchup_blocks, workers
        self.network = LocalNetwork(base, key_servers=SERVERS + 1, initial_set=SERVERS, metrics=True)
        self.secret = requester(0)[1]  # the probes' owner and every retrieval's and signature's requester
        self.probes: list[tuple[ServerKeyId, Public, Public]] = []  # key, server key public, document key
        self.held = 0  # keys the set holds
        self.through_chain = 0

    @property
    def url(self) -> str:
        return self.network.node.ws_url  # type: ignore[union-attr]

    @property
    def members(self) -> list[KeyServerProcess]:
        return self.network.servers[:SERVERS]

    # ------------------------------------------------------------------------------------------------ keys
    async def generate(self, clients: list[AsyncSecretStoreClient], count: int) -> float:
        """`count` new keys through the chain, IN_FLIGHT pending at once; seconds taken."""
        left = count
        started = time.perf_counter()
        step = max(1, count // 5)

        async def worker(client: AsyncSecretStoreClient) -> None:
            nonlocal left
            while left > 0:
                left -= 1
                await client.generate_server_key(ServerKeyId(secrets.token_bytes(32)), THRESHOLD)
                self.held += 1
                self.through_chain += 1
                if self.through_chain % step == 0:
                    say(f"  {self.through_chain} keys through the chain")

        await asyncio.gather(*(worker(clients[i % len(clients)]) for i in range(IN_FLIGHT)))
        return time.perf_counter() - started

    async def make_probes(self, owner: AsyncSecretStoreClient) -> None:
        keys = [ServerKeyId(secrets.token_bytes(32)) for _ in range(PROBES)]
        await asyncio.gather(*(owner.claim_key(k) for k in keys))
        publics = await asyncio.gather(*(owner.generate_server_key(k, THRESHOLD) for k in keys))
        documents = await asyncio.gather(*(owner.store_new_document_key(k, p, self.secret)
                                           for k, p in zip(keys, publics)))
        self.probes = [(k, p, d.document_key) for k, p, d in zip(keys, publics, documents)]
        self.held += PROBES
        self.through_chain += PROBES

    async def seed(self, count: int) -> float:
        """`count` keys into the stopped set's databases (scale_seed); the set is started again afterwards."""
        for ks in self.members:
            await asyncio.to_thread(ks.stop)
        seconds = await asyncio.to_thread(
            seed_keys, [ks.db_path / "keys.sqlite" for ks in self.members], [ks.secret for ks in self.members],
            requester(0)[1].public().address(), THRESHOLD, count, self.workers)
        self.held += count
        for ks in self.members:
            ks.start()
        await asyncio.to_thread(self.network.wait_connected, READY_TIMEOUT)
        return seconds

    # --------------------------------------------------------------------------------------------- figures
    async def head(self, rpc: AsyncRpc) -> int:
        return int((await rpc.request("chain_getHeader"))["number"], 16)

    async def until_ready(self, ks: KeyServerProcess, started: float, head: int, log_from: int,
                          rpc: AsyncRpc) -> dict:
        """Seconds from `started` until the key server answers over HTTP, has scanned `head`, and is linked."""
        key, public, _ = self.probes[0]
        found: dict[str, float] = {}
        timeout = aiohttp.ClientTimeout(total=2)
        async with aiohttp.ClientSession(timeout=timeout) as session, \
                AsyncSecretStoreHttpClient(ks.http_url, timeout=5) as api:  # type: ignore[arg-type]
            while len(found) < 3:
                if time.perf_counter() - started > READY_TIMEOUT:
                    raise TimeoutError(f"key server {ks.index + 1} not ready: {found}")
                if not ks.alive():
                    raise RuntimeError(f"key server {ks.index + 1} exited: {ks.log_path.read_text()[-2000:]}")
                if "http_s" not in found:
                    try:
                        if await api.retrieve_server_key(key, self.secret) == public:
                            found["http_s"] = time.perf_counter() - started
                    except (aiohttp.ClientError, OSError, asyncio.TimeoutError, HttpApiError):
                        pass  # not listening yet, or listening before its chain connection is up (500)
                if "caught_up_s" not in found:
                    processed = await metric(session, ks.metrics_port, "secretstore_keyserver_chain_processed_block")  # type: ignore[arg-type]
                    if processed is not None and processed >= head:
                        found["caught_up_s"] = time.perf_counter() - started
                if "linked_s" not in found and peers_linked(ks, log_from) >= SERVERS - 1:
                    found["linked_s"] = time.perf_counter() - started
                await asyncio.sleep(0.02)
        found["ready_s"] = max(found["http_s"], found["caught_up_s"])
        return found

    async def restart(self, ks: KeyServerProcess, rpc: AsyncRpc, blocks_away: int = 0) -> dict:
        """Stop a key server (SIGTERM), let `blocks_away` blocks pass, start it; its readiness."""
        await asyncio.to_thread(ks.stop)
        if blocks_away:
            async with AsyncSecretStoreClient(self.url, "//Eve", timeout=120) as eve:
                for i in range(blocks_away):  # one block each: instant seal, and each waits for its block
                    await eve.request("remark", {"remark": "0x" + i.to_bytes(4, "big").hex()}, pallet="System")
        head = await self.head(rpc)
        log_from = ks.log_path.stat().st_size
        started = time.perf_counter()
        ks.start()
        return await self.until_ready(ks, started, head, log_from, rpc)

    async def workload(self, owner: AsyncSecretStoreClient) -> tuple[float, float]:
        """Median shadow retrieval and Schnorr signing (ms) on the probe keys, taken in turns so that a passing
        load on the machine weighs on both alike; the first of each is a warm-up."""
        shadow, schnorr = [], []
        async with AsyncSecretStoreHttpClient(self.members[0].http_url, timeout=60) as api:  # type: ignore[arg-type]
            for round_ in range(self.rounds + 1):
                key, public, document = self.probes[round_ % PROBES]
                started = time.perf_counter()
                assert (await retrieve(owner, key, self.secret))[0] == document
                shadow.append(time.perf_counter() - started)
                message = secrets.token_bytes(32)
                started = time.perf_counter()
                signature = await api.sign_schnorr(key, self.secret, message)
                schnorr.append(time.perf_counter() - started)
                assert verify_schnorr(public, message, signature)
        return median_ms(shadow[1:]), median_ms(schnorr[1:])

    async def node_figures(self, rpc: AsyncRpc) -> dict:
        alice = Keypair.create_from_uri("//Alice").public_key
        account = "0x" + (storage_prefix("System", "Account") + blake2_128_concat(alice)).hex()
        old, new = await rpc.request("chain_getBlockHash", [1]), await rpc.request("chain_getBlockHash")
        figures: dict[str, float] = {}
        for name, method, params in (("get_storage_ms", "state_getStorage", [account]),
                                     ("get_old_block_ms", "chain_getBlock", [old]),
                                     ("get_new_block_ms", "chain_getBlock", [new])):
            times = []
            for _ in range(self.rounds + 1):
                started = time.perf_counter()
                assert await rpc.request(method, params) is not None
                times.append(time.perf_counter() - started)
            figures[name] = median_ms(times[1:])
        node_dir = self.network.node.base_path  # type: ignore[union-attr]
        return {"height": await self.head(rpc), **figures,
                "node_db_mb": round(sum(p.stat().st_size for p in Path(node_dir).rglob("*") if p.is_file()) / 2**20, 1)}

    async def migrate(self, owner: AsyncSecretStoreClient, add: bool) -> dict:
        """Add the sixth key server (or remove it again): seconds to MigrationCompleted, then to the keys settled."""
        extra = self.network.servers[SERVERS]
        call, params = ("add_key_server", {"id": extra.id.hex(), "network_address": extra.address}) if add \
            else ("remove_key_server", {"id": extra.id.hex()})
        async with AsyncSecretStoreClient(self.url, "//Alice", timeout=1800) as alice:
            started = time.perf_counter()
            _, events = await alice.request(call, params, pallet="SecretStore", timeout=1800,
                                            match=lambda e: e.pallet == "SecretStore" and e.name == "MigrationCompleted")
            completed = time.perf_counter() - started
        assert events and events[0].name == "MigrationCompleted", events
        holders = self.members + [extra] if add else self.members
        deadline = time.monotonic() + 120
        expected = [self.held] * len(holders) + ([] if add else [0])
        while (held := [await asyncio.to_thread(active_shares, ks) for ks in holders + ([] if add else [extra])]) \
                != expected:
            if time.monotonic() > deadline:
                raise TimeoutError(f"keys not settled after the migration: {held}, expected {expected}")
            await asyncio.sleep(0.2)
        settled = time.perf_counter() - started
        key, _, document = self.probes[0]  # the moved shares still decrypt
        assert (await retrieve(owner, key, self.secret))[0] == document
        return {"s": round(completed, 2), "settled_s": round(settled, 2),
                "per_key_ms": round(completed / self.held * 1000, 3)}

    # ------------------------------------------------------------------------------------------------- run
    async def measure(self, size: int, owner: AsyncSecretStoreClient, rpc: AsyncRpc) -> dict:
        """Latency in two windows, before and after restarting every key server (the lower median of each kind
        counts: other work on the machine comes and goes, the cost of the keys stays), RSS after the second."""
        before = [round(rss_mb(ks.process.pid), 1) for ks in self.members]  # type: ignore[union-attr]
        first = await self.workload(owner)
        restarts = [await self.restart(ks, rpc) for ks in self.members]
        await asyncio.to_thread(self.network.wait_connected, READY_TIMEOUT)
        second = await self.workload(owner)
        rss = [round(rss_mb(ks.process.pid), 1) for ks in self.members]  # type: ignore[union-attr]
        db = statistics.mean(database_bytes(ks) for ks in self.members)
        work = {"shadow_ms": min(first[0], second[0]), "schnorr_ms": min(first[1], second[1]),
                "shadow_windows_ms": [first[0], second[0]], "schnorr_windows_ms": [first[1], second[1]]}
        return {"keys": size, **work, "rss_mb": rss, "rss_max_mb": max(rss), "rss_before_restart_mb": before,
                "db_bytes_per_key": round(db / size), "db_mb": round(db / 2**20, 1),
                "restart_s": round(statistics.median(r["ready_s"] for r in restarts), 3),
                "restart_max_s": round(max(r["ready_s"] for r in restarts), 3),
                "restart_http_s": round(statistics.median(r["http_s"] for r in restarts), 3),
                "linked_s": round(statistics.median(r["linked_s"] for r in restarts), 3),
                "node": await self.node_figures(rpc)}

    async def catch_up(self, rpc: AsyncRpc) -> dict:
        say(f"catch-up: key server 2 stopped for {self.catchup_blocks} blocks ...")
        started = time.perf_counter()
        found = await self.restart(self.members[1], rpc, self.catchup_blocks)
        await asyncio.to_thread(self.network.wait_connected, READY_TIMEOUT)
        return {"blocks": self.catchup_blocks, "height": await self.head(rpc),
                "ready_s": round(found["ready_s"], 3), "caught_up_s": round(found["caught_up_s"], 3),
                "blocks_made_s": round(time.perf_counter() - started - found["ready_s"], 1)}

    async def run(self) -> dict:
        say(f"keys sweep: n = {SERVERS} + 1, sizes {self.sizes}, through the chain up to {self.chain_keys} ...")
        await asyncio.to_thread(self.network.start, None, 120)
        clients = await make_requesters(self.url, REQUESTERS)
        owner = clients[0]
        results: dict = {"sizes": []}
        try:
            async with AsyncRpc(self.url) as rpc:
                await self.make_probes(owner)
                for index, size in enumerate(self.sizes):
                    entry: dict = {}
                    chain_part = max(0, min(size, self.chain_keys) - self.held)
                    if chain_part:
                        say(f"{size} keys: {chain_part} through the chain ...")
                        seconds = await self.generate(clients, chain_part)
                        entry["chain"] = {"keys": chain_part, "s": round(seconds, 1),
                                          "per_s": round(chain_part / seconds, 1)}
                    if size > self.held:
                        count = size - self.held
                        say(f"{size} keys: seeding {count} by batched generation ({self.workers} processes) ...")
                        seconds = await self.seed(count)
                        entry["seeded"] = {"keys": count, "s": round(seconds, 1), "per_s": round(count / seconds, 1)}
                    held = [await asyncio.to_thread(active_shares, ks) for ks in self.members]
                    assert held == [size] * SERVERS, held
                    if index == 0:
                        results["catch_up_first"] = await self.catch_up(rpc)
                    say(f"{size} keys: restarts, latency, RSS, node ...")
                    entry.update(await self.measure(size, owner, rpc))
                    last = index == len(self.sizes) - 1
                    if last:
                        results["catch_up_last"] = await self.catch_up(rpc)
                    say(f"{size} keys: migration to a sixth key server ...")
                    entry["migration"] = await self.migrate(owner, add=True)
                    entry["rss_after_migration_mb"] = [round(rss_mb(ks.process.pid), 1)  # type: ignore[union-attr]
                                                       for ks in self.network.servers]
                    if not last:
                        say(f"{size} keys: removing it again ...")
                        entry["removal"] = await self.migrate(owner, add=False)
                    results["sizes"].append(entry)
                    say(f"  {entry}")
        finally:
            await asyncio.gather(*(c.aclose() for c in clients))
            await asyncio.to_thread(self.network.stop)
        return results
