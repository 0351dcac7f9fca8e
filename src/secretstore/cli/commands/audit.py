"""`secretstore audit PATH [--key-id ID] [--requester ADDRESS]`: a key server's audit log (`key-server --audit-log`,
by default audit.log in its --db-path), all of it or only the lines of a key id and / or a requester address, printed
as the JSON lines they are (one request each: time, via, operation, key_id, requester, master, outcome, status,
duration_ms), for people and for `jq` alike."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("audit", help="show a key server's audit log, optionally only a key's or a requester's lines")
    p.add_argument("path", type=Path, help="the audit log (audit.log in the key server's --db-path by default)")
    p.add_argument("--key-id", default=None, help="only requests for this key id (32 bytes, hex)")
    p.add_argument("--requester", default=None, help="only requests of this requester address (20 bytes, hex)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ...crypto import Address, ServerKeyId
    from ...keyserver.audit import read_entries

    # checked here, so a mistyped filter is an error rather than an empty answer
    key_id = ServerKeyId.from_hex(args.key_id, "--key-id").hex() if args.key_id is not None else None
    requester = Address.from_hex(args.requester, "--requester").hex() if args.requester is not None else None
    if not args.path.is_file():
        raise ValueError(f"{args.path}: no such audit log")
    unreadable: list[int] = []
    for entry in read_entries(args.path, key_id, requester, on_bad_line=unreadable.append):
        print(json.dumps(entry, separators=(",", ":")))
    if unreadable:  # e.g. the last line of a key server that was killed while writing it
        print(f"warning: skipped {len(unreadable)} unreadable line(s) (first: line {unreadable[0]})", file=sys.stderr)
    return 0
