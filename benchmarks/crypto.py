"""Per-operation cost of the crypto layer, as a multiple of one raw coincurve point multiplication measured in this run.

Run: ./run bench crypto
"""

from __future__ import annotations

import time
from typing import Callable

import coincurve

from secretstore.crypto import Secret
from secretstore.crypto import ecies, math as m
from secretstore.crypto.document import decrypt_message, encrypt_message, generate_document_key


def per_call(fn: Callable[[], object], min_time: float = 0.3) -> float:
    calls, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < min_time:
        fn()
        calls += 1
    return elapsed / calls


def main() -> None:
    point = coincurve.PublicKey.from_secret(Secret.random().to_int().to_bytes(32, "big"))
    scalar = Secret.random().to_int().to_bytes(32, "big")
    baseline = per_call(lambda: point.multiply(scalar))

    secret = Secret.random()
    public = secret.public()
    ciphertext = ecies.encrypt(public, b"x" * 64)
    generated = generate_document_key(Secret.random().public(), public)
    message = encrypt_message(generated.encrypted_key, secret, b"Hello, world!")
    xs = list(range(1, 11))
    share = m.random_scalar()

    operations: dict[str, Callable[[], object]] = {
        "point_mul (Public)": lambda: m.point_mul(public, m.random_scalar()),
        "ecies encrypt 64 B": lambda: ecies.encrypt(public, b"x" * 64),
        "ecies decrypt 64 B": lambda: ecies.decrypt(secret, ciphertext),
        "generate_document_key": lambda: generate_document_key(public, public),
        "decrypt_message": lambda: decrypt_message(generated.encrypted_key, secret, message),
        "lagrange (10 nodes)": lambda: m.lagrange_at_zero(3, xs),
        "node_shadow_point": lambda: m.node_shadow_point(m.node_shadow(share, 3, xs), 7, public, 11),
        "schnorr sign": lambda: m.schnorr_sign(secret, bytes(32)),
    }
    print(f"baseline: coincurve point multiplication {baseline * 1e6:.1f} us")
    print(f"{'operation':<26}{'us/op':>10}{'x baseline':>12}")
    for name, fn in operations.items():
        cost = per_call(fn)
        print(f"{name:<26}{cost * 1e6:>10.1f}{cost / baseline:>12.2f}")


if __name__ == "__main__":
    main()
