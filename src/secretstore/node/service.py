"""Running a node: the chain, its RPC server and block production under one structured lifetime."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from pathlib import Path

from aiohttp import web

from ..process import listen_socket
from .chain import Chain, load_chain_spec
from .metrics import node_metrics_server
from .rpc import RpcLimits, RpcServer
from .rpc.limits import is_loopback

log = logging.getLogger(__name__)


async def run_node(base_path: Path, host: str, port: int, block_time: float | None, chain_spec: Path | None,
                   ready: asyncio.Event | None = None, seal_per_transaction: bool = False,
                   prometheus: tuple[str, int] | None = None, limits: RpcLimits = RpcLimits()) -> None:
    genesis, name = load_chain_spec(chain_spec)
    listener = listen_socket(host, port)
    try:
        chain = Chain(base_path, genesis, name)
    except BaseException:
        listener.close()
        raise
    # decided on the address actually bound, as Substrate does (a host name counts as what it resolved to)
    address = listener.getsockname()[0]
    deny_unsafe = limits.denies_unsafe(address)
    if limits.methods == "unsafe" and not is_loopback(address):
        print("It isn't safe to expose RPC publicly without a proxy server that filters available set of RPC "
              "methods.", file=sys.stderr, flush=True)  # Substrate's warning
    server = RpcServer(chain, block_time=block_time, seal_per_transaction=seal_per_transaction, limits=limits,
                       deny_unsafe=deny_unsafe)
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
              f"(also /ws and HTTP POST{'; unsafe methods refused' if deny_unsafe else ''})", flush=True)
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
