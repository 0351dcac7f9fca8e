"""`secretstore demo`: the quick-start story on a fresh live local network, each step timed.

Starts a node and three key servers in a temporary directory, then: Alice claims a key, the key servers generate it,
Alice stores a document key, encrypts "Hello, world!", retrieves the document key shadow and decrypts; the key is
transferred to Bob, Alice is refused and Bob succeeds; Bob has a message hash signed with the server key over the key
servers' HTTP API (threshold Schnorr and ECDSA, verified locally); a fourth key server is added to the set and removed again,
each change followed by the automatic migration of every key, and Bob still decrypts after each.
Exits 0 only if every step did what it should.
"""

from __future__ import annotations

import argparse
import hashlib
import secrets
import shutil
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, TextIO

from ...client import RequestFailed, SecretStoreClient, SecretStoreHttpClient
from ...client.http import HttpApiError, verify_ecdsa, verify_schnorr
from ...crypto import Secret, ServerKeyId
from ...devnet import LocalNetwork

MESSAGE = b"Hello, world!"
ALICE = Secret(b"\x01" * 32)  # //Alice's entity id is this key's address (dev chain)
BOB = Secret(b"\x02" * 32)


class StepFailed(Exception):
    pass


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="start a local network and run the whole document key flow on it")
    p.add_argument("--key-servers", type=int, default=3)
    p.add_argument("--threshold", type=int, default=1)
    p.add_argument("--keep", action="store_true", help="keep the network's directory afterwards")
    p.set_defaults(handler=run)


@contextmanager
def step(title: str) -> Iterator[None]:
    started = time.perf_counter()
    print(f"- {title} ...", flush=True)
    yield
    print(f"  ok ({time.perf_counter() - started:.2f} s)", flush=True)


