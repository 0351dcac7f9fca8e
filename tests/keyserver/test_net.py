"""The cluster transport over real loopback sockets: who gets in, and what a tampered or oversized frame does."""

import asyncio
import struct

import pytest

from secretstore.crypto import KeyPair, Secret
from secretstore.keyserver import net
from secretstore.keyserver.net import PeerUnavailable, RemoteError

from .helpers import cluster_of as shared_cluster_of


async def echo(peer, body):
    if body.get("fail"):
        raise ValueError("refused on purpose")
    return {"echo": body, "from": peer.hex()}


def cluster_of(pairs, allowed=None):
    return shared_cluster_of(pairs, echo, allowed)


async def wait_connected(a, b, timeout=5.0):
    async with asyncio.timeout(timeout):
        while not (a.is_connected(b.self_id) and b.is_connected(a.self_id)):
            await asyncio.sleep(0.02)


async def test_request_response_between_authenticated_peers():
    pairs = [KeyPair.generate() for _ in range(3)]
    async with cluster_of(pairs) as (a, b, c):
        await wait_connected(a, b)
        await wait_connected(b, c)
        reply = await a.request(b.self_id, {"x": 1})
        assert reply == {"echo": {"x": 1}, "from": a.self_id.hex()}
        with pytest.raises(RemoteError, match="refused on purpose"):
            await c.request(a.self_id, {"fail": True})


async def test_outsider_is_refused():
    insider, other, outsider = KeyPair.generate(), KeyPair.generate(), KeyPair.generate()
    # the outsider knows where the insiders listen, but is not in their set
    async with cluster_of([insider, other, outsider], allowed={insider.address, other.address}) as (a, b, c):
        await wait_connected(a, b)
        await asyncio.sleep(1.0)
        assert not a.is_connected(outsider.address) and not b.is_connected(outsider.address)
        with pytest.raises(PeerUnavailable):
            await c.request(insider.address, {"x": 1})


async def test_peer_that_cannot_sign_is_refused():
    """A client presenting an allowed key server's public key without its secret fails the challenge."""
    victim, server = KeyPair.generate(), KeyPair.generate()
    async with cluster_of([server, victim]) as (s, _):
        host, port = "127.0.0.1", s.port
        await asyncio.sleep(0.3)
        reader, writer = await asyncio.open_connection(host, port)
        impostor = KeyPair.generate()
        writer.write(net.MAGIC + bytes(victim.public) + bytes(Secret.random().public()) + b"\x00" * 32)
        await reader.readexactly(net.HELLO_LEN)
        # sign with the wrong key: the server must close the connection
        writer.write(bytes(impostor.sign(b"\x11" * 32)))
        await writer.drain()
        await reader.readexactly(65)  # the server's own proof
        assert await reader.read(100) == b""
        writer.close()


async def test_tampered_and_oversized_frames_end_the_connection():
    pairs = [KeyPair.generate(), KeyPair.generate()]
    async with cluster_of(pairs) as (a, b):
        await wait_connected(a, b)
        conn = a.connections[b.self_id]
        # flip a bit of an encrypted frame on the wire
        original_write = conn.writer.write
        conn.writer.write = lambda data: original_write(data[:-1] + bytes([data[-1] ^ 1]))
        with pytest.raises(PeerUnavailable):
            await a.request(b.self_id, {"x": 1}, timeout=2)
        conn.writer.write = original_write
        await wait_connected(a, b)  # the link comes back with fresh keys
        assert (await a.request(b.self_id, {"x": 2}))["echo"] == {"x": 2}
        conn = a.connections[b.self_id]
        b_side = b.connections[a.self_id]
        conn.writer.write(struct.pack(">I", net.MAX_FRAME + 1000))  # announces a frame over the limit
        await conn.writer.drain()
        async with asyncio.timeout(5):
            while b.connections.get(a.self_id) is b_side:
                await asyncio.sleep(0.02)
        assert b_side.closed
        with pytest.raises(net.ClusterError, match="frame limit"):
            await conn.send({"kind": "request", "id": 1, "body": {"x": "y" * (net.MAX_FRAME + 1)}})
