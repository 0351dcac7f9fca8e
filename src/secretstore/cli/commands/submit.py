"""`secretstore submit-transaction --transaction="GenerateServerKey(0x…, 1)"`: any SecretStore call, in the textual
form of Parity's `bin/substrate` tool (hex with or without 0x), optionally waiting until it is mined, finalized or
processed (the key servers' result event; for a key server set change, the migration that follows it)."""

from __future__ import annotations

import argparse
import re
from typing import Any, Callable

from ...chain.client import ChainEvent, DispatchFailed
from ...chain.connection import TransactionRejected
from ...chain.errors import ChainError
from ...crypto import Public
from ...crypto.keys import parse_hex
from .keyserver import add_signer_arguments, signer_keypair


def _hex(length: int) -> Callable[[str, str], str]:
    def parse(value: str, name: str) -> str:
        return "0x" + parse_hex(value, f"--transaction: {name}", length).hex()
    return parse


def _point(value: str, name: str) -> str:
    return Public.from_hex(value, f"--transaction: {name}").hex()


def _threshold(value: str, name: str) -> int:
    if not value.isdigit() or int(value) > 254:
        raise ValueError(f"--transaction: {name} must be an integer 0..254, got {value!r}")
    return int(value)


def _account(value: str, name: str) -> str:
    # an SS58 address as it is, or a 32-byte public key in hex
    return value if not re.fullmatch(r"(0x)?[0-9a-fA-F]{64}", value) else _hex(32)(value, name)


def _text(value: str, name: str) -> str:
    if not value:
        raise ValueError(f"--transaction: {name} must not be empty")
    return value


ID, ENTITY = _hex(32), _hex(20)
# textual name -> (call, [(parameter, parser)])
CALLS: dict[str, tuple[str, list[tuple[str, Callable[[str, str], Any]]]]] = {
    "ClaimKey": ("claim_key", [("id", ID)]),
    "TransferKey": ("transfer_key", [("id", ID), ("new_claimant", ENTITY)]),
    "GenerateServerKey": ("generate_server_key", [("id", ID), ("threshold", _threshold)]),
    "RetrieveServerKey": ("retrieve_server_key", [("id", ID)]),
    "StoreDocumentKey": ("store_document_key", [("id", ID), ("common_point", _point), ("encrypted_point", _point)]),
    "RetrieveDocumentKeyShadow": ("retrieve_document_key_shadow", [("id", ID), ("requester_public", _point)]),
    "AddKeyServer": ("add_key_server", [("id", ENTITY), ("network_address", _text)]),
    "RemoveKeyServer": ("remove_key_server", [("id", ENTITY)]),
    "ChangeOwner": ("change_owner", [("new_owner", _account)]),
    "StartMigration": ("start_migration", [("migration_id", ID)]),
    "ConfirmMigration": ("confirm_migration", [("migration_id", ID)]),
    "CompleteInitialization": ("complete_initialization", []),
    "ClaimId": ("claim_id", [("id", ENTITY)]),
}
# the service calls: events that finish them (success, failure)
RESULT_EVENTS = {
    "generate_server_key": ({"ServerKeyGenerated"}, {"ServerKeyGenerationError"}),
    "retrieve_server_key": ({"ServerKeyRetrieved"}, {"ServerKeyRetrievalError"}),
    "store_document_key": ({"DocumentKeyStored"}, {"DocumentKeyStoreError"}),
    "retrieve_document_key_shadow": ({"DocumentKeyCommonRetrieved", "DocumentKeyPersonalRetrieved"},
                                     {"DocumentKeyShadowRetrievalError"}),
}
SET_CHANGES = {"add_key_server", "remove_key_server"}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("submit-transaction", help='submit a SecretStore call, e.g. "GenerateServerKey(0x…, 1)"')
    p.add_argument("--transaction", required=True, help="Call(arg, ...) as Parity's substrate tool writes it")
    p.add_argument("--sub-host", default="localhost", help='Substrate node RPC host ("localhost")')
    p.add_argument("--sub-port", type=int, default=9944, help="Substrate node RPC port (9944)")
    add_signer_arguments(p)
    # as in Parity's tool, each wait implies the ones before it
    p.add_argument("--wait-mined", action="store_true", help="wait until it is in a block")
    p.add_argument("--wait-finalized", action="store_true", help="wait until its block is final")
    p.add_argument("--wait-processed", action="store_true",
                   help="wait for the key servers' result event (a set change: until its migration completed)")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for a result (120)")
    p.set_defaults(handler=run)


