"""Offline key and document commands, with the flag names of the Parity Secret Store substrate binary."""

from __future__ import annotations

import argparse

from ...crypto import KeyPair, Public, Secret
from ...crypto.document import (
    decrypt_message, encrypt_message, generate_document_key, shadow_decrypt_message,
)
from ...crypto.keys import DecryptionError, parse_hex


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("generate-key-pair", help="generate a random secp256k1 key pair")
    p.set_defaults(handler=generate_key_pair)

    p = sub.add_parser("generate-document-key", help="make a document key for a server key and its author")
    p.add_argument("--server-key", required=True, help="server key public (64 bytes hex)")
    p.add_argument("--author-key", required=True, help="author's public key (64 bytes hex)")
    p.set_defaults(handler=generate_document_key_command)

    p = sub.add_parser("encrypt-message", help="encrypt a message with a document key the author holds")
    p.add_argument("--encrypted-document-key", required=True)
    p.add_argument("--author-secret", required=True)
    p.add_argument("--message", required=True, help="the plaintext (text)")
    p.set_defaults(handler=encrypt_message_command)

    p = sub.add_parser("decrypt-message", help="decrypt a message with an encrypted document key")
    p.add_argument("--encrypted-document-key", required=True)
    p.add_argument("--requester-secret", required=True)
    p.add_argument("--encrypted-message", required=True)
    p.add_argument("--raw", action="store_true", help="print only the plaintext")
    p.set_defaults(handler=decrypt_message_command)

    p = sub.add_parser("shadow-decrypt-message", help="decrypt a message with the result of a shadow retrieval")
    p.add_argument("--common-point", required=True, help="common (shadow) point of the retrieval")
    p.add_argument("--decrypted-secret", required=True)
    p.add_argument("--decrypt-shadows", required=True, action="append", help="repeat once per key server shadow")
    p.add_argument("--requester-secret", required=True)
    p.add_argument("--encrypted-message", required=True)
    p.add_argument("--raw", action="store_true", help="print only the plaintext")
    p.set_defaults(handler=shadow_decrypt_message_command)


def generate_key_pair(args: argparse.Namespace) -> int:
    pair = KeyPair.generate()
    print(f"Secret: {pair.secret.to_int():#066x}")  # printing the secret is this command's purpose
    print(f"Public: {pair.public.hex()}")
    print(f"Address: {pair.address.hex()}")
    return 0


def generate_document_key_command(args: argparse.Namespace) -> int:
    generated = generate_document_key(Public.from_hex(args.server_key, "--server-key"),
                                      Public.from_hex(args.author_key, "--author-key"))
    print(f"Common point: {generated.common_point.hex()}")
    print(f"Encrypted point: {generated.encrypted_point.hex()}")
    print(f"Encrypted document key: 0x{generated.encrypted_key.hex()}")
    return 0


def encrypt_message_command(args: argparse.Namespace) -> int:
    encrypted = encrypt_message(parse_hex(args.encrypted_document_key, "--encrypted-document-key"),
                                Secret.from_hex(args.author_secret, "--author-secret"), args.message.encode())
    print(f"Encrypted message: 0x{encrypted.hex()}")
    return 0


def _print_plaintext(plaintext: bytes, raw: bool) -> int:
    try:
        text = plaintext.decode()
    except UnicodeDecodeError:
        raise DecryptionError("decryption produced non-text bytes: wrong key or corrupted message") from None
    print(text if raw else f'Decrypted message: "{text}"')
    return 0


def decrypt_message_command(args: argparse.Namespace) -> int:
    plaintext = decrypt_message(parse_hex(args.encrypted_document_key, "--encrypted-document-key"),
                                Secret.from_hex(args.requester_secret, "--requester-secret"),
                                parse_hex(args.encrypted_message, "--encrypted-message"))
    return _print_plaintext(plaintext, args.raw)


def shadow_decrypt_message_command(args: argparse.Namespace) -> int:
    plaintext = shadow_decrypt_message(
        Public.from_hex(args.common_point, "--common-point"),
        Public.from_hex(args.decrypted_secret, "--decrypted-secret"),
        [parse_hex(s, "--decrypt-shadows") for s in args.decrypt_shadows],
        Secret.from_hex(args.requester_secret, "--requester-secret"),
        parse_hex(args.encrypted_message, "--encrypted-message"),
    )
    return _print_plaintext(plaintext, args.raw)
