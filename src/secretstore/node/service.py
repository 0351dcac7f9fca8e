"""Running a node: the chain, its RPC server and block production under one structured lifetime."""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
from pathlib import Path

from aiohttp import web

from .chain import Chain, load_chain_spec
from .metrics import node_metrics_server
from .rpc import RpcServer

log = logging.getLogger(__name__)


def listen_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (IPv4 or IPv6, as the host resolves), bound before anything is written,
    so that a taken port is refused with no database made."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                         flags=socket.AI_PASSIVE)[0]
    # proto must say TCP: asyncio turns Nagle off (TCP_NODELAY) only on sockets that do, and with Nagle on, small
    # replies wait for delayed ACKs (about 40 ms more per request/response exchange)
    sock = socket.socket(family, kind, proto or socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(socket.SOMAXCONN)
    except BaseException:
        sock.close()
        raise
    return sock


async def run_node(base_path: Path, host: str, port: int, block_time: float | None, chain_spec: Path | None,
                   ready: asyncio.Event | None = None, seal_per_transaction: bool = False,
                   prometheus: tuple[str, int] | None = None) -> None:
    genesis, name = load_chain_spec(chain_spec)
    listener = listen_socket(host, port)
    try:
        chain = Chain(base_path, genesis, name)
    except BaseException:
        listener.close()
        raise
    server = RpcServer(chain, block_time=block_time, seal_per_transaction=seal_per_transaction)
    metrics = node_metrics_server(chain, server, prometheus)  # None unless --prometheus / --prometheus-port
    runner = web.AppRunner(server.app(), access_log=None, handle_signals=False)
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        site = web.SockSite(runner, listener)
        await site.start()
        if metrics is not None:
            await metrics.start()
        print(f"SecretStore node: chain '{name}', head #{chain.head_number}, JSON-RPC at ws://{host}:{port} "
              f"(also /ws and HTTP POST)", flush=True)
        if ready is not None:
            ready.set()
        async with asyncio.TaskGroup() as tasks:
            producer = tasks.create_task(server.run_block_production())
            await stop.wait()
            producer.cancel()
    finally:
        if metrics is not None:
            await metrics.stop()
        await runner.cleanup()
        chain.close()
        log.info("node stopped")
