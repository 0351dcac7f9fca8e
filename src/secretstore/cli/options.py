"""Command line options shared by several subcommands."""

from __future__ import annotations

import argparse
import socket


def add_metrics_arguments(p: argparse.ArgumentParser, flag: str, default_port: int | None) -> None:
    """FLAG (only if it has a default port), FLAG-port and FLAG-host: Prometheus /metrics, off unless asked for."""
    if default_port is not None:
        p.add_argument(flag, action="store_true", help=f"serve Prometheus metrics on port {default_port}")
    p.add_argument(f"{flag}-port", type=int, default=None, help="serve Prometheus metrics on this port")
    p.add_argument(f"{flag}-host", default="127.0.0.1", help='interface of the metrics endpoint ("127.0.0.1")')


def metrics_address(args: argparse.Namespace, flag: str, default_port: int | None) -> tuple[str, int] | None:
    name = flag.lstrip("-").replace("-", "_")
    port = getattr(args, f"{name}_port")
    if port is None and default_port is not None and getattr(args, name):
        port = default_port
    if port is None:
        return None
    if not 0 < port < 65536:
        raise ValueError(f"{flag}-port must be a TCP port (1..65535)")
    return getattr(args, f"{name}_host"), port


def check_listen_host(flag: str, host: str) -> None:
    """A host to listen on must resolve before anything is started (or created on disk)."""
    try:
        socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise ValueError(f"{flag}: cannot listen on {host!r}: {getattr(exc, 'strerror', None) or exc}") from None
