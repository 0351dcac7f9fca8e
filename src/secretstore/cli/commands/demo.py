"""`secretstore demo`: the quick-start story, step by step with timings.

This version runs OFFLINE: three key servers are simulated in this process (their shares computed locally), so it shows
the document formats and the threshold decryption math end to end, not the network. The live-network demo replaces it once
the node and key servers run.
"""

from __future__ import annotations

import argparse
import time
from contextlib import contextmanager
from typing import Iterator

from ...crypto import Secret
from ...crypto import math as m
from ...crypto.document import encrypt_message, generate_document_key, shadow_decrypt_message
from ...crypto import ecies

MESSAGE = b"Hello, world!"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the document key flow end to end (offline: simulated key servers)")
    p.add_argument("--threshold", type=int, default=1)
    p.add_argument("--key-servers", type=int, default=3)
    p.set_defaults(handler=run)


@contextmanager
def step(title: str) -> Iterator[None]:
    started = time.perf_counter()
    print(f"- {title} ...", end="", flush=True)
    yield
    print(f" ok ({(time.perf_counter() - started) * 1000:.1f} ms)")


def run(args: argparse.Namespace) -> int:
    t, n = args.threshold, args.key_servers
    if not 0 <= t < n:
        raise ValueError("--threshold must be below --key-servers")
    print(f"SecretStore demo (offline: {n} simulated key servers, threshold {t})")
    servers = [Secret.random() for _ in range(n)]
    xs = [m.id_number(s.public().address()) for s in servers]
    alice = Secret.random()

    with step("generate the server key as a distributed sharing"):
        polynomials = [m.random_polynomial(t) for _ in xs]  # one per key server, as in the DKG
        shares = {x: sum(m.poly_eval(f, x) for f in polynomials) % m.N for x in xs}
        server_key = m.point_add(*(m.base_mul(f[0]) for f in polynomials))
    with step("generate a document key for Alice and store C, E with the key servers"):
        generated = generate_document_key(server_key, alice.public())
    with step('encrypt "Hello, world!" with the document key'):
        encrypted = encrypt_message(generated.encrypted_key, alice, MESSAGE)
    with step(f"retrieve the document key shadow from {t + 1} key servers"):
        participants = xs[: t + 1]
        alpha = m.random_scalar()
        deltas = {x: m.random_scalar() for x in participants}
        node_shadows = {x: m.node_shadow(shares[x], x, participants) for x in participants}
        joint = m.joint_shadow_point(
            m.node_shadow_point(node_shadows[x], alpha, generated.common_point, deltas[x]) for x in participants)
        decrypted_secret = m.decrypt_with_joint_shadow(t, alpha, generated.encrypted_point, joint)
        decrypt_shadows = [
            ecies.encrypt(alice.public(), m.decrypt_shadow_coefficient(node_shadows[x], deltas[x]).to_bytes(32, "big"))
            for x in participants]
        common_shadow = m.common_shadow_point(t, generated.common_point)
    with step("shadow-decrypt the message as Alice"):
        plaintext = shadow_decrypt_message(common_shadow, decrypted_secret, decrypt_shadows, alice, encrypted)
    if plaintext != MESSAGE:
        print(f"FAILED: decrypted {plaintext!r}")
        return 1
    print(f'Decrypted message: "{plaintext.decode()}"')
    return 0
