"""Chaos: a mixed workload over Parity's HTTP API on a loopback network of n = 5 key servers (t = 2), one of them
Byzantine (bad DKG dealings, wrong shadow points, wrong partial signatures), while random key servers and the node
are SIGKILLed and restarted. Then every request is checked: it ended with a correct result or an error, every key
generated still decrypts its document (a retrieval with all servers back), and no share was lost (every holder has
its share and, test-only, every t + 1 of them reconstruct the server key public).

Alongside, shadow and server key retrievals are submitted through the chain and left to the key servers; once the
network is whole again no request may remain pending on chain.

Ends with one JSON line {"requests", "ok", "errors", "unanswered", "lost_keys", "wrong_results", "kills", "byzantine",
"chain_requests"}: requests = ok + errors + unanswered HTTP requests (an HTTP request that timed out is unanswered;
an error status or a dropped connection is an error the client was told); chain_requests were accepted by the node,
and any still pending at the end count as unanswered too.
Run: ./run bench chaos [SECONDS [MIN_REQUESTS]]   (default: 150 s of chaos, at least 200 requests)
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import os
import random
import re
import secrets
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from substrateinterface import Keypair

from secretstore import aio
from secretstore.chain.connection import ChainConnection
from secretstore.chain.secretstore_api import SERVICES, SecretStoreRuntimeApi
from secretstore.client import AsyncSecretStoreClient, SecretStoreClient, SecretStoreHttpClient
from secretstore.client.http import HttpApiError, verify_ecdsa, verify_schnorr
from secretstore.crypto import Public, Secret, ServerKeyId
from secretstore.crypto import math as m
from secretstore.crypto.document import decrypt_document, encrypt_document, generate_document_key
from secretstore.keyserver.storage import KeyStorage
from secretstore.devnet import LocalNetwork

N, T = 5, 2
BYZANTINE = 4
BYZANTINE_FAULTS = "corrupt=dkg,corrupt=shadow,corrupt=sign"
ACCOUNTS, WORKERS_PER_ACCOUNT = 4, 2
KEYS_PER_ACCOUNT = 60  # claimed before the chaos starts (claims are chain transactions, not key server requests)
HTTP_TIMEOUT = 120.0
CLAIM_LOCK = threading.Lock()  # a request still unanswered after this counts as unanswered


def requester(i: int) -> tuple[str, Secret]:
    return f"//Chaos{i}", Secret(hashlib.sha256(f"chaos requester {i}".encode()).digest())


@dataclass
class Key:
    key_id: ServerKeyId
    owner: int
    public: Public | None = None  # known once a generation succeeded
    document_key: Public | None = None  # known once a store / document key generation succeeded
    ciphertext: bytes | None = None
    uncertain: bool = False  # a generation or store ended in an error: its state is not asserted
    taken: bool = False  # a worker is generating it


@dataclass
class Tally:
    outcomes: Counter = field(default_factory=Counter)  # (op, outcome)
    reasons: Counter = field(default_factory=Counter)  # error messages, key ids and addresses blanked
    wrong: list = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def note(self, op: str, outcome: str, detail: str = "") -> None:
        with self.lock:
            self.outcomes[(op, outcome)] += 1
            if outcome == "wrong":
                self.wrong.append((op, detail))
            elif outcome not in ("ok", "submitted"):
                self.reasons[re.sub(r"0x[0-9a-f]+|\d+", "#", detail)[:110]] += 1

    def count(self, outcome: str) -> int:
        return sum(v for (_, o), v in self.outcomes.items() if o == outcome)


def setup_accounts(url: str) -> None:
    async def run() -> None:
        async with AsyncSecretStoreClient(url, "//Alice", timeout=120) as alice:
            await asyncio.gather(*(alice.request("transfer_allow_death", {
                "dest": Keypair.create_from_uri(requester(i)[0]).ss58_address, "value": 10 ** 15}, pallet="Balances")
                for i in range(ACCOUNTS)))
        clients = [AsyncSecretStoreClient(url, requester(i)[0], timeout=120) for i in range(ACCOUNTS)]
        try:
            await asyncio.gather(*(c.connect() for c in clients))
            await asyncio.gather(*(c.submit("claim_id", id=requester(i)[1].public().address().hex())
                                   for i, c in enumerate(clients)))
        finally:
            await asyncio.gather(*(c.aclose() for c in clients))
    aio.run(run())


def claim_keys(url: str) -> list[Key]:
    keys = [Key(ServerKeyId(secrets.token_bytes(32)), i) for i in range(ACCOUNTS) for _ in range(KEYS_PER_ACCOUNT)]

    async def run() -> None:
        clients = [AsyncSecretStoreClient(url, requester(i)[0], timeout=120) for i in range(ACCOUNTS)]
        try:
            await asyncio.gather(*(c.connect() for c in clients))
            await asyncio.gather(*(clients[k.owner].claim_key(k.key_id) for k in keys))
        finally:
            await asyncio.gather(*(c.aclose() for c in clients))
    aio.run(run())
    return keys


class Chaos:
    """Kills (SIGKILL) and restarts one random key server or the node at a time."""

    def __init__(self, network: LocalNetwork, stop: threading.Event, rng: random.Random) -> None:
        self.network, self.stop, self.rng = network, stop, rng
        self.kills = 0
        self.down: set[int] = set()
        self.lock = threading.Lock()

    def alive_servers(self) -> list[int]:
        with self.lock:
            return [i for i in range(N) if i not in self.down]

    def run(self) -> None:
        while not self.stop.wait(self.rng.uniform(3.0, 6.0)):
            if self.rng.random() < 0.25:
                print("chaos: SIGKILL node", file=sys.stderr, flush=True)
                self.network.kill_node()
                self.kills += 1
                self.stop.wait(self.rng.uniform(0.5, 2.0))
                self.network.restart_node()
                continue
            victim = self.rng.randrange(N)
            print(f"chaos: SIGKILL key server {victim + 1}", file=sys.stderr, flush=True)
            with self.lock:
                self.down.add(victim)
            self.network.servers[victim].stop(kill=True)
            self.kills += 1
            self.stop.wait(self.rng.uniform(1.0, 4.0))
            self.network.restart_key_server(victim, faults=BYZANTINE_FAULTS if victim == BYZANTINE else None)
            try:  # its HTTP port and cluster links are up before clients are sent to it again
                self.network.wait_connected(30)
            except (TimeoutError, RuntimeError) as exc:
                print(f"chaos: key server {victim + 1} not reconnected: {exc}", file=sys.stderr, flush=True)
            with self.lock:
                self.down.discard(victim)


def classify(exc: BaseException) -> str:
    text = str(exc).lower()
    return "unanswered" if isinstance(exc, TimeoutError) or "timed out" in text else "error"


def worker(network: LocalNetwork, chaos: Chaos, keys: list[Key], owner: int, tally: Tally, stop: threading.Event,
           budget: itertools.count, limit: int, rng: random.Random) -> None:
    secret = requester(owner)[1]
    mine = [k for k in keys if k.owner == owner]

    def api() -> SecretStoreHttpClient:
        alive = chaos.alive_servers() or list(range(N))
        return SecretStoreHttpClient(network.servers[rng.choice(alive)].http_url, timeout=HTTP_TIMEOUT)

    while not stop.is_set() and next(budget) < limit:
        generated = [k for k in mine if k.public is not None and not k.uncertain]
        stored = [k for k in generated if k.document_key is not None]
        choice = rng.random()
        try:
            if choice < 0.25 or not generated:
                with CLAIM_LOCK:
                    key = next((k for k in mine if not k.taken), None)
                    if key is not None:
                        key.taken = True
                if key is None:
                    continue
                op = "generate_document_key" if rng.random() < 0.4 else "generate_server_key"
                try:
                    if op == "generate_server_key":
                        key.public = api().generate_server_key(key.key_id, secret, T)
                        tally.note(op, "ok")
                        generated_key = generate_document_key(key.public, secret.public())
                        api().store_document_key(key.key_id, secret, generated_key.common_point,
                                                 generated_key.encrypted_point)
                        key.document_key = generated_key.document_key
                        tally.note("store_document_key", "ok")
                    else:
                        document_key = api().generate_document_key(key.key_id, secret, T)
                        key.public = api().retrieve_server_key(key.key_id, secret)
                        key.document_key = document_key
                        tally.note(op, "ok")
                    key.ciphertext = encrypt_document(key.document_key, key.key_id.hex().encode())
                except Exception as exc:  # noqa: BLE001 - every failure is an outcome to count
                    key.uncertain = True
                    tally.note(op, classify(exc), f"{type(exc).__name__}: {exc}")
                    stop.wait(0.5)
                continue
            if choice < 0.45 and stored:
                key, op = rng.choice(stored), "retrieve_document_key_shadow"
                shadow = api().retrieve_document_key_shadow(key.key_id, secret)
                ok = shadow.document_key(secret) == key.document_key
            elif choice < 0.6 and stored:
                key, op = rng.choice(stored), "retrieve_document_key"
                ok = api().retrieve_document_key(key.key_id, secret) == key.document_key
            elif choice < 0.7:
                key, op = rng.choice(generated), "retrieve_server_key"
                ok = api().retrieve_server_key(key.key_id, secret) == key.public
            elif choice < 0.93:
                key, op = rng.choice(generated), "sign_schnorr"
                message = secrets.token_bytes(32)
                ok = verify_schnorr(key.public, message, api().sign_schnorr(key.key_id, secret, message))
            else:
                key, op = rng.choice(generated), "sign_ecdsa"
                message = secrets.token_bytes(32)
                ok = verify_ecdsa(key.public, message, api().sign_ecdsa(key.key_id, secret, message))
            tally.note(op, "ok" if ok else "wrong", key.key_id.hex())
        except (HttpApiError, ConnectionError, OSError, ValueError) as exc:
            tally.note(op, classify(exc), f"{type(exc).__name__}: {exc}")  # type: ignore[possibly-undefined]
            stop.wait(0.5)  # a client backs off after an error instead of hammering a network that is recovering


def chain_worker(url_of, keys: list[Key], tally: Tally, stop: threading.Event, rng: random.Random) -> None:
    """Requests through the chain as well (shadow and server key retrieval), submitted and left to the key servers:
    at the end the chain must hold no pending request (each was answered by a result or an error event)."""
    while not stop.wait(rng.uniform(0.3, 1.0)):
        stored = [k for k in keys if k.document_key is not None and not k.uncertain]
        if not stored:
            continue
        key = rng.choice(stored)
        suri, secret = requester(key.owner)
        shadow = rng.random() < 0.7
        call = "retrieve_document_key_shadow" if shadow else "retrieve_server_key"
        params = {"id": key.key_id.hex()}
        if shadow:
            params["requester_public"] = secret.public().hex()
        try:
            with SecretStoreClient(url_of(), suri, timeout=20) as client:
                client.request(call, params, wait="pool")
            tally.note("chain_" + call, "submitted")
        except Exception as exc:  # noqa: BLE001 - the node is down: not submitted, the client is told
            tally.note("chain_" + call, "error", f"{type(exc).__name__}: {exc}")


def pending_on_chain(url: str) -> int:
    async def run() -> int:
        chain = ChainConnection(url)
        try:
            await chain.connect()
            api = SecretStoreRuntimeApi(chain.state_call)
            return sum([len(await api.tasks(service)) for service in SERVICES])
        finally:
            await chain.close()
    return aio.run(run())


def check_keys(network: LocalNetwork, keys: list[Key], tally: Tally) -> int:
    """With every server back: each key generated without error is held by all five, every t + 1 shares give its
    public (test-only), and a retrieval still decrypts its document."""
    lost = 0
    for key in keys:
        if key.public is None or key.uncertain:
            continue
        shares = []
        for ks in network.servers:
            storage = KeyStorage(ks.db_path / "keys.sqlite", ks.secret)
            try:
                shares.append((m.id_number(ks.id), storage.get(key.key_id)))
            finally:
                storage.close()
        if any(s is None or s.public != key.public for _, s in shares):
            lost += 1
            print(f"LOST {key.key_id.hex()}: shares missing or for another public on servers "
                  f"{[i + 1 for i, (_, s) in enumerate(shares) if s is None or s.public != key.public]}")
            continue
        points = [(x, s.secret_share) for x, s in shares]
        if any(m.base_mul(m.reconstruct(dict(subset))) != key.public
               for subset in itertools.combinations(points, T + 1)):
            lost += 1
            print(f"LOST {key.key_id.hex()}: shares do not reconstruct the public")
            continue
        if key.document_key is not None:
            # a client retries a failed request: the key is lost only if it can never be read again
            for attempt in range(5):
                api = SecretStoreHttpClient(network.servers[attempt % N].http_url, timeout=HTTP_TIMEOUT)
                try:
                    document_key = api.retrieve_document_key(key.key_id, requester(key.owner)[1])
                    break
                except Exception as exc:  # noqa: BLE001
                    error = exc
                    time.sleep(1.0)
            else:
                lost += 1
                print(f"LOST {key.key_id.hex()}: document key not retrievable: {error}")
                continue
            if decrypt_document(document_key, key.ciphertext) != key.key_id.hex().encode():
                tally.note("final_decrypt", "wrong", key.key_id.hex())
    return lost


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 150.0
    minimum = int(sys.argv[2]) if len(sys.argv) > 2 else 200
    rng = random.Random(int(os.environ.get("CHAOS_SEED", "0")) or secrets.randbits(32))
    with tempfile.TemporaryDirectory(dir=os.environ.get("CHAOS_DIR")) as tmp:
        network = LocalNetwork(Path(tmp) / "chaos", key_servers=N, faults={BYZANTINE: BYZANTINE_FAULTS})
        try:
            print(f"starting n={N} (t={T}), key server {BYZANTINE + 1} Byzantine ({BYZANTINE_FAULTS})", file=sys.stderr)
            network.start(timeout=120)
            url = network.node.ws_url  # type: ignore[union-attr]
            setup_accounts(url)
            keys = claim_keys(url)
            stop = threading.Event()
            chaos = Chaos(network, stop, rng)
            tally = Tally()
            budget = itertools.count()
            started = time.monotonic()
            chaos_thread = threading.Thread(target=chaos.run, daemon=True)
            chaos_thread.start()
            chain_thread = threading.Thread(target=chain_worker, args=(
                lambda: network.node.ws_url, keys, tally, stop, random.Random(rng.random())), daemon=True)  # type: ignore[union-attr]
            chain_thread.start()
            with ThreadPoolExecutor(ACCOUNTS * WORKERS_PER_ACCOUNT) as pool:
                futures = [pool.submit(worker, network, chaos, keys, i % ACCOUNTS, tally, stop, budget,
                                       10 ** 9, random.Random(rng.random()))
                           for i in range(ACCOUNTS * WORKERS_PER_ACCOUNT)]
                while time.monotonic() - started < seconds or sum(tally.outcomes.values()) < minimum:
                    if time.monotonic() - started > seconds * 3:
                        break
                    time.sleep(1.0)
                stop.set()
                for f in futures:
                    f.result()
            chaos_thread.join()
            chain_thread.join()
            print(f"chaos over after {time.monotonic() - started:.0f} s; restarting everything", file=sys.stderr)
            for i, ks in enumerate(network.servers):
                if not ks.alive():
                    network.restart_key_server(i, faults=BYZANTINE_FAULTS if i == BYZANTINE else None)
            network.wait_connected(120)
            # every chain request gets its answer once the network is whole again
            deadline = time.monotonic() + 90
            while (left := pending_on_chain(url)) and time.monotonic() < deadline:
                time.sleep(1.0)
            print(f"chain requests still pending after the chaos: {left}", file=sys.stderr)
            lost = check_keys(network, keys, tally)
        finally:
            network.stop()
    requests = sum(v for (op, outcome), v in tally.outcomes.items() if op != "final_decrypt" and outcome != "submitted")
    chain_requests = tally.count("submitted")
    for (op, outcome), count in sorted(tally.outcomes.items()):
        print(f"{op:30} {outcome:10} {count}")
    for reason, count in tally.reasons.most_common(12):
        print(f"{count:6}  {reason}")
    for op, detail in tally.wrong[:10]:
        print(f"WRONG {op}: {detail}")
    print(json.dumps({"requests": requests, "ok": tally.count("ok"), "errors": tally.count("error"),
                      "unanswered": tally.count("unanswered") + left, "lost_keys": lost, "wrong_results": len(tally.wrong),
                      "kills": chaos.kills, "byzantine": 1, "chain_requests": chain_requests}))


if __name__ == "__main__":
    main()
