"""Server key generation, document key shadow retrieval and threshold Schnorr / ECDSA signing (over the HTTP API) on a
live loopback network of n = 3, 5, 10 key servers (t = (n - 1) / 2), each figure next to its baseline measured in the
same run: the time libsecp256k1 (coincurve) needs for the point multiplications the protocol performs, spread over
this machine's cores.

Per n:
- latency (instant seal): one request at a time, from submission to the result event, for DKG and shadow retrieval
  (retrieval includes the requester's local decryption): the median over ROUNDS requests after one warm-up request of
  each kind (first connections and caches), the mean next to it, with that requester's the only client connected;
  and the mean for signing over HTTP;
- throughput (instant seal): 16 concurrent requesters (4 accounts, 4 requests in flight each) generating server keys,
  then retrieving document key shadows, ROUNDS requests each;
- blocks from request to result at a block time of 1 s (the request's own block counts as the first): one request
  alone, and a full queue of 64 requests of one service submitted together (the largest over the 64).

Ends with one JSON line per n. Run: ./run bench sessions [ROUNDS [N ...]]
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

import coincurve
from substrateinterface import Keypair

from secretstore import aio
from secretstore.client import AsyncSecretStoreClient, SecretStoreHttpClient
from secretstore.client.http import verify_ecdsa, verify_schnorr
from secretstore.client.sdk import shadow_retrieval_result
from secretstore.crypto import Public, Secret, ServerKeyId
from secretstore.devnet import LocalNetwork

ALICE = Secret(b"\x01" * 32)  # //Alice's claimed id is this key's address on the dev chains
ACCOUNTS, IN_FLIGHT = 4, 4  # 16 concurrent requesters
FULL_QUEUE = 64


def point_mul_seconds() -> float:
    point = coincurve.PublicKey.from_secret(secrets.token_bytes(31).rjust(32, b"\x01"))
    scalar = secrets.token_bytes(31).rjust(32, b"\x01")
    n, started = 0, time.perf_counter()
    while time.perf_counter() - started < 0.5:
        point.multiply(scalar)
        n += 1
    return (time.perf_counter() - started) / n


def dkg_multiplications(n: int, t: int) -> int:
    # the batched generation chain requests take, per node: Feldman commitments (t + 1) and the Pedersen ones on top
    # of them (t + 1 more), one Pedersen check of the summed shares (2 + t: s·G, which is also the public share, s'·H
    # and the sum at x, whose constant term needs no multiplication) and the check of its public share against the
    # Feldman sums the commit brings (t); the master checks all public shares at once (n + t + 1)
    return n * (2 * (t + 1) + (2 + t) + t) + n + t + 1


def sharing_multiplications(signers: int, degree: int) -> int:
    # one joint random sharing among `signers`, per signer: Feldman commitments and the Pedersen ones on top of them
    # (2 (degree + 1)), a Pedersen check of every dealer's share (2 + degree + 1) and a Feldman check (1 + degree + 1)
    return signers * (2 * (degree + 1) + signers * (2 * degree + 5))


def signing_multiplications(kind: str, t: int) -> int:
    signers = t + 1 if kind == "schnorr" else 2 * t + 1
    degrees = [t] if kind == "schnorr" else [t, t, 2 * t, 2 * t]
    requester_checks = 2 * (signers + 1)  # recovering the requester from {sig}: the master and every signer
    result_check = 2 if kind == "schnorr" else 4  # the master verifies (ECDSA: verify and recover)
    ecies_both_ways = 3  # encrypt to the requester, the requester decrypts
    return sum(sharing_multiplications(signers, d) for d in degrees) + requester_checks + result_check + ecies_both_ways


def retrieval_multiplications(t: int) -> int:
    # t + 1 shadow points and ECIES encryptions, the master's unblinding, the requester's t + 1 ECIES decryptions
    return (t + 1) * 4 + 1 + (t + 1) * 2 + 1


# ------------------------------------------------------------------------------------------------ requesters
def requester(i: int) -> tuple[str, Secret]:
    """A benchmark account: its SURI and the secp256k1 secret whose address it claims as its entity id."""
    return f"//Requester{i}", Secret(hashlib.sha256(f"benchmark requester {i}".encode()).digest())


async def make_requesters(url: str, count: int, first: int = 0) -> list[AsyncSecretStoreClient]:
    """`count` funded accounts (requesters first, first + 1, ...) that claimed ids, connected."""
    indices = range(first, first + count)
    async with AsyncSecretStoreClient(url, "//Alice", timeout=120) as alice:
        await asyncio.gather(*(alice.request("transfer_allow_death", {
            "dest": Keypair.create_from_uri(requester(i)[0]).ss58_address, "value": 10 ** 15}, pallet="Balances")
            for i in indices))
    clients = [AsyncSecretStoreClient(url, requester(i)[0], timeout=300) for i in indices]
    await asyncio.gather(*(c.connect() for c in clients))
    await asyncio.gather(*(c.submit("claim_id", id=requester(i)[1].public().address().hex())
                           for i, c in zip(indices, clients)))
    return clients


def about(key_id: ServerKeyId):
    return lambda e: e.pallet == "SecretStore" and isinstance(e.attributes, dict) and \
        str(e.attributes.get("id", "")).lower() == key_id.hex()


async def generate(client: AsyncSecretStoreClient, key_id: ServerKeyId, t: int) -> tuple[Public, int]:
    """(server key public, blocks from request to result)."""
    match = about(key_id)
    receipt, events = await client.request(
        "generate_server_key", {"id": key_id.hex(), "threshold": t},
        match=lambda e: match(e) and e.name in ("ServerKeyGenerated", "ServerKeyGenerationError"))
    assert events[0].name == "ServerKeyGenerated", events
    return Public(bytes.fromhex(events[0].attributes["public"][2:])), events[0].block_number - receipt.block_number + 1


async def retrieve(client: AsyncSecretStoreClient, key_id: ServerKeyId, secret: Secret) -> tuple[Public, int]:
    """(document key, blocks from request to the last personal part needed)."""
    match, me = about(key_id), secret.public().address().hex()
    receipt, events = await client.request(
        "retrieve_document_key_shadow", {"id": key_id.hex(), "requester_public": secret.public().hex()},
        match=lambda e: match(e) and str(e.attributes.get("requester", "")).lower() == me and e.name in (
            "DocumentKeyCommonRetrieved", "DocumentKeyPersonalRetrieved", "DocumentKeyShadowRetrievalError"),
        finished=lambda found: any(e.name.endswith("Error") for e in found) or shadow_retrieval_result(found) is not None)
    result = shadow_retrieval_result(events)
    assert result is not None, events
    common, decrypted, shadows = result
    from secretstore.crypto.document import recover_document_key

    key = recover_document_key(Public(bytes.fromhex(common.attributes["common_point"][2:])), Public(decrypted),
                               shadows, secret)
    return key, max(e.block_number for e in events) - receipt.block_number + 1


async def prepare_keys(clients: list[AsyncSecretStoreClient], per_client: int, t: int) -> list[list[ServerKeyId]]:
    """Claimed keys with a stored document key, per client (each client's own, so its requester may read them)."""
    async def one(i: int, client: AsyncSecretStoreClient) -> list[ServerKeyId]:
        keys = [ServerKeyId(secrets.token_bytes(32)) for _ in range(per_client)]
        secret = requester(i)[1]
        await asyncio.gather(*(client.claim_key(k) for k in keys))
        wave = FULL_QUEUE // len(clients)  # all clients together stay within the chain's queue of pending requests
        for start in range(0, len(keys), wave):
            batch = keys[start:start + wave]
            publics = await asyncio.gather(*(client.generate_server_key(k, t) for k in batch))
            await asyncio.gather(*(client.store_new_document_key(k, p, secret) for k, p in zip(batch, publics)))
        return keys
    return list(await asyncio.gather(*(one(i, c) for i, c in enumerate(clients))))


# ------------------------------------------------------------------------------------------------- figures
async def latency_and_throughput(network: LocalNetwork, n: int, t: int, rounds: int) -> dict:
    url = network.node.ws_url  # type: ignore[union-attr]
    # latency: the one requester is the only client connected (every connected client follows every block)
    clients = await make_requesters(url, 1)
    try:
        one, secret = clients[0], requester(0)[1]
        keys = [ServerKeyId(secrets.token_bytes(32)) for _ in range(rounds + 1)]
        for key in keys:
            await one.claim_key(key)
        publics, dkg_times = [], []
        for key in keys:  # the first of each kind is a warm-up (first connections, caches), not counted
            started = time.perf_counter()
            publics.append((await generate(one, key, t))[0])
            dkg_times.append(time.perf_counter() - started)
        documents = [await one.store_new_document_key(k, p, secret) for k, p in zip(keys, publics)]
        shadow_times = []
        for key, document in zip(keys, documents):
            started = time.perf_counter()
            assert (await retrieve(one, key, secret))[0] == document.document_key
            shadow_times.append(time.perf_counter() - started)
        dkg_times, shadow_times = dkg_times[1:], shadow_times[1:]
        clients += await make_requesters(url, ACCOUNTS - 1, first=1)

        # throughput: 16 requesters at once, each with its own requests
        per_requester = max(2, rounds)  # 16 x ROUNDS requests of each kind: a few seconds, long enough to be steady
        fresh = [[ServerKeyId(secrets.token_bytes(32)) for _ in range(per_requester)]
                 for _ in range(ACCOUNTS * IN_FLIGHT)]

        async def generate_all(slot: int) -> None:
            for key in fresh[slot]:
                await generate(clients[slot % ACCOUNTS], key, t)

        started = time.perf_counter()
        await asyncio.gather(*(generate_all(slot) for slot in range(ACCOUNTS * IN_FLIGHT)))
        dkg_per_s = ACCOUNTS * IN_FLIGHT * per_requester / (time.perf_counter() - started)

        owned = await prepare_keys(clients, IN_FLIGHT * per_requester, t)

        async def retrieve_all(slot: int) -> None:
            i = slot % ACCOUNTS
            for key in owned[i][slot // ACCOUNTS::IN_FLIGHT]:
                await retrieve(clients[i], key, requester(i)[1])

        started = time.perf_counter()
        await asyncio.gather(*(retrieve_all(slot) for slot in range(ACCOUNTS * IN_FLIGHT)))
        shadow_per_s = ACCOUNTS * IN_FLIGHT * per_requester / (time.perf_counter() - started)
    finally:
        await asyncio.gather(*(c.aclose() for c in clients))

    signing = {}
    api = SecretStoreHttpClient(network.servers[0].http_url, timeout=120)
    async with AsyncSecretStoreClient(url, "//Alice", timeout=120) as alice:
        key = ServerKeyId(secrets.token_bytes(32))
        await alice.claim_key(key)
        public = await alice.generate_server_key(key, t)
    for kind, sign, verify in (("schnorr", api.sign_schnorr, verify_schnorr), ("ecdsa", api.sign_ecdsa, verify_ecdsa)):
        await asyncio.to_thread(sign, key, ALICE, bytes(32))  # warm-up (connections)
        started = time.perf_counter()
        for _ in range(rounds):
            message_hash = secrets.token_bytes(32)
            signature = await asyncio.to_thread(sign, key, ALICE, message_hash)
            assert verify(public, message_hash, signature)
        signing[kind] = (time.perf_counter() - started) / rounds
    return {"dkg_s": statistics.median(dkg_times), "shadow_s": statistics.median(shadow_times),
            "dkg_mean_s": statistics.mean(dkg_times), "shadow_mean_s": statistics.mean(shadow_times),
            "dkg_per_s": dkg_per_s, "shadow_per_s": shadow_per_s, "signing": signing}


async def blocks_at_one_second(network: LocalNetwork, t: int) -> dict:
    url = network.node.ws_url  # type: ignore[union-attr]
    clients = await make_requesters(url, ACCOUNTS)
    try:
        one, secret = clients[0], requester(0)[1]
        key = ServerKeyId(secrets.token_bytes(32))
        await one.claim_key(key)
        public, dkg_blocks = await generate(one, key, t)
        await one.store_new_document_key(key, public, secret)
        _, shadow_blocks = await retrieve(one, key, secret)

        # a full queue: 64 requests of one service from the 4 accounts, submitted together
        per_client = FULL_QUEUE // ACCOUNTS
        keys = [[ServerKeyId(secrets.token_bytes(32)) for _ in range(per_client)] for _ in clients]
        await asyncio.gather(*(c.claim_key(k) for c, ks in zip(clients, keys) for k in ks))
        generated = await asyncio.gather(*(generate(c, k, t) for c, ks in zip(clients, keys) for k in ks))
        dkg_blocks_full = max(b for _, b in generated)
        publics = iter(p for p, _ in generated)
        await asyncio.gather(*(c.store_new_document_key(k, next(publics), requester(i)[1])
                               for i, (c, ks) in enumerate(zip(clients, keys)) for k in ks))
        retrieved = await asyncio.gather(*(retrieve(c, k, requester(i)[1])
                                           for i, (c, ks) in enumerate(zip(clients, keys)) for k in ks))
        shadow_blocks_full = max(b for _, b in retrieved)
    finally:
        await asyncio.gather(*(c.aclose() for c in clients))
    return {"dkg_blocks": dkg_blocks, "shadow_blocks": shadow_blocks, "dkg_blocks_full": dkg_blocks_full,
            "shadow_blocks_full": shadow_blocks_full}


def measure(n: int, rounds: int, mul: float) -> dict:
    t = (n - 1) // 2
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp:
        print(f"n={n}: starting {n} key servers (instant seal) ...", file=sys.stderr, flush=True)
        network = LocalNetwork(Path(tmp) / "instant", key_servers=n)
        try:
            fast = aio.run(latency_and_throughput(network.start(timeout=120), n, t, rounds))
        finally:
            network.stop()
        print(f"n={n}: starting {n} key servers (1 s blocks) ...", file=sys.stderr, flush=True)
        network = LocalNetwork(Path(tmp) / "timed", key_servers=n, block_time=1.0)
        try:
            blocks = aio.run(blocks_at_one_second(network.start(timeout=120), t))
        finally:
            network.stop()
    dkg_bound = dkg_multiplications(n, t) * mul / cores
    shadow_bound = retrieval_multiplications(t) * mul / cores
    print(f"n={n:<3} t={t:<2} DKG {fast['dkg_s'] * 1000:7.1f} ms (mean {fast['dkg_mean_s'] * 1000:.1f}; EC bound "
          f"{dkg_bound * 1000:6.2f} ms, x{fast['dkg_s'] / dkg_bound:6.1f}) | shadow retrieval "
          f"{fast['shadow_s'] * 1000:7.1f} ms (mean {fast['shadow_mean_s'] * 1000:.1f}; EC bound "
          f"{shadow_bound * 1000:5.2f} ms, x{fast['shadow_s'] / shadow_bound:6.1f})")
    print(f"      16 requesters: {fast['dkg_per_s']:6.1f} generations/s, {fast['shadow_per_s']:6.1f} shadow "
          f"retrievals/s | 1 s blocks, request to result: generation {blocks['dkg_blocks']} blocks "
          f"({blocks['dkg_blocks_full']} with {FULL_QUEUE} queued), shadow retrieval {blocks['shadow_blocks']} blocks "
          f"({blocks['shadow_blocks_full']} with {FULL_QUEUE} queued)")
    for kind, latency in fast["signing"].items():
        bound = signing_multiplications(kind, t) * mul / cores
        print(f"      {kind:>7} signing {latency * 1000:7.1f} ms (EC bound {bound * 1000:6.2f} ms, "
              f"x{latency / bound:6.1f}) over HTTP, {t + 1 if kind == 'schnorr' else 2 * t + 1} signers", flush=True)
    return {"n": n, "t": t, "dkg_ms": round(fast["dkg_s"] * 1000, 1), "dkg_bound_ms": round(dkg_bound * 1000, 2),
            "shadow_ms": round(fast["shadow_s"] * 1000, 1), "shadow_bound_ms": round(shadow_bound * 1000, 2),
            "dkg_mean_ms": round(fast["dkg_mean_s"] * 1000, 1), "shadow_mean_ms": round(fast["shadow_mean_s"] * 1000, 1),
            "dkg_per_s": round(fast["dkg_per_s"], 1), "shadow_per_s": round(fast["shadow_per_s"], 1),
            **blocks,
            "schnorr_ms": round(fast["signing"]["schnorr"] * 1000, 1),
            "schnorr_bound_ms": round(signing_multiplications("schnorr", t) * mul / cores * 1000, 2),
            "ecdsa_ms": round(fast["signing"]["ecdsa"] * 1000, 1),
            "ecdsa_bound_ms": round(signing_multiplications("ecdsa", t) * mul / cores * 1000, 2)}


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    mul = point_mul_seconds()
    print(f"coincurve point multiplication: {mul * 1e6:.1f} us; {os.cpu_count()} cores")
    results = [measure(n, rounds, mul) for n in [int(a) for a in sys.argv[2:]] or [3, 5, 10]]
    for result in results:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
