"""Process utilities shared by the node and the key servers (and the harnesses that start them): listening sockets,
free ports, the Prometheus /metrics endpoint, one-shot JSON-RPC calls and stopping child process groups.

It sits below both layers, so a key server deployed on a host of its own needs nothing of the node package.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import urllib.request

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

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


def free_port(host: str = "127.0.0.1") -> int:
    return free_ports(1, host)[0]


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """`count` distinct free ports: all are held open at once while they are picked, so none repeats. With host
    "0.0.0.0" they are free on every local address (for processes on several loopback addresses)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind((host, 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def rpc_call(url: str, method: str, params: list | None = None, timeout: float = 5.0) -> dict:
    """One JSON-RPC call over HTTP POST (for readiness checks and tests that need raw access)."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []}).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


def stop_process_group(process: subprocess.Popen | None, kill: bool = False) -> None:
    """Stop a process started with start_new_session=True and everything it started: SIGTERM (or SIGKILL), then
    SIGKILL if it has not exited within 10 seconds."""
    if process is None or process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGKILL if kill else signal.SIGTERM)
        process.wait(timeout=10)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


class MetricsServer:
    """/metrics (Prometheus text format) over HTTP on its own port; 127.0.0.1 unless told otherwise."""

    def __init__(self, registry: CollectorRegistry, host: str, port: int) -> None:
        self.registry, self.host, self.port = registry, host, port
        self._runner: web.AppRunner | None = None

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(self.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        log.info("prometheus metrics served", extra={"address": f"http://{self.host}:{self.port}/metrics"})

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
