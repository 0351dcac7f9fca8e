"""`secretstore status`: the SecretStore at a glance — chain head, key server sets (and whether each key server's
cluster port accepts connections), the running migration with who confirmed it, and pending requests with their age.

Reads only what a MathChain node offers too: standard RPC, System.Events and the three runtime API traits (never the
SecretStore pallet's storage). Reachability is a status probe of the cluster port with a short timeout: no cluster
handshake (the status command needs no key server key); a key server answers it with public figures only — its share
refresh setting, its refresh epoch and how many of its keys are at it — and an older one just closes.
A request's age comes from its *Requested event, found by scanning back from the best block (bounded by --scan-blocks).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

from ... import aio
from ...chain.client import ChainEvent
from ...chain.connection import ChainConnection
from ...chain.errors import ChainError
from ...chain.rpc import header_number
from ...chain.secretstore_api import (
    SERVICES, GenerateServerKey, KeyServerSetSnapshot, RetrieveServerKey, RetrieveShadowDocumentKeyCommon,
    RetrieveShadowDocumentKeyPersonal, SecretStoreRuntimeApi, ServiceTask, StoreDocumentKey,
)
from ...crypto import Address
from ...keyserver.net import HELLO_LEN, STATUS_MAGIC

# the event that announced each kind of request
REQUESTED = {
    "server_key_generation": "ServerKeyGenerationRequested",
    "server_key_retrieval": "ServerKeyRetrievalRequested",
    "document_key_store": "DocumentKeyStoreRequested",
    "document_key_shadow_retrieval": "DocumentKeyShadowRetrievalRequested",
}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("status", help="key server sets, migration, pending requests and chain head at a glance")
    p.add_argument("--url", default=None, help="node WebSocket URL (overrides --sub-host/--sub-port)")
    p.add_argument("--sub-host", default="localhost", help='Substrate node RPC host ("localhost")')
    p.add_argument("--sub-port", type=int, default=9944, help="Substrate node RPC port (9944)")
    p.add_argument("--json", action="store_true", help="print JSON (one document per line with --watch)")
    p.add_argument("--watch", nargs="?", type=float, const=2.0, default=None, metavar="SECONDS",
                   help="show it again every SECONDS (2) until Ctrl-C")
    p.add_argument("--scan-blocks", type=int, default=256,
                   help="how many recent blocks to search for the events of pending requests (256)")
    p.add_argument("--connect-timeout", type=float, default=1.0,
                   help="seconds to wait for a key server's cluster port to accept a connection (1)")
    p.set_defaults(handler=run)


# ---------------------------------------------------------------------------------------------- collecting
class EventScanner:
    """SecretStore *Requested events of recent blocks; blocks seen once are kept (finalized blocks do not change)."""

    def __init__(self, chain: ChainConnection, limit: int) -> None:
        self.chain, self.limit = chain, limit
        self.by_block: dict[str, list[ChainEvent]] = {}

    async def requested(self, block_hash: str) -> list[ChainEvent]:
        if block_hash not in self.by_block:
            if len(self.by_block) > 4 * self.limit:  # --watch runs for days: forget blocks long out of the window
                self.by_block.clear()
            block = await self.chain.block(block_hash)
            self.by_block[block_hash] = [e for e in block.events
                                         if e.pallet == "SecretStore" and e.name in REQUESTED.values()]
        return self.by_block[block_hash]

    async def find(self, wanted: dict[tuple, dict], best: int) -> int:
        """Fill `requested_block` of each wanted entry (keyed by (event name, key id[, requester])) with the most
        recent block announcing it; returns how many blocks were read."""
        missing = set(wanted)
        scanned = 0
        number = best
        while missing and number >= 0 and scanned < self.limit:
            block_hash = await self.chain.block_hash(number)
            if block_hash is None:
                break
            for event in await self.requested(block_hash):
                attributes = event.attributes if isinstance(event.attributes, dict) else {}
                key = (event.name, str(attributes.get("id", "")).lower())
                if event.name == REQUESTED["document_key_shadow_retrieval"]:
                    key += (str(attributes.get("requester", "")).lower(),)
                if key in missing:
                    wanted[key]["requested_block"] = number
                    missing.discard(key)
            scanned += 1
            number -= 1
        return scanned


def task_json(service: str, task: ServiceTask) -> tuple[tuple, dict]:
    """(the key of its *Requested event, its JSON) for a pending task."""
    event = REQUESTED[service]
    if isinstance(task, GenerateServerKey):
        entry = {"key_id": task.key_id.hex(), "author": task.author.hex(), "threshold": task.threshold}
    elif isinstance(task, StoreDocumentKey):
        entry = {"key_id": task.key_id.hex(), "author": task.author.hex()}
    elif isinstance(task, RetrieveServerKey):
        entry = {"key_id": task.key_id.hex()}
    elif isinstance(task, RetrieveShadowDocumentKeyCommon):
        entry = {"key_id": task.key_id.hex(), "requester": task.requester.hex(), "phase": "common"}
    else:
        assert isinstance(task, RetrieveShadowDocumentKeyPersonal)
        entry = {"key_id": task.key_id.hex(), "requester": task.requester.hex(), "phase": "personal"}
    key = (event, entry["key_id"].lower()) + ((entry["requester"].lower(),) if "requester" in entry else ())
    return key, entry


async def probe(address: bytes, timeout: float) -> tuple[bool, dict | None]:
    """(does the address ("host:port") accept a TCP connection, the key server's share refresh figures if it gave
    them): a status probe, answered with the server's HELLO and one JSON line, then closed."""
    host, _, port = address.decode(errors="replace").rpartition(":")
    if not host or not port.isdigit():
        return False, None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(host.strip("[]"), int(port))
    except (OSError, TimeoutError, ValueError):
        return False, None
    figures = None
    try:
        async with asyncio.timeout(timeout):
            writer.write(STATUS_MAGIC.ljust(HELLO_LEN, b"\0"))
            await reader.readexactly(HELLO_LEN)
            answer = json.loads(await reader.readline())
        if isinstance(answer, dict) and isinstance(answer.get("share_refresh_blocks"), int):
            figures = {k: answer.get(k) for k in ("share_refresh_blocks", "refresh_epoch", "keys", "keys_at_epoch",
                                                  "old_versions")}
    except (OSError, TimeoutError, ValueError, asyncio.IncompleteReadError):
        pass  # reachable, but no figures (an older key server)
    writer.close()
    try:
        await writer.wait_closed()
    except OSError:
        pass
    return True, figures