class ProgressLine:
    """Start-up progress. On a terminal: one line, rewritten in place with the time so far; elsewhere (a log, a pipe):
    one line per message, so that nothing is lost."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout
        self.live = self.stream.isatty()
        self.started = time.perf_counter()
        self.width = 0

    def __call__(self, message: str) -> None:
        if not self.live:
            print(f"    {message}", file=self.stream, flush=True)
            return
        text = f"    [{time.perf_counter() - self.started:4.1f} s] {message}"
        text = text[: shutil.get_terminal_size().columns - 1]  # a wrapped line could not be rewritten in place
        self.stream.write("\r" + text.ljust(self.width))  # pad: a shorter message must hide the longer one
        self.stream.flush()
        self.width = len(text)

    def close(self) -> None:
        if self.live and self.width:
            self.stream.write("\n")
            self.stream.flush()
            self.width = 0


def run(args: argparse.Namespace) -> int:
    if not 0 <= args.threshold < args.key_servers:
        raise ValueError("--threshold must be below --key-servers")
    base = Path(tempfile.mkdtemp(prefix="secretstore-demo-"))
    # one more key server process runs outside the set, to be added (and removed) at the end of the story
    network = LocalNetwork(base, key_servers=args.key_servers + 1, initial_set=args.key_servers)
    print(f"SecretStore demo: a live network of 1 node and {args.key_servers} key servers (+1 spare) in {base}")
    try:
        with step("start the network"):
            progress = ProgressLine()
            try:
                network.start(progress=progress)
            finally:
                progress.close()
            print(f"    node {network.node.ws_url}; key servers at "  # type: ignore[union-attr]
                  f"{', '.join(ks.address for ks in network.servers)}", flush=True)
        return story(network, args.threshold)
    except (StepFailed, RequestFailed, HttpApiError, TimeoutError, RuntimeError) as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    finally:
        network.stop()
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)


def story(network: LocalNetwork, threshold: int) -> int:
    url = network.node.ws_url  # type: ignore[union-attr]
    key_id = ServerKeyId(secrets.token_bytes(32))
    with SecretStoreClient(url, "//Alice") as alice, SecretStoreClient(url, "//Bob") as bob:
        with step(f"Alice claims key {key_id.hex()}"):
            alice.claim_key(key_id)
        with step(f"the key servers generate the server key (threshold {threshold})"):
            server_key = alice.generate_server_key(key_id, threshold)
            print(f"    server key public {server_key.hex()}")
        with step("Alice generates a document key and stores it with the key servers"):
            generated = alice.store_new_document_key(key_id, server_key, ALICE)
        with step('Alice encrypts "Hello, world!"'):
            encrypted = alice.encrypt_document(generated.document_key, MESSAGE)
            print(f"    encrypted message 0x{encrypted.hex()}")
        with step("Alice retrieves the document key shadow and decrypts"):
            shadow = alice.retrieve_document_key_shadow(key_id, ALICE)
            plaintext = alice.decrypt_document(shadow.document_key(ALICE), encrypted)
            print(f"    {len(shadow.shadows)} decrypt shadows; decrypted: {plaintext.decode(errors='replace')!r}")
            if plaintext != MESSAGE:
                raise StepFailed("the decrypted message differs")
        with step("Alice transfers the key to Bob"):
            alice.transfer_key(key_id, BOB.public().address())
        with step("Alice is refused now"):
            try:
                alice.retrieve_document_key(key_id, ALICE)
            except RequestFailed as exc:
                print(f"    refused: {exc.event}")
            else:
                raise StepFailed("Alice could still retrieve the key")
        with step("Bob retrieves the document key and decrypts"):
            plaintext = bob.decrypt_document(bob.retrieve_document_key(key_id, BOB), encrypted)
            if plaintext != MESSAGE:
                raise StepFailed("Bob decrypted something else")
            print(f"    decrypted: {plaintext.decode()!r}")
        with step("Bob has a message hash signed with the server key over the HTTP API: Schnorr and ECDSA"):
            api = SecretStoreHttpClient(network.servers[0].http_url, timeout=60)
            message_hash = hashlib.sha256(MESSAGE).digest()
            schnorr = api.sign_schnorr(key_id, BOB, message_hash)
            ecdsa = api.sign_ecdsa(key_id, BOB, message_hash)
            if not verify_schnorr(server_key, message_hash, schnorr):
                raise StepFailed("the Schnorr signature does not verify under the server key")
            if not verify_ecdsa(server_key, message_hash, ecdsa):
                raise StepFailed("the ECDSA signature does not verify under (or recover) the server key")
            if verify_ecdsa(server_key, hashlib.sha256(b"another message").digest(), ecdsa):
                raise StepFailed("the ECDSA signature verifies for another message")
            print(f"    Schnorr (c, s) and ECDSA 0x{ecdsa.hex()} verified locally against the server key")
        members = [ks.id for ks in network.servers[:-1]]
        extra = network.servers[-1]
        with step(f"the owner adds key server {extra.id.hex()}; the key servers migrate every key to the new set"):
            receipt = alice.submit("add_key_server", id=extra.id.hex(), network_address=extra.address)
            if "KeyServerAdded" not in [e.name for e in receipt.events]:
                raise StepFailed("no KeyServerAdded event")
            alice.wait_for_key_server_set(members + [extra.id])
            print(f"    migration completed: {len(members) + 1} key servers hold the keys")
        with step("Bob still decrypts with the grown set"):
            if bob.decrypt_document(bob.retrieve_document_key(key_id, BOB), encrypted) != MESSAGE:
                raise StepFailed("Bob decrypted something else after the migration")
        with step(f"the owner removes key server {extra.id.hex()} again; the keys migrate back"):
            receipt = alice.submit("remove_key_server", id=extra.id.hex())
            if "KeyServerRemoved" not in [e.name for e in receipt.events]:
                raise StepFailed("no KeyServerRemoved event")
            alice.wait_for_key_server_set(members)
            print(f"    migration completed: back to {len(members)} key servers")
        with step("Bob still decrypts after the removal"):
            if bob.decrypt_document(bob.retrieve_document_key(key_id, BOB), encrypted) != MESSAGE:
                raise StepFailed("Bob decrypted something else after the removal")
    print('Decrypted message: "Hello, world!" — every step did what it should.')
    return 0
