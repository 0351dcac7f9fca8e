"""`secretstore dev`: a whole local network (node + N key servers) for development, until Ctrl-C.

The node listens where a Substrate `--dev` node does, ws://127.0.0.1:9944, and key server 1 serves its HTTP API on
Parity's 8082 (the others on the ports after it), so snippets written for those run unchanged. A port that is taken
is said so and replaced by a free one; a port asked for with --rpc-port / --http-port must be free.
"""

from __future__ import annotations

import argparse
import signal
import socket
import tempfile
import threading
from pathlib import Path

from ...devnet import LocalNetwork
from ...keyserver.testing import signer_suri
from ...process import free_port, free_ports

RPC_PORT = 9944  # Substrate's default RPC port
HTTP_PORT = 8082  # Parity Secret Store's default key server HTTP port
HOST = "127.0.0.1"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("dev", help="run a local node and key servers until Ctrl-C")
    p.add_argument("--key-servers", type=int, default=3)
    p.add_argument("--threshold", type=int, default=1, help="the threshold suggested for generated keys")
    p.add_argument("--base-path", type=Path, default=None, help="keep the network here (default: a temporary dir)")
    p.add_argument("--rpc-port", type=int, default=None,
                   help=f"the node's RPC port (default {RPC_PORT}, or a free port if {RPC_PORT} is taken)")
    p.add_argument("--http-port", type=int, default=None,
                   help=f"key server 1's HTTP API port, the others on the next ports (default {HTTP_PORT}, or free "
                        "ports if one of those is taken)")
    p.set_defaults(handler=run)


def port_free(port: int, host: str = HOST) -> bool:
    """Whether a server could listen on host:port now (bound as servers bind, reusing TIME_WAIT addresses)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def choose_ports(wanted: int | None, default: int, count: int, what: str, option: str) -> tuple[list[int], str | None]:
    """`count` consecutive ports from `wanted` (or `default`), and a note when the default ones were taken and free
    ports are used instead. Ports asked for explicitly must be free (ValueError otherwise)."""
    first = default if wanted is None else wanted
    if not 1 <= first <= 65535 - (count - 1):
        raise ValueError(f"{option} must be a TCP port (1-{65535 - (count - 1)})")
    ports = list(range(first, first + count))
    taken = [port for port in ports if not port_free(port)]
    if not taken:
        return ports, None
    if wanted is not None:
        raise ValueError(f"{option}: port {taken[0]} is already in use on {HOST}")
    instead = [free_port(HOST)] if count == 1 else free_ports(count, HOST)
    return instead, (f"port {taken[0]} is already in use on {HOST} (another node or `secretstore dev`?): "
                     f"{what} on {', '.join(map(str, instead))} instead")


def run(args: argparse.Namespace) -> int:
    if not 1 <= args.key_servers <= 255:
        raise ValueError("--key-servers must be between 1 and 255")
    if not 0 <= args.threshold < args.key_servers:
        raise ValueError("--threshold must be below --key-servers")
    [rpc_port], rpc_note = choose_ports(args.rpc_port, RPC_PORT, 1, "the node's RPC listens", "--rpc-port")
    http_ports, http_note = choose_ports(args.http_port, HTTP_PORT, args.key_servers,
                                         "the key servers' HTTP APIs listen", "--http-port")
    base = args.base_path or Path(tempfile.mkdtemp(prefix="secretstore-dev-"))
    network = LocalNetwork(base, key_servers=args.key_servers, node_port=rpc_port, http_ports=http_ports)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    for note in (rpc_note, http_note):
        if note:
            print(f"NOTE: {note}", flush=True)
    try:
        network.start(progress=lambda m: print(m, flush=True))
        print(f"\nnode RPC: {network.node.ws_url}  (data in {base})")  # type: ignore[union-attr]
        if rpc_note:
            print(f"NOTE: not on {RPC_PORT}: connect to {network.node.ws_url}")  # type: ignore[union-attr]
        for ks in network.servers:
            print(f"key server {ks.index + 1}: id {ks.id.hex()} at {ks.address}, signs as {signer_suri(ks.index)}, "
                  f"HTTP API {ks.http_url}")
        print(f"suggested threshold: {args.threshold}. Ctrl-C stops everything.", flush=True)
        while not stop.wait(1.0):
            for ks in network.servers:
                if not ks.alive():
                    print(f"key server {ks.index + 1} exited; see {ks.log_path}", flush=True)
                    stop.set()
    finally:
        try:
            print("stopping ...", flush=True)
        finally:  # also when stdout is gone (a closed pipe): the processes must not outlive the command
            network.stop()
    return 0