def refresh_summary(servers: list[dict], finalized: int) -> dict | None:
    """The share refresh as the current set's key servers report it (None: none reported anything)."""
    reports = [ks for ks in servers if ks.get("refresh") is not None]
    if not reports:
        return None
    settings = sorted({ks["refresh"]["share_refresh_blocks"] for ks in reports})
    blocks = settings[0] if len(settings) == 1 else None
    return {"blocks": blocks, "settings_differ": len(settings) > 1,
            "epoch": finalized // blocks if blocks else None, "finalized": finalized}


async def collect(chain: ChainConnection, scanner: EventScanner, connect_timeout: float,
                  first_seen: dict[tuple, float]) -> dict[str, Any]:
    await chain.connect()  # again after a lost connection (e.g. the node restarted)
    api = SecretStoreRuntimeApi(chain.state_call)
    best_hash = await chain.rpc.request("chain_getBlockHash", [])
    best_number = header_number(await chain.rpc.request("chain_getHeader", [best_hash]))
    final_number, final_hash = await chain.finalized_head()
    # the sets do not depend on who asks; only `migration.is_confirmed` does (asked per member below)
    snap: KeyServerSetSnapshot = await api.snapshot(Address(bytes(20)))
    addresses = sorted({a for a in snap.members().values()})
    probes = await asyncio.gather(*(probe(a, connect_timeout) for a in addresses))
    up = {a: reached for a, (reached, _) in zip(addresses, probes)}
    figures = {a: refresh for a, (_, refresh) in zip(addresses, probes)}

    def servers(members: dict[Address, bytes]) -> list[dict]:
        return [{"id": ks.hex(), "address": a.decode(errors="replace"), "reachable": up[a], "refresh": figures[a]}
                for ks, a in members.items()]

    migration = None
    if snap.migration is not None:
        members = []
        for ks, address in snap.migration.set.items():
            asked = await api.snapshot(ks)
            confirmed = (asked.migration is not None and asked.migration.id == snap.migration.id
                         and asked.migration.is_confirmed)
            members.append({"id": ks.hex(), "address": address.decode(errors="replace"), "reachable": up[address],
                            "confirmed": confirmed})
        migration = {"id": "0x" + snap.migration.id.hex(), "master": snap.migration.master.hex(),
                     "confirmed": sum(m["confirmed"] for m in members), "members": members}

    pending: dict[str, list[dict]] = {}
    wanted: dict[tuple, dict] = {}
    now = time.monotonic()
    for service in SERVICES:
        pending[service] = []
        for task in await api.tasks(service):
            key, entry = task_json(service, task)
            entry["requested_block"] = None
            wanted[key] = entry
            pending[service].append(entry)
    for gone in set(first_seen) - set(wanted):
        del first_seen[gone]
    scanned = await scanner.find(wanted, best_number) if wanted else 0
    for key, entry in wanted.items():
        entry["age_blocks"] = None if entry["requested_block"] is None else best_number - entry["requested_block"]
        # the chain has no clock: seconds are how long this status process has seen the request pending (--watch)
        entry["observed_seconds"] = round(now - first_seen.setdefault(key, now), 1)

    return {
        "url": chain.url,
        "head": {"best": {"number": best_number, "hash": best_hash},
                 "finalized": {"number": final_number, "hash": final_hash}},
        "key_servers": {"current": servers(snap.current_set), "new": servers(snap.new_set),
                        "migration": servers(snap.migration.set) if snap.migration else None},
        "migration": migration,
        "share_refresh": refresh_summary(servers(snap.current_set), final_number),
        "pending": pending,
        "scanned_blocks": scanned,
        "scan_limit": scanner.limit,
    }


# ------------------------------------------------------------------------------------------------ rendering
def render(status: dict[str, Any]) -> str:
    head = status["head"]
    lines = [f"chain      {status['url']}",
             f"best       #{head['best']['number']} {head['best']['hash']}",
             f"finalized  #{head['finalized']['number']} {head['finalized']['hash']}", ""]
    sets = status["key_servers"]

    def server_lines(title: str, members: list[dict] | None, same_as: tuple[str, list[dict]] | None = None) -> None:
        if members is None:
            lines.append(f"{title}: none")
        elif same_as is not None and members == same_as[1]:
            lines.append(f"{title}: same as {same_as[0]}")
        else:
            lines.append(f"{title} ({len(members)}):")
            for ks in members:
                lines.append(f"  {ks['id']}  {ks['address']:<24} {'reachable' if ks['reachable'] else 'UNREACHABLE'}")

    server_lines("current set", sets["current"])
    server_lines("new set", sets["new"], ("current", sets["current"]))
    server_lines("migration set", sets["migration"], ("new set", sets["new"]))
    lines.append("")
    lines.extend(refresh_lines(status["share_refresh"], sets["current"]))
    migration = status["migration"]
    lines.append("")
    if migration is None:
        lines.append("migration: none running")
    else:
        lines.append(f"migration {migration['id']}, master {migration['master']}: "
                     f"{migration['confirmed']}/{len(migration['members'])} confirmed")
        for m in migration["members"]:
            lines.append(f"  {m['id']}  {'confirmed' if m['confirmed'] else 'not confirmed yet'}"
                         f"{'' if m['reachable'] else ' (UNREACHABLE)'}")
    lines.append("")
    total = sum(len(v) for v in status["pending"].values())
    lines.append(f"pending requests: {total}")
    for service, entries in status["pending"].items():
        if not entries:
            continue
        lines.append(f"  {service} ({len(entries)}):")
        for entry in entries:
            what = ", ".join(f"{k} {v}" for k, v in entry.items()
                             if k not in ("key_id", "requested_block", "age_blocks", "observed_seconds"))
            if entry["requested_block"] is None:
                age = f"requested more than {status['scan_limit']} blocks ago"
            else:
                age = f"requested at #{entry['requested_block']}, {entry['age_blocks']} blocks ago"
            if entry["observed_seconds"]:
                age += f", pending for at least {entry['observed_seconds']:.0f} s"
            lines.append(f"    {entry['key_id']}  {age}" + (f"  ({what})" if what else ""))
    return "\n".join(lines)


def refresh_lines(summary: dict | None, current: list[dict]) -> list[str]:
    if summary is None:
        return ["share refresh: not reported (key servers unreachable or older)"]
    if summary["settings_differ"]:
        head = "share refresh: the key servers are configured differently (they refuse each other)"
    elif not summary["blocks"]:
        return ["share refresh: off"]
    else:
        head = f"share refresh: every {summary['blocks']} blocks, epoch {summary['epoch']} (finalized " \
               f"#{summary['finalized']})"
    lines = [head]
    for ks in current:
        refresh = ks.get("refresh")
        if refresh is None:
            lines.append(f"  {ks['id']}  not reported")
        else:
            kept = f", {refresh['old_versions']} old versions kept until every holder has the new one" \
                if refresh.get("old_versions") else ""
            lines.append(f"  {ks['id']}  epoch {refresh['refresh_epoch']}: {refresh['keys_at_epoch']}/"
                         f"{refresh['keys']} keys at it{kept}" if refresh.get("keys") is not None
                         else f"  {ks['id']}  every {refresh['share_refresh_blocks']} blocks")
    return lines


# ------------------------------------------------------------------------------------------------------ run
def run(args: argparse.Namespace) -> int:
    if args.watch is not None and not 0 < args.watch < 1e6:  # also refuses nan
        raise ValueError("--watch must be a positive number of seconds")
    if args.scan_blocks < 0:
        raise ValueError("--scan-blocks must not be negative")
    if not 0 < args.connect_timeout <= 60:
        raise ValueError("--connect-timeout must be between 0 and 60 seconds")
    if args.url is None and not 0 < args.sub_port < 65536:
        raise ValueError("--sub-port must be a TCP port (1..65535)")
    url = args.url or f"ws://{args.sub_host}:{args.sub_port}"
    if not url.startswith(("ws://", "wss://")):
        raise ValueError(f"--url must be a ws:// or wss:// URL, got {url!r}")
    try:
        return aio.run(show(args, url))
    except KeyboardInterrupt:  # the way to leave --watch
        return 0


async def show(args: argparse.Namespace, url: str) -> int:
    chain = ChainConnection(url, timeout=30.0)
    scanner = EventScanner(chain, args.scan_blocks)
    first_seen: dict[tuple, float] = {}
    clear = args.watch is not None and not args.json and sys.stdout.isatty()
    try:
        while True:
            try:
                status = await collect(chain, scanner, args.connect_timeout, first_seen)
            except (ChainError, OSError, TimeoutError) as exc:
                reason = " ".join(str(exc).split())  # one line, whatever the library put in it
                if args.watch is None:
                    raise ValueError(f"cannot read the status from {url}: {reason}") from None
                # watching goes on through a node restart: say so, try again next time
                print(f"error: cannot read the status from {url}: {reason}", file=sys.stderr, flush=True)
                await asyncio.sleep(args.watch)
                continue
            text = json.dumps(status) if args.json else render(status)
            print(("\033[H\033[J" if clear else "") + text, flush=True)
            if args.watch is None:
                return 0
            if not args.json and not clear:
                print(flush=True)
            await asyncio.sleep(args.watch)
    finally:
        await chain.close()
