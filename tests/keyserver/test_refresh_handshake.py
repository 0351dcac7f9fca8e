"""The setting every key server of a set must share (--share-refresh-blocks) is compared in the cluster handshake: a
member configured differently is refused with an error naming both settings; an older key server (no setting sent)
is taken for one without share refresh. A status probe gets the public figures and nothing else."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging

from secretstore.crypto import KeyPair
from secretstore.keyserver import net
from secretstore.keyserver.net import ClusterConfig

from .helpers import cluster_of


async def echo(peer, body):
    return {"from": peer.hex()}


def pair_of(configs):
    return cluster_of([KeyPair.generate() for _ in configs], echo, configs=configs)


async def linked(a, b, timeout):
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout):
            while not (a.is_connected(b.self_id) and b.is_connected(a.self_id)):
                await asyncio.sleep(0.02)
    return a.is_connected(b.self_id) and b.is_connected(a.self_id)


async def test_the_same_setting_connects_and_a_different_one_is_refused_with_an_error(caplog):
    async with pair_of([ClusterConfig(40), ClusterConfig(40)]) as (a, b):
        assert await linked(a, b, 5)
        assert await a.request(b.self_id, {}) == {"from": a.self_id.hex()}
    caplog.set_level(logging.INFO, logger="secretstore.keyserver.net")
    async with pair_of([ClusterConfig(40), ClusterConfig(60)]) as (a, b):
        assert not await linked(a, b, 3)
    refused = [r for r in caplog.records if r.getMessage() == "cluster peer refused: configured differently"]
    assert refused and all(r.levelno == logging.ERROR for r in refused)
    assert any("--share-refresh-blocks 60" in r.reason and "this one with --share-refresh-blocks 40" in r.reason
               for r in refused)
    assert len({(r.reason) for r in refused}) == len(refused)  # once per peer and setting, not per dial
    caplog.clear()
    async with pair_of([ClusterConfig(0), ClusterConfig(25)]) as (a, b):
        assert not await linked(a, b, 3)
    assert any("no share refresh" in r.reason for r in caplog.records if hasattr(r, "reason"))


async def test_an_older_key_server_is_one_without_share_refresh(monkeypatch, caplog):
    """An older key server sends no setting: taken for one without share refresh (a rolling upgrade keeps working
    while refresh is off), refused by a server that refreshes."""
    monkeypatch.setattr(net, "CONFIG_WAIT", 0.3)
    original = net.agree
    older: set = set()

    async def agree(conn, config):
        if conn.peer in older:  # this side talks to the newer one as an older version would: it sends nothing
            return None
        return await original(conn, config)

    monkeypatch.setattr(net, "agree", agree)
    async with pair_of([ClusterConfig(0), ClusterConfig(0)]) as (a, b):
        older.add(b.self_id)  # `a` behaves as an older key server towards `b`
        assert await linked(a, b, 5)
        assert await b.request(a.self_id, {}) == {"from": b.self_id.hex()}
    caplog.set_level(logging.INFO, logger="secretstore.keyserver.net")
    older.clear()
    async with pair_of([ClusterConfig(0), ClusterConfig(30)]) as (a, b):
        older.add(b.self_id)
        assert not await linked(a, b, 2)
    assert any("no share refresh (an older key server)" in getattr(r, "reason", "") for r in caplog.records)


async def test_a_status_probe_gets_the_public_figures(caplog):
    caplog.set_level(logging.INFO, logger="secretstore.keyserver.net")
    async with pair_of([ClusterConfig(12)]) as (server,):
        server.status = lambda: {"share_refresh_blocks": 12, "refresh_epoch": 3, "keys": 7, "keys_at_epoch": 5}
        async with asyncio.timeout(5):
            while True:
                try:
                    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
                    break
                except OSError:
                    await asyncio.sleep(0.05)
            writer.write(net.STATUS_MAGIC.ljust(net.HELLO_LEN, b"\0"))
            hello = await reader.readexactly(net.HELLO_LEN)
            answer = json.loads(await reader.readline())
            assert await reader.read() == b""  # and the connection ends
        writer.close()
    assert hello[:4] == net.MAGIC
    assert answer == {"share_refresh_blocks": 12, "refresh_epoch": 3, "keys": 7, "keys_at_epoch": 5}
    assert not [r for r in caplog.records if "refused" in r.getMessage()]
