"""`secretstore-substrate`: the command line of Parity's `bin/substrate` binary, so its quick start runs as written
with only the binary name changed. Without a subcommand it runs a key server (`secretstore key-server`); its
subcommands are the same as `secretstore`'s."""

from __future__ import annotations

import sys

from .main import main as secretstore_main

PARITY_SUBCOMMANDS = {"submit-transaction", "generate-key-pair", "generate-document-key", "encrypt-message",
                      "decrypt-message", "shadow-decrypt-message"}


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    verbosity = [a for a in args if a in ("-v", "-vv")]
    rest = [a for a in args if a not in verbosity]
    if rest and (rest[0] in PARITY_SUBCOMMANDS or rest[0] in ("-h", "--help")):
        return secretstore_main(verbosity + rest)
    return secretstore_main(verbosity + ["key-server"] + rest)


if __name__ == "__main__":
    sys.exit(main())
