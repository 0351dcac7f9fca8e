"""The `secretstore` command. Subcommands live in `secretstore.cli.commands`, one module each exposing `register()`."""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys

from . import commands


class CommandError(Exception):
    """A failure to report to the user as one line, without a traceback."""


class OneLineArgumentParser(argparse.ArgumentParser):
    """A usage error is one line on stderr (what is wrong and where to look), exit code 2; subcommands' parsers are
    of this class too."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineArgumentParser(prog="secretstore", description="MathChain SecretStore: keys, documents, network.")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-v info, -vv debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda i: i.name):
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        module.register(sub)
    return parser


_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class KeyValueFormatter(logging.Formatter):
    """One line per record: time, level, logger, message, then the record's structured fields as key=value."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = {k: v for k, v in vars(record).items() if k not in _STANDARD}
        return line + "".join(f" {k}={v}" for k, v in fields.items())


def configure_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(KeyValueFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level, handlers=[handler])
    for noisy in ("websocket", "substrateinterface", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.verbose)
    try:
        result = args.handler(args)
    except KeyboardInterrupt:
        return 130
    except (CommandError, ValueError, OSError) as exc:  # CryptoError and CodecError are ValueErrors
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except BaseExceptionGroup as group:  # a failure inside a TaskGroup (e.g. a key server that cannot bind)
        found = _user_error(group)
        if found is None:
            raise
        print(f"error: {found}", file=sys.stderr)
        return 1
    return int(result or 0)


def _user_error(group: BaseExceptionGroup) -> BaseException | None:
    """The first error of a group that is the user's to fix (the kinds main reports as one line)."""
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            found = _user_error(exc)
            if found is not None:
                return found
        elif isinstance(exc, (CommandError, ValueError, OSError)):
            return exc
    return None


if __name__ == "__main__":
    sys.exit(main())
