"""`secretstore sign-request` and `secretstore http …`: Parity's key server HTTP API from the command line.

The requester's secret stays local: it signs the key id ({sig}) and decrypts the encrypted answers. Outputs use the
same field names as the offline commands, so e.g. `http document-key` feeds `decrypt-message`.
"""

from __future__ import annotations

import argparse

from ...crypto import Public, Secret, ServerKeyId
from ...crypto.keys import parse_hex


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sign-request", help="make the {sig} of an HTTP API request: a signature of the key id")
    p.add_argument("--requester-secret", required=True)
    p.add_argument("--key-id", required=True)
    p.set_defaults(handler=sign_request)

    p = sub.add_parser("http", help="call a key server's HTTP API (Parity's paths)")
    p.add_argument("--url", default="http://127.0.0.1:8082", help="a key server's HTTP API (default %(default)s)")
    p.add_argument("--timeout", type=float, default=60.0)
    calls = p.add_subparsers(dest="call", metavar="CALL", required=True)

    def call(name: str, help: str, *extra: str) -> argparse.ArgumentParser:
        c = calls.add_parser(name, help=help)
        c.add_argument("--key-id", required=True)
        c.add_argument("--requester-secret", required=True)
        for flag in extra:
            c.add_argument(flag, required=True)
        c.set_defaults(handler=run_call)
        return c

    call("generate-server-key", "POST /shadow/{key}/{sig}/{threshold} (the key must be claimed on chain)", "--threshold")
    call("store-document-key", "POST /shadow/{key}/{sig}/{common}/{encrypted}", "--common-point", "--encrypted-point")
    call("generate-document-key", "POST /{key}/{sig}/{threshold}: server key and document key", "--threshold")
    call("server-key", "GET /server/{key}/{sig}")
    call("document-key", "GET /{key}/{sig}: the document key, encrypted to the requester")
    call("shadow", "GET /shadow/{key}/{sig}: the document key shadow")
    call("schnorr", "GET /schnorr/{key}/{sig}/{hash}: threshold Schnorr signature", "--message-hash")
    call("ecdsa", "GET /ecdsa/{key}/{sig}/{hash}: threshold ECDSA signature", "--message-hash")


def sign_request(args: argparse.Namespace) -> int:
    from ...client.http import request_signature

    secret = Secret.from_hex(args.requester_secret, "--requester-secret")
    key_id = ServerKeyId.from_hex(args.key_id, "--key-id")
    print(f"Signature: 0x{request_signature(secret, key_id).hex()}")
    return 0


def _threshold(text: str) -> int:
    if not text.isdigit():
        raise ValueError("--threshold: expected a non-negative integer")
    return int(text)


def run_call(args: argparse.Namespace) -> int:
    from ...client.http import HttpApiError, SecretStoreHttpClient, verify_ecdsa, verify_schnorr
    from ...crypto.signing import schnorr_to_bytes
    from ..main import CommandError

    if not args.url.startswith(("http://", "https://")):
        raise ValueError(f"--url must be an http:// or https:// URL, got {args.url!r}")
    if not 0 < args.timeout <= 3600:  # also refuses nan
        raise ValueError("--timeout must be a positive number of seconds (at most 3600)")
    api = SecretStoreHttpClient(args.url, timeout=args.timeout)
    secret = Secret.from_hex(args.requester_secret, "--requester-secret")
    key_id = ServerKeyId.from_hex(args.key_id, "--key-id")
    try:
        if args.call == "generate-server-key":
            print(f"Server key: {api.generate_server_key(key_id, secret, _threshold(args.threshold)).hex()}")
        elif args.call == "store-document-key":
            api.store_document_key(key_id, secret, Public.from_hex(args.common_point, "--common-point"),
                                   Public.from_hex(args.encrypted_point, "--encrypted-point"))
            print("Document key stored")
        elif args.call == "generate-document-key":
            answer = api.call_raw("generate_document_key", key_id, secret, _threshold(args.threshold))
            print(f"Encrypted document key: {answer}")
        elif args.call == "server-key":
            print(f"Server key: {api.retrieve_server_key(key_id, secret).hex()}")
        elif args.call == "document-key":
            print(f"Encrypted document key: {api.call_raw('retrieve_document_key', key_id, secret)}")
        elif args.call == "shadow":
            shadow = api.retrieve_document_key_shadow(key_id, secret)
            print(f"Decrypted secret: {shadow.decrypted_secret.hex()}")
            print(f"Common point: {shadow.common_point.hex()}")
            for s in shadow.decrypt_shadows:
                print(f"Decrypt shadow: 0x{s.hex()}")
        else:
            message_hash = parse_hex(args.message_hash, "--message-hash", 32)
            server_key = api.retrieve_server_key(key_id, secret)
            if args.call == "schnorr":
                signature = api.sign_schnorr(key_id, secret, message_hash)
                raw, valid = schnorr_to_bytes(signature), verify_schnorr(server_key, message_hash, signature)
            else:
                raw = api.sign_ecdsa(key_id, secret, message_hash)
                valid = verify_ecdsa(server_key, message_hash, raw)
            print(f"Signature: 0x{raw.hex()}")
            print(f"Server key: {server_key.hex()}")
            print(f"Valid: {'yes' if valid else 'NO'}")
            if not valid:
                raise CommandError("the key servers returned a signature that does not verify")
    except HttpApiError as exc:
        raise CommandError(str(exc)) from None
    except ConnectionError as exc:
        raise CommandError(str(exc)) from None
    return 0
