"""Proactive share refresh on real processes (n = 5, t = 2, a refresh epoch every EPOCH finalized blocks): every
share changes and the key does not; t shares from before and one from after are useless together; a Byzantine
dealer is named and left out; a key server killed in the middle of a refresh loses nothing. Shares are read out of
the running servers' sealed databases with their secrets (test-only)."""

from __future__ import annotations

import itertools
import json
import secrets
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from secretstore.client import SecretStoreClient, SecretStoreHttpClient
from secretstore.client.http import verify_ecdsa, verify_schnorr
from secretstore.crypto import Secret, ServerKeyId
from secretstore.crypto import math as m
from secretstore.devnet import LocalNetwork
from secretstore.keyserver.storage import KeyStorage
from secretstore.process import rpc_call

from .helpers import new_key_id, shares_of

ALICE = Secret(b"\x01" * 32)  # the requester //Alice's claims allow (its address is //Alice's dev claim)
EPOCH = 40


@pytest.fixture(scope="module")
def network(tmp_path_factory):
    with LocalNetwork(tmp_path_factory.mktemp("refresh"), key_servers=5, share_refresh_blocks=EPOCH,
                      metrics=True) as net:
        yield net


@pytest.fixture(scope="module")
def alice(network):
    with SecretStoreClient(network.node.ws_url, "//Alice", timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def keys(network, alice):
    """Two keys made over the HTTP API (document keys generated with them) and one over the chain."""
    api = SecretStoreHttpClient(network.servers[0].http_url, timeout=60)
    made = []
    for _ in range(2):
        key_id = new_key_id()
        alice.claim_key(key_id)
        document_key = api.generate_document_key(key_id, ALICE, 2)
        made.append((key_id, api.retrieve_server_key(key_id, ALICE), document_key, None))
    key_id = new_key_id()
    alice.claim_key(key_id)
    public = alice.generate_server_key(key_id, threshold=2)
    generated = alice.store_new_document_key(key_id, public, ALICE)
    made.append((key_id, public, generated.document_key, alice.encrypt_document(generated.document_key, b"before")))
    return made


def finalized(network) -> int:
    head = rpc_call(network.node.http_url, "chain_getHeader", [rpc_call(network.node.http_url,
                                                                       "chain_getFinalizedHead")["result"]])
    return int(head["result"]["number"], 16)


def next_epoch(network, alice) -> int:
    """Seal blocks (claims of fresh ids) until the finalized head enters the next refresh epoch."""
    epoch = finalized(network) // EPOCH + 1
    while finalized(network) < epoch * EPOCH:
        alice.claim_key(new_key_id())
    return epoch


def epochs_of(ks, key_ids) -> list[int | None]:
    storage = KeyStorage(ks.db_path / "keys.sqlite", ks.secret)
    try:
        return [storage.refresh_epoch_of(k) for k in key_ids]
    finally:
        storage.close()


def wait_refreshed(network, key_ids, epoch, servers=None, timeout=90.0) -> None:
    deadline = time.monotonic() + timeout
    for ks in servers or network.servers:
        while not all(e is not None and e >= epoch for e in epochs_of(ks, key_ids)):
            assert time.monotonic() < deadline, f"key server {ks.index + 1} did not refresh: {epochs_of(ks, key_ids)}"
            time.sleep(0.25)


def points(network, key_id) -> dict[int, int]:
    return {m.id_number(ks.id): s.secret_share for ks, s in zip(network.servers, shares_of(network, key_id))}


def assert_served(network, alice, keys, via=0, ecdsa=True) -> None:
    """Documents stored before decrypt, Schnorr and ECDSA signatures verify (HTTP API of server `via`; ECDSA needs
    all 2t + 1 = 5 holders)."""
    api = SecretStoreHttpClient(network.servers[via].http_url, timeout=60)
    for key_id, public, document_key, _ in keys:
        assert api.retrieve_document_key(key_id, ALICE) == document_key
        message = secrets.token_bytes(32)
        assert verify_schnorr(public, message, api.sign_schnorr(key_id, ALICE, message))
        if ecdsa:
            assert verify_ecdsa(public, message, api.sign_ecdsa(key_id, ALICE, message))


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        return response.read().decode()


def test_a_refresh_changes_every_share_and_nothing_else(network, alice, keys):
    key_ids = [k for k, *_ in keys]
    before = {k: points(network, k) for k in key_ids}
    versions = {k: s.version for k in key_ids for s in shares_of(network, k)[:1]}
    epoch = next_epoch(network, alice)
    wait_refreshed(network, key_ids, epoch)
    for key_id, public, _, _ in keys:
        after = points(network, key_id)
        shares = shares_of(network, key_id)
        assert all(s.public == public for s in shares)
        assert len({s.version for s in shares}) == 1 and shares[0].version != versions[key_id]
        assert all(after[x] != before[key_id][x] for x in after)  # every stored share differs
        xs = sorted(after)
        for subset in itertools.combinations(xs, 3):
            assert m.base_mul(m.reconstruct({x: after[x] for x in subset})) == public  # t + 1 from after
            for fresh in subset:  # t from before, one from after
                mixed = {x: (after if x == fresh else before[key_id])[x] for x in subset}
                assert m.base_mul(m.reconstruct(mixed)) != public
    assert_served(network, alice, keys, via=3)
    key_id, _, document_key, encrypted = keys[2]  # and over the chain: a shadow retrieval after the refresh
    assert alice.decrypt_document(alice.retrieve_document_key(key_id, ALICE), encrypted) == b"before"

    for ks in network.servers:  # each key server exports its epoch and how many of its keys are at it
        text = scrape(ks.metrics_port)
        current = finalized(network) // EPOCH
        assert f"secretstore_keyserver_share_refresh_epoch {float(current)}" in text
        assert "secretstore_keyserver_share_refresh_keys_at_epoch" in text
    shown = json.loads(subprocess.run(
        [str(Path(sys.executable).with_name("secretstore")), "status", "--url", network.node.ws_url, "--json"],
        capture_output=True, text=True, timeout=60, check=True).stdout)
    assert shown["share_refresh"]["blocks"] == EPOCH and not shown["share_refresh"]["settings_differ"]
    for ks in shown["key_servers"]["current"]:
        assert ks["refresh"]["share_refresh_blocks"] == EPOCH and ks["refresh"]["keys"] == len(keys)


def test_a_byzantine_dealer_is_named_and_left_out(network, alice, keys):
    liar = network.servers[4]
    network.restart_key_server(4, faults="corrupt=dkg")
    network.wait_connected(60)
    key_ids = [k for k, *_ in keys]
    before = {k: points(network, k) for k in key_ids}
    epoch = next_epoch(network, alice)
    wait_refreshed(network, key_ids, epoch)
    for key_id, public, _, _ in keys:
        after = points(network, key_id)
        assert all(after[x] != before[key_id][x] for x in after)
        assert m.base_mul(m.reconstruct(dict(list(after.items())[:3]))) == public
    logs = "\n".join(ks.log_path.read_text(errors="replace") for ks in network.servers)
    upheld = [line for line in logs.splitlines() if "refresh complaint upheld" in line]
    assert upheld and all(f"dealer={liar.id.hex()}" in line for line in upheld)
    assert any("share refreshed without faulty dealers" in line and liar.id.hex() in line
               for line in logs.splitlines())
    network.restart_key_server(4, faults=None)
    network.wait_connected(60)
    assert_served(network, alice, keys, via=4)


def test_a_key_server_killed_mid_refresh_loses_nothing(network, alice, keys):
    """Key server 2 dies as the activation of the new versions reaches it (they are staged on its disk by then);
    the others go on serving meanwhile; restarted, it finishes the refresh and holds the new version."""
    victim = network.servers[2]
    network.restart_key_server(2, faults="crash=refresh_activate")
    network.wait_connected(60)
    key_ids = [k for k, *_ in keys]
    epoch = next_epoch(network, alice)
    deadline = time.monotonic() + 60
    while victim.alive():
        assert time.monotonic() < deadline, "the fault did not fire"
        time.sleep(0.2)
    others = [ks for i, ks in enumerate(network.servers) if i != 2]
    assert_served(network, alice, keys, via=0, ecdsa=False)  # t + 1 holders are up, each on its version
    network.restart_key_server(2, faults=None)
    network.wait_connected(60)
    wait_refreshed(network, key_ids, epoch)
    wait_refreshed(network, key_ids, epoch, servers=others)
    for key_id, public, _, _ in keys:
        shares = shares_of(network, key_id)
        assert len({s.version for s in shares}) == 1
        after = points(network, key_id)
        for subset in itertools.combinations(sorted(after), 3):
            assert m.base_mul(m.reconstruct({x: after[x] for x in subset})) == public
    assert_served(network, alice, keys, via=2)
