"""Flood: does a key server network keep serving its legitimate users while one requester abuses it?

A loopback network of n = 5 key servers (t = 2) and a node, all with their default limits. A legitimate requester
(//Alice) runs rounds of three requests, each timed from submission to its checked result: a server key generation
through the chain, a document key retrieval over key server 1's HTTP API and a document key shadow retrieval through
the chain (decrypted locally). First alone (the baseline, measured in this run), then while
- a flooding requester (//Bob) sends 1,000 requests to the same HTTP API (document key retrievals and Schnorr
  signings of a key of its own, so that every request it gets admitted costs the cluster real work), 250 a second,
  each without waiting for the others (an open loop, as a flood is);
- and connections are opened to the node past its limit (`--rpc-max-connections`, 100 by default), held open while
  the flood lasts, and the node's refusals counted.
The legitimate rounds go on while the flood lasts. Memory: the peak resident size (VmHWM) of the node and of every
key server, after the baseline and at the end.

Targets: every legitimate request answered and correct, their 95th percentile within 3x of the baseline's, memory
bounded, nothing lost (a request without any answer, flood or legitimate, is lost).
Ends with a JSON line of the node's connections, then {"flood_requests", "refused_429", "legit_requests",
"legit_ok", "legit_p95_ms", "legit_idle_p95_ms", "max_rss_mb", "lost"}.
Run: ./run bench flood [IDLE_ROUNDS]   (default 40 rounds of three requests for the baseline, half of them before
the flood and half after, so that the machine's drift falls on both)
"""

from __future__ import annotations

import asyncio
import json
import secrets
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import aiohttp

from secretstore import aio
from secretstore.client import AsyncSecretStoreClient, AsyncSecretStoreHttpClient
from secretstore.client.http import request_signature
from secretstore.crypto import Secret, ServerKeyId
from secretstore.devnet import LocalNetwork
from secretstore.node.rpc.limits import DEFAULT_MAX_CONNECTIONS

N, T = 5, 2
ALICE, BOB = Secret(b"\x01" * 32), Secret(b"\x02" * 32)  # //Alice's and //Bob's entities on the dev chain
FLOOD_REQUESTS = 1000
FLOOD_SECONDS = 4.0  # 250 requests a second: far more than the bound per requester lets through
NODE_CONNECTIONS = 150  # opened on top of those already there; the node's default limit is 100
HTTP_TIMEOUT = 60.0


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20, method="inclusive")[-1] if len(values) > 1 else values[0]


def peak_rss_mb(network: LocalNetwork) -> dict[str, float]:
    """Peak resident size of each process of the network (Linux /proc), in MB."""
    processes = {"node": network.node.process} | {f"ks{ks.index + 1}": ks.process for ks in network.servers}  # type: ignore[union-attr]
    peaks = {}
    for name, process in processes.items():
        status = Path(f"/proc/{process.pid}/status").read_text()  # type: ignore[union-attr]
        kb = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:"))
        peaks[name] = kb / 1024
    return peaks


class Legit:
    """The legitimate requester: rounds of a chain generation, an HTTP retrieval and a chain shadow retrieval."""

    def __init__(self, chain: AsyncSecretStoreClient, http: AsyncSecretStoreHttpClient, stored: list) -> None:
        self.chain, self.http = chain, http
        self.stored = stored  # (key id, document key) pairs with a document key stored
        self.times: dict[str, list[float]] = {"generation": [], "http_retrieval": [], "shadow_retrieval": []}
        self.requests = self.ok = self.unanswered = 0

    async def round(self, i: int) -> None:
        key_id = ServerKeyId(secrets.token_bytes(32))
        await self.chain.claim_key(key_id)  # a claim is a transaction, not a key server request: not timed
        key, document_key = self.stored[i % len(self.stored)]
        for kind, request in (("generation", lambda: self.chain.generate_server_key(key_id, T)),
                              ("http_retrieval", lambda: self.http.retrieve_document_key(key, ALICE)),
                              ("shadow_retrieval", lambda: self.chain.retrieve_document_key(key, ALICE))):
            self.requests += 1
            started = time.perf_counter()
            try:
                result = await asyncio.wait_for(request(), HTTP_TIMEOUT)
            except TimeoutError:
                self.unanswered += 1
                continue
            except Exception as exc:  # answered, with an error: not ok
                print(f"legit {kind} failed: {exc}", file=sys.stderr)
                continue
            self.times[kind].append(time.perf_counter() - started)
            if kind == "generation" or result == document_key:
                self.ok += 1

    def all_times(self) -> list[float]:
        return [t for times in self.times.values() for t in times]


