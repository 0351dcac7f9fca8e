"""Helpers shared by the key server test modules."""

from __future__ import annotations

import asyncio
import contextlib
import secrets

from secretstore.crypto import ServerKeyId
from secretstore.keyserver.net import Cluster, ClusterConfig, KeyServerDirectory
from secretstore.keyserver.storage import KeyShare, KeyStorage
from secretstore.devnet import LocalNetwork
from secretstore.process import free_port


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


@contextlib.asynccontextmanager
async def cluster_of(pairs, handler, allowed=None, configs=None):
    """Running clusters on loopback, one per key pair, each listing the others (or only those in `allowed`), each
    with its ClusterConfig from `configs` (the default one where not given); all stopped on exit."""
    ports = [free_port() for _ in pairs]
    book = {p.address: ("127.0.0.1", port) for p, port in zip(pairs, ports)}
    clusters = []
    for pair, port, config in zip(pairs, ports, configs or [ClusterConfig()] * len(pairs)):
        directory = KeyServerDirectory()
        directory.update({a: hp for a, hp in book.items() if a != pair.address and (allowed is None or a in allowed)})
        clusters.append(Cluster(pair, "127.0.0.1", port, directory, handler, config=config))
    tasks = [asyncio.create_task(c.run()) for c in clusters]
    try:
        yield clusters
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
