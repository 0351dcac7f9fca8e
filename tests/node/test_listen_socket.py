"""The pre-bound listening socket of the node and the key servers: a taken port fails at once, and accepted
connections get Nagle turned off like those of a socket asyncio binds itself (else small replies wait ~40 ms)."""

import asyncio
import socket

import pytest

from secretstore.process import listen_socket


def test_a_taken_port_is_refused():
    with listen_socket("127.0.0.1", 0) as first:
        with pytest.raises(OSError):
            listen_socket("127.0.0.1", first.getsockname()[1])


def test_accepted_connections_have_nagle_off():
    async def run() -> int:
        accepted: asyncio.Future = asyncio.get_running_loop().create_future()

        async def on_connect(reader, writer):
            accepted.set_result(writer.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()

        server = await asyncio.start_server(on_connect, sock=listen_socket("127.0.0.1", 0))
        async with server:
            _, writer = await asyncio.open_connection(*server.sockets[0].getsockname()[:2])
            nodelay = await asyncio.wait_for(accepted, 5)
            writer.close()
            return nodelay
    assert asyncio.run(run()) != 0