async def flood(url: str, key_id: ServerKeyId, duration: float, statuses: Counter) -> None:
    """FLOOD_REQUESTS requests of //Bob, one every duration / FLOOD_REQUESTS seconds, none waiting for another."""
    signature = request_signature(BOB, key_id).hex()
    targets = [f"{url}/{key_id.hex()}/{signature}", f"{url}/schnorr/{key_id.hex()}/{signature}/{'ab' * 32}"]
    timeout = aiohttp.ClientTimeout(total=HTTP_TIMEOUT)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256), timeout=timeout) as session:
        async def one(target: str) -> None:
            try:
                async with session.get(target) as response:
                    body = await response.text()
                    statuses[response.status] += 1
                    if response.status not in (200, 429):
                        print(f"flood: HTTP {response.status}: {body[:200]}", file=sys.stderr)
            except (aiohttp.ClientError, TimeoutError) as exc:
                statuses["unanswered"] += 1
                print(f"flood: no answer: {type(exc).__name__}", file=sys.stderr)

        interval, started, sent = duration / FLOOD_REQUESTS, time.perf_counter(), []
        for i in range(FLOOD_REQUESTS):
            sent.append(asyncio.create_task(one(targets[i % 2])))
            await asyncio.sleep(max(0.0, started + (i + 1) * interval - time.perf_counter()))
        await asyncio.gather(*sent)


async def open_node_connections(ws_url: str, session: aiohttp.ClientSession) -> tuple[list, Counter]:
    """Open NODE_CONNECTIONS WebSocket connections to the node at once; the opened ones and how each attempt ended."""
    outcomes: Counter = Counter()

    async def one():
        try:
            connection = await session.ws_connect(ws_url, timeout=aiohttp.ClientWSTimeout(ws_close=10))
        except aiohttp.WSServerHandshakeError as exc:
            outcomes[f"refused_{exc.status}"] += 1
            return None
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            outcomes[f"failed_{type(exc).__name__}"] += 1
            return None
        outcomes["opened"] += 1
        return connection

    opened = [c for c in await asyncio.gather(*(one() for _ in range(NODE_CONNECTIONS))) if c is not None]
    return opened, outcomes


async def prepare(network: LocalNetwork, stored_keys: int) -> tuple[list, ServerKeyId]:
    """Alice's keys with document keys, and Bob's own key (generated, a document key stored)."""
    url = network.node.ws_url  # type: ignore[union-attr]
    async with AsyncSecretStoreClient(url, "//Alice", timeout=120) as alice, \
            AsyncSecretStoreClient(url, "//Bob", timeout=120) as bob:
        keys = [ServerKeyId(secrets.token_bytes(32)) for _ in range(stored_keys)]
        bobs = ServerKeyId(secrets.token_bytes(32))
        await asyncio.gather(*(alice.claim_key(k) for k in keys), bob.claim_key(bobs))
        publics = await asyncio.gather(*(alice.generate_server_key(k, T) for k in keys), bob.generate_server_key(bobs, T))
        documents = await asyncio.gather(*(alice.store_new_document_key(k, p, ALICE) for k, p in zip(keys, publics)),
                                         bob.store_new_document_key(bobs, publics[-1], BOB))
    return [(k, d.document_key) for k, d in zip(keys, documents)], bobs


