"""The key server sweep of `./run bench scale`: for each n at t = (n - 1) / 2, a fresh network of n key servers.

Instant seal: DKG and document key shadow retrieval through the chain, one request at a time with the requester the
only client connected (median of `rounds` after a warm-up; retrieval up to the requester's decrypted key), threshold
Schnorr (t + 1 signers) and ECDSA (2t + 1) over the HTTP API (median of `rounds` after a warm-up, each signature
verified), and generations/s with 60 requests pending at once from four requesters (the pallet queues at most 64).
Then, on a second network with 1 s blocks, a full queue of 64 generations submitted together: the blocks from each
request to its result (the request's own block counts as the first), the largest over the 64.
"""

from __future__ import annotations

import asyncio
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

from sessions import FULL_QUEUE, generate, make_requesters, requester, retrieve
from secretstore import aio
from secretstore.client import AsyncSecretStoreClient, AsyncSecretStoreHttpClient
from secretstore.client.http import verify_ecdsa, verify_schnorr
from secretstore.crypto import ServerKeyId
from secretstore.devnet import LocalNetwork

IN_FLIGHT = 60  # below the pallet's queue of 64


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def median_ms(times: list[float]) -> float:
    return round(statistics.median(times) * 1000, 1)


async def latencies(network: LocalNetwork, t: int, rounds: int, generations: int) -> dict:
    url = network.node.ws_url  # type: ignore[union-attr]
    clients = await make_requesters(url, 1)
    try:
        one, secret = clients[0], requester(0)[1]
        keys = [ServerKeyId(secrets.token_bytes(32)) for _ in range(rounds + 1)]
        await asyncio.gather(*(one.claim_key(k) for k in keys))
        publics, dkg = [], []
        for key in keys:  # the first of each kind is a warm-up
            started = time.perf_counter()
            publics.append((await generate(one, key, t))[0])
            dkg.append(time.perf_counter() - started)
        documents = await asyncio.gather(*(one.store_new_document_key(k, p, secret) for k, p in zip(keys, publics)))
        shadow = []
        for key, document in zip(keys, documents):
            started = time.perf_counter()
            assert (await retrieve(one, key, secret))[0] == document.document_key
            shadow.append(time.perf_counter() - started)
        signing = {}
        async with AsyncSecretStoreHttpClient(network.servers[0].http_url, timeout=120) as api:  # type: ignore[arg-type]
            for kind, sign, verify in (("schnorr", api.sign_schnorr, verify_schnorr),
                                       ("ecdsa", api.sign_ecdsa, verify_ecdsa)):
                times = []
                for round_ in range(rounds + 1):
                    message = secrets.token_bytes(32)
                    started = time.perf_counter()
                    signature = await sign(keys[round_], secret, message)
                    times.append(time.perf_counter() - started)
                    assert verify(publics[round_], message, signature)
                signing[kind] = median_ms(times[1:])
        clients += await make_requesters(url, 3, first=1)
        left = generations

        async def worker(client: AsyncSecretStoreClient) -> None:
            nonlocal left
            while left > 0:
                left -= 1
                await generate(client, ServerKeyId(secrets.token_bytes(32)), t)

        started = time.perf_counter()
        await asyncio.gather(*(worker(clients[i % len(clients)]) for i in range(IN_FLIGHT)))
        per_s = generations / (time.perf_counter() - started)
    finally:
        await asyncio.gather(*(c.aclose() for c in clients))
    return {"dkg_ms": median_ms(dkg[1:]), "shadow_ms": median_ms(shadow[1:]), "schnorr_ms": signing["schnorr"],
            "ecdsa_ms": signing["ecdsa"], "generations_per_s": round(per_s, 1)}


async def full_queue(network: LocalNetwork, t: int) -> dict:
    """64 generations submitted together at 1 s blocks: blocks from request to result, the largest and each."""
    clients = await make_requesters(network.node.ws_url, 4)  # type: ignore[union-attr]
    try:
        keys = [[ServerKeyId(secrets.token_bytes(32)) for _ in range(FULL_QUEUE // len(clients))] for _ in clients]
        generated = await asyncio.gather(*(generate(c, k, t) for c, ks in zip(clients, keys) for k in ks))
    finally:
        await asyncio.gather(*(c.aclose() for c in clients))
    blocks = [b for _, b in generated]
    return {"full_queue_blocks": max(blocks), "full_queue_blocks_median": statistics.median(blocks)}


def measure(n: int, rounds: int, generations: int) -> dict:
    t = (n - 1) // 2
    with tempfile.TemporaryDirectory() as tmp:
        say(f"n = {n}: {n} key servers, instant seal ...")
        started = time.perf_counter()
        network = LocalNetwork(Path(tmp) / "instant", key_servers=n)
        try:
            network.start(timeout=180)
            start_s = time.perf_counter() - started
            figures = aio.run(latencies(network, t, rounds, generations))
        finally:
            network.stop()
        say(f"n = {n}: {n} key servers, 1 s blocks ...")
        network = LocalNetwork(Path(tmp) / "timed", key_servers=n, block_time=1.0)
        try:
            figures.update(aio.run(full_queue(network.start(timeout=180), t)))
        finally:
            network.stop()
    result = {"n": n, "t": t, **figures, "network_start_s": round(start_s, 1)}
    say(f"  {result}")
    return result
