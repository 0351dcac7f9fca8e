"""`secretstore submit-transaction --transaction="GenerateServerKey(0x…, 1)"`: any SecretStore call, in the textual
form of the Parity Secret Store substrate tool, optionally waiting for it to be mined, finalized or processed."""

from __future__ import annotations

import argparse
import re
from typing import Any

from ...chain.client import ChainError, DispatchFailed, TransactionRejected

# textual name -> (call, parameter names); the service calls also name the events that finish them
CALLS: dict[str, tuple[str, list[str]]] = {
    "ClaimKey": ("claim_key", ["id"]),
    "TransferKey": ("transfer_key", ["id", "new_claimant"]),
    "GenerateServerKey": ("generate_server_key", ["id", "threshold"]),
    "RetrieveServerKey": ("retrieve_server_key", ["id"]),
    "StoreDocumentKey": ("store_document_key", ["id", "common_point", "encrypted_point"]),
    "RetrieveDocumentKeyShadow": ("retrieve_document_key_shadow", ["id", "requester_public"]),
    "AddKeyServer": ("add_key_server", ["id", "network_address"]),
    "RemoveKeyServer": ("remove_key_server", ["id"]),
    "ChangeOwner": ("change_owner", ["new_owner"]),
    "StartMigration": ("start_migration", ["migration_id"]),
    "ConfirmMigration": ("confirm_migration", ["migration_id"]),
    "CompleteInitialization": ("complete_initialization", []),
    "ClaimId": ("claim_id", ["id"]),
}
RESULT_EVENTS = {
    "generate_server_key": ({"ServerKeyGenerated"}, {"ServerKeyGenerationError"}),
    "retrieve_server_key": ({"ServerKeyRetrieved"}, {"ServerKeyRetrievalError"}),
    "store_document_key": ({"DocumentKeyStored"}, {"DocumentKeyStoreError"}),
    "retrieve_document_key_shadow": ({"DocumentKeyCommonRetrieved", "DocumentKeyPersonalRetrieved"},
                                     {"DocumentKeyShadowRetrievalError"}),
}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("submit-transaction", help='submit a SecretStore call, e.g. "GenerateServerKey(0x…, 1)"')
    p.add_argument("--transaction", required=True, help="Call(arg, ...) as the Parity Secret Store tool writes it")
    p.add_argument("--sub-host", default="127.0.0.1")
    p.add_argument("--sub-port", type=int, default=9944)
    p.add_argument("--sub-signer", default="//Alice")
    wait = p.add_mutually_exclusive_group()
    wait.add_argument("--wait-mined", action="store_true", help="wait until it is in a block")
    wait.add_argument("--wait-finalized", action="store_true", help="wait until its block is final")
    wait.add_argument("--wait-processed", action="store_true", help="wait for the key servers' result event")
    p.add_argument("--timeout", type=float, default=60.0)
    p.set_defaults(handler=run)


def parse_transaction(text: str) -> tuple[str, dict[str, Any]]:
    match = re.fullmatch(r"\s*([A-Za-z]+)\s*\((.*)\)\s*", text, re.S)
    if not match:
        raise ValueError(f'--transaction: expected Name(arg, ...), got {text!r}')
    name, body = match.groups()
    if name not in CALLS:
        raise ValueError(f"--transaction: unknown call {name!r}; known: {', '.join(sorted(CALLS))}")
    call, names = CALLS[name]
    args = [a.strip().strip('"').strip("'") for a in body.split(",")] if body.strip() else []
    if len(args) != len(names):
        raise ValueError(f"--transaction: {name} takes {len(names)} argument(s) ({', '.join(names)}), got {len(args)}")
    params: dict[str, Any] = {}
    for pname, value in zip(names, args):
        if pname == "threshold":
            if not value.isdigit() or int(value) > 254:
                raise ValueError("--transaction: threshold must be an integer 0..254")
            params[pname] = int(value)
        elif pname in ("network_address", "new_owner"):
            params[pname] = value
        else:
            if not re.fullmatch(r"0x[0-9a-fA-F]*", value):
                raise ValueError(f"--transaction: {pname} must be 0x-prefixed hex, got {value!r}")
            params[pname] = value
    return call, params


def run(args: argparse.Namespace) -> int:
    from ...client import SecretStoreClient

    call, params = parse_transaction(args.transaction)
    client = SecretStoreClient(f"ws://{args.sub_host}:{args.sub_port}", args.sub_signer, timeout=args.timeout)
    try:
        wait_for = "finalized" if args.wait_finalized else "in_block" if (args.wait_mined or args.wait_processed) else "pool"
        receipt = client.chain.submit("SecretStore", call, params, wait_for=wait_for)
        print(f"Transaction hash: {receipt.extrinsic_hash}")
        if receipt.block_hash:
            print(f"Included in block #{receipt.block_number} ({receipt.block_hash})")
        if args.wait_processed and call in RESULT_EVENTS:
            done, failed = RESULT_EVENTS[call]
            key = params["id"].lower()
            events = client.chain.wait_for_events(
                lambda e: e.pallet == "SecretStore" and str(e.attributes.get("id", "")).lower() == key
                and e.name in done | failed, from_block=receipt.block_number or 0, timeout=args.timeout,
                stop_when=lambda found: _finished(call, found, failed))
            for event in events:
                print(f"{event.name}: " + ", ".join(f"{k}={v}" for k, v in event.attributes.items()))
            if any(e.name in failed for e in events):
                return 1
    except DispatchFailed as exc:
        raise ValueError(f"the call failed: {exc}") from None
    except (TransactionRejected, ChainError) as exc:
        raise ValueError(str(exc)) from None
    finally:
        client.close()
    return 0


def _finished(call: str, found: list, failed: set[str]) -> bool:
    if any(e.name in failed for e in found):
        return True
    if call != "retrieve_document_key_shadow":
        return bool(found)
    from ...client.sdk import shadow_retrieval_result

    return shadow_retrieval_result(found) is not None
