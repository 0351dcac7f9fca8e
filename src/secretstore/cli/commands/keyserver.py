"""`secretstore key-server`: one key server process, with the flags and defaults of Parity's `bin/substrate` key server
(`--self-secret --db-path --net-host --net-port --sub-host --sub-port --sub-signer --sub-signer-password`), plus
`--self-secret-file` so that the secret stays out of the process list."""

from __future__ import annotations

import argparse
from pathlib import Path

from ... import aio
from ..options import add_metrics_arguments, check_listen_host, metrics_address


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("key-server", help="run a key server")
    secret = p.add_mutually_exclusive_group(required=True)
    secret.add_argument("--self-secret", help="this key server's secp256k1 secret (hex, with or without 0x; visible to "
                                              "other local users in the process list — prefer --self-secret-file)")
    secret.add_argument("--self-secret-file", type=Path, help="file holding the secret (hex)")
    p.add_argument("--db-path", type=Path, default=Path("db"), help='directory of the key share database ("db")')
    p.add_argument("--net-host", default="0.0.0.0", help='interface the cluster listens on ("0.0.0.0")')
    p.add_argument("--net-port", type=int, default=8083, help="cluster port (TCP, 8083)")
    p.add_argument("--sub-host", default="localhost", help='Substrate node RPC host ("localhost")')
    p.add_argument("--sub-port", type=int, default=9944, help="Substrate node RPC port (9944)")
    add_signer_arguments(p)
    add_metrics_arguments(p, "--metrics", None)
    p.add_argument("--http-host", default="127.0.0.1", help="HTTP API listen address (with --http-port)")
    p.add_argument("--http-port", type=int, default=None, help="serve Parity's key server HTTP API on this port")
    p.add_argument("--http-cors", default=None, metavar="ORIGINS",
                   help="origins allowed to call the HTTP API from a browser: comma-separated, '*' or 'none' (default)")
    add_http_limit_arguments(p)
    p.add_argument("--audit-log", type=Path, default=None, metavar="PATH",
                   help="append one JSON line per request served here (default: audit.log in --db-path)")
    p.add_argument("--share-refresh-blocks", type=int, default=0, metavar="N",
                   help="refresh every key's shares every N finalized blocks, so that shares stolen in different "
                        "epochs do not combine (0: never, the default); every key server of a set must use the same N")
    p.add_argument("--faults", default=None, help=argparse.SUPPRESS)  # test-only: keyserver.faults
    p.set_defaults(handler=run)


def add_http_limit_arguments(p: argparse.ArgumentParser) -> None:
    from ...keyserver import limits

    p.add_argument("--http-max-sessions", type=int, default=None, metavar="N",
                   help=f"HTTP requests in progress at once; more are answered 429 ({limits.DEFAULT_MAX_SESSIONS})")
    p.add_argument("--http-max-sessions-per-requester", type=int, default=None, metavar="N",
                   help="HTTP requests in progress at once of one requester address; more are answered 429 "
                        f"({limits.DEFAULT_PER_REQUESTER})")
    p.add_argument("--http-request-timeout", type=float, default=None, metavar="SECONDS",
                   help=f"answer an HTTP request with a deadline error after this long ({limits.DEFAULT_TIMEOUT:g})")


def http_limits(args: argparse.Namespace):
    """The HttpLimits the flags give (defaults for those not given); a bad value is a ValueError."""
    from ...keyserver.limits import HttpLimits

    given = {field: value for field, value in (("max_sessions", args.http_max_sessions),
                                                ("per_requester", args.http_max_sessions_per_requester),
                                                ("timeout", args.http_request_timeout)) if value is not None}
    if given and args.http_port is None:
        raise ValueError("--http-max-sessions, --http-max-sessions-per-requester and --http-request-timeout need "
                         "--http-port")
    return HttpLimits(**given)


def add_signer_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sub-signer", default=None, help='SURI of the account that signs transactions ("//Alice")')
    p.add_argument("--sub-signer-password", default=None, help="password of that SURI (none by default)")
    p.add_argument("--sub-signer-file", type=Path, default=None,
                   help="file holding the SURI instead (password included as ///password): kept out of the process list")


def signer_keypair(args: argparse.Namespace):
    """The sr25519 key pair of --sub-signer (and --sub-signer-password, Substrate's `///password` part of a SURI),
    or of the SURI in --sub-signer-file."""
    from substrateinterface import Keypair

    flag = "--sub-signer"
    if args.sub_signer_file is not None:
        if args.sub_signer is not None or args.sub_signer_password is not None:
            raise ValueError("--sub-signer-file replaces --sub-signer and --sub-signer-password: give one or the other")
        flag = "--sub-signer-file"
        try:
            suri = args.sub_signer_file.read_text().strip()
        except OSError as exc:
            raise ValueError(f"--sub-signer-file: {exc.strerror}") from None
    else:
        suri = (args.sub_signer or "//Alice") + (f"///{args.sub_signer_password}" if args.sub_signer_password else "")
    try:
        return Keypair.create_from_uri(suri)
    except Exception:  # the library raises several kinds for a bad SURI; its message may echo the secret
        raise ValueError(f"{flag}: not a valid secret URI (e.g. //Alice or a mnemonic)") from None


def run(args: argparse.Namespace) -> int:
    from ...crypto import Secret
    from ...keyserver.audit import default_path
    from ...keyserver.http import Cors
    from ...keyserver.service import HttpSettings, run_key_server

    faults = None
    if args.faults is not None:  # test-only; refused unless SECRETSTORE_FAULTS=1 (a one-line error)
        from ...keyserver.faults import FaultPlan
        faults = FaultPlan.parse(args.faults)
    if args.self_secret_file is not None:
        try:
            text = args.self_secret_file.read_text().strip()
        except OSError as exc:
            raise ValueError(f"--self-secret-file: {exc.strerror}") from None
        secret = Secret.from_hex(text, "--self-secret-file")
    else:
        secret = Secret.from_hex(args.self_secret, "--self-secret")
    if not 0 < args.net_port < 65536 or not 0 < args.sub_port < 65536:
        raise ValueError("--net-port and --sub-port must be TCP ports (1..65535)")
    signer = signer_keypair(args)
    http = None
    if args.http_port is not None:
        if not 0 < args.http_port < 65536:
            raise ValueError("--http-port must be between 1 and 65535")
        Cors.parse(args.http_cors)  # a bad value is an error before anything starts
        http = HttpSettings(args.http_host, args.http_port, args.http_cors, http_limits(args))
    elif args.http_cors is not None:
        raise ValueError("--http-cors needs --http-port")
    else:
        http_limits(args)  # flags given without --http-port are an error
    if args.share_refresh_blocks < 0:
        raise ValueError("--share-refresh-blocks must not be negative (0: no share refresh)")
    metrics = metrics_address(args, "--metrics", None)
    for flag, host in (("--net-host", args.net_host), ("--http-host", http and args.http_host),
                       ("--metrics-host", metrics and metrics[0])):
        if host:
            check_listen_host(flag, host)
    aio.run(run_key_server(secret, args.db_path, args.net_host, args.net_port,
                           f"ws://{args.sub_host}:{args.sub_port}", signer, http=http, metrics=metrics,
                           faults=faults, audit_log=args.audit_log or default_path(args.db_path),
                           share_refresh_blocks=args.share_refresh_blocks))
    return 0
