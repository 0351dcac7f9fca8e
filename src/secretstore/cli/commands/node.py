"""`secretstore node`: the embedded single-authority chain serving Substrate JSON-RPC."""

from __future__ import annotations

import argparse
from pathlib import Path

from ... import aio
from ..options import add_metrics_arguments, check_listen_host, metrics_address

DEFAULT_PROMETHEUS_PORT = 9615  # Substrate's default
MAX_MB = 4095  # sizes are held in bytes as Substrate's u32


def register(sub: argparse._SubParsersAction) -> None:
    # the defaults (Substrate's) live in node.rpc.limits, which is slow to import: a flag not given stays None
    p = sub.add_parser("node", help="run the SecretStore chain node")
    p.add_argument("--dev", action="store_true",
                   help="use the development genesis (the default genesis); also allows every --rpc-cors origin")
    p.add_argument("--base-path", required=True, type=Path, help="directory for the chain database")
    p.add_argument("--rpc-host", default=None, help='interface the JSON-RPC server listens on ("127.0.0.1")')
    p.add_argument("--rpc-port", type=int, default=9944)
    p.add_argument("--block-time", type=float, default=None,
                   help="seconds between blocks, each with every ready transaction (default: instant seal, a block "
                        "with every ready transaction as soon as there are any)")
    p.add_argument("--seal-per-transaction", action="store_true",
                   help="instant seal with one transaction per block (the old behaviour) instead of all ready ones")
    p.add_argument("--chain-spec", type=Path, default=None, help="JSON file overriding genesis values")
    add_metrics_arguments(p, "--prometheus", DEFAULT_PROMETHEUS_PORT)
    rpc = p.add_argument_group("JSON-RPC exposure and limits (Substrate's flags and defaults)")
    rpc.add_argument("--rpc-external", action="store_true",
                     help="listen on every interface (0.0.0.0) instead of 127.0.0.1; with --rpc-methods auto the "
                          "unsafe methods are then refused")
    rpc.add_argument("--rpc-methods", type=str.lower, choices=("auto", "safe", "unsafe"), default="auto",
                     help="auto (the default): serve the unsafe methods (state_getPairs, state_getKeys, "
                          "system_peers, a storage subscription to every key) only when listening on loopback; "
                          "safe: never; unsafe: always")
    rpc.add_argument("--rpc-cors", metavar="ORIGINS", default=None,
                     help="comma-separated browser origins allowed to call (scheme://host[:port], host:* for any "
                          "port, null), or all / *; default: all with --dev, else localhost, 127.0.0.1 and "
                          "https://polkadot.js.org")
    rpc.add_argument("--rpc-max-connections", type=int, metavar="COUNT",
                     help="WebSocket connections and HTTP requests served at once (100)")
    rpc.add_argument("--rpc-max-request-size", type=int, metavar="MB",
                     help="largest request, HTTP or WebSocket, in megabytes (15)")
    rpc.add_argument("--rpc-max-response-size", type=int, metavar="MB", help="largest reply in megabytes (15)")
    rpc.add_argument("--rpc-max-subscriptions-per-connection", type=int, metavar="COUNT",
                     help="open subscriptions per connection (1024)")
    rpc.add_argument("--rpc-rate-limit", type=int, metavar="CALLS",
                     help="calls per minute per connection (default: no limit)")
    p.set_defaults(handler=run)


# flag -> (RpcLimits field, smallest value, largest value, bytes per unit)
LIMIT_FLAGS = {
    "--rpc-max-connections": ("max_connections", 1, 2**32 - 1, 1),
    "--rpc-max-request-size": ("max_request_size", 1, MAX_MB, 1024 * 1024),
    "--rpc-max-response-size": ("max_response_size", 1, MAX_MB, 1024 * 1024),
    "--rpc-max-subscriptions-per-connection": ("max_subscriptions", 0, 2**32 - 1, 1),
    "--rpc-rate-limit": ("rate_limit", 1, 2**32 - 1, 1),
}


def rpc_limits(args: argparse.Namespace):
    """The RpcLimits the flags ask for, checked (ValueError names the flag); a flag not given keeps the default."""
    from ...node.rpc.limits import CorsPolicy, RpcLimits

    given = {}
    for flag, (name, low, high, unit) in LIMIT_FLAGS.items():
        value = getattr(args, flag[2:].replace("-", "_"))
        if value is not None:
            if not low <= value <= high:
                raise ValueError(f"{flag} must be between {low} and {high}")
            given[name] = value * unit
    return RpcLimits(**given, methods=args.rpc_methods, cors=CorsPolicy.parse(args.rpc_cors, args.dev))


def rpc_host(args: argparse.Namespace) -> str:
    if args.rpc_external:
        if args.rpc_host is not None:
            raise ValueError("--rpc-external listens on 0.0.0.0: it cannot be combined with --rpc-host")
        return "0.0.0.0"
    return args.rpc_host or "127.0.0.1"


def run(args: argparse.Namespace) -> int:
    from ...node.service import run_node

    if args.block_time is not None and not 0 < args.block_time < 1e6:  # also refuses nan and inf
        raise ValueError("--block-time must be a positive number of seconds")
    if not 0 < args.rpc_port < 65536:
        raise ValueError("--rpc-port must be a TCP port (1..65535)")
    if args.block_time is not None and args.seal_per_transaction:
        raise ValueError("--seal-per-transaction is an instant seal mode: it cannot be combined with --block-time")
    prometheus = metrics_address(args, "--prometheus", DEFAULT_PROMETHEUS_PORT)
    host = rpc_host(args)
    limits = rpc_limits(args)
    check_listen_host("--rpc-host", host)
    if prometheus is not None:
        check_listen_host("--prometheus-host", prometheus[0])
    aio.run(run_node(args.base_path, host, args.rpc_port, args.block_time, args.chain_spec,
                     seal_per_transaction=args.seal_per_transaction, prometheus=prometheus, limits=limits))
    return 0
