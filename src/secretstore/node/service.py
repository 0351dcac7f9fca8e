"""Running a node: the chain, its RPC server and block production under one structured lifetime."""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path

from aiohttp import web

from ..process import listen_socket
from .chain import Chain, load_chain_spec
from .metrics import node_metrics_server
from .rpc import RpcServer

log = logging.getLogger(__name__)


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
