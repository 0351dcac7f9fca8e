"""Server key generation, document key shadow retrieval and threshold Schnorr / ECDSA signing (over the HTTP API) on a
live loopback network of n = 3, 5, 10 key servers,
printed next to a lower bound: the time libsecp256k1 (coincurve) needs for the point multiplications the protocol
performs, measured in this run and spread over this machine's cores.

Run: ./run bench sessions [ROUNDS [N ...]]
"""

from __future__ import annotations

import os
import secrets
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import coincurve

from secretstore.client import SecretStoreClient, SecretStoreHttpClient
from secretstore.client.http import verify_ecdsa, verify_schnorr
from secretstore.crypto import Secret, ServerKeyId
from secretstore.keyserver.testing import LocalNetwork

ALICE = Secret(b"\x01" * 32)


def point_mul_seconds() -> float:
    point = coincurve.PublicKey.from_secret(secrets.token_bytes(31).rjust(32, b"\x01"))
    scalar = secrets.token_bytes(31).rjust(32, b"\x01")
    n, started = 0, time.perf_counter()
    while time.perf_counter() - started < 0.5:
        point.multiply(scalar)
        n += 1
    return (time.perf_counter() - started) / n


def dkg_multiplications(n: int, t: int) -> int:
    # per node: Pedersen commitments, n Pedersen checks, Feldman commitments, n Feldman checks
    return n * (3 * (t + 1) + n * (2 * t + 5))


def sharing_multiplications(signers: int, degree: int) -> int:
    # one joint random sharing among `signers`, per signer: Pedersen commitments (2 each), a Pedersen check of every
    # dealer's share (2 + degree + 1), Feldman commitments, a Feldman check of every dealer's share (1 + degree + 1)
    return signers * (3 * (degree + 1) + signers * (2 * degree + 5))


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


def measure(n: int, rounds: int, mul: float) -> None:
    t = (n - 1) // 2
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp:
        network = LocalNetwork(Path(tmp), key_servers=n)
        print(f"n={n}: starting {n} key servers ...", file=sys.stderr)
        network.start(timeout=120)
        try:
            with SecretStoreClient(network.node.ws_url, "//Alice", timeout=120) as alice:
                keys = [ServerKeyId(secrets.token_bytes(32)) for _ in range(rounds)]
                for key in keys:
                    alice.claim_key(key)
                started = time.perf_counter()
                publics = [alice.generate_server_key(key, t) for key in keys]
                dkg_latency = (time.perf_counter() - started) / rounds
                for key, public in zip(keys, publics):
                    alice.store_new_document_key(key, public, ALICE)
                started = time.perf_counter()
                for key in keys:
                    alice.retrieve_document_key(key, ALICE)
                shadow_latency = (time.perf_counter() - started) / rounds
                api = SecretStoreHttpClient(network.servers[0].http_url, timeout=120)
                signing = {}
                for kind, sign, verify in (("schnorr", api.sign_schnorr, verify_schnorr),
                                           ("ecdsa", api.sign_ecdsa, verify_ecdsa)):
                    sign(keys[0], ALICE, bytes(32))  # warm-up (connections)
                    started = time.perf_counter()
                    for key, public in zip(keys, publics):
                        message_hash = secrets.token_bytes(32)
                        signature = sign(key, ALICE, message_hash)
                        assert verify(public, message_hash, signature)
                    signing[kind] = (time.perf_counter() - started) / rounds
            # throughput: several clients at once (each its own account's requests are independent)
            concurrent_keys = [ServerKeyId(secrets.token_bytes(32)) for _ in range(rounds)]

            accounts = ["//Alice", "//Bob", "//Charlie", "//Dave"]

            def generate(worker: int) -> None:  # one account per worker: no nonce races between them
                with SecretStoreClient(network.node.ws_url, accounts[worker], timeout=120) as client:
                    for key in concurrent_keys[worker::len(accounts)]:
                        client.generate_server_key(key, t)

            started = time.perf_counter()
            with ThreadPoolExecutor(max_workers=len(accounts)) as pool:
                list(pool.map(generate, range(len(accounts))))
            throughput = rounds / (time.perf_counter() - started)
        finally:
            network.stop()
    dkg_bound = dkg_multiplications(n, t) * mul / cores
    shadow_bound = retrieval_multiplications(t) * mul / cores
    print(f"n={n:<3} t={t:<2} DKG latency {dkg_latency * 1000:8.1f} ms (EC bound {dkg_bound * 1000:6.2f} ms, "
          f"x{dkg_latency / dkg_bound:7.1f}) | shadow retrieval {shadow_latency * 1000:8.1f} ms (EC bound "
          f"{shadow_bound * 1000:5.2f} ms, x{shadow_latency / shadow_bound:7.1f}) | DKG throughput {throughput:5.2f}/s")
    for kind, latency in signing.items():
        bound = signing_multiplications(kind, t) * mul / cores
        print(f"      {kind:>7} signing latency {latency * 1000:8.1f} ms (EC bound {bound * 1000:6.2f} ms, "
              f"x{latency / bound:7.1f}) over HTTP, {t + 1 if kind == 'schnorr' else 2 * t + 1} signers")


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    mul = point_mul_seconds()
    print(f"coincurve point multiplication: {mul * 1e6:.1f} us; {os.cpu_count()} cores")
    for n in [int(a) for a in sys.argv[2:]] or [3, 5, 10]:
        measure(n, rounds, mul)


if __name__ == "__main__":
    main()
