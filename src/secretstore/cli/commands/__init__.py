"""Subcommands of `secretstore`: every module here exposes `register(subparsers)`."""
