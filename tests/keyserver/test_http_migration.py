"""The HTTP API across a completed servers set change: signing and retrieval use the migrated key version, with the
new key server as master or participant (key version negotiation)."""

import secrets
import time

import coincurve
import pytest

from secretstore.client import SecretStoreClient
from secretstore.client.http import HttpApiError, SecretStoreHttpClient, verify_schnorr
from secretstore.crypto import Secret, ServerKeyId
from secretstore.crypto.document import encrypt_document, decrypt_document
from secretstore.keyserver.storage import KeyStorage
from secretstore.devnet import LocalNetwork

ALICE = Secret(b"\x01" * 32)


def holders(ks, key_id):
    storage = KeyStorage(ks.db_path / "keys.sqlite", ks.secret)
    try:
        share = storage.get(key_id)
        return None if share is None else len(share.holders)
    finally:
        storage.close()


def retrying(call, timeout=30.0):
    deadline = time.monotonic() + timeout
    while True:
        try:
            return call()
        except HttpApiError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def test_signing_and_retrieval_after_a_migration(tmp_path):
    network = LocalNetwork(tmp_path, key_servers=4, initial_set=3).start()
    try:
        apis = [SecretStoreHttpClient(ks.http_url, timeout=60) for ks in network.servers]
        with SecretStoreClient(network.node.ws_url, "//Alice", timeout=60) as alice:
            key_id = ServerKeyId(secrets.token_bytes(32))
            alice.claim_key(key_id)
            document_key = apis[0].generate_document_key(key_id, ALICE, 1)
            public = apis[0].retrieve_server_key(key_id, ALICE)
            encrypted = encrypt_document(document_key, b"moved")
            extra = network.servers[3]
            with pytest.raises(HttpApiError):  # not in the set yet: it has no share and no set to work with
                apis[3].sign_schnorr(key_id, ALICE, bytes(32))

            alice.submit("add_key_server", id=extra.id.hex(), network_address=f"127.0.0.1:{extra.net_port}")
            alice.wait_for_key_server_set([ks.id for ks in network.servers], timeout=90)
            deadline = time.monotonic() + 60
            while holders(extra, key_id) != 4:
                assert time.monotonic() < deadline, "the key did not reach the new key server"
                time.sleep(0.2)

            for master in (3, 0):  # the new key server as master, then an original one
                message_hash = secrets.token_bytes(32)
                assert verify_schnorr(public, message_hash,
                                      retrying(lambda: apis[master].sign_schnorr(key_id, ALICE, message_hash)))
                signature = retrying(lambda: apis[master].sign_ecdsa(key_id, ALICE, message_hash))
                recovered = coincurve.PublicKey.from_signature_and_message(signature, message_hash, hasher=None)
                assert recovered.format(compressed=False)[1:] == bytes(public)
                assert decrypt_document(retrying(lambda: apis[master].retrieve_document_key(key_id, ALICE)),
                                        encrypted) == b"moved"
            assert decrypt_document(alice.retrieve_document_key(key_id, ALICE), encrypted) == b"moved"
    finally:
        network.stop()