def parse_transaction(text: str) -> tuple[str, dict[str, Any]]:
    match = re.fullmatch(r"\s*([A-Za-z]+)\s*\((.*)\)\s*", text, re.S)
    if not match:
        raise ValueError(f"--transaction: expected Name(arg, ...), got {text!r}")
    name, body = match.groups()
    if name not in CALLS:
        raise ValueError(f"--transaction: unknown call {name!r}; known: {', '.join(sorted(CALLS))}")
    call, spec = CALLS[name]
    args = [a.strip().strip('"').strip("'") for a in body.split(",")] if body.strip() else []
    if len(args) != len(spec):
        raise ValueError(f"--transaction: {name} takes {len(spec)} argument(s) "
                         f"({', '.join(p for p, _ in spec)}), got {len(args)}")
    return call, {pname: parse(value, pname) for (pname, parse), value in zip(spec, args)}


def _show(event: ChainEvent) -> str:
    attributes = event.attributes
    if isinstance(attributes, dict):
        return f"{event.name}: " + ", ".join(f"{k}={v}" for k, v in attributes.items())
    return event.name if attributes is None else f"{event.name}: {attributes}"


def run(args: argparse.Namespace) -> int:
    from ...client import RequestTimeout, SecretStoreClient

    call, params = parse_transaction(args.transaction)
    if not 0 < args.sub_port < 65536:
        raise ValueError("--sub-port must be a TCP port (1..65535)")
    if not 0 < args.timeout < 1e6:  # also refuses nan
        raise ValueError("--timeout must be a positive number of seconds")
    waits = args.wait_processed or args.wait_finalized or args.wait_mined
    client = SecretStoreClient(f"ws://{args.sub_host}:{args.sub_port}", signer_keypair(args), timeout=args.timeout)
    match, finished = _processed(client, call, params) if args.wait_processed else (None, None)
    try:
        # the result events are followed from the moment of submission, so none can be missed
        receipt, events = client.request(call, params, match, finished, wait="in_block" if waits else "pool")
    except DispatchFailed as exc:
        raise ValueError(f"the call failed: {exc}") from None
    except (TransactionRejected, ChainError, RequestTimeout) as exc:
        raise ValueError(str(exc)) from None
    finally:
        client.close()
    print(f"Transaction hash: {receipt.extrinsic_hash}")
    if receipt.block_hash:
        # blocks are followed as they are finalized: mined and finalized are one moment here
        print(f"Included in finalized block #{receipt.block_number} ({receipt.block_hash})")
        for event in receipt.events:
            if event.pallet == "SecretStore":
                print(_show(event))
    for event in events:
        print(_show(event))
    if args.wait_processed and call in SET_CHANGES:
        print("Migration has completed: the key servers hold every key for the new set" if events
              else "Key server set changed (no migration needed)")
    if args.wait_processed and call in RESULT_EVENTS and any(e.name in RESULT_EVENTS[call][1] for e in events):
        return 1
    return 0


def _processed(client, call: str, params: dict):
    """(match, finished) for --wait-processed: the key servers' result events of a service request, or the migration
    that a key server set change starts, until the chain's current set equals the new one."""
    if call in RESULT_EVENTS:
        done, failed = RESULT_EVENTS[call]
        key = params["id"].lower()
        return (lambda e: e.pallet == "SecretStore" and isinstance(e.attributes, dict)
                and str(e.attributes.get("id", "")).lower() == key and e.name in done | failed,
                lambda found: _finished(call, found, failed))
    if call in SET_CHANGES:
        async def settled(found: list[ChainEvent]) -> bool:
            if found and found[-1].name != "MigrationCompleted":
                return False
            snapshot = await client.aio.key_server_set()
            return snapshot.migration is None and set(snapshot.current_set) == set(snapshot.new_set)

        return lambda e: e.pallet == "SecretStore" and e.name in ("MigrationStarted", "MigrationCompleted"), settled
    return None, None


def _finished(call: str, found: list, failed: set[str]) -> bool:
    if any(e.name in failed for e in found):
        return True
    if call != "retrieve_document_key_shadow":
        return bool(found)
    from ...client.sdk import shadow_retrieval_result

    return shadow_retrieval_result(found) is not None
