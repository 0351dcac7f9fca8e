"""`secretstore dev`: a whole local network (node + N key servers) for development, until Ctrl-C."""

from __future__ import annotations

import argparse
import signal
import tempfile
import threading
from pathlib import Path

from ...devnet import LocalNetwork
from ...keyserver.testing import signer_suri


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("dev", help="run a local node and key servers until Ctrl-C")
    p.add_argument("--key-servers", type=int, default=3)
    p.add_argument("--threshold", type=int, default=1, help="the threshold suggested for generated keys")
    p.add_argument("--base-path", type=Path, default=None, help="keep the network here (default: a temporary dir)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if not 1 <= args.key_servers <= 255:
        raise ValueError("--key-servers must be between 1 and 255")
    if not 0 <= args.threshold < args.key_servers:
        raise ValueError("--threshold must be below --key-servers")
    base = args.base_path or Path(tempfile.mkdtemp(prefix="secretstore-dev-"))
    network = LocalNetwork(base, key_servers=args.key_servers)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        network.start(progress=lambda m: print(m, flush=True))
        print(f"\nnode RPC: {network.node.ws_url}  (data in {base})")  # type: ignore[union-attr]
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
        print("stopping ...", flush=True)
        network.stop()
    return 0
