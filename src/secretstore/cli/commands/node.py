"""`secretstore node`: the embedded single-authority chain serving Substrate JSON-RPC."""

from __future__ import annotations

import argparse
from pathlib import Path

from ... import aio
from ..options import add_metrics_arguments, check_listen_host, metrics_address

DEFAULT_PROMETHEUS_PORT = 9615  # Substrate's default


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("node", help="run the SecretStore chain node")
    p.add_argument("--dev", action="store_true", help="use the development genesis (the default genesis)")
    p.add_argument("--base-path", required=True, type=Path, help="directory for the chain database")
    p.add_argument("--rpc-host", default="127.0.0.1", help='interface the JSON-RPC server listens on ("127.0.0.1")')
    p.add_argument("--rpc-port", type=int, default=9944)
    p.add_argument("--block-time", type=float, default=None,
                   help="seconds between blocks, each with every ready transaction (default: instant seal, a block "
                        "with every ready transaction as soon as there are any)")
    p.add_argument("--seal-per-transaction", action="store_true",
                   help="instant seal with one transaction per block (the old behaviour) instead of all ready ones")
    p.add_argument("--chain-spec", type=Path, default=None, help="JSON file overriding genesis values")
    add_metrics_arguments(p, "--prometheus", DEFAULT_PROMETHEUS_PORT)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ...node.service import run_node

    if args.block_time is not None and not 0 < args.block_time < 1e6:  # also refuses nan and inf
        raise ValueError("--block-time must be a positive number of seconds")
    if not 0 < args.rpc_port < 65536:
        raise ValueError("--rpc-port must be a TCP port (1..65535)")
    if args.block_time is not None and args.seal_per_transaction:
        raise ValueError("--seal-per-transaction is an instant seal mode: it cannot be combined with --block-time")
    prometheus = metrics_address(args, "--prometheus", DEFAULT_PROMETHEUS_PORT)
    check_listen_host("--rpc-host", args.rpc_host)
    if prometheus is not None:
        check_listen_host("--prometheus-host", prometheus[0])
    aio.run(run_node(args.base_path, args.rpc_host, args.rpc_port, args.block_time, args.chain_spec,
                     seal_per_transaction=args.seal_per_transaction, prometheus=prometheus))
    return 0
