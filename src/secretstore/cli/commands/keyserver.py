"""`secretstore key-server`: one key server process (flags as the Parity Secret Store substrate key server)."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("key-server", help="run a key server")
    secret = p.add_mutually_exclusive_group(required=True)
    secret.add_argument("--self-secret", help="this key server's secp256k1 secret (hex; visible to other local users "
                                              "in the process list — prefer --self-secret-file)")
    secret.add_argument("--self-secret-file", type=Path, help="file holding the secret (hex)")
    p.add_argument("--db-path", required=True, type=Path, help="directory of the key share database")
    p.add_argument("--net-host", default="127.0.0.1", help="cluster listen address")
    p.add_argument("--net-port", type=int, default=10000, help="cluster listen port")
    p.add_argument("--sub-host", default="127.0.0.1", help="Substrate node RPC host")
    p.add_argument("--sub-port", type=int, default=9944, help="Substrate node RPC port")
    p.add_argument("--sub-signer", default="//Alice", help="SURI of the account that signs responses")
    p.add_argument("--http-host", default="127.0.0.1", help="HTTP API listen address (with --http-port)")
    p.add_argument("--http-port", type=int, default=None, help="serve Parity's key server HTTP API on this port")
    p.add_argument("--http-cors", default=None, metavar="ORIGINS",
                   help="origins allowed to call the HTTP API from a browser: comma-separated, '*' or 'none' (default)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from substrateinterface import Keypair

    from ...crypto import Secret
    from ...keyserver.http import Cors
    from ...keyserver.service import HttpSettings, run_key_server

    if args.self_secret_file is not None:
        try:
            text = args.self_secret_file.read_text().strip()
        except OSError as exc:
            raise ValueError(f"--self-secret-file: {exc.strerror}") from None
        secret = Secret.from_hex(text, "--self-secret-file")
    else:
        secret = Secret.from_hex(args.self_secret, "--self-secret")
    try:
        signer = Keypair.create_from_uri(args.sub_signer)
    except Exception as exc:  # the library raises several kinds for a bad SURI
        raise ValueError(f"--sub-signer: {exc}") from None
    http = None
    if args.http_port is not None:
        if not 0 < args.http_port < 65536:
            raise ValueError("--http-port must be between 1 and 65535")
        Cors.parse(args.http_cors)  # a bad value is an error before anything starts
        http = HttpSettings(args.http_host, args.http_port, args.http_cors)
    elif args.http_cors is not None:
        raise ValueError("--http-cors needs --http-port")
    asyncio.run(run_key_server(secret, args.db_path, args.net_host, args.net_port,
                               f"ws://{args.sub_host}:{args.sub_port}", signer, http=http))
    return 0