async def run(network: LocalNetwork, idle_rounds: int) -> dict:
    stored, bobs_key = await prepare(network, 8)
    http_url = network.servers[0].http_url
    async with AsyncSecretStoreClient(network.node.ws_url, "//Alice", timeout=120) as chain, \
            AsyncSecretStoreHttpClient(http_url, timeout=HTTP_TIMEOUT) as http:  # type: ignore[arg-type, union-attr]
        idle = Legit(chain, http, stored)
        await idle.round(0)  # warm-up (connections, caches): not counted
        idle = Legit(chain, http, stored)
        for i in range(idle_rounds // 2):  # the other half after the flood: the machine's drift falls on both
            await idle.round(i)
        idle_rss = peak_rss_mb(network)

        statuses: Counter = Counter()
        loaded = Legit(chain, http, stored)
        async with aiohttp.ClientSession() as node_session:
            connections, node_outcomes = await open_node_connections(network.node.ws_url, node_session)  # type: ignore[union-attr]
            print(f"node: {NODE_CONNECTIONS} connections attempted on top of the network's own: "
                  f"{dict(node_outcomes)}", flush=True)
            # the legitimate rounds go on as long as the flood does
            flooding = asyncio.create_task(flood(http_url, bobs_key, FLOOD_SECONDS, statuses))  # type: ignore[arg-type]
            i = 0
            while not flooding.done():
                await loaded.round(i)
                i += 1
            await flooding
            # the connections past the limit were refused; those below it still answer
            probe = connections[0] if connections else None
            if probe is not None:
                await probe.send_json({"jsonrpc": "2.0", "id": 1, "method": "system_health", "params": []})
                node_outcomes["held_and_answering"] = int("result" in await probe.receive_json(timeout=10))
            await asyncio.gather(*(c.close() for c in connections))
        peak = peak_rss_mb(network)
        for i in range(idle_rounds // 2, idle_rounds):
            await idle.round(i)
    print(f"baseline: {idle.requests} requests, half before and half after the flood, p95 "
          f"{p95(idle.all_times()) * 1000:.1f} ms ("
          + ", ".join(f"{k} median {statistics.median(v) * 1000:.1f} ms" for k, v in idle.times.items()) + ")")
    print(f"flood: {FLOOD_REQUESTS} requests over {FLOOD_SECONDS:g} s: {dict(statuses)}")
    print(f"under flood: {loaded.requests} legitimate requests, {loaded.ok} ok, p95 "
          f"{p95(loaded.all_times()) * 1000:.1f} ms ("
          + ", ".join(f"{k} median {statistics.median(v) * 1000:.1f} ms" for k, v in loaded.times.items() if v) + ")")
    print("peak RSS (MB) before / after the flood: "
          + ", ".join(f"{name} {idle_rss[name]:.0f}/{peak[name]:.0f}" for name in peak), flush=True)
    print(json.dumps({"node_max_connections": DEFAULT_MAX_CONNECTIONS, "node_attempted": NODE_CONNECTIONS,
                      **{f"node_{outcome}": count for outcome, count in node_outcomes.items()}}))
    return {"flood_requests": sum(statuses.values()), "refused_429": statuses[429],
            "legit_requests": loaded.requests, "legit_ok": loaded.ok,
            "legit_p95_ms": round(p95(loaded.all_times()) * 1000, 1),
            "legit_idle_p95_ms": round(p95(idle.all_times()) * 1000, 1),
            "max_rss_mb": round(max(peak.values()), 1),
            "lost": statuses["unanswered"] + loaded.unanswered + idle.unanswered}


def main() -> None:
    idle_rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 40
    with tempfile.TemporaryDirectory() as tmp:
        print(f"starting a node and {N} key servers ...", file=sys.stderr, flush=True)
        network = LocalNetwork(Path(tmp), key_servers=N)
        try:
            result = aio.run(run(network.start(timeout=120), idle_rounds))
        finally:
            network.stop()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
