"""Helpers shared by the key server test modules."""

from __future__ import annotations

import secrets

from secretstore.crypto import ServerKeyId
from secretstore.keyserver.storage import KeyShare, KeyStorage
from secretstore.devnet import LocalNetwork


def new_key_id() -> ServerKeyId:
    return ServerKeyId(secrets.token_bytes(32))


def shares_of(network: LocalNetwork, key_id: ServerKeyId) -> list[KeyShare | None]:
    """Each key server's share of the key, read from its database file (None where it holds none)."""
    found = []
    for ks in network.servers:
        storage = KeyStorage(ks.db_path / "keys.sqlite", ks.secret)
        try:
            found.append(storage.get(key_id))
        finally:
            storage.close()
    return found
